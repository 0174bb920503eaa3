"""meshedge: a peer-to-peer edge mesh for Python devices.

Discovery, gossip membership, signed CBOR messages and work stealing, with no central
server. This namespace is the public API: a curated list of names re-exported from the
modules that define them (docs/api.md, "Public names", lists each; a test keeps the two
equal). Submodules hold the details.

The names of the trio runtime (``open_node``, ``NodeConfig``, ``Node``, ``Message``,
``TaskRegistry``, ``TaskError``, ...) and of work stealing (``StealingTiming``) load on
first use, so ``import meshedge`` stays cheap for code that only signs and verifies
messages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.events import (
    BroadcastReceived,
    LeaveCompleted,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MembershipEvent,
    MemberSuspected,
    MemberUpdated,
    MessageReceived,
)
from .core.member import Address, Member, MemberState
from .core.timing import Timing
from .errors import (
    DropReason,
    KeyFileError,
    LocalProtocolError,
    MeshError,
    PeerUnavailableError,
    RemoteProtocolError,
    UnknownPeerError,
)
from .identity import Identity, NodeId
from .wire import Keyring, TrustPolicy, WireLimits

if TYPE_CHECKING:
    from .core.stealing import StealingTiming
    from .runtime.config import NodeConfig
    from .runtime.node import Message, Node, open_node
    from .runtime.tasks import TaskError, TaskRegistry, UnknownTaskError

__version__ = "0.1.0"

# name -> module that defines it, imported when the name is first used
_LAZY = {
    "StealingTiming": ".core.stealing",
    "NodeConfig": ".runtime.config",
    "Message": ".runtime.node",
    "Node": ".runtime.node",
    "open_node": ".runtime.node",
    "TaskError": ".runtime.tasks",
    "TaskRegistry": ".runtime.tasks",
    "UnknownTaskError": ".runtime.tasks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'meshedge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Address",
    "BroadcastReceived",
    "DropReason",
    "Identity",
    "KeyFileError",
    "Keyring",
    "LeaveCompleted",
    "LocalProtocolError",
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
    "MeshError",
    "Message",
    "MessageReceived",
    "Node",
    "NodeConfig",
    "NodeId",
    "PeerUnavailableError",
    "RemoteProtocolError",
    "StealingTiming",
    "TaskError",
    "TaskRegistry",
    "Timing",
    "TrustPolicy",
    "UnknownPeerError",
    "UnknownTaskError",
    "WireLimits",
    "__version__",
    "open_node",
]
