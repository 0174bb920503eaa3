"""Node configuration: one documented dataclass, every limit named with its reason."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._errors import LocalProtocolError
from ..core._config import stealing_timing_for
from ..core._stealing import StealingTiming
from ..core._timing import Timing
from ..wire._keyring import Keyring
from ..wire._limits import DEFAULT_LIMITS, WireLimits
from ..wire._trust import TrustPolicy
from ._addresses import format_address, is_ip, parse_address

# The address functions belong to .addresses; this module exports them as well, as part
# of the public ``meshedge.runtime._config`` path.
__all__ = ["NodeConfig", "format_address", "parse_address"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs besides its identity and its task registry.

    Tests and demos on one machine should bind to ``127.0.0.1:0``; the defaults are for
    real devices on a LAN.
    """

    #: The mesh name: nodes of other meshes are ignored (and their messages dropped).
    mesh: str = "meshedge"
    #: ``host:port`` to bind the UDP socket and the TCP listener to (the same port).
    #: Port 0 picks a free port. ``0.0.0.0`` listens on every IPv4 interface.
    bind: str = "0.0.0.0:7946"
    #: ``host:port`` other nodes should use, when it differs from ``bind`` (NAT, port
    #: forwarding, a wildcard bind). By default, the bind address.
    advertise: str | None = None
    #: ``host:port`` of nodes to join at start; retried with back-off while alone.
    seeds: tuple[str, ...] = ()
    #: Find the mesh's other nodes with mDNS/DNS-SD on the local network.
    mdns: bool = False
    #: Local IPs to run mDNS on; None means every interface (real use only).
    mdns_interfaces: tuple[str, ...] | None = None
    #: This node's initial tags (a small text map; at most 512 bytes encoded).
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Mesh keys: when set, every datagram and frame is encrypted and authenticated.
    keyring: Keyring | None = None
    #: Which node ids may take part (open by default).
    trust: TrustPolicy | None = None
    #: Protocol periods; ``Timing.local()`` suits nodes on one machine.
    timing: Timing = field(default_factory=Timing.lan)
    #: Tasks this node runs at once (work stealing); 0 for a node that only submits.
    task_slots: int = 2
    #: Periods and bounds of work stealing; None derives them from ``timing`` (see
    #: :meth:`stealing_timing`).
    stealing: StealingTiming | None = None
    #: Wire limits (datagram and frame sizes, nesting depth).
    limits: WireLimits = DEFAULT_LIMITS
    #: Outbound stream connections kept open at once (least recently used closed first).
    max_connections: int = 256
    #: Inbound stream connections served at once; more are closed at once (a flood of
    #: connections costs a file descriptor and a task each).
    max_inbound_connections: int = 256
    #: Seconds an idle stream connection stays open.
    connection_idle_timeout: float = 60.0
    #: Seconds a peer may take to deliver one whole frame once it started it (stops
    #: slow-loris peers from pinning buffers).
    frame_read_timeout: float = 10.0
    #: Messages buffered per subscription or event stream before the oldest is dropped
    #: (and counted) — a slow consumer never stalls the node.
    subscriber_buffer: int = 1024
    #: Seconds ``open_node`` spends, on exit, spreading the LEFT statement.
    leave_timeout: float = 1.0

    def __post_init__(self) -> None:
        from ..wire._message import check_mesh_name

        check_mesh_name(self.mesh, self.limits)
        self._check_addresses()
        self._check_types()
        self._check_counts()
        self._check_durations()

    def stealing_timing(self) -> StealingTiming:
        """The work-stealing timing nodes of this configuration use.

        ``stealing`` when set; else the defaults of :class:`StealingTiming`, with
        ``load_interval`` set to ``timing.gossip_interval``: LOAD adverts then keep the
        pace of the mesh's gossip (fast with ``Timing.local()``, slower on a WAN).
        """
        return stealing_timing_for(self.timing, self.stealing)

    def _check_addresses(self) -> None:
        parse_address(self.bind)
        if self.advertise is not None:
            _, port = parse_address(self.advertise)
            if port == 0:
                raise LocalProtocolError("the advertised port cannot be 0")
        # Strings are checked first: iterating one would complain about its characters.
        if isinstance(self.seeds, str):
            raise LocalProtocolError("seeds is a sequence of 'host:port' strings")
        for seed in self.seeds:
            parse_address(seed)
        if isinstance(self.mdns_interfaces, str):
            raise LocalProtocolError("mdns_interfaces is a sequence of IP address strings")
        if self.mdns_interfaces is not None:
            for ip in self.mdns_interfaces:
                if not isinstance(ip, str) or not is_ip(ip):
                    raise LocalProtocolError(f"mdns_interfaces takes IP addresses, not {ip!r}")

    def _check_types(self) -> None:
        # Caught here rather than deep inside a starting node, where the error would
        # name a core's argument instead of this field.
        if not isinstance(self.timing, Timing):
            raise LocalProtocolError(
                f"NodeConfig.timing must be a Timing (such as Timing.local()), "
                f"not {self.timing!r}"
            )
        if not isinstance(self.tags, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.tags.items()
        ):
            raise LocalProtocolError(
                f"NodeConfig.tags must be a mapping of str to str, not {self.tags!r}"
            )
        for name, kind in (("keyring", Keyring), ("stealing", StealingTiming)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise LocalProtocolError(
                    f"NodeConfig.{name} must be a {kind.__name__} or None, not {value!r}"
                )

    def _check_counts(self) -> None:
        if type(self.task_slots) is not int or self.task_slots < 0:
            raise LocalProtocolError("NodeConfig.task_slots must be an integer >= 0")
        for name in ("max_connections", "max_inbound_connections", "subscriber_buffer"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise LocalProtocolError(f"NodeConfig.{name} must be a positive integer")

    def _check_durations(self) -> None:
        # NaN or infinity would only fail later, inside a running node (trio refuses a NaN
        # timeout), and a zero idle or frame timeout would refuse every stream frame.
        for name, least in (
            ("connection_idle_timeout", "a positive"),
            ("frame_read_timeout", "a positive"),
            ("leave_timeout", "a non-negative"),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and least == "a positive")
            ):
                raise LocalProtocolError(
                    f"NodeConfig.{name} must be {least} number of seconds, not {value!r}"
                )
