"""What-if analysis for sizing a mesh: ``python -m meshedge.sim --nodes N --loss P``.

Runs the scenarios of :mod:`meshedge.sim.scenarios` for one configuration — mesh size,
datagram loss, timing preset, seed — and prints how fast a change spreads, how fast a
crash is detected, how many healthy nodes a stalling node gets declared dead (with and
without Lifeguard), what each node sends per second, and how long a split mesh takes to
become one again. Every figure is virtual time of the deterministic simulator (the same
seed gives the same figures on any machine); wall-clock speed is measured by
``benchmarks/membership.py`` instead.

Example::

    python -m meshedge.sim --nodes 500 --loss 0.05 --timing lan
    python -m meshedge.sim --nodes 2000 --only dissemination,bandwidth
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._errors import LocalProtocolError
from ._cli.arguments import PRESETS, SCENARIOS, build_parser
from ._cli.report import REPORTS

__all__ = ["SCENARIOS", "main"]

#: Bytes one simulated node's view of one member takes (measured), for the warning
#: about memory: every node keeps a view of every other, so memory grows as N squared.
_BYTES_PER_VIEW_ENTRY = 550
#: Above this estimate, the CLI warns before starting.
_MEMORY_WARNING = 2 * 2**30


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the chosen scenarios and print their figures.

    Args:
        argv: the arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit status: 0 on success, 2 for a usage error (argparse exits by itself
        for a malformed command line).
    """
    command = build_parser()
    args = command.parse_args(argv)
    timing = PRESETS[args.timing]()
    print(
        f"meshedge simulator: N={args.nodes}, loss {args.loss:.1%}, Timing.{args.timing}() "
        f"(probe {timing.probe_interval:g} s, gossip {timing.gossip_interval:g} s to "
        f"{timing.gossip_nodes}), seed {args.seed}"
    )
    print("Figures are virtual seconds of the deterministic simulator.", flush=True)
    memory = _BYTES_PER_VIEW_ENTRY * args.nodes * args.nodes
    if memory > _MEMORY_WARNING:
        print(
            f"note: N={args.nodes} needs about {memory / 2**30:.0f} GiB of memory "
            "(every simulated node keeps a view of every other)",
            flush=True,
        )
    try:
        for name in SCENARIOS:
            if name in args.only:
                REPORTS[name](args, timing)
    except LocalProtocolError as exc:
        command.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
