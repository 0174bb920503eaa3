"""Results: how a task's outcome is reported, batched on its way home, and kept once."""

from __future__ import annotations

from typing import Any

import pytest
from stealing_helpers import Pair

from meshedge.core.stealing import Outgoing, TaskOutcome
from meshedge.wire.message_types import MessageType


def test_results_share_frames_while_busy_and_go_at_once_when_idle() -> None:
    pair = Pair()
    sent: list[MessageType] = []
    thief_messages = pair.thief.messages_to_send

    def counting() -> list[Outgoing]:
        out = thief_messages()
        sent.extend(message.body.TYPE for message in out)
        return out

    pair.thief.messages_to_send = counting  # type: ignore[method-assign]
    for _ in range(1000):
        pair.submit()
    while len(pair.finished) < 1000:
        pair.advance(0.001)  # 1 ms tasks
        pair.finish_running()
    # While more tasks run here, results wait up to result_delay to share a frame:
    # about ten of these 1 ms tasks per signed RESULTS.
    assert sent.count(MessageType.RESULTS) <= 150
    # With nothing left to run, a result goes home without waiting.
    pair.submit()
    pair.finish_running()
    assert len(pair.finished) == 1001


def test_outcomes_are_built_by_what_the_task_did() -> None:
    assert TaskOutcome.returned([1, 2]) == TaskOutcome(ok=True, value=[1, 2])
    assert TaskOutcome.raised("ValueError", "bad") == TaskOutcome(False, ["ValueError", "bad"])
    with pytest.raises(AttributeError):
        TaskOutcome.returned(1).ok = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("outcome", "ok", "value"),
    [
        (TaskOutcome.returned("done"), True, "done"),
        (TaskOutcome.raised("KeyError", "x"), False, ["KeyError", "x"]),
    ],
)
def test_task_done_reports_what_the_task_returned_or_raised(
    outcome: Any, ok: bool, value: Any
) -> None:
    pair = Pair()
    pair.submit()
    (task,) = pair.running
    pair.running = []
    pair.thief.task_done(task.id, outcome, pair.now)
    pair.deliver()
    assert [(event.task_id, event.ok, event.value) for event in pair.finished] == [
        (task.id, ok, value)
    ]
    assert pair.finished[0].ran_on == pair.thief_id
