"""What one received direct message costs a node, in instructions (deterministic).

Feeds N signed direct-message frames to a node core driven by ``meshedge.testing``
(``CoreMesh.inject_frame``: decoding, verification, replay window, routing, the
``MessageReceived`` event), and hands each message to a subscriber through the
runtime's ``Subscriptions``, as ``Pump.on_frame`` does; in one process, with no network
and no private call. Wall-clock figures on a shared or virtual machine vary by 10-20 %
from run to run; instruction counts do not.

    .venv/bin/python benchmarks/receive_path.py              # CPU time per message
    .venv/bin/python benchmarks/receive_path.py --callgrind  # instructions per message

Until the core could be driven from outside, this fed ``Node._on_frame`` of a running
node. The figure now leaves out what the pump does around the core for each frame
(reading trio's clock, re-arming its timer, the task runner's room check, the extra
await) and includes ``CoreMesh``'s bookkeeping instead: measured in one sitting, about
18,000 instructions (2 %) fewer per message than the old way, all outside the Ed25519
check. Compare figures from before and after this change with that in mind.

``--callgrind`` runs this script under ``valgrind --tool=callgrind`` twice (with 0 and N
frames; the difference is the receive path alone, start-up and signing excluded) and
prints instructions per message and the share spent in libsodium's Ed25519 check.
Needs valgrind (Debian package ``valgrind``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from meshedge import Identity, MessageReceived, NodeConfig, Timing
from meshedge.runtime._subscriptions import Subscriptions
from meshedge.testing import CoreMesh
from meshedge.wire import MessageType, Signer, seal_frame

MESH = "receive-path"
#: Where the frames come from (a peer the core has never heard of, as before).
SOURCE = ("127.0.0.1", 1)


def make_frames(count: int) -> list[bytes]:
    signer = Signer(Identity.generate(), mesh=MESH)  # numbers the messages 0, 1, 2, ...
    body = {1: "load", 2: b"x" * 100}  # the throughput benchmark's 100-byte payload
    return [seal_frame(signer.sign(body, type=MessageType.MESSAGE)) for _ in range(count)]


async def feed_frame(mesh: CoreMesh, subscriptions: Subscriptions, data: bytes) -> None:
    """Hand one frame to the core, then its direct message to the subscribers.

    What the runtime's ``Pump.on_frame`` does with a frame a TCP connection read.
    """
    mesh.inject_frame(0, data, SOURCE)
    events = mesh.events[0]
    for event in events:
        if isinstance(event, MessageReceived):
            await subscriptions.deliver_direct(event.sender, event.topic, event.payload)
    events.clear()  # the mesh keeps every event; the node hands them on and forgets
    mesh.log.clear()


async def receive_all(frames: list[bytes]) -> float:
    """Feed every frame to a core; return the CPU seconds it took until all arrived."""
    mesh = CoreMesh(1, mesh=MESH, timing=Timing.local())
    subscriptions = Subscriptions(NodeConfig(mesh=MESH).subscriber_buffer)
    async with subscriptions.subscribe("load") as messages:
        received = 0

        async def consume() -> None:
            nonlocal received
            while received < len(frames):
                await messages.receive()
                received += 1

        started = time.process_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for data in frames:
                await feed_frame(mesh, subscriptions, data)
                await trio.lowlevel.checkpoint()
        return time.process_time() - started


def callgrind_run(directory: str, frames_file: Path, count: int) -> tuple[int, Path]:
    """Run this script on ``count`` frames under callgrind; instructions and the dump."""
    out = Path(directory, f"callgrind.{count}")
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--from-file",
            str(frames_file),
            "--count",
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(re.findall(r"Collected : (\d+)", run.stderr)[-1]), out


def verify_instructions(dump: Path) -> int:
    """Inclusive instructions of libsodium's Ed25519 check in a callgrind dump (0: none)."""
    annotate = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in annotate.splitlines():
        if line.rstrip().endswith("]") and "_cffi_f_crypto_sign_open" in line:
            return int(line.split()[0].replace(",", ""))
    return 0


def callgrind(count: int) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as directory:
        frames_file = Path(directory, "frames.pickle")
        frames_file.write_bytes(pickle.dumps(make_frames(count)))
        baseline, _ = callgrind_run(directory, frames_file, 0)
        total, dump = callgrind_run(directory, frames_file, count)
        verify = verify_instructions(dump)
    per_message = (total - baseline) / count
    print(f"receive path: {per_message:,.0f} instructions per message (N={count})")
    if verify:
        share = verify / count / per_message
        print(f"  Ed25519 check (libsodium crypto_sign_open): {verify / count:,.0f} ({share:.0%})")
        print(
            f"  everything else (decode, schema, replay, routing, trio): "
            f"{per_message - verify / count:,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="frames (default 2000)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--from-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args.count)
        return
    if args.from_file:
        frames = pickle.loads(Path(args.from_file).read_bytes())[: args.count]
    else:
        frames = make_frames(args.count)
    seconds = trio.run(receive_all, frames)
    if not args.from_file:
        print(
            f"receive path: {1e6 * seconds / max(1, len(frames)):.0f} us of CPU per message "
            f"(N={len(frames)}, pid {os.getpid()}); wall-clock figures vary with the machine"
        )


if __name__ == "__main__":
    main()
