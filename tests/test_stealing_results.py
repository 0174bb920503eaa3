"""Results: how a task's outcome is reported, batched on its way home, and kept once."""

from __future__ import annotations

from typing import Any

import pytest
from stealing_helpers import THIEF, finish_running, finished, pair, running, submit

from meshedge.core._stealing import Outgoing, TaskOutcome
from meshedge.wire._message_types import MessageType


def test_results_share_frames_while_busy_and_go_at_once_when_idle() -> None:
    mesh = pair()
    sent: list[MessageType] = []
    thief = mesh.cores[THIEF].stealing
    assert thief is not None
    thief_messages = thief.messages_to_send

    def counting() -> list[Outgoing]:
        out = thief_messages()
        sent.extend(message.body.TYPE for message in out)
        return out

    thief.messages_to_send = counting  # type: ignore[method-assign]
    for _ in range(1000):
        submit(mesh)
    while len(finished(mesh)) < 1000:
        mesh.advance(0.001)  # 1 ms tasks
        finish_running(mesh)
    # While more tasks run here, results wait up to result_delay to share a frame:
    # about ten of these 1 ms tasks per signed RESULTS.
    assert sent.count(MessageType.RESULTS) <= 150
    # With nothing left to run, a result goes home without waiting.
    submit(mesh)
    finish_running(mesh)
    assert len(finished(mesh)) == 1001


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
    mesh = pair()
    submit(mesh)
    (task,) = running(mesh)
    mesh.finish_task(THIEF, task.id, outcome)
    assert [(event.task_id, event.ok, event.value) for event in finished(mesh)] == [
        (task.id, ok, value)
    ]
    assert finished(mesh)[0].ran_on == mesh.id(THIEF)
