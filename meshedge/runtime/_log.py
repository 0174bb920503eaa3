"""The runtime's log: the ``meshedge.runtime`` logger and the pump's rate-limited reports.

The library installs no handler but a :class:`logging.NullHandler` on the ``meshedge``
logger: the application decides where records go and at which level (``meshedge run
--log-level``). What is logged: the node's start and stop (INFO), a peer that cannot be
reached (WARNING, once per address per :data:`UNREACHABLE_INTERVAL`), and the peer input
the node dropped, by reason (DEBUG, one aggregated line per housekeeping round).

Nothing here formats a message unless its level is enabled: the calls pass lazy
``%``-arguments, and the drop report reads the counters only when DEBUG is on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import trio

from ..core._member import Address, MemberState
from ._addresses import format_address

__all__ = ["UNREACHABLE_INTERVAL", "DropLog", "Unreachable", "logger"]

logging.getLogger("meshedge").addHandler(logging.NullHandler())
logger: Final = logging.getLogger("meshedge.runtime")

#: Seconds between two warnings about one unreachable address: a dead seed retried
#: with back-off (every ``reconnect_interval`` at most) is reported once, then again
#: only every five minutes while it stays unreachable.
UNREACHABLE_INTERVAL: Final = 300.0
#: Addresses remembered for the rate limit; beyond this the oldest is forgotten (so
#: hostile gossip naming many addresses cannot grow the table).
_MAX_ADDRESSES: Final = 1024


class Unreachable:
    """Warns that a peer cannot be reached: once per address per :data:`UNREACHABLE_INTERVAL`.

    Args:
        interval: seconds between two reports about one address.
    """

    def __init__(self, interval: float = UNREACHABLE_INTERVAL) -> None:
        self._interval = interval
        # address -> (when it was last reported, failures since then not reported)
        self._reported: OrderedDict[Address, tuple[float, int]] = OrderedDict()

    def failed(
        self,
        address: Address,
        error: Exception,
        *,
        seed: bool,
        state: Callable[[], MemberState | None],
    ) -> None:
        """Report one failed write to ``address``, unless it was reported recently.

        Args:
            address: the peer's address.
            error: why it failed (a ``PeerUnavailableError``).
            seed: the address is one of the node's seeds.
            state: the state of the member at that address, if one is known there;
                called only when the failure is reported. A member already seen dead
                or gone is logged at DEBUG only: the failure detector reported it, and
                the reconnect round that tries it is expected to fail.
        """
        now = trio.current_time()
        last = self._reported.get(address)
        if last is not None and now - last[0] < self._interval:
            self._reported[address] = (last[0], last[1] + 1)
            return
        self._reported[address] = (now, 0)
        self._reported.move_to_end(address)
        while len(self._reported) > _MAX_ADDRESSES:
            self._reported.popitem(last=False)
        if not logger.isEnabledFor(logging.WARNING):
            return  # then DEBUG is off too: skip the member table
        known = state()
        expected = known is not None and known >= MemberState.DEAD
        level = logging.DEBUG if expected else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        peer = format_address(address)
        again = f" ({last[1] + 1} more failures since the last report)" if last else ""
        logger.log(
            level,
            "cannot reach %s %s: %s; retrying%s",
            "seed" if seed else "peer",
            peer,
            error,
            again,
            extra={"peer": peer},
        )


class DropLog:
    """Logs, at DEBUG, the peer input dropped since the last report, by reason."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def report(self, statistics: Callable[[], Mapping[str, Any]]) -> None:
        """Log one line of the drops counted since the last report, if any.

        Args:
            statistics: the node's statistics (their ``drops`` map); only called
                when DEBUG is enabled.
        """
        if not logger.isEnabledFor(logging.DEBUG):
            return
        drops: Mapping[str, int] = statistics().get("drops", {})
        new = {
            reason: count - self._seen.get(reason, 0)
            for reason, count in drops.items()
            if count > self._seen.get(reason, 0)
        }
        self._seen = dict(drops)
        if new:
            summary = " ".join(f"{reason}={count}" for reason, count in sorted(new.items()))
            logger.debug("dropped peer input: %s", summary, extra={"drops": new})
