"""The envelope: one node's signing, sealing and checking, and its drops by reason."""

from __future__ import annotations

from wire_helpers import sign_message

from meshedge import DropReason, Identity, Keyring
from meshedge.core._envelope import Envelope
from meshedge.wire import verify_message
from meshedge.wire._datagram import ENCRYPTION_OVERHEAD
from meshedge.wire._limits import DEFAULT_LIMITS
from meshedge.wire._message_types import MessageType
from meshedge.wire.bodies import Ack, Alive, Broadcast, Ping

MESH = "envelope-test"


def rose(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def test_sign_numbers_every_unit_and_seal_round_trips_through_open() -> None:
    sender, receiver = (
        Envelope(Identity.generate(), mesh=MESH),
        Envelope(Identity.generate(), mesh=MESH),
    )
    units = [sender.sign(Ping(n, receiver.id)) for n in range(3)]
    assert [verify_message(u, mesh=MESH).seq for u in units] == [0, 1, 2]
    opened = list(receiver.open_datagram(sender.seal_datagram(units)))
    assert [(m.payload.seq, u) for m, u in opened] == [(n, units[n]) for n in range(3)]
    assert receiver.statistics()["packets_received"] == 1
    frame = sender.sign(Ack(9))
    message = receiver.open_frame(sender.seal_frame(frame))
    assert message is not None and message.payload == Ack(9)
    assert receiver.statistics()["frames_received"] == 1


def test_with_a_keyring_everything_is_encrypted_and_the_room_shrinks() -> None:
    keyring = Keyring([Keyring.generate_key()])
    plain = Envelope(Identity.generate(), mesh=MESH)
    sealed = Envelope(Identity.generate(), mesh=MESH, keyring=keyring)
    assert plain.room() == DEFAULT_LIMITS.max_datagram_size
    assert sealed.room() == DEFAULT_LIMITS.max_datagram_size - ENCRYPTION_OVERHEAD
    unit = sealed.sign(Ack(1))
    assert unit not in sealed.seal_datagram([unit])
    peer = Envelope(Identity.generate(), mesh=MESH, keyring=keyring)
    assert [m.payload for m, _ in peer.open_datagram(sealed.seal_datagram([unit]))] == [Ack(1)]
    assert list(plain.open_datagram(sealed.seal_datagram([unit]))) == []
    assert plain.drops()["decrypt_failed"] == 1


def test_each_refused_unit_of_a_datagram_is_counted_and_the_others_accepted() -> None:
    receiver = Envelope(Identity.generate(), mesh=MESH)
    sender = Identity.generate()
    statement = sign_message(sender, Alive(0, ("h", 1), {}), mesh=MESH)
    ping = sign_message(sender, Ping(1, receiver.id), mesh=MESH)
    app = sign_message(sender, {"plain": 1}, mesh=MESH, type=MessageType.APP)
    tampered = ping[:-1] + bytes([ping[-1] ^ 1])
    before = receiver.drops()
    data = receiver.seal_datagram([statement, statement, ping, ping, app, tampered])
    accepted = [u for _, u in receiver.open_datagram(data)]
    assert accepted == [statement, ping]
    assert rose(before, receiver.drops()) == {"replayed": 1, "app_unit": 1, "bad_signature": 1}
    assert receiver.statistics()["duplicates"] == 1  # the second copy of the statement
    # A whole datagram refused: one drop for the datagram.
    assert list(receiver.open_datagram(b"\x00junk")) == []
    assert receiver.drops()["malformed"] == 1


def test_frames_have_their_own_replay_window() -> None:
    receiver = Envelope(Identity.generate(), mesh=MESH)
    sender = Identity.generate()
    ack = sign_message(sender, Ack(1), mesh=MESH, seq=5)
    assert len(list(receiver.open_datagram(receiver.seal_datagram([ack])))) == 1
    # The same number by stream is not a replay there; twice by stream is.
    assert receiver.open_frame(receiver.seal_frame(ack)) is not None
    assert receiver.open_frame(receiver.seal_frame(ack)) is None
    assert receiver.drops()["replayed"] == 1


def test_forwarded_statements_are_verified_but_direct_and_app_units_refused() -> None:
    receiver = Envelope(Identity.generate(), mesh=MESH)
    sender = Identity.generate()
    statement = sign_message(sender, Alive(0, ("h", 1), {}), mesh=MESH)
    assert receiver.verify_forwarded(statement) is not None
    assert receiver.verify_forwarded(statement) is not None  # not remembered, no window
    assert receiver.verify_forwarded(sign_message(sender, Ack(1), mesh=MESH)) is None
    app = sign_message(sender, [1], mesh=MESH, type=MessageType.APP)
    assert receiver.verify_forwarded(app) is None
    tampered = statement[:-1] + bytes([statement[-1] ^ 1])
    assert receiver.verify_forwarded(tampered) is None
    drops = receiver.drops()
    assert (drops["not_a_statement"], drops["app_unit"], drops["bad_signature"]) == (1, 1, 1)


def test_a_remembered_statement_is_skipped_as_a_duplicate_and_broadcasts_counted_once() -> None:
    envelope = Envelope(Identity.generate(), mesh=MESH, seen_cache_size=2)
    own = envelope.sign(Broadcast("t", 1))
    envelope.remember(own)
    assert list(envelope.open_datagram(envelope.seal_datagram([own]))) == []
    assert envelope.statistics()["duplicates"] == 1
    # The cache is bounded: the oldest signature is forgotten first.
    envelope.remember(envelope.sign(Broadcast("t", 2)))
    envelope.remember(envelope.sign(Broadcast("t", 3)))
    [(message, _)] = envelope.open_datagram(envelope.seal_datagram([own]))
    assert envelope.accept_broadcast(message)
    assert not envelope.accept_broadcast(message)
    assert envelope.statistics()["duplicates"] == 2


def test_count_drop_counts_under_the_reason_given() -> None:
    envelope = Envelope(Identity.generate(), mesh=MESH)
    envelope.count_drop(DropReason.MISADDRESSED)
    assert envelope.drops()["misaddressed"] == 1
    assert set(envelope.drops()) == {reason.value for reason in DropReason}
