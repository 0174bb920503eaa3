"""Choosing whom to rob: what each peer advertises, how close it is, when to ask again.

A thief has at most one steal in flight. It picks a victim at random among live peers
advertising work worth a steal, weighted by queue length and by closeness (measured
round trip). A victim that answered empty is left alone for a growing back-off, unless
it advertises new work; a steal unanswered for ``steal_timeout`` counts as empty.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from ..._identity import NodeId
from ...wire.bodies import Load, Steal, Tasks
from .messages import Outbox
from .queue import LocalQueue
from .timing import StealingTiming

__all__ = ["ROUND_TRIP_SAMPLES", "InFlight", "Peer", "Victims"]

#: Steal round trips kept for statistics (the most recent ones).
ROUND_TRIP_SAMPLES: Final = 4096


@dataclass(slots=True)
class Peer:
    """What this node knows about another member, as a possible victim."""

    #: Its tags (a victim only hands over tasks whose requirements they meet).
    tags: Mapping[str, str]
    #: Alive or suspect in the membership view.
    alive: bool = True
    #: Tasks it last advertised as queued.
    queued: int = 0
    #: Of which it will never run itself (no slot, or not allowed there).
    surplus: int = 0
    #: Moving average of its steal round trip, in seconds.
    rtt: float = 0.001
    #: Not asked again before this time (0: no back-off).
    backoff_until: float = 0.0
    #: The current back-off period (0: none).
    backoff: float = 0.0


class InFlight(NamedTuple):
    """The one steal request waiting for its answer."""

    #: Whom it asked.
    victim: NodeId
    #: Its request number.
    request: int
    #: When it was sent.
    sent_at: float


class Victims:
    """The peers as possible victims, and this node's steal in flight.

    Args:
        rng: the only source of randomness (the weighted choice).
        timing: periods and bounds.
        outbox: where STEAL requests go.
        stats: the core's counters (``steal_requests``, ``steal_empty``,
            ``steal_timeouts``).
    """

    __slots__ = (
        "_outbox",
        "_rng",
        "_seq",
        "_stats",
        "_timing",
        "peers",
        "round_trips",
        "steal",
        "steal_time",
    )

    def __init__(
        self, rng: random.Random, timing: StealingTiming, outbox: Outbox, stats: dict[str, int]
    ) -> None:
        self._rng = rng
        self._timing = timing
        self._outbox = outbox
        self._stats = stats
        self._seq = 0
        self.peers: dict[NodeId, Peer] = {}
        self.steal: InFlight | None = None
        self.round_trips: deque[float] = deque(maxlen=ROUND_TRIP_SAMPLES)
        self.steal_time = 0.0  # moving average of a steal's round trip (0: unknown)

    def update(self, node_id: NodeId, tags: Mapping[str, str], alive: bool) -> bool:
        """A member's state or tags changed; returns whether it was alive before."""
        peer = self.peers.get(node_id)
        if peer is None:
            peer = self.peers[node_id] = Peer(tags, alive)
        peer.tags = tags
        was_alive, peer.alive = peer.alive, alive
        if alive and not was_alive:
            peer.queued = peer.surplus = 0  # unknown until it advertises again
        return was_alive

    def forget_steal_to(self, node_id: NodeId) -> None:
        """``node_id`` is gone: a steal waiting for its answer is over."""
        if self.steal is not None and self.steal.victim == node_id:
            self.steal = None

    @staticmethod
    def heard_load(peer: Peer, body: Load) -> None:
        """``peer`` advertised its queue; new work there ends its back-off."""
        peer.queued = body.queued
        peer.surplus = body.foreign or 0
        if peer.queued > 0:
            peer.backoff_until = 0.0

    @staticmethod
    def may_rob(peer: Peer, own_queued: int) -> bool:
        """Whether ``peer`` has work worth a steal (its back-off aside)."""
        return peer.alive and (peer.surplus > 0 or peer.queued >= own_queued + 2)

    def retry_at(self, own_queued: int) -> float | None:
        """When the first robbable peer that is backing off may be asked again."""
        waiting = [
            p.backoff_until
            for p in self.peers.values()
            if self.may_rob(p, own_queued) and p.backoff_until > 0
        ]
        return min(waiting) if waiting else None

    def try_steal(self, now: float, queue: LocalQueue) -> None:
        """Ask one victim, chosen at random among those worth it, for what ``queue`` lacks."""
        own_queued = len(queue.tasks)
        may_rob = self.may_rob
        candidates = [
            (node_id, peer)
            for node_id, peer in self.peers.items()
            if may_rob(peer, own_queued) and peer.backoff_until <= now
        ]
        if not candidates:
            return
        # Weighted by advertised queue length and by closeness (measured round trip).
        weights = [
            max(peer.queued, peer.surplus, 1) / max(peer.rtt, 1e-4) for _, peer in candidates
        ]
        victim, _ = self._rng.choices(candidates, weights)[0]
        self._seq += 1
        self.steal = InFlight(victim, self._seq, now)
        self._stats["steal_requests"] += 1
        wanted = max(1, min(queue.steal_size(self.steal_time), self._timing.max_batch))
        self._outbox.send(victim, Steal(self._seq, wanted, own_queued), reliable=True)

    def answered(self, victim: NodeId, peer: Peer, body: Tasks, now: float) -> None:
        """``victim`` answered a steal: measure the round trip, note what it has left.

        An empty answer backs the victim off; tasks end its back-off.
        """
        steal = self.steal
        if steal is not None and steal.victim == victim and steal.request == body.request:
            self.steal = None
            # Exponentially weighted round-trip estimates, for choosing close victims
            # and for asking enough to cover the next round trip.
            rtt = max(now - steal.sent_at, 1e-5)
            self.round_trips.append(now - steal.sent_at)
            peer.rtt = 0.8 * peer.rtt + 0.2 * rtt
            self.steal_time = rtt if not self.steal_time else 0.8 * self.steal_time + 0.2 * rtt
        peer.queued = body.left
        peer.surplus = min(peer.surplus, peer.queued)
        if body.tasks:
            peer.backoff = 0.0
            peer.backoff_until = 0.0
        else:
            self._stats["steal_empty"] += 1
            self._back_off(peer, now)

    def check_timeout(self, now: float) -> None:
        """A steal unanswered for ``steal_timeout`` is given up; its victim backs off."""
        steal = self.steal
        if steal is not None and now >= steal.sent_at + self._timing.steal_timeout:
            self.steal = None
            self._stats["steal_timeouts"] += 1
            peer = self.peers.get(steal.victim)
            if peer is not None:
                self._back_off(peer, now)

    def _back_off(self, peer: Peer, now: float) -> None:
        base = self._timing.steal_backoff
        peer.backoff = min(peer.backoff * 2 if peer.backoff else base, 16 * base)
        peer.backoff_until = now + peer.backoff
