"""The ``massdyn`` command line: a thin layer that wires the libraries together.

Each subcommand is a dataclass of its options with a ``run`` method. Command modules import
only the standard library at the top, so that ``--help``, ``--version`` and argument errors
answer at once; torch, transformers, scikit-learn and pandas are imported inside ``run``.

Exit status: 0 done, 1 some checkpoints or series failed (everything else written), 2 bad
input (one line on stderr naming the problem), 130 interrupted (Ctrl-C; nothing recorded
is lost, the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from massdyn import __version__
from massdyn.commands import COMMANDS

# Errors that mean "the input is wrong", reported in one line with exit status 2. Every
# library error class of massdyn derives from ValueError or is listed here; anything else
# is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
)


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


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


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
    except KeyboardInterrupt as exc:
        # A command that knows what it had finished says so in the exception's message.
        detail = one_line(exc) if str(exc) else "nothing is lost; rerun the same command"
        print(f"massdyn {args.command}: interrupted: {detail}", file=sys.stderr)
        return 130
    except Exception as exc:
        from tracker.sources import CheckpointError

        if not isinstance(exc, (*USER_ERRORS, CheckpointError)):
            raise
        print(f"massdyn {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
