"""Save and load predictors without unpickling untrusted data (skops, explicit trust list)."""

from __future__ import annotations

from pathlib import Path

import sklearn

from massdyn.predictors.curve import ARCH_FEATURES
from massdyn.predictors.features import FEATURES
from massdyn.predictors.paper.model import TARGETS

# 2: the curve predictor learns from the residual layout too (ARCH_FEATURES).
# 3: its offsets are stacked over ridge strengths (weights_) instead of one alpha_.
# 4: the curve predictor knows its training suite's tokens per step (tokens_per_step).
# 5: its band widens with distance from the training architectures (band_scale_).
# 6: the simple rivals (linear, nearest) are candidates of its stack (weights_ "linear", ...);
#    the paper protocol's classes live in massdyn.predictors.paper.
FORMAT_VERSION = 6
# The types a saved predictor holds beyond those skops trusts by itself (plain containers,
# numpy arrays, scikit-learn estimators): exact names, so that nothing callable such as
# builtins.exec can ride along in a file. Anything else in a file is refused.
TRUSTED_TYPES = frozenset(
    {
        "massdyn.predictors.curve.CurvePredictor",
        "massdyn.predictors.paper.model.EmergencePredictor",
        "massdyn.predictors.paper.model.TargetTransform",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
    }
)


class PredictorFileError(ValueError):
    """A predictor file is unsafe, damaged or does not match this version of massdyn."""


def _schema() -> dict:
    return {
        "format": FORMAT_VERSION,
        "features": list(FEATURES),
        "arch_features": list(ARCH_FEATURES),
        "targets": list(TARGETS),
        "sklearn": sklearn.__version__,
    }


def save_predictor(predictor, path: str | Path, info: dict | None = None) -> Path:
    """Write a fitted predictor with its feature schema and library versions."""
    import skops.io as sio  # here, so that walking never needs the persistence library

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump({"predictor": predictor, "schema": _schema(), "info": info or {}}, path)
    return path


def load_predictor(path: str | Path):
    """Load a predictor saved by :func:`save_predictor`.

    Returns:
        ``(predictor, info)``.

    Raises:
        PredictorFileError: for types outside the trust list, a different feature or target
            schema, or a different scikit-learn minor version.
    """
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no predictor file {path}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise PredictorFileError(f"{path} is not a predictor file: {exc}") from None
    refused = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if refused:
        raise PredictorFileError(
            f"{path} holds types outside the trust list ({', '.join(refused)}); it was not "
            "written by massdyn train-predictor, or has been tampered with: do not load it"
        )
    data = sio.load(path, trusted=untrusted)
    schema = data.get("schema", {})
    expected = _schema()
    for key in ("format", "features", "arch_features", "targets"):
        if schema.get(key) != expected[key]:
            raise PredictorFileError(
                f"{path} was saved with {key} {schema.get(key)!r}; "
                f"this massdyn expects {expected[key]!r}; train it again with "
                "massdyn train-predictor"
            )
    saved, here = str(schema.get("sklearn", "?")).split(".")[:2], sklearn.__version__.split(".")[:2]
    if saved != here:
        raise PredictorFileError(
            f"{path} was saved with scikit-learn {schema.get('sklearn')}, "
            f"this is {sklearn.__version__}; retrain it"
        )
    return data["predictor"], data.get("info", {})
