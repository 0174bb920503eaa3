"""mDNS discovery: TXT parsing, the trio-side peer table, and real zeroconf on loopback.

Network rule of this project: every socket here is on 127.0.0.1 (zeroconf's sockets are
bound to the loopback device), or inside a network namespace that the test creates.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from zeroconf import ServiceInfo, ServiceStateChange

from meshedge import Identity, LocalProtocolError, NodeId
from meshedge.cli.run import json_records
from meshedge.runtime import _mdns_records as mdns_records
from meshedge.runtime import _mdns_zeroconf as mdns_zeroconf
from meshedge.runtime import discovery as discovery_module
from meshedge.runtime._mdns_records import Resolution, classify
from meshedge.runtime._mdns_zeroconf import default_addresses, start_zeroconf
from meshedge.runtime.discovery import (
    DISCOVERY_VERSION,
    SERVICE_TYPE,
    DiscoveredPeer,
    IgnoreReason,
    MdnsDiscovery,
    PeerFound,
    PeerLost,
    _BrowseChange,
    open_mdns,
)

LOOPBACK = ["127.0.0.1"]
REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = Path(__file__).resolve().parent / "mdns_node.py"
PROBE_SCRIPT = Path(__file__).resolve().parent / "mdns_probe.py"


def new_id() -> NodeId:
    return Identity.generate().node_id


def unique_mesh() -> str:
    # Other test runs may share this host's loopback: never share their mesh.
    return f"test-{uuid.uuid4().hex[:12]}"


def txt(node_id: NodeId | str, mesh: str = "m", version: bytes = b"1") -> dict[bytes, bytes]:
    return {b"id": str(node_id).encode(), b"mesh": mesh.encode(), b"v": version}


def resolution(
    properties: Mapping[bytes, bytes | None],
    hosts: tuple[str, ...] = ("127.0.0.1",),
    port: int | None = 7000,
) -> Resolution:
    return Resolution(tuple(properties.items()), hosts, port)


def name_of(node_id: NodeId) -> str:
    return f"{node_id}.{SERVICE_TYPE}"


# -- classify: pure --------------------------------------------------------------------


OWN = new_id()


def test_classify_accepts_a_peer_of_our_mesh() -> None:
    peer = new_id()
    verdict = classify(name_of(peer), resolution(txt(peer), ("127.0.0.2", "127.0.0.1")), OWN, "m")
    assert verdict == DiscoveredPeer(
        peer, "m", (("127.0.0.1", 7000), ("127.0.0.2", 7000)), DISCOVERY_VERSION
    )


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (txt(OWN), IgnoreReason.OWN),
        (txt("PEER", mesh="other"), IgnoreReason.WRONG_MESH),
        (txt("PEER", version=b"2"), IgnoreReason.WRONG_VERSION),
        (txt("PEER", version=b"0001"), None),
        (txt("PEER", version=b"x"), IgnoreReason.MALFORMED),
        (txt("PEER", version=b" 1"), IgnoreReason.MALFORMED),
        (txt("PEER", version=b"1" * 50), IgnoreReason.MALFORMED),
        ({b"id": b"PEER", b"mesh": b"m"}, IgnoreReason.MALFORMED),
        ({b"mesh": b"m", b"v": b"1"}, IgnoreReason.MALFORMED),
        ({b"id": b"PEER", b"v": b"1"}, IgnoreReason.MALFORMED),
        ({b"id": b"PEER", b"mesh": None, b"v": b"1"}, IgnoreReason.MALFORMED),
        (txt("not-a-node-id"), IgnoreReason.MALFORMED),
        ({b"id": b"PEER", b"mesh": b"\xff", b"v": b"1"}, IgnoreReason.MALFORMED),
        ({b"ID": b"PEER", b"Mesh": b"m", b"V": b"1"}, None),  # keys are case-insensitive
    ],
)
def test_classify_ignores_with_a_reason(
    properties: dict[bytes, bytes | None], expected: IgnoreReason | None
) -> None:
    peer = new_id()
    properties = {
        key: (value.replace(b"PEER", str(peer).encode()) if value is not None else None)
        for key, value in properties.items()
    }
    name = name_of(OWN) if properties.get(b"id") == str(OWN).encode() else name_of(peer)
    verdict = classify(name, resolution(properties), OWN, "m")
    if expected is None:
        assert isinstance(verdict, DiscoveredPeer) and verdict.node_id == peer
    else:
        assert verdict is expected


def test_classify_rejects_a_name_that_is_not_the_node_id() -> None:
    peer, other = new_id(), new_id()
    assert classify(name_of(other), resolution(txt(peer)), OWN, "m") is IgnoreReason.MALFORMED
    assert isinstance(
        classify(name_of(peer).upper(), resolution(txt(peer)), OWN, "m"), DiscoveredPeer
    )


@pytest.mark.parametrize(("hosts", "port"), [((), 7000), (("127.0.0.1",), None), ((), 0)])
def test_classify_needs_an_address_and_a_port(hosts: tuple[str, ...], port: int | None) -> None:
    peer = new_id()
    verdict = classify(name_of(peer), resolution(txt(peer), hosts, port), OWN, "m")
    assert verdict is IgnoreReason.MALFORMED


@given(
    name=st.text(max_size=80),
    properties=st.lists(
        st.tuples(st.binary(max_size=8), st.none() | st.binary(max_size=60)), max_size=6
    ),
    hosts=st.lists(st.text(max_size=20), max_size=3),
    port=st.none() | st.integers(min_value=-1, max_value=70_000),
)
def test_classify_never_raises_on_anything_a_remote_can_send(
    name: str,
    properties: list[tuple[bytes, bytes | None]],
    hosts: list[str],
    port: int | None,
) -> None:
    verdict = classify(name, Resolution(tuple(properties), tuple(hosts), port), OWN, "m")
    assert isinstance(verdict, (DiscoveredPeer, IgnoreReason))


# -- the peer table, driven without zeroconf ---------------------------------------------


def drain(discovery: MdnsDiscovery) -> list[Any]:
    events = []
    while True:
        try:
            events.append(discovery.events().receive_nowait())
        except trio.WouldBlock:
            return events


@pytest.mark.trio
async def test_peer_table_found_updated_lost() -> None:
    discovery = MdnsDiscovery(OWN, "m")
    peer = new_id()
    name = name_of(peer)
    discovery._advertised.add(name)
    discovery._apply_resolution(name, resolution(txt(peer)))
    discovery._apply_resolution(name, resolution(txt(peer)))  # unchanged: no event
    discovery._apply_resolution(name, resolution(txt(peer), ("127.0.0.9",)))
    assert [type(event) for event in drain(discovery)] == [PeerFound, PeerFound]
    assert discovery.peers()[peer].addresses == (("127.0.0.9", 7000),)

    discovery._on_browse_change(_BrowseChange(name, ServiceStateChange.Removed))
    assert drain(discovery) == [PeerLost(peer)]
    assert discovery.peers() == {}
    stats = discovery.statistics()
    assert (stats["found"], stats["updated"], stats["lost"], stats["peers"]) == (1, 1, 1, 0)


@pytest.mark.trio
async def test_peer_whose_record_turns_bad_is_lost_and_counted() -> None:
    discovery = MdnsDiscovery(OWN, "m")
    peer = new_id()
    name = name_of(peer)
    discovery._apply_resolution(name, resolution(txt(peer)))
    discovery._apply_resolution(name, resolution(txt(peer, mesh="other")))
    assert [type(event) for event in drain(discovery)] == [PeerFound, PeerLost]
    assert discovery.statistics()["ignored_wrong_mesh"] == 1
    # A look-up that merely timed out keeps the peer: the service may still be there.
    discovery._apply_resolution(name, resolution(txt(peer)))
    discovery._apply_resolution(name, None)
    assert peer in discovery.peers()
    assert discovery.statistics()["ignored_unresolved"] == 1


@pytest.mark.trio
async def test_event_overflow_is_counted_and_peers_stay_exact() -> None:
    discovery = MdnsDiscovery(OWN, "m", event_buffer_size=2)
    peers = [new_id() for _ in range(5)]
    for peer in peers:
        discovery._apply_resolution(name_of(peer), resolution(txt(peer)))
    assert len(drain(discovery)) == 2
    assert discovery.statistics()["events_dropped"] == 3
    assert set(discovery.peers()) == set(peers)


@pytest.mark.trio
async def test_own_service_and_too_many_services_are_counted_not_resolved() -> None:
    discovery = MdnsDiscovery(OWN, "m")
    discovery._on_browse_change(_BrowseChange(name_of(OWN), ServiceStateChange.Added))
    assert discovery.statistics()["ignored_own"] == 1
    discovery._advertised.update(f"x{i}.{SERVICE_TYPE}" for i in range(10_000))
    discovery._on_browse_change(_BrowseChange(name_of(new_id()), ServiceStateChange.Added))
    assert discovery.statistics()["ignored_too_many"] == 1
    assert not discovery._resolving


@pytest.mark.trio
async def test_peers_returns_a_copy() -> None:
    discovery = MdnsDiscovery(OWN, "m")
    peer = new_id()
    discovery._apply_resolution(name_of(peer), resolution(txt(peer)))
    discovery.peers().clear()
    assert peer in discovery.peers()


# -- argument checks (before any socket exists) ------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mesh": ""},
        {"mesh": "x" * 65},
        {"port": 0},
        {"port": 70_000},
        {"port": True},
        {"interfaces": []},
        {"interfaces": ["eth0"]},
        {"interfaces": "127.0.0.1"},
        {"addresses": ["not an address"]},
        {"node_id": str(OWN)},
    ],
)
@pytest.mark.trio
async def test_bad_arguments_are_local_errors(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "node_id": OWN,
        "mesh": "m",
        "port": 7000,
        "interfaces": LOOPBACK,
    }
    arguments.update(kwargs)
    with pytest.raises(LocalProtocolError):
        async with open_mdns(
            arguments.pop("node_id"), arguments.pop("mesh"), arguments.pop("port"), **arguments
        ):
            pytest.fail("must not start")


def test_default_addresses_are_the_interfaces_or_the_hosts_outside_ones() -> None:
    assert default_addresses(["127.0.0.1"]) == ["127.0.0.1"]
    everything = default_addresses(None)  # reads interfaces, sends nothing
    assert everything and all(ipaddress.ip_address(address).version == 4 for address in everything)
    if len(everything) > 1 or not ipaddress.ip_address(everything[0]).is_loopback:
        assert not any(ipaddress.ip_address(address).is_loopback for address in everything)


# -- real zeroconf on 127.0.0.1 in this host's namespace ---------------------------------
#
# The loopback device of this machine has no MULTICAST flag and no multicast route; it
# works anyway, because zeroconf sets IP_MULTICAST_IF to 127.0.0.1 and Linux then routes
# the group by that source address to lo (`ip route get 224.0.0.251 from 127.0.0.1`).


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition; the caller bounds the wait with trio.fail_after.

    The conditions are counters and sets that change on behalf of zeroconf's threads or
    of child processes, with no event to wait on: polling them is the honest wait.
    """
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


async def next_event(discovery: MdnsDiscovery) -> PeerFound | PeerLost:
    return await discovery.events().receive()


def foreign_threads() -> set[threading.Thread]:
    """Threads other than the main thread and trio's reusable worker threads."""
    return {
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.name.startswith("Trio thread")
    }


@pytest.mark.trio
async def test_nodes_on_loopback_find_each_other_and_ignore_other_meshes() -> None:
    mesh = unique_mesh()
    a_id, b_id, c_id = new_id(), new_id(), new_id()
    with trio.fail_after(8):
        async with (
            open_mdns(a_id, mesh, 7001, interfaces=LOOPBACK) as a,
            open_mdns(c_id, unique_mesh(), 7003, interfaces=LOOPBACK) as c,
        ):
            async with open_mdns(b_id, mesh, 7002, interfaces=LOOPBACK) as b:
                found_by_a = await next_event(a)
                found_by_b = await next_event(b)
                assert found_by_a == PeerFound(
                    DiscoveredPeer(b_id, mesh, (("127.0.0.1", 7002),), DISCOVERY_VERSION)
                )
                assert found_by_b == PeerFound(
                    DiscoveredPeer(a_id, mesh, (("127.0.0.1", 7001),), DISCOVERY_VERSION)
                )
                await wait_until(lambda: c.statistics()["ignored_wrong_mesh"] >= 2)
                await wait_until(lambda: a.statistics()["ignored_wrong_mesh"] >= 1)
                assert set(a.peers()) == {b_id} and set(b.peers()) == {a_id}
                assert c.peers() == {}
                assert a.statistics()["loopback_pin_failed"] == 0
            # b said goodbye on exit: a hears it at once, not after the TTL.
            assert await next_event(a) == PeerLost(b_id)
            assert a.peers() == {}


@asynccontextmanager
async def advertise_raw(infos: list[ServiceInfo]) -> AsyncIterator[None]:
    """Advertise hand-made services (bad TXT records) with plain zeroconf on loopback."""
    zc, pin_failed = await trio.to_thread.run_sync(start_zeroconf, LOOPBACK)
    assert not pin_failed
    try:
        async with trio.open_nursery() as nursery:
            for info in infos:
                register = partial(zc.register_service, info, cooperating_responders=True)
                nursery.start_soon(trio.to_thread.run_sync, register)
        yield
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zc.close)


def raw_info(name_id: NodeId | str, properties: dict[bytes, bytes]) -> ServiceInfo:
    return ServiceInfo(
        SERVICE_TYPE,
        f"{name_id}.{SERVICE_TYPE}",
        port=7100,
        properties=properties,
        server=f"raw-{uuid.uuid4().hex[:8]}.local.",
        parsed_addresses=["127.0.0.1"],
    )


@pytest.mark.trio
async def test_malformed_and_foreign_records_are_counted_never_peers() -> None:
    mesh = unique_mesh()
    x, y, z = new_id(), new_id(), new_id()
    infos = [
        raw_info(x, {b"id": str(x).encode(), b"v": b"1"}),  # no mesh
        raw_info("not-an-id", {b"id": b"not-an-id", b"mesh": mesh.encode(), b"v": b"1"}),
        raw_info(y, txt(y, mesh, version=b"two")),
        raw_info(new_id(), txt(z, mesh)),  # the name is not the TXT id
        raw_info(z, txt(z, mesh, version=b"2")),
    ]
    with trio.fail_after(8):
        async with (
            advertise_raw(infos),
            open_mdns(new_id(), mesh, 7001, interfaces=LOOPBACK) as discovery,
        ):
            await wait_until(
                lambda: (
                    discovery.statistics()["ignored_malformed"] >= 4
                    and discovery.statistics()["ignored_wrong_version"] >= 1
                )
            )
            assert discovery.peers() == {}
            assert drain(discovery) == []


@pytest.mark.trio
async def test_start_and_stop_neither_stall_trio_nor_leak_threads() -> None:
    # benchmarks/mdns_stall.py measures the figure; this guards against a blocking
    # zeroconf call on the trio thread (register alone blocks for about 450 ms).
    longest_gap = 0.0

    async def ticker() -> None:
        nonlocal longest_gap
        last = trio.current_time()
        while True:
            await trio.sleep(0.001)
            now = trio.current_time()
            longest_gap = max(longest_gap, now - last)
            last = now

    before = foreign_threads()
    mesh = unique_mesh()
    with trio.fail_after(8):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            async with open_mdns(new_id(), mesh, 7001, interfaces=LOOPBACK) as first:
                assert foreign_threads() - before  # zeroconf's loop and browser threads
                async with open_mdns(new_id(), mesh, 7002, interfaces=LOOPBACK):
                    await next_event(first)
            nursery.cancel_scope.cancel()
    assert longest_gap < 0.2, f"the trio loop stalled for {longest_gap * 1000:.0f} ms"
    assert foreign_threads() == before


@pytest.mark.trio
async def test_cancelled_while_starting_cleans_up() -> None:
    before = foreign_threads()
    with trio.fail_after(8):
        for delay in (0.0, 0.05, 0.3):
            with trio.move_on_after(delay) as scope:
                async with open_mdns(new_id(), unique_mesh(), 7001, interfaces=LOOPBACK):
                    pytest.fail("should have been cancelled while registering")
            assert scope.cancelled_caught
    assert foreign_threads() == before


@pytest.mark.trio
async def test_exception_in_the_block_propagates_unwrapped() -> None:
    with trio.fail_after(8), pytest.raises(KeyError, match="mine"):
        async with open_mdns(new_id(), unique_mesh(), 7001, interfaces=LOOPBACK):
            raise KeyError("mine")


@pytest.mark.trio
async def test_events_end_when_the_block_exits() -> None:
    with trio.fail_after(8):
        async with open_mdns(new_id(), unique_mesh(), 7001, interfaces=LOOPBACK) as discovery:
            pass
        assert [event async for event in discovery.events()] == []


# -- several processes inside a network namespace that this test creates -----------------


def _skip_without_netns() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("network namespaces need root on Linux (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace with only `lo`, up; deleted afterwards, whatever happens."""
    _skip_without_netns()
    import subprocess

    name = f"meshedge-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        if request.param == "lo-multicast":
            # Like a LAN interface: multicast flag and a route for the multicast range.
            for command in (
                ["ip", "link", "set", "lo", "multicast", "on"],
                ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
            ):
                subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


class NodeProcess:
    """A tests/mdns_node.py process in a namespace, with its JSON lines parsed."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.node_id: str | None = None
        self.found: set[str] = set()
        self.lost: set[str] = set()
        self.stopped = False
        self.lines: list[str] = []

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for record in json_records(self.process.stdout):
            self.lines.append(json.dumps(record))
            if "ready" in record:
                self.node_id = record["ready"]
            elif "found" in record:
                self.found.add(record["found"])
            elif "lost" in record:
                self.lost.add(record["lost"])
            elif "stopped" in record:
                self.stopped = True


@pytest.mark.parametrize("namespace", ["lo-multicast", "lo-plain"], indirect=True)
@pytest.mark.trio
async def test_processes_in_a_namespace_find_each_other(namespace: str) -> None:
    mesh = unique_mesh()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    nodes: list[NodeProcess] = []
    try:
        async with trio.open_nursery() as nursery:
            for index in range(3):
                process = await trio.lowlevel.open_process(
                    [
                        "ip", "netns", "exec", namespace,
                        sys.executable, str(NODE_SCRIPT),
                        "--mesh", mesh, "--port", str(7001 + index), "--lifetime", "20",
                    ],
                    stdin=-1, stdout=-1, env=environment,
                )  # fmt: skip
                node = NodeProcess(process)
                nodes.append(node)
                nursery.start_soon(node.read)
            with trio.fail_after(8):
                await wait_until(lambda: all(node.node_id for node in nodes))
                ids = {node.node_id for node in nodes}
                await wait_until(lambda: all(node.found == ids - {node.node_id} for node in nodes))
                # The last node leaves: the others hear its goodbye.
                leaver = nodes[2]
                assert leaver.process.stdin is not None
                await leaver.process.stdin.aclose()
                await wait_until(lambda: all(leaver.node_id in node.lost for node in nodes[:2]))
                for node in nodes[:2]:
                    assert node.process.stdin is not None
                    await node.process.stdin.aclose()
                for node in nodes:
                    assert await node.process.wait() == 0, node.lines
            assert all(node.stopped for node in nodes)
    finally:
        for node in nodes:
            if node.process.returncode is None:
                node.process.kill()  # by PID: only the processes this test started
                with trio.CancelScope(shield=True):
                    await node.process.wait()


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    """Two fresh namespaces joined by a veth pair: a node's and a stranger's on its LAN.

    The node's side is 198.51.100.2/24 (TEST-NET-2), the stranger's 198.51.100.1; both
    exist only inside these namespaces, which are deleted afterwards.
    """
    _skip_without_netns()
    import subprocess

    stem = f"meshedge-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    node, stranger = f"{stem}-node", f"{stem}-lan"
    created: list[str] = []
    try:
        for name in (node, stranger):
            subprocess.run(["ip", "netns", "add", name], check=True)
            created.append(name)
        subprocess.run(
            ["ip", "link", "add", "lan0", "netns", node, "type", "veth",
             "peer", "name", "lan0", "netns", stranger],
            check=True,
        )  # fmt: skip
        for name, address in ((node, "198.51.100.2/24"), (stranger, "198.51.100.1/24")):
            for command in (
                ["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", address, "dev", "lan0"],
                ["ip", "link", "set", "lan0", "up"],
            ):
                subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield node, stranger
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "delete", name], check=False)


async def probe(namespace: str, host: str) -> bool:
    result = await trio.run_process(
        ["ip", "netns", "exec", namespace, sys.executable, str(PROBE_SCRIPT), host],
        capture_stdout=True,
    )
    return bool(json.loads(result.stdout)["reply"])


@pytest.mark.trio
async def test_loopback_only_node_does_not_answer_on_its_lan(lan: tuple[str, str]) -> None:
    # zeroconf listens on 0.0.0.0:5353 and answers a unicast query through the socket it
    # came in on; open_mdns binds its sockets to the loopback device, so a node told to
    # use 127.0.0.1 stays silent towards a stranger on another interface.
    node_namespace, stranger_namespace = lan
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = await trio.lowlevel.open_process(
        [
            "ip", "netns", "exec", node_namespace, sys.executable, str(NODE_SCRIPT),
            "--mesh", unique_mesh(), "--port", "7001", "--lifetime", "20",
        ],
        stdin=-1, stdout=-1, env=environment,
    )  # fmt: skip
    node = NodeProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.read)
            with trio.fail_after(8):
                await wait_until(lambda: node.node_id is not None)
                assert await probe(node_namespace, "127.0.0.1")  # the probe does work
                assert not await probe(stranger_namespace, "198.51.100.2")
                assert process.stdin is not None
                await process.stdin.aclose()
                assert await process.wait() == 0, node.lines
    finally:
        if process.returncode is None:
            process.kill()  # by PID: only the process this test started
            with trio.CancelScope(shield=True):
                await process.wait()


@pytest.mark.parametrize(
    "module", [discovery_module, mdns_records, mdns_zeroconf], ids=lambda m: m.__name__
)
def test_discovery_modules_export_their_public_names(module: ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "") == module.__name__
    }
    assert public <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


def test_discovery_re_exports_the_record_and_its_events() -> None:
    for name in ("SERVICE_TYPE", "DiscoveredPeer", "PeerFound", "PeerLost", "IgnoreReason"):
        assert getattr(discovery_module, name) is getattr(mdns_records, name)
    assert discovery_module.RESOLVE_TIMEOUT_MS == mdns_zeroconf.RESOLVE_TIMEOUT_MS
