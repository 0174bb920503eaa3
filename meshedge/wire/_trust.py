"""Trust policies: which signing keys a node accepts messages from."""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import LocalProtocolError
from .._identity import NodeId

__all__ = ["TrustPolicy"]


class TrustPolicy:
    """Which node ids may take part in the mesh.

    ``TrustPolicy.open()`` accepts any key that signs for the right mesh (admission is
    then controlled by the mesh key, if any); ``TrustPolicy.allow(ids)`` accepts only the
    listed node ids.
    """

    __slots__ = ("_allowed",)

    def __init__(self, allowed: frozenset[NodeId] | None) -> None:
        self._allowed = allowed

    @classmethod
    def open(cls) -> TrustPolicy:
        """Accept every key of this mesh."""
        return cls(None)

    @classmethod
    def allow(cls, node_ids: Iterable[NodeId | str]) -> TrustPolicy:
        """Accept only the given node ids (``NodeId`` values or their text form).

        Raises:
            LocalProtocolError: an entry is not a node id.
        """
        allowed: set[NodeId] = set()
        for node_id in node_ids:
            if isinstance(node_id, str):
                node_id = NodeId.parse(node_id)
            elif not isinstance(node_id, NodeId):
                raise LocalProtocolError(f"not a NodeId: {node_id!r}")
            allowed.add(node_id)
        return cls(frozenset(allowed))

    @property
    def is_open(self) -> bool:
        """True for an open policy."""
        return self._allowed is None

    @property
    def allowed(self) -> frozenset[NodeId] | None:
        """The allowed ids, or ``None`` for an open policy."""
        return self._allowed

    def permits(self, node_id: NodeId) -> bool:
        """True if messages signed by ``node_id`` are accepted."""
        return self._allowed is None or node_id in self._allowed

    def __repr__(self) -> str:
        if self._allowed is None:
            return "TrustPolicy.open()"
        return f"TrustPolicy.allow({sorted(str(n) for n in self._allowed)})"
