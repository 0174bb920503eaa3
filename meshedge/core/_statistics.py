"""Every counter a node reports, each with one owner and one meaning.

A statistics dict is assembled from *sections*: one frozen dataclass per part that
counts, whose field names are the dict's keys and whose field comments are their
meanings. The parts build their section when asked (``counters()``); :func:`merge`
flattens sections into one dict and refuses a key that two of them produce.

Which sections make which dict is fixed here, and checked when this module is imported
(:func:`disjoint_keys`), so a new counter that reuses another's name fails at once:

* a membership core's ``Membership.statistics()``: :data:`MEMBERSHIP_SECTIONS`;
* a node core's ``NodeCore.statistics()``: :data:`CORE_SECTIONS`, plus ``tasks`` (the
  :data:`TASK_SECTIONS`) when it shares work;
* a running node's ``Node.statistics()``: the core's, plus the runtime's transport and
  subscription sections (:data:`NODE_SECTIONS`).

What a node sends is counted where it leaves: by the runtime's sockets
(:class:`TransportCounters`) or the simulator's network. :class:`MembershipTraffic` is
the membership core's own part of it, reported by the membership core alone.

Plain data, no I/O: the runtime's sections are declared here too, so that one module
names every key a node reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CORE_KEYS",
    "CORE_SECTIONS",
    "MEMBERSHIP_KEYS",
    "MEMBERSHIP_SECTIONS",
    "NODE_KEYS",
    "NODE_SECTIONS",
    "TASK_KEYS",
    "TASK_SECTIONS",
    "CoreStatistics",
    "DropCounters",
    "MembershipCounters",
    "MembershipTraffic",
    "MessageCounters",
    "ReceiveCounters",
    "Section",
    "StealingTraffic",
    "SubscriptionCounters",
    "TaskCounters",
    "TransportCounters",
    "disjoint_keys",
    "merge",
]


class Section:
    """Base of the sections: a frozen dataclass whose fields are statistics keys."""

    __slots__ = ()

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys this section produces, in field order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    def items(self) -> list[tuple[str, Any]]:
        """``(key, value)`` for each field."""
        return [(name, getattr(self, name)) for name in self.keys()]


@dataclass(frozen=True, slots=True)
class ReceiveCounters(Section):
    """What reached the core from the network; owned by the node's envelope."""

    #: UDP datagrams handed to the core, refused ones included.
    packets_received: int = 0
    #: Their bytes.
    bytes_received: int = 0
    #: Stream frames handed to the core, of every kind (a frame over the size limit is
    #: cut before it reaches the core, and counted only as an ``oversized`` drop).
    frames_received: int = 0
    #: Their bytes, without the 4-byte length prefix.
    frame_bytes_received: int = 0
    #: Gossip statements received again (skipped unverified) and broadcasts received
    #: again.
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class DropCounters(Section):
    """Peer input refused; owned by the node's envelope, which every core counts through."""

    #: Refused messages by :class:`~meshedge._errors.DropReason` value, every reason
    #: present.
    drops: dict[str, int] = field(default_factory=dict)
    #: The sum of the drops in :data:`~meshedge.core._envelope.UNEXPECTED_REASONS`:
    #: well-signed messages the protocol refuses after verification.
    unexpected: int = 0


@dataclass(frozen=True, slots=True)
class MembershipCounters(Section):
    """The membership core's own counters and gauges."""

    #: Membership events the core dropped (over ``MembershipLimits.max_pending_events``).
    events_dropped: int = 0
    #: Times this node refuted a suspicion of itself.
    refutations: int = 0
    #: Gauge: membership updates still being gossiped.
    queued_updates: int = 0
    #: Gauge: application broadcasts still being gossiped.
    queued_broadcasts: int = 0
    #: Gauge: Lifeguard's local health score (0 is healthy).
    health: int = 0
    #: Gauge: members known, this node included, dead and left ones too.
    members: int = 0


@dataclass(frozen=True, slots=True)
class MembershipTraffic(Section):
    """What the membership core produced to send: probes, gossip and anti-entropy.

    Only in ``Membership.statistics()``: a node counts everything it sends, of every
    core, where it leaves (:class:`TransportCounters`), under the same names.
    """

    #: Datagrams the membership core produced (probes, gossip, broadcasts).
    packets_sent: int = 0
    #: Their bytes.
    bytes_sent: int = 0
    #: Stream frames the membership core produced (anti-entropy).
    frames_sent: int = 0
    #: Their bytes, without a length prefix.
    frame_bytes_sent: int = 0


@dataclass(frozen=True, slots=True)
class MessageCounters(Section):
    """Direct application messages; owned by the node core, which routes them."""

    #: Direct messages (``send``) received by stream and verified.
    messages_received: int = 0


@dataclass(frozen=True, slots=True)
class TaskCounters(Section):
    """Work stealing's counters and gauges; owned by the work-stealing core."""

    #: Own tasks submitted.
    submitted: int = 0
    #: Own tasks whose result arrived.
    completed: int = 0
    #: Results dropped because the task's first result had arrived already (or, for a
    #: task this node never submitted or no longer remembers, any result).
    duplicates: int = 0
    #: Results dropped because the caller had cancelled the task before any result
    #: came (a ``map`` that stopped at a failure, a cancelled ``submit``).
    late_results: int = 0
    #: Own tasks queued again after their holder died or its lease ran out.
    requeued: int = 0
    #: Tasks this node received by stealing.
    stolen: int = 0
    #: Tasks this node handed to thieves.
    given: int = 0
    #: Steal requests sent.
    steal_requests: int = 0
    #: Steal requests answered with no task.
    steal_empty: int = 0
    #: Steal requests not answered in time.
    steal_timeouts: int = 0
    #: Queued tasks dropped because their origin died.
    dropped_orphans: int = 0
    #: Gauge: tasks waiting in this node's queue.
    queued: int = 0
    #: Gauge: tasks running here.
    running: int = 0
    #: Gauge: own tasks whose result has not arrived.
    pending: int = 0
    #: Median seconds from asking a victim to its answer, over the last answered steals
    #: (None before any).
    steal_round_trip_p50: float | None = None
    #: The 99th percentile of the same.
    steal_round_trip_p99: float | None = None


@dataclass(frozen=True, slots=True)
class StealingTraffic(Section):
    """Work-stealing messages as the node core signs them; owned by the node core."""

    #: Work-stealing messages signed into datagrams (adverts, steal requests).
    stealing_datagrams: int = 0
    #: Work-stealing messages signed into stream frames (tasks, leases, results).
    stealing_frames: int = 0
    #: Bytes of both.
    stealing_bytes: int = 0
    #: Work-stealing messages not sent because their peer is no longer a member.
    unroutable: int = 0


@dataclass(frozen=True, slots=True)
class TransportCounters(Section):
    """The runtime's sockets and connections; owned by the pump."""

    #: UDP datagrams handed to the socket, of every core.
    packets_sent: int = 0
    #: Their bytes.
    bytes_sent: int = 0
    #: Stream frames written, of every kind (anti-entropy, direct messages, tasks).
    frames_sent: int = 0
    #: Their bytes, without the 4-byte length prefix.
    frame_bytes_sent: int = 0
    #: Direct messages (``send``) written.
    messages_sent: int = 0
    #: Datagrams the socket did not take, by cause.
    udp_send_errors: dict[str, int] = field(default_factory=dict)
    #: Gauge: outbound stream connections open.
    connections_out: int = 0
    #: Gauge: inbound stream connections open.
    connections_in: int = 0
    #: Outbound connections that could not be made or broke.
    connection_failures: int = 0
    #: Inbound connections closed at once (over ``max_inbound_connections``).
    connections_refused: int = 0
    #: Inbound connections closed because a frame took over ``frame_read_timeout``.
    frames_timed_out: int = 0
    #: Protocol frames not sent because too many were waiting for their connection.
    frames_dropped_busy: int = 0
    #: Protocol frames that could not be delivered.
    frames_unsent: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionCounters(Section):
    """What the runtime could not hand to the application; owned by the subscriptions."""

    #: Messages and broadcasts for a topic nobody subscribes to.
    no_subscriber: int = 0
    #: Events lost by slow ``events()`` consumers, or while nobody consumed.
    events_dropped_slow_consumer: int = 0
    #: Broadcasts lost by slow subscribers (over the topics subscribed now).
    messages_dropped_slow_consumer: int = 0


def merge(*parts: Section | Mapping[str, Any]) -> dict[str, Any]:
    """One dict of the sections' (and mappings') keys.

    Raises:
        TypeError: two parts produce one key.
    """
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in merged:
                raise TypeError(f"statistics key {key!r} has two owners")
            merged[key] = value
    return merged


def disjoint_keys(*parts: type[Section] | Iterable[str]) -> frozenset[str]:
    """The keys of the sections (and plain key lists) together.

    Raises:
        TypeError: two parts declare one key.
    """
    seen: set[str] = set()
    for part in parts:
        names = part.keys() if isinstance(part, type) else tuple(part)
        clash = seen.intersection(names)
        if clash:
            raise TypeError(f"statistics keys {sorted(clash)} have two owners")
        seen.update(names)
    return frozenset(seen)


#: The sections of ``Membership.statistics()``.
MEMBERSHIP_SECTIONS: Final = (ReceiveCounters, DropCounters, MembershipCounters, MembershipTraffic)
#: The sections of ``NodeCore.statistics()`` (besides ``tasks``).
CORE_SECTIONS: Final = (ReceiveCounters, DropCounters, MembershipCounters, MessageCounters)
#: The sections of ``statistics()["tasks"]``, present when a node shares work.
TASK_SECTIONS: Final = (TaskCounters, StealingTraffic)
#: The sections the runtime adds to the core's in ``Node.statistics()``.
NODE_SECTIONS: Final = (*CORE_SECTIONS, TransportCounters, SubscriptionCounters)
#: Every key of ``Membership.statistics()``.
MEMBERSHIP_KEYS: Final = disjoint_keys(*MEMBERSHIP_SECTIONS)
#: Every key ``NodeCore.statistics()`` may produce (``tasks`` only with work stealing).
CORE_KEYS: Final = disjoint_keys(*CORE_SECTIONS, ("tasks",))
#: Every key of ``statistics()["tasks"]``.
TASK_KEYS: Final = disjoint_keys(*TASK_SECTIONS)
#: Every key ``Node.statistics()`` may produce (``tasks`` only with a task registry).
NODE_KEYS: Final = disjoint_keys(*NODE_SECTIONS, ("tasks",))


@dataclass(frozen=True, slots=True)
class CoreStatistics:
    """A node core's counters, one section per owner (``NodeCore.counters()``)."""

    #: What reached the core (the envelope's).
    received: ReceiveCounters
    #: Peer input refused, by reason (the envelope's).
    refused: DropCounters
    #: The membership core's counters and gauges.
    membership: MembershipCounters
    #: Direct application messages (the node core's).
    messages: MessageCounters
    #: Work-stealing messages signed (the node core's; zero without work stealing).
    stealing: StealingTraffic
    #: The work-stealing core's, or None for a node that shares no work.
    tasks: TaskCounters | None = None

    def as_dict(self) -> dict[str, Any]:
        """The flat dict of ``NodeCore.statistics()``; ``tasks`` nests its own."""
        parts: list[Section | Mapping[str, Any]] = [
            self.received,
            self.refused,
            self.membership,
            self.messages,
        ]
        if self.tasks is not None:
            parts.append({"tasks": merge(self.tasks, self.stealing)})
        return merge(*parts)
