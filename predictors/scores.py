"""Held-out scores of the curve predictor, next to its depth-mean base, and what seeds say.

:func:`score_heldout` holds each architecture out (nested: the stack's weights chosen again
without it); :func:`bootstrap_gain` resamples architectures, the unit held out;
:func:`seed_noise` and :func:`variance_budget` use the seed replicates to say how much of
what the base misses no predictor could remove, and how much of the rest the predictor
does. The rivals' scores: :mod:`massdyn.predictors.rivals`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from massdyn.predictors.curve import CurvePredictor, Quiet
from massdyn.predictors.summary import curve_r2


def score_heldout(predictor: CurvePredictor) -> pd.DataFrame:
    """Leave-one-architecture-out scores: the predictor next to the depth-mean base.

    One row per architecture, named by its first member. Where it has seed replicates the
    target is their mean log-ratio curve: no predictor can beat the noise of a single run.

    Returns:
        Rows ``model, seeds, layers``, then ``curve_r2`` and ``base_curve_r2`` (mean over
        layers, ratio space, on the grid points measured), ``log_err`` and
        ``base_log_err`` (median absolute log error), ``mse`` and ``base_mse`` (mean
        squared log error, for :func:`variance_budget`), and ``coverage``: the share of the
        measured points of each single run inside the 10-90% band the predictor would have
        given without the architecture (nominally 0.8).
    """
    rows = []
    for names in sorted(predictor.architectures().values()):
        runs = np.stack([predictor.logs_[m] for m in names])
        with Quiet():
            curve = np.nanmean(runs, axis=0)
        base, pred, band = predictor.heldout_banded(names[0])
        out = {"model": names[0], "seeds": len(names), "layers": curve.shape[0]}
        measured = np.isfinite(runs)
        inside = (runs >= pred + band[0]) & (runs <= pred + band[1])
        out["coverage"] = float(inside[measured].mean())
        for name, p in (("", pred), ("base_", base)):
            r2 = []
            for layer in range(curve.shape[0]):
                ok = np.isfinite(curve[layer]) & np.isfinite(p[layer])
                r2.append(curve_r2(np.exp(curve[layer, ok]), np.exp(p[layer, ok])))
            out[f"{name}curve_r2"] = float(np.mean(r2))
            out[f"{name}log_err"] = float(np.nanmedian(np.abs(curve - p)))
            out[f"{name}mse"] = float(np.nanmean((curve - p) ** 2))
        rows.append(out)
    return pd.DataFrame(rows)


def bootstrap_gain(
    scores: pd.DataFrame, error: str = "log_err", n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The predictor's gain over the base across architectures, with a 90% bootstrap interval.

    ``scores`` is :func:`score_heldout`'s table: one row per architecture, so seed
    replicates are resampled together rather than counted as independent cases.

    Args:
        scores: One row per held-out architecture.
        error: ``"log_err"``: the median over architectures of (base - predictor) median
            |log error|; ``"mse"``: the mean over architectures of (base - predictor) mean
            squared log error, the quantity the stacking weights minimise.
        n: Bootstrap resamples.
        seed: Seed of the resampling.
    """
    statistic = {"log_err": np.median, "mse": np.mean}[error]
    gain = (scores[f"base_{error}"] - scores[error]).to_numpy()
    rng = np.random.default_rng(seed)
    boot = statistic(rng.choice(gain, size=(n, gain.size)), axis=1)
    return (
        float(statistic(gain)),
        float(np.quantile(boot, 0.05)),
        float(np.quantile(boot, 0.95)),
    )


def seed_noise(predictor: CurvePredictor) -> dict[str, float]:
    """What seed replicates say: the seed-to-seed floor and the share architecture explains.

    ``floor`` is the median |log difference| between the curves of two seeds of one
    architecture; ``arch_share`` is 1 - (within-architecture variance / total variance) of
    the log-ratio curves over the members of the most common depth. NaN without replicates.
    """
    groups = predictor.architectures()
    diffs = []
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                diffs.append(np.abs(predictor.logs_[a] - predictor.logs_[b]).ravel())
    if not diffs:
        return {"floor": math.nan, "arch_share": math.nan, "pairs": 0}
    floor = float(np.nanmedian(np.concatenate(diffs)))
    depth_counts = pd.Series({m: c.shape[0] for m, c in predictor.logs_.items()}).value_counts()
    common = int(depth_counts.index[0])
    same_depth = [m for m, c in predictor.logs_.items() if c.shape[0] == common]
    stack = np.stack([predictor.logs_[m] for m in same_depth])
    with Quiet():
        total = np.nanmean(np.nanvar(stack, axis=0))
        within = np.nanmean(
            [
                np.nanmean(np.nanvar(np.stack([predictor.logs_[m] for m in ms]), axis=0))
                for ms in groups.values()
                if len(ms) > 1 and ms[0] in same_depth
            ]
        )
    return {"floor": floor, "arch_share": float(1 - within / total), "pairs": len(diffs)}


def variance_budget(predictor: CurvePredictor, scores: pd.DataFrame) -> dict[str, float]:
    """How much of what the base misses architecture could explain, and how much it does.

    The seed replicates give the variance ``sigma**2`` of one run around its
    architecture's mean curve (pooled within-architecture variance, per grid point). A
    perfect predictor of the mean curve would still miss an architecture scored against
    the mean of its ``n`` seeds by ``sigma**2 / n`` in mean square, plus ``sigma**2 / m``
    for the noise of the ``m`` training runs a depth mean averages. What the base misses
    beyond that is systematic: architecture, or anything else the runs share.

    Args:
        predictor: A fitted :class:`CurvePredictor`.
        scores: Its :func:`score_heldout` table.

    Returns:
        ``sigma`` (RMS log deviation of one run from its architecture's mean),
        ``base_rms``, ``pred_rms`` and ``noise_rms`` (root mean square over architectures
        of the base's miss, the predictor's, and the expected seed noise),
        ``systematic_share`` (1 - noise / base mean square: the share of the base's miss
        that seed noise does not account for) and ``captured`` (the share of that
        systematic part the predictor removes). NaN without replicates; the share
        assumes seed noise is alike across the suite, which only replicated
        architectures can show.
    """
    variances = []
    for members in predictor.architectures().values():
        if len(members) > 1:
            with Quiet():
                runs = np.stack([predictor.logs_[m] for m in members])
                variances.append(np.nanvar(runs, axis=0, ddof=1).ravel())
    nan = {k: math.nan for k in ("sigma", "noise_rms", "systematic_share", "captured")}
    base, pred = float(scores["base_mse"].mean()), float(scores["mse"].mean())
    out = {"base_rms": math.sqrt(base), "pred_rms": math.sqrt(pred), **nan}
    if not variances:
        return out
    sigma2 = float(np.nanmean(np.concatenate(variances)))
    n_runs = len(predictor.logs_)
    seeds = scores["seeds"].to_numpy(float)
    noise = float(np.mean(sigma2 / seeds + sigma2 / (n_runs - seeds)))
    out.update(
        sigma=math.sqrt(sigma2),
        noise_rms=math.sqrt(noise),
        systematic_share=1 - noise / base,
        captured=(base - pred) / (base - noise) if base > noise else math.nan,
    )
    return out
