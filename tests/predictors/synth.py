"""Synthetic ground truth: parameters that are known functions of the features."""

import itertools

import numpy as np
import pandas as pd

from massdyn.predictors.features import Architecture


def synthetic_archs():
    grid = itertools.product((64, 128, 256), (3, 4, 6), (2, 8))
    return {
        f"s-d{d}-l{L}-h{H}": Architecture(
            f"s-d{d}-l{L}-h{H}", "gpt_neox", d, L, H, 4 * d, 10000.0, 0.25
        )
        for d, L, H in grid
    }


def true_params(f: dict) -> dict:
    """Smooth, monotone functions of a few features (in the spirit of the paper's findings)."""
    return {
        "A": np.expm1(1.0 + 0.8 * f["l_frac"] + 0.3 * f["log_d"]),
        "lambda": np.expm1(0.05 + 0.2 * f["l_frac"] + 0.002 * f["l_times_L"]),
        "gamma": np.expm1(1e-3 * (1 + f["l_frac"])),
        "t0": np.expm1(0.3 + 0.5 * f["sqrt_l_frac"]),
        "K": 2.0 + 200.0 * f["heads_per_dim"] + 3.0 * f["l_frac"],
    }


def synthetic_table(noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for arch in synthetic_archs().values():
        for layer in range(arch.n_layers):
            f = arch.layer_features(layer)
            p = {k: v * (1 + noise * rng.standard_normal()) for k, v in true_params(f).items()}
            rows.append({"model": arch.name, "layer": layer, **p, "status": "ok"})
    return pd.DataFrame(rows)
