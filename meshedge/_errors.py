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
    #: A message of another protocol version (the envelope's field 6).
    WRONG_VERSION = "wrong_version"
    #: A PING whose target is another node (a stale address, or a probe not meant for
    #: this node); it is not answered.
    MISADDRESSED = "misaddressed"
    #: A SUSPECT or DEAD naming an (epoch, incarnation) newer than the member itself
    #: announced: it could never be refuted, so it is refused as a lie (or a race).
    UNANNOUNCED_KEY = "unannounced_key"
    #: The ALIVE of a new member while the member table holds ``max_members``.
    MEMBERS_FULL = "members_full"
    #: A unit of type APP (free-form application data) where the protocol carries only
    #: its own message types: in a datagram, as a stream frame, or among SYNC statements.
    APP_UNIT = "app_unit"
    #: A SYNC in a datagram: anti-entropy travels over the stream transport only.
    SYNC_BY_DATAGRAM = "sync_by_datagram"
    #: A direct message (probe, SYNC, work stealing, ...) among a SYNC's statements,
    #: which carry statements only.
    NOT_A_STATEMENT = "not_a_statement"
    #: A probe (PING, ACK, NACK, PING_REQ) in a stream frame: probes travel by datagram.
    PROBE_BY_STREAM = "probe_by_stream"
    #: A statement (ALIVE, SUSPECT, DEAD, LEFT, BROADCAST) alone in a stream frame:
    #: statements travel by gossip or inside a SYNC.
    STATEMENT_BY_STREAM = "statement_by_stream"
    #: A direct application message (MESSAGE) in a datagram: direct messages travel by
    #: stream only, where they are bounded and ordered.
    MESSAGE_BY_DATAGRAM = "message_by_datagram"


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
