"""The composed membership core: its driving contract, envelope, counters, determinism.

The behaviour of each concept has its own file: ``test_probing.py``,
``test_dissemination.py``, ``test_anti_entropy.py``, ``test_member_lifecycle.py``,
``test_transitions.py`` and ``test_membership_security.py``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from membership_helpers import joined

from meshedge import Identity, LocalProtocolError, Member, NodeId, Timing
from meshedge.core._envelope import UNEXPECTED_REASONS, Envelope
from meshedge.core._membership import Membership
from meshedge.sim import Simulation
from meshedge.wire import MessageType, verify_message
from meshedge.wire._keyring import Keyring
from meshedge.wire.bodies import DirectMessage

# ---------------------------------------------------------------------- timing and determinism


def test_timing_refuses_non_positive_or_inconsistent_periods() -> None:
    with pytest.raises(ValueError):
        Timing(probe_interval=1.0, probe_timeout=1.0)
    with pytest.raises(ValueError):
        Timing(gossip_nodes=0)
    with pytest.raises(ValueError):
        Timing(push_pull_interval=float("inf"))


def scripted_run(seed: int) -> tuple[Any, dict[NodeId, Member], list[Any]]:
    sim = Simulation(6, seed=seed, loss=0.05)
    sim.run_for(10)
    sim.broadcast(1, "t", [1, 2, 3])
    sim.crash(5)
    sim.partition([0, 1], [2, 3, 4])
    sim.run_for(40)
    sim.heal()
    sim.set_tags(2, {"a": "b"})
    sim.pause(3, 5)
    sim.run_for(60)
    return sim.statistics(), sim.view(0), sim.deliveries


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    first, second, third = scripted_run(42), scripted_run(42), scripted_run(43)
    assert first == second
    assert first[0] != third[0]


# ---------------------------------------------------------------------- the envelope


def test_a_core_builds_its_own_envelope_from_its_arguments() -> None:
    keyring = Keyring([Keyring.generate_key()])
    core = Membership(
        Identity.generate(),
        mesh="m",
        address=("h", 1),
        now=0.0,
        rng=random.Random(1),
        keyring=keyring,
    )
    assert core.envelope.keyring is keyring
    assert core.keyring is keyring and core.trust is None
    assert core.limits is core.envelope.limits
    assert core.signatures is core.envelope.signatures


def test_a_given_envelope_signs_for_the_core_and_shares_its_numbers() -> None:
    identity = Identity.generate()
    envelope = Envelope(identity, mesh="m")
    core = Membership(
        identity, mesh="m", address=("h", 1), now=0.0, rng=random.Random(1), envelope=envelope
    )
    assert core.envelope is envelope
    # The core signed its own ALIVE statement with it; sign() delegates to it.
    assert envelope.signer.next_seq == 1
    unit = core.sign(MessageType.MESSAGE, DirectMessage("t", "x"))
    message = verify_message(unit, mesh="m", max_size=len(unit))
    assert (message.sender, message.seq) == (identity.node_id, 1)
    assert envelope.sign(DirectMessage("t", "y")) != unit
    assert envelope.signer.next_seq == 3


def test_an_envelope_of_another_node_or_with_envelope_arguments_is_refused() -> None:
    identity = Identity.generate()
    envelope = Envelope(identity, mesh="m")
    options: dict[str, Any] = {"address": ("h", 1), "now": 0.0, "rng": random.Random(1)}
    with pytest.raises(LocalProtocolError):
        Membership(Identity.generate(), mesh="m", envelope=envelope, **options)
    with pytest.raises(LocalProtocolError):
        Membership(identity, mesh="other", envelope=envelope, **options)
    with pytest.raises(LocalProtocolError):
        Membership(identity, mesh="m", envelope=envelope, keyring=Keyring([bytes(32)]), **options)


# ---------------------------------------------------------------------- counters


def test_unexpected_counts_exactly_the_named_refusals_of_well_signed_messages() -> None:
    mesh = joined(2)
    mesh.advance(5)
    stats = mesh.cores[0].membership.statistics()
    assert stats["unexpected"] == sum(stats["drops"][r.value] for r in UNEXPECTED_REASONS)
    assert set(stats) >= {
        "packets_sent", "bytes_sent", "packets_received", "bytes_received", "frames_sent",
        "frame_bytes_sent", "frames_received", "frame_bytes_received", "duplicates",
        "events_dropped", "unexpected", "refutations", "drops", "queued_updates",
        "queued_broadcasts", "health", "members",
    }  # fmt: skip
    assert stats["packets_sent"] > 0 and stats["frames_received"] > 0
