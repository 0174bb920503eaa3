"""Probing: SWIM's failure detector, with Lifeguard's nacks and local health.

Every probe interval (stretched by the local health score) a node pings the next member
of a shuffled round-robin list of the other live members. Without an ack within the
probe timeout it asks ``indirect_checks`` other members to ping the target for it
(PING_REQ); they relay the ack, or (Lifeguard) answer NACK when they heard nothing
either. No ack by the end of the interval: the target is accused (see
:meth:`~meshedge.core._transitions.StatementApplier.accuse`).

Local health (:class:`~meshedge.core._awareness.Awareness`) rises with failed probes
that relays did not explain with nacks, and falls with every successful probe.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

from .._errors import DropReason
from .._identity import NodeId
from ..wire._message import SignedMessage
from ..wire._message_types import MessageType
from ..wire.bodies import Ack, Nack, Ping, PingReq
from ._awareness import Awareness
from ._dissemination import Dissemination
from ._envelope import Envelope
from ._member import Address, MemberState
from ._member_table import MemberRecord, MemberTable
from ._timing import Timing

__all__ = ["PROBE_TYPES", "Probe", "Prober", "Relay"]

#: The failure detector's own direct messages.
PROBE_TYPES: Final = frozenset(
    {MessageType.PING, MessageType.ACK, MessageType.NACK, MessageType.PING_REQ}
)
#: Probe sequence numbers are 32-bit and wrap around.
_PROBE_SEQ_MODULUS: Final = 2**32


class Probe:
    """The probe in flight (one at a time)."""

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
        #: The PING's sequence number (acks name it).
        self.seq = seq
        #: The member probed.
        self.target = target
        #: When to give up waiting for a direct ack and probe indirectly.
        self.direct_deadline = direct
        #: When the probe has failed (the end of the probe interval).
        self.final_deadline = final
        #: Whether the PING_REQs went out.
        self.indirect_sent = False
        #: Nacks to expect from the relays asked (Lifeguard).
        self.expected_nacks = 0
        #: Nacks received.
        self.nacks = 0


class Relay:
    """A PING sent on behalf of another node's indirect probe."""

    __slots__ = ("origin", "origin_seq", "deadline")

    def __init__(self, origin: Address, origin_seq: int, deadline: float) -> None:
        #: Who asked (the ack or nack goes there).
        self.origin = origin
        #: The sequence number of the origin's probe.
        self.origin_seq = origin_seq
        #: When to give up and answer NACK.
        self.deadline = deadline


class Prober:
    """Pings, ping-reqs, nacks, relays and the local health score of one node.

    Args:
        table: the member table (probe targets and their addresses).
        envelope: signs the probe messages.
        dissemination: sends every datagram (probes carry piggybacked gossip).
        timing: protocol periods.
        rng: the probe order and the relays chosen; draws the first sequence number.
        awareness: Lifeguard's local health, which probes raise and lower.
        accuse: called with the target when a probe has failed.
    """

    __slots__ = (
        "_table",
        "_envelope",
        "_dissemination",
        "_timing",
        "_rng",
        "_accuse",
        "awareness",
        "probe",
        "relays",
        "next_probe",
        "left",
        "_order",
        "_seq",
    )

    def __init__(
        self,
        table: MemberTable,
        envelope: Envelope,
        dissemination: Dissemination,
        *,
        timing: Timing,
        rng: random.Random,
        awareness: Awareness,
        accuse: Callable[[MemberRecord, float], None],
    ) -> None:
        self._table = table
        self._envelope = envelope
        self._dissemination = dissemination
        self._timing = timing
        self._rng = rng
        self._accuse = accuse
        #: Lifeguard's local health.
        self.awareness = awareness
        #: The probe in flight, if any.
        self.probe: Probe | None = None
        #: Relayed pings by their own sequence number.
        self.relays: dict[int, Relay] = {}
        #: When the next probe starts.
        self.next_probe = float("inf")
        #: Set once this node has left: it no longer probes.
        self.left = False
        self._order: list[NodeId] = []
        self._seq = rng.randrange(_PROBE_SEQ_MODULUS)

    def deadline(self) -> float:
        """The earliest of the next probe, the probe in flight's deadline and the relays'."""
        deadline = self.next_probe
        probe = self.probe
        if probe is not None:
            deadline = min(
                deadline,
                probe.final_deadline if probe.indirect_sent else probe.direct_deadline,
            )
        for relay in self.relays.values():
            deadline = min(deadline, relay.deadline)
        return deadline

    def stop(self) -> None:
        """Stop probing for good (this node left)."""
        self.left = True
        self.probe = None

    # ------------------------------------------------------------------ timers

    def expire_relays(self, now: float) -> None:
        """Relays whose target stayed silent: answer NACK (Lifeguard)."""
        for seq in [s for s, relay in self.relays.items() if relay.deadline <= now]:
            relay = self.relays.pop(seq)
            if self._timing.lifeguard:
                self._send(Nack(relay.origin_seq), relay.origin)

    def handle_timer(self, now: float) -> None:
        """Move the probe in flight on (indirect, failed), and start the next if due."""
        probe = self.probe
        if probe is not None:
            if not probe.indirect_sent and now >= probe.direct_deadline:
                self._probe_indirectly(probe)
            if probe.indirect_sent and now >= probe.final_deadline:
                self._probe_failed(probe, now)
        if now >= self.next_probe:
            self._start_probe(now)

    def _next_target(self) -> MemberRecord | None:
        for _ in range(2):
            while self._order:
                record = self._table.get(self._order.pop())
                if record is not None and record.state.is_live:
                    return record
            # A new pass: every other live member, in a fresh random order.
            self._order = self._table.live.ids()
            self._rng.shuffle(self._order)
        return None

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % _PROBE_SEQ_MODULUS
        return self._seq

    def _start_probe(self, now: float) -> None:
        timing = self._timing
        interval = timing.probe_interval
        if timing.lifeguard:
            interval = self.awareness.scale(interval)
        self.next_probe = now + interval
        if self.left or self.probe is not None:
            return
        target = self._next_target()
        if target is None:
            return
        seq = self._next_seq()
        self.probe = Probe(seq, target.id, now + timing.probe_timeout, now + interval)
        extra: list[bytes] = []
        accusation = target.state_unit
        if timing.lifeguard and target.state == MemberState.SUSPECT and accusation is not None:
            # Buddy system: tell a suspect of its suspicion so it can refute at once.
            extra.append(accusation)
        self._send(Ping(seq, target.id), target.address, extra)

    def _probe_indirectly(self, probe: Probe) -> None:
        probe.indirect_sent = True
        table = self._table
        target = table.get(probe.target)
        if target is None:
            return
        k = self._timing.indirect_checks
        chosen = [
            record
            for record in (table[n] for n in table.live.sample(self._rng, k + 4))
            if record.state == MemberState.ALIVE and record.id != probe.target
        ][:k]
        body = PingReq(probe.seq, probe.target, target.address)
        for helper in chosen:
            self._send(body, helper.address)
        if self._timing.lifeguard:
            probe.expected_nacks = len(chosen)

    def _probe_failed(self, probe: Probe, now: float) -> None:
        self.probe = None
        if self._timing.lifeguard:
            if probe.expected_nacks > 0:
                self.awareness.apply_delta(max(0, probe.expected_nacks - probe.nacks))
            else:
                self.awareness.apply_delta(1)
        target = self._table.get(probe.target)
        if target is not None and target.state.is_live:
            self._accuse(target, now)

    # ------------------------------------------------------------------ messages

    def handle(self, message: SignedMessage, addr: Address, now: float) -> None:
        """A verified PING, ACK, NACK or PING_REQ from ``addr``."""
        body = message.payload
        msg_type = message.type
        if msg_type == MessageType.PING:
            if body.target != self._table.own_id:
                self._envelope.count_drop(DropReason.MISADDRESSED)
                return
            self._send(Ack(body.seq), addr)
        elif msg_type == MessageType.ACK:
            probe = self.probe
            # Acks come from the target, or from a relay for an indirect probe.
            if probe is not None and probe.seq == body.seq:
                self.probe = None
                if self._timing.lifeguard:
                    self.awareness.apply_delta(-1)
                return
            relay = self.relays.pop(body.seq, None)
            if relay is not None:
                self._send(Ack(relay.origin_seq), relay.origin)
        elif msg_type == MessageType.NACK:
            probe = self.probe
            if probe is not None and probe.seq == body.seq:
                probe.nacks += 1
        else:  # PING_REQ
            seq = self._next_seq()
            self.relays[seq] = Relay(addr, body.seq, now + self._timing.probe_timeout)
            self._send(Ping(seq, body.target), body.address)

    def _send(
        self, body: Ping | Ack | Nack | PingReq, addr: Address, extra: list[bytes] | None = None
    ) -> None:
        self._dissemination.send(self._envelope.sign(body), extra or [], addr)
