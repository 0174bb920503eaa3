"""What a task is to the stealing core: its id, where it may run, and how it ended."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..._identity import NodeId

__all__ = [
    "TASK_ID_SIZE",
    "TaskFinished",
    "TaskOutcome",
    "new_task_id",
    "requirements_met",
]

#: Task ids are 16 random bytes, drawn by the origin's core.
TASK_ID_SIZE: Final = 16


def new_task_id(rng: random.Random) -> bytes:
    """A fresh task id: 128 random bits, so ids of one origin never collide in practice."""
    return rng.randbytes(TASK_ID_SIZE)


def requirements_met(requires: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """Whether a node with ``tags`` may run a task that ``requires`` these tags.

    Args:
        requires: the tags a task requires (empty: any node).
        tags: the node's tags.

    Returns:
        True if every required tag is present with the required value.
    """
    return all(tags.get(key) == value for key, value in requires.items())


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How a task ended where it ran: it returned a value, or it raised.

    Build one with :meth:`returned` or :meth:`raised`.
    """

    #: True if the task returned, False if it raised.
    ok: bool
    #: The returned value, or ``[exception type name, message]``.
    value: Any

    @classmethod
    def returned(cls, value: Any) -> TaskOutcome:
        """The task returned ``value`` (plain CBOR data)."""
        return cls(True, value)

    @classmethod
    def raised(cls, type_name: str, message: str) -> TaskOutcome:
        """The task raised an exception of type ``type_name`` with ``message``."""
        return cls(False, [type_name, message])


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """Emitted at the origin, once per task: its (first) outcome arrived."""

    #: The task's id.
    task_id: bytes
    #: True if it returned, False if it raised.
    ok: bool
    #: The result, or ``[exception type name, message]``.
    value: Any
    #: The node that ran it.
    ran_on: NodeId
