"""How long does open_mdns() block the trio event loop while it starts and stops?

A ticker task sleeps 1 ms at a time and records the longest gap between two ticks
while one node starts mDNS discovery (zeroconf construction, browser, registration),
runs briefly beside a second node, and stops (goodbyes, close). A blocking zeroconf call
on the trio thread would show up as a gap of hundreds of milliseconds; the goal is a
longest gap under 50 ms.

Everything binds to 127.0.0.1 (zeroconf sockets pinned to the loopback device), so no
packet leaves this host's loopback. Run it from the repository root:

    .venv/bin/python benchmarks/mdns_stall.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid
from typing import Any

import trio
from harness import Ticker, stall_phases

from meshedge import Identity
from meshedge.runtime.discovery import PeerFound, open_mdns


async def one_round(ticker: Ticker) -> dict[str, float]:
    """Start discovery beside a second node's, until it finds that one; then stop."""
    mesh = f"stall-{uuid.uuid4().hex[:8]}"
    first, second = Identity.generate(), Identity.generate()

    async def found(discovery: Any) -> None:
        with trio.fail_after(10):
            async for event in discovery.events():
                if isinstance(event, PeerFound):
                    break

    async with open_mdns(second.node_id, mesh, 7002, interfaces=["127.0.0.1"]):
        discovery = open_mdns(first.node_id, mesh, 7001, interfaces=["127.0.0.1"])
        return await stall_phases(ticker, discovery, found, "found_s")


async def main(rounds: int) -> None:
    ticker = Ticker()
    results = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        for _ in range(rounds):
            results.append(await one_round(ticker))
            print(json.dumps({key: round(value, 3) for key, value in results[-1].items()}))
        nursery.cancel_scope.cancel()
    for key in results[0]:
        values = [result[key] for result in results]
        print(
            f"{key:>15}: median {statistics.median(values):8.3f}  max {max(values):8.3f}"
            f"  (n={len(values)})"
        )
    worst = max(max(r["start_gap_ms"], r["running_gap_ms"], r["stop_gap_ms"]) for r in results)
    print(f"longest event-loop gap: {worst:.1f} ms (goal < 50 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, choices=range(1, 51), metavar="1-50")
    trio.run(main, parser.parse_args().rounds)
