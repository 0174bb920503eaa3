"""The DNS-SD record of a meshedge node: what it advertises, and how one is read.

Each node registers one service of type ``_meshedge._udp.local.`` named after its node
id, with a TXT record that carries its full node id (``id``), its mesh name (``mesh``)
and the discovery protocol version (``v``). :func:`classify` turns a resolved service
into a peer of our mesh, or into the reason it is ignored; anyone on the link can
advertise anything, so it accepts every input without raising.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from zeroconf import ServiceInfo

from .._errors import LocalProtocolError
from .._identity import NodeId

__all__ = [
    "DISCOVERY_VERSION",
    "RECORD_TTL",
    "SERVICE_TYPE",
    "DiscoveredPeer",
    "DiscoveryEvent",
    "IgnoreReason",
    "PeerFound",
    "PeerLost",
    "Resolution",
    "classify",
    "instance_name",
    "service_info",
]

#: The DNS-SD service type every meshedge node registers and browses.
SERVICE_TYPE: Final = "_meshedge._udp.local."
#: The version of this discovery record (TXT key ``v``); other versions are ignored.
DISCOVERY_VERSION: Final = 1
#: TTL in seconds of every record we advertise. RFC 6762 suggests 120 s for records
#: tied to a host and 75 min for PTR records; a crashed edge device (which sends no
#: goodbye) should leave the other nodes' ``peers()`` within minutes, not an hour.
RECORD_TTL: Final = 120

_TXT_ID: Final = b"id"
_TXT_MESH: Final = b"mesh"
_TXT_VERSION: Final = b"v"
#: Longest ``v`` value we read: a small decimal integer, not a number of any size.
_MAX_VERSION_DIGITS: Final = 6


class IgnoreReason(enum.StrEnum):
    """Why an advertised service did not become a peer; one counter per value."""

    #: This node's own service (or another service that claims our node id).
    OWN = "own"
    #: A meshedge node of another mesh.
    WRONG_MESH = "wrong_mesh"
    #: A discovery record of another version (``v`` is not :data:`DISCOVERY_VERSION`).
    WRONG_VERSION = "wrong_version"
    #: The TXT record lacks ``id``, ``mesh`` or ``v``, holds a value that does not
    #: parse, or the instance name does not match the node id.
    MALFORMED = "malformed"
    #: No complete answer (SRV, TXT, an address) within
    #: :data:`~meshedge.runtime.discovery.RESOLVE_TIMEOUT_MS`.
    UNRESOLVED = "unresolved"
    #: More than :data:`~meshedge.runtime.discovery.MAX_SERVICES` services were tracked
    #: already.
    TOO_MANY = "too_many"


@dataclass(frozen=True, slots=True)
class DiscoveredPeer:
    """A node of our mesh, as its mDNS advertisement describes it.

    Nothing here is authenticated: it is a proposal to contact ``addresses``, and the
    wire layer decides whether the node at the other end really is ``node_id``.

    Attributes:
        node_id: the node id from the TXT record.
        mesh: the mesh name from the TXT record (always ours).
        addresses: ``(host, port)`` pairs, sorted; one per advertised address.
        version: the discovery record version (always :data:`DISCOVERY_VERSION`).
    """

    node_id: NodeId
    mesh: str
    addresses: tuple[tuple[str, int], ...]
    version: int


@dataclass(frozen=True, slots=True)
class PeerFound:
    """A node of our mesh appeared, or the addresses of a known one changed."""

    #: The peer, with its current addresses.
    peer: DiscoveredPeer


@dataclass(frozen=True, slots=True)
class PeerLost:
    """A node of our mesh withdrew its service (goodbye) or its records expired."""

    #: The id of the peer that is gone.
    node_id: NodeId


#: What :meth:`~meshedge.runtime.discovery.MdnsDiscovery.events` yields.
DiscoveryEvent = PeerFound | PeerLost


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to one service look-up, copied out of zeroconf's objects."""

    #: The TXT record's entries, in the order received.
    properties: tuple[tuple[bytes, bytes | None], ...]
    #: The advertised IP addresses (IPv6 ones with their zone).
    hosts: tuple[str, ...]
    #: The SRV record's port, if any.
    port: int | None


def instance_name(node_id: NodeId) -> str:
    """The service instance name of a node: its full node id (52 characters)."""
    return f"{node_id}.{SERVICE_TYPE}"


def service_info(node_id: NodeId, mesh: str, port: int, addresses: list[str]) -> ServiceInfo:
    """The service this node registers: its instance name, TXT record and addresses."""
    return ServiceInfo(
        SERVICE_TYPE,
        instance_name(node_id),
        port=port,
        properties={
            _TXT_ID: str(node_id).encode("ascii"),
            _TXT_MESH: mesh.encode("utf-8"),
            _TXT_VERSION: str(DISCOVERY_VERSION).encode("ascii"),
        },
        server=f"{node_id}.local.",
        host_ttl=RECORD_TTL,
        other_ttl=RECORD_TTL,
        parsed_addresses=addresses,
    )


def classify(
    name: str,
    resolution: Resolution,
    own_id: NodeId,
    mesh: str,
) -> DiscoveredPeer | IgnoreReason:
    """Turn one resolved service into a peer, or say why it is ignored.

    Pure and total: anything a remote advertiser can put in a service yields a value,
    never an exception.
    """
    txt: dict[bytes, bytes | None] = {}
    for key, value in resolution.properties:
        txt.setdefault(key.lower(), value)  # RFC 6763 §6.4: first occurrence wins
    version = txt.get(_TXT_VERSION)
    if (
        version is None
        or not version.isdigit()  # bytes.isdigit() accepts ASCII digits only
        or len(version) > _MAX_VERSION_DIGITS
    ):
        return IgnoreReason.MALFORMED
    if int(version) != DISCOVERY_VERSION:
        return IgnoreReason.WRONG_VERSION
    id_text, mesh_bytes = txt.get(_TXT_ID), txt.get(_TXT_MESH)
    if id_text is None or mesh_bytes is None:
        return IgnoreReason.MALFORMED
    try:
        node_id = NodeId.parse(id_text.decode("ascii"))
        peer_mesh = mesh_bytes.decode("utf-8")
    except (UnicodeDecodeError, LocalProtocolError):
        return IgnoreReason.MALFORMED
    if name.lower() != instance_name(node_id):
        return IgnoreReason.MALFORMED
    if node_id == own_id:
        return IgnoreReason.OWN
    if peer_mesh != mesh:
        return IgnoreReason.WRONG_MESH
    port = resolution.port
    if port is None or not 0 < port < 65536 or not resolution.hosts:
        return IgnoreReason.MALFORMED
    addresses = tuple(sorted({(host, port) for host in resolution.hosts}))
    return DiscoveredPeer(node_id, peer_mesh, addresses, DISCOVERY_VERSION)
