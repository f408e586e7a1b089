import numpy as np
import pandas as pd
import pytest

from massdyn.fitting import aggregate, compare_measurements, fit_and_rank, fit_measurements

from .synth import measurements_table

REQUIRED = [
    "model",
    "layer",
    "metric",
    "A",
    "lambda",
    "gamma",
    "t0",
    "K",
    "r2",
    "aic",
    "bic",
    "t_peak",
    "peak_value",
    "status",
]


def test_ratio_is_mean_top1_over_mean_median():
    df = measurements_table(models=("m",), layers=1, seqs=3)
    agg = aggregate(df, "ratio")
    step = int(df["step"].iloc[5])
    sel = df[df["step"] == step]
    expected = sel["top1"].to_numpy().mean() / sel["median"].to_numpy().mean()
    assert agg.loc[agg["step"] == step, "value"].item() == pytest.approx(expected)
    assert agg.loc[agg["step"] == step, "n_seqs"].item() == 3
    top1 = aggregate(df, "top1")
    assert top1.loc[top1["step"] == step, "value"].item() == pytest.approx(sel["top1"].mean())
    assert top1.loc[top1["step"] == step, "sem"].item() == pytest.approx(
        sel["top1"].std() / np.sqrt(3)
    )


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_batch_fits_every_series_in_parallel(n_jobs):
    df = measurements_table()
    out = fit_measurements(df, "ratio", n_jobs=n_jobs)
    assert set(REQUIRED) <= set(out.columns)
    assert len(out) == 2 * 3
    assert sorted(zip(out["model"], out["layer"], strict=True)) == [
        (m, layer) for m in ("tiny-a", "tiny-b") for layer in range(3)
    ]
    assert (out["status"] != "failed").all()
    assert (out["r2"] > 0.98).all()
    assert (out["metric"] == "ratio").all()


def test_parallel_and_serial_agree():
    df = measurements_table(layers=2)
    a = fit_measurements(df, n_jobs=1)
    b = fit_measurements(df, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)


def test_one_bad_series_never_aborts_the_batch():
    df = measurements_table()
    bad = (df["model"] == "tiny-a") & (df["layer"] == 1) & (df["step"] == df["step"].max())
    df.loc[bad, "top1"] = np.nan
    flat = (df["model"] == "tiny-b") & (df["layer"] == 2)
    df.loc[flat, "top1"] = 1.0
    df.loc[flat, "median"] = 1.0
    out = fit_measurements(df, n_jobs=2).set_index(["model", "layer"])
    # One non-finite point no longer fails its series: it is dropped and the fit flagged.
    assert out.loc[("tiny-a", 1), "status"] == "flagged"
    assert "1 non-finite point(s) dropped" in out.loc[("tiny-a", 1), "reason"]
    assert out.loc[("tiny-b", 2), "status"] == "failed"
    assert "constant" in out.loc[("tiny-b", 2), "reason"]
    assert (out.drop([("tiny-a", 1), ("tiny-b", 2)])["status"] != "failed").all()


def test_too_few_steps_is_a_failed_row():
    df = measurements_table(models=("m",), layers=1, steps=np.array([0.0, 10, 100, 1000]))
    out = fit_measurements(df, n_jobs=1)
    assert out["status"].item() == "failed" and "at least 6 points" in out["reason"].item()


def test_weighted_uses_sem():
    df = measurements_table(models=("m",), layers=1)
    a = fit_measurements(df, n_jobs=1)
    b = fit_measurements(df, n_jobs=1, weighted=True)
    assert a["A"].item() != b["A"].item()
    assert b["status"].item() != "failed"


def test_missing_column_and_unknown_metric():
    df = measurements_table(models=("m",), layers=1).drop(columns=["median"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['median'\]"):
        fit_measurements(df)
    with pytest.raises(ValueError, match="unknown metric 'top4'"):
        aggregate(measurements_table(models=("m",), layers=1), "top4")


def test_compare_measurements_ranks_per_series():
    df = measurements_table(models=("m",), layers=2)
    table = compare_measurements(df, n_jobs=1, curve_models=("emergence", "log", "first_order"))
    assert len(table) == 2 * 3
    for _, grp in table.groupby("layer"):
        assert sorted(grp["rank"]) == [1, 2, 3]


def test_one_non_finite_point_is_dropped_counted_and_flagged():
    from tests.fitting.synth import measurements_table

    df = measurements_table(models=("m",), layers=2, seqs=1)
    bad_step = sorted(df["step"].unique())[5]
    df.loc[(df["layer"] == 1) & (df["step"] == bad_step), "median"] = float("nan")
    params = fit_measurements(df, "ratio", n_jobs=1).set_index("layer")
    assert params.loc[0, "n_dropped"] == 0
    assert params.loc[1, "n_dropped"] == 1 and params.loc[1, "status"] == "flagged"
    assert f"1 non-finite point(s) dropped (step(s) {bad_step:g})" in params.loc[1, "reason"]
    assert params.loc[1, "n"] == df["step"].nunique() - 1


def test_fit_and_rank_fits_the_reported_model_once_per_series(monkeypatch):
    import massdyn.fitting.batch as batch
    import massdyn.fitting.ranking as ranking

    calls = []

    def counting(fit):
        def wrapper(*args, **kwargs):
            calls.append(kwargs.get("curve_model"))
            return fit(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(batch, "fit_curve", counting(batch.fit_curve))
    monkeypatch.setattr(ranking, "fit_curve", counting(ranking.fit_curve))
    df = measurements_table(models=("m",), layers=2)
    rivals = ("emergence", "log", "first_order")
    params, table = fit_and_rank(df, n_jobs=1, rivals=rivals)
    assert sorted(calls) == sorted(2 * list(rivals))  # each model once per layer
    # The ranking's emergence rows are the reported fits, and the same as ranking alone.
    emergence = table[table["curve_model"] == "emergence"].set_index("layer")
    np.testing.assert_allclose(emergence["aicc"], params.set_index("layer")["aicc"])
    calls.clear()
    alone = compare_measurements(df, n_jobs=1, curve_models=rivals)
    pd.testing.assert_frame_equal(alone, table)


def test_seeds_pool_into_one_series_at_the_steps_every_seed_measured():
    from massdyn.fitting import pool_seeds

    def run(model, top1, steps):
        return pd.DataFrame(
            [(model, s, 0, q, top1[q], 0.5, 0.4, 1.0 + q) for s in steps for q in range(2)],
            columns=["model", "step", "layer", "seq", "top1", "top2", "top3", "median"],
        )

    table = pd.concat([run("a-s1", [4.0, 6.0], [0, 10, 20]), run("a-s2", [8.0, 2.0], [0, 10])])
    pooled = pool_seeds(table, {"a": ["a-s1", "a-s2"]})
    assert set(pooled["model"]) == {"a"} and sorted(pooled["step"].unique()) == [0, 10]
    assert pooled.attrs["dropped_steps"] == {"a": 1}  # step 20: only a-s1 has it
    assert not pooled.duplicated(["model", "step", "layer", "seq"]).any()
    ratio = aggregate(pooled).set_index("step")["value"]
    # mean top-1 (4, 6, 8, 2) = 5 over mean median (1, 2, 1, 2) = 1.5
    assert ratio.loc[0] == pytest.approx(5 / 1.5)
