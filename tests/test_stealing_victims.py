"""Thieves and victims: whom a thief asks, how much it asks for, what a victim gives."""

from __future__ import annotations

import random

from stealing_helpers import THIEF, finish_running, finished, member, pair, submit

from meshedge._identity import Identity
from meshedge.core._stealing import TaskOutcome, WorkStealing
from meshedge.wire._message_types import MessageType
from meshedge.wire.bodies import Load, Steal, Task, Tasks


def test_an_expired_back_off_on_a_victim_not_worth_robbing_sets_no_timer() -> None:
    # After an empty answer the thief backs off that victim. If the victim then has too
    # little to be worth a steal, its expired back-off must not stay the thief's next
    # deadline: a timer already past would wake the runtime's pump again at once, forever.
    thief_id, victim_id = Identity.generate().node_id, Identity.generate().node_id
    thief = WorkStealing(thief_id, slots=1, tags={}, can_run={"job"}, rng=random.Random(3))
    thief.member_changed(member(victim_id), 0)
    thief.messages_to_send()
    thief.receive(victim_id, MessageType.LOAD, Load(queued=5, foreign=0), 0.0)  # worth a steal
    steals = [m.body for m in thief.messages_to_send() if isinstance(m.body, Steal)]
    assert len(steals) == 1
    empty = Tasks(request=steals[0].request, tasks=(), left=1)
    thief.receive(victim_id, MessageType.TASKS, empty, 0.001)
    later = 1.0  # the back-off is over; one task left there is not worth a steal
    thief.handle_timer(later)
    assert thief.get_timer() > later


def test_short_tasks_are_stolen_in_batches() -> None:
    # A steal asks for steal_horizon's worth of tasks beyond the low-water mark, not just
    # for what the last round trip used up: with short tasks one steal brings many, so
    # the signed STEAL and TASKS messages stay a small part of the work.
    mesh = pair()
    for _ in range(1000):
        submit(mesh)
    for _ in range(20_000):
        if len(finished(mesh)) == 1000:
            break
        mesh.advance(0.0001)  # each task takes 0.1 ms
        finish_running(mesh)
    assert len(finished(mesh)) == 1000
    thief = mesh.cores[THIEF].stealing
    assert thief is not None and thief.stats["steal_requests"] <= 30


def test_a_victim_holding_two_copies_of_a_task_gives_one_and_keeps_the_other() -> None:
    # Two copies of one task can meet in a queue (its origin queued it again while the
    # first copy was on its way). Handing one over must leave the other, and the count of
    # queued tasks runnable here must stay true: an overcount makes the next start pop
    # an empty queue.
    victim_id, thief_id, origin_id = (Identity.generate().node_id for _ in range(3))
    victim = WorkStealing(victim_id, slots=1, tags={}, can_run={"job"}, rng=random.Random(4))
    for node_id in (thief_id, origin_id):
        victim.member_changed(member(node_id), 0.0)
    mine = victim.new_task("job")
    victim.submit(mine, 0.0)  # starts at once: the one slot is busy from here on
    assert victim.tasks_to_start() == [mine]
    blocked = Task(b"\x01" * 16, origin_id, "job", [], {}, {"zone": "x"})  # nobody may run it
    shared = Task(b"\x02" * 16, origin_id, "job", [], {}, {})
    copies = Tasks(request=1, tasks=(blocked, shared), left=0)
    for _ in range(2):
        victim.receive(origin_id, MessageType.TASKS, copies, 0.0)
    assert [t.id for t in victim.queued_tasks()] == [blocked.id, shared.id] * 2
    # One task wanted: the first copy of ``shared``, from behind a task the thief may not run.
    victim.receive(thief_id, MessageType.STEAL, Steal(request=1, wanted=1, queued=0), 0.0)
    (answer,) = [m.body for m in victim.messages_to_send() if isinstance(m.body, Tasks)]
    assert [t.id for t in answer.tasks] == [shared.id]
    assert [t.id for t in victim.queued_tasks()] == [blocked.id, blocked.id, shared.id]
    # The slot frees: the copy left starts.
    victim.task_done(mine.id, TaskOutcome.returned(None), 1.0)
    assert [t.id for t in victim.tasks_to_start()] == [shared.id]
    assert [t.id for t in victim.queued_tasks()] == [blocked.id, blocked.id]
