"""Runtime benchmark: messages, latency, memory, import time, mDNS and failure detection.

Measures, in one run, what a user of a running node notices, and prints each figure
next to its goal (PASS/MISS) and next to py-libp2p's figure for the same thing:

- signed direct messages between two node processes on 127.0.0.1 (``Node.send`` to the
  other's ``subscribe``): throughput with a 100-byte payload, and round-trip latency
  of one message at a time (request, echo; one-way is reported as RTT/2, since clocks
  of two processes are not compared);
- idle RSS of a ``meshedge run`` process, and ``import meshedge`` time;
- mDNS: from launching 3 ``meshedge run --mdns --interface 127.0.0.1`` processes until
  each lists all 3 alive; the longest trio event-loop stall while discovery starts;
- failure detection with ``Timing.local()`` and ``Timing.lan()``: from SIGKILL or
  SIGSTOP of one of 4 processes to the first "suspected" and to "failed" at every
  survivor.

py-libp2p's figures are quoted, with their source (py-libp2p 0.8.1, measured on
2026-11-26 on a 2-core machine, Python 3.11.7), from ``docs/reference-figures.md``; they
are not re-measured here.

Everything binds to 127.0.0.1; mDNS runs on 127.0.0.1 only, its sockets pinned to the
loopback device (docs/discovery.md), so no packet leaves this host's loopback. Every
loop is bounded in count and time; every process started here is stopped by its PID.
Run it from the repository root:

    .venv/bin/python benchmarks/runtime.py [--quick] [--only messages,memory,...]
        [--profile-receiver] [--json results.json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio
from harness import (
    PYTHON,
    ROOT,
    WAIT_LIMIT,
    NodeProcess,
    Ticker,
    cpu_pressure,
    loopback_flags,
    meshedge_run,
    percentile,
    process_group,
    profile_top,
    rss_mib,
    say,
    stall_phases,
    stop_processes,
    unique_mesh,
    wait_alive,
    wait_started,
    wait_until,
)

SECTIONS = ("import", "memory", "messages", "mdns", "stall", "failure")

#: How many bytes of application payload each throughput message carries.
PAYLOAD_SIZE = 100
#: Round trips timed before the measured ones (connections, caches).
WARM_UP_TRIPS = 100


# ---------------------------------------------------------------------------- import


def median_import_ms(statement: str, runs: int) -> dict[str, Any]:
    """Wall time of ``statement`` in ``runs`` fresh interpreters (perf_counter around it)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [PYTHON, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        samples.append(float(out.stdout) * 1000)
    return {"median_ms": statistics.median(samples), "samples_ms": samples}


def importtime_top(count: int = 12) -> list[dict[str, Any]]:
    """What dominates `import meshedge.runtime`, from -X importtime (cumulative us)."""
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import meshedge.runtime"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    return [{"cumulative_ms": round(us / 1000, 1), "module": name} for us, name in rows[:count]]


def measure_import(runs: int) -> dict[str, Any]:
    """Median wall time of an import in a fresh interpreter, and what dominates it."""
    targets = {
        "import meshedge": "import meshedge",
        "import meshedge.runtime": "import meshedge.runtime",
        "import meshedge.runtime + discovery": "import meshedge.runtime.discovery",
    }
    results: dict[str, Any] = {
        label: median_import_ms(statement, runs) for label, statement in targets.items()
    }
    results["importtime_top"] = importtime_top()
    return results


# ---------------------------------------------------------------------------- memory


async def measure_memory(settle: float) -> dict[str, Any]:
    """VmRSS of an idle ``meshedge run`` (without, then with mDNS on 127.0.0.1)."""
    results: dict[str, Any] = {}
    variants = {
        "no mdns": ["--no-mdns"],
        "mdns on 127.0.0.1": ["--mdns", "--interface", "127.0.0.1"],
    }
    async with process_group() as launch:
        for label, flags in variants.items():
            command = meshedge_run(*loopback_flags(unique_mesh(), "local", *flags))
            proc = await launch(label, command)
            await wait_started([proc])
            startup = proc.records[0][0] - proc.launched
            await trio.sleep(settle)
            results[label] = {"rss_mib": rss_mib(proc.pid), "startup_s": startup}
            await stop_processes([proc.process])
    return results


# ---------------------------------------------------------------------------- messages


async def echo(node: Any) -> None:
    """Answer every "ping" with a "pong" of the same payload."""
    async with node.subscribe("ping") as pings:
        async for message in pings:
            await node.send(message.sender, "pong", message.payload)


def sink_report(node: Any, received: int, first_wall: float, first_cpu: float) -> dict[str, Any]:
    """What the receiver reports ("done") after a load: counts, CPU, wall and drops."""
    stats = node.statistics()
    return {
        "received": received,
        "wall_s": time.perf_counter() - first_wall,
        "cpu_s": time.process_time() - first_cpu,
        "messages_received": stats["messages_received"],
        "frames_received": stats["frames_received"],
        "drops": {k: v for k, v in stats["drops"].items() if v},
        "no_subscriber": stats["no_subscriber"],
    }


async def sink(node: Any, profile_path: str | None) -> None:
    """Count "load" messages until the end marker (a dict); report each load's cost."""
    async with node.subscribe("load") as loads:
        while True:
            received, first_wall, first_cpu = 0, 0.0, 0.0
            # CPU time, not wall time: on a busy machine, wall time would charge the
            # time this process waited for a CPU to whatever ran before.
            profiler = cProfile.Profile(time.process_time) if profile_path else None
            async for message in loads:
                if isinstance(message.payload, dict):
                    break  # the end marker: every message before it is in
                if not received:
                    first_wall, first_cpu = time.perf_counter(), time.process_time()
                    if profiler is not None:
                        profiler.enable()
                received += 1
            else:
                return
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile_path)
            report = sink_report(node, received, first_wall, first_cpu)
            await node.send(message.sender, "done", report)


async def echo_worker(mesh: str, profile_path: str | None) -> None:
    """The far node of the message benchmark: echoes "ping", counts "load"."""
    from meshedge.runtime import NodeConfig, Timing, format_address, open_node

    config = NodeConfig(mesh=mesh, bind="127.0.0.1:0", timing=Timing.local())
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_node(config) as node, trio.open_nursery() as nursery:
            nursery.start_soon(echo, node)
            nursery.start_soon(sink, node, profile_path)
            record = {"event": "started", "id": str(node.id)}
            record["address"] = format_address(node.address)
            print(json.dumps(record), flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


async def measure_round_trips(node: Any, peer: Any, pongs: Any, count: int) -> dict[str, Any]:
    """Latency: one message at a time, request and echo; milliseconds per round trip."""
    rtts = []
    for i in range(count + WARM_UP_TRIPS):
        started = time.perf_counter_ns()
        await node.send(peer, "ping", i)
        with trio.fail_after(10):
            reply = await pongs.receive()
        if i >= WARM_UP_TRIPS:  # the first ones warm up connections and caches
            rtts.append((time.perf_counter_ns() - started) / 1e6)
        assert reply.payload == i
    return {"median": statistics.median(rtts), "p99": percentile(rtts, 0.99), "count": len(rtts)}


async def send_load(node: Any, peer: Any, count: int, seconds: float) -> tuple[int, float, float]:
    """Send up to ``count`` messages for at most ``seconds``, then the end marker.

    As fast as Node.send goes (it waits on TCP backpressure). Returns the messages sent,
    this process's CPU seconds, and the seconds spent in sends that waited (> 1 ms):
    the receiver lagged.
    """
    payload = bytes(range(PAYLOAD_SIZE))
    sent = 0
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    blocked = 0.0
    while sent < count and (sent % 256 or time.perf_counter() < deadline):
        before = time.perf_counter()
        await node.send(peer, "load", payload)
        took = time.perf_counter() - before
        if took > 0.001:
            blocked += took
        sent += 1
    await node.send(peer, "load", {"end": sent})
    return sent, time.process_time() - cpu, blocked


async def measure_throughput(
    node: Any, peer: Any, dones: Any, count: int, seconds: float
) -> dict[str, Any]:
    """Throughput of signed direct messages, with the receiver's own account of it."""
    started = time.perf_counter()
    sent, sender_cpu, blocked = await send_load(node, peer, count, seconds)
    with trio.fail_after(WAIT_LIMIT):
        done = (await dones.receive()).payload
    elapsed = time.perf_counter() - started
    return {
        "sent": sent,
        "received": done["received"],
        "seconds": elapsed,
        "msg_per_s": done["received"] / elapsed,
        "sender_cpu_us_per_msg": 1e6 * sender_cpu / sent,
        "receiver_cpu_us_per_msg": 1e6 * done["cpu_s"] / max(1, done["received"]),
        "receiver_busy": done["cpu_s"] / max(1e-9, done["wall_s"]),
        "sender_blocked_s": blocked,
        "receiver_stats": {k: v for k, v in done.items() if k not in ("cpu_s", "wall_s")},
    }


async def measure_messages(
    count: int, seconds: float, round_trips: int, profile: bool
) -> dict[str, Any]:
    """Latency, then throughput, against an echo worker process."""
    from meshedge import NodeId
    from meshedge.runtime import NodeConfig, Timing, open_node

    mesh = unique_mesh()
    profile_path = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"meshedge-{mesh}.prof")
    command = [PYTHON, __file__, "--worker", "echo", "--mesh", mesh]
    if profile:
        command += ["--profile-path", profile_path]
    results: dict[str, Any] = {}
    async with process_group() as launch:
        worker = await launch("echo", command, quiet=False)
        await wait_started([worker])
        peer = NodeId.parse(worker.node_id)
        config = NodeConfig(
            mesh=mesh, bind="127.0.0.1:0", timing=Timing.local(), seeds=(worker.address,)
        )
        async with open_node(config) as node:
            await wait_alive(node, peer)
            async with node.subscribe("pong") as pongs, node.subscribe("done") as dones:
                results["rtt_ms"] = await measure_round_trips(node, peer, pongs, round_trips)
                results["throughput"] = await measure_throughput(node, peer, dones, count, seconds)
            stats = node.statistics()
            results["sender_drops"] = {k: v for k, v in stats["drops"].items() if v}
    if profile:
        results["receiver_profile"] = await trio.to_thread.run_sync(profile_top, profile_path, 25)
    return results


# ---------------------------------------------------------------------------- mDNS


def all_listed(procs: Sequence[NodeProcess], done: dict[str, float], launched: float) -> bool:
    """Record when each process first lists every other one alive; True once all do."""
    for p in procs:
        if p.name not in done and len(p.alive_peers()) == len(procs) - 1:
            done[p.name] = trio.current_time() - launched
    return len(done) == len(procs)


async def mdns_round(nodes: int) -> tuple[list[float], float]:
    """Launch ``nodes`` processes at once; seconds until each lists all, and all started."""
    flags = loopback_flags(unique_mesh(), "local", "--mdns", "--interface", "127.0.0.1")
    async with process_group() as launch:
        launched = trio.current_time()
        procs = [await launch(f"node{i}", meshedge_run(*flags)) for i in range(nodes)]
        done: dict[str, float] = {}
        await wait_until(partial(all_listed, procs, done, launched), procs)
        # 'started' is printed once imports are done and mDNS is registered.
        return sorted(done.values()), max(p.records[0][0] for p in procs) - launched


async def measure_mdns_discovery(rounds: int, nodes: int = 3) -> dict[str, Any]:
    """From launching ``nodes`` processes at once until each lists all of them alive."""
    samples: list[list[float]] = []
    started: list[float] = []
    for _ in range(rounds):
        listed, all_started = await mdns_round(nodes)
        samples.append(listed)
        started.append(all_started)
    every = [max(s) for s in samples]
    return {
        "all_listed_s": {"median": statistics.median(every), "max": max(every)},
        "first_listed_s": {"median": statistics.median(min(s) for s in samples)},
        "all_started_s": {"median": statistics.median(started), "max": max(started)},
        "samples_s": samples,
    }


def mdns_node_config(mesh: str) -> Any:
    """A node on 127.0.0.1 with mDNS on the loopback interface only."""
    from meshedge.runtime import NodeConfig, Timing

    return NodeConfig(
        mesh=mesh,
        bind="127.0.0.1:0",
        timing=Timing.local(),
        mdns=True,
        mdns_interfaces=("127.0.0.1",),
    )


async def node_stall_round(ticker: Ticker) -> dict[str, float]:
    """Start a node with mDNS beside another; the ticker's longest gap in each phase."""
    from meshedge.runtime import open_node

    mesh = unique_mesh("stall")
    async with open_node(mdns_node_config(mesh)) as other:

        async def joined(node: Any) -> None:
            await wait_alive(node, other.id)

        return await stall_phases(ticker, open_node(mdns_node_config(mesh)), joined, "joined_s")


def stall_summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Median and max of each field over rounds."""
    return {
        key: {"median": statistics.median(r[key] for r in rows), "max": max(r[key] for r in rows)}
        for key in rows[0]
    }


async def measure_stall(rounds: int) -> dict[str, Any]:
    """Longest gap of a 1 ms ticker while discovery (and a whole node with it) starts."""
    import mdns_stall  # benchmarks/mdns_stall.py: the ticker and an open_mdns round

    ticker = Ticker()
    discovery_rounds = []
    node_rounds = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        for _ in range(rounds):
            discovery_rounds.append(await mdns_stall.one_round(ticker))
        for _ in range(rounds):
            node_rounds.append(await node_stall_round(ticker))
        nursery.cancel_scope.cancel()
    return {
        "open_mdns": stall_summary(discovery_rounds),
        "open_node_mdns": stall_summary(node_rounds),
    }


# ---------------------------------------------------------------------------- failures


async def settled_mesh(launch: Any, common: list[str], nodes: int) -> list[NodeProcess]:
    """``nodes`` processes joined to the first, each listing all others alive."""
    first = await launch("node0", meshedge_run(*common))
    await wait_started([first])
    procs = [first] + [
        await launch(f"node{i}", meshedge_run(*common, "--join", first.address))
        for i in range(1, nodes)
    ]
    await wait_started(procs)
    ids = {p.node_id for p in procs}
    await wait_until(lambda: all(p.alive_peers() == ids - {p.node_id} for p in procs), procs)
    await trio.sleep(1.0)  # a few quiet protocol periods: the mesh is settled
    return procs


def failure_figures(
    victim: NodeProcess, survivors: Sequence[NodeProcess], signalled_wall: float
) -> dict[str, Any]:
    """When the survivors suspected and failed the victim; suspicions of anyone else."""
    suspected = [
        r["time"] - signalled_wall
        for p in survivors
        if (r := p.first("suspected", victim.node_id)) is not None
    ]
    failed = [p.first("failed", victim.node_id)["time"] - signalled_wall for p in survivors]  # type: ignore[index]
    false_alarms = sum(
        1
        for p in survivors
        for _, record in p.records
        if record.get("event") in ("suspected", "failed") and record.get("id") != victim.node_id
    )
    return {
        "first_suspected_s": min(suspected) if suspected else None,
        "suspected_at": len(suspected),
        "failed_first_s": min(failed),
        "failed_every_s": max(failed),
        "false_alarms": false_alarms,
    }


async def measure_failure(timing: str, sig: signal.Signals, nodes: int) -> dict[str, Any]:
    """SIGKILL or SIGSTOP one of ``nodes`` processes; when do the others notice?"""
    common = loopback_flags(unique_mesh(), timing, "--no-mdns")
    async with process_group() as launch:
        procs = await settled_mesh(launch, common, nodes)
        victim, survivors = procs[-1], procs[:-1]
        signalled_wall = time.time()
        os.kill(victim.pid, sig)

        def failed_everywhere() -> bool:
            return all(p.first("failed", victim.node_id) for p in survivors)

        await wait_until(failed_everywhere, survivors)
        return failure_figures(victim, survivors, signalled_wall)


# ---------------------------------------------------------------------------- report

#: py-libp2p 0.8.1's figures, each with its source in docs/reference-figures.md.
LIBP2P = {
    "throughput": "250-590 msg/s (1 proc 247; 2 procs 125-586)",
    "latency": "median 5.6-9.9 ms one-way (2 procs)",
    "rss": "85.0 MiB (running host)",
    "import": "530-680 ms (import libp2p)",
    "mdns": "1.62-1.72 s after new_host(), + 0.5-1.9 s import",
    "stall": "1.48-1.71 s (mDNS.start)",
    "kill": "conn. dropped 116 ms, pubsub peer 219 ms (TCP RST)",
    "stop": "not detected within 45 s",
}


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(
        self, metric: str, value: str, goal: str = "", verdict: bool | None = None, libp2p: str = ""
    ) -> None:
        mark = "" if verdict is None else ("PASS" if verdict else "MISS")
        self.rows.append((metric, value, goal, mark, libp2p))

    def print(self) -> None:
        headers = ("metric", "meshedge", "goal", "", "py-libp2p 0.8.1 (docs/reference-figures.md)")
        widths = [max(len(r[i]) for r in [headers, *self.rows]) for i in range(4)]
        for row in [headers, *self.rows]:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            print("  ".join([*cells, row[4]]).rstrip())


def report_import(r: Report, imp: dict[str, Any]) -> None:
    ms = imp["import meshedge"]["median_ms"]
    r.add("import meshedge (median)", f"{ms:.0f} ms", "<= 250 ms", ms <= 250, LIBP2P["import"])
    for label in ("import meshedge.runtime", "import meshedge.runtime + discovery"):
        r.add(f"  {label}", f"{imp[label]['median_ms']:.0f} ms")


def report_memory(r: Report, mem: dict[str, Any]) -> None:
    mib = mem["no mdns"]["rss_mib"]
    r.add("idle `meshedge run` RSS", f"{mib:.1f} MiB", "<= 40 MiB", mib <= 40, LIBP2P["rss"])
    mib2 = mem["mdns on 127.0.0.1"]["rss_mib"]
    r.add("  with mDNS on 127.0.0.1", f"{mib2:.1f} MiB", "<= 40 MiB", mib2 <= 40)
    r.add("  process launch -> 'started'", f"{mem['no mdns']['startup_s']:.2f} s")


def report_throughput(r: Report, tp: dict[str, Any]) -> None:
    rate = tp["msg_per_s"]
    r.add(
        f"signed direct msgs, 2 procs ({PAYLOAD_SIZE} B)",
        f"{rate:,.0f} msg/s",
        ">= 5,000 msg/s",
        rate >= 5000,
        LIBP2P["throughput"],
    )
    r.add("  delivered / sent", f"{tp['received']:,} / {tp['sent']:,} in {tp['seconds']:.1f} s")
    if tp["received"] != tp["sent"]:
        r.add("  receiver statistics (LOSS)", json.dumps(tp["receiver_stats"]))
    r.add(
        "  receiver CPU per message (busy)",
        f"{tp['receiver_cpu_us_per_msg']:.0f} us ({100 * tp['receiver_busy']:.0f}% of wall)",
    )
    r.add("  sender CPU per message", f"{tp['sender_cpu_us_per_msg']:.0f} us")
    r.add(
        "  sender waiting on back-pressure",
        f"{tp['sender_blocked_s']:.2f} s of {tp['seconds']:.2f} s",
    )
    ceiling = 1e6 / max(tp["receiver_cpu_us_per_msg"], tp["sender_cpu_us_per_msg"])
    r.add("  CPU-bound ceiling (a core each)", f"{ceiling:,.0f} msg/s")


def report_latency(r: Report, rtt: dict[str, Any]) -> None:
    one_way = rtt["median"] / 2
    r.add("latency RTT/2 (median)", f"{one_way:.2f} ms", "<= 1 ms", one_way <= 1, LIBP2P["latency"])
    r.add("  RTT median / p99", f"{rtt['median']:.2f} / {rtt['p99']:.2f} ms (n={rtt['count']})")


def report_mdns(r: Report, md: dict[str, Any]) -> None:
    every = md["all_listed_s"]["max"]
    r.add(
        "mDNS: launch 3 procs -> all list 3 (worst)",
        f"{every:.2f} s",
        "<= 3 s",
        every <= 3,
        LIBP2P["mdns"],
    )
    r.add(
        "  median of rounds / first node",
        f"{md['all_listed_s']['median']:.2f} s / {md['first_listed_s']['median']:.2f} s",
    )
    r.add(
        "  launch -> all 3 'started' (median)",
        f"{md['all_started_s']['median']:.2f} s (Python, imports, mDNS registration)",
    )


def report_stall(r: Report, st: dict[str, Any]) -> None:
    gap = st["open_mdns"]["start_gap_ms"]["max"]
    r.add(
        "loop stall, open_mdns start (worst)", f"{gap:.1f} ms", "< 50 ms", gap < 50, LIBP2P["stall"]
    )
    node = st["open_node_mdns"]
    worst = node["start_gap_ms"]["max"]
    r.add("loop stall, open_node(mdns) start", f"{worst:.1f} ms", "< 50 ms", worst < 50)
    running, stop = node["running_gap_ms"]["max"], node["stop_gap_ms"]["max"]
    r.add("  until joined / stop (worst)", f"{running:.1f} / {stop:.1f} ms")
    r.add(
        "  open_node(mdns) entry / joined",
        f"{node['start_s']['median']:.2f} s / {node['joined_s']['median']:.2f} s",
    )


def report_failure(r: Report, failures: dict[str, Any]) -> None:
    for key, row in failures.items():
        timing, sig = key.split("/")
        suspected = row["first_suspected_s"]
        r.add(
            f"{sig} ({timing}): first suspected",
            "-" if suspected is None else f"{suspected:.2f} s",
            libp2p=LIBP2P["kill" if sig == "SIGKILL" else "stop"],
        )
        r.add(
            "  failed at first / every survivor",
            f"{row['failed_first_s']:.2f} / {row['failed_every_s']:.2f} s",
        )
        if row["false_alarms"]:
            r.add("  false suspicions of live nodes", str(row["false_alarms"]))


def report_all(results: dict[str, Any]) -> Report:
    r = Report()
    if "import" in results:
        report_import(r, results["import"])
    if "memory" in results:
        report_memory(r, results["memory"])
    if "messages" in results:
        report_throughput(r, results["messages"]["throughput"])
        report_latency(r, results["messages"]["rtt_ms"])
    if "mdns" in results:
        report_mdns(r, results["mdns"])
    if "stall" in results:
        report_stall(r, results["stall"])
    report_failure(r, results.get("failure", {}))
    return r


# ---------------------------------------------------------------------------- main


async def run_messages(quick: bool, profile_receiver: bool) -> dict[str, Any]:
    say("messages between two processes ...")
    results = await measure_messages(
        count=5_000 if quick else 20_000,
        seconds=5.0 if quick else 10.0,
        round_trips=300 if quick else 2_000,
        profile=False,
    )
    if profile_receiver:
        say("profiling the receiver (cProfile, slower) ...")
        profiled = await measure_messages(count=5_000, seconds=10.0, round_trips=10, profile=True)
        results["receiver_profile"] = {
            "msg_per_s_under_cprofile": profiled["throughput"]["msg_per_s"],
            "stats": profiled.get("receiver_profile", ""),
        }
    return results


async def run_failures(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    timings = ("local",) if quick else ("local", "lan")
    nodes = 3 if quick else 4
    for timing in timings:
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            say(f"failure detection: {sig.name}, timing {timing}, {nodes} nodes ...")
            results[f"{timing}/{sig.name}"] = await measure_failure(timing, sig, nodes)
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    results: dict[str, Any] = {}
    only = set(args.only)
    if "import" in only:
        say("import time ...")
        results["import"] = measure_import(3 if quick else 7)
    if "memory" in only:
        say("idle memory ...")
        results["memory"] = await measure_memory(1.0 if quick else 3.0)
    if "messages" in only:
        messages = await run_messages(quick, args.profile_receiver)
        if "receiver_profile" in messages:
            results["receiver_profile"] = messages.pop("receiver_profile")
        results["messages"] = messages
    if "mdns" in only:
        say("mDNS discovery of 3 processes ...")
        results["mdns"] = await measure_mdns_discovery(1 if quick else 3)
    if "stall" in only:
        say("event-loop stall while discovery starts ...")
        results["stall"] = await measure_stall(2 if quick else 5)
    if "failure" in only:
        results["failure"] = await run_failures(quick)
    return results


def parse_arguments() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller counts")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        type=lambda text: [s for s in text.split(",") if s],
        help=f"comma-separated sections (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--profile-receiver",
        action="store_true",
        help="also run the message load once under cProfile in the receiver, print its top",
    )
    parser.add_argument("--json", metavar="PATH", help="write the raw results here")
    parser.add_argument("--worker", choices=["echo"], help=argparse.SUPPRESS)
    parser.add_argument("--mesh", help=argparse.SUPPRESS)
    parser.add_argument("--profile-path", help=argparse.SUPPRESS)
    return parser, parser.parse_args()


def print_header(quick: bool, seconds: float, machine: dict[str, Any]) -> None:
    print(
        f"meshedge runtime benchmark{' (--quick)' if quick else ''}: "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"{seconds:.0f} s; all on 127.0.0.1"
    )
    print(
        f"load average (1 min) {machine['load_before']:.2f} before, "
        f"{machine['load_after']:.2f} after; CPU pressure "
        f"(PSI some avg10) {machine['cpu_pressure_before']} before, "
        f"{machine['cpu_pressure_after']} after. Load above "
        f"{os.cpu_count()} or pressure well above 0% means other processes share the CPUs: "
        "two-process figures then drop, the CPU-per-message figures much less"
    )
    print(
        "py-libp2p figures: docs/reference-figures.md (py-libp2p 0.8.1, measured on "
        "2026-11-26 on a 2-core machine), not re-measured by this script\n"
    )


def print_details(results: dict[str, Any]) -> None:
    if "import" in results:
        print("\nslowest imports under `import meshedge.runtime` (-X importtime, cumulative):")
        for row in results["import"]["importtime_top"]:
            print(f"  {row['cumulative_ms']:7.1f} ms  {row['module']}")
    if "receiver_profile" in results:
        profile = results["receiver_profile"]
        print(
            f"\nreceiver under cProfile ({profile['msg_per_s_under_cprofile']:,.0f} msg/s "
            "with the profiler on), top functions by own CPU time:"
        )
        print(profile["stats"])


def main() -> None:
    parser, args = parse_arguments()
    if args.worker == "echo":
        trio.run(echo_worker, args.mesh, args.profile_path)
        return
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    load_before, pressure_before = os.getloadavg()[0], cpu_pressure()
    results = trio.run(run, args)
    results["machine"] = {
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "cpu_pressure_before": pressure_before,
        "cpu_pressure_after": cpu_pressure(),
    }
    print_header(args.quick, time.perf_counter() - started, results["machine"])
    report_all(results).print()
    print_details(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
