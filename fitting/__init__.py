"""Fit massive-activation emergence curves (and rival models) to training-step series.

This package depends on no other part of massdyn. Its names load on first use (PEP 562),
so that a light module (the fitter's config, say) imports without scipy or scikit-learn;
no module of the package is named like one of these names, which would shadow it.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "fit_paper_baseline": "massdyn.fitting.baseline",
    "aggregate": "massdyn.fitting.series",
    "check_measurements": "massdyn.fitting.series",
    "pool_seeds": "massdyn.fitting.series",
    "compare_measurements": "massdyn.fitting.batch",
    "fit_measurements": "massdyn.fitting.batch",
    "fit_and_rank": "massdyn.fitting.batch",
    "SeriesJob": "massdyn.fitting.batch",
    "compare": "massdyn.fitting.ranking",
    "EmergenceParams": "massdyn.fitting.function",
    "Peak": "massdyn.fitting.function",
    "ReparamParams": "massdyn.fitting.function",
    "emergence": "massdyn.fitting.function",
    "emergence_jacobian": "massdyn.fitting.function",
    "peak": "massdyn.fitting.function",
    "reparam_curve": "massdyn.fitting.function",
    "reparam_jacobian": "massdyn.fitting.function",
    "steady_state": "massdyn.fitting.function",
    "EmergenceRegressor": "massdyn.fitting.estimator",
    "Forecast": "massdyn.fitting.forecast",
    "ForecastConfig": "massdyn.fitting.config",
    "LiveForecaster": "massdyn.fitting.forecast",
    "forecast_measurements": "massdyn.fitting.forecast",
    "forecast_series": "massdyn.fitting.forecast",
    "FitConfig": "massdyn.fitting.config",
    "FitResult": "massdyn.fitting.fit",
    "fit_curve": "massdyn.fitting.fit",
    "MODELS": "massdyn.fitting.models",
    "CurveModel": "massdyn.fitting.models",
    "get_model": "massdyn.fitting.models",
    "SeriesError": "massdyn.fitting.validate",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
