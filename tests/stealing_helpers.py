"""Work stealing between whole node cores on ``meshedge.testing``'s in-memory network.

:func:`pair` builds an *origin* (core 0) that submits and runs nothing, and a *thief*
(core 1) with ``slots`` slots, in a formed :class:`~meshedge.testing.CoreMesh`. Messages
are delivered at once and in order; time moves only when a test says so; a started task
runs until the test finishes it. ``member`` serves the tests of one stealing core alone.
"""

from __future__ import annotations

from typing import Any

from meshedge._identity import NodeId
from meshedge.core._config import TaskSetup
from meshedge.core._member import Member, MemberState
from meshedge.core._stealing import StealingTiming, Task, TaskFinished, TaskOutcome
from meshedge.testing import CoreMesh

#: The core indexes of a :func:`pair`.
ORIGIN, THIEF = 0, 1


def member(node_id: NodeId, state: MemberState = MemberState.ALIVE, incarnation: int = 1) -> Member:
    """A member as membership reports it: no tags, a dummy address."""
    return Member(node_id, ("127.0.0.1", 1), state, 1, incarnation, {})


def pair(slots: int = 1, timing: StealingTiming | None = None) -> CoreMesh:
    """An origin (no slots) and a thief (``slots``) that know each other, running "job"."""
    timing = timing or StealingTiming(load_interval=0.04)
    setups = [TaskSetup(can_run=frozenset({"job"}), slots=n, timing=timing) for n in (0, slots)]
    return CoreMesh(2, prejoined=True, tasks=setups, run_task=lambda index, task: None)


def submit(mesh: CoreMesh) -> bytes:
    """The origin submits one "job"; returns its id."""
    return mesh.submit(ORIGIN, "job").id


def running(mesh: CoreMesh) -> list[Task]:
    """The tasks the thief runs, in order of start."""
    return list(mesh.running[THIEF].values())


def finished(mesh: CoreMesh) -> list[TaskFinished]:
    """The outcomes that reached the origin, in order."""
    return mesh.events_of(ORIGIN, TaskFinished)


def finish_running(mesh: CoreMesh, value: Any = None) -> None:
    """The thief's running tasks return ``value``."""
    mesh.finish_all(THIEF, TaskOutcome.returned(value))


def ids(tasks: list[Task]) -> list[bytes]:
    """The ids of ``tasks``, in order."""
    return [task.id for task in tasks]
