"""``meshedge run``: one node until Ctrl-C (or SIGTERM), printing membership changes."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

import trio

from .._errors import LocalProtocolError
from .._identity import Identity
from ..core._events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MembershipEvent,
    MemberSuspected,
    MemberUpdated,
)
from ..core._timing import Timing
from ..runtime._config import NodeConfig, format_address
from ..runtime._node import Node, open_node
from ..runtime._tasks import TaskRegistry
from ..wire._keyring import Keyring
from ._logging import LOG_LEVELS, command_logging
from ._signals import STOP_SIGNALS, StopSignals

__all__ = ["add_run_arguments", "event_record", "json_records", "run_command"]

_EVENT_NAMES: dict[type[MemberEvent], str] = {
    MemberJoined: "joined",
    MemberUpdated: "updated",
    MemberSuspected: "suspected",
    MemberFailed: "failed",
    MemberLeft: "left",
    MemberRecovered: "recovered",
}
_TIMINGS = {"lan": Timing.lan, "wan": Timing.wan, "local": Timing.local}


async def json_records(stream: trio.abc.ReceiveStream) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects a ``meshedge run --json`` process prints, as they arrive.

    One object per line; lines that are not a JSON object are skipped. For programs
    (the demo, benchmarks) that watch node processes through their standard output.
    """
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``meshedge run``."""
    parser.add_argument("--mesh", default="meshedge", help="mesh name (default: meshedge)")
    parser.add_argument("--bind", default="0.0.0.0:7946", help="host:port (default 0.0.0.0:7946)")
    parser.add_argument("--advertise", help="host:port other nodes should use")
    parser.add_argument(
        "--join", action="append", default=[], metavar="HOST:PORT", help="seed node (repeatable)"
    )
    parser.add_argument(
        "--mdns",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="find peers with mDNS (default: on)",
    )
    parser.add_argument(
        "--interface",
        action="append",
        default=None,
        metavar="IP",
        help="run mDNS on this local IP only (repeatable; default: all interfaces)",
    )
    parser.add_argument(
        "--tag", action="append", default=[], metavar="K=V", help="member tag (repeatable)"
    )
    parser.add_argument("--identity", metavar="PATH", help="identity file (created if missing)")
    parser.add_argument("--key-file", metavar="PATH", help="mesh key file: encrypt all traffic")
    parser.add_argument(
        "--timing", choices=sorted(_TIMINGS), default="lan", help="protocol timing preset"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--log-level",
        choices=list(LOG_LEVELS),
        default="warning",
        help="log to stderr from this level on; with --json warnings are records too"
        " (default: warning)",
    )
    parser.add_argument(
        "--tasks",
        metavar="MODULE:NAME",
        help="run tasks for the mesh: a TaskRegistry importable as MODULE:NAME",
    )
    parser.add_argument(
        "--slots", type=int, default=2, help="tasks this node runs at once (default 2)"
    )


def _parse_tags(items: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LocalProtocolError(f"--tag takes KEY=VALUE, not {item!r}")
        tags[key] = value
    return tags


def event_record(event: MembershipEvent) -> dict[str, Any]:
    """A JSON-ready description of a membership event."""
    assert isinstance(event, MemberEvent)
    member = event.member
    return {
        "event": _EVENT_NAMES.get(type(event), type(event).__name__),
        "id": str(member.id),
        "address": format_address(member.address),
        "state": member.state.name.lower(),
        "incarnation": member.incarnation,
        "tags": dict(member.tags),
        "time": round(time.time(), 3),
    }


def _emit(out: TextIO, as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record, sort_keys=True) if as_json else text, file=out, flush=True)


async def _run(
    config: NodeConfig,
    identity: Identity,
    as_json: bool,
    out: TextIO,
    tasks: TaskRegistry | None = None,
    early: StopSignals | None = None,
) -> None:
    # The receiver spans the node's whole life, shutdown included: the first signal
    # starts the graceful stop; later ones wait in it and are re-delivered, harmlessly,
    # to the StopSignals handlers when it closes. The stop itself is shielded and
    # bounded by leave_timeout, so a second signal cannot and need not hurry it.
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        if early is not None and early.seen:
            return  # stopped before the receiver opened: no node to start or leave
        async with open_node(config, identity=identity, tasks=tasks) as node:
            _emit(
                out,
                as_json,
                {
                    "event": "started",
                    "id": str(node.id),
                    "address": format_address(node.address),
                    "mesh": config.mesh,
                    "time": round(time.time(), 3),
                },
                f"node {node.id} on {format_address(node.address)}, mesh {config.mesh!r}"
                " (Ctrl-C to leave)",
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_print_events, node, as_json, out)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
        _emit(
            out,
            as_json,
            {"event": "stopped", "time": round(time.time(), 3)},
            "left the mesh",
        )


async def _print_events(node: Node, as_json: bool, out: TextIO) -> None:
    async for event in node.events():
        if not isinstance(event, MemberEvent):
            continue
        record = event_record(event)
        member = event.member
        tags = " ".join(f"{k}={v}" for k, v in sorted(member.tags.items()))
        _emit(
            out,
            as_json,
            record,
            f"{time.strftime('%H:%M:%S')} {record['event']:<9} {member.id.short} "
            f"{record['address']} inc={member.incarnation}{' ' + tags if tags else ''}",
        )


def load_registry(spec: str) -> TaskRegistry:
    """Import ``module:name`` and return the TaskRegistry it names.

    Raises:
        LocalProtocolError: malformed, not importable, or not a TaskRegistry.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise LocalProtocolError(f"--tasks takes MODULE:NAME, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LocalProtocolError(f"--tasks: cannot import {module_name!r}: {exc}") from None
    registry = getattr(module, attribute, None)
    if not isinstance(registry, TaskRegistry):
        raise LocalProtocolError(f"--tasks: {spec} is not a meshedge TaskRegistry")
    return registry


def run_command(args: argparse.Namespace) -> int:
    """Run ``meshedge run`` with parsed arguments; returns the exit code."""
    from . import EXIT_ADDRESS_IN_USE, EXIT_FAILURE, EXIT_OK

    identity = Identity.load_or_create(args.identity) if args.identity else Identity.generate()
    keyring = Keyring.load(args.key_file) if args.key_file else None
    config = NodeConfig(
        mesh=args.mesh,
        bind=args.bind,
        advertise=args.advertise,
        seeds=tuple(args.join),
        mdns=args.mdns,
        mdns_interfaces=tuple(args.interface) if args.interface else None,
        tags=_parse_tags(args.tag),
        keyring=keyring,
        timing=_TIMINGS[args.timing](),
        task_slots=args.slots,
    )
    tasks = load_registry(args.tasks) if args.tasks else None
    early = StopSignals()
    early.install()  # before trio.run, so trio installs no KeyboardInterrupt handler
    try:
        with command_logging(args.log_level, args.json, sys.stdout, sys.stderr):
            trio.run(_run, config, identity, args.json, sys.stdout, tasks, early)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"meshedge: {args.bind} is already in use", file=sys.stderr)
            return EXIT_ADDRESS_IN_USE
        print(f"meshedge: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        early.ignore()
    return EXIT_OK
