"""Real node processes (``meshedge run``) on 127.0.0.1: join, crash, pause, restart, leave.

Each node is ``python -m meshedge run --bind 127.0.0.1:0 --no-mdns --json --timing local``
with its own identity file, joined through a seed (the first node). The tests read the
JSON lines every process prints and wait, under ``trio.fail_after`` on the real clock
(these are separate processes), until each node's view says what is expected. Every
process is SIGKILLed by PID when a test ends, whatever happened.

Timing ``local``: probe every 0.2 s, suspicion timeout between 1 s (with the three
confirmations five nodes can give) and 6 s.
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio
from cli_nodes import (
    ALIVE,
    DEAD,
    LEFT,
    NodeProcess,
    NodeProcesses,
    all_see,
    mesh_formed,
    node_processes,
)

from meshedge.core._timing import Timing

#: Seconds for five processes to start and form a mesh on a busy two-core machine.
FORM_TIMEOUT = 20
#: Seconds for a change to be detected and spread (a suspicion timeout is at most 6 s).
DETECT_TIMEOUT = 15


async def start_mesh(group: NodeProcesses, count: int) -> list[NodeProcess]:
    seed = await group.start("n0")
    with trio.fail_after(FORM_TIMEOUT):
        await group.wait_started(seed)
        assert seed.address is not None
        nodes = [seed] + [await group.start(f"n{i}", join=[seed.address]) for i in range(1, count)]
        await group.wait_started(*nodes)
        await group.wait_for(lambda: mesh_formed(nodes))
    return nodes


async def test_five_processes_join_detect_a_kill_and_a_restart_rejoins(tmp_path: Path) -> None:
    async with node_processes(tmp_path) as group:
        nodes = await start_mesh(group, 5)
        victim, survivors = nodes[4], nodes[:4]
        old_id, old_address = victim.node_id, victim.address
        group.send_signal(victim, signal.SIGKILL)
        with trio.fail_after(DETECT_TIMEOUT):
            await group.wait_for(lambda: all_see(survivors, victim, DEAD))
        assert (await victim.process.wait()) == -signal.SIGKILL
        # The same identity file: the same node id, a new port and a larger boot epoch.
        restarted = await group.start("n4", join=[nodes[0].address or ""])
        everyone = [*survivors, restarted]
        with trio.fail_after(DETECT_TIMEOUT):
            await group.wait_started(restarted)
            assert restarted.node_id == old_id and restarted.address != old_address
            await group.wait_for(lambda: mesh_formed(everyone))
        for node in survivors:
            rejoined = [r for r in node.records if r.get("id") == old_id][-1]
            assert rejoined["event"] == "recovered" and rejoined["address"] == restarted.address
        # SIGTERM: a graceful leave, seen as "left" (not "failed") everywhere, exit code 0.
        leaver, stayers = everyone[3], [n for n in everyone if n is not everyone[3]]
        group.send_signal(leaver, signal.SIGTERM)
        with trio.fail_after(DETECT_TIMEOUT):
            await group.wait_for(lambda: all_see(stayers, leaver, LEFT))
            assert (await leaver.process.wait()) == 0
            await group.wait_for(lambda: leaver.stopped)
        assert not any(
            r["event"] == "failed"
            for n in stayers
            for r in n.records
            if r.get("id") == leaver.node_id
        )


async def test_a_paused_process_is_declared_dead_then_refutes_when_resumed(
    tmp_path: Path,
) -> None:
    minimum, _ = Timing.local().suspicion_timeouts(5)
    async with node_processes(tmp_path) as group:
        nodes = await start_mesh(group, 5)
        paused, others = nodes[2], [n for n in nodes if n is not nodes[2]]
        stopped_at = trio.current_time()
        group.send_signal(paused, signal.SIGSTOP)
        try:
            with trio.fail_after(DETECT_TIMEOUT):
                await group.wait_for(lambda: all_see(others, paused, DEAD))
            assert trio.current_time() - stopped_at >= minimum
        finally:
            group.send_signal(paused, signal.SIGCONT)
        # It hears that it was declared dead, outranks that with a new incarnation, and
        # everyone sees it alive again (and it sees everyone alive).
        with trio.fail_after(DETECT_TIMEOUT):
            await group.wait_for(lambda: mesh_formed(nodes))
        assert paused.process.returncode is None
        for node in others:
            records = [r for r in node.records if r.get("id") == paused.node_id]
            assert records[-1]["event"] == "recovered" and records[-1]["state"] == ALIVE
            assert records[-1]["incarnation"] > records[0]["incarnation"]
