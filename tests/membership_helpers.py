"""Shared helpers of the membership tests: simulations, and cores on an in-memory network.

Everything runs on virtual time: either through ``meshedge.sim.Simulation`` (latency,
crashes, pauses) or through ``meshedge.testing.CoreMesh`` (``joined`` below), which lets
a test capture real traffic and hand forged bytes to any core. No sockets, no wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
from wire_helpers import sign_message

from meshedge import Identity, MemberState, NodeId, Timing
from meshedge.core._events import MembershipEvent
from meshedge.sim import Simulation
from meshedge.testing import CoreMesh
from meshedge.wire import MessageType

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


#: The mesh name of the cores that :func:`joined` builds.
MESH = "wire-test"


def joined(count: int, **options: Any) -> CoreMesh:
    """``count`` cores on ``meshedge.testing``'s in-memory network, joined through core 0.

    LAN timing; ``options`` go to :class:`~meshedge.testing.CoreMesh` (e.g.
    ``record=True`` to capture real traffic to replay or tamper with). Time is virtual;
    hand any bytes to a core with ``mesh.inject_datagram``.
    """
    mesh = CoreMesh(count, mesh=MESH, timing=LAN, **options)
    mesh.join_all()
    return mesh


def drops(mesh: CoreMesh, index: int) -> dict[str, int]:
    """Core ``index``'s drop counters by reason."""
    counters: dict[str, int] = mesh.cores[index].membership.statistics()["drops"]
    return counters


def sign(mesh: CoreMesh, signer: int, msg_type: MessageType, body: Any) -> bytes:
    """A unit of type ``msg_type`` over any ``body``, signed with core ``signer``'s key."""
    return sign_message(mesh.identities[signer], body, mesh=MESH, type=msg_type)


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
