"""From a measurements table to series: the table's checks, and one value per step.

A walker's table holds one row per (model, step, layer, sequence) with the top-3
magnitudes and the median. :func:`check_measurements` refuses what would be averaged into
a wrong number (negative magnitudes, repeated keys, two walks under one name);
:func:`aggregate` reduces the sequences to one value per (model, layer, step): the ratio
of mean top-1 to mean median (arXiv 2508.03616), or a plain mean. Everything that reads a
measurements table (fits, forecasts, the predictor, figures) goes through these two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from massdyn.fitting.config import METRICS

MEASUREMENT_COLUMNS = ("model", "step", "layer", "seq", "top1", "top2", "top3", "median")
KEYS = ("model", "layer")


MAGNITUDES = ("top1", "top2", "top3", "median")


def check_measurements(df: pd.DataFrame) -> None:
    """Refuse a table whose numbers cannot all be measurements of one walk per model.

    Raises ``ValueError``, naming the first problem: a missing column, no rows, a
    non-numeric column, a negative magnitude (the walker records absolute values), a
    repeated (model, step, layer, seq) key (two walks, or one table concatenated twice,
    would otherwise be averaged), or a model whose steps measured different sets of
    sequences (two walks with other inputs under one model name). Non-finite values are
    not refused here: :func:`aggregate` turns their points into NaN, which the fit drops
    and counts.
    """
    missing = [c for c in MEASUREMENT_COLUMNS if c not in df.columns]
    if missing and "sink_share" in df.columns:
        raise ValueError(
            "this is an attention table (sink_share per head), not a measurements table: "
            "fit or forecast it with --metric sink"
        )
    if missing:
        raise ValueError(
            f"measurements table lacks column(s) {missing}; expected {list(MEASUREMENT_COLUMNS)}"
        )
    if df.empty:
        raise ValueError("the measurements table has no rows (only a header)")
    for col in ("step", "layer", "top1", "median"):
        if not pd.api.types.is_numeric_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            first = df.loc[bad, col].iloc[0] if bad.any() else df[col].iloc[0]
            raise ValueError(
                f"column {col!r} must be numeric; {int(bad.sum())} row(s) are not, e.g. "
                f"{first!r} (row {int(bad.idxmax()) + 2} of the file, counting the header)"
            )
    present = [c for c in MAGNITUDES if c in df.columns]
    _refuse_rows(
        df,
        (df[present] < 0).any(axis=1),
        "hold a negative magnitude",
        "top1..top3 and median are absolute values: this is not a massdyn measurements table",
    )
    _refuse_rows(
        df,
        df.duplicated(["model", "step", "layer", "seq"], keep=False),
        "repeat a (model, step, layer, seq) key",
        "two walks under one model name, or a table read twice; give each walk its own model "
        "name or drop the repeated rows",
    )
    seqs = df.groupby(["model", "step"])["seq"].agg(lambda s: tuple(sorted(set(s))))
    for model, per_step in seqs.groupby(level="model"):
        kinds = per_step.unique()
        if len(kinds) > 1:
            counts = sorted({len(k) for k in kinds})
            raise ValueError(
                f"model {model} mixes walks: its steps measured different sequences "
                f"({' vs '.join(map(str, counts))} sequences, or other indices); measure "
                "every step on the same inputs, or give each walk its own model name"
            )


def _refuse_rows(df: pd.DataFrame, bad: pd.Series, what: str, fix: str) -> None:
    """Raise naming how many rows are ``bad``, the first one's key, and the fix."""
    if bad.any():
        row = df.loc[bad].iloc[0]
        raise ValueError(
            f"{int(bad.sum())} row(s) {what} (e.g. model {row['model']} step {row['step']} "
            f"layer {row['layer']} seq {row['seq']}): {fix}"
        )


def aggregate(measurements: pd.DataFrame, metric: str = "ratio") -> pd.DataFrame:
    """Reduce per-sequence rows to one value per (model, layer, step).

    ``ratio`` is mean top-1 over mean median across sequences (arXiv 2508.03616); ``top1``
    and ``median`` are plain means. ``sem`` is the standard error over sequences (for the
    ratio by the delta method, ignoring the top-1/median covariance); NaN with one sequence.
    ``sink`` reads an attention table instead (``model, step, layer, head, sink_share``, as
    ``massdyn walk --attention`` writes it): the mean sink share over the layer's heads, its
    standard error over heads, and the number of heads in ``n_seqs``.

    Args:
        measurements: Long table with :data:`MEASUREMENT_COLUMNS`.
        metric: One of :data:`METRICS`.

    Returns:
        Columns ``model, layer, step, value, sem, n_seqs`` sorted by key and step.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    if metric == "sink":
        return _sink_series(measurements)
    check_measurements(measurements)
    g = measurements.groupby([*KEYS, "step"], sort=True)
    stats = g[["top1", "median"]].agg(["mean", "sem", "count"])
    # A mean skips NaN and an inf median makes a ratio of 0: a point with any non-finite
    # row is NaN instead, so that fits drop and count it (n_dropped) rather than fit it.
    finite = np.isfinite(measurements[["top1", "median"]].to_numpy(dtype=float)).all(axis=1)
    whole = (
        pd.Series(finite, index=measurements.index)
        .groupby([measurements[k] for k in (*KEYS, "step")], sort=True)
        .all()
    )
    out = pd.DataFrame(index=stats.index)
    mt, mm = stats[("top1", "mean")], stats[("median", "mean")]
    st, sm = stats[("top1", "sem")], stats[("median", "sem")]
    if metric == "ratio":
        out["value"] = mt / mm
        out["sem"] = out["value"].abs() * np.sqrt((st / mt) ** 2 + (sm / mm) ** 2)
    else:
        out["value"], out["sem"] = stats[(metric, "mean")], stats[(metric, "sem")]
    out.loc[~whole.reindex(out.index).to_numpy(), ["value", "sem"]] = np.nan
    out["n_seqs"] = stats[("top1", "count")]
    return out.reset_index()


def _sink_series(attention: pd.DataFrame) -> pd.DataFrame:
    """:func:`aggregate`'s ``sink`` series of an attention table."""
    need = [*KEYS, "step", "head", "sink_share"]
    if "sink_share" not in attention.columns:
        raise ValueError(
            "--metric sink reads an attention table (DIR/attention.csv, written by massdyn walk "
            "--attention), not a measurements table"
        )
    missing = [c for c in need if c not in attention.columns]
    if missing:
        raise ValueError(f"the attention table has no {', '.join(missing)} column")
    g = attention.groupby([*KEYS, "step"], sort=True)["sink_share"]
    out = g.agg(value="mean", sem="sem", n_seqs="count")
    return out.reset_index()


def pool_seeds(measurements: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One series per architecture: its seeds' sequences pooled at the steps all measured.

    The ratio of a pooled step is then mean top-1 over mean median across every seed's
    sequences, as :func:`aggregate` makes it for one run. A step some seed lacks would mix
    a different set of runs into one point, so only the steps every member measured are
    kept (``attrs["dropped_steps"]`` counts the others per group).

    Args:
        measurements: A checked walker table with every member of ``groups``.
        groups: Group name -> its member models (seed replicates of one architecture).

    Returns:
        The table with ``model`` set to the group name and ``seq`` renumbered so that each
        member's sequences keep their own keys.
    """
    parts, dropped = [], {}
    for name, members in groups.items():
        rows = measurements[measurements["model"].isin(members)]
        steps = [set(rows.loc[rows["model"] == m, "step"]) for m in members]
        shared = set.intersection(*steps) if steps else set()
        dropped[name] = len(set.union(*steps) - shared) if steps else 0
        rows = rows[rows["step"].isin(shared)].copy()
        width = int(rows["seq"].max()) + 1 if len(rows) else 0
        index = {m: i for i, m in enumerate(members)}
        rows["seq"] = rows["model"].map(index) * width + rows["seq"]
        rows["model"] = name
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True) if parts else measurements.head(0)
    out.attrs["dropped_steps"] = dropped
    return out
