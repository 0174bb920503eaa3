"""The node core: the one front door that the runtime, the simulator and tests drive.

A :class:`NodeCore` composes the membership core and (optionally) the work-stealing
core behind one driving contract (DESIGN rule 2):

* inputs return nothing: ``receive_datagram``, ``receive_frame``, ``handle_timer`` and
  the commands (``join``, ``leave``, ``set_tags``, ``broadcast``, ``send_message``,
  ``submit``, ``cancel``, ``task_done``);
* outputs are pulled: :meth:`NodeCore.transmit` (datagrams, frames, task starts and
  cancels, in the order to obey them), :meth:`NodeCore.next_event` and
  :meth:`NodeCore.get_timer`.

Every envelope of the node is made and checked by one :class:`~.envelope.Envelope`:
membership signs its probes and statements with it, and this class signs the direct
application messages and the work-stealing messages with it, so one sequence counter
and one set of replay windows serve the node. :meth:`NodeCore.create` is the one place
where a node's cores are assembled.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from .._errors import DropReason, LocalProtocolError, PeerUnavailableError, UnknownPeerError
from .._identity import Identity, NodeId
from ..wire._message import SignedMessage, verify_message
from ..wire._message_types import MessageType
from ..wire.bodies import Body, DirectMessage
from ._config import CoreConfig
from ._envelope import Envelope
from ._events import ForeignMessage, MemberEvent, MembershipEvent, MessageReceived
from ._member import Address, Member, MemberState
from ._membership import Membership, MembershipLimits
from ._outputs import CancelTask, Datagram, Frame, Output, StartTask
from ._statistics import CoreStatistics, MessageCounters, StealingTraffic
from ._stealing import Task, TaskFinished, TaskOutcome, WorkStealing

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
NodeEvent: TypeAlias = MembershipEvent | MessageReceived | TaskFinished


class NodeCore:
    """Membership plus (optionally) work stealing, as one sans-I/O state machine.

    Build one with :meth:`create`. The constructor composes cores made elsewhere: both
    must share ``membership.envelope``.

    Args:
        membership: the membership core (it owns the node's envelope).
        stealing: the work-stealing core, or None for a node that shares no work.
    """

    def __init__(self, membership: Membership, stealing: WorkStealing | None = None) -> None:
        self.membership = membership
        self.stealing = stealing
        #: Signs, seals, opens and verifies every unit of this node.
        self.envelope: Envelope = membership.envelope
        self._events: deque[NodeEvent] = deque()
        self._datagrams: list[Datagram] = []
        self._frames: list[Frame] = []
        # Work-stealing messages routed but not yet signed, as (body, address, reliable):
        # signing waits until the shell asks for output, so a task runner can start the
        # next task first (see task_orders).
        self._unsigned: list[tuple[Body, Address, bool]] = []
        # Counters of this class's own; the other cores keep theirs (see statistics()).
        self._messages_received = 0
        self._stealing_datagrams = 0
        self._stealing_frames = 0
        self._stealing_bytes = 0
        self._unroutable = 0
        if stealing is not None:
            for member in membership.members():
                stealing.member_changed(member, 0.0)

    @classmethod
    def create(
        cls,
        identity: Identity,
        config: CoreConfig,
        rng: random.Random,
        now: float,
        *,
        bounds: MembershipLimits | None = None,
    ) -> NodeCore:
        """Assemble a node's cores around one envelope.

        Args:
            identity: the node's key pair (its id is the public key) and boot epoch.
            config: mesh, address, timing, tags, trust, keys, limits and work stealing.
            rng: the only source of randomness, shared by the cores: a seeded rng makes
                the node deterministic.
            now: the current time of the driving clock, in seconds.
            bounds: bounds of the membership core's tables and queues.

        Raises:
            LocalProtocolError: the configuration is unusable (mesh name, address, tags,
                task slots).
        """
        bounds = bounds or MembershipLimits()
        envelope = Envelope(
            identity,
            mesh=config.mesh,
            trust=config.trust,
            keyring=config.keyring,
            limits=config.limits,
            signatures=config.signatures,
            max_senders=bounds.max_members,
            seen_cache_size=bounds.seen_cache_size,
        )
        membership = Membership(
            identity,
            mesh=config.mesh,
            address=config.address,
            now=now,
            rng=rng,
            timing=config.timing,
            tags=config.tags,
            bounds=bounds,
            envelope=envelope,
        )
        stealing = None
        if config.tasks is not None:
            stealing = WorkStealing(
                identity.node_id,
                slots=config.tasks.slots,
                tags=config.tags,
                can_run=config.tasks.can_run,
                run_ahead=config.tasks.run_ahead,
                rng=rng,
                timing=config.stealing_timing(),
            )
        return cls(membership, stealing)

    # ------------------------------------------------------------------ queries

    @property
    def id(self) -> NodeId:
        """This node's id."""
        return self.membership.id

    @property
    def address(self) -> Address:
        """This node's advertised address."""
        return self.membership.address

    def members(self) -> list[Member]:
        """Every known member, this node included, dead and left ones too."""
        return self.membership.members()

    def member(self, node_id: NodeId) -> Member | None:
        """The member with this id, or None."""
        return self.membership.member(node_id)

    def counters(self) -> CoreStatistics:
        """Every counter of the node's cores, typed: one section per owner."""
        membership, stealing = self.membership, self.stealing
        return CoreStatistics(
            received=self.envelope.counters(),
            refused=self.envelope.drop_counters(),
            membership=membership.counters(),
            messages=MessageCounters(messages_received=self._messages_received),
            stealing=StealingTraffic(
                stealing_datagrams=self._stealing_datagrams,
                stealing_frames=self._stealing_frames,
                stealing_bytes=self._stealing_bytes,
                unroutable=self._unroutable,
            ),
            tasks=None if stealing is None else stealing.counters(),
        )

    def statistics(self) -> dict[str, Any]:
        """:meth:`counters` as one flat dict (``tasks`` nested, with work stealing).

        Its keys are :data:`~meshedge.core._statistics.CORE_KEYS`, each produced by one
        section; what the node sends is counted by whoever sends it (runtime, simulator).

        Raises:
            TypeError: two sections produce one key (a bug, caught by the tests).
        """
        return self.counters().as_dict()

    def alive_statement(self) -> tuple[SignedMessage, bytes]:
        """This node's own ALIVE statement, verified, as :meth:`bootstrap` takes it.

        For starting simulations and tests from a formed mesh.
        """
        unit = self.membership.alive_statement()
        envelope = self.envelope
        message = verify_message(
            unit, mesh=envelope.mesh, signatures=envelope.signatures, max_size=len(unit)
        )
        return message, unit

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """A datagram from the network. Never raises for anything a peer sends."""
        self.membership.receive_datagram(data, addr, now)
        self._route(now, by_stream=False)

    def receive_frame(self, data: bytes, addr: Address, now: float) -> None:
        """A stream frame from the network. Never raises for anything a peer sends."""
        self.membership.receive_frame(data, addr, now)
        self._route(now, by_stream=True)

    def count_drop(self, reason: DropReason) -> None:
        """Count peer input the shell refused before the core saw it (an oversized frame)."""
        self.envelope.count_drop(reason)

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

    def send_message(self, peer: NodeId, topic: str, payload: Any, now: float) -> None:
        """Sign a direct message to member ``peer``; it leaves as a frame in transmit().

        Raises:
            UnknownPeerError: no member with this id is known.
            PeerUnavailableError: the member is dead or left.
            LocalProtocolError: the topic is not a string, the payload is not plain
                data, or the message exceeds the frame limit.
        """
        member = self.membership.member(peer)
        if member is None:
            raise UnknownPeerError(f"no member {peer!r}")
        if member.state in (MemberState.DEAD, MemberState.LEFT):
            raise PeerUnavailableError(f"member {peer.short} is {member.state.name.lower()}")
        if not isinstance(topic, str):
            raise LocalProtocolError("a topic is a string")
        envelope = self.envelope
        unit = envelope.sign(DirectMessage(topic, payload))
        self._frames.append(Frame(envelope.seal_frame(unit), member.address))

    def leave(self, now: float) -> None:
        """Leave gracefully; :class:`~.events.LeaveCompleted` follows once it is told."""
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

    def new_task(
        self,
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        requires: Mapping[str, str] | None = None,
    ) -> Task:
        """A task originated here with a fresh id (see :meth:`WorkStealing.new_task`).

        Raises:
            LocalProtocolError: this node was started without a task registry.
        """
        return self._stealing().new_task(name, args, kwargs, requires)

    def submit(self, task: Task, now: float) -> None:
        """Queue a task originated here (see :meth:`WorkStealing.submit`)."""
        self._stealing().submit(task, now)
        self._route(now)

    def cancel(self, task_id: bytes, now: float) -> None:
        """Drop an own task wherever it is."""
        self._stealing().cancel(task_id, now)
        self._route(now)

    def task_done(self, task_id: bytes, outcome: TaskOutcome, now: float) -> None:
        """A task started here finished (see :meth:`WorkStealing.task_done`)."""
        self._stealing().task_done(task_id, outcome, now)
        self._route(now)

    # ------------------------------------------------------------------ outputs

    def transmit(self) -> list[Output]:
        """Everything the shell must do now, in order: task orders, datagrams, frames.

        Frames for one address keep their order.
        """
        out: list[Output] = [] if self.stealing is None else self.task_orders()
        if self._unsigned:
            self._sign_pending()
        membership = self.membership
        datagrams = membership.datagrams_to_send()
        if datagrams:
            out += [Datagram(data, address) for data, address in datagrams]
        if self._datagrams:
            out += self._datagrams
            self._datagrams = []
        frames = membership.frames_to_send()
        if frames:
            out += [Frame(data, address) for data, address in frames]
        if self._frames:
            out += self._frames
            self._frames = []
        return out

    def task_orders(self) -> list[Output]:
        """Only the task cancels and starts of :meth:`transmit` (nothing is signed).

        A task runner that chains into the next task takes these first, and the rest
        with the next :meth:`transmit`.
        """
        stealing = self.stealing
        if stealing is None:
            return []
        orders: list[Output] = [CancelTask(task_id) for task_id in stealing.tasks_to_cancel()]
        orders += [StartTask(task) for task in stealing.tasks_to_start()]
        return orders

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
            raise LocalProtocolError("this node was started without a task registry")
        return self.stealing

    def _sign_pending(self) -> None:
        """Sign and seal the work-stealing messages routed since the last call."""
        envelope = self.envelope
        pending, self._unsigned = self._unsigned, []
        for body, address, reliable in pending:
            unit = envelope.sign(body)
            if reliable:
                frame = Frame(envelope.seal_frame(unit), address)
                self._frames.append(frame)
                self._stealing_frames += 1
                self._stealing_bytes += len(frame.data)
            else:
                datagram = Datagram(envelope.seal_datagram([unit]), address)
                self._datagrams.append(datagram)
                self._stealing_datagrams += 1
                self._stealing_bytes += len(datagram.data)

    def _route(self, now: float, *, by_stream: bool = False) -> None:
        membership, stealing = self.membership, self.stealing
        while (event := membership.next_event()) is not None:
            if isinstance(event, ForeignMessage):
                self._route_foreign(event, now, by_stream)
                continue
            if isinstance(event, MemberEvent) and stealing is not None:
                stealing.member_changed(event.member, now)
            self._events.append(event)
        if stealing is None:
            return
        for out in stealing.messages_to_send():
            member = membership.member(out.peer)
            if member is None:
                self._unroutable += 1
                continue
            self._unsigned.append((out.body, member.address, out.reliable))
        while (finished := stealing.next_event()) is not None:
            self._events.append(finished)

    def _route_foreign(self, event: ForeignMessage, now: float, by_stream: bool) -> None:
        """A verified direct message that is not membership's: stealing or the app's."""
        message = event.message
        if message.type in STEALING_TYPES:
            if self.stealing is not None:
                self.stealing.receive(message.sender, message.type, message.payload, now)
        elif message.type == MessageType.MESSAGE:
            if not by_stream:
                # Direct messages travel by stream only: by datagram nothing would bound
                # or order them, so they are refused like any unit out of place.
                self.envelope.count_drop(DropReason.MESSAGE_BY_DATAGRAM)
                return
            self._messages_received += 1
            body: DirectMessage = message.payload
            self._events.append(MessageReceived(message.sender, body.topic, body.payload))
