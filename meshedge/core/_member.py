"""Members as the application sees them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from .._identity import NodeId

__all__ = ["Address", "Member", "MemberState"]

#: ``(host, port)`` where a member receives datagrams and stream connections.
Address: TypeAlias = tuple[str, int]


class MemberState(enum.IntEnum):
    """The state of a member in one node's view.

    The values are SWIM's precedence at one (epoch, incarnation): a suspicion outranks
    the ALIVE it is about, a death outranks both, a departure outranks everything. The
    membership core orders statements by ``(epoch, incarnation, state)``.
    """

    #: Answering probes (or not yet found otherwise).
    ALIVE = 0
    #: Missed a probe; declared dead unless it refutes before the suspicion timeout.
    SUSPECT = 1
    #: Declared dead by the failure detector.
    DEAD = 2
    #: Left the mesh on purpose.
    LEFT = 3

    def __init__(self, value: int) -> None:
        #: True for ALIVE and SUSPECT (the first two values): a member that is probed,
        #: gossiped to and counted in the mesh size. A plain attribute, not a property,
        #: because the protocol asks it on every state change.
        self.is_live = value <= 1


@dataclass(frozen=True, slots=True)
class Member:
    """One member as a node sees it: an immutable snapshot."""

    #: The member's node id (its public key).
    id: NodeId
    #: Where it receives datagrams and stream connections.
    address: Address
    #: ALIVE, SUSPECT, DEAD or LEFT.
    state: MemberState
    #: Its incarnation number within its boot epoch (it raises it to refute suspicion).
    incarnation: int
    #: Its boot epoch: larger after each restart, so a restarted node outranks its past.
    epoch: int
    #: Its tags, a small text map that only the member itself can change.
    tags: Mapping[str, str]
