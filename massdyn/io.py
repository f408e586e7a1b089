"""Reading and writing tables by file extension."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from massdyn.options import opt

if TYPE_CHECKING:
    import pandas as pd

# The walker's flag on rows of a checkpoint that serves an earlier step's weights.
DUPLICATE_COLUMN = "duplicate_of"


def keep_duplicates_option():
    """The ``--keep-duplicates`` option of every command that reads measurements."""
    return opt(
        False,
        "keep the rows of checkpoints flagged duplicate_of (the same weights as an earlier "
        "step, measured with walk --duplicates measure); by default they are left out",
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` table.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for any other extension, or a file that is empty or not a table.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such table: {path}")
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: expected a .csv or .parquet file")
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty (not even a header); check the file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable CSV table ({exc}); check the file") from None
    except ImportError:
        raise
    except Exception as exc:  # pyarrow's own errors for a damaged parquet file
        if path.suffix != ".parquet":
            raise
        raise ValueError(f"{path} is not a readable parquet table ({exc})") from None


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as ``.csv`` or ``.parquet`` (by extension), creating parent folders."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: expected a .csv or .parquet file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
    except OSError as exc:  # a full disk names no file by itself: say which one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    return path


def read_measurements(
    paths: str | Path | list, keep_duplicates: bool = False, log=print
) -> pd.DataFrame:
    """Read one or more measurements tables, leaving out rows flagged as duplicates.

    A walk that measured a checkpoint serving an earlier step's weights flags its rows
    with ``duplicate_of``; counting them would weigh those weights twice in a fit. A line
    says what was left out.
    """
    import pandas as pd

    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    table = pd.concat([read_table(p) for p in paths], ignore_index=True)
    if DUPLICATE_COLUMN not in table.columns:
        return table
    flagged = table[DUPLICATE_COLUMN].notna()
    if keep_duplicates or not flagged.any():
        return table
    pairs = table.loc[flagged, ["model", "step"]].drop_duplicates()
    log(
        f"left out {int(flagged.sum())} rows of {len(pairs)} checkpoint(s) flagged duplicate_of "
        "(the same weights as an earlier step); --keep-duplicates keeps them"
    )
    return table[~flagged].reset_index(drop=True)


def refuse_overwriting_inputs(outputs, inputs) -> None:
    """Refuse an output path that is one of the command's inputs (resolved, links followed).

    A command writes its results atomically over whatever is at ``--out``; when that is
    the table it read, the measurements are gone. Checked before any work is done.

    Raises:
        ValueError: naming the path and the fix.
    """
    given = [p for p in (inputs if isinstance(inputs, list | tuple) else [inputs]) if p]
    read = {Path(p).resolve(): p for p in given}
    for out in outputs if isinstance(outputs, list | tuple) else [outputs]:
        if out and Path(out).resolve() in read:
            raise ValueError(
                f"--out {out} is one of this command's inputs ({read[Path(out).resolve()]}); "
                "writing there would destroy it: choose another --out"
            )


def check_jobs(jobs: int | None) -> None:
    """Refuse ``--jobs`` below 1 (None: every core)."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs} (leave it out for every core)")


def time_option():
    """The ``--time`` option of commands that fit or forecast over training time."""
    return opt(
        "step",
        "time axis: step, or tokens (cumulative training tokens, from the table's tokens "
        "column; compares suites whose steps hold different numbers of tokens)",
        choices=("step", "tokens"),
    )


def on_time_axis(table: pd.DataFrame, time: str) -> pd.DataFrame:
    """The table with ``step`` holding the chosen time axis (``tokens``: cumulative tokens).

    Fits, forecasts and their outputs then read ``step`` as tokens; the caller labels its
    output with the axis.

    Raises:
        ValueError: ``tokens`` asked of a table without a complete ``tokens`` column.
    """
    if time == "step":
        return table
    if "tokens" not in table.columns or table["tokens"].isna().any():
        raise ValueError(
            "--time tokens needs a tokens column with a value in every row; walk with "
            "--tokens-per-step N (or a suite whose revision names or data give tokens)"
        )
    return table.assign(step=table["tokens"].astype("int64"))
