"""The library's log (issue 10): a seed that never answers is reported, not silent.

Real sockets on 127.0.0.1 only. The closed port is one a socket was bound to and closed
at once, so a connection to it is refused. The runtime tests run on the autojump clock
(trio's clock drives the seed back-off and the rate limit); the CLI tests run real
``meshedge run`` processes, killed by PID whatever happens.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing
from cli_nodes import REPO_ROOT
from runtime_helpers import make_config, unique_mesh

from meshedge.cli._logging import JsonWarnings, command_logging
from meshedge.runtime._log import DropLog, Unreachable
from meshedge.runtime._node import open_node

CLI_TIMEOUT = 30.0


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Records(logging.Handler):
    """Keeps the records of the ``meshedge`` logger and wakes whoever waits on them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def matching(self, level: int, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == level and text in r.getMessage()]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, re-checked after each record."""
        while not condition():
            self._changed = trio.Event()
            await self._changed.wait()


@contextmanager
def meshedge_records(level: int = logging.DEBUG) -> Iterator[Records]:
    logger = logging.getLogger("meshedge")
    handler, saved = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


async def test_an_unreachable_seed_is_warned_about_once_while_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seed = f"127.0.0.1:{closed_port()}"
    with meshedge_records() as log:
        async with open_node(make_config(unique_mesh(), seeds=(seed,))) as node:
            started = log.matching(logging.INFO, "started on")
            assert len(started) == 1 and str(node.id) in started[0].getMessage()
            with trio.fail_after(10):
                await log.wait_for(lambda: bool(log.matching(logging.WARNING, seed)))
            warning = log.matching(logging.WARNING, seed)[0]
            assert warning.name == "meshedge.runtime" and warning.__dict__["peer"] == seed
            assert "seed" in warning.getMessage()
            # The seed is retried with back-off (up to 6 s with Timing.local): two
            # virtual minutes are many retries, and still a single warning.
            await trio.sleep(120)
            assert node.statistics()["frames_unsent"] >= 10
            assert len(log.matching(logging.WARNING, seed)) == 1
    assert len(log.matching(logging.INFO, "stopped")) == 1


async def test_the_warning_repeats_after_the_interval_with_the_failures_between(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with meshedge_records() as log:
        unreachable = Unreachable(interval=60.0)
        address, error = ("127.0.0.1", 9), OSError("refused")
        for _ in range(4):
            unreachable.failed(address, error, seed=False, state=lambda: None)
            await trio.sleep(20)
        warnings = log.matching(logging.WARNING, "127.0.0.1:9")
        assert len(warnings) == 2
        assert "3 more failures" in warnings[1].getMessage()
        assert warnings[0].getMessage().startswith("cannot reach peer 127.0.0.1:9")


async def test_a_member_seen_dead_is_only_debug(autojump_clock: trio.testing.MockClock) -> None:
    from meshedge.core._member import MemberState

    with meshedge_records() as log:
        Unreachable().failed(
            ("127.0.0.1", 9), OSError("refused"), seed=True, state=lambda: MemberState.DEAD
        )
    assert [r.levelno for r in log.records] == [logging.DEBUG]


async def test_nothing_is_formatted_when_the_level_is_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def state() -> None:
        raise AssertionError("the member table is read only when the record may be emitted")

    with meshedge_records(logging.ERROR) as log:
        Unreachable().failed(("127.0.0.1", 9), OSError("refused"), seed=False, state=state)
    assert log.records == []


def test_json_warnings_are_records_and_the_handlers_are_removed_after() -> None:
    out, err = _Buffer(), _Buffer()
    logger = logging.getLogger("meshedge.runtime")
    with command_logging("warning", True, out, err):  # type: ignore[arg-type]
        logger.info("not shown")
        logger.warning("cannot reach %s", "x", extra={"peer": "127.0.0.1:9"})
    logger.warning("after the command")
    [record] = [json.loads(line) for line in out.text.splitlines()]
    assert record["event"] == "warning" and record["peer"] == "127.0.0.1:9"
    assert record["message"] == "cannot reach x"
    assert err.text.count("\n") == 1 and "WARNING meshedge.runtime: cannot reach x" in err.text
    assert not any(isinstance(h, JsonWarnings) for h in logging.getLogger("meshedge").handlers)


class _Buffer:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------------- the command


async def _run_until(extra: list[str], stream: str, wanted: str) -> str:
    """Run ``meshedge run --join <closed>`` until ``wanted`` is on ``stream``; its output."""
    seed = f"127.0.0.1:{closed_port()}"
    command = [
        sys.executable, "-m", "meshedge", "run",
        "--mesh", unique_mesh(),
        "--bind", "127.0.0.1:0",
        "--join", seed,
        "--timing", "local",
        "--no-mdns",
        *extra,
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        cwd=str(REPO_ROOT),
    )
    output = {"stdout": bytearray(), "stderr": bytearray()}
    try:
        source = process.stdout if stream == "stdout" else process.stderr
        assert source is not None
        with trio.fail_after(CLI_TIMEOUT):
            async for chunk in source:
                output[stream] += chunk
                text = output[stream].decode()
                if wanted.format(seed=seed) in text:
                    return text
        pytest.fail(f"the process ended without {wanted!r}: {output}")
    finally:
        with trio.CancelScope(shield=True):
            process.kill()  # by PID: the process this test started
            await process.wait()


async def test_the_command_warns_on_stderr_that_the_seed_cannot_be_reached() -> None:
    text = await _run_until([], "stderr", "WARNING meshedge.runtime: cannot reach seed {seed}")
    warnings = [line for line in text.splitlines() if "WARNING" in line]
    assert len(warnings) == 1


async def test_the_command_prints_a_warning_record_with_json() -> None:
    text = await _run_until(["--json"], "stdout", '"event": "warning"')
    records = [json.loads(line) for line in text.splitlines() if line]
    assert records[0]["event"] == "started"  # the existing records are unchanged
    [warning] = [r for r in records if r["event"] == "warning"]
    assert warning["peer"].startswith("127.0.0.1:") and "cannot reach seed" in warning["message"]


async def test_the_log_level_flag_shows_the_start_at_info() -> None:
    text = await _run_until(["--log-level", "info"], "stderr", "started on")
    assert "INFO meshedge.runtime: node " in text


def test_drops_are_aggregated_at_debug_and_not_read_when_debug_is_off() -> None:
    counts = {"malformed": 2, "bad_signature": 0}
    drop_log = DropLog()
    with meshedge_records(logging.INFO) as log:
        drop_log.report(lambda: pytest.fail("statistics read with DEBUG off"))
    with meshedge_records() as log:
        drop_log.report(lambda: {"drops": dict(counts)})
        drop_log.report(lambda: {"drops": dict(counts)})  # nothing new: no line
        counts.update(malformed=3, bad_signature=4)
        drop_log.report(lambda: {"drops": dict(counts)})
    assert [r.getMessage() for r in log.records] == [
        "dropped peer input: malformed=2",
        "dropped peer input: bad_signature=4 malformed=1",
    ]
