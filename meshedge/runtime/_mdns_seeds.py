"""Peers found by mDNS become seeds: the node contacts those it does not see alive.

Discovery only proposes addresses; the core's wire and trust rules decide who joins.
``meshedge.runtime.discovery`` (and so zeroconf) is imported only when a node enables
mDNS.
"""

from __future__ import annotations

import trio

from .._identity import NodeId
from ..core._member import MemberState
from ._addresses import is_ip, is_wildcard
from ._config import NodeConfig
from ._pump import Pump

__all__ = ["run_mdns"]


async def run_mdns(
    pump: Pump,
    node_id: NodeId,
    config: NodeConfig,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Advertise the node by mDNS and contact the peers found, until cancelled.

    Start it with ``nursery.start``: it reports started once the service is registered.
    Cancellation withdraws the service (see :func:`~meshedge.runtime.discovery.open_mdns`).
    """
    from .discovery import PeerFound, open_mdns

    interfaces = list(config.mdns_interfaces) if config.mdns_interfaces else None
    host, port = pump.address
    addresses = [host] if is_ip(host) and not is_wildcard(host) else None
    async with open_mdns(
        node_id, config.mesh, port, interfaces=interfaces, addresses=addresses
    ) as discovery:
        task_status.started()
        async for event in discovery.events():
            if not isinstance(event, PeerFound):
                continue
            member = pump.member(event.peer.node_id)
            if member is not None and member.state == MemberState.ALIVE:
                continue
            for address in event.peer.addresses:
                if is_ip(address[0]):
                    pump.contact(address)
                    break
