"""Hostile input at a live three-node mesh on 127.0.0.1.

Junk datagrams, forged and replayed units, another mesh's messages, junk streams, an
oversized frame, a slow-loris frame and a connection flood, each sent with plain trio
sockets to one node's address. After each attack the node must still serve (a direct
message gets through), its membership must be the same (same alive set, no suspicion
raised anywhere), and every drop must be counted under its reason in
``statistics()["drops"]`` (or, for connections, ``connections_refused`` and
``frames_timed_out``).

Clock: ``autojump_clock``, as in test_runtime.py (loopback delivers inside the send
call, so virtual time never jumps over a packet in flight). The protocol's timers then
cannot fire because this test keeps the CPU busy, so "no suspicion" is a statement about
the input, not about the machine's load.

Every junk generator is seeded; a failing assertion names the seed through the test id.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import pytest
import trio
from runtime_helpers import (
    alive_ids,
    collect,
    make_config,
    open_mesh,
    record_events,
    seed_of,
    unique_mesh,
    wait_until,
)
from wire_helpers import sign_message

from meshedge import Identity, Keyring
from meshedge.core._envelope import UNEXPECTED_REASONS
from meshedge.core._events import MemberEvent, MemberJoined
from meshedge.core._member import Address
from meshedge.runtime._node import Message, Node, open_node
from meshedge.runtime._transport import Place, frame
from meshedge.wire import MessageType, seal_datagram, verify_message
from meshedge.wire._datagram import split_datagram
from meshedge.wire._message_types import DIRECT_TYPES
from meshedge.wire.bodies import DirectMessage

#: Short enough to watch a slow-loris frame being cut in a few virtual seconds.
FRAME_READ_TIMEOUT = 1.0
#: Small enough to flood, large enough for the peers' own links.
MAX_INBOUND = 8
#: docs/wire.md: a unit starts with a fixed 10-byte prefix, then the 32-byte sender key
#: (the kid), and ends with the 64-byte Ed25519 signature.
KEY_START, KEY_END, SIGNATURE_SIZE = 10, 42, 64


@dataclass
class Mesh:
    """Three nodes; ``target`` is attacked, the others watch and talk to it."""

    nodes: list[Node]
    logs: list[list[MemberEvent]]
    #: Datagrams that nodes[1] sent to the target, and frames it wrote to it.
    datagrams: list[bytes] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    inbox: list[Message] = field(default_factory=list)

    @property
    def target(self) -> Node:
        return self.nodes[0]

    def drops(self) -> dict[str, int]:
        stats = self.target.statistics()
        # Whatever the attack, ``unexpected`` is the sum of the unexpected reasons.
        assert stats["unexpected"] == sum(stats["drops"][r.value] for r in UNEXPECTED_REASONS)
        return dict(stats["drops"])


@asynccontextmanager
async def attacked_mesh(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Mesh]:
    """A formed mesh whose events are recorded from the start, with a spy on nodes[1]."""
    async with (
        open_mesh(
            3, frame_read_timeout=FRAME_READ_TIMEOUT, max_inbound_connections=MAX_INBOUND
        ) as nodes,
        trio.open_nursery() as nursery,
    ):
        mesh = Mesh(nodes, [[] for _ in nodes])
        for node, log in zip(nodes, mesh.logs, strict=True):
            await nursery.start(record_events, node, log)
        await nursery.start(collect, mesh.target, "direct", mesh.inbox)
        spy_on(mesh, monkeypatch)
        # A first direct message from each peer: real frames exist to replay, and each
        # peer holds its link to the target (so the flood test knows what is in use).
        for sender in nodes[1:]:
            await send_direct(mesh, sender)
        with trio.fail_after(10):  # and real probes and gossip, to capture and replay
            await wait_until(lambda: len(mesh.datagrams) >= 5)
        yield mesh
        await check_still_serving(mesh)
        nursery.cancel_scope.cancel()


def spy_on(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a copy of what nodes[1] sends to the target (to replay and forge from)."""
    sender, target = mesh.nodes[1], mesh.target
    udp, links = sender._udp, sender._links
    send_datagram, send_frame, try_frame = udp.sendto, links.send, links.try_send

    def datagram_spy(data: bytes, address: Address) -> None:
        if address == target.address:
            mesh.datagrams.append(data)
        send_datagram(data, address)

    async def frame_spy(address: Address, data: bytes, place: Place | None = None) -> None:
        if address == target.address:
            mesh.frames.append(data)
        await send_frame(address, data, place)

    def try_frame_spy(address: Address, data: bytes) -> bool:
        sent = try_frame(address, data)
        if sent and address == target.address:
            mesh.frames.append(data)
        return sent

    monkeypatch.setattr(udp, "sendto", datagram_spy)
    monkeypatch.setattr(links, "send", frame_spy)
    monkeypatch.setattr(links, "try_send", try_frame_spy)


async def send_direct(mesh: Mesh, sender: Node) -> None:
    before = len(mesh.inbox)
    await sender.send(mesh.target.id, "direct", {"from": str(sender.id)})
    with trio.fail_after(10):
        await wait_until(lambda: len(mesh.inbox) == before + 1)
    assert mesh.inbox[-1].sender == sender.id


async def check_still_serving(mesh: Mesh) -> None:
    """The attack changed nothing that matters: serving, same members, no suspicion."""
    # Direct messages from both other nodes still arrive (over new links if need be).
    for sender in mesh.nodes[1:]:
        await send_direct(mesh, sender)
    # Run the protocol for two more probe rounds (virtual time), so that a suspicion the
    # attack caused would show in the logs below.
    timing = mesh.target.config.timing
    await trio.sleep(2 * timing.probe_interval)
    everyone = {node.id for node in mesh.nodes}
    for node, log in zip(mesh.nodes, mesh.logs, strict=True):
        assert alive_ids(node) == everyone
        assert {member.id for member in node.members()} == everyone  # nobody new
        # The only membership events ever seen are the joins of the mesh forming.
        assert all(isinstance(event, MemberJoined) for event in log), log
        assert node.statistics()["refutations"] == 0


@asynccontextmanager
async def udp_socket() -> AsyncIterator[trio.socket.SocketType]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    try:
        await sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


async def send_datagrams(mesh: Mesh, datagrams: list[bytes]) -> None:
    """Send each datagram to the target, paced so that its receive buffer never overflows.

    After each send it waits until the target has read one more datagram (maybe one of
    its peers': the count is shared), which keeps at most a few unread at any time.
    """
    target = mesh.target
    start = target.statistics()["packets_received"]
    async with udp_socket() as sock:
        for sent, data in enumerate(datagrams, start=1):
            await sock.sendto(data, target.address)
            with trio.fail_after(5):
                await wait_until(
                    lambda: target.statistics()["packets_received"] >= start + sent  # noqa: B023
                )


async def wait_for_drops(mesh: Mesh, before: dict[str, int], total: int) -> dict[str, int]:
    """Wait until ``total`` more drops were counted; return the counters that rose."""
    with trio.fail_after(5):
        await wait_until(lambda: sum(rose(before, mesh.drops()).values()) >= total)
    return rose(before, mesh.drops())


def units_of(datagrams: list[bytes]) -> list[bytes]:
    return [unit for data in datagrams for unit in split_datagram(data)]


def rose(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The drop counters that changed, and by how much."""
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


# -- datagrams -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_datagrams_are_dropped_and_counted(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    sizes = [0, 1, 7, 60, 300, 1399, 1400, 1401, 4000]
    junk = [rng.randbytes(rng.choice(sizes)) for _ in range(150)]
    junk += [bytes([0xD0]) + rng.randbytes(100)]  # a COSE_Encrypt0 tag; this mesh has no key
    async with attacked_mesh(monkeypatch) as mesh:
        before = mesh.drops()
        await send_datagrams(mesh, junk)
        dropped = await wait_for_drops(mesh, before, len(junk))
        oversized = sum(1 for data in junk if len(data) > 1400)
        encrypted = sum(1 for data in junk if data[:1] == b"\xd0")
        assert dropped == {
            "oversized": oversized,
            "decrypt_failed": encrypted,
            "malformed": len(junk) - oversized - encrypted,
        }


async def test_datagrams_that_look_like_cose_but_are_not_are_malformed(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    async with attacked_mesh(monkeypatch) as mesh:
        real = rng.choice(units_of(mesh.datagrams))
        assert real[KEY_START:KEY_END] in {bytes(node.id) for node in mesh.nodes}
        # A valid prefix and key, then junk.
        fakes = [real[:KEY_END] + rng.randbytes(rng.randrange(1, 200)) for _ in range(20)]
        fakes += [real[: rng.randrange(KEY_END, len(real) - 1)] for _ in range(10)]  # cut short
        fakes += [real + b"\x00"]  # a whole unit, then a byte that starts no unit
        fakes += [real[: -SIGNATURE_SIZE - 2] + b"\x58\x20" + bytes(32)]  # a short signature
        before = mesh.drops()
        await send_datagrams(mesh, fakes)
        assert await wait_for_drops(mesh, before, len(fakes)) == {"malformed": len(fakes)}


async def test_forged_signatures_are_dropped_as_bad_signature(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(4)
    async with attacked_mesh(monkeypatch) as mesh:
        mesh_name = mesh.target.config.mesh
        forged: list[bytes] = []
        units = units_of(mesh.datagrams)
        for unit in units:
            flipped = bytearray(unit)
            at = len(unit) - 1 - rng.randrange(SIGNATURE_SIZE)  # in the signature
            flipped[at] ^= 1 << rng.randrange(8)
            forged.append(bytes(flipped))
            if verify_message(unit, mesh=mesh_name).type in DIRECT_TYPES:
                # Probes and acks: also claim another signer (a flipped key). A statement
                # with a known signature is skipped unverified as a duplicate instead.
                flipped = bytearray(unit)
                flipped[rng.randrange(KEY_START, KEY_END)] ^= 1 << rng.randrange(8)
                forged.append(bytes(flipped))
        assert len(forged) > len(units)  # some probes or acks were among them
        before = mesh.drops()
        await send_datagrams(mesh, forged)
        assert await wait_for_drops(mesh, before, len(forged)) == {"bad_signature": len(forged)}


async def test_replayed_datagrams_are_dropped_or_ignored(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with attacked_mesh(monkeypatch) as mesh:
        replays = list(mesh.datagrams)
        mesh_name = mesh.target.config.mesh
        kinds = [verify_message(u, mesh=mesh_name).type for u in units_of(replays)]
        direct = sum(1 for kind in kinds if kind in DIRECT_TYPES)
        assert direct >= 1  # pings and acks were captured
        before = mesh.drops()
        duplicates = mesh.target.statistics()["duplicates"]
        await send_datagrams(mesh, replays)
        # Probes and acks fail the replay window; statements were already seen (and the
        # peers' own gossip adds duplicates meanwhile, hence >=).
        assert await wait_for_drops(mesh, before, direct) == {"replayed": direct}
        assert mesh.target.statistics()["duplicates"] - duplicates >= len(kinds) - direct


async def test_messages_of_another_mesh_or_key_are_dropped(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with attacked_mesh(monkeypatch) as mesh:
        stranger = Identity.generate()
        other_mesh = unique_mesh()
        ping = {1: 1, 2: bytes(mesh.target.id)}
        foreign = sign_message(stranger, ping, mesh=other_mesh, type=MessageType.PING)
        ours = sign_message(stranger, ping, mesh=mesh.target.config.mesh, type=MessageType.PING)
        datagrams = [
            seal_datagram([foreign]),
            seal_datagram([ours], keyring=Keyring([Keyring.generate_key()])),  # we have none
        ]
        before = mesh.drops()
        await send_datagrams(mesh, datagrams)
        assert await wait_for_drops(mesh, before, 2) == {"wrong_mesh": 1, "decrypt_failed": 1}
        # A whole node of another mesh that takes the target as its seed.
        before = mesh.drops()
        config = make_config(other_mesh, seeds=(seed_of(mesh.target),))
        async with open_node(config) as foreigner:
            with trio.fail_after(10):
                await wait_until(lambda: mesh.drops()["wrong_mesh"] > before["wrong_mesh"])
            assert [member.id for member in foreigner.members()] == [foreigner.id]
        assert set(rose(before, mesh.drops())) == {"wrong_mesh"}


async def test_a_direct_message_by_datagram_is_not_delivered(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Direct messages travel by stream only. Signed and fresh, one by datagram is still
    # not a path of the protocol: dropped as message_by_datagram (one of the
    # "unexpected" reasons), never delivered, not kept.
    async with attacked_mesh(monkeypatch) as mesh:
        # Signed by a member's own signer: valid and fresh in every other way.
        sender = mesh.nodes[1]._core.membership
        body = DirectMessage("direct", "by datagram")
        units = [sender.sign(MessageType.MESSAGE, body) for _ in range(50)]
        unexpected = mesh.target.statistics()["unexpected"]
        before = mesh.drops()
        await send_datagrams(mesh, [seal_datagram([unit]) for unit in units])
        with trio.fail_after(5):
            await wait_until(
                lambda: mesh.target.statistics()["unexpected"] == unexpected + len(units)
            )
        assert rose(before, mesh.drops()) == {"message_by_datagram": len(units)}
        # A frame afterwards (check_still_serving sends two) must not bring them along.
    assert [message.payload for message in mesh.inbox].count("by datagram") == 0


# -- streams ---------------------------------------------------------------------------


async def write_and_wait_for_close(target: Node, data: bytes) -> None:
    """Open a connection, write ``data``, end our side, and wait until the target closes."""
    stream = await trio.open_tcp_stream(*target.address)
    async with stream:
        with trio.fail_after(5):
            try:
                await stream.send_all(data)
                await stream.send_eof()
                while await stream.receive_some():
                    pass
            except trio.BrokenResourceError:
                pass  # reset: the target closed with some of our bytes unread


async def test_junk_streams_are_dropped_and_counted(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    async with attacked_mesh(monkeypatch) as mesh:
        target = mesh.target
        limit = target.config.limits.max_frame_size
        before = mesh.drops()
        # Random bytes: the first four read as a length far above the limit.
        await write_and_wait_for_close(target, b"\xff" + rng.randbytes(999))
        # A length prefix just above the limit: refused before any of the body is read.
        await write_and_wait_for_close(target, (limit + 1).to_bytes(4, "big") + bytes(10))
        assert await wait_for_drops(mesh, before, 2) == {"oversized": 2}
        # Well-framed junk, an empty frame, a frame holding two units, then the end of the
        # stream in the middle of a frame: each frame is dropped, the stream goes on.
        unit = sign_message(Identity.generate(), {}, mesh=target.config.mesh)
        frames = [frame(b"\x00" + rng.randbytes(rng.randrange(1, 500))) for _ in range(10)]
        frames += [frame(b""), frame(unit + unit), frame(unit[:-1])]
        before = mesh.drops()
        await write_and_wait_for_close(target, b"".join(frames) + frame(unit)[:-5])
        assert await wait_for_drops(mesh, before, len(frames)) == {"malformed": len(frames)}
        assert target.statistics()["frames_timed_out"] == 0


async def test_replayed_and_forged_frames_are_dropped(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with attacked_mesh(monkeypatch) as mesh:
        assert mesh.frames, "no frame was captured"
        received = mesh.target.statistics()["messages_received"]
        forged = bytearray(mesh.frames[0])
        forged[-1] ^= 0x01  # the last byte of the signature
        before = mesh.drops()
        stream = await trio.open_tcp_stream(*mesh.target.address)
        async with stream:
            await stream.send_all(b"".join(mesh.frames) + bytes(forged))
            dropped = await wait_for_drops(mesh, before, len(mesh.frames) + 1)
        assert dropped == {"replayed": len(mesh.frames), "bad_signature": 1}
        assert mesh.target.statistics()["messages_received"] == received  # none delivered
        assert len(mesh.inbox) == 2  # the two real messages sent before the attack


async def test_slow_loris_frame_is_cut_after_frame_read_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with attacked_mesh(monkeypatch) as mesh:
        target = mesh.target
        timed_out = target.statistics()["frames_timed_out"]
        stream = await trio.open_tcp_stream(*target.address)
        async with stream, trio.open_nursery() as nursery:

            async def trickle() -> None:
                # A 100-byte frame, one byte at a time, each well within the timeout.
                await stream.send_all((100).to_bytes(4, "big"))
                for _ in range(100):
                    await trio.sleep(0.4 * FRAME_READ_TIMEOUT)
                    try:
                        await stream.send_all(b"x")
                    except trio.BrokenResourceError:
                        return

            started = trio.current_time()
            nursery.start_soon(trickle)
            with trio.fail_after(10 * FRAME_READ_TIMEOUT), suppress(trio.BrokenResourceError):
                assert await stream.receive_some() == b""  # closed by the target
            cut_after = trio.current_time() - started
            nursery.cancel_scope.cancel()
        assert FRAME_READ_TIMEOUT <= cut_after < 1.5 * FRAME_READ_TIMEOUT
        with trio.fail_after(1):
            await wait_until(lambda: target.statistics()["frames_timed_out"] == timed_out + 1)
            await wait_until(lambda: target.statistics()["connections_in"] == 2)  # the peers'
        assert sum(mesh.drops().values()) == 0  # a timeout, not a bad message


async def test_connection_flood_beyond_the_limit_is_refused_and_counted(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with attacked_mesh(monkeypatch) as mesh:
        target = mesh.target
        refused = target.statistics()["connections_refused"]
        held = target.statistics()["connections_in"]
        assert held == 2  # the two peers' links
        extra = 5
        streams: list[trio.SocketStream] = []
        try:
            for _ in range(MAX_INBOUND - held + extra):
                streams.append(await trio.open_tcp_stream(*target.address))
            with trio.fail_after(5):
                await wait_until(
                    lambda: target.statistics()["connections_refused"] == refused + extra
                )
                await wait_until(lambda: target.statistics()["connections_in"] == MAX_INBOUND)
            # While the slots are full, the peers' existing links still carry messages.
            await send_direct(mesh, mesh.nodes[1])
        finally:
            for stream in streams:
                await stream.aclose()
        with trio.fail_after(5):
            await wait_until(lambda: target.statistics()["connections_in"] == held)
        assert target.statistics()["connections_refused"] == refused + extra
