"""The event loop of a simulation: events in time order, into cores, outputs out again.

:class:`EventLoop` pops the events of the virtual network's queue in order, hands each
to its node's core (a datagram, a frame, a timer, the end of a pause or of a task run),
and then drains that core: :meth:`EventLoop.drain` is the one place that reads a core's
outputs. Events for a crashed life are void; a paused node buffers what arrives.

What runs per event is here and in :meth:`VirtualNetwork.transmit
<meshedge.sim._network.VirtualNetwork.transmit>`, written for speed: locals rather than
attribute lookups, and no call per event beyond the core's own methods, one drain, and
one transmission per packet sent.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from ..core._events import BroadcastReceived
from ..core._node import NodeEvent
from ..core._outputs import Datagram, Frame, StartTask
from ..core._stealing import TaskFinished, TaskOutcome
from ._network import DATAGRAM, FRAME, RESUME, TASK_DONE, TIMER, VirtualNetwork, address
from ._node import PAUSED_BUFFER, SimNode
from ._records import Delivery, Execution, TaskResult

__all__ = ["EventLoop"]


class EventLoop:
    """Runs simulated nodes on the event queue of their virtual network.

    :class:`~meshedge.sim.Simulation` owns one and drives it; the loop records what the
    simulation's caller reads (deliveries, task runs, results) and calls its listeners.

    Args:
        nodes: the simulated nodes, by index.
        network: their network, which holds the event queue.
    """

    def __init__(self, nodes: list[SimNode], network: VirtualNetwork) -> None:
        #: The virtual time.
        self.now = 0.0
        self._nodes = nodes
        self._network = network
        # Bound once: the loop pushes and transmits through these.
        self._push = network.push
        self._transmit = network.transmit
        #: Called as ``listener(node_index, event, time)`` for every event of any node.
        self.listeners: list[Callable[[int, NodeEvent, float], None]] = []
        #: Every application broadcast delivered, in order of delivery.
        self.deliveries: list[Delivery] = []
        #: Every task run, in order of start (tasks can run more than once).
        self.executions: list[Execution] = []
        #: Every result delivered to a submitting node's caller, in order.
        self.results: list[TaskResult] = []

    def run(self, end: float, predicate: Callable[[], bool] | None, check_every: float) -> bool:
        """Process every event due by ``end``; True as soon as ``predicate`` holds."""
        queue = self._network.queue
        drops = self._network.drops
        nodes = self._nodes
        next_check = self.now + check_every
        while queue and queue[0][0] <= end:
            when = queue[0][0]
            if predicate is not None and when > next_check:
                self.now = next_check
                if predicate():
                    return True
                next_check += check_every
                continue
            _, _, kind, index, life, data, addr = heapq.heappop(queue)
            self.now = when
            node = nodes[index]
            core = node.core
            if life != node.life or not node.up or core is None:
                if kind in (DATAGRAM, FRAME):
                    drops["down"] += 1
                continue
            if kind == TASK_DONE and node.paused_until <= when:
                if data in core.stealing.running_ids():  # type: ignore[union-attr]
                    core.task_done(data, TaskOutcome.returned(None), when)
                self.drain(node)
                continue
            if kind == TIMER:
                if when != node.timer:
                    continue  # superseded
                if node.paused_until > when:
                    continue  # the resume event runs the timer
                node.timer = float("inf")
                core.handle_timer(when)
            elif kind == RESUME:
                if node.paused_until > when:
                    continue
                node.resume(when)
            elif node.paused_until > when:
                if kind == TASK_DONE:  # a frozen process finishes nothing
                    node.inbox.append((kind, data, ("", 0)))
                elif len(node.inbox) >= PAUSED_BUFFER and kind == DATAGRAM:
                    drops["buffer"] += 1
                else:
                    node.inbox.append((kind, data, addr))  # type: ignore[arg-type]
                continue
            else:
                assert addr is not None  # datagrams and frames carry their source
                if kind == DATAGRAM:
                    core.receive_datagram(data, addr, when)
                else:
                    core.receive_frame(data, addr, when)
            self.drain(node)
        return self._check_until(end, predicate, next_check, check_every)

    def _check_until(
        self,
        end: float,
        predicate: Callable[[], bool] | None,
        next_check: float,
        check_every: float,
    ) -> bool:
        """With nothing left due by ``end``, check ``predicate`` on its schedule up to it."""
        if predicate is not None:
            while next_check <= end:
                self.now = next_check
                if predicate():
                    return True
                next_check += check_every
        self.now = end
        return predicate is None

    def drain(self, node: SimNode) -> None:
        """Take everything a node's core has to output, and act on it.

        The one place that reads a core's outputs: it sends the datagrams and frames,
        starts the tasks (each finishes after its ``seconds`` argument), records and
        announces the events, and schedules the core's next deadline.
        """
        core = node.core
        if core is None or not node.up:
            return
        now = self.now
        source = address(node.index)
        transmit = self._transmit
        for item in core.transmit():
            if isinstance(item, Datagram):
                node.packets_sent += 1
                node.bytes_sent += len(item.data)
                transmit(node, DATAGRAM, item.data, item.address, source, now)
            elif isinstance(item, Frame):
                node.frames_sent += 1
                node.bytes_sent += len(item.data)
                transmit(node, FRAME, item.data, item.address, source, now)
            elif isinstance(item, StartTask):
                task = item.task
                self.executions.append(Execution(task.id, node.index, now, task.requires))
                self._push(now + float(task.args[0]), TASK_DONE, node, task.id, None)
            # A cancelled task's completion event finds it gone and does nothing.
        while (event := core.next_event()) is not None:
            if isinstance(event, BroadcastReceived):
                self.deliveries.append(
                    Delivery(node.index, event.sender, event.topic, event.payload, now)
                )
            elif isinstance(event, TaskFinished):
                self.results.append(TaskResult(event.task_id, node.index, event.ran_on, now))
            for listener in self.listeners:
                listener(node.index, event, now)
        deadline = max(core.get_timer(), now)
        if deadline != node.timer:
            node.timer = deadline
            self._push(deadline, TIMER, node, None, None)
