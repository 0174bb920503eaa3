"""Low-level COSE (RFC 9052): COSE_Sign1 with EdDSA, COSE_Encrypt0 with ChaCha20/Poly1305.

These functions know COSE and nothing of meshes; :mod:`meshedge.wire._message` builds the
meshedge envelope on top of them. They interoperate with any RFC 9052 implementation
(the tests check the COSE working group's examples).
"""

from __future__ import annotations

from typing import Any, Final

import cbor2
import nacl.bindings
import nacl.exceptions

from ._cbor import CborError, decode

__all__ = [
    "ALG_CHACHA20_POLY1305",
    "ALG_EDDSA",
    "CHACHA20_POLY1305_PROTECTED",
    "CoseError",
    "EDDSA_PROTECTED",
    "HEADER_ALG",
    "HEADER_IV",
    "HEADER_KID",
    "NONCE_SIZE",
    "TAG_ENCRYPT0",
    "TAG_SIGN1",
    "decrypt0",
    "enc_structure",
    "encode_sign1",
    "encrypt0",
    "sig_structure",
    "split_encrypt0",
    "split_sign1",
    "verify_sign1",
]

TAG_SIGN1: Final = 18
TAG_ENCRYPT0: Final = 16
HEADER_ALG: Final = 1
HEADER_KID: Final = 4
HEADER_IV: Final = 5
ALG_EDDSA: Final = -8
ALG_CHACHA20_POLY1305: Final = 24
#: ChaCha20/Poly1305 (IETF) takes a 96-bit nonce and appends a 128-bit tag.
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16

#: The protected header meshedge always sends: ``{1: -8}`` (alg: EdDSA).
EDDSA_PROTECTED: Final = cbor2.dumps({HEADER_ALG: ALG_EDDSA})
#: ``{1: 24}`` (alg: ChaCha20/Poly1305).
CHACHA20_POLY1305_PROTECTED: Final = cbor2.dumps({HEADER_ALG: ALG_CHACHA20_POLY1305})

_MAX_HEADER_DEPTH: Final = 4


class CoseError(ValueError):
    """A COSE structure is malformed, uses another algorithm, or fails its check."""


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The exact bytes an EdDSA COSE_Sign1 signs (RFC 9052 §4.4)."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload])


def enc_structure(protected: bytes, external_aad: bytes = b"") -> bytes:
    """The additional authenticated data of a COSE_Encrypt0 (RFC 9052 §5.3)."""
    return cbor2.dumps(["Encrypt0", protected, external_aad])


def encode_sign1(
    protected: bytes, unprotected: dict[int, Any], payload: bytes, signature: bytes
) -> bytes:
    """Serialize a tagged COSE_Sign1."""
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected, unprotected, payload, signature]))


def split_sign1(item: Any) -> tuple[bytes, dict[Any, Any], bytes, bytes]:
    """Check the shape of a decoded COSE_Sign1 and return its four fields."""
    if not isinstance(item, cbor2.CBORTag) or item.tag != TAG_SIGN1:
        raise CoseError("not a tagged COSE_Sign1")
    value = item.value
    if type(value) is not list or len(value) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4")
    protected, unprotected, payload, signature = value
    if type(protected) is not bytes or type(unprotected) is not dict:
        raise CoseError("bad COSE_Sign1 headers")
    if type(payload) is not bytes or type(signature) is not bytes:
        raise CoseError("COSE_Sign1 payload and signature must be byte strings")
    return protected, unprotected, payload, signature


def _protected_alg(protected: bytes) -> Any:
    if not protected:
        return None
    try:
        header = decode(protected, max_depth=_MAX_HEADER_DEPTH)
    except CborError as exc:
        raise CoseError(f"protected header: {exc}") from None
    if type(header) is not dict:
        raise CoseError("protected header must be a map")
    return header.get(HEADER_ALG)


def verify_sign1(data: bytes, public_key: bytes, external_aad: bytes = b"") -> bytes:
    """Verify an EdDSA COSE_Sign1 with an Ed25519 public key and return its payload.

    Raises:
        CoseError: malformed, not EdDSA, or the signature does not verify.
    """
    try:
        item = decode(data, max_depth=_MAX_HEADER_DEPTH, allow_cose_tags=True)
    except CborError as exc:
        raise CoseError(str(exc)) from None
    protected, _unprotected, payload, signature = split_sign1(item)
    if _protected_alg(protected) != ALG_EDDSA:
        raise CoseError("COSE_Sign1 algorithm is not EdDSA")
    if not ed25519_verify(public_key, sig_structure(protected, payload, external_aad), signature):
        raise CoseError("bad signature")
    return payload


def ed25519_verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``data`` under ``public_key``."""
    if len(signature) != nacl.bindings.crypto_sign_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + data, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def encrypt0(key: bytes, plaintext: bytes, *, nonce: bytes, external_aad: bytes = b"") -> bytes:
    """A tagged COSE_Encrypt0 of ``plaintext`` with ChaCha20/Poly1305 under ``key``."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError("ChaCha20/Poly1305 needs a 12-byte nonce")
    protected = CHACHA20_POLY1305_PROTECTED
    ciphertext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        plaintext, enc_structure(protected, external_aad), nonce, key
    )
    return cbor2.dumps(cbor2.CBORTag(TAG_ENCRYPT0, [protected, {HEADER_IV: nonce}, ciphertext]))


def split_encrypt0(item: Any) -> tuple[bytes, bytes, bytes]:
    """Check a decoded ChaCha20/Poly1305 COSE_Encrypt0; return (protected, nonce, ciphertext)."""
    if not isinstance(item, cbor2.CBORTag) or item.tag != TAG_ENCRYPT0:
        raise CoseError("not a tagged COSE_Encrypt0")
    value = item.value
    if type(value) is not list or len(value) != 3:
        raise CoseError("COSE_Encrypt0 must be an array of 3")
    protected, unprotected, ciphertext = value
    if type(protected) is not bytes or type(unprotected) is not dict:
        raise CoseError("bad COSE_Encrypt0 headers")
    if type(ciphertext) is not bytes or len(ciphertext) < TAG_SIZE:
        raise CoseError("COSE_Encrypt0 ciphertext missing or too short")
    nonce = unprotected.get(HEADER_IV)
    if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
        raise CoseError("COSE_Encrypt0 needs a 12-byte IV (header 5)")
    return protected, nonce, ciphertext


def decrypt0(data: bytes | Any, key: bytes, external_aad: bytes = b"") -> bytes:
    """Decrypt a ChaCha20/Poly1305 COSE_Encrypt0 (bytes, or an already decoded item).

    Raises:
        CoseError: malformed, another algorithm, or authentication failed.
    """
    if isinstance(data, bytes):
        try:
            data = decode(data, max_depth=_MAX_HEADER_DEPTH, allow_cose_tags=True)
        except CborError as exc:
            raise CoseError(str(exc)) from None
    protected, nonce, ciphertext = split_encrypt0(data)
    if (
        protected != CHACHA20_POLY1305_PROTECTED
        and _protected_alg(protected) != ALG_CHACHA20_POLY1305
    ):
        raise CoseError("COSE_Encrypt0 algorithm is not ChaCha20/Poly1305")
    try:
        return nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
            ciphertext, enc_structure(protected, external_aad), nonce, key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise CoseError("decryption failed") from None
