"""Forecast where a series is heading from its beginning: value at a horizon, peak, steady state.

Learning-curve extrapolators assume monotone curves in [0, 1]; emergence curves rise and may
peak and decay. The forecaster fits several candidates to the observed part of a series:
the emergence function, its rivals (pure log rise, first-order and logistic saturation), a
straight line in log-step and a power law through the last third of the points. It weighs
them by how well each, fitted to the first two thirds of the observed points, forecasts the
last third
(a forecast combination: a model that fits the past well but extrapolates badly gets
little weight), and draws the band from a wild residual bootstrap of every candidate in
proportion to its weight: each draw refits the candidate to its fitted curve plus the
observed residuals with random signs (parameter uncertainty), then adds a relative
residual drawn from the fit's own (the scatter a measurement at that step would have).
The 10-90% band therefore holds what the data leave open about the parameters, how far
the fits miss, and, through the mixture, which shape the run follows.

Fits weigh relative errors (the noise of a top-1/median ratio is multiplicative). A
candidate whose forecast the data do not pin down (its own bootstrap at the horizon
reaches below zero or spans more than ``max_spread``, as emergence fits from the first few
percent of a run do) leaves the average: the forecast falls back to the rivals that are,
and its ``note`` says which was left out and why. An optional prior curve (say, a
predictor's curve for the architecture) enters as one more candidate: its shape, shifted
in log space to the observed points by one fitted offset, weighed like the rest.

Far horizons. Fitted to the first 10-25% of a run, the curve families extrapolate
anywhere (on the mini-suite at 10%: 11 to 88 for series that end at 19-42), and the
average loses to the two-parameter rivals. The backtest (``python -m benchmarks
forecast``: every mini-suite series and a synthetic suite, cut at 10, 25 and 50%) decides
the rule: past a reach of ``fallback_reach`` = 1.15 (log(1 + horizon) / log(1 + last
observed step)) the ``auto`` method forecasts with the log-step line alone, or the power
law where the line leaves the positive range, and says so. Against the best simple rival
of each cut (90% bootstrap over runs) the rule was never worse: it is that rival or ties it
(mini-suite 10%: line vs power law +0.033, -0.025 to +0.088 in mean |log error|; 50%:
average vs line +0.008, -0.001 to +0.015; synthetic 25%: +0.032, -0.079 to +0.152), and
inside the reach the average beats the line where the line goes below zero (synthetic
50%). The line was chosen over picking line or power law by their holdout score, which
picked worse on both suites (synthetic 10%: 0.337 against the line's 0.185).

Contract: :func:`forecast_series` takes one observed series and a horizon and returns a
:class:`Forecast`; bad input raises :class:`~massdyn.fitting.validate.SeriesError` naming
the problem. Nothing here imports the rest of massdyn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from massdyn.fitting.config import FitConfig, ForecastConfig
from massdyn.fitting.fit import fit_curve
from massdyn.fitting.models import get_model
from massdyn.fitting.validate import SeriesError

# The probe's own random stream (see forecast_series): fixed, so that the point forecast
# does not move with --seed.
PROBE_SEED = 20250805
# Fewest observed points a forecast accepts: one more than the largest rival's parameters.
MIN_POINTS = 5
PRIOR = "prior"
LOG_LINE = "log_line"
POWER_LAW = "power_law"
SIMPLE = (LOG_LINE, POWER_LAW)  # the two-parameter rivals every forecast is held against


@dataclass
class Forecast:
    """A forecast of one series up to a horizon.

    Attributes:
        steps: Steps of the forecast (those asked for, past the last observed step).
        value: Central forecast (the weighted average of the candidates' curves).
        lo, hi: The band (``level`` central probability) at each step.
        until: The horizon.
        final, final_lo, final_hi: Forecast value at the horizon and its band.
        peak_step, peak_value: Where the central forecast is highest, when that is before
            the horizon; None when it still rises there ("no peak before the horizon").
        peak_note: Says which, and whether the peak lies in the observed part.
        steady_state: The limit of the leading model when its data pin it down, else None.
        steady_state_note: Why not, when None.
        weights: The candidates used and their weights (from the holdout forecast).
        note: Which models were left out and why, and where the band was widened to
            hold the model average (where the bootstrap refits missed it).
        t_obs: Last observed step.
    """

    steps: np.ndarray
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    until: float
    final: float
    final_lo: float
    final_hi: float
    peak_step: float | None
    peak_value: float | None
    peak_note: str
    steady_state: float | None
    steady_state_note: str
    weights: dict[str, float]
    note: str
    t_obs: float

    @property
    def model_used(self) -> str:
        """The models of the average with their weights, leading first."""
        ranked = sorted(self.weights.items(), key=lambda kv: -kv[1])
        return " + ".join(f"{k} ({w:.2f})" for k, w in ranked)

    def table(self) -> pd.DataFrame:
        """Columns ``step, value, lo, hi``."""
        return pd.DataFrame({"step": self.steps, "value": self.value, "lo": self.lo, "hi": self.hi})

    def summary(self) -> dict[str, object]:
        """One row: final value and band, peak or none, steady state or why not, models."""
        return {
            "t_obs": self.t_obs,
            "until": self.until,
            "final": self.final,
            "final_lo": self.final_lo,
            "final_hi": self.final_hi,
            "peak_step": self.peak_step if self.peak_step is not None else math.nan,
            "peak_value": self.peak_value if self.peak_value is not None else math.nan,
            "peak_note": self.peak_note,
            "steady_state": self.steady_state if self.steady_state is not None else math.nan,
            "steady_state_note": self.steady_state_note,
            "models_used": self.model_used,
            "note": self.note,
        }


def _check(t, y, until) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if t.shape != y.shape:
        raise SeriesError(f"steps and values have different lengths ({t.size} vs {y.size})")
    if not (np.isfinite(t).all() and np.isfinite(y).all()):
        bad = t[~(np.isfinite(t) & np.isfinite(y))][:5].tolist()
        raise SeriesError(f"NaN or inf in the observed series (at steps {bad}): drop those rows")
    if t.size < MIN_POINTS:
        raise SeriesError(
            f"need at least {MIN_POINTS} observed points to forecast, got {t.size}: observe "
            "further (a later --upto) or measure more steps"
        )
    if (np.diff(t) <= 0).any():
        i = int(np.argmax(np.diff(t) <= 0))
        raise SeriesError(
            f"steps must increase strictly; step {t[i + 1]:g} follows {t[i]:g}: sort the "
            "series and aggregate repeated steps"
        )
    if (t < 0).any():
        raise SeriesError(f"steps must be >= 0, got {t[t < 0][:5].tolist()}")
    if not math.isfinite(until) or until <= t[-1]:
        raise SeriesError(
            f"the horizon {until:g} is not after the last observed step {t[-1]:g}: forecast "
            "to a later step"
        )
    return t, y


def _rel_sigma(y: np.ndarray) -> np.ndarray:
    """Weights for relative errors: a ratio's noise is multiplicative, not additive."""
    return np.maximum(np.abs(y), 1e-12)


class _Tail:
    """A line in log-step through the last third of the points: a simple rival.

    With ``log_y`` the line is fitted to the log of the values: a power law in 1 + step.
    """

    status, reason, n_params, params = "ok", "", 2, {}

    def __init__(self, t, y, log_y: bool = False):
        t, y = np.asarray(t, float), np.asarray(y, float)
        k = max(2, int(math.ceil(t.size / 3)))
        tail = y[-k:]
        if log_y and not (tail > 0).all():
            raise ValueError("a power law needs positive values")
        self.log_y = log_y
        self.slope, self.icept = np.polyfit(np.log1p(t[-k:]), np.log(tail) if log_y else tail, 1)

    def predict(self, t):
        line = self.icept + self.slope * np.log1p(np.asarray(t, float))
        return np.exp(line) if self.log_y else line


class _Prior:
    """A prior curve shifted by one offset in log space to the observed points."""

    status, reason, n_params, params = "ok", "", 1, {}

    def __init__(self, steps, ratio, t, y):
        self.steps, self.log_ratio = np.asarray(steps, float), np.log(np.asarray(ratio, float))
        self.offset = float(np.mean(np.log(np.abs(y)) - self._log_at(t)))

    def _log_at(self, t):
        return np.interp(np.log1p(np.asarray(t, float)), np.log1p(self.steps), self.log_ratio)

    def predict(self, t):
        return np.exp(self._log_at(t) + self.offset)


@dataclass(frozen=True)
class _Candidate:
    """One candidate of the average: how it is fitted, refitted and where it ends."""

    name: str
    n_params: int
    prior: tuple | None = None

    def fit(self, t, y, config: FitConfig):
        """The fitted candidate (an object with ``predict``, ``status``, ``params``)."""
        if self.name in SIMPLE:
            return _Tail(t, y, log_y=self.name == POWER_LAW)
        if self.name == PRIOR:
            return _Prior(*self.prior, t, y)
        return fit_curve(t, y, _rel_sigma(y), curve_model=self.name, config=config)

    def limit(self, fitted) -> float:
        """The curve's value as t -> inf (nan when it has none)."""
        p = fitted.params
        if self.name == "emergence":
            return p["K"] if p["lambda"] > 0 else math.nan
        if self.name in ("first_order", "logistic"):
            return p["K"] + p["A"]
        return math.nan  # log, the log-step line and a prior grow or end where they will


def _holdout_weights(cands, fits, t, y, config) -> tuple[dict[str, float], dict[str, float]]:
    """Weights from forecasting the last third of the observed points from the rest.

    Each candidate is fitted to the first two thirds and scored by its mean squared log
    error on the last third; weights go as the inverse squared score (a sharper form of
    Bates and Granger's inverse-error combination; the plain inverse forecast worse on
    the synthetic and the mini-suite backtests alike), each score floored at a 1% error
    so that no candidate takes all by luck.
    """
    k = max(2, t.size // 3)
    head_t, head_y, tail_t, tail_y = t[:-k], y[:-k], t[-k:], y[-k:]
    score = {}
    for name in fits:
        c = cands[name]
        if head_t.size < c.n_params + 1:
            continue
        try:
            guess = c.fit(head_t, head_y, config).predict(tail_t)
        except ValueError:
            continue
        ok = np.isfinite(guess).all() and (guess > 0).all()
        score[name] = float(np.mean(np.log(tail_y / guess) ** 2)) if ok else math.inf
    finite = [v for v in score.values() if math.isfinite(v)]
    worst = max(finite) if finite else 1.0
    raw = {}
    for name in fits:  # a candidate the head is too short to judge counts as the worst
        v = score.get(name, worst)
        raw[name] = 0.0 if not math.isfinite(v) else 1.0 / max(v, 1e-4) ** 2
    total = sum(raw.values())
    if total == 0:
        raw, total = {k: 1.0 for k in fits}, float(len(fits))
    return {k: v / total for k, v in raw.items()}, score


def _draws(cand, fit, t, y, grid, n, rng, cfg) -> tuple[np.ndarray, np.ndarray, int]:
    """``n`` bootstrap curves of one candidate on ``grid`` (noise added) and their limits.

    Also returns how many refits were rejected on the way for leaving the positive range
    (at most ``2n``; then fewer than ``n`` curves come back).
    """
    fitted = fit.predict(t)
    scale = math.sqrt(t.size / max(t.size - cand.n_params, 1))  # residuals understate noise
    resid = (y - fitted) * scale
    rel = resid / np.where(np.abs(fitted) > 0, np.abs(fitted), 1.0)
    out, limits, rejected = [], [], 0
    while len(out) < n and rejected < 2 * n:
        y_star = fitted + resid * rng.choice((-1.0, 1.0), size=t.size)
        try:
            refit = cand.fit(t, y_star, cfg.refit)
        except ValueError:
            refit = None
        if refit is None or refit.status == "failed":
            refit = fit
        curve = refit.predict(grid)
        if not (np.isfinite(curve).all() and (curve > 0).all()):
            rejected += 1  # a ratio cannot go there: this refit extrapolates nonsense
            continue
        out.append(curve * (1.0 + rng.choice(rel, size=grid.size)))
        limits.append(cand.limit(refit))
    return np.array(out).reshape(-1, grid.size), np.array(limits), rejected


def _simple_choice(cfg, fits, t, until, notes) -> str | None:
    """The simple rival that makes the forecast alone, or None for the model average.

    ``auto`` takes the log-step line (the power law where the line's forecast is not
    pinned down, e.g. falls below zero) when the horizon reaches further past the observed
    part than ``fallback_reach`` in log-step, and says so in ``notes``; not when a prior
    curve is among the candidates. Why these: see the module docstring.
    """
    if cfg.method in SIMPLE:
        if cfg.method not in fits:
            raise SeriesError(f"the {cfg.method} could not be fitted (values must be positive)")
        return cfg.method
    reach = math.log1p(until) / math.log1p(max(float(t[-1]), 1.0))
    if cfg.method == "average" or reach <= cfg.fallback_reach or PRIOR in fits:
        return None  # a prior is the long-range shape the rule lacks: it stays averaged
    best = next((n for n in SIMPLE if n in fits), None)  # fits: those pinned down
    if best is not None:
        notes.append(
            f"forecast by the {best.replace('_', ' ')} alone: the horizon reaches "
            f"{reach:.2f}x the observed part in log-step, past {cfg.fallback_reach:g}, where "
            "the curve average forecasts worse in the backtests (--method average to use it)"
        )
    return best


def _peak(cands, fits, weights, t, y, until) -> tuple[float | None, float | None, str]:
    """The highest point of the observed-then-forecast trajectory, if before the horizon.

    In the observed part the trajectory is the average of the curve candidates (the
    log-step line and the power law extrapolate the last third: drawn back over the
    observed steps they mean nothing); after it, the central forecast.
    """
    t_obs = float(t[-1])
    inside = np.unique(np.concatenate([t, np.geomspace(max(t[0], 1.0), t_obs, 200)]))
    curves = {k: w for k, w in weights.items() if k not in SIMPLE and w > 0}
    total = sum(curves.values())
    if total > 0:
        past = sum(w * fits[k].predict(inside) for k, w in curves.items()) / total
    else:
        inside, past = t, y
    ahead = np.geomspace(t_obs, until, 200)[1:]
    steps = np.concatenate([inside, ahead])
    path = np.concatenate([past, sum(w * fits[k].predict(ahead) for k, w in weights.items())])
    i = int(np.argmax(path))
    if 0 < i < steps.size - 1 and path[i] > path[-1] * (1 + 1e-3):
        where = "in the observed part" if steps[i] <= t_obs else "forecast"
        return float(steps[i]), float(path[i]), f"peak at step {steps[i]:.0f} ({where})"
    if i == 0:
        return None, None, "no peak: the series falls from its first observed step"
    return None, None, f"no peak before step {until:g}: still rising there"


def _steady_state(cands, fits, weights, limits, q) -> tuple[float | None, str]:
    """The limit of the weightiest candidate that has one, when its data pin it down.

    Only a candidate with at least half the leading weight may speak for the forecast.
    """
    lead_w = max(weights.values())
    able = [
        k
        for k, w in sorted(weights.items(), key=lambda kv: -kv[1])
        if w >= 0.5 * lead_w and math.isfinite(cands[k].limit(fits[k]))
    ]
    if not able:
        lead = max(weights, key=weights.get)
        return None, f"none: the leading candidate ({lead}) has no finite limit"
    ok = [k for k in able if fits[k].status == "ok"]
    if not ok:
        k = able[0]
        return None, f"not identifiable: the {k} fit is flagged ({fits[k].reason})"
    k = ok[0]
    steady = cands[k].limit(fits[k])
    spread = limits.get(k, np.array([]))
    spread = spread[np.isfinite(spread)]
    if spread.size >= 5 and np.ptp(np.quantile(spread, [q, 1 - q])) > abs(steady):
        return None, f"not identifiable: the {k} bootstrap band is wider than it"
    return steady, f"limit of the {k} fit"


def forecast_series(
    t,
    y,
    until: float,
    steps=None,
    config: ForecastConfig | None = None,
    prior: tuple | None = None,
) -> Forecast:
    """Forecast one series from its observed points up to step ``until``.

    Args:
        t: Observed steps (strictly increasing, >= 0).
        y: Observed values (the ratio, say; positive).
        until: The horizon, after the last observed step.
        steps: Steps to forecast (default: 60 log-spaced steps from the last observed one
            to ``until``); those not after the last observed step are dropped, ``until``
            is always included.
        config: Forecaster settings.
        prior: Optional ``(steps, ratio)`` of a curve expected for this series (e.g. a
            predictor's for the architecture), used as one more candidate model.

    Returns:
        The forecast.

    Raises:
        SeriesError: fewer than :data:`MIN_POINTS` points, NaN/inf, steps not strictly
            increasing, or a horizon not after the last observed step.
    """
    cfg = config or ForecastConfig()
    t, y = _check(t, y, float(until))
    t_obs, until = float(t[-1]), float(until)
    grid = np.geomspace(max(t_obs, 1.0), until, 60) if steps is None else np.asarray(steps, float)
    grid = np.unique(np.append(grid[grid > t_obs], until))
    cands = {n: _Candidate(n, get_model(n).n_params) for n in cfg.curve_models}
    for name in SIMPLE:
        cands[name] = _Candidate(name, 2)
    if prior is not None:
        cands[PRIOR] = _Candidate(PRIOR, 1, prior)
    fits: dict[str, object] = {}
    left_out = []
    for name, cand in cands.items():
        if t.size < cand.n_params + 1:
            left_out.append(f"{name}: too few points")
            continue
        try:
            r = cand.fit(t, y, cfg.fit)
        except ValueError as exc:
            left_out.append(f"{name}: {exc}")
            continue
        if r.status == "failed":
            left_out.append(f"{name}: {r.reason}")
        else:
            fits[name] = r
    if not fits:
        raise SeriesError("no curve model could be fitted: " + "; ".join(left_out))
    # Each model's own bootstrap first: a model whose forecast at the horizon the data do
    # not pin down (below zero, or spanning more than max_spread) leaves the average. The
    # probe draws at the horizon alone, from a fixed stream: which models make the point
    # forecast (and the steady state) depends neither on --seed nor on the output grid.
    probe_rng = np.random.default_rng(PROBE_SEED)
    horizon = np.array([float(until)])
    limits, spread = {}, {}
    for name, fit in fits.items():
        probe, limits[name], rejected = _draws(
            cands[name], fit, t, y, horizon, cfg.n_probe, probe_rng, cfg
        )
        spread[name] = math.inf
        if rejected <= cfg.n_probe // 4 and len(probe) and fit.predict([until])[0] > 0:
            lo_end, hi_end = np.quantile(probe[:, -1], [0.1, 0.9])
            spread[name] = hi_end / lo_end if lo_end > 0 else math.inf
    kept = {k: f for k, f in fits.items() if spread[k] <= cfg.max_spread}
    for k in fits:
        if k not in kept:
            left_out.append(
                f"{k}: forecast not pinned down (10-90% at the horizon spans "
                + ("below zero)" if not math.isfinite(spread[k]) else f"{spread[k]:.1f}x)")
            )
    if not kept:  # none is pinned down: the least loose one, and say so
        best = min(spread, key=spread.get)
        kept = {best: fits[best]}
        left_out.append(f"kept {best} anyway: the least loose")
    simple = _simple_choice(cfg, fits if cfg.method in SIMPLE else kept, t, until, left_out)
    if simple is not None:
        kept, weights = {simple: fits[simple]}, {simple: 1.0}
    else:
        weights, _ = _holdout_weights(cands, kept, t, y, cfg.fit)
    fits = kept
    value = sum(w * fits[k].predict(grid) for k, w in weights.items())

    rng = np.random.default_rng(cfg.seed)
    counts = rng.multinomial(cfg.n_boot, list(weights.values()))
    samples = []
    for (name, _), n in zip(weights.items(), counts, strict=True):
        if n:
            samples.append(_draws(cands[name], fits[name], t, y, grid, int(n), rng, cfg)[0])
    draws = np.concatenate(samples)
    if not len(draws):  # only a rival asked for by name gets here unchecked
        raise SeriesError(
            f"the {simple} forecast leaves the positive range (its refits go below zero "
            "before the horizon); choose another --method"
        )
    q = (1.0 - cfg.level) / 2
    lo, hi = np.quantile(draws, [q, 1.0 - q], axis=0)
    outside = (value < lo) | (value > hi)
    if outside.any():
        # The band comes from refits; when they rarely land where the fit did (an unstable
        # early peak, say), the band is widened to the point and the note says so: a
        # forecast never lies outside its own band.
        lo, hi = np.minimum(lo, value), np.maximum(hi, value)
        left_out.append(
            f"the band was widened to the model average at {int(outside.sum())} of "
            f"{outside.size} steps: the bootstrap refits disagree with the fits there"
        )

    peak_step, peak_value, peak_note = _peak(cands, fits, weights, t, y, until)
    steady, steady_note = _steady_state(cands, fits, weights, limits, q)
    return Forecast(
        steps=grid,
        value=np.asarray(value, float),
        lo=lo,
        hi=hi,
        until=until,
        final=float(value[-1]),
        final_lo=float(lo[-1]),
        final_hi=float(hi[-1]),
        peak_step=peak_step,
        peak_value=peak_value,
        peak_note=peak_note,
        steady_state=steady,
        steady_state_note=steady_note,
        weights=weights,
        note="; ".join(left_out),
        t_obs=t_obs,
    )


def last_value_baseline(t, y, steps) -> np.ndarray:
    """The last observed value carried forward."""
    return np.full(np.asarray(steps, float).shape, float(np.asarray(y)[-1]))


def log_line_baseline(t, y, steps) -> np.ndarray:
    """A straight line in log-step fitted to the last third of the observed points."""
    return _Tail(t, y).predict(steps)


def power_law_baseline(t, y, steps) -> np.ndarray:
    """A power law in 1 + step fitted (in log-log) to the last third of the observed points."""
    return _Tail(t, y, log_y=True).predict(steps)


@dataclass(frozen=True)
class ForecastJob:
    """One (model, layer) series to forecast, as sent to a worker process."""

    key: dict[str, object]
    steps: np.ndarray
    values: np.ndarray
    until: float
    upto: float | None
    grid: np.ndarray
    config: ForecastConfig
    prior: tuple | None = None


def _run_forecast(job: ForecastJob) -> tuple[list[dict], dict]:
    """Rows for the measured steps past ``upto`` and the grid's up to ``until``; never raises."""
    t, y = job.steps, job.values
    cut = np.inf if job.upto is None else job.upto
    seen = t <= cut
    later = dict(zip(t[~seen], y[~seen], strict=True))
    try:
        if job.upto is not None and job.upto >= job.until:
            raise SeriesError(f"--upto {job.upto:g} is not before --until {job.until:g}")
        t_obs = t[seen][-1] if seen.any() else math.nan
        want = np.union1d(np.array(list(later), dtype=float), job.grid)
        want = want[want <= job.until]
        f = forecast_series(
            t[seen],
            y[seen],
            job.until,
            steps=want[want > t_obs],
            config=job.config,
            prior=job.prior,
        )
    except (SeriesError, ValueError) as exc:
        return [], {**job.key, "status": "failed", "reason": str(exc)}
    rows = [
        {**job.key, "step": s, "value": v, "lo": a, "hi": b, "measured": later.get(s, math.nan)}
        for s, v, a, b in zip(f.steps, f.value, f.lo, f.hi, strict=True)
    ]
    return rows, {**job.key, **f.summary(), "n_obs": int(seen.sum()), "status": "ok", "reason": ""}


def forecast_measurements(
    measurements: pd.DataFrame,
    until: float,
    upto: float | None = None,
    steps=None,
    metric: str = "ratio",
    config: ForecastConfig | None = None,
    n_jobs: int | None = None,
    priors: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forecast every (model, layer) series of a measurements table.

    Args:
        measurements: The walker's long table.
        until: The horizon.
        upto: Ignore the rows after this step (a backtest); None: use them all.
        steps: Steps to forecast besides the measured ones past ``upto`` (e.g. a checkpoint
            schedule); default 60 log-spaced steps up to ``until``. ``until`` is always one.
        metric: ``ratio``, ``top1`` or ``median``.
        config: Forecaster settings.
        n_jobs: Worker processes; all cores by default, 1 runs in-process.
        priors: Optional prior curves ``(steps, ratio)`` by ``(model, layer)``.

    Returns:
        ``(forecasts, summary)``: one row per (model, layer, step) with ``value, lo, hi``
        and the ``measured`` value where the table has one past ``upto``; one row per series
        with :meth:`Forecast.summary` and ``status`` (``failed`` with its reason for a
        series that cannot be forecast).
    """
    from massdyn.fitting.batch import _run
    from massdyn.fitting.series import KEYS, aggregate

    cfg = config or ForecastConfig()
    grid = np.geomspace(1.0, until, 60) if steps is None else np.asarray(steps, float)
    jobs = [
        ForecastJob(
            key={"model": model, "layer": int(layer), "metric": metric},
            steps=grp["step"].to_numpy(float),
            values=grp["value"].to_numpy(float),
            until=float(until),
            upto=None if upto is None else float(upto),
            grid=grid,
            config=cfg,
            prior=(priors or {}).get((model, int(layer))),
        )
        for (model, layer), grp in aggregate(measurements, metric).groupby(list(KEYS), sort=True)
    ]
    out = _run(_run_forecast, jobs, n_jobs)
    columns = ["model", "layer", "metric", "step", "value", "lo", "hi", "measured"]
    rows = pd.DataFrame([r for rs, _ in out for r in rs], columns=columns)
    return rows, pd.DataFrame([s for _, s in out])


@dataclass(frozen=True)
class LiveForecaster:
    """A callable for live tracking: ``(steps, values) -> scalars`` of the forecast.

    Give it to :class:`massdyn.tracker.live.LiveTracker` (``forecast=``) so that the
    training log shows the forecast final ratio and peak step of the most massive layer
    converge as training goes on.

    Attributes:
        until: The run's last step (the horizon).
        config: Forecaster settings (fewer bootstrap draws keep it quick).
    """

    until: float
    config: ForecastConfig = field(default_factory=lambda: ForecastConfig(n_boot=12))

    def __call__(self, steps, values) -> dict[str, float]:
        """The forecast's scalars for the training log.

        Returns:
            ``forecast/final``, ``forecast/final_lo``, ``forecast/final_hi`` and
            ``forecast/peak_step`` (NaN when no peak before the horizon); empty while the
            series is too short or past the horizon.
        """
        try:
            f = forecast_series(steps, values, self.until, config=self.config)
        except SeriesError:
            return {}
        return {
            "forecast/final": f.final,
            "forecast/final_lo": f.final_lo,
            "forecast/final_hi": f.final_hi,
            "forecast/peak_step": f.peak_step if f.peak_step is not None else math.nan,
        }


__all__ = [
    "MIN_POINTS",
    "Forecast",
    "ForecastJob",
    "forecast_measurements",
    "ForecastConfig",
    "LiveForecaster",
    "forecast_series",
    "last_value_baseline",
    "log_line_baseline",
]
