"""Addresses: ``host:port`` text, IP literals, name resolution and binding the node's port.

A node listens for UDP and TCP on one port, and every address it hands to the cores is
an IP literal: names are resolved once, at start, in trio's resolver thread.
"""

from __future__ import annotations

import errno
import ipaddress
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import trio

from .._errors import LocalProtocolError
from ..core._member import Address

if TYPE_CHECKING:
    from ._transport import UdpEndpoint

__all__ = [
    "BIND_ATTEMPTS",
    "advertised_address",
    "bind_sockets",
    "format_address",
    "guess_advertise_host",
    "is_ip",
    "is_wildcard",
    "parse_address",
    "resolve",
]

#: Ports tried when binding to port 0, until one is free for both UDP and TCP.
BIND_ATTEMPTS: Final = 32


def parse_address(text: str, *, default_port: int | None = None) -> Address:
    """Read ``host:port`` (``[v6]:port`` for IPv6) into ``(host, port)``.

    Raises:
        LocalProtocolError: not of that form, or the port is out of range.
    """
    if not isinstance(text, str) or not text:
        raise LocalProtocolError(f"not an address: {text!r} (expected host:port)")
    host, sep, port_text = text.rpartition(":")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise LocalProtocolError(f"not an address: {text!r} (unclosed '[')")
        host, rest = text[1:end], text[end + 1 :]
        sep, port_text = (":", rest[1:]) if rest.startswith(":") else ("", "")
    elif text.count(":") > 1:  # a bare IPv6 literal without a port
        host, sep, port_text = text, "", ""
    if not sep:
        if default_port is None:
            raise LocalProtocolError(f"not an address: {text!r} (expected host:port)")
        host, port_text = (host or text), str(default_port)
    if not host:
        raise LocalProtocolError(f"not an address: {text!r} (no host)")
    try:
        port = int(port_text)
    except ValueError:
        raise LocalProtocolError(f"not an address: {text!r} (bad port)") from None
    if not 0 <= port <= 65535:
        raise LocalProtocolError(f"not an address: {text!r} (port out of range)")
    return host, port


def format_address(address: Address) -> str:
    """``(host, port)`` as ``host:port`` (``[v6]:port`` for IPv6)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 literal, an IPv6 zone (``fe80::1%eth0``) included.

    No name resolution ever happens here. Cached: the pump asks for every datagram.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_wildcard(host: str) -> bool:
    """True for the addresses that mean every interface (``0.0.0.0``, ``::``)."""
    return host in ("0.0.0.0", "::")


async def resolve(host: str, port: int) -> Address:
    """An IP literal for ``host``; a name resolves in trio's resolver thread.

    An IP literal comes back at once, without a checkpoint. Resolving a name is a
    checkpoint, and cancellation abandons its look-up.

    Raises:
        LocalProtocolError: the name does not resolve.
    """
    if is_ip(host):
        return host, port
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
    except OSError as exc:  # socket.gaierror: an unknown name is a configuration error
        raise LocalProtocolError(f"cannot resolve {host!r}: {exc}") from None
    if not infos:
        raise LocalProtocolError(f"cannot resolve {host!r}")
    return str(infos[0][4][0]), port


def guess_advertise_host() -> str:
    """The first non-loopback IPv4 address of this machine (read locally, nothing sent)."""
    import ifaddr

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                return ip.ip
    return "127.0.0.1"


async def advertised_address(advertise: str | None, bind_host: str, port: int) -> Address:
    """The address other nodes use for this one.

    ``advertise`` (``host:port`` text) when given, resolved by :func:`resolve`; else
    the bound address, with a wildcard host replaced by this machine's first
    non-loopback IPv4 address (read at once, no checkpoint).

    Raises:
        LocalProtocolError: ``advertise`` does not resolve.
    """
    if advertise is not None:
        return await resolve(*parse_address(advertise))
    return (guess_advertise_host() if is_wildcard(bind_host) else bind_host), port


async def bind_sockets(host: str, port: int) -> tuple[UdpEndpoint, list[trio.SocketListener]]:
    """The UDP socket and the TCP listener, bound to the same port (a checkpoint).

    With port 0 the kernel picks a free UDP port, which may be taken for TCP (by another
    listener, or as the local port of an outbound connection): then another is tried,
    up to :data:`BIND_ATTEMPTS` times. Cancelled part-way, nothing stays bound.

    Raises:
        OSError: the port is in use (or no common free port was found), or the address
            cannot be bound.
    """
    # Imported here: the transport module imports is_ip from this one.
    from ._transport import UdpEndpoint, tcp_listener

    attempt = 0
    while True:
        attempt += 1
        udp = UdpEndpoint.bind(host, port)
        try:
            return udp, [await tcp_listener(host, udp.port)]
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt >= BIND_ATTEMPTS:
                raise
        except BaseException:
            udp.close()
            raise
