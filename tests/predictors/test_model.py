import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from massdyn.predictors import (
    FEATURES,
    TARGETS,
    EmergencePredictor,
    PredictorFileError,
    TargetTransform,
    evaluate,
    feature_importance,
    load_predictor,
    predict_architecture,
    save_predictor,
    training_table,
)
from massdyn.predictors.persist import FORMAT_VERSION

from .synth import synthetic_archs, synthetic_table


@pytest.fixture(scope="module")
def table():
    return training_table(synthetic_archs(), synthetic_table())


def test_target_transform_round_trip():
    Y = synthetic_table()[list(TARGETS)].to_numpy().copy()
    Y[0, 0] = -3.0  # a negative amplitude keeps its sign
    tt = TargetTransform().fit(Y)
    np.testing.assert_allclose(tt.inverse_transform(tt.transform(Y)), Y, rtol=1e-9, atol=1e-12)


def test_leave_one_model_out_recovers_the_synthetic_ground_truth(table):
    scores = evaluate(table, "ridge").set_index(["protocol", "target"])
    for t in TARGETS:
        assert scores.loc[("lomo", t), "r2"] > 0.9, scores
    assert {"paper-split", "paper-cv5", "lomo"} == set(scores.index.get_level_values(0))


def test_predictor_is_an_estimator_with_bands(table):
    est = EmergencePredictor(regressor="ridge", n_bootstrap=8)
    assert est.fit(table, table) is est
    assert list(est.feature_names_in_) == list(FEATURES)
    pred = est.predict(table)
    assert pred.shape == (len(table), len(TARGETS))
    # The table's other columns (model, layer) are not features.
    np.testing.assert_array_equal(est.predict(table[list(FEATURES)]), pred)
    arch = synthetic_archs()["s-d128-l4-h2"]
    params, curves = predict_architecture(est, arch, np.array([0, 10, 100, 1000, 10000.0]))
    assert len(params) == arch.n_layers and {"t_peak", "steady_state", "A_lo", "K_hi"} <= set(
        params.columns
    )
    assert len(curves) == arch.n_layers * 5
    assert (curves["ratio_lo"] <= curves["ratio_hi"] + 1e-9).all()
    assert clone(est).get_params() == est.get_params()


def test_both_protocols_give_curves_with_one_interface_and_one_vocabulary(table):
    from massdyn.predictors.curve import CurvePredictor
    from tests.predictors.test_curve import suite

    steps = np.array([0, 10, 100, 1000.0])
    arch = synthetic_archs()["s-d128-l4-h2"]
    paper = EmergencePredictor(regressor="ridge", n_bootstrap=4).fit(table, table)
    m, archs = suite(law=0.4)
    curve = CurvePredictor().fit(m, archs)
    columns = ["model", "layer", "step", "ratio", "ratio_lo", "ratio_hi"]
    for est in (paper, curve):
        got = est.predict_table(arch, steps)
        assert list(got.columns) == columns and len(got) == arch.n_layers * steps.size
        assert (got["ratio_lo"] <= got["ratio_hi"] + 1e-9).all()
    # The paper protocol's curves are its parameters' curves, unrenamed.
    _, curves = predict_architecture(paper, arch, steps)
    pd.testing.assert_frame_equal(paper.predict_table(arch, steps), curves)


def test_unseen_arch_predictions_track_the_truth(table):
    from .synth import true_params

    archs = synthetic_archs()
    held = "s-d128-l6-h8"
    est = EmergencePredictor(regressor="ridge", n_bootstrap=0).fit(
        table[table["model"] != held], table[table["model"] != held]
    )
    params, _ = predict_architecture(est, archs[held], np.array([0.0, 1000.0]))
    truth = pd.DataFrame(
        [true_params(archs[held].layer_features(i)) for i in range(archs[held].n_layers)]
    )
    # An architecture at the edge of the training grid (most layers, most heads): the
    # steady state is still predicted within 10% on average over its layers.
    assert np.mean(np.abs(params["K"] / truth["K"] - 1)) < 0.1


def test_feature_importance_finds_heads_per_dim_for_k(table):
    imp = feature_importance(table, "rf", n_repeats=3)
    k = imp[imp["target"] == "K"]
    # K depends on the architecture through H/d alone: that feature, and by a wide margin.
    assert k.iloc[0]["feature"] == "heads_per_dim", k.head()
    assert k.iloc[0]["importance"] > 10 * k.iloc[1]["importance"], k.head()
    # t0 is a function of relative depth alone; the four depth features are one to a tree.
    t0 = imp[imp["target"] == "t0"]
    assert t0.iloc[0]["feature"] in ("l_frac", "sqrt_l_frac", "l_frac2", "l_frac3"), t0.head()


def test_persistence_round_trip_and_refusals(table, tmp_path):
    est = EmergencePredictor(regressor="rf", n_bootstrap=2).fit(table, table)
    path = save_predictor(est, tmp_path / "p.skops", {"trained_on": ["synthetic"]})
    back, info = load_predictor(path)
    np.testing.assert_array_equal(back.predict(table), est.predict(table))
    assert info["trained_on"] == ["synthetic"]

    import skops.io as sio

    data = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    data["schema"]["features"] = data["schema"]["features"][:-1]
    sio.dump(data, tmp_path / "old.skops")
    with pytest.raises(PredictorFileError, match="features"):
        load_predictor(tmp_path / "old.skops")
    data["schema"]["features"] = list(FEATURES)
    # A file from before the residual layout was a feature: format 1, no arch_features.
    data["schema"]["format"] = 1
    arch_features = data["schema"].pop("arch_features")
    assert "parallel_residual" in arch_features
    sio.dump(data, tmp_path / "v1.skops")
    with pytest.raises(PredictorFileError, match="format 1.*massdyn train-predictor"):
        load_predictor(tmp_path / "v1.skops")
    # A file from before the offsets were stacked: format 2, one alpha_.
    data["schema"].update(format=2, arch_features=arch_features)
    sio.dump(data, tmp_path / "v2.skops")
    with pytest.raises(PredictorFileError, match="format 2.*massdyn train-predictor"):
        load_predictor(tmp_path / "v2.skops")
    data["schema"].update(format=3)
    sio.dump(data, tmp_path / "v3.skops")  # before it knew its tokens per step
    with pytest.raises(PredictorFileError, match="format 3.*massdyn train-predictor"):
        load_predictor(tmp_path / "v3.skops")
    data["schema"].update(format=5)
    sio.dump(data, tmp_path / "v5.skops")  # before the rivals joined its stack
    with pytest.raises(PredictorFileError, match="format 5.*massdyn train-predictor"):
        load_predictor(tmp_path / "v5.skops")
    data["schema"].update(format=FORMAT_VERSION)
    data["schema"]["sklearn"] = "0.1.0"
    sio.dump(data, tmp_path / "oldsk.skops")
    with pytest.raises(PredictorFileError, match="scikit-learn 0.1.0"):
        load_predictor(tmp_path / "oldsk.skops")
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(PredictorFileError, match="not a predictor file"):
        load_predictor(tmp_path / "junk.skops")


def test_training_table_errors(table):
    with pytest.raises(ValueError, match="no architecture for model"):
        training_table({}, synthetic_table())


@parametrize_with_checks(
    [
        EmergencePredictor(regressor="ridge", n_bootstrap=2, target_transform="none"),
        EmergencePredictor(regressor="rf", n_bootstrap=1, target_transform="none"),
        EmergencePredictor(regressor="gb", n_bootstrap=0, target_transform="none"),
    ]
)
def test_scikit_learn_conventions(estimator, check):
    check(estimator)


def test_paper_transform_needs_the_five_parameters(table):
    with pytest.raises(ValueError, match="five|5 parameters"):
        EmergencePredictor(regressor="ridge", n_bootstrap=0).fit(table, table["K"])
    with pytest.raises(ValueError, match="target_transform 'log'"):
        EmergencePredictor(target_transform="log").fit(table, table)
