"""Dissemination: the transmit-limited queues, piggybacking, gossip and broadcasts."""

from __future__ import annotations

import pytest
from membership_helpers import (
    LAN,
    formed,
)

from meshedge.core._transmit_queue import TransmitQueue

# ---------------------------------------------------------------------- transmit queues


def test_transmit_queue_sends_fewest_transmitted_first_and_newest_among_equals() -> None:
    queue = TransmitQueue()
    a, b = b"a" * 100, b"b" * 100
    queue.enqueue("a", a)
    queue.enqueue("b", b)
    assert queue.pending_bytes() == 200
    # Room for one: both were sent 0 times, so the newer goes first.
    assert queue.take(150, limit=10) == [b]
    # Now "a" has been sent fewer times.
    assert queue.take(150, limit=10) == [a]
    assert queue.take(150, limit=10) == [b]
    assert queue.take(250, limit=10) == [a, b]  # a: 2 sends, b: 3
    assert queue.take(50, limit=10) == []  # nothing fits


def test_transmit_queue_newer_unit_replaces_older_for_the_same_key() -> None:
    queue = TransmitQueue()
    queue.enqueue("member-x", b"old" * 30)
    queue.take(1000, limit=10)
    queue.enqueue("member-x", b"new" * 30)
    assert len(queue) == 1
    # The replacement starts with zero transmissions of its own.
    assert queue.take(1000, limit=1) == [b"new" * 30]
    assert len(queue) == 0


def test_transmit_queue_drops_a_unit_after_limit_sends() -> None:
    queue = TransmitQueue()
    queue.enqueue("k", b"u" * 80)
    assert queue.take(1000, limit=3) == [b"u" * 80]
    assert queue.take(1000, limit=3) == [b"u" * 80]
    assert len(queue) == 1
    assert queue.take(1000, limit=3) == [b"u" * 80]
    assert len(queue) == 0
    assert queue.take(1000, limit=3) == []


def test_transmit_queue_is_bounded_dropping_the_most_sent_oldest_unit() -> None:
    queue = TransmitQueue(max_items=2)
    queue.enqueue("a", b"a" * 80)
    queue.enqueue("b", b"b" * 80)
    queue.take(1000, limit=10)  # both sent once
    queue.enqueue("c", b"c" * 80)
    assert len(queue) == 2
    assert queue.dropped == 1
    # "a" (sent once, oldest) went; "c" (never sent) comes first, then "b".
    assert queue.take(1000, limit=10) == [b"c" * 80, b"b" * 80]


def test_each_update_is_sent_mult_times_log10_of_the_mesh_size() -> None:
    # mult * ceil(log10(N + 1)), at least mult.
    assert LAN.retransmit_mult == 4
    assert [LAN.retransmit_limit(n) for n in (0, 1, 9, 10, 99, 100, 999, 1000)] == [
        4, 4, 4, 8, 8, 12, 12, 16,
    ]  # fmt: skip
    assert LAN.with_(retransmit_mult=2).retransmit_limit(50) == 4


# ---------------------------------------------------------------------- broadcasts


@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_broadcasts_are_delivered_exactly_once_at_every_other_node(loss: float) -> None:
    sim = formed(6, seed=13)
    sim.set_loss(loss)
    for n in range(10):
        sim.broadcast(n % 6, "readings", {"n": n})
        sim.run_for(0.3)
    sim.run_for(LAN.broadcast_retention)
    counts: dict[tuple[int, int], int] = {}
    for delivery in sim.deliveries:
        key = (delivery.node, delivery.payload["n"])
        counts[key] = counts.get(key, 0) + 1
        assert delivery.sender == sim.node_ids[delivery.payload["n"] % 6]
        assert delivery.topic == "readings"
    expected = {(node, n): 1 for n in range(10) for node in range(6) if node != n % 6}
    assert counts == expected
