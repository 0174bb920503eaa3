"""Identity (Ed25519 key pair, boot epoch, key files) and NodeId (text form, ordering)."""

from __future__ import annotations

import base64
import copy
import itertools
import os
import pickle
import stat
import string
import time
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshedge import Identity, KeyFileError, LocalProtocolError, NodeId
from meshedge.wire import Signer, verify_message

# RFC 8032 section 7.1, TEST 1: secret key (seed) and public key.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_EMPTY_MESSAGE_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
BASE32_LOWER = set(string.ascii_lowercase + "234567")


def key_file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- Identity: derivation and signing -------------------------------------------------


def test_from_seed_is_the_rfc8032_key_pair() -> None:
    identity = Identity.from_seed(RFC8032_SEED)
    assert bytes(identity.node_id) == RFC8032_PUBLIC
    assert identity.sign(b"") == RFC8032_EMPTY_MESSAGE_SIGNATURE
    assert identity.seed == RFC8032_SEED


def test_from_seed_is_deterministic() -> None:
    seed = bytes(range(32))
    first, second = Identity.from_seed(seed), Identity.from_seed(seed)
    assert first.node_id == second.node_id
    assert first.sign(b"reading") == second.sign(b"reading")


def test_generate_makes_distinct_identities_that_reload_from_their_seed() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.node_id != b.node_id
    assert len(a.seed) == 32
    assert Identity.from_seed(a.seed).node_id == a.node_id


def test_signatures_verify_with_the_node_id_as_public_key() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"hello")
    assert len(signature) == 64
    verify_key = nacl.signing.VerifyKey(bytes(identity.node_id))
    assert verify_key.verify(b"hello", signature) == b"hello"


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "0" * 32])
def test_seed_must_be_32_bytes(seed: object) -> None:
    with pytest.raises(LocalProtocolError):
        Identity.from_seed(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("epoch", [-1, 2**64])
def test_explicit_epoch_must_be_uint64(epoch: int) -> None:
    with pytest.raises(LocalProtocolError):
        Identity.from_seed(bytes(32), epoch=epoch)


def test_explicit_epoch_is_kept_and_a_signer_counts_from_zero() -> None:
    identity = Identity.from_seed(bytes(32), epoch=2**64 - 1)
    assert identity.epoch == 2**64 - 1
    signer = Signer(identity, mesh="m")
    seqs = [verify_message(signer.sign(n), mesh="m").seq for n in range(3)]
    assert seqs == [0, 1, 2]
    assert signer.next_seq == 3
    # A payload the signer refuses uses no number.
    with pytest.raises(LocalProtocolError):
        signer.sign(object())
    assert verify_message(signer.sign("x"), mesh="m").seq == 3


def test_epochs_strictly_increase_within_one_process() -> None:
    before_ms = time.time_ns() // 1_000_000
    epochs = [Identity.generate().epoch for _ in range(200)]
    # Far more identities than milliseconds elapse: equal clock readings still give
    # strictly larger epochs.
    assert all(later > earlier for earlier, later in itertools.pairwise(epochs))
    assert epochs[0] >= before_ms


def test_loaded_identity_gets_a_new_larger_epoch(tmp_path: Path) -> None:
    identity = Identity.generate()
    identity.save(tmp_path / "node.key")
    reloaded = Identity.load(tmp_path / "node.key")
    assert reloaded.node_id == identity.node_id
    assert reloaded.epoch > identity.epoch


def test_repr_does_not_show_the_seed() -> None:
    identity = Identity.from_seed(RFC8032_SEED)
    assert RFC8032_SEED.hex() not in repr(identity)
    assert identity.node_id.short in repr(identity)


# --- Identity: key files ----------------------------------------------------------------


def test_save_writes_mode_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity = Identity.generate()
    identity.save(path)
    assert key_file_mode(path) == 0o600
    assert Identity.load(path).node_id == identity.node_id
    assert Identity.load(str(path)).node_id == identity.node_id
    # Atomic write: no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first, second = Identity.generate(), Identity.generate()
    first.save(path)
    with pytest.raises(KeyFileError, match="overwrite=True"):
        second.save(path)
    assert Identity.load(path).node_id == first.node_id
    second.save(path, overwrite=True)
    assert Identity.load(path).node_id == second.node_id
    assert key_file_mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]


def test_save_refuses_to_replace_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "node.key"
    link.symlink_to(target)
    with pytest.raises(KeyFileError):
        Identity.generate().save(link)
    assert not target.exists()


def test_save_into_a_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot write"):
        Identity.generate().save(tmp_path / "missing" / "node.key")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        Identity.load(tmp_path / "nope.key")


def write_key_file(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    data = text.encode("ascii") if isinstance(text, str) else text
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        ("zz" * 32 + "\n", "line 1: expected 64 hex digits"),
        ("ab" * 31 + "\n", "expected 64 hex digits"),
        ("ab" * 33 + "\n", "expected 64 hex digits"),
        ("# comment\n" + "ab" * 32 + " trailing\n", "line 2"),
        ("ab" * 32 + "\n" + "cd" * 32 + "\n", "exactly one seed"),
        (b"\xff\xfe" + b"ab" * 32, "not a text key file"),
    ],
)
def test_load_malformed_file(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = write_key_file(tmp_path / "node.key", content)
    with pytest.raises(KeyFileError, match=message):
        Identity.load(path)


def test_load_accepts_comments_blank_lines_and_uppercase_hex(tmp_path: Path) -> None:
    path = write_key_file(
        tmp_path / "node.key", "# my node\n\n  " + RFC8032_SEED.hex().upper() + "  \n\n"
    )
    assert bytes(Identity.load(path).node_id) == RFC8032_PUBLIC


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o602, 0o660])
def test_load_refuses_a_file_others_can_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    Identity.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Identity.load(path)


def test_load_refuses_a_directory_and_a_symlink(tmp_path: Path) -> None:
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        Identity.load(directory)
    real = tmp_path / "real.key"
    Identity.generate().save(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(KeyFileError):
        Identity.load(link)


def test_load_or_create_creates_once_then_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    created = Identity.load_or_create(path)
    assert key_file_mode(path) == 0o600
    loaded = Identity.load_or_create(path)
    assert loaded.node_id == created.node_id


def test_load_or_create_does_not_replace_a_bad_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "node.key", "not a key\n")
    with pytest.raises(KeyFileError):
        Identity.load_or_create(path)
    assert path.read_text() == "not a key\n"
    Identity.generate().save(tmp_path / "open.key")
    os.chmod(tmp_path / "open.key", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Identity.load_or_create(tmp_path / "open.key")


# --- NodeId ------------------------------------------------------------------------------


def test_node_id_text_form_round_trips() -> None:
    node_id = Identity.from_seed(RFC8032_SEED).node_id
    text = str(node_id)
    assert len(text) == 52
    assert set(text) <= BASE32_LOWER
    assert text == base64.b32encode(RFC8032_PUBLIC).decode().rstrip("=").lower()
    assert NodeId.parse(text) == node_id
    assert repr(node_id) == f"NodeId('{text}')"


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=200)
def test_node_id_text_round_trips_for_any_key(key: bytes) -> None:
    node_id = NodeId(key)
    text = str(node_id)
    assert len(text) == 52 and set(text) <= BASE32_LOWER
    assert NodeId.parse(text) == node_id
    assert bytes(NodeId.parse(text)) == key


def _non_canonical_last_char(text: str) -> str:
    # 52 base32 characters carry 260 bits; the last character's low 4 bits are padding
    # and must be zero. Setting one of them gives a string that decodes to the same key.
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet.index(text[-1])
    return text[:-1] + alphabet[last | 1]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a" * 51,
        "a" * 53,
        "a" * 56,
        "0" + "a" * 51,  # 0, 1, 8, 9 are not base32
        "1" * 52,
        "8" * 52,
        "a" * 48 + "====",
        "a" * 51 + "=",
        " " + "a" * 51,
        "a" * 51 + "\n",
        "é" * 52,
        "\u017f" * 52,  # upper() of the long s is "S": must not sneak through
    ],
)
def test_node_id_parse_rejects_junk(bad: str) -> None:
    with pytest.raises(LocalProtocolError, match="not a node id"):
        NodeId.parse(bad)


def test_node_id_parse_rejects_uppercase() -> None:
    # The text form is lowercase; one id has exactly one text form.
    text = str(NodeId(RFC8032_PUBLIC))
    first_letter = next(i for i, c in enumerate(text) if c.isalpha())
    variants = [text.upper(), text[:first_letter] + text[first_letter:].capitalize()]
    for variant in variants:
        assert variant != text
        with pytest.raises(LocalProtocolError, match="non-canonical"):
            NodeId.parse(variant)


def test_node_id_parse_rejects_non_canonical_padding_bits() -> None:
    text = str(NodeId(RFC8032_PUBLIC))
    bad = _non_canonical_last_char(text)
    assert bad != text
    assert base64.b32decode(bad.upper() + "====") == RFC8032_PUBLIC  # decodes, but...
    with pytest.raises(LocalProtocolError, match="non-canonical"):
        NodeId.parse(bad)


@pytest.mark.parametrize("bad", [None, b"a" * 52, 42])
def test_node_id_parse_rejects_non_strings(bad: object) -> None:
    with pytest.raises(LocalProtocolError):
        NodeId.parse(bad)  # type: ignore[arg-type]


@given(
    st.text(min_size=50, max_size=54)
    | st.text(
        alphabet="abcdefghijklmnopqrstuvwxyz234567ABYZ=018\u0131\u017f", min_size=52, max_size=52
    )
    | st.binary(min_size=32, max_size=32).map(lambda key: str(NodeId(key)))
)
@settings(max_examples=300)
def test_node_id_parse_only_accepts_the_canonical_form(text: str) -> None:
    try:
        node_id = NodeId.parse(text)
    except LocalProtocolError:
        return
    assert str(node_id) == text


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), bytearray(32), "a" * 32])
def test_node_id_needs_32_bytes(key: object) -> None:
    with pytest.raises(LocalProtocolError):
        NodeId(key)  # type: ignore[arg-type]


def test_node_id_short_is_a_prefix() -> None:
    node_id = NodeId(RFC8032_PUBLIC)
    assert len(node_id.short) == 8
    assert str(node_id).startswith(node_id.short)


def test_node_id_is_immutable() -> None:
    node_id = NodeId(RFC8032_PUBLIC)
    with pytest.raises(AttributeError):
        node_id.extra = 1  # type: ignore[attr-defined]
    assert bytes(node_id) == RFC8032_PUBLIC


def test_node_id_survives_copy_and_pickle() -> None:
    node_id = NodeId(RFC8032_PUBLIC)
    for copied in (
        copy.copy(node_id),
        copy.deepcopy({"peer": node_id})["peer"],
        pickle.loads(pickle.dumps(node_id)),
    ):
        assert type(copied) is NodeId
        assert copied == node_id
        assert str(copied) == str(node_id)


def test_node_id_equality_hashing_and_dict_keys() -> None:
    a1, a2 = NodeId(bytes(32)), NodeId(bytes(32))
    b = NodeId(b"\x01" * 32)
    assert a1 == a2 and a1 is not a2
    assert hash(a1) == hash(a2)
    assert a1 != b
    table = {a1: "a"}
    assert table[a2] == "a"
    assert b not in table
    assert len({a1, a2, b}) == 2
    assert (a1 == "x") is False


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=10))
@settings(max_examples=100)
def test_node_id_order_is_byte_order(keys: list[bytes]) -> None:
    ids = [NodeId(key) for key in keys]
    assert [bytes(n) for n in sorted(ids)] == sorted(keys)
    first, second = ids[0], ids[1]
    assert (first < second) == (keys[0] < keys[1])
    assert (first <= second) == (keys[0] <= keys[1])
    assert (first > second) == (keys[0] > keys[1])
