"""Crash-safe, resumable results folder of a walk.

Layout of ``DIR``::

    measurements.csv      one row per (model, step, layer, seq), assembled from parts/
    checkpoints.csv       one row per checkpoint: status, reason, seconds, dtype, ...
    parts/step000001000.csv   the rows of one checkpoint
    inputs.npy, inputs.json   the token ids measured, with their sha256
    walk.json             the series and input recipe this folder belongs to

Every file is written to a temporary name, flushed to disk and renamed over the old one,
so a walk killed at any instant (kill -9 included) leaves each file either old or new,
never half written. A part file exists only for a completely measured checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

MEASUREMENT_COLUMNS = ("model", "step", "layer", "seq", "top1", "top2", "top3", "median")
CHECKPOINT_COLUMNS = (
    "model",
    "step",
    "revision",
    "status",
    "reason",
    "seconds",
    "dtype",
    "device",
    "weights_sha256",
    "verified",
    "duplicate_of",
)


class StoreError(ValueError):
    """The results folder belongs to another walk or is damaged."""


def atomic_write(path: Path, write, binary: bool = False) -> None:
    """Write a file via a temporary sibling, fsync and rename.

    Args:
        path: Destination.
        write: Callable receiving the open file.
        binary: Open the file in binary mode (e.g. for Parquet) instead of text.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as CSV atomically (floats at full precision)."""
    atomic_write(path, lambda f: df.to_csv(f, index=False))


class ResultStore:
    """The results folder of one walk.

    Args:
        folder: ``DIR``.
        identity: What this walk is (series and input recipe); a folder written by a walk
            with a different identity is refused rather than mixed.
    """

    def __init__(self, folder: str | Path, identity: dict):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"
        self.identity = identity
        self._checkpoints: dict[int, dict] = {}

    def open(self) -> ResultStore:
        """Create or reopen the folder; drop temporaries left by a killed walk.

        Raises:
            StoreError: if the folder belongs to a different walk.
        """
        self.parts.mkdir(parents=True, exist_ok=True)
        for tmp in [*self.folder.glob(".*.tmp"), *self.parts.glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)
        walk_file = self.folder / "walk.json"
        if walk_file.exists():
            recorded = json.loads(walk_file.read_text())
            diff = sorted(
                k
                for k in set(recorded) | set(self.identity)
                if recorded.get(k) != self.identity.get(k)
            )
            if diff:
                raise StoreError(
                    f"{self.folder} holds results of a different walk "
                    f"(differs in: {', '.join(diff)}); "
                    "use another --out folder or the same settings"
                )
        else:
            atomic_write(walk_file, lambda f: json.dump(self.identity, f, indent=2))
        ck = self.folder / "checkpoints.csv"
        if ck.exists():
            table = pd.read_csv(ck, keep_default_na=False, na_values=[""])
            self._checkpoints = {int(r["step"]): r for r in table.to_dict("records")}
        return self

    def part_path(self, step: int) -> Path:
        """File holding the rows of one checkpoint."""
        return self.parts / f"step{step:09d}.csv"

    def done_steps(self) -> set[int]:
        """Checkpoints fully measured: recorded ``ok`` and with their part on disk."""
        return {
            s
            for s, r in self._checkpoints.items()
            if r.get("status") == "ok" and self.part_path(s).exists()
        }

    def checkpoint(self, step: int) -> dict | None:
        """The recorded row of a checkpoint, if any."""
        return self._checkpoints.get(step)

    def record(self, rows: pd.DataFrame | None, checkpoint: dict) -> None:
        """Store one checkpoint: its rows (when measured) first, then its status row."""
        step = int(checkpoint["step"])
        if rows is not None:
            atomic_csv(rows, self.part_path(step))
        self._checkpoints[step] = {c: checkpoint.get(c, "") for c in CHECKPOINT_COLUMNS}
        atomic_csv(self.checkpoints_table(), self.folder / "checkpoints.csv")

    def checkpoints_table(self) -> pd.DataFrame:
        """All checkpoint rows by step, with ``duplicate_of`` naming an earlier identical step."""
        table = pd.DataFrame(
            [self._checkpoints[s] for s in sorted(self._checkpoints)],
            columns=list(CHECKPOINT_COLUMNS),
        )
        first: dict[str, int] = {}
        dup = []
        for step, digest in zip(table["step"], table["weights_sha256"], strict=True):
            if isinstance(digest, str) and digest:
                dup.append(first.setdefault(digest, int(step)))
            else:
                dup.append(None)
        table["duplicate_of"] = [
            d if d is not None and d != s else "" for d, s in zip(dup, table["step"], strict=True)
        ]
        return table

    def assemble(self, parquet: bool = False) -> pd.DataFrame:
        """Rebuild ``measurements.csv`` (and ``.parquet`` if asked) from the ``ok`` parts."""
        frames = [pd.read_csv(self.part_path(s)) for s in sorted(self.done_steps())]
        table = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=list(MEASUREMENT_COLUMNS))
        )
        atomic_csv(table, self.folder / "measurements.csv")
        if parquet:
            path = self.folder / "measurements.parquet"
            atomic_write(path, lambda f: table.to_parquet(f, index=False), binary=True)
        atomic_csv(self.checkpoints_table(), self.folder / "checkpoints.csv")
        return table
