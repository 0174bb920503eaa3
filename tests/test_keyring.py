"""Mesh keys: rotation, key files, and encrypted datagrams and frames."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from wire_helpers import MESH, make_identity, sign_message

from meshedge import (
    DropReason,
    KeyFileError,
    Keyring,
    LocalProtocolError,
    RemoteProtocolError,
)
from meshedge.wire import (
    ReplayWindow,
    cose,
    open_datagram,
    open_frame,
    seal_datagram,
    seal_frame,
)

OLD, NEW, OTHER = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


def counter_nonces() -> Callable[[int], bytes]:
    """A deterministic nonce source: 0, 1, 2, ... as 12-byte big-endian numbers."""
    state = {"next": 0}

    def nonce(size: int) -> bytes:
        value = state["next"]
        state["next"] = value + 1
        return value.to_bytes(size, "big")

    return nonce


def datagram_from(keyring: Keyring | None, payload: object = "reading") -> bytes:
    unit = sign_message(make_identity(1), payload, mesh=MESH)
    return seal_datagram([unit], keyring=keyring)


def opens_with(datagram: bytes, keyring: Keyring | None) -> bool:
    try:
        opened = open_datagram(datagram, mesh=MESH, keyring=keyring)
    except RemoteProtocolError as exc:
        assert exc.reason is DropReason.DECRYPT_FAILED
        return False
    assert [m.payload for m in opened.messages] == ["reading"]
    return True


# --- The ring --------------------------------------------------------------------------------


def test_primary_is_first_and_keys_are_deduplicated() -> None:
    ring = Keyring([OLD, NEW, OLD])
    assert ring.primary == OLD
    assert ring.keys == (OLD, NEW)
    ring.add(NEW)
    assert ring.keys == (OLD, NEW)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), bytearray(32), "k" * 32])
def test_add_validates_the_key(key: object) -> None:
    ring = Keyring([OLD])
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        ring.add(key)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        Keyring([key])  # type: ignore[list-item]
    assert ring.keys == (OLD,)


def test_a_ring_needs_a_key() -> None:
    with pytest.raises(LocalProtocolError, match="at least one key"):
        Keyring([])


def test_use_and_remove_rules() -> None:
    ring = Keyring([OLD])
    with pytest.raises(LocalProtocolError, match="add a key"):
        ring.use(NEW)
    with pytest.raises(LocalProtocolError, match="primary"):
        ring.remove(OLD)
    with pytest.raises(LocalProtocolError, match="not in the ring"):
        ring.remove(NEW)
    ring.add(NEW)
    ring.use(NEW)
    assert ring.primary == NEW and ring.keys == (NEW, OLD)
    ring.remove(OLD)
    assert ring.keys == (NEW,)


def test_repr_does_not_show_keys() -> None:
    ring = Keyring([OLD, NEW])
    assert OLD.hex() not in repr(ring) and "2 keys" in repr(ring)


def test_generate_key() -> None:
    first, second = Keyring.generate_key(), Keyring.generate_key()
    assert len(first) == 32 and first != second
    assert Keyring([first]).primary == first


# --- Rotation without downtime ----------------------------------------------------------------


def test_rotation_without_downtime() -> None:
    a, b = Keyring([OLD]), Keyring([OLD])
    # Step 1: every node adds the new key. Nothing changes on the wire yet.
    a.add(NEW)
    b.add(NEW)
    before_switch = datagram_from(a)
    assert cose.decrypt0(before_switch, OLD)
    # Step 2: node a switches first; b has not yet, and both still understand each other.
    a.use(NEW)
    from_a, from_b = datagram_from(a), datagram_from(b)
    assert cose.decrypt0(from_a, NEW)
    with pytest.raises(cose.CoseError):
        cose.decrypt0(from_a, OLD)
    assert opens_with(from_a, b)
    assert opens_with(from_b, a)
    # Step 3: everyone uses the new key, then drops the old one.
    b.use(NEW)
    a.remove(OLD)
    b.remove(OLD)
    assert opens_with(datagram_from(b), a)
    assert not opens_with(before_switch, a)
    assert not opens_with(from_b, a)
    # A node that missed the rotation is locked out both ways.
    stale = Keyring([OLD])
    assert not opens_with(datagram_from(a), stale)
    assert not opens_with(datagram_from(stale), a)


def test_old_key_decrypts_only_while_in_the_ring() -> None:
    ring = Keyring([NEW, OLD])
    sealed = Keyring([OLD]).encrypt(b"payload")
    assert ring.decrypt(sealed) == b"payload"
    ring.remove(OLD)
    with pytest.raises(RemoteProtocolError) as info:
        ring.decrypt(sealed)
    assert info.value.reason is DropReason.DECRYPT_FAILED


# --- Encryption details ---------------------------------------------------------------------


def test_each_encryption_uses_a_fresh_nonce() -> None:
    ring = Keyring([OLD])
    first, second = ring.encrypt(b"same"), ring.encrypt(b"same")
    assert first != second
    assert cose.decrypt0(first, OLD) == cose.decrypt0(second, OLD) == b"same"


def test_injected_nonce_source_makes_encryption_deterministic() -> None:
    a = Keyring([OLD], nonce_source=counter_nonces())
    b = Keyring([OLD], nonce_source=counter_nonces())
    assert [a.encrypt(b"x") for _ in range(3)] == [b.encrypt(b"x") for _ in range(3)]
    assert a.encrypt(b"x") != a.encrypt(b"x")


def test_external_aad_must_match() -> None:
    ring = Keyring([OLD])
    sealed = ring.encrypt(b"x", external_aad=b"context")
    assert ring.decrypt(sealed, external_aad=b"context") == b"x"
    with pytest.raises(RemoteProtocolError):
        ring.decrypt(sealed)


# --- Encrypted datagrams and frames ---------------------------------------------------------


def test_encrypted_datagram_round_trip_hides_the_payload() -> None:
    ring = Keyring([OLD])
    datagram = datagram_from(ring, "top secret reading")
    assert b"top secret reading" not in datagram
    assert bytes(make_identity(1).node_id) not in datagram  # even the sender is hidden
    opened = open_datagram(datagram, mesh=MESH, keyring=Keyring([OLD]))
    assert [m.payload for m in opened.messages] == ["top secret reading"]


def test_node_without_the_key_cannot_read() -> None:
    datagram = datagram_from(Keyring([OLD]))
    assert not opens_with(datagram, Keyring([OTHER]))
    assert not opens_with(datagram, None)  # no keyring at all


def test_plaintext_to_a_keyring_node_is_refused() -> None:
    # Admission control: without the key, a node cannot inject even validly signed
    # messages into an encrypted mesh.
    assert not opens_with(datagram_from(None), Keyring([OLD]))
    unit = sign_message(make_identity(1), "reading", mesh=MESH)
    with pytest.raises(RemoteProtocolError) as info:
        open_frame(unit, mesh=MESH, keyring=Keyring([OLD]))
    assert info.value.reason is DropReason.DECRYPT_FAILED


def test_tampered_ciphertext_is_refused() -> None:
    ring = Keyring([OLD])
    datagram = bytearray(datagram_from(ring))
    for index in (len(datagram) - 1, len(datagram) // 2, 5):
        tampered = bytearray(datagram)
        tampered[index] ^= 0x01
        assert not opens_with(bytes(tampered), ring), index


def test_encrypted_frame_round_trip_and_replay() -> None:
    ring = Keyring([OLD])
    unit = sign_message(make_identity(1), {"state": [1, 2]}, mesh=MESH)
    frame = seal_frame(unit, keyring=ring)
    replay = ReplayWindow()
    assert open_frame(frame, mesh=MESH, keyring=ring, replay=replay).payload == {"state": [1, 2]}
    # Re-sending the same encrypted bytes is still a replay of the signed unit inside.
    with pytest.raises(RemoteProtocolError) as info:
        open_frame(frame, mesh=MESH, keyring=ring, replay=replay)
    assert info.value.reason is DropReason.REPLAYED
    with pytest.raises(RemoteProtocolError) as info:
        open_frame(frame, mesh=MESH, keyring=Keyring([OTHER]))
    assert info.value.reason is DropReason.DECRYPT_FAILED


def test_encrypted_empty_plaintext_is_malformed() -> None:
    ring = Keyring([OLD])
    for opener in (open_datagram, open_frame):
        with pytest.raises(RemoteProtocolError) as info:
            opener(ring.encrypt(b""), mesh=MESH, keyring=ring)
        assert info.value.reason is DropReason.MALFORMED


# --- Key files --------------------------------------------------------------------------------


def test_save_and_load_keep_order_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "mesh.key"
    Keyring([NEW, OLD]).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Keyring.load(path)
    assert loaded.keys == (NEW, OLD)
    assert loaded.primary == NEW
    with pytest.raises(KeyFileError, match="overwrite=True"):
        Keyring([OTHER]).save(path)
    Keyring([OTHER]).save(path, overwrite=True)
    assert Keyring.load(path).keys == (OTHER,)


def test_load_refuses_open_permissions(tmp_path: Path) -> None:
    path = tmp_path / "mesh.key"
    Keyring([OLD]).save(path)
    for mode in (0o640, 0o604, 0o666):
        os.chmod(path, mode)
        with pytest.raises(KeyFileError, match="chmod 600"):
            Keyring.load(path)
    os.chmod(path, 0o400)
    assert Keyring.load(path).keys == (OLD,)


def test_load_refuses_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        Keyring.load(tmp_path / "missing.key")
    path = tmp_path / "mesh.key"
    path.write_text(OLD.hex() + "\nnot a key\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="line 2"):
        Keyring.load(path)
    path.write_text("# no keys here\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        Keyring.load(path)
