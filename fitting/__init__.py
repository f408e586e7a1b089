"""Fit massive-activation emergence curves (and rival models) to training-step series.

This package depends on no other part of massdyn.
"""

from massdyn.fitting.baseline import fit_paper_baseline
from massdyn.fitting.batch import aggregate, compare_measurements, fit_measurements
from massdyn.fitting.compare import compare
from massdyn.fitting.emergence import (
    EmergenceParams,
    Peak,
    ReparamParams,
    emergence,
    emergence_jacobian,
    peak,
    reparam_curve,
    reparam_jacobian,
    steady_state,
)
from massdyn.fitting.estimator import EmergenceRegressor
from massdyn.fitting.fit import FitConfig, FitResult, fit_curve
from massdyn.fitting.models import MODELS, CurveModel, get_model
from massdyn.fitting.validate import SeriesError

__all__ = [
    "MODELS",
    "CurveModel",
    "EmergenceParams",
    "EmergenceRegressor",
    "FitConfig",
    "FitResult",
    "Peak",
    "ReparamParams",
    "SeriesError",
    "aggregate",
    "compare",
    "compare_measurements",
    "emergence",
    "emergence_jacobian",
    "fit_curve",
    "fit_measurements",
    "fit_paper_baseline",
    "get_model",
    "peak",
    "reparam_curve",
    "reparam_jacobian",
    "steady_state",
]
