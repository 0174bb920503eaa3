"""What one received direct message costs a node, in instructions (deterministic).

Feeds N signed direct-message frames through a running node's receive path (the entry
a TCP connection calls, isolated in ``feed_frame``: verification, replay window,
routing, delivery to a subscriber), in one process, with no network. Wall-clock figures
on a shared or virtual machine vary by 10-20 % from run to run; instruction counts do
not.

    .venv/bin/python benchmarks/receive_path.py              # CPU time per message
    .venv/bin/python benchmarks/receive_path.py --callgrind  # instructions per message

``--callgrind`` runs this script under ``valgrind --tool=callgrind`` twice (with 0 and N
frames; the difference is the receive path alone, start-up and signing excluded) and
prints instructions per message and the share spent in libsodium's Ed25519 check.
Needs valgrind (Debian package ``valgrind``). Everything stays in this process; the node
binds 127.0.0.1.
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
from typing import Any

import trio

from meshedge import Identity
from meshedge.runtime import NodeConfig, Timing, open_node
from meshedge.wire import MessageType, Signer, seal_frame

MESH = "receive-path"


def make_frames(count: int) -> list[bytes]:
    signer = Signer(Identity.generate(), mesh=MESH)  # numbers the messages 0, 1, 2, ...
    body = {1: "load", 2: b"x" * 100}  # the throughput benchmark's 100-byte payload
    return [seal_frame(signer.sign(body, type=MessageType.MESSAGE)) for _ in range(count)]


async def feed_frame(node: Any, data: bytes) -> None:
    """Hand one frame to ``node``'s receive path, as a TCP connection would.

    The only private access left in the benchmarks (``Node._on_frame``): there is no
    public way yet to inject a frame into a running node without a socket. It will
    drive the protocol core through ``meshedge.testing`` (``CoreMesh``) instead, once
    that module exists.
    """
    await node._on_frame(data, ("127.0.0.1", 1))


async def receive_all(frames: list[bytes]) -> float:
    """Feed every frame to a node; return the CPU seconds it took until all arrived."""
    config = NodeConfig(mesh=MESH, bind="127.0.0.1:0", timing=Timing.local())
    async with open_node(config) as node, node.subscribe("load") as messages:
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
                await feed_frame(node, data)
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
