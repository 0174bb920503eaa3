"""The periods and bounds of work stealing, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StealingTiming"]


@dataclass(frozen=True, slots=True)
class StealingTiming:
    """Periods and bounds of work stealing, each with its reason."""

    #: Shortest time between two LOAD adverts of one node: often enough that thieves
    #: know who has work, rare enough not to flood (memberlist's gossip interval).
    load_interval: float = 0.2
    #: While tasks wait here, the advert is repeated this often even if unchanged, so
    #: a lost LOAD datagram cannot leave an eligible thief idle for good.
    load_refresh: float = 1.0
    #: A holder that does not renew its lease for this long is presumed gone and its
    #: tasks run again elsewhere. Must exceed the longest expected network hiccup.
    lease_timeout: float = 10.0
    #: How long a steal request may stay unanswered before the thief tries elsewhere.
    steal_timeout: float = 1.0
    #: After an empty answer, leave that victim alone this long (unless it advertises
    #: new work), doubling up to 16 times this while answers stay empty.
    steal_backoff: float = 0.05
    #: Results of short tasks wait at most this long to share one signed frame, while
    #: more tasks run here; when this node runs out of work they go at once, and so do
    #: those of tasks longer than this (per slot), since no other would join them.
    result_delay: float = 0.01
    #: Tasks a thief wants queued beyond its free slots, so it never runs dry while a
    #: steal is in flight.
    prefetch: int = 2
    #: A steal asks for enough tasks to keep the slots busy this much longer (by the
    #: measured task time): for short tasks, one steal then brings many, so that the
    #: signed messages stay a small part of the work; for long ones it adds one or two.
    steal_horizon: float = 0.02
    #: Tasks one node queues at most (submissions wait beyond it).
    max_queued: int = 100_000
    #: Tasks in one TASKS answer.
    max_batch: int = 256
    #: Encoded bytes of one task's name and arguments: tasks travel in stream frames
    #: of at most 1 MiB, so big inputs belong in a file or a store, not in a task.
    max_task_bytes: int = 64 * 1024
    #: Encoded bytes of one result (a larger one is replaced by a ResultTooLarge error).
    max_result_bytes: int = 256 * 1024
    #: Encoded bytes of tasks, results or ids in one frame (half the frame limit).
    max_frame_payload: int = 512 * 1024
