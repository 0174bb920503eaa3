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

from typing import TYPE_CHECKING

from ._errors import (
    DropReason,
    KeyFileError,
    LocalProtocolError,
    MeshError,
    PeerUnavailableError,
    RemoteProtocolError,
    UnknownPeerError,
)
from ._identity import Identity, NodeId
from ._lazy import lazy_names
from .core._events import (
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
from .core._member import Address, Member, MemberState
from .core._timing import Timing
from .wire import Keyring, TrustPolicy, WireLimits

if TYPE_CHECKING:
    from .core._stealing import StealingTiming
    from .runtime._config import NodeConfig
    from .runtime._node import Message, Node, open_node
    from .runtime._tasks import TaskError, TaskRegistry, UnknownTaskError

__version__ = "0.1.0"

# name -> module that defines it, imported when the name is first used
_LAZY = {
    "StealingTiming": ".core._stealing",
    "NodeConfig": ".runtime._config",
    "Message": ".runtime._node",
    "Node": ".runtime._node",
    "open_node": ".runtime._node",
    "TaskError": ".runtime._tasks",
    "TaskRegistry": ".runtime._tasks",
    "UnknownTaskError": ".runtime._tasks",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())


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
