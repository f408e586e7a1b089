"""What a checkpoint source is: the protocol the walker calls, and what a fetch returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message is recorded as the reason.

    A ``ValueError`` like every other error the user can act on: the CLI reports it in one
    line with exit status 2 when it ends a command.
    """


@dataclass
class Fetched:
    """A checkpoint available as local files.

    Attributes:
        step: Training step.
        ref: Revision name (Hub) or folder (local).
        path: Folder that ``from_pretrained`` can load.
        weights_sha256: Digest over the weight files' sha256.
        verified: How integrity was established (``lfs-sha256``, ``git-sha1``, ``local``,
            ``unverified``).
        downloaded: True when this walk downloaded it (so releasing may delete it).
        commit: Resolved commit id (Hub) or None.
        nbytes: Size of the fetched files.
        files: The files fetched (config and weights).
    """

    step: int
    ref: str
    path: Path
    weights_sha256: str
    verified: str
    downloaded: bool = False
    commit: str | None = None
    nbytes: int = 0
    files: list[str] = field(default_factory=list)


@runtime_checkable
class CheckpointSource(Protocol):
    """A checkpoint series as the walker sees it.

    ``fetch`` may run in a background thread while the walker measures another checkpoint;
    every other method is called from the walker's thread.

    Attributes:
        name: The series' name in the results.
        location: What ``massdyn walk`` takes as SOURCE for this series.
    """

    name: str
    location: str

    def list_steps(self) -> dict[int, str]:
        """Map step -> reference (branch or folder) of every checkpoint of the series."""
        ...

    def size_of(self, ref: str) -> int:
        """Bytes that fetching ``ref`` would add to the disk (0: nothing to download)."""
        ...

    def model_config(self, ref: str) -> dict:
        """The ``config.json`` of one checkpoint (without its weights)."""
        ...

    def fetch(self, step: int, ref: str) -> Fetched:
        """Make one checkpoint available as verified local files.

        Raises:
            CheckpointError: the checkpoint is missing, incomplete or corrupt.
        """
        ...

    def release(self, fetched: Fetched, keep: bool = False) -> None:
        """The walker is done with ``fetched``; delete what this walk downloaded unless ``keep``."""
        ...

    def recover(self, folder: Path, pending: set[str], keep: bool = False) -> None:
        """Clean up after an interrupted earlier run of the walk recorded in ``folder``."""
        ...

    def tokenizer_location(self, ref: str) -> str:
        """A local folder holding the tokenizer files of ``ref``."""
        ...


def step_of(name: str) -> int | None:
    """The training step a checkpoint name gives by the revision grammar, or None."""
    from massdyn.tracker.sources.revisions import RevisionGrammar

    got = RevisionGrammar(local=True).parse(name)
    return None if got is None else got[0].step


def read_config(path: Path) -> dict:
    """A ``config.json``, parsed.

    Raises:
        CheckpointError: unreadable or not JSON.
    """
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when it has none)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__
