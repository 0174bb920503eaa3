"""Anti-entropy: SYNC exchanges over the stream transport, so views converge for sure.

Every push-pull period a node sends its state hash to one random ALIVE member; a peer
whose hash differs answers with its digest, and each side then sends the statements
(and retained broadcasts) the other lacks or holds in an older version. A join is a
full exchange with each seed, retried with back-off while the node is alone. Every
reconnect period a node also sends a digest to one random dead member, so the halves of
a healed partition find each other, and forgets the dead and left members older than
``dead_retention``.

Two rules keep anti-entropy from undoing the failure detector: statements merged from a
SYNC are applied as heard via anti-entropy (a DEAD only makes the member suspect, see
:mod:`meshedge.core._transitions`), and a member that the exchange reports dead or left
in the same breath as alive is not added when this node does not know it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Final

from .._identity import NodeId
from ..wire._message import SignedMessage
from ..wire._message_types import MessageType
from ..wire.bodies import DigestEntry, Sync
from ._dissemination import Dissemination
from ._envelope import Envelope
from ._member import Address, MemberState
from ._member_table import MemberRecord, MemberTable
from ._timing import Timing

__all__ = ["AntiEntropy", "StatementHandler"]

#: Members sampled to find an ALIVE partner for a push-pull exchange.
_PUSH_PULL_CANDIDATES: Final = 4

#: Applies one verified statement: ``(message, unit, now, via_sync)``.
StatementHandler = Callable[[SignedMessage, bytes, float, bool], None]


class AntiEntropy:
    """SYNC exchanges: push-pull, joins, reconnects, merges and dead-member retention.

    Args:
        table: the member table.
        envelope: signs, seals and verifies.
        dissemination: the update queue (forgotten members leave it) and the retained
            broadcasts.
        timing: protocol periods.
        rng: picks exchange partners.
        reply_to: this node's address, where answers go.
        on_statement: applies a verified statement merged from a SYNC.
    """

    __slots__ = (
        "_table",
        "_envelope",
        "_dissemination",
        "_timing",
        "_rng",
        "_on_statement",
        "reply_to",
        "seeds",
        "next_push_pull",
        "next_reconnect",
        "left",
        "stats",
        "_seed_backoff",
        "_frames",
    )

    def __init__(
        self,
        table: MemberTable,
        envelope: Envelope,
        dissemination: Dissemination,
        *,
        timing: Timing,
        rng: random.Random,
        reply_to: Address,
        on_statement: StatementHandler,
    ) -> None:
        self._table = table
        self._envelope = envelope
        self._dissemination = dissemination
        self._timing = timing
        self._rng = rng
        self._on_statement = on_statement
        #: This node's address, sent as where to answer.
        self.reply_to = reply_to
        #: Addresses contacted while this node is alone.
        self.seeds: list[Address] = []
        #: When the next push-pull exchange is due.
        self.next_push_pull = float("inf")
        #: When the next reconnect round (dead members, seeds, retention) is due.
        self.next_reconnect = float("inf")
        #: Set once this node has left: it starts no exchange.
        self.left = False
        #: Frames sent, and their bytes.
        self.stats: dict[str, int] = {"frames_sent": 0, "frame_bytes_sent": 0}
        self._seed_backoff = timing.probe_interval
        self._frames: list[tuple[bytes, Address]] = []

    def state_hash(self) -> bytes:
        """The fingerprint exchanged first: live members and retained broadcasts."""
        value = self._table.hash ^ self._dissemination.retained.hash
        return value.to_bytes(16, "big")

    def deadline(self) -> float:
        """The earliest of the next push-pull and reconnect rounds."""
        return min(self.next_push_pull, self.next_reconnect)

    def take_frames(self) -> list[tuple[bytes, Address]]:
        """The frames sent since the last call, with their destinations."""
        out, self._frames = self._frames, []
        return out

    # ------------------------------------------------------------------ rounds

    def join(self, seeds: list[Address], now: float) -> None:
        """Send a full exchange to each seed; retried with back-off while alone."""
        self.seeds = seeds
        self._seed_backoff = self._timing.probe_interval
        for seed in seeds:
            self.send_sync(seed, join=True)
        self.next_reconnect = now + self._seed_backoff

    def handle_timer(self, now: float) -> None:
        """Run the push-pull and reconnect rounds that are due."""
        if now >= self.next_push_pull:
            self.next_push_pull = now + self._timing.push_pull_period(self._table.alive_count)
            self._push_pull()
        if now >= self.next_reconnect:
            self._reconnect(now)

    def _push_pull(self) -> None:
        if self.left:
            return
        table = self._table
        for node_id in table.live.sample(self._rng, _PUSH_PULL_CANDIDATES):
            record = table[node_id]
            if record.state == MemberState.ALIVE:
                self.send_sync(record.address)
                return

    def _reconnect(self, now: float) -> None:
        timing, table = self._timing, self._table
        self.next_reconnect = now + timing.reconnect_interval
        retention = timing.dead_retention
        for node_id in [
            r.id for r in table if not r.state.is_live and now - r.state_since > retention
        ]:
            table.remove(node_id)
            self._dissemination.updates.discard(node_id)
        if self.left:
            return
        if table.alive_count <= 1 and self.seeds:
            for seed in self.seeds:
                self.send_sync(seed, join=True)
            self.next_reconnect = now + self._seed_backoff
            self._seed_backoff = min(2 * self._seed_backoff, timing.reconnect_interval)
        else:
            self._seed_backoff = timing.probe_interval
        # Alone or not, also try one member seen dead: when the seeds are gone for good,
        # this is how two lone nodes on either side of a healed partition meet again.
        dead = [r for r in table if r.state == MemberState.DEAD]
        if dead:
            self.send_sync(self._rng.choice(dead).address, digest=True)

    # ------------------------------------------------------------------ exchanges

    def send_sync(
        self,
        addr: Address,
        *,
        join: bool = False,
        digest: bool = False,
        statements: list[bytes] | None = None,
        want: list[NodeId] | None = None,
        want_broadcasts: list[bytes] | None = None,
    ) -> None:
        """Send one SYNC frame: the state hash, and what the flags and lists ask for."""
        retained = self._dissemination.retained
        sent_digest = sent_retained = sent_statements = None
        if digest or join:
            sent_digest = self._table.digest()
            if retained:
                sent_retained = retained.ids()
        if statements or join:
            # Our own current statements travel with every exchange we start or answer,
            # so a peer that thinks we are dead hears our refutation directly.
            own = self._table.own.statements()
            sent_statements = tuple(own + [u for u in statements or [] if u not in own])
        body = Sync(
            state_hash=self.state_hash(),
            reply_to=self.reply_to,
            digest=sent_digest,
            statements=sent_statements,
            wanted=tuple(want) if want else None,
            join=True if join else None,
            retained=sent_retained,
            wanted_broadcasts=tuple(want_broadcasts) if want_broadcasts else None,
        )
        data = self._envelope.seal_frame(self._envelope.sign(body))
        self._frames.append((data, addr))
        self.stats["frames_sent"] += 1
        self.stats["frame_bytes_sent"] += len(data)

    def receive(self, message: SignedMessage, now: float) -> None:
        """A verified SYNC: merge what it carries, answer what it asks for."""
        body: Sync = message.payload
        if body.statements is not None:
            self._merge(body.statements, now)
        reply: list[bytes] = []
        for node_id in body.wanted or ():
            record = self._table.get(node_id)
            if record is not None:
                reply += record.statements()
        retained = self._dissemination.retained
        for broadcast_id in body.wanted_broadcasts or ():
            unit = retained.get(broadcast_id)
            if unit is not None:
                reply.append(unit)
        want: list[NodeId] = []
        want_broadcasts: list[bytes] = []
        if body.digest is not None:
            send, want = self._compare(body.digest)
            for record in send:
                reply += record.statements()
            theirs = set(body.retained or ())
            reply += [u for i, (u, _) in retained.items() if i not in theirs]
            want_broadcasts = [i for i in theirs if i not in retained]
        if reply or want or want_broadcasts:
            self.send_sync(
                body.reply_to, statements=reply, want=want, want_broadcasts=want_broadcasts
            )
        elif (
            body.digest is None
            and body.statements is None
            and body.wanted is None
            and body.wanted_broadcasts is None
            and body.state_hash != self.state_hash()
        ):
            # A bare hash that differs from ours: answer with our digest.
            self.send_sync(body.reply_to, digest=True)

    def _compare(self, digest: Iterable[DigestEntry]) -> tuple[list[MemberRecord], list[NodeId]]:
        """From a peer's digest: which of our members to send, which of theirs to ask for."""
        theirs = {node_id: (epoch, inc, state) for node_id, epoch, inc, state in digest}
        send: list[MemberRecord] = []
        for record in self._table:
            rank = theirs.get(record.id)
            if rank is None:
                if record.state.is_live:
                    send.append(record)
            elif record.rank > rank:
                send.append(record)
        want: list[NodeId] = []
        for node_id, rank in theirs.items():
            known = self._table.get(node_id)
            if known is None:
                if MemberState(rank[2]).is_live:
                    want.append(node_id)
            elif rank > known.rank:
                want.append(node_id)
        return send, want

    def _merge(self, units: Iterable[bytes], now: float) -> None:
        verified: list[tuple[SignedMessage, bytes]] = []
        for unit in units:
            message = self._envelope.verify_forwarded(unit)
            if message is not None:
                verified.append((message, unit))
        # A death or departure of a member we do not know is not news worth adding.
        gone = {
            bytes(m.payload.target) if m.type == MessageType.DEAD else bytes(m.sender)
            for m, _ in verified
            if m.type in (MessageType.DEAD, MessageType.LEFT)
        }
        table = self._table
        for message, unit in verified:
            if (
                message.type == MessageType.ALIVE
                and table.get(message.sender) is None
                and bytes(message.sender) in gone
            ):
                continue
            self._on_statement(message, unit, now, True)
