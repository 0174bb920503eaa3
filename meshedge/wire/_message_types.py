"""Every message type of the meshedge protocol (their bodies: :mod:`meshedge.wire.bodies`).

Types are small integers on the wire. A message of a type missing here is refused
(``unknown_type``); a body that does not fit its schema is refused (``schema``).

Two families share the envelope:

* *statements* (``ALIVE``, ``SUSPECT``, ``DEAD``, ``LEFT``, ``BROADCAST``) are signed once
  by their author and forwarded verbatim by everybody, so a receiver always knows who
  said it. They are idempotent (ordered by incarnation, or deduplicated per origin), so
  they bypass the per-sender replay window;
* *direct* messages (``PING``, ``ACK``, ``NACK``, ``PING_REQ``, ``SYNC``) go from one node to
  another and are checked against the replay window.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "DIRECT_TYPES",
    "MAX_HOST_SIZE",
    "MAX_SYNC_ITEMS",
    "MAX_TAGS_SIZE",
    "MessageType",
    "STATEMENT_TYPES",
]


class MessageType(enum.IntEnum):
    """Message types carried in the signed envelope (field 4)."""

    #: An application message: the body is any plain CBOR data of the application.
    APP = 1
    #: A direct message from one node to another over the stream transport:
    #: ``{1: topic, 2: payload}``.
    MESSAGE = 2
    #: "I am alive at this incarnation, address and tags" — signed by the member itself.
    ALIVE = 10
    #: "I suspect member X at (epoch, incarnation)" — signed by the accuser.
    SUSPECT = 11
    #: "Member X at (epoch, incarnation) is dead" — signed by whoever declares it.
    DEAD = 12
    #: "I leave the mesh at this incarnation" — signed by the member itself.
    LEFT = 13
    #: An application broadcast on a topic, signed by its origin.
    BROADCAST = 14
    #: Probe: "are you there?"
    PING = 20
    #: Answer to a ping (directly, or relayed for an indirect probe).
    ACK = 21
    #: A relay's "I could not reach the target either" (Lifeguard).
    NACK = 22
    #: "Please probe this member for me" (SWIM indirect probe).
    PING_REQ = 23
    #: Anti-entropy (push-pull) over the stream transport.
    SYNC = 24
    #: "I have this many tasks queued that could be stolen" (datagram).
    LOAD = 30
    #: A thief asks a victim for up to N tasks.
    STEAL = 31
    #: The victim's answer: the tasks it hands over (possibly none).
    TASKS = 32
    #: "I hold these tasks of yours" — sent to their origin, renewed while held.
    LEASE = 33
    #: Outcomes of an origin's tasks, sent to the origin.
    RESULTS = 34
    #: The origin no longer wants these tasks run.
    CANCEL = 35


#: Largest host text in an address (an IPv6 literal with a zone fits easily).
MAX_HOST_SIZE: Final = 64
#: Encoded size budget of a member's tags (DESIGN: a small str -> str map).
MAX_TAGS_SIZE: Final = 512
#: Most entries one SYNC frame may carry (the frame size bounds it anyway).
MAX_SYNC_ITEMS: Final = 8192

#: Statements: signed by their author, forwarded verbatim, not replay-checked.
STATEMENT_TYPES: Final = frozenset(
    {
        MessageType.ALIVE,
        MessageType.SUSPECT,
        MessageType.DEAD,
        MessageType.LEFT,
        MessageType.BROADCAST,
    }
)
#: Direct messages: checked against the per-sender replay window.
DIRECT_TYPES: Final = frozenset(MessageType) - STATEMENT_TYPES - {MessageType.APP}
