"""How typed message bodies map to the integer-keyed CBOR maps of the wire.

A body class declares each field with :func:`wire_field`: its integer key and its
:class:`Codec` (the strict schema of the wire value, and the conversions either way).
:func:`body_type` turns such a dataclass into a :class:`Body` of one message type and
derives its schema from the declarations. The classes themselves are in
:mod:`meshedge.wire.bodies`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .._identity import NodeId
from ._message_types import MAX_HOST_SIZE, MessageType
from ._schema import Schema, array_of, byte_string, record, text, text_map, tuple_of, uint

__all__ = [
    "Address",
    "Body",
    "Codec",
    "address_codec",
    "body_type",
    "list_of",
    "node_id_codec",
    "plain",
    "prepare_record",
    "record_codec",
    "tags_codec",
    "wire_field",
]

#: ``(host, port)``: where a member receives datagrams and stream connections.
Address = tuple[str, int]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Codec:
    """How one field travels: its wire schema and the conversions either way.

    ``decode`` and ``encode`` are None where the wire form is the typed form.
    """

    #: Raises :class:`~meshedge.wire._schema.SchemaViolation` for a bad wire value.
    schema: Schema
    #: Wire value (already schema-checked) -> typed value.
    decode: Callable[[Any], Any] | None = None
    #: Typed value -> wire value.
    encode: Callable[[Any], Any] | None = None


def plain(schema: Schema) -> Codec:
    """A field whose wire form is its typed form."""
    return Codec(schema)


def list_of(item: Codec, max_items: int) -> Codec:
    """A list on the wire, a tuple of ``item``'s typed values in code."""
    decode_item, encode_item = item.decode, item.encode
    return Codec(
        array_of(item.schema, max_items),
        tuple if decode_item is None else lambda value: tuple(map(decode_item, value)),
        list if encode_item is None else lambda value: [encode_item(v) for v in value],
    )


def node_id_codec() -> Codec:
    """A 32-byte key on the wire, a :class:`~meshedge._identity.NodeId` in code."""
    return Codec(byte_string(32, min_size=32), NodeId, bytes)


def address_codec() -> Codec:
    """``[host, port]`` on the wire, a ``(host, port)`` tuple in code."""
    return Codec(
        tuple_of(text(MAX_HOST_SIZE), uint(65535)),
        lambda value: (value[0], value[1]),
        list,
    )


def tags_codec() -> Codec:
    """Member tags: a small text-to-text map."""
    return Codec(text_map(64, 128, 256), dict, dict)


def wire_field(
    key: int,
    codec: Codec,
    *,
    optional: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a body field: its integer ``key`` on the wire and its ``codec``.

    An optional field defaults to None and is left out of the wire map when None. A
    ``default_factory`` only spares callers an argument: the field is still required
    on the wire.
    """
    metadata = {"key": key, "codec": codec, "optional": optional}
    if optional:
        return field(default=None, metadata=metadata)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(metadata=metadata)


_FieldPlan = tuple[str, int, bool, Callable[[Any], Any] | None, Callable[[Any], Any] | None]


class Body:
    """Base of every typed body. Subclasses are frozen, slotted dataclasses."""

    __slots__ = ()

    #: The message type this body is the body of.
    TYPE: ClassVar[MessageType]
    _PLAN: ClassVar[tuple[_FieldPlan, ...]]
    _SCHEMA: ClassVar[Schema]

    def to_wire(self) -> dict[int, Any]:
        """The integer-keyed CBOR map the wire carries."""
        out: dict[int, Any] = {}
        for name, key, optional, _decode, encode in self._PLAN:
            value = getattr(self, name)
            if value is None and optional:
                continue
            out[key] = value if encode is None else encode(value)
        return out

    @classmethod
    def from_wire(cls: type[_B], raw: Mapping[int, Any]) -> _B:
        """Build the typed body from a wire map that passed :func:`schema_of`."""
        values: dict[str, Any] = {}
        for name, key, optional, decode, _encode in cls._PLAN:
            if optional and key not in raw:
                continue
            value = raw[key]
            values[name] = value if decode is None else decode(value)
        return cls(**values)

    @classmethod
    def schema(cls) -> Schema:
        """The strict schema of this body's wire map."""
        return cls._SCHEMA


_B = TypeVar("_B", bound=Body)


def body_type(msg_type: MessageType) -> Callable[[type[_B]], type[_B]]:
    """Class decorator: make a dataclass a :class:`Body` of ``msg_type``."""

    def wrap(cls: type[_B]) -> type[_B]:
        prepare_record(cls)
        cls.TYPE = msg_type
        return cls

    return wrap


def prepare_record(cls: type[Any]) -> None:
    """Derive the field plan and the schema of a dataclass of :func:`wire_field` fields."""
    plan: list[_FieldPlan] = []
    required: dict[int, Schema] = {}
    optional: dict[int, Schema] = {}
    for item in dataclasses.fields(cls):
        key, codec = item.metadata["key"], item.metadata["codec"]
        is_optional = item.metadata["optional"]
        plan.append((item.name, key, is_optional, codec.decode, codec.encode))
        (optional if is_optional else required)[key] = codec.schema
    cls._PLAN = tuple(plan)
    cls._SCHEMA = record(required, optional)


def record_codec(cls: type[_B]) -> Codec:
    """A nested record (a :class:`Body` subclass without a type of its own)."""
    return Codec(cls.schema(), cls.from_wire, lambda value: value.to_wire())
