"""Predict emergence-curve parameters from architecture configs (may import ``fitting``)."""

from massdyn.predictors.evaluate import curve_r2_lomo, evaluate, feature_importance, training_table
from massdyn.predictors.features import (
    FEATURES,
    Architecture,
    ConfigError,
    configs_from_dir,
    pythia_architectures,
    read_config,
)
from massdyn.predictors.model import (
    REGRESSORS,
    TARGETS,
    EmergencePredictor,
    TargetTransform,
    make_pipeline,
)
from massdyn.predictors.persist import PredictorFileError, load_predictor, save_predictor
from massdyn.predictors.predict import predict_architecture

__all__ = [
    "FEATURES",
    "REGRESSORS",
    "TARGETS",
    "Architecture",
    "ConfigError",
    "EmergencePredictor",
    "PredictorFileError",
    "TargetTransform",
    "configs_from_dir",
    "curve_r2_lomo",
    "evaluate",
    "feature_importance",
    "load_predictor",
    "make_pipeline",
    "predict_architecture",
    "pythia_architectures",
    "read_config",
    "save_predictor",
    "training_table",
]
