"""mDNS / DNS-SD discovery: find the other nodes of a mesh on the local network.

Each node registers one DNS-SD service of type ``_meshedge._udp.local.`` named after
its node id, with a TXT record that carries its full node id (``id``), its mesh name
(``mesh``) and the discovery protocol version (``v``). It browses for the same type and
reports the services of *its* mesh as :class:`PeerFound` / :class:`PeerLost` events.
Discovery only proposes peers: admission is decided later by the wire and trust rules,
since anyone on the link can advertise anything.

python-zeroconf runs its own asyncio loop in its own thread. Every blocking zeroconf call
runs in a worker thread (:func:`trio.to_thread.run_sync`), so starting and stopping
discovery never stalls the trio event loop; zeroconf's browser callbacks only build an
immutable value and hand it to trio with :func:`trio.from_thread.run_sync`.

Use it as::

    async with open_mdns(node_id, "home", 7946, interfaces=["127.0.0.1"]) as discovery:
        async for event in discovery.events():
            ...
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import ipaddress
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Final

import ifaddr
import trio
import zeroconf
from zeroconf import InterfaceChoice, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from ..errors import LocalProtocolError
from ..identity import NodeId
from ..wire.message import check_mesh_name

__all__ = [
    "DISCOVERY_VERSION",
    "EVENT_BUFFER_SIZE",
    "MAX_CONCURRENT_RESOLUTIONS",
    "MAX_SERVICES",
    "RECORD_TTL",
    "RESOLVE_TIMEOUT_MS",
    "SERVICE_TYPE",
    "DiscoveredPeer",
    "DiscoveryEvent",
    "IgnoreReason",
    "MdnsDiscovery",
    "PeerFound",
    "PeerLost",
    "open_mdns",
]

_log = logging.getLogger(__name__)

#: The DNS-SD service type every meshedge node registers and browses.
SERVICE_TYPE: Final = "_meshedge._udp.local."
#: The version of this discovery record (TXT key ``v``); other versions are ignored.
DISCOVERY_VERSION: Final = 1
#: Events waiting for the consumer of :meth:`MdnsDiscovery.events`. A LAN segment holds
#: far fewer meshedge nodes than this; beyond it, events are dropped and counted (the
#: current set of peers stays available from :meth:`MdnsDiscovery.peers`).
EVENT_BUFFER_SIZE: Final = 256
#: Services of our type tracked at once (peers, other meshes and pending look-ups
#: together), so that a flood of fake advertisements cannot grow memory without bound.
MAX_SERVICES: Final = 1024
#: Service look-ups (SRV, TXT and address queries) in flight at once: each one holds a
#: worker thread while it waits, and most are answered from zeroconf's cache anyway.
MAX_CONCURRENT_RESOLUTIONS: Final = 4
#: How long one look-up waits for answers, in milliseconds (zeroconf's own default).
#: A service that does not answer in time is counted as ``unresolved`` and looked up
#: again when zeroconf reports it next.
RESOLVE_TIMEOUT_MS: Final = 3000
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
    #: No complete answer (SRV, TXT, an address) within :data:`RESOLVE_TIMEOUT_MS`.
    UNRESOLVED = "unresolved"
    #: More than :data:`MAX_SERVICES` services were tracked already.
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


#: What :meth:`MdnsDiscovery.events` yields.
DiscoveryEvent = PeerFound | PeerLost


@dataclass(frozen=True, slots=True)
class _BrowseChange:
    """One browser callback, as zeroconf's thread hands it to trio."""

    name: str
    change: ServiceStateChange


@dataclass(frozen=True, slots=True)
class _Resolution:
    """The answer to one service look-up, copied out of zeroconf's objects."""

    properties: tuple[tuple[bytes, bytes | None], ...]
    hosts: tuple[str, ...]
    port: int | None


def _instance_name(node_id: NodeId) -> str:
    """The service instance name of a node: its full node id (52 characters)."""
    return f"{node_id}.{SERVICE_TYPE}"


def _classify(
    name: str,
    resolution: _Resolution,
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
    if name.lower() != _instance_name(node_id):
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


class MdnsDiscovery:
    """The running discovery of one node; made by :func:`open_mdns`, not directly.

    All methods are synchronous, never block, and must be called from the trio thread
    that opened it.
    """

    def __init__(
        self,
        node_id: NodeId,
        mesh: str,
        *,
        event_buffer_size: int = EVENT_BUFFER_SIZE,
    ) -> None:
        self._node_id = node_id
        self._mesh = mesh
        self._own_name = _instance_name(node_id)
        self._send_channel, self._receive_channel = trio.open_memory_channel[DiscoveryEvent](
            event_buffer_size
        )
        # Captured here, on the trio thread, for zeroconf's thread to call back into.
        self._token = trio.lowlevel.current_trio_token()
        self._peers: dict[NodeId, DiscoveredPeer] = {}
        # Service name -> id of the accepted peer behind it (names match ids 1:1).
        self._peer_by_name: dict[str, NodeId] = {}
        # Names the browser currently reports as present (lower case, as DNS compares).
        self._advertised: set[str] = set()
        self._resolving: set[str] = set()
        # Names that changed again while a look-up was in flight: look up once more.
        self._stale: set[str] = set()
        self._counters: dict[str, int] = {
            "found": 0,
            "updated": 0,
            "lost": 0,
            "events_dropped": 0,
            "loopback_pin_failed": 0,
        }
        for reason in IgnoreReason:
            self._counters[f"ignored_{reason.value}"] = 0
        self._nursery: trio.Nursery | None = None
        self._zeroconf: Zeroconf | None = None
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_RESOLUTIONS)
        self._closed = False

    @property
    def node_id(self) -> NodeId:
        """This node's id, as advertised in the TXT record."""
        return self._node_id

    @property
    def mesh(self) -> str:
        """The mesh this discovery advertises and browses for."""
        return self._mesh

    def peers(self) -> dict[NodeId, DiscoveredPeer]:
        """A snapshot of the peers of our mesh that are advertised right now.

        Returns:
            A new dict (changing it changes nothing here), keyed by node id.
        """
        return dict(self._peers)

    def events(self) -> trio.MemoryReceiveChannel[DiscoveryEvent]:
        """The stream of :class:`PeerFound` and :class:`PeerLost` events.

        Iterate it with ``async for``; each receive is a checkpoint, and cancelling it
        loses no event. There is one stream per discovery: use one consumer task. It
        ends when the ``open_mdns`` block exits. Events that find the buffer
        (:data:`EVENT_BUFFER_SIZE`) full are dropped and counted as
        ``events_dropped``; :meth:`peers` stays exact either way.
        """
        return self._receive_channel

    def statistics(self) -> dict[str, int]:
        """Counters since start, as a new dict.

        Keys: ``peers`` (current number), ``found``, ``updated`` (addresses of a known
        peer changed), ``lost``, ``events_dropped``, ``loopback_pin_failed`` (1 when
        the loopback-only sockets could not be bound to the loopback device), and one
        ``ignored_<reason>`` per :class:`IgnoreReason` value.
        """
        return {"peers": len(self._peers), **self._counters}

    # -- called on zeroconf's browser thread -------------------------------------------

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """ServiceBrowser handler: runs on zeroconf's thread, hands the change to trio.

        zeroconf calls it with these keyword names; it must neither block on trio's
        state nor raise.
        """
        change = _BrowseChange(name, state_change)
        with suppress(trio.RunFinishedError):  # trio has exited: nobody is left to tell
            trio.from_thread.run_sync(self._on_browse_change, change, trio_token=self._token)

    # -- trio side ---------------------------------------------------------------------

    def _on_browse_change(self, change: _BrowseChange) -> None:
        """Track one browser callback (on the trio thread, never blocks, never raises)."""
        if self._closed:
            return
        name = change.name.lower()
        if change.change is ServiceStateChange.Removed:
            self._advertised.discard(name)
            self._stale.discard(name)
            self._forget(name)
            return
        if name == self._own_name:
            self._count(IgnoreReason.OWN)
            return
        if name not in self._advertised:
            if len(self._advertised) >= MAX_SERVICES:
                self._count(IgnoreReason.TOO_MANY)
                return
            self._advertised.add(name)
        if name in self._resolving:
            self._stale.add(name)
            return
        assert self._nursery is not None
        self._resolving.add(name)
        self._nursery.start_soon(self._resolve_and_apply, name)

    async def _resolve_and_apply(self, name: str) -> None:
        try:
            while True:
                self._stale.discard(name)
                resolution = await self._resolve(name)
                if name not in self._stale:
                    break
            if name in self._advertised and not self._closed:
                self._apply_resolution(name, resolution)
        finally:
            self._resolving.discard(name)

    async def _resolve(self, name: str) -> _Resolution | None:
        """Look up SRV, TXT and addresses of one service; None when it does not answer.

        ``ServiceInfo.request`` is ``async_request`` on zeroconf's loop plus a blocking
        wait for it; we do the same, waiting in a worker thread, so that a cancelled
        look-up can cancel the request and free its thread at once.
        """
        zc = self._zeroconf
        assert zc is not None and zc.loop is not None
        try:
            info = ServiceInfo(SERVICE_TYPE, name)  # the name comes from the network
            future = asyncio.run_coroutine_threadsafe(
                info.async_request(zc, RESOLVE_TIMEOUT_MS), zc.loop
            )
        except zeroconf.Error:
            return None
        except RuntimeError:  # zeroconf's loop is already closed
            return None
        try:
            complete = await trio.to_thread.run_sync(
                future.result, abandon_on_cancel=True, limiter=self._limiter
            )
        except (concurrent.futures.CancelledError, zeroconf.Error):
            return None
        finally:
            future.cancel()
        if not complete:
            return None
        return _Resolution(
            properties=tuple(info.properties.items()),
            hosts=tuple(info.parsed_scoped_addresses()),
            port=info.port,
        )

    def _apply_resolution(self, name: str, resolution: _Resolution | None) -> None:
        """Accept, update or drop the peer behind ``name`` (sync, no I/O)."""
        if resolution is None:
            verdict: DiscoveredPeer | IgnoreReason = IgnoreReason.UNRESOLVED
        else:
            verdict = _classify(name, resolution, self._node_id, self._mesh)
        if isinstance(verdict, IgnoreReason):
            self._count(verdict)
            if verdict is not IgnoreReason.UNRESOLVED:
                self._forget(name)  # a peer whose record turned bad is no longer one
            return
        known = self._peers.get(verdict.node_id)
        if known == verdict:
            return
        self._peers[verdict.node_id] = verdict
        self._peer_by_name[name] = verdict.node_id
        self._counters["updated" if known is not None else "found"] += 1
        self._emit(PeerFound(verdict))

    def _forget(self, name: str) -> None:
        node_id = self._peer_by_name.pop(name, None)
        if node_id is None:
            return
        del self._peers[node_id]
        self._counters["lost"] += 1
        self._emit(PeerLost(node_id))

    def _emit(self, event: DiscoveryEvent) -> None:
        try:
            self._send_channel.send_nowait(event)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self._counters["events_dropped"] += 1

    def _count(self, reason: IgnoreReason) -> None:
        self._counters[f"ignored_{reason.value}"] += 1

    def _attach(self, nursery: trio.Nursery, zc: Zeroconf, *, pin_failed: bool) -> None:
        self._nursery = nursery
        self._zeroconf = zc
        self._counters["loopback_pin_failed"] = int(pin_failed)

    def _close(self) -> None:
        """Stop reacting to zeroconf, and end the event stream."""
        self._closed = True
        self._send_channel.close()


def _check_ip_list(values: object, what: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise LocalProtocolError(f"{what} must be a non-empty list of IP address strings")
    for value in values:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise LocalProtocolError(f"{what}: {value!r} is not an IP address") from None
    return list(values)


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def _default_addresses(interfaces: list[str] | None) -> list[str]:
    """What to advertise when the caller does not say: the interfaces, else all of ours.

    With all interfaces, loopback is left out (other hosts cannot reach it) unless the
    host has nothing else.
    """
    if interfaces is not None:
        return list(interfaces)
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):  # IPv4; zeroconf's default is IPv4 only
                found.append(ip.ip)
    outside = [address for address in found if not _is_loopback(address)]
    return outside or found or ["127.0.0.1"]


def _loopback_device(address: str) -> str:
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if (ip.ip if isinstance(ip.ip, str) else ip.ip[0]) == address:
                return adapter.name
    return "lo"  # 127.0.0.2 and friends are not listed, but live on Linux's "lo"


def _pin_to_loopback(zc: Zeroconf, device: str) -> None:
    """Bind every zeroconf socket to the loopback device (Linux ``SO_BINDTODEVICE``).

    zeroconf always listens on a wildcard socket (``0.0.0.0:5353``) and answers a
    unicast query through the socket it came in on. Without this, a node told to use
    only 127.0.0.1 would still answer a query that arrives on the LAN, on the LAN.
    """
    for wrapped in [*zc.engine.readers, *zc.engine.senders]:
        wrapped.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())


def _start_zeroconf(interfaces: list[str] | None) -> tuple[Zeroconf, bool]:
    """Blocking: open zeroconf's sockets and thread. Returns it and "pin failed"."""
    zc = Zeroconf(interfaces=InterfaceChoice.All if interfaces is None else list(interfaces))
    pin_failed = False
    if (
        interfaces is not None
        and all(_is_loopback(address) for address in interfaces)
        and sys.platform == "linux"
    ):
        try:
            _pin_to_loopback(zc, _loopback_device(interfaces[0]))
        except OSError as error:
            pin_failed = True
            _log.warning(
                "could not bind zeroconf's sockets to the loopback device (%s); "
                "queries that arrive on other interfaces may be answered there",
                error,
            )
    return zc, pin_failed


@asynccontextmanager
async def open_mdns(
    node_id: NodeId,
    mesh: str,
    port: int,
    *,
    interfaces: list[str] | None,
    addresses: list[str] | None = None,
) -> AsyncIterator[MdnsDiscovery]:
    """Advertise this node over mDNS and discover the other nodes of its mesh.

    On entry it opens zeroconf on ``interfaces``, starts browsing for
    ``_meshedge._udp.local.`` and registers this node's service; on exit it withdraws
    the service (goodbye packets, so that peers see :class:`PeerLost` at once), stops
    browsing, closes zeroconf and joins its threads. Every blocking zeroconf call runs
    in a worker thread, so neither entry nor exit stalls the trio event loop.

    Entry and exit are checkpoints. Cancelling entry while a zeroconf call is running
    waits for that call (at most about a second) and then cleans up; exit always runs
    to completion, shielded from cancellation, so the service is never left behind.

    Args:
        node_id: this node's id; the instance name and the TXT ``id`` are its text form.
        mesh: the mesh name (TXT ``mesh``); services of other meshes are ignored.
        port: the UDP/TCP port other nodes should use to reach this node.
        interfaces: local IP addresses whose interfaces mDNS uses, such as
            ``["127.0.0.1"]``; ``None`` means every interface (IPv4) of the host.
            Required, so that no caller gets the whole LAN by accident. A list of
            loopback addresses only keeps every packet on the loopback device.
        addresses: the IP addresses to advertise; by default the ``interfaces``, or
            every non-loopback IPv4 address of the host when ``interfaces`` is None.

    Yields:
        The running :class:`MdnsDiscovery`.

    Raises:
        LocalProtocolError: an argument is unusable (empty or too long mesh name, port
            outside 1-65535, an entry that is not an IP address).
        zeroconf.Error: zeroconf could not start or register (for example, port 5353
            cannot be bound).
    """
    if not isinstance(node_id, NodeId):
        raise LocalProtocolError("node_id must be a NodeId")
    check_mesh_name(mesh)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise LocalProtocolError(f"port must be an integer in 1-65535, not {port!r}")
    if interfaces is not None:
        interfaces = _check_ip_list(interfaces, "interfaces")
    if addresses is not None:
        addresses = _check_ip_list(addresses, "addresses")

    discovery = MdnsDiscovery(node_id, mesh)
    if addresses is None:
        addresses = await trio.to_thread.run_sync(_default_addresses, interfaces)
    info = ServiceInfo(
        SERVICE_TYPE,
        _instance_name(node_id),
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

    unwrapped: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            zc, pin_failed = await trio.to_thread.run_sync(_start_zeroconf, interfaces)
            try:
                discovery._attach(nursery, zc, pin_failed=pin_failed)
                browser = await trio.to_thread.run_sync(
                    partial(
                        ServiceBrowser,
                        zc,
                        SERVICE_TYPE,
                        handlers=[discovery._on_service_state_change],
                    )
                )
                registered = False
                try:
                    # The instance name is the node's public key, unique by construction,
                    # so skip the probe for conflicts (it makes registering take 1.7 s
                    # instead of 0.45 s). Probing would also let anyone on the link keep
                    # a node from starting by answering for its name.
                    await trio.to_thread.run_sync(
                        partial(zc.register_service, info, cooperating_responders=True)
                    )
                    registered = True
                    # A cancel that arrived during the (uncancellable) registration takes
                    # effect here, before the caller's block starts.
                    await trio.lowlevel.checkpoint_if_cancelled()
                    yield discovery
                finally:
                    discovery._close()
                    with trio.CancelScope(shield=True):
                        # Joins the browser thread: no callback runs after this.
                        await trio.to_thread.run_sync(browser.cancel)
                        nursery.cancel_scope.cancel()  # pending look-ups
                        if registered:
                            await trio.to_thread.run_sync(zc.unregister_service, info)
            finally:
                discovery._close()
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(zc.close)
    except BaseExceptionGroup as group:
        # The nursery wraps whatever was raised inside it (by the caller's block, or by
        # zeroconf while starting) in a group; the look-up tasks never raise, so a lone
        # exception is the caller's own or ours to report: raise it as it is.
        if len(group.exceptions) != 1:
            raise
        unwrapped = group.exceptions[0]
    finally:
        discovery._close()
    if unwrapped is not None:
        raise unwrapped
