"""Every message type of the meshedge protocol, with the schema of its body.

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

from .schema import (
    Schema,
    any_plain,
    array_of,
    boolean,
    byte_string,
    dict_of,
    record,
    text,
    text_map,
    tuple_of,
    uint,
)

__all__ = [
    "ADDRESS",
    "DIGEST_ENTRY",
    "DIRECT_TYPES",
    "MAX_HOST_SIZE",
    "MAX_SYNC_ITEMS",
    "MAX_TAGS_SIZE",
    "MESSAGE_SCHEMAS",
    "MessageType",
    "STATEMENT_TYPES",
    "TASK_RECORD",
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

_NODE_ID = byte_string(32, min_size=32)
_PROBE_SEQ = uint(2**32 - 1)
#: A broadcast is named by the first 16 bytes of its signature.
_BROADCAST_ID = byte_string(16, min_size=16)
_TARGET = record({1: _NODE_ID, 2: uint(), 3: uint()})

#: ``[host, port]``: where a member receives datagrams and stream connections.
ADDRESS: Final[Schema] = tuple_of(text(MAX_HOST_SIZE), uint(65535))
#: ``[node id, epoch, incarnation, state]``: one member in a SYNC digest.
DIGEST_ENTRY: Final[Schema] = tuple_of(_NODE_ID, uint(), uint(), uint(3))

#: Task ids are 16 random bytes.
_TASK_ID = byte_string(16, min_size=16)
_TASK_IDS = array_of(_TASK_ID, MAX_SYNC_ITEMS)
_ANY = any_plain(max_depth=1 << 30)
#: ``{1: id, 2: origin, 3: function name, 4: args, 5: kwargs, 6: requirements}``
TASK_RECORD: Final[Schema] = record(
    {
        1: _TASK_ID,
        2: _NODE_ID,
        3: text(200),
        4: array_of(_ANY, 1 << 16),
        5: dict_of(text(200), _ANY, 1 << 16),
        6: text_map(64, 128, 256),
    }
)

#: The schema of each type's body.
MESSAGE_SCHEMAS: Final[dict[int, Schema]] = {
    # Depth is already bounded by WireLimits.max_body_depth when the body is decoded.
    MessageType.APP: any_plain(max_depth=1 << 30),
    # {1: topic, 2: payload}
    MessageType.MESSAGE: record({1: text(128), 2: any_plain(max_depth=1 << 30)}),
    # {1: incarnation, 2: address, 3: tags}
    MessageType.ALIVE: record({1: uint(), 2: ADDRESS, 3: text_map(64, 128, 256)}),
    # {1: target id, 2: target epoch, 3: target incarnation}
    MessageType.SUSPECT: _TARGET,
    MessageType.DEAD: _TARGET,
    # {1: incarnation}
    MessageType.LEFT: record({1: uint()}),
    # {1: topic, 2: payload}
    MessageType.BROADCAST: record({1: text(128), 2: any_plain(max_depth=1 << 30)}),
    # {1: probe sequence, 2: target id}
    MessageType.PING: record({1: _PROBE_SEQ, 2: _NODE_ID}),
    MessageType.ACK: record({1: _PROBE_SEQ}),
    MessageType.NACK: record({1: _PROBE_SEQ}),
    # {1: probe sequence, 2: target id, 3: target address}
    MessageType.PING_REQ: record({1: _PROBE_SEQ, 2: _NODE_ID, 3: ADDRESS}),
    # {1: state hash, 2: reply address, 3: member digest, 4: statements, 5: wanted
    #  member ids, 6: join, 7: retained broadcast ids, 8: wanted broadcast ids}
    MessageType.SYNC: record(
        {1: byte_string(32), 2: ADDRESS},
        {
            3: array_of(DIGEST_ENTRY, MAX_SYNC_ITEMS),
            4: array_of(byte_string(4096), 2 * MAX_SYNC_ITEMS),
            5: array_of(_NODE_ID, MAX_SYNC_ITEMS),
            6: boolean(),
            7: array_of(_BROADCAST_ID, MAX_SYNC_ITEMS),
            8: array_of(_BROADCAST_ID, MAX_SYNC_ITEMS),
        },
    ),
    # {1: tasks queued, 2: of which the node will never run itself}
    MessageType.LOAD: record({1: uint()}, {2: uint()}),
    # {1: request id, 2: tasks wanted, 3: tasks the thief has queued already}
    MessageType.STEAL: record({1: uint(), 2: uint(1 << 16)}, {3: uint()}),
    # {1: request id, 2: [task records], 3: stealable tasks left}
    MessageType.TASKS: record({1: uint(), 2: array_of(TASK_RECORD, 1 << 16), 3: uint()}),
    # {1: [task ids], 2: their holder, when not the sender (a victim telling the origin
    #  which thief took them)}
    MessageType.LEASE: record({1: _TASK_IDS}, {2: _NODE_ID}),
    # {1: [[task id, ok, value or [type, message]]]}
    MessageType.RESULTS: record({1: array_of(tuple_of(_TASK_ID, boolean(), _ANY), 1 << 16)}),
    MessageType.CANCEL: record({1: _TASK_IDS}),
}

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
DIRECT_TYPES: Final = frozenset(MESSAGE_SCHEMAS) - STATEMENT_TYPES - {MessageType.APP}
