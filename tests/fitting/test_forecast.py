"""The forecaster, judged on synthetic series whose truth is known."""

import math

import numpy as np
import pandas as pd
import pytest

from massdyn.fitting import ForecastConfig, aggregate, forecast_measurements, forecast_series
from massdyn.fitting.forecast import last_value_baseline, log_line_baseline, power_law_baseline
from massdyn.fitting.function import emergence
from massdyn.fitting.validate import SeriesError
from massdyn.testing.curves import PYTHIA_STEPS, as_measurements, emergence_suite

QUICK = ForecastConfig(n_boot=24)


@pytest.fixture(scope="module")
def suite():
    return emergence_suite(3, seed=11)


@pytest.fixture(scope="module")
def half(suite):
    """Each series forecast to its end from the first half of training."""
    out = []
    for s in suite:
        t, y = s["steps"], s["values"]
        seen = t <= 0.5 * t[-1]
        out.append((s, seen, forecast_series(t[seen], y[seen], t[-1], t[~seen], QUICK)))
    return out


def test_from_half_a_run_the_final_value_lands_near_the_truth(half):
    # The truth is the noise-free curve at the last step; 0.2 in log is about 22%.
    errors = [abs(math.log(f.final / s["clean"][-1])) for s, _, f in half]
    assert np.mean(np.array(errors) < 0.2) >= 0.75, np.round(errors, 3)
    assert np.median(errors) < 0.1


def test_the_band_covers_about_the_stated_share_of_what_followed(half):
    inside = np.concatenate(
        [(s["values"][~seen] >= f.lo) & (s["values"][~seen] <= f.hi) for s, seen, f in half]
    )
    # Stated: 10-90% (80%). Measured on this suite: 0.7-0.8; the bootstrap misses part of
    # the misfit of extrapolation, so the range asked for is wide but not vacuous.
    assert 0.55 <= inside.mean() <= 0.97


def test_it_beats_carrying_the_last_value_forward(suite):
    ours, last = [], []
    for s in suite:
        t, y = s["steps"], s["values"]
        seen = t <= 0.25 * t[-1]
        f = forecast_series(t[seen], y[seen], t[-1], config=QUICK)
        ours.append(abs(math.log(f.final / y[-1])))
        last.append(abs(math.log(last_value_baseline(t[seen], y[seen], [t[-1]])[0] / y[-1])))
    assert np.median(ours) < np.median(last)


def test_a_peak_seen_in_the_data_is_placed_near_the_true_one(suite):
    found = []
    for s in suite:
        if s["shape"] != "early peak":
            continue
        t, y = s["steps"], s["values"]
        seen = t <= 0.5 * t[-1]
        f = forecast_series(t[seen], y[seen], t[-1], config=QUICK)
        if f.peak_step is not None:
            found.append(abs(math.log(f.peak_step / s["t_peak"])))
    assert len(found) >= 2 and np.median(found) < math.log(1.5)


def test_a_pure_log_rise_has_no_peak_and_no_steady_state():
    t = PYTHIA_STEPS[PYTHIA_STEPS <= 70_000]
    y = emergence(t, 10.0, 0.0, 1e-3, 2.0, 3.0)
    f = forecast_series(t, y * (1 + 0.01 * np.sin(t)), 143_000, config=QUICK)
    assert f.peak_step is None and "no peak before step 143000" in f.peak_note
    assert f.steady_state is None and f.steady_state_note
    assert f.final == pytest.approx(emergence(143_000, 10.0, 0.0, 1e-3, 2.0, 3.0), rel=0.05)


def test_a_saturating_series_has_an_identified_steady_state():
    t = np.linspace(0, 20_000, 40)
    y = 5 + 20 * (1 - np.exp(-t / 3000))
    f = forecast_series(t, y * (1 + 0.005 * np.cos(t)), 60_000, config=QUICK)
    assert f.steady_state == pytest.approx(25, rel=0.03)
    assert f.steady_state_note in ("limit of the first_order fit", "limit of the logistic fit")


def test_with_too_few_points_for_emergence_it_says_so_and_uses_the_rivals():
    t = np.array([0.0, 100, 200, 400, 800])
    cfg = ForecastConfig(n_boot=24, method="average")
    f = forecast_series(t, 2 + np.log1p(t / 50), 5000, config=cfg)
    assert "emergence: too few points" in f.note and "emergence" not in f.weights
    assert set(f.weights) <= {"log", "first_order", "logistic", "log_line", "power_law"}
    assert math.isclose(sum(f.weights.values()), 1.0)


def test_the_baselines():
    t = np.arange(1, 10.0)
    y = 3 * np.log1p(t)
    assert (last_value_baseline(t, y, [20, 30]) == y[-1]).all()
    assert log_line_baseline(t, y, [50])[0] == pytest.approx(3 * np.log1p(50))
    # 2 (1 + t)^0.5: a line in log-log, met exactly from its last third.
    y = 2 * (1 + t) ** 0.5
    assert power_law_baseline(t, y, [99])[0] == pytest.approx(2 * 100**0.5)


@pytest.mark.parametrize(
    "method, baseline", [("log_line", log_line_baseline), ("power_law", power_law_baseline)]
)
def test_a_simple_method_is_that_rival_with_a_band(method, baseline):
    t = np.geomspace(10, 2000, 12)
    y = (3 + np.log1p(t)) * (1 + 0.02 * np.cos(t))
    f = forecast_series(t, y, 20_000, config=ForecastConfig(n_boot=24, method=method))
    assert f.weights == {method: 1.0}
    assert f.final == pytest.approx(baseline(t, y, [20_000])[0])
    assert f.final_lo <= f.final <= f.final_hi


def test_auto_falls_back_to_a_simple_rival_when_the_horizon_is_far_and_says_so():
    t = np.geomspace(10, 800, 12)
    y = (3 + np.log1p(t)) * (1 + 0.02 * np.cos(t))
    near = forecast_series(t, y, 1000, config=QUICK)  # log 1001 / log 801 = 1.03
    assert "alone" not in near.note and len(near.weights) > 1
    far = forecast_series(t, y, 8000, config=QUICK)  # 1.34: past the reach
    (only,) = far.weights
    assert (
        only in ("log_line", "power_law") and f"by the {only.replace('_', ' ')} alone" in far.note
    )
    assert "1.34x" in far.note
    kept = forecast_series(t, y, 8000, config=ForecastConfig(n_boot=24, method="average"))
    assert len(kept.weights) > 1 and "alone" not in kept.note


@pytest.mark.parametrize(
    "kwargs, message",
    [({"method": "median"}, "method must be one of"), ({"fallback_reach": 0.5}, "at least 1")],
)
def test_forecast_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ForecastConfig(**kwargs)


@pytest.mark.parametrize(
    "t, y, until, message",
    [
        ([0, 1, 2, 3], [1, 2, 3, 4], 10, "at least 5 observed points"),
        ([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], 4, "horizon 4 is not after the last observed step 4"),
        ([0, 1, 2, 3, 4], [1, 2, np.nan, 4, 5], 9, "NaN or inf"),
        ([0, 1, 3, 2, 4], [1, 2, 3, 4, 5], 9, "steps must increase strictly"),
        ([0, 1, 1, 2, 4], [1, 2, 3, 4, 5], 9, "steps must increase strictly"),
    ],
)
def test_bad_input_is_refused_with_the_problem_named(t, y, until, message):
    with pytest.raises(SeriesError, match=message):
        forecast_series(t, y, until, config=QUICK)


def test_a_table_is_forecast_per_series_and_a_short_one_fails_alone():
    t = PYTHIA_STEPS[PYTHIA_STEPS <= 20_000]
    series = {
        ("a", 0): (t, emergence(t, 10.0, 0.0, 1e-3, 2.0, 3.0)),
        ("a", 1): (t, emergence(t, 6.0, 0.0, 2e-3, 2.0, 2.0)),
        ("b", 0): (t[:4], np.array([1.0, 2, 3, 4])),
    }
    rows, summary = forecast_measurements(
        as_measurements(series, seqs=2),
        until=30_000,
        upto=10_000,
        steps=[25_000],
        config=QUICK,
        n_jobs=1,
    )
    failed = summary.set_index(["model", "layer"])
    assert failed.loc[("b", 0), "status"] == "failed"
    assert "at least 5" in failed.loc[("b", 0), "reason"]
    a0 = rows[(rows["model"] == "a") & (rows["layer"] == 0)]
    measured_later = [s for s in t if 10_000 < s <= 30_000]
    assert sorted(a0["step"]) == sorted({*measured_later, 25_000, 30_000})
    # The measured values after --upto come back beside the forecast, for backtests.
    truth = emergence(a0["step"].to_numpy(float), 10.0, 0.0, 1e-3, 2.0, 3.0)
    have = a0["measured"].notna().to_numpy()
    assert np.allclose(a0["measured"].to_numpy()[have], truth[have])
    # Noise-free series: the band closes on the forecast.
    assert (a0["lo"] <= a0["value"] * 1.001).all() and (a0["value"] <= a0["hi"] * 1.001).all()


def test_the_point_is_inside_its_own_band_and_the_note_says_where_it_was_widened(half):
    """Checked against the arrays themselves, on the synthetic suite and on real data.

    The pilot run's first layer, forecast from its first 8000 steps, is a real case: its
    emergence fit peaks early and the refits rarely do, so the bootstrap band misses the
    average there; the band is widened to it, and the note says at how many steps.
    """
    from massdyn.data import path

    series = aggregate(pd.read_csv(path("minisuite", "pilot", "measurements.csv")), "ratio")
    cases = [f for _, _, f in half]
    for _, g in series.groupby("layer"):
        t, y = g["step"].to_numpy(float), g["value"].to_numpy()
        seen = t <= 8000
        cases.append(forecast_series(t[seen], y[seen], 32000, t[~seen], QUICK))
    flagged = 0
    for f in cases:
        assert ((f.lo <= f.value) & (f.value <= f.hi)).all()
        on_edge = int(((f.value == f.lo) | (f.value == f.hi)).sum())
        said = "the band was widened to the model average" in f.note
        assert not said or f"at {on_edge} of {f.value.size} steps" in f.note, f.note
        flagged += said
    assert flagged >= 1  # otherwise this test checks nothing


def test_the_point_forecast_depends_neither_on_the_seed_nor_on_the_grid():
    """Which models make the average was decided by a bootstrap drawn with --seed."""
    from dataclasses import replace

    from massdyn.data import path

    series = aggregate(pd.read_csv(path("minisuite", "pilot", "measurements.csv")), "ratio")
    for _, g in series.groupby("layer"):
        t, y = g["step"].to_numpy(float), g["value"].to_numpy()
        seen = t <= 8000
        grid = np.array([9000.0, 16000.0, 32000.0])
        a = forecast_series(t[seen], y[seen], 32000, grid, QUICK)
        b = forecast_series(t[seen], y[seen], 32000, grid, replace(QUICK, seed=QUICK.seed + 1))
        c = forecast_series(t[seen], y[seen], 32000, t[~seen], QUICK)
        np.testing.assert_array_equal(a.value, b.value)
        assert a.weights == b.weights and a.steady_state == b.steady_state
        common = np.isin(c.steps, a.steps)
        np.testing.assert_allclose(c.value[common], a.value[np.isin(a.steps, c.steps)], rtol=1e-12)
