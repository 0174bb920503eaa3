"""SIGINT and SIGTERM for the commands that run until stopped (``run``, ``demo``).

Inside ``trio.run`` a command takes the stop signals with ``trio.open_signal_receiver``.
:class:`StopSignals` covers the rest of the process's life, so that no stop signal ever
raises ``KeyboardInterrupt`` at a random point (a traceback) or ends the process by the
signal (SIGTERM's default) instead of the documented exit code.
"""

from __future__ import annotations

import signal

__all__ = ["STOP_SIGNALS", "StopSignals"]

#: The signals that stop a command: Ctrl-C and a service manager's stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM outside the command's signal receiver: noted, never an exception.

    :meth:`install` before ``trio.run``: trio then installs no ``KeyboardInterrupt``
    handler of its own, and these handlers see the signals that arrive before the
    receiver opens (:attr:`seen`) and those it re-delivers when it closes (a second
    signal that arrived during the graceful stop). :meth:`ignore` once the run is over:
    interpreter finalization resets Python-level handlers to the default, under which a
    late signal would kill the process.

    The handlers are process-wide and stay: the commands own their process.
    """

    def __init__(self) -> None:
        #: A stop signal arrived outside the command's signal receiver.
        self.seen = False

    def install(self) -> None:
        """Note SIGINT and SIGTERM from now on instead of raising or dying."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def ignore(self) -> None:
        """Ignore SIGINT and SIGTERM from now until the process ends: it is stopping."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _note(self, signum: int, frame: object) -> None:
        self.seen = True
