"""How wide the 10-90% band should be for an architecture, given how far it lies from the rest.

One set of quantiles of the cross-validation errors is too narrow at the design's corners
and wide enough at its centre (held out on the grown suite: 72% coverage at the corners,
80% at the centre). Held-out errors grow with distance from the training architectures, so
the band is scaled about its middle by ``k(d) = max(1, exp(a + b d))``, where ``d`` is the
distance, in features standardised over the training architectures, to the nearest of
them, and ``a, b`` are fitted by least squares to ``log k80`` of every architecture held
out in cross-validation (``k80``: the factor that brings that architecture's own errors to
80% inside). Never narrower than the plain band (``k >= 1``). Earlier attempts (leverage,
Mondrian, normalised conformal) are described in docs/predictor-evaluation.md.

Pure functions on arrays: nothing here knows the predictor.
"""

from __future__ import annotations

import math

import numpy as np

TARGET = 0.8  # the band is a 10-90% band


def widen(band: np.ndarray, k: float) -> np.ndarray:
    """A (2, G) band of log-error quantiles scaled by ``k`` about its middle."""
    mid = band.mean(axis=0)
    return mid + k * (band - mid)


def coverage(errors: np.ndarray, band: np.ndarray) -> float:
    """Share of the finite ``errors`` (rows x G) inside the (2, G) ``band``."""
    ok = np.isfinite(errors)
    inside = (errors >= band[0]) & (errors <= band[1])
    return float(inside[ok].mean()) if ok.any() else math.nan


def k_for_coverage(errors: np.ndarray, band: np.ndarray, target: float = TARGET) -> float:
    """The smallest scale (to 1e-3 in log) that puts ``target`` of ``errors`` inside."""
    lo, hi = math.log(0.05), math.log(50.0)
    if coverage(errors, widen(band, math.exp(hi))) < target:
        return math.exp(hi)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if coverage(errors, widen(band, math.exp(mid))) >= target else (mid, hi)
    return math.exp(hi)


def nearest_distance(train: np.ndarray, x: np.ndarray) -> float:
    """Distance from ``x`` to the nearest row of ``train``, features standardised over it."""
    sd = train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return float(np.sqrt((((train - x) / sd) ** 2).sum(axis=1)).min())


def fit_scale(distances, ks) -> tuple[float, float]:
    """``(a, b)`` of ``log k = a + b d`` by least squares.

    ``(0, 0)`` (no widening) with fewer than three architectures or equal distances.
    """
    d, k = np.asarray(distances, float), np.asarray(ks, float)
    if d.size < 3 or np.ptp(d) == 0:
        return 0.0, 0.0
    b, a = np.polyfit(d, np.log(k), 1)
    return float(a), float(b)


def scale_at(ab: tuple[float, float] | None, d: float) -> float:
    """``k(d)``, never below 1 (the plain band)."""
    if ab is None:
        return 1.0
    return max(1.0, math.exp(ab[0] + ab[1] * d))
