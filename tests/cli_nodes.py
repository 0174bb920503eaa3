"""Real ``meshedge run`` processes for the multi-process tests, with their JSON lines read.

Each node binds 127.0.0.1:0 (the project's network rule); mDNS, when a test turns it on,
runs on 127.0.0.1 only (or inside a namespace the test created). A ``NodeProcesses``
group is an async context manager that kills every process it started, by PID, when it
exits, whatever happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from meshedge.cli.run import json_records

REPO_ROOT = Path(__file__).resolve().parent.parent
#: ``meshedge run`` event -> what it says of the member's state.
ALIVE, SUSPECT, DEAD, LEFT = "alive", "suspect", "dead", "left"


def unique_mesh() -> str:
    # Other test runs may share this host's loopback (and mDNS on it): never mix.
    return f"mp-{uuid.uuid4().hex[:12]}"


class NodeProcess:
    """One ``meshedge run --json`` process and what it has printed so far."""

    def __init__(self, name: str, process: trio.Process, changed: Callable[[], None]) -> None:
        self.name = name
        self.process = process
        self._changed = changed
        #: From the "started" line.
        self.node_id: str | None = None
        self.address: str | None = None
        #: What this node believes of the others: node id (text) -> alive/suspect/dead/left.
        self.view: dict[str, str] = {}
        #: Every JSON record, in order (for failure messages).
        self.records: list[dict[str, Any]] = []
        self.stderr = bytearray()
        self.stopped = False

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for record in json_records(self.process.stdout):
            self._on_record(record)

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr += chunk

    def _on_record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        event = record["event"]
        if event == "started":
            self.node_id, self.address = record["id"], record["address"]
        elif event == "stopped":
            self.stopped = True
        elif "id" in record and "state" in record:  # a member event (not a warning)
            self.view[record["id"]] = record["state"]
        self._changed()

    def sees(self, node_id: str | None, state: str) -> bool:
        return node_id is not None and self.view.get(node_id) == state

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} id={(self.node_id or '?')[:8]} view={self.view}>"


class NodeProcesses:
    """Start, signal and watch node processes; ``wait_for`` blocks on their output."""

    def __init__(self, nursery: trio.Nursery, directory: Path, mesh: str) -> None:
        self.nursery = nursery
        self.directory = directory
        self.mesh = mesh
        self.started: list[NodeProcess] = []
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()

    def identity_path(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    async def start(
        self,
        name: str,
        *,
        join: Sequence[str] = (),
        mdns: bool = False,
        wrapper: Sequence[str] = (),
    ) -> NodeProcess:
        """Start ``meshedge run`` for ``name`` (its identity file is kept across restarts).

        Returns at once; ``wait_started`` waits for its "started" line.
        """
        command = [
            *wrapper,
            sys.executable, "-m", "meshedge", "run",
            "--bind", "127.0.0.1:0",
            "--json",
            "--timing", "local",
            "--mesh", self.mesh,
            "--identity", str(self.identity_path(name)),
        ]  # fmt: skip
        command += ["--mdns", "--interface", "127.0.0.1"] if mdns else ["--no-mdns"]
        for seed in join:
            command += ["--join", seed]
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=str(REPO_ROOT),
        )
        node = NodeProcess(name, process, self._notify)
        self.started.append(node)
        self.nursery.start_soon(node.read_stdout)
        self.nursery.start_soon(node.read_stderr)
        return node

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; re-checked after every line any node prints.

        The caller bounds the wait with ``trio.fail_after``.
        """
        while not condition():
            self._changed = trio.Event()
            await self._changed.wait()

    async def wait_started(self, *nodes: NodeProcess) -> None:
        await self.wait_for(lambda: all(node.node_id is not None for node in nodes))

    def send_signal(self, node: NodeProcess, signum: int) -> None:
        node.process.send_signal(signum)  # by PID: a process this group started

    async def kill_all(self) -> None:
        """SIGKILL every process this group started that still runs, and reap it."""
        with trio.CancelScope(shield=True):
            for node in self.started:
                if node.process.returncode is None:
                    node.process.kill()
            for node in self.started:
                await node.process.wait()


def all_see(observers: Sequence[NodeProcess], subject: NodeProcess, state: str) -> bool:
    return all(node.sees(subject.node_id, state) for node in observers if node is not subject)


def mesh_formed(nodes: Sequence[NodeProcess]) -> bool:
    """Every node sees every other alive."""
    return all(all_see(nodes, subject, ALIVE) for subject in nodes)


@asynccontextmanager
async def node_processes(directory: Path, mesh: str | None = None) -> AsyncIterator[NodeProcesses]:
    """A group of node processes; all of them are SIGKILLed on exit."""
    async with trio.open_nursery() as nursery:
        group = NodeProcesses(nursery, directory, mesh or unique_mesh())
        try:
            yield group
        finally:
            await group.kill_all()
            nursery.cancel_scope.cancel()
