"""What the core asks its driver to send, and the sizes that bound one message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..._identity import NodeId
from ...wire._cbor import encode
from ...wire.bodies import Body, Cancel, Lease

__all__ = ["IDS_PER_MESSAGE", "Outbox", "Outgoing", "encoded_size"]

#: Ids (or results) in one LEASE, CANCEL or RESULTS message; the wire schema allows 8192.
IDS_PER_MESSAGE: Final = 4096


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` in CBOR; a value that does not encode counts as far too large."""
    try:
        return len(encode(value))
    except (TypeError, ValueError, OverflowError):
        return 1 << 62


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to sign and send; its type is ``body.TYPE``."""

    #: The member it goes to.
    peer: NodeId
    #: The typed body.
    body: Body
    #: True: by stream (in order, retried by the transport); False: one datagram.
    reliable: bool


class Outbox:
    """The messages the stealing parts have queued since the driver last took them."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Outgoing] = []

    def send(self, peer: NodeId, body: Body, *, reliable: bool) -> None:
        """Queue ``body`` for ``peer``."""
        self._items.append(Outgoing(peer, body, reliable))

    def send_lease(
        self, origin: NodeId, ids: Sequence[bytes], holder: NodeId | None = None
    ) -> None:
        """Tell ``origin`` that its tasks ``ids`` are held (by ``holder``, or the sender)."""
        for start in range(0, len(ids), IDS_PER_MESSAGE):
            chunk = tuple(ids[start : start + IDS_PER_MESSAGE])
            self._items.append(Outgoing(origin, Lease(chunk, holder), True))

    def send_cancel(self, holder: NodeId, ids: Sequence[bytes]) -> None:
        """Tell ``holder`` that the tasks ``ids`` are no longer wanted."""
        for start in range(0, len(ids), IDS_PER_MESSAGE):
            chunk = tuple(ids[start : start + IDS_PER_MESSAGE])
            self._items.append(Outgoing(holder, Cancel(chunk), True))

    def take(self) -> list[Outgoing]:
        """Everything queued, oldest first; the outbox is empty afterwards."""
        out, self._items = self._items, []
        return out
