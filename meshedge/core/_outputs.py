"""What a node core asks its shell to do: the items of :meth:`NodeCore.transmit`.

The shell (the trio runtime, the simulator, :mod:`meshedge.testing`) drains one list
and obeys each item in order: send a datagram, write a frame, start or cancel a task.
Frames for one address keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..wire.bodies import Address, Task

__all__ = ["CancelTask", "Datagram", "Frame", "Output", "StartTask"]


@dataclass(frozen=True, slots=True)
class Datagram:
    """Send ``data`` as one UDP datagram to ``address`` (it may be lost)."""

    #: The sealed datagram.
    data: bytes
    #: Where it goes.
    address: Address


@dataclass(frozen=True, slots=True)
class Frame:
    """Write ``data`` as one frame on the stream connection to ``address``."""

    #: The sealed frame (without the transport's length prefix).
    data: bytes
    #: Where it goes.
    address: Address


@dataclass(frozen=True, slots=True)
class StartTask:
    """Run ``task`` now, then report its outcome with ``NodeCore.task_done``."""

    #: The task to run.
    task: Task


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel the running task ``task_id`` (its outcome is no longer wanted)."""

    #: The id of a task started earlier.
    task_id: bytes


#: Anything :meth:`NodeCore.transmit` returns.
Output: TypeAlias = Datagram | Frame | StartTask | CancelTask
