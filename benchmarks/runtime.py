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

py-libp2p's figures are quoted from ``shared/bench/libp2p/FINDINGS.md`` (py-libp2p 0.8.1,
measured on the same day on this machine: 2 cores, Python 3.11), not re-measured here.

Everything binds to 127.0.0.1; mDNS runs on 127.0.0.1 only, its sockets pinned to the
loopback device (docs/discovery.md), so no packet leaves this host's loopback. Every
loop is bounded in count and time; every process started here is stopped by its PID.
Run it from the repository root:

    .venv/bin/python benchmarks/runtime.py [--quick] [--only messages,memory,...]
        [--profile-receiver] [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable

SECTIONS = ("import", "memory", "messages", "mdns", "stall", "failure")

#: How many bytes of application payload each throughput message carries.
PAYLOAD_SIZE = 100
#: Seconds any one wait may take before the benchmark gives up on it.
WAIT_LIMIT = 60.0


# ---------------------------------------------------------------------------- helpers


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_pressure() -> str:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "n/a"
    fields = dict(item.split("=") for item in line.split()[1:])
    return f"{float(fields['avg10']):.0f}%"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class NodeProcess:
    """A ``meshedge run --json`` process and the records it printed, as they arrive."""

    name: str
    process: trio.Process
    launched: float
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    node_id: str = ""
    address: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self) -> None:
        from meshedge.cli.run import json_records

        assert self.process.stdout is not None
        async for record in json_records(self.process.stdout):
            if record.get("event") == "started":
                self.node_id, self.address = record["id"], record["address"]
            self.records.append((trio.current_time(), record))
            self.changed.set()
            self.changed = trio.Event()

    def view(self) -> dict[str, str]:
        """Node id -> last reported event, for the other members."""
        seen: dict[str, str] = {}
        for _, record in self.records:
            if "id" in record and record.get("event") != "started":
                seen[record["id"]] = record["event"]
        return seen

    def alive_peers(self) -> set[str]:
        alive = {"joined", "updated", "recovered"}
        return {node_id for node_id, event in self.view().items() if event in alive}

    def first(self, event: str, node_id: str) -> dict[str, Any] | None:
        for _, record in self.records:
            if record.get("event") == event and record.get("id") == node_id:
                return record
        return None


@contextlib.asynccontextmanager
async def node_processes() -> AsyncIterator[Callable[..., Any]]:
    """Start ``meshedge run`` processes; on exit SIGTERM them all, SIGKILL stragglers."""
    started: list[NodeProcess] = []
    async with trio.open_nursery() as nursery:

        async def launch(name: str, *flags: str) -> NodeProcess:
            command = [PYTHON, "-m", "meshedge", "run", "--json", *flags]
            launched = trio.current_time()
            process = await trio.lowlevel.open_process(
                command,
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
            proc = NodeProcess(name, process, launched)
            started.append(proc)
            nursery.start_soon(proc.read)
            return proc

        try:
            yield launch
        finally:
            with trio.CancelScope(shield=True):
                await stop_processes([p.process for p in started])
            nursery.cancel_scope.cancel()


async def stop_processes(processes: Sequence[trio.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)  # a stopped one cannot handle SIGTERM
                process.send_signal(signal.SIGTERM)
    with trio.move_on_after(10):
        for process in processes:
            await process.wait()
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until(condition: Callable[[], bool], procs: Sequence[NodeProcess]) -> None:
    """Wait (bounded by ``WAIT_LIMIT``) until ``condition()`` holds after some output."""
    with trio.fail_after(WAIT_LIMIT):
        while not condition():
            with trio.move_on_after(0.05):
                # Wake on any process's output; poll as well, since events are replaced.
                events = [p.changed for p in procs]
                async with trio.open_nursery() as nursery:
                    for event in events:

                        async def wait_one(event: trio.Event = event) -> None:
                            await event.wait()
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(wait_one)


async def wait_started(procs: Sequence[NodeProcess]) -> None:
    await wait_until(lambda: all(p.node_id for p in procs), procs)


async def wait_alive(node: Any, peer: Any) -> None:
    """Wait (bounded) until ``node`` sees the member ``peer`` alive."""
    from meshedge.runtime import MemberState

    def alive() -> bool:
        member = node.member(peer)
        return member is not None and member.state == MemberState.ALIVE

    with trio.fail_after(WAIT_LIMIT):
        if alive():
            return
        async for _ in node.events():
            if alive():
                return


# ---------------------------------------------------------------------------- import


def measure_import(runs: int) -> dict[str, Any]:
    """Median wall time of an import in a fresh interpreter (perf_counter around it)."""
    results: dict[str, Any] = {}
    targets = {
        "import meshedge": "import meshedge",
        "import meshedge.runtime": "import meshedge.runtime",
        "import meshedge.runtime + discovery": "import meshedge.runtime.discovery",
    }
    for label, statement in targets.items():
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        samples = []
        for _ in range(runs):
            out = subprocess.run(
                [PYTHON, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
            )
            samples.append(float(out.stdout) * 1000)
        results[label] = {"median_ms": statistics.median(samples), "samples_ms": samples}
    # What dominates `import meshedge.runtime`, from -X importtime (cumulative us).
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
    results["importtime_top"] = [
        {"cumulative_ms": round(us / 1000, 1), "module": name} for us, name in rows[:12]
    ]
    return results


# ---------------------------------------------------------------------------- memory


async def measure_memory(settle: float) -> dict[str, Any]:
    """VmRSS of an idle ``meshedge run`` (without, then with mDNS on 127.0.0.1)."""
    results: dict[str, Any] = {}
    variants = {
        "no mdns": ["--no-mdns"],
        "mdns on 127.0.0.1": ["--mdns", "--interface", "127.0.0.1"],
    }
    async with node_processes() as launch:
        for label, flags in variants.items():
            mesh = f"bench-{uuid.uuid4().hex[:8]}"
            proc = await launch(
                label, "--mesh", mesh, "--bind", "127.0.0.1:0", "--timing", "local", *flags
            )
            await wait_started([proc])
            startup = proc.records[0][0] - proc.launched
            await trio.sleep(settle)
            results[label] = {"rss_mib": rss_mib(proc.pid), "startup_s": startup}
            await stop_processes([proc.process])
    return results


# ---------------------------------------------------------------------------- messages


async def echo_worker(mesh: str, profile_path: str | None) -> None:
    """The far node of the message benchmark: echoes "ping", counts "load"."""
    from meshedge.runtime import NodeConfig, Timing, format_address, open_node

    config = NodeConfig(mesh=mesh, bind="127.0.0.1:0", timing=Timing.local())
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_node(config) as node, trio.open_nursery() as nursery:

            async def echo() -> None:
                async with node.subscribe("ping") as pings:
                    async for message in pings:
                        await node.send(message.sender, "pong", message.payload)

            async def sink() -> None:
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
                        stats = node.statistics()
                        report = {
                            "received": received,
                            "wall_s": time.perf_counter() - first_wall,
                            "cpu_s": time.process_time() - first_cpu,
                            "messages_received": stats["messages_received"],
                            "frames_received": stats["frames_received"],
                            "drops": {k: v for k, v in stats["drops"].items() if v},
                            "no_subscriber": stats["no_subscriber"],
                        }
                        await node.send(message.sender, "done", report)

            nursery.start_soon(echo)
            nursery.start_soon(sink)
            print(
                json.dumps({"id": str(node.id), "address": format_address(node.address)}),
                flush=True,
            )
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


async def measure_messages(
    count: int, seconds: float, round_trips: int, profile: bool
) -> dict[str, Any]:
    from meshedge import NodeId
    from meshedge.runtime import NodeConfig, Timing, open_node

    mesh = f"bench-{uuid.uuid4().hex[:8]}"
    profile_path = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"meshedge-{mesh}.prof")
    command = [PYTHON, __file__, "--worker", "echo", "--mesh", mesh]
    if profile:
        command += ["--profile-path", profile_path]
    results: dict[str, Any] = {}
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(WAIT_LIMIT):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError("the echo worker exited")
                line += chunk
        hello = json.loads(line)
        peer = NodeId.parse(hello["id"])
        config = NodeConfig(
            mesh=mesh, bind="127.0.0.1:0", timing=Timing.local(), seeds=(hello["address"],)
        )
        async with open_node(config) as node:
            await wait_alive(node, peer)
            async with node.subscribe("pong") as pongs, node.subscribe("done") as dones:
                # 1. latency: one message at a time, request and echo.
                rtts = []
                for i in range(round_trips + 100):
                    started = time.perf_counter_ns()
                    await node.send(peer, "ping", i)
                    with trio.fail_after(10):
                        reply = await pongs.receive()
                    if i >= 100:  # the first ones warm up connections and caches
                        rtts.append((time.perf_counter_ns() - started) / 1e6)
                    assert reply.payload == i
                results["rtt_ms"] = {
                    "median": statistics.median(rtts),
                    "p99": percentile(rtts, 0.99),
                    "count": len(rtts),
                }
                # 2. throughput: as fast as Node.send goes (it waits on TCP backpressure).
                payload = bytes(range(PAYLOAD_SIZE))
                sent = 0
                started_s = time.perf_counter()
                cpu = time.process_time()
                deadline = started_s + seconds
                blocked = 0.0  # time in sends that waited (> 1 ms): the receiver lagged
                while sent < count and (sent % 256 or time.perf_counter() < deadline):
                    before = time.perf_counter()
                    await node.send(peer, "load", payload)
                    took = time.perf_counter() - before
                    if took > 0.001:
                        blocked += took
                    sent += 1
                await node.send(peer, "load", {"end": sent})
                sender_cpu = time.process_time() - cpu
                with trio.fail_after(WAIT_LIMIT):
                    done = (await dones.receive()).payload
                elapsed = time.perf_counter() - started_s
                results["throughput"] = {
                    "sent": sent,
                    "received": done["received"],
                    "seconds": elapsed,
                    "msg_per_s": done["received"] / elapsed,
                    "sender_cpu_us_per_msg": 1e6 * sender_cpu / sent,
                    "receiver_cpu_us_per_msg": 1e6 * done["cpu_s"] / max(1, done["received"]),
                    "receiver_busy": done["cpu_s"] / max(1e-9, done["wall_s"]),
                    "sender_blocked_s": blocked,
                    "receiver_stats": {
                        k: v for k, v in done.items() if k not in ("cpu_s", "wall_s")
                    },
                }
            stats = node.statistics()
            results["sender_drops"] = {k: v for k, v in stats["drops"].items() if v}
    finally:
        await stop_processes([process])
    if profile:
        results["receiver_profile"] = await trio.to_thread.run_sync(read_profile, profile_path)
    return results


def read_profile(path: str) -> str:
    """The top of a cProfile dump, by own time; the dump is deleted."""
    if not Path(path).exists():
        return "(no profile written)"
    text = io.StringIO()
    pstats.Stats(path, stream=text).sort_stats("tottime").print_stats(25)
    Path(path).unlink()
    return text.getvalue()


# ---------------------------------------------------------------------------- mDNS


def all_listed(procs: Sequence[NodeProcess], done: dict[str, float], launched: float) -> bool:
    """Record when each process first lists every other one alive; True once all do."""
    for p in procs:
        if p.name not in done and len(p.alive_peers()) == len(procs) - 1:
            done[p.name] = trio.current_time() - launched
    return len(done) == len(procs)


async def measure_mdns_discovery(rounds: int, nodes: int = 3) -> dict[str, Any]:
    """From launching ``nodes`` processes at once until each lists all of them alive."""
    samples: list[list[float]] = []
    started: list[float] = []
    for _ in range(rounds):
        mesh = f"bench-{uuid.uuid4().hex[:8]}"
        async with node_processes() as launch:
            launched = trio.current_time()
            flags = ["--mesh", mesh, "--bind", "127.0.0.1:0", "--timing", "local"]
            flags += ["--mdns", "--interface", "127.0.0.1"]
            procs = [await launch(f"node{i}", *flags) for i in range(nodes)]
            done: dict[str, float] = {}
            await wait_until(partial(all_listed, procs, done, launched), procs)
            samples.append(sorted(done.values()))
            # 'started' is printed once imports are done and mDNS is registered.
            started.append(max(p.records[0][0] for p in procs) - launched)
    every = [max(s) for s in samples]
    return {
        "all_listed_s": {"median": statistics.median(every), "max": max(every)},
        "first_listed_s": {"median": statistics.median(min(s) for s in samples)},
        "all_started_s": {"median": statistics.median(started), "max": max(started)},
        "samples_s": samples,
    }


async def measure_stall(rounds: int) -> dict[str, Any]:
    """Longest gap of a 1 ms ticker while discovery (and a whole node with it) starts."""
    sys.path.insert(0, str(HERE))
    import mdns_stall  # benchmarks/mdns_stall.py: the ticker and an open_mdns round

    from meshedge.runtime import NodeConfig, Timing, open_node

    ticker = mdns_stall.Ticker()
    discovery_rounds = []
    node_rounds = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        for _ in range(rounds):
            discovery_rounds.append(await mdns_stall.one_round(ticker))
        for _ in range(rounds):
            mesh = f"stall-{uuid.uuid4().hex[:8]}"

            def config(mesh: str = mesh) -> NodeConfig:
                return NodeConfig(
                    mesh=mesh,
                    bind="127.0.0.1:0",
                    timing=Timing.local(),
                    mdns=True,
                    mdns_interfaces=("127.0.0.1",),
                )

            result: dict[str, float] = {}
            async with open_node(config()) as other:
                ticker.reset()
                started = trio.current_time()
                async with open_node(config()) as node:
                    result["start_s"] = trio.current_time() - started
                    result["start_gap_ms"] = 1000 * ticker.reset()
                    await wait_alive(node, other.id)
                    result["joined_s"] = trio.current_time() - started
                    result["running_gap_ms"] = 1000 * ticker.reset()
                    stopping = trio.current_time()
                result["stop_s"] = trio.current_time() - stopping
                result["stop_gap_ms"] = 1000 * ticker.reset()
            node_rounds.append(result)
        nursery.cancel_scope.cancel()

    def summary(rows: list[dict[str, float]]) -> dict[str, Any]:
        return {
            key: {
                "median": statistics.median(r[key] for r in rows),
                "max": max(r[key] for r in rows),
            }
            for key in rows[0]
        }

    return {"open_mdns": summary(discovery_rounds), "open_node_mdns": summary(node_rounds)}


# ---------------------------------------------------------------------------- failures


async def measure_failure(timing: str, sig: signal.Signals, nodes: int) -> dict[str, Any]:
    """SIGKILL or SIGSTOP one of ``nodes`` processes; when do the others notice?"""
    mesh = f"bench-{uuid.uuid4().hex[:8]}"
    common = ["--mesh", mesh, "--bind", "127.0.0.1:0", "--no-mdns", "--timing", timing]
    async with node_processes() as launch:
        first = await launch("node0", *common)
        await wait_started([first])
        procs = [first] + [
            await launch(f"node{i}", *common, "--join", first.address) for i in range(1, nodes)
        ]
        await wait_started(procs)
        ids = {p.node_id for p in procs}
        await wait_until(lambda: all(p.alive_peers() == ids - {p.node_id} for p in procs), procs)
        await trio.sleep(1.0)  # a few quiet protocol periods: the mesh is settled
        victim, survivors = procs[-1], procs[:-1]
        signalled_wall = time.time()
        os.kill(victim.pid, sig)

        def failed_everywhere() -> bool:
            return all(p.first("failed", victim.node_id) for p in survivors)

        await wait_until(failed_everywhere, survivors)
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


# ---------------------------------------------------------------------------- report

#: py-libp2p 0.8.1, from shared/bench/libp2p/FINDINGS.md (same day, this machine).
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
        headers = ("metric", "meshedge", "goal", "", "py-libp2p 0.8.1 (FINDINGS.md)")
        widths = [max(len(r[i]) for r in [headers, *self.rows]) for i in range(4)]
        for row in [headers, *self.rows]:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            print("  ".join([*cells, row[4]]).rstrip())


def report_all(results: dict[str, Any]) -> Report:
    r = Report()
    if "import" in results:
        imp = results["import"]
        ms = imp["import meshedge"]["median_ms"]
        r.add("import meshedge (median)", f"{ms:.0f} ms", "<= 250 ms", ms <= 250, LIBP2P["import"])
        for label in ("import meshedge.runtime", "import meshedge.runtime + discovery"):
            r.add(f"  {label}", f"{imp[label]['median_ms']:.0f} ms")
    if "memory" in results:
        mem = results["memory"]
        mib = mem["no mdns"]["rss_mib"]
        r.add("idle `meshedge run` RSS", f"{mib:.1f} MiB", "<= 40 MiB", mib <= 40, LIBP2P["rss"])
        mib2 = mem["mdns on 127.0.0.1"]["rss_mib"]
        r.add("  with mDNS on 127.0.0.1", f"{mib2:.1f} MiB", "<= 40 MiB", mib2 <= 40)
        r.add("  process launch -> 'started'", f"{mem['no mdns']['startup_s']:.2f} s")
    if "messages" in results:
        msg = results["messages"]
        tp = msg["throughput"]
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
        rtt = msg["rtt_ms"]
        one_way = rtt["median"] / 2
        r.add(
            "latency RTT/2 (median)",
            f"{one_way:.2f} ms",
            "<= 1 ms",
            one_way <= 1,
            LIBP2P["latency"],
        )
        r.add("  RTT median / p99", f"{rtt['median']:.2f} / {rtt['p99']:.2f} ms (n={rtt['count']})")
    if "mdns" in results:
        md = results["mdns"]
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
    if "stall" in results:
        st = results["stall"]
        gap = st["open_mdns"]["start_gap_ms"]["max"]
        r.add(
            "loop stall, open_mdns start (worst)",
            f"{gap:.1f} ms",
            "< 50 ms",
            gap < 50,
            LIBP2P["stall"],
        )
        node = st["open_node_mdns"]
        worst = node["start_gap_ms"]["max"]
        r.add("loop stall, open_node(mdns) start", f"{worst:.1f} ms", "< 50 ms", worst < 50)
        running, stop = node["running_gap_ms"]["max"], node["stop_gap_ms"]["max"]
        r.add("  until joined / stop (worst)", f"{running:.1f} / {stop:.1f} ms")
        r.add(
            "  open_node(mdns) entry / joined",
            (f"{node['start_s']['median']:.2f} s / {node['joined_s']['median']:.2f} s"),
        )
    for key, row in results.get("failure", {}).items():
        timing, sig = key.split("/")
        libp2p = LIBP2P["kill" if sig == "SIGKILL" else "stop"]
        suspected = row["first_suspected_s"]
        r.add(
            f"{sig} ({timing}): first suspected",
            "-" if suspected is None else f"{suspected:.2f} s",
            libp2p=libp2p,
        )
        r.add(
            "  failed at first / every survivor",
            f"{row['failed_first_s']:.2f} / {row['failed_every_s']:.2f} s",
        )
        if row["false_alarms"]:
            r.add("  false suspicions of live nodes", str(row["false_alarms"]))
    return r


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
        say("messages between two processes ...")
        results["messages"] = await measure_messages(
            count=5_000 if quick else 20_000,
            seconds=5.0 if quick else 10.0,
            round_trips=300 if quick else 2_000,
            profile=False,
        )
        if args.profile_receiver:
            say("profiling the receiver (cProfile, slower) ...")
            profiled = await measure_messages(
                count=5_000, seconds=10.0, round_trips=10, profile=True
            )
            results["receiver_profile"] = {
                "msg_per_s_under_cprofile": profiled["throughput"]["msg_per_s"],
                "stats": profiled.get("receiver_profile", ""),
            }
    if "mdns" in only:
        say("mDNS discovery of 3 processes ...")
        results["mdns"] = await measure_mdns_discovery(1 if quick else 3)
    if "stall" in only:
        say("event-loop stall while discovery starts ...")
        results["stall"] = await measure_stall(2 if quick else 5)
    if "failure" in only:
        results["failure"] = {}
        timings = ("local",) if quick else ("local", "lan")
        nodes = 3 if quick else 4
        for timing in timings:
            for sig in (signal.SIGKILL, signal.SIGSTOP):
                say(f"failure detection: {sig.name}, timing {timing}, {nodes} nodes ...")
                results["failure"][f"{timing}/{sig.name}"] = await measure_failure(
                    timing, sig, nodes
                )
    return results


def main() -> None:
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
    args = parser.parse_args()
    if args.worker == "echo":
        trio.run(echo_worker, args.mesh, args.profile_path)
        return
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    load_before, pressure_before = os.getloadavg()[0], cpu_pressure()
    results = trio.run(run, args)
    load_after, pressure_after = os.getloadavg()[0], cpu_pressure()
    results["machine"] = {
        "load_before": load_before,
        "load_after": load_after,
        "cpu_pressure_before": pressure_before,
        "cpu_pressure_after": pressure_after,
    }
    print(
        f"meshedge runtime benchmark{' (--quick)' if args.quick else ''}: "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"{time.perf_counter() - started:.0f} s; all on 127.0.0.1"
    )
    print(
        f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after; CPU pressure "
        f"(PSI some avg10) {pressure_before} before, {pressure_after} after. Load above "
        f"{os.cpu_count()} or pressure well above 0% means other processes share the CPUs: "
        "two-process figures then drop, the CPU-per-message figures much less"
    )
    print(
        "py-libp2p figures: shared/bench/libp2p/FINDINGS.md (py-libp2p 0.8.1, measured the "
        "same day on this machine), not re-measured by this script\n"
    )
    report_all(results).print()
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
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
