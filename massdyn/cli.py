"""The ``massdyn`` command line: a thin layer that wires the libraries together.

Each subcommand is a dataclass of its options with a ``run`` method; argparse is built
from the dataclass fields so that options and their help live in one place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from massdyn import __version__
from massdyn.commands import COMMANDS
from tracker.sources import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="massdyn",
        description="Track, fit and predict the emergence of massive activations in transformers.",
    )
    parser.add_argument("--version", action="version", version=f"massdyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cls in COMMANDS.items():
        p = sub.add_parser(name, help=cls.help, description=cls.__doc__)
        cls.add_arguments(p)
        p.set_defaults(_cls=cls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``massdyn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    cls = args._cls
    options = {k: v for k, v in vars(args).items() if k not in ("command", "_cls")}
    try:
        return cls(**options).run()
    except (FileNotFoundError, ValueError, CheckpointError) as exc:
        print(f"massdyn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
