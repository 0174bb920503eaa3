"""zeroconf's side of discovery: its sockets, its thread, and looking a service up.

python-zeroconf runs its own asyncio loop in its own thread. Every function here that
blocks is meant for a worker thread (:func:`trio.to_thread.run_sync`), so that starting
and stopping discovery never stalls the trio event loop; :func:`resolve_service` does
that itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import socket
import sys
from typing import Final

import ifaddr
import trio
import zeroconf
from zeroconf import InterfaceChoice, ServiceInfo, Zeroconf

from ._mdns_records import SERVICE_TYPE, Resolution

__all__ = [
    "RESOLVE_TIMEOUT_MS",
    "default_addresses",
    "is_loopback",
    "resolve_service",
    "start_zeroconf",
]

_log = logging.getLogger(__name__)

#: How long one look-up waits for answers, in milliseconds (zeroconf's own default).
#: A service that does not answer in time is counted as ``unresolved`` and looked up
#: again when zeroconf reports it next.
RESOLVE_TIMEOUT_MS: Final = 3000


def is_loopback(address: str) -> bool:
    """True for a loopback IP address (``127.0.0.0/8``, ``::1``)."""
    return ipaddress.ip_address(address).is_loopback


def default_addresses(interfaces: list[str] | None) -> list[str]:
    """What to advertise when the caller does not say: the interfaces, else all of ours.

    With all interfaces, loopback is left out (other hosts cannot reach it) unless the
    host has nothing else. Blocking (it reads the host's interfaces; nothing is sent).
    """
    if interfaces is not None:
        return list(interfaces)
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):  # IPv4; zeroconf's default is IPv4 only
                found.append(ip.ip)
    outside = [address for address in found if not is_loopback(address)]
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


def start_zeroconf(interfaces: list[str] | None) -> tuple[Zeroconf, bool]:
    """Blocking: open zeroconf's sockets and thread. Returns it and "pin failed".

    On Linux, with loopback ``interfaces`` only, every socket is bound to the loopback
    device, so that nothing is sent or answered elsewhere; "pin failed" is True when
    that could not be done (it is logged as a warning too).
    """
    zc = Zeroconf(interfaces=InterfaceChoice.All if interfaces is None else list(interfaces))
    pin_failed = False
    if (
        interfaces is not None
        and all(is_loopback(address) for address in interfaces)
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


async def resolve_service(
    zc: Zeroconf, name: str, limiter: trio.CapacityLimiter
) -> Resolution | None:
    """Look up SRV, TXT and addresses of one service; None when it does not answer.

    A checkpoint; waits up to :data:`RESOLVE_TIMEOUT_MS` in a worker thread taken from
    ``limiter``. ``ServiceInfo.request`` is ``async_request`` on zeroconf's loop plus a
    blocking wait for it; we do the same, waiting in a worker thread, so that a
    cancelled look-up can cancel the request and free its thread at once.
    """
    assert zc.loop is not None
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
            future.result, abandon_on_cancel=True, limiter=limiter
        )
    except (concurrent.futures.CancelledError, zeroconf.Error):
        return None
    finally:
        future.cancel()
    if not complete:
        return None
    return Resolution(
        properties=tuple(info.properties.items()),
        hosts=tuple(info.parsed_scoped_addresses()),
        port=info.port,
    )
