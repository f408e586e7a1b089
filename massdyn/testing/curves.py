"""Synthetic emergence series of known shape: the forecaster's test bed."""

from __future__ import annotations

import numpy as np

from massdyn.tracker.schedule import pythia_steps

# Pythia's 154 revisions, from data/pythia.json.
PYTHIA_STEPS = np.array(pythia_steps(), dtype=float)
# Where the emergence curve peaks, per shape (steps; None: lambda = 0, a pure log rise).
SHAPES = {
    "early peak": (8_000, 30_000),
    "late peak": (60_000, 120_000),
    "rising": (400_000, 2_000_000),
    "pure log": None,
}


def emergence_suite(n_per_shape: int, seed: int = 0, noise: float = 0.05, steps=PYTHIA_STEPS):
    """Noisy emergence series of the paper's shapes with known parameters and peaks.

    Each shape gets ``n_per_shape`` series on ``steps`` (Pythia's 154 by default) with
    ``noise`` multiplicative Gaussian noise; lambda is set from a drawn peak step through
    ``x* log x* = 1 / lambda``.

    Returns:
        A list of dicts: ``shape, params (A, lambda, gamma, t0, K), t_peak (None if none
        before the last step), steps, clean, values``.
    """
    from massdyn.fitting.function import emergence

    rng = np.random.default_rng(seed)
    out = []
    for shape, span in SHAPES.items():
        for _ in range(n_per_shape):
            gamma = 10 ** rng.uniform(-3.5, -2.5)
            t0 = rng.uniform(1.5, 4.0)
            if span is None:
                lam, t_peak = 0.0, None
            else:
                t_peak = float(np.exp(rng.uniform(np.log(span[0]), np.log(span[1]))))
                x = gamma * t_peak + t0
                lam = 1.0 / (x * np.log(x))
            params = (rng.uniform(5, 30), lam, gamma, t0, rng.uniform(1, 5))
            clean = emergence(steps, *params)
            values = clean * (1 + noise * rng.standard_normal(steps.size))
            if t_peak is not None and t_peak > steps[-1]:
                t_peak = None
            out.append(
                {
                    "shape": shape,
                    "params": params,
                    "t_peak": t_peak,
                    "steps": steps,
                    "clean": clean,
                    "values": values,
                }
            )
    return out


def as_measurements(series: dict, seqs: int = 1):
    """A walker-style measurements table whose ratio is each given series.

    Args:
        series: ``(model, layer) -> (steps, values)``.
        seqs: Identical rows per step (input sequences).

    Returns:
        A pandas DataFrame with the walker's columns; ``top1`` is the value and ``median``
        1, so the top-1/median ratio of every (model, layer, step) is the series' value.
    """
    import pandas as pd

    rows = [
        (model, step, layer, seq, value, value, value, 1.0)
        for (model, layer), (steps, values) in series.items()
        for step, value in zip(steps, values, strict=True)
        for seq in range(seqs)
    ]
    return pd.DataFrame(
        rows, columns=["model", "step", "layer", "seq", "top1", "top2", "top3", "median"]
    )
