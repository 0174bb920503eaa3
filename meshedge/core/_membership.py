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

:class:`Membership` composes one part per concept and routes messages between them:

* :mod:`~meshedge.core._envelope` — signing, sealing, verification, replay windows;
* :mod:`~meshedge.core._member_table` — the records, live set, counts and state hash;
* :mod:`~meshedge.core._own_record` — this node's incarnation, address and tags;
* :mod:`~meshedge.core._transitions` — what each statement does to a record;
* :mod:`~meshedge.core._probing` — the failure detector;
* :mod:`~meshedge.core._dissemination` — gossip queues, piggybacking, broadcasts;
* :mod:`~meshedge.core._anti_entropy` — SYNC exchanges, joins, reconnects.

This class itself routes messages, keeps the events and tells when a leave is over.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._errors import DropReason, LocalProtocolError
from .._identity import Identity, NodeId
from ..wire._keyring import Keyring
from ..wire._limits import DEFAULT_LIMITS, WireLimits
from ..wire._message import SignedMessage
from ..wire._message_types import DIRECT_TYPES, MessageType
from ..wire._signature import ED25519, SignatureScheme
from ..wire._trust import TrustPolicy
from ..wire.bodies import Alive, Body
from ._anti_entropy import AntiEntropy
from ._awareness import Awareness
from ._dissemination import Dissemination
from ._envelope import Envelope
from ._events import ForeignMessage, LeaveCompleted, MembershipEvent
from ._member import Address, Member
from ._member_table import MemberRecord, MemberTable
from ._own_record import OwnRecord, check_address
from ._probing import PROBE_TYPES, Prober
from ._statistics import MembershipCounters, MembershipTraffic, merge
from ._timing import Timing
from ._transitions import Statement, StatementApplier

__all__ = ["Membership", "MembershipLimits"]


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
        limits: wire limits (``DEFAULT_LIMITS`` by default).
            ``limits.max_datagram_size`` caps every datagram sent.
        signatures: the signature scheme (Ed25519 by default; the simulator may use a
            fast stand-in).
        bounds: bounds of this core's queues and tables.
        envelope: the node's :class:`Envelope`, when several cores share one; then it
            supplies trust, keyring, limits and signatures, which must not be given too.
            Built from the arguments above when None.

    Raises:
        LocalProtocolError: an unusable mesh name, address or tags, or an envelope of
            another identity or mesh, or given together with envelope arguments.
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
        limits: WireLimits | None = None,
        signatures: SignatureScheme | None = None,
        bounds: MembershipLimits | None = None,
        envelope: Envelope | None = None,
    ) -> None:
        self.identity = identity
        self.id = identity.node_id
        self.mesh = mesh
        self.timing = timing or Timing.lan()
        self.bounds = bounds = bounds or MembershipLimits()
        if envelope is None:
            envelope = Envelope(
                identity,
                mesh=mesh,
                trust=trust,
                keyring=keyring,
                limits=DEFAULT_LIMITS if limits is None else limits,
                signatures=ED25519 if signatures is None else signatures,
                max_senders=bounds.max_members,
                seen_cache_size=bounds.seen_cache_size,
            )
        elif envelope.identity is not identity or envelope.mesh != mesh:
            raise LocalProtocolError("the envelope belongs to another identity or mesh")
        elif not all(value is None for value in (trust, keyring, limits, signatures)):
            raise LocalProtocolError(
                "trust, keyring, limits and signatures come from the envelope given"
            )
        #: Signs and verifies for this core (shared with other cores of the node).
        self.envelope = envelope
        self._events: deque[MembershipEvent] = deque()
        self._events_dropped = 0
        self._leaving = False  # left, and LeaveCompleted not emitted yet
        self._compose(rng, address, tags, now)
        # Spread the first probe, gossip and anti-entropy rounds of many nodes.
        timing = self.timing
        self._prober.next_probe = now + rng.uniform(0, timing.probe_interval)
        self._dissemination.next_gossip = now + rng.uniform(0, timing.gossip_interval)
        self._anti_entropy.next_push_pull = now + rng.uniform(0, timing.push_pull_interval)
        self._anti_entropy.next_reconnect = now + rng.uniform(0, timing.reconnect_interval)

    def _compose(
        self, rng: random.Random, address: Address, tags: Mapping[str, str] | None, now: float
    ) -> None:
        envelope, timing, bounds = self.envelope, self.timing, self.bounds
        self._table = table = MemberTable(self.id)
        # The record of every member by id (the simulator reads its own ALIVE unit here).
        self._dissemination = dissemination = Dissemination(
            envelope,
            table,
            timing=timing,
            rng=rng,
            max_updates=bounds.max_queued_updates,
            max_broadcasts=bounds.max_queued_broadcasts,
            max_retained=bounds.max_retained_broadcasts,
            emit=self._emit,
        )
        awareness = Awareness(timing.awareness_max_multiplier)
        self._own = own = OwnRecord(
            self.identity,
            envelope,
            table,
            dissemination.updates,
            timing=timing,
            awareness=awareness,
            address=address,
            tags=tags,
            now=now,
        )
        self._applier = applier = StatementApplier(
            table,
            timing=timing,
            max_members=bounds.max_members,
            gossip=dissemination.updates.enqueue,
            emit=self._emit,
            sign=self._sign_statement,
            refute=own.refute,
            count_drop=envelope.count_drop,
        )
        self._prober = Prober(
            table,
            envelope,
            dissemination,
            timing=timing,
            rng=rng,
            awareness=awareness,
            accuse=applier.accuse,
        )
        self._anti_entropy = AntiEntropy(
            table,
            envelope,
            dissemination,
            timing=timing,
            rng=rng,
            reply_to=own.address,
            on_statement=self._handle_statement,
        )

    # ------------------------------------------------------------------ queries

    @property
    def address(self) -> Address:
        """This node's advertised address."""
        return self._own.address

    @property
    def incarnation(self) -> int:
        """This node's current incarnation number."""
        return self._own.incarnation

    @property
    def health(self) -> int:
        """Lifeguard's local health score (0 is healthy)."""
        return self._prober.awareness.score

    @property
    def trust(self) -> TrustPolicy | None:
        """The trust policy (None admits every key)."""
        return self.envelope.trust

    @property
    def keyring(self) -> Keyring | None:
        """The mesh keys (None: nothing is encrypted)."""
        return self.envelope.keyring

    @property
    def limits(self) -> WireLimits:
        """The wire limits."""
        return self.envelope.limits

    @property
    def signatures(self) -> SignatureScheme:
        """The signature scheme."""
        return self.envelope.signatures

    def alive_statement(self) -> bytes:
        """This node's own current ALIVE statement: the signed unit others forward."""
        return self._table.own.alive_unit

    def members(self) -> list[Member]:
        """Every known member, this node included, dead and left ones too."""
        return [record.snapshot for record in self._table]

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        record = self._table.get(node_id)
        return record.snapshot if record else None

    def alive_count(self) -> int:
        """Members that are ALIVE or SUSPECT, this node included."""
        return self._table.alive_count

    def state_hash(self) -> bytes:
        """A fingerprint of the live members and the retained broadcasts.

        It covers each ALIVE or SUSPECT member's (id, epoch, incarnation, state) and the
        ids of the retained broadcasts: equal hashes mean nothing to exchange.
        """
        return self._anti_entropy.state_hash()

    def counters(self) -> MembershipCounters:
        """This core's own counters and gauges."""
        dissemination = self._dissemination
        return MembershipCounters(
            events_dropped=self._events_dropped,
            refutations=self._own.refutations,
            queued_updates=len(dissemination.updates),
            queued_broadcasts=len(dissemination.broadcasts),
            health=self._prober.awareness.score,
            members=len(self._table),
        )

    def traffic(self) -> MembershipTraffic:
        """Datagrams and frames this core produced to send, and their bytes."""
        sent, frames = self._dissemination.stats, self._anti_entropy.stats
        return MembershipTraffic(
            packets_sent=sent["packets_sent"],
            bytes_sent=sent["bytes_sent"],
            frames_sent=frames["frames_sent"],
            frame_bytes_sent=frames["frame_bytes_sent"],
        )

    def statistics(self) -> dict[str, Any]:
        """Counters: traffic, duplicates, drops by reason, gauges.

        The keys of :data:`~meshedge.core._statistics.MEMBERSHIP_SECTIONS`; ``unexpected``
        is the sum of the drops in :data:`~meshedge.core._envelope.UNEXPECTED_REASONS`.
        """
        envelope = self.envelope
        return merge(envelope.counters(), envelope.drop_counters(), self.counters(), self.traffic())

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams produced since the last call, with their destinations."""
        return self._dissemination.take_datagrams()

    def frames_to_send(self) -> list[tuple[bytes, Address]]:
        """Stream frames (anti-entropy) produced since the last call."""
        return self._anti_entropy.take_frames()

    def next_event(self) -> MembershipEvent | None:
        """The oldest event not yet pulled, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float:
        """The absolute time at which :meth:`handle_timer` must next be called."""
        deadline = min(
            self._prober.deadline(),
            self._anti_entropy.deadline(),
            self._dissemination.deadline(),
        )
        for suspicion in self._table.suspicions.values():
            deadline = min(deadline, suspicion.deadline)
        return deadline

    # ------------------------------------------------------------------ commands

    def join(self, seeds: Iterable[Address], now: float) -> None:
        """Contact seed addresses; retried with back-off while this node is alone."""
        checked = [check_address(tuple(seed)) for seed in seeds]  # type: ignore[arg-type]
        self._anti_entropy.join(checked, now)

    def bootstrap(self, known: Iterable[tuple[SignedMessage, bytes]], now: float) -> None:
        """Learn members from already verified ALIVE statements, silently.

        For simulations and tests that start from a formed mesh (``prejoined``): no
        events, nothing queued for gossip. ``known`` pairs each verified message with
        its signed unit; anything but ALIVE statements of other members is ignored.
        """
        table = self._table
        for message, unit in known:
            if message.type != MessageType.ALIVE or message.sender == self.id:
                continue
            if message.sender in table.records or len(table) >= self.bounds.max_members:
                continue
            body: Alive = message.payload
            tags = MappingProxyType(body.tags)  # shared, never mutated
            record = MemberRecord(
                message.sender, body.address, message.epoch, body.incarnation, tags, unit, now
            )
            table.insert(record)
            self.envelope.remember(unit)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Change this node's tags (a new incarnation, gossiped to everyone).

        Raises:
            LocalProtocolError: not a text map; more than 64 entries, a key over 128 or
                a value over 256 UTF-8 bytes; or larger than 512 bytes encoded. A
                refused change changes nothing.
        """
        self._own.set_tags(tags, now)

    def set_address(self, address: Address, now: float) -> None:
        """Announce a new address for this node (its id stays the same).

        Raises:
            LocalProtocolError: not a ``(host, port)`` the wire can carry; a refused
                address changes nothing.
        """
        self._own.set_address(address, now)
        self._anti_entropy.reply_to = self._own.address

    def broadcast(self, topic: str, payload: Any, now: float) -> None:
        """Gossip an application message to every other live member (delivered once).

        Raises:
            LocalProtocolError: the topic or payload is unusable, or it cannot fit in a
                datagram.
        """
        self._dissemination.broadcast(topic, payload, now)

    def leave(self, now: float) -> None:
        """Leave gracefully: a self-signed LEFT statement is gossiped; probing stops.

        Keep driving the core until it emits :class:`LeaveCompleted`, so the statement
        spreads.
        """
        if self._own.left:
            return
        self._leaving = True
        self._own.leave(now)
        self._prober.stop()
        self._anti_entropy.left = True
        # Tell a few members straight away rather than waiting for the next round.
        self._dissemination.gossip_round()
        self._check_leave()

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram from ``addr``. Never raises for anything a peer sends."""
        for message, unit in self.envelope.open_datagram(data):
            msg_type = message.type
            if msg_type in PROBE_TYPES:
                self._prober.handle(message, addr, now)
            elif msg_type == MessageType.SYNC:
                self.envelope.count_drop(DropReason.SYNC_BY_DATAGRAM)
            elif msg_type in DIRECT_TYPES:
                # Another core's message (work-stealing LOAD, say): hand it out.
                self._emit(ForeignMessage(message, addr))
            else:
                self._handle_statement(message, unit, now, False)
        if self._leaving:
            self._check_leave()

    def receive_frame(self, data: bytes, addr: Address, now: float) -> None:
        """Process one stream frame. Never raises for peer input.

        Anti-entropy (SYNC) is handled here; other direct messages that pass the
        checks and the stream replay window are handed out as :class:`ForeignMessage`
        events. Probes, statements and APP units do not travel by stream and are
        dropped, each under its reason.
        """
        message = self.envelope.open_frame(data)
        if message is not None:
            msg_type = message.type
            if msg_type == MessageType.SYNC:
                self._anti_entropy.receive(message, now)
            elif msg_type in PROBE_TYPES:
                self.envelope.count_drop(DropReason.PROBE_BY_STREAM)
            elif msg_type in DIRECT_TYPES:
                self._emit(ForeignMessage(message, addr))
            elif msg_type == MessageType.APP:
                self.envelope.count_drop(DropReason.APP_UNIT)
            else:
                self.envelope.count_drop(DropReason.STATEMENT_BY_STREAM)
        if self._leaving:
            self._check_leave()

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now`` (probes, gossip, suspicion timeouts, ...)."""
        self._dissemination.retained.expire(now)
        self._prober.expire_relays(now)
        for node_id in [n for n, s in self._table.suspicions.items() if s.deadline <= now]:
            self._applier.suspicion_expired(node_id, now)
        self._prober.handle_timer(now)
        self._dissemination.handle_timer(now)
        self._anti_entropy.handle_timer(now)
        if self._leaving:
            self._check_leave()

    # ------------------------------------------------------------------ wire

    def sign(self, msg_type: MessageType, body: Any) -> bytes:
        """A signed unit from this node (for cores composed with this one)."""
        return self.envelope.sign(body, type=msg_type)

    def _sign_statement(self, body: Body) -> bytes:
        """Sign a statement of this node and remember it (copies heard back are skipped)."""
        unit = self.envelope.sign(body)
        self.envelope.remember(unit)
        return unit

    # ------------------------------------------------------------------ internals

    def _emit(self, event: MembershipEvent) -> None:
        if len(self._events) >= self.bounds.max_pending_events:
            self._events.popleft()
            self._events_dropped += 1
        self._events.append(event)

    def _handle_statement(
        self, message: SignedMessage, unit: bytes, now: float, via_sync: bool
    ) -> None:
        if message.type == MessageType.BROADCAST:
            self._dissemination.receive_broadcast(message, unit, now)
        else:
            self._applier.apply(Statement.of(message, unit), now, via_sync=via_sync)

    def _check_leave(self) -> None:
        """Emit LeaveCompleted once nothing waits to be gossiped, or nobody is left."""
        if not self._dissemination.updates or self._table.alive_count == 0:
            self._leaving = False
            self._emit(LeaveCompleted(self.id))
