"""What every measured scenario shares: warm-up, stop-check resolution, argument checks.

Also what "a fraction of the nodes" counts: :func:`needed` rounds up, so that 99.99 % of
1000 nodes is all of them, as when counting nodes one by one.
"""

from __future__ import annotations

import math

from ..._errors import LocalProtocolError

__all__ = [
    "CHECK_EVERY",
    "DEFAULT_WARMUP",
    "check_loss",
    "check_nodes",
    "check_positive",
    "needed",
]

#: Virtual seconds every scenario runs a prejoined mesh before measuring, so that the
#: first probe, gossip and anti-entropy rounds (spread over one period at start) settle.
DEFAULT_WARMUP = 5.0
#: How often (virtual seconds) ``run_until`` checks a scenario's stop condition; the
#: finest resolution of a measured time that is not taken from an event's timestamp.
CHECK_EVERY = 0.01


def check_nodes(nodes: int, least: int) -> None:
    """Refuse a mesh size that is not an integer of at least ``least``.

    Raises:
        LocalProtocolError: it is not.
    """
    if not isinstance(nodes, int) or nodes < least:
        raise LocalProtocolError(f"this scenario needs at least {least} nodes, not {nodes!r}")


def check_loss(loss: float) -> None:
    """Refuse a datagram loss outside [0, 1).

    Raises:
        LocalProtocolError: it is outside.
    """
    if not 0.0 <= loss < 1.0:
        raise LocalProtocolError(f"loss is a probability in [0, 1), not {loss!r}")


def check_positive(name: str, value: float) -> None:
    """Refuse a duration ``name`` that is not a positive, finite number of seconds.

    Raises:
        LocalProtocolError: it is not.
    """
    if not (value > 0 and math.isfinite(value)):
        raise LocalProtocolError(f"{name} must be a positive number of seconds, not {value!r}")


def needed(fraction: float, nodes: int) -> int:
    """Nodes that make up ``fraction`` of ``nodes``, rounded up (99.99 % of 1000 is all)."""
    return min(nodes, max(1, math.ceil(fraction * nodes - 1e-9)))
