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
from sklearn.base import BaseEstimator, TransformerMixin, clone
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
from sklearn.utils.validation import check_is_fitted

from massdyn.predictors.features import FEATURES

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


class EmergencePredictor(BaseEstimator):
    """Predict the five emergence parameters of every layer from architecture features.

    Args:
        regressor: ``ridge``, ``lasso``, ``rf``, ``gb``, ``hgb`` (or ``xgb``).
        n_bootstrap: Refits on architectures drawn with replacement, for uncertainty bands.
        random_state: Seed of the regressors and the bootstrap.

    Attributes:
        pipeline_: The fitted pipeline on all data.
        bootstrap_: Pipelines fitted on bootstrap samples of models.
        feature_names_in_: :data:`massdyn.predictors.features.FEATURES`.
        targets_: :data:`TARGETS`.
    """

    def __init__(self, regressor="rf", n_bootstrap=20, random_state=0):
        self.regressor = regressor
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, Y: pd.DataFrame, groups=None):
        """Fit on per-layer features ``X`` and parameters ``Y``.

        Args:
            X: Columns :data:`FEATURES` (other columns ignored).
            Y: Columns :data:`TARGETS`.
            groups: Model of each row, for the bootstrap over architectures (default: the
                ``model`` column of ``X`` when present, else rows).

        Returns:
            self
        """
        Xf, Yt = self._xy(X, Y)
        self.pipeline_ = make_pipeline(self.regressor, self.random_state).fit(Xf, Yt)
        if groups is None:
            groups = X["model"].to_numpy() if "model" in X else np.arange(len(X))
        groups = np.asarray(groups)
        uniq = np.unique(groups)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_ = []
        for _ in range(self.n_bootstrap):
            pick = rng.choice(uniq, size=uniq.size, replace=True)
            rows = np.concatenate([np.flatnonzero(groups == g) for g in pick])
            self.bootstrap_.append(clone(self.pipeline_).fit(Xf[rows], Yt[rows]))
        self.feature_names_in_ = np.array(FEATURES, dtype=object)
        self.targets_ = TARGETS
        return self

    @staticmethod
    def _xy(X, Y=None):
        missing = [f for f in FEATURES if f not in X]
        if missing:
            raise ValueError(f"feature column(s) {missing} missing")
        Xf = X[list(FEATURES)].to_numpy(dtype=float)
        if Y is None:
            return Xf
        missing = [t for t in TARGETS if t not in Y]
        if missing:
            raise ValueError(f"target column(s) {missing} missing")
        return Xf, Y[list(TARGETS)].to_numpy(dtype=float)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Point predictions, one row per row of ``X``, columns :data:`TARGETS`."""
        check_is_fitted(self, "pipeline_")
        return pd.DataFrame(
            self.pipeline_.predict(self._xy(X)), columns=list(TARGETS), index=X.index
        )

    def predict_bootstrap(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions of every bootstrap refit: ``(n_bootstrap, n_rows, 5)``."""
        check_is_fitted(self, "pipeline_")
        Xf = self._xy(X)
        return (
            np.stack([p.predict(Xf) for p in self.bootstrap_])
            if self.bootstrap_
            else np.empty((0, len(X), 5))
        )
