"""Dissemination: how statements and broadcasts spread (gossip, memberlist style).

Every statement that changes a node's view, and every statement it makes, waits in a
transmit-limited queue and is sent ``retransmit_mult * ceil(log10(N + 1))`` times:
piggybacked on every datagram the node sends anyway, and in a gossip round to a few
random live members every ``gossip_interval`` while anything is queued. Application
broadcasts have their own queue and always get at least a third of a datagram's room.
Broadcasts are also retained for ``broadcast_retention`` so that anti-entropy can hand
them to members that missed the gossip.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, ItemsView
from typing import Any, Final

from .._errors import LocalProtocolError
from ..wire._message import SignedMessage
from ..wire.bodies import Broadcast
from ._envelope import SIGNATURE_SIZE, Envelope
from ._events import BroadcastReceived, MembershipEvent
from ._member import Address
from ._member_table import MemberTable
from ._timing import Timing
from ._transmit_queue import TransmitQueue

__all__ = ["BROADCAST_ID_SIZE", "Dissemination", "RetainedBroadcasts"]

#: A broadcast is named by the first 16 bytes of its signature.
BROADCAST_ID_SIZE: Final = 16


class RetainedBroadcasts:
    """Broadcasts kept for anti-entropy, oldest first, with their part of the state hash.

    Args:
        retention: seconds each broadcast is kept.
        max_items: broadcasts kept at most; beyond it the oldest is forgotten.
    """

    __slots__ = ("retention", "max_items", "hash", "_units")

    def __init__(self, retention: float, max_items: int) -> None:
        #: Seconds each broadcast is kept.
        self.retention = retention
        #: Broadcasts kept at most.
        self.max_items = max_items
        #: XOR of the retained broadcast ids (their part of the state hash).
        self.hash = 0
        # broadcast id -> (signed unit, when it stops being offered)
        self._units: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, broadcast_id: object) -> bool:
        return broadcast_id in self._units

    def ids(self) -> tuple[bytes, ...]:
        """The retained broadcast ids, oldest first."""
        return tuple(self._units)

    def get(self, broadcast_id: bytes) -> bytes | None:
        """The signed unit of a retained broadcast, or None."""
        retained = self._units.get(broadcast_id)
        return None if retained is None else retained[0]

    def items(self) -> ItemsView[bytes, tuple[bytes, float]]:
        """(id, (unit, expiry)) pairs, oldest first."""
        return self._units.items()

    def retain(self, unit: bytes, now: float) -> None:
        """Keep a broadcast (once) until ``now + retention``."""
        broadcast_id = unit[-SIGNATURE_SIZE:][:BROADCAST_ID_SIZE]
        if broadcast_id in self._units:
            return
        self._units[broadcast_id] = (unit, now + self.retention)
        self.hash ^= int.from_bytes(broadcast_id, "big")
        if len(self._units) > self.max_items:
            self._forget_oldest()

    def expire(self, now: float) -> None:
        """Forget the broadcasts whose retention is over."""
        units = self._units
        while units and next(iter(units.values()))[1] <= now:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        broadcast_id, _ = self._units.popitem(last=False)
        self.hash ^= int.from_bytes(broadcast_id, "big")


class Dissemination:
    """The gossip queues, piggybacking, gossip rounds and retained broadcasts.

    Every datagram the membership core sends goes through :meth:`send`, which fills the
    room left with queued units.

    Args:
        envelope: signs and seals.
        table: the member table (gossip targets, and N for the retransmit limit).
        timing: protocol periods.
        rng: picks gossip targets.
        max_updates: bound of the membership update queue.
        max_broadcasts: bound of the broadcast queue.
        max_retained: bound of the retained broadcasts.
        emit: hands out ``BroadcastReceived`` events.
    """

    __slots__ = (
        "_envelope",
        "_table",
        "_timing",
        "_rng",
        "_emit",
        "updates",
        "broadcasts",
        "retained",
        "next_gossip",
        "stats",
        "_datagrams",
    )

    def __init__(
        self,
        envelope: Envelope,
        table: MemberTable,
        *,
        timing: Timing,
        rng: random.Random,
        max_updates: int,
        max_broadcasts: int,
        max_retained: int,
        emit: Callable[[MembershipEvent], None],
    ) -> None:
        self._envelope = envelope
        self._table = table
        self._timing = timing
        self._rng = rng
        self._emit = emit
        #: Membership statements waiting to be gossiped, keyed by member (or by
        #: (member, accuser) for Lifeguard confirmations).
        self.updates = TransmitQueue(max_updates)
        #: Application broadcasts waiting to be gossiped, keyed by signature.
        self.broadcasts = TransmitQueue(max_broadcasts)
        #: Broadcasts kept for anti-entropy.
        self.retained = RetainedBroadcasts(timing.broadcast_retention, max_retained)
        #: When the next gossip round is due (it only runs while something is queued).
        self.next_gossip = float("inf")
        #: Datagrams sent, and their bytes.
        self.stats: dict[str, int] = {"packets_sent": 0, "bytes_sent": 0}
        self._datagrams: list[tuple[bytes, Address]] = []

    def deadline(self) -> float:
        """When :meth:`handle_timer` must run next (never while nothing is queued)."""
        return self.next_gossip if self.updates or self.broadcasts else float("inf")

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        """The datagrams sent since the last call, with their destinations."""
        out, self._datagrams = self._datagrams, []
        return out

    # ------------------------------------------------------------------ sending

    def send(self, first: bytes | None, extra: list[bytes], addr: Address) -> None:
        """Send ``first`` (if any) plus ``extra`` units to ``addr``, filled up with gossip."""
        units = [first] if first is not None else []
        units.extend(extra)
        used = sum(len(u) for u in units)
        units.extend(self.piggyback(self._envelope.room() - used))
        if not units:
            return
        data = self._envelope.seal_datagram(units)
        self._datagrams.append((data, addr))
        self.stats["packets_sent"] += 1
        self.stats["bytes_sent"] += len(data)

    def piggyback(self, room: int) -> list[bytes]:
        """Queued units that fit in ``room`` bytes (each counts one transmission)."""
        limit = self._timing.retransmit_limit(self._table.alive_count)
        max_units = self._envelope.limits.max_units_per_datagram - 1
        if self.broadcasts and self.updates:
            # Application broadcasts always get at least a third of the room.
            taken = self.updates.take(room - room // 3, limit)
            room -= sum(len(u) for u in taken)
            taken += self.broadcasts.take(room, limit)
        else:
            taken = self.updates.take(room, limit) + self.broadcasts.take(room, limit)
        return taken[:max_units]

    def gossip_round(self) -> None:
        """Send queued units to ``gossip_nodes`` random live members."""
        if not self.updates and not self.broadcasts:
            return
        table = self._table
        for node_id in table.live.sample(self._rng, self._timing.gossip_nodes):
            self.send(None, [], table[node_id].address)
            if not self.updates and not self.broadcasts:
                break

    def handle_timer(self, now: float) -> None:
        """Run the gossip round if it is due."""
        if now >= self.next_gossip:
            interval = self._timing.gossip_interval
            following = self.next_gossip + interval
            self.next_gossip = following if following > now else now + interval
            self.gossip_round()

    # ------------------------------------------------------------------ broadcasts

    def broadcast(self, topic: str, payload: Any, now: float) -> None:
        """Sign and queue an application broadcast of this node.

        Raises:
            LocalProtocolError: the topic or payload is unusable, or it cannot fit in a
                datagram.
        """
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        envelope = self._envelope
        unit = envelope.sign(Broadcast(topic, payload))
        if len(unit) > envelope.room():
            raise LocalProtocolError(
                f"broadcast of {len(unit)} bytes does not fit in one datagram "
                f"({envelope.room()} bytes); send large payloads directly"
            )
        envelope.remember(unit)
        self.retained.retain(unit, now)
        self.broadcasts.enqueue(unit[-SIGNATURE_SIZE:], unit)

    def receive_broadcast(self, message: SignedMessage, unit: bytes, now: float) -> None:
        """A verified broadcast: gossip it on, retain it, deliver it once."""
        if not self._envelope.accept_broadcast(message):
            return
        self.broadcasts.enqueue(unit[-SIGNATURE_SIZE:], unit)
        self.retained.retain(unit, now)
        if message.sender != self._table.own_id:
            body: Broadcast = message.payload
            self._emit(BroadcastReceived(message.sender, body.topic, body.payload))
