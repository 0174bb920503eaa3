"""meshedge: a peer-to-peer edge mesh for Python devices.

Discovery, gossip membership, signed CBOR messages and work stealing, with no central
server. This namespace is the public API; submodules hold the details.
"""

from .errors import DropReason, KeyFileError, LocalProtocolError, MeshError, RemoteProtocolError
from .identity import Identity, NodeId
from .wire import Keyring, TrustPolicy, WireLimits

__version__ = "0.1.0"

__all__ = [
    "DropReason",
    "Identity",
    "KeyFileError",
    "Keyring",
    "LocalProtocolError",
    "MeshError",
    "NodeId",
    "RemoteProtocolError",
    "TrustPolicy",
    "WireLimits",
    "__version__",
]
