"""memberlist's transmit-limited queue: what to piggyback next, and how often."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["TransmitQueue"]


class _Item:
    __slots__ = ("key", "unit", "transmits", "order")

    def __init__(self, key: Hashable, unit: bytes, order: int) -> None:
        self.key = key
        self.unit = unit
        self.transmits = 0
        self.order = order


class TransmitQueue:
    """Signed units waiting to be gossiped, each sent a bounded number of times.

    A newer unit about the same ``key`` (the same member, say) replaces the older one.
    :meth:`take` picks the least-transmitted units first, newest first among equals, and
    drops each unit once it has been sent ``limit`` times. At most ``max_items`` units
    wait; past that the most-transmitted, oldest one is dropped.
    """

    __slots__ = ("max_items", "_items", "_order", "dropped")

    def __init__(self, max_items: int = 4096) -> None:
        #: Bound on waiting units.
        self.max_items = max_items
        self._items: dict[Hashable, _Item] = {}
        self._order = 0
        #: Units dropped because the queue was full.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def enqueue(self, key: Hashable, unit: bytes) -> None:
        """Queue ``unit``, replacing any unit queued under ``key``."""
        self._order += 1
        self._items.pop(key, None)
        self._items[key] = _Item(key, unit, self._order)
        if len(self._items) > self.max_items:
            victim = max(self._items.values(), key=lambda i: (i.transmits, -i.order))
            del self._items[victim.key]
            self.dropped += 1

    def discard(self, key: Hashable) -> None:
        """Forget whatever is queued under ``key``."""
        self._items.pop(key, None)

    def pending_bytes(self) -> int:
        """Total size of the waiting units."""
        return sum(len(i.unit) for i in self._items.values())

    def take(self, room: int, limit: int) -> list[bytes]:
        """Units that fit in ``room`` bytes; each taken unit counts one transmission."""
        if not self._items or room <= 0:
            return []
        chosen: list[bytes] = []
        items = sorted(self._items.values(), key=lambda i: (i.transmits, -i.order))
        for item in items:
            size = len(item.unit)
            if size > room:
                continue
            chosen.append(item.unit)
            room -= size
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
            if room < 64:  # smaller than any signed unit
                break
        return chosen
