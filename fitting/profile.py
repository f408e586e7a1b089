"""Which peak steps the data allow: a profile-likelihood range for the emergence peak.

The point estimate of ``t_peak`` is often meaningless: a curve still rising at the last
step is fitted about as well by a peak just past the window as by one a hundred times
later. The profile fixes the stationary point at ``T`` and refits the rest. In the
reparametrised form ``f(t) = exp(-beta t) (A1 log(t + tau0) + A2) + K`` the stationary point
sits at ``T`` exactly when ``A2 = A1 (1 / (beta (T + tau0)) - log(T + tau0))``, which keeps
the model linear in ``A1`` and ``K``: for each ``T`` only ``beta`` and ``tau0`` are searched.
Only maxima count: with ``A1 <= 0`` the stationary point at ``T`` is a minimum (the early
dip some curves make), whose steps once made a "peak range" far from the peak itself.
The steps ``T`` whose best residual sum stays within the likelihood-ratio threshold,
``n log(RSS_T / RSS_best) <= chi2_1(level)`` (the noise scale profiled out), form the range;
when the largest ``T`` tried (``max_factor`` times the last step) is inside it, the range
is unbounded above and only its lower bound is informative. A curve whose best fit peaks
beyond every ``T`` tried, or never, gets that largest ``T`` as its lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import chi2


@dataclass(frozen=True)
class PeakRange:
    """Peak steps compatible with the data at ``level``.

    Attributes:
        lo: Smallest compatible peak step (NaN when none could be found).
        hi: Largest compatible peak step; ``inf`` when unbounded above.
        level: Confidence level of the likelihood-ratio threshold.
        bounded: Whether ``hi`` is finite.
    """

    lo: float
    hi: float
    level: float

    @property
    def bounded(self) -> bool:
        """Whether the range has a finite upper end."""
        return math.isfinite(self.hi)

    def describe(self) -> str:
        """``'1200-5400'`` or ``'>= 1200'``."""
        if math.isnan(self.lo):
            return "none compatible"
        return f"{self.lo:.4g}-{self.hi:.4g}" if self.bounded else f">= {self.lo:.4g}"


def _constrained_rss(u, y, W, T, log_beta, log_tau):
    """Least residual sums with the stationary point fixed at ``T`` (scaled steps).

    Vectorised over ``log_beta`` and ``log_tau`` (broadcast together); with the stationary
    point fixed the model is ``a * g(t) + K``, whose weighted least squares has a closed
    form: ``RSS = S_yy - S_gy^2 / S_gg`` about the weighted means.
    """
    beta = np.exp(np.asarray(log_beta, dtype=float))[..., None]
    tau = np.exp(np.asarray(log_tau, dtype=float))[..., None]
    x = T + tau
    with np.errstate(all="ignore"):
        g = np.exp(-beta * u) * (np.log(u + tau) + 1.0 / (beta * x) - np.log(x))
        sw = W.sum()
        gm = (W * g).sum(-1, keepdims=True) / sw
        ym = (W * y).sum() / sw
        gc, yc = g - gm, y - ym
        sgg = (W * gc * gc).sum(-1)
        sgy = (W * gc * yc).sum(-1)
        syy = float((W * yc * yc).sum())
        rss = syy - np.where(sgg > 0, sgy * sgy / sgg, 0.0)
    # g has a maximum at T (g''(T) = exp(-beta T) (-1/x^2 - beta/x) < 0), so the curve
    # a g + K peaks there only for a = S_gy / S_gg > 0; a <= 0 makes T a minimum (the early
    # dip), which is not a peak and must not enter the peak's range.
    return np.where(np.isfinite(rss) & (sgy > 0), np.maximum(rss, 0.0), np.inf)


def t_peak_range(
    t,
    y,
    params: dict[str, float],
    best_rss: float,
    sigma=None,
    level: float = 0.95,
    n_grid: int = 32,
    max_factor: float = 100.0,
) -> PeakRange:
    """The profile-likelihood range of the emergence curve's stationary point.

    Args:
        t: Training steps of the series.
        y: Its values.
        params: The fitted emergence parameters (``A, lambda, gamma, t0, K``), the start.
        best_rss: The fit's (weighted) residual sum of squares.
        sigma: Per-point standard deviations the fit used (None: equal weights).
        level: Confidence level (0.95: threshold 3.84).
        n_grid: Peak steps tried, log-spaced from the first positive step to
            ``max_factor`` times the last.
        max_factor: How far past the window to look before calling the range unbounded.

    Returns:
        The range. When no tried step is compatible because the fit's own stationary point
        lies beyond them (or the fit has none), ``lo`` is the largest step tried and the
        range is unbounded above; ``lo`` is NaN only when no step is compatible otherwise.
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(t)
    t, y = t[order], y[order]
    if sigma is None and (y > 0).all():
        # A top-1/median ratio's noise is multiplicative: equal weights would let the late,
        # large values decide the range (measured: 83% coverage for a nominal 95% on
        # paper-like curves with 2% noise). Relative errors, and the fit's residual sum
        # under them as the best.
        from massdyn.fitting.function import emergence

        W = y**-2.0
        fitted = emergence(
            t, params["A"], params["lambda"], params["gamma"], params["t0"], params["K"]
        )
        best_rss = float((W * (y - fitted) ** 2).sum())
    else:
        W = np.ones_like(t) if sigma is None else np.asarray(sigma, dtype=float)[order] ** -2.0
    scale = float(t[-1])
    u = t / scale
    n = t.size
    # beta = lambda * gamma and tau0 = t0 / gamma in scaled steps: the fit's values, and a
    # log grid around them wide enough for peaks anywhere from the first step to far out.
    beta0 = params["lambda"] * params["gamma"] * scale
    tau0 = params["t0"] / params["gamma"] / scale
    lb = np.linspace(math.log(1e-5), math.log(1e3), 33)
    lt = np.linspace(math.log(1e-7), math.log(10.0), 25)
    if beta0 > 0 and tau0 > 0 and math.isfinite(beta0) and math.isfinite(tau0):
        lb = np.append(lb, math.log(beta0))
        lt = np.append(lt, math.log(tau0))
    LB, LT = np.meshgrid(lb, lt, indexing="ij")
    fitted = [np.array([lb[-1], lt[-1]])] if lb.size > 33 else []
    warm: list[np.ndarray] = []

    def profile(T: float) -> float:
        rss = _constrained_rss(u, y, W, T, LB, LT)
        j = np.unravel_index(np.argmin(rss), rss.shape)
        # The valley is narrow: polish the best of the grid's best, the fit's own values and
        # the last optimum found (the profile is smooth in T).
        starts = np.array([[LB[j], LT[j]], *fitted, *warm[-1:]])
        x0 = starts[np.argmin(_constrained_rss(u, y, W, T, starts[:, 0], starts[:, 1]))]
        with np.errstate(invalid="ignore"):  # inf - inf in the simplex where T is a trough
            res = minimize(
                lambda z: float(_constrained_rss(u, y, W, T, z[0], z[1])),
                x0,
                method="Nelder-Mead",
                options={"xatol": 1e-5, "fatol": 0.0, "maxiter": 250},
            )
        found, where = min((float(rss[j]), starts[0]), (float(res.fun), res.x), key=lambda r: r[0])
        warm.append(where)
        return found

    first = float(t[t > 0].min()) if (t > 0).any() else scale / 100
    grid = list(np.geomspace(first / scale, max_factor, n_grid))
    t_fit = _stationary(params) / scale
    if first / scale < t_fit < max_factor:
        grid = sorted([*grid, t_fit])
    grid = np.array(grid)
    values = np.array([profile(T) for T in grid])
    # Exact data (a residual sum at rounding level) leave the ratio undefined: floor it.
    floor = 1e-24 * float((W * (y - y.mean()) ** 2).sum()) + 1e-300
    best = max(min(best_rss, float(values.min())), floor)
    threshold = chi2.ppf(level, 1)

    def stat(v: float) -> float:
        return n * math.log(max(v, floor) / best) if math.isfinite(v) else math.inf

    ok = np.array([stat(v) <= threshold for v in values])
    if not ok.any():
        # The best fit peaks past the grid or never (a curve still accelerating in log
        # step): every peak up to max_factor times the window is excluded, which is a
        # lower bound, not a failure.
        if t_fit >= max_factor:
            return PeakRange(float(max_factor * scale), math.inf, level)
        return PeakRange(math.nan, math.nan, level)
    i_lo = int(ok.argmax())
    i_hi = len(ok) - 1 - int(ok[::-1].argmax())

    def crossing(inside: float, outside: float) -> float:
        """The boundary between two grid steps, by bisection in log T."""
        a, b = math.log(inside), math.log(outside)
        for _ in range(8):
            mid = 0.5 * (a + b)
            if stat(profile(math.exp(mid))) <= threshold:
                a = mid
            else:
                b = mid
        return math.exp(a)

    lo = grid[i_lo] if i_lo == 0 else crossing(grid[i_lo], grid[i_lo - 1])
    hi = math.inf if ok[-1] else crossing(grid[i_hi], grid[i_hi + 1])
    if math.isfinite(t_fit) and first / scale <= t_fit <= max_factor:
        # The fit's own peak has the best residual sum there is, so it is inside by
        # definition; a profile optimum the search missed must not leave it out.
        lo, hi = min(lo, t_fit), max(hi, t_fit)
    return PeakRange(float(lo * scale), float(hi * scale), level)


def _stationary(params: dict[str, float]) -> float:
    """The fitted curve's stationary step (``inf`` for a monotone curve)."""
    from massdyn.fitting.function import EmergenceParams, peak

    pk = peak(EmergenceParams(params["A"], params["lambda"], params["gamma"], params["t0"], 0.0))
    return pk.t_peak if pk.exists else math.inf
