"""Results on their way home: batched per origin, bounded in size, sent in frames.

The results of short tasks wait up to ``result_delay`` to share one signed frame while
more tasks run here; when this node runs out of work they go at once, and so do those of
tasks longer than that (per slot), since no other would join them. At the origin the
first result of a task counts and later ones are dropped (see
:meth:`~meshedge.core._stealing.WorkStealing.task_done` and ``RESULTS`` handling).
"""

from __future__ import annotations

import math
from typing import Any

from ..._identity import NodeId
from ...wire.bodies import Results, TaskResult
from .messages import IDS_PER_MESSAGE, Outbox, encoded_size
from .timing import StealingTiming

__all__ = ["ResultBatches", "bounded_result"]

#: Bytes a result's id, flag and framing add to its encoded value in a RESULTS body.
_RESULT_OVERHEAD = 24


def bounded_result(ok: bool, value: Any, max_bytes: int) -> tuple[bool, Any]:
    """The outcome to report: a value over ``max_bytes`` becomes a ResultTooLarge error."""
    if encoded_size(value) > max_bytes:
        return False, ["ResultTooLarge", f"result over {max_bytes} bytes"]
    return ok, value


class ResultBatches:
    """Results of other origins' tasks that ran here, waiting to be sent home.

    Args:
        timing: periods and bounds.
        outbox: where RESULTS frames go.
    """

    __slots__ = ("_batches", "_outbox", "_timing", "deadline")

    def __init__(self, timing: StealingTiming, outbox: Outbox) -> None:
        self._timing = timing
        self._outbox = outbox
        self._batches: dict[NodeId, list[TaskResult]] = {}
        #: When the waiting results must go (``inf``: none waiting).
        self.deadline = math.inf

    def __bool__(self) -> bool:
        return bool(self._batches)

    def add(
        self, origin: NodeId, result: TaskResult, now: float, slots: int, task_time: float
    ) -> None:
        """Queue ``result`` for ``origin``, given this node's slots and measured task time."""
        batch = self._batches.get(origin)
        if batch is None:
            batch = self._batches[origin] = []
        batch.append(result)
        if self.deadline == math.inf:
            # Waiting pays only if more results are due meanwhile: the results of
            # tasks longer than that go at once (one wake-up and frame less).
            delay = self._timing.result_delay
            if slots * delay < task_time:
                delay = 0.0
            self.deadline = now + delay

    def forget(self, origin: NodeId) -> None:
        """``origin`` is gone: nobody wants its results."""
        self._batches.pop(origin, None)

    def flush(self) -> None:
        """Send every waiting result, in as few frames as the size bounds allow."""
        limit = self._timing.max_frame_payload
        send = self._outbox.send
        for origin, batch in self._batches.items():
            chunk: list[TaskResult] = []
            budget = limit
            for result in batch:
                size = encoded_size(result.value) + _RESULT_OVERHEAD
                if chunk and (budget < size or len(chunk) >= IDS_PER_MESSAGE):
                    send(origin, Results(tuple(chunk)), reliable=True)
                    chunk, budget = [], limit
                chunk.append(result)
                budget -= size
            if chunk:
                send(origin, Results(tuple(chunk)), reliable=True)
        self._batches.clear()
        self.deadline = math.inf
