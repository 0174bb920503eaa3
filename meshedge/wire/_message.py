"""The signed envelope: one meshedge message is one COSE_Sign1 (RFC 9052).

Layout (see ``docs/wire.md``)::

    18([ h'A10127',                 / protected: {1: -8}, alg EdDSA /
         {4: h'<32-byte key>'},     / unprotected: kid = sender's public key /
         h'<payload>',              / CBOR map {1: mesh, 2: epoch, 3: seq, 4: type, 5: body,
                                          6: protocol version} /
         h'<64-byte signature>' ])  / Ed25519 over the RFC 9052 Sig_structure /

meshedge always writes this exact deterministic encoding and reads only it, so parsing
the outer layer is a few byte comparisons; the payload is decoded with strict CBOR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .._errors import DropReason, LocalProtocolError, RemoteProtocolError
from .._identity import Identity, NodeId
from ._cbor import CborError, check_plain, decode, encode
from ._limits import DEFAULT_LIMITS, WireLimits
from ._message_types import MessageType
from ._replay import ReplayWindow
from ._schema import SchemaViolation
from ._signature import ED25519, SignatureScheme
from ._trust import TrustPolicy
from .bodies import MESSAGE_SCHEMAS, Body, decode_body
from .cose import EDDSA_PROTECTED, HEADER_KID, TAG_SIGN1

__all__ = [
    "FIELD_BODY",
    "FIELD_EPOCH",
    "FIELD_MESH",
    "FIELD_SEQ",
    "FIELD_TYPE",
    "FIELD_VERSION",
    "PROTOCOL_VERSION",
    "SignedMessage",
    "Signer",
    "check_mesh_name",
    "sign_message",
    "unit_length",
    "verify_message",
    "verify_unit",
]

FIELD_MESH: Final = 1
FIELD_EPOCH: Final = 2
FIELD_SEQ: Final = 3
FIELD_TYPE: Final = 4
FIELD_BODY: Final = 5
FIELD_VERSION: Final = 6
_FIELDS: Final = frozenset(
    {FIELD_MESH, FIELD_EPOCH, FIELD_SEQ, FIELD_TYPE, FIELD_BODY, FIELD_VERSION}
)
#: The version of the envelope and of every message body this code reads and writes.
#: A message of another version is refused (``wrong_version``): the format is not
#: negotiated, so nodes of one mesh run one protocol version.
PROTOCOL_VERSION: Final = 1
# The envelope of meshedge 0.1.0, which carried no version field.
_UNVERSIONED_FIELDS: Final = _FIELDS - {FIELD_VERSION}
_UINT64_MAX: Final = 2**64 - 1

_KEY_SIZE: Final = 32
_SIGNATURE_SIZE: Final = 64
# d2 = tag 18, 84 = array(4), 43 a10127 = bstr protected, a1 04 5820 = {4: bstr(32) ...
_PREFIX: Final = (
    bytes([0xC0 | TAG_SIGN1, 0x84, 0x43])
    + EDDSA_PROTECTED
    + bytes([0xA1, HEADER_KID, 0x58, _KEY_SIZE])
)
_KID_END: Final = len(_PREFIX) + _KEY_SIZE
_SIGNATURE_HEADER: Final = bytes([0x58, _SIGNATURE_SIZE])
# Sig_structure = ["Signature1", protected, external_aad = h'', payload]
_SIG_STRUCTURE_PREFIX: Final = b"\x84\x6aSignature1\x43" + EDDSA_PROTECTED + b"\x40"
#: Smallest possible signed unit: prefix, key, empty payload, signature.
MIN_UNIT_SIZE: Final = _KID_END + 1 + len(_SIGNATURE_HEADER) + _SIGNATURE_SIZE


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A message whose signature, mesh, trust and freshness have been checked."""

    #: Who signed it (the key in the COSE ``kid`` header).
    sender: NodeId
    #: The sender's boot epoch (larger after each restart).
    epoch: int
    #: The sender's sequence number within that epoch.
    seq: int
    #: The message type (``MessageType.APP`` for application messages).
    type: int
    #: The body: a typed :class:`~meshedge.wire.bodies.Body` for protocol types, the
    #: application's plain data for ``MessageType.APP`` (and for types a test adds).
    payload: Any


def _bstr_header(length: int) -> bytes:
    if length < 24:
        return bytes([0x40 | length])
    if length < 0x100:
        return bytes([0x58, length])
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


def check_mesh_name(mesh: str, limits: WireLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`LocalProtocolError` unless ``mesh`` is a usable mesh name."""
    if not isinstance(mesh, str) or not mesh:
        raise LocalProtocolError("the mesh name must be a non-empty string")
    try:
        size = len(mesh.encode("utf-8"))
    except UnicodeEncodeError:
        raise LocalProtocolError("the mesh name is not valid UTF-8 text") from None
    if size > limits.max_mesh_name_size:
        raise LocalProtocolError(
            f"the mesh name is longer than {limits.max_mesh_name_size} UTF-8 bytes"
        )


def sign_message(
    identity: Identity,
    payload: Any,
    *,
    mesh: str,
    seq: int,
    type: int | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    signatures: SignatureScheme = ED25519,
) -> bytes:
    """Sign ``payload`` as one COSE_Sign1 message from ``identity`` for ``mesh``.

    ``payload`` is a typed :class:`~meshedge.wire.bodies.Body` (its class gives the
    type) or plain data of ``type`` (``MessageType.APP`` by default). ``seq`` is the
    message's sequence number within the identity's epoch; receivers refuse a number
    they have seen, so each must be used once (:class:`Signer` counts them).

    Raises:
        LocalProtocolError: the payload is not plain CBOR data, does not fit the schema of
            ``type``, nests deeper than the limit, or the message would exceed the
            stream frame limit; ``seq`` is not an unsigned 64-bit integer; or the mesh
            name is unusable.
    """
    check_mesh_name(mesh, limits)
    if isinstance(payload, Body):
        type, payload = payload.TYPE, payload.to_wire()
    elif type is None:
        type = MessageType.APP
    if not isinstance(seq, int) or not 0 <= seq <= _UINT64_MAX:
        raise LocalProtocolError("seq must be an unsigned 64-bit integer")
    schema = MESSAGE_SCHEMAS.get(type)
    if schema is None:
        raise LocalProtocolError(f"unknown message type {type}")
    try:
        check_plain(payload, limits.max_body_depth)
        schema(payload)
    except (CborError, SchemaViolation) as exc:
        raise LocalProtocolError(f"payload refused: {exc}") from None
    try:
        inner = encode(
            {
                FIELD_MESH: mesh,
                FIELD_EPOCH: identity.epoch,
                FIELD_SEQ: seq,
                FIELD_TYPE: int(type),
                FIELD_BODY: payload,
                FIELD_VERSION: PROTOCOL_VERSION,
            }
        )
    except UnicodeEncodeError as exc:
        # A str with a lone surrogate passes the type check but has no UTF-8 form.
        raise LocalProtocolError(f"payload refused: {exc}") from None
    header = _bstr_header(len(inner))
    signature = signatures.sign(identity, _SIG_STRUCTURE_PREFIX + header + inner)
    unit = b"".join((_PREFIX, bytes(identity.node_id), header, inner, _SIGNATURE_HEADER, signature))
    if len(unit) > limits.max_frame_size:
        raise LocalProtocolError(
            f"signed message of {len(unit)} bytes exceeds max_frame_size={limits.max_frame_size}"
        )
    return unit


class Signer:
    """Signs the messages of one identity for one mesh, numbering them 0, 1, 2, ...

    The sequence counter lives here, not in the key: one signer per identity and epoch
    keeps every number unique, which the receivers' replay windows rely on.

    Args:
        identity: the key pair (and boot epoch) to sign with.
        mesh: the mesh name every message carries.
        limits: wire limits (the largest message, the deepest body).
        signatures: the signature scheme.
    """

    __slots__ = ("identity", "limits", "mesh", "signatures", "_next_seq")

    def __init__(
        self,
        identity: Identity,
        *,
        mesh: str,
        limits: WireLimits = DEFAULT_LIMITS,
        signatures: SignatureScheme = ED25519,
    ) -> None:
        check_mesh_name(mesh, limits)
        self.identity = identity
        self.mesh = mesh
        self.limits = limits
        self.signatures = signatures
        self._next_seq = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next message will carry."""
        return self._next_seq

    def sign(self, payload: Any, *, type: int | None = None) -> bytes:
        """Sign ``payload`` (see :func:`sign_message`) with the next sequence number.

        A refused payload uses no number.
        """
        unit = sign_message(
            self.identity,
            payload,
            mesh=self.mesh,
            seq=self._next_seq,
            type=type,
            limits=self.limits,
            signatures=self.signatures,
        )
        self._next_seq += 1
        return unit


def unit_length(data: bytes, start: int = 0) -> int:
    """Length of the signed unit that begins at ``data[start]``.

    Raises:
        RemoteProtocolError: ``malformed`` if no well-formed unit starts there.
    """
    if data[start : start + len(_PREFIX)] != _PREFIX:
        raise RemoteProtocolError(DropReason.MALFORMED, "not a meshedge COSE_Sign1")
    at = start + _KID_END
    if at >= len(data):
        raise RemoteProtocolError(DropReason.MALFORMED, "truncated")
    first = data[at]
    if 0x40 <= first < 0x58:
        length, at = first - 0x40, at + 1
    elif first == 0x58:
        length, at = int.from_bytes(data[at + 1 : at + 2], "big"), at + 2
        minimum = 24
    elif first == 0x59:
        length, at = int.from_bytes(data[at + 1 : at + 3], "big"), at + 3
        minimum = 0x100
    elif first == 0x5A:
        length, at = int.from_bytes(data[at + 1 : at + 5], "big"), at + 5
        minimum = 0x10000
    else:
        raise RemoteProtocolError(DropReason.MALFORMED, "payload is not a definite byte string")
    if first >= 0x58 and length < minimum:
        raise RemoteProtocolError(DropReason.MALFORMED, "non-minimal length encoding")
    end = at + length + len(_SIGNATURE_HEADER) + _SIGNATURE_SIZE
    if end > len(data) or data[at + length : at + length + 2] != _SIGNATURE_HEADER:
        raise RemoteProtocolError(DropReason.MALFORMED, "truncated or bad signature field")
    return end - start


def verify_message(
    data: bytes,
    *,
    mesh: str,
    trust: TrustPolicy | None = None,
    replay: ReplayWindow | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
    max_size: int | None = None,
    signatures: SignatureScheme = ED25519,
) -> SignedMessage:
    """Check one signed message and return it.

    Checks, in order: size (``max_size``, by default ``limits.max_datagram_size``),
    COSE structure, strict CBOR of the payload, mesh name, trust policy, signature,
    message type and its schema, and last the replay window (which then records it).

    Raises:
        RemoteProtocolError: for anything refused, with ``.reason`` saying why. No other
            exception escapes for any input bytes.
    """
    limit = limits.max_datagram_size if max_size is None else max_size
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError(DropReason.MALFORMED, "not bytes")
    data = bytes(data)
    if len(data) > limit:
        raise RemoteProtocolError(DropReason.OVERSIZED, f"{len(data)} bytes > {limit}")
    if unit_length(data) != len(data):
        raise RemoteProtocolError(DropReason.MALFORMED, "trailing bytes after the message")
    return verify_unit(data, mesh, trust, replay, limits, signatures)


def _envelope_fields(payload: bytes, limits: WireLimits) -> dict[int, Any]:
    """The envelope map of a payload, refused unless it is this protocol version's."""
    try:
        fields = decode(payload, max_depth=limits.max_body_depth + 1)
    except CborError as exc:
        raise RemoteProtocolError(DropReason.MALFORMED, f"payload: {exc}") from None
    if type(fields) is dict and (
        fields.get(FIELD_VERSION, PROTOCOL_VERSION) != PROTOCOL_VERSION
        or fields.keys() == _UNVERSIONED_FIELDS
    ):
        raise RemoteProtocolError(
            DropReason.WRONG_VERSION, f"protocol version {fields.get(FIELD_VERSION)!r}"
        )
    if (
        type(fields) is not dict
        or fields.keys() != _FIELDS
        or not all(type(key) is int for key in fields)  # True or 1.0 equal 1, but are not
    ):
        raise RemoteProtocolError(DropReason.MALFORMED, "payload is not the envelope map")
    return fields


def verify_unit(
    unit: bytes,
    mesh: str,
    trust: TrustPolicy | None,
    replay: ReplayWindow | None,
    limits: WireLimits,
    signatures: SignatureScheme,
) -> SignedMessage:
    """Verify one signed unit whose framing :func:`unit_length` has already accepted.

    The same checks as :func:`verify_message` after the size check.

    Raises:
        RemoteProtocolError: refused, with ``.reason``.
    """
    signed_end = len(unit) - _SIGNATURE_SIZE - len(_SIGNATURE_HEADER)
    payload_with_header = unit[_KID_END:signed_end]
    header_size = {0x58: 2, 0x59: 3, 0x5A: 5}.get(unit[_KID_END], 1)
    fields = _envelope_fields(payload_with_header[header_size:], limits)
    if fields[FIELD_MESH] != mesh:
        raise RemoteProtocolError(DropReason.WRONG_MESH, "message for another mesh")
    epoch, seq, msg_type = fields[FIELD_EPOCH], fields[FIELD_SEQ], fields[FIELD_TYPE]
    if type(epoch) is not int or type(seq) is not int or type(msg_type) is not int:
        raise RemoteProtocolError(DropReason.MALFORMED, "epoch, seq and type must be integers")
    if not (0 <= epoch <= _UINT64_MAX and 0 <= seq <= _UINT64_MAX and msg_type >= 0):
        raise RemoteProtocolError(DropReason.MALFORMED, "epoch, seq and type must be unsigned")
    sender = NodeId(unit[len(_PREFIX) : _KID_END])
    if trust is not None and not trust.permits(sender):
        raise RemoteProtocolError(DropReason.UNTRUSTED, f"sender {sender.short} not trusted")
    if not signatures.verify(
        unit[len(_PREFIX) : _KID_END],
        _SIG_STRUCTURE_PREFIX + payload_with_header,
        unit[signed_end + len(_SIGNATURE_HEADER) :],
    ):
        raise RemoteProtocolError(DropReason.BAD_SIGNATURE, f"from {sender.short}")
    schema = MESSAGE_SCHEMAS.get(msg_type)
    if schema is None:
        raise RemoteProtocolError(DropReason.UNKNOWN_TYPE, f"type {msg_type}")
    body = fields[FIELD_BODY]
    try:
        schema(body)
    except SchemaViolation as exc:
        raise RemoteProtocolError(DropReason.SCHEMA, str(exc)) from None
    if replay is not None and not replay.accept(sender, epoch, seq):
        raise RemoteProtocolError(DropReason.REPLAYED, f"epoch {epoch} seq {seq}")
    return SignedMessage(
        sender=sender, epoch=epoch, seq=seq, type=msg_type, payload=decode_body(msg_type, body)
    )
