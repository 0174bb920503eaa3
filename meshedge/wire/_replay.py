"""Replay protection: a sliding window of sequence numbers per sender and boot epoch."""

from __future__ import annotations

from collections import OrderedDict

from .._errors import LocalProtocolError
from .._identity import NodeId

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Remembers which (epoch, sequence) pairs each sender has used.

    A message is accepted once. Within the sender's current epoch, sequence numbers up
    to ``window - 1`` below the highest seen are accepted if not seen before, so UDP
    reordering is tolerated; older ones are refused. A larger epoch (the sender
    restarted) starts a fresh window; a smaller one is refused.

    Memory is bounded: at most ``max_senders`` senders are tracked; the one heard from
    least recently is forgotten first (after which its old messages would be accepted
    again, so keep ``max_senders`` above the mesh size).
    """

    __slots__ = ("window", "max_senders", "_senders")

    def __init__(self, window: int = 1024, max_senders: int = 4096) -> None:
        if window < 1 or max_senders < 1:
            raise LocalProtocolError("window and max_senders must be positive")
        #: How far below the highest sequence number a late message may arrive.
        self.window = window
        #: How many senders are remembered at most.
        self.max_senders = max_senders
        # sender -> [epoch, highest sequence, bitmap of seen (bit i = highest - i)]
        self._senders: OrderedDict[NodeId, list[int]] = OrderedDict()

    def accept(self, sender: NodeId, epoch: int, sequence: int) -> bool:
        """Record the message and return True, or return False if it is a replay."""
        state = self._senders.get(sender)
        if state is None:
            self._senders[sender] = [epoch, sequence, 1]
            if len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
            return True
        self._senders.move_to_end(sender)
        current_epoch, highest, seen = state
        if epoch != current_epoch:
            if epoch < current_epoch:
                return False
            state[0], state[1], state[2] = epoch, sequence, 1
            return True
        if sequence > highest:
            shift = sequence - highest
            state[1] = sequence
            state[2] = (
                ((seen << shift) | 1) & ((1 << self.window) - 1) if shift < self.window else 1
            )
            return True
        age = highest - sequence
        if age >= self.window:
            return False
        bit = 1 << age
        if seen & bit:
            return False
        state[2] = seen | bit
        return True

    def __len__(self) -> int:
        return len(self._senders)

    def forget(self, sender: NodeId) -> None:
        """Drop what is known of ``sender``."""
        self._senders.pop(sender, None)
