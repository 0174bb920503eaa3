"""Signature schemes behind the envelope: real Ed25519, and a fast stand-in for simulation."""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from .._identity import Identity
from .cose import ed25519_verify

__all__ = ["ED25519", "INSECURE_SIMULATION_SIGNATURES", "SignatureScheme"]

SIGNATURE_SIZE: Final = 64


class SignatureScheme(Protocol):
    """Signs and verifies the COSE ``Sig_structure`` bytes; signatures are 64 bytes."""

    def sign(self, identity: Identity, data: bytes) -> bytes:
        """The 64-byte signature of ``data`` by ``identity``."""
        ...

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        """True if ``signature`` is valid for ``data`` under ``public_key``."""
        ...


class _Ed25519:
    """Ed25519 (RFC 8032) through libsodium: what every real node uses."""

    def sign(self, identity: Identity, data: bytes) -> bytes:
        return identity.sign(data)

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        return ed25519_verify(public_key, data, signature)

    def __repr__(self) -> str:
        return "ED25519"


class _InsecureSimulationSignatures:
    """A keyed BLAKE2b stand-in with Ed25519's 64-byte size — NOT a signature.

    Anyone who knows a public key can forge it. It exists so that the simulator can run a
    thousand nodes quickly while every packet keeps its true size on the wire.
    """

    def sign(self, identity: Identity, data: bytes) -> bytes:
        return hashlib.blake2b(
            data, key=bytes(identity.node_id), digest_size=SIGNATURE_SIZE
        ).digest()

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        expected = hashlib.blake2b(data, key=public_key, digest_size=SIGNATURE_SIZE).digest()
        return expected == signature

    def __repr__(self) -> str:
        return "INSECURE_SIMULATION_SIGNATURES"


#: Real Ed25519 signatures (the default everywhere outside the simulator).
ED25519: Final[SignatureScheme] = _Ed25519()
#: Forgeable same-size stand-in for simulations only; never use it on a network.
INSECURE_SIMULATION_SIGNATURES: Final[SignatureScheme] = _InsecureSimulationSignatures()
