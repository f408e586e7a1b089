"""The ``massdyn`` command line: a thin layer that wires the libraries together.

Each subcommand is a dataclass of its options with a ``run`` method; the parser is derived
from the dataclass fields and their help metadata (:mod:`massdyn.options`), so an option is
declared once, in the library config it sets. Every command also takes ``--config FILE``
(YAML or JSON, command-line values override it) and ``--print-config`` (the resolved
settings, in that file's layout). Only the invoked command's module is imported; torch,
transformers, scikit-learn and pandas are imported inside ``run``.

Exit status: 0 done, 1 some checkpoints or series failed (everything else written), 2 bad
input (one line on stderr naming the problem), 130 interrupted (Ctrl-C; nothing recorded
is lost, the same command resumes).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Collection, Sequence

from massdyn import __version__
from massdyn.commands import COMMANDS
from massdyn.options import add_options, build, dump, read_config_file, resolved

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


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; the subparsers of ``commands`` get their options.

    Args:
        commands: The subcommands whose options to declare (the others show only their
            help line); None: every command's.
    """
    parser = argparse.ArgumentParser(
        prog="massdyn",
        description="Track, fit and predict the emergence of massive activations in transformers.",
    )
    parser.add_argument("--version", action="version", version=f"massdyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if commands is not None and name not in commands:
            sub.add_parser(name, help=entry.help)
            continue
        cls = entry.load()
        p = sub.add_parser(
            name,
            help=entry.help,
            description=inspect.cleandoc(cls.__doc__ or ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(p, cls)
        p.add_argument(
            "--config",
            dest="_config_file",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help="read settings from a YAML or JSON file (command-line values win)",
        )
        p.add_argument(
            "--print-config",
            dest="_print_config",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print the resolved settings in --config's layout and exit",
        )
        p.set_defaults(_cls=cls)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``massdyn`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _command_of(argv)
    parser = build_parser([name] if name else [])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    cls = args._cls
    given = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    show = getattr(args, "_print_config", False)
    try:
        config_file = getattr(args, "_config_file", None)
        file_data = read_config_file(config_file) if config_file else {}
        command = build(cls, argparse.Namespace(**given), file_data)
        if show:
            print(dump(resolved(command)), end="")
            return 0
        return command.run()
    except KeyboardInterrupt as exc:
        # A command that knows what it had finished says so in the exception's message.
        # The shards that walk --jobs runs get the same Ctrl-C: their parent speaks for them.
        if not os.environ.get("MASSDYN_JOBS_PARENT"):
            detail = one_line(exc) if str(exc) else "nothing is lost; rerun the same command"
            print(f"massdyn {args.command}: interrupted: {detail}", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, OSError) and not isinstance(exc, USER_ERRORS):
            # A full disk, a read-only folder, a quota: the system's word, on one line.
            from massdyn.tracker.store import describe_os_error

            what = describe_os_error(exc)
            print(
                f"massdyn {args.command}: error: {what}; nothing recorded before it is lost",
                file=sys.stderr,
            )
            return 2
        status = getattr(exc, "exit_status", None)
        if status is not None:  # a run that recorded something before it had to stop
            print(f"massdyn {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return status
        if not isinstance(exc, USER_ERRORS):
            raise
        print(f"massdyn {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
