"""Input checks shared by every fitting entry point."""

from __future__ import annotations

import numpy as np


class SeriesError(ValueError):
    """A series cannot be fitted; the message names what is wrong."""


def _as_1d(name: str, a) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SeriesError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise SeriesError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_finite(name: str, a: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise SeriesError(
            f"{name} has {bad.size} non-finite value(s) (NaN or inf) at position(s) "
            f"{bad[:10].tolist()}"
        )


def check_series(t, y, sigma=None, *, min_points: int = 2):
    """Validate and sort a series.

    A fit does not depend on the order of its points, so unsorted input is sorted (with
    ``y`` and ``sigma`` moved along) rather than refused.

    Args:
        t: Training steps.
        y: Observed values.
        sigma: Optional per-point standard deviations (e.g. SEM over input sequences).
        min_points: Fewest points accepted.

    Returns:
        ``(t, y, sigma)`` as float arrays sorted by step; ``sigma`` may be None.

    Raises:
        SeriesError: mismatched lengths, too few points, NaN/inf, negative or duplicate
            steps, a constant series, or non-positive sigma.
    """
    t, y = _as_1d("steps", t), _as_1d("values", y)
    if t.shape != y.shape:
        raise SeriesError(f"steps and values have different lengths ({t.size} vs {y.size})")
    if sigma is not None:
        sigma = _as_1d("sigma", sigma)
        if sigma.shape != t.shape:
            raise SeriesError(f"sigma has length {sigma.size}, steps have {t.size}")
    if t.size < min_points:
        raise SeriesError(f"need at least {min_points} points, got {t.size}")
    _check_finite("steps", t)
    _check_finite("values", y)
    if (t < 0).any():
        raise SeriesError(f"steps must be >= 0, got {t[t < 0][:5].tolist()}")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    dup = np.unique(t[1:][np.diff(t) == 0])
    if dup.size:
        raise SeriesError(
            f"duplicate steps {dup[:5].tolist()}: aggregate repeated measurements first"
        )
    if np.ptp(y) == 0:
        raise SeriesError(f"values are constant ({y[0]!r}): no curve to fit")
    if sigma is not None:
        sigma = sigma[order]
        _check_finite("sigma", sigma)
        if (sigma <= 0).any():
            raise SeriesError("sigma must be > 0 everywhere")
    return t, y, sigma
