"""The trio runtime: the only layer with sockets, threads, the wall clock and processes.

It drives the sans-I/O cores and bridges the outside world (zeroconf's thread for
mDNS discovery, UDP and TCP sockets) into trio with structured concurrency.

This namespace is the public API of a running node::

    from meshedge.runtime import NodeConfig, Timing, open_node

    async with open_node(NodeConfig(bind="127.0.0.1:0", timing=Timing.local())) as node:
        ...

The membership events, members and timing presets that the node hands out are
re-exported here from the cores, and the task registry for work stealing from
``meshedge.runtime._tasks``, so applications need no private module path.
mDNS discovery on its own lives in ``meshedge.runtime.discovery`` (it imports zeroconf,
so it is loaded only when a node enables mDNS).
"""

from .._errors import PeerUnavailableError, UnknownPeerError
from ..core._events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MembershipEvent,
    MemberSuspected,
    MemberUpdated,
)
from ..core._member import Address, Member, MemberState
from ..core._timing import Timing
from ._addresses import format_address, parse_address
from ._config import NodeConfig
from ._node import Message, Node, open_node
from ._tasks import RegisteredTask, TaskError, TaskKind, TaskRegistry, UnknownTaskError

__all__ = [
    "Address",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberRecovered",
    "MemberState",
    "MemberSuspected",
    "MemberUpdated",
    "MembershipEvent",
    "Message",
    "Node",
    "NodeConfig",
    "PeerUnavailableError",
    "RegisteredTask",
    "TaskError",
    "TaskKind",
    "TaskRegistry",
    "Timing",
    "UnknownPeerError",
    "UnknownTaskError",
    "format_address",
    "open_node",
    "parse_address",
]
