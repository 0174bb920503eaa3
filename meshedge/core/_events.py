"""Events that the membership core emits (pulled with ``next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from .._identity import NodeId
from ..wire._message import SignedMessage
from ._member import Address, Member

__all__ = [
    "BroadcastReceived",
    "ForeignMessage",
    "LeaveCompleted",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberRecovered",
    "MemberSuspected",
    "MemberUpdated",
    "MembershipEvent",
    "MessageReceived",
]


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """Base of member events: ``member`` is the member's state after the change."""

    #: The member as it is now.
    member: Member


@dataclass(frozen=True, slots=True)
class MemberJoined(MemberEvent):
    """A member appeared (or reappeared after it had been forgotten)."""


@dataclass(frozen=True, slots=True)
class MemberUpdated(MemberEvent):
    """An alive member changed its tags or address."""


@dataclass(frozen=True, slots=True)
class MemberSuspected(MemberEvent):
    """A member is suspected of having failed."""


@dataclass(frozen=True, slots=True)
class MemberFailed(MemberEvent):
    """A member was declared dead."""


@dataclass(frozen=True, slots=True)
class MemberLeft(MemberEvent):
    """A member left gracefully."""


@dataclass(frozen=True, slots=True)
class MemberRecovered(MemberEvent):
    """A suspected or dead member is alive again (it refuted, or restarted)."""


@dataclass(frozen=True, slots=True)
class BroadcastReceived:
    """An application broadcast from another member, delivered once."""

    #: Who broadcast it (it signed it).
    sender: NodeId
    #: The topic it was broadcast on.
    topic: str
    #: The payload, plain CBOR data.
    payload: Any


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A direct application message from another member (it came by stream, verified)."""

    #: Who sent it (it signed it).
    sender: NodeId
    #: The topic it was sent on.
    topic: str
    #: The payload, plain CBOR data.
    payload: Any


@dataclass(frozen=True, slots=True)
class ForeignMessage:
    """A verified direct message that belongs to another core (or the application).

    The membership core checked it (signature, mesh, trust, replay window) and hands it
    out unchanged: work-stealing messages, direct application messages.
    """

    #: The verified message.
    message: SignedMessage
    #: Where it came from (a datagram's source, or the stream's peer address).
    address: Address


@dataclass(frozen=True, slots=True)
class LeaveCompleted:
    """This node's departure has been told as widely as gossip allows.

    Emitted once after ``leave()``: when no update waits in the gossip queue any more
    (the LEFT statement has been sent its full number of times, like everything queued
    before it), or at once when no live member is left to tell. After it, the node can
    stop; driving it further only answers probes.
    """

    #: This node's id (the member that left).
    node_id: NodeId


#: Anything ``next_event()`` returns.
MembershipEvent: TypeAlias = MemberEvent | BroadcastReceived | ForeignMessage | LeaveCompleted
