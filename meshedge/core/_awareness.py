"""Lifeguard's local health: a node that misses acks slows its own probing down."""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """A health score from 0 (healthy) to ``max_multiplier - 1``.

    Failed probes without nacks from relays, and being suspected by others, raise it;
    successful probes lower it. Timeouts are scaled by ``score + 1``.
    """

    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        #: The largest scale factor (``score`` stays below it).
        self.max_multiplier = max_multiplier
        #: The current score.
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        """Add ``delta`` to the score, clamped to ``[0, max_multiplier - 1]``."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout: float) -> float:
        """``timeout`` stretched by the current health: ``timeout * (score + 1)``."""
        return timeout * (self.score + 1)
