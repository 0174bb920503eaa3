"""The wire layer: signed CBOR messages (COSE_Sign1, Ed25519), datagrams and frames.

Sans-I/O: nothing here touches sockets, clocks or threads.
"""

from ._datagram import (
    ENCRYPTION_OVERHEAD,
    OpenedDatagram,
    datagram_room,
    open_datagram,
    open_frame,
    seal_datagram,
    seal_frame,
)
from ._keyring import Keyring
from ._limits import DEFAULT_LIMITS, WireLimits
from ._message import PROTOCOL_VERSION, SignedMessage, Signer, sign_message, verify_message
from ._message_types import MessageType
from ._replay import ReplayWindow
from ._signature import ED25519, INSECURE_SIMULATION_SIGNATURES, SignatureScheme
from ._trust import TrustPolicy

__all__ = [
    "DEFAULT_LIMITS",
    "ED25519",
    "ENCRYPTION_OVERHEAD",
    "INSECURE_SIMULATION_SIGNATURES",
    "Keyring",
    "MessageType",
    "OpenedDatagram",
    "PROTOCOL_VERSION",
    "ReplayWindow",
    "SignatureScheme",
    "SignedMessage",
    "Signer",
    "TrustPolicy",
    "WireLimits",
    "datagram_room",
    "open_datagram",
    "open_frame",
    "seal_datagram",
    "seal_frame",
    "sign_message",
    "verify_message",
]
