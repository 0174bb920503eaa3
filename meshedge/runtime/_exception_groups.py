"""One rule for the exception groups of the runtime's internal nurseries.

trio's nurseries are strict: whatever is raised inside one leaves it wrapped in an
``ExceptionGroup``, one exception or several. ``open_node`` and ``open_mdns`` are
context managers whose nursery is an implementation detail around the caller's block
(trio's docs: "Designing for multiple errors", the second pattern), so a group holding
exactly one exception, the caller's own or a background task's, comes out as that
exception: ``except KeyError`` around ``async with open_node(...)`` works. A group of
several is raised as it is, never reduced to one of them, so callers that may meet it
handle it with ``except*``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["unwrap_lone_exception"]


@contextmanager
def unwrap_lone_exception() -> Iterator[None]:
    """Re-raise a group of exactly one exception as that exception; let others pass.

    Only the outermost group is looked at: an exception group that was itself the one
    exception (the caller raised a group) comes out as that group. The lone exception
    keeps its traceback, its ``__cause__`` and its ``__context__``.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        lone = group.exceptions[0]
        context, suppress = lone.__context__, lone.__suppress_context__
        try:
            raise lone
        finally:
            # ``raise`` inside ``except`` makes the group the context: undo that.
            lone.__context__, lone.__suppress_context__ = context, suppress
