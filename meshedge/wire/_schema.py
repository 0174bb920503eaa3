"""Tiny declarative schemas for message bodies: each message type has exactly one.

A schema is a callable that takes a decoded body and raises :class:`SchemaViolation`
when the body does not fit. Protocol records are maps with small integer keys, which
keeps them compact on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._cbor import CborError, check_plain

__all__ = [
    "Schema",
    "SchemaViolation",
    "any_plain",
    "array_of",
    "boolean",
    "byte_string",
    "dict_of",
    "record",
    "text",
    "text_map",
    "tuple_of",
    "uint",
]

#: A schema checks a decoded value and raises :class:`SchemaViolation` if it does not fit.
Schema = Callable[[Any], None]


class SchemaViolation(ValueError):
    """A decoded body does not match the schema of its message type."""


def uint(maximum: int = 2**64 - 1) -> Schema:
    """An unsigned integer no larger than ``maximum``."""

    def check(value: Any) -> None:
        if type(value) is not int or not 0 <= value <= maximum:
            raise SchemaViolation(f"expected an unsigned integer <= {maximum}")

    return check


def boolean() -> Schema:
    """``True`` or ``False``."""

    def check(value: Any) -> None:
        if type(value) is not bool:
            raise SchemaViolation("expected a boolean")

    return check


def byte_string(max_size: int, *, min_size: int = 0) -> Schema:
    """A byte string of ``min_size`` to ``max_size`` bytes."""

    def check(value: Any) -> None:
        if type(value) is not bytes or not min_size <= len(value) <= max_size:
            raise SchemaViolation(f"expected {min_size}..{max_size} bytes")

    return check


def text(max_size: int) -> Schema:
    """A text string of at most ``max_size`` UTF-8 bytes."""

    def check(value: Any) -> None:
        if type(value) is not str or len(value.encode("utf-8", "surrogatepass")) > max_size:
            raise SchemaViolation(f"expected text of at most {max_size} bytes")

    return check


def array_of(item: Schema, max_items: int) -> Schema:
    """A list of at most ``max_items`` values, each matching ``item``."""

    def check(value: Any) -> None:
        if type(value) is not list or len(value) > max_items:
            raise SchemaViolation(f"expected a list of at most {max_items} items")
        for element in value:
            item(element)

    return check


def tuple_of(*items: Schema) -> Schema:
    """A list of exactly ``len(items)`` values, each matching the schema at its position."""

    def check(value: Any) -> None:
        if type(value) is not list or len(value) != len(items):
            raise SchemaViolation(f"expected a list of exactly {len(items)} items")
        for element, item in zip(value, items, strict=True):
            item(element)

    return check


def dict_of(key: Schema, value: Schema, max_items: int) -> Schema:
    """A map of at most ``max_items`` entries, keys and values each matching a schema."""

    def check(item: Any) -> None:
        if type(item) is not dict or len(item) > max_items:
            raise SchemaViolation(f"expected a map of at most {max_items} entries")
        for k, v in item.items():
            key(k)
            value(v)

    return check


def text_map(max_items: int, max_key_size: int, max_value_size: int) -> Schema:
    """A map from text to text (member tags, for instance)."""
    key_schema, value_schema = text(max_key_size), text(max_value_size)

    def check(value: Any) -> None:
        if type(value) is not dict or len(value) > max_items:
            raise SchemaViolation(f"expected a text map of at most {max_items} entries")
        for key, element in value.items():
            key_schema(key)
            value_schema(element)

    return check


def record(required: Mapping[int, Schema], optional: Mapping[int, Schema] | None = None) -> Schema:
    """A map with integer keys: every ``required`` key, any ``optional`` one, nothing else."""
    optional = dict(optional or {})
    fields = {**optional, **required}
    needed = frozenset(required)

    def check(value: Any) -> None:
        if type(value) is not dict:
            raise SchemaViolation("expected a map")
        keys = value.keys()
        if not needed <= keys:
            raise SchemaViolation(f"missing fields {sorted(needed - keys)}")
        for key, element in value.items():
            field = fields.get(key) if type(key) is int else None
            if field is None:
                raise SchemaViolation(f"unexpected field {key!r}")
            field(element)

    return check


def any_plain(max_depth: int) -> Schema:
    """Any plain CBOR data (see :func:`meshedge.wire._cbor.check_plain`)."""

    def check(value: Any) -> None:
        try:
            check_plain(value, max_depth)
        except CborError as exc:
            raise SchemaViolation(str(exc)) from None

    return check
