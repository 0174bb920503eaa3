"""The ``meshedge`` command line: ``keygen``, ``id``, ``run`` and ``demo``.

Exit codes: 0 success; 1 runtime failure; 2 bad usage (unknown flag, bad address,
bad tag); 3 key or identity file problem; 4 address already in use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..wire._message import PROTOCOL_VERSION

__all__ = [
    "EXIT_ADDRESS_IN_USE",
    "EXIT_FAILURE",
    "EXIT_KEY_FILE",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_KEY_FILE = 3
EXIT_ADDRESS_IN_USE = 4


def _version_text() -> str:
    """What ``meshedge --version`` prints: the package and its wire protocol version."""
    return f"meshedge {__version__} (wire protocol {PROTOCOL_VERSION})"


def _parser() -> argparse.ArgumentParser:
    from .demo import add_demo_arguments
    from .run import add_run_arguments

    parser = argparse.ArgumentParser(
        prog="meshedge",
        description="A peer-to-peer edge mesh: run a node, manage identities, see a demo.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="create an identity file (mode 0600)")
    keygen.add_argument("path", nargs="?", default="meshedge.key", help="default: meshedge.key")
    keygen.add_argument("--force", action="store_true", help="replace an existing file")

    show = commands.add_parser("id", help="print the node id of an identity file")
    show.add_argument("path", nargs="?", default="meshedge.key", help="default: meshedge.key")

    add_run_arguments(commands.add_parser("run", help="run a node until Ctrl-C"))
    add_demo_arguments(commands.add_parser("demo", help="a local mesh of node processes"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from .._errors import KeyFileError, LocalProtocolError
    from .._identity import Identity

    args = _parser().parse_args(argv)
    try:
        if args.command == "keygen":
            if os.path.lexists(args.path) and not args.force:
                # The library's message names its keyword argument; say the flag here.
                print(f"meshedge: {args.path} exists; pass --force to replace it", file=sys.stderr)
                return EXIT_KEY_FILE
            identity = Identity.generate()
            identity.save(args.path, overwrite=args.force)
            print(f"{identity.node_id}  written to {args.path} (mode 0600)")
            return EXIT_OK
        if args.command == "id":
            print(Identity.load(args.path).node_id)
            return EXIT_OK
        if args.command == "run":
            from .run import run_command

            return run_command(args)
        from .demo import demo_command

        return demo_command(args)
    except KeyFileError as exc:
        print(f"meshedge: {exc}", file=sys.stderr)
        return EXIT_KEY_FILE
    except LocalProtocolError as exc:
        print(f"meshedge: {exc}", file=sys.stderr)
        return EXIT_USAGE
