"""Subscriptions: hand membership events and topic messages out to the application.

Every consumer gets a bounded channel of its own (a :class:`_Fanout` per stream). An
item that finds a consumer's channel full is dropped for it and counted, so a slow
consumer never stalls the node; direct messages are the exception, they wait for room
(backpressure reaches the sender's TCP window).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import trio

from .._errors import LocalProtocolError
from .._identity import NodeId
from ..core._events import MemberEvent

__all__ = ["Message", "Subscriptions"]


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


class Subscriptions:
    """The node's event stream and its topic subscriptions.

    Args:
        capacity: items buffered per consumer (``NodeConfig.subscriber_buffer``).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._events = _Fanout(capacity, backlog=True)
        self._topics: dict[str, _Fanout] = {}
        self._stopped = False  # the node has left: streams end, new ones end at once
        #: Messages (direct or broadcast) on a topic nobody subscribes to.
        self.no_subscriber = 0

    async def events(self) -> AsyncGenerator[MemberEvent, None]:
        """Membership events; see :meth:`meshedge.runtime._node.Node.events`."""
        async with self._events.subscribe() as receive:
            async for event in receive:
                yield event

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
        """The messages of ``topic``; see :meth:`meshedge.runtime._node.Node.subscribe`.

        Raises:
            LocalProtocolError: ``topic`` is not a string.
        """
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        fanout = self._topics.get(topic)
        if fanout is None:
            fanout = self._topics[topic] = _Fanout(self._capacity)
            if self._stopped:
                fanout.close()
        try:
            async with fanout.subscribe() as receive:
                yield receive
        finally:
            if not fanout.channels:
                self._topics.pop(topic, None)

    def publish_event(self, event: MemberEvent) -> None:
        """Hand a membership event to every events() consumer (never waits)."""
        self._events.publish(event)

    def publish_broadcast(self, sender: NodeId, topic: str, payload: Any) -> None:
        """Hand a broadcast to the topic's subscribers (never waits; overflow dropped)."""
        fanout = self._topics.get(topic)
        if fanout is None:
            self.no_subscriber += 1
        else:
            fanout.publish(Message(sender, topic, payload, True))

    async def deliver_direct(self, sender: NodeId, topic: str, payload: Any) -> None:
        """Hand a direct message to the topic's subscribers, waiting for slow ones.

        A checkpoint only when a subscriber's buffer is full; cancellation then leaves
        the message undelivered to the subscribers not yet served.
        """
        fanout = self._topics.get(topic)
        if fanout is None:
            self.no_subscriber += 1
            return
        await fanout.publish_waiting(Message(sender, topic, payload, False))

    def close(self) -> None:
        """End every events() and subscribe() iteration: the node has stopped."""
        self._stopped = True
        self._events.close()
        for fanout in self._topics.values():
            fanout.close()

    def statistics(self) -> dict[str, int]:
        """Items dropped for slow consumers, and messages nobody subscribed to."""
        return {
            "no_subscriber": self.no_subscriber,
            "events_dropped_slow_consumer": self._events.dropped,
            "messages_dropped_slow_consumer": sum(f.dropped for f in self._topics.values()),
        }
