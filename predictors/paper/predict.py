"""Predicted emergence of a new architecture: per-layer parameters, curves and bands."""

from __future__ import annotations

import numpy as np
import pandas as pd

from massdyn.fitting.function import EmergenceParams, emergence, peak, steady_state
from massdyn.predictors.features import Architecture
from massdyn.predictors.paper.model import TARGETS, EmergencePredictor


def predict_architecture(
    predictor: EmergencePredictor, arch: Architecture, steps, quantiles=(0.1, 0.9)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict parameters and curves for every layer of ``arch``.

    Args:
        predictor: A fitted predictor.
        arch: The architecture.
        steps: Step grid of the curves; its last step is the training window for
            ``peak_in_window``.
        quantiles: Lower and upper quantile of the band, over the bootstrap refits.

    Returns:
        ``(params, curves)``: one row per layer with the parameters, their bootstrap
        quantiles (``A_lo``, ``A_hi``, ...) and the derived ``steady_state, t_peak,
        peak_value, peak_in_window``; and one row per (layer, step) with ``predicted``,
        ``lower`` and ``upper``.
    """
    steps = np.asarray(steps, dtype=float)
    features = arch.feature_table()
    point = predictor.predict(features)
    boot = predictor.predict_bootstrap(features)
    params = features[["model", "layer"]].copy()
    for i, t in enumerate(TARGETS):
        params[t] = point[:, i]
        if len(boot):
            params[f"{t}_lo"] = np.quantile(boot[:, :, i], quantiles[0], axis=0)
            params[f"{t}_hi"] = np.quantile(boot[:, :, i], quantiles[1], axis=0)
    derived, curves = [], []
    for row, layer in zip(point, params["layer"], strict=True):
        p = EmergenceParams(*row)
        pk = peak(p, t_last=float(steps[-1]))
        derived.append(
            {
                "steady_state": steady_state(p),
                "t_peak": pk.t_peak if pk.exists else np.nan,
                "peak_value": pk.value if pk.exists else np.nan,
                "peak_in_window": pk.in_window,
            }
        )
        with np.errstate(all="ignore"):
            y = emergence(steps, *p.as_tuple())
            band = (
                np.stack([emergence(steps, *b) for b in boot[:, layer, :]])
                if len(boot)
                else y[None]
            )
        curves.append(
            pd.DataFrame(
                {
                    "model": arch.name,
                    "layer": layer,
                    "step": steps,
                    "predicted": y,
                    "lower": np.nanquantile(band, quantiles[0], axis=0),
                    "upper": np.nanquantile(band, quantiles[1], axis=0),
                }
            )
        )
    params = pd.concat([params, pd.DataFrame(derived)], axis=1)
    return params, pd.concat(curves, ignore_index=True)
