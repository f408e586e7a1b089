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
    assert {"step", "ratio", "ratio_lo", "ratio_hi"} <= set(curves.columns)
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
    assert "the ridge offsets and the simple rivals stacked by grouped CV" in text
    assert "per candidate: ridge 0.1 " in text and ", linear " in text and ", stacked " in text
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
    assert main(args) == 2  # wide lies outside the suite's widths
    assert "wide: d_model = 1024 is outside" in capsys.readouterr().err
    assert main([*args, "--extrapolate"]) == 0
    captured = capsys.readouterr()
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == [
        "model",
        "layer",
        "step",
        "tokens",
        "ratio",
        "ratio_lo",
        "ratio_hi",
        "note",
    ]
    assert set(pred["model"]) == {held, "wide"} and (pred["ratio"] > 0).all()
    assert pred.loc[pred["step"] > 8000, "note"].str.startswith("extrapolated: 2x").all()
    assert "wide: d_model = 1024 is outside" in captured.err
    assert "1 of 4 steps (from step 16000) lie past the training data's horizon" in captured.err
    assert "extrapolated" in captured.err
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
    assert "no --predictor" in out and f"{len(models)} models" in out
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


def test_predict_for_pythia_stops_at_the_training_data_token_horizon(tmp_path, capsys):
    """The mini-suite's 8,000 steps of 2,048 tokens are 16.4M tokens: Pythia's step 7.8."""
    from massdyn.data import path

    config = path("pythia_configs", "pythia-14m.json")
    out = tmp_path / "p.csv"
    assert main(["predict", str(config), "--steps", "0,1,4,8,1000,143000", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2,097,152 tokens per step (Pythia paper: 1024 sequences x 2048 tokens" in err
    assert "3 of 6 steps (from step 8) lie past the training data's horizon of 16,384,000" in err
    table = pd.read_csv(out)
    assert (table["tokens"] == table["step"] * 2_097_152).all()
    inside = table["step"] <= 4
    assert table.loc[inside, "ratio"].notna().all() and table.loc[~inside, "ratio"].isna().all()
    assert table.loc[~inside, "note"].str.startswith("not predicted: ").all()
    # 143,000 steps x 2,097,152 tokens over 8,000 x 2,048.
    assert table["note"].str.contains(f"{143000 * 2097152 / (8000 * 2048):.3g}x", regex=False).any()
    summary = pd.read_csv(tmp_path / "p_summary.csv")
    assert (summary["final_step"] == 4).all() and summary["final_ratio"].notna().all()
    # The prediction at Pythia's step 4 is the one at the mini-suite's step 4096 (equal tokens).
    same = tmp_path / "same.csv"
    args = ["predict", str(config), "--steps", "4096", "--tokens-per-step", "2048"]
    assert main([*args, "--out", str(same)]) == 0
    at4 = table[table["step"] == 4].set_index("layer")["ratio"]
    np.testing.assert_allclose(pd.read_csv(same).set_index("layer")["ratio"], at4, rtol=1e-12)


def test_predict_extrapolates_only_when_asked_and_says_how_far(tmp_path, capsys):
    from massdyn.data import path

    config = path("pythia_configs", "pythia-14m.json")
    out = tmp_path / "p.csv"
    args = ["predict", str(config), "--steps", "4,143000", "--extrapolate", "--out", str(out)]
    assert main(args) == 0
    assert "extrapolated, the curve held at its last value" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert table["ratio"].notna().all()
    far = table[table["step"] == 143000]
    assert far["note"].str.startswith("extrapolated: 1.83e+04x").all()


def test_a_predictor_without_tokens_per_step_keeps_its_horizon_in_steps(tmp_path, capsys):
    from massdyn.commands.predictor import grown_suite_sources
    from massdyn.data import path

    tables, configs = grown_suite_sources()
    pred = tmp_path / "p.skops"
    assert main(["train-predictor", *tables, "--configs", *configs, "--out", str(pred)]) == 0
    assert "warning: no --tokens-per-step" in capsys.readouterr().out
    config = str(path("pythia_configs", "pythia-14m.json"))
    out = tmp_path / "p.csv"
    args = ["predict", config, "--predictor", str(pred), "--steps", "0,8000,9000"]
    assert main([*args, "--out", str(out)]) == 0
    assert "horizon of 8,000 steps" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert table["tokens"].isna().all()
    assert table.loc[table["step"] <= 8000, "ratio"].notna().all()
    assert table.loc[table["step"] == 9000, "ratio"].isna().all()
    rc = main([*args, "--tokens-per-step", "2048", "--out", str(tmp_path / "q.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not know its training suite's tokens per step" in err
    rc = main([*args, "--time", "tokens", "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "--time tokens: this predictor does not know" in err
    assert not (tmp_path / "r.csv").exists()


def test_predict_on_a_tokens_axis_reads_and_reports_tokens(tmp_path, capsys):
    """--time tokens: the list is tokens, the summary and plot count tokens."""
    from massdyn.data import path

    config = str(path("pythia_configs", "pythia-14m.json"))
    by_step, by_tokens = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["predict", config, "--steps", "1,2,4", "--out", str(by_step)]) == 0
    tokens = ",".join(str(s * 2_097_152) for s in (1, 2, 4))
    args = ["predict", config, "--steps", tokens, "--time", "tokens", "--out", str(by_tokens)]
    assert main([*args, "--plot", str(tmp_path / "t.png")]) == 0
    capsys.readouterr()
    a, b = pd.read_csv(by_step), pd.read_csv(by_tokens)
    assert b["step"].tolist() == a["step"].tolist() and b["tokens"].tolist() == a["tokens"].tolist()
    np.testing.assert_allclose(b["ratio"], a["ratio"], rtol=1e-12)
    s, t = pd.read_csv(tmp_path / "s_summary.csv"), pd.read_csv(tmp_path / "t_summary.csv")
    assert set(s["time"]) == {"step"} and set(t["time"]) == {"tokens"}
    assert (s["final_step"] == 4).all() and (t["final_step"] == 4 * 2_097_152).all()
    np.testing.assert_allclose(t["final_ratio"], s["final_ratio"], rtol=1e-12)
    np.testing.assert_allclose(t["t_half"], s["t_half"] * 2_097_152, rtol=1e-9)
    assert (tmp_path / "t.png").stat().st_size > 0


def test_train_predictor_scores_itself_against_its_rivals(tmp_path, capsys):
    from massdyn.predictors.rivals import METRICS

    scores = tmp_path / "scores.csv"
    rc = main(["train-predictor", "--out", str(tmp_path / "p.skops"), "--scores", str(scores)])
    out = capsys.readouterr().out
    assert rc == 0
    table = pd.read_csv(scores)
    assert set(table["method"]) == {"predictor", "base", "linear", "nearest"}
    assert set(table["holdout"]) == {"architecture", "neighbourhood"}
    # every architecture, every method, both ways of holding out
    assert table.groupby(["holdout", "method"]).size().nunique() == 1
    assert (table.loc[table["holdout"] == "architecture", "held_out"] == 1).all()
    assert table.loc[table["holdout"] == "neighbourhood", "held_out"].max() > 1
    assert set(METRICS) <= set(table.columns)
    for metric in METRICS:
        for rival in ("base", "linear", "nearest"):
            assert f"{metric:<22} vs {rival:<8}" in out
    assert "leave-neighbourhood-out (24 architectures" in out
