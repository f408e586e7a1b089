"""Data shipped with massdyn (tables, configs, suite definitions), and its one accessor.

Every shipped file is read through :func:`path` or :func:`read_json`, so that where the data
live (a source tree, an installed wheel, a zip) is decided in one place. ``README.md`` here
says what each file holds.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """The shipped file or folder ``parts`` (e.g. ``path("minisuite", "params.csv")``).

    Raises:
        FileNotFoundError: naming the missing file.
    """
    p = Path(str(files(__name__).joinpath(*parts)))
    if not p.exists():
        raise FileNotFoundError(f"massdyn ships no {'/'.join(parts)} (looked in {p.parent})")
    return p


@cache
def _cached_json(parts: tuple[str, ...]) -> str:
    return path(*parts).read_text(encoding="utf-8")


def read_json(*parts: str):
    """A shipped JSON file, parsed (a fresh copy each call: callers may change it)."""
    return json.loads(_cached_json(parts))
