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

import trio

from meshedge import Identity
from meshedge.runtime.discovery import PeerFound, open_mdns

#: The tick interval; a gap is measured as the time between two ticks minus this.
TICK = 0.001


class Ticker:
    def __init__(self) -> None:
        self.longest = 0.0

    def reset(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest

    async def run(self) -> None:
        last = trio.current_time()
        while True:
            await trio.sleep(TICK)
            now = trio.current_time()
            self.longest = max(self.longest, now - last - TICK)
            last = now


async def one_round(ticker: Ticker) -> dict[str, float]:
    mesh = f"stall-{uuid.uuid4().hex[:8]}"
    first, second = Identity.generate(), Identity.generate()
    result: dict[str, float] = {}
    async with open_mdns(second.node_id, mesh, 7002, interfaces=["127.0.0.1"]):
        ticker.reset()
        started = trio.current_time()
        async with open_mdns(first.node_id, mesh, 7001, interfaces=["127.0.0.1"]) as discovery:
            result["start_s"] = trio.current_time() - started
            result["start_gap_ms"] = 1000 * ticker.reset()
            with trio.fail_after(10):
                async for event in discovery.events():
                    if isinstance(event, PeerFound):
                        break
            result["found_s"] = trio.current_time() - started
            result["running_gap_ms"] = 1000 * ticker.reset()
            stopping = trio.current_time()
        result["stop_s"] = trio.current_time() - stopping
        result["stop_gap_ms"] = 1000 * ticker.reset()
    return result


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
