"""Sensor mesh: tagged sensors broadcast signed readings; a collector filters by tags.

What it shows, with meshedge's public API only (``meshedge`` and ``meshedge.runtime``):

- tags describe a node to the whole mesh: each sensor starts with
  ``role=sensor, zone=north|south, kind=temperature``, the collector with
  ``role=collector``; tags travel with membership, and only their owner can change them
  (``Node.set_tags``);
- the collector picks the members it cares about from ``Node.members()`` by their tags
  (the sensors of zone "north"), and keeps only readings that those members signed:
  ``Message.sender`` is the node whose key signed the message, so a reading cannot
  claim to come from another sensor;
- a sensor that moves to another zone changes its tags at run time, and the collector's
  filter follows.

Five nodes run in this one process on 127.0.0.1 (random free ports, joined through the
collector's address as seed) and the run ends by itself after a few rounds::

    .venv/bin/python examples/sensor_mesh.py
"""

from __future__ import annotations

import random

import trio

from meshedge import NodeId
from meshedge.runtime import (
    MemberState,
    MemberUpdated,
    Node,
    NodeConfig,
    Timing,
    format_address,
    open_node,
)

MESH = "greenhouse"
TOPIC = "readings"
SENSORS = {"s1": "north", "s2": "north", "s3": "south", "s4": "south"}
ROUNDS = 3
WATCHED_ZONE = "north"


def config(tags: dict[str, str], seeds: tuple[str, ...] = ()) -> NodeConfig:
    return NodeConfig(mesh=MESH, bind="127.0.0.1:0", seeds=seeds, tags=tags, timing=Timing.local())


def sensors_in_zone(collector: Node, zone: str) -> dict[NodeId, str]:
    """Alive members tagged role=sensor and zone=``zone``: node id -> sensor name."""
    return {
        member.id: member.tags.get("name", "?")
        for member in collector.members()
        if member.state == MemberState.ALIVE
        and member.tags.get("role") == "sensor"
        and member.tags.get("zone") == zone
    }


async def run_sensor(name: str, zone: str, seed: str, task_status: trio.TaskStatus[Node]) -> None:
    """A sensor node: one reading per round, broadcast to the mesh (signed by it)."""
    tags = {"role": "sensor", "zone": zone, "kind": "temperature", "name": name}
    async with open_node(config(tags, seeds=(seed,))) as node:
        task_status.started(node)
        await trio.sleep_forever()


async def read_and_broadcast(node: Node, name: str, round_number: int) -> None:
    celsius = round(random.uniform(18.0, 26.0), 1)
    await node.broadcast(TOPIC, {"sensor": name, "round": round_number, "celsius": celsius})


async def wait_for_mesh(collector: Node, count: int) -> None:
    """Wait until the collector sees ``count`` alive members (itself included)."""

    def complete() -> bool:
        return sum(m.state == MemberState.ALIVE for m in collector.members()) >= count

    if complete():
        return
    async for _ in collector.events():
        if complete():
            return


async def wait_for_zone(collector: Node, sensor: Node, zone: str) -> None:
    """Wait until the collector has seen ``sensor``'s tags say ``zone``."""

    def moved() -> bool:
        member = collector.member(sensor.id)
        return member is not None and member.tags.get("zone") == zone

    if moved():
        return
    async for event in collector.events():
        if isinstance(event, MemberUpdated) and moved():
            return


async def main() -> None:
    collector_tags = {"role": "collector", "name": "collector"}
    async with open_node(config(collector_tags)) as collector, trio.open_nursery() as nursery:
        seed = format_address(collector.address)
        print(f"collector {collector.id.short} on {seed}, watching zone {WATCHED_ZONE!r}")
        sensors: dict[str, Node] = {}
        for name, zone in SENSORS.items():
            sensors[name] = await nursery.start(run_sensor, name, zone, seed)
        with trio.fail_after(10):
            await wait_for_mesh(collector, 1 + len(SENSORS))
        for member in sorted(collector.members(), key=lambda m: m.tags.get("name", "")):
            tags = ", ".join(f"{k}={v}" for k, v in sorted(member.tags.items()))
            print(f"  member {member.id.short}: {tags}")

        kept: list[tuple[int, str]] = []
        async with collector.subscribe(TOPIC) as readings:
            for round_number in range(1, ROUNDS + 1):
                if round_number == ROUNDS:
                    # s3 is carried to the north greenhouse: it says so in its tags.
                    await sensors["s3"].set_tags(
                        {"role": "sensor", "zone": "north", "kind": "temperature", "name": "s3"}
                    )
                    with trio.fail_after(10):
                        await wait_for_zone(collector, sensors["s3"], "north")
                    print("s3 moved to zone north (its tags changed)")
                watched = sensors_in_zone(collector, WATCHED_ZONE)
                print(
                    f"round {round_number}: sensors in zone {WATCHED_ZONE}: "
                    f"{', '.join(sorted(watched.values()))}"
                )
                for name, node in sensors.items():
                    await read_and_broadcast(node, name, round_number)
                # Every sensor broadcast once; take this round's four readings.
                with trio.fail_after(10):
                    for _ in range(len(SENSORS)):
                        message = await readings.receive()
                        reading = message.payload
                        if message.sender in watched:
                            print(
                                f"  kept    {reading['sensor']}: {reading['celsius']} C "
                                f"(signed by {message.sender.short})"
                            )
                            kept.append((round_number, watched[message.sender]))
                        else:
                            print(f"  ignored {reading['sensor']} (not in zone {WATCHED_ZONE})")
        per_round = [sum(1 for r, _ in kept if r == n) for n in range(1, ROUNDS + 1)]
        print(f"readings kept per round: {per_round}")
        assert per_round == [2] * (ROUNDS - 1) + [3], per_round
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
