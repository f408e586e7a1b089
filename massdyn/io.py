"""Reading and writing tables by file extension."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` table.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for any other extension.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such table: {path}")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"{path}: expected a .csv or .parquet file")


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as ``.csv`` or ``.parquet`` (by extension), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        raise ValueError(f"{path}: expected a .csv or .parquet file")
    return path
