"""Tasks for tests/test_stealing_multiprocess.py, loaded by every node of those tests.

Worker processes load it with ``meshedge run --tasks stealing_tasks:registry`` (with
this directory on ``PYTHONPATH``); the submitting node in the test process imports the
same registry. Every task has an explicit name, so it is the same whichever module path
imported it. Each task reports ``os.getpid()``: the test knows which process ran it.
"""

from __future__ import annotations

import os

import trio

from meshedge.runtime._tasks import TaskRegistry

registry = TaskRegistry()


def expected(x: int) -> int:
    """What ``sleep_echo(x, ...)`` computes (a deterministic function of its input)."""
    return x * x + 7


@registry.task(name="sleep_echo")
async def sleep_echo(x: int, milliseconds: int) -> list[int]:
    """Sleep, then return ``[expected(x), pid]``."""
    await trio.sleep(milliseconds / 1000)
    return [expected(x), os.getpid()]


@registry.task(name="where")
async def where() -> int:
    """The pid of the process that ran it."""
    return os.getpid()


@registry.task(name="fail", kind="thread")
def fail(message: str) -> None:
    """Raise ValueError(message), in a worker thread."""
    raise ValueError(message)


@registry.task(name="hold")
async def hold(path: str) -> None:
    """Create ``path``, wait until cancelled, then delete it (the cancellation is visible)."""
    marker = trio.Path(path)
    await marker.write_text(str(os.getpid()))
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):  # runs when the task is cancelled
            await marker.unlink()
