"""The trio runtime: ``open_node`` and ``Node``, with real sockets on 127.0.0.1.

Network rule of this project: every node here binds 127.0.0.1:0, and nothing else.

Clock: the tests take pytest-trio's ``autojump_clock`` (a ``MockClock`` that jumps to the
next deadline as soon as every task is blocked). That is sound with real loopback
sockets: a datagram or a TCP segment sent on loopback is in the peer's receive buffer
when ``sendto``/``send`` returns, and trio polls for I/O (with a zero timeout) before it
jumps, so the clock never jumps over a packet in flight. The protocol timers then run
in virtual time: a suspicion timeout of seconds takes milliseconds, and a loaded test
machine cannot make a probe time out. Waits are conditions under ``trio.fail_after``
(virtual seconds).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import re
import socket
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import trio
from runtime_helpers import (
    alive_ids,
    collect,
    kinds_about,
    make_config,
    open_mesh,
    record_events,
    run_node,
    seed_of,
    state_of,
    unique_mesh,
    wait_until,
)

from meshedge import Identity, Keyring, LocalProtocolError, TrustPolicy
from meshedge._errors import DropReason, MeshError, PeerUnavailableError, UnknownPeerError
from meshedge.core._envelope import UNEXPECTED_REASONS
from meshedge.core._events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
)
from meshedge.core._member import MemberState
from meshedge.core._statistics import (
    CORE_SECTIONS,
    MEMBERSHIP_SECTIONS,
    NODE_KEYS,
    NODE_SECTIONS,
    TASK_KEYS,
    TASK_SECTIONS,
    MembershipCounters,
    MembershipTraffic,
    MessageCounters,
    TransportCounters,
    disjoint_keys,
    merge,
)
from meshedge.core._stealing import StealingTiming
from meshedge.core._timing import Timing
from meshedge.runtime._addresses import is_ip
from meshedge.runtime._config import NodeConfig
from meshedge.runtime._exception_groups import unwrap_lone_exception
from meshedge.runtime._node import Message, Node, open_node
from meshedge.runtime._tasks import TaskRegistry
from meshedge.runtime._transport import UdpEndpoint

# -- forming a mesh --------------------------------------------------------------------


async def test_three_nodes_join_through_one_seed_and_see_three_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_mesh(3) as nodes:
        everyone = {node.id for node in nodes}
        for node in nodes:
            members = node.members()
            assert {member.id for member in members} == everyone
            assert all(member.state == MemberState.ALIVE for member in members)
            me = node.member(node.id)
            assert me is not None and me in members  # members() includes this node
            assert me.address == node.address and me.address[0] == "127.0.0.1"
            assert node.member(Identity.generate().node_id) is None
        # The last two knew only the seed; they learned each other through it.
        other = nodes[2].member(nodes[1].id)
        assert other is not None and other.address == nodes[1].address
        port = nodes[0].address[1]
    # Every node has left and closed its sockets: the port is free again.
    bind_both(port)


async def test_events_report_join_update_and_leave(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mesh = unique_mesh()
    stop_second = trio.Event()
    async with open_node(make_config(mesh)) as first, trio.open_nursery() as nursery:
        second_config = make_config(mesh, seeds=(seed_of(first),))
        second = await nursery.start(run_node, second_config, stop_second)
        with trio.fail_after(10):
            await wait_until(lambda: second.id in alive_ids(first))
        # Nobody was listening until now: the first consumer still gets the join.
        async with aclosing(first.events()) as events:  # type: ignore[type-var]
            with trio.fail_after(10):
                joined = await anext(events)
                assert isinstance(joined, MemberJoined)
                assert joined.member.id == second.id
                assert joined.member.address == second.address
                await second.set_tags({"zone": "eu"})
                updated = await anext(events)
                assert isinstance(updated, MemberUpdated)
                assert dict(updated.member.tags) == {"zone": "eu"}
                assert updated.member.incarnation > joined.member.incarnation
                stop_second.set()  # the second node leaves
                left = await anext(events)
        assert isinstance(left, MemberLeft) and left.member.id == second.id
        assert left.member.state == MemberState.LEFT


async def test_streams_end_when_the_node_stops(autojump_clock: trio.testing.MockClock) -> None:
    ended: list[str] = []

    async def consume_events(node: Node) -> None:
        async for _ in node.events():
            pass
        ended.append("events")

    async def consume_topic(node: Node) -> None:
        async with node.subscribe("topic") as messages:
            async for _ in messages:
                pass
        ended.append("topic")

    with trio.fail_after(10):
        # The consumers run in a nursery outside the node's block: when the node stops,
        # they must end, or this nursery would wait forever.
        async with trio.open_nursery() as nursery, open_node(make_config(unique_mesh())) as node:
            nursery.start_soon(consume_events, node)
            nursery.start_soon(consume_topic, node)
            await trio.testing.wait_all_tasks_blocked()  # both consumers are waiting
    assert sorted(ended) == ["events", "topic"]
    # Asked after the node stopped, both end at once.
    assert [event async for event in node.events()] == []
    async with node.subscribe("other") as messages:
        assert [message async for message in messages] == []


# -- direct messages -------------------------------------------------------------------


async def test_direct_messages_arrive_in_order_with_sender_topic_and_payload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    count = 300
    async with open_mesh(3) as (receiver, first, second):
        received: list[Message] = []
        elsewhere: list[Message] = []

        async def send_all(sender: Node, name: str) -> None:
            for index in range(count):
                payload = {"from": name, "n": index, "blob": bytes(index % 40), "f": index / 3}
                await sender.send(receiver.id, "jobs", payload)

        async with trio.open_nursery() as nursery:
            await nursery.start(collect, receiver, "jobs", received)
            await nursery.start(collect, receiver, "other", elsewhere)
            # Two senders at once, each with its own stream of messages.
            nursery.start_soon(send_all, first, "first")
            nursery.start_soon(send_all, second, "second")
            with trio.fail_after(20):
                await wait_until(lambda: len(received) == 2 * count)
            nursery.cancel_scope.cancel()
    assert elsewhere == []
    for sender, name in ((first, "first"), (second, "second")):
        mine = [message for message in received if message.sender == sender.id]
        assert [message.payload["n"] for message in mine] == list(range(count))  # in order
        for index, message in enumerate(mine):
            assert message.topic == "jobs"
            assert message.broadcast is False
            assert message.payload == {
                "from": name,
                "n": index,
                "blob": bytes(index % 40),
                "f": index / 3,
            }


async def test_send_to_an_unknown_id_raises_unknown_peer_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_mesh(2) as (node, other):
        stranger = Identity.generate().node_id
        with pytest.raises(UnknownPeerError, match="no member"):
            await node.send(stranger, "topic", "hello")
        assert issubclass(UnknownPeerError, MeshError)
        # Misuse of the API is a local error, raised before anything is sent.
        with pytest.raises(LocalProtocolError, match="topic"):
            await node.send(other.id, 42, "hello")  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError, match="payload"):
            await node.send(other.id, "topic", object())
        assert node.statistics()["messages_sent"] == 0


async def test_send_to_a_member_that_left_raises_peer_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mesh = unique_mesh()
    async with open_node(make_config(mesh)) as node:
        async with open_node(make_config(mesh, seeds=(seed_of(node),))) as leaver:
            with trio.fail_after(10):
                await wait_until(lambda: state_of(node, leaver.id) == MemberState.ALIVE)
        with trio.fail_after(10):
            await wait_until(lambda: state_of(node, leaver.id) == MemberState.LEFT)
        with pytest.raises(PeerUnavailableError, match="left"):
            await node.send(leaver.id, "topic", "hello")


async def test_send_cancelled_mid_frame_does_not_corrupt_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A receiver that does not read (buffer of 1) fills the TCP window until a send blocks
    # inside a frame; cancelling it must not leave half a frame in front of the next one.
    async with open_mesh(2, subscriber_buffer=1) as (sender, receiver):
        received: list[Message] = []
        big = bytes(400_000)
        async with receiver.subscribe("bulk") as messages:
            completed = 0
            with trio.move_on_after(5) as scope:
                while True:
                    await sender.send(receiver.id, "bulk", [completed, big])
                    completed += 1
            assert scope.cancelled_caught, "the sends never blocked"

            async def read() -> None:
                async for message in messages:
                    received.append(message)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await sender.send(receiver.id, "bulk", ["after", b""])
                with trio.fail_after(10):
                    await wait_until(lambda: any(m.payload[0] == "after" for m in received))
                    # The messages whose send had completed are all delivered too.
                    await wait_until(lambda: len(received) >= completed + 1)
                nursery.cancel_scope.cancel()
    numbers = [m.payload[0] for m in received if m.payload[0] != "after"]
    assert set(range(completed)) <= set(numbers)
    assert sum(receiver.statistics()["drops"].values()) == 0


async def test_send_after_the_peer_closed_the_idle_link_is_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The receiver closes an idle inbound connection after connection_idle_timeout; the
    # sender's link looks open until it writes. No anti-entropy, so only our sends use it.
    timing = Timing.local().with_(push_pull_interval=1000.0, reconnect_interval=1000.0)
    async with open_mesh(2, timing=timing, connection_idle_timeout=10.0) as (sender, receiver):
        received: list[Message] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(collect, receiver, "t", received)
            delays = [0.0, 10.5, 10.2, 11.0, 12.0, 25.0]
            for index, delay in enumerate(delays):
                await trio.sleep(delay)
                await sender.send(receiver.id, "t", index)
                with trio.fail_after(5):
                    await wait_until(lambda: len(received) == index + 1)  # noqa: B023
            nursery.cancel_scope.cancel()
    assert [message.payload for message in received] == list(range(len(delays)))


# -- broadcasts and tags ---------------------------------------------------------------


async def test_broadcast_reaches_every_other_node_exactly_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Five nodes, so that gossip (to 3 members a round) must be forwarded to reach all.
    timing = Timing.local()
    async with open_mesh(5, timing=timing) as nodes:
        inboxes: list[list[Message]] = [[] for _ in nodes]
        async with trio.open_nursery() as nursery:
            for node, inbox in zip(nodes, inboxes, strict=True):
                await nursery.start(collect, node, "news", inbox)
            for index in range(10):
                await nodes[0].broadcast("news", {"n": index})
            for index in range(5):
                await nodes[3].broadcast("news", {"m": index})
            expected = {0: 5, 1: 15, 2: 15, 3: 10, 4: 15}
            with trio.fail_after(20):
                await wait_until(lambda: all(len(inboxes[i]) >= n for i, n in expected.items()))
            # Anti-entropy also offers retained broadcasts: let it run a few rounds (in
            # virtual time) and check that nobody gets a second copy.
            await trio.sleep(3 * timing.push_pull_interval)
            nursery.cancel_scope.cancel()
    from_first = [(nodes[0].id, {"n": index}) for index in range(10)]
    from_fourth = [(nodes[3].id, {"m": index}) for index in range(5)]
    for position, inbox in enumerate(inboxes):
        got = [(message.sender, message.payload) for message in inbox]
        want = (from_first if position != 0 else []) + (from_fourth if position != 3 else [])
        assert len(got) == len(want)
        assert sorted(got, key=repr) == sorted(want, key=repr)
        assert all(m.topic == "news" and m.broadcast for m in inbox)


async def test_set_tags_propagates(autojump_clock: trio.testing.MockClock) -> None:
    async with open_mesh(3, tags={"role": "worker"}) as nodes:
        tagger = nodes[1]
        assert all(dict(n.member(tagger.id).tags) == {"role": "worker"} for n in nodes)  # type: ignore[union-attr]
        before = tagger.member(tagger.id).incarnation  # type: ignore[union-attr]
        await tagger.set_tags({"role": "worker", "zone": "eu", "gpu": "yes"})
        with trio.fail_after(10):
            await wait_until(
                lambda: all(
                    dict(n.member(tagger.id).tags)  # type: ignore[union-attr]
                    == {"role": "worker", "zone": "eu", "gpu": "yes"}
                    for n in nodes
                )
            )
        assert all(n.member(tagger.id).incarnation > before for n in nodes)  # type: ignore[union-attr]
        with pytest.raises(LocalProtocolError, match="text"):
            await tagger.set_tags({"zone": 3})  # type: ignore[dict-item]
        with pytest.raises(LocalProtocolError, match="512 bytes"):
            await tagger.set_tags({f"k{i}": "v" * 100 for i in range(10)})


# -- leaving and failing ---------------------------------------------------------------


async def test_a_node_that_exits_is_seen_left_and_never_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timing = Timing.local()
    mesh = unique_mesh()
    logs: list[list[MemberEvent]] = [[], []]
    async with open_mesh(2, mesh=mesh, timing=timing) as stayers, trio.open_nursery() as nursery:
        for node, log in zip(stayers, logs, strict=True):
            await nursery.start(record_events, node, log)
        async with open_node(make_config(mesh, seeds=(seed_of(stayers[0]),))) as leaver:
            with trio.fail_after(10):
                await wait_until(lambda: all(leaver.id in alive_ids(n) for n in stayers))
            started_leaving = trio.current_time()
        assert trio.current_time() - started_leaving <= leaver.config.leave_timeout + 0.01
        with trio.fail_after(10):
            await wait_until(
                lambda: all(state_of(n, leaver.id) == MemberState.LEFT for n in stayers)
            )
        # Long past any suspicion timeout (virtual time), it is still LEFT, never DEAD.
        await trio.sleep(2 * timing.suspicion_timeouts(3)[1])
        assert all(state_of(n, leaver.id) == MemberState.LEFT for n in stayers)
        nursery.cancel_scope.cancel()
    for log in logs:
        assert kinds_about(log, leaver.id) == [MemberJoined, MemberLeft]


async def test_cancelling_the_surrounding_scope_stops_the_node_and_it_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mesh = unique_mesh()
    async with open_mesh(2, mesh=mesh) as stayers:
        with trio.move_on_after(5) as scope:
            async with open_node(make_config(mesh, seeds=(seed_of(stayers[0]),))) as leaver:
                await trio.sleep_forever()
        assert scope.cancelled_caught
        with trio.fail_after(10):
            await wait_until(
                lambda: all(state_of(n, leaver.id) == MemberState.LEFT for n in stayers)
            )


async def test_a_crashed_node_is_declared_dead_in_virtual_time(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memberlist's LAN timing: the suspicion timeout alone is 4 s, yet the test takes a
    # fraction of that in wall time, because the pump passes trio.current_time() as now.
    timing = Timing.lan()
    mesh = unique_mesh()
    logs: list[list[MemberEvent]] = [[], []]
    async with open_mesh(2, mesh=mesh, timing=timing) as survivors, trio.open_nursery() as nursery:
        for node, log in zip(survivors, logs, strict=True):
            await nursery.start(record_events, node, log)
        victim_config = make_config(mesh, seeds=(seed_of(survivors[0]),), timing=timing)
        async with open_node(victim_config) as victim:
            with trio.fail_after(30):
                await wait_until(lambda: all(victim.id in alive_ids(n) for n in survivors))

            async def no_leave() -> None:
                await trio.lowlevel.checkpoint()

            # A crash: the sockets close and nothing is said (no LEFT statement).
            monkeypatch.setattr(victim._pump, "_leave", no_leave)
        crashed_at, wall_start = trio.current_time(), time.perf_counter()
        # Its listener is gone: a send fails at once (before it is even suspected).
        with pytest.raises(PeerUnavailableError, match="cannot connect"):
            await survivors[0].send(victim.id, "topic", "hello")
        with trio.fail_after(60):
            await wait_until(
                lambda: all(state_of(n, victim.id) == MemberState.DEAD for n in survivors)
            )
        virtual = trio.current_time() - crashed_at
        wall = time.perf_counter() - wall_start
        minimum, maximum = timing.suspicion_timeouts(3)
        assert minimum <= virtual <= maximum + 5 * timing.probe_interval
        assert wall < virtual / 2, f"{wall:.2f} s of wall time for {virtual:.2f} s of protocol"
        with pytest.raises(PeerUnavailableError, match="dead"):
            await survivors[1].send(victim.id, "topic", "hello")
        nursery.cancel_scope.cancel()
    for log in logs:
        kinds = kinds_about(log, victim.id)
        assert kinds[0] is MemberJoined and kinds[-1] is MemberFailed
        assert MemberSuspected in kinds and MemberLeft not in kinds


# -- statistics ------------------------------------------------------------------------


async def test_statistics_count_messages_traffic_and_connections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_mesh(3) as (sender, receiver, bystander):
        nodes = (sender, receiver, bystander)
        with trio.fail_after(10):  # a mesh can form by anti-entropy alone: wait for probes
            await wait_until(
                lambda: all(
                    n.statistics()["packets_sent"] > 0 and n.statistics()["packets_received"] > 0
                    for n in nodes
                )
            )
        before_sent = sender.statistics()
        before_received = receiver.statistics()
        received: list[Message] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(collect, receiver, "counted", received)
            for index in range(25):
                await sender.send(receiver.id, "counted", index)
            for index in range(3):
                await sender.send(receiver.id, "nobody-listens", index)
            with trio.fail_after(10):
                await wait_until(
                    lambda: (
                        receiver.statistics()["no_subscriber"]
                        >= before_received["no_subscriber"] + 3
                    )
                )
            nursery.cancel_scope.cancel()
        sent, got = sender.statistics(), receiver.statistics()
        assert len(received) == 25
        assert sent["messages_sent"] - before_sent["messages_sent"] == 28
        assert got["messages_received"] - before_received["messages_received"] == 28
        assert got["no_subscriber"] - before_received["no_subscriber"] == 3
        assert got["frames_received"] - before_received["frames_received"] >= 28
        assert got["frame_bytes_received"] > before_received["frame_bytes_received"]
        # Direct messages are frames too: the sender counts what it wrote.
        frames_out = sent["frames_sent"] - before_sent["frames_sent"]
        bytes_out = sent["frame_bytes_sent"] - before_sent["frame_bytes_sent"]
        assert frames_out >= 28
        assert bytes_out >= 28 * 150  # each a signed COSE message of > 150 bytes
        assert sent["connections_out"] >= 1 and got["connections_in"] >= 1
        for stats in (sent, got, bystander.statistics()):
            assert stats["members"] == 3
            assert stats["packets_sent"] > 0 and stats["bytes_sent"] > 0, stats
            assert stats["packets_received"] > 0 and stats["bytes_received"] > 0
            assert set(stats["drops"]) >= {"malformed", "bad_signature", "decrypt_failed"}
            assert sum(stats["drops"].values()) == 0  # a clean mesh drops nothing
            assert stats["connections_refused"] == stats["frames_timed_out"] == 0
            assert stats["events_dropped_slow_consumer"] == 0


async def test_statistics_produce_each_declared_key_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = TaskRegistry()

    @registry.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    config = make_config(unique_mesh())
    async with open_node(config) as plain, open_node(config, tasks=registry) as worker:
        assert set(plain.statistics()) == NODE_KEYS - {"tasks"}
        assert await worker.submit("double", 21) == 42
        stats = worker.statistics()
        assert set(stats) == NODE_KEYS and set(stats["tasks"]) == TASK_KEYS
        assert stats["tasks"]["submitted"] == stats["tasks"]["completed"] == 1
        # Every key comes from exactly one section: the sections' sizes add up.
        assert len(NODE_KEYS) == sum(len(kind.keys()) for kind in NODE_SECTIONS) + 1
        assert stats["unexpected"] == sum(stats["drops"][r.value] for r in UNEXPECTED_REASONS)
        assert set(stats["drops"]) == {reason.value for reason in DropReason}
        # A new dict each time: changing one changes nothing in the node.
        stats["drops"]["malformed"] += 1
        assert worker.statistics()["drops"]["malformed"] == 0


def test_statistics_refuse_a_key_with_two_owners() -> None:
    for sections in (MEMBERSHIP_SECTIONS, CORE_SECTIONS, TASK_SECTIONS, NODE_SECTIONS):
        assert len(disjoint_keys(*sections)) == sum(len(kind.keys()) for kind in sections)
    # The membership core's own traffic and the sockets' share names, so never one dict.
    with pytest.raises(TypeError, match="two owners"):
        disjoint_keys(*CORE_SECTIONS, MembershipTraffic, TransportCounters)
    with pytest.raises(TypeError, match="two owners"):
        merge(TransportCounters(), MembershipTraffic())
    with pytest.raises(TypeError, match="two owners"):
        merge({"members": 1}, MembershipCounters())
    assert merge(MessageCounters(3), {"tasks": {}}) == {"messages_received": 3, "tasks": {}}


def test_the_api_doc_gives_every_statistics_key_its_meaning() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text("utf-8")
    table = text[text.index("\n## Statistics\n") : text.index("\n## Public names\n")]
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"`(\w+)`", " ".join(rows)))
    assert documented == NODE_KEYS
    tasks = text[text.index("\n## Tasks (work stealing)\n") : text.index("\n## `Message`\n")]
    paragraph = tasks[tasks.index('`node.statistics()["tasks"]`') :]
    assert set(re.findall(r"`(\w+)`", paragraph)) >= TASK_KEYS
    drops_row = next(line for line in table.splitlines() if line.startswith("| `drops`"))
    assert {reason.value for reason in DropReason} <= set(re.findall(r"`(\w+)`", drops_row))


# -- keys and trust --------------------------------------------------------------------


async def test_nodes_sharing_a_keyring_form_a_mesh(autojump_clock: trio.testing.MockClock) -> None:
    keyring = Keyring([Keyring.generate_key()])
    async with open_mesh(3, keyring=keyring) as nodes:
        received: list[Message] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(collect, nodes[2], "secret", received)
            await nodes[1].send(nodes[2].id, "secret", "over an encrypted stream")
            with trio.fail_after(10):
                await wait_until(lambda: len(received) == 1)
            nursery.cancel_scope.cancel()
        assert received[0].payload == "over an encrypted stream"
        assert all(sum(node.statistics()["drops"].values()) == 0 for node in nodes)


@pytest.mark.parametrize("intruder_key", ["none", "another key"])
async def test_a_node_without_the_mesh_key_cannot_join(
    autojump_clock: trio.testing.MockClock, intruder_key: str
) -> None:
    keyring = Keyring([Keyring.generate_key()])
    mesh = unique_mesh()
    async with open_mesh(2, mesh=mesh, keyring=keyring) as members:
        members_before = [sorted(m.id for m in node.members()) for node in members]
        other = None if intruder_key == "none" else Keyring([Keyring.generate_key()])
        config = make_config(mesh, keyring=other, seeds=(seed_of(members[0]),))
        async with open_node(config) as intruder:
            with trio.fail_after(10):
                await wait_until(lambda: members[0].statistics()["drops"]["decrypt_failed"] >= 1)
            # It keeps retrying its seed (with back-off) for a while: still nothing.
            await trio.sleep(3 * intruder.config.timing.reconnect_interval)
            assert members[0].statistics()["drops"]["decrypt_failed"] >= 2
            assert [sorted(m.id for m in node.members()) for node in members] == members_before
            assert all(alive_ids(node) == {m.id for m in members} for node in members)
            assert [m.id for m in intruder.members()] == [intruder.id]
        for node in members:
            drops = node.statistics()["drops"]
            assert sum(drops.values()) == drops["decrypt_failed"]


async def test_a_trust_allowlist_keeps_an_unlisted_node_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, second = Identity.generate(), Identity.generate()
    trust = TrustPolicy.allow([first.node_id, second.node_id])
    mesh = unique_mesh()
    async with open_mesh(2, mesh=mesh, identities=[first, second], trust=trust) as members:
        # The stranger trusts everyone; the members trust only each other.
        config = make_config(mesh, seeds=(seed_of(members[0]),))
        async with open_node(config) as stranger:
            with trio.fail_after(10):
                await wait_until(lambda: members[0].statistics()["drops"]["untrusted"] >= 1)
            await trio.sleep(3 * stranger.config.timing.reconnect_interval)
            for node in members:
                assert node.member(stranger.id) is None
                assert alive_ids(node) == {first.node_id, second.node_id}
            assert [m.id for m in stranger.members()] == [stranger.id]
            with pytest.raises(UnknownPeerError):
                await members[0].send(stranger.id, "topic", "hello")


# -- configuration and lifecycle errors ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mesh": ""}, "mesh name must be a non-empty string"),
        ({"mesh": "x" * 65}, "longer than 64 UTF-8 bytes"),
        ({"bind": "localhost"}, r"not an address: 'localhost' \(expected host:port\)"),
        ({"bind": "127.0.0.1:99999"}, r"port out of range"),
        ({"bind": "127.0.0.1:http"}, r"bad port"),
        ({"bind": "[::1:7946"}, r"unclosed '\['"),
        ({"advertise": "192.0.2.1:0"}, "advertised port cannot be 0"),
        ({"seeds": "127.0.0.1:7946"}, "seeds is a sequence of 'host:port' strings"),
        ({"seeds": ("127.0.0.1",)}, r"not an address: '127.0.0.1' \(expected host:port\)"),
        ({"mdns_interfaces": ("lo",)}, "mdns_interfaces takes IP addresses, not 'lo'"),
        ({"max_connections": 0}, "NodeConfig.max_connections must be a positive integer"),
        ({"max_inbound_connections": 2.5}, "max_inbound_connections must be a positive"),
        ({"subscriber_buffer": True}, "subscriber_buffer must be a positive integer"),
        ({"frame_read_timeout": 0}, "frame_read_timeout must be a positive number"),
        ({"connection_idle_timeout": math.nan}, "connection_idle_timeout must be a positive"),
        ({"leave_timeout": -1}, "leave_timeout must be a non-negative number"),
        ({"leave_timeout": math.inf}, "leave_timeout must be a non-negative number"),
        ({"mdns_interfaces": "127.0.0.1"}, "mdns_interfaces is a sequence of IP address"),
        ({"mdns_interfaces": (2130706433,)}, "mdns_interfaces takes IP addresses, not 21"),
        ({"timing": "local"}, r"NodeConfig.timing must be a Timing .*, not 'local'"),
        ({"tags": "role=x"}, "NodeConfig.tags must be a mapping of str to str, not 'role=x'"),
        ({"tags": {"zone": 1}}, "NodeConfig.tags must be a mapping of str to str"),
        ({"tags": {1: "x"}}, "NodeConfig.tags must be a mapping of str to str"),
        ({"keyring": "abc"}, "NodeConfig.keyring must be a Keyring or None, not 'abc'"),
        ({"stealing": Timing.local()}, "NodeConfig.stealing must be a StealingTiming or None"),
    ],
)
def test_config_errors_are_local_protocol_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        NodeConfig(**{"bind": "127.0.0.1:0", **changes})


def test_config_resolves_its_stealing_timing() -> None:
    # By default LOAD adverts keep the pace of the configured gossip.
    for timing in (Timing.local(), Timing.lan()):
        derived = NodeConfig(bind="127.0.0.1:0", timing=timing).stealing_timing()
        assert derived == StealingTiming(load_interval=timing.gossip_interval)
    given = StealingTiming(load_interval=0.5, lease_timeout=3.0)
    config = NodeConfig(bind="127.0.0.1:0", timing=Timing.local(), stealing=given)
    assert config.stealing_timing() is given


async def test_a_node_runs_its_work_stealing_with_the_configured_timing() -> None:
    registry = TaskRegistry()
    given = StealingTiming(load_interval=0.3, lease_timeout=4.0)
    for stealing, expected in ((given, given), (None, make_config("m").stealing_timing())):
        config = make_config(unique_mesh(), stealing=stealing)
        async with open_node(config, tasks=registry) as node:
            assert node._core.stealing is not None
            assert node._core.stealing.timing == expected


def test_config_accepts_a_zero_leave_timeout_and_is_frozen() -> None:
    config = NodeConfig(bind="127.0.0.1:0", leave_timeout=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mesh = "other"  # type: ignore[misc]


def bind_both(port: int) -> int:
    """Bind UDP and TCP (as a listener would: SO_REUSEADDR) to ``port``, then free both."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            return int(udp.getsockname()[1])


def free_port() -> int:
    """A port free for both UDP and TCP (an ephemeral one may be taken for one only)."""
    for _ in range(32):
        try:
            return bind_both(0)
        except OSError:
            continue
    raise AssertionError("no port free for both UDP and TCP")


async def test_failed_start_releases_the_port() -> None:
    port = free_port()
    # Text tags pass the configuration's checks; the core refuses their size, after the
    # sockets are bound.
    tags = {f"k{index}": "v" * 30 for index in range(20)}
    config = NodeConfig(mesh=unique_mesh(), bind=f"127.0.0.1:{port}", tags=tags)
    with pytest.raises(LocalProtocolError, match="tags take more than 512 bytes") as caught:
        async with open_node(config):
            pytest.fail("must not start")
    assert caught.value.__traceback__ is not None  # the frames (and sockets) still exist
    bind_both(port)  # free: the node closed both sockets


async def test_a_port_in_use_is_an_os_error() -> None:
    async with open_node(make_config(unique_mesh())) as node:
        taken = NodeConfig(mesh=unique_mesh(), bind=seed_of(node))
        with pytest.raises(OSError) as caught:
            async with open_node(taken):
                pytest.fail("must not start")
        assert caught.value.errno == errno.EADDRINUSE


async def test_port_zero_skips_a_port_taken_for_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    # UDP and TCP ports are separate: the UDP port the kernel picks for port 0 may be in
    # use for TCP (a listener, or an outbound connection's local port). Force that case.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        original = UdpEndpoint.bind.__func__  # type: ignore[attr-defined]
        asked: list[int] = []

        def bind_first_to_the_taken_port(cls: type, host: str, requested: int) -> UdpEndpoint:
            asked.append(requested)
            return original(cls, host, port if len(asked) == 1 else requested)  # type: ignore[no-any-return]

        monkeypatch.setattr(UdpEndpoint, "bind", classmethod(bind_first_to_the_taken_port))
        async with open_node(make_config(unique_mesh())) as node:
            assert node.address[1] != port
        # Asked for port 0 again after the collision (more than once, in the rare case
        # that the next pick collides too).
        assert len(asked) >= 2 and set(asked) == {0}


async def test_exception_in_the_block_comes_out_unwrapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with open_mesh(2):
            raise KeyError("mine")


async def test_a_background_failure_and_the_block_s_own_come_out_together(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two exceptions at once are never reduced to one: the group comes out as it is.
    async def broken_housekeeping() -> None:
        await trio.sleep(1)
        raise OSError("housekeeping broke")

    with pytest.RaisesGroup(OSError, KeyError):
        async with open_node(make_config(unique_mesh())) as node:
            node._nursery.start_soon(broken_housekeeping)
            try:
                await trio.sleep_forever()
            finally:
                raise KeyError("mine")


async def test_a_lone_background_failure_comes_out_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken() -> None:
        raise OSError("broke")

    with pytest.raises(OSError, match="broke") as caught:
        async with open_node(make_config(unique_mesh())) as node:
            node._nursery.start_soon(broken)
            await trio.sleep_forever()
    assert not isinstance(caught.value.__context__, BaseExceptionGroup)


# -- the exception-group helper ----------------------------------------------------------


def _lone_key_error() -> KeyError:
    """A KeyError raised while handling a ValueError (so with that as its context)."""
    try:
        raise ValueError("first")
    except ValueError:
        try:
            raise KeyError("lone") from None
        except KeyError as exc:
            return exc


def test_a_group_of_one_comes_out_as_that_exception_with_its_context() -> None:
    lone = _lone_key_error()
    with pytest.raises(KeyError) as caught, unwrap_lone_exception():
        raise ExceptionGroup("nursery", [lone])
    assert caught.value is lone
    assert isinstance(lone.__context__, ValueError) and lone.__suppress_context__
    assert lone.__cause__ is None


def test_a_group_of_several_comes_out_as_it_is() -> None:
    group = ExceptionGroup("nursery", [KeyError("a"), OSError("b")])
    with pytest.raises(ExceptionGroup) as caught, unwrap_lone_exception():
        raise group
    assert caught.value is group


def test_only_the_outer_group_is_unwrapped() -> None:
    own = ExceptionGroup("the caller's", [KeyError("a")])
    with pytest.raises(ExceptionGroup) as caught, unwrap_lone_exception():
        raise ExceptionGroup("nursery", [own])
    assert caught.value is own


def test_a_plain_exception_passes_unchanged() -> None:
    error = KeyError("plain")
    with pytest.raises(KeyError) as caught, unwrap_lone_exception():
        raise error
    assert caught.value is error and error.__context__ is None


# -- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("localhost", False),
        ("127.0.0.1%lo", False),
        ("", False),
    ],
)
def test_is_ip_knows_literals_and_never_resolves(host: str, expected: bool) -> None:
    assert is_ip(host) is expected


def test_address_text_round_trips_from_every_import_path() -> None:
    from meshedge.runtime import format_address as runtime_format
    from meshedge.runtime._config import format_address, parse_address

    assert runtime_format is format_address
    for address in (("127.0.0.1", 7946), ("::1", 0)):
        assert parse_address(format_address(address)) == address
    assert parse_address("fe80::1", default_port=5) == ("fe80::1", 5)
