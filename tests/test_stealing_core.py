"""The work-stealing core: between whole node cores, and alone where a test hands it messages.

Whole cores run on ``meshedge.testing.CoreMesh`` (a formed mesh, messages delivered at
once, every started task running until the test finishes it); a test that must hand a
stealing core a message, or lose its renewals, calls that core itself.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import pytest

from meshedge import LocalProtocolError
from meshedge._identity import Identity
from meshedge.core._config import TaskSetup
from meshedge.core._member import Member, MemberState
from meshedge.core._stealing import StealingTiming, Task, TaskFinished, TaskOutcome, WorkStealing
from meshedge.testing import CoreMesh
from meshedge.wire._message_types import MessageType
from meshedge.wire.bodies import Dead, Lease, Load, Steal, Tasks

TIMING = StealingTiming(load_interval=0.04, lease_timeout=3.0)


def mesh_of(slots: list[int], tags: list[Mapping[str, str]] | None = None) -> CoreMesh:
    """Formed cores with these slots (and tags) that all run "job"; tasks wait for finish."""
    setups = [TaskSetup(can_run=frozenset({"job"}), slots=n, timing=TIMING) for n in slots]
    return CoreMesh(
        len(slots),
        prejoined=True,
        tasks=setups,
        tags=dict(enumerate(tags or [])),
        run_task=lambda index, task: None,
    )


def stealing(mesh: CoreMesh, index: int) -> WorkStealing:
    """Core ``index``'s work-stealing core."""
    core = mesh.cores[index].stealing
    assert core is not None
    return core


def submit(mesh: CoreMesh, origin: int, requires: Mapping[str, str] | None = None) -> Task:
    task = mesh.submit(origin, "job", [1], requires=requires)
    mesh.advance(TIMING.load_interval)  # the load advert is rate-limited
    return task


def finish(mesh: CoreMesh, node: int, task: Task, value: object = "ok") -> None:
    mesh.finish_task(node, task.id, TaskOutcome.returned(value))
    mesh.advance(TIMING.result_delay * 2)


def started(mesh: CoreMesh, node: int) -> list[Task]:
    """The tasks ``node`` runs, in order of start."""
    return list(mesh.running[node].values())


def first_running(mesh: CoreMesh, node: int) -> Task:
    return started(mesh, node)[0]


def outcomes(mesh: CoreMesh) -> list[TaskFinished]:
    """Every task outcome that reached its origin, in order."""
    return [event for _, _, event in mesh.log if isinstance(event, TaskFinished)]


def declare_dead(mesh: CoreMesh, observer: int, subject: int, accuser: int) -> None:
    """``accuser`` tells ``observer`` that ``subject`` is dead, as SWIM's verdict would."""
    member = mesh.cores[observer].member(mesh.id(subject))
    assert member is not None
    envelope = mesh.cores[accuser].envelope
    unit = envelope.sign(Dead(member.id, member.epoch, member.incarnation))
    mesh.inject_datagram(observer, envelope.seal_datagram([unit]), mesh.address(accuser))
    assert mesh.state(observer, subject) == MemberState.DEAD


def test_idle_nodes_steal_and_results_go_home_once() -> None:
    mesh = mesh_of([0, 1, 1])
    tasks = [submit(mesh, 0) for _ in range(6)]
    assert mesh.running[1] and mesh.running[2]
    for node in (1, 2):
        while mesh.running[node]:
            finish(mesh, node, first_running(mesh, node))
    finished = {event.task_id for event in outcomes(mesh)}
    assert finished == {task.id for task in tasks}
    assert len(outcomes(mesh)) == len(tasks)
    assert stealing(mesh, 0).pending() == 0


def test_a_victim_gives_at_most_half_of_its_queue_oldest_first() -> None:
    mesh = mesh_of([0, 0])  # the thief has no slot: steal by hand
    tasks = [submit(mesh, 0) for _ in range(10)]
    origin = stealing(mesh, 0)
    origin.receive(mesh.id(1), MessageType.STEAL, Steal(request=1, wanted=100), mesh.now)
    answer = [m.body for m in origin.messages_to_send() if isinstance(m.body, Tasks)]
    assert len(answer) == 1
    assert [task.id for task in answer[0].tasks] == [task.id for task in tasks[:5]]
    assert origin.queued() == 5


def test_requirements_decide_who_may_run_a_task() -> None:
    mesh = mesh_of([0, 1, 1], tags=[{}, {"zone": "us"}, {"zone": "eu"}])
    eu = [submit(mesh, 0, {"zone": "eu"}) for _ in range(4)]
    assert not mesh.running[1]
    assert set(mesh.running[2]) <= {t.id for t in eu}
    for task in eu:
        while task.id not in mesh.running[2]:
            finish(mesh, 2, first_running(mesh, 2))
    assert all(t.requires == {"zone": "eu"} for t in started(mesh, 2))
    assert not mesh.running[1]


def test_a_task_nobody_may_run_waits_and_is_never_lost() -> None:
    mesh = mesh_of([0, 1])
    task = submit(mesh, 0, {"gpu": "yes"})
    mesh.advance(30.0)
    assert not mesh.running[1]
    assert stealing(mesh, 0).holder_of(task.id) == mesh.id(0)
    assert stealing(mesh, 0).pending() == 1


def test_a_dead_holder_means_the_task_runs_again_and_one_result_counts() -> None:
    mesh = mesh_of([0, 1, 1])
    task = submit(mesh, 0)
    first = 1 if mesh.running[1] else 2
    other = 3 - first
    assert stealing(mesh, 0).holder_of(task.id) == mesh.id(first)
    declare_dead(mesh, 0, first, accuser=other)
    assert task.id in mesh.running[other]
    assert stealing(mesh, 0).statistics()["requeued"] == 1
    # Both copies report; the caller sees one result.
    finish(mesh, other, task, "second")
    mesh.finish_task(first, task.id, TaskOutcome.returned("first"))
    mesh.advance(0.01)
    assert [e.value for e in outcomes(mesh)] == ["second"]


def test_a_lease_that_runs_out_puts_the_task_back() -> None:
    mesh = mesh_of([0, 1, 1])
    task = submit(mesh, 0)
    holder = 1 if mesh.running[1] else 2
    # The holder's renewals are lost: after the lease, the origin queues it again.
    mesh.advance(TIMING.lease_timeout / 2)
    for _ in range(3):
        stealing(mesh, holder).handle_timer(mesh.now + TIMING.lease_timeout)
        stealing(mesh, holder).messages_to_send()
    origin = stealing(mesh, 0)
    origin.handle_timer(mesh.now + TIMING.lease_timeout + 0.01)
    assert origin.statistics()["requeued"] == 1
    assert origin.holder_of(task.id) == mesh.id(0)


def test_cancelling_reaches_the_holder() -> None:
    mesh = mesh_of([0, 1])
    task = submit(mesh, 0)
    assert [t.id for t in started(mesh, 1)] == [task.id]
    mesh.cancel(0, task.id)
    assert mesh.cancelled[1] == [task.id]
    assert stealing(mesh, 0).pending() == 0


def test_an_origin_that_dies_has_its_tasks_dropped_by_holders() -> None:
    mesh = mesh_of([0, 1])
    task = submit(mesh, 0)
    assert mesh.running[1]
    mesh.block(0, 1)  # two cores: nobody to probe through, so the origin dies to core 1
    mesh.run_until(lambda: mesh.state(1, 0) == MemberState.DEAD, timeout=30)
    assert mesh.cancelled[1] == [task.id]
    assert stealing(mesh, 1).statistics()["dropped_orphans"] == 1


def test_limits_on_task_and_result_sizes() -> None:
    mesh = mesh_of([1])
    big = Task(os.urandom(16), mesh.id(0), "job", ["x" * (TIMING.max_task_bytes + 1)], {}, {})
    with pytest.raises(LocalProtocolError, match="max_task_bytes"):
        mesh.cores[0].submit(big, 0.0)
    task = submit(mesh, 0)
    too_large = TaskOutcome.returned(b"x" * (TIMING.max_result_bytes + 1))
    mesh.finish_task(0, task.id, too_large)
    assert [(e.ok, e.value[0]) for e in outcomes(mesh)] == [(False, "ResultTooLarge")]


def test_a_victim_tells_the_origin_where_restolen_tasks_went() -> None:
    # A (origin) -> B -> C. If C dies before its own LEASE reaches A, A still knows C
    # holds those tasks (B said so) and re-queues them when C dies, not 10 s later.
    ids = [Identity.generate().node_id for _ in range(3)]
    a, b, c = (
        WorkStealing(node_id, slots=0, tags={}, can_run={"job"}, rng=random.Random(i))
        for i, node_id in enumerate(ids)
    )
    for core in (a, b, c):
        for node_id in ids:
            if node_id != core.id:
                core.member_changed(Member(node_id, ("h", 1), MemberState.ALIVE, 1, 1, {}), 0)
        core.messages_to_send()
    tasks = [Task(os.urandom(16), ids[0], "job", [n], {}, {}) for n in range(4)]
    for task in tasks:
        a.submit(task, 0.0)
    a.messages_to_send()
    a.receive(ids[1], MessageType.STEAL, Steal(request=1, wanted=100, queued=0), 0.1)
    (answer,) = [m.body for m in a.messages_to_send() if isinstance(m.body, Tasks)]
    b.receive(ids[0], MessageType.TASKS, answer, 0.1)
    b.messages_to_send()  # B's own LEASE: A already knows B holds them
    assert b.queued() == 2 and a.queued() == 2
    b.receive(ids[2], MessageType.STEAL, Steal(request=1, wanted=100, queued=0), 0.2)
    out = b.messages_to_send()
    forwarded = [m for m in out if isinstance(m.body, Lease)]
    assert [(m.peer, m.body.holder) for m in forwarded] == [(ids[0], ids[2])]
    lease = forwarded[0].body
    moved = lease.task_ids
    assert len(moved) == 1  # half of B's two
    a.receive(ids[1], MessageType.LEASE, lease, 0.2)  # C's own LEASE is lost
    assert a.holder_of(moved[0]) == ids[2]
    a.member_changed(Member(ids[2], ("h", 1), MemberState.DEAD, 1, 1, {}), 0.3)
    assert a.holder_of(moved[0]) == ids[0]  # back in A's queue at once
    assert a.statistics()["requeued"] == 1


def test_a_peer_back_from_the_dead_is_not_robbed_on_stale_adverts() -> None:
    # It advertised tasks it never runs itself, died, and came back: what it holds is
    # unknown until it advertises again, so its old advert must not make it a victim.
    thief_id, peer_id = Identity.generate().node_id, Identity.generate().node_id
    thief = WorkStealing(thief_id, slots=1, tags={}, can_run={"job"}, rng=random.Random(5))
    thief.member_changed(Member(peer_id, ("h", 1), MemberState.ALIVE, 1, 1, {}), 0.0)
    thief.receive(peer_id, MessageType.LOAD, Load(queued=3, foreign=3), 0.0)
    assert [m.body.TYPE for m in thief.messages_to_send()].count(MessageType.STEAL) == 1
    thief.member_changed(Member(peer_id, ("h", 1), MemberState.DEAD, 1, 1, {}), 1.0)
    thief.member_changed(Member(peer_id, ("h", 1), MemberState.ALIVE, 1, 2, {}), 2.0)
    thief.handle_timer(3.0)
    assert MessageType.STEAL not in [m.body.TYPE for m in thief.messages_to_send()]
    thief.receive(peer_id, MessageType.LOAD, Load(queued=2, foreign=2), 3.0)  # it advertises again
    assert MessageType.STEAL in [m.body.TYPE for m in thief.messages_to_send()]


def test_outgoing_messages_carry_their_type_and_only_load_adverts_are_datagrams() -> None:
    mesh = mesh_of([0, 1])
    origin = stealing(mesh, 0)
    origin.submit(Task(os.urandom(16), mesh.id(0), "job", [], {}, {}), mesh.now)
    origin.receive(mesh.id(1), MessageType.STEAL, Steal(request=9, wanted=1), mesh.now)
    out = origin.messages_to_send()
    assert {type(m.body) for m in out} == {Load, Tasks}
    for message in out:
        assert message.peer == mesh.id(1)
        assert message.reliable == (message.body.TYPE != MessageType.LOAD)
    with pytest.raises(AttributeError):
        out[0].peer = mesh.id(0)  # type: ignore[misc]
