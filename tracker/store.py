"""Crash-safe, resumable results folder of a walk.

Layout of ``DIR``::

    measurements.csv      one row per (model, step, layer, seq), assembled from parts/;
                          a ``duplicate_of`` column when a measured checkpoint serves
                          another step's weights (its rows name that step)
    checkpoints.csv       one row per checkpoint: status, reason, seconds, dtype, ...
    parts/step000001000.csv   the rows of one checkpoint
    inputs.npy, inputs.json   the token ids measured, with their sha256
    walk.json             the series and input recipe this folder belongs to
    .lock                 held (flock) by the one process writing the folder

Every file is written to a temporary name, flushed to disk and renamed over the old one,
so a walk killed at any instant (kill -9 included) leaves each file either old or new,
never half written. A part file exists only for a completely measured checkpoint.
``measurements.csv`` is rewritten after every checkpoint, so it can be read (plotted,
fitted) while a long walk runs. Files get the permissions the user's umask gives.

One process writes a folder at a time: a second walk into it is refused with the holder's
pid and host. ``walk.json`` is written only once a walk can start (inputs built and checked);
a folder whose recorded walk never measured anything counts as empty, so a corrected
command is not refused as "a different walk".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

# What massdyn.fitting reads (fitting.series.MEASUREMENT_COLUMNS; the layering keeps the
# two libraries apart, a test keeps the two declarations equal).
MEASUREMENT_COLUMNS = ("model", "step", "layer", "seq", "top1", "top2", "top3", "median")
# Added to the measurements only when some measured checkpoint repeats an earlier one's weights.
DUPLICATE_COLUMN = "duplicate_of"
CHECKPOINT_COLUMNS = (
    "model",
    "step",
    "revision",
    "status",
    "reason",
    "seconds",
    "dtype",
    "device",
    "load",
    "weights_sha256",
    "verified",
    "duplicate_of",
    "attempts",
    "tokens",
    "stage",
    "commit",
)
# Carried from checkpoints.csv into the measurements when some checkpoint has them.
TIME_COLUMNS = ("tokens", "stage")


def _absolute_inputs(identity: dict) -> dict:
    """An identity recorded with relative input paths, resolved from here.

    Identities are recorded with absolute paths now; an older folder's relative ones are
    resolved from the current folder, so such a walk still resumes where it started.
    """
    inputs = identity.get("inputs")
    if not isinstance(inputs, dict):
        return identity
    fixed = dict(inputs)
    for key in ("text", "token_ids"):
        if isinstance(fixed.get(key), str) and not Path(fixed[key]).is_absolute():
            fixed[key] = str(Path(fixed[key]).expanduser().resolve())
    return {**identity, "inputs": fixed}


def _count(value) -> int:
    """A count read back from a table: empty or NaN (older folders) is 0."""
    try:
        return 0 if value in ("", None) or value != value else int(value)
    except (TypeError, ValueError):
        return 0


class StoreError(ValueError):
    """The results folder belongs to another walk, is in use or is damaged."""


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread runs.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def describe_os_error(exc: OSError) -> str:
    """``PATH: No space left on device (ENOSPC)``: what the system refused, and where."""
    import errno

    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else ""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc).strip() or type(exc).__name__
    return f"{where}{what}{f' ({code})' if code else ''}"


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
        os.fchmod(fd, FILE_MODE)  # mkstemp creates 0600; results are as readable as inputs
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _uninterrupted():
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it.

    A checkpoint's part, its status row and the tables are written as one step: a Ctrl-C
    between them would leave a part on disk that ``measurements.csv`` does not yet show.
    Only the main thread can handle signals; elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        # None: a handler not installed from Python; the default is the nearest thing.
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)
    elif caught and previous in (signal.SIG_DFL, None):
        os.kill(os.getpid(), signal.SIGINT)


def atomic_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as CSV atomically (floats at full precision)."""
    atomic_write(path, lambda f: df.to_csv(f, index=False))


# Folders this process holds the lock of: {folder: (open lock file, holders)}. flock locks
# belong to an open file, so a second open in the same process would conflict with the
# first; within a process the lock is shared instead.
_HELD: dict[Path, list] = {}


def _lock(folder: Path) -> None:
    key = folder.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return
    f = (folder / ".lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise StoreError(
            f"{folder} is being written by {holder}; wait for that walk to end or use another "
            "--out folder"
        ) from None
    f.seek(0)
    f.truncate()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
    f.flush()
    _HELD[key] = [f, 1]


def _unlock(folder: Path) -> None:
    key = folder.resolve()
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        held[0].close()  # closing the file releases the flock


def folder_identity(model: str, inputs, tokenizer: str) -> dict:
    """What a results folder belongs to; a folder of another identity is never mixed into.

    Args:
        model: The series' name.
        inputs: What fixes the inputs: a walk's input recipe, or the digest of given inputs.
        tokenizer: The tokenizer's name (``series``: the checkpoints' own; ``live``).
    """
    return {"model": model, "inputs": inputs, "tokenizer": tokenizer}


class ResultStore:
    """The results folder of one walk (or live run).

    Args:
        folder: ``DIR``.
        identity: What this walk is (series and input recipe); a folder holding measurements
            of a walk with a different identity is refused rather than mixed.
        extras: The mechanism tables this walk records beside the measurements
            (``attention``, ``superweights``, ``interventions``): each checkpoint's rows in
            ``parts/<name>/``, every checkpoint's in ``DIR/<name>.csv``. A checkpoint
            counts as done only with all of them, so a walk asked for one more table
            measures again the checkpoints that lack it.
    """

    def __init__(self, folder: str | Path, identity: dict, extras: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"
        self.identity = identity
        self.extras = tuple(extras)
        self.model = identity.get("model", "")
        self._checkpoints: dict[int, dict] = {}
        self._frames: dict[int, pd.DataFrame] = {}
        self._extra_frames: dict[str, dict[int, pd.DataFrame]] = {n: {} for n in self.extras}
        self._open = False

    def open(self) -> ResultStore:
        """Create or reopen the folder, take its lock, drop temporaries of a killed walk.

        Raises:
            StoreError: if another process writes the folder, or it holds measurements of a
                different walk.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"{self.folder} is a file, not a results folder; name a folder")
        self.parts.mkdir(parents=True, exist_ok=True)
        _lock(self.folder)
        self._open = True
        try:
            self._check_identity()
        except BaseException:
            self.close()
            raise
        for name in self.extras:
            (self.parts / name).mkdir(exist_ok=True)
        temporaries = [*self.folder.glob(".*.tmp"), *self.parts.glob(".*.tmp")]
        for tmp in [*temporaries, *self.parts.glob("*/.*.tmp")]:
            tmp.unlink(missing_ok=True)
        ck = self.folder / "checkpoints.csv"
        if ck.exists():
            table = pd.read_csv(ck, keep_default_na=False, na_values=[""])
            self._checkpoints = {int(r["step"]): r for r in table.to_dict("records")}
        return self

    def _check_identity(self) -> None:
        walk_file = self.folder / "walk.json"
        recorded = json.loads(walk_file.read_text()) if walk_file.exists() else None
        if recorded is not None:
            recorded = _absolute_inputs(recorded)
        if recorded == self.identity:
            return
        measured = sorted(self.parts.glob("step*.csv"))
        if measured and recorded is None:
            raise StoreError(
                f"{self.folder} holds measurements but no walk.json; it is damaged or not a "
                "massdyn results folder: use another --out folder"
            )
        if measured:
            diff = sorted(
                k
                for k in set(recorded) | set(self.identity)
                if recorded.get(k) != self.identity.get(k)
            )
            raise StoreError(
                f"{self.folder} holds results of a different walk "
                f"(differs in: {', '.join(diff)}); "
                "use another --out folder or the same settings"
            )
        # Nothing measured: what an earlier, failed start left (its identity, its inputs,
        # failure rows) describes no data, so the folder starts afresh.
        for name in (
            "walk.json",
            "inputs.npy",
            "inputs.json",
            "checkpoints.csv",
            "measurements.csv",
        ):
            (self.folder / name).unlink(missing_ok=True)

    def commit(self) -> None:
        """Record the folder's identity (``walk.json``), once the walk is known to start."""
        walk_file = self.folder / "walk.json"
        if not walk_file.exists():
            atomic_write(walk_file, lambda f: json.dump(self.identity, f, indent=2))

    def close(self) -> None:
        """Release the folder's lock."""
        if self._open:
            self._open = False
            _unlock(self.folder)

    def __enter__(self) -> ResultStore:
        return self if self._open else self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def record_measured(
        self, step: int, table: pd.DataFrame, extras: dict | None = None, **row
    ) -> None:
        """Store a measured checkpoint: its rows gain the ``model`` and ``step`` columns.

        Args:
            step: The checkpoint's step.
            table: Its measurements (one row per layer and sequence).
            extras: Its mechanism tables by name (each of the store's ``extras``).
            **row: Further columns of its ``checkpoints.csv`` row (revision, seconds, ...).

        Raises:
            StoreError: when a mechanism table the store records is not given.
        """
        extras = extras or {}
        lacking = [name for name in self.extras if name not in extras]
        if lacking:
            raise StoreError(f"step {step}: no {lacking[0]} table was measured")
        with _uninterrupted():
            # The mechanism parts first: the measurements part makes the step done.
            for name in self.extras:
                part = self._stamped(extras[name], step)
                if row.get("tokens") not in ("", None):  # for --time tokens on these too
                    part.insert(2, "tokens", int(row["tokens"]))
                atomic_csv(part, self.extra_path(name, step))
                self._extra_frames[name][step] = part
            table = self._stamped(table, step)
            self._record(
                table, {"model": self.model, "step": step, "status": "ok", "reason": "", **row}
            )
            for name in self.extras:
                self._write_extra(name)

    def _stamped(self, table: pd.DataFrame, step: int) -> pd.DataFrame:
        """``table`` with the ``model`` and ``step`` columns in front."""
        table = table.copy()
        table.insert(0, "step", step)
        table.insert(0, "model", self.model)
        return table

    def extra_path(self, name: str, step: int) -> Path:
        """File holding one checkpoint's rows of the mechanism table ``name``."""
        return self.parts / name / f"step{step:09d}.csv"

    def _write_extra(self, name: str) -> None:
        """``DIR/<name>.csv`` from the part of every checkpoint done, by step.

        A part of a checkpoint whose measurements a killed walk did not record yet is left
        out until a walk records them.
        """
        kept = self._extra_frames[name]  # parts read once, then kept, as the measurements'
        done = sorted(self.done_steps())
        for s in done:
            if s not in kept:
                kept[s] = pd.read_csv(self.extra_path(name, s))
        frames = [kept[s] for s in done]
        if frames:
            atomic_csv(pd.concat(frames, ignore_index=True), self.folder / f"{name}.csv")

    def record_failed(self, step: int, reason: str, **row) -> None:
        """Store a checkpoint that could not be measured, with the reason."""
        before = self._checkpoints.get(step) or {}
        tries = _count(before.get("attempts")) if before.get("status") == "failed" else 0
        checkpoint = {
            "model": self.model,
            "step": step,
            "status": "failed",
            "reason": reason,
            "attempts": tries + 1,
        }
        self.record(None, {**checkpoint, **row})

    def given_up(self, max_attempts: int) -> dict[int, str]:
        """Steps that failed ``max_attempts`` times in a row, with their last reason."""
        return {
            s: str(r.get("reason", ""))
            for s, r in self._checkpoints.items()
            if r.get("status") == "failed" and max(_count(r.get("attempts")), 1) >= max_attempts
        }

    def write_text(self, name: str, text: str) -> None:
        """Write a small text file into the folder atomically (e.g. the resolved settings)."""
        atomic_write(self.folder / name, lambda f: f.write(text))

    def part_path(self, step: int) -> Path:
        """File holding the rows of one checkpoint."""
        return self.parts / f"step{step:09d}.csv"

    def done_steps(self) -> set[int]:
        """Checkpoints fully measured: recorded ``ok``, with all their parts on disk."""
        return {
            s
            for s in self._measured_steps()
            if all(self.extra_path(name, s).exists() for name in self.extras)
        }

    def _measured_steps(self) -> set[int]:
        """Checkpoints whose measurements are recorded (mechanism tables or not)."""
        return {
            s
            for s, r in self._checkpoints.items()
            if r.get("status") == "ok" and self.part_path(s).exists()
        }

    def checkpoint(self, step: int) -> dict | None:
        """The recorded row of a checkpoint, if any."""
        return self._checkpoints.get(step)

    def record(self, rows: pd.DataFrame | None, checkpoint: dict) -> None:
        """Store one checkpoint: its rows (when measured), its status row, the tables."""
        with _uninterrupted():
            self._record(rows, checkpoint)

    def _record(self, rows: pd.DataFrame | None, checkpoint: dict) -> None:
        self.commit()
        step = int(checkpoint["step"])
        if rows is not None:
            atomic_csv(rows, self.part_path(step))
            self._frames[step] = rows
        self._checkpoints[step] = {c: checkpoint.get(c, "") for c in CHECKPOINT_COLUMNS}
        checkpoints = self.checkpoints_table()
        if rows is not None:
            self._write_measurements(checkpoints)
        atomic_csv(checkpoints, self.folder / "checkpoints.csv")

    def checkpoints_table(self) -> pd.DataFrame:
        """All checkpoint rows by step, with ``duplicate_of`` naming an earlier identical step."""
        table = pd.DataFrame(
            [self._checkpoints[s] for s in sorted(self._checkpoints)],
            columns=list(CHECKPOINT_COLUMNS),
        )
        given = [g if g not in ("", None) and g == g else None for g in table["duplicate_of"]]
        digests = [d if isinstance(d, str) and d else None for d in table["weights_sha256"]]
        # The audit names whose weights a revision serves (main's belong to the last step,
        # not the first): its word wins for that set of weights; otherwise the earliest.
        owner: dict[str, int] = {
            d: int(g) for d, g in zip(digests, given, strict=True) if d and g is not None
        }
        for step, d in zip(table["step"], digests, strict=True):
            if d:
                owner.setdefault(d, int(step))
        table["duplicate_of"] = [
            int(g) if g is not None else (owner[d] if d and owner[d] != int(s) else "")
            for s, d, g in zip(table["step"], digests, given, strict=True)
        ]
        return table

    def measurements(self, checkpoints: pd.DataFrame | None = None) -> pd.DataFrame:
        """The rows of every ``ok`` checkpoint, by step (parts read once, then kept).

        Args:
            checkpoints: :meth:`checkpoints_table`, when the caller has built it already.
        """
        steps = sorted(self._measured_steps())
        for s in steps:
            if s not in self._frames:
                self._frames[s] = pd.read_csv(self.part_path(s))
        frames = [self._frames[s] for s in steps]
        if not frames:
            return pd.DataFrame(columns=list(MEASUREMENT_COLUMNS))
        table = pd.concat(frames, ignore_index=True)
        # Checkpoints measured although they serve an earlier step's weights
        # (``--duplicates measure``, or a local folder) carry the flag in the table itself,
        # so that fits and figures reading only this file can leave them out.
        ck = self.checkpoints_table() if checkpoints is None else checkpoints
        measured = set(steps)
        flagged = {
            int(s): int(d)
            for s, d in zip(ck["step"], ck["duplicate_of"], strict=True)
            if int(s) in measured and d != ""
        }
        if flagged:
            table[DUPLICATE_COLUMN] = table["step"].map(flagged).astype("Int64")
        for column in TIME_COLUMNS:
            known = {
                int(s): v
                for s, v in zip(ck["step"], ck[column], strict=True)
                if int(s) in measured and v not in ("", None) and v == v
            }
            if known:
                values = table["step"].map(known)
                table[column] = values.astype("Int64") if column == "tokens" else values
        return table

    def _write_measurements(self, checkpoints: pd.DataFrame) -> pd.DataFrame:
        table = self.measurements(checkpoints)
        atomic_csv(table, self.folder / "measurements.csv")
        return table

    def assemble(self, parquet: bool = False) -> pd.DataFrame:
        """Rebuild ``measurements.csv`` (and ``.parquet`` if asked) from the ``ok`` parts."""
        self.commit()
        checkpoints = self.checkpoints_table()
        table = self._write_measurements(checkpoints)
        if parquet:
            path = self.folder / "measurements.parquet"
            atomic_write(path, lambda f: table.to_parquet(f, index=False), binary=True)
        atomic_csv(checkpoints, self.folder / "checkpoints.csv")
        return table
