"""Sockets: one UDP socket for probes and gossip, TCP streams of length-prefixed frames.

The stream transport carries anti-entropy (SYNC) and direct messages: each frame is a
4-byte big-endian length followed by one sealed signed unit (encrypted with a keyring).
Outbound connections are reused per peer address, bounded in number and closed when
idle; inbound connections are bounded too, and a peer that starts a frame must finish it
within ``frame_read_timeout``.
"""

from __future__ import annotations

import errno
import socket as stdlib_socket
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from .._errors import PeerUnavailableError
from ..core._member import Address
from ._addresses import is_ip

__all__ = [
    "FRAME_HEADER_SIZE",
    "FrameTimeout",
    "FrameTooLarge",
    "Links",
    "Place",
    "UdpEndpoint",
    "frame",
    "read_frames",
    "tcp_listener",
]

#: Bytes of the length prefix of a frame.
FRAME_HEADER_SIZE: Final = 4
_RECEIVE_SIZE: Final = 65536


def _unmap(host: str) -> str:
    """``::ffff:1.2.3.4`` (an IPv4 peer on a dual-stack socket) as ``1.2.3.4``."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def frame(data: bytes) -> bytes:
    """``data`` with its length prefix."""
    return len(data).to_bytes(FRAME_HEADER_SIZE, "big") + data


class FrameTooLarge(Exception):
    """A peer announced a frame larger than the limit."""


class FrameTimeout(Exception):
    """A peer started a frame and did not finish it within the frame timeout."""


class UdpEndpoint:
    """A bound UDP socket; sends are synchronous and never block (a full buffer drops).

    Sending synchronously keeps the pump simple: the core's output goes out in the
    same step that produced it.
    """

    def __init__(self, raw: stdlib_socket.socket) -> None:
        raw.setblocking(False)
        self._raw = raw
        self._sock = trio.socket.from_stdlib_socket(raw)
        self.family = raw.family
        #: Datagrams not sent, by cause ("buffer_full", "unreachable", "not_an_ip").
        self.send_errors: dict[str, int] = {"buffer_full": 0, "unreachable": 0, "not_an_ip": 0}

    @classmethod
    def bind(cls, host: str, port: int) -> UdpEndpoint:
        """Bind a UDP socket to an IP literal (dual-stack when ``host`` is ``::``)."""
        family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
        raw = stdlib_socket.socket(family, stdlib_socket.SOCK_DGRAM)
        try:
            if family == stdlib_socket.AF_INET6 and host == "::":
                raw.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 0)
            raw.bind((host, port))
        except BaseException:
            raw.close()
            raise
        return cls(raw)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._sock.getsockname()[1])

    def sendto(self, data: bytes, address: Address) -> bool:
        """Send one datagram now; False (and the cause counted) if it could not be sent."""
        host, port = address
        if not is_ip(host):
            self.send_errors["not_an_ip"] += 1
            return False
        if self.family == stdlib_socket.AF_INET6 and ":" not in host:
            host = "::ffff:" + host
        elif self.family == stdlib_socket.AF_INET and ":" in host:
            self.send_errors["unreachable"] += 1
            return False
        try:
            self._raw.sendto(data, (host, port))
        except BlockingIOError:
            self.send_errors["buffer_full"] += 1
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                self.send_errors["buffer_full"] += 1
            else:
                self.send_errors["unreachable"] += 1
            return False
        return True

    async def receive(self) -> tuple[bytes, Address]:
        """The next datagram and its source address (a checkpoint)."""
        while True:
            try:
                data, source = await self._sock.recvfrom(_RECEIVE_SIZE)
            except ConnectionRefusedError:
                continue  # an ICMP error for an earlier send; nothing to read
            return data, (_unmap(source[0]), int(source[1]))

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


async def tcp_listener(host: str, port: int) -> trio.SocketListener:
    """A TCP listener on an IP literal; on ``::`` it takes IPv4 connections too.

    (``trio.open_tcp_listeners`` makes IPv6 listeners IPv6-only, while the UDP socket on
    ``::`` is dual-stack: peers reaching a node over IPv4 could probe it but not open
    streams to it.)
    """
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        if family == stdlib_socket.AF_INET6:
            dual = host == "::"
            sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, int(not dual))
        await sock.bind((host, port))
        sock.listen(stdlib_socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def read_frames(
    stream: trio.abc.ReceiveStream,
    *,
    max_frame_size: int,
    idle_timeout: float,
    frame_timeout: float,
    on_frame: Callable[[bytes], Awaitable[None]],
) -> None:
    """Read length-prefixed frames from ``stream`` until EOF, passing each to ``on_frame``.

    Returns at EOF, or when no frame starts within ``idle_timeout``. Once the first byte
    of a frame has arrived, the whole frame must arrive within ``frame_timeout`` (one
    deadline per frame, not per chunk, so a peer that trickles a byte at a time cannot
    hold the connection). Time spent in ``on_frame`` does not count.

    Raises:
        FrameTooLarge: a frame above ``max_frame_size`` was announced.
        FrameTimeout: a frame took longer than ``frame_timeout``.
    """
    buffer = bytearray()
    frame_deadline: float | None = None  # when the frame being read must be complete
    while True:
        while len(buffer) >= FRAME_HEADER_SIZE:
            length = int.from_bytes(buffer[:FRAME_HEADER_SIZE], "big")
            if length > max_frame_size:
                raise FrameTooLarge(f"frame of {length} bytes")
            end = FRAME_HEADER_SIZE + length
            if len(buffer) < end:
                break
            data = bytes(buffer[FRAME_HEADER_SIZE:end])
            del buffer[:end]
            frame_deadline = None
            await on_frame(data)
        if buffer:
            if frame_deadline is None:
                frame_deadline = trio.current_time() + frame_timeout
            with trio.move_on_at(frame_deadline):
                chunk = await stream.receive_some(_RECEIVE_SIZE)
                if chunk:
                    buffer += chunk
                    continue
                return
            raise FrameTimeout(f"a frame of {len(buffer)} bytes so far took over {frame_timeout} s")
        with trio.move_on_after(idle_timeout):
            chunk = await stream.receive_some(_RECEIVE_SIZE)
            if chunk:
                buffer += chunk
                continue
        return


def _peer_closed(raw: stdlib_socket.socket) -> bool:
    """True if the peer closed or reset this outbound connection.

    Peers never write on a connection we opened, so anything readable (EOF, an error,
    stray bytes) means it is no longer a usable link. One non-blocking syscall.
    """
    try:
        raw.recv(1, stdlib_socket.MSG_PEEK | stdlib_socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


class Place:
    """A frame's place in the queue of writes to one address (see :meth:`Links.reserve`).

    ``ready`` is set once every frame queued before it is written or given up.
    """

    __slots__ = ("link", "ready")

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.ready = trio.Event()


class _Link:
    __slots__ = ("address", "stream", "raw", "last_used", "tail", "tail_written", "places")

    def __init__(self, address: Address) -> None:
        self.address = address
        self.stream: trio.SocketStream | None = None
        # The same socket as ``stream``, for the synchronous liveness check and writes.
        self.raw: stdlib_socket.socket | None = None
        self.last_used = 0.0
        # The unwritten end of a frame that ``try_send`` began, and the event set once
        # its writer task is done: later frames wait for it, so none interleave.
        self.tail = b""
        self.tail_written = trio.Event()
        # The frames waiting to be written, in the order they were reserved; only the
        # first one writes. While any waits, ``try_send`` must not overtake it.
        self.places: deque[Place] = deque()


class Links:
    """Outbound stream connections, one per peer address, reused and bounded.

    Frames for one address keep their order: :meth:`reserve` gives each a place in the
    link's queue at once, without waiting, and :meth:`send` writes it when all the
    frames reserved before it are written or given up, waiting while the peer's TCP
    window is full (backpressure).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        connect_timeout: float,
        nursery: trio.Nursery | None = None,
    ) -> None:
        self._links: OrderedDict[Address, _Link] = OrderedDict()
        self._max = max_connections
        self._connect_timeout = connect_timeout
        # Where the rest of a frame that ``try_send`` could only begin gets written.
        self._nursery = nursery
        #: Connections opened, and connection failures.
        self.opened = 0
        self.failures = 0

    def __len__(self) -> int:
        return sum(1 for link in self._links.values() if link.stream is not None)

    def try_send(self, address: Address, data: bytes) -> bool:
        """Write one frame now, without waiting, if the link to ``address`` is open and idle.

        Returns False, having written nothing, when the frame must go through
        :meth:`send` instead: no open connection, another write under way, a closed
        peer, or a full send buffer. Returns True once the frame is handed to the
        kernel; if the buffer took only part of it, the rest is written by a task of
        the nursery given at construction, before any later frame on this link.
        """
        link = self._links.get(address)
        if (
            self._nursery is None
            or link is None
            or link.raw is None
            or link.tail
            or link.places
            or _peer_closed(link.raw)
        ):
            return False
        try:
            sent = link.raw.send(data)
        except OSError:  # BlockingIOError (buffer full) included: send() waits and retries
            return False
        if sent < len(data):
            link.tail, link.tail_written = data[sent:], trio.Event()
            self._nursery.start_soon(self._write_tail, link)
        link.last_used = trio.current_time()
        self._links.move_to_end(address)
        return True

    async def _write_tail(self, link: _Link) -> None:
        """Write the end of a frame ``try_send`` began, in a task of its own.

        A sender's cancellation cannot cut it short (only the node's shutdown can). If
        the connection breaks now, that frame is lost with it, as is any frame the
        kernel had accepted but not yet delivered when a connection breaks.
        """
        # No other write runs meanwhile: ``send`` waits for the tail, and ``try_send``
        # refuses while there is one.
        try:
            if link.tail and link.stream is not None:
                await link.stream.send_all(link.tail)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.failures += 1
            await self._drop(link)
        except BaseException:
            await self._drop(link)
            raise
        finally:
            link.tail = b""
            link.tail_written.set()

    def reserve(self, address: Address) -> Place:
        """The next place in the queue of frames to ``address``; not a checkpoint.

        The caller must pass it to :meth:`send` or to :meth:`release`: until then, the
        frames reserved after it wait.
        """
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _Link(address)
        self._links.move_to_end(address)
        place = Place(link)
        if not link.places:
            place.ready.set()
        link.places.append(place)
        return place

    @staticmethod
    def release(place: Place) -> None:
        """Give up ``place`` (if it is still queued): the next frame may go."""
        places = place.link.places
        if place not in places:
            return
        first = places[0] is place
        places.remove(place)
        if first and places:
            places[0].ready.set()

    async def send(self, address: Address, data: bytes, place: Place | None = None) -> None:
        """Write one frame (with its prefix) to ``address``, connecting if needed.

        The frame goes after those reserved before ``place`` (by default, a place
        reserved now). Retries once on a fresh connection if the kept one turned out
        broken. Cancellation while waiting leaves the frame unsent; cancellation
        part-way through it closes the connection.

        Raises:
            PeerUnavailableError: cannot connect or write.
        """
        if place is None:
            place = self.reserve(address)
        try:
            await self._evict()
            await place.ready.wait()
            await self._send_on(place.link, data)
        finally:
            self.release(place)

    async def _send_on(self, link: _Link, data: bytes) -> None:
        address = link.address
        while link.tail:  # the end of a frame try_send began goes first
            await link.tail_written.wait()
        for attempt in range(2):
            if link.stream is not None and link.raw is not None and _peer_closed(link.raw):
                # The peer closed it (its idle timeout, a restart): a frame written
                # now would be accepted by our kernel and silently lost.
                await self._drop(link)
            if link.stream is None:
                link.stream, link.raw = await self._connect(address)
            try:
                await link.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                await self._drop(link)
                if attempt:
                    self.failures += 1
                    raise PeerUnavailableError(
                        f"connection to {address[0]}:{address[1]} broke: {exc}"
                    ) from None
                continue
            except BaseException:
                # Cancelled part-way: the stream may now end inside a frame, and the
                # next frame written after it would be garbage to the peer.
                await self._drop(link)
                raise
            link.last_used = trio.current_time()
            return

    async def _connect(self, address: Address) -> tuple[trio.SocketStream, stdlib_socket.socket]:
        host, port = address
        if not is_ip(host):
            self.failures += 1
            raise PeerUnavailableError(f"{host!r} is not an IP address")
        family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
        raw = stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM)
        raw.setblocking(False)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            with trio.fail_after(self._connect_timeout):
                await sock.connect((host, port))
        except (OSError, trio.TooSlowError) as exc:
            sock.close()
            self.failures += 1
            raise PeerUnavailableError(f"cannot connect to {host}:{port}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        self.opened += 1
        return trio.SocketStream(sock), raw

    async def _drop(self, link: _Link) -> None:
        stream, link.stream, link.raw, link.tail = link.stream, None, None, b""
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _evict(self) -> None:
        while len(self._links) > self._max:
            for address, link in self._links.items():
                if not (link.places or link.tail):
                    del self._links[address]
                    await self._drop(link)
                    break
            else:
                return

    async def close_idle(self, idle_timeout: float) -> None:
        """Close connections unused for ``idle_timeout`` seconds."""
        now = trio.current_time()
        for address, link in list(self._links.items()):
            busy = link.places or link.tail
            if not busy and now - link.last_used > idle_timeout:
                del self._links[address]
                await self._drop(link)

    async def aclose(self) -> None:
        """Close every connection."""
        for link in list(self._links.values()):
            await self._drop(link)
        self._links.clear()
