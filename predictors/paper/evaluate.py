"""Evaluation of predictors under two protocols, both reported.

The paper's random row split (layers of one model on both sides), and leave one model out
(GroupKFold by model), the honest test for an architecture never seen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import GroupKFold, KFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from massdyn.fitting.function import emergence
from massdyn.fitting.series import aggregate
from massdyn.predictors.features import FEATURES, Architecture
from massdyn.predictors.paper.model import TARGETS, TargetTransform, make_pipeline, make_regressor
from massdyn.predictors.summary import curve_r2


def training_table(archs: dict[str, Architecture], params: pd.DataFrame) -> pd.DataFrame:
    """Join per-layer features with fitted parameters; failed or non-finite fits are dropped.

    Raises:
        ValueError: when a model of ``params`` has no architecture, or nothing is left.
    """
    lacking = [c for c in ("model", "layer", *TARGETS) if c not in params.columns]
    if lacking:
        hint = (
            "; this looks like a measurements table: fit it first (massdyn fit) or use the "
            "default curve protocol"
            if {"top1", "median", "step"} <= set(params.columns)
            else ""
        )
        raise ValueError(f"the parameters table lacks column(s) {', '.join(lacking)}{hint}")
    missing = sorted(set(params["model"]) - set(archs))
    if missing:
        raise ValueError(f"no architecture for model(s) {missing}")
    feats = pd.concat(
        [archs[m].feature_table() for m in sorted(set(params["model"]))], ignore_index=True
    )
    ok = params if "status" not in params else params[params["status"] != "failed"]
    table = feats.merge(ok[["model", "layer", *TARGETS]], on=["model", "layer"], how="inner")
    table = table[np.isfinite(table[list(TARGETS)]).all(axis=1)].reset_index(drop=True)
    if table.empty:
        raise ValueError("no usable (model, layer) rows: every fit failed or is non-finite")
    return table


def _scores(protocol, y_true, y_pred) -> list[dict]:
    """R^2 in the transformed target space (as the paper scores) and MAE in raw units."""
    tt = TargetTransform().fit(y_true)
    zt, zp = tt.transform(y_true), tt.transform(y_pred)
    return [
        {
            "protocol": protocol,
            "target": t,
            "r2": r2_score(zt[:, i], zp[:, i]),
            "mae": mean_absolute_error(y_true[:, i], y_pred[:, i]),
        }
        for i, t in enumerate(TARGETS)
    ]


def evaluate(table: pd.DataFrame, regressor: str = "rf", random_state: int = 0) -> pd.DataFrame:
    """Scores under the paper's protocol (80/20 split and 5-fold CV) and leave-one-model-out.

    Returns:
        Rows ``protocol, target, r2, mae`` for ``paper-split``, ``paper-cv5`` and ``lomo``.
    """
    X = table[list(FEATURES)].to_numpy(float)
    Y = table[list(TARGETS)].to_numpy(float)
    rows = []
    Xtr, Xte, Ytr, Yte = train_test_split(X, Y, test_size=0.2, random_state=random_state)
    rows += _scores(
        "paper-split", Yte, make_pipeline(regressor, random_state).fit(Xtr, Ytr).predict(Xte)
    )
    cv = KFold(5, shuffle=True, random_state=random_state)
    rows += _scores(
        "paper-cv5", Y, cross_val_predict(make_pipeline(regressor, random_state), X, Y, cv=cv)
    )
    groups = table["model"].to_numpy()
    n_models = len(np.unique(groups))
    if n_models >= 2:
        lomo = cross_val_predict(
            make_pipeline(regressor, random_state), X, Y, cv=GroupKFold(n_models), groups=groups
        )
        rows += _scores("lomo", Y, lomo)
    return pd.DataFrame(rows)


def curve_r2_lomo(
    table: pd.DataFrame,
    measurements: pd.DataFrame,
    regressor: str = "rf",
    random_state: int = 0,
    metric: str = "ratio",
) -> pd.DataFrame:
    """For each model held out: R^2 of the predicted curves against its measured series.

    Returns:
        One row per held-out model: ``model, curve_r2`` (mean over its layers) and ``layers``.
    """
    series = aggregate(measurements, metric)
    out = []
    for model in sorted(table["model"].unique()):
        train = table[table["model"] != model]
        test = table[table["model"] == model]
        pipe = make_pipeline(regressor, random_state).fit(
            train[list(FEATURES)].to_numpy(float), train[list(TARGETS)].to_numpy(float)
        )
        pred = pipe.predict(test[list(FEATURES)].to_numpy(float))
        scores = []
        for layer, p in zip(test["layer"], pred, strict=True):
            s = series[(series["model"] == model) & (series["layer"] == layer)]
            if len(s) < 3:
                continue
            y = s["value"].to_numpy()
            with np.errstate(all="ignore"):
                yhat = emergence(s["step"].to_numpy(float), *p)
            scores.append(curve_r2(y, yhat))
        out.append(
            {
                "model": model,
                "curve_r2": float(np.mean(scores)) if scores else np.nan,
                "layers": len(scores),
            }
        )
    return pd.DataFrame(out)


def feature_importance(
    table: pd.DataFrame, regressor: str = "rf", random_state: int = 0, n_repeats: int = 10
) -> pd.DataFrame:
    """Permutation importance of each feature for each target (R^2 drop, transformed space).

    Returns:
        Rows ``target, feature, importance, std``, most important first per target.
    """
    X = table[list(FEATURES)].to_numpy(float)
    Y = table[list(TARGETS)].to_numpy(float)
    tt = TargetTransform().fit(Y)
    Z = tt.transform(Y)
    rows = []
    for i, t in enumerate(TARGETS):
        model = Pipeline(
            [("scale", StandardScaler()), ("model", make_regressor(regressor, random_state, False))]
        )
        model.fit(X, Z[:, i])
        res = permutation_importance(
            model, X, Z[:, i], n_repeats=n_repeats, random_state=random_state
        )
        rows += [
            {"target": t, "feature": f, "importance": m, "std": s}
            for f, m, s in zip(FEATURES, res.importances_mean, res.importances_std, strict=True)
        ]
    df = pd.DataFrame(rows)
    return df.sort_values(["target", "importance"], ascending=[True, False], ignore_index=True)
