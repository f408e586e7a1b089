import math

import numpy as np
import pytest

from massdyn.fitting import (
    EmergenceParams,
    ReparamParams,
    emergence,
    emergence_jacobian,
    peak,
    reparam_curve,
    reparam_jacobian,
    steady_state,
)

from .synth import PYTHIA_STEPS

PUBLISHED_410M_L0_MEDIAN = EmergenceParams(A=0.199, lam=0.125, gamma=1.12e-4, t0=0.621, K=0.122)


def random_params(rng):
    return EmergenceParams(
        A=rng.uniform(-5, 50),
        lam=rng.uniform(0, 1),
        gamma=10 ** rng.uniform(-5, -2),
        t0=10 ** rng.uniform(-2, 1),
        K=rng.uniform(-2, 10),
    )


def central_diff(f, p, h_rel=1e-6):
    p = np.asarray(p, float)
    cols = []
    for k in range(p.size):
        h = h_rel * max(abs(p[k]), 1e-8)
        up, down = p.copy(), p.copy()
        up[k] += h
        down[k] -= h
        cols.append((f(*up) - f(*down)) / (2 * h))
    return np.column_stack(cols)


@pytest.mark.parametrize("seed", range(10))
def test_jacobians_match_finite_differences(seed):
    rng = np.random.default_rng(seed)
    p = random_params(rng)
    t = PYTHIA_STEPS
    J = emergence_jacobian(t, *p.as_tuple())
    J_fd = central_diff(lambda *q: emergence(t, *q), p.as_tuple())
    np.testing.assert_allclose(J, J_fd, rtol=1e-4, atol=1e-7 * np.abs(J_fd).max())
    r = p.to_reparam()
    R = reparam_jacobian(t, *r.as_tuple())
    R_fd = central_diff(lambda *q: reparam_curve(t, *q), r.as_tuple())
    np.testing.assert_allclose(R, R_fd, rtol=1e-4, atol=1e-7 * np.abs(R_fd).max())


@pytest.mark.parametrize("seed", range(20))
def test_reparametrisation_round_trip_and_same_curve(seed):
    p = random_params(np.random.default_rng(seed))
    r = p.to_reparam()
    back = r.to_original()
    np.testing.assert_allclose(back.as_tuple(), p.as_tuple(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        reparam_curve(PYTHIA_STEPS, *r.as_tuple()),
        emergence(PYTHIA_STEPS, *p.as_tuple()),
        rtol=1e-9,
    )


def test_conversion_formulas_are_the_documented_ones():
    p = PUBLISHED_410M_L0_MEDIAN
    r = p.to_reparam()
    assert r.beta == pytest.approx(p.lam * p.gamma)
    assert r.tau0 == pytest.approx(p.t0 / p.gamma)
    assert pytest.approx(p.A * math.exp(-p.lam * p.t0)) == r.A1
    assert pytest.approx(r.A1 * math.log(p.gamma)) == r.A2


def test_flat_reparam_has_no_original_form():
    with pytest.raises(ValueError, match="A1 = 0"):
        ReparamParams(0.0, 1.0, 0.1, 1.0, 2.0).to_original()


@pytest.mark.parametrize("seed", range(10))
def test_peak_is_the_maximum_of_the_curve(seed):
    rng = np.random.default_rng(seed)
    p = EmergenceParams(A=rng.uniform(1, 50), lam=rng.uniform(0.05, 1), gamma=1e-3, t0=0.5, K=1.0)
    pk = peak(p, t_last=143000)
    assert pk.exists and pk.kind == "max"
    grid = np.linspace(0, 5 * pk.t_peak, 200001)
    y = emergence(grid, *p.as_tuple())
    assert grid[np.argmax(y)] == pytest.approx(pk.t_peak, rel=1e-3)
    assert pk.value == pytest.approx(y.max(), rel=1e-9)
    assert pk.in_window == (pk.t_peak <= 143000)


def test_published_410m_fit_peaks_inside_training():
    pk = peak(PUBLISHED_410M_L0_MEDIAN, t_last=143000)
    # x log x = 1/lambda at the peak, independently of Lambert W.
    x = PUBLISHED_410M_L0_MEDIAN.gamma * pk.t_peak + PUBLISHED_410M_L0_MEDIAN.t0
    assert x * math.log(x) == pytest.approx(1 / PUBLISHED_410M_L0_MEDIAN.lam, rel=1e-9)
    assert pk.in_window


def test_no_peak_cases_are_explicit():
    log_rise = peak(EmergenceParams(A=2.0, lam=0.0, gamma=1e-3, t0=1.0, K=0.0))
    assert not log_rise.exists and log_rise.t_peak is None and "lambda = 0" in log_rise.reason
    # x* = exp(W(1/lambda)) is about 1.76 for lambda = 1: a t0 beyond that peaks before step 0.
    early = peak(EmergenceParams(A=2.0, lam=1.0, gamma=1e-3, t0=5.0, K=0.0))
    assert not early.exists and "before step 0" in early.reason
    after = peak(EmergenceParams(A=2.0, lam=0.01, gamma=1e-5, t0=1.0, K=0.0), t_last=1000)
    assert after.exists and not after.in_window and "after" in after.reason
    trough = peak(EmergenceParams(A=-2.0, lam=0.5, gamma=1e-3, t0=1.0, K=0.0))
    assert trough.kind == "min"


def test_steady_state():
    assert steady_state(PUBLISHED_410M_L0_MEDIAN) == 0.122
    assert steady_state(EmergenceParams(2.0, 0.0, 1e-3, 1.0, 0.0)) == math.inf


def test_step_grid_starts_at_zero_and_ends_at_the_last_step():
    from massdyn.fitting.function import step_grid

    grid = step_grid(3000, 50)
    assert grid[0] == 0 and grid[1] == 1 and grid[-1] == 3000 and len(grid) == 51
    assert (np.diff(grid) > 0).all()
    assert step_grid(0)[-1] == 2  # a degenerate window still gives a usable grid
