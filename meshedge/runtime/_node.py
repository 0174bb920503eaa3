"""``open_node``: a running mesh node — the trio shell around the protocol cores.

:class:`Node` is the public API; the work is done by its parts: the pump drives the
core (``meshedge.runtime._pump``), the subscriptions hand events and messages out
(``meshedge.runtime._subscriptions``) and the task runner runs tasks and waits for their
results (``meshedge.runtime._task_runner``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import trio

from .._identity import Identity, NodeId
from ..core._events import MemberEvent
from ..core._member import Address, Member
from ._addresses import advertised_address, bind_sockets, parse_address, resolve
from ._build import build_core
from ._config import NodeConfig
from ._exception_groups import unwrap_lone_exception
from ._mdns_seeds import run_mdns
from ._pump import Pump
from ._subscriptions import Message
from ._task_runner import SUBMIT_BATCH as SUBMIT_BATCH  # tests size map's slices by it
from ._tasks import TaskRegistry
from ._transport import UdpEndpoint

__all__ = ["Message", "Node", "open_node"]


class Node:
    """A running node; get one from :func:`open_node`.

    Its methods are safe to call from any task of the trio run that opened it.
    """

    def __init__(
        self, config: NodeConfig, identity: Identity, pump: Pump, nursery: trio.Nursery
    ) -> None:
        self._config = config
        self._identity = identity
        self._pump = pump
        self._nursery = nursery
        self._subscriptions = pump.subscriptions
        self._tasks = pump.tasks
        # The core and the sockets, which tests/test_hostile_input.py and benchmarks/
        # reach into.
        self._core = pump.core
        self._udp = pump.udp
        self._links = pump.links
        self._on_frame = pump.on_frame

    # ------------------------------------------------------------------ queries

    @property
    def id(self) -> NodeId:
        """This node's id (its public key)."""
        return self._identity.node_id

    @property
    def address(self) -> Address:
        """The address other nodes use for this node: ``(host, port)``."""
        return self._pump.address

    @property
    def config(self) -> NodeConfig:
        """The configuration it runs with."""
        return self._config

    def members(self) -> list[Member]:
        """Every member this node knows, itself included, dead and left ones too."""
        return self._pump.members()

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        return self._pump.member(node_id)

    def statistics(self) -> dict[str, Any]:
        """A new dict of counters: traffic, drops by reason, connections, queue depths.

        Its keys (docs/api.md) are :data:`~meshedge.core._statistics.NODE_KEYS`, each with
        one owner and one meaning: the cores count what they receive and refuse, the
        runtime what its sockets send and what its subscriptions could not deliver.
        """
        return self._pump.statistics()

    # ------------------------------------------------------------------ API

    def events(self) -> AsyncIterator[MemberEvent]:
        """Membership events: joined, updated, suspected, failed, left, recovered.

        The first consumer also gets the events since the node started (up to
        ``config.subscriber_buffer`` of them); later ones get events from when they
        start. The iteration ends when the node stops (``open_node`` exits).
        An async generator; each iteration is a checkpoint. A consumer that falls more
        than ``config.subscriber_buffer`` events behind loses the overflow (counted in
        ``statistics()["events_dropped_slow_consumer"]``).
        """
        return self._subscriptions.events()

    def subscribe(
        self, topic: str
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[Message]]:
        """Receive the messages of ``topic``, sent directly or broadcast.

        ``async with node.subscribe(topic) as messages:`` yields a channel to iterate
        with ``async for`` (each receive is a checkpoint); the iteration ends when the
        node stops. Direct messages wait for a slow subscriber (backpressure reaches the
        sender); broadcasts beyond the buffer are dropped and counted.

        Raises:
            LocalProtocolError: ``topic`` is not a string (on entering).
        """
        return self._subscriptions.subscribe(topic)

    async def set_tags(self, tags: Mapping[str, str]) -> None:
        """Change this node's tags; every member sees them soon (a checkpoint).

        If it raises ``trio.Cancelled``, the tags were not changed.

        Raises:
            LocalProtocolError: not a text map, or too large.
        """
        # trio's rule: a call that raises Cancelled did nothing. So check for a pending
        # cancel first, act, and only then yield without letting a cancel in.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._pump.set_tags(tags)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def broadcast(self, topic: str, payload: Any) -> None:
        """Gossip ``payload`` on ``topic`` to every member; delivered once each.

        A checkpoint; if it raises ``trio.Cancelled``, nothing was broadcast.

        Raises:
            LocalProtocolError: unusable topic or payload, or too large for a datagram.
        """
        await trio.lowlevel.checkpoint_if_cancelled()  # see set_tags
        self._pump.broadcast(topic, payload)
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
        await self._pump.send_message(peer, topic, payload)

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
        return await self._tasks.submit(name, list(args), dict(kwargs), requires)

    def map(
        self,
        name: str,
        arguments: Iterable[Any],
        *,
        ordered: bool = True,
        requires: Mapping[str, str] | None = None,
        return_exceptions: bool = False,
    ) -> AsyncIterator[Any]:
        """Submit ``name(argument)`` for each argument and yield the results.

        An async generator: results come in argument order (``ordered=True``) or as they
        complete. A tuple argument is spread as positional arguments. Each step is a
        checkpoint. Closing or cancelling the iteration cancels the tasks not yet
        finished.

        A task that raised stops the iteration at its result: its :class:`TaskError`
        is raised there and the tasks not yet finished are cancelled. With
        ``return_exceptions=True`` (``asyncio.gather``'s convention) the TaskError is
        yielded in that task's place instead and the other tasks keep running: one
        value per argument, a result or a TaskError, in the order chosen by ``ordered``.

        Raises:
            TaskError: the next result to yield is an error (not with
                ``return_exceptions``).
            UnknownTaskError: ``name`` is not registered on this node (even with
                ``return_exceptions``: a mistake of the call, not a task's outcome).
            LocalProtocolError: an argument that is not plain CBOR data, or a node
                opened without a task registry (likewise).
        """
        return self._tasks.map(name, arguments, ordered, requires, return_exceptions)

    # ------------------------------------------------------------------ lifetime

    async def _start(self, listeners: list[trio.SocketListener], seeds: list[Address]) -> None:
        """Run the pump's loops, contact the seeds, start mDNS when enabled."""
        await self._pump.start(listeners)
        if seeds:
            self._pump.join(seeds)
        if self._config.mdns:
            await self._nursery.start(partial(run_mdns, self._pump, self.id, self._config))


async def _resolve_addresses(
    config: NodeConfig, bind_host: str, port: int
) -> tuple[Address, list[Address]]:
    """The advertised address and the seeds, as IP literals (see :func:`resolve`)."""
    advertise = await advertised_address(config.advertise, bind_host, port)
    seeds = [await resolve(*parse_address(seed)) for seed in config.seeds]
    return advertise, seeds


async def _close_sockets(udp: UdpEndpoint, listeners: list[trio.SocketListener]) -> None:
    """Close the UDP socket and the listeners, even in a cancelled scope."""
    udp.close()
    for listener in listeners:
        with trio.CancelScope(shield=True):
            await listener.aclose()


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
    bind_host, _ = await resolve(bind_host, bind_port)
    udp, listeners = await bind_sockets(bind_host, bind_port)
    # Everything that can fail after the bind (resolving the advertise address and the
    # seeds, the core refusing the tags) is inside this try, so that a failed start never
    # leaves the port bound.
    try:
        with unwrap_lone_exception():
            advertise, seeds = await _resolve_addresses(config, bind_host, udp.port)
            core = build_core(config, identity, tasks, advertise)
            async with trio.open_nursery() as nursery:
                pump = Pump(config, core, udp, nursery, tasks)
                node = Node(config, identity, pump, nursery)
                await node._start(listeners, seeds)
                try:
                    yield node
                finally:
                    await pump.stop()
                    nursery.cancel_scope.cancel()
    finally:
        await _close_sockets(udp, listeners)
