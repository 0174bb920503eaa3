"""The membership core: SWIM with the Lifeguard refinements, gossip and anti-entropy.

Sans-I/O (DESIGN.md §1): inputs return nothing — :meth:`Membership.receive_datagram`,
:meth:`Membership.receive_frame`, :meth:`Membership.handle_timer` and the commands;
outputs are pulled — :meth:`Membership.datagrams_to_send`,
:meth:`Membership.frames_to_send`, :meth:`Membership.next_event` and
:meth:`Membership.get_timer`. The runtime and the simulator drive this same class.

Every statement about a member is a signed unit forwarded verbatim: ALIVE and LEFT are
signed by the member itself (nobody can resurrect, move or retag another node);
SUSPECT and DEAD are signed by whoever makes them. Members are ordered by
``(epoch, incarnation)``: a restarted node has a larger epoch and so outranks its past.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from ..errors import DropReason, LocalProtocolError, RemoteProtocolError
from ..identity import Identity, NodeId
from ..wire.cbor import encode
from ..wire.datagram import datagram_room, open_frame, seal_datagram, seal_frame, split_datagram
from ..wire.keyring import Keyring
from ..wire.limits import DEFAULT_LIMITS, WireLimits
from ..wire.message import SignedMessage, check_mesh_name, sign_message, verify_unit
from ..wire.message_types import (
    ADDRESS,
    DIRECT_TYPES,
    MAX_TAGS_SIZE,
    MESSAGE_SCHEMAS,
    MessageType,
)
from ..wire.replay import ReplayWindow
from ..wire.schema import SchemaViolation
from ..wire.signature import ED25519, SignatureScheme
from ..wire.trust import TrustPolicy
from .awareness import Awareness
from .events import (
    BroadcastReceived,
    ForeignMessage,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MembershipEvent,
    MemberSuspected,
    MemberUpdated,
)
from .member import Address, Member, MemberState
from .suspicion import Suspicion
from .timing import Timing
from .transmit_queue import TransmitQueue

__all__ = ["Membership", "MembershipLimits"]

_STATE_RANK: Final = {
    MemberState.ALIVE: 0,
    MemberState.SUSPECT: 1,
    MemberState.DEAD: 2,
    MemberState.LEFT: 3,
}
_PROBE_SEQ_MODULUS: Final = 2**32
_SIGNATURE_SIZE: Final = 64
#: Direct messages of the failure detector itself; other direct types belong to other
#: cores and are handed out as ForeignMessage events.
_PROBE_TYPES: Final = frozenset(
    {MessageType.PING, MessageType.ACK, MessageType.NACK, MessageType.PING_REQ}
)
_BROADCAST_ID_SIZE: Final = 16


@dataclass(frozen=True, slots=True)
class MembershipLimits:
    """Bounds of the membership core, each with its reason."""

    #: Members (dead and left included) one node tracks; a mesh of edge devices is
    #: hundreds to a few thousand nodes, and each member costs about 1 KiB.
    max_members: int = 4096
    #: Membership updates waiting to be gossiped; beyond it the most-sent is dropped.
    max_queued_updates: int = 4096
    #: Application broadcasts waiting to be gossiped.
    max_queued_broadcasts: int = 1024
    #: Events not yet pulled with ``next_event()``; beyond it the oldest is dropped
    #: (and counted), so a runtime that stops reading cannot exhaust memory.
    max_pending_events: int = 65536
    #: Statement signatures remembered to skip re-verifying forwarded copies.
    seen_cache_size: int = 65536
    #: Application broadcasts kept for anti-entropy (``Timing.broadcast_retention``).
    max_retained_broadcasts: int = 1024


class _Record:
    """What one node knows of one member (mutable; snapshots are ``Member``)."""

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
        self.id = node_id
        self.address = address
        self.state = MemberState.ALIVE
        self.epoch = epoch
        self.incarnation = incarnation
        self.tags: Mapping[str, str] = (
            tags if isinstance(tags, MappingProxyType) else MappingProxyType(dict(tags))
        )
        self.alive_unit = alive_unit
        self.state_unit: bytes | None = None
        self.state_since = now
        self._snapshot: Member | None = None

    @property
    def snapshot(self) -> Member:
        """The member as an immutable value (built when first asked for)."""
        if self._snapshot is None:
            self._snapshot = self._make_snapshot()
        return self._snapshot

    def _make_snapshot(self) -> Member:
        return Member(
            id=self.id,
            address=self.address,
            state=self.state,
            incarnation=self.incarnation,
            epoch=self.epoch,
            tags=self.tags,
        )

    def refresh(self) -> None:
        self._snapshot = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.epoch, self.incarnation)

    @property
    def rank(self) -> tuple[int, int, int]:
        return (self.epoch, self.incarnation, _STATE_RANK[self.state])

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


class _Probe:
    __slots__ = (
        "seq",
        "target",
        "direct_deadline",
        "final_deadline",
        "indirect_sent",
        "expected_nacks",
        "nacks",
    )

    def __init__(self, seq: int, target: NodeId, direct: float, final: float) -> None:
        self.seq = seq
        self.target = target
        self.direct_deadline = direct
        self.final_deadline = final
        self.indirect_sent = False
        self.expected_nacks = 0
        self.nacks = 0


class _Relay:
    __slots__ = ("origin", "origin_seq", "deadline")

    def __init__(self, origin: Address, origin_seq: int, deadline: float) -> None:
        self.origin = origin
        self.origin_seq = origin_seq
        self.deadline = deadline


class _LiveSet:
    """Ids of the other ALIVE and SUSPECT members, for O(1) updates and random picks."""

    __slots__ = ("_ids", "_index")

    def __init__(self) -> None:
        self._ids: list[NodeId] = []
        self._index: dict[NodeId, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, node_id: NodeId) -> None:
        if node_id not in self._index:
            self._index[node_id] = len(self._ids)
            self._ids.append(node_id)

    def discard(self, node_id: NodeId) -> None:
        at = self._index.pop(node_id, None)
        if at is None:
            return
        last = self._ids.pop()
        if at < len(self._ids):
            self._ids[at] = last
            self._index[last] = at

    def ids(self) -> list[NodeId]:
        return list(self._ids)

    def sample(self, rng: random.Random, count: int) -> list[NodeId]:
        return rng.sample(self._ids, min(count, len(self._ids)))


def _check_address(address: Address) -> Address:
    # Checked with the wire's own ADDRESS schema: a port of True or a host that is a str
    # subclass or has no UTF-8 form used to pass here and fail only when the ALIVE
    # statement was signed, after the node had taken the address and a new incarnation.
    try:
        valid = isinstance(address, tuple) and len(address) == 2 and bool(address[0])
        if valid:
            ADDRESS([address[0], address[1]])
            address[0].encode()
    except (SchemaViolation, UnicodeEncodeError):
        valid = False
    if not valid:
        raise LocalProtocolError(f"an address is (host, port), not {address!r}")
    return address


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    tags = dict(tags or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise LocalProtocolError("tags map text to text")
    try:
        # The ALIVE schema also bounds entries, key and value sizes. Without this check
        # a refused value (say 300 bytes) made signing fail *after* the node had taken
        # the tags and a new incarnation: it could never sign its ALIVE statement again,
        # so it ignored every suspicion (older than that incarnation) and stayed dead.
        MESSAGE_SCHEMAS[MessageType.ALIVE]({1: 0, 2: ["host", 0], 3: tags})
        size = len(encode(tags))
    except (SchemaViolation, UnicodeEncodeError) as exc:
        raise LocalProtocolError(f"tags refused: {exc}") from None
    if size > MAX_TAGS_SIZE:
        raise LocalProtocolError(f"tags take more than {MAX_TAGS_SIZE} bytes encoded")
    return tags


class Membership:
    """One node's membership protocol state machine.

    Args:
        identity: this node's key pair (its id is the public key).
        mesh: the mesh name; messages of other meshes are dropped.
        address: where this node receives datagrams and frames (as others should use it).
        now: the current time of the driving clock, in seconds.
        rng: the only source of randomness (seed it for determinism).
        timing: protocol periods (``Timing.lan()`` by default).
        tags: this node's initial tags.
        trust: which keys are accepted (open by default).
        keyring: mesh keys; when given, every datagram and frame is encrypted.
        limits: wire limits. ``limits.max_datagram_size`` caps every datagram sent.
        signatures: the signature scheme (the simulator may use a fast stand-in).
        bounds: bounds of this core's queues and tables.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        mesh: str,
        address: Address,
        now: float,
        rng: random.Random,
        timing: Timing | None = None,
        tags: Mapping[str, str] | None = None,
        trust: TrustPolicy | None = None,
        keyring: Keyring | None = None,
        limits: WireLimits = DEFAULT_LIMITS,
        signatures: SignatureScheme = ED25519,
        bounds: MembershipLimits | None = None,
    ) -> None:
        check_mesh_name(mesh, limits)
        self.identity = identity
        self.id = identity.node_id
        self.mesh = mesh
        self.timing = timing or Timing.lan()
        self.trust = trust
        self.keyring = keyring
        self.limits = limits
        self.signatures = signatures
        self.bounds = bounds or MembershipLimits()
        self._rng = rng
        self._members: dict[NodeId, _Record] = {}
        self._live = _LiveSet()
        self._alive_count = 0  # ALIVE or SUSPECT members, self included
        self._state_hash = 0
        self._awareness = Awareness(self.timing.awareness_max_multiplier)
        self._replay = ReplayWindow(max_senders=self.bounds.max_members)
        # Stream frames get their own window: a sender's sequence numbers are shared by
        # datagrams and frames, and frames queued behind a busy TCP connection can lag
        # far behind the datagrams it signed later without being replays.
        self._stream_replay = ReplayWindow(max_senders=self.bounds.max_members)
        self._broadcast_window = ReplayWindow(max_senders=self.bounds.max_members)
        # broadcast id (signature prefix) -> (signed unit, when we stop offering it)
        self._retained: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._updates = TransmitQueue(self.bounds.max_queued_updates)
        self._broadcasts = TransmitQueue(self.bounds.max_queued_broadcasts)
        self._events: deque[MembershipEvent] = deque()
        self._datagrams: list[tuple[bytes, Address]] = []
        self._frames: list[tuple[bytes, Address]] = []
        self._suspicions: dict[NodeId, Suspicion] = {}
        self._relays: dict[int, _Relay] = {}
        self._probe: _Probe | None = None
        self._probe_order: list[NodeId] = []
        self._probe_seq = rng.randrange(_PROBE_SEQ_MODULUS)
        self._seeds: list[Address] = []
        self._seed_backoff = self.timing.probe_interval
        self._left = False
        self._stats: dict[str, int] = {
            "packets_sent": 0,
            "bytes_sent": 0,
            "packets_received": 0,
            "bytes_received": 0,
            "frames_sent": 0,
            "frame_bytes_sent": 0,
            "frames_received": 0,
            "frame_bytes_received": 0,
            "duplicates": 0,
            "events_dropped": 0,
            "unexpected": 0,
            "refutations": 0,
        }
        self._drops: dict[str, int] = {reason.value: 0 for reason in DropReason}
        # Own record: incarnation 0 of this boot epoch.
        self._incarnation = 0
        self._address = _check_address(address)
        self._tags = _check_tags(tags)
        unit = self.sign(MessageType.ALIVE, self._alive_body())
        me = _Record(self.id, self._address, identity.epoch, 0, self._tags, unit, now)
        self._insert(me)
        # Spread the first probe, gossip and anti-entropy rounds of many nodes.
        self._next_probe = now + rng.uniform(0, self.timing.probe_interval)
        self._next_gossip = now + rng.uniform(0, self.timing.gossip_interval)
        self._next_push_pull = now + rng.uniform(0, self.timing.push_pull_interval)
        self._next_reconnect = now + rng.uniform(0, self.timing.reconnect_interval)

    # ------------------------------------------------------------------ queries

    @property
    def address(self) -> Address:
        """This node's advertised address."""
        return self._address

    @property
    def incarnation(self) -> int:
        """This node's current incarnation number."""
        return self._incarnation

    @property
    def health(self) -> int:
        """Lifeguard's local health score (0 is healthy)."""
        return self._awareness.score

    def members(self) -> list[Member]:
        """Every known member, this node included, dead and left ones too."""
        return [record.snapshot for record in self._members.values()]

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        record = self._members.get(node_id)
        return record.snapshot if record else None

    def alive_count(self) -> int:
        """Members that are ALIVE or SUSPECT, this node included."""
        return self._alive_count

    def state_hash(self) -> bytes:
        """A fingerprint of the alive and suspect members' (id, epoch, incarnation)."""
        return self._state_hash.to_bytes(16, "big")

    def statistics(self) -> dict[str, Any]:
        """Counters: packets, bytes, duplicates, and drops by reason."""
        stats: dict[str, Any] = dict(self._stats)
        stats["drops"] = dict(self._drops)
        stats["queued_updates"] = len(self._updates)
        stats["queued_broadcasts"] = len(self._broadcasts)
        stats["health"] = self._awareness.score
        stats["members"] = len(self._members)
        return stats

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams produced since the last call, with their destinations."""
        out, self._datagrams = self._datagrams, []
        return out

    def frames_to_send(self) -> list[tuple[bytes, Address]]:
        """Stream frames (anti-entropy) produced since the last call."""
        out, self._frames = self._frames, []
        return out

    def next_event(self) -> MembershipEvent | None:
        """The oldest event not yet pulled, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float:
        """The absolute time at which :meth:`handle_timer` must next be called."""
        deadline = min(self._next_probe, self._next_push_pull, self._next_reconnect)
        if self._updates or self._broadcasts:
            # Gossip rounds only matter when there is something to gossip.
            deadline = min(deadline, self._next_gossip)
        probe = self._probe
        if probe is not None:
            deadline = min(
                deadline,
                probe.final_deadline if probe.indirect_sent else probe.direct_deadline,
            )
        for relay in self._relays.values():
            deadline = min(deadline, relay.deadline)
        for suspicion in self._suspicions.values():
            deadline = min(deadline, suspicion.deadline)
        return deadline

    # ------------------------------------------------------------------ commands

    def join(self, seeds: Iterable[Address], now: float) -> None:
        """Contact seed addresses; retried with back-off while this node is alone."""
        self._seeds = [_check_address(tuple(seed)) for seed in seeds]  # type: ignore[arg-type]
        self._seed_backoff = self.timing.probe_interval
        for seed in self._seeds:
            self._send_sync(seed, join=True)
        self._next_reconnect = now + self._seed_backoff

    def bootstrap(self, known: Iterable[tuple[SignedMessage, bytes]], now: float) -> None:
        """Learn members from already verified ALIVE statements, silently.

        For simulations and tests that start from a formed mesh (``prejoined``): no
        events, nothing queued for gossip. ``known`` pairs each verified message with
        its signed unit; anything but ALIVE statements of other members is ignored.
        """
        for message, unit in known:
            if message.type != MessageType.ALIVE or message.sender == self.id:
                continue
            if message.sender in self._members or len(self._members) >= self.bounds.max_members:
                continue
            body = message.payload
            tags = MappingProxyType(body[3])  # shared, never mutated
            record = _Record(
                message.sender, (body[2][0], body[2][1]), message.epoch, body[1], tags, unit, now
            )
            self._insert(record)
            self._remember(unit)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Change this node's tags (a new incarnation, gossiped to everyone).

        Raises:
            LocalProtocolError: not a text map; more than 64 entries, a key over 128 or
                a value over 256 UTF-8 bytes; or larger than 512 bytes encoded. A
                refused change changes nothing.
        """
        self._tags = _check_tags(tags)
        self._reincarnate(self._incarnation + 1, now)

    def set_address(self, address: Address, now: float) -> None:
        """Announce a new address for this node (its id stays the same)."""
        self._address = _check_address(address)
        self._reincarnate(self._incarnation + 1, now)

    def broadcast(self, topic: str, payload: Any, now: float) -> None:
        """Gossip an application message to every other live member (delivered once).

        Raises:
            LocalProtocolError: the topic or payload is unusable, or it cannot fit in a
                datagram.
        """
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        unit = self.sign(MessageType.BROADCAST, {1: topic, 2: payload})
        if len(unit) > self._room():
            raise LocalProtocolError(
                f"broadcast of {len(unit)} bytes does not fit in one datagram "
                f"({self._room()} bytes); send large payloads directly"
            )
        self._remember(unit)
        self._retain(unit, now)
        self._broadcasts.enqueue(unit[-_SIGNATURE_SIZE:], unit)

    def leave(self, now: float) -> None:
        """Leave gracefully: a self-signed LEFT statement is gossiped; probing stops.

        Keep driving the core for a few gossip intervals so the statement spreads.
        """
        if self._left:
            return
        self._left = True
        me = self._members[self.id]
        unit = self.sign(MessageType.LEFT, {1: self._incarnation})
        self._remember(unit)
        self._set_state(me, MemberState.LEFT, unit, now)
        self._updates.enqueue(self.id, unit)
        self._probe = None
        # Tell a few members straight away rather than waiting for the next round.
        self._gossip_round(now)

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram from ``addr``. Never raises for anything a peer sends."""
        self._stats["packets_received"] += 1
        self._stats["bytes_received"] += len(data)
        try:
            units = split_datagram(data, keyring=self.keyring, limits=self.limits)
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return
        for unit in units:
            message = self._verify(unit)
            if message is None:
                continue
            if message.type in _PROBE_TYPES:
                self._handle_direct(message, addr, now)
            elif message.type in DIRECT_TYPES:
                # Another core's message (work-stealing LOAD, say): hand it out.
                self._emit(ForeignMessage(message, addr))
            else:
                self._handle_statement(message, unit, now, via_sync=False)

    def receive_frame(self, data: bytes, addr: Address, now: float) -> None:
        """Process one stream frame. Never raises for peer input.

        Anti-entropy (SYNC) is handled here; other direct messages that pass the
        checks and the replay window are handed out as :class:`ForeignMessage` events.
        """
        self._stats["frames_received"] += 1
        self._stats["frame_bytes_received"] += len(data)
        try:
            message = open_frame(
                data,
                mesh=self.mesh,
                keyring=self.keyring,
                trust=self.trust,
                replay=self._stream_replay,
                limits=self.limits,
                signatures=self.signatures,
            )
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return
        if message.type == MessageType.SYNC:
            self._handle_sync(message, now)
        elif message.type in DIRECT_TYPES and message.type not in _PROBE_TYPES:
            self._emit(ForeignMessage(message, addr))
        else:
            self._stats["unexpected"] += 1

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now`` (probes, gossip, suspicion timeouts, ...)."""
        self._expire_broadcasts(now)
        for seq in [s for s, relay in self._relays.items() if relay.deadline <= now]:
            relay = self._relays.pop(seq)
            if self.timing.lifeguard:
                self._send_direct(MessageType.NACK, {1: relay.origin_seq}, relay.origin)
        for node_id in [n for n, s in self._suspicions.items() if s.deadline <= now]:
            self._suspicion_expired(node_id, now)
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and now >= probe.direct_deadline:
                self._probe_indirectly(probe)
            if probe.indirect_sent and now >= probe.final_deadline:
                self._probe_failed(probe, now)
        if now >= self._next_probe:
            self._start_probe(now)
        if now >= self._next_gossip:
            following = self._next_gossip + self.timing.gossip_interval
            self._next_gossip = following if following > now else now + self.timing.gossip_interval
            self._gossip_round(now)
        if now >= self._next_push_pull:
            self._next_push_pull = now + self.timing.push_pull_period(self._alive_count)
            self._push_pull()
        if now >= self._next_reconnect:
            self._reconnect(now)

    # ------------------------------------------------------------------ wire

    def sign(self, msg_type: MessageType, body: Any) -> bytes:
        """A signed unit from this node (for cores composed with this one)."""
        return sign_message(
            self.identity,
            body,
            mesh=self.mesh,
            type=msg_type,
            limits=self.limits,
            signatures=self.signatures,
        )

    def _room(self) -> int:
        return datagram_room(self.limits, self.keyring)

    def _remember(self, unit: bytes) -> None:
        seen = self._seen
        seen[unit[-_SIGNATURE_SIZE:]] = None
        if len(seen) > self.bounds.seen_cache_size:
            seen.popitem(last=False)

    def _verify(self, unit: bytes) -> SignedMessage | None:
        signature = unit[-_SIGNATURE_SIZE:]
        if signature in self._seen:
            self._stats["duplicates"] += 1
            return None
        try:
            message = verify_unit(unit, self.mesh, self.trust, None, self.limits, self.signatures)
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return None
        if message.type in DIRECT_TYPES:
            if not self._replay.accept(message.sender, message.epoch, message.seq):
                self._drops[DropReason.REPLAYED.value] += 1
                return None
        elif message.type == MessageType.APP:
            self._stats["unexpected"] += 1
            return None
        else:
            self._remember(unit)
        return message

    def _send_datagram(self, first: bytes | None, extra: list[bytes], addr: Address) -> None:
        """Send ``first`` (if any) plus ``extra`` units, filled up with queued gossip."""
        units = [first] if first is not None else []
        units.extend(extra)
        used = sum(len(u) for u in units)
        units.extend(self._piggyback(self._room() - used))
        if not units:
            return
        data = seal_datagram(units, keyring=self.keyring, limits=self.limits)
        self._datagrams.append((data, addr))
        self._stats["packets_sent"] += 1
        self._stats["bytes_sent"] += len(data)

    def _piggyback(self, room: int) -> list[bytes]:
        limit = self.timing.retransmit_limit(self._alive_count)
        max_units = self.limits.max_units_per_datagram - 1
        if self._broadcasts and self._updates:
            # Application broadcasts always get at least a third of the room.
            taken = self._updates.take(room - room // 3, limit)
            room -= sum(len(u) for u in taken)
            taken += self._broadcasts.take(room, limit)
        else:
            taken = self._updates.take(room, limit) + self._broadcasts.take(room, limit)
        return taken[:max_units]

    def _send_direct(
        self, msg_type: MessageType, body: Any, addr: Address, extra: list[bytes] | None = None
    ) -> None:
        self._send_datagram(self.sign(msg_type, body), extra or [], addr)

    # ------------------------------------------------------------------ probing

    def _next_probe_target(self) -> _Record | None:
        for _ in range(2):
            while self._probe_order:
                node_id = self._probe_order.pop()
                record = self._members.get(node_id)
                if record is not None and record.state in (
                    MemberState.ALIVE,
                    MemberState.SUSPECT,
                ):
                    return record
            # A new pass: every other live member, in a fresh random order.
            self._probe_order = self._live.ids()
            self._rng.shuffle(self._probe_order)
        return None

    def _start_probe(self, now: float) -> None:
        interval = self.timing.probe_interval
        if self.timing.lifeguard:
            interval = self._awareness.scale(interval)
        self._next_probe = now + interval
        if self._left or self._probe is not None:
            return
        target = self._next_probe_target()
        if target is None:
            return
        self._probe_seq = (self._probe_seq + 1) % _PROBE_SEQ_MODULUS
        self._probe = _Probe(
            self._probe_seq, target.id, now + self.timing.probe_timeout, now + interval
        )
        extra: list[bytes] = []
        if (
            self.timing.lifeguard
            and target.state == MemberState.SUSPECT
            and target.state_unit is not None
        ):
            # Buddy system: tell a suspect of its suspicion so it can refute at once.
            extra.append(target.state_unit)
        self._send_direct(
            MessageType.PING, {1: self._probe_seq, 2: bytes(target.id)}, target.address, extra
        )

    def _probe_indirectly(self, probe: _Probe) -> None:
        probe.indirect_sent = True
        target = self._members.get(probe.target)
        if target is None:
            return
        k = self.timing.indirect_checks
        chosen = [
            record
            for record in (self._members[n] for n in self._live.sample(self._rng, k + 4))
            if record.state == MemberState.ALIVE and record.id != probe.target
        ][:k]
        body = {1: probe.seq, 2: bytes(probe.target), 3: list(target.address)}
        for helper in chosen:
            self._send_direct(MessageType.PING_REQ, body, helper.address)
        if self.timing.lifeguard:
            probe.expected_nacks = len(chosen)

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        self._probe = None
        if self.timing.lifeguard:
            if probe.expected_nacks > 0:
                self._awareness.apply_delta(max(0, probe.expected_nacks - probe.nacks))
            else:
                self._awareness.apply_delta(1)
        target = self._members.get(probe.target)
        if target is None or target.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            return
        if target.state == MemberState.ALIVE:
            self._suspect(target, self.id, None, now)
            return
        suspicion = self._suspicions.get(target.id)
        if suspicion is not None and suspicion.confirm(self.id):
            # Our own failed probe independently confirms someone else's suspicion.
            unit = self.sign(
                MessageType.SUSPECT, {1: bytes(target.id), 2: target.epoch, 3: target.incarnation}
            )
            self._remember(unit)
            self._updates.enqueue((target.id, self.id), unit)

    def _handle_direct(self, message: SignedMessage, addr: Address, now: float) -> None:
        body = message.payload
        msg_type = message.type
        if msg_type == MessageType.PING:
            if body[2] != bytes(self.id):
                self._stats["unexpected"] += 1
                return
            self._send_direct(MessageType.ACK, {1: body[1]}, addr)
        elif msg_type == MessageType.ACK:
            seq = body[1]
            probe = self._probe
            # Acks come from the target, or from a relay for an indirect probe.
            if probe is not None and probe.seq == seq:
                self._probe = None
                if self.timing.lifeguard:
                    self._awareness.apply_delta(-1)
                return
            relay = self._relays.pop(seq, None)
            if relay is not None:
                self._send_direct(MessageType.ACK, {1: relay.origin_seq}, relay.origin)
        elif msg_type == MessageType.NACK:
            probe = self._probe
            if probe is not None and probe.seq == body[1]:
                probe.nacks += 1
        elif msg_type == MessageType.PING_REQ:
            self._probe_seq = (self._probe_seq + 1) % _PROBE_SEQ_MODULUS
            target_addr = (body[3][0], body[3][1])
            self._relays[self._probe_seq] = _Relay(addr, body[1], now + self.timing.probe_timeout)
            self._send_direct(MessageType.PING, {1: self._probe_seq, 2: body[2]}, target_addr)
        else:  # SYNC belongs on the stream transport
            self._stats["unexpected"] += 1

    # ------------------------------------------------------------------ gossip

    def _gossip_round(self, now: float) -> None:
        if not self._updates and not self._broadcasts:
            return
        for node_id in self._live.sample(self._rng, self.timing.gossip_nodes):
            self._send_datagram(None, [], self._members[node_id].address)
            if not self._updates and not self._broadcasts:
                break

    # ------------------------------------------------------------------ state changes

    def _insert(self, record: _Record) -> None:
        self._members[record.id] = record
        if record.state in (MemberState.ALIVE, MemberState.SUSPECT):
            self._alive_count += 1
            self._state_hash ^= record.digest()
            if record.id != self.id:
                self._live.add(record.id)

    def _emit(self, event: MembershipEvent) -> None:
        if len(self._events) >= self.bounds.max_pending_events:
            self._events.popleft()
            self._stats["events_dropped"] += 1
        self._events.append(event)

    def _set_state(
        self, record: _Record, state: MemberState, unit: bytes | None, now: float
    ) -> None:
        """Move a record to ``state`` (at its current key), keeping counts and hash right."""
        was_live = record.state in (MemberState.ALIVE, MemberState.SUSPECT)
        if was_live:
            self._state_hash ^= record.digest()
        record.state = state
        record.state_unit = unit
        record.state_since = now
        is_live = state in (MemberState.ALIVE, MemberState.SUSPECT)
        if is_live:
            self._state_hash ^= record.digest()
        self._alive_count += int(is_live) - int(was_live)
        if record.id != self.id:
            if is_live:
                self._live.add(record.id)
            else:
                self._live.discard(record.id)
        record.refresh()
        if state != MemberState.SUSPECT:
            self._suspicions.pop(record.id, None)

    def _rekey(self, record: _Record, epoch: int, incarnation: int) -> None:
        live = record.state in (MemberState.ALIVE, MemberState.SUSPECT)
        if live:
            self._state_hash ^= record.digest()
        record.epoch, record.incarnation = epoch, incarnation
        if live:
            self._state_hash ^= record.digest()

    def _alive_body(self) -> dict[int, Any]:
        return {1: self._incarnation, 2: list(self._address), 3: self._tags}

    def _reincarnate(self, incarnation: int, now: float) -> None:
        """Sign a new ALIVE statement for this node at ``incarnation`` and gossip it."""
        if self._left:
            return
        self._incarnation = incarnation
        unit = self.sign(MessageType.ALIVE, self._alive_body())
        me = self._members[self.id]
        self._rekey(me, self.identity.epoch, incarnation)
        me.address = self._address
        me.tags = MappingProxyType(dict(self._tags))
        me.alive_unit = unit
        self._set_state(me, MemberState.ALIVE, None, now)
        self._remember(unit)
        self._updates.enqueue(self.id, unit)

    def _refute(self, epoch: int, incarnation: int, now: float) -> None:
        """Someone says this node is suspect, dead or left: outrank it."""
        if self._left or epoch != self.identity.epoch or incarnation < self._incarnation:
            return
        self._stats["refutations"] += 1
        if self.timing.lifeguard:
            self._awareness.apply_delta(1)
        self._reincarnate(incarnation + 1, now)

    def _handle_statement(
        self, message: SignedMessage, unit: bytes, now: float, *, via_sync: bool
    ) -> None:
        msg_type = message.type
        body = message.payload
        if msg_type == MessageType.ALIVE:
            self._on_alive(message, unit, now)
        elif msg_type == MessageType.LEFT:
            self._on_left(message.sender, message.epoch, body[1], unit, now)
        elif msg_type in (MessageType.SUSPECT, MessageType.DEAD):
            target_id = NodeId(body[1])
            epoch, incarnation = body[2], body[3]
            record = self._members.get(target_id)
            if record is None:
                return  # nothing to say about a member we do not know
            if (epoch, incarnation) > record.key:
                # An accuser may only name a key the member itself announced (its ALIVE
                # travels first). Anything newer is a lie or a race: it could not be
                # refuted, and a huge incarnation would overflow the refutation.
                self._stats["unexpected"] += 1
                return
            if target_id == self.id:
                self._refute(epoch, incarnation, now)
                return
            if msg_type == MessageType.SUSPECT or via_sync:
                # memberlist: a death heard through anti-entropy only makes us suspect,
                # so a member that is in fact alive (after a partition) can refute.
                self._on_suspect(record, message.sender, epoch, incarnation, unit, now)
            else:
                self._on_dead(record, epoch, incarnation, unit, now)
        elif msg_type == MessageType.BROADCAST:
            if not self._broadcast_window.accept(message.sender, message.epoch, message.seq):
                self._stats["duplicates"] += 1
                return
            self._broadcasts.enqueue(unit[-_SIGNATURE_SIZE:], unit)
            self._retain(unit, now)
            if message.sender != self.id:
                self._emit(BroadcastReceived(message.sender, body[1], body[2]))

    def _on_alive(self, message: SignedMessage, unit: bytes, now: float) -> None:
        body = message.payload
        node_id, epoch, incarnation = message.sender, message.epoch, body[1]
        address: Address = (body[2][0], body[2][1])
        if node_id == self.id:
            # An old statement of ours, or one from a previous life: outrank it if needed.
            if (epoch, incarnation) > (self.identity.epoch, self._incarnation):
                self._refute(self.identity.epoch, self._incarnation, now)
            return
        record = self._members.get(node_id)
        if record is None:
            if len(self._members) >= self.bounds.max_members:
                self._stats["unexpected"] += 1
                return
            record = _Record(node_id, address, epoch, incarnation, body[3], unit, now)
            self._insert(record)
            self._updates.enqueue(node_id, unit)
            self._emit(MemberJoined(record.snapshot))
            return
        if (epoch, incarnation) <= record.key:
            return
        previous = record.state
        changed = record.address != address or dict(record.tags) != body[3]
        self._rekey(record, epoch, incarnation)
        record.address = address
        record.tags = MappingProxyType(dict(body[3]))
        record.alive_unit = unit
        self._set_state(record, MemberState.ALIVE, None, now)
        self._updates.enqueue(node_id, unit)
        if previous == MemberState.LEFT:
            self._emit(MemberJoined(record.snapshot))
        elif previous != MemberState.ALIVE:
            self._emit(MemberRecovered(record.snapshot))
        elif changed:
            self._emit(MemberUpdated(record.snapshot))

    def _suspect(self, record: _Record, accuser: NodeId, unit: bytes | None, now: float) -> None:
        """Start suspecting ``record`` (an ALIVE member) at its current key."""
        if unit is None:
            unit = self.sign(
                MessageType.SUSPECT, {1: bytes(record.id), 2: record.epoch, 3: record.incarnation}
            )
            self._remember(unit)
        self._set_state(record, MemberState.SUSPECT, unit, now)
        self._updates.enqueue(record.id, unit)
        members = self._alive_count
        minimum, maximum = self.timing.suspicion_timeouts(members)
        # Lifeguard: expect suspicion_mult - 2 confirmations, if there are enough members.
        k = self.timing.suspicion_mult - 2 if self.timing.lifeguard else 0
        if members - 2 < k:
            k = 0
        self._suspicions[record.id] = Suspicion(accuser, k, minimum, maximum, now)
        self._emit(MemberSuspected(record.snapshot))

    def _on_suspect(
        self,
        record: _Record,
        accuser: NodeId,
        epoch: int,
        incarnation: int,
        unit: bytes,
        now: float,
    ) -> None:
        if (epoch, incarnation) < record.key:
            return
        if record.state == MemberState.SUSPECT and (epoch, incarnation) == record.key:
            suspicion = self._suspicions.get(record.id)
            if suspicion is not None and suspicion.confirm(accuser):
                self._updates.enqueue((record.id, accuser), unit)
            return
        if (
            record.state in (MemberState.DEAD, MemberState.LEFT)
            and (
                epoch,
                incarnation,
            )
            == record.key
        ):
            return
        if record.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            return
        self._rekey(record, epoch, incarnation)
        own = accuser == self.id
        self._suspect(record, accuser, unit if not own else None, now)

    def _on_dead(
        self, record: _Record, epoch: int, incarnation: int, unit: bytes, now: float
    ) -> None:
        if (epoch, incarnation) < record.key or record.state in (
            MemberState.DEAD,
            MemberState.LEFT,
        ):
            return
        self._rekey(record, epoch, incarnation)
        self._set_state(record, MemberState.DEAD, unit, now)
        self._updates.enqueue(record.id, unit)
        self._emit(MemberFailed(record.snapshot))

    def _on_left(
        self, node_id: NodeId, epoch: int, incarnation: int, unit: bytes, now: float
    ) -> None:
        record = self._members.get(node_id)
        if record is None or node_id == self.id:
            return
        if (epoch, incarnation) < record.key or record.state == MemberState.LEFT:
            return
        self._rekey(record, epoch, incarnation)
        self._set_state(record, MemberState.LEFT, unit, now)
        self._updates.enqueue(node_id, unit)
        self._emit(MemberLeft(record.snapshot))

    def _suspicion_expired(self, node_id: NodeId, now: float) -> None:
        self._suspicions.pop(node_id, None)
        record = self._members.get(node_id)
        if record is None or record.state != MemberState.SUSPECT:
            return
        unit = self.sign(
            MessageType.DEAD, {1: bytes(node_id), 2: record.epoch, 3: record.incarnation}
        )
        self._remember(unit)
        self._on_dead(record, record.epoch, record.incarnation, unit, now)

    # ------------------------------------------------------------------ anti-entropy

    def _statements_of(self, record: _Record) -> list[bytes]:
        units = [record.alive_unit]
        if record.state_unit is not None:
            units.append(record.state_unit)
        return units

    def _retain(self, unit: bytes, now: float) -> None:
        """Keep a broadcast for anti-entropy; it is part of the state hash meanwhile."""
        broadcast_id = unit[-_SIGNATURE_SIZE:][:_BROADCAST_ID_SIZE]
        if broadcast_id in self._retained:
            return
        self._retained[broadcast_id] = (unit, now + self.timing.broadcast_retention)
        self._state_hash ^= int.from_bytes(broadcast_id, "big")
        if len(self._retained) > self.bounds.max_retained_broadcasts:
            self._forget_oldest_broadcast()

    def _forget_oldest_broadcast(self) -> None:
        broadcast_id, _ = self._retained.popitem(last=False)
        self._state_hash ^= int.from_bytes(broadcast_id, "big")

    def _expire_broadcasts(self, now: float) -> None:
        retained = self._retained
        while retained and next(iter(retained.values()))[1] <= now:
            self._forget_oldest_broadcast()

    def _digest(self) -> list[list[Any]]:
        return [[bytes(r.id), r.epoch, r.incarnation, int(r.state)] for r in self._members.values()]

    def _send_sync(
        self,
        addr: Address,
        *,
        join: bool = False,
        digest: bool = False,
        statements: list[bytes] | None = None,
        want: list[NodeId] | None = None,
        want_broadcasts: list[bytes] | None = None,
    ) -> None:
        body: dict[int, Any] = {1: self.state_hash(), 2: list(self._address)}
        if digest or join:
            body[3] = self._digest()
            if self._retained:
                body[7] = list(self._retained)
        if statements or join:
            # Our own current statements travel with every exchange we start or answer,
            # so a peer that thinks we are dead hears our refutation directly.
            own = self._statements_of(self._members[self.id])
            body[4] = own + [u for u in statements or [] if u not in own]
        if want:
            body[5] = [bytes(node_id) for node_id in want]
        if join:
            body[6] = True
        if want_broadcasts:
            body[8] = want_broadcasts
        unit = self.sign(MessageType.SYNC, body)
        data = seal_frame(unit, keyring=self.keyring, limits=self.limits)
        self._frames.append((data, addr))
        self._stats["frames_sent"] += 1
        self._stats["frame_bytes_sent"] += len(data)

    def _push_pull(self) -> None:
        if self._left:
            return
        for node_id in self._live.sample(self._rng, 4):
            record = self._members[node_id]
            if record.state == MemberState.ALIVE:
                self._send_sync(record.address)
                return

    def _reconnect(self, now: float) -> None:
        self._next_reconnect = now + self.timing.reconnect_interval
        retention = self.timing.dead_retention
        for node_id in [
            r.id
            for r in self._members.values()
            if r.state in (MemberState.DEAD, MemberState.LEFT) and now - r.state_since > retention
        ]:
            del self._members[node_id]
            self._updates.discard(node_id)
        if self._left:
            return
        if self._alive_count <= 1 and self._seeds:
            for seed in self._seeds:
                self._send_sync(seed, join=True)
            self._next_reconnect = now + self._seed_backoff
            self._seed_backoff = min(2 * self._seed_backoff, self.timing.reconnect_interval)
        else:
            self._seed_backoff = self.timing.probe_interval
        # Alone or not, also try one member we saw die. A lone node used to retry only
        # its seeds: when those were gone for good, two lone nodes on either side of a
        # healed partition never tried each other and forgot each other for ever.
        dead = [r for r in self._members.values() if r.state == MemberState.DEAD]
        if dead:
            self._send_sync(self._rng.choice(dead).address, digest=True)

    def _handle_sync(self, message: SignedMessage, now: float) -> None:
        body = message.payload
        reply_to: Address = (body[2][0], body[2][1])
        if 4 in body:
            self._merge_statements(body[4], now)
        reply_statements: list[bytes] = []
        if 5 in body:
            for raw in body[5]:
                record = self._members.get(NodeId(raw))
                if record is not None:
                    reply_statements += self._statements_of(record)
        for broadcast_id in body.get(8, ()):
            retained = self._retained.get(broadcast_id)
            if retained is not None:
                reply_statements.append(retained[0])
        want: list[NodeId] = []
        want_broadcasts: list[bytes] = []
        if 3 in body:
            send, want = self._compare(body[3])
            for record in send:
                reply_statements += self._statements_of(record)
            theirs = set(body.get(7, ()))
            reply_statements += [u for i, (u, _) in self._retained.items() if i not in theirs]
            want_broadcasts = [i for i in theirs if i not in self._retained]
        if reply_statements or want or want_broadcasts:
            self._send_sync(
                reply_to, statements=reply_statements, want=want, want_broadcasts=want_broadcasts
            )
        elif not body.keys() & {3, 4, 5, 8} and body[1] != self.state_hash():
            # A bare hash that differs from ours: answer with our digest.
            self._send_sync(reply_to, digest=True)

    def _compare(self, digest: list[list[Any]]) -> tuple[list[_Record], list[NodeId]]:
        """From a peer's digest: which of our members to send, which of theirs to ask for."""
        theirs: dict[NodeId, tuple[int, int, int]] = {}
        for raw_id, epoch, incarnation, state in digest:
            theirs[NodeId(raw_id)] = (epoch, incarnation, _STATE_RANK[MemberState(state)])
        send: list[_Record] = []
        for record in self._members.values():
            rank = theirs.get(record.id)
            if rank is None:
                if record.state in (MemberState.ALIVE, MemberState.SUSPECT):
                    send.append(record)
            elif record.rank > rank:
                send.append(record)
        want: list[NodeId] = []
        for node_id, rank in theirs.items():
            known = self._members.get(node_id)
            if known is None:
                if rank[2] <= _STATE_RANK[MemberState.SUSPECT]:
                    want.append(node_id)
            elif rank > known.rank:
                want.append(node_id)
        return send, want

    def _merge_statements(self, units: list[bytes], now: float) -> None:
        verified: list[tuple[SignedMessage, bytes]] = []
        for unit in units:
            try:
                message = verify_unit(
                    unit, self.mesh, self.trust, None, self.limits, self.signatures
                )
            except RemoteProtocolError as exc:
                self._drops[exc.reason.value] += 1
                continue
            if message.type in DIRECT_TYPES or message.type == MessageType.APP:
                self._stats["unexpected"] += 1
                continue
            verified.append((message, unit))
        # A death or departure of a member we do not know is not news worth adding.
        gone = {
            bytes(m.payload[1]) if m.type == MessageType.DEAD else bytes(m.sender)
            for m, _ in verified
            if m.type in (MessageType.DEAD, MessageType.LEFT)
        }
        for message, unit in verified:
            if (
                message.type == MessageType.ALIVE
                and message.sender not in self._members
                and bytes(message.sender) in gone
            ):
                continue
            self._handle_statement(message, unit, now, via_sync=True)
