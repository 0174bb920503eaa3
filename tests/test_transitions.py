"""The membership transition table, and the one function that carries it out.

For every (record state, statement kind, heard via anti-entropy, key comparison) the
applied result must be the table's row, and the invariants that SWIM's ordering promises
must hold whatever the row says: an older key never changes anything, a state only ever
rises in (epoch, incarnation, state) rank, LEFT is final for its key, a newer ALIVE
always revives, and the table's derived data (live set, counts, state hash, suspicion
timers) stays consistent. The committed state diagram in docs/membership.md must be the
one the table draws.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshedge import DropReason, MemberState, NodeId, Timing
from meshedge.core._events import MemberEvent, MemberUpdated
from meshedge.core._member_table import MemberRecord, MemberTable
from meshedge.core._suspicion import Suspicion
from meshedge.core._transitions import (
    ABOUT_SELF,
    MEMBERS_FULL,
    STATEMENT_KINDS,
    TRANSITIONS,
    KeyOrder,
    Statement,
    StatementApplier,
    Transition,
)
from meshedge.wire._message_types import MessageType
from meshedge.wire.bodies import Alive, Body

ROOT = Path(__file__).resolve().parents[1]
OWN, SUBJECT, THIRD = (NodeId(bytes([n]) * 32) for n in (1, 2, 3))
ALIVE, SUSPECT, DEAD, LEFT = MemberState
#: Lifeguard's expected confirmations in the suspicion timers the tests set up.
K = 2
#: The (epoch, incarnation) of the subject's record: room for older keys on both axes.
RECORD_KEY = (5, 5)


@dataclass
class Harness:
    """A member table with an applier whose effects are recorded."""

    table: MemberTable
    applier: StatementApplier
    gossiped: list[tuple[Any, bytes]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    signed: list[Body] = field(default_factory=list)
    refutes: list[float] = field(default_factory=list)
    drops: list[DropReason] = field(default_factory=list)

    def effects(self) -> tuple[Any, ...]:
        return (self.gossiped, self.events, self.signed, self.refutes, self.drops)


def make_harness(
    subject_state: MemberState | None,
    *,
    own_state: MemberState = ALIVE,
    accusers: frozenset[NodeId] = frozenset({THIRD}),
    max_members: int = 16,
) -> Harness:
    table = MemberTable(OWN)
    me = MemberRecord(OWN, ("own", 1), *RECORD_KEY, {}, b"own-alive", 0.0)
    table.insert(me)
    if own_state != ALIVE:
        table.set_state(me, own_state, b"own-state", 0.0)
    if subject_state is not None:
        record = MemberRecord(SUBJECT, ("subject", 1), *RECORD_KEY, {"t": "1"}, b"alive", 0.0)
        table.insert(record)
        if subject_state != ALIVE:
            table.set_state(record, subject_state, b"state", 0.0)
        if subject_state == SUSPECT:
            first, *others = sorted(accusers)
            suspicion = Suspicion(first, K, 4.0, 24.0, 0.0)
            for accuser in others:
                suspicion.confirm(accuser)
            table.suspicions[SUBJECT] = suspicion
    harness = Harness(table, None)  # type: ignore[arg-type]

    def sign(body: Body) -> bytes:
        harness.signed.append(body)
        return b"signed:" + repr(body).encode()

    harness.applier = StatementApplier(
        table,
        timing=Timing.lan(),
        max_members=max_members,
        gossip=lambda key, unit: harness.gossiped.append((key, unit)),
        emit=harness.events.append,
        sign=sign,
        refute=harness.refutes.append,
        count_drop=harness.drops.append,
    )
    return harness


def key_for(order: KeyOrder, shift_epoch: bool) -> tuple[int, int]:
    """A key that compares with RECORD_KEY as ``order`` says (by epoch or incarnation)."""
    epoch, incarnation = RECORD_KEY
    delta = int(order)
    return (epoch + delta, incarnation) if shift_epoch else (epoch, incarnation + delta)


def statement(
    kind: MessageType,
    order: KeyOrder,
    *,
    subject: NodeId = SUBJECT,
    author: NodeId = THIRD,
    shift_epoch: bool = False,
    same_content: bool = True,
    own_unit: bool = False,
) -> Statement:
    key = key_for(order, shift_epoch)
    if kind in (MessageType.ALIVE, MessageType.LEFT):
        author = subject  # signed by the member itself
    alive = None
    if kind == MessageType.ALIVE:
        tags = {"t": "1"} if same_content else {"t": "2"}
        address = ("subject", 1) if subject == SUBJECT else ("own", 1)
        alive = Alive(key[1], address, tags)
    unit = None if own_unit else f"{kind.name} {key}".encode()
    return Statement(kind, subject, author, key, unit, alive)


def rank(record: MemberRecord) -> tuple[int, int, int]:
    return record.rank


def heard_state(kind: MessageType, via_sync: bool) -> MemberState:
    """The state a statement claims (a DEAD heard via anti-entropy claims SUSPECT)."""
    if kind == MessageType.DEAD and via_sync:
        return SUSPECT
    return {
        MessageType.ALIVE: ALIVE,
        MessageType.SUSPECT: SUSPECT,
        MessageType.DEAD: DEAD,
        MessageType.LEFT: LEFT,
    }[kind]


def check_consistent(table: MemberTable) -> None:
    """The table's derived data equals what its records say."""
    live = [r for r in table if r.state.is_live]
    assert table.alive_count == len(live)
    assert sorted(table.live.ids()) == sorted(r.id for r in live if r.id != table.own_id)
    expected = 0
    for record in live:
        expected ^= record.digest()
    assert table.hash == expected
    assert set(table.suspicions) == {r.id for r in table if r.state == SUSPECT}
    for record in table:
        assert record.snapshot.state == record.state
        assert (record.snapshot.epoch, record.snapshot.incarnation) == record.key


# ---------------------------------------------------------------------- the table itself


def test_the_table_has_one_row_for_every_combination() -> None:
    keys = set(itertools.product(MemberState, STATEMENT_KINDS, (False, True), KeyOrder))
    keys |= set(itertools.product([None], STATEMENT_KINDS, (False, True), [KeyOrder.NEWER]))
    assert set(TRANSITIONS) == keys
    assert set(ABOUT_SELF) == set(itertools.product(STATEMENT_KINDS, (False, True), KeyOrder))


def test_state_is_ordered_by_value_and_live_means_alive_or_suspect() -> None:
    assert list(MemberState) == sorted(MemberState)
    assert [s for s in MemberState if s.is_live] == [ALIVE, SUSPECT]


# ---------------------------------------------------------------------- others' statements

ROWS = sorted(TRANSITIONS, key=lambda k: (-1 if k[0] is None else k[0], k[1], k[2], k[3]))


def _row_id(row: tuple[Any, ...]) -> str:
    state, kind, via_sync, order = row
    name = "unknown" if state is None else state.name
    return f"{name}-{kind.name}{'-sync' if via_sync else ''}-{order.name}"


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
@settings(max_examples=12)
@given(
    shift_epoch=st.booleans(),
    same_content=st.booleans(),
    author=st.sampled_from([THIRD, OWN]),
    unit_given=st.booleans(),
    accusers=st.sampled_from([frozenset({THIRD}), frozenset({OWN}), frozenset({OWN, THIRD})]),
)
def test_a_statement_about_another_member_does_what_its_row_says(
    row: tuple[MemberState | None, MessageType, bool, KeyOrder],
    shift_epoch: bool,
    same_content: bool,
    author: NodeId,
    unit_given: bool,
    accusers: frozenset[NodeId],
) -> None:
    state, kind, via_sync, order = row
    harness = make_harness(state, accusers=accusers)
    table = harness.table
    before = table.get(SUBJECT)
    rank_before = before.rank if before else None
    said = statement(
        kind,
        order,
        author=author,
        shift_epoch=shift_epoch,
        same_content=same_content,
        # Only this node's failed probe accuses without a unit (signed when applied).
        own_unit=not unit_given and author == OWN and kind == MessageType.SUSPECT,
    )
    rule = TRANSITIONS[row]

    applied = harness.applier.apply(said, 7.0, via_sync=via_sync)

    assert applied == rule
    after = table.get(SUBJECT)
    check_consistent(table)
    assert harness.refutes == []
    if rule.drop is not None:
        assert harness.drops == [rule.drop]
        assert harness.gossiped == harness.events == harness.signed == []
    elif rule.confirm:
        assert after is not None and after.state == SUSPECT and after.rank == rank_before
        new = said.author not in accusers and len(accusers) - 1 < K
        assert len(harness.gossiped) == int(new)
        if new:
            assert harness.gossiped[0][0] == (SUBJECT, said.author)
        assert harness.events == []
    elif rule.state is None:
        assert harness.effects() == ([], [], [], [], [])
        assert (after.rank if after else None) == rank_before
    else:
        assert after is not None and after.state == rule.state and after.key == said.key
        assert [key for key, _ in harness.gossiped] == [SUBJECT]
        unit = harness.gossiped[0][1]
        assert unit == (after.alive_unit if rule.state == ALIVE else after.state_unit)
        if rule.state == SUSPECT and (said.unit is None or said.author == OWN):
            assert len(harness.signed) == 1  # Rule 9: own accusations are signed afresh
        else:
            assert unit == said.unit
        expected = rule.event
        if expected is MemberUpdated and same_content:
            expected = None  # Rule 10
        assert [type(e) for e in harness.events] == ([expected] if expected else [])
        for event in harness.events:
            assert event.member == after.snapshot
    # Invariants that hold whatever the row says.
    if order == KeyOrder.OLDER:
        assert harness.effects() == ([], [], [], [], [])
    if before is not None and after is not None:
        assert after.rank >= rank_before  # a state only rises in rank
        claimed = (*said.key, int(heard_state(kind, via_sync)))
        changed = after.rank != rank_before
        accusation = kind in (MessageType.SUSPECT, MessageType.DEAD)
        if accusation and order == KeyOrder.NEWER:
            assert not changed  # Rule 3
        elif state == LEFT and not (kind == MessageType.ALIVE and order == KeyOrder.NEWER):
            assert not changed  # Rule 4: LEFT is final for its key
        else:
            assert changed == (claimed > rank_before)  # SWIM's precedence
            if changed:
                assert after.rank == claimed
    if kind == MessageType.ALIVE and order == KeyOrder.NEWER:
        assert after is not None and after.state == ALIVE  # a newer ALIVE always revives


# ---------------------------------------------------------------------- about this node


@pytest.mark.parametrize("row", sorted(ABOUT_SELF), ids=lambda r: _row_id((None, *r))[8:])
@pytest.mark.parametrize("own_state", [ALIVE, LEFT])
def test_a_statement_about_this_node_never_changes_its_record(
    row: tuple[MessageType, bool, KeyOrder], own_state: MemberState
) -> None:
    kind, via_sync, order = row
    harness = make_harness(ALIVE, own_state=own_state)
    me = harness.table.own
    before = (me.rank, me.alive_unit, me.state_unit)
    said = statement(kind, order, subject=OWN, author=THIRD)
    rule = ABOUT_SELF[row]

    assert harness.applier.apply(said, 3.0, via_sync=via_sync) == rule

    assert (me.rank, me.alive_unit, me.state_unit) == before
    assert harness.refutes == ([3.0] if rule.refute else [])
    assert harness.drops == ([rule.drop] if rule.drop else [])
    assert harness.gossiped == harness.events == harness.signed == []
    # Rule 7: newer ALIVE, or an accusation at the current key, is refuted.
    accusation = kind in (MessageType.SUSPECT, MessageType.DEAD)
    assert rule.refute == (
        (kind == MessageType.ALIVE and order == KeyOrder.NEWER)
        or (accusation and order == KeyOrder.SAME)
    )
    assert (rule.drop is not None) == (accusation and order == KeyOrder.NEWER)


# ---------------------------------------------------------------------- special rules


def test_a_new_member_is_not_added_to_a_full_table() -> None:
    harness = make_harness(None, max_members=1)
    said = statement(MessageType.ALIVE, KeyOrder.NEWER)
    assert harness.applier.apply(said, 1.0) == MEMBERS_FULL
    assert harness.drops == [DropReason.MEMBERS_FULL]
    assert harness.table.get(SUBJECT) is None
    assert harness.gossiped == harness.events == []


def test_a_failed_probe_suspects_an_alive_member_then_confirms_once() -> None:
    harness = make_harness(ALIVE)
    for n in range(10, 14):  # enough members for Lifeguard to expect confirmations
        other = NodeId(bytes([n]) * 32)
        harness.table.insert(MemberRecord(other, ("other", n), 1, 0, {}, b"alive", 0.0))
    record = harness.table[SUBJECT]
    harness.applier.accuse(record, 1.0)
    assert record.state == SUSPECT and len(harness.signed) == 1
    suspicion = harness.table.suspicions[SUBJECT]
    assert suspicion.confirmations == {OWN}
    # Another accuser's SUSPECT at the same key confirms it (and is gossiped once).
    said = statement(MessageType.SUSPECT, KeyOrder.SAME, author=THIRD)
    assert harness.applier.apply(said, 2.0).confirm
    assert harness.applier.apply(said, 2.5).confirm
    assert harness.gossiped[-1] == ((SUBJECT, THIRD), said.unit)
    assert len(harness.gossiped) == 2  # the suspicion, then one confirmation
    assert suspicion.confirmed == 1


def test_an_expired_suspicion_declares_the_member_dead() -> None:
    harness = make_harness(SUSPECT)
    harness.applier.suspicion_expired(SUBJECT, 30.0)
    record = harness.table[SUBJECT]
    assert record.state == DEAD and record.state_since == 30.0
    assert [type(b).__name__ for b in harness.signed] == ["Dead"]
    assert [type(e).__name__ for e in harness.events] == ["MemberFailed"]
    check_consistent(harness.table)


# ---------------------------------------------------------------------- sequences

MEMBERS = (OWN, SUBJECT, THIRD)
statements = st.builds(
    lambda kind, subject, author, epoch, incarnation, tags: Statement(
        kind,
        subject,
        subject if kind in (MessageType.ALIVE, MessageType.LEFT) else author,
        (epoch, incarnation),
        f"{kind.name}{subject[0]}{epoch}{incarnation}{tags}".encode(),
        Alive(incarnation, ("h", subject[0]), {"t": str(tags)})
        if kind == MessageType.ALIVE
        else None,
    ),
    st.sampled_from(STATEMENT_KINDS),
    st.sampled_from(MEMBERS),
    st.sampled_from(MEMBERS),
    st.integers(4, 6),
    st.integers(4, 6),
    st.integers(0, 1),
)


@given(st.lists(st.tuples(statements, st.booleans()), max_size=40))
def test_any_sequence_of_statements_keeps_the_table_consistent_and_ranks_rising(
    steps: list[tuple[Statement, bool]],
) -> None:
    harness = make_harness(ALIVE)
    for now, (said, via_sync) in enumerate(steps):
        ranks = {r.id: r.rank for r in harness.table}
        own_before = harness.table.own.rank
        rule: Transition = harness.applier.apply(said, float(now), via_sync=via_sync)
        check_consistent(harness.table)
        assert harness.table.own.rank == own_before
        for record in harness.table:
            if record.id in ranks:
                assert record.rank >= ranks[record.id]
        if rule.state is not None and said.subject != OWN:
            record = harness.table[said.subject]
            assert record.state == rule.state
        assert all(isinstance(e, MemberEvent) for e in harness.events)


# ---------------------------------------------------------------------- the diagram


@functools.cache
def diagram_script() -> ModuleType:
    path = ROOT / "scripts" / "membership_diagram.py"
    spec = importlib.util.spec_from_file_location("membership_diagram", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_state_diagram_is_the_one_the_table_draws() -> None:
    script = diagram_script()
    doc = (ROOT / "docs" / "membership.md").read_text(encoding="utf-8")
    assert script.extract(doc) == script.render(), (
        "docs/membership.md is out of date: run .venv/bin/python scripts/membership_diagram.py"
    )


def test_the_diagram_shows_every_state_change_of_the_table() -> None:
    text = diagram_script().render()
    assert text.startswith("```mermaid\nstateDiagram-v2\n")
    for (state, kind, _via, _order), rule in TRANSITIONS.items():
        if rule.state is not None and rule.state != state:
            source = "[*]" if state is None else state.name
            assert f"{source} --> {rule.state.name}" in text, (state, kind)
