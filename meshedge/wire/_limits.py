"""Size and shape limits of the wire format, each with the reason for its default."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import LocalProtocolError

__all__ = ["DEFAULT_LIMITS", "WireLimits"]


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Bounds on what a node accepts from the network (and refuses to send).

    Every inbound item larger or deeper than these is dropped before it is decoded
    further, so a hostile peer cannot make a node spend memory or time on it.
    """

    #: Bytes in one UDP datagram, encryption included. 1400 stays under the 1500-byte
    #: Ethernet MTU with room for IP/UDP headers and tunnels (memberlist uses 1400 too).
    max_datagram_size: int = 1400
    #: Bytes in one stream (TCP) frame: push-pull state, direct messages, task payloads.
    #: 1 MiB bounds the memory one connection can pin.
    max_frame_size: int = 1024 * 1024
    #: Nesting of containers in a message body (a scalar is 0, ``[1]`` is 1). 16 is deep
    #: enough for any protocol record and stops stack-exhaustion attempts cold.
    max_body_depth: int = 16
    #: UTF-8 bytes of a mesh name: a name, not a document.
    max_mesh_name_size: int = 64
    #: Signed units in one datagram; 1400 bytes cannot hold more than ~12 real ones.
    max_units_per_datagram: int = 32

    def __post_init__(self) -> None:
        for name in (
            "max_datagram_size",
            "max_frame_size",
            "max_body_depth",
            "max_mesh_name_size",
            "max_units_per_datagram",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise LocalProtocolError(
                    f"WireLimits.{name} must be a positive integer, not {value!r}"
                )


#: The limits used when none are given.
DEFAULT_LIMITS = WireLimits()
