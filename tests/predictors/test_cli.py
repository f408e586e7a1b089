import json

import numpy as np
import pandas as pd
import pytest

from massdyn.cli import main

from .synth import synthetic_archs, synthetic_table


def write_configs(folder, archs) -> dict:
    """One GPT-NeoX config.json per architecture; returns the last one written."""
    for name, a in archs.items():
        cfg = {
            "model_type": "gpt_neox",
            "hidden_size": a.d_model,
            "num_hidden_layers": a.n_layers,
            "num_attention_heads": a.n_heads,
            "intermediate_size": a.d_ff,
            "rotary_pct": 0.25,
            "rotary_emb_base": 10000,
        }
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    return cfg


def test_train_predictor_then_predict_a_new_config(tmp_path, capsys):
    archs = synthetic_archs()
    held = "s-d128-l4-h2"
    params = synthetic_table()
    params[params["model"] != held].to_csv(tmp_path / "params.csv", index=False)
    (tmp_path / "configs").mkdir()
    write_configs(tmp_path / "configs", archs)
    rc = main(
        [
            "train-predictor",
            str(tmp_path / "params.csv"),
            "--configs",
            str(tmp_path / "configs"),
            "--out",
            str(tmp_path / "p.skops"),
            "--regressor",
            "ridge",
            "--protocol",
            "paper",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "lomo" in text and "paper-split" in text and "MAE per target" in text
    rc = main(
        [
            "predict",
            str(tmp_path / "configs" / f"{held}.json"),
            "--predictor",
            str(tmp_path / "p.skops"),
            "--out",
            str(tmp_path / "pred.csv"),
            "--plot",
            str(tmp_path / "pred.png"),
        ]
    )
    assert rc == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == archs[held].n_layers and {"K", "K_lo", "K_hi", "t_peak"} <= set(
        pred.columns
    )
    curves = pd.read_csv(tmp_path / "pred_curves.csv")
    assert {"step", "predicted", "lower", "upper"} <= set(curves.columns)
    assert (tmp_path / "pred.png").stat().st_size > 10_000


def test_missing_config_is_a_clear_error(tmp_path, capsys):
    synthetic_table().to_csv(tmp_path / "params.csv", index=False)
    (tmp_path / "configs").mkdir()
    rc = main(
        [
            "train-predictor",
            str(tmp_path / "params.csv"),
            "--configs",
            str(tmp_path / "configs"),
            "--protocol",
            "paper",
        ]
    )
    assert rc == 2 and "no config for model" in capsys.readouterr().err


def test_curve_protocol_through_the_cli(tmp_path, capsys):
    from tests.predictors.test_curve import suite

    m, archs = suite(law=0.4)
    held = "d128-l4-h4-s1"
    m[m["model"] != held].to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "configs").mkdir()
    cfg = write_configs(tmp_path / "configs", archs)
    out = ["--out", str(tmp_path / "p.skops")]
    assert (
        main(
            [
                "train-predictor",
                str(tmp_path / "m.csv"),
                "--configs",
                str(tmp_path / "configs"),
                *out,
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "15 models, 15 architectures" in text and "base_log_err" in text
    assert "architecture offsets stacked by grouped CV (Breiman 1996), weights: ridge" in text
    assert "per ridge strength: 0.1 " in text and ", stacked " in text
    assert "gain over the base in mean squared log error (mean over architectures)" in text
    assert "of the held-out points (nominally 80%; " in text and "% by architecture)" in text
    (tmp_path / "wide.json").write_text(json.dumps({**cfg, "hidden_size": 1024}))
    args = [
        "predict",
        str(tmp_path / "configs" / f"{held}.json"),
        str(tmp_path / "wide.json"),
        "--predictor",
        str(tmp_path / "p.skops"),
        "--steps",
        "0,100,8000,16000",
        "--out",
        str(tmp_path / "pred.csv"),
        "--plot",
        str(tmp_path / "pred.png"),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == ["model", "layer", "step", "ratio", "ratio_lo", "ratio_hi"]
    assert set(pred["model"]) == {held, "wide"} and (pred["ratio"] > 0).all()
    assert "wide: d_model = 1024 is outside" in captured.err
    assert "past the longest training run" in captured.err
    assert "wide: the 10-90% band is likely too narrow outside the suite" in captured.err
    summary = pd.read_csv(tmp_path / "pred_summary.csv")
    assert {"final_ratio", "growth", "t_half"} <= set(summary.columns)
    assert summary["fit_of_predicted_status"].str.startswith("not fitted").all()  # 4 steps
    grid = [
        "predict",
        str(tmp_path / "configs" / f"{held}.json"),
        "--predictor",
        str(tmp_path / "p.skops"),
        "--out",
        str(tmp_path / "grid.csv"),
    ]
    assert main(grid) == 0
    assert "too narrow" not in capsys.readouterr().err  # inside the suite: no caveat
    fitted = pd.read_csv(tmp_path / "grid_summary.csv")
    assert fitted["fit_of_predicted_K"].notna().all()
    # The held-out member's predicted final ratio is close to what it measured.
    measured = m[(m["model"] == held) & (m["step"] == 8000)].groupby("layer")["top1"].mean()
    got = pred[(pred["model"] == held) & (pred["step"] == 8000)].set_index("layer")["ratio"]
    assert np.allclose(got, measured, rtol=0.15)


@pytest.mark.slow  # about 10 s
def test_train_predictor_splits_the_base_miss_into_seed_noise_and_architecture(tmp_path, capsys):
    from massdyn.predictors import load_predictor
    from tests.predictors.test_curve import suite

    m, archs = suite(law=0.4, seeds=(1, 2), noise=0.0, shift=0.05)
    m.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "configs").mkdir()
    write_configs(tmp_path / "configs", archs)
    out = tmp_path / "p.skops"
    args = ["train-predictor", str(tmp_path / "m.csv"), "--configs", str(tmp_path / "configs")]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(t for t in text.splitlines() if t.startswith("what the base misses"))
    share = int(line.split("% of it is systematic")[0].rsplit(" ", 1)[-1])
    assert share > 80, line  # the law dwarfs the 0.05 seed noise
    _, info = load_predictor(out)
    assert info["variance_budget"]["sigma"] == pytest.approx(0.05, rel=0.25)


def test_predict_without_a_predictor_learns_from_the_shipped_grown_suite(tmp_path, capsys):
    """No --predictor: a predictor fitted now to every shipped data set of the grown suite.

    The oracle is the shipped data read directly: the models it names, and for an
    architecture the suite has three seeds of, their mean measured last-step ratio, which an
    in-sample prediction must land near (seed noise is about 10% in a final ratio).
    """
    from massdyn.data import path, read_json

    folders = [path(d) for d in read_json("minisuite-design.json")["data_sets"]]
    tables = [pd.read_csv(f / "measurements.csv") for f in folders]
    models = sorted(set().union(*(t["model"].unique() for t in tables)))
    config = path("minisuite", "configs", "mini-d128-l4-h4.json")
    rc = main(["predict", str(config), "--out", str(tmp_path / "p.csv")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "no --predictor" in err and f"{len(models)} models" in err
    trained_on = next(line for line in out.splitlines() if line.startswith("trained on "))
    assert sorted(trained_on.removeprefix("trained on ").split(", ")) == models
    m = pd.concat(tables)
    seeds = m[m["model"].str.fullmatch(r"mini-d128-l4-h4(-s\d)?")]
    last = seeds[seeds["step"] == seeds["step"].max()]
    measured = (last["top1"] / last["median"]).groupby(last["layer"]).mean()
    summary = pd.read_csv(tmp_path / "p_summary.csv").set_index("layer")
    assert seeds["model"].nunique() == 3 and len(summary) == 4
    np.testing.assert_allclose(summary["final_ratio"], measured, rtol=0.2)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--configs", "configs"], "--configs without MEASUREMENTS"),
        (["m.csv"], "--configs is required with MEASUREMENTS"),
    ],
)
def test_train_predictor_wants_tables_and_configs_together(tmp_path, capsys, args, says):
    rc = main(["train-predictor", *args, "--out", str(tmp_path / "p.skops")])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.skops").exists()


@pytest.mark.parametrize(
    "config, steps, says",
    [
        ("missing.json", "grid", "config file not found"),
        ("bad.json", "grid", "is not valid JSON"),
        ("good.json", "10,abc", "--steps must be grid, paper or a comma list"),
        ("good.json", "0,-5", "--steps needs steps >= 0"),
    ],
)
def test_predict_bad_input_is_one_line_before_any_training(tmp_path, capsys, config, steps, says):
    """The error is the only line: no predictor is fitted first, nothing is written."""
    (tmp_path / "bad.json").write_text("{bad")
    write_configs(tmp_path, {"good": synthetic_archs()["s-d128-l4-h2"]})
    out = tmp_path / "p.csv"
    rc = main(["predict", str(tmp_path / config), "--steps", steps, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
