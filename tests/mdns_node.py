"""One meshedge discovery node in its own process, for tests/test_discovery.py.

It runs open_mdns on 127.0.0.1 with a fresh identity and prints one JSON object per
line: {"ready": id}, then {"found": id, "addresses": [[host, port], ...]} and
{"lost": id} as peers come and go, then {"stopped": id}. It stops when its standard
input closes, or after --lifetime seconds at the latest, so it never outlives a test.

    python tests/mdns_node.py --mesh NAME --port PORT [--lifetime 30]
"""

from __future__ import annotations

import argparse
import json
import os

import trio

from meshedge import Identity
from meshedge.runtime.discovery import MdnsDiscovery, PeerFound, PeerLost, open_mdns


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def report(discovery: MdnsDiscovery) -> None:
    async for event in discovery.events():
        if isinstance(event, PeerFound):
            emit(found=str(event.peer.node_id), addresses=event.peer.addresses)
        elif isinstance(event, PeerLost):
            emit(lost=str(event.node_id))


async def wait_for_stdin_to_close() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        while await stdin.receive_some():
            pass


async def main(mesh: str, port: int, lifetime: float) -> None:
    node_id = Identity.generate().node_id
    with trio.move_on_after(lifetime):
        async with open_mdns(node_id, mesh, port, interfaces=["127.0.0.1"]) as discovery:
            emit(ready=str(node_id))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(report, discovery)
                await wait_for_stdin_to_close()
                nursery.cancel_scope.cancel()
    emit(stopped=str(node_id))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=30.0)
    arguments = parser.parse_args()
    trio.run(main, arguments.mesh, arguments.port, arguments.lifetime)
