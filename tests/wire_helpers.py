"""Shared helpers for the wire tests: fixed identities and hand-built messages.

``craft`` signs arbitrary payload bytes with a valid signature, so tests can check what
a receiver does with messages that ``sign_message`` would never produce.
"""

from __future__ import annotations

from typing import Any

import cbor2

from meshedge import Identity
from meshedge.wire import cose
from meshedge.wire._message import PROTOCOL_VERSION
from meshedge.wire._message import sign_message as _sign_message

MESH = "test-mesh"
#: A realistic boot epoch (wall-clock milliseconds, November 2023).
EPOCH = 1_700_000_000_000


def make_identity(number: int, epoch: int = EPOCH) -> Identity:
    """A deterministic identity: seed = ``number`` repeated 32 times."""
    return Identity.from_seed(bytes([number]) * 32, epoch=epoch)


def envelope(
    *,
    mesh: Any = MESH,
    epoch: Any = EPOCH,
    seq: Any = 0,
    type_: Any = 1,
    body: bytes = b"\xf6",
    version: Any = PROTOCOL_VERSION,
) -> bytes:
    """The signed payload map ``{1: mesh, 2: epoch, 3: seq, 4: type, 5: body, 6: version}``.

    ``body`` is raw CBOR, so a test can put anything there (tags, indefinite lengths).
    """
    fields = [
        (1, cbor2.dumps(mesh)),
        (2, cbor2.dumps(epoch)),
        (3, cbor2.dumps(seq)),
        (4, cbor2.dumps(type_)),
        (5, body),
        (6, cbor2.dumps(version)),
    ]
    return b"\xa6" + b"".join(cbor2.dumps(key) + value for key, value in fields)


# id(identity) -> (the identity, kept alive so its id is not reused; its next number)
_NEXT_SEQ: dict[int, tuple[Identity, int]] = {}


def sign_message(identity: Identity, payload: Any, *, mesh: str, **options: Any) -> bytes:
    """:func:`meshedge.wire.sign_message`, numbering each ``Identity`` object's messages.

    Unless ``seq`` is given, every Identity object counts 0, 1, 2, ... of its own, as
    the Signer of one node does: a test that makes a fresh identity starts at 0.
    """
    if "seq" in options:
        return _sign_message(identity, payload, mesh=mesh, **options)
    seq = _NEXT_SEQ.get(id(identity), (identity, 0))[1]
    unit = _sign_message(identity, payload, mesh=mesh, seq=seq, **options)
    _NEXT_SEQ[id(identity)] = (identity, seq + 1)
    return unit


def craft(identity: Identity, payload: bytes) -> bytes:
    """A COSE_Sign1 over ``payload`` with a valid Ed25519 signature by ``identity``."""
    protected = cose.EDDSA_PROTECTED
    signature = identity.sign(cose.sig_structure(protected, payload))
    return cose.encode_sign1(
        protected, {cose.HEADER_KID: bytes(identity.node_id)}, payload, signature
    )


def nested_list(depth: int) -> Any:
    """``[[...[0]...]]`` with ``depth`` containers (a scalar is depth 0)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_map(depth: int) -> Any:
    """``{"k": {"k": ... 0}}`` with ``depth`` containers."""
    value: Any = 0
    for _ in range(depth):
        value = {"k": value}
    return value
