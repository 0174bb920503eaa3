"""Tasks that exit or interrupt: the task fails, the node keeps running (issue 10).

``sys.exit()`` in an async, thread or process task, and ``KeyboardInterrupt`` raised by
a thread or process task, reach the caller as a :class:`TaskError`; the node then runs
the next task. A script that would start its node again inside a process task's worker
(``trio.run`` outside ``if __name__ == "__main__":``) fails its process tasks at once,
with that advice. Every node binds 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from runtime_helpers import make_config, unique_mesh

from meshedge.runtime import open_node
from meshedge.runtime._node import Node
from meshedge.runtime._tasks import TaskError, TaskRegistry

# Process tasks need functions a worker process can import by module path: these.
registry = TaskRegistry()


@registry.task(name="async_exit")
async def async_exit(code: int) -> None:
    await trio.lowlevel.checkpoint()
    sys.exit(code)


@registry.task(name="async_exit_in_nursery")
async def async_exit_in_nursery() -> None:
    async def child() -> None:
        raise SystemExit("from a child")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(child)


@registry.task(name="thread_exit", kind="thread")
def thread_exit(message: str) -> None:
    raise SystemExit(message)


@registry.task(name="thread_interrupt", kind="thread")
def thread_interrupt() -> None:
    raise KeyboardInterrupt("stop")


@registry.task(name="process_exit", kind="process")
def process_exit(code: int) -> None:
    sys.exit(code)


@registry.task(name="process_interrupt", kind="process")
def process_interrupt() -> None:
    raise KeyboardInterrupt


@registry.task(name="process_square", kind="process")
def process_square(value: int) -> int:
    return value * value


@registry.task(name="echo")
async def echo(value: int) -> int:
    return value


async def submit_error(node: Node, name: str, *args: object) -> TaskError:
    with pytest.raises(TaskError) as caught:
        await node.submit(name, *args)
    return caught.value


async def test_async_tasks_that_exit_fail_and_the_node_keeps_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_node(make_config(unique_mesh()), tasks=registry) as node:
        error = await submit_error(node, "async_exit", 3)
        assert (error.type_name, error.message, error.ran_on) == ("SystemExit", "3", node.id)
        error = await submit_error(node, "async_exit_in_nursery")
        assert error.type_name == "BaseExceptionGroup" and "sub-exception" in error.message
        assert await node.submit("echo", 5) == 5


async def test_thread_tasks_that_exit_or_interrupt_fail_and_the_node_keeps_running() -> None:
    with trio.fail_after(10):
        async with open_node(make_config(unique_mesh()), tasks=registry) as node:
            error = await submit_error(node, "thread_exit", "bye")
            assert (error.type_name, error.message) == ("SystemExit", "bye")
            error = await submit_error(node, "thread_interrupt")
            assert (error.type_name, error.message) == ("KeyboardInterrupt", "stop")
            assert await node.submit("echo", 6) == 6


async def test_process_tasks_that_exit_or_interrupt_fail_and_the_node_keeps_running() -> None:
    with trio.fail_after(60):  # worker processes start for real
        async with open_node(make_config(unique_mesh()), tasks=registry) as node:
            error = await submit_error(node, "process_exit", 3)
            assert (error.type_name, error.message) == ("SystemExit", "3")
            error = await submit_error(node, "process_interrupt")
            assert (error.type_name, error.message) == ("KeyboardInterrupt", "")
            assert await node.submit("process_square", 7) == 49
            assert await node.submit("echo", 8) == 8


SCRIPT = """\
import dataclasses

import trio

from meshedge.runtime import NodeConfig, TaskRegistry, Timing, open_node
from meshedge.runtime._config import format_address

registry = TaskRegistry()


@registry.task(name="square", kind="process")
def square(value):
    return value * value


async def main():
    config = NodeConfig(mesh={mesh!r}, bind="127.0.0.1:0", timing=Timing.local(), task_slots=0)
    async with open_node(config, tasks=registry) as origin:
        worker = dataclasses.replace(config, seeds=(format_address(origin.address),), task_slots=1)
        async with open_node(worker, tasks=registry):
            try:
                print("result", await origin.submit("square", 7), flush=True)
            except Exception as exc:
                print("failed", type(exc).__name__, exc, flush=True)

"""

#: How the script ends, by case: unguarded, guarded, and unguarded in a way the
#: source check does not see (only the worker notices, as it opens a node).
ENDINGS = {
    "unguarded": "trio.run(main)\n",
    "guarded": 'if __name__ == "__main__":\n    trio.run(main)\n',
    "hidden": "def cli():\n    trio.run(main)\n\n\ncli()\n",
}


def run_script(tmp_path: Path, ending: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "mesh_script.py"
    script.write_text(SCRIPT.format(mesh=unique_mesh()) + ending)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unguarded_script_fails_its_process_task_at_once_with_advice(
    tmp_path: Path,
) -> None:
    done = run_script(tmp_path, ENDINGS["unguarded"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("failed TaskError RuntimeError: "), done.stdout
    assert 'under `if __name__ == "__main__":`' in done.stdout
    assert "mesh_script.py calls trio.run at line" in done.stdout
    assert "BrokenWorkerProcessError" not in done.stdout + done.stderr


def test_a_guarded_script_runs_its_process_task(tmp_path: Path) -> None:
    done = run_script(tmp_path, ENDINGS["guarded"])
    assert (done.returncode, done.stdout) == (0, "result 49\n"), done.stderr


def test_a_worker_refuses_to_open_a_node_while_it_imports_the_main_module(
    tmp_path: Path,
) -> None:
    # The source check sees no trio.run at the top level; the worker re-runs cli(),
    # and its node refuses to open: the worker dies with the advice, its node never
    # joins the mesh, and the caller learns that the worker broke.
    done = run_script(tmp_path, ENDINGS["hidden"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("failed TaskError BrokenWorkerProcessError"), done.stdout
    assert "a node was opened while a worker process imports the main module" in done.stderr
    assert 'under `if __name__ == "__main__":`' in done.stderr
