"""Every message type of the meshedge protocol, with the schema of its body.

Types are small integers on the wire. A message of a type missing here is refused
(``unknown_type``); a body that does not fit its schema is refused (``schema``).
"""

from __future__ import annotations

import enum
from typing import Final

from .schema import Schema, any_plain

__all__ = ["MESSAGE_SCHEMAS", "MessageType"]


class MessageType(enum.IntEnum):
    """Message types carried in the signed envelope (field 4)."""

    #: An application message: the body is any plain CBOR data of the application.
    APP = 1


#: The schema of each type's body.
MESSAGE_SCHEMAS: Final[dict[int, Schema]] = {
    # Depth is already bounded by WireLimits.max_body_depth when the body is decoded.
    MessageType.APP: any_plain(max_depth=1 << 30),
}
