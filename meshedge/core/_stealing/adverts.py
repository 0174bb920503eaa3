"""LOAD adverts: telling live peers how many tasks could be stolen here.

Changes go out at most every ``load_interval``, and an unchanged non-zero count is
repeated every ``load_refresh`` so that one lost datagram cannot leave a thief idle.
New work after some live peer was last told that nothing here can be stolen (by a LOAD
of 0, or by a steal answer that emptied the queue) is advertised at once: an idle peer
that believes there is none would never ask.
"""

from __future__ import annotations

import math

from ..._identity import NodeId
from ...wire.bodies import Load
from .messages import Outbox
from .queue import LocalQueue
from .timing import StealingTiming
from .victims import Peer

__all__ = ["Advertiser"]


class Advertiser:
    """Sends this node's LOAD adverts, rate-limited.

    Args:
        queue: this node's queue (what is advertised).
        peers: the known peers (who is told).
        outbox: where LOAD datagrams go.
        timing: periods and bounds.
    """

    __slots__ = (
        "_advertised",
        "_last_sent",
        "_outbox",
        "_peers",
        "_queue",
        "_timing",
        "deadline",
        "told_empty",
    )

    def __init__(
        self,
        queue: LocalQueue,
        peers: dict[NodeId, Peer],
        outbox: Outbox,
        timing: StealingTiming,
    ) -> None:
        self._queue = queue
        self._peers = peers
        self._outbox = outbox
        self._timing = timing
        self._last_sent = -math.inf
        self._advertised = 0
        #: Some live peer was last told that nothing here can be stolen.
        self.told_empty = True
        #: When :meth:`maybe_advertise` must run again (``inf``: not before a change).
        self.deadline = math.inf

    def tell(self, node_id: NodeId) -> None:
        """Advertise the current load to one peer (it just joined or came back)."""
        queue = self._queue
        stealable = len(queue.tasks)
        self._outbox.send(node_id, Load(stealable, queue.surplus()), reliable=False)
        if stealable == 0:
            self.told_empty = True

    def maybe_advertise(self, now: float) -> None:
        """Advertise the load to every live peer, if it changed or is due again."""
        stealable = len(self._queue.tasks)
        timing = self._timing
        urgent = stealable > 0 and self.told_empty
        refresh_at = self._last_sent + timing.load_refresh
        if stealable == self._advertised and not urgent and (stealable == 0 or now < refresh_at):
            self.deadline = refresh_at if stealable else math.inf
            return
        # Same expression as the deadline set below, so a timer at it always passes.
        if now < self._last_sent + timing.load_interval and not urgent:
            self.deadline = self._last_sent + timing.load_interval
            return
        self.deadline = now + timing.load_refresh if stealable else math.inf
        self._last_sent = now
        self._advertised = stealable
        self.told_empty = stealable == 0
        body = Load(stealable, self._queue.surplus())
        send = self._outbox.send
        for node_id, peer in self._peers.items():
            if peer.alive:
                send(node_id, body, reliable=False)
