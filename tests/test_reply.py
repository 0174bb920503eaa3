"""Replying to a direct message: the quickstart's ``node.send(message.sender, ...)``.

Network rule of this project: every node here binds 127.0.0.1:0, and nothing else.

Real time, not the autojump clock: the race this guards against (a direct message
overtaking the frame that makes its sender known, issue 10) depends on the order in
which trio runs tasks around real socket I/O.
"""

from __future__ import annotations

import pytest
import trio
from runtime_helpers import make_config, seed_of, unique_mesh

from meshedge.core._events import MemberJoined
from meshedge.runtime._node import Node, open_node

ROUNDS = 30


async def _answer_one(node: Node, done: trio.Event) -> None:
    """Reply "pong" to the first "ping" (``send`` raises if the sender is unknown)."""
    async with node.subscribe("ping") as pings:
        async for message in pings:
            await node.send(message.sender, "pong", message.payload)
            break
    await done.wait()


async def _one_round(mesh: str) -> None:
    """A opens; B joins A by seed; A pings B as soon as it sees B; B replies to the sender."""
    async with open_node(make_config(mesh)) as first, first.subscribe("pong") as pongs:
        events = first.events()
        done = trio.Event()
        second_config = make_config(mesh, seeds=(seed_of(first),))
        async with trio.open_nursery() as nursery, open_node(second_config) as second:
            nursery.start_soon(_answer_one, second, done)
            async for event in events:
                if isinstance(event, MemberJoined) and event.member.id == second.id:
                    break
            await first.send(second.id, "ping", "hello")
            reply = await pongs.receive()
            assert reply.sender == second.id and reply.payload == "hello"
            done.set()
        await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.trio
async def test_a_reply_to_the_sender_of_a_first_message_always_arrives() -> None:
    failures = []
    for round_number in range(ROUNDS):
        try:
            with trio.fail_after(10):
                await _one_round(unique_mesh())
        except Exception as exc:  # counted, and reported below
            failures.append(f"round {round_number}: {exc!r}")
    assert not failures, f"{len(failures)} of {ROUNDS} rounds failed: {failures}"
