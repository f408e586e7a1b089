import shutil
import subprocess
import sys

import pandas as pd
import pytest

import massdyn
from massdyn.cli import main
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


def test_demo_walks_and_fits_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    params = pd.read_csv(tmp_path / "params.csv")
    measurements = pd.read_csv(tmp_path / "walk" / "measurements.csv")
    assert measurements["step"].nunique() == 16
    planted = params[params["layer"] == params["layer"].max()]
    assert planted["r2"].item() > 0.99  # the layer with the growing activation
    assert "fitted the top1/median ratio" in capsys.readouterr().out
