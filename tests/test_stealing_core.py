"""The work-stealing core on its own: a tiny in-memory mesh, messages delivered at once."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import pytest

from meshedge import LocalProtocolError
from meshedge.core.member import Member, MemberState
from meshedge.core.stealing import StealingTiming, Task, TaskFinished, TaskOutcome, WorkStealing
from meshedge.identity import Identity, NodeId
from meshedge.wire.bodies import Lease, Load, Steal, Tasks
from meshedge.wire.message_types import MessageType

TIMING = StealingTiming(load_interval=0.04, lease_timeout=3.0)


class Mesh:
    """Cores that know each other; ``deliver`` runs messages until none are left."""

    def __init__(self, slots: list[int], tags: list[Mapping[str, str]] | None = None) -> None:
        tags = tags or [{} for _ in slots]
        self.ids = [Identity.generate().node_id for _ in slots]
        self.cores = [
            WorkStealing(
                node_id,
                slots=n,
                tags=t,
                can_run={"job"},
                rng=random.Random(i),
                timing=TIMING,
            )
            for i, (node_id, n, t) in enumerate(zip(self.ids, slots, tags, strict=True))
        ]
        self.now = 0.0
        self.started: dict[int, list[Task]] = {i: [] for i in range(len(slots))}
        self.cancelled: dict[int, list[bytes]] = {i: [] for i in range(len(slots))}
        self.finished: list[TaskFinished] = []
        for i, core in enumerate(self.cores):
            for j in range(len(self.ids)):
                if i != j:
                    core.member_changed(self.member(j), self.now)
        self.deliver()

    def member(self, j: int, state: MemberState = MemberState.ALIVE) -> Member:
        tags = self.cores[j].tags if hasattr(self, "cores") else {}
        return Member(self.ids[j], ("h", j), state, 0, 1, tags)

    def index(self, node_id: NodeId) -> int:
        return self.ids.index(node_id)

    def deliver(self, *, drop_to: int | None = None) -> None:
        moved = True
        while moved:
            moved = False
            for i, core in enumerate(self.cores):
                self.started[i] += core.tasks_to_start()
                self.cancelled[i] += core.tasks_to_cancel()
                while (event := core.next_event()) is not None:
                    self.finished.append(event)
                for out in core.messages_to_send():
                    j = self.index(out.peer)
                    if j == drop_to:
                        continue
                    self.cores[j].receive(self.ids[i], out.body.TYPE, out.body, self.now)
                    moved = True

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = min(core.get_timer() for core in self.cores)
            if due > end:
                break
            self.now = max(self.now, due)
            for core in self.cores:
                if core.get_timer() <= self.now:
                    core.handle_timer(self.now)
            self.deliver()
        self.now = end

    def submit(self, origin: int, requires: Mapping[str, str] | None = None) -> Task:
        task = Task(os.urandom(16), self.ids[origin], "job", [1], {}, dict(requires or {}))
        self.cores[origin].submit(task, self.now)
        self.deliver()
        self.advance(TIMING.load_interval)  # the load advert is rate-limited
        return task

    def finish(self, node: int, task: Task, value: object = "ok") -> None:
        self.cores[node].task_done(task.id, TaskOutcome.returned(value), self.now)
        self.deliver()
        self.advance(TIMING.result_delay * 2)


def test_idle_nodes_steal_and_results_go_home_once() -> None:
    mesh = Mesh([0, 1, 1])
    tasks = [mesh.submit(0) for _ in range(6)]
    assert mesh.started[1] and mesh.started[2]
    for node in (1, 2):
        while mesh.started[node]:
            mesh.finish(node, mesh.started[node].pop(0))
    finished = {event.task_id for event in mesh.finished}
    assert finished == {task.id for task in tasks}
    assert len(mesh.finished) == len(tasks)
    assert mesh.cores[0].pending() == 0


def test_a_victim_gives_at_most_half_of_its_queue_oldest_first() -> None:
    mesh = Mesh([0, 0])  # the thief has no slot: steal by hand
    tasks = [mesh.submit(0) for _ in range(10)]
    origin = mesh.cores[0]
    origin.receive(mesh.ids[1], MessageType.STEAL, Steal(request=1, wanted=100), mesh.now)
    answer = [m.body for m in origin.messages_to_send() if isinstance(m.body, Tasks)]
    assert len(answer) == 1
    assert [task.id for task in answer[0].tasks] == [task.id for task in tasks[:5]]
    assert origin.queued() == 5


def test_requirements_decide_who_may_run_a_task() -> None:
    mesh = Mesh([0, 1, 1], tags=[{}, {"zone": "us"}, {"zone": "eu"}])
    eu = [mesh.submit(0, {"zone": "eu"}) for _ in range(4)]
    assert not mesh.started[1]
    assert {t.id for t in mesh.started[2]} <= {t.id for t in eu}
    for task in eu:
        while not any(s.id == task.id for s in mesh.started[2]):
            mesh.finish(2, mesh.started[2].pop(0))
    assert all(t.requires == {"zone": "eu"} for t in mesh.started[2])
    assert not mesh.started[1]


def test_a_task_nobody_may_run_waits_and_is_never_lost() -> None:
    mesh = Mesh([0, 1])
    task = mesh.submit(0, {"gpu": "yes"})
    mesh.advance(30.0)
    assert not mesh.started[1]
    assert mesh.cores[0].holder_of(task.id) == mesh.ids[0]
    assert mesh.cores[0].pending() == 1


def test_a_dead_holder_means_the_task_runs_again_and_one_result_counts() -> None:
    mesh = Mesh([0, 1, 1])
    task = mesh.submit(0)
    first = 1 if mesh.started[1] else 2
    other = 3 - first
    assert mesh.cores[0].holder_of(task.id) == mesh.ids[first]
    mesh.cores[0].member_changed(mesh.member(first, MemberState.DEAD), mesh.now)
    mesh.deliver()
    assert any(t.id == task.id for t in mesh.started[other])
    assert mesh.cores[0].statistics()["requeued"] == 1
    # Both copies report; the caller sees one result.
    mesh.finish(other, task, "second")
    mesh.cores[first].task_done(task.id, TaskOutcome.returned("first"), mesh.now)
    mesh.deliver()
    mesh.advance(0.01)
    assert [e.value for e in mesh.finished] == ["second"]


def test_a_lease_that_runs_out_puts_the_task_back() -> None:
    mesh = Mesh([0, 1, 1])
    task = mesh.submit(0)
    holder = 1 if mesh.started[1] else 2
    # The holder's renewals are lost: after the lease, the origin queues it again.
    mesh.advance(TIMING.lease_timeout / 2)
    for _ in range(3):
        mesh.cores[holder].handle_timer(mesh.now + TIMING.lease_timeout)
        mesh.cores[holder].messages_to_send()
    mesh.cores[0].handle_timer(mesh.now + TIMING.lease_timeout + 0.01)
    assert mesh.cores[0].statistics()["requeued"] == 1
    assert mesh.cores[0].holder_of(task.id) == mesh.ids[0]


def test_cancelling_reaches_the_holder() -> None:
    mesh = Mesh([0, 1])
    task = mesh.submit(0)
    assert [t.id for t in mesh.started[1]] == [task.id]
    mesh.cores[0].cancel(task.id, mesh.now)
    mesh.deliver()
    assert mesh.cancelled[1] == [task.id]
    assert mesh.cores[0].pending() == 0


def test_an_origin_that_dies_has_its_tasks_dropped_by_holders() -> None:
    mesh = Mesh([0, 1])
    task = mesh.submit(0)
    assert mesh.started[1]
    mesh.cores[1].member_changed(mesh.member(0, MemberState.DEAD), mesh.now)
    mesh.deliver()
    assert mesh.cancelled[1] == [task.id]
    assert mesh.cores[1].statistics()["dropped_orphans"] == 1


def test_limits_on_task_and_result_sizes() -> None:
    mesh = Mesh([1])
    big = Task(os.urandom(16), mesh.ids[0], "job", ["x" * (TIMING.max_task_bytes + 1)], {}, {})
    with pytest.raises(LocalProtocolError, match="max_task_bytes"):
        mesh.cores[0].submit(big, 0.0)
    task = mesh.submit(0)
    too_large = TaskOutcome.returned(b"x" * (TIMING.max_result_bytes + 1))
    mesh.cores[0].task_done(task.id, too_large, 0.0)
    mesh.deliver()
    assert [(e.ok, e.value[0]) for e in mesh.finished] == [(False, "ResultTooLarge")]


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
    mesh = Mesh([0, 1])
    origin = mesh.cores[0]
    origin.submit(Task(os.urandom(16), mesh.ids[0], "job", [], {}, {}), mesh.now)
    origin.receive(mesh.ids[1], MessageType.STEAL, Steal(request=9, wanted=1), mesh.now)
    out = origin.messages_to_send()
    assert {type(m.body) for m in out} == {Load, Tasks}
    for message in out:
        assert message.peer == mesh.ids[1]
        assert message.reliable == (message.body.TYPE != MessageType.LOAD)
    with pytest.raises(AttributeError):
        out[0].peer = mesh.ids[0]  # type: ignore[misc]
