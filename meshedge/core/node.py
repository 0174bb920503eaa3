"""The node core: membership and work stealing composed behind one driving contract.

The runtime and the simulator drive a :class:`NodeCore` exactly as they would drive one
core: ``receive_datagram``, ``receive_frame``, ``handle_timer`` and commands in;
``datagrams_to_send``, ``frames_to_send``, ``next_event`` and ``get_timer`` out. Inside,
membership events feed the work-stealing core (who is alive, with which tags), and the
stealing core's messages are signed, addressed and sealed here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from ..identity import NodeId
from ..wire.datagram import seal_datagram, seal_frame
from ..wire.message import SignedMessage
from ..wire.message_types import MessageType
from .events import ForeignMessage, MemberEvent, MembershipEvent
from .member import Address
from .membership import Membership
from .stealing import Task, TaskFinished, TaskOutcome, WorkStealing

__all__ = ["NodeCore", "NodeEvent"]

#: Message types that belong to the work-stealing core.
STEALING_TYPES = frozenset(
    {
        MessageType.LOAD,
        MessageType.STEAL,
        MessageType.TASKS,
        MessageType.LEASE,
        MessageType.RESULTS,
        MessageType.CANCEL,
    }
)

#: Anything :meth:`NodeCore.next_event` returns.
NodeEvent: TypeAlias = MembershipEvent | TaskFinished


class NodeCore:
    """Membership plus (optionally) work stealing, as one sans-I/O state machine.

    Args:
        membership: the membership core (it owns identity, mesh, keyring, limits).
        stealing: the work-stealing core, or None for a node that shares no work.
    """

    def __init__(self, membership: Membership, stealing: WorkStealing | None = None) -> None:
        self.membership = membership
        self.stealing = stealing
        self._events: deque[NodeEvent] = deque()
        self._datagrams: list[tuple[bytes, Address]] = []
        self._frames: list[tuple[bytes, Address]] = []
        # Work-stealing messages routed but not yet signed: signing waits until the
        # runtime asks for output, so it can start the next task first.
        self._unsigned: list[tuple[MessageType, Any, Address, bool]] = []
        self.stats: dict[str, int] = {"stealing_frames": 0, "stealing_bytes": 0, "unroutable": 0}
        if stealing is not None:
            for member in membership.members():
                stealing.member_changed(member, 0.0)

    @property
    def id(self) -> NodeId:
        """This node's id."""
        return self.membership.id

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """A datagram from the network."""
        self.membership.receive_datagram(data, addr, now)
        self._route(now)

    def receive_frame(self, data: bytes, addr: Address, now: float) -> None:
        """A stream frame from the network."""
        self.membership.receive_frame(data, addr, now)
        self._route(now)

    def handle_timer(self, now: float) -> None:
        """Run whatever is due in either core."""
        if now >= self.membership.get_timer():
            self.membership.handle_timer(now)
        if self.stealing is not None and now >= self.stealing.get_timer():
            self.stealing.handle_timer(now)
        self._route(now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """Change this node's tags (membership gossips them; stealing checks them)."""
        self.membership.set_tags(tags, now)
        if self.stealing is not None:
            self.stealing.set_tags(tags, now)
        self._route(now)

    def broadcast(self, topic: str, payload: Any, now: float) -> None:
        """Gossip an application broadcast."""
        self.membership.broadcast(topic, payload, now)
        self._route(now)

    def leave(self, now: float) -> None:
        """Leave the mesh gracefully."""
        self.membership.leave(now)
        self._route(now)

    def bootstrap(self, known: Iterable[tuple[SignedMessage, bytes]], now: float) -> None:
        """Learn members silently (see :meth:`Membership.bootstrap`), stealing included."""
        self.membership.bootstrap(known, now)
        if self.stealing is not None:
            for member in self.membership.members():
                self.stealing.member_changed(member, now)
        self._route(now)

    def join(self, seeds: list[Address], now: float) -> None:
        """Contact seeds (retried while alone)."""
        self.membership.join(seeds, now)
        self._route(now)

    def submit(self, task: Task, now: float) -> None:
        """Queue a task originated here (see :meth:`WorkStealing.submit`)."""
        self._stealing().submit(task, now)
        self._route(now)

    def cancel(self, task_id: bytes, now: float) -> None:
        """Drop an own task wherever it is."""
        self._stealing().cancel(task_id, now)
        self._route(now)

    def task_done(self, task_id: bytes, outcome: TaskOutcome, now: float) -> None:
        """A task started here finished."""
        self._stealing().task_done(task_id, outcome, now)
        self._route(now)

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams to send, with their destinations."""
        out = self.membership.datagrams_to_send()
        self._sign_pending()
        if self._datagrams:
            out += self._datagrams
            self._datagrams = []
        return out

    def frames_to_send(self) -> list[tuple[bytes, Address]]:
        """Stream frames to send, with their destinations (in order per destination)."""
        out = self.membership.frames_to_send()
        self._sign_pending()
        if self._frames:
            out += self._frames
            self._frames = []
        return out

    def tasks_to_start(self) -> list[Task]:
        """Tasks the runtime must start now."""
        return self.stealing.tasks_to_start() if self.stealing is not None else []

    def tasks_to_cancel(self) -> list[bytes]:
        """Running tasks the runtime must cancel."""
        return self.stealing.tasks_to_cancel() if self.stealing is not None else []

    def next_event(self) -> NodeEvent | None:
        """Membership events, broadcasts, direct messages and finished own tasks."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float:
        """The next deadline of either core."""
        deadline = self.membership.get_timer()
        if self.stealing is not None:
            deadline = min(deadline, self.stealing.get_timer())
        return deadline

    # ------------------------------------------------------------------ routing

    def _stealing(self) -> WorkStealing:
        if self.stealing is None:
            from ..errors import LocalProtocolError

            raise LocalProtocolError("this node was started without a task registry")
        return self.stealing

    def _sign_pending(self) -> None:
        """Sign and seal the work-stealing messages routed since the last call."""
        membership = self.membership
        pending, self._unsigned = self._unsigned, []
        for msg_type, body, address, reliable in pending:
            unit = membership.sign(msg_type, body)
            if reliable:
                data = seal_frame(unit, keyring=membership.keyring, limits=membership.limits)
                self._frames.append((data, address))
                self.stats["stealing_frames"] += 1
            else:
                data = seal_datagram([unit], keyring=membership.keyring, limits=membership.limits)
                self._datagrams.append((data, address))
            self.stats["stealing_bytes"] += len(data)

    def _route(self, now: float) -> None:
        membership, stealing = self.membership, self.stealing
        while (event := membership.next_event()) is not None:
            if isinstance(event, ForeignMessage):
                message = event.message
                if message.type in STEALING_TYPES:
                    if stealing is not None:
                        stealing.receive(message.sender, message.type, message.payload, now)
                    continue
            elif isinstance(event, MemberEvent) and stealing is not None:
                stealing.member_changed(event.member, now)
            self._events.append(event)
        if stealing is None:
            return
        for peer, msg_type, body, reliable in stealing.messages_to_send():
            member = membership.member(peer)
            if member is None:
                self.stats["unroutable"] += 1
                continue
            self._unsigned.append((msg_type, body, member.address, reliable))
        while (finished := stealing.next_event()) is not None:
            self._events.append(finished)
