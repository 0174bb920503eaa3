"""``open_node``: a running mesh node — the trio shell around the protocol cores.

The node is a pump (DESIGN.md §1): every input (a datagram, a frame, a timer, a call of
the API) is fed to the core with ``trio.current_time()`` as ``now``; the core's output
is flushed at once; one cancel scope sleeps until the core's next deadline. Because
``now`` is trio's clock, ``trio.testing.MockClock`` controls every protocol timer.
"""

from __future__ import annotations

import errno
import math
import os
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final

import trio

from ..core.events import BroadcastReceived, ForeignMessage, MembershipEvent
from ..core.member import Address, Member, MemberState
from ..core.membership import Membership
from ..core.node import NodeCore
from ..core.stealing import StealingTiming, Task, TaskFinished, WorkStealing
from ..errors import (
    DropReason,
    LocalProtocolError,
    PeerUnavailableError,
    UnknownPeerError,
)
from ..identity import Identity, NodeId
from ..wire.datagram import seal_frame
from ..wire.message import sign_message
from ..wire.message_types import MessageType
from .config import NodeConfig, parse_address
from .tasks import SlotThreads, TaskError, TaskRegistry, check_arguments, execute
from .transport import (
    FRAME_HEADER_SIZE,
    FrameTimeout,
    FrameTooLarge,
    Links,
    UdpEndpoint,
    frame,
    is_ip,
    read_frames,
    tcp_listener,
)

__all__ = ["Message", "Node", "open_node"]

#: Seconds allowed to open a TCP connection to a peer.
CONNECT_TIMEOUT: Final = 5.0
#: Ports tried when binding to port 0, until one is free for both UDP and TCP.
BIND_ATTEMPTS: Final = 32
#: Frames the pump may have in flight to peers at once (anti-entropy); more are dropped
#: and counted, as the protocol retries anti-entropy anyway.
MAX_BACKGROUND_FRAMES: Final = 64


class _Waiter:
    """Where the outcome of one own task lands."""

    __slots__ = ("task_id", "done", "event", "notify")

    def __init__(self, task_id: bytes) -> None:
        self.task_id = task_id
        self.done = trio.Event()
        self.event: TaskFinished | None = None
        self.notify: trio.MemorySendChannel[_Waiter] | None = None

    def finish(self, event: TaskFinished) -> None:
        self.event = event
        self.done.set()
        if self.notify is not None:
            self.notify.send_nowait(self)

    def result(self) -> Any:
        event = self.event
        assert event is not None
        if event.ok:
            return event.value
        type_name, message = [*list(event.value), "", ""][:2]
        raise TaskError(str(type_name), str(message), event.ran_on)


@dataclass(frozen=True, slots=True)
class Message:
    """A message received on a subscribed topic."""

    #: The node that signed it.
    sender: NodeId
    #: Its topic.
    topic: str
    #: Its payload (plain CBOR data).
    payload: Any
    #: True if it came by broadcast (gossip), False if sent directly to this node.
    broadcast: bool


class _Fanout:
    """Bounded per-subscriber channels; overflow is dropped and counted, never silent.

    With ``backlog``, items published while nobody listens are kept (up to
    ``capacity``) for the first subscriber, so nothing between start-up and the first
    ``async for`` is lost. After :meth:`close`, every subscription ends once it has
    read what it was given, and new ones end at once.
    """

    def __init__(self, capacity: int, *, backlog: bool = False) -> None:
        self.capacity = capacity
        self.channels: list[trio.MemorySendChannel[Any]] = []
        self.dropped = 0
        self.closed = False
        self._backlog: deque[Any] | None = deque() if backlog else None

    def close(self) -> None:
        self.closed = True
        for channel in self.channels:
            channel.close()
        self.channels.clear()

    def publish(self, item: Any) -> None:
        if self.closed:
            return
        if not self.channels and self._backlog is not None:
            if len(self._backlog) >= self.capacity:
                self._backlog.popleft()
                self.dropped += 1
            self._backlog.append(item)
            return
        for channel in self.channels:
            try:
                channel.send_nowait(item)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def publish_waiting(self, item: Any) -> None:
        """Deliver to every subscriber, waiting for slow ones (backpressure)."""
        for channel in list(self.channels):
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                try:
                    channel.send_nowait(item)  # room: no need to give up the CPU
                except trio.WouldBlock:
                    await channel.send(item)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        send, receive = trio.open_memory_channel[Any](self.capacity)
        if self._backlog:
            while self._backlog:
                send.send_nowait(self._backlog.popleft())
        if self.closed:
            send.close()
        else:
            self.channels.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self.channels:
                self.channels.remove(send)
            send.close()


#: ``Node.map`` submits for at most this long, and at most this many tasks, before
#: letting the rest of the node run.
SUBMIT_SLICE: Final = 0.0005
SUBMIT_BATCH: Final = 64


class Node:
    """A running node; get one from :func:`open_node`.

    Its methods are safe to call from any task of the trio run that opened it.
    """

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        core: NodeCore,
        udp: UdpEndpoint,
        nursery: trio.Nursery,
        tasks: TaskRegistry | None = None,
    ) -> None:
        self._config = config
        self._identity = identity
        self._core = core
        self._membership = core.membership
        self._registry = tasks
        self._task_scopes: dict[bytes, trio.CancelScope] = {}
        self._waiters: dict[bytes, _Waiter] = {}
        self._queue_space = trio.Event()
        self._threads = SlotThreads(config.task_slots)
        self._direct: deque[ForeignMessage] = deque()
        self._flush_scheduled = False  # a _deferred_flush is spawned and has not run
        # True only while a stream frame is fed to the core: direct messages come by stream.
        self._reading_frame = False
        self._unexpected = 0  # valid direct messages that came by datagram
        self._udp = udp
        self._nursery = nursery
        self._links = Links(
            max_connections=config.max_connections,
            connect_timeout=CONNECT_TIMEOUT,
            nursery=nursery,
        )
        self._timer_scope: trio.CancelScope | None = None
        self._events = _Fanout(config.subscriber_buffer, backlog=True)
        self._topics: dict[str, _Fanout] = {}
        self._inbound = 0
        self._background_frames = 0
        self._seeds: list[Address] = []
        self._left: trio.Event | None = None  # set once the LEFT statement is out
        self._stopped = False  # the node has left: streams end, new ones end at once
        self._stats: dict[str, int] = {
            # What this node handed to its sockets, of every kind (the core's own
            # counters see only the membership protocol's part).
            "packets_sent": 0,
            "bytes_sent": 0,
            "frames_sent": 0,
            "frame_bytes_sent": 0,
            "frames_received": 0,
            "frame_bytes_received": 0,
            "messages_sent": 0,
            "messages_received": 0,
            "connections_refused": 0,
            # Inbound connections cut because a frame was not finished in time.
            "frames_timed_out": 0,
            "frames_dropped_busy": 0,
            "frames_unsent": 0,
            "no_subscriber": 0,
        }
        self._drops: dict[str, int] = {reason.value: 0 for reason in DropReason}

    # ------------------------------------------------------------------ queries

    @property
    def id(self) -> NodeId:
        """This node's id (its public key)."""
        return self._identity.node_id

    @property
    def address(self) -> Address:
        """The address other nodes use for this node: ``(host, port)``."""
        return self._membership.address

    @property
    def config(self) -> NodeConfig:
        """The configuration it runs with."""
        return self._config

    def members(self) -> list[Member]:
        """Every member this node knows, itself included, dead and left ones too."""
        return self._membership.members()

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        return self._membership.member(node_id)

    def statistics(self) -> dict[str, Any]:
        """Packets and bytes in and out, drops by reason, connections, queue depths."""
        core = self._membership.statistics()
        drops = dict(core.pop("drops"))
        for reason, count in self._drops.items():
            drops[reason] = drops.get(reason, 0) + count
        stats: dict[str, Any] = {**core, **self._stats}
        stats["unexpected"] = core["unexpected"] + self._unexpected
        stats["drops"] = drops
        stats["udp_send_errors"] = dict(self._udp.send_errors)
        stats["connections_out"] = len(self._links)
        stats["connections_in"] = self._inbound
        stats["connection_failures"] = self._links.failures
        if self._core.stealing is not None:
            stats["tasks"] = self._core.stealing.statistics()
        stats["events_dropped_slow_consumer"] = self._events.dropped
        stats["messages_dropped_slow_consumer"] = sum(f.dropped for f in self._topics.values())
        return stats

    # ------------------------------------------------------------------ API

    async def events(self) -> AsyncIterator[MembershipEvent]:
        """Membership events: joined, updated, suspected, failed, left, recovered.

        The first consumer also gets the events since the node started (up to
        ``config.subscriber_buffer`` of them); later ones get events from when they
        start. The iteration ends when the node stops (``open_node`` exits).
        An async generator; each iteration is a checkpoint. A consumer that falls more
        than ``config.subscriber_buffer`` events behind loses the overflow (counted in
        ``statistics()["events_dropped_slow_consumer"]``).
        """
        async with self._events.subscribe() as receive:
            async for event in receive:
                yield event

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
        """Receive the messages of ``topic``, sent directly or broadcast.

        Yields a channel to iterate with ``async for``; the iteration ends when the node
        stops. Direct messages wait for a slow subscriber (backpressure reaches the
        sender); broadcasts beyond the buffer are dropped and counted.
        """
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        fanout = self._topics.get(topic)
        if fanout is None:
            fanout = self._topics[topic] = _Fanout(self._config.subscriber_buffer)
            if self._stopped:
                fanout.close()
        try:
            async with fanout.subscribe() as receive:
                yield receive
        finally:
            if not fanout.channels:
                self._topics.pop(topic, None)

    async def set_tags(self, tags: Mapping[str, str]) -> None:
        """Change this node's tags; every member sees them soon (a checkpoint).

        If it raises ``trio.Cancelled``, the tags were not changed.

        Raises:
            LocalProtocolError: not a text map, or too large.
        """
        # trio's rule: a call that raises Cancelled did nothing. So check for a pending
        # cancel first, act, and only then yield without letting a cancel in.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._core.set_tags(tags, trio.current_time())
        self._flush()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def broadcast(self, topic: str, payload: Any) -> None:
        """Gossip ``payload`` on ``topic`` to every member; delivered once each.

        A checkpoint; if it raises ``trio.Cancelled``, nothing was broadcast.

        Raises:
            LocalProtocolError: unusable topic or payload, or too large for a datagram.
        """
        await trio.lowlevel.checkpoint_if_cancelled()  # see set_tags
        self._core.broadcast(topic, payload, trio.current_time())
        self._flush()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send(self, peer: NodeId, topic: str, payload: Any) -> None:
        """Send ``payload`` to one member over the stream transport, in order.

        Waits while the peer is slow (TCP backpressure). Cancellation while waiting
        may leave the message unsent, never half-sent to the application.

        Delivery is TCP's: messages to one peer arrive in the order sent, and a link
        the peer has closed is reopened before writing. There is no acknowledgement
        from the peer's application, so a message written just before the peer
        crashes, or closes the link (between the check and the write), is lost
        without an error. A send cancelled part-way through a frame closes the link;
        a message sent after it may then overtake earlier ones still unread on the
        old link.

        Raises:
            UnknownPeerError: ``peer`` is not a member.
            PeerUnavailableError: it is dead or left, or cannot be reached.
            LocalProtocolError: unusable topic or payload.
        """
        member = self._membership.member(peer)
        if member is None:
            raise UnknownPeerError(f"no member {peer!r}")
        if member.state in (MemberState.DEAD, MemberState.LEFT):
            raise PeerUnavailableError(f"member {peer.short} is {member.state.name.lower()}")
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        unit = sign_message(
            self._identity,
            {1: topic, 2: payload},
            mesh=self._config.mesh,
            type=MessageType.MESSAGE,
            limits=self._config.limits,
        )
        data = frame(seal_frame(unit, keyring=self._config.keyring, limits=self._config.limits))
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._links.try_send(member.address, data):
            # Written: yield once like any send, but a cancellation now cannot unsend it.
            self._count_frame(data)
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            await self._links.send(member.address, data)
            self._count_frame(data)
        self._stats["messages_sent"] += 1

    # ------------------------------------------------------------------ the pump

    def _flush(self) -> None:
        """Send what the core produced, hand out its events, re-arm the timer."""
        core = self._core
        stats = self._stats
        for data, address in core.datagrams_to_send():
            if self._udp.sendto(data, address):
                stats["packets_sent"] += 1
                stats["bytes_sent"] += len(data)
        for data, address in core.frames_to_send():
            framed = frame(data)
            if self._links.try_send(address, framed):
                self._count_frame(framed)
                continue  # written at once: no task, no wait (the common case)
            if self._background_frames >= MAX_BACKGROUND_FRAMES:
                self._stats["frames_dropped_busy"] += 1
                continue
            self._background_frames += 1
            self._nursery.start_soon(self._send_frame, framed, address)
        while (event := core.next_event()) is not None:
            if isinstance(event, TaskFinished):
                waiter = self._waiters.get(event.task_id)
                if waiter is not None:
                    waiter.finish(event)
                continue
            if isinstance(event, ForeignMessage):
                if event.message.type == MessageType.MESSAGE:
                    if self._reading_frame:
                        self._direct.append(event)
                    else:
                        # A direct message by datagram: not a path of the protocol, and
                        # nothing would deliver (or bound) it until the next frame.
                        self._unexpected += 1
                continue
            if isinstance(event, BroadcastReceived):
                fanout = self._topics.get(event.topic)
                if fanout is None:
                    self._stats["no_subscriber"] += 1
                else:
                    fanout.publish(Message(event.sender, event.topic, event.payload, True))
            else:
                self._events.publish(event)
        scope = self._timer_scope
        if scope is not None:
            deadline = core.get_timer()
            if deadline != scope.deadline:  # re-registering a deadline costs
                scope.deadline = deadline
        if self._left is not None and (
            not self._membership.statistics()["queued_updates"]
            or self._membership.alive_count() == 0
        ):
            self._left.set()
        self._start_tasks()
        if self._core.stealing is not None and self._core.stealing.can_accept():
            self._queue_space.set()

    def _start_tasks(self, *, keep_one: bool = False) -> tuple[Task, trio.CancelScope] | None:
        """Cancel and start the tasks the core says.

        With ``keep_one``, one task to start is returned instead of spawned: the caller
        runs it at once, in its own trio task.
        """
        core = self._core
        for task_id in core.tasks_to_cancel():
            scope = self._task_scopes.pop(task_id, None)
            if scope is not None:
                scope.cancel()
        kept = None
        for task in core.tasks_to_start():
            scope = trio.CancelScope()
            self._task_scopes[task.id] = scope
            if keep_one and kept is None:
                kept = (task, scope)
            else:
                self._nursery.start_soon(self._run_task, task, scope)
        return kept

    def _count_frame(self, framed: bytes) -> None:
        """Count a frame written (its bytes without the length prefix, as on receipt)."""
        self._stats["frames_sent"] += 1
        self._stats["frame_bytes_sent"] += len(framed) - FRAME_HEADER_SIZE

    async def _send_frame(self, data: bytes, address: Address) -> None:
        try:
            await self._links.send(address, data)
            self._count_frame(data)
        except PeerUnavailableError:
            self._stats["frames_unsent"] += 1
        finally:
            self._background_frames -= 1

    async def _timer_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            with trio.CancelScope(deadline=self._core.get_timer()) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = trio.current_time()
            if now >= self._core.get_timer():
                self._core.handle_timer(now)
            self._flush()

    async def _udp_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            data, source = await self._udp.receive()
            self._core.receive_datagram(data, source, trio.current_time())
            self._flush()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
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
                    on_frame=lambda data: self._on_frame(data, source),
                )
        except FrameTooLarge:
            self._drops[DropReason.OVERSIZED.value] += 1
        except FrameTimeout:
            self._stats["frames_timed_out"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._inbound -= 1

    async def _on_frame(self, data: bytes, source: Address) -> None:
        self._stats["frames_received"] += 1
        self._stats["frame_bytes_received"] += len(data)
        # The core verifies it (signature, mesh, trust, replay window) and hands direct
        # application messages back out; those wait for slow subscribers (backpressure).
        self._reading_frame = True
        try:
            self._core.receive_frame(data, source, trio.current_time())
            self._flush()
        finally:
            self._reading_frame = False
        # Take this frame's message now: another connection's frame may run while this
        # one waits for a slow subscriber.
        direct, self._direct = self._direct, deque()
        while direct:
            message = direct.popleft().message
            topic, payload = message.payload[1], message.payload[2]
            self._stats["messages_received"] += 1
            fanout = self._topics.get(topic)
            if fanout is None:
                self._stats["no_subscriber"] += 1
                continue
            await fanout.publish_waiting(Message(message.sender, topic, payload, False))

    # ------------------------------------------------------------------ tasks

    async def _run_task(self, task: Task, scope: trio.CancelScope) -> None:
        """Run a task; then, while the core has another ready, run that one too.

        Chaining saves spawning a trio task per task, and the next task begins before
        this one's result is signed and sent: that flush runs as soon as the next task
        first yields. If it has not run by the end of the next task (tasks that never
        yield), the chain flushes itself and yields, so probes, frames and timers keep
        running however long the chain.
        """
        registry = self._registry
        assert registry is not None  # the core starts only registered names
        following: tuple[Task, trio.CancelScope] | None = (task, scope)
        while following is not None:
            task, scope = following
            outcome: tuple[bool, Any] | None = None
            with scope:
                outcome = await execute(
                    registry.get(task.name), task.args, task.kwargs, self._threads
                )
            self._task_scopes.pop(task.id, None)
            if outcome is None or scope.cancelled_caught:
                return
            self._core.task_done(task.id, outcome, trio.current_time())
            following = self._start_tasks(keep_one=True)
            if following is None or registry.get(following[0].name).kind != "async":
                # Nothing to start, or a task that starts by handing itself to a thread
                # or process: no reason to hold the result (or a steal) back.
                self._flush()
            elif self._flush_scheduled:
                self._flush()
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                self._flush_scheduled = True
                self._nursery.start_soon(self._deferred_flush)

    async def _deferred_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _enqueue(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        requires: Mapping[str, str] | None,
        *,
        flush: bool = True,
    ) -> _Waiter:
        """Queue one task here (the caller made sure there is room).

        With ``flush=False`` the caller flushes (once for a batch of submissions).
        """
        if self._registry is None:
            raise LocalProtocolError("open_node(..., tasks=registry) to submit tasks")
        registered = self._registry.get(name)
        check_arguments(args, kwargs)
        needs = {**registered.requires, **(requires or {})}
        task = Task(os.urandom(16), self.id, name, args, kwargs, needs)
        waiter = _Waiter(task.id)
        self._waiters[task.id] = waiter
        try:
            self._core.submit(task, trio.current_time())
        except BaseException:
            del self._waiters[task.id]
            raise
        if flush:
            self._flush()
        return waiter

    async def _wait_for_room(self) -> None:
        stealing = self._core.stealing
        while stealing is not None and not stealing.can_accept():
            self._queue_space = trio.Event()
            await self._queue_space.wait()

    def _abandon(self, waiter: _Waiter) -> None:
        self._waiters.pop(waiter.task_id, None)
        if not waiter.done.is_set():
            self._core.cancel(waiter.task_id, trio.current_time())
            self._flush()

    async def submit(
        self, name: str, /, *args: Any, requires: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """Run the task registered as ``name`` somewhere in the mesh; return its result.

        The task joins this node's queue; idle members steal from it. Waits while the
        queue is full. Cancelling the caller cancels the task wherever it runs.

        Raises:
            TaskError: the task raised (its type name and message are kept).
            UnknownTaskError: ``name`` is not registered on this node.
            LocalProtocolError: arguments that are not plain CBOR data, or a node
                opened without a task registry.
        """
        await self._wait_for_room()
        waiter = self._enqueue(name, list(args), dict(kwargs), requires)
        try:
            await waiter.done.wait()
        finally:
            self._abandon(waiter)  # synchronous: cancellation cannot interrupt it
        return waiter.result()

    async def map(
        self,
        name: str,
        arguments: Iterable[Any],
        *,
        ordered: bool = True,
        requires: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Submit ``name(argument)`` for each argument and yield the results.

        An async generator: results come in argument order (``ordered=True``) or as they
        complete. A tuple argument is spread as positional arguments. Closing or
        cancelling the iteration cancels the tasks not yet finished.

        Raises:
            TaskError: when the next result to yield is an error.
        """
        waiters: list[_Waiter] = []
        finished: trio.MemorySendChannel[_Waiter]
        finished, completions = trio.open_memory_channel[_Waiter](math.inf)
        stealing = self._core.stealing
        try:
            # Submit in slices (SUBMIT_SLICE seconds or SUBMIT_BATCH tasks): one flush and
            # one checkpoint per slice, so the queue fills in large steps (thieves then
            # take large batches: few messages), while between slices thieves are served
            # and probes answered.
            slice_end = trio.current_time() + SUBMIT_SLICE
            in_slice = 0
            for argument in arguments:
                if stealing is not None and not stealing.can_accept():
                    self._flush()
                    await self._wait_for_room()
                spread = list(argument) if isinstance(argument, tuple) else [argument]
                waiter = self._enqueue(name, spread, {}, requires, flush=False)
                waiter.notify = finished
                waiters.append(waiter)
                in_slice += 1
                if in_slice >= SUBMIT_BATCH or trio.current_time() >= slice_end:
                    self._flush()
                    await trio.lowlevel.checkpoint()
                    slice_end = trio.current_time() + SUBMIT_SLICE
                    in_slice = 0
            self._flush()
            await trio.lowlevel.checkpoint()
            if ordered:
                for waiter in waiters:
                    await waiter.done.wait()
                    yield waiter.result()
            else:
                for _ in waiters:
                    waiter = await completions.receive()
                    yield waiter.result()
        finally:
            for waiter in waiters:
                self._abandon(waiter)

    async def _housekeeping(self) -> None:
        while True:
            await trio.sleep(max(1.0, self._config.connection_idle_timeout / 4))
            await self._links.close_idle(self._config.connection_idle_timeout)

    def _end_streams(self) -> None:
        """End every events() and subscribe() iteration: the node has stopped."""
        self._stopped = True
        self._events.close()
        for fanout in self._topics.values():
            fanout.close()

    async def _leave(self) -> None:
        """Leave gracefully: spread the LEFT statement for up to ``leave_timeout``."""
        core = self._core
        core.leave(trio.current_time())
        self._flush()
        self._left = trio.Event()
        self._flush()
        with trio.move_on_after(self._config.leave_timeout):
            # The timer loop keeps gossiping meanwhile; wait until the news is out.
            await self._left.wait()

    # ------------------------------------------------------------------ discovery

    def _contact(self, address: Address) -> None:
        if address not in self._seeds:
            self._seeds.append(address)
        self._core.join(self._seeds, trio.current_time())
        self._flush()

    async def _run_mdns(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        from .discovery import PeerFound, open_mdns

        interfaces = list(self._config.mdns_interfaces) if self._config.mdns_interfaces else None
        host = self.address[0]
        addresses = [host] if is_ip(host) and host not in ("0.0.0.0", "::") else None
        async with open_mdns(
            self.id, self._config.mesh, self.address[1], interfaces=interfaces, addresses=addresses
        ) as discovery:
            task_status.started()
            async for event in discovery.events():
                if not isinstance(event, PeerFound):
                    continue
                member = self._membership.member(event.peer.node_id)
                if member is not None and member.state == MemberState.ALIVE:
                    continue
                for address in event.peer.addresses:
                    if is_ip(address[0]):
                        self._contact(address)
                        break


async def _resolve(host: str, port: int) -> Address:
    """An IP literal for ``host`` (name resolution runs in trio's resolver thread)."""
    if is_ip(host):
        return host, port
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
    except OSError as exc:  # socket.gaierror: an unknown name is a configuration error
        raise LocalProtocolError(f"cannot resolve {host!r}: {exc}") from None
    if not infos:
        raise LocalProtocolError(f"cannot resolve {host!r}")
    return str(infos[0][4][0]), port


async def _bind(host: str, port: int) -> tuple[UdpEndpoint, list[trio.SocketListener]]:
    """The UDP socket and the TCP listener, bound to the same port.

    With port 0 the kernel picks a free UDP port, which may be taken for TCP (by another
    listener, or as the local port of an outbound connection): then another is tried.

    Raises:
        OSError: the port is in use (or no common free port was found), or the address
            cannot be bound.
    """
    attempt = 0
    while True:
        attempt += 1
        udp = UdpEndpoint.bind(host, port)
        try:
            return udp, [await tcp_listener(host, udp.port)]
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt >= BIND_ATTEMPTS:
                raise
        except BaseException:
            udp.close()
            raise


def _guess_advertise_host() -> str:
    """The first non-loopback IPv4 address of this machine (read locally, nothing sent)."""
    import ifaddr

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                return ip.ip
    return "127.0.0.1"


@asynccontextmanager
async def open_node(
    config: NodeConfig, *, identity: Identity | None = None, tasks: TaskRegistry | None = None
) -> AsyncIterator[Node]:
    """Start a node; on exit it leaves the mesh gracefully (others see LEFT, not DEAD).

    ``async with open_node(config, identity=identity) as node:`` — the node runs in a
    nursery owned by this context manager. Entering is a checkpoint and returns once the
    sockets are bound (and mDNS started, if enabled). Cancelling the surrounding scope
    stops the node after a bounded, shielded attempt to leave gracefully. An exception
    raised in the block comes out of it as itself, not wrapped in an exception group.

    Args:
        config: what to bind, which mesh, how to find peers, limits.
        identity: the node's key pair; a new random one if omitted.
        tasks: the functions this node runs for the mesh (work stealing); without it,
            the node neither submits nor runs tasks.

    Raises:
        OSError: the port is in use, or the address cannot be bound.
        LocalProtocolError: the configuration cannot work (e.g. an unresolvable seed).
    """
    identity = identity or Identity.generate()
    bind_host, bind_port = parse_address(config.bind)
    bind_host, _ = await _resolve(bind_host, bind_port)
    udp, listeners = await _bind(bind_host, bind_port)
    unwrapped: BaseException | None = None
    # Everything that can fail after the bind (resolving the advertise address and the
    # seeds, the core refusing the tags) is inside this try, so that a failed start never
    # leaves the port bound.
    try:
        port = udp.port
        if config.advertise is not None:
            advertise = await _resolve(*parse_address(config.advertise))
        else:
            host = bind_host
            if host in ("0.0.0.0", "::"):
                host = _guess_advertise_host()
            advertise = (host, port)
        seeds = [await _resolve(*parse_address(seed)) for seed in config.seeds]
        membership = Membership(
            identity,
            mesh=config.mesh,
            address=advertise,
            now=trio.current_time(),
            rng=random.Random(),
            timing=config.timing,
            tags=config.tags,
            trust=config.trust,
            keyring=config.keyring,
            limits=config.limits,
        )
        stealing = None
        if tasks is not None:
            stealing = WorkStealing(
                identity.node_id,
                slots=config.task_slots,
                tags=config.tags,
                can_run=tasks.names(),
                run_ahead=[name for name in tasks.names() if tasks.get(name).kind == "thread"],
                rng=random.Random(),
                timing=StealingTiming(load_interval=config.timing.gossip_interval),
            )
        core = NodeCore(membership, stealing)
        async with trio.open_nursery() as nursery:
            node = Node(config, identity, core, udp, nursery, tasks)
            await nursery.start(node._timer_loop)
            await nursery.start(node._udp_loop)
            await nursery.start(trio.serve_listeners, node._serve_connection, listeners)
            nursery.start_soon(node._housekeeping)
            if seeds:
                node._seeds = list(seeds)
                core.join(seeds, trio.current_time())
                node._flush()
            if config.mdns:
                await nursery.start(node._run_mdns)
            try:
                yield node
            finally:
                with trio.CancelScope(shield=True):
                    await node._leave()
                    await node._links.aclose()
                node._end_streams()
                node._threads.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps whatever was raised inside it (by the caller's block, or by
        # a node task) in a group; a lone exception comes out as itself, so that
        # ``except KeyError`` around ``async with open_node(...)`` works.
        if len(group.exceptions) != 1:
            raise
        unwrapped = group.exceptions[0]
    finally:
        udp.close()
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()
    if unwrapped is not None:
        raise unwrapped
