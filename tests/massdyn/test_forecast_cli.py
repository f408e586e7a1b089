"""``massdyn forecast`` from the command line, as a user runs it."""

import numpy as np
import pandas as pd
import pytest

from massdyn.cli import main
from massdyn.fitting.function import emergence
from massdyn.testing.curves import PYTHIA_STEPS, as_measurements


@pytest.fixture()
def table(tmp_path):
    t = PYTHIA_STEPS[PYTHIA_STEPS <= 40_000]
    series = {
        ("m", layer): (t, emergence(t, A, 0.0, gamma, 2.0, 3.0))
        for layer, (A, gamma) in enumerate([(10.0, 1e-3), (6.0, 3e-3)])
    }
    path = tmp_path / "measurements.csv"
    as_measurements(series).to_csv(path, index=False)
    return path


def test_forecast_writes_rows_summary_and_plot(table, tmp_path, capsys):
    out = tmp_path / "f.csv"
    args = ["forecast", str(table), "--until", "60000", "--upto", "20000", "--out", str(out)]
    rc = main([*args, "--plot", str(tmp_path / "f.png"), "--n-boot", "16", "--jobs", "1"])
    assert rc == 0
    rows = pd.read_csv(out)
    assert list(rows.columns[:7]) == ["model", "layer", "metric", "step", "value", "lo", "hi"]
    steps = set(rows.loc[rows["layer"] == 0, "step"])
    # The measured steps after --upto and Pythia's checkpoint steps up to --until.
    assert steps == {float(s) for s in range(21_000, 60_001, 1000)}
    assert rows["measured"].notna().sum() == 2 * 20  # 21000..40000, both layers
    summary = pd.read_csv(tmp_path / "f_summary.csv")
    assert {
        "final",
        "final_lo",
        "final_hi",
        "peak_note",
        "steady_state_note",
        "models_used",
    } <= set(summary.columns)
    truth = emergence(60_000, 10.0, 0.0, 1e-3, 2.0, 3.0)
    final = summary.loc[summary["layer"] == 0, "final"].item()
    assert final == pytest.approx(truth, rel=0.05)
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--until", "1000", "--upto", "2000"], "--upto 2000 must be before --until 1000"),
        (["--until", "0"], "--until must be a step > 0"),
        (["--until", "9000", "--predictor", "p.skops"], "--predictor and --configs go together"),
        ([], "--until is required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(table, extra, message, capsys):
    assert main(["forecast", str(table), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_series_that_cannot_be_forecast_fails_alone_with_exit_1(table, tmp_path, capsys):
    rc = main(
        [
            "forecast",
            str(table),
            "--until",
            "60000",
            "--upto",
            "4",
            "--out",
            str(tmp_path / "f.csv"),
            "--n-boot",
            "8",
            "--jobs",
            "1",
        ]
    )
    assert rc == 1
    assert "failed: model=m layer=0: need at least 5 observed points" in capsys.readouterr().out


def test_a_predictor_prior_pulls_an_early_forecast_toward_the_architecture(tmp_path, capsys):
    from massdyn.predictors import save_predictor
    from massdyn.predictors.curve import CurvePredictor
    from tests.predictors.test_cli import write_configs
    from tests.predictors.test_curve import suite

    m, archs = suite(law=0.4)
    held = "d192-l6-h8-s1"
    est = CurvePredictor().fit(m[m["model"] != held], {k: a for k, a in archs.items() if k != held})
    save_predictor(est, tmp_path / "p.skops", {"models": sorted(set(archs) - {held})})
    (tmp_path / "configs").mkdir()
    write_configs(tmp_path / "configs", {held: archs[held]})
    m[m["model"] == held].to_csv(tmp_path / "held.csv", index=False)
    finals = {}
    for label, extra in (
        ("alone", []),
        (
            "prior",
            ["--predictor", str(tmp_path / "p.skops"), "--configs", str(tmp_path / "configs")],
        ),
    ):
        out = tmp_path / f"{label}.csv"
        args = ["forecast", str(tmp_path / "held.csv"), "--until", "8000", "--upto", "500"]
        assert main([*args, "--out", str(out), "--n-boot", "16", "--jobs", "1", *extra]) == 0
        summary = pd.read_csv(tmp_path / f"{label}_summary.csv")
        finals[label] = summary
    truth = m[(m["model"] == held) & (m["step"] == 8000)].set_index("layer")["top1"]
    err = {
        k: np.median(np.abs(np.log(s.set_index("layer")["final"] / truth)))
        for k, s in finals.items()
    }
    assert finals["prior"]["models_used"].str.contains("prior").all()
    # The prior cuts the early forecast's miss of the final ratio by at least 40%.
    assert err["prior"] < 0.6 * err["alone"], err
