"""Checkpoint series: a Hugging Face Hub repo with step branches, or a folder of folders.

A source (:class:`CheckpointSource`) lists its checkpoints (step -> reference), fetches one
to verified local files, and releases it afterwards (for the Hub: deletes from the cache
what the walk downloaded, never what was cached before). One reason to change per module:
``base`` (the protocol), ``integrity`` (which files, which hashes), ``local`` (folders),
``hub`` (the Hub, online or cached) and ``hub_cache`` (the walk's share of the cache).
"""

from __future__ import annotations

import re
from pathlib import Path

from massdyn.tracker.sources.base import (
    CheckpointError,
    CheckpointSource,
    Fetched,
    first_line,
    step_of,
)
from massdyn.tracker.sources.hub import CachedHubSource, HubSource, hub_source
from massdyn.tracker.sources.local import LocalSource


def looks_like_path(spec: str) -> bool:
    """Whether a SOURCE is meant as a folder: absolute, ``./``, ``~``, a backslash, 3+ parts."""
    return (
        spec.startswith(("/", "./", "../", "~", ".\\"))
        or spec in (".", "..")
        or spec.endswith("/")
        or spec.count("/") >= 2
        or "\\" in spec
    )


def open_source(
    spec: str, name: str | None = None, revision_pattern: str | None = None
) -> CheckpointSource:
    """A :class:`LocalSource` for an existing folder, else the Hub repo ``spec``.

    Raises:
        CheckpointError: when ``spec`` looks like a path but is no folder, or is neither a
            folder nor of the form ``org/name``.
    """
    if Path(spec).expanduser().is_dir():
        return LocalSource(Path(spec).expanduser(), name=name, revision_pattern=revision_pattern)
    if looks_like_path(spec):
        raise CheckpointError(f"no such folder: {spec}")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return hub_source(spec, name=name, revision_pattern=revision_pattern)
    from massdyn.tracker.schedule import shipped_suites

    suites = ", ".join(shipped_suites())
    raise CheckpointError(
        f"{spec!r} is neither a checkpoint folder, a Hub repo id (org/name) nor a shipped "
        f"suite ({suites})"
    )


__all__ = [
    "CachedHubSource",
    "CheckpointError",
    "CheckpointSource",
    "Fetched",
    "HubSource",
    "LocalSource",
    "first_line",
    "hub_source",
    "looks_like_path",
    "open_source",
    "step_of",
]
