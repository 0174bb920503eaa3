"""Building a node's sans-I/O core from its runtime configuration."""

from __future__ import annotations

import os
import random

import trio

from .._identity import Identity
from ..core._config import CoreConfig, TaskSetup
from ..core._member import Address
from ..core._node import NodeCore
from ._config import NodeConfig
from ._task_runner import run_ahead_names
from ._tasks import TaskRegistry

__all__ = ["build_core", "core_config"]


def core_config(config: NodeConfig, tasks: TaskRegistry | None, advertise: Address) -> CoreConfig:
    """What the node's core is built with: the node's configuration, its tasks, its address."""
    setup = None
    if tasks is not None:
        setup = TaskSetup(
            can_run=frozenset(tasks.names()),
            slots=config.task_slots,
            run_ahead=frozenset(run_ahead_names(tasks)),
            timing=config.stealing_timing(),
        )
    return CoreConfig(
        mesh=config.mesh,
        address=advertise,
        timing=config.timing,
        tags=config.tags,
        trust=config.trust,
        keyring=config.keyring,
        limits=config.limits,
        tasks=setup,
    )


def build_core(
    config: NodeConfig, identity: Identity, tasks: TaskRegistry | None, advertise: Address
) -> NodeCore:
    """The node's core: membership, plus work stealing when there is a task registry.

    Raises:
        LocalProtocolError: the core refuses the configuration (e.g. oversized tags).
    """
    # Seeded from the OS: task ids and probe order need not be secret, only unpredictable
    # enough not to collide across nodes.
    rng = random.Random(os.urandom(32))
    return NodeCore.create(
        identity, core_config(config, tasks, advertise), rng, trio.current_time()
    )
