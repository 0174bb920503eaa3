"""The pump: the trio loop that drives the node's sans-I/O core (DESIGN.md §1).

Every input (a datagram, a frame, a timer, a call of the API) is fed to the core with
``trio.current_time()`` as ``now``; the core's output is flushed at once
(:meth:`Pump.flush`); one cancel scope sleeps until the core's next deadline
(:meth:`Pump.timer_loop`). Because ``now`` is trio's clock, ``trio.testing.MockClock``
controls every protocol timer.

This is the runtime's one contact with the core: every call into :class:`NodeCore`
(and its :class:`Membership`) is made here (``meshedge.runtime._build`` only constructs
the core), and the rest of the runtime goes through the pump's methods. Its outputs go
to the sockets, to the :class:`Subscriptions` and to the :class:`TaskRunner`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

import trio

from .._errors import DropReason, PeerUnavailableError
from .._identity import NodeId
from ..core._events import BroadcastReceived, LeaveCompleted, MemberEvent, MessageReceived
from ..core._member import Address, Member, MemberState
from ..core._node import NodeCore, NodeEvent
from ..core._outputs import CancelTask, Datagram, Frame, Output, StartTask
from ..core._statistics import SubscriptionCounters, TransportCounters, merge
from ..core._stealing import Task, TaskFinished, TaskOutcome
from ._addresses import format_address
from ._config import NodeConfig
from ._log import DropLog, Unreachable, logger
from ._subscriptions import Subscriptions
from ._task_runner import TaskRunner
from ._tasks import TaskRegistry
from ._transport import (
    FRAME_HEADER_SIZE,
    FrameTimeout,
    FrameTooLarge,
    Links,
    Place,
    UdpEndpoint,
    frame,
    read_frames,
)

__all__ = ["CONNECT_TIMEOUT", "MAX_BACKGROUND_FRAMES", "Pump"]

#: Seconds allowed to open a TCP connection to a peer.
CONNECT_TIMEOUT: Final = 5.0
#: Frames the pump may have in flight to peers at once (anti-entropy); more are dropped
#: and counted, as the protocol retries anti-entropy anyway.
MAX_BACKGROUND_FRAMES: Final = 64
#: A frame the caller writes itself: its bytes, its address, its reserved place.
Waiting = tuple[bytes, Address, Place]


class Pump:
    """Feeds the core every input and flushes its output; made by ``open_node``.

    Args:
        config: the node's configuration.
        core: the node's core.
        udp: the bound UDP socket.
        nursery: the node's nursery: the loops, the background frames and the tasks
            run in it.
        registry: the functions this node runs, or None.
    """

    def __init__(
        self,
        config: NodeConfig,
        core: NodeCore,
        udp: UdpEndpoint,
        nursery: trio.Nursery,
        registry: TaskRegistry | None,
    ) -> None:
        self._config = config
        self.core = core
        self._membership = core.membership
        self.udp = udp
        self._nursery = nursery
        self.links = Links(
            max_connections=config.max_connections,
            connect_timeout=CONNECT_TIMEOUT,
            nursery=nursery,
        )
        self.subscriptions = Subscriptions(config.subscriber_buffer)
        self.tasks = TaskRunner(self, core.id, registry, config.task_slots, nursery)
        self._timer_scope: trio.CancelScope | None = None
        # Direct messages of the frame being read, delivered (with back-pressure) by on_frame.
        self._direct: deque[MessageReceived] = deque()
        self._inbound = 0
        self._background_frames = 0
        self._seeds: list[Address] = []
        # Set by the core's LeaveCompleted: the LEFT statement has been told.
        self._left = trio.Event()
        self._unreachable = Unreachable()
        self._drop_log = DropLog()
        # What this node handed to its sockets, of every core (TransportCounters says
        # what each means); what it received is counted by the core.
        self._stats: dict[str, int] = {
            "packets_sent": 0,
            "bytes_sent": 0,
            "frames_sent": 0,
            "frame_bytes_sent": 0,
            "messages_sent": 0,
            "connections_refused": 0,
            "frames_timed_out": 0,
            "frames_dropped_busy": 0,
            "frames_unsent": 0,
        }

    # ------------------------------------------------------------------ queries

    @property
    def address(self) -> Address:
        """The address other nodes use for this node."""
        return self._membership.address

    def members(self) -> list[Member]:
        """Every member the core knows, this node included."""
        return self._membership.members()

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        return self._membership.member(node_id)

    def statistics(self) -> dict[str, Any]:
        """The core's counters, and the runtime's: transport and subscriptions.

        The keys of :data:`~meshedge.core._statistics.NODE_KEYS`, each from one section.

        Raises:
            TypeError: two sections produce one key (a bug, caught by the tests).
        """
        stats = self._stats
        transport = TransportCounters(
            packets_sent=stats["packets_sent"],
            bytes_sent=stats["bytes_sent"],
            frames_sent=stats["frames_sent"],
            frame_bytes_sent=stats["frame_bytes_sent"],
            messages_sent=stats["messages_sent"],
            udp_send_errors=dict(self.udp.send_errors),
            connections_out=len(self.links),
            connections_in=self._inbound,
            connection_failures=self.links.failures,
            connections_refused=stats["connections_refused"],
            frames_timed_out=stats["frames_timed_out"],
            frames_dropped_busy=stats["frames_dropped_busy"],
            frames_unsent=stats["frames_unsent"],
        )
        subscriptions = SubscriptionCounters(**self.subscriptions.statistics())
        return merge(self.core.statistics(), transport, subscriptions)

    def can_accept(self) -> bool:
        """True unless the core's task queue is full."""
        stealing = self.core.stealing
        return stealing is None or stealing.can_accept()

    # ------------------------------------------------------------------ commands

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Change this node's tags, and flush."""
        self.core.set_tags(tags, trio.current_time())
        self.flush()

    def broadcast(self, topic: str, payload: Any) -> None:
        """Gossip an application broadcast, and flush."""
        self.core.broadcast(topic, payload, trio.current_time())
        self.flush()

    def join(self, seeds: Iterable[Address]) -> None:
        """Contact these seeds (the core retries while alone), and flush."""
        self._seeds = list(seeds)
        self.core.join(self._seeds, trio.current_time())
        self.flush()

    def contact(self, address: Address) -> None:
        """Add ``address`` to the seeds and contact them, and flush."""
        if address not in self._seeds:
            self._seeds.append(address)
        self.core.join(self._seeds, trio.current_time())
        self.flush()

    def submit(self, task: Task) -> None:
        """Queue an own task in the core (the caller flushes)."""
        self.core.submit(task, trio.current_time())

    def cancel_task(self, task_id: bytes) -> None:
        """Drop an own task wherever it is (the caller flushes)."""
        self.core.cancel(task_id, trio.current_time())

    def new_task(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        requires: Mapping[str, str],
    ) -> Task:
        """A task originated here, with an id the core draws."""
        return self.core.new_task(name, args, kwargs, requires)

    def task_done(self, task_id: bytes, outcome: TaskOutcome) -> None:
        """A task started here finished (the caller flushes)."""
        self.core.task_done(task_id, outcome, trio.current_time())

    def task_orders(self) -> tuple[list[bytes], list[Task]]:
        """The running tasks the core cancels, and the tasks it starts (nothing is sent)."""
        cancel: list[bytes] = []
        start: list[Task] = []
        for order in self.core.task_orders():
            if isinstance(order, StartTask):
                start.append(order.task)
            elif isinstance(order, CancelTask):
                cancel.append(order.task_id)
        return cancel, start

    async def send_message(self, peer: NodeId, topic: str, payload: Any) -> None:
        """Sign a direct message and write it to member ``peer``; see ``Node.send``.

        A checkpoint. Cancellation while it waits may leave the message unsent, never
        half-sent to the peer's application.

        Raises:
            UnknownPeerError: ``peer`` is not a member.
            PeerUnavailableError: it is dead or left, or cannot be reached.
            LocalProtocolError: unusable topic or payload.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self.core.send_message(peer, topic, payload, trio.current_time())
        waiting = self._obey(self.core.transmit(), keep_frames=True)
        if not waiting:
            # Written: yield once like any send, but a cancellation now cannot unsend it.
            await trio.lowlevel.cancel_shielded_checkpoint()
        try:
            for framed, address, place in waiting:
                await self.links.send(address, framed, place)
                self._count_frame(framed)
        finally:  # a failed or cancelled send gives up the places of the frames after it
            for _, _, place in waiting:
                self.links.release(place)
        self._stats["messages_sent"] += 1

    async def stop(self) -> None:
        """Leave gracefully, close the links, end the streams and the slot threads.

        Shielded from cancellation: leaving takes at most ``leave_timeout``.
        """
        with trio.CancelScope(shield=True):
            await self._leave()
            await self.links.aclose()
        self.subscriptions.close()
        self.tasks.close()
        logger.info("node %s stopped", self.core.id)

    async def _leave(self) -> None:
        """Leave gracefully: spread the LEFT statement for up to ``leave_timeout``."""
        self.core.leave(trio.current_time())
        self.flush()
        with trio.move_on_after(self._config.leave_timeout):
            # The timer loop keeps gossiping meanwhile; wait until the news is out.
            await self._left.wait()

    # ------------------------------------------------------------------ output

    def flush(self) -> None:
        """Obey the core's output, hand out its events, re-arm the timer."""
        core = self.core
        self._obey(core.transmit())
        while (event := core.next_event()) is not None:
            self._dispatch(event)
        scope = self._timer_scope
        if scope is not None:
            deadline = core.get_timer()
            if deadline != scope.deadline:  # re-registering a deadline costs
                scope.deadline = deadline
        if self.can_accept():
            self.tasks.room()

    def _obey(self, outputs: list[Output], *, keep_frames: bool = False) -> list[Waiting]:
        """Send the datagrams, write the frames, start and cancel the tasks of ``outputs``.

        A frame that cannot be written at once goes on in a background task (or is
        dropped and counted when too many are in flight) — unless ``keep_frames``:
        then it is returned, with its place reserved, for the caller to write with
        back-pressure. Either way its place in its link's queue is taken here, so
        frames to one address go out in the order the core produced them.
        """
        stats = self._stats
        cancel: list[bytes] = []
        start: list[Task] = []
        waiting: list[Waiting] = []
        for item in outputs:
            if isinstance(item, Datagram):
                if self.udp.sendto(item.data, item.address):
                    stats["packets_sent"] += 1
                    stats["bytes_sent"] += len(item.data)
            elif isinstance(item, Frame):
                framed = frame(item.data)
                if self.links.try_send(item.address, framed):
                    self._count_frame(framed)
                elif keep_frames:
                    waiting.append((framed, item.address, self.links.reserve(item.address)))
                else:
                    self._write_later(framed, item.address)
            elif isinstance(item, StartTask):
                start.append(item.task)
            else:
                cancel.append(item.task_id)
        if cancel or start:
            self.tasks.launch(cancel, start)
        return waiting

    def _write_later(self, framed: bytes, address: Address) -> None:
        """Write a frame of the core's in a background task, or drop it when too busy."""
        if self._background_frames >= MAX_BACKGROUND_FRAMES:
            self._stats["frames_dropped_busy"] += 1
            return
        self._background_frames += 1
        # Reserved now, not when the task first runs: a later frame cannot overtake it.
        place = self.links.reserve(address)
        self._nursery.start_soon(self._send_frame, framed, address, place)

    def _dispatch(self, event: NodeEvent) -> None:
        """Hand one event of the core to where it belongs."""
        if isinstance(event, TaskFinished):
            self.tasks.finished(event)
        elif isinstance(event, MessageReceived):
            # Only a stream frame carries one: on_frame delivers it, with back-pressure.
            self._direct.append(event)
        elif isinstance(event, BroadcastReceived):
            self.subscriptions.publish_broadcast(event.sender, event.topic, event.payload)
        elif isinstance(event, MemberEvent):
            self.subscriptions.publish_event(event)
        elif isinstance(event, LeaveCompleted):
            self._left.set()

    def _count_frame(self, framed: bytes) -> None:
        """Count a frame written (its bytes without the length prefix, as on receipt)."""
        self._stats["frames_sent"] += 1
        self._stats["frame_bytes_sent"] += len(framed) - FRAME_HEADER_SIZE

    async def _send_frame(self, data: bytes, address: Address, place: Place) -> None:
        try:
            await self.links.send(address, data, place)
            self._count_frame(data)
        except PeerUnavailableError as exc:
            self._stats["frames_unsent"] += 1
            self._unreachable.failed(
                address, exc, seed=address in self._seeds, state=lambda: self._state_at(address)
            )
        finally:
            self._background_frames -= 1

    def _state_at(self, address: Address) -> MemberState | None:
        """The state of the (other) member this node knows at ``address``, or None."""
        for member in self._membership.members():
            if member.address == address and member.id != self.core.id:
                return member.state
        return None

    # ------------------------------------------------------------------ input loops

    async def start(self, listeners: list[trio.SocketListener]) -> None:
        """Start the timer, UDP, TCP and housekeeping loops in the node's nursery.

        A checkpoint; returns once they run.
        """
        nursery = self._nursery
        await nursery.start(self.timer_loop)
        await nursery.start(self.udp_loop)
        await nursery.start(trio.serve_listeners, self.serve_connection, listeners)
        nursery.start_soon(self.housekeeping)
        address = format_address(self.address)
        logger.info("node %s started on %s, mesh %r", self.core.id, address, self._config.mesh)

    async def timer_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sleep until the core's next deadline, run what is due, flush; until cancelled."""
        task_status.started()
        while True:
            with trio.CancelScope(deadline=self.core.get_timer()) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = trio.current_time()
            if now >= self.core.get_timer():
                self.core.handle_timer(now)
            self.flush()

    async def udp_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Feed every datagram received to the core, and flush; until cancelled."""
        task_status.started()
        while True:
            data, source = await self.udp.receive()
            self.core.receive_datagram(data, source, trio.current_time())
            self.flush()

    async def housekeeping(self) -> None:
        """Close idle stream connections now and then; until cancelled."""
        while True:
            await trio.sleep(max(1.0, self._config.connection_idle_timeout / 4))
            await self.links.close_idle(self._config.connection_idle_timeout)
            self._drop_log.report(self.statistics)

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        """Read the frames of one inbound connection until it ends, then close it.

        Connections beyond ``max_inbound_connections`` are closed at once. Cancellation
        closes the connection.
        """
        if self._inbound >= self._config.max_inbound_connections:
            self._stats["connections_refused"] += 1
            await stream.aclose()
            return
        self._inbound += 1
        try:
            peer = stream.socket.getpeername()
            source: Address = (str(peer[0]), int(peer[1]))
        except OSError:
            source = ("unknown", 0)
        try:
            async with stream:
                await read_frames(
                    stream,
                    max_frame_size=self._config.limits.max_frame_size,
                    idle_timeout=self._config.connection_idle_timeout,
                    frame_timeout=self._config.frame_read_timeout,
                    on_frame=lambda data: self.on_frame(data, source),
                )
        except FrameTooLarge:
            self.core.count_drop(DropReason.OVERSIZED)
        except FrameTimeout:
            self._stats["frames_timed_out"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._inbound -= 1

    async def on_frame(self, data: bytes, source: Address) -> None:
        """Feed one stream frame to the core; deliver its direct message, if any.

        A checkpoint only while a subscriber is slow: direct messages wait for room.
        """
        # The core verifies it (signature, mesh, trust, replay window) and hands direct
        # application messages back out; those wait for slow subscribers (back-pressure).
        self.core.receive_frame(data, source, trio.current_time())
        self.flush()
        # Take this frame's message now: another connection's frame may run while this
        # one waits for a slow subscriber.
        direct, self._direct = self._direct, deque()
        while direct:
            message = direct.popleft()
            await self.subscriptions.deliver_direct(message.sender, message.topic, message.payload)
