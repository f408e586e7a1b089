"""Command-line options derived from config dataclasses: each option is declared once.

An option is a dataclass field with its help text in the field's metadata; the parser, the
defaults shown in ``--help``, the config file (``--config``) and the resolved config
(``--print-config``, and the copy a walk writes beside its results) all come from the fields.
The libraries (``tracker``, ``fitting``) declare their settings as plain
``dataclasses.field(default=..., metadata={"help": ...})`` without importing anything of
ours; the commands use :func:`opt`, the same field in fewer words. Keys a field's metadata
may carry:

``help``
    The help text (required for every field the command line shows).
``flag``
    The spelling on the command line when it is not ``--`` + the field name with dashes
    (``n_seqs`` is ``--seqs``); for a field whose default is True, a ``--no-...`` flag that
    turns it off.
``positional``
    A positional argument (its metavar is the field name in capitals).
``choices``
    The allowed values, or a function returning them (called only when that command's
    parser is built, so a registry is imported only by the command that needs it).
``metavar``, ``nargs``, ``const``
    Passed to ``argparse`` as they are.
``exclusive``
    Options sharing this name are mutually exclusive.
``cli``
    False: the field stays out of the command line and the config file (library-only).
``flatten``
    On a dataclass-typed field: its fields sit at this level of the config file instead of
    under the field's name. Nested dataclasses are always flat on the command line.

A config file (YAML or JSON) mirrors the dataclasses: field names as keys, a nested mapping
per nested dataclass. Values given on the command line override the file, which overrides
the defaults.

A hand-rolled builder over :func:`dataclasses.fields` rather than simple-parsing or tyro:
the README's spellings (``--seqs``, ``--bos``, ``--no-prefetch``) differ from the field
names, the libraries must not import a CLI package, and ``massdyn --help`` must stay
instant (both packages cost 0.1-0.3 s of imports and add a dependency for 200 lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The one serialiser of settings; the command line resolves through it too.
from massdyn.tracker.config import settings as resolved  # noqa: F401

MISSING = dataclasses.MISSING


def opt(default: Any = MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field declared as a command-line option (see the keys above).

    Args:
        default: The default; leave out for a required option.
        help: The help text.
        **meta: Further metadata keys (``flag``, ``positional``, ``choices``, ...).
    """
    return dataclasses.field(default=default, metadata={"help": help, **meta})


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option: where its value goes and how it is spelled."""

    path: tuple[str, ...]  # field names from the command down to the field
    file_path: tuple[str, ...]  # the same without flattened levels: its place in a file
    field: dataclasses.Field
    type: Any
    default: Any

    @property
    def dest(self) -> str:
        """The argparse destination."""
        return "__".join(self.path)

    @property
    def meta(self) -> typing.Mapping:
        """The field's metadata."""
        return self.field.metadata

    @property
    def positional(self) -> bool:
        """Whether the option is positional."""
        return bool(self.meta.get("positional"))

    @property
    def flag(self) -> str:
        """How the option is written: ``--seq-len``, or ``SOURCE`` for a positional."""
        if self.positional:
            return self.field.name.upper()
        return self.meta.get("flag") or "--" + self.field.name.replace("_", "-")

    @property
    def required(self) -> bool:
        """Whether the option has no default."""
        return self.default is MISSING


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _cli_fields(cls) -> Iterator[tuple[dataclasses.Field, Any]]:
    """``(field, type)`` of every field of ``cls`` the command line and config files see."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.init and f.metadata.get("cli", True) is not False:
            yield f, _strip_optional(hints[f.name])


def options(cls, path: tuple[str, ...] = (), file_path: tuple[str, ...] = ()) -> Iterator[Option]:
    """Every command-line option of the dataclass ``cls``, nested dataclasses included."""
    for f, tp in _cli_fields(cls):
        if dataclasses.is_dataclass(tp):
            inner = file_path if f.metadata.get("flatten") else (*file_path, f.name)
            yield from options(tp, (*path, f.name), inner)
            continue
        yield Option((*path, f.name), (*file_path, f.name), f, tp, _default(f))


def _with_default(opt: Option) -> str:
    text = opt.meta.get("help")
    if not text:
        raise TypeError(f"option {opt.flag} ({'.'.join(opt.path)}) has no help text")
    if opt.default is MISSING or opt.default is None or isinstance(opt.default, bool):
        return text
    if opt.default in ("", ()):
        return text
    return f"{text} (default: {opt.default})"


def add_options(parser: argparse.ArgumentParser, cls) -> list[Option]:
    """Declare the options of ``cls`` on ``parser``; every default is left to :func:`build`.

    Raises:
        TypeError: an option without help, or two options with one spelling.
    """
    opts = list(options(cls))
    seen: dict[str, Option] = {}
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for opt in opts:
        if opt.flag in seen:
            raise TypeError(f"{opt.flag} is declared by {seen[opt.flag].path} and {opt.path}")
        seen[opt.flag] = opt
        kwargs: dict[str, Any] = {"help": _with_default(opt), "default": argparse.SUPPRESS}
        meta = opt.meta
        if opt.type is bool and not opt.positional:
            kwargs["action"] = "store_false" if opt.default is True else "store_true"
        else:
            item = opt.type
            if typing.get_origin(item) in (list, tuple):
                item = typing.get_args(item)[0]
                kwargs["nargs"] = "*" if opt.positional else "+"
            if item in (int, float):
                kwargs["type"] = item
            choices = meta.get("choices")
            if choices is not None:
                kwargs["choices"] = tuple(choices() if callable(choices) else choices)
            if "choices" not in kwargs:
                kwargs["metavar"] = opt.flag.lstrip("-").replace("-", "_").upper()
            for key in ("metavar", "nargs", "const"):
                if key in meta:
                    kwargs[key] = meta[key]
        target = parser
        if meta.get("exclusive"):
            if meta["exclusive"] not in groups:
                groups[meta["exclusive"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["exclusive"]]
        if opt.positional:
            kwargs.setdefault("nargs", "?")
            kwargs["metavar"] = opt.flag
            target.add_argument(opt.dest, **kwargs)
        else:
            target.add_argument(opt.flag, dest=opt.dest, **kwargs)
    return opts


def read_config_file(path: str) -> dict:
    """A config file's mapping (YAML or JSON).

    Raises:
        ValueError: the file is missing or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config {path}: no such file")
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"--config {path} is not UTF-8 text (byte {exc.start} is not): give a YAML or JSON file"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: not valid YAML or JSON ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    return data


def _file_value(data: dict, opt: Option) -> Any:
    node: Any = data
    for key in opt.file_path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def _known_keys(cls, file_path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every key path a config file may use, mapped to the dataclass it lives in (or None)."""
    keys: dict[tuple[str, ...], Any] = {}
    for f, tp in _cli_fields(cls):
        if dataclasses.is_dataclass(tp):
            if f.metadata.get("flatten"):
                keys.update(_known_keys(tp, file_path))
            else:
                keys[(*file_path, f.name)] = tp
                keys.update(_known_keys(tp, (*file_path, f.name)))
        else:
            keys[(*file_path, f.name)] = None
    return keys


def _check_keys(data: dict, known: dict, where: tuple[str, ...] = ()) -> None:
    for key, value in data.items():
        path = (*where, key)
        if path not in known:
            names = sorted(".".join(k) for k in known if len(k) == len(path))
            raise ValueError(
                f"--config: unknown setting {'.'.join(path)!r}; known here: {', '.join(names)}"
            )
        if known[path] is not None:
            if not isinstance(value, dict):
                raise ValueError(f"--config: {'.'.join(path)} must be a mapping")
            _check_keys(value, known, path)


def build(cls, namespace: argparse.Namespace, file_data: dict | None = None):
    """An instance of ``cls`` from parsed arguments over a config file over the defaults.

    Raises:
        ValueError: a required option is missing, or a setting of the file is unknown.
    """
    file_data = file_data or {}
    _check_keys(file_data, _known_keys(cls))
    given = vars(namespace)
    values: dict[tuple[str, ...], Any] = {}
    for opt in options(cls):
        value = given.get(opt.dest, MISSING)
        if value is MISSING:
            value = _file_value(file_data, opt)
        if value is MISSING:
            if opt.required:
                raise ValueError(f"{opt.flag} is required (on the command line or in --config)")
            continue
        if isinstance(value, list) and typing.get_origin(opt.type) is tuple:
            value = tuple(value)
        if isinstance(value, str) and typing.get_origin(opt.type) in (list, tuple):
            value = [value]  # one item, as a config file may write it
        values[opt.path] = value
    return _instantiate(cls, values, ())


def _instantiate(cls, values: dict, path: tuple[str, ...]):
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _strip_optional(hints[f.name])
        here = (*path, f.name)
        if f.metadata.get("cli", True) is not False and dataclasses.is_dataclass(tp):
            kwargs[f.name] = _instantiate(tp, values, here)
        elif here in values:
            kwargs[f.name] = values[here]
    return cls(**kwargs)


def dump(data: dict) -> str:
    """YAML text of a resolved config (JSON-compatible values only)."""
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)
