"""Accusations and replay windows: what a lying or merely slow peer cannot do."""

from __future__ import annotations

import random

from meshedge import Identity
from meshedge.core.member import MemberState
from meshedge.core.membership import Membership
from meshedge.wire import seal_datagram, seal_frame, sign_message
from meshedge.wire.message_types import MessageType


def _pair() -> tuple[Membership, Membership]:
    a = Membership(Identity.generate(), mesh="m", address=("127.0.0.1", 1), now=0.0,
                   rng=random.Random(1))
    b = Membership(Identity.generate(), mesh="m", address=("127.0.0.1", 2), now=0.0,
                   rng=random.Random(2))
    a.join([("127.0.0.1", 2)], 0.0)
    for _ in range(3):  # carry the join exchange back and forth
        for data, _addr in a.frames_to_send():
            b.receive_frame(data, ("127.0.0.1", 1), 0.0)
        for data, _addr in b.frames_to_send():
            a.receive_frame(data, ("127.0.0.1", 2), 0.0)
    assert b.member(a.id) is not None and a.member(b.id) is not None
    return a, b


def test_an_accusation_at_an_incarnation_never_announced_is_refused() -> None:
    a, b = _pair()
    liar = Identity.generate()
    for target in (a, b):
        for epoch, incarnation in (
            (target.identity.epoch, 2**64 - 1),  # would overflow the refutation
            (target.identity.epoch + 1, 0),  # a future life could never be refuted
        ):
            lie = sign_message(
                liar,
                {1: bytes(a.id), 2: epoch, 3: incarnation},
                mesh="m",
                type=MessageType.SUSPECT,
            )
            before = b.statistics()["unexpected"]
            b.receive_datagram(seal_datagram([lie]), ("127.0.0.1", 9), 1.0)
            assert b.statistics()["unexpected"] == before + 1
    member = b.member(a.id)
    assert member is not None and member.state == MemberState.ALIVE
    assert a.incarnation == 0  # nothing made a refute


def test_the_same_lie_at_the_accused_node_does_not_crash_it() -> None:
    a, _ = _pair()
    lie = sign_message(
        Identity.generate(),
        {1: bytes(a.id), 2: a.identity.epoch, 3: 2**64 - 1},
        mesh="m",
        type=MessageType.SUSPECT,
    )
    a.receive_datagram(seal_datagram([lie]), ("127.0.0.1", 9), 1.0)
    assert a.incarnation == 0
    me = a.member(a.id)
    assert me is not None and me.state == MemberState.ALIVE


def test_frames_lagging_behind_newer_datagrams_are_not_replays() -> None:
    a, b = _pair()
    # Frames signed first, delivered after more than a window's worth of datagrams.
    frames = [
        seal_frame(
            sign_message(a.identity, {1: "t", 2: i}, mesh="m", type=MessageType.MESSAGE)
        )
        for i in range(10)
    ]
    for seq in range(1500):
        ack = sign_message(a.identity, {1: seq}, mesh="m", type=MessageType.ACK)
        b.receive_datagram(seal_datagram([ack]), ("127.0.0.1", 1), 2.0)
    replayed = b.statistics()["drops"]["replayed"]
    for data in frames:
        b.receive_frame(data, ("127.0.0.1", 1), 2.0)
    assert b.statistics()["drops"]["replayed"] == replayed
    delivered = []
    while (event := b.next_event()) is not None:
        if type(event).__name__ == "ForeignMessage":
            delivered.append(event.message.payload[2])  # type: ignore[union-attr]
    assert delivered == list(range(10))
    # A real replay of a frame is still refused.
    b.receive_frame(frames[0], ("127.0.0.1", 1), 3.0)
    assert b.statistics()["drops"]["replayed"] == replayed + 1
