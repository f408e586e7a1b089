"""The band's widening with distance: hand-worked pieces, then a suite with a known law."""

import math

import numpy as np
import pytest

from massdyn.predictors import curve, scores
from massdyn.predictors.band import (
    coverage,
    fit_scale,
    k_for_coverage,
    nearest_distance,
    scale_at,
    widen,
)

from .test_curve import suite


def test_widen_scales_about_the_middle():
    band = np.array([[-0.1, 0.0], [0.3, 0.2]])  # middles 0.1 and 0.1
    np.testing.assert_allclose(widen(band, 2.0), [[-0.3, -0.1], [0.5, 0.3]])


def test_k_for_coverage_is_the_scale_that_puts_80_percent_inside():
    band = np.array([[-1.0], [1.0]])
    errors = np.arange(1, 11, dtype=float)[:, None] / 5  # 0.2, 0.4, ..., 2.0
    k = k_for_coverage(errors, band)
    assert k == pytest.approx(1.6, rel=1e-3)  # 8 of 10 inside once the edge reaches 1.6
    assert coverage(errors, widen(band, k)) >= 0.8 > coverage(errors, widen(band, 0.99 * k))


def test_distance_is_to_the_nearest_in_standardised_features():
    train = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 10.0]])
    # sd: (0.943, 4.714): the point (2, 5) is 5/4.714 from (2, 0) and further from the rest
    assert nearest_distance(train, np.array([2.0, 5.0])) == pytest.approx(5 / np.std([0, 0, 10]))


def test_the_scale_line_and_its_floor():
    d = [0.0, 1.0, 2.0]
    a, b = fit_scale(d, [1.0, math.e, math.e**2])
    assert (a, b) == (pytest.approx(0.0, abs=1e-12), pytest.approx(1.0))
    assert scale_at((a, b), 2.0) == pytest.approx(math.e**2)
    assert scale_at((-1.0, 0.0), 0.0) == 1.0  # never narrower than the plain band
    assert fit_scale([1.0, 1.0, 1.0], [2.0, 3.0, 4.0]) == (0.0, 0.0)


def test_far_architectures_get_wider_bands_that_cover_them_better(monkeypatch):
    """A dense centre, four sparse corners, and a law quadratic in log width there.

    Linear offsets miss the widest and narrowest members most, and those lie furthest from
    the rest: their bands widen and cover them better; nobody's narrows.
    """
    from tests.predictors import test_curve

    centre = [(d, L, H) for d in (128, 144, 160, 176) for L, H in ((4, 4), (5, 4), (6, 8))]
    corners = [(96, 2, 2), (96, 8, 16), (256, 2, 2), (256, 8, 16)]
    monkeypatch.setattr(test_curve, "DESIGN", centre + corners)
    m, archs = suite(law=0.4, noise=0.03)
    d = {n: a.d_model for n, a in archs.items()}
    bend = {n: 1.2 * math.log(v / 128) ** 2 for n, v in d.items()}
    m["top1"] = m["top1"] * np.exp(m["model"].map(bend) * np.log1p(m["step"]) / np.log(8001))
    # The ridge path alone: the law is one its linear offsets must miss at the corners.
    est = curve.CurvePredictor(rivals=()).fit(m, archs)
    far = [n for n in est.architectures().values() if d[n[0]] in (96, 256)]
    widened = scores.score_heldout(est).set_index("model")["coverage"]
    monkeypatch.setattr(curve, "scale_at", lambda ab, dist: 1.0)  # the plain band
    plain = scores.score_heldout(est).set_index("model")["coverage"]
    names = [n[0] for n in far]
    assert widened[names].mean() > plain[names].mean()
    assert (widened >= plain - 1e-12).all()  # never narrower
    assert est.band_scale_[1] > 0  # the fitted scale grows with distance
