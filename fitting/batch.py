"""Fit every (model, layer) series of a long measurements table, in parallel.

The series come from :mod:`massdyn.fitting.series`.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd

from massdyn.fitting.fit import FitConfig, FitResult, fit_curve
from massdyn.fitting.ranking import compare
from massdyn.fitting.series import KEYS, aggregate


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
        measurements: Long table with :data:`~massdyn.fitting.series.MEASUREMENT_COLUMNS`.
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
        measurements: Long table with :data:`~massdyn.fitting.series.MEASUREMENT_COLUMNS`.
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
    "compare_measurements",
    "fit_and_rank",
    "fit_measurements",
    "SeriesJob",
]
