"""Shared helpers of the membership tests: simulations and a capturing in-memory wire.

Everything runs on virtual time: either through ``meshedge.sim.Simulation`` or by
driving ``Membership`` cores directly over a perfect in-memory wire (``Wire`` below),
which lets a test capture and forge datagrams. No sockets, no wall clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import cbor2
from wire_helpers import sign_message

from meshedge import Address, Identity, MemberState, NodeId, Timing
from meshedge.core.events import MembershipEvent
from meshedge.core.membership import Membership
from meshedge.sim import Simulation
from meshedge.wire import ED25519, MessageType

LAN = Timing.lan()
ALIVE, SUSPECT, DEAD, LEFT = (
    MemberState.ALIVE,
    MemberState.SUSPECT,
    MemberState.DEAD,
    MemberState.LEFT,
)


def state(sim: Simulation, observer: int, subject: int) -> MemberState | None:
    """``subject``'s state in ``observer``'s view (None if unknown)."""
    member = sim.view(observer).get(sim.node_ids[subject])
    return member.state if member else None


def everywhere(sim: Simulation, subject: int, wanted: MemberState) -> Callable[[], bool]:
    """A predicate: every other live node sees ``subject`` in state ``wanted``."""

    def check() -> bool:
        return all(
            state(sim, i, subject) == wanted
            for i in range(len(sim.node_ids))
            if i != subject and sim.is_up(i)
        )

    return check


def formed(nodes: int, seed: int, **kwargs: Any) -> Simulation:
    """A simulation whose mesh has formed (every view holds every node ALIVE)."""
    sim = Simulation(nodes, seed=seed, **kwargs)
    sim.run_until(sim.converged, 30)
    return sim


def record_events(sim: Simulation) -> list[tuple[int, MembershipEvent, float]]:
    """Every event any node emits from now on, as (node, event, time)."""
    events: list[tuple[int, MembershipEvent, float]] = []
    sim.on_event(lambda node, event, time: events.append((node, event, time)))
    return events


def about(
    events: list[tuple[int, MembershipEvent, float]], observer: int, subject: NodeId
) -> list[tuple[type, float]]:
    """(event type, time) of ``observer``'s member events about ``subject``."""
    return [
        (type(event), time)
        for node, event, time in events
        if node == observer
        and getattr(event, "member", None) is not None
        and event.member.id == subject  # type: ignore[union-attr]
    ]


class Wire:
    """``count`` Membership cores on a perfect, instant in-memory wire.

    Unlike the simulator it records every datagram sent (so a test can replay or tamper
    with real traffic) and lets a test hand any bytes to any core. Time is virtual.
    """

    MESH = "wire-test"

    def __init__(self, count: int, *, signatures: Any = ED25519) -> None:
        self.now = 0.0
        self.identities = [Identity.from_seed(bytes([i + 1]) * 32, epoch=1) for i in range(count)]
        self.addresses: list[Address] = [(f"h{i}", 7946) for i in range(count)]
        self.cores = [
            Membership(
                identity,
                mesh=self.MESH,
                address=address,
                now=0.0,
                rng=random.Random(i),
                timing=LAN,
                signatures=signatures,
            )
            for i, (identity, address) in enumerate(
                zip(self.identities, self.addresses, strict=True)
            )
        ]
        self._index = {address: i for i, address in enumerate(self.addresses)}
        #: Every datagram sent: (data, source index, destination index).
        self.sent: list[tuple[bytes, int, int]] = []
        #: Events pulled from each core.
        self.events: list[list[MembershipEvent]] = [[] for _ in self.cores]
        for core in self.cores[1:]:
            core.join([self.addresses[0]], self.now)
        self._flush()

    def _flush(self) -> None:
        busy = True
        while busy:
            busy = False
            for i, core in enumerate(self.cores):
                for data, addr in core.datagrams_to_send():
                    busy = True
                    j = self._index[addr]
                    self.sent.append((data, i, j))
                    self.cores[j].receive_datagram(data, self.addresses[i], self.now)
                for data, addr in core.frames_to_send():
                    busy = True
                    j = self._index[addr]
                    self.cores[j].receive_frame(data, self.addresses[i], self.now)
                while (event := core.next_event()) is not None:
                    self.events[i].append(event)

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            deadline = min(core.get_timer() for core in self.cores)
            if deadline > end:
                break
            self.now = max(self.now, deadline)
            for core in self.cores:
                if core.get_timer() <= self.now:
                    core.handle_timer(self.now)
            self._flush()
        self.now = end

    def deliver(self, to: int, data: bytes, source: Address = ("attacker", 1)) -> None:
        """Hand ``data`` to core ``to`` as a datagram, then let the mesh react."""
        self.cores[to].receive_datagram(data, source, self.now)
        self._flush()

    def drops(self, index: int) -> dict[str, int]:
        drops: dict[str, int] = self.cores[index].statistics()["drops"]
        return drops

    def sign(self, signer: int, msg_type: MessageType, body: Any) -> bytes:
        return sign_message(self.identities[signer], body, mesh=self.MESH, type=msg_type)


def craft_unit(identity: Identity, fields: dict[int, Any]) -> bytes:
    """A correctly signed COSE_Sign1 unit over an arbitrary envelope ``fields``.

    ``sign_message`` refuses unknown types and bodies that break the schema; an attacker
    does not use it.
    """
    protected = b"\xa1\x01\x27"  # {1: -8}: EdDSA
    payload = cbor2.dumps(fields)
    signature = identity.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    return cbor2.dumps(
        cbor2.CBORTag(18, [protected, {4: bytes(identity.node_id)}, payload, signature])
    )
