"""Typed message bodies: one frozen class per message type, with named fields.

On the wire a body is a CBOR map with small integer keys (compact, and the same bytes
for the same content). In code it is an instance of the class below that carries its
type: ``Ping(seq=7, target=node_id)``. Each field names its key and its *codec*: the
strict schema its wire value must fit, and how it converts between the wire form and
the typed form. The schema of every message type is derived from these declarations,
so field numbers exist in this module and nowhere else.

Rules:

* ``Body.to_wire()`` gives the integer-keyed map; optional fields set to ``None`` are
  left out.
* ``Body.from_wire(raw)`` reads a map that has already passed ``schema_of(type)``;
  it never validates again.
* A new message type is a new class here, made with ``@body_type(MessageType.X)``,
  and a line in :data:`BODY_CLASSES`; nothing else derives a schema. The machinery is
  in :mod:`meshedge.wire._codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .._identity import NodeId
from ._codec import (
    Address,
    Body,
    Codec,
    address_codec,
    body_type,
    list_of,
    node_id_codec,
    plain,
    prepare_record,
    record_codec,
    tags_codec,
    wire_field,
)
from ._message_types import MAX_SYNC_ITEMS, MessageType
from ._schema import (
    Schema,
    any_plain,
    array_of,
    boolean,
    byte_string,
    dict_of,
    text,
    tuple_of,
    uint,
)

__all__ = [
    "BODY_CLASSES",
    "Ack",
    "Address",
    "Alive",
    "Body",
    "Broadcast",
    "Cancel",
    "Codec",
    "Dead",
    "DigestEntry",
    "DirectMessage",
    "MESSAGE_SCHEMAS",
    "Lease",
    "Left",
    "Load",
    "Nack",
    "Ping",
    "PingReq",
    "Results",
    "Steal",
    "Suspect",
    "Sync",
    "Task",
    "TaskResult",
    "Tasks",
    "decode_body",
    "schema_of",
]

_PROBE_SEQ: Final = plain(uint(2**32 - 1))
_UINT: Final = plain(uint())
_TOPIC: Final = plain(text(128))
# Depth is already bounded by WireLimits.max_body_depth when the body is decoded.
_ANY: Final = plain(any_plain(max_depth=1 << 30))
#: Task ids are 16 random bytes.
_TASK_ID: Final = plain(byte_string(16, min_size=16))
_TASK_IDS: Final = list_of(_TASK_ID, MAX_SYNC_ITEMS)
#: A broadcast is named by the first 16 bytes of its signature.
_BROADCAST_IDS: Final = list_of(plain(byte_string(16, min_size=16)), MAX_SYNC_ITEMS)


# ---------------------------------------------------------------- application


@body_type(MessageType.MESSAGE)
@dataclass(frozen=True, slots=True)
class DirectMessage(Body):
    """A direct application message from one node to another, on a topic."""

    topic: str = wire_field(1, _TOPIC)
    payload: Any = wire_field(2, _ANY)


@body_type(MessageType.BROADCAST)
@dataclass(frozen=True, slots=True)
class Broadcast(Body):
    """An application broadcast on a topic, signed by its origin and gossiped."""

    topic: str = wire_field(1, _TOPIC)
    payload: Any = wire_field(2, _ANY)


# ---------------------------------------------------------------- statements


@body_type(MessageType.ALIVE)
@dataclass(frozen=True, slots=True)
class Alive(Body):
    """"I am alive at this incarnation, address and tags" — signed by the member."""

    incarnation: int = wire_field(1, _UINT)
    address: Address = wire_field(2, address_codec())
    tags: dict[str, str] = wire_field(3, tags_codec())


@body_type(MessageType.SUSPECT)
@dataclass(frozen=True, slots=True)
class Suspect(Body):
    """"I suspect member ``target`` at (epoch, incarnation)" — signed by the accuser."""

    target: NodeId = wire_field(1, node_id_codec())
    epoch: int = wire_field(2, _UINT)
    incarnation: int = wire_field(3, _UINT)


@body_type(MessageType.DEAD)
@dataclass(frozen=True, slots=True)
class Dead(Body):
    """"Member ``target`` at (epoch, incarnation) is dead" — signed by who declares it."""

    target: NodeId = wire_field(1, node_id_codec())
    epoch: int = wire_field(2, _UINT)
    incarnation: int = wire_field(3, _UINT)


@body_type(MessageType.LEFT)
@dataclass(frozen=True, slots=True)
class Left(Body):
    """"I leave the mesh at this incarnation" — signed by the member itself."""

    incarnation: int = wire_field(1, _UINT)


# ---------------------------------------------------------------- failure detector


@body_type(MessageType.PING)
@dataclass(frozen=True, slots=True)
class Ping(Body):
    """Probe: "are you there?" addressed to ``target``."""

    seq: int = wire_field(1, _PROBE_SEQ)
    target: NodeId = wire_field(2, node_id_codec())


@body_type(MessageType.ACK)
@dataclass(frozen=True, slots=True)
class Ack(Body):
    """Answer to the ping numbered ``seq`` (directly, or relayed)."""

    seq: int = wire_field(1, _PROBE_SEQ)


@body_type(MessageType.NACK)
@dataclass(frozen=True, slots=True)
class Nack(Body):
    """A relay's "I could not reach the target either" for probe ``seq`` (Lifeguard)."""

    seq: int = wire_field(1, _PROBE_SEQ)


@body_type(MessageType.PING_REQ)
@dataclass(frozen=True, slots=True)
class PingReq(Body):
    """"Please probe ``target`` at ``address`` for me" (SWIM indirect probe)."""

    seq: int = wire_field(1, _PROBE_SEQ)
    target: NodeId = wire_field(2, node_id_codec())
    address: Address = wire_field(3, address_codec())


# ---------------------------------------------------------------- anti-entropy


class DigestEntry(NamedTuple):
    """One member in a SYNC digest: ``[node id, epoch, incarnation, state]``."""

    #: The member.
    node_id: NodeId
    #: Its boot epoch.
    epoch: int
    #: Its incarnation.
    incarnation: int
    #: Its :class:`~meshedge.core._member.MemberState` value.
    state: int


_DIGEST_ENTRY: Final = Codec(
    tuple_of(byte_string(32, min_size=32), uint(), uint(), uint(3)),
    lambda value: DigestEntry(NodeId(value[0]), value[1], value[2], value[3]),
    lambda entry: [bytes(entry[0]), entry[1], entry[2], entry[3]],
)


@body_type(MessageType.SYNC)
@dataclass(frozen=True, slots=True)
class Sync(Body):
    """Anti-entropy (push-pull) over the stream transport."""

    #: The sender's state hash (alive and suspect members, retained broadcasts).
    state_hash: bytes = wire_field(1, plain(byte_string(32)))
    #: Where to send the answer.
    reply_to: Address = wire_field(2, address_codec())
    #: Every member the sender knows.
    digest: tuple[DigestEntry, ...] | None = wire_field(
        3, list_of(_DIGEST_ENTRY, MAX_SYNC_ITEMS), optional=True
    )
    #: Signed statements (units) the receiver lacks or asked for.
    statements: tuple[bytes, ...] | None = wire_field(
        4, list_of(plain(byte_string(4096)), 2 * MAX_SYNC_ITEMS), optional=True
    )
    #: Members whose statements the sender wants.
    wanted: tuple[NodeId, ...] | None = wire_field(
        5, list_of(node_id_codec(), MAX_SYNC_ITEMS), optional=True
    )
    #: True for a join: answer with everything.
    join: bool | None = wire_field(6, plain(boolean()), optional=True)
    #: Ids of the broadcasts the sender retains.
    retained: tuple[bytes, ...] | None = wire_field(7, _BROADCAST_IDS, optional=True)
    #: Ids of broadcasts the sender wants.
    wanted_broadcasts: tuple[bytes, ...] | None = wire_field(8, _BROADCAST_IDS, optional=True)


# ---------------------------------------------------------------- work stealing


@dataclass(frozen=True, slots=True)
class Task(Body):
    """One unit of work: a registered function's name and its plain-data arguments."""

    #: 16 random bytes chosen by the origin.
    id: bytes = wire_field(1, _TASK_ID)
    #: The node that submitted it, to which the result goes.
    origin: NodeId = wire_field(2, node_id_codec())
    #: The name under which the function is registered on every node that runs it.
    name: str = wire_field(3, plain(text(200)))
    #: Positional arguments (plain CBOR data).
    args: list[Any] = wire_field(4, Codec(array_of(_ANY.schema, 1 << 16), list, list))
    #: Keyword arguments (plain CBOR data).
    kwargs: dict[str, Any] = wire_field(
        5, Codec(dict_of(text(200), _ANY.schema, 1 << 16), dict, dict)
    )
    #: Tags a node must have to run it (``{"zone": "eu"}``); empty means any node.
    requires: Mapping[str, str] = wire_field(6, tags_codec(), default_factory=dict)


# A record inside TASKS bodies, not a message of its own: no TYPE.
prepare_record(Task)


class TaskResult(NamedTuple):
    """One outcome in a RESULTS message: ``[task id, ok, value or [type, message]]``."""

    #: The task's id.
    task_id: bytes
    #: True if the task returned, False if it raised.
    ok: bool
    #: The returned value, or ``[exception type name, message]``.
    value: Any


_TASK_RESULT: Final = Codec(
    tuple_of(_TASK_ID.schema, boolean(), _ANY.schema),
    lambda value: TaskResult(value[0], value[1], value[2]),
    list,
)


@body_type(MessageType.LOAD)
@dataclass(frozen=True, slots=True)
class Load(Body):
    """"I have this many tasks queued that could be stolen" (datagram)."""

    queued: int = wire_field(1, _UINT)
    #: Of those, how many this node will never run itself (their requirements).
    foreign: int | None = wire_field(2, _UINT, optional=True)


@body_type(MessageType.STEAL)
@dataclass(frozen=True, slots=True)
class Steal(Body):
    """A thief asks a victim for up to ``wanted`` tasks."""

    request: int = wire_field(1, _UINT)
    wanted: int = wire_field(2, plain(uint(1 << 16)))
    #: Tasks the thief has queued already.
    queued: int | None = wire_field(3, _UINT, optional=True)


@body_type(MessageType.TASKS)
@dataclass(frozen=True, slots=True)
class Tasks(Body):
    """The victim's answer to steal ``request``: the tasks it hands over (maybe none)."""

    request: int = wire_field(1, _UINT)
    tasks: tuple[Task, ...] = wire_field(2, list_of(record_codec(Task), 1 << 16))
    #: Stealable tasks the victim has left.
    left: int = wire_field(3, _UINT)


@body_type(MessageType.LEASE)
@dataclass(frozen=True, slots=True)
class Lease(Body):
    """"These tasks of yours are held" — sent to their origin, renewed while held."""

    task_ids: tuple[bytes, ...] = wire_field(1, _TASK_IDS)
    #: Their holder, when not the sender (a victim telling the origin which thief took them).
    holder: NodeId | None = wire_field(2, node_id_codec(), optional=True)


@body_type(MessageType.RESULTS)
@dataclass(frozen=True, slots=True)
class Results(Body):
    """Outcomes of an origin's tasks, sent to the origin."""

    results: tuple[TaskResult, ...] = wire_field(1, list_of(_TASK_RESULT, 1 << 16))


@body_type(MessageType.CANCEL)
@dataclass(frozen=True, slots=True)
class Cancel(Body):
    """The origin no longer wants these tasks run."""

    task_ids: tuple[bytes, ...] = wire_field(1, _TASK_IDS)


#: The typed body class of every protocol message type (``APP`` has free-form bodies).
BODY_CLASSES: Final[dict[int, type[Body]]] = {
    cls.TYPE: cls
    for cls in (
        DirectMessage,
        Alive,
        Suspect,
        Dead,
        Left,
        Broadcast,
        Ping,
        Ack,
        Nack,
        PingReq,
        Sync,
        Load,
        Steal,
        Tasks,
        Lease,
        Results,
        Cancel,
    )
}

#: The strict schema of each type's wire body, derived from :data:`BODY_CLASSES`.
MESSAGE_SCHEMAS: Final[dict[int, Schema]] = {
    MessageType.APP: _ANY.schema,
    **{msg_type: cls.schema() for msg_type, cls in BODY_CLASSES.items()},
}


def schema_of(msg_type: int) -> Schema | None:
    """The strict schema of a message type's wire body, or None for an unknown type."""
    return MESSAGE_SCHEMAS.get(msg_type)


def decode_body(msg_type: int, raw: Any) -> Any:
    """The typed body of a schema-checked wire body (``APP`` bodies stay as they are)."""
    cls = BODY_CLASSES.get(msg_type)
    return raw if cls is None else cls.from_wire(raw)
