"""The curve-space predictor on synthetic suites whose dependence on architecture is known."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from massdyn.predictors.curve import CurvePredictor, stack_weights
from massdyn.predictors.features import Architecture
from massdyn.predictors.scores import bootstrap_gain, score_heldout, seed_noise, variance_budget
from massdyn.predictors.summary import summarize

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000], float)
DESIGN = [(d, L, H) for d in (96, 128, 192, 256) for L, H in ((2, 2), (4, 4), (6, 8), (8, 16))]


def arch(name, d, L, H, parallel=True):
    return Architecture(name, "gpt_neox", d, L, H, 4 * d, 10000.0, 0.25, parallel)


def suite(law: float, seeds=(1,), noise=0.03, rng_seed=0, shift=0.0, sequential=0.0):
    """log ratio = a depth/time shape + law * log(H/d) * time, plus per-run noise.

    ``noise`` is drawn per point, ``shift`` once per (run, layer) curve. With
    ``sequential``, every design point also has a sequential-residual twin whose log ratio
    is ``sequential * time`` higher.
    """
    rng = np.random.default_rng(rng_seed)
    rows, archs = [], {}
    layouts = (True, False) if sequential else (True,)
    for (d, L, H), parallel, seed in itertools.product(DESIGN, layouts, seeds):
        name = f"d{d}-l{L}-h{H}-s{seed}" + ("" if parallel else "-seq")
        archs[name] = arch(name, d, L, H, parallel)
        u = np.log1p(STEPS) / np.log1p(STEPS[-1])
        for layer in range(L):
            depth = layer / (L - 1)
            log_ratio = 1.5 + (1.0 + 1.5 * depth) * u + law * math.log(H / d) * u
            log_ratio = log_ratio + (0.0 if parallel else sequential) * u
            log_ratio = log_ratio + noise * rng.standard_normal(u.size)
            log_ratio = log_ratio + shift * rng.standard_normal()
            for s, v in zip(STEPS, np.exp(log_ratio), strict=True):
                rows.append((name, int(s), layer, 0, v, 0.9 * v, 0.8 * v, 1.0))
    cols = ["model", "step", "layer", "seq", "top1", "top2", "top3", "median"]
    return pd.DataFrame(rows, columns=cols), archs


def test_a_known_architecture_law_is_recovered_far_better_than_the_base():
    m, archs = suite(law=0.4)
    est = CurvePredictor().fit(m, archs)
    assert est.weights_["inf"] < 0.1  # the offsets, not the base, carry the prediction
    scores = score_heldout(est)
    assert scores["log_err"].median() < 0.5 * scores["base_log_err"].median()
    assert scores["curve_r2"].median() > 0.9 > scores["base_curve_r2"].median()


def test_without_an_architecture_signal_it_is_no_worse_than_the_base():
    m, archs = suite(law=0.0, noise=0.08)
    est = CurvePredictor().fit(m, archs)
    scores = score_heldout(est)
    assert scores["log_err"].median() <= 1.02 * scores["base_log_err"].median()


def test_the_residual_layout_is_learned_and_twins_are_not_seed_replicates():
    m, archs = suite(law=0.0, sequential=0.5)
    est = CurvePredictor().fit(m, archs)
    assert len(set(est.groups_.values())) == 2 * len(DESIGN)  # twins are architectures
    scores = score_heldout(est).set_index("model")
    seq = scores[scores.index.str.endswith("-seq")]
    # The base averages both layouts (a 0.25 * time miss); the offset learns the 0.5.
    assert seq["log_err"].median() < 0.5 * seq["base_log_err"].median()
    # Trained on parallel members alone, a sequential config is outside the suite.
    parallel = {k: a for k, a in archs.items() if a.parallel_residual}
    only = CurvePredictor().fit(m[m["model"].isin(parallel)], parallel)
    notes = only.out_of_range(arch("s", 128, 4, 4, parallel=False), 8000)
    assert notes == ["parallel_residual: the training suite has no sequential-residual member"]


def test_predicted_ratios_are_positive_banded_and_out_of_range_fields_named():
    m, archs = suite(law=0.4)
    est = CurvePredictor().fit(m, archs)
    new = arch("wide", 512, 4, 4)
    table = est.predict_table(new, [0, 100, 8000, 20000])
    assert (table["ratio"] > 0).all()
    assert (table["ratio_lo"] <= table["ratio"]).all() and (
        table["ratio"] <= table["ratio_hi"]
    ).all()
    notes = est.out_of_range(new, 20000)
    assert any(n.startswith("d_model = 512 is outside") for n in notes)
    assert any("past the longest training run (8000)" in n for n in notes)
    assert not est.out_of_range(arch("inside", 128, 4, 4), 8000)


def test_the_band_covers_held_out_members_about_as_promised():
    # Each member is checked against the band built without its architecture, as a new
    # config would meet it; a 10-90% band should hold about 80% of the points.
    m, archs = suite(law=0.4, rng_seed=3)
    est = CurvePredictor().fit(m, archs)
    assert 0.65 <= score_heldout(est)["coverage"].mean() <= 0.95


@pytest.mark.slow  # about 5 s
def test_seed_replicates_give_the_noise_floor():
    # One shift per curve survives the interpolation to the grid unchanged.
    m, archs = suite(law=0.4, seeds=(1, 2), noise=0.0, shift=0.05)
    est = CurvePredictor().fit(m, archs)
    assert len(set(est.groups_.values())) == len(DESIGN)  # replicates share a group
    noise = seed_noise(est)
    # |difference of two N(0, 0.05)|: median 0.05 * sqrt(2) * 0.674
    assert noise["floor"] == pytest.approx(0.05 * math.sqrt(2) * 0.674, rel=0.25)
    assert 0.5 < noise["arch_share"] < 1.0
    # Scored once per architecture, against the mean of its seeds: the mean of two runs
    # carries half the variance of one, so the miss falls under the seed-to-seed floor.
    scores = score_heldout(est)
    assert len(scores) == len(DESIGN) and (scores["seeds"] == 2).all()
    assert scores["log_err"].median() < noise["floor"]


@pytest.mark.slow  # about 10 s
@pytest.mark.parametrize("law", [0.4, 0.0])
def test_the_variance_budget_splits_the_base_miss_into_seed_noise_and_architecture(law):
    # Each run's curve is shifted by N(0, 0.05): the replicates must find sigma = 0.05.
    # With a law the base misses far more than that, and the predictor removes most of
    # the excess; without one, seed noise accounts for all the base misses.
    m, archs = suite(law=law, seeds=(1, 2), noise=0.0, shift=0.05, rng_seed=5)
    est = CurvePredictor().fit(m, archs)
    budget = variance_budget(est, score_heldout(est))
    assert budget["sigma"] == pytest.approx(0.05, rel=0.25)
    if law:
        assert budget["systematic_share"] > 0.8
        assert budget["captured"] > 0.7
    else:
        assert abs(budget["systematic_share"]) < 0.35
        assert budget["base_rms"] == pytest.approx(budget["noise_rms"], rel=0.25)


def test_without_replicates_the_budget_says_nan_rather_than_guess():
    m, archs = suite(law=0.4)
    est = CurvePredictor().fit(m, archs)
    budget = variance_budget(est, score_heldout(est))
    assert math.isnan(budget["systematic_share"]) and budget["base_rms"] > 0


def test_a_held_out_architecture_takes_no_part_in_choosing_its_stacking_weights():
    # Nested CV: whatever the held-out member's own curves are, its held-out prediction
    # is the same, because neither the offsets nor their stacking weights have seen it.
    m, archs = suite(law=0.1, noise=0.05, rng_seed=5)
    held = "d96-l8-h16-s1"
    before = CurvePredictor().fit(m, archs).heldout(held)[1]
    wild = m.copy()
    rows = wild["model"] == held
    # Its curves fall with depth and time instead of rising: an outlier for every strength.
    wild.loc[rows, "top1"] = wild.loc[rows, "top1"] ** -1.0 * 50
    est = CurvePredictor().fit(wild, archs)
    assert np.array_equal(est.heldout(held)[1], before)


def test_stacking_weights_match_the_least_squares_combination():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 50))
    groups = [0, 1, 2, 3]

    def errors(*candidates):
        return {k: dict(zip(groups, c, strict=True)) for k, c in enumerate(candidates)}

    # Independent errors of equal size: the average halves the variance.
    assert stack_weights(errors(a, b), groups) == pytest.approx([0.5, 0.5], abs=0.05)
    # Errors of opposite sign cancel in the average.
    assert stack_weights(errors(a, -a), groups) == pytest.approx([0.5, 0.5], abs=1e-3)
    # A candidate that makes the same errors, twice as large, gets no weight.
    assert stack_weights(errors(a, 2 * a), groups) == pytest.approx([1.0, 0.0], abs=1e-3)
    # With variances 1 and 4, independent: weights 4/5 and 1/5 (inverse variance).
    w = stack_weights(errors(a, 2 * b), groups)
    assert w == pytest.approx([0.8, 0.2], abs=0.06)


def test_without_an_architecture_signal_the_weight_goes_to_the_base():
    m, archs = suite(law=0.0, noise=0.08)
    est = CurvePredictor().fit(m, archs)
    assert est.weights_["inf"] > 0.5
    assert est.cv_["stacked"] <= min(v for k, v in est.cv_.items() if k != "stacked") * 1.02


def test_the_gain_is_the_median_or_mean_over_architectures_with_an_interval():
    scores = pd.DataFrame(
        {
            "log_err": [0.10] * 7,
            "base_log_err": [0.11] * 6 + [0.30],  # gains .01 six times, and .2
            "mse": [0.010] * 7,
            "base_mse": [0.010] * 6 + [0.080],  # gains 0 six times, and .07
        }
    )
    mid, lo, hi = bootstrap_gain(scores)
    # The median ignores the .2: a resample holds it four times or more with p < 0.01.
    assert (mid, lo, hi) == pytest.approx((0.01, 0.01, 0.01))
    mid, lo, hi = bootstrap_gain(scores, "mse")
    assert mid == pytest.approx(0.01)  # the mean of six 0 and .07
    # Resamples hold the .07 k ~ Binomial(7, 1/7) times: P(k = 0) = 0.34, P(k <= 2) = 0.94,
    # P(k <= 3) = 0.99, so the interval runs from 0 to 3 * .07 / 7.
    assert lo == pytest.approx(0.0) and hi == pytest.approx(0.03)
    # Gains of either sign, alike in size: the interval straddles zero.
    scores["base_log_err"] = [0.12, 0.08, 0.13, 0.07, 0.10, 0.115, 0.085]
    _, lo, hi = bootstrap_gain(scores)
    assert lo < 0 < hi


def test_summary_finds_the_half_rise_and_flags_ratios_below_1():
    table = pd.DataFrame(
        {
            "model": "x",
            "layer": 0,
            "step": [0.0, 10, 100, 1000],
            "ratio": [2.0, 3.0, 7.0, 10.0],
            "ratio_lo": 1.0,
            "ratio_hi": 11.0,
        }
    )
    row = summarize(table).iloc[0]
    # Half the rise is 6, three quarters of the way from 3 (step 10) to 7 (step 100): in
    # log step that is 10 ** 1.75.
    assert row["t_half"] == pytest.approx(10**1.75) and row["growth"] == 5
    assert not row["below_1"]
    # Crossed between step 0 and the first positive step: linear there.
    table["ratio"] = [2.0, 8.0, 9.0, 10.0]
    assert summarize(table).iloc[0]["t_half"] == pytest.approx(10 * 4 / 6)
    table["ratio"] = [0.5, 0.7, 0.8, 0.9]
    assert summarize(table).iloc[0]["below_1"]


def test_learned_attributes_exist_only_after_fit():
    # scikit-learn's convention: what fit learns (trailing underscore) is not a parameter.
    est = CurvePredictor(tokens_per_step=2048)
    assert not any(k.endswith("_") for k in vars(est))
    m, archs = suite(law=0.4)
    est.fit(m, archs)
    assert {"weights_", "grid_", "band_", "cv_", "max_step_"} <= set(vars(est))
    assert "weights_" not in repr(est)
