"""Rank rival curve models on one series by information criteria."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from massdyn.fitting.fit import FitConfig, FitResult, fit_curve
from massdyn.fitting.models import MODELS


def compare(
    t,
    y,
    sigma=None,
    curve_models: tuple[str, ...] | None = None,
    config: FitConfig | None = None,
    criterion: str = "aicc",
    fitted: dict[str, FitResult] | None = None,
) -> pd.DataFrame:
    """Fit every model to one series and rank them.

    Args:
        t: Training steps.
        y: Values.
        sigma: Optional per-point standard deviations.
        curve_models: Curve model names; all of :data:`massdyn.fitting.models.MODELS` by
            default.
        config: Fitter settings.
        criterion: ``"aicc"`` (default), ``"aic"`` or ``"bic"``.
        fitted: Results already fitted to this very series (and settings), by curve model
            name: used instead of fitting those models again.

    Returns:
        One row per model, best first: ``curve_model, n_params, r2, rmse, aic, aicc, bic,
        delta, weight, rank, status, reason``. ``delta`` is the criterion minus the best one;
        ``weight`` the Akaike/Schwarz weight ``exp(-delta/2)`` normalised over the models.
        A model too large for the series, or whose fit failed, ranks last with its reason.

    Raises:
        SeriesError: when the series is unusable for every model.
    """
    if criterion not in ("aic", "aicc", "bic"):
        raise ValueError(f"criterion must be 'aic', 'aicc' or 'bic', got {criterion!r}")
    names = tuple(curve_models) if curve_models is not None else tuple(MODELS)
    fitted = fitted or {}
    results: list[FitResult] = []
    errors = []
    for name in names:
        if name in fitted:
            results.append(fitted[name])
            continue
        try:
            results.append(fit_curve(t, y, sigma, curve_model=name, config=config))
        except ValueError as exc:  # includes SeriesError, e.g. too few points for this model
            errors.append(exc)
            results.append(FitResult.failure(name, str(exc)))
    if len(errors) == len(names):
        raise errors[0]
    table = pd.DataFrame(
        {
            "curve_model": r.curve_model,
            "n_params": r.n_params,
            "r2": r.r2,
            "rmse": r.rmse,
            "aic": r.aic,
            "aicc": r.aicc,
            "bic": r.bic,
            "status": r.status,
            "reason": r.reason,
        }
        for r in results
    )
    score = table[criterion].to_numpy(dtype=float)
    score = np.where(np.isfinite(score), score, math.inf)
    delta = score - score.min()
    weight = np.exp(-0.5 * delta)
    table["delta"] = delta
    table["weight"] = weight / weight.sum()
    table = table.sort_values("delta", kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table
