"""The envelope: how every core of one node signs what it sends and checks what it gets.

One :class:`Envelope` per node holds everything that makes a unit trustworthy or not:
the signer (its sequence counter), the mesh name, the trust policy, the keyring, the
wire limits, the signature scheme, the replay windows and the cache of statement
signatures already verified. The cores (membership, work stealing) sign, seal, open
and verify through it, so they share one sequence counter and one set of windows, and
every refusal is counted once, by its :class:`~meshedge._errors.DropReason`.

Two disciplines keep replays out, by message family
(:mod:`meshedge.wire._message_types`):

* direct messages pass a per-sender replay window. Datagrams and stream frames have a
  window each: a sender numbers both from one counter, and frames queued behind a busy
  TCP connection can lag far behind datagrams it signed later without being replays;
* statements are forwarded verbatim by everybody, so they skip the window; a statement
  whose signature was seen is skipped unverified (a duplicate), and a broadcast is
  delivered once per (origin, epoch, seq) by the broadcast window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, Final

from .._errors import DropReason, RemoteProtocolError
from .._identity import Identity, NodeId
from ..wire._datagram import datagram_room, open_frame, seal_datagram, seal_frame, split_datagram
from ..wire._keyring import Keyring
from ..wire._limits import DEFAULT_LIMITS, WireLimits
from ..wire._message import SignedMessage, Signer, verify_unit
from ..wire._message_types import DIRECT_TYPES, MessageType
from ..wire._replay import ReplayWindow
from ..wire._signature import ED25519, SignatureScheme
from ..wire._trust import TrustPolicy
from ._statistics import DropCounters, ReceiveCounters

__all__ = ["SIGNATURE_SIZE", "UNEXPECTED_REASONS", "Envelope"]

#: Bytes of the Ed25519 signature that ends every signed unit; the signature (or its
#: first bytes) names a statement.
SIGNATURE_SIZE: Final = 64
#: Drops of well-signed messages that the protocol refuses after verification (a type
#: out of place, an accusation at an unannounced key, a full member table);
#: ``statistics()["unexpected"]`` is their sum (:class:`~.statistics.DropCounters`).
UNEXPECTED_REASONS: Final = (
    DropReason.MISADDRESSED,
    DropReason.UNANNOUNCED_KEY,
    DropReason.MEMBERS_FULL,
    DropReason.APP_UNIT,
    DropReason.SYNC_BY_DATAGRAM,
    DropReason.NOT_A_STATEMENT,
    DropReason.PROBE_BY_STREAM,
    DropReason.STATEMENT_BY_STREAM,
    DropReason.MESSAGE_BY_DATAGRAM,
)


class Envelope:
    """Signing, sealing, opening and verifying for one node, with the drop counters.

    Args:
        identity: this node's key pair (its id is the public key).
        mesh: the mesh name; messages of other meshes are dropped.
        trust: which keys are accepted (open by default).
        keyring: mesh keys; when given, every datagram and frame is encrypted.
        limits: wire limits. ``limits.max_datagram_size`` caps every datagram.
        signatures: the signature scheme (the simulator may use a fast stand-in).
        max_senders: senders each replay window remembers (keep it above the mesh size).
        seen_cache_size: statement signatures remembered to skip re-verifying copies.

    Raises:
        LocalProtocolError: the mesh name is unusable.
    """

    __slots__ = (
        "identity",
        "mesh",
        "trust",
        "keyring",
        "limits",
        "signatures",
        "signer",
        "seen_cache_size",
        "_datagram_replay",
        "_stream_replay",
        "_broadcast_window",
        "_seen",
        "_room",
        "_stats",
        "_drops",
    )

    def __init__(
        self,
        identity: Identity,
        *,
        mesh: str,
        trust: TrustPolicy | None = None,
        keyring: Keyring | None = None,
        limits: WireLimits = DEFAULT_LIMITS,
        signatures: SignatureScheme = ED25519,
        max_senders: int = 4096,
        seen_cache_size: int = 65536,
    ) -> None:
        #: Signs every unit this node sends, numbering them.
        self.signer = Signer(identity, mesh=mesh, limits=limits, signatures=signatures)
        #: This node's key pair.
        self.identity = identity
        #: The mesh name.
        self.mesh = mesh
        #: The trust policy (None admits every key).
        self.trust = trust
        #: The mesh keys (None: nothing is encrypted).
        self.keyring = keyring
        #: The wire limits.
        self.limits = limits
        #: The signature scheme.
        self.signatures = signatures
        #: Bound of the seen-signature cache.
        self.seen_cache_size = seen_cache_size
        self._datagram_replay = ReplayWindow(max_senders=max_senders)
        self._stream_replay = ReplayWindow(max_senders=max_senders)
        self._broadcast_window = ReplayWindow(max_senders=max_senders)
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._room = datagram_room(limits, keyring)
        self._stats: dict[str, int] = {
            "packets_received": 0,
            "bytes_received": 0,
            "frames_received": 0,
            "frame_bytes_received": 0,
            "duplicates": 0,
        }
        self._drops: dict[str, int] = {reason.value: 0 for reason in DropReason}

    @property
    def id(self) -> NodeId:
        """This node's id."""
        return self.identity.node_id

    # ------------------------------------------------------------------ sending

    def sign(self, body: Any, *, type: int | None = None) -> bytes:
        """A signed unit of ``body`` from this node, with the next sequence number.

        ``body`` is a typed :class:`~meshedge.wire.bodies.Body` (its class gives the
        type) or plain data of ``type``.

        Raises:
            LocalProtocolError: the body is refused (see
                :func:`~meshedge.wire._message.sign_message`).
        """
        return self.signer.sign(body, type=type)

    def room(self) -> int:
        """Bytes of signed units that fit in one datagram (encryption accounted for)."""
        return self._room

    def seal_datagram(self, units: Sequence[bytes]) -> bytes:
        """Pack signed units into one datagram (encrypted with a keyring).

        Raises:
            LocalProtocolError: no units, too many, or too large.
        """
        return seal_datagram(units, keyring=self.keyring, limits=self.limits)

    def seal_frame(self, unit: bytes) -> bytes:
        """Wrap one signed unit as a stream frame body (encrypted with a keyring).

        Raises:
            LocalProtocolError: the frame would exceed ``limits.max_frame_size``.
        """
        return seal_frame(unit, keyring=self.keyring, limits=self.limits)

    def remember(self, unit: bytes) -> None:
        """Note a statement's signature, so copies of it are skipped unverified."""
        seen = self._seen
        seen[unit[-SIGNATURE_SIZE:]] = None
        if len(seen) > self.seen_cache_size:
            seen.popitem(last=False)

    # ------------------------------------------------------------------ receiving

    def open_datagram(self, data: bytes) -> Iterator[tuple[SignedMessage, bytes]]:
        """The verified units of a datagram, each with its signed bytes, in order.

        The datagram's framing is checked at once; each unit is checked when the caller
        asks for it, so a caller that handles a unit before asking for the next sees the
        cache of seen statements as that handling left it. A refused unit is counted
        and skipped (each unit is signed on its own): a statement already seen counts as
        a duplicate, a direct message must pass the datagram replay window, a statement
        is remembered, an APP unit is dropped (``app_unit``). Never raises for peer
        input.
        """
        stats = self._stats
        stats["packets_received"] += 1
        stats["bytes_received"] += len(data)
        try:
            units = split_datagram(data, keyring=self.keyring, limits=self.limits)
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return iter(())
        return self._verified(units)

    def _verified(self, units: list[bytes]) -> Iterator[tuple[SignedMessage, bytes]]:
        seen, drops = self._seen, self._drops
        mesh, trust, limits, signatures = self.mesh, self.trust, self.limits, self.signatures
        for unit in units:
            if unit[-SIGNATURE_SIZE:] in seen:
                self._stats["duplicates"] += 1
                continue
            try:
                message = verify_unit(unit, mesh, trust, None, limits, signatures)
            except RemoteProtocolError as exc:
                drops[exc.reason.value] += 1
                continue
            if message.type in DIRECT_TYPES:
                if not self._datagram_replay.accept(message.sender, message.epoch, message.seq):
                    drops[DropReason.REPLAYED.value] += 1
                    continue
            elif message.type == MessageType.APP:
                drops[DropReason.APP_UNIT.value] += 1
                continue
            else:
                self.remember(unit)
            yield message, unit

    def open_frame(self, data: bytes) -> SignedMessage | None:
        """The verified unit of a stream frame, or None (the refusal is counted).

        The frame passes the stream replay window whatever its type; which types may
        come by stream is for the caller to decide. Never raises for peer input.
        """
        self._stats["frames_received"] += 1
        self._stats["frame_bytes_received"] += len(data)
        try:
            return open_frame(
                data,
                mesh=self.mesh,
                keyring=self.keyring,
                trust=self.trust,
                replay=self._stream_replay,
                limits=self.limits,
                signatures=self.signatures,
            )
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return None

    def verify_forwarded(self, unit: bytes) -> SignedMessage | None:
        """A statement another node forwarded (anti-entropy), verified, or None.

        Forwarded statements are checked like any unit but pass no replay window and
        are not remembered; direct messages (``not_a_statement``) and APP units
        (``app_unit``) are refused. Refusals are counted.
        """
        try:
            message = verify_unit(unit, self.mesh, self.trust, None, self.limits, self.signatures)
        except RemoteProtocolError as exc:
            self._drops[exc.reason.value] += 1
            return None
        if message.type in DIRECT_TYPES:
            self._drops[DropReason.NOT_A_STATEMENT.value] += 1
            return None
        if message.type == MessageType.APP:
            self._drops[DropReason.APP_UNIT.value] += 1
            return None
        return message

    def accept_broadcast(self, message: SignedMessage) -> bool:
        """True the first time a broadcast (origin, epoch, seq) is seen; else a duplicate."""
        if self._broadcast_window.accept(message.sender, message.epoch, message.seq):
            return True
        self._stats["duplicates"] += 1
        return False

    # ------------------------------------------------------------------ counters

    def count_drop(self, reason: DropReason) -> None:
        """Count one message refused for ``reason`` by whoever handled it."""
        self._drops[reason.value] += 1

    def drops(self) -> dict[str, int]:
        """Refused messages so far, by :class:`~meshedge._errors.DropReason` value."""
        return dict(self._drops)

    def drop_counters(self) -> DropCounters:
        """Refused messages by reason, and ``unexpected``: the sum of the unexpected ones."""
        drops = dict(self._drops)
        unexpected = sum(drops[reason.value] for reason in UNEXPECTED_REASONS)
        return DropCounters(drops=drops, unexpected=unexpected)

    def counters(self) -> ReceiveCounters:
        """Datagrams and frames received (and their bytes), and duplicate statements."""
        return ReceiveCounters(**self._stats)

    def statistics(self) -> dict[str, int]:
        """:meth:`counters` as a dict."""
        return dict(self.counters().items())
