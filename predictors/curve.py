"""Predict emergence curves, not parameters: log(ratio) on a log-spaced step grid.

The five emergence parameters are not pinned down by series that are still rising (their
refits vary 10x while the curve moves by 0.02%), so regressing them from architecture
averages degenerate corners. This predictor works where the data are firm, in curve space:

1. Every (model, layer) series of top1/median ratios becomes ``log(ratio)`` on a fixed grid
   of ``log1p(step)`` (linear interpolation inside the measured range; none outside it).
2. The **base** is architecture-free: at relative depth ``layer / (L - 1)`` and grid point
   ``g``, the mean over the training models of their curves interpolated to that depth.
3. **Architecture offsets** are ridge regressions of what the base leaves (computed with
   the model itself left out of the base) on architecture features crossed with
   ``[1, depth, log-step]``, along a path of strengths that ends in "no offsets at all".
   Rather than pick one strength, the offsets are **stacked** (Breiman 1996, "Stacked
   regressions"): a convex combination of the path's fits, its non-negative weights
   minimising the squared error of cross-validation grouped by architecture (seed
   replicates of one architecture are held out together; every architecture weighs the
   same). With data that carry no architecture signal the weight goes to the base. A
   single chosen strength (tried before, by the one-standard-error rule) swung from fold
   to fold on the real suite, and that choice cost what the offsets gained; the
   combination varies smoothly. The **simple rivals** (:mod:`massdyn.predictors.simple`:
   a linear model per grid point, the three nearest architectures) are candidates of the
   same stack: the ridge path alone only tied the linear model held out, so whichever
   does better in the grouped CV takes the weight (on the grown suite: ridge 0.1 0.48,
   linear 0.36, nearest 0.14).
4. **Bands**: 10% and 90% quantiles, per grid point, of the grouped cross-validation
   errors of the stacked predictor (in log space), added to the central line, and widened
   for architectures far from the training ones (:mod:`massdyn.predictors.band`).
5. **Held-out scores** are nested: an architecture held out for scoring takes no part in
   choosing the weights its prediction uses (:mod:`massdyn.predictors.scores`, with the
   variance budget; summaries of predicted curves: :mod:`massdyn.predictors.summary`).

Everything is in log space, so every predicted ratio is positive.

**Time is tokens.** A step of the mini-suite is 2,048 tokens, a step of Pythia 2,097,152:
the mini-suite's 8,000 steps are about Pythia's step 8. The predictor learns on its
training suite's steps and knows that suite's tokens per step (``tokens_per_step``), so a
question about another suite is asked at the same number of tokens seen
(:meth:`CurvePredictor.predict_tokens_table`). Past the training data's token horizon
nothing is predicted unless asked to extrapolate, and then every such row says by how
many times it lies beyond the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from massdyn.fitting.series import aggregate
from massdyn.predictors.band import fit_scale, k_for_coverage, nearest_distance, scale_at, widen
from massdyn.predictors.design import (  # noqa: F401 - their home before design.py
    ARCH_FEATURES,
    RANGE_FIELDS,
    arch_key,
    arch_values,
    at_depths,
    depths,
)
from massdyn.predictors.features import Architecture
from massdyn.predictors.simple import linear_curves, nearest_curves

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, math.inf)  # inf: the base alone
RIVALS = ("linear", "nearest")
NEAREST_K = 3


@dataclass
class Curves:
    """The log-ratio curves of a suite on one grid: ``{model: (L, G) array}`` (NaN: unmeasured)."""

    grid: np.ndarray  # log1p(step) of each grid point
    logs: dict[str, np.ndarray]

    @classmethod
    def from_measurements(cls, measurements: pd.DataFrame, n_grid: int = 32) -> Curves:
        """Interpolate every (model, layer) series of the ratio onto a log-step grid."""
        series = aggregate(measurements, "ratio")
        if (series["value"] <= 0).any():
            raise ValueError("the top1/median ratio must be positive to be predicted in log space")
        last = float(np.log1p(series["step"].max()))
        grid = np.linspace(0.0, last, n_grid)
        logs = {}
        for model, g in series.groupby("model"):
            rows = []
            for _, s in g.groupby("layer"):
                x, y = np.log1p(s["step"].to_numpy(float)), np.log(s["value"].to_numpy(float))
                curve = np.interp(grid, x, y)
                curve[(grid < x.min() - 1e-9) | (grid > x.max() + 1e-9)] = np.nan
                rows.append(curve)
            logs[str(model)] = np.vstack(rows)
        return cls(grid, logs)


def _design(arch_rows: np.ndarray, depth: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Architecture features crossed with ``[1, depth, u]``, plus depth and u themselves.

    One row per (layer, grid point). The plain depth and u columns (and the intercept the
    solver adds) carry what the base of a held-out set misses on average.
    """
    n_l, n_g = depth.size, u.size
    d = np.repeat(depth, n_g)[:, None]
    t = np.tile(u, n_l)[:, None]
    a = np.tile(arch_rows, (n_l * n_g, 1))
    return np.hstack([a, a * d, a * t, d, t])


def _learned():
    """A dataclass field set by ``fit`` only: not an argument, not compared, not shown."""
    return field(init=False, repr=False, compare=False)


@dataclass
class CurvePredictor:
    """Architecture -> log(ratio) curves per layer; see the module docstring.

    Attributes:
        alphas: Ridge strengths of the path (``inf``: the base alone).
        n_grid: Points of the log-step grid.
        weights_: Each candidate's weight in the stack, by name: a ridge strength
            (``"0.1"``, ... ``"inf"``: the base alone) or a simple rival (``"linear"``,
            ``"nearest"``) (set by :meth:`fit`).
    """

    alphas: tuple[float, ...] = ALPHAS
    # The simple rivals (predictors.simple) offered to the stack next to the ridge path.
    rivals: tuple[str, ...] = RIVALS
    n_grid: int = 32
    # The training suite's tokens per step (None: unknown; then nothing maps to tokens).
    tokens_per_step: int | None = None
    # Learned in fit, as scikit-learn's trailing underscores are: absent before it.
    weights_: dict[str, float] = _learned()
    grid_: np.ndarray = _learned()
    logs_: dict[str, np.ndarray] = _learned()
    archs_: dict[str, dict] = _learned()
    groups_: dict[str, int] = _learned()
    mean_: np.ndarray | None = _learned()
    scale_: np.ndarray | None = _learned()
    coef_: np.ndarray | None = _learned()
    band_: np.ndarray = _learned()  # (2, G): 10% and 90% quantiles of CV errors
    band_scale_: tuple[float, float] = _learned()  # (a, b): the band's k(d), see band.py
    # candidate (and "stacked") -> CV score: mean over architectures of median |log error|
    cv_: dict[str, float] = _learned()
    ranges_: dict[str, tuple[float, float]] = _learned()
    max_step_: float = _learned()

    def fit(self, measurements: pd.DataFrame, archs: dict[str, Architecture]) -> CurvePredictor:
        """Learn from a walker-format measurements table and each model's architecture.

        Raises:
            ValueError: with fewer than two architectures, or models without architecture.
        """
        curves = Curves.from_measurements(measurements, self.n_grid)
        missing = sorted(set(curves.logs) - set(archs))
        if missing:
            raise ValueError(f"no architecture for model(s) {', '.join(missing)}")
        self.grid_, self.logs_ = curves.grid, curves.logs
        self.__dict__.pop("_depth_cache", None)
        self.archs_ = {m: arch_values(archs[m]) for m in self.logs_}
        keys = {}
        self.groups_ = {m: keys.setdefault(arch_key(archs[m]), len(keys)) for m in self.logs_}
        if len(keys) < 2:
            raise ValueError("need at least two different architectures to learn from")
        self.ranges_ = {
            f: (min(a[f] for a in self.archs_.values()), max(a[f] for a in self.archs_.values()))
            for f in RANGE_FIELDS
        }
        self.max_step_ = float(np.expm1(self.grid_[-1]))
        weights, self.cv_, err, by_group = self._stack(frozenset())
        self.weights_ = {str(a): float(w) for a, w in weights.items()}
        self.band_ = np.nanquantile(err, [0.1, 0.9], axis=0)
        self.band_scale_ = self._calibrate(by_group, self.band_, frozenset())
        self.mean_, self.scale_, self.coef_ = self._fit_offsets(list(self.logs_), set(), weights)
        return self

    # -- the pieces ---------------------------------------------------------------------

    def base(self, target_layers: int, exclude=frozenset()) -> np.ndarray:
        """The depth-mean curves (L, G) for a model of ``target_layers``, without ``exclude``."""
        names, stack = self._at_depth(target_layers)
        keep = np.array([m not in exclude for m in names])
        with np.errstate(all="ignore"), Quiet():
            return np.nanmean(stack[keep], axis=0)

    def _at_depth(self, n_layers: int) -> tuple[list[str], np.ndarray]:
        """Every training curve at the depths of an ``n_layers`` model: names, (M, L, G).

        Kept between calls: nested CV asks for the base thousands of times. The cache is
        not part of the saved predictor (see ``__getstate__``).
        """
        cache = self.__dict__.setdefault("_depth_cache", {})
        if n_layers not in cache:
            d = depths(n_layers)
            names = list(self.logs_)
            cache[n_layers] = names, np.stack([at_depths(self.logs_[m], d) for m in names])
        return cache[n_layers]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_depth_cache"}

    def architectures(self) -> dict[int, list[str]]:
        """Each architecture group's models (its seed replicates), by name."""
        members: dict[int, list[str]] = {}
        for m in sorted(self.groups_):
            members.setdefault(self.groups_[m], []).append(m)
        return members

    def _arch_row(self, values: dict) -> np.ndarray:
        return np.array([values[f] for f in ARCH_FEATURES], float)

    def _rows(self, models: list[str], held: set[str]):
        """Design and residual rows of ``models``, each with its own group out of the base."""
        X, y = [], []
        u = self.grid_ / self.grid_[-1]
        members = self.architectures()
        for m in models:
            same = set(members[self.groups_[m]])
            curve = self.logs_[m]
            resid = curve - self.base(curve.shape[0], same | held)
            X.append(_design(self._arch_row(self.archs_[m]), depths(curve.shape[0]), u))
            y.append(resid.ravel())
        X, y = np.vstack(X), np.concatenate(y)
        keep = np.isfinite(y)
        return X[keep], y[keep]

    def _solve(self, X, y, alpha):
        """Ridge on standardised columns with an unpenalised intercept (``coef[-1]``)."""
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        y0 = y.mean()
        coef = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - y0))
        return mean, scale, np.append(coef, y0)

    def _fit_offsets(self, models, held, weights: dict[float, float]):
        """``(mean, scale, coef)`` of the stacked offsets: the weighted sum of the path's fits.

        Every fit standardises the same rows, so the offsets, linear in ``coef``, combine
        by adding weighted coefficients. ``(None, None, None)`` when the base takes all.
        """
        used = {
            a: w
            for a, w in weights.items()
            if w > 0 and not isinstance(a, str) and math.isfinite(a)
        }
        if not used:
            return None, None, None
        X, y = self._rows(models, held)
        coef = 0.0
        for a, w in used.items():
            mean, scale, c = self._solve(X, y, a)
            coef = coef + w * c
        return mean, scale, coef

    def _offset(self, values: dict, n_layers: int, mean, scale, coef) -> np.ndarray:
        if coef is None:
            return np.zeros((n_layers, self.grid_.size))
        X = _design(self._arch_row(values), depths(n_layers), self.grid_ / self.grid_[-1])
        return (((X - mean) / scale) @ coef[:-1] + coef[-1]).reshape(n_layers, -1)

    def _cv_errors(self, exclude=frozenset()) -> dict:
        """Held-out log errors (rows: (model, layer)) per candidate and architecture left out.

        Candidates: the ridge strengths of :attr:`alphas` and the :attr:`rivals`.

        Args:
            exclude: Models left out of everything (the outer architecture of nested CV).
        """
        errs: dict = {a: {} for a in (*self.alphas, *self.rivals)}
        for group, held in sorted(self.architectures().items()):
            if exclude.issuperset(held):
                continue
            out = set(held) | exclude
            train = [m for m in self.logs_ if m not in out]
            rows = self._rows(train, out) if any(map(math.isfinite, self.alphas)) else None
            misses = [self.logs_[m] - self.base(self.logs_[m].shape[0], out) for m in held]
            for alpha in self.alphas:
                fitted = (None, None, None)
                if not math.isinf(alpha):
                    fitted = self._solve(*rows, alpha)
                errs[alpha][group] = np.vstack(
                    [
                        miss - self._offset(self.archs_[m], miss.shape[0], *fitted)
                        for m, miss in zip(held, misses, strict=True)
                    ]
                )
            first = held[0]
            for rival in self.rivals:
                curve = self._rival(rival, train, self.archs_[first], self.logs_[first].shape[0])
                errs[rival][group] = np.vstack([self.logs_[m] - curve for m in held])
        return errs

    def _rival(self, name: str, train: list[str], values: dict, n_layers: int) -> np.ndarray:
        """A simple rival's (L, G) log curves for an architecture, from ``train``."""
        if name == "linear":
            return linear_curves(self, train, values, n_layers)
        if name == "nearest":
            return nearest_curves(self, train, values, n_layers, NEAREST_K)
        raise ValueError(f"unknown rival {name!r}; known: {', '.join(RIVALS)}")

    def _stack(self, exclude=frozenset()):
        """The stacking weights of the path's fits, from CV over all but ``exclude``.

        Returns:
            ``(weights, score, errors)``: weight per strength, the CV score per strength
            and of the stack (``"stacked"``), and the stacked CV errors (rows: (model,
            layer)).
        """
        per = self._cv_errors(exclude)
        groups = sorted(next(iter(per.values())))
        weights = dict(zip(per, stack_weights(per, groups), strict=True))
        # A candidate without weight adds nothing, not its NaNs.
        stacked = {g: sum(w * per[a][g] for a, w in weights.items() if w > 0) for g in groups}
        score = {}
        with Quiet():
            for a, errs in [*per.items(), ("stacked", stacked)]:
                score[str(a)] = float(np.mean([np.nanmedian(np.abs(errs[g])) for g in groups]))
        return weights, score, np.vstack([stacked[g] for g in groups]), stacked

    def heldout(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """A training model's (L, G) log-ratio base and prediction, its architecture left out.

        The stacking weights are chosen again without that architecture (nested CV), so
        the held-out score does not flatter the predictor.
        """
        return self.heldout_banded(model)[:2]

    def heldout_banded(
        self, model: str, also: frozenset = frozenset()
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`heldout`, and the (2, G) band the predictor would give without the model.

        The band comes from the inner cross-validation errors, so checking held-out
        members against it tests the band the way a new architecture would meet it.

        Args:
            model: The model whose architecture is held out.
            also: Further models held out with it (its neighbourhood, say).
        """
        held = frozenset(self.architectures()[self.groups_[model]]) | frozenset(also)
        train = [m for m in self.logs_ if m not in held]
        if not train:
            raise ValueError("nothing left to train on")
        weights, band = self._weights(), self.band_
        if len({self.groups_[m] for m in train}) > 1:
            weights, _, errors, by_group = self._stack(held)
            band = np.nanquantile(errors, [0.1, 0.9], axis=0)
            scale = self._calibrate(by_group, band, held)
            band = widen(band, scale_at(scale, self.distance(self.archs_[model], held)))
        fitted = self._fit_offsets(train, held, weights)
        n = self.logs_[model].shape[0]
        base = self.base(n, held)
        return base, self._central(self.archs_[model], n, held, weights, fitted), band

    def _weights(self) -> dict:
        """:attr:`weights_` keyed as the stack keys them: strengths as floats, rivals by name."""
        return {(a if a in self.rivals else float(a)): w for a, w in self.weights_.items()}

    def _central(self, values: dict, n_layers: int, exclude, weights: dict, fitted) -> np.ndarray:
        """The stack's (L, G) log curves: the base and ridge offsets, plus the rivals.

        Every ridge fit predicts base + its offset and the base alone is the strength
        ``inf``, so together they weigh the base by what the rivals leave.
        """
        share = sum(w for a, w in weights.items() if isinstance(a, str))
        out = (1.0 - share) * self.base(n_layers, exclude)
        out = out + self._offset(values, n_layers, *fitted)
        train = [m for m in self.logs_ if m not in exclude]
        for a, w in weights.items():
            if isinstance(a, str) and w > 0:
                out = out + w * self._rival(a, train, values, n_layers)
        return out

    def distance(self, values: dict, exclude=frozenset()) -> float:
        """Distance to the nearest training architecture not in ``exclude``.

        Measured in :data:`ARCH_FEATURES` standardised over those architectures.
        """
        firsts = {}
        for m in sorted(self.groups_):
            if m not in exclude:
                firsts.setdefault(self.groups_[m], m)
        train = np.array([self._arch_row(self.archs_[m]) for m in firsts.values()])
        return nearest_distance(train, self._arch_row(values))

    def _calibrate(self, by_group: dict, band: np.ndarray, exclude) -> tuple[float, float]:
        """``(a, b)`` of the band's scale with distance (:mod:`massdyn.predictors.band`).

        Fitted to the cross-validation errors of each architecture held out.
        """
        members = self.architectures()
        distances, ks = [], []
        for group, errors in by_group.items():
            held = frozenset(members[group]) | exclude
            distances.append(self.distance(self.archs_[members[group][0]], held))
            ks.append(k_for_coverage(errors, band))
        return fit_scale(distances, ks)

    # -- prediction ---------------------------------------------------------------------

    def predict_log(self, arch: Architecture) -> np.ndarray:
        """The (L, G) central log-ratio curves of an architecture on :attr:`grid_`."""
        fitted = (self.mean_, self.scale_, self.coef_)
        return self._central(arch_values(arch), arch.n_layers, frozenset(), self._weights(), fitted)

    def out_of_range(self, arch: Architecture, max_step: float | None = None) -> list[str]:
        """One warning per field outside the training suite's range (and for the horizon)."""
        values = arch_values(arch)
        notes = []
        for f, (lo, hi) in self.ranges_.items():
            v = values[f]
            if v < lo * (1 - 1e-9) or v > hi * (1 + 1e-9):
                if f == "parallel_residual":
                    layout = "parallel" if v else "sequential"
                    notes.append(
                        f"parallel_residual: the training suite has no {layout}-residual member"
                    )
                else:
                    notes.append(f"{f} = {v:g} is outside the training suite's range {lo:g}-{hi:g}")
        if max_step is not None and max_step > self.max_step_:
            notes.append(
                f"steps up to {max_step:g} go past the longest training run ({self.max_step_:g});"
                " beyond it the curve is held at its last value"
            )
        return notes

    @property
    def horizon_tokens(self) -> float | None:
        """Tokens seen at the longest training run's last measured step (None: unknown)."""
        return self.max_step_ * self.tokens_per_step if self.tokens_per_step else None

    def predict_tokens_table(
        self, arch: Architecture, steps, tokens_per_step: int | None, extrapolate: bool = False
    ) -> pd.DataFrame:
        """:meth:`predict_table` for a suite of ``tokens_per_step`` tokens a step.

        Each of ``steps`` (the target suite's) is predicted at the training suite's step
        that has seen as many tokens. Rows past the token horizon are empty (``ratio`` NaN)
        with the reason in ``note``, or, with ``extrapolate``, filled and noted. A predictor
        that does not know its own tokens per step (a file from before it was recorded)
        takes steps as they are, with its horizon in steps and no ``tokens``.

        Raises:
            ValueError: ``tokens_per_step`` not positive, or given to a predictor that
                cannot map it.
        """
        if tokens_per_step is not None and tokens_per_step <= 0:
            raise ValueError(f"tokens per step must be positive, got {tokens_per_step}")
        if tokens_per_step is not None and not self.tokens_per_step:
            raise ValueError(
                "this predictor does not know its training suite's tokens per step, so it "
                "cannot map another suite's steps to its own: retrain it with massdyn "
                "train-predictor --tokens-per-step N"
            )
        steps = np.asarray(steps, float)
        if self.tokens_per_step:
            tokens = steps * (tokens_per_step or self.tokens_per_step)
            own, horizon, unit = tokens / self.tokens_per_step, self.horizon_tokens, "tokens"
        else:
            tokens, own, horizon, unit = (
                np.full(steps.shape, np.nan),
                steps,
                self.max_step_,
                "steps",
            )
        table = self.predict_table(arch, own)
        table["step"] = np.tile(steps, arch.n_layers)
        table.insert(3, "tokens", np.tile(tokens, arch.n_layers))
        times = np.tile(own, arch.n_layers) / self.max_step_
        beyond = times > 1 + 1e-9
        verb = "extrapolated" if extrapolate else "not predicted"
        note = np.where(
            beyond,
            [
                f"{verb}: {t:.3g}x the training data's horizon of {horizon:.4g} {unit}"
                for t in times
            ],
            "",
        )
        table["note"] = note
        if not extrapolate:
            table.loc[beyond, ["ratio", "ratio_lo", "ratio_hi"]] = np.nan
        return table

    def predict_table(self, arch: Architecture, steps) -> pd.DataFrame:
        """Rows ``model, layer, step, ratio, ratio_lo, ratio_hi`` at the given steps."""
        steps = np.asarray(steps, float)
        central = self.predict_log(arch)
        x = np.log1p(steps)
        k = scale_at(self.band_scale_, self.distance(arch_values(arch)))
        band = widen(self.band_, k)
        rows = []
        for layer in range(arch.n_layers):
            c = np.interp(x, self.grid_, central[layer])
            lo = c + np.interp(x, self.grid_, band[0])
            hi = c + np.interp(x, self.grid_, band[1])
            rows.append(
                pd.DataFrame(
                    {
                        "model": arch.name,
                        "layer": layer,
                        "step": steps,
                        "ratio": np.exp(c),
                        "ratio_lo": np.exp(lo),
                        "ratio_hi": np.exp(hi),
                    }
                )
            )
        return pd.concat(rows, ignore_index=True)


def stack_weights(errors: dict[float, dict[int, np.ndarray]], groups: list[int]) -> np.ndarray:
    """Non-negative weights, summing to 1, that minimise the stacked CV squared error.

    Args:
        errors: Per candidate, per held-out group, its CV errors (same shape and NaNs
            across candidates).
        groups: The groups to use; each weighs the same, however many points it has.

    Returns:
        One weight per candidate, in the order of ``errors``.
    """
    from scipy.optimize import minimize

    columns = []
    for g in groups:
        e = np.stack([errors[a][g].ravel() for a in errors])
        e = e[:, np.isfinite(e).all(axis=0)]
        columns.append(e / math.sqrt(max(e.shape[1], 1)))
    E = np.hstack(columns)
    Q = E @ E.T
    Q = Q / max(np.abs(Q).max(), 1e-300)  # scaled to 1: the optimiser's tolerances are absolute
    k = Q.shape[0]
    result = minimize(
        lambda w: w @ Q @ w,
        np.full(k, 1.0 / k),
        jac=lambda w: 2 * Q @ w,
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    w[w < 1e-6] = 0.0
    return w / w.sum()


class Quiet:
    """Silence numpy's warnings about all-NaN slices (unmeasured grid points)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


__all__ = [
    "ARCH_FEATURES",
    "CurvePredictor",
    "Curves",
    "Quiet",
    "arch_values",
    "stack_weights",
]
