"""Three ``meshedge run`` processes find each other by mDNS alone (no seeds) and form a mesh.

(a) In this host's own namespace, with ``--mdns --interface 127.0.0.1``: zeroconf's
sockets are pinned to the loopback device, so nothing leaves it (docs/discovery.md).
(b) Inside a network namespace that the test creates (with only ``lo``), using the
namespace fixture of tests/test_discovery.py; skipped, with the reason, without root or
without ``ip``.

Real clock: separate processes. Every process is SIGKILLed by PID at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from cli_nodes import NodeProcesses, mesh_formed, node_processes
from test_discovery import namespace  # noqa: F401  (the fixture, reused)

#: Seconds for three processes to start, register, discover and join on two cores.
FORM_TIMEOUT = 25


async def form_by_mdns(group: NodeProcesses, wrapper: list[str]) -> None:
    nodes = [await group.start(f"m{i}", mdns=True, wrapper=wrapper) for i in range(3)]
    with trio.fail_after(FORM_TIMEOUT):
        await group.wait_for(lambda: mesh_formed(nodes))
    for node in nodes:
        assert node.address is not None and node.address.startswith("127.0.0.1:")
        # Nobody was given a seed: the others' addresses came from discovery.
        assert "--join" not in node.process.args  # type: ignore[operator]


async def test_processes_on_loopback_form_a_mesh_by_mdns(tmp_path: Path) -> None:
    async with node_processes(tmp_path) as group:
        await form_by_mdns(group, wrapper=[])


@pytest.mark.parametrize("namespace", ["lo-plain", "lo-multicast"], indirect=True)
async def test_processes_in_a_new_namespace_form_a_mesh_by_mdns(
    tmp_path: Path,
    namespace: str,  # noqa: F811  (the imported fixture)
) -> None:
    async with node_processes(tmp_path) as group:
        await form_by_mdns(group, wrapper=["ip", "netns", "exec", namespace])
