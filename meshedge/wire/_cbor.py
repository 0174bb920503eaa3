"""Strict CBOR decoding and the "plain data" type check.

meshedge decodes CBOR from peers with cbor2's strict options — bounded depth, no
indefinite-length items, no duplicate map keys — and refuses every CBOR tag (dates,
bignums, shared references, ...) except where the COSE layer expects one. Decoded or
encoded values must be *plain data*: ``None``, ``bool``, ``int`` (64-bit range),
``float``, ``str``, ``bytes``, lists and dicts with ``int``, ``str`` or ``bytes`` keys.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

__all__ = ["CborError", "check_plain", "decode", "decode_sequence", "encode"]

_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1


class CborError(ValueError):
    """Raised by this module for input that is not strict, plain CBOR."""


def _reject_tag(*_args: object) -> Any:
    raise CborError("CBOR tags are not allowed here")


class _TagTable(dict[int, Any]):
    """A semantic-decoder table that rejects every tag but the COSE ones it is given."""

    def __init__(self, allowed: tuple[int, ...]) -> None:
        super().__init__()
        self._allowed = allowed

    def __missing__(self, key: int) -> Any:
        return self.get(key)

    def get(self, key: int, default: Any = None) -> Any:
        if key in self._allowed:
            # cbor2 calls a semantic decoder with the decoded content and a flag.
            return lambda value, _immutable: cbor2.CBORTag(key, value)
        return _reject_tag


_NO_TAGS = _TagTable(())
_COSE_TAGS = _TagTable((16, 18))


def decode(data: bytes, *, max_depth: int, allow_cose_tags: bool = False) -> Any:
    """Decode exactly one strict CBOR item; trailing bytes are an error."""
    items = decode_sequence(data, max_depth=max_depth, max_items=1, allow_cose_tags=allow_cose_tags)
    if len(items) != 1:
        raise CborError("expected exactly one CBOR item")
    return items[0]


def decode_sequence(
    data: bytes, *, max_depth: int, max_items: int, allow_cose_tags: bool = False
) -> list[Any]:
    """Decode a CBOR sequence (RFC 8742): items back to back, at most ``max_items``."""
    if not data:
        raise CborError("empty input")
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        stream,
        tag_hook=_reject_tag,
        semantic_decoders=_COSE_TAGS if allow_cose_tags else _NO_TAGS,
        max_depth=max_depth,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    items: list[Any] = []
    end = len(data)
    try:
        while stream.tell() < end:
            if len(items) == max_items:
                raise CborError(f"more than {max_items} CBOR items")
            items.append(decoder.decode())
    except cbor2.CBORError as exc:
        raise CborError(str(exc)) from None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise CborError(f"{type(exc).__name__}: {exc}") from None
    return items


def encode(value: Any) -> bytes:
    """Encode a value (checked by :func:`check_plain` first by callers that need it)."""
    return cbor2.dumps(value)


def check_plain(value: Any, max_depth: int) -> None:
    """Raise :class:`CborError` unless ``value`` is plain data at most ``max_depth`` deep.

    Depth counts containers: a scalar is 0 deep, ``[1]`` is 1 deep, ``{"a": [1]}`` 2.
    """
    kind = type(value)
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CborError("integer out of the 64-bit CBOR range")
    elif kind in (str, bytes, float, bool) or value is None:
        return
    elif kind is list or kind is tuple:
        if max_depth < 1:
            raise CborError("nested too deeply")
        for item in value:
            check_plain(item, max_depth - 1)
    elif kind is dict:
        if max_depth < 1:
            raise CborError("nested too deeply")
        for key, item in value.items():
            key_kind = type(key)
            if key_kind not in (int, str, bytes):
                raise CborError(f"map keys must be int, str or bytes, not {key_kind.__name__}")
            if key_kind is int and not _INT_MIN <= key <= _INT_MAX:
                raise CborError("integer key out of the 64-bit CBOR range")
            check_plain(item, max_depth - 1)
    else:
        raise CborError(f"{kind.__name__} is not plain CBOR data")
