"""A member's life as every view sees it: refutation, restart, tags, address, leave."""

from __future__ import annotations

from typing import Any

import pytest
from membership_helpers import (
    ALIVE,
    DEAD,
    LAN,
    LEFT,
    about,
    everywhere,
    formed,
    joined,
    record_events,
)

from meshedge import (
    Address,
    LocalProtocolError,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
)
from meshedge.core._events import LeaveCompleted
from meshedge.sim import Simulation
from meshedge.testing import CoreMesh

# ---------------------------------------------------------------------- refutation, restart, leave


def test_a_paused_node_is_suspected_refutes_and_stays_alive() -> None:
    sim = formed(5, seed=6)
    events = record_events(sim)
    before = sim.node(2).incarnation
    minimum, _ = LAN.suspicion_timeouts(5)
    pause = 3.5
    # Longer than the probe timeout (it misses pings), shorter than any suspicion
    # timeout (nobody may declare it dead).
    assert LAN.probe_timeout < pause < minimum
    sim.pause(2, pause)
    sim.run_for(pause)
    assert sim.is_paused(2) or sim.now >= pause
    victim = sim.node_ids[2]
    suspected = [
        n for n, e, _ in events if isinstance(e, MemberSuspected) and e.member.id == victim
    ]
    assert suspected, "somebody probed the paused node and suspected it"
    sim.run_until(sim.converged, 10)
    # It refuted: a higher incarnation, alive everywhere, never declared dead.
    assert sim.node(2).incarnation > before
    assert sim.node(2).statistics()["refutations"] >= 1
    assert everywhere(sim, 2, ALIVE)()
    assert not [e for _, e, _ in events if isinstance(e, MemberFailed)]
    for observer in set(suspected):
        kinds = [kind for kind, _ in about(events, observer, victim)]
        assert kinds[-1] is MemberRecovered
        assert all(m.incarnation > before for m in [sim.view(observer)[victim]])
    sim.run_for(60)
    assert sim.converged()


def test_a_restarted_node_outranks_its_dead_record() -> None:
    sim = formed(5, seed=7)
    old = sim.view(0)[sim.node_ids[3]]
    events = record_events(sim)
    sim.crash(3)
    sim.run_until(everywhere(sim, 3, DEAD), 60)
    sim.restart(3)
    assert sim.node(3).id == sim.node_ids[3]  # same identity
    sim.run_until(sim.converged, 30)
    for observer in (0, 1, 2, 4):
        member = sim.view(observer)[sim.node_ids[3]]
        assert member.state == ALIVE
        assert member.epoch > old.epoch
        kinds = [kind for kind, _ in about(events, observer, sim.node_ids[3])]
        assert kinds == [MemberSuspected, MemberFailed, MemberRecovered]
    # The restarted node knows everybody again.
    assert all(m.state == ALIVE for m in sim.view(3).values())
    assert len(sim.view(3)) == 5


def test_a_graceful_leave_is_left_not_dead_everywhere() -> None:
    sim = formed(5, seed=8)
    events = record_events(sim)
    sim.leave(2)
    sim.run_until(everywhere(sim, 2, LEFT), 5)
    sim.crash(2)  # the process exits after leaving
    sim.run_for(120)
    assert everywhere(sim, 2, LEFT)()
    assert sim.converged()
    assert not [e for _, e, _ in events if isinstance(e, MemberSuspected | MemberFailed)]
    for observer in (0, 1, 3, 4):
        assert [kind for kind, _ in about(events, observer, sim.node_ids[2])] == [MemberLeft]


def test_the_events_about_one_member_come_in_a_sensible_order() -> None:
    sim = Simulation(5, seed=15)
    events = record_events(sim)
    subject = sim.node_ids[3]
    sim.run_until(sim.converged, 30)
    sim.set_tags(3, {"role": "sensor"})
    sim.run_until(sim.converged, 10)
    sim.crash(3)
    sim.run_until(everywhere(sim, 3, DEAD), 60)
    sim.restart(3)
    sim.run_until(sim.converged, 30)
    sim.leave(3)
    sim.run_until(everywhere(sim, 3, LEFT), 10)
    for observer in (0, 1, 2, 4):
        kinds = [kind for kind, _ in about(events, observer, subject)]
        assert kinds == [
            MemberJoined,
            MemberUpdated,
            MemberSuspected,
            MemberFailed,
            MemberRecovered,
            MemberLeft,
        ], (observer, kinds)
        times = [time for _, time in about(events, observer, subject)]
        assert times == sorted(times)
    # Each event carries the member as it is after the change.
    snapshots = [
        e.member for node, e, _ in events if node == 0 and isinstance(e, MemberUpdated | MemberLeft)
    ]
    assert [m.state for m in snapshots] == [ALIVE, LEFT]
    assert snapshots[0].tags == {"role": "sensor"}


# ---------------------------------------------------------------------- own tags and address


def test_tags_reach_every_view() -> None:
    sim = formed(5, seed=9)
    events = record_events(sim)
    sim.set_tags(1, {"zone": "eu", "gpu": "yes"})
    wanted = {"zone": "eu", "gpu": "yes"}
    sim.run_until(lambda: all(sim.view(i)[sim.node_ids[1]].tags == wanted for i in range(5)), 5)
    assert sim.converged()
    for observer in (0, 2, 3, 4):
        assert [kind for kind, _ in about(events, observer, sim.node_ids[1])] == [MemberUpdated]


def test_oversized_or_non_text_tags_are_refused_locally() -> None:
    sim = formed(2, seed=10)
    incarnation = sim.node(0).incarnation
    with pytest.raises(LocalProtocolError):
        sim.set_tags(0, {"blob": "x" * 600})
    with pytest.raises(LocalProtocolError):
        sim.set_tags(0, {"n": 1})  # type: ignore[dict-item]
    # One value longer than the wire allows (256 bytes), though the map is under 512.
    with pytest.raises(LocalProtocolError):
        sim.set_tags(0, {"blob": "x" * 300})
    with pytest.raises(LocalProtocolError):
        sim.set_tags(0, {"bad": "\udc80"})  # no UTF-8 form
    # A refused change changes nothing.
    assert sim.node(0).incarnation == incarnation
    assert sim.view(0)[sim.node_ids[0]].tags == {}
    # The node still works: suspected during a pause, it refutes with its old tags,
    # which takes signing its own ALIVE statement.
    sim.pause(0, 3.5)
    sim.run_until(lambda: sim.node(0).incarnation > incarnation, 10)
    sim.run_until(sim.converged, 10)
    assert sim.view(1)[sim.node_ids[0]].tags == {}
    # Values of up to 256 bytes, in a map of up to 512 encoded bytes, are fine.
    sim.set_tags(0, {"a": "x" * 250, "b": "y" * 250})
    sim.run_until(sim.converged, 10)
    assert sim.view(1)[sim.node_ids[0]].tags == {"a": "x" * 250, "b": "y" * 250}


class HostText(str):
    """A str subclass: the wire's schema accepts exact ``str`` only."""


@pytest.mark.parametrize(
    "address",
    [("\udc80", 7946), ("n0", True), (HostText("n0"), 7946), ("", 7946), ("n0", 70000)],
    ids=["lone-surrogate", "bool-port", "str-subclass", "empty-host", "port-range"],
)
def test_a_refused_address_changes_nothing(address: Address) -> None:
    sim = formed(2, seed=17)
    core = sim.node(0)
    incarnation = core.incarnation
    with pytest.raises(LocalProtocolError):
        core.set_address(address, sim.now)
    assert core.incarnation == incarnation
    assert core.address == Simulation.address(0)
    # It can still refute a suspicion (it signs its ALIVE statement).
    sim.pause(0, 3.5)
    sim.run_until(lambda: sim.node(0).incarnation > incarnation, 10)
    sim.run_until(sim.converged, 10)


# ---------------------------------------------------------------------- the end of a leave


def leave_completions(events: list[Any]) -> list[LeaveCompleted]:
    return [e for e in events if isinstance(e, LeaveCompleted)]


def test_leave_completes_once_when_the_gossip_queue_first_runs_dry() -> None:
    mesh = joined(4)
    mesh.advance(5)
    leaver = mesh.cores[3].membership
    mesh.events[3].clear()
    mesh.leave(3)
    # The LEFT statement is queued to be sent many more times than one round can.
    assert leaver.statistics()["queued_updates"] > 0
    assert leave_completions(mesh.events[3]) == []
    # Step the mesh; the event comes with the first step after which nothing is queued.
    for _ in range(200):
        dry = leaver.statistics()["queued_updates"] == 0
        assert leave_completions(mesh.events[3]) == [], "completed before the queue ran dry"
        if dry:
            break
        mesh.advance(0.05)
        if leave_completions(mesh.events[3]):
            assert leaver.statistics()["queued_updates"] == 0
            break
    assert leave_completions(mesh.events[3]) == [LeaveCompleted(leaver.id)]
    # Every other node heard of the departure by then.
    views = [core.member(leaver.id) for core in mesh.cores[:3]]
    assert all(member is not None and member.state == LEFT for member in views)
    # Once only, however long the node is driven, and leave() again changes nothing.
    mesh.leave(3)
    mesh.advance(30)
    assert len(leave_completions(mesh.events[3])) == 1


def test_leave_completes_at_once_when_nobody_is_left_to_tell() -> None:
    mesh = CoreMesh(1, timing=LAN)
    mesh.leave(0)
    assert mesh.now == 0.0
    assert mesh.events[0] == [LeaveCompleted(mesh.id(0))]
    core = mesh.cores[0]
    assert core.next_event() is None
    core.handle_timer(core.get_timer())
    assert core.next_event() is None
    mesh.advance(30)
    assert mesh.events[0] == [LeaveCompleted(mesh.id(0))]
