"""Fit every (model, layer) series of a long measurements table, in parallel."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massdyn.fitting.config import METRICS
from massdyn.fitting.fit import FitConfig, FitResult, fit_curve
from massdyn.fitting.ranking import compare

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

    Args:
        measurements: Long table with :data:`MEASUREMENT_COLUMNS`.
        metric: One of :data:`METRICS`.

    Returns:
        Columns ``model, layer, step, value, sem, n_seqs`` sorted by key and step.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
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


@dataclass(frozen=True)
class SeriesJob:
    """One (model, layer) series and what to do with it, as sent to a worker process.

    Attributes:
        key: ``model, layer, metric`` of the series (copied into every output row).
        steps, values: The series.
        sigma: Per-point standard errors, or None for an unweighted fit.
        curve_model: The curve model whose parameters are reported.
        rivals: Curve models to rank on the series as well (None: no ranking). The fit of
            ``curve_model`` is reused in the ranking, not repeated.
        config: Fitter settings.
    """

    key: dict[str, object]
    steps: np.ndarray
    values: np.ndarray
    sigma: np.ndarray | None
    curve_model: str = "emergence"
    rivals: tuple[str, ...] | None = None
    config: FitConfig | None = None


def _run_job(job: SeriesJob) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The job's parameter row and (when asked) its ranking rows; never raises."""
    t, y, sigma, dropped = _finite_points(job.steps, job.values, job.sigma)
    try:
        result = fit_curve(t, y, sigma, curve_model=job.curve_model, config=job.config)
    except Exception as exc:  # one bad series must never abort a batch
        result = FitResult.failure(job.curve_model, f"{type(exc).__name__}: {exc}", len(t))
    row = {**job.key, **result.to_row(), "n_dropped": int(dropped.size)}
    if dropped.size:
        note = (
            f"{dropped.size} non-finite point(s) dropped (step(s) "
            f"{', '.join(f'{s:g}' for s in dropped[:5])}{', ...' if dropped.size > 5 else ''})"
        )
        if row["status"] == "ok":
            row["status"], row["reason"] = "flagged", note
        else:
            row["reason"] = f"{row['reason']}; {note}"
    if job.rivals is None:
        return row, []
    try:
        table = compare(
            t,
            y,
            sigma,
            curve_models=job.rivals,
            config=job.config,
            fitted={job.curve_model: result},
        )
    except Exception as exc:
        failed = {"curve_model": "", "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        return row, [{**job.key, **failed}]
    return row, [{**job.key, **r} for r in table.to_dict("records")]


def _finite_points(t, y, sigma):
    """The points with finite values (and sigma), and the steps of the others."""
    keep = np.isfinite(y) & np.isfinite(t)
    if sigma is not None:
        keep &= np.isfinite(sigma)
    if keep.all():
        return t, y, sigma, t[:0]
    return t[keep], y[keep], None if sigma is None else sigma[keep], t[~keep]


def _run(fn, jobs, n_jobs):
    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs == 1 or len(jobs) < 2:
        return [fn(j) for j in jobs]
    try:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs))) as pool:
            return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * n_jobs))))
    except BrokenProcessPool:
        # A worker died (e.g. killed for memory): finish in-process rather than lose the batch.
        return [fn(j) for j in jobs]


def _jobs(measurements, metric, weighted, **what) -> list[SeriesJob]:
    series = aggregate(measurements, metric)
    jobs = []
    for (model, layer), grp in series.groupby(list(KEYS), sort=True):
        jobs.append(
            SeriesJob(
                key={"model": model, "layer": int(layer), "metric": metric},
                steps=grp["step"].to_numpy(float),
                values=grp["value"].to_numpy(float),
                sigma=grp["sem"].to_numpy(float) if weighted else None,
                **what,
            )
        )
    return jobs


def fit_and_rank(
    measurements: pd.DataFrame,
    metric: str = "ratio",
    curve_model: str = "emergence",
    config: FitConfig | None = None,
    n_jobs: int | None = None,
    weighted: bool = False,
    rivals: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fit_measurements` and :func:`compare_measurements` in one pass.

    Each series' fit of ``curve_model`` is reused in its ranking instead of being fitted a
    second time.

    Args:
        measurements: Long table with :data:`MEASUREMENT_COLUMNS`.
        metric: ``ratio``, ``top1`` or ``median``.
        curve_model: The curve model whose parameters are reported.
        config: Fitter settings.
        n_jobs: Worker processes; all cores by default, 1 runs in-process.
        weighted: Weight points by the SEM over sequences.
        rivals: Curve models to rank (default: all of
            :data:`massdyn.fitting.models.MODELS`).

    Returns:
        ``(params, ranking)``, as the two functions return them.
    """
    from massdyn.fitting.models import MODELS

    rivals = tuple(rivals) if rivals is not None else tuple(MODELS)
    jobs = _jobs(
        measurements, metric, weighted, curve_model=curve_model, rivals=rivals, config=config
    )
    out = _run(_run_job, jobs, n_jobs)
    return pd.DataFrame([row for row, _ in out]), pd.DataFrame([r for _, rs in out for r in rs])


def fit_measurements(
    measurements: pd.DataFrame,
    metric: str = "ratio",
    curve_model: str = "emergence",
    config: FitConfig | None = None,
    n_jobs: int | None = None,
    weighted: bool = False,
) -> pd.DataFrame:
    """Fit one curve model to every (model, layer) series of a measurements table.

    Args:
        measurements: Long table with :data:`MEASUREMENT_COLUMNS`.
        metric: ``ratio``, ``top1`` or ``median``.
        curve_model: Curve model name (see :data:`massdyn.fitting.models.MODELS`).
        config: Fitter settings.
        n_jobs: Worker processes; all cores by default, 1 runs in-process.
        weighted: Weight points by the SEM over sequences (needs >= 2 sequences).

    Returns:
        One row per series: ``model, layer, metric``, the parameters, their ``se_*``,
        ``r2, adj_r2, rmse, aic, aicc, bic, n, t_peak, peak_value, peak_in_window,
        steady_state, status, reason`` and fitter diagnostics. Failed series are rows with
        ``status == "failed"`` and the reason.
    """
    jobs = _jobs(measurements, metric, weighted, curve_model=curve_model, config=config)
    return pd.DataFrame([row for row, _ in _run(_run_job, jobs, n_jobs)])


def compare_measurements(
    measurements: pd.DataFrame,
    metric: str = "ratio",
    curve_models: tuple[str, ...] | None = None,
    config: FitConfig | None = None,
    n_jobs: int | None = None,
    weighted: bool = False,
) -> pd.DataFrame:
    """Rank rival curve models on every (model, layer) series; see :func:`compare`."""
    first = curve_models[0] if curve_models else "emergence"
    return fit_and_rank(measurements, metric, first, config, n_jobs, weighted, rivals=curve_models)[
        1
    ]


__all__ = [
    "MEASUREMENT_COLUMNS",
    "METRICS",
    "aggregate",
    "check_measurements",
    "compare_measurements",
    "fit_and_rank",
    "fit_measurements",
    "SeriesJob",
]
