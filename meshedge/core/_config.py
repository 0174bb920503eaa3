"""What a node core is built with: one frozen value for the runtime, the simulator and tests.

:meth:`meshedge.core._node.NodeCore.create` takes a :class:`CoreConfig`; the runtime's
``NodeConfig`` and the simulator each make one, so the cores are assembled in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..wire._keyring import Keyring
from ..wire._limits import DEFAULT_LIMITS, WireLimits
from ..wire._signature import ED25519, SignatureScheme
from ..wire._trust import TrustPolicy
from ..wire.bodies import Address
from ._stealing import StealingTiming
from ._timing import Timing

__all__ = ["CoreConfig", "TaskSetup", "stealing_timing_for"]


def stealing_timing_for(timing: Timing, stealing: StealingTiming | None = None) -> StealingTiming:
    """``stealing`` when given; else the defaults, with LOAD adverts at the gossip pace.

    ``load_interval = timing.gossip_interval`` keeps the adverts of work as fast as the
    mesh's own gossip: quick with ``Timing.local()``, slower on a WAN.
    """
    if stealing is not None:
        return stealing
    return StealingTiming(load_interval=timing.gossip_interval)


@dataclass(frozen=True, slots=True)
class TaskSetup:
    """The work-stealing side of a node: which tasks it runs, and how many at once."""

    #: Names of the functions this node may run (its task registry).
    can_run: frozenset[str]
    #: Tasks this node runs at once; 0 for a node that only submits.
    slots: int = 2
    #: Names of blocking tasks that may start behind busy slots (thread slots take
    #: lined-up tasks at once).
    run_ahead: frozenset[str] = frozenset()
    #: Periods and bounds; None derives them from the membership timing.
    timing: StealingTiming | None = None


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Everything a :class:`~meshedge.core._node.NodeCore` needs besides identity and time."""

    #: The mesh name; messages of other meshes are dropped.
    mesh: str
    #: Where this node receives datagrams and frames (as other nodes should use it).
    address: Address
    #: Protocol periods.
    timing: Timing = field(default_factory=Timing.lan)
    #: This node's initial tags.
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Which keys are accepted (None: any key of the mesh).
    trust: TrustPolicy | None = None
    #: Mesh keys; when given, every datagram and frame is encrypted.
    keyring: Keyring | None = None
    #: Wire limits.
    limits: WireLimits = DEFAULT_LIMITS
    #: The signature scheme (the simulator may use a fast stand-in).
    signatures: SignatureScheme = ED25519
    #: Work stealing; None for a node that shares no work.
    tasks: TaskSetup | None = None

    def stealing_timing(self) -> StealingTiming:
        """The work-stealing timing: the task setup's, or adverts at the gossip interval."""
        return stealing_timing_for(self.timing, None if self.tasks is None else self.tasks.timing)
