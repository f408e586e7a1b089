"""Regressors from architecture features to emergence-curve parameters.

Targets are the five parameters with the paper's transforms (log1p for A, lambda, gamma,
t0, applied to |A| with its sign kept; Yeo-Johnson for K), features are standard-scaled,
and every regressor is a scikit-learn Pipeline inside a ``TransformedTargetRegressor``.
Uncertainty comes from a bootstrap over architectures: the predictor is refitted on
models drawn with replacement, and bands are quantiles over those refits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import Lasso, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PowerTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from massdyn.fitting.function import EmergenceParams, emergence, peak, steady_state
from massdyn.predictors.features import FEATURES, Architecture

TARGETS = ("A", "lambda", "gamma", "t0", "K")


class TargetTransform(TransformerMixin, BaseEstimator):
    """The paper's target transforms, invertible: signed log1p, log1p, Yeo-Johnson for K."""

    def fit(self, Y, y=None):
        """Fit the Yeo-Johnson transform of K (the last column)."""
        Y = np.asarray(Y, dtype=float)
        self.yeo_johnson_ = PowerTransformer(method="yeo-johnson", standardize=False).fit(Y[:, -1:])
        return self

    def transform(self, Y):
        """Transform ``(n, 5)`` targets in the order of :data:`TARGETS`."""
        check_is_fitted(self, "yeo_johnson_")
        Y = np.asarray(Y, dtype=float)
        Z = np.empty_like(Y)
        Z[:, 0] = np.sign(Y[:, 0]) * np.log1p(np.abs(Y[:, 0]))
        Z[:, 1:4] = np.log1p(np.clip(Y[:, 1:4], 0, None))
        Z[:, 4:] = self.yeo_johnson_.transform(Y[:, 4:])
        return Z

    def inverse_transform(self, Z):
        """Back to parameters; lambda >= 0 and gamma, t0 > 0 are enforced."""
        Z = np.asarray(Z, dtype=float)
        Y = np.empty_like(Z)
        Y[:, 0] = np.sign(Z[:, 0]) * np.expm1(np.abs(Z[:, 0]))
        Y[:, 1] = np.clip(np.expm1(Z[:, 1]), 0, None)
        Y[:, 2:4] = np.clip(np.expm1(Z[:, 2:4]), 1e-12, None)
        Y[:, 4:] = self.yeo_johnson_.inverse_transform(Z[:, 4:])
        return Y


def _xgb(random_state: int):
    try:
        from xgboost import XGBRegressor
    except ImportError:
        raise ValueError("regressor 'xgb' needs the optional xgboost package") from None
    return XGBRegressor(n_estimators=300, max_depth=4, random_state=random_state)


# name -> (factory of random_state, single-output learner that needs wrapping). The one
# place a regressor is declared: the CLI's choices and the docs read it.
REGISTRY: dict[str, tuple] = {
    "ridge": (lambda rs: Ridge(alpha=1.0), False),
    "lasso": (lambda rs: Lasso(alpha=0.01, max_iter=50_000), False),
    "rf": (
        lambda rs: RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=rs),
        False,
    ),
    "gb": (lambda rs: GradientBoostingRegressor(random_state=rs), True),
    "hgb": (lambda rs: HistGradientBoostingRegressor(random_state=rs), True),
    "xgb": (_xgb, False),
}
REGRESSORS = tuple(REGISTRY)


def make_regressor(name: str, random_state: int = 0, multioutput: bool = True):
    """A fresh regressor of :data:`REGISTRY` (``xgb`` needs xgboost installed).

    With ``multioutput``, single-output learners (gb, hgb) are wrapped to predict all
    targets at once.

    Raises:
        ValueError: for an unknown name, or ``xgb`` without xgboost.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown regressor {name!r}; choose one of {', '.join(REGISTRY)}")
    factory, single_output = REGISTRY[name]
    model = factory(random_state)
    return MultiOutputRegressor(model) if single_output and multioutput else model


def make_pipeline(name: str, random_state: int = 0) -> TransformedTargetRegressor:
    """Scaled features -> regressor, with the paper's target transforms around it."""
    model = Pipeline([("scale", StandardScaler()), ("model", make_regressor(name, random_state))])
    return TransformedTargetRegressor(
        regressor=model, transformer=TargetTransform(), check_inverse=False
    )


TRANSFORMS = ("paper", "none")


def _frame_columns(data, names):
    """The named columns of a DataFrame that holds them all (tables carry model, layer too)."""
    if isinstance(data, pd.DataFrame) and set(names) <= set(data.columns):
        return data[list(names)]
    return data


class EmergencePredictor(RegressorMixin, BaseEstimator):
    """Predict the five emergence parameters of every layer from architecture features.

    A scikit-learn regressor: ``fit(X, y)`` takes per-layer features (an array, or a table
    holding the :data:`~massdyn.predictors.features.FEATURES` columns, as
    :func:`~massdyn.predictors.training_table` builds) and parameters (an ``(n, 5)`` array in
    the order of :data:`TARGETS`, or a table holding those columns); ``predict`` returns an
    array.

    Args:
        regressor: ``ridge``, ``lasso``, ``rf``, ``gb``, ``hgb`` (or ``xgb``).
        n_bootstrap: Refits on architectures drawn with replacement, for uncertainty bands.
        random_state: Seed of the regressors and the bootstrap.
        target_transform: ``paper`` (the paper's transforms of the five parameters; ``y``
            must have the five columns) or ``none`` (any targets, untransformed).

    Attributes:
        pipeline_: The fitted pipeline on all data.
        bootstrap_: Pipelines fitted on bootstrap samples of models.
        feature_names_in_: Feature names, when ``X`` was a table.
        n_features_in_: Number of features.
    """

    def __init__(self, regressor="rf", n_bootstrap=20, random_state=0, target_transform="paper"):
        self.regressor = regressor
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.target_transform = target_transform

    def fit(self, X, y, groups=None):
        """Fit on per-layer features ``X`` and targets ``y``.

        Args:
            X: ``(n, n_features)`` features; a table with the FEATURES columns is reduced to
                them (other columns such as ``model`` ignored).
            y: ``(n, 5)`` parameters (``(n,)`` or ``(n, k)`` with ``target_transform="none"``);
                a table with the TARGETS columns is reduced to them.
            groups: Model of each row, for the bootstrap over architectures (default: the
                ``model`` column of ``X`` when present, else rows).

        Returns:
            self

        Raises:
            ValueError: for an unknown regressor or transform, or targets of the wrong shape.
        """
        if self.target_transform not in TRANSFORMS:
            raise ValueError(
                f"target_transform {self.target_transform!r} is not one of {', '.join(TRANSFORMS)}"
            )
        if groups is None and isinstance(X, pd.DataFrame) and "model" in X:
            groups = X["model"].to_numpy()
        X, y = validate_data(
            self,
            _frame_columns(X, FEATURES),
            _frame_columns(y, TARGETS),
            multi_output=True,
            y_numeric=True,
        )
        if self.target_transform == "paper" and (y.ndim != 2 or y.shape[1] != len(TARGETS)):
            raise ValueError(
                f"the paper's target transforms need the {len(TARGETS)} parameters "
                f"{', '.join(TARGETS)} as columns of y; pass target_transform='none' for others"
            )
        self.pipeline_ = self._pipeline(multioutput=y.ndim == 2).fit(X, y)
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        uniq = np.unique(groups)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_ = []
        for _ in range(self.n_bootstrap):
            pick = rng.choice(uniq, size=uniq.size, replace=True)
            rows = np.concatenate([np.flatnonzero(groups == g) for g in pick])
            self.bootstrap_.append(clone(self.pipeline_).fit(X[rows], y[rows]))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = self.target_transform != "paper"
        return tags

    def _pipeline(self, multioutput: bool):
        if self.target_transform == "paper":
            return make_pipeline(self.regressor, self.random_state)
        model = make_regressor(self.regressor, self.random_state, multioutput=multioutput)
        return Pipeline([("scale", StandardScaler()), ("model", model)])

    def _features(self, X):
        check_is_fitted(self, "pipeline_")
        return validate_data(self, _frame_columns(X, FEATURES), reset=False)

    def predict(self, X) -> np.ndarray:
        """Point predictions, one row per row of ``X`` (columns in the order of the targets)."""
        Xf = self._features(X)
        return self.pipeline_.predict(Xf)

    def predict_bootstrap(self, X) -> np.ndarray:
        """Predictions of every bootstrap refit: ``(n_bootstrap, n_rows, n_targets)``."""
        Xf = self._features(X)
        if not self.bootstrap_:
            return np.empty((0, len(Xf), len(TARGETS)))
        return np.stack([p.predict(Xf) for p in self.bootstrap_])

    def predict_table(self, arch: Architecture, steps) -> pd.DataFrame:
        """Rows ``model, layer, step, ratio, ratio_lo, ratio_hi``, as every predictor gives.

        See :func:`predict_architecture`, which also returns the parameters.
        """
        return predict_architecture(self, arch, steps)[1]


def predict_architecture(
    predictor: EmergencePredictor, arch: Architecture, steps, quantiles=(0.1, 0.9)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict parameters and curves for every layer of ``arch``.

    Args:
        predictor: A fitted predictor.
        arch: The architecture.
        steps: Step grid of the curves; its last step is the training window for
            ``peak_in_window``.
        quantiles: Lower and upper quantile of the band, over the bootstrap refits.

    Returns:
        ``(params, curves)``: one row per layer with the parameters, their bootstrap
        quantiles (``A_lo``, ``A_hi``, ...) and the derived ``steady_state, t_peak,
        peak_value, peak_in_window``; and one row per (layer, step) with ``ratio``,
        ``ratio_lo`` and ``ratio_hi``, the columns every predictor's curves use.
    """
    steps = np.asarray(steps, dtype=float)
    features = arch.feature_table()
    point = predictor.predict(features)
    boot = predictor.predict_bootstrap(features)
    params = features[["model", "layer"]].copy()
    for i, t in enumerate(TARGETS):
        params[t] = point[:, i]
        if len(boot):
            params[f"{t}_lo"] = np.quantile(boot[:, :, i], quantiles[0], axis=0)
            params[f"{t}_hi"] = np.quantile(boot[:, :, i], quantiles[1], axis=0)
    derived, curves = [], []
    for row, layer in zip(point, params["layer"], strict=True):
        p = EmergenceParams(*row)
        pk = peak(p, t_last=float(steps[-1]))
        derived.append(
            {
                "steady_state": steady_state(p),
                "t_peak": pk.t_peak if pk.exists else np.nan,
                "peak_value": pk.value if pk.exists else np.nan,
                "peak_in_window": pk.in_window,
            }
        )
        with np.errstate(all="ignore"):
            y = emergence(steps, *p.as_tuple())
            band = (
                np.stack([emergence(steps, *b) for b in boot[:, layer, :]])
                if len(boot)
                else y[None]
            )
        curves.append(
            pd.DataFrame(
                {
                    "model": arch.name,
                    "layer": layer,
                    "step": steps,
                    "ratio": y,
                    "ratio_lo": np.nanquantile(band, quantiles[0], axis=0),
                    "ratio_hi": np.nanquantile(band, quantiles[1], axis=0),
                }
            )
        )
    params = pd.concat([params, pd.DataFrame(derived)], axis=1)
    return params, pd.concat(curves, ignore_index=True)
