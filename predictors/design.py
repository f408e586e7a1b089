"""The architecture design space: features, ranges, relative depths.

What the curve predictor and its simple rivals share: an architecture's values
(:func:`arch_values`), the key that makes seed replicates one architecture
(:func:`arch_key`), and relative depth, which lets curves of models of different depths be
read at one another's layers (:func:`depths`, :func:`at_depths`).
"""

from __future__ import annotations

import math

import numpy as np

from massdyn.predictors.features import Architecture

# Architecture-level inputs of the offsets (per model, not per layer).
ARCH_FEATURES = (
    "log_d_model",
    "n_layers",
    "log_n_heads",
    "log_heads_per_dim",
    "ff_ratio",
    "rotary_fraction",
    "parallel_residual",
)
# Fields checked against the training suite's range before predicting.
RANGE_FIELDS = (
    "d_model",
    "n_layers",
    "n_heads",
    "heads_per_dim",
    "ff_ratio",
    "rotary_fraction",
    "parallel_residual",
)


def arch_values(arch: Architecture) -> dict[str, float]:
    """The architecture's values of :data:`ARCH_FEATURES` and :data:`RANGE_FIELDS`."""
    return {
        "log_d_model": math.log(arch.d_model),
        "n_layers": float(arch.n_layers),
        "log_n_heads": math.log(arch.n_heads),
        "log_heads_per_dim": math.log(arch.n_heads / arch.d_model),
        "ff_ratio": arch.d_ff / arch.d_model,
        "rotary_fraction": float(arch.rotary_fraction),
        "parallel_residual": float(arch.parallel_residual),
        "d_model": float(arch.d_model),
        "n_heads": float(arch.n_heads),
        "heads_per_dim": arch.n_heads / arch.d_model,
    }


def arch_key(arch: Architecture) -> tuple:
    """Architectures equal up to the name (seed replicates) share a key."""
    return (
        arch.family,
        arch.d_model,
        arch.n_layers,
        arch.n_heads,
        arch.d_ff,
        arch.rotary_base,
        arch.rotary_fraction,
        arch.parallel_residual,
    )


def seed_groups(archs: dict) -> dict[str, list[str]]:
    """Models grouped by architecture (seed replicates together), named by their first.

    Args:
        archs: Architecture by model name.

    Returns:
        Group name (the alphabetically first member) -> its members, sorted.
    """
    by_key: dict = {}
    for model in sorted(archs):
        by_key.setdefault(arch_key(archs[model]), []).append(model)
    return {members[0]: members for members in by_key.values()}


def depths(n_layers: int) -> np.ndarray:
    """Relative depth of each block: ``layer / (L - 1)``.

    The first and the last block, the two that behave most distinctly, sit at 0 and 1 in
    every model, so a model's curves at another model's depths are interpolated, never
    extrapolated.
    """
    if n_layers == 1:
        return np.ones(1)
    return np.arange(n_layers) / (n_layers - 1.0)


def at_depths(curve: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A model's (L, G) curves interpolated to other relative depths, per grid point."""
    own = depths(curve.shape[0])
    out = np.empty((target.size, curve.shape[1]))
    for g in range(curve.shape[1]):
        col = curve[:, g]
        out[:, g] = np.interp(target, own, col) if np.isfinite(col).all() else np.nan
    return out
