"""Synthetic emergence series shared by the fitting tests."""

import numpy as np
import pandas as pd

from massdyn.fitting import emergence
from massdyn.testing.curves import PYTHIA_STEPS  # the Pythia revision grid

# A 37-point subset spread over training, as the paper used.
SUBSET_37 = np.concatenate([PYTHIA_STEPS[:11], np.linspace(1000, 143000, 26).round(-3)])

# (A, lambda, gamma, t0, K) covering the shapes of the paper's curves.
SHAPES = {
    "log_rise": (10.0, 0.0, 1e-3, 1.0, 1.0),
    "rise_then_decay": (40.0, 0.15, 2e-4, 1.0, 2.0),
    "early_peak": (60.0, 0.6, 1e-3, 1.0, 1.0),
    "late_peak": (30.0, 0.03, 1e-4, 1.0, 1.0),
}
# Shapes whose decay towards K is observed, so K and t_peak are identifiable.
DECAY_OBSERVED = ("rise_then_decay", "early_peak")


def noisy(y, rng, level=0.05):
    """Multiplicative Gaussian noise."""
    return y * (1.0 + level * rng.standard_normal(y.shape))


def measurements_table(models=("tiny-a", "tiny-b"), layers=3, seqs=4, steps=SUBSET_37, seed=0):
    """A long measurements table whose top1/median ratio follows known emergence curves."""

    rng = np.random.default_rng(seed)
    shapes = list(SHAPES.values())
    rows = []
    for mi, model in enumerate(models):
        for layer in range(layers):
            p = shapes[(mi + layer) % len(shapes)]
            ratio = emergence(steps, *p)
            for seq in range(seqs):
                median = 0.5 * (1 + 0.02 * rng.standard_normal(steps.size))
                top1 = noisy(ratio, rng, 0.02) * median
                for s, t1, md in zip(steps, top1, median, strict=True):
                    rows.append((model, int(s), layer, seq, t1, 0.8 * t1, 0.6 * t1, md))
    return pd.DataFrame(
        rows, columns=["model", "step", "layer", "seq", "top1", "top2", "top3", "median"]
    )
