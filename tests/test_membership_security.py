"""What a lying, replaying or merely misplaced peer cannot do to a membership core.

Every refusal is counted under its :class:`~meshedge.DropReason` and changes nothing:
not the view, not this node's incarnation, no event, no answer.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from membership_helpers import ALIVE, MESH, craft_unit, drops, formed, joined, sign
from wire_helpers import sign_message

from meshedge import DropReason, Identity, Keyring
from meshedge.core._member import MemberState
from meshedge.core._membership import Membership, MembershipLimits
from meshedge.core._outputs import Datagram
from meshedge.sim import Simulation
from meshedge.testing import CoreMesh
from meshedge.wire import seal_datagram, seal_frame, verify_message
from meshedge.wire._datagram import split_datagram
from meshedge.wire._message import PROTOCOL_VERSION
from meshedge.wire._message_types import MessageType
from meshedge.wire.bodies import Alive, Left, Ping, Sync


def _pair() -> tuple[CoreMesh, Membership, Membership]:
    """Cores a (0) and b (1) of mesh "m": a joined through b; and their membership cores."""
    mesh = CoreMesh(2, mesh="m")
    mesh.join(0, [1])
    a, b = (core.membership for core in mesh.cores)
    assert b.member(a.id) is not None and a.member(b.id) is not None
    return mesh, a, b


def test_an_accusation_at_an_incarnation_never_announced_is_refused() -> None:
    mesh, a, b = _pair()
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
            before = b.statistics()
            mesh.inject_datagram(1, seal_datagram([lie]), ("127.0.0.1", 9))
            after = b.statistics()
            assert after["unexpected"] == before["unexpected"] + 1
            assert after["drops"]["unannounced_key"] == before["drops"]["unannounced_key"] + 1
    member = b.member(a.id)
    assert member is not None and member.state == MemberState.ALIVE
    assert a.incarnation == 0  # nothing made a refute


def test_the_same_lie_at_the_accused_node_does_not_crash_it() -> None:
    mesh, a, _ = _pair()
    lie = sign_message(
        Identity.generate(),
        {1: bytes(a.id), 2: a.identity.epoch, 3: 2**64 - 1},
        mesh="m",
        type=MessageType.SUSPECT,
    )
    mesh.inject_datagram(0, seal_datagram([lie]), ("127.0.0.1", 9))
    assert a.incarnation == 0
    me = a.member(a.id)
    assert me is not None and me.state == MemberState.ALIVE


def test_frames_lagging_behind_newer_datagrams_are_not_replays() -> None:
    mesh, a, b = _pair()
    # Frames signed first, delivered after more than a window's worth of datagrams.
    frames = [
        seal_frame(
            sign_message(
                a.identity, {1: "t", 2: i}, mesh="m", type=MessageType.MESSAGE, seq=1000 + i
            )
        )
        for i in range(10)
    ]
    # Sequence numbers above any that a's own signer has used.
    for seq in range(1500):
        ack = sign_message(a.identity, {1: seq}, mesh="m", type=MessageType.ACK, seq=2000 + seq)
        b.receive_datagram(seal_datagram([ack]), mesh.address(0), 2.0)
    replayed = b.statistics()["drops"]["replayed"]
    for data in frames:
        b.receive_frame(data, mesh.address(0), 2.0)
    assert b.statistics()["drops"]["replayed"] == replayed
    delivered = []
    while (event := b.next_event()) is not None:
        if type(event).__name__ == "ForeignMessage":
            delivered.append(event.message.payload.payload)  # type: ignore[union-attr]
    assert delivered == list(range(10))
    # A real replay of a frame is still refused.
    b.receive_frame(frames[0], mesh.address(0), 3.0)
    assert b.statistics()["drops"]["replayed"] == replayed + 1


def test_a_member_cannot_speak_for_another_member() -> None:
    mesh = joined(3)
    mesh.advance(5)
    x_id = mesh.identities[2].node_id
    x_before = mesh.cores[0].member(x_id)
    assert x_before is not None and x_before.state == ALIVE
    # Node 1 (Y) signs an ALIVE that carries X's address and new tags. An ALIVE
    # statement is always about its signer, so this only restates Y itself.
    forged = sign(
        mesh, 1, MessageType.ALIVE, {1: 99, 2: list(mesh.address(2)), 3: {"owned": "yes"}}
    )
    mesh.inject_datagram(0, seal_datagram([forged]))
    assert mesh.cores[0].member(x_id) == x_before
    y_view = mesh.cores[0].member(mesh.identities[1].node_id)
    assert y_view is not None and y_view.tags == {"owned": "yes"}
    # Y signing with X's key id in the header: the signature does not match X's key.
    second = sign(mesh, 1, MessageType.ALIVE, {1: 100, 2: list(mesh.address(2)), 3: {}})
    impersonation = second.replace(bytes(mesh.identities[1].node_id), bytes(x_id), 1)
    before = drops(mesh, 0)["bad_signature"]
    mesh.inject_datagram(0, seal_datagram([impersonation]))
    assert drops(mesh, 0)["bad_signature"] == before + 1
    assert mesh.cores[0].member(x_id) == x_before


def test_a_tampered_forwarded_alive_statement_is_dropped() -> None:
    mesh = joined(3)
    mesh.advance(5)
    x_id = mesh.identities[2].node_id
    x_before = mesh.cores[0].member(x_id)
    genuine = sign(
        mesh,
        2,
        MessageType.ALIVE,
        {1: x_before.incarnation + 1, 2: list(mesh.address(2)), 3: {"zone": "eu"}},
    )
    tampered = genuine.replace(b"eu", b"us")
    assert tampered != genuine and len(tampered) == len(genuine)
    before = drops(mesh, 0)["bad_signature"]
    mesh.inject_datagram(0, seal_datagram([tampered]), mesh.address(1))
    assert drops(mesh, 0)["bad_signature"] == before + 1
    assert mesh.cores[0].member(x_id) == x_before
    # The genuine statement, forwarded by anyone, is accepted: the test can fail.
    mesh.inject_datagram(0, seal_datagram([genuine]), mesh.address(1))
    after = mesh.cores[0].member(x_id)
    assert after is not None and after.tags == {"zone": "eu"}


def test_hostile_datagrams_are_dropped_counted_and_change_nothing() -> None:
    mesh = joined(3)
    mesh.advance(5)
    target = mesh.cores[0].membership
    members_before = sorted(target.members(), key=lambda m: m.id)
    incarnation_before = target.incarnation
    events_before = len(mesh.events[0])

    def expect(reason: DropReason, data: bytes) -> None:
        before = dict(drops(mesh, 0))
        target.receive_datagram(data, ("attacker", 1), mesh.now)
        after = drops(mesh, 0)
        changed = {r: after[r] - before[r] for r in after if after[r] != before[r]}
        assert changed == {reason.value: 1}, (reason, changed)

    rng = random.Random(1234)
    for _ in range(20):
        noise = rng.randbytes(rng.randrange(1, 300))
        if noise[0] in (0xD0, 0xD2):  # would look like an encrypted or signed unit
            noise = b"\x00" + noise
        expect(DropReason.MALFORMED, noise)
    expect(DropReason.MALFORMED, b"")
    ping = sign(mesh, 1, MessageType.PING, {1: 1, 2: bytes(target.id)})
    expect(DropReason.MALFORMED, ping[: len(ping) // 2])
    expect(DropReason.MALFORMED, ping + b"\x00")
    expect(DropReason.OVERSIZED, b"\xd2" * 1401)
    other_mesh = sign_message(
        mesh.identities[1],
        {1: 1, 2: bytes(target.id)},
        mesh="another-mesh",
        type=MessageType.PING,
    )
    expect(DropReason.WRONG_MESH, other_mesh)
    expect(DropReason.DECRYPT_FAILED, seal_datagram([ping], keyring=Keyring([bytes(32)])))
    sender = mesh.identities[1]
    # Crafted envelopes carry the protocol version (field 6), or the version check
    # refuses them before the type and the body are looked at.
    envelope = {1: MESH, 2: sender.epoch, 3: 10**6, 4: 99, 5: None, 6: PROTOCOL_VERSION}
    expect(DropReason.UNKNOWN_TYPE, craft_unit(sender, envelope))
    alive = int(MessageType.ALIVE)
    bad_body = {1: MESH, 2: sender.epoch, 3: 10**6 + 1, 4: alive, 5: {1: "x"}, 6: 1}
    expect(DropReason.SCHEMA, craft_unit(sender, bad_body))
    unversioned = {1: MESH, 2: sender.epoch, 3: 10**6 + 2, 4: alive, 5: {1: "x"}}
    expect(DropReason.WRONG_VERSION, craft_unit(sender, unversioned))

    assert sorted(target.members(), key=lambda m: m.id) == members_before
    assert target.incarnation == incarnation_before
    assert target.next_event() is None
    assert len(mesh.events[0]) == events_before
    assert target.datagrams_to_send() == []  # nothing answered


def test_a_replayed_ping_is_dropped_and_not_answered() -> None:
    mesh = joined(3, record=True)
    mesh.advance(5)
    # Capture a real probe that node 1 sent to node 0.
    captured = None
    assert mesh.traffic is not None
    for source, destination, item in mesh.traffic:
        if (source, destination) == (1, 0) and isinstance(item, Datagram):
            units = split_datagram(item.data)
            first = verify_message(units[0], mesh=MESH, max_size=len(units[0]))
            if first.type == MessageType.PING:
                captured = item.data
    assert captured is not None
    core = mesh.cores[0].membership
    members_before = sorted(core.members(), key=lambda m: m.id)
    before = drops(mesh, 0)["replayed"]
    core.receive_datagram(captured, mesh.address(1), mesh.now)
    assert drops(mesh, 0)["replayed"] == before + 1
    assert core.datagrams_to_send() == []  # no ack for a replay
    assert sorted(core.members(), key=lambda m: m.id) == members_before
    # A fresh ping is answered (so the check above can fail).
    fresh = sign(mesh, 1, MessageType.PING, {1: 7, 2: bytes(core.id)})
    core.receive_datagram(seal_datagram([fresh]), mesh.address(1), mesh.now)
    assert [addr for _, addr in core.datagrams_to_send()] == [mesh.address(1)]


def test_messages_of_another_mesh_never_merge_two_meshes() -> None:
    sim = formed(3, seed=12)
    other = formed(3, seed=12, mesh="other")
    # Same seeds, so the same keys and addresses: only the mesh name differs. Feed
    # every datagram node 0 of "other" would send to node 0 of "sim".
    members_before = sorted(sim.node(0).members(), key=lambda m: m.id)
    core = other.node(1)
    for _ in range(5):
        core.broadcast("t", "x", other.now)
        core.handle_timer(other.now + 1)
    sent = [data for data, _ in core.datagrams_to_send()]
    assert sent
    for data in sent:
        sim.node(0).receive_datagram(data, Simulation.address(1), sim.now)
    assert sim.node(0).statistics()["drops"]["wrong_mesh"] >= len(sent)
    assert sorted(sim.node(0).members(), key=lambda m: m.id) == members_before
    assert sim.node(0).next_event() is None


# ---------------------------------------------------------------------- misplaced messages


def _stranger_unit(kind: str, target: Membership) -> bytes:
    """A well-signed unit of a key the open trust policy admits, fresh for every window."""
    stranger = Identity.generate()
    mesh = MESH
    if kind == "ping_for_another":
        return sign_message(stranger, Ping(1, stranger.node_id), mesh=mesh)
    if kind == "ping":
        return sign_message(stranger, Ping(1, target.id), mesh=mesh)
    if kind == "app":
        return sign_message(stranger, {"plain": "data"}, mesh=mesh, type=MessageType.APP)
    if kind == "sync":
        return sign_message(stranger, Sync(bytes(16), ("h9", 1), join=True), mesh=mesh)
    if kind == "alive":
        return sign_message(stranger, Alive(0, ("h9", 1), {}), mesh=mesh)
    if kind == "left":
        return sign_message(stranger, Left(0), mesh=mesh)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("transport", "kind", "reason"),
    [
        ("datagram", "ping_for_another", DropReason.MISADDRESSED),
        ("datagram", "app", DropReason.APP_UNIT),
        ("datagram", "sync", DropReason.SYNC_BY_DATAGRAM),
        ("frame", "ping", DropReason.PROBE_BY_STREAM),
        ("frame", "app", DropReason.APP_UNIT),
        ("frame", "alive", DropReason.STATEMENT_BY_STREAM),
        ("frame", "left", DropReason.STATEMENT_BY_STREAM),
    ],
)
def test_a_well_signed_message_out_of_place_is_dropped_under_its_reason(
    transport: str, kind: str, reason: DropReason
) -> None:
    mesh = joined(3)
    mesh.advance(5)
    target = mesh.cores[0].membership
    members_before = sorted(target.members(), key=lambda m: m.id)
    before = target.statistics()
    unit = _stranger_unit(kind, target)
    if transport == "datagram":
        target.receive_datagram(seal_datagram([unit]), ("attacker", 1), mesh.now)
    else:
        target.receive_frame(seal_frame(unit), ("attacker", 1), mesh.now)
    after = target.statistics()
    rose = {r: n - before["drops"][r] for r, n in after["drops"].items() if n != before["drops"][r]}
    assert rose == {reason.value: 1}
    assert after["unexpected"] == before["unexpected"] + 1
    assert sorted(target.members(), key=lambda m: m.id) == members_before
    assert target.next_event() is None  # not handed out to another core either
    assert target.datagrams_to_send() == [] and target.frames_to_send() == []


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("ping", DropReason.NOT_A_STATEMENT), ("app", DropReason.APP_UNIT)],
)
def test_a_sync_carrying_a_non_statement_drops_just_that_unit(
    kind: str, reason: DropReason
) -> None:
    mesh = joined(2)
    mesh.advance(5)
    target = mesh.cores[0].membership
    stranger = Identity.generate()
    newcomer = sign_message(stranger, Alive(0, ("h9", 1), {}), mesh=MESH)
    misplaced = _stranger_unit(kind, target)
    body = Sync(bytes(16), ("h9", 1), statements=(misplaced, newcomer))
    frame = seal_frame(sign_message(Identity.generate(), body, mesh=MESH))
    before = target.statistics()
    target.receive_frame(frame, ("attacker", 1), mesh.now)
    after = target.statistics()
    rose = {r: n - before["drops"][r] for r, n in after["drops"].items() if n != before["drops"][r]}
    assert rose == {reason.value: 1}
    assert after["unexpected"] == before["unexpected"] + 1
    # The genuine statement next to it is merged (so the test can fail).
    member = target.member(stranger.node_id)
    assert member is not None and member.state == ALIVE


def test_a_new_member_beyond_max_members_is_dropped_as_members_full() -> None:
    core = Membership(
        Identity.generate(),
        mesh=MESH,
        address=("h0", 1),
        now=0.0,
        rng=random.Random(1),
        bounds=MembershipLimits(max_members=2),
    )
    units = [
        sign_message(Identity.generate(), Alive(0, (f"h{i}", 1), {}), mesh=MESH) for i in (1, 2)
    ]
    core.receive_datagram(seal_datagram(units), ("h1", 1), 0.0)
    assert len(core.members()) == 2  # itself and the first newcomer
    stats = core.statistics()
    assert stats["drops"]["members_full"] == 1
    assert stats["unexpected"] == 1
    events: list[Any] = []
    while (event := core.next_event()) is not None:
        events.append(event)
    assert [type(e).__name__ for e in events] == ["MemberJoined"]
