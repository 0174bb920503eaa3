"""mDNS / DNS-SD discovery: find the other nodes of a mesh on the local network.

Each node registers one DNS-SD service of type ``_meshedge._udp.local.`` named after
its node id, with a TXT record that carries its full node id (``id``), its mesh name
(``mesh``) and the discovery protocol version (``v``) (the record:
``meshedge.runtime._mdns_records``). It browses for the same type and reports the
services of *its* mesh as :class:`PeerFound` / :class:`PeerLost` events. Discovery only
proposes peers: admission is decided later by the wire and trust rules, since anyone on
the link can advertise anything.

python-zeroconf runs its own asyncio loop in its own thread. Every blocking zeroconf call
runs in a worker thread (:func:`trio.to_thread.run_sync`; zeroconf's side:
``meshedge.runtime._mdns_zeroconf``), so starting and stopping discovery never stalls the
trio event loop; zeroconf's browser callbacks only build an immutable value and hand it
to trio with :func:`trio.from_thread.run_sync`. That bridge is :class:`MdnsDiscovery`.

Use it as::

    async with open_mdns(node_id, "home", 7946, interfaces=["127.0.0.1"]) as discovery:
        async for event in discovery.events():
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Final

import trio
from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from .._errors import LocalProtocolError
from .._identity import NodeId
from ..wire._message import check_mesh_name
from ._addresses import is_ip
from ._exception_groups import unwrap_lone_exception
from ._mdns_records import (
    DISCOVERY_VERSION,
    RECORD_TTL,
    SERVICE_TYPE,
    DiscoveredPeer,
    DiscoveryEvent,
    IgnoreReason,
    PeerFound,
    PeerLost,
    Resolution,
    classify,
    instance_name,
    service_info,
)
from ._mdns_zeroconf import RESOLVE_TIMEOUT_MS, default_addresses, resolve_service, start_zeroconf

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


@dataclass(frozen=True, slots=True)
class _BrowseChange:
    """One browser callback, as zeroconf's thread hands it to trio."""

    name: str
    change: ServiceStateChange


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
        self._own_name = instance_name(node_id)
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

    async def _resolve(self, name: str) -> Resolution | None:
        zc = self._zeroconf
        assert zc is not None
        return await resolve_service(zc, name, self._limiter)

    def _apply_resolution(self, name: str, resolution: Resolution | None) -> None:
        """Accept, update or drop the peer behind ``name`` (sync, no I/O)."""
        if resolution is None:
            verdict: DiscoveredPeer | IgnoreReason = IgnoreReason.UNRESOLVED
        else:
            verdict = classify(name, resolution, self._node_id, self._mesh)
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
        if not isinstance(value, str) or not is_ip(value):
            raise LocalProtocolError(f"{what}: {value!r} is not an IP address")
    return list(values)


def _check_arguments(
    node_id: object, mesh: str, port: object, interfaces: object, addresses: object
) -> tuple[list[str] | None, list[str] | None]:
    """The ``interfaces`` and ``addresses`` of :func:`open_mdns`, checked, as lists.

    Raises:
        LocalProtocolError: an argument is unusable (see :func:`open_mdns`).
    """
    if not isinstance(node_id, NodeId):
        raise LocalProtocolError("node_id must be a NodeId")
    check_mesh_name(mesh)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise LocalProtocolError(f"port must be an integer in 1-65535, not {port!r}")
    return (
        None if interfaces is None else _check_ip_list(interfaces, "interfaces"),
        None if addresses is None else _check_ip_list(addresses, "addresses"),
    )


@asynccontextmanager
async def _serving(
    discovery: MdnsDiscovery,
    nursery: trio.Nursery,
    interfaces: list[str] | None,
    info: ServiceInfo,
) -> AsyncIterator[None]:
    """Run zeroconf, browse, and register ``info``, for the block's duration.

    On exit, shielded: the discovery stops reacting, the browser stops (its thread is
    joined: no callback runs after it), pending look-ups in ``nursery`` are cancelled,
    the service is withdrawn (goodbye packets) and zeroconf closes.
    """
    zc, pin_failed = await trio.to_thread.run_sync(start_zeroconf, interfaces)
    try:
        discovery._attach(nursery, zc, pin_failed=pin_failed)
        browser = await trio.to_thread.run_sync(
            partial(ServiceBrowser, zc, SERVICE_TYPE, handlers=[discovery._on_service_state_change])
        )
        registered = False
        try:
            # The instance name is the node's public key, unique by construction, so
            # skip the probe for conflicts (it makes registering take 1.7 s instead of
            # 0.45 s). Probing would also let anyone on the link keep a node from
            # starting by answering for its name.
            await trio.to_thread.run_sync(
                partial(zc.register_service, info, cooperating_responders=True)
            )
            registered = True
            # A cancel that arrived during the (uncancellable) registration takes
            # effect here, before the caller's block starts.
            await trio.lowlevel.checkpoint_if_cancelled()
            yield
        finally:
            discovery._close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(browser.cancel)
                nursery.cancel_scope.cancel()  # pending look-ups
                if registered:
                    await trio.to_thread.run_sync(zc.unregister_service, info)
    finally:
        discovery._close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zc.close)


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
    interfaces, addresses = _check_arguments(node_id, mesh, port, interfaces, addresses)
    discovery = MdnsDiscovery(node_id, mesh)
    if addresses is None:
        addresses = await trio.to_thread.run_sync(default_addresses, interfaces)
    info = service_info(node_id, mesh, port, addresses)
    try:
        # The look-up tasks never raise: a lone exception is the caller's own, or
        # zeroconf's while starting.
        with unwrap_lone_exception():
            async with trio.open_nursery() as nursery, _serving(
                discovery, nursery, interfaces, info
            ):
                yield discovery
    finally:
        discovery._close()
