"""From an architecture config to emergence curves (may import ``fitting``).

Two protocols: the default predicts log-ratio curves directly
(:mod:`~massdyn.predictors.curve`, scored against simple rivals in
:mod:`~massdyn.predictors.rivals`); the paper's regresses the five emergence parameters
(:mod:`massdyn.predictors.paper`). Configs are read by :mod:`~massdyn.predictors.features`,
predictors saved and loaded by :mod:`~massdyn.predictors.persist`.
"""

from massdyn.predictors.features import (
    FEATURES,
    Architecture,
    ConfigError,
    configs_from_dir,
    pythia_architectures,
    read_config,
)
from massdyn.predictors.paper.evaluate import (
    curve_r2_lomo,
    evaluate,
    feature_importance,
    training_table,
)
from massdyn.predictors.paper.model import (
    REGRESSORS,
    TARGETS,
    EmergencePredictor,
    TargetTransform,
    make_pipeline,
    predict_architecture,
)
from massdyn.predictors.persist import PredictorFileError, load_predictor, save_predictor

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
