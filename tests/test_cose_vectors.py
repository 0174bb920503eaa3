"""Interoperability: the COSE working group's examples, and an independent COSE library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from pycose.keys import OKPKey
from pycose.messages import Sign1Message
from wire_helpers import MESH, make_identity, sign_message

from meshedge import Keyring
from meshedge.wire import cose, seal_frame
from meshedge.wire._message import PROTOCOL_VERSION

# Copies of the COSE working group's public-domain examples (see vectors/cose/README.md),
# kept with the tests so that any clone runs them.
VECTORS = Path(__file__).resolve().parent / "vectors" / "cose"
CONTENT = b"This is the content."


def load_vector(name: str) -> dict[str, Any]:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(
            f"COSE test vector {path} is missing from the repository",
            pytrace=False,
        )
    vector: dict[str, Any] = json.loads(path.read_text())
    return vector


def test_eddsa_sign1_vector_verifies() -> None:
    vector = load_vector("eddsa-sig-01.json")
    message = bytes.fromhex(vector["output"]["cbor"])
    public_key = bytes.fromhex(vector["input"]["sign0"]["key"]["x_hex"])
    assert cose.verify_sign1(message, public_key) == CONTENT
    # What we sign is the vector's ToBeSign.
    protected = cbor2.loads(message).value[0]
    expected = bytes.fromhex(vector["intermediates"]["ToBeSign_hex"])
    assert cose.sig_structure(protected, CONTENT) == expected


def test_eddsa_sign1_vector_refuses_tampering_and_other_keys() -> None:
    vector = load_vector("eddsa-sig-01.json")
    message = bytes.fromhex(vector["output"]["cbor"])
    public_key = bytes.fromhex(vector["input"]["sign0"]["key"]["x_hex"])
    tampered = message.replace(CONTENT, b"This is the CONTENT.")
    with pytest.raises(cose.CoseError, match="bad signature"):
        cose.verify_sign1(tampered, public_key)
    with pytest.raises(cose.CoseError, match="bad signature"):
        cose.verify_sign1(message, bytes(make_identity(1).node_id))
    with pytest.raises(cose.CoseError, match="bad signature"):
        cose.verify_sign1(message, public_key, external_aad=b"aad")
    with pytest.raises(cose.CoseError):
        cose.verify_sign1(message + b"\x00", public_key)


def test_chacha_poly_encrypt0_vector_decrypts() -> None:
    vector = load_vector("chacha-poly-enc-01.json")
    message = bytes.fromhex(vector["output"]["cbor"])
    key = bytes.fromhex(vector["intermediates"]["CEK_hex"])
    assert cose.decrypt0(message, key) == CONTENT
    tampered = bytearray(message)
    tampered[-1] ^= 1
    with pytest.raises(cose.CoseError, match="decryption failed"):
        cose.decrypt0(bytes(tampered), key)
    with pytest.raises(cose.CoseError, match="decryption failed"):
        cose.decrypt0(message, bytes(32))


def test_chacha_poly_encrypt0_round_trip_reproduces_the_vector() -> None:
    vector = load_vector("chacha-poly-enc-01.json")
    key = bytes.fromhex(vector["intermediates"]["CEK_hex"])
    nonce = bytes.fromhex(vector["input"]["rng_stream"][0])
    expected = bytes.fromhex(vector["output"]["cbor"])
    assert cose.encrypt0(key, CONTENT, nonce=nonce) == expected


def _pycose_sign1(message: bytes, public_key: bytes) -> Sign1Message:
    # pycose 1.1's Sign1Message.decode breaks with cbor2 6 (which decodes the content of
    # an unknown tag into tuples and frozendicts), so hand it the decoded array.
    value = cbor2.loads(message).value
    decoded = Sign1Message.from_cose_obj([value[0], dict(value[1]), value[2], value[3]], True)
    decoded.key = OKPKey(crv="Ed25519", x=public_key)
    return decoded


def test_meshedge_messages_verify_with_pycose() -> None:
    identity = make_identity(1)
    data = sign_message(identity, {"celsius": 21.5}, mesh=MESH)
    message = _pycose_sign1(data, bytes(identity.node_id))
    assert message.verify_signature()
    assert cbor2.loads(message.payload)[5] == {"celsius": 21.5}
    # The key id header names the signer.
    assert dict(cbor2.loads(data).value[1]) == {cose.HEADER_KID: bytes(identity.node_id)}


def test_tampered_meshedge_message_fails_pycose() -> None:
    identity = make_identity(1)
    data = bytearray(sign_message(identity, {"celsius": 21.5}, mesh=MESH))
    at = data.index(cbor2.dumps(21.5))
    data[at + 3] ^= 1
    assert not _pycose_sign1(bytes(data), bytes(identity.node_id)).verify_signature()
    other = make_identity(2)
    genuine = sign_message(identity, "x", mesh=MESH)
    assert not _pycose_sign1(genuine, bytes(other.node_id)).verify_signature()


def test_meshedge_messages_verify_with_the_low_level_cose_code() -> None:
    identity = make_identity(1)
    data = sign_message(identity, [1, 2, 3], mesh=MESH)
    payload = cose.verify_sign1(data, bytes(identity.node_id))
    assert cbor2.loads(payload) == {
        1: MESH,
        2: identity.epoch,
        3: 0,
        4: 1,
        5: [1, 2, 3],
        6: PROTOCOL_VERSION,
    }


def test_keyring_output_is_a_standard_encrypt0() -> None:
    key = bytes(range(32))
    keyring = Keyring([key])
    unit = sign_message(make_identity(1), "secret reading", mesh=MESH)
    for plaintext, sealed in (
        (b"plain bytes", keyring.encrypt(b"plain bytes")),
        (unit, seal_frame(unit, keyring=keyring)),
    ):
        tag = cbor2.loads(sealed)
        assert tag.tag == cose.TAG_ENCRYPT0
        protected, unprotected, ciphertext = tag.value
        assert cbor2.loads(protected) == {cose.HEADER_ALG: cose.ALG_CHACHA20_POLY1305}
        assert set(unprotected) == {cose.HEADER_IV}
        assert len(unprotected[cose.HEADER_IV]) == cose.NONCE_SIZE
        assert len(ciphertext) == len(plaintext) + 16  # Poly1305 tag
        assert plaintext not in sealed
    assert cose.decrypt0(keyring.encrypt(b"plain bytes"), key) == b"plain bytes"
    assert cose.decrypt0(seal_frame(unit, keyring=keyring), key) == unit
    with pytest.raises(cose.CoseError):
        cose.decrypt0(keyring.encrypt(b"plain bytes"), bytes(32))


def test_the_pycose_recipe_in_the_wire_doc_works() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "wire.md").read_text(encoding="utf-8")
    recipe = doc.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(recipe, scope)
    identity = make_identity(1)
    data = sign_message(identity, {"celsius": 21.5}, mesh=MESH)
    assert scope["verify_with_pycose"](data)[5] == {"celsius": 21.5}
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ValueError, match="bad signature"):
        scope["verify_with_pycose"](tampered)
