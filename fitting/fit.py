"""Robust multi-start fitting of one series.

The emergence function is fitted in its reparametrised form
``exp(-beta t) * A1 * (log(t + tau0) + g) + K`` (``g = log gamma``), the same family of
curves, linear in ``A1`` and ``K``. Steps are scaled to [0, 1] and values by min/max.
Seeded scrambled-Sobol starts over ``(beta, tau0)`` (plus the paper's initial guess) are
screened by variable projection, the linear parameters solved exactly (by SVD) for each;
the best distinct starts are polished on all parameters, and a bounded TRF step with the
analytic Jacobian lands on active bounds (``lambda >= 0``, ``x > 0``); the lowest loss is
kept and mapped back to raw units. The result reports how many polished starts reached the
best loss. Standard errors come from the covariance of the original parameters and are
withheld (NaN, status ``flagged``) when the column-scaled ``J^T J`` is ill-conditioned:
``gamma`` and ``t0`` trade off, and the original parameters are often not individually
identifiable even when the curve is.

The rival models (:mod:`massdyn.fitting.models`): pure logarithm (``lambda = 0``),
first-order step response, second-order step response (under-, critically and
over-damped) and logistic. AIC, AICc and BIC use ``n log(RSS/n) + penalty`` with the
model's parameter count.

Bad input (too few points, NaN/inf, a constant series, negative or duplicate steps,
mismatched lengths) raises :class:`~massdyn.fitting.validate.SeriesError` naming the
problem; in a batch the series becomes a ``failed`` row and the batch goes on. Unsorted
steps are sorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit, logit

from massdyn.fitting.config import FitConfig
from massdyn.fitting.function import EmergenceParams, Peak, peak, steady_state
from massdyn.fitting.models import CurveModel, get_model
from massdyn.fitting.profile import PeakRange, t_peak_range
from massdyn.fitting.validate import SeriesError, check_series


@dataclass
class FitResult:
    """Outcome of fitting one model to one series.

    ``status`` is ``"ok"``, ``"flagged"`` (a usable fit with a caveat named in ``reason``:
    parameter at a bound, ill-conditioned, not converged) or ``"failed"`` (no fit; ``reason``
    says why, and the numeric fields are NaN).
    """

    curve_model: str
    status: str
    reason: str
    n: int
    n_params: int
    params: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    r2: float = math.nan
    adj_r2: float = math.nan
    rmse: float = math.nan
    aic: float = math.nan
    aicc: float = math.nan
    bic: float = math.nan
    cond: float = math.nan
    at_bound: tuple[str, ...] = ()
    ill_conditioned: bool = False
    converged: bool = False
    n_polished: int = 0
    n_reached_best: int = 0
    t_last: float = math.nan
    reparam: dict[str, float] | None = None
    peak: Peak | None = None
    steady_state: float | None = None
    peak_range: PeakRange | None = None
    residuals: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True unless the fit failed outright."""
        return self.status != "failed"

    def predict(self, t) -> np.ndarray:
        """Evaluate the fitted curve at raw steps ``t``."""
        if not self.ok:
            raise ValueError(f"cannot predict from a failed fit: {self.reason}")
        return get_model(self.curve_model).curve(np.asarray(t, dtype=float), **self.params)

    @classmethod
    def failure(cls, curve_model: str, reason: str, n: int = 0) -> FitResult:
        """A failed result that names its reason."""
        return cls(
            curve_model=curve_model,
            status="failed",
            reason=reason,
            n=n,
            n_params=get_model(curve_model).n_params,
        )

    def to_row(self) -> dict[str, object]:
        """Flatten into one table row: parameters, ``se_*`` errors, scores, peak, status."""
        row: dict[str, object] = {"curve_model": self.curve_model}
        names = get_model(self.curve_model).param_names
        row.update({n: self.params.get(n, math.nan) for n in names})
        row.update({f"se_{n}": self.stderr.get(n, math.nan) for n in names})
        pk = self.peak
        row.update(
            r2=self.r2,
            adj_r2=self.adj_r2,
            rmse=self.rmse,
            aic=self.aic,
            aicc=self.aicc,
            bic=self.bic,
            n=self.n,
            t_peak=pk.t_peak if pk is not None and pk.exists else math.nan,
            peak_value=pk.value if pk is not None and pk.exists else math.nan,
            peak_in_window=bool(pk.in_window) if pk is not None else False,
            extremum=("peak" if pk.kind == "max" else "trough")
            if pk is not None and pk.exists
            else "",
            peak_note=(f"trough (A < 0): {pk.reason}" if pk.kind == "min" else pk.reason)
            if pk is not None
            else "",
            steady_state=self.steady_state if self.steady_state is not None else math.nan,
            t_peak_lo=self.peak_range.lo if self.peak_range is not None else math.nan,
            t_peak_hi=self.peak_range.hi if self.peak_range is not None else math.nan,
            n_polished=self.n_polished,
            n_reached_best=self.n_reached_best,
            cond=self.cond,
            status=self.status,
            reason=self.reason,
        )
        return row


def _distinct(model, thetas, losses, k):
    """Indices of the ``k`` lowest-loss starts that are not near-copies of each other."""
    log = np.array(model.start_log)
    pos = np.where(log, np.log(np.maximum(thetas, 1e-300)), thetas)
    lo, hi = np.array(model.start_lower), np.array(model.start_upper)
    span = np.where(log, np.log(np.where(log, hi / lo, np.e)), hi - lo)
    picked: list[int] = []
    for i in np.argsort(losses, kind="stable"):
        if not np.isfinite(losses[i]):
            break
        if all(np.max(np.abs(pos[i] - pos[j]) / span) > 0.05 for j in picked):
            picked.append(int(i))
        if len(picked) == k:
            break
    return picked


@dataclass(frozen=True)
class ScaledProblem:
    """One series in the fitter's units, with the curve model that is fitted to it.

    Steps are divided by the last step (``u`` in [0, 1]) and values min-max scaled
    (``yn`` in [0, 1]), so that one set of start boxes and tolerances suits series of any
    length and magnitude; ``w`` are the weights of the scaled residuals.
    """

    model: CurveModel
    u: np.ndarray
    yn: np.ndarray
    w: np.ndarray
    t_scale: float
    y0: float
    ys: float

    @classmethod
    def of(cls, model: CurveModel, t: np.ndarray, y: np.ndarray, sigma) -> ScaledProblem:
        """Scale a validated series (steps sorted ascending)."""
        t_scale = float(t[-1])
        y0, ys = float(y.min()), float(np.ptp(y))
        w = ys / sigma if sigma is not None else np.ones(t.size)
        return cls(model, t / t_scale, (y - y0) / ys, w, t_scale, y0, ys)

    @property
    def k(self) -> int:
        """Number of nonlinear parameters (the rest enter linearly)."""
        return len(self.model.theta_names)

    def residual(self, p: np.ndarray) -> np.ndarray:
        """Weighted scaled residuals at ``p = (theta, coef)``."""
        k = self.k
        return self.w * (self.model.basis(self.u, p[:k]) @ p[k:] - self.yn)

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        """Jacobian of :meth:`residual`."""
        k = self.k
        B = self.model.basis(self.u, p[:k])
        return self.w[:, None] * np.hstack([self.model.basis_grad(self.u, p[:k], p[k:]), B])

    def raw_params(self, p: np.ndarray) -> dict[str, float]:
        """``p`` back in the series' own units, as the model's named parameters."""
        coef = p[self.k :] * self.ys
        coef[-1] += self.y0
        return self.model.to_params(p[: self.k], coef, self.t_scale)


def _polish(problem: ScaledProblem, theta0, coef0, max_nfev):
    """Levenberg-Marquardt (MINPACK) on box-transformed ``theta``: fast and unbounded.

    ``theta = lo + (hi - lo) * sigmoid(z)`` keeps every iterate inside the bounds.
    """
    k = problem.k
    lo, hi = np.array(problem.model.theta_lower), np.array(problem.model.theta_upper)

    def to_theta(z):
        return lo + (hi - lo) * expit(z[:k])

    def resid_z(z):
        return problem.residual(np.concatenate([to_theta(z), z[k:]]))

    def jac_z(z):
        th = to_theta(z)
        J = problem.jacobian(np.concatenate([th, z[k:]]))
        J[:, :k] *= (th - lo) * (hi - th) / (hi - lo)
        return J

    frac = np.clip((theta0 - lo) / (hi - lo), 1e-12, 1 - 1e-12)
    z0 = np.concatenate([logit(frac), coef0])
    res = least_squares(resid_z, z0, jac=jac_z, method="lm", x_scale="jac", max_nfev=max_nfev)
    return np.concatenate([to_theta(res.x), res.x[k:]]), float(res.cost)


def _refine(problem: ScaledProblem, p0, max_nfev):
    """Bounded TRF from the best polished point: lands exactly on active bounds."""
    m = len(p0) - problem.k
    lower = np.concatenate([problem.model.theta_lower, np.full(m, -np.inf)])
    upper = np.concatenate([problem.model.theta_upper, np.full(m, np.inf)])
    x0 = np.clip(p0, lower, upper)
    return least_squares(
        problem.residual,
        x0,
        jac=problem.jacobian,
        bounds=(lower, upper),
        method="trf",
        x_scale="jac",
        max_nfev=max_nfev,
    )


def _at_bound(model, theta, rtol):
    """Which nonlinear parameters sit on a bound: in log space for positive log-scaled ones."""
    lo, hi = np.array(model.theta_lower), np.array(model.theta_upper)
    logscale = np.array(model.start_log) & (lo > 0)
    safe_lo = np.where(logscale, lo, 1.0)
    pos = np.where(logscale, np.log(np.maximum(theta, 1e-300) / safe_lo), theta - lo)
    span = np.where(logscale, np.log(hi / safe_lo), hi - lo)
    return (pos <= rtol * span) | (pos >= (1 - rtol) * span)


def _covariance_errors(model, t, params, sigma, wrss, n, cfg):
    """Standard errors from the scaled covariance, withheld when ill-conditioned."""
    J = model.jacobian(t, params)
    if sigma is not None:
        J = J / sigma[:, None]
    norms = np.linalg.norm(J, axis=0)
    if not np.all(np.isfinite(J)) or np.any(norms == 0):
        return math.inf, {n_: math.nan for n_ in model.param_names}
    Js = J / norms
    JtJ = Js.T @ Js
    cond = float(np.linalg.cond(JtJ))
    if not math.isfinite(cond) or cond > cfg.cond_threshold:
        return cond, {n_: math.nan for n_ in model.param_names}
    s2 = wrss / (n - model.n_params)
    cov = np.linalg.inv(JtJ) * s2 / np.outer(norms, norms)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    return cond, dict(zip(model.param_names, se.tolist(), strict=True))


def fit_curve(
    t,
    y,
    sigma=None,
    curve_model: str | CurveModel = "emergence",
    config: FitConfig | None = None,
) -> FitResult:
    """Fit one model to one series.

    Args:
        t: Training steps (>= 0, distinct; any order).
        y: Observed values.
        sigma: Optional per-point standard deviations; residuals are divided by them.
        curve_model: A name from :data:`massdyn.fitting.models.MODELS` or a model instance.
        config: Fitter settings; defaults to :class:`FitConfig`.

    Returns:
        The best fit over all polished starts. Optimisation failures are returned as a
        result with ``status == "failed"``.

    Raises:
        SeriesError: for unusable input (see :func:`massdyn.fitting.validate.check_series`).
    """
    cfg = config or FitConfig()
    mdl = get_model(curve_model)
    t, y, sigma = check_series(t, y, sigma, min_points=mdl.n_params + 1)
    n = t.size
    problem = ScaledProblem.of(mdl, t, y, sigma)

    with np.errstate(all="ignore"):
        thetas, losses, coefs = mdl.screen(problem.u, problem.yn, problem.w, cfg.n_starts, cfg.seed)
        chosen = _distinct(mdl, thetas, losses, cfg.n_polish)
        k = problem.k
        runs = []
        for i in chosen:
            try:
                runs.append(_polish(problem, thetas[i], coefs[i], cfg.max_nfev))
            except (ValueError, np.linalg.LinAlgError):
                continue
        runs = [r for r in runs if np.isfinite(r[1])]
        if not runs:
            return FitResult.failure(mdl.name, "optimisation failed from every start", n)
        runs.sort(key=lambda r: r[1])
        best_cost = runs[0][1]
        # Refine the best start; should its parameters not map back to finite raw values
        # (a degenerate corner of the original form), fall back to the next best start.
        params, failure = None, ""
        for p_run, _ in runs:
            final = _refine(problem, p_run, cfg.max_nfev)
            theta = final.x[:k]
            try:
                params = problem.raw_params(final.x)
                break
            except ValueError as exc:
                failure = str(exc)
    if params is None:
        return FitResult.failure(mdl.name, f"degenerate fit: {failure}", n)
    # Counted on the polished starts alone; the refinement only moves the best one.
    n_reached = sum(c <= best_cost * (1 + 1e-4) + 1e-12 for _, c in runs)

    yhat = mdl.curve(t, **params)
    resid = y - yhat
    rss = float(resid @ resid)
    wrss = float(np.sum((resid / sigma) ** 2)) if sigma is not None else rss
    if not math.isfinite(rss):
        return FitResult.failure(mdl.name, "fitted curve is not finite at the observed steps", n)
    p = mdl.n_params
    tss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - rss / tss
    log_lik_term = n * math.log(max(wrss, 1e-300) / n)
    cond, stderr = _covariance_errors(mdl, t, params, sigma, wrss, n, cfg)

    near = _at_bound(mdl, theta, cfg.bound_rtol)
    at_bound = tuple(lbl for lbl, b in zip(mdl.bound_labels(), near, strict=True) if b)
    ill = not (math.isfinite(cond) and cond <= cfg.cond_threshold)
    converged = bool(final.status > 0)
    issues = []
    if at_bound:
        issues.append(f"at bound: {', '.join(at_bound)}")
    if ill:
        issues.append(
            f"ill-conditioned (cond {cond:.2g}): not identifiable, standard errors withheld"
        )
    elif cond > cfg.identifiable_cond:
        issues.append(f"not identifiable (cond {cond:.2g} > {cfg.identifiable_cond:.0e})")
    loose = [
        name
        for name, se in stderr.items()
        if math.isfinite(se) and se > cfg.max_rel_se * abs(params[name])
    ]
    if loose:
        issues.append(
            "not identifiable: standard error above "
            f"{cfg.max_rel_se:g}x the value for {', '.join(loose)}"
        )
    if not converged:
        issues.append("not converged: evaluation budget exhausted")

    result = FitResult(
        curve_model=mdl.name,
        status="flagged" if issues else "ok",
        reason="; ".join(issues) if issues else "converged",
        n=n,
        n_params=p,
        params=params,
        stderr=stderr,
        r2=r2,
        adj_r2=1.0 - (1.0 - r2) * (n - 1) / (n - p - 1) if n - p - 1 > 0 else math.nan,
        rmse=math.sqrt(rss / n),
        aic=log_lik_term + 2 * p,
        aicc=log_lik_term + 2 * p + (2 * p * (p + 1) / (n - p - 1) if n - p - 1 > 0 else math.inf),
        bic=log_lik_term + p * math.log(n),
        cond=cond,
        at_bound=at_bound,
        ill_conditioned=ill,
        converged=converged,
        n_polished=len(runs),
        n_reached_best=int(n_reached),
        t_last=float(t[-1]),
        residuals=resid,
    )
    if mdl.name == "emergence":
        ep = EmergenceParams(
            params["A"], params["lambda"], params["gamma"], params["t0"], params["K"]
        )
        result.reparam = ep.to_reparam().as_dict()
        result.peak = peak(ep, t_last=float(t[-1]))
        result.steady_state = steady_state(ep)
        if cfg.peak_range:
            result.peak_range = t_peak_range(t, y, params, wrss, sigma, level=cfg.peak_level)
    return result


__all__ = ["FitConfig", "FitResult", "SeriesError", "fit_curve"]
