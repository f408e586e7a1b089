import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from massdyn.fitting import EmergenceRegressor, SeriesError, emergence, fit_curve

from .synth import SHAPES, SUBSET_37, noisy


def data(seed=0):
    return SUBSET_37, noisy(
        emergence(SUBSET_37, *SHAPES["rise_then_decay"]), np.random.default_rng(seed)
    )


def test_fit_returns_self_and_sets_trailing_underscore_attributes():
    t, y = data()
    est = EmergenceRegressor()
    assert not any(k.endswith("_") for k in vars(est))  # nothing fitted in __init__
    assert est.fit(t.reshape(-1, 1), y) is est
    assert set(est.params_) == {"A", "lambda", "gamma", "t0", "K"}
    assert est.n_features_in_ == 1
    np.testing.assert_allclose(est.predict(t), fit_curve(t, y).predict(t))
    assert est.score(t, y) == pytest.approx(est.result_.r2)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        EmergenceRegressor().predict(SUBSET_37)


def test_clone_params_and_pipeline():
    t, y = data(1)
    est = EmergenceRegressor(curve_model="log", n_starts=16, random_state=3)
    assert clone(est).get_params() == est.get_params()
    pipe = make_pipeline(FunctionTransformer(lambda X: X), EmergenceRegressor(curve_model="log"))
    pipe.fit(t.reshape(-1, 1), y)
    assert pipe.predict(t.reshape(-1, 1)).shape == t.shape
    est.set_params(curve_model="first_order")
    assert est.fit(t, y).result_.curve_model == "first_order"


def test_cross_validation_runs():
    t, y = data(2)
    scores = cross_val_score(EmergenceRegressor(), t.reshape(-1, 1), y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_sample_weight_is_used():
    t, y = data(3)
    w = np.ones_like(y)
    w[5] = 1e-8
    a = EmergenceRegressor().fit(t, y).params_
    b = EmergenceRegressor().fit(t, y, sample_weight=w).params_
    assert a != b


def test_bad_input_and_multi_column_x():
    with pytest.raises(SeriesError, match="constant"):
        EmergenceRegressor().fit(SUBSET_37, np.ones_like(SUBSET_37))
    with pytest.raises(ValueError, match="one column"):
        EmergenceRegressor().fit(np.ones((10, 2)), np.arange(10.0))
