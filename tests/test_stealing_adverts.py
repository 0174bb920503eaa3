"""LOAD adverts: who is told that work can be stolen here, and when."""

from __future__ import annotations

from stealing_helpers import finish_running, finished, ids, pair, running, submit


def test_work_submitted_soon_after_a_steal_emptied_the_queue_is_advertised_at_once() -> None:
    # The steal answer told the thief "0 left" while the origin's last LOAD said 1. A
    # task submitted before the next LOAD is due matches that stale LOAD count; it must
    # still be advertised at once, or the thief, believing there is nothing, never asks.
    mesh = pair()
    first = submit(mesh)
    assert ids(running(mesh)) == [first]
    finish_running(mesh)
    mesh.advance(0.003)  # the result batch goes home
    assert [event.task_id for event in finished(mesh)] == [first]
    second = submit(mesh)  # within load_interval of the last LOAD
    assert ids(running(mesh)) == [second]
    finish_running(mesh)
    mesh.advance(1.0)
    assert [event.task_id for event in finished(mesh)] == [first, second]
