"""Sans-I/O protocol cores: synchronous, deterministic, driven by a shell.

Nothing here imports trio, sockets, threads or clocks: time comes in as ``now``,
randomness as an injected ``random.Random``. This namespace is the public face of the
cores for code that drives them itself (the simulator, :mod:`meshedge.testing`, a shell
of one's own); the modules behind it are private. ``NodeCore`` is the front door::

    from meshedge.core import CoreConfig, NodeCore

    core = NodeCore.create(identity, CoreConfig(mesh="home", address=addr), rng, now)

Names load on first use, so importing the membership events (as ``import meshedge``
does) does not load every core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from ._config import CoreConfig, TaskSetup
    from ._envelope import UNEXPECTED_REASONS, Envelope
    from ._member import Address, Member, MemberState
    from ._membership import Membership, MembershipLimits
    from ._node import NodeCore, NodeEvent
    from ._outputs import CancelTask, Datagram, Frame, Output, StartTask
    from ._statistics import CoreStatistics
    from ._stealing import (
        Outgoing,
        StealingTiming,
        Task,
        TaskFinished,
        TaskOutcome,
        WorkStealing,
    )
    from ._timing import Timing
    from ._transitions import ABOUT_SELF, TRANSITIONS, KeyOrder, Transition

# name -> private module that defines it, imported when the name is first used
_LAZY = {
    "ABOUT_SELF": "._transitions",
    "Address": "._member",
    "CancelTask": "._outputs",
    "CoreConfig": "._config",
    "CoreStatistics": "._statistics",
    "Datagram": "._outputs",
    "Envelope": "._envelope",
    "Frame": "._outputs",
    "KeyOrder": "._transitions",
    "Member": "._member",
    "MemberState": "._member",
    "Membership": "._membership",
    "MembershipLimits": "._membership",
    "NodeCore": "._node",
    "NodeEvent": "._node",
    "Outgoing": "._stealing",
    "Output": "._outputs",
    "StartTask": "._outputs",
    "StealingTiming": "._stealing",
    "TRANSITIONS": "._transitions",
    "Task": "._stealing",
    "TaskFinished": "._stealing",
    "TaskOutcome": "._stealing",
    "TaskSetup": "._config",
    "Timing": "._timing",
    "Transition": "._transitions",
    "UNEXPECTED_REASONS": "._envelope",
    "WorkStealing": "._stealing",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())


__all__ = [
    "ABOUT_SELF",
    "Address",
    "CancelTask",
    "CoreConfig",
    "CoreStatistics",
    "Datagram",
    "Envelope",
    "Frame",
    "KeyOrder",
    "Member",
    "MemberState",
    "Membership",
    "MembershipLimits",
    "NodeCore",
    "NodeEvent",
    "Outgoing",
    "Output",
    "StartTask",
    "StealingTiming",
    "TRANSITIONS",
    "Task",
    "TaskFinished",
    "TaskOutcome",
    "TaskSetup",
    "Timing",
    "Transition",
    "UNEXPECTED_REASONS",
    "WorkStealing",
]
