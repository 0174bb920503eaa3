"""The signed envelope, datagrams, frames, limits, replay protection and trust."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_helpers import (
    EPOCH,
    MESH,
    craft,
    envelope,
    make_identity,
    nested_list,
    nested_map,
    sign_message,
)

from meshedge import (
    DropReason,
    Identity,
    Keyring,
    LocalProtocolError,
    NodeId,
    RemoteProtocolError,
    TrustPolicy,
    WireLimits,
)
from meshedge.wire import (
    DEFAULT_LIMITS,
    ENCRYPTION_OVERHEAD,
    INSECURE_SIMULATION_SIGNATURES,
    MessageType,
    ReplayWindow,
    cose,
    datagram_room,
    open_datagram,
    open_frame,
    seal_datagram,
    seal_frame,
    verify_message,
)
from meshedge.wire._message import PROTOCOL_VERSION
from meshedge.wire._schema import record, uint
from meshedge.wire.bodies import MESSAGE_SCHEMAS

KEYRING = Keyring([bytes(range(32))])
#: A sensor reading whose CBOR body is about 100 bytes.
READING = {
    "sensor": "greenhouse-3/temp",
    "celsius": 21.5,
    "humidity": 0.43,
    "ok": True,
    "samples": [212, 214, 215, 213],
    "note": "calibrated 2024-05",
}


def refused(call: Callable[[], object]) -> DropReason:
    """Run ``call``, which must raise RemoteProtocolError, and return the reason."""
    with pytest.raises(RemoteProtocolError) as info:
        call()
    return info.value.reason


def verify_reason(data: bytes, **kwargs: Any) -> DropReason:
    kwargs.setdefault("mesh", MESH)
    return refused(lambda: verify_message(data, **kwargs))


# --- Plain data round trip ---------------------------------------------------------------

INT64 = st.integers(min_value=-(2**64), max_value=2**64 - 1)
SCALARS = (
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
KEYS = INT64 | st.text(max_size=10) | st.binary(max_size=10)


def plain_data(depth: int) -> st.SearchStrategy[Any]:
    """Plain CBOR data nested at most ``depth`` containers deep."""
    if depth == 0:
        return SCALARS
    inner = plain_data(depth - 1)
    return SCALARS | st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4)


@given(plain_data(4))
@settings(max_examples=150)
def test_plain_payload_round_trips(payload: Any) -> None:
    identity = make_identity(1)
    replay = ReplayWindow()
    data = sign_message(identity, payload, mesh=MESH)
    message = verify_message(
        data, mesh=MESH, trust=TrustPolicy.open(), replay=replay, max_size=len(data)
    )
    assert message.payload == payload
    assert message.sender == identity.node_id
    assert (message.epoch, message.type) == (EPOCH, MessageType.APP)
    assert message.seq == 0


def test_envelope_bytes_are_exactly_the_documented_layout() -> None:
    # The byte-exact layout of docs/wire.md, built independently with cbor2.
    data = sign_message(make_identity(1), READING, mesh=MESH)
    expected = craft(make_identity(1), envelope(seq=0, body=cbor2.dumps(READING)))
    assert data == expected
    tag, array, protected_header = data[0], data[1], data[2:6]
    assert (tag, array, protected_header) == (0xD2, 0x84, bytes.fromhex("43a10127"))
    assert data[6:10] == bytes.fromhex("a1045820")
    assert data[10:42] == bytes(make_identity(1).node_id)
    assert data[-66:-64] == bytes.fromhex("5840")


def test_sequence_numbers_count_up_and_extremes_round_trip() -> None:
    identity = Identity.from_seed(bytes(32), epoch=2**64 - 1)
    seqs = [verify_message(sign_message(identity, n, mesh=MESH), mesh=MESH).seq for n in range(3)]
    assert seqs == [0, 1, 2]
    assert verify_message(sign_message(identity, None, mesh=MESH), mesh=MESH).epoch == 2**64 - 1
    top = craft(identity, envelope(epoch=2**64 - 1, seq=2**64 - 1))
    assert verify_message(top, mesh=MESH).seq == 2**64 - 1


def test_tuples_are_sent_as_lists() -> None:
    message = verify_message(sign_message(make_identity(1), (1, (2,)), mesh=MESH), mesh=MESH)
    assert message.payload == [1, [2]]


def test_any_bytes_like_is_accepted() -> None:
    data = sign_message(make_identity(1), "x", mesh=MESH)
    assert verify_message(bytearray(data), mesh=MESH).payload == "x"
    assert verify_message(memoryview(data), mesh=MESH).payload == "x"
    assert verify_reason("not bytes") is DropReason.MALFORMED  # type: ignore[arg-type]


# --- Integrity ---------------------------------------------------------------------------


def test_every_single_bit_flip_is_refused() -> None:
    data = sign_message(make_identity(1), READING, mesh=MESH)
    assert 95 <= len(cbor2.dumps(READING)) <= 110
    assert verify_message(data, mesh=MESH).payload == READING
    reasons: set[DropReason] = set()
    for index in range(len(data)):
        for bit in range(8):
            tampered = bytearray(data)
            tampered[index] ^= 1 << bit
            # No trust policy and no replay window: the refusal must come from the
            # structure, the mesh name or the signature.
            reasons.add(verify_reason(bytes(tampered)))
    assert DropReason.BAD_SIGNATURE in reasons
    assert DropReason.MALFORMED in reasons
    assert reasons <= {
        DropReason.BAD_SIGNATURE,
        DropReason.MALFORMED,
        DropReason.WRONG_MESH,
        DropReason.WRONG_VERSION,
    }


def test_signature_from_another_key_is_refused() -> None:
    alice, mallory = make_identity(1), make_identity(2)
    genuine = sign_message(alice, "hi", mesh=MESH)
    forged = craft(mallory, envelope(body=cbor2.dumps("hi")))
    # Mallory's payload and signature under Alice's key id.
    forged_as_alice = genuine[:42] + forged[42:]
    assert verify_reason(forged_as_alice) is DropReason.BAD_SIGNATURE


def test_small_order_key_cannot_forge_a_message() -> None:
    # The identity point as public key with R = identity, S = 0 "verifies" any message
    # under a lax Ed25519 check; libsodium refuses small-order keys and R values.
    identity_point = b"\x01" + bytes(31)
    forged = cose.encode_sign1(
        cose.EDDSA_PROTECTED,
        {cose.HEADER_KID: identity_point},
        envelope(body=cbor2.dumps("forged")),
        identity_point + bytes(32),
    )
    assert verify_reason(forged) is DropReason.BAD_SIGNATURE


def test_trailing_bytes_are_refused() -> None:
    data = sign_message(make_identity(1), "x", mesh=MESH)
    assert verify_reason(data + b"\x00") is DropReason.MALFORMED
    assert verify_reason(data + data) is DropReason.MALFORMED
    assert verify_reason(data[:-1]) is DropReason.MALFORMED
    assert verify_reason(b"") is DropReason.MALFORMED


def test_only_the_exact_meshedge_encoding_is_read() -> None:
    identity = make_identity(1)
    payload = envelope(body=cbor2.dumps("x"))
    signature = identity.sign(cbor2.dumps(["Signature1", bytes.fromhex("a10127"), b"", payload]))
    kid = bytes(identity.node_id)
    variants = {
        # A valid COSE_Sign1 with an extra unprotected header.
        "extra header": cbor2.dumps(
            cbor2.CBORTag(18, [bytes.fromhex("a10127"), {4: kid, 99: 1}, payload, signature])
        ),
        # Untagged COSE_Sign1.
        "untagged": cbor2.dumps([bytes.fromhex("a10127"), {4: kid}, payload, signature]),
        # The payload length written in a longer form than needed.
        "non-minimal length": (
            craft(identity, payload)[:42]
            + b"\x59"
            + len(payload).to_bytes(2, "big")
            + payload
            + b"\x58\x40"
            + signature
        ),
    }
    for name, data in variants.items():
        assert verify_reason(data) is DropReason.MALFORMED, name


# --- Mesh, trust, replay -----------------------------------------------------------------


def test_wrong_mesh_is_refused() -> None:
    data = sign_message(make_identity(1), "x", mesh="mesh-a")
    assert verify_message(data, mesh="mesh-a").payload == "x"
    assert verify_reason(data, mesh="mesh-b") is DropReason.WRONG_MESH
    assert verify_reason(data, mesh="Mesh-a") is DropReason.WRONG_MESH
    not_text = craft(make_identity(1), envelope(mesh=b"mesh-a"))
    assert verify_reason(not_text, mesh="mesh-a") is DropReason.WRONG_MESH


def test_untrusted_sender_is_refused() -> None:
    alice, bob = make_identity(1), make_identity(2)
    data = sign_message(alice, "x", mesh=MESH)
    only_bob = TrustPolicy.allow([bob.node_id])
    assert verify_reason(data, trust=only_bob) is DropReason.UNTRUSTED
    both = TrustPolicy.allow([bob.node_id, str(alice.node_id)])
    assert verify_message(data, mesh=MESH, trust=both).sender == alice.node_id
    assert verify_message(data, mesh=MESH, trust=TrustPolicy.open()).sender == alice.node_id


def test_trust_policy_api() -> None:
    alice = make_identity(1)
    policy = TrustPolicy.allow([str(alice.node_id)])
    assert not policy.is_open and policy.allowed == frozenset({alice.node_id})
    assert policy.permits(alice.node_id) and not policy.permits(make_identity(2).node_id)
    assert TrustPolicy.open().is_open and TrustPolicy.open().allowed is None
    assert TrustPolicy.allow([]).permits(alice.node_id) is False
    with pytest.raises(LocalProtocolError):
        TrustPolicy.allow(["not-an-id"])
    with pytest.raises(LocalProtocolError):
        TrustPolicy.allow([bytes(alice.node_id)])  # type: ignore[list-item]


def test_replay_is_refused() -> None:
    replay = ReplayWindow()
    data = sign_message(make_identity(1), "x", mesh=MESH)
    assert verify_message(data, mesh=MESH, replay=replay).seq == 0
    assert verify_reason(data, replay=replay) is DropReason.REPLAYED


def test_older_epoch_after_newer_is_refused() -> None:
    seed = bytes([1]) * 32
    before_restart = Identity.from_seed(seed, epoch=1000)
    after_restart = Identity.from_seed(seed, epoch=2000)
    old = sign_message(before_restart, "old", mesh=MESH)
    new = sign_message(after_restart, "new", mesh=MESH)
    replay = ReplayWindow()
    assert verify_message(new, mesh=MESH, replay=replay).epoch == 2000
    assert verify_reason(old, replay=replay) is DropReason.REPLAYED
    # In the other order the restart is accepted: seq 0 again, in a larger epoch.
    replay = ReplayWindow()
    assert verify_message(old, mesh=MESH, replay=replay).seq == 0
    assert verify_message(new, mesh=MESH, replay=replay).seq == 0


def test_refused_messages_do_not_use_up_sequence_numbers() -> None:
    identity = make_identity(1)
    replay = ReplayWindow()
    genuine = sign_message(identity, "x", mesh=MESH)
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
    assert verify_reason(tampered, replay=replay) is DropReason.BAD_SIGNATURE
    assert verify_reason(genuine, replay=replay, mesh="other") is DropReason.WRONG_MESH
    untrusted = TrustPolicy.allow([])
    assert verify_reason(genuine, replay=replay, trust=untrusted) is DropReason.UNTRUSTED
    assert verify_message(genuine, mesh=MESH, replay=replay).seq == 0


def test_checks_run_in_the_documented_order() -> None:
    # docs/wire.md: size, framing, CBOR, mesh, trust, signature, type, schema, replay.
    alice = make_identity(1)

    def bad_signature(data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1])

    unknown_type = craft(alice, envelope(type_=UNKNOWN_TYPES[-1]))
    assert verify_reason(unknown_type) is DropReason.UNKNOWN_TYPE
    assert verify_reason(bad_signature(unknown_type)) is DropReason.BAD_SIGNATURE
    assert verify_reason(bad_signature(unknown_type), trust=TrustPolicy.allow([])) is (
        DropReason.UNTRUSTED
    )
    assert verify_reason(unknown_type, mesh="other", trust=TrustPolicy.allow([])) is (
        DropReason.WRONG_MESH
    )
    bad_schema = craft(alice, envelope(body=b"\xf7"))
    assert verify_reason(bad_signature(bad_schema)) is DropReason.BAD_SIGNATURE
    malformed = craft(alice, envelope(mesh="other", body=b"\x9f\xff"))
    assert verify_reason(malformed, mesh="other") is DropReason.MALFORMED
    big = sign_message(alice, "x" * 2000, mesh=MESH)
    assert verify_reason(big[:-1]) is DropReason.OVERSIZED
    # Replay is checked last: a replayed message with a bad schema counts as schema.
    replay = ReplayWindow()
    replay.accept(alice.node_id, EPOCH, 0)
    assert verify_reason(bad_schema, replay=replay) is DropReason.SCHEMA


# --- ReplayWindow ------------------------------------------------------------------------

A = NodeId(bytes([1]) * 32)
B = NodeId(bytes([2]) * 32)
C = NodeId(bytes([3]) * 32)


def test_replay_window_accepts_reordering_once() -> None:
    window = ReplayWindow(window=8)
    assert window.accept(A, 1, 5)
    assert window.accept(A, 1, 3)
    assert not window.accept(A, 1, 3)
    assert window.accept(A, 1, 4)
    assert not window.accept(A, 1, 5)
    assert window.accept(A, 1, 6)
    assert window.accept(A, 1, 0)
    assert not window.accept(A, 1, 0)


def test_replay_window_edge() -> None:
    window = ReplayWindow(window=8)
    assert window.accept(A, 1, 100)
    assert not window.accept(A, 1, 92)  # window behind
    assert window.accept(A, 1, 93)  # window - 1 behind
    assert not window.accept(A, 1, 93)
    # A jump of exactly the window forgets the whole bitmap except the new highest.
    assert window.accept(A, 1, 108)
    assert not window.accept(A, 1, 100)
    assert window.accept(A, 1, 101)
    # A jump far beyond the window.
    assert window.accept(A, 1, 10_000)
    assert not window.accept(A, 1, 108)
    assert window.accept(A, 1, 9_993)


def test_replay_window_epochs() -> None:
    window = ReplayWindow(window=8)
    assert window.accept(A, 5, 50)
    assert not window.accept(A, 4, 1000)
    assert window.accept(A, 6, 0)  # restarted
    assert not window.accept(A, 5, 51)
    assert not window.accept(A, 6, 0)


def test_replay_window_evicts_least_recently_heard_sender() -> None:
    window = ReplayWindow(max_senders=2)
    assert window.accept(A, 1, 0)
    assert window.accept(B, 1, 0)
    assert not window.accept(A, 1, 0)  # touches A: B is now the oldest
    assert window.accept(C, 1, 0)
    assert len(window) == 2
    assert not window.accept(A, 1, 0)
    assert not window.accept(C, 1, 0)
    # B was forgotten, so its replay gets through: the documented caveat.
    assert window.accept(B, 1, 0)
    assert len(window) == 2


def test_replay_window_forget_and_validation() -> None:
    window = ReplayWindow()
    assert window.accept(A, 1, 0)
    window.forget(A)
    window.forget(B)  # unknown: no error
    assert len(window) == 0
    assert window.accept(A, 1, 0)
    for bad in ({"window": 0}, {"max_senders": 0}, {"window": -1}):
        with pytest.raises(LocalProtocolError):
            ReplayWindow(**bad)


@given(
    window_size=st.integers(1, 70),
    events=st.lists(
        st.tuples(st.sampled_from([A, B]), st.integers(0, 2), st.integers(0, 150)), max_size=120
    ),
)
@settings(max_examples=100)
def test_replay_window_matches_a_simple_model(
    window_size: int, events: list[tuple[NodeId, int, int]]
) -> None:
    window = ReplayWindow(window=window_size)
    # The model: per sender, the current epoch, the highest sequence and every sequence
    # seen in that epoch.
    model: dict[NodeId, tuple[int, int, set[int]]] = {}
    for sender, epoch, seq in events:
        state = model.get(sender)
        if state is None or epoch > state[0]:
            expected = True
            model[sender] = (epoch, seq, {seq})
        elif epoch < state[0] or seq in state[2] or seq <= state[1] - window_size:
            expected = False
        else:
            expected = True
            state[2].add(seq)
            model[sender] = (epoch, max(state[1], seq), state[2])
        assert window.accept(sender, epoch, seq) is expected, (sender, epoch, seq)


# --- Garbage never escapes as anything but RemoteProtocolError ------------------------------


def receivers() -> list[Callable[[bytes], object]]:
    limits = WireLimits(max_datagram_size=4096, max_frame_size=4096)
    return [
        lambda data: verify_message(data, mesh=MESH, replay=ReplayWindow(), limits=limits),
        lambda data: open_datagram(data, mesh=MESH, limits=limits),
        lambda data: open_frame(data, mesh=MESH, limits=limits),
        lambda data: open_datagram(data, mesh=MESH, keyring=KEYRING, limits=limits),
        lambda data: open_frame(data, mesh=MESH, keyring=KEYRING, limits=limits),
    ]


def only_remote_errors(data: bytes) -> None:
    for receive in receivers():
        with contextlib.suppress(RemoteProtocolError):
            receive(data)


def _valid_samples() -> list[bytes]:
    alice, bob = make_identity(1), make_identity(2)
    one = sign_message(alice, READING, mesh=MESH)
    two = sign_message(bob, [1, {"a": b"b"}], mesh=MESH)
    return [
        one,
        seal_datagram([one, two]),
        seal_datagram([one, two], keyring=KEYRING),
        seal_frame(two, keyring=KEYRING),
    ]


VALID = _valid_samples()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_random_bytes_only_raise_remote_errors(data: bytes) -> None:
    only_remote_errors(data)
    # Behind a valid prefix the parser gets further.
    only_remote_errors(VALID[0][:42] + data)
    only_remote_errors(b"\xd0\x83" + data)


@given(mutated())
@settings(max_examples=200)
def test_mutated_messages_only_raise_remote_errors(data: bytes) -> None:
    only_remote_errors(data)


@given(st.binary(max_size=300) | mutated())
@settings(max_examples=150)
def test_random_plaintext_behind_valid_encryption_only_raises_remote_errors(
    plaintext: bytes,
) -> None:
    only_remote_errors(KEYRING.encrypt(plaintext))


# Anything cbor2 can encode, including what meshedge refuses (tags, undefined, NaN, ...).
WEIRD = st.recursive(
    SCALARS
    | st.floats()
    | st.just(cbor2.undefined)
    | st.builds(cbor2.CBORSimpleValue, st.integers(32, 255))
    | st.builds(cbor2.CBORTag, st.integers(0, 2**32), st.integers()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


@given(
    st.binary(max_size=200)
    | st.builds(
        lambda fields: cbor2.dumps(fields), st.dictionaries(st.integers(0, 6), WEIRD, max_size=6)
    )
    | st.builds(
        lambda mesh, epoch, seq, type_, body: envelope(
            mesh=mesh, epoch=epoch, seq=seq, type_=type_, body=cbor2.dumps(body)
        ),
        st.just(MESH) | WEIRD,
        st.just(EPOCH) | WEIRD,
        st.just(0) | WEIRD,
        st.just(1) | WEIRD,
        WEIRD,
    )
)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_validly_signed_garbage_only_raises_remote_errors(payload: bytes) -> None:
    # A signature that verifies gets the payload past every cheap check.
    data = craft(make_identity(1), payload)
    only_remote_errors(data)
    only_remote_errors(seal_datagram([data, VALID[0]], limits=WireLimits(max_datagram_size=9999)))
    only_remote_errors(KEYRING.encrypt(data))


# --- Limits: exactly at the limit is accepted, one past it is refused ---------------------


def padded(identity: Identity, size: int) -> tuple[bytes, Any]:
    """A validly signed message of exactly ``size`` bytes, and its body."""
    for pad in range(max(0, size - 200), size):
        body = {"pad": b"x" * pad}
        data = craft(identity, envelope(body=cbor2.dumps(body)))
        if len(data) == size:
            return data, body
    raise AssertionError(f"no padding gives {size} bytes")


def test_max_datagram_size() -> None:
    identity = make_identity(1)
    limit = DEFAULT_LIMITS.max_datagram_size
    at_limit, body = padded(identity, limit)
    over, _ = padded(identity, limit + 1)
    # The sending side: sign_message checks only the frame limit; seal_datagram this one.
    assert sign_message(make_identity(1), body, mesh=MESH) == at_limit
    assert seal_datagram([at_limit]) == at_limit
    with pytest.raises(LocalProtocolError, match="max_datagram_size"):
        seal_datagram([over])
    # The receiving side.
    assert verify_message(at_limit, mesh=MESH).payload == body
    assert open_datagram(at_limit, mesh=MESH).messages[0].payload == body
    assert verify_reason(over) is DropReason.OVERSIZED
    assert refused(lambda: open_datagram(over, mesh=MESH)) is DropReason.OVERSIZED


def test_max_datagram_size_with_encryption() -> None:
    identity = make_identity(1)
    limit = DEFAULT_LIMITS.max_datagram_size
    actual_overhead = len(KEYRING.encrypt(bytes(1300))) - 1300
    assert actual_overhead <= ENCRYPTION_OVERHEAD
    at_limit, _ = padded(identity, limit - actual_overhead)
    over, _ = padded(identity, limit - actual_overhead + 1)
    sealed = seal_datagram([at_limit], keyring=KEYRING)
    assert len(sealed) == limit
    assert len(open_datagram(sealed, mesh=MESH, keyring=KEYRING).messages) == 1
    with pytest.raises(LocalProtocolError, match="max_datagram_size"):
        seal_datagram([over], keyring=KEYRING)
    oversized = KEYRING.encrypt(over)
    assert len(oversized) == limit + 1
    assert refused(lambda: open_datagram(oversized, mesh=MESH, keyring=KEYRING)) is (
        DropReason.OVERSIZED
    )
    # datagram_room() is a safe budget for units that will be encrypted.
    room, _ = padded(identity, datagram_room(keyring=KEYRING))
    assert len(seal_datagram([room], keyring=KEYRING)) <= limit
    assert datagram_room() == limit


def test_max_frame_size() -> None:
    limits = WireLimits(max_frame_size=2000)
    identity = make_identity(1)
    at_limit, body = padded(identity, 2000)
    over, over_body = padded(identity, 2001)
    assert sign_message(make_identity(1), body, mesh=MESH, limits=limits) == at_limit
    with pytest.raises(LocalProtocolError, match="max_frame_size"):
        sign_message(make_identity(1), over_body, mesh=MESH, limits=limits)
    assert seal_frame(at_limit, limits=limits) == at_limit
    with pytest.raises(LocalProtocolError, match="max_frame_size"):
        seal_frame(over, limits=limits)
    assert open_frame(at_limit, mesh=MESH, limits=limits).payload == body
    assert refused(lambda: open_frame(over, mesh=MESH, limits=limits)) is DropReason.OVERSIZED


def test_max_frame_size_with_encryption() -> None:
    limits = WireLimits(max_frame_size=2000)
    identity = make_identity(1)
    overhead = len(KEYRING.encrypt(bytes(1900))) - 1900
    at_limit, body = padded(identity, 2000 - overhead)
    over, _ = padded(identity, 2001 - overhead)
    frame = seal_frame(at_limit, keyring=KEYRING, limits=limits)
    assert len(frame) == 2000
    assert open_frame(frame, mesh=MESH, keyring=KEYRING, limits=limits).payload == body
    with pytest.raises(LocalProtocolError, match="max_frame_size"):
        seal_frame(over, keyring=KEYRING, limits=limits)
    too_big = KEYRING.encrypt(over)
    assert refused(lambda: open_frame(too_big, mesh=MESH, keyring=KEYRING, limits=limits)) is (
        DropReason.OVERSIZED
    )


def test_a_frame_holds_exactly_one_unit() -> None:
    one = sign_message(make_identity(1), 1, mesh=MESH)
    two = sign_message(make_identity(1), 2, mesh=MESH)
    assert refused(lambda: open_frame(one + two, mesh=MESH)) is DropReason.MALFORMED
    assert refused(lambda: open_frame(b"", mesh=MESH)) is DropReason.MALFORMED
    assert open_frame(seal_frame(two), mesh=MESH).payload == 2


@pytest.mark.parametrize("nested", [nested_list, nested_map])
@pytest.mark.parametrize("limit", [DEFAULT_LIMITS.max_body_depth, 1, 3])
def test_max_body_depth(nested: Callable[[int], Any], limit: int) -> None:
    limits = WireLimits(max_body_depth=limit)
    identity = make_identity(1)
    deepest = sign_message(identity, nested(limit), mesh=MESH, limits=limits)
    assert verify_message(deepest, mesh=MESH, limits=limits).payload == nested(limit)
    with pytest.raises(LocalProtocolError, match="deep"):
        sign_message(identity, nested(limit + 1), mesh=MESH, limits=limits)
    too_deep = craft(identity, envelope(body=cbor2.dumps(nested(limit + 1))))
    assert verify_reason(too_deep, limits=limits) is DropReason.MALFORMED
    if limit > 1:
        # The receiver's limit applies, whatever the sender's was.
        stricter = WireLimits(max_body_depth=limit - 1)
        assert verify_reason(deepest, limits=stricter) is DropReason.MALFORMED


def test_max_mesh_name_size() -> None:
    identity = make_identity(1)
    limit = DEFAULT_LIMITS.max_mesh_name_size
    for name in ("m" * limit, "é" * (limit // 2)):
        assert len(name.encode()) == limit
        data = sign_message(identity, "x", mesh=name)
        assert verify_message(data, mesh=name).payload == "x"
    for name in ("m" * (limit + 1), "é" * (limit // 2) + "m"):
        with pytest.raises(LocalProtocolError, match="mesh name"):
            sign_message(identity, "x", mesh=name)
    for name in ("", b"mesh", None):
        with pytest.raises(LocalProtocolError, match="mesh name"):
            sign_message(identity, "x", mesh=name)  # type: ignore[arg-type]
    # Receive side: a longer name can never equal a valid local name.
    long_name = craft(identity, envelope(mesh="m" * (limit + 1)))
    assert verify_reason(long_name, mesh="m" * limit) is DropReason.WRONG_MESH


def test_max_units_per_datagram() -> None:
    limits = WireLimits(max_datagram_size=8192, max_units_per_datagram=4)
    identity = make_identity(1)
    units = [sign_message(identity, n, mesh=MESH) for n in range(5)]
    datagram = seal_datagram(units[:4], limits=limits)
    opened = open_datagram(datagram, mesh=MESH, limits=limits)
    assert [m.payload for m in opened.messages] == [0, 1, 2, 3]
    assert opened.rejected == []
    with pytest.raises(LocalProtocolError, match="signed units"):
        seal_datagram(units, limits=limits)
    with pytest.raises(LocalProtocolError, match="signed units"):
        seal_datagram([], limits=limits)
    too_many = b"".join(units)
    assert refused(lambda: open_datagram(too_many, mesh=MESH, limits=limits)) is (
        DropReason.MALFORMED
    )


def test_default_units_per_datagram() -> None:
    limits = WireLimits(max_datagram_size=65_000)
    identity = make_identity(1)
    count = DEFAULT_LIMITS.max_units_per_datagram
    units = [sign_message(identity, None, mesh=MESH) for _ in range(count + 1)]
    opened = open_datagram(seal_datagram(units[:count], limits=limits), mesh=MESH, limits=limits)
    assert len(opened.messages) == count
    assert refused(lambda: open_datagram(b"".join(units), mesh=MESH, limits=limits)) is (
        DropReason.MALFORMED
    )


@pytest.mark.parametrize(
    "field",
    [
        "max_datagram_size",
        "max_frame_size",
        "max_body_depth",
        "max_mesh_name_size",
        "max_units_per_datagram",
    ],
)
@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None])
def test_wire_limits_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(LocalProtocolError, match=field):
        WireLimits(**{field: value})  # type: ignore[arg-type]


# --- Strict CBOR ----------------------------------------------------------------------------

STRICTLY_REFUSED_BODIES = {
    "tag 0 date string": cbor2.dumps(cbor2.CBORTag(0, "2024-01-01T00:00:00Z")),
    "tag 1 epoch date": cbor2.dumps(cbor2.CBORTag(1, 1_700_000_000)),
    "tag 2 bignum": cbor2.dumps(cbor2.CBORTag(2, b"\x01" + bytes(9))),
    "tag 3 negative bignum": cbor2.dumps(cbor2.CBORTag(3, b"\x01" + bytes(9))),
    "tag 24 embedded CBOR": cbor2.dumps(cbor2.CBORTag(24, b"\x01")),
    "tag 258 set": cbor2.dumps(cbor2.CBORTag(258, [1, 2])),
    "tag 28 shareable": bytes.fromhex("d81c8101"),
    "tag 55799 self-describe": bytes.fromhex("d9d9f7") + cbor2.dumps({"a": 1}),
    "tag 18 inside the body": cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""])),
    "tag nested in a list": cbor2.dumps([1, cbor2.CBORTag(1, 0)]),
    "indefinite array": bytes.fromhex("9f0102ff"),
    "indefinite map": bytes.fromhex("bf616101ff"),
    "indefinite byte string": bytes.fromhex("5f420102ff"),
    "indefinite text string": bytes.fromhex("7f61616162ff"),
    "duplicate map keys": bytes.fromhex("a2616101616102"),
    "duplicate int keys, nested": bytes.fromhex("81a2010102"),
    "truncated": bytes.fromhex("83"),
    "two items": bytes.fromhex("0102"),
    "reserved additional info": bytes.fromhex("1c"),
    "invalid UTF-8": bytes.fromhex("62c328"),
}


@pytest.mark.parametrize("name", sorted(STRICTLY_REFUSED_BODIES))
def test_strict_cbor_in_the_body_is_malformed(name: str) -> None:
    data = craft(make_identity(1), envelope(body=STRICTLY_REFUSED_BODIES[name]))
    assert verify_reason(data) is DropReason.MALFORMED
    opened = open_datagram(data + VALID[0], mesh=MESH)
    assert [e.reason for e in opened.rejected] == [DropReason.MALFORMED]
    assert len(opened.messages) == 1


ENVELOPE_PROBLEMS = {
    "not a map": cbor2.dumps([MESH, EPOCH, 0, 1, None]),
    "missing body": cbor2.dumps({1: MESH, 2: EPOCH, 3: 0, 4: 1}),
    "extra field": cbor2.dumps({1: MESH, 2: EPOCH, 3: 0, 4: 1, 5: None, 6: 1, 7: 0}),
    "text keys": cbor2.dumps({"1": MESH, "2": EPOCH, "3": 0, "4": 1, "5": None}),
    "epoch is text": envelope(epoch="1"),
    "epoch is a float": envelope(epoch=1.0),
    "epoch is a bool": envelope(epoch=True),
    "negative seq": envelope(seq=-1),
    "negative type": envelope(type_=-1),
    "seq is null": envelope(seq=None),
    "duplicate field": b"\xa6\x01" + cbor2.dumps(MESH) + envelope()[1:],
    "indefinite envelope": b"\xbf" + envelope()[1:] + b"\xff",
    "empty payload": b"",
    "trailing item": envelope() + b"\x00",
}


@pytest.mark.parametrize("name", sorted(ENVELOPE_PROBLEMS))
def test_bad_envelopes_are_malformed(name: str) -> None:
    data = craft(make_identity(1), ENVELOPE_PROBLEMS[name])
    assert verify_reason(data) is DropReason.MALFORMED


UNKNOWN_TYPES = [t for t in (0, 2, 9, 999, 2**32, 2**64 - 1) if t not in MESSAGE_SCHEMAS]


def test_unknown_type_is_refused() -> None:
    identity = make_identity(1)
    assert len(UNKNOWN_TYPES) >= 4
    for type_ in UNKNOWN_TYPES:
        data = craft(identity, envelope(type_=type_))
        assert verify_reason(data) is DropReason.UNKNOWN_TYPE
        with pytest.raises(LocalProtocolError, match="unknown message type"):
            sign_message(identity, None, mesh=MESH, type=type_)


@pytest.mark.parametrize(
    "body",
    [
        b"\xf7",  # undefined
        b"\xf0",  # simple(16)
        bytes.fromhex("a1f93e0001"),  # float map key
        bytes.fromhex("a1820102f6"),  # array as a map key
        bytes.fromhex("81a1f5f6"),  # boolean map key, nested
    ],
)
def test_body_that_is_not_plain_data_breaks_the_app_schema(body: bytes) -> None:
    assert verify_reason(craft(make_identity(1), envelope(body=body))) is DropReason.SCHEMA


def test_schema_of_a_registered_type_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    new_type = max(MESSAGE_SCHEMAS) + 100
    monkeypatch.setitem(MESSAGE_SCHEMAS, new_type, record({1: uint(100)}))
    identity = make_identity(1)
    good = sign_message(identity, {1: 100}, mesh=MESH, type=new_type)
    assert verify_message(good, mesh=MESH).type == new_type
    for body in ({1: 101}, {1: "x"}, {}, {1: 1, 2: 2}, [1]):
        with pytest.raises(LocalProtocolError, match="payload refused"):
            sign_message(identity, body, mesh=MESH, type=new_type)
        data = craft(identity, envelope(type_=new_type, body=cbor2.dumps(body)))
        assert verify_reason(data) is DropReason.SCHEMA


@pytest.mark.parametrize(
    "payload",
    [
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 1),
        {1, 2},
        frozenset(),
        2**64,
        -(2**64) - 1,
        [1, 2**70],
        {2**64: "key too big"},
        {(1, 2): "tuple key"},
        {1.5: "float key"},
        {True: "bool key"},
        {None: "null key"},
        bytearray(b"x"),
        object(),
        cbor2.CBORTag(1, 0),
        cbor2.undefined,
        {"nested": [{"deeper": {1, 2}}]},
        MessageType.APP,  # an IntEnum is not a plain int
    ],
    ids=repr,
)
def test_sign_message_refuses_non_plain_payloads(payload: object) -> None:
    with pytest.raises(LocalProtocolError, match="payload refused"):
        sign_message(make_identity(1), payload, mesh=MESH)


@pytest.mark.parametrize("payload", ["\ud800", {"\udfff": 1}, ["ok", "lone \udc80"]])
def test_sign_message_refuses_strings_without_a_utf8_form(payload: object) -> None:
    identity = make_identity(1)
    with pytest.raises(LocalProtocolError, match="payload refused"):
        sign_message(identity, payload, mesh=MESH)
    with pytest.raises(LocalProtocolError, match="mesh name"):
        sign_message(identity, "x", mesh="mesh-\ud800")


def test_sign_message_accepts_the_64_bit_extremes() -> None:
    for value in (2**64 - 1, -(2**64), {2**64 - 1: -(2**64)}):
        data = sign_message(make_identity(1), value, mesh=MESH)
        assert verify_message(data, mesh=MESH).payload == value


# --- Compound datagrams -------------------------------------------------------------------


def test_compound_datagram_one_bad_unit_does_not_sink_the_others() -> None:
    alice, bob, carol = make_identity(1), make_identity(2), make_identity(3)
    units = [sign_message(who, who.node_id.short, mesh=MESH) for who in (alice, bob, carol)]
    corrupted = bytearray(units[1])
    corrupted[-10] ^= 0x40  # inside Bob's signature: framing intact
    datagram = seal_datagram([units[0], bytes(corrupted), units[2]])
    opened = open_datagram(datagram, mesh=MESH, replay=ReplayWindow())
    assert [m.sender for m in opened.messages] == [alice.node_id, carol.node_id]
    assert [m.payload for m in opened.messages] == [alice.node_id.short, carol.node_id.short]
    assert [e.reason for e in opened.rejected] == [DropReason.BAD_SIGNATURE]
    # Each unit is verifiable on its own, too.
    assert verify_message(units[2], mesh=MESH).sender == carol.node_id


def test_compound_datagram_reports_each_refusal() -> None:
    alice, bob = make_identity(1), make_identity(2)
    replay = ReplayWindow()
    first = sign_message(alice, 1, mesh=MESH)
    units = [
        first,
        first,  # replayed within the same datagram
        sign_message(alice, 2, mesh="other"),
        sign_message(bob, 3, mesh=MESH),
        craft(alice, envelope(seq=7, type_=UNKNOWN_TYPES[-1])),
        sign_message(alice, 4, mesh=MESH),
    ]
    opened = open_datagram(
        seal_datagram(units, keyring=KEYRING),
        mesh=MESH,
        keyring=KEYRING,
        trust=TrustPolicy.allow([alice.node_id]),
        replay=replay,
    )
    assert [m.payload for m in opened.messages] == [1, 4]
    assert [e.reason for e in opened.rejected] == [
        DropReason.REPLAYED,
        DropReason.WRONG_MESH,
        DropReason.UNTRUSTED,
        DropReason.UNKNOWN_TYPE,
    ]


def test_broken_framing_drops_the_whole_datagram() -> None:
    one = sign_message(make_identity(1), 1, mesh=MESH)
    two = bytearray(sign_message(make_identity(2), 2, mesh=MESH))
    two[0] = 0xD3  # not tag 18: where the second unit ends can no longer be known
    assert refused(lambda: open_datagram(one + bytes(two), mesh=MESH)) is DropReason.MALFORMED
    assert refused(lambda: open_datagram(one + b"\x00", mesh=MESH)) is DropReason.MALFORMED
    assert refused(lambda: open_datagram(b"", mesh=MESH)) is DropReason.MALFORMED
    assert refused(lambda: open_datagram("x", mesh=MESH)) is (  # type: ignore[arg-type]
        DropReason.MALFORMED
    )


# --- The simulator's stand-in signatures ---------------------------------------------------


def test_simulation_signatures_do_not_verify_as_ed25519_and_vice_versa() -> None:
    identity = make_identity(1)
    sim = INSECURE_SIMULATION_SIGNATURES
    fake = sign_message(identity, "x", mesh=MESH, signatures=sim)
    real = sign_message(identity, "x", mesh=MESH)
    assert len(fake) == len(real)
    assert verify_message(fake, mesh=MESH, signatures=sim).payload == "x"
    assert verify_reason(fake) is DropReason.BAD_SIGNATURE
    assert verify_reason(real, signatures=sim) is DropReason.BAD_SIGNATURE
    tampered = fake[:-1] + bytes([fake[-1] ^ 1])
    assert verify_reason(tampered, signatures=sim) is DropReason.BAD_SIGNATURE


# --- Protocol version ----------------------------------------------------------------


def test_every_message_carries_the_protocol_version() -> None:
    data = sign_message(make_identity(1), "x", mesh=MESH)
    fields = cbor2.loads(cose.verify_sign1(data, bytes(make_identity(1).node_id)))
    assert fields[6] == PROTOCOL_VERSION


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 2**32, "1"])
def test_a_message_of_another_protocol_version_is_refused_by_name(version: Any) -> None:
    data = craft(make_identity(1), envelope(version=version))
    assert verify_reason(data) is DropReason.WRONG_VERSION


def test_an_unversioned_envelope_of_meshedge_0_1_is_another_version() -> None:
    fields = {1: MESH, 2: EPOCH, 3: 0, 4: 1, 5: None}
    assert verify_reason(craft(make_identity(1), cbor2.dumps(fields))) is (
        DropReason.WRONG_VERSION
    )


# --- docs/wire.md -------------------------------------------------------------------------

WIRE_DOC = Path(__file__).resolve().parents[1] / "docs" / "wire.md"


def test_the_example_in_the_wire_doc_is_what_sign_message_produces() -> None:
    text = WIRE_DOC.read_text(encoding="utf-8")
    block = text.split("<!-- example-hex -->\n```\n", 1)[1].split("```", 1)[0]
    documented = bytes.fromhex("".join(block.split()))
    identity = Identity.from_seed(bytes(range(32)), epoch=1_717_171_717_123)
    body = {"sensor": "greenhouse-3", "celsius": 21.5}
    assert sign_message(identity, body, mesh="greenhouse") == documented
    assert str(identity.node_id) in text
    assert verify_message(documented, mesh="greenhouse").payload == body


def test_every_wire_limit_is_documented_with_its_default() -> None:
    text = WIRE_DOC.read_text(encoding="utf-8")
    for field in dataclasses.fields(WireLimits):
        default = field.default
        assert isinstance(default, int)
        # Thin-space style thousands separators from five digits on: 1400, 1 048 576.
        shown = f"{default:,}".replace(",", " ") if default >= 10_000 else str(default)
        row = f"| `{field.name}` | {shown} |"
        assert row in text, f"docs/wire.md has no row {row!r}"


def test_every_drop_reason_is_documented() -> None:
    text = WIRE_DOC.read_text(encoding="utf-8")
    for reason in DropReason:
        assert f"| `{reason.name}` | `{reason.value}` |" in text
