"""The rivals of the curve predictor, against cases worked by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from massdyn.predictors.curve import ARCH_FEATURES, CurvePredictor
from massdyn.predictors.rivals import (
    gains,
    linear_curves,
    nearest_curves,
    neighbourhood,
    score_rivals,
)

from .test_curve import suite

GRID = np.log1p(np.array([0.0, 10.0, 100.0]))


def values(d, L):
    v = dict.fromkeys(ARCH_FEATURES, 0.0)
    v.update(log_d_model=math.log(d), n_layers=float(L))
    return v


def by_hand(curves: dict[str, tuple[int, int, np.ndarray]]) -> CurvePredictor:
    """A predictor holding given (d, L, (L, G) curve) per model, as fit would leave it."""
    p = CurvePredictor()
    p.grid_ = GRID
    p.logs_ = {m: c for m, (_, _, c) in curves.items()}
    p.archs_ = {m: values(d, L) for m, (d, L, _) in curves.items()}
    p.groups_ = {m: i for i, m in enumerate(curves)}
    return p


def test_linear_recovers_a_law_linear_in_its_four_terms_exactly():
    # log ratio = 1 + 0.5 depth + 0.2 log d + 0.1 L + 0.3 g at grid point g.
    def law(d, L):
        depth = np.arange(L) / (L - 1)
        return np.array(
            [[1 + 0.5 * x + 0.2 * math.log(d) + 0.1 * L + 0.3 * g for g in range(3)] for x in depth]
        )

    shapes = [(64, 2), (96, 3), (128, 4), (256, 4), (512, 6), (100, 8)]
    p = by_hand({f"m{i}": (d, L, law(d, L)) for i, (d, L) in enumerate(shapes)})
    got = linear_curves(p, list(p.logs_), values(192, 5), 5)
    np.testing.assert_allclose(got, law(192, 5), atol=1e-10)


def test_nearest_averages_the_three_nearest_in_standardised_features():
    # Only d_model differs, so the distance is |log d - log 120| over its spread: the
    # nearest are d = 100 (0.18), 150 (0.22) and 64 (0.63), not 400 (1.20) or 1000 (2.12).
    const = {64: 1.0, 100: 2.0, 150: 4.0, 400: 8.0, 1000: 16.0}
    p = by_hand({f"d{d}": (d, 3, np.full((3, 3), c)) for d, c in const.items()})
    got = nearest_curves(p, list(p.logs_), values(120, 3), 3)
    np.testing.assert_allclose(got, np.full((3, 3), (1.0 + 2.0 + 4.0) / 3))
    # At another depth, each neighbour is read at the target's relative depths.
    ramp = {f"d{d}": (d, 2, np.array([[0.0] * 3, [c] * 3])) for d, c in const.items()}
    got = nearest_curves(by_hand(ramp), list(ramp), values(120, 3), 3)
    np.testing.assert_allclose(got[1], np.full(3, 7.0 / 6))  # depth 0.5: half of the mean


def test_scores_cover_every_method_and_the_rival_with_the_law_wins_on_it():
    # log ratio = shape(depth, t) + 0.4 log(H/d) t, with log H = (L/2) log 2 in this design:
    # linear in [1, depth, log d, L] at every grid point, so the linear rival is exact.
    m, archs = suite(law=0.4, noise=0.0)
    p = CurvePredictor(tokens_per_step=2048).fit(m, archs)
    scores = score_rivals(p, m)
    assert set(scores["method"]) == {"predictor", "base", "linear", "nearest"}
    assert scores.groupby("method").size().eq(len(archs)).all()
    linear = scores[scores["method"] == "linear"]
    assert (linear["abs_log_err_measured"] < 1e-9).all()
    assert scores.loc[scores["method"] != "predictor", "coverage"].isna().all()
    g = gains(scores, "abs_log_err_measured").set_index("rival")
    assert g.loc["linear", "gain"] < 0 and g.loc["linear", "architectures"] == len(archs)
    assert g.loc["base", "gain"] > 0  # the base knows no architecture


def test_gains_are_paired_by_architecture_and_signed_so_positive_is_better():
    scores = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b", "c", "c"],
            "method": ["predictor", "linear"] * 3,
            "abs_log_err_late": [0.1, 0.3, 0.2, 0.1, 0.1, 0.4],
            "r2_grid": [0.9, 0.8, 0.5, 0.7, 0.9, 0.6],
        }
    )
    err = gains(scores, "abs_log_err_late").iloc[0]
    assert err["gain"] == pytest.approx(0.2) and err["wins"] == 2
    r2 = gains(scores, "r2_grid").iloc[0]
    assert r2["gain"] == pytest.approx(0.1) and r2["wins"] == 2
    assert err["lo"] <= err["gain"] <= err["hi"]


def test_the_one_run_floor_is_the_seed_noise_it_was_made_with():
    from massdyn.predictors.rivals import one_run_floor

    # Per-point noise 0.1 in log ratio around each architecture's law: a run's median
    # |log error| against the true mean is 0.1 x 0.6745 (the median of |N(0, 1)|).
    m, archs = suite(law=0.4, seeds=(1, 2, 3), noise=0.1)
    p = CurvePredictor().fit(m, archs)
    floor = one_run_floor(p, m)
    assert floor["measured"] == pytest.approx(0.1 * 0.6745, rel=0.08)
    # On the grid, points between two measured steps are interpolated: less noise.
    assert 0.5 * floor["measured"] < floor["grid"] <= floor["measured"]


def test_the_neighbourhood_is_every_architecture_one_field_away():
    # d, L: (64, 2) and (64, 3) differ in n_layers, (96, 2) in d_model, (96, 3) in both.
    p = by_hand({f"d{d}-l{L}": (d, L, np.zeros((L, 3))) for d in (64, 96) for L in (2, 3)})
    for m in p.archs_.values():
        m.update(d_model=math.exp(m["log_d_model"]))
        m.update({f: 0.0 for f in ("n_heads", "ff_ratio", "rotary_fraction", "parallel_residual")})
    assert neighbourhood(p, "d64-l2") == {"d64-l3", "d96-l2"}
    assert neighbourhood(p, "d96-l3") == {"d64-l3", "d96-l2"}


def test_leaving_the_neighbourhood_out_removes_it_from_every_method():
    # A law the linear rival fits exactly stays exact without the neighbours; the
    # nearest-neighbour rival, which leaned on them, gets worse on average.
    m, archs = suite(law=0.4, noise=0.0)
    p = CurvePredictor(tokens_per_step=2048).fit(m, archs)
    own = score_rivals(p, m)
    near = score_rivals(p, m, by_neighbourhood=True)
    assert (own["held_out"] == 1).all() and (near["held_out"] > 1).all()
    linear = near[near["method"] == "linear"]
    assert (linear["abs_log_err_measured"] < 1e-9).all()
    err = {
        name: s[s["method"] == "nearest"].set_index("model")["abs_log_err_measured"]
        for name, s in (("own", own), ("near", near))
    }
    assert err["near"].mean() > err["own"].loc[err["near"].index].mean()


def test_the_rivals_are_candidates_of_the_stack_and_win_where_they_are_right():
    # A law linear in the linear rival's four terms at every step but cubic in log-step,
    # which the ridge offsets (linear in log-step) cannot follow: the rival's CV error is
    # zero, the ridge path's is not, and the stack with the rival is as good as the rival.
    m, archs = suite(law=0.4, noise=0.0)
    u = np.log1p(m["step"]) / np.log1p(m["step"].max())
    width = m["model"].map({n: a.d_model for n, a in archs.items()})
    m["top1"] = m["top1"] * np.exp(0.5 * np.log(width / 128) * u**3)
    p = CurvePredictor(tokens_per_step=2048).fit(m, archs)
    ridge = CurvePredictor(tokens_per_step=2048, rivals=()).fit(m, archs)
    assert p.weights_["linear"] > 0.3
    assert p.cv_["stacked"] < 0.01 * ridge.cv_["stacked"]
    arch = next(iter(archs.values()))
    p.weights_ = {"linear": 1.0}
    got = p.predict_log(arch)
    want = linear_curves(p, list(p.logs_), p.archs_[arch.name], arch.n_layers)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # Without rivals the stack is the ridge path and the base alone.
    assert set(ridge.weights_) == {str(a) for a in ridge.alphas}
