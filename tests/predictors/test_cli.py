import json

import pandas as pd

from massdyn.cli import main

from .synth import synthetic_archs, synthetic_table


def test_train_predictor_then_predict_a_new_config(tmp_path, capsys):
    archs = synthetic_archs()
    held = "s-d128-l4-h2"
    params = synthetic_table()
    params[params["model"] != held].to_csv(tmp_path / "params.csv", index=False)
    (tmp_path / "configs").mkdir()
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
        (tmp_path / "configs" / f"{name}.json").write_text(json.dumps(cfg))
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
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "lomo" in text and "paper-split" in text
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
        ["train-predictor", str(tmp_path / "params.csv"), "--configs", str(tmp_path / "configs")]
    )
    assert rc == 2 and "no config for model" in capsys.readouterr().err
