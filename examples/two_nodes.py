"""Two nodes: join through a seed, exchange signed direct messages, then one leaves.

What it shows, with meshedge's public API only (``meshedge.runtime``):

1. node A starts on 127.0.0.1 with a free port; node B starts with A's address as its
   seed, and each sees the other join (membership events);
2. B sends A a direct message on the topic "greetings" (``Node.send``: signed, over a
   TCP stream, in order); A answers on "replies"; each side learns who signed what it
   received (``Message.sender``);
3. B leaves gracefully (its ``async with`` block ends): A sees it as LEFT, not as
   failed, and sending to it now raises ``PeerUnavailableError``.

Both nodes run in this one process and bind to 127.0.0.1 only; the whole run takes
about two seconds. Run it with ``.venv/bin/python examples/two_nodes.py``.
"""

from __future__ import annotations

import trio

from meshedge.runtime import (
    MemberEvent,
    MemberState,
    Node,
    NodeConfig,
    PeerUnavailableError,
    Timing,
    format_address,
    open_node,
)

MESH = "two-nodes-example"


def config(*seeds: str) -> NodeConfig:
    # Port 0: the system picks a free port. Timing.local() suits nodes on one machine.
    return NodeConfig(mesh=MESH, bind="127.0.0.1:0", seeds=seeds, timing=Timing.local())


async def wait_until_seen(node: Node, peer: Node, state: MemberState) -> None:
    """Wait until ``node`` sees ``peer`` in ``state``, woken by membership events."""

    def seen() -> bool:
        member = node.member(peer.id)
        return member is not None and member.state == state

    if seen():
        return
    async for event in node.events():
        if isinstance(event, MemberEvent) and event.member.id == peer.id and seen():
            return


async def main() -> None:
    async with open_node(config()) as a:
        print(f"A {a.id.short} listens on {format_address(a.address)}")
        async with open_node(config(format_address(a.address))) as b:
            print(f"B {b.id.short} listens on {format_address(b.address)}, seed: A")
            with trio.fail_after(10):
                await wait_until_seen(a, b, MemberState.ALIVE)
                await wait_until_seen(b, a, MemberState.ALIVE)
            print("1. A sees B joined, and B sees A joined")

            async with a.subscribe("greetings") as greetings, b.subscribe("replies") as replies:
                await b.send(a.id, "greetings", {"text": "hello from B", "n": 1})
                with trio.fail_after(10):
                    greeting = await greetings.receive()
                print(f"2. A received {greeting.payload} from {greeting.sender.short} (signed)")
                assert greeting.sender == b.id
                await a.send(greeting.sender, "replies", {"text": "hello B, this is A"})
                with trio.fail_after(10):
                    reply = await replies.receive()
                print(f"   B received {reply.payload} from {reply.sender.short}")
                assert reply.sender == a.id

            print("3. B leaves the mesh")
        # B's block has ended: it told the mesh it is leaving before it stopped.
        with trio.fail_after(10):
            await wait_until_seen(a, b, MemberState.LEFT)
        print("   A sees B as LEFT (a graceful leave, not a failure)")
        try:
            await a.send(b.id, "greetings", "are you there?")
        except PeerUnavailableError as error:
            print(f"   sending to B now raises PeerUnavailableError: {error}")
        print("A leaves; done")


if __name__ == "__main__":
    trio.run(main)
