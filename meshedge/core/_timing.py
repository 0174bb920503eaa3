"""Protocol timing: every period of the membership protocol, with presets."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["Timing"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Periods and multipliers of SWIM, Lifeguard, gossip and anti-entropy (seconds).

    Use a preset (:meth:`lan`, :meth:`wan`, :meth:`local`) and override fields with
    :meth:`with_` or ``dataclasses.replace``.
    """

    #: Time between two probes of this node (before Lifeguard's health scaling). Shorter
    #: detects failures sooner at the price of more packets.
    probe_interval: float = 1.0
    #: How long to wait for a direct ack before asking others to probe indirectly. Should
    #: be above the 99th-percentile round-trip time of the network.
    probe_timeout: float = 0.5
    #: Members asked to probe indirectly (SWIM's k). More tolerates more lossy paths.
    indirect_checks: int = 3
    #: Period of the separate gossip round (piggybacking also happens on every probe).
    gossip_interval: float = 0.2
    #: Members each gossip round sends to (the fanout).
    gossip_nodes: int = 3
    #: Each update is sent retransmit_mult * ceil(log10(N + 1)) times by every node.
    retransmit_mult: int = 4
    #: Minimum suspicion timeout = suspicion_mult * max(1, log10(N)) * probe_interval.
    suspicion_mult: int = 4
    #: Maximum suspicion timeout = this * minimum (Lifeguard: shrinks with confirmations).
    suspicion_max_timeout_mult: int = 6
    #: Period of full anti-entropy with one random member; scaled up beyond 32 members.
    push_pull_interval: float = 30.0
    #: Lifeguard's local health multiplier ceiling: the probe interval stretches up to
    #: this factor while this node itself seems slow.
    awareness_max_multiplier: int = 8
    #: Period of attempts to reach one random dead member (so partitions heal) and, while
    #: alone, the seeds (with back-off from ``probe_interval`` up to this period).
    reconnect_interval: float = 30.0
    #: How long dead and left members stay in the member list (and are retried).
    dead_retention: float = 600.0
    #: How long a node keeps application broadcasts for anti-entropy, so that members
    #: that missed the gossip (loss, a pause, a short partition) still get them once.
    broadcast_retention: float = 60.0
    #: Lifeguard refinements on (health multiplier, nacks, dynamic suspicion timeouts,
    #: buddy system). Off gives plain SWIM, for comparison.
    lifeguard: bool = True

    def __post_init__(self) -> None:
        for name in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "push_pull_interval",
            "reconnect_interval",
            "dead_retention",
            "broadcast_retention",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"Timing.{name} must be a positive number of seconds")
        for name in (
            "indirect_checks",
            "gossip_nodes",
            "retransmit_mult",
            "suspicion_mult",
            "suspicion_max_timeout_mult",
            "awareness_max_multiplier",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Timing.{name} must be a positive integer")
        if self.probe_timeout >= self.probe_interval:
            raise ValueError("Timing.probe_timeout must be shorter than probe_interval")

    @classmethod
    def lan(cls) -> Timing:
        """Memberlist's DefaultLANConfig: probe 1 s, timeout 500 ms, gossip 200 ms to 3."""
        return cls()

    @classmethod
    def wan(cls) -> Timing:
        """Memberlist's DefaultWANConfig: probe 5 s, timeout 3 s, gossip 500 ms to 4."""
        return cls(
            probe_interval=5.0,
            probe_timeout=3.0,
            gossip_interval=0.5,
            gossip_nodes=4,
            suspicion_mult=6,
            push_pull_interval=60.0,
            reconnect_interval=60.0,
            dead_retention=3600.0,
            broadcast_retention=120.0,
        )

    @classmethod
    def local(cls) -> Timing:
        """Nodes on one machine: periods five times shorter than :meth:`lan`.

        The probe timeout stays at 150 ms (not 100) and the suspicion multiplier at 5,
        because a busy 2-core machine can delay a Python process's reply by tens of
        milliseconds; Lifeguard absorbs the rest.
        """
        return cls(
            probe_interval=0.2,
            probe_timeout=0.15,
            gossip_interval=0.04,
            suspicion_mult=5,
            push_pull_interval=6.0,
            reconnect_interval=6.0,
            dead_retention=120.0,
            broadcast_retention=12.0,
        )

    def with_(self, **changes: object) -> Timing:
        """A copy with some fields changed (validated like the constructor)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    # Formulas shared by the core and the docs --------------------------------------

    def retransmit_limit(self, members: int) -> int:
        """How many times each node sends one update: mult * ceil(log10(N + 1))."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(members + 1)))

    def suspicion_timeouts(self, members: int) -> tuple[float, float]:
        """(minimum, maximum) suspicion timeout for a mesh of ``members`` nodes."""
        scale = max(1.0, math.log10(max(1, members)))
        minimum = self.suspicion_mult * scale * self.probe_interval
        if not self.lifeguard:
            return minimum, minimum
        return minimum, self.suspicion_max_timeout_mult * minimum

    def push_pull_period(self, members: int) -> float:
        """Anti-entropy period, scaled by ceil(log2(N) - log2(32)) + 1 beyond 32 members."""
        if members <= 32:
            return self.push_pull_interval
        return self.push_pull_interval * (math.ceil(math.log2(members) - 5) + 1)
