"""A scikit-learn estimator facade over :func:`massdyn.fitting.fit.fit_curve`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from massdyn.fitting.fit import FitConfig, fit_curve


class EmergenceRegressor(RegressorMixin, BaseEstimator):
    """Fit a curve model of training step -> value, sklearn style.

    ``X`` is the training step, shape ``(n,)`` or ``(n, 1)``. ``fit`` returns ``self``;
    fitted attributes end in ``_``; ``score`` is R^2. It works inside Pipelines and with
    ``clone``/``GridSearchCV`` like any regressor.

    Args:
        curve_model: Curve model name (see :data:`massdyn.fitting.models.MODELS`).
        n_starts: Space-filling starts screened.
        n_polish: Best distinct starts polished.
        random_state: Seed of the starts.

    Attributes:
        result_: The full :class:`massdyn.fitting.fit.FitResult`.
        params_: Fitted parameters keyed by name.
        stderr_: Their standard errors (NaN when withheld as ill-conditioned).
        n_features_in_: Always 1.
    """

    def __init__(self, curve_model="emergence", n_starts=32, n_polish=4, random_state=0):
        self.curve_model = curve_model
        self.n_starts = n_starts
        self.n_polish = n_polish
        self.random_state = random_state

    @staticmethod
    def _steps(X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim == 2 and X.shape[1] == 1:
            return X[:, 0]
        if X.ndim == 1:
            return X
        raise ValueError(f"X must hold one column of training steps, got shape {X.shape}")

    def fit(self, X, y, sample_weight=None):
        """Fit the curve.

        Args:
            X: Training steps.
            y: Values.
            sample_weight: Optional weights; passed to the fitter as ``sigma = 1/sqrt(w)``.

        Returns:
            self

        Raises:
            SeriesError: for unusable input.
            RuntimeError: when the fit fails (the message gives the reason).
        """
        sigma = None
        if sample_weight is not None:
            sigma = 1.0 / np.sqrt(np.asarray(sample_weight, dtype=float))
        cfg = FitConfig(n_starts=self.n_starts, n_polish=self.n_polish, seed=self.random_state)
        result = fit_curve(self._steps(X), y, sigma=sigma, curve_model=self.curve_model, config=cfg)
        if not result.ok:
            raise RuntimeError(f"{self.curve_model} fit failed: {result.reason}")
        self.result_ = result
        self.params_ = dict(result.params)
        self.stderr_ = dict(result.stderr)
        self.n_features_in_ = 1
        return self

    def predict(self, X) -> np.ndarray:
        """Evaluate the fitted curve at steps ``X``."""
        check_is_fitted(self, "result_")
        return self.result_.predict(self._steps(X))
