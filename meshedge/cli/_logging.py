"""Where ``meshedge run`` sends the library's log: stderr, and warnings as JSON records.

The library only logs (under the ``meshedge`` logger); the command decides: every record
at ``--log-level`` or above goes to stderr as one line, and with ``--json`` every warning
or error also goes to stdout as a record ``{"event": "warning", "message": ..., "peer":
...}`` so that a program reading the JSON lines sees it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["LOG_LEVELS", "JsonWarnings", "command_logging"]

#: The choices of ``--log-level``.
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonWarnings(logging.Handler):
    """Writes each record as one JSON line: ``event`` is its level name, in lower case.

    Args:
        out: where the lines go (the command's stdout, shared with its other records).
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.WARNING)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record (one ``write`` call, so lines from other threads stay whole)."""
        try:
            entry: dict[str, Any] = {
                "event": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
                "time": round(time.time(), 3),
            }
            peer = getattr(record, "peer", None)
            if peer is not None:
                entry["peer"] = peer
            self._out.write(json.dumps(entry, sort_keys=True) + "\n")
            self._out.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def command_logging(level: str, as_json: bool, out: TextIO, err: TextIO) -> Iterator[None]:
    """Send the ``meshedge`` log to ``err`` (and warnings to ``out`` as JSON) meanwhile.

    Args:
        level: a key of :data:`LOG_LEVELS`.
        as_json: also write warnings and errors to ``out`` as JSON records.
        out: the command's stdout.
        err: the command's stderr.
    """
    root = logging.getLogger("meshedge")
    text = logging.StreamHandler(err)
    text.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handlers: list[logging.Handler] = [text]
    if as_json:
        handlers.append(JsonWarnings(out))
    saved = root.level
    root.setLevel(LOG_LEVELS[level])
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(saved)
