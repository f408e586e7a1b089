"""Summaries of predicted curves: the quantities a curve pins down, and its score.

:func:`summarize` reduces a :meth:`~massdyn.predictors.curve.CurvePredictor.predict_table`
table to its firm quantities per (model, layer); :func:`curve_r2` scores a predicted
curve against a measured one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def summarize(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, layer) of :meth:`CurvePredictor.predict_table`: the firm quantities.

    Only rows with a prediction count (those past the token horizon are empty), so
    ``final_step`` is the last step predicted and ``final_ratio`` (with its band) the
    ratio there;  ``growth`` (last over first step) and ``t_half`` (the
    step at which the ratio first makes half its rise from the first step to the last,
    interpolated in log step between the two steps that bracket it, since the grid's steps
    lie a third apart), plus ``below_1`` (whether any central value falls under 1, which a
    top-1/median ratio cannot).
    """
    rows = []
    for (model, layer), c in curves.groupby(["model", "layer"], sort=True):
        c = c[np.isfinite(c["ratio"].to_numpy(float))]  # rows past the horizon are empty
        if c.empty:
            rows.append({"model": model, "layer": layer, "below_1": False})
            continue
        r = c["ratio"].to_numpy()
        several = len(c) > 1
        rows.append(
            {
                "model": model,
                "layer": layer,
                "final_step": float(c["step"].iloc[-1]),
                "final_ratio": r[-1],
                "final_lo": c["ratio_lo"].iloc[-1],
                "final_hi": c["ratio_hi"].iloc[-1],
                "growth": r[-1] / r[0] if several else math.nan,
                "t_half": _half_rise_step(c["step"].to_numpy(float), r) if several else math.nan,
                "below_1": bool((r < 1).any()),
            }
        )
    columns = ["model", "layer", "final_step", "final_ratio", "final_lo", "final_hi", "growth"]
    return pd.DataFrame(rows).reindex(columns=[*columns, "t_half", "below_1"])


def _half_rise_step(steps: np.ndarray, r: np.ndarray) -> float:
    """The step where ``r`` first makes half its rise, linear in log step between neighbours."""
    level = r[0] + 0.5 * (r[-1] - r[0])
    crossed = np.flatnonzero((r - level) * np.sign(r[-1] - r[0]) >= 0)
    if not crossed.size:
        return math.nan
    i = int(crossed[0])
    if i == 0 or r[i] == r[i - 1]:
        return float(steps[i])
    frac = (level - r[i - 1]) / (r[i] - r[i - 1])
    if steps[i - 1] <= 0:  # no log scale below the first positive step
        return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))
    return float(np.exp(np.log(steps[i - 1]) + frac * np.log(steps[i] / steps[i - 1])))


def curve_r2(y, yhat) -> float:
    """R^2 of a predicted curve against the measured series (1 - RSS / TSS)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))
