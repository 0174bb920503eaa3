"""meshedge.testing.CoreMesh, by behaviour: the fake network every core-level test uses.

A mesh converges; a lossy network loses datagrams and never frames; a cut link gets the
far core suspected, then failed, and a heal lets it refute; a seed fixes the whole run;
tasks, direct messages, broadcasts and a leave reach the cores they should.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from test_architecture import violations
from wire_helpers import sign_message

import meshedge.testing
from meshedge import (
    BroadcastReceived,
    LeaveCompleted,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberState,
    MemberSuspected,
    MessageReceived,
)
from meshedge._identity import Identity
from meshedge.core._events import MemberEvent
from meshedge.core._outputs import Datagram, Frame
from meshedge.testing import CoreMesh, Task, TaskFinished, TaskOutcome, TaskSetup
from meshedge.wire import seal_datagram
from meshedge.wire.bodies import Ping

ALIVE, SUSPECT, DEAD, LEFT = MemberState
ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "meshedge" / "testing.py"
DOC = ROOT / "docs" / "testing.md"


def kinds_about(mesh: CoreMesh, observer: int, subject: int) -> list[type]:
    """The types of ``observer``'s member events about ``subject``, in order."""
    return [
        type(event)
        for event in mesh.events_of(observer, MemberEvent)
        if event.member.id == mesh.id(subject)
    ]


def everywhere(mesh: CoreMesh, subject: int, wanted: MemberState) -> bool:
    """Every other core sees ``subject`` in state ``wanted``."""
    return all(mesh.state(i, subject) == wanted for i in range(len(mesh.cores)) if i != subject)


# ---------------------------------------------------------------------- forming a mesh


def test_a_mesh_joined_through_one_core_converges_with_one_join_event_per_peer() -> None:
    mesh = CoreMesh(4)
    assert not mesh.converged()
    assert [len(core.members()) for core in mesh.cores] == [1, 1, 1, 1]
    mesh.join_all()
    took = mesh.run_until(mesh.converged, timeout=10)
    assert 0 <= took < 2 and mesh.now == took
    for observer in range(4):
        assert {e.member.id for e in mesh.events_of(observer, MemberJoined)} == {
            mesh.id(i) for i in range(4) if i != observer
        }
        assert len(mesh.events_of(observer, MemberJoined)) == 3
    mesh.advance(30)
    assert mesh.converged()
    assert not mesh.events_of(0, MemberSuspected)


def test_a_prejoined_mesh_starts_converged_silent_and_stays_so() -> None:
    mesh = CoreMesh(5, prejoined=True)
    assert mesh.now == 0.0 and mesh.converged()
    assert mesh.events == [[] for _ in range(5)]
    mesh.advance(30)
    assert mesh.converged()
    assert mesh.log == []  # nobody joined, nobody was suspected
    assert mesh.counts["datagrams"] > 100  # probes and gossip flowed meanwhile


def test_join_through_named_seeds() -> None:
    mesh = CoreMesh(3)
    mesh.join(1, [0])
    mesh.join(2, [1])
    mesh.run_until(mesh.converged, timeout=10)
    assert [mesh.index(core.id) for core in mesh.cores] == [0, 1, 2]


# ---------------------------------------------------------------------- the network


def test_losing_every_datagram_stops_gossip_but_frames_still_flow() -> None:
    # Control: without loss, core 1 learns of core 2 (which joined after it, through
    # core 0) by gossip within a second.
    control = CoreMesh(3)
    control.join_all()
    assert control.state(1, 2) is None
    control.advance(1.0)
    assert control.state(1, 2) == ALIVE
    mesh = CoreMesh(3, loss=1.0)
    mesh.join_all()  # the join is a SYNC exchange: frames, so it gets through
    assert mesh.state(1, 0) == ALIVE and mesh.state(0, 2) == ALIVE
    mesh.advance(1.0)
    assert mesh.state(1, 2) is None  # gossip never reached it
    assert mesh.counts["datagrams"] == 0 and mesh.counts["lost"] > 10
    assert mesh.counts["frames"] > 0
    # No acks arrive either: probed members are suspected.
    assert mesh.state(0, 1) == SUSPECT and mesh.state(1, 0) == SUSPECT
    mesh.send_message(1, 0, "hello", {"n": 1})  # direct messages are frames
    assert mesh.events_of(0, MessageReceived) == [MessageReceived(mesh.id(1), "hello", {"n": 1})]
    with pytest.raises(ValueError):
        mesh.set_loss(1.5)


def test_a_cut_core_is_suspected_then_failed_and_after_a_heal_refutes() -> None:
    mesh = CoreMesh(4, prejoined=True)
    before = mesh.cores[3].membership.incarnation
    for other in range(3):
        mesh.block(other, 3)
    mesh.run_until(lambda: everywhere(mesh, 3, DEAD), timeout=30)
    assert mesh.counts["blocked"] > 0
    for observer in range(3):
        assert kinds_about(mesh, observer, 3) == [MemberSuspected, MemberFailed]
        assert mesh.state(observer, 1 if observer != 1 else 0) == ALIVE  # only 3 is cut
    mesh.heal()
    mesh.run_until(mesh.converged, timeout=2 * mesh.timing.reconnect_interval)
    # Lifeguard: it heard it was dead and refuted with a higher incarnation.
    assert mesh.cores[3].membership.incarnation > before
    for observer in range(3):
        assert kinds_about(mesh, observer, 3)[-1] is MemberRecovered
        member = mesh.cores[observer].member(mesh.id(3))
        assert member is not None and member.incarnation > before


def test_heal_of_one_link_restores_only_that_link() -> None:
    mesh = CoreMesh(3, prejoined=True)
    mesh.block(0, 1)
    mesh.block(0, 2)
    mesh.heal(0, 1)
    blocked = mesh.counts["blocked"]
    mesh.advance(30)
    assert mesh.counts["blocked"] > blocked  # 0 and 2 still cannot talk ...
    # ... yet, probing each other indirectly through 1, neither declares the other dead.
    assert not mesh.events_of(0, MemberFailed) and not mesh.events_of(2, MemberFailed)
    assert mesh.converged()


def test_injected_bytes_reach_one_core_and_record_keeps_the_traffic() -> None:
    mesh = CoreMesh(2, prejoined=True, record=True)
    mesh.inject_datagram(0, b"\x00junk")
    mesh.inject_frame(1, b"\x00junk", source=mesh.address(0))
    assert mesh.cores[0].membership.statistics()["drops"]["malformed"] == 1
    assert mesh.cores[1].membership.statistics()["drops"]["malformed"] == 1
    assert mesh.traffic == []  # injected input is not traffic, and nobody answered
    # A well-signed ping from outside the mesh is answered, to an address outside it.
    stranger = Identity.generate()
    ping = sign_message(stranger, Ping(1, mesh.id(0)), mesh="testing")
    mesh.inject_datagram(0, seal_datagram([ping]), ("stranger", 9))
    assert mesh.counts["unroutable"] == 1 and mesh.traffic == []
    mesh.advance(1.0)
    assert mesh.traffic is not None
    assert {(s, t) for s, t, _ in mesh.traffic} == {(0, 1), (1, 0)}
    assert all(isinstance(item, Datagram | Frame) for _, _, item in mesh.traffic)
    assert len(mesh.traffic) == mesh.counts["datagrams"] + mesh.counts["frames"]
    assert CoreMesh(1).traffic is None


# ---------------------------------------------------------------------- time and determinism


def scripted(seed: int) -> CoreMesh:
    mesh = CoreMesh(4, seed=seed, loss=0.2, record=True)
    mesh.join_all()
    mesh.advance(5)
    mesh.broadcast(1, "t", [1, 2])
    mesh.block(0, 3)
    mesh.advance(10)
    mesh.heal()
    mesh.advance(10)
    return mesh


def shape(mesh: CoreMesh) -> list[tuple[float, int, str, int | None]]:
    """The log without node ids (they depend on the seed): time, core, event, subject."""
    subject = lambda e: mesh.index(e.member.id) if isinstance(e, MemberEvent) else None  # noqa: E731
    return [(time, index, type(event).__name__, subject(event)) for time, index, event in mesh.log]


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    first, second, other = scripted(1), scripted(1), scripted(2)
    assert first.log and first.log == second.log
    assert first.traffic == second.traffic  # byte for byte
    assert first.counts == second.counts
    assert [c.id for c in first.cores] != [c.id for c in other.cores]
    assert shape(first) != shape(other)


def test_run_until_returns_how_long_it_took_or_fails_with_a_clear_message() -> None:
    mesh = CoreMesh(2)
    assert mesh.run_until(lambda: True, timeout=1) == 0.0

    def never_true() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"never_true\(\) did not hold within 2 s"):
        mesh.run_until(never_true, timeout=2)
    assert mesh.now == 2.0
    mesh.advance(0.5)
    assert mesh.now == 2.5


def test_a_timer_that_stays_due_is_reported_not_spun_on_forever() -> None:
    mesh = CoreMesh(2)
    mesh.cores[1].get_timer = lambda: 1.0  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match=r"stays due at t=1\.0"):
        mesh.advance(5)


def test_refused_arguments() -> None:
    with pytest.raises(ValueError):
        CoreMesh(0)
    with pytest.raises(ValueError):
        CoreMesh(2, loss=-0.1)
    with pytest.raises(ValueError, match="1 task setups for 2 cores"):
        CoreMesh(2, tasks=[None])
    with pytest.raises(ValueError):
        CoreMesh(2).index(CoreMesh(1, seed=9).id(0))


# ---------------------------------------------------------------------- commands


SQUARE = TaskSetup(can_run=frozenset({"square"}), slots=1)
SUBMITTER = TaskSetup(can_run=frozenset(), slots=0)


def test_tasks_run_through_run_task_and_their_outcomes_go_home() -> None:
    ran: list[tuple[int, Task]] = []

    def square(index: int, task: Task) -> TaskOutcome:
        ran.append((index, task))
        return TaskOutcome.returned(task.args[0] ** 2)

    mesh = CoreMesh(3, prejoined=True, tasks=[SUBMITTER, SQUARE, SQUARE], run_task=square)
    tasks = [mesh.submit(0, "square", [n]) for n in range(6)]
    mesh.run_until(lambda: len(mesh.events_of(0, TaskFinished)) == 6, timeout=5)
    finished = {e.task_id: e for e in mesh.events_of(0, TaskFinished)}
    assert {task_id: e.value for task_id, e in finished.items()} == {
        task.id: n * n for n, task in enumerate(tasks)
    }
    assert {index for index, _ in ran} <= {1, 2}
    assert {e.ran_on for e in finished.values()} <= {mesh.id(1), mesh.id(2)}
    assert mesh.running == [{}, {}, {}]


def test_a_task_done_at_once_reports_home_in_the_same_instant() -> None:
    # Submit, advert, steal, start, run, result: all at t=0, within one deliver().
    mesh = CoreMesh(
        2, prejoined=True, tasks=[SUBMITTER, SQUARE], run_task=lambda i, t: TaskOutcome.returned(7)
    )
    task = mesh.submit(0, "square", [1])
    assert mesh.now == 0.0
    assert mesh.events_of(0, TaskFinished) == [TaskFinished(task.id, True, 7, mesh.id(1))]
    # A core running its own queue: each finished task frees the slot for the next one,
    # which starts (and finishes) in the same instant too.
    alone = CoreMesh(1, tasks=SQUARE, run_task=lambda i, t: TaskOutcome.returned(t.args[0]))
    core = alone.cores[0]
    for n in range(3):
        core.submit(core.new_task("square", [n]), alone.now)
    alone.deliver()
    assert [e.value for e in alone.events_of(0, TaskFinished)] == [0, 1, 2]


def test_a_task_left_running_is_finished_or_cancelled_by_the_test() -> None:
    mesh = CoreMesh(2, prejoined=True, tasks=[SUBMITTER, SQUARE], run_task=lambda i, t: None)
    first = mesh.submit(0, "square", [3])
    mesh.run_until(lambda: first.id in mesh.running[1], timeout=5)
    assert mesh.events_of(0, TaskFinished) == []
    mesh.finish_task(1, first.id, TaskOutcome.raised("ValueError", "no"))
    mesh.run_until(lambda: bool(mesh.events_of(0, TaskFinished)), timeout=1)
    (event,) = mesh.events_of(0, TaskFinished)
    assert (event.task_id, event.ok, event.value) == (first.id, False, ["ValueError", "no"])
    second = mesh.submit(0, "square", [4])
    mesh.run_until(lambda: second.id in mesh.running[1], timeout=5)
    mesh.cancel(0, second.id)
    assert mesh.cancelled[1] == [second.id] and mesh.running[1] == {}
    with pytest.raises(KeyError):
        mesh.finish_task(1, second.id, TaskOutcome.returned(None))


def test_finish_all_ends_every_running_task_of_a_core() -> None:
    setup = TaskSetup(can_run=frozenset({"square"}), slots=3)
    mesh = CoreMesh(2, prejoined=True, tasks=[SUBMITTER, setup], run_task=lambda i, t: None)
    for n in range(3):
        mesh.submit(0, "square", [n])
    mesh.run_until(lambda: len(mesh.running[1]) == 3, timeout=5)
    mesh.finish_all(1, TaskOutcome.returned("done"))
    mesh.run_until(lambda: len(mesh.events_of(0, TaskFinished)) == 3, timeout=1)
    assert {e.value for e in mesh.events_of(0, TaskFinished)} == {"done"}


def test_direct_messages_and_broadcasts_reach_their_cores() -> None:
    mesh = CoreMesh(3, prejoined=True)
    mesh.send_message(0, 2, "greeting", ["hi", 1])
    assert mesh.events_of(2, MessageReceived) == [
        MessageReceived(mesh.id(0), "greeting", ["hi", 1])
    ]
    assert mesh.events_of(1, MessageReceived) == []
    mesh.broadcast(1, "news", {"v": 2})
    mesh.advance(mesh.timing.broadcast_retention)
    wanted = [BroadcastReceived(mesh.id(1), "news", {"v": 2})]
    assert [mesh.events_of(i, BroadcastReceived) for i in range(3)] == [wanted, [], wanted]


def test_tags_reach_the_others() -> None:
    mesh = CoreMesh(3, prejoined=True, tags={1: {"zone": "eu"}})
    assert mesh.cores[0].member(mesh.id(1)).tags == {"zone": "eu"}  # type: ignore[union-attr]
    mesh.set_tags(2, {"gpu": "yes"})
    mesh.run_until(
        lambda: all(c.member(mesh.id(2)).tags == {"gpu": "yes"} for c in mesh.cores),  # type: ignore[union-attr]
        timeout=5,
    )


def test_a_leave_completes_and_every_view_says_left() -> None:
    mesh = CoreMesh(3, prejoined=True)
    mesh.leave(2)
    mesh.run_until(lambda: bool(mesh.events_of(2, LeaveCompleted)), timeout=5)
    assert mesh.events_of(2, LeaveCompleted) == [LeaveCompleted(mesh.id(2))]
    assert everywhere(mesh, 2, LEFT)
    assert [kinds_about(mesh, i, 2) for i in (0, 1)] == [[MemberLeft], [MemberLeft]]
    mesh.advance(30)
    assert len(mesh.events_of(2, LeaveCompleted)) == 1


# ---------------------------------------------------------------------- the house rules


def test_every_public_name_exists() -> None:
    assert all(hasattr(meshedge.testing, name) for name in meshedge.testing.__all__)


def test_the_module_does_no_io() -> None:
    found = violations(SOURCE.read_text(encoding="utf-8"), may_construct_random=True)
    assert found == []


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file."""
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_the_examples_of_docs_testing_md_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(DOC)
    assert len(blocks) == 4
    for block in blocks:
        if block.startswith("CoreMesh("):  # the signature, not an example
            continue
        scope: dict[str, Any] = {}
        exec(compile(block, str(DOC), "exec"), scope)
        for name, function in scope.items():
            if not name.startswith("test_"):
                continue
            if inspect.iscoroutinefunction(function):
                clock = trio.testing.MockClock(autojump_threshold=0)
                trio.run(function, clock, clock=clock)
            else:
                function()
    assert "core 0 declared core 2 failed after" in capsys.readouterr().out


def test_the_example_of_the_module_docstring_runs() -> None:
    doc = meshedge.testing.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    exec(textwrap.dedent(block), {"CoreMesh": CoreMesh})
