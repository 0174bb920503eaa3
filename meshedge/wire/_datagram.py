"""Datagrams and stream frames: how signed units travel, optionally encrypted.

A datagram is a CBOR sequence (RFC 8742) of one or more signed units back to back
(memberlist's compound packets, with each unit still verifiable on its own). A stream
frame carries exactly one signed unit. With a :class:`~meshedge.Keyring`, the datagram
or frame is wrapped whole in one COSE_Encrypt0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from .._errors import DropReason, LocalProtocolError, RemoteProtocolError
from ._cbor import CborError, decode
from ._keyring import Keyring
from ._limits import DEFAULT_LIMITS, WireLimits
from ._message import SignedMessage, unit_length, verify_unit
from ._replay import ReplayWindow
from ._signature import ED25519, SignatureScheme
from ._trust import TrustPolicy
from .cose import NONCE_SIZE, TAG_ENCRYPT0, TAG_SIGN1

__all__ = [
    "ENCRYPTION_OVERHEAD",
    "OpenedDatagram",
    "datagram_room",
    "open_datagram",
    "open_frame",
    "seal_datagram",
    "seal_frame",
    "split_datagram",
]

#: Most bytes a COSE_Encrypt0 wrapper adds: tag, array, protected {1: 24}, {5: 12-byte
#: IV}, a byte-string header of up to 5 bytes and the 16-byte Poly1305 tag.
ENCRYPTION_OVERHEAD: Final = 1 + 1 + 5 + 2 + 1 + NONCE_SIZE + 5 + 16
_SIGN1_FIRST_BYTE: Final = 0xC0 | TAG_SIGN1
_ENCRYPT0_FIRST_BYTE: Final = 0xC0 | TAG_ENCRYPT0


@dataclass(slots=True)
class OpenedDatagram:
    """What :func:`open_datagram` found: accepted messages and per-unit refusals."""

    #: Units that passed every check, in datagram order.
    messages: list[SignedMessage] = field(default_factory=list)
    #: One error per refused unit (each with its ``reason``).
    rejected: list[RemoteProtocolError] = field(default_factory=list)


def datagram_room(limits: WireLimits = DEFAULT_LIMITS, keyring: Keyring | None = None) -> int:
    """Bytes of signed units that fit in one datagram under these limits."""
    return limits.max_datagram_size - (ENCRYPTION_OVERHEAD if keyring is not None else 0)


def seal_datagram(
    units: Sequence[bytes],
    *,
    keyring: Keyring | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
) -> bytes:
    """Pack signed units (from :func:`sign_message`) into one datagram.

    Raises:
        LocalProtocolError: no units, too many, or the datagram would exceed
            ``limits.max_datagram_size``.
    """
    if not units or len(units) > limits.max_units_per_datagram:
        raise LocalProtocolError(
            f"a datagram holds 1..{limits.max_units_per_datagram} signed units"
        )
    data = b"".join(units)
    if keyring is not None:
        data = keyring.encrypt(data)
    if len(data) > limits.max_datagram_size:
        raise LocalProtocolError(
            f"datagram of {len(data)} bytes exceeds max_datagram_size={limits.max_datagram_size}"
        )
    return data


def seal_frame(
    unit: bytes, *, keyring: Keyring | None = None, limits: WireLimits = DEFAULT_LIMITS
) -> bytes:
    """Wrap one signed unit as a stream frame body (encrypted with a keyring).

    Raises:
        LocalProtocolError: the frame would exceed ``limits.max_frame_size``.
    """
    data = keyring.encrypt(unit) if keyring is not None else unit
    if len(data) > limits.max_frame_size:
        raise LocalProtocolError(
            f"frame of {len(data)} bytes exceeds max_frame_size={limits.max_frame_size}"
        )
    return data


def _plaintext(data: bytes, keyring: Keyring | None) -> bytes:
    first = data[0] if data else -1
    if keyring is None:
        if first == _ENCRYPT0_FIRST_BYTE:
            raise RemoteProtocolError(DropReason.DECRYPT_FAILED, "encrypted, and no keyring")
        return data
    if first != _ENCRYPT0_FIRST_BYTE:
        raise RemoteProtocolError(DropReason.DECRYPT_FAILED, "not encrypted, keyring required")
    try:
        item = decode(data, max_depth=3, allow_cose_tags=True)
    except CborError as exc:
        raise RemoteProtocolError(DropReason.DECRYPT_FAILED, f"bad COSE_Encrypt0: {exc}") from None
    return keyring.decrypt(item)


def split_datagram(
    data: bytes, *, keyring: Keyring | None = None, limits: WireLimits = DEFAULT_LIMITS
) -> list[bytes]:
    """Decrypt (with a keyring) and split a datagram into its signed units, unverified.

    Verify each with :func:`~meshedge.wire._message.verify_unit`.

    Raises:
        RemoteProtocolError: ``oversized``, ``decrypt_failed`` or ``malformed`` framing.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError(DropReason.MALFORMED, "not bytes")
    data = bytes(data)
    if len(data) > limits.max_datagram_size:
        raise RemoteProtocolError(
            DropReason.OVERSIZED, f"{len(data)} bytes > {limits.max_datagram_size}"
        )
    plain = _plaintext(data, keyring)
    units: list[bytes] = []
    at = 0
    while at < len(plain):
        if len(units) == limits.max_units_per_datagram:
            raise RemoteProtocolError(DropReason.MALFORMED, "too many units in one datagram")
        length = unit_length(plain, at)
        units.append(plain[at : at + length])
        at += length
    if not units:
        raise RemoteProtocolError(DropReason.MALFORMED, "empty datagram")
    return units


def open_datagram(
    data: bytes,
    *,
    mesh: str,
    keyring: Keyring | None = None,
    trust: TrustPolicy | None = None,
    replay: ReplayWindow | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    signatures: SignatureScheme = ED25519,
) -> OpenedDatagram:
    """Decrypt (with a keyring) and verify every signed unit of a datagram.

    A unit that fails its checks is reported in ``rejected``; the others are still
    accepted, since each is signed on its own.

    Raises:
        RemoteProtocolError: the datagram as a whole is refused (``oversized``,
            ``decrypt_failed``, or ``malformed`` framing). Nothing else escapes.
    """
    units = split_datagram(data, keyring=keyring, limits=limits)
    opened = OpenedDatagram()
    for unit in units:
        try:
            opened.messages.append(verify_unit(unit, mesh, trust, replay, limits, signatures))
        except RemoteProtocolError as exc:
            opened.rejected.append(exc)
    return opened


def open_frame(
    data: bytes,
    *,
    mesh: str,
    keyring: Keyring | None = None,
    trust: TrustPolicy | None = None,
    replay: ReplayWindow | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    signatures: SignatureScheme = ED25519,
) -> SignedMessage:
    """Decrypt (with a keyring) and verify the one signed unit of a stream frame.

    Raises:
        RemoteProtocolError: refused, with ``.reason``. Nothing else escapes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError(DropReason.MALFORMED, "not bytes")
    data = bytes(data)
    if len(data) > limits.max_frame_size:
        raise RemoteProtocolError(
            DropReason.OVERSIZED, f"{len(data)} bytes > {limits.max_frame_size}"
        )
    plain = _plaintext(data, keyring)
    if not plain or plain[0] != _SIGN1_FIRST_BYTE or unit_length(plain) != len(plain):
        raise RemoteProtocolError(DropReason.MALFORMED, "a frame holds exactly one signed unit")
    return verify_unit(plain, mesh, trust, replay, limits, signatures)
