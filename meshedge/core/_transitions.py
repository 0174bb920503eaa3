"""Membership transitions as data: what one statement about a member does to a view.

A *statement* is a signed ALIVE, SUSPECT, DEAD or LEFT unit. What it does depends on
three things only: the state of the member's record, the kind of statement (and whether
it was heard through anti-entropy), and how the (epoch, incarnation) *key* it names
compares with the record's key. :data:`TRANSITIONS` spells out every combination for
members other than this node, :data:`ABOUT_SELF` for this node itself, and
:meth:`StatementApplier.apply` is the one function that carries a row out.

Rule 1: A statement names a key: ALIVE and LEFT the key of their signer (the member
        itself), SUSPECT and DEAD the key of the member they accuse. A statement whose
        key is older than the record's changes nothing.
Rule 2: At one key the states rank ALIVE < SUSPECT < DEAD < LEFT (``MemberState``'s
        values): a SUSPECT outranks the ALIVE it is about and a DEAD outranks both. A
        state changes only to a higher (epoch, incarnation, state) rank, and the only way
        back to ALIVE is an ALIVE at a newer key: the member refuting, announcing new
        tags or a new address, or restarting with a larger epoch.
Rule 3: An accuser may only name a key the member itself announced (its ALIVE travels
        first). A SUSPECT or DEAD naming a newer key is refused and counted
        (``unannounced_key``): it could never be refuted, and a huge incarnation would
        overflow the refutation.
Rule 4: LEFT is said by the member itself (its body names no target), so it may name a
        newer key. It is final for its key: once LEFT, a member changes only through an
        ALIVE at a newer key (a new life, or a new incarnation), which is a new join.
Rule 5: Heard through anti-entropy, a DEAD counts as a SUSPECT (memberlist): a member
        that is in fact alive, on the other side of a healed partition, gets its
        suspicion timeout to refute. (Its DEAD unit is what this node then holds and
        gossips.)
Rule 6: A SUSPECT (or, by Rule 5, a DEAD heard through anti-entropy) at the key of a
        member already SUSPECT is a Lifeguard confirmation: it shortens the suspicion
        timeout and is gossiped once per distinct accuser. It changes no state.
Rule 7: Statements about this node never change its own record. An ALIVE of its own
        newer than its current one (a statement of a clone or of a previous record), and
        a SUSPECT or DEAD at its current key, are refuted: it signs a new ALIVE at a
        higher incarnation (unless it has left). A LEFT of its own is ignored.
Rule 8: A member this node does not know has no key: every statement counts as newer.
        Only its ALIVE adds it (``MemberJoined``), and not while the table holds
        ``max_members`` (counted as ``members_full``).
Rule 9: A suspicion this node starts is said in its current life: when the accuser is
        this node (a failed probe, or its own SUSPECT heard back, perhaps from a previous
        life), the SUSPECT is signed afresh.
Rule 10: ``MemberUpdated`` is emitted only when a newer ALIVE of an alive member
        changes its address or tags; a bare new incarnation (a refutation of a
        suspicion nobody here held) is not news to the application.

Every change of state is gossiped on (the member's new statement replaces its older
one in the transmit queue).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

from .._errors import DropReason
from .._identity import NodeId
from ..wire._message import SignedMessage
from ..wire._message_types import MessageType
from ..wire.bodies import Alive, Body, Dead, Suspect
from ._events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MembershipEvent,
    MemberSuspected,
    MemberUpdated,
)
from ._member import MemberState
from ._member_table import MemberRecord, MemberTable
from ._suspicion import Suspicion
from ._timing import Timing

__all__ = [
    "ABOUT_SELF",
    "MEMBERS_FULL",
    "STATEMENT_KINDS",
    "TRANSITIONS",
    "KeyOrder",
    "Statement",
    "StatementApplier",
    "Transition",
    "compare",
]

_ALIVE, _SUSPECT, _DEAD, _LEFT = (
    MessageType.ALIVE,
    MessageType.SUSPECT,
    MessageType.DEAD,
    MessageType.LEFT,
)
#: The statements about members, in the order of the states they lead to.
STATEMENT_KINDS: Final = (_ALIVE, _SUSPECT, _DEAD, _LEFT)


class KeyOrder(enum.IntEnum):
    """How a statement's (epoch, incarnation) compares with the record's."""

    #: Below the record's key.
    OLDER = -1
    #: The record's key.
    SAME = 0
    #: Above the record's key (or there is no record).
    NEWER = 1


def compare(key: tuple[int, int], known: tuple[int, int]) -> KeyOrder:
    """How ``key`` compares with ``known``."""
    if key < known:
        return KeyOrder.OLDER
    return KeyOrder.SAME if key == known else KeyOrder.NEWER


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: what a statement does to a record."""

    #: The state the record moves to, or None if it stays as it is.
    state: MemberState | None = None
    #: The event emitted after the change, or None.
    event: type[MemberEvent] | None = None
    #: Whether the statement is gossiped on (a confirmation only when it is new).
    gossip: bool = False
    #: A Lifeguard confirmation of a suspicion (Rule 6).
    confirm: bool = False
    #: This node refutes a statement about itself (Rule 7).
    refute: bool = False
    #: The statement is refused and counted under this reason.
    drop: DropReason | None = None


_ = Transition()  # nothing happens
_REFUSED = Transition(drop=DropReason.UNANNOUNCED_KEY)
_CONFIRM = Transition(gossip=True, confirm=True)
_REFUTE = Transition(refute=True)
#: What a new member's ALIVE does while the table is full (Rule 8).
MEMBERS_FULL: Final = Transition(drop=DropReason.MEMBERS_FULL)


def _to(state: MemberState, event: type[MemberEvent]) -> Transition:
    return Transition(state, event, gossip=True)


_JOINED = _to(MemberState.ALIVE, MemberJoined)
_UPDATED = _to(MemberState.ALIVE, MemberUpdated)
_RECOVERED = _to(MemberState.ALIVE, MemberRecovered)
_SUSPECTED = _to(MemberState.SUSPECT, MemberSuspected)
_FAILED = _to(MemberState.DEAD, MemberFailed)
_GONE = _to(MemberState.LEFT, MemberLeft)

_A, _S, _D, _L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT
_Row = tuple[Transition, Transition, Transition]

# A member this node does not know (Rule 8): it has no key, so every key is newer.
_UNKNOWN: Final[dict[MessageType, Transition]] = {
    _ALIVE: _JOINED,
    _SUSPECT: _,
    _DEAD: _,
    _LEFT: _,
}

# (record state, statement kind): what it does at an (older, same, newer) key.
_ROWS: Final[dict[tuple[MemberState, MessageType], _Row]] = {
    # ALIVE: only a newer key changes anything (Rules 1, 2, 4, 10).
    (_A, _ALIVE): (_, _, _UPDATED),
    (_S, _ALIVE): (_, _, _RECOVERED),
    (_D, _ALIVE): (_, _, _RECOVERED),
    (_L, _ALIVE): (_, _, _JOINED),
    # SUSPECT: at the member's key (Rules 2, 3, 6).
    (_A, _SUSPECT): (_, _SUSPECTED, _REFUSED),
    (_S, _SUSPECT): (_, _CONFIRM, _REFUSED),
    (_D, _SUSPECT): (_, _, _REFUSED),
    (_L, _SUSPECT): (_, _, _REFUSED),
    # DEAD: at the member's key (Rules 2, 3).
    (_A, _DEAD): (_, _FAILED, _REFUSED),
    (_S, _DEAD): (_, _FAILED, _REFUSED),
    (_D, _DEAD): (_, _, _REFUSED),
    (_L, _DEAD): (_, _, _REFUSED),
    # LEFT: said by the member itself, final for its key (Rule 4).
    (_A, _LEFT): (_, _GONE, _GONE),
    (_S, _LEFT): (_, _GONE, _GONE),
    (_D, _LEFT): (_, _GONE, _GONE),
    (_L, _LEFT): (_, _, _),
}

# Statements about this node itself (Rule 7).
_SELF_ROWS: Final[dict[MessageType, _Row]] = {
    _ALIVE: (_, _, _REFUTE),
    _SUSPECT: (_, _REFUTE, _REFUSED),
    _DEAD: (_, _REFUTE, _REFUSED),
    _LEFT: (_, _, _),
}


def _heard(kind: MessageType, via_sync: bool) -> MessageType:
    """The kind a statement counts as (Rule 5)."""
    return _SUSPECT if via_sync and kind == _DEAD else kind


def _expand() -> dict[tuple[MemberState | None, MessageType, bool, KeyOrder], Transition]:
    table: dict[tuple[MemberState | None, MessageType, bool, KeyOrder], Transition] = {}
    for kind in STATEMENT_KINDS:
        for via_sync in (False, True):
            heard = _heard(kind, via_sync)
            table[None, kind, via_sync, KeyOrder.NEWER] = _UNKNOWN[heard]
            for state in MemberState:
                for order in KeyOrder:
                    table[state, kind, via_sync, order] = _ROWS[state, heard][order + 1]
    return table


#: Every (record state, statement kind, heard through anti-entropy, key order) of a
#: member other than this node -> its transition. The state None is a member this node
#: does not know, for which every key is NEWER.
TRANSITIONS: Final[Mapping[tuple[MemberState | None, MessageType, bool, KeyOrder], Transition]] = (
    MappingProxyType(_expand())
)
#: Every (statement kind, heard through anti-entropy, key order) of a statement about
#: this node itself -> its transition (Rule 7).
ABOUT_SELF: Final[Mapping[tuple[MessageType, bool, KeyOrder], Transition]] = MappingProxyType(
    {
        (kind, via_sync, order): _SELF_ROWS[_heard(kind, via_sync)][order + 1]
        for kind in STATEMENT_KINDS
        for via_sync in (False, True)
        for order in KeyOrder
    }
)


class Statement(NamedTuple):
    """A verified statement, reduced to what the transitions need."""

    #: ``MessageType.ALIVE``, ``SUSPECT``, ``DEAD`` or ``LEFT``.
    kind: MessageType
    #: The member it is about.
    subject: NodeId
    #: Who signed it (the member itself for ALIVE and LEFT).
    author: NodeId
    #: The (epoch, incarnation) it names.
    key: tuple[int, int]
    #: The signed unit, or None for an accusation of this node's not signed yet.
    unit: bytes | None
    #: The ALIVE body (address and tags), for ALIVE statements.
    alive: Alive | None = None

    @classmethod
    def of(cls, message: SignedMessage, unit: bytes) -> Statement:
        """The statement a verified ALIVE, SUSPECT, DEAD or LEFT message makes."""
        body = message.payload
        msg_type = message.type
        if msg_type == _ALIVE:
            key = (message.epoch, body.incarnation)
            return cls(_ALIVE, message.sender, message.sender, key, unit, body)
        if msg_type == _LEFT:
            key = (message.epoch, body.incarnation)
            return cls(_LEFT, message.sender, message.sender, key, unit)
        kind = _SUSPECT if msg_type == _SUSPECT else _DEAD
        return cls(kind, body.target, message.sender, (body.epoch, body.incarnation), unit)


class StatementApplier:
    """Carries out :data:`TRANSITIONS` on a member table.

    Args:
        table: the member table it changes.
        timing: for suspicion timeouts and whether Lifeguard is on.
        max_members: the table's bound (Rule 8).
        gossip: queues a unit for gossip under a key (a newer unit replaces an older one).
        emit: hands out an event.
        sign: signs (and remembers) a statement of this node.
        refute: makes this node outrank a statement about itself (Rule 7).
        count_drop: counts a refused statement.
    """

    __slots__ = (
        "table",
        "timing",
        "max_members",
        "_gossip",
        "_emit",
        "_sign",
        "_refute",
        "_count_drop",
    )

    def __init__(
        self,
        table: MemberTable,
        *,
        timing: Timing,
        max_members: int,
        gossip: Callable[[Hashable, bytes], None],
        emit: Callable[[MembershipEvent], None],
        sign: Callable[[Body], bytes],
        refute: Callable[[float], None],
        count_drop: Callable[[DropReason], None],
    ) -> None:
        self.table = table
        self.timing = timing
        self.max_members = max_members
        self._gossip = gossip
        self._emit = emit
        self._sign = sign
        self._refute = refute
        self._count_drop = count_drop

    def apply(self, statement: Statement, now: float, *, via_sync: bool = False) -> Transition:
        """Apply one statement to the table; return the transition carried out."""
        table = self.table
        record = table.records.get(statement.subject)
        if record is None:
            rule = TRANSITIONS[None, statement.kind, via_sync, KeyOrder.NEWER]
        elif statement.subject == table.own_id:
            rule = ABOUT_SELF[statement.kind, via_sync, compare(statement.key, record.key)]
        else:
            order = compare(statement.key, record.key)
            rule = TRANSITIONS[record.state, statement.kind, via_sync, order]
        if rule.drop is not None:
            self._count_drop(rule.drop)
        elif rule.refute:
            self._refute(now)
        elif rule.confirm:
            assert record is not None
            self._confirm(record, statement)
        elif rule.state is not None:
            if record is not None:
                self._enter(record, rule, statement, now)
            elif len(table) < self.max_members:
                self._join(statement, now)
            else:
                self._count_drop(DropReason.MEMBERS_FULL)
                return MEMBERS_FULL
        return rule

    def accuse(self, record: MemberRecord, now: float) -> None:
        """This node's probe of ``record`` failed: suspect it, or confirm its suspicion."""
        self.apply(Statement(_SUSPECT, record.id, self.table.own_id, record.key, None), now)

    def suspicion_expired(self, node_id: NodeId, now: float) -> None:
        """A suspicion timer ran out: unless refuted meanwhile, the member is dead."""
        table = self.table
        table.suspicions.pop(node_id, None)
        record = table.get(node_id)
        if record is None or record.state != MemberState.SUSPECT:
            return
        unit = self._sign(Dead(node_id, record.epoch, record.incarnation))
        self.apply(Statement(_DEAD, node_id, table.own_id, record.key, unit), now)

    def _join(self, statement: Statement, now: float) -> None:
        alive, unit = statement.alive, statement.unit
        assert alive is not None and unit is not None
        epoch, incarnation = statement.key
        record = MemberRecord(
            statement.subject, alive.address, epoch, incarnation, alive.tags, unit, now
        )
        self.table.insert(record)
        self._gossip(record.id, unit)
        self._emit(MemberJoined(record.snapshot))

    def _enter(
        self, record: MemberRecord, rule: Transition, statement: Statement, now: float
    ) -> None:
        table = self.table
        state, event, unit = rule.state, rule.event, statement.unit
        assert state is not None
        table.rekey(record, *statement.key)
        if state == MemberState.ALIVE:
            alive = statement.alive
            assert alive is not None and unit is not None
            if (
                event is MemberUpdated
                and record.address == alive.address
                and dict(record.tags) == alive.tags
            ):
                event = None  # Rule 10
            record.address = alive.address
            record.tags = MappingProxyType(dict(alive.tags))
            record.alive_unit = unit
            table.set_state(record, state, None, now)
        else:
            if state == MemberState.SUSPECT and (unit is None or statement.author == table.own_id):
                unit = self._sign(Suspect(record.id, record.epoch, record.incarnation))  # Rule 9
            table.set_state(record, state, unit, now)
        assert unit is not None
        self._gossip(record.id, unit)
        if state == MemberState.SUSPECT:
            self._start_suspicion(record, statement.author, now)
        if event is not None:
            self._emit(event(record.snapshot))

    def _start_suspicion(self, record: MemberRecord, accuser: NodeId, now: float) -> None:
        timing = self.timing
        members = self.table.alive_count
        minimum, maximum = timing.suspicion_timeouts(members)
        # Lifeguard: expect suspicion_mult - 2 confirmations, if there are enough members.
        k = timing.suspicion_mult - 2 if timing.lifeguard else 0
        if members - 2 < k:
            k = 0
        self.table.suspicions[record.id] = Suspicion(accuser, k, minimum, maximum, now)

    def _confirm(self, record: MemberRecord, statement: Statement) -> None:
        suspicion = self.table.suspicions.get(record.id)
        if suspicion is not None and suspicion.confirm(statement.author):
            unit = statement.unit
            if unit is None:
                unit = self._sign(Suspect(record.id, record.epoch, record.incarnation))
            self._gossip((record.id, statement.author), unit)
