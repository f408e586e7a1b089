"""The curve predictor against the strongest simple rivals, held out the same way.

A predictor's gain over the depth-mean base says little: the base ignores architecture
altogether. Here every architecture is held out (with its seed replicates) and predicted
by four methods trained on the rest:

- ``predictor``: the stacked curve predictor (nested: its weights chosen without it);
- ``base``: the depth-mean base alone;
- ``linear`` and ``nearest``: the simple rivals of :mod:`massdyn.predictors.simple`.

Scores per (architecture, method), on the part of the data that matters, not only on the
log-step grid (whose first half lies before step 100, where all curves agree):
``r2_grid`` (curve R^2 on the grid, mean over layers), ``abs_log_err_grid``,
``abs_log_err_measured`` (median |log error| at every measured step of every run),
``abs_log_err_late`` (the same from 12.5% of the run on), ``final_ratio_pct_err``
(median over layers of the percent error of the final ratio against the runs' mean) and
``coverage`` (the predictor's 10-90% band; NaN for the rivals, which have none).
:func:`gains` pairs each rival with the predictor per architecture and bootstraps over
architectures, the unit that was held out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from massdyn.fitting.series import aggregate
from massdyn.predictors.curve import CurvePredictor
from massdyn.predictors.simple import linear_curves, nearest_curves
from massdyn.predictors.summary import curve_r2

METHODS = ("predictor", "base", "linear", "nearest")
METRICS = (
    "r2_grid",
    "abs_log_err_grid",
    "abs_log_err_measured",
    "abs_log_err_late",
    "final_ratio_pct_err",
)
LATE_FRACTION = 0.125
# Fields along which a neighbour differs (heads per width follows from two of them).
NEIGHBOUR_FIELDS = (
    "d_model",
    "n_layers",
    "n_heads",
    "ff_ratio",
    "rotary_fraction",
    "parallel_residual",
)


def _at_steps(predictor: CurvePredictor, curves: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(L, G) log curves read at measured steps (linear in log1p(step)): (L, S)."""
    x = np.log1p(steps)
    return np.vstack([np.interp(x, predictor.grid_, c) for c in curves])


def neighbourhood(predictor: CurvePredictor, model: str) -> frozenset[str]:
    """The models of every architecture that differs from ``model``'s in exactly one field.

    Fields: :data:`NEIGHBOUR_FIELDS`. Holding these out with the architecture asks what a
    test set of "one more step along each axis of the design" would not: whether the
    predictor still holds when no training architecture is a near twin.
    """
    own = predictor.archs_[model]
    out = set()
    for m, v in predictor.archs_.items():
        if sum(v[f] != own[f] for f in NEIGHBOUR_FIELDS) == 1:
            out.add(m)
    return frozenset(out)


def score_rivals(
    predictor: CurvePredictor, measurements: pd.DataFrame, k: int = 3, by_neighbourhood=False
) -> pd.DataFrame:
    """Held-out scores of every method in :data:`METHODS`, one row per (architecture, method).

    Args:
        predictor: A fitted curve predictor.
        measurements: The walker-format table it was fitted to (for the measured steps).
        k: Neighbours of ``nearest``.
        by_neighbourhood: Hold each architecture out together with its
            :func:`neighbourhood` (column ``held_out``: how many architectures were).
    """
    series = aggregate(measurements, "ratio")
    series = series[np.isfinite(series["value"]) & (series["value"] > 0)]
    rows = []
    members = predictor.architectures()
    for names in sorted(members.values()):
        also = neighbourhood(predictor, names[0]) if by_neighbourhood else frozenset()
        held = set(names) | also
        train = [m for m in predictor.logs_ if m not in held]
        if len({predictor.groups_[m] for m in train}) < 2:
            continue  # too few architectures left to learn anything from
        n_layers = predictor.logs_[names[0]].shape[0]
        values = predictor.archs_[names[0]]
        base, pred, band = predictor.heldout_banded(names[0], also)
        curves = {
            "predictor": pred,
            "base": base,
            "linear": linear_curves(predictor, train, values, n_layers),
            "nearest": nearest_curves(predictor, train, values, n_layers, k),
        }
        runs = np.stack([predictor.logs_[m] for m in names])
        with np.errstate(all="ignore"):
            truth = np.nanmean(runs, axis=0)
        measured = series[series["model"].isin(names)]
        end = measured["step"].max()
        finals = measured[measured["step"] == measured.groupby("model")["step"].transform("max")]
        final_truth = finals.groupby("layer")["value"].mean()
        inside = (runs >= pred + band[0]) & (runs <= pred + band[1])
        for method, c in curves.items():
            out = {"model": names[0], "seeds": len(names), "layers": n_layers, "method": method}
            out["held_out"] = len({predictor.groups_[m] for m in held})
            r2 = []
            for layer in range(n_layers):
                ok = np.isfinite(truth[layer]) & np.isfinite(c[layer])
                r2.append(curve_r2(np.exp(truth[layer, ok]), np.exp(c[layer, ok])))
            out["r2_grid"] = float(np.mean(r2))
            out["abs_log_err_grid"] = float(np.nanmedian(np.abs(truth - c)))
            err, late = [], []
            for (_, layer), s in measured.groupby(["model", "layer"]):
                steps = s["step"].to_numpy(float)
                e = np.abs(
                    np.log(s["value"].to_numpy(float)) - _at_steps(predictor, c[[layer]], steps)[0]
                )
                err.append(e)
                late.append(e[steps >= LATE_FRACTION * end])
            out["abs_log_err_measured"] = float(np.nanmedian(np.concatenate(err)))
            out["abs_log_err_late"] = float(np.nanmedian(np.concatenate(late)))
            final_pred = np.exp(_at_steps(predictor, c, np.array([float(end)]))[:, 0])
            pct = 100 * np.abs(final_pred / final_truth.sort_index().to_numpy() - 1)
            out["final_ratio_pct_err"] = float(np.nanmedian(pct))
            finite = np.isfinite(runs)
            out["coverage"] = float(inside[finite].mean()) if method == "predictor" else np.nan
            rows.append(out)
    return pd.DataFrame(rows)


def gains(scores: pd.DataFrame, metric: str, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per rival: the predictor's median gain over it across architectures, 90% bootstrap.

    The gain is ``rival - predictor`` for errors and ``predictor - rival`` for ``r2_grid``,
    so a positive gain means the predictor is better; architectures are resampled whole.
    """
    wide = scores.pivot(index="model", columns="method", values=metric)
    sign = -1.0 if metric == "r2_grid" else 1.0
    rng = np.random.default_rng(seed)
    rows = []
    for rival in [m for m in METHODS if m != "predictor" and m in wide]:
        g = (sign * (wide[rival] - wide["predictor"])).to_numpy()
        boot = np.median(rng.choice(g, size=(n, g.size)), axis=1)
        rows.append(
            {
                "rival": rival,
                "metric": metric,
                "gain": float(np.median(g)),
                "lo": float(np.quantile(boot, 0.05)),
                "hi": float(np.quantile(boot, 0.95)),
                "wins": int((g > 0).sum()),
                "architectures": int(g.size),
            }
        )
    return pd.DataFrame(rows)


def one_run_floor(predictor: CurvePredictor, measurements: pd.DataFrame) -> dict[str, float]:
    """What even a perfect predictor of an architecture's mean curve would miss by.

    For architectures with seed replicates: the median |log error| of one run against its
    architecture's true mean curve, on the grid and at the measured steps. A run's distance
    to the mean of its n seeds (itself included) is sqrt((n - 1) / n) times its distance
    to the true mean, so each is scaled by sqrt(n / (n - 1)). NaN without replicates.
    """
    series = aggregate(measurements, "ratio")
    series = series[np.isfinite(series["value"]) & (series["value"] > 0)]
    grid, measured = [], []
    for names in predictor.architectures().values():
        if len(names) < 2:
            continue
        scale = np.sqrt(len(names) / (len(names) - 1))
        runs = np.stack([predictor.logs_[m] for m in names])
        with np.errstate(all="ignore"):
            grid.append(scale * np.abs(runs - np.nanmean(runs, axis=0)).ravel())
        s = series[series["model"].isin(names)].assign(log=lambda d: np.log(d["value"]))
        mean = s.groupby(["layer", "step"])["log"].transform("mean")
        measured.append(scale * np.abs(s["log"] - mean).to_numpy())
    if not grid:
        return {"grid": np.nan, "measured": np.nan}
    return {
        "grid": float(np.nanmedian(np.concatenate(grid))),
        "measured": float(np.nanmedian(np.concatenate(measured))),
    }


def region_of(predictor: CurvePredictor, model: str) -> str:
    """Where an architecture lies in the training design: centre, corner or sequential.

    ``sequential``: a sequential-residual member; ``corner``: at the extreme depth and the
    extreme width of the design at once (e.g. 8 layers at d=96 or d=256); ``centre``:
    the rest.
    """
    v = predictor.archs_[model]
    if not v["parallel_residual"]:
        return "sequential"
    at_edge = [
        v[f] in (predictor.ranges_[f][0], predictor.ranges_[f][1]) for f in ("n_layers", "d_model")
    ]
    return "corner" if all(at_edge) else "centre"


def coverage_by_region(predictor: CurvePredictor, scores: pd.DataFrame) -> pd.DataFrame:
    """Mean band coverage of the held-out architectures per region (scores: the predictor's)."""
    own = scores[scores["method"] == "predictor"] if "method" in scores else scores
    own = own.assign(region=[region_of(predictor, m) for m in own["model"]])
    return (
        own.groupby("region")["coverage"]
        .agg(architectures="size", coverage="mean", worst="min")
        .reset_index()
    )
