"""Chat over gossip: a few nodes broadcast on a topic, and every other node gets each line once.

What it shows, with meshedge's public API only (``meshedge.runtime``):

- nodes find each other through one seed (the first node's address);
- ``Node.broadcast(topic, payload)`` gossips a signed message to every member; each
  member delivers it once to its ``subscribe(topic)`` channel, with ``Message.sender``
  set to the node that signed it and ``Message.broadcast`` true; the sender does not
  get its own line back;
- a node's tags (here ``name=...``) travel with its membership, so receivers show the
  sender's name without any extra message.

With no arguments it runs three nodes (alice, bob, carol) in this process on 127.0.0.1,
lets each say two lines, checks that every line reached the two other nodes, and exits
in a few seconds::

    .venv/bin/python examples/chat.py

With ``--interactive`` it runs one node whose stdin lines are broadcast; start the first
one, then others with ``--join`` and the address the first one prints (all on
127.0.0.1 unless you pass ``--bind`` with another local address)::

    .venv/bin/python examples/chat.py --interactive --name alice
    .venv/bin/python examples/chat.py --interactive --name bob --join 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import sys

import trio

from meshedge import NodeId
from meshedge.runtime import MemberState, Node, NodeConfig, Timing, format_address, open_node

MESH = "chat-example"
TOPIC = "chat"
NAMES = ("alice", "bob", "carol")
LINES = ("hi all, {name} here", "{name} signing off")


def config(name: str, bind: str = "127.0.0.1:0", seeds: tuple[str, ...] = ()) -> NodeConfig:
    return NodeConfig(mesh=MESH, bind=bind, seeds=seeds, tags={"name": name}, timing=Timing.local())


def name_of(node: Node, sender: NodeId) -> str:
    """The ``name`` tag of a member, as this node knows it."""
    member = node.member(sender)
    return member.tags.get("name", "?") if member is not None else "?"


async def demo() -> None:
    """Three nodes chat; every line must reach the two others."""
    expected = {(speaker, line.format(name=speaker)) for speaker in NAMES for line in LINES}
    heard: dict[str, list[tuple[str, str]]] = {name: [] for name in NAMES}
    everyone_heard_everything = trio.Event()

    async def listen(node: Node, name: str, task_status: trio.TaskStatus[None]) -> None:
        async with node.subscribe(TOPIC) as messages:
            task_status.started()
            async for message in messages:
                speaker = name_of(node, message.sender)
                print(f"  [{name} hears] {speaker}: {message.payload['text']}")
                heard[name].append((speaker, message.payload["text"]))
                if all(sorted(heard[n]) == sorted(e for e in expected if e[0] != n) for n in NAMES):
                    everyone_heard_everything.set()

    async with trio.open_nursery() as nursery:
        first = await nursery.start(run_node, config(NAMES[0]))
        seed = format_address(first.address)
        nodes = [first]
        for name in NAMES[1:]:
            nodes.append(await nursery.start(run_node, config(name, seeds=(seed,))))
        with trio.fail_after(10):
            for node in nodes:
                await wait_for_members(node, len(NAMES))
        print(f"{len(nodes)} nodes in mesh {MESH!r}: {', '.join(NAMES)}")
        for node, name in zip(nodes, NAMES, strict=True):
            await nursery.start(listen, node, name)
        for line in LINES:
            for node, name in zip(nodes, NAMES, strict=True):
                text = line.format(name=name)
                print(f"{name} says: {text}")
                await node.broadcast(TOPIC, {"text": text})
            await trio.sleep(0.1)
        with trio.fail_after(10):
            await everyone_heard_everything.wait()
        print("every line reached every other node exactly once")
        nursery.cancel_scope.cancel()


async def wait_for_members(node: Node, count: int) -> None:
    """Wait until ``node`` sees ``count`` alive members (itself included)."""

    def enough() -> bool:
        return sum(m.state == MemberState.ALIVE for m in node.members()) >= count

    if enough():
        return
    async for _ in node.events():  # woken by each membership change
        if enough():
            return


async def run_node(config: NodeConfig, task_status: trio.TaskStatus[Node]) -> None:
    """Run one node until cancelled (it leaves the mesh gracefully then)."""
    async with open_node(config) as node:
        task_status.started(node)
        await trio.sleep_forever()


async def interactive(name: str, bind: str, seeds: tuple[str, ...]) -> None:
    """One chat node: stdin lines are broadcast; what others say is printed."""
    async with open_node(config(name, bind, seeds)) as node:
        print(
            f"{name} on {format_address(node.address)}; others join with "
            f"--join {format_address(node.address)}; Ctrl-D leaves"
        )

        async def show_others() -> None:
            async with node.subscribe(TOPIC) as messages:
                async for message in messages:
                    payload = message.payload
                    text = payload.get("text", "") if isinstance(payload, dict) else ""
                    print(f"{name_of(node, message.sender)}: {text}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_others)
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
                if not line:
                    break
                if line.strip():
                    await node.broadcast(TOPIC, {"text": line.rstrip("\n")})
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactive", action="store_true", help="one node, lines from stdin")
    parser.add_argument("--name", default="me", help="your name in the chat (interactive)")
    parser.add_argument("--bind", default="127.0.0.1:0", help="host:port (interactive)")
    parser.add_argument("--join", action="append", default=[], metavar="HOST:PORT")
    args = parser.parse_args()
    if args.interactive:
        trio.run(interactive, args.name, args.bind, tuple(args.join))
    else:
        trio.run(demo)


if __name__ == "__main__":
    main()
