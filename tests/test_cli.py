import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import massdyn
from massdyn.cli import main
from massdyn.testing.synthetic import SAMPLE_TEXT
from tests.fitting.synth import measurements_table


def test_version_and_help_through_the_console_script():
    exe = shutil.which("massdyn") or str(
        __import__("pathlib").Path(sys.executable).with_name("massdyn")
    )
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"massdyn {massdyn.__version__}"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_fit_writes_params_and_compare_tables(tmp_path, capsys):
    src = tmp_path / "m.csv"
    measurements_table(layers=2).to_csv(src, index=False)
    out = tmp_path / "params.csv"
    assert main(["fit", str(src), "--out", str(out), "--compare", "--jobs", "1"]) == 0
    params = pd.read_csv(out)
    assert len(params) == 4 and (params["status"] != "failed").all()
    compare = pd.read_csv(tmp_path / "params_compare.csv")
    assert set(compare["curve_model"]) >= {"emergence", "logistic"}
    text = capsys.readouterr().out
    assert "fitted 4 series" in text and "best model by AICc" in text


def test_fit_parquet_and_metric(tmp_path):
    src = tmp_path / "m.parquet"
    measurements_table(models=("m",), layers=1).to_parquet(src)
    out = tmp_path / "p.parquet"
    assert main(["fit", str(src), "--metric", "top1", "--out", str(out), "--jobs", "1"]) == 0
    assert pd.read_parquet(out)["metric"].item() == "top1"


def test_failed_series_gives_exit_1_but_writes_everything(tmp_path, capsys):
    df = measurements_table(models=("m",), layers=2)
    df.loc[df["layer"] == 1, "median"] = float("nan")
    src = tmp_path / "m.csv"
    df.to_csv(src, index=False)
    assert main(["fit", str(src), "--out", str(tmp_path / "p.csv"), "--jobs", "1"]) == 1
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2
    assert "failed: model=m layer=1" in capsys.readouterr().out


def test_fit_leaves_out_rows_flagged_as_duplicates(tmp_path, capsys):
    clean = measurements_table(models=("m",), layers=1)
    last = clean["step"].max()
    # A branch named like a mid-training step that serves the final weights (pythia-2.8b).
    copy = clean[clean["step"] == last].assign(step=last // 2 + 1, duplicate_of=last)
    flagged = pd.concat([clean, copy], ignore_index=True)
    flagged.to_csv(tmp_path / "flagged.csv", index=False)
    clean.to_csv(tmp_path / "clean.csv", index=False)
    said = {}
    for name in ("clean", "flagged"):
        args = ["fit", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / f"p_{name}.csv")]
        assert main([*args, "--jobs", "1"]) == 0
        said[name] = capsys.readouterr().out
    assert "left out" not in said["clean"]
    assert f"left out {len(copy)} rows of 1 checkpoint(s)" in said["flagged"]
    a, b = (pd.read_csv(tmp_path / f"p_{n}.csv") for n in ("clean", "flagged"))
    pd.testing.assert_frame_equal(a, b)
    out = tmp_path / "p_kept.csv"
    args = ["fit", str(tmp_path / "flagged.csv"), "--out", str(out), "--keep-duplicates"]
    assert main([*args, "--jobs", "1"]) == 0
    assert pd.read_csv(out)["n"].item() == a["n"].item() + 1


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.csv", "no such table"),
        ("a,b\n1,2\n", "bad.csv", "lacks column"),
        ("x", "m.txt", "expected a .csv or .parquet"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert main(["fit", str(path), "--out", str(tmp_path / "p.csv")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["merge", "status"])
@pytest.mark.parametrize("exists", [False, True])
def test_suite_commands_name_a_folder_that_is_no_suite_walk(tmp_path, capsys, command, exists):
    folder = tmp_path / "results"
    if exists:
        (folder / "shards").mkdir(parents=True)
    assert main([command, str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{folder} is not the folder of a suite walk" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = tmp_path / "corpus.txt"
    words = np.random.default_rng(0).choice(SAMPLE_TEXT.split(), 80_000)
    text.write_text(" ".join(words))  # varied enough that BPE does not swallow it whole
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--steps", "20", "--text", str(text)]
    assert main(args) == 0
    said = capsys.readouterr().out
    walked = pd.read_csv(out / "walk" / "measurements.csv")
    live = pd.read_csv(out / "train" / "live" / "measurements.csv")
    assert sorted(walked["step"].unique()) == [0, 1, 2, 4, 8, 16, 20]
    assert len(walked) == len(live)
    assert "largest relative difference 0.0e+00" in said
    assert "fixed_share  token_share" in said  # the signature report, both shares
    params = pd.read_csv(out / "walk_params.csv")
    assert sorted(params["layer"]) == list(range(4))  # every layer of mini-d128-l4-h4
    scores = pd.read_csv(out / "heldout_scores.csv")
    held_out = pd.read_csv(out / "heldout_curves.csv")
    assert set(held_out["model"]) == {"mini-d128-l4-h8"} and len(scores) == 4
    assert (held_out["ratio"] > 1).all()  # a top-1/median ratio, predicted in log space
    assert {"curve_r2", "base_curve_r2"} <= set(scores.columns)
    assert (out / "figures" / "fig6_fits.pdf").exists()
    assert (out / "figures" / "walk_fits.png").exists()
    # the walk recorded the mechanisms at every checkpoint, and the demo drew them
    attention = pd.read_csv(out / "walk" / "attention.csv")
    assert sorted(attention["step"].unique()) == sorted(walked["step"].unique())
    interventions = pd.read_csv(out / "walk" / "interventions.csv")
    assert set(interventions["layer"]) == set(range(4)) and set(interventions["mode"]) == {
        "zero",
        "mean",
    }
    assert len(pd.read_csv(out / "walk" / "superweights.csv")) == 4 * walked["step"].nunique()
    for name in ("walk_sinks", "walk_outlier_overlap", "walk_interventions", "walk_super_weights"):
        assert (out / "figures" / f"{name}.png").exists(), name
