"""Outbound links: the immediate write path and the frames it must not break."""

from __future__ import annotations

import socket

import trio
import trio.testing

from meshedge.runtime._transport import FRAME_HEADER_SIZE, Links, frame, read_frames, tcp_listener


async def _collector(
    listener: trio.SocketListener, frames: list[bytes], reading: trio.Event, last: trio.Event
) -> None:
    """Accept connections one after another; read nothing until ``reading`` is set."""

    async def keep(data: bytes) -> None:
        frames.append(data)
        if data == b"last":
            last.set()

    while True:
        stream = await listener.accept()
        await reading.wait()  # until then the sender's buffers fill up
        async with stream:
            await read_frames(
                stream, max_frame_size=1 << 24, idle_timeout=30.0, frame_timeout=30.0, on_frame=keep
            )


async def test_try_send_writes_at_once_and_finishes_partial_frames_first() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    address = ("127.0.0.1", int(listener.socket.getsockname()[1]))
    frames: list[bytes] = []
    reading, last = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collector, listener, frames, reading, last)
        links = Links(max_connections=4, connect_timeout=5.0, nursery=nursery)
        # No connection yet: nothing is written, the caller must use send().
        assert not links.try_send(address, frame(b"first"))
        await links.send(address, frame(b"first"))
        # An open idle link: written at once.
        assert links.try_send(address, frame(b"second"))
        # Fill the socket buffers until the kernel takes only part of a frame.
        big = [frame(bytes([n]) * 300_000) for n in range(1, 60)]
        written = 0
        for data in big:
            if not links.try_send(address, data):
                break
            written += 1
        assert 0 < written < len(big), "the buffers never filled"
        # A partial frame is pending (or the buffer was full): later frames wait behind it
        # and a cancelled sender does not cut it short.
        with trio.CancelScope() as scope:

            async def cancel_once_blocked() -> None:
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()

            nursery.start_soon(cancel_once_blocked)
            await links.send(address, frame(b"cancelled"))
        assert scope.cancelled_caught
        assert not links.try_send(address, frame(b"refused while a frame is unfinished"))
        reading.set()
        await links.send(address, frame(b"last"))
        with trio.fail_after(10):
            await last.wait()
        await links.aclose()
        listener.socket.close()
        nursery.cancel_scope.cancel()
    # Intact and in order; the cancelled send may be missing, nothing else is.
    expected = [b"first", b"second", *(data[FRAME_HEADER_SIZE:] for data in big[:written])]
    assert frames[: len(expected)] == expected
    assert frames[-1] == b"last"
    assert set(frames[len(expected) : -1]) <= {b"cancelled"}


async def test_frames_to_one_address_go_in_the_order_their_places_were_reserved() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    address = ("127.0.0.1", int(listener.socket.getsockname()[1]))
    frames: list[bytes] = []
    reading, last = trio.Event(), trio.Event()
    reading.set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collector, listener, frames, reading, last)
        links = Links(max_connections=4, connect_timeout=5.0, nursery=nursery)
        # Reserved first, written last-started: the later send() waits for it.
        first = links.reserve(address)
        given_up = links.reserve(address)
        nursery.start_soon(links.send, address, frame(b"second"))
        await trio.testing.wait_all_tasks_blocked()
        assert frames == []
        links.release(given_up)  # a place given up lets the frames behind it go
        await links.send(address, frame(b"first"), first)
        # An open link, but a frame still queued: try_send must not overtake it.
        queued = links.reserve(address)
        assert not links.try_send(address, frame(b"refused while a frame is queued"))
        await links.send(address, frame(b"third"), queued)
        assert links.try_send(address, frame(b"last"))
        with trio.fail_after(10):
            await last.wait()
        await links.aclose()
        listener.socket.close()
        nursery.cancel_scope.cancel()
    assert frames == [b"first", b"second", b"third", b"last"]


async def test_a_listener_on_the_ipv6_wildcard_takes_ipv4_connections_too() -> None:
    # Only loopback connections are made; the wildcard bind itself sends nothing.
    listener = await tcp_listener("::", 0)
    port = int(listener.socket.getsockname()[1])
    async with listener:
        for host in ("127.0.0.1", "::1"):
            client = await trio.open_tcp_stream(host, port)
            async with client, await listener.accept() as server:
                await client.send_all(b"ping")
                assert await server.receive_some(4) == b"ping"


async def test_a_listener_on_one_ipv6_address_stays_ipv6_only() -> None:
    listener = await tcp_listener("::1", 0)
    port = int(listener.socket.getsockname()[1])
    async with listener:
        assert listener.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        client = await trio.open_tcp_stream("::1", port)
        async with client, await listener.accept():
            pass
