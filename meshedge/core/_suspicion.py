"""Lifeguard's suspicion timer: long at first, shorter with independent confirmations."""

from __future__ import annotations

import math

from .._identity import NodeId

__all__ = ["Suspicion"]


class Suspicion:
    """The timeout of one suspicion.

    It starts at ``maximum`` and falls towards ``minimum`` as distinct members confirm the
    suspicion: after ``n`` of the ``k`` expected confirmations the timeout is
    ``max - (max - min) * log(n + 1) / log(k + 1)``, never below ``min`` (Lifeguard
    §IV-B). With ``k < 1`` the timeout is ``minimum`` from the start.
    """

    __slots__ = ("start", "k", "minimum", "maximum", "confirmations", "deadline")

    def __init__(
        self, accuser: NodeId, k: int, minimum: float, maximum: float, start: float
    ) -> None:
        #: When the suspicion began.
        self.start = start
        #: Confirmations expected.
        self.k = k
        #: Shortest timeout.
        self.minimum = minimum
        #: Longest timeout.
        self.maximum = maximum
        #: Who has accused the member so far (the first accuser is not a
        #: confirmation of itself: see :attr:`confirmed`).
        self.confirmations: set[NodeId] = {accuser}
        #: When the member is declared dead unless it refutes.
        self.deadline = start + (maximum if k >= 1 else minimum)

    @property
    def confirmed(self) -> int:
        """Independent confirmations received (the first accuser excluded)."""
        return len(self.confirmations) - 1

    def confirm(self, accuser: NodeId) -> bool:
        """Count a confirmation; True if it was new (and so worth gossiping on)."""
        if self.confirmed >= self.k or accuser in self.confirmations:
            return False
        self.confirmations.add(accuser)
        fraction = math.log(self.confirmed + 1) / math.log(self.k + 1)
        timeout = max(self.minimum, self.maximum - fraction * (self.maximum - self.minimum))
        self.deadline = self.start + timeout
        return True
