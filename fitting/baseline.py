"""The paper's single-start fit, kept as a baseline to compare the robust fitter against."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import curve_fit

from massdyn.fitting.function import ORIGINAL_NAMES, emergence, emergence_jacobian
from massdyn.fitting.validate import check_series


def fit_paper_baseline(t, y, max_nfev: int | None = None) -> dict[str, float]:
    """Fit the original form the way arXiv 2508.03616 did: one start, TRF, lambda >= 0.

    Data are min-max normalised first; the initial guess is ``A = max - min``,
    ``K = min + A / 2``, ``lambda = 1 / std(t)``, ``gamma = 1 / range(t)``, ``t0 = 1``.

    Args:
        t: Training steps.
        y: Observed values.
        max_nfev: Evaluation budget for ``curve_fit`` (scipy's default when None).

    Returns:
        Raw-unit parameters keyed by name plus ``r2``; all NaN when ``curve_fit`` fails.
    """
    t, y, _ = check_series(t, y, min_points=len(ORIGINAL_NAMES) + 1)
    t_scale, y0, ys = float(t[-1]), float(y.min()), float(np.ptp(y))
    u, yn = t / t_scale, (y - y0) / ys
    A = float(yn.max() - yn.min())
    p0 = [A, 1.0 / float(np.std(u)), 1.0 / float(np.ptp(u)), 1.0, float(yn.min()) + A / 2]
    lower = [-np.inf, 0.0, -np.inf, -np.inf, -np.inf]
    try:
        with np.errstate(all="ignore"):
            popt, _ = curve_fit(
                emergence,
                u,
                yn,
                p0=p0,
                jac=emergence_jacobian,
                method="trf",
                bounds=(lower, np.inf),
                max_nfev=max_nfev,
            )
    except (RuntimeError, ValueError):
        return {**dict.fromkeys(ORIGINAL_NAMES, math.nan), "r2": math.nan}
    A, lam, gamma, t0, K = popt
    params = {"A": A * ys, "lambda": lam, "gamma": gamma / t_scale, "t0": t0, "K": K * ys + y0}
    with np.errstate(all="ignore"):
        resid = y - emergence(t, *(params[n] for n in ORIGINAL_NAMES))
    rss = float(resid @ resid)
    r2 = 1.0 - rss / float(np.sum((y - y.mean()) ** 2)) if math.isfinite(rss) else math.nan
    return {**params, "r2": r2}
