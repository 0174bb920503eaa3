"""This node's own record: its incarnation, address and tags, and what it says of itself.

Only a node itself signs its ALIVE and LEFT statements. It raises its incarnation to
announce new tags or a new address, and to refute a statement about itself (Rule 7 of
:mod:`meshedge.core._transitions`); a node that has left says nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._errors import LocalProtocolError
from .._identity import Identity
from ..wire._cbor import encode
from ..wire._message_types import MAX_TAGS_SIZE
from ..wire._schema import SchemaViolation
from ..wire.bodies import Alive, Left
from ._awareness import Awareness
from ._envelope import Envelope
from ._member import Address, MemberState
from ._member_table import MemberRecord, MemberTable
from ._timing import Timing
from ._transmit_queue import TransmitQueue

__all__ = ["OwnRecord", "check_address", "check_tags"]


def check_address(address: Address) -> Address:
    """``address`` if the wire can carry it as an ALIVE statement's address.

    Checked with the wire's own schema (an exact str host with a UTF-8 form, an int
    port), so that taking it can never make signing the ALIVE statement fail.

    Raises:
        LocalProtocolError: not such a ``(host, port)``.
    """
    try:
        valid = isinstance(address, tuple) and len(address) == 2 and bool(address[0])
        if valid:
            Alive.schema()(Alive(0, address, {}).to_wire())
            address[0].encode()
    except (SchemaViolation, UnicodeEncodeError):
        valid = False
    if not valid:
        raise LocalProtocolError(f"an address is (host, port), not {address!r}")
    return address


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``tags`` if an ALIVE statement can carry them.

    A node that could not sign its ALIVE statement could never refute a suspicion, so
    tags the ALIVE schema would refuse are refused here, before the node takes them.

    Raises:
        LocalProtocolError: not a text map; more than 64 entries, a key over 128 or a
            value over 256 UTF-8 bytes; or larger than 512 bytes encoded.
    """
    tags = dict(tags or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise LocalProtocolError("tags map text to text")
    try:
        Alive.schema()(Alive(0, ("host", 0), tags).to_wire())
        size = len(encode(tags))
    except (SchemaViolation, UnicodeEncodeError) as exc:
        raise LocalProtocolError(f"tags refused: {exc}") from None
    if size > MAX_TAGS_SIZE:
        raise LocalProtocolError(f"tags take more than {MAX_TAGS_SIZE} bytes encoded")
    return tags


class OwnRecord:
    """This node's incarnation, address and tags; it signs its ALIVE and LEFT statements.

    Creating it signs the ALIVE statement of incarnation 0 and puts the node's own
    record in the table.

    Args:
        identity: this node's key pair.
        envelope: signs and remembers the statements.
        table: the member table the own record lives in.
        updates: the gossip queue the statements go to.
        timing: whether Lifeguard is on (a refutation lowers local health).
        awareness: Lifeguard's local health.
        address: this node's advertised address.
        tags: its initial tags.
        now: the current time.

    Raises:
        LocalProtocolError: an unusable address or tags.
    """

    __slots__ = (
        "identity",
        "incarnation",
        "address",
        "tags",
        "left",
        "refutations",
        "_envelope",
        "_table",
        "_updates",
        "_timing",
        "_awareness",
    )

    def __init__(
        self,
        identity: Identity,
        envelope: Envelope,
        table: MemberTable,
        updates: TransmitQueue,
        *,
        timing: Timing,
        awareness: Awareness,
        address: Address,
        tags: Mapping[str, str] | None,
        now: float,
    ) -> None:
        #: This node's key pair.
        self.identity = identity
        #: The current incarnation within this boot epoch.
        self.incarnation = 0
        #: The advertised address.
        self.address = check_address(address)
        #: The current tags.
        self.tags = check_tags(tags)
        #: Set once this node has left.
        self.left = False
        #: Times this node refuted a statement about itself.
        self.refutations = 0
        self._envelope = envelope
        self._table = table
        self._updates = updates
        self._timing = timing
        self._awareness = awareness
        unit = envelope.sign(self._alive_body())
        table.insert(
            MemberRecord(identity.node_id, self.address, identity.epoch, 0, self.tags, unit, now)
        )

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """New tags, announced at a new incarnation (a refused change changes nothing)."""
        self.tags = check_tags(tags)
        self._reincarnate(self.incarnation + 1, now)

    def set_address(self, address: Address, now: float) -> None:
        """A new address, announced at a new incarnation (a refused one changes nothing)."""
        self.address = check_address(address)
        self._reincarnate(self.incarnation + 1, now)

    def refute(self, now: float) -> None:
        """Outrank a statement about this node with a new incarnation (unless it left)."""
        if self.left:
            return
        self.refutations += 1
        if self._timing.lifeguard:
            self._awareness.apply_delta(1)
        self._reincarnate(self.incarnation + 1, now)

    def leave(self, now: float) -> None:
        """Sign this node's LEFT statement and queue it for gossip; say nothing more."""
        self.left = True
        unit = self._envelope.sign(Left(self.incarnation))
        self._envelope.remember(unit)
        self._table.set_state(self._table.own, MemberState.LEFT, unit, now)
        self._updates.enqueue(self.identity.node_id, unit)

    def _alive_body(self) -> Alive:
        return Alive(self.incarnation, self.address, self.tags)

    def _reincarnate(self, incarnation: int, now: float) -> None:
        """Sign a new ALIVE statement at ``incarnation`` and gossip it."""
        if self.left:
            return
        self.incarnation = incarnation
        envelope, table = self._envelope, self._table
        unit = envelope.sign(self._alive_body())
        me = table.own
        table.rekey(me, self.identity.epoch, incarnation)
        me.address = self.address
        me.tags = MappingProxyType(dict(self.tags))
        me.alive_unit = unit
        table.set_state(me, MemberState.ALIVE, None, now)
        envelope.remember(unit)
        self._updates.enqueue(self.identity.node_id, unit)
