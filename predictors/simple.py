"""The simple rivals of the curve predictor, as curves: a linear model and nearest neighbours.

Both read a fitted predictor's training curves (``logs_``, ``archs_``, ``groups_``) and
predict the (L, G) log-ratio curves of an architecture from the models in ``train``:

- :func:`linear_curves`: least squares per grid point on ``[1, depth, log d_model,
  n_layers]`` over every training (model, layer) curve;
- :func:`nearest_curves`: the mean curve of the ``k`` nearest training architectures in
  standardised :data:`~massdyn.predictors.design.ARCH_FEATURES` (their seeds averaged
  first), each read at the target's relative depths.

They are scored against the predictor (:mod:`massdyn.predictors.rivals`) and are
candidates of its stack (:mod:`massdyn.predictors.curve`).
"""

from __future__ import annotations

import numpy as np

from massdyn.predictors.design import ARCH_FEATURES, at_depths, depths


def arch_means(predictor, models: list[str]) -> dict[int, np.ndarray]:
    """Per architecture group among ``models``: the mean (L, G) log curve of its seeds."""
    groups: dict[int, list[np.ndarray]] = {}
    for m in models:
        groups.setdefault(predictor.groups_[m], []).append(predictor.logs_[m])
    with np.errstate(all="ignore"):
        return {g: np.nanmean(np.stack(c), axis=0) for g, c in groups.items()}


def linear_curves(predictor, train: list[str], values: dict, n_layers: int):
    """``linear``: per grid point, least squares on [1, depth, log d_model, n_layers]."""
    rows, ys = [], []
    for m in train:
        v, curve = predictor.archs_[m], predictor.logs_[m]
        for layer, d in enumerate(depths(curve.shape[0])):
            rows.append([1.0, d, v["log_d_model"], v["n_layers"]])
            ys.append(curve[layer])
    X, Y = np.array(rows), np.vstack(ys)
    target = np.array(
        [[1.0, d, values["log_d_model"], values["n_layers"]] for d in depths(n_layers)]
    )
    out = np.full((n_layers, Y.shape[1]), np.nan)
    for g in range(Y.shape[1]):
        ok = np.isfinite(Y[:, g])
        if ok.sum() > X.shape[1]:
            coef, *_ = np.linalg.lstsq(X[ok], Y[ok, g], rcond=None)
            out[:, g] = target @ coef
    return out


def nearest_curves(predictor, train: list[str], values: dict, n_layers: int, k: int = 3):
    """``nearest``: the mean curve of the ``k`` nearest architectures at the target's depths."""
    means = arch_means(predictor, train)
    first = {}
    for m in train:
        first.setdefault(predictor.groups_[m], m)
    groups = sorted(means)
    A = np.array([[predictor.archs_[first[g]][f] for f in ARCH_FEATURES] for g in groups])
    mu, sd = A.mean(axis=0), A.std(axis=0)
    sd[sd == 0] = 1.0
    x = (np.array([values[f] for f in ARCH_FEATURES]) - mu) / sd
    dist = np.sqrt((((A - mu) / sd - x) ** 2).sum(axis=1))
    chosen = [groups[i] for i in np.argsort(dist, kind="stable")[:k]]
    with np.errstate(all="ignore"):
        return np.nanmean(np.stack([at_depths(means[g], depths(n_layers)) for g in chosen]), 0)
