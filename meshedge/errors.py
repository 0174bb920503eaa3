"""The exception hierarchy: every error says whose fault it is.

``MeshError`` is the root. ``LocalProtocolError`` means the caller misused the API;
``RemoteProtocolError`` means a peer sent something that meshedge refuses, and carries
a machine-readable :class:`DropReason` so that a node can count drops by reason.
"""

from __future__ import annotations

import enum

__all__ = [
    "DropReason",
    "KeyFileError",
    "LocalProtocolError",
    "MeshError",
    "PeerUnavailableError",
    "RemoteProtocolError",
    "UnknownPeerError",
]


class DropReason(enum.StrEnum):
    """Why an inbound message was refused; one counter per value in ``statistics()``."""

    #: Not well-formed CBOR, not a COSE structure, or trailing bytes.
    MALFORMED = "malformed"
    #: Larger than the configured limit for its transport.
    OVERSIZED = "oversized"
    #: The Ed25519 signature does not match the sender's key.
    BAD_SIGNATURE = "bad_signature"
    #: The sender's key is not allowed by the trust policy.
    UNTRUSTED = "untrusted"
    #: The message names another mesh.
    WRONG_MESH = "wrong_mesh"
    #: Already seen, too old for the replay window, or from an older boot epoch.
    REPLAYED = "replayed"
    #: No key of the keyring decrypts it (or it was not encrypted when it must be).
    DECRYPT_FAILED = "decrypt_failed"
    #: A message type this node does not know.
    UNKNOWN_TYPE = "unknown_type"
    #: A known message type whose body breaks that type's schema.
    SCHEMA = "schema"


class MeshError(Exception):
    """Root of every exception that meshedge raises on purpose."""


class LocalProtocolError(MeshError):
    """The caller used the API wrongly (bad argument, wrong state); fix the calling code."""


class KeyFileError(MeshError):
    """A key or identity file is missing, malformed, or readable by others."""


class RemoteProtocolError(MeshError):
    """A peer sent something that is refused; ``reason`` says why.

    Attributes:
        reason: the :class:`DropReason` under which the drop is counted.
    """

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class UnknownPeerError(MeshError, LookupError):
    """``send`` named a node id that is not a member of this node's view."""


class PeerUnavailableError(MeshError):
    """The peer is known but dead, left, or cannot be reached over the stream transport."""
