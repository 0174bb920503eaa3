"""Shared helpers for the runtime tests: nodes on 127.0.0.1 in one trio run.

Every node binds ``127.0.0.1:0`` (the project's network rule). Mesh names are random per
test, so that other test runs sharing this host's loopback never mix with ours.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import trio

from meshedge import Identity, NodeId
from meshedge.core._events import MemberEvent
from meshedge.core._member import MemberState
from meshedge.core._timing import Timing
from meshedge.runtime._config import NodeConfig, format_address
from meshedge.runtime._node import Message, Node, open_node


def unique_mesh() -> str:
    # Other test runs may share this host's loopback: never share their mesh.
    return f"rt-{uuid.uuid4().hex[:12]}"


def make_config(mesh: str, **changes: Any) -> NodeConfig:
    changes.setdefault("timing", Timing.local())
    return NodeConfig(mesh=mesh, bind="127.0.0.1:0", **changes)


def seed_of(node: Node) -> str:
    return format_address(node.address)


def alive_ids(node: Node) -> set[NodeId]:
    return {member.id for member in node.members() if member.state == MemberState.ALIVE}


def state_of(node: Node, node_id: NodeId) -> MemberState | None:
    member = node.member(node_id)
    return None if member is None else member.state


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition``; the caller bounds the wait with ``trio.fail_after``.

    The conditions are views of several nodes at once (each node's member table), for
    which there is no single event to wait on. Under the autojump clock each poll costs
    10 ms of virtual time and no wall time.
    """
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


@asynccontextmanager
async def open_mesh(
    count: int,
    *,
    mesh: str | None = None,
    identities: Iterable[Identity | None] = (),
    **changes: Any,
) -> AsyncIterator[list[Node]]:
    """``count`` nodes; all but the first know only the first's address (the seed)."""
    mesh = mesh or unique_mesh()
    given = list(identities)
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for index in range(count):
            seeds = (seed_of(nodes[0]),) if nodes else ()
            identity = given[index] if index < len(given) else None
            config = make_config(mesh, seeds=seeds, **changes)
            nodes.append(await stack.enter_async_context(open_node(config, identity=identity)))
        everyone = {node.id for node in nodes}
        with trio.fail_after(10):
            await wait_until(lambda: all(alive_ids(node) == everyone for node in nodes))
        yield nodes


async def run_node(
    config: NodeConfig, stop: trio.Event, *, task_status: trio.TaskStatus[Node]
) -> None:
    """Run a node in a task until ``stop`` is set (then it leaves)."""
    async with open_node(config) as node:
        task_status.started(node)
        await stop.wait()


async def record_events(
    node: Node, into: list[MemberEvent], *, task_status: trio.TaskStatus[None]
) -> None:
    async with aclosing(node.events()) as events:  # type: ignore[type-var]
        task_status.started()
        async for event in events:
            assert isinstance(event, MemberEvent)
            into.append(event)


async def collect(
    node: Node, topic: str, into: list[Message], *, task_status: trio.TaskStatus[None]
) -> None:
    async with node.subscribe(topic) as messages:
        task_status.started()
        async for message in messages:
            into.append(message)


def kinds_about(events: list[MemberEvent], node_id: NodeId) -> list[type[MemberEvent]]:
    return [type(event) for event in events if event.member.id == node_id]
