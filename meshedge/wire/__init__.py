"""The wire layer: signed CBOR messages (COSE_Sign1, Ed25519), datagrams and frames.

Sans-I/O: nothing here touches sockets, clocks or threads.
"""

from .datagram import (
    ENCRYPTION_OVERHEAD,
    OpenedDatagram,
    datagram_room,
    open_datagram,
    open_frame,
    seal_datagram,
    seal_frame,
)
from .keyring import Keyring
from .limits import DEFAULT_LIMITS, WireLimits
from .message import PROTOCOL_VERSION, SignedMessage, Signer, sign_message, verify_message
from .message_types import MessageType
from .replay import ReplayWindow
from .signature import ED25519, INSECURE_SIMULATION_SIGNATURES, SignatureScheme
from .trust import TrustPolicy

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
