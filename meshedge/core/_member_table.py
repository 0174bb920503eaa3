"""The member table: what one node knows of each member, kept consistent on every change.

Besides the records themselves, the table keeps what is derived from them and asked for
often: the set of other live members (to pick probe and gossip targets in O(1)), the
number of live members, the members' part of the state hash, and the suspicion timers
of the members that are SUSPECT. Every change of state or key goes through
:meth:`MemberTable.set_state` or :meth:`MemberTable.rekey`, which update all of them.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from .._identity import NodeId
from ..wire.bodies import DigestEntry
from ._member import Address, Member, MemberState
from ._suspicion import Suspicion

__all__ = ["LiveSet", "MemberRecord", "MemberTable"]


class MemberRecord:
    """What one node knows of one member (mutable; snapshots are :class:`Member`)."""

    __slots__ = (
        "id",
        "address",
        "state",
        "epoch",
        "incarnation",
        "tags",
        "alive_unit",
        "state_unit",
        "state_since",
        "_snapshot",
    )

    def __init__(
        self,
        node_id: NodeId,
        address: Address,
        epoch: int,
        incarnation: int,
        tags: Mapping[str, str],
        alive_unit: bytes,
        now: float,
    ) -> None:
        #: The member's node id.
        self.id = node_id
        #: Where it receives datagrams and frames.
        self.address = address
        #: Its state in this node's view.
        self.state = MemberState.ALIVE
        #: Its boot epoch.
        self.epoch = epoch
        #: Its incarnation within that epoch.
        self.incarnation = incarnation
        #: Its tags (read-only).
        self.tags: Mapping[str, str] = (
            tags if isinstance(tags, MappingProxyType) else MappingProxyType(dict(tags))
        )
        #: The member's latest ALIVE statement (a signed unit).
        self.alive_unit = alive_unit
        #: The statement that put it in its current state (None while ALIVE).
        self.state_unit: bytes | None = None
        #: When it entered its current state.
        self.state_since = now
        self._snapshot: Member | None = None

    @property
    def snapshot(self) -> Member:
        """The member as an immutable value (built when first asked for)."""
        if self._snapshot is None:
            self._snapshot = Member(
                id=self.id,
                address=self.address,
                state=self.state,
                incarnation=self.incarnation,
                epoch=self.epoch,
                tags=self.tags,
            )
        return self._snapshot

    def refresh(self) -> None:
        """Forget the snapshot after a change (the next one is built anew)."""
        self._snapshot = None

    @property
    def key(self) -> tuple[int, int]:
        """``(epoch, incarnation)``: the order of what the member said about itself."""
        return (self.epoch, self.incarnation)

    @property
    def rank(self) -> tuple[int, int, int]:
        """``(epoch, incarnation, state)``: SWIM's precedence of one member's states."""
        return (self.epoch, self.incarnation, int(self.state))

    def statements(self) -> list[bytes]:
        """The signed units that carry this record: its ALIVE, then its state's, if any."""
        if self.state_unit is None:
            return [self.alive_unit]
        return [self.alive_unit, self.state_unit]

    def digest(self) -> int:
        """Order-independent fingerprint of this member's state, for the state hash."""
        return _member_digest(self.id, self.epoch, self.incarnation, self.state)


@functools.lru_cache(maxsize=1 << 16)
def _member_digest(node_id: bytes, epoch: int, incarnation: int, state: int) -> int:
    # Cached: in a simulation every node fingerprints the same members.
    data = b"".join(
        (node_id, epoch.to_bytes(8, "big"), incarnation.to_bytes(8, "big"), bytes((state,)))
    )
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


class LiveSet:
    """Ids of the other ALIVE and SUSPECT members, for O(1) updates and random picks."""

    __slots__ = ("_ids", "_index")

    def __init__(self) -> None:
        self._ids: list[NodeId] = []
        self._index: dict[NodeId, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def add(self, node_id: NodeId) -> None:
        """Add ``node_id`` (nothing if present)."""
        if node_id not in self._index:
            self._index[node_id] = len(self._ids)
            self._ids.append(node_id)

    def discard(self, node_id: NodeId) -> None:
        """Remove ``node_id`` (nothing if absent)."""
        at = self._index.pop(node_id, None)
        if at is None:
            return
        last = self._ids.pop()
        if at < len(self._ids):
            self._ids[at] = last
            self._index[last] = at

    def ids(self) -> list[NodeId]:
        """A copy of the ids, in no meaningful order."""
        return list(self._ids)

    def sample(self, rng: random.Random, count: int) -> list[NodeId]:
        """Up to ``count`` distinct ids, chosen with ``rng``."""
        return rng.sample(self._ids, min(count, len(self._ids)))


class MemberTable:
    """Every member one node knows (itself included), with what is derived from them.

    Args:
        own_id: this node's id; its own record is never in the live set.
    """

    __slots__ = ("own_id", "records", "live", "alive_count", "hash", "suspicions")

    def __init__(self, own_id: NodeId) -> None:
        #: This node's id.
        self.own_id = own_id
        #: node id -> record, in insertion order.
        self.records: dict[NodeId, MemberRecord] = {}
        #: The other live members.
        self.live = LiveSet()
        #: ALIVE or SUSPECT members, this node included.
        self.alive_count = 0
        #: XOR of the live members' digests (the members' part of the state hash).
        self.hash = 0
        #: Lifeguard suspicion timers, one per SUSPECT member (and only those).
        self.suspicions: dict[NodeId, Suspicion] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[MemberRecord]:
        return iter(self.records.values())

    def get(self, node_id: NodeId) -> MemberRecord | None:
        """The record of ``node_id``, or None."""
        return self.records.get(node_id)

    def __getitem__(self, node_id: NodeId) -> MemberRecord:
        return self.records[node_id]

    @property
    def own(self) -> MemberRecord:
        """This node's own record."""
        return self.records[self.own_id]

    def insert(self, record: MemberRecord) -> None:
        """Add a record (of a member not in the table yet)."""
        self.records[record.id] = record
        if record.state.is_live:
            self.alive_count += 1
            self.hash ^= record.digest()
            if record.id != self.own_id:
                self.live.add(record.id)

    def remove(self, node_id: NodeId) -> None:
        """Forget a member entirely."""
        record = self.records.pop(node_id)
        if record.state.is_live:
            self.alive_count -= 1
            self.hash ^= record.digest()
            self.live.discard(node_id)
        self.suspicions.pop(node_id, None)

    def set_state(
        self, record: MemberRecord, state: MemberState, unit: bytes | None, now: float
    ) -> None:
        """Move ``record`` to ``state`` (at its current key), said by ``unit``."""
        was_live = record.state.is_live
        if was_live:
            self.hash ^= record.digest()
        record.state = state
        record.state_unit = unit
        record.state_since = now
        is_live = state.is_live
        if is_live:
            self.hash ^= record.digest()
        self.alive_count += int(is_live) - int(was_live)
        if record.id != self.own_id:
            if is_live:
                self.live.add(record.id)
            else:
                self.live.discard(record.id)
        record.refresh()
        if state != MemberState.SUSPECT:
            self.suspicions.pop(record.id, None)

    def rekey(self, record: MemberRecord, epoch: int, incarnation: int) -> None:
        """Give ``record`` a new ``(epoch, incarnation)`` key, in the same state."""
        live = record.state.is_live
        if live:
            self.hash ^= record.digest()
        record.epoch, record.incarnation = epoch, incarnation
        if live:
            self.hash ^= record.digest()

    def digest(self) -> tuple[DigestEntry, ...]:
        """One ``[id, epoch, incarnation, state]`` entry per member, for a SYNC."""
        return tuple(
            DigestEntry(r.id, r.epoch, r.incarnation, int(r.state)) for r in self.records.values()
        )
