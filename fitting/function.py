"""The five-parameter emergence function, its Jacobians, reparametrisation and peak.

Original form (arXiv 2508.03616)::

    f(t) = A * exp(-lambda * x) * log(x) + K,    x = gamma * t + t0

Reparametrised form (same family of curves, better conditioned)::

    f(t) = exp(-beta * t) * (A1 * log(t + tau0) + A2) + K

with ``beta = lambda * gamma``, ``tau0 = t0 / gamma``, ``A1 = A * exp(-lambda * t0)`` and
``A2 = A1 * log(gamma)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

ORIGINAL_NAMES = ("A", "lambda", "gamma", "t0", "K")
REPARAM_NAMES = ("A1", "A2", "beta", "tau0", "K")


@dataclass(frozen=True)
class EmergenceParams:
    """Parameters of the original form. ``lam`` is the paper's lambda."""

    A: float
    lam: float
    gamma: float
    t0: float
    K: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """Return ``(A, lambda, gamma, t0, K)``."""
        return (self.A, self.lam, self.gamma, self.t0, self.K)

    def as_dict(self) -> dict[str, float]:
        """Return the parameters keyed by their paper names (``lambda``, not ``lam``)."""
        return dict(zip(ORIGINAL_NAMES, self.as_tuple(), strict=True))

    def to_reparam(self) -> ReparamParams:
        """Convert to the reparametrised form (exact)."""
        A1 = self.A * math.exp(-self.lam * self.t0)
        return ReparamParams(
            A1=A1,
            A2=A1 * math.log(self.gamma),
            beta=self.lam * self.gamma,
            tau0=self.t0 / self.gamma,
            K=self.K,
        )


@dataclass(frozen=True)
class ReparamParams:
    """Parameters of the reparametrised form."""

    A1: float
    A2: float
    beta: float
    tau0: float
    K: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """Return ``(A1, A2, beta, tau0, K)``."""
        return (self.A1, self.A2, self.beta, self.tau0, self.K)

    def as_dict(self) -> dict[str, float]:
        """Return the parameters keyed by name."""
        return asdict(self)

    def to_original(self) -> EmergenceParams:
        """Convert to the original form (exact inverse of ``to_reparam``).

        Raises:
            ValueError: if ``A1`` is zero (the curve is flat and gamma is undefined), or
                gamma or A would overflow a float.
        """
        if self.A1 == 0.0:
            raise ValueError("A1 = 0: the curve is constant, the original form is undefined")
        log_gamma = self.A2 / self.A1
        if not -700.0 < log_gamma < 700.0:
            raise ValueError(f"gamma = exp({log_gamma:.4g}) is outside the float range")
        gamma = math.exp(log_gamma)
        lam = self.beta / gamma
        t0 = self.tau0 * gamma
        if lam * t0 > 700.0:
            raise ValueError(f"A = A1 * exp(lambda * t0) overflows (lambda * t0 = {lam * t0:.4g})")
        return EmergenceParams(
            A=self.A1 * math.exp(lam * t0), lam=lam, gamma=gamma, t0=t0, K=self.K
        )


def emergence(t, A, lam, gamma, t0, K):
    """Evaluate the original form at steps ``t`` (vectorised over ``t``)."""
    x = gamma * np.asarray(t, dtype=float) + t0
    return A * np.exp(-lam * x) * np.log(x) + K


def emergence_jacobian(t, A, lam, gamma, t0, K):
    """Analytic Jacobian of :func:`emergence`, columns ``(A, lambda, gamma, t0, K)``."""
    t = np.asarray(t, dtype=float)
    x = gamma * t + t0
    g = np.exp(-lam * x)
    log_x = np.log(x)
    d_dx = A * g * (1.0 / x - lam * log_x)
    return np.column_stack([g * log_x, -A * x * g * log_x, t * d_dx, d_dx, np.ones_like(t)])


def reparam_curve(t, A1, A2, beta, tau0, K):
    """Evaluate the reparametrised form at steps ``t``."""
    t = np.asarray(t, dtype=float)
    return np.exp(-beta * t) * (A1 * np.log(t + tau0) + A2) + K


def reparam_jacobian(t, A1, A2, beta, tau0, K):
    """Analytic Jacobian of :func:`reparam_curve`, columns ``(A1, A2, beta, tau0, K)``."""
    t = np.asarray(t, dtype=float)
    e = np.exp(-beta * t)
    log_s = np.log(t + tau0)
    return np.column_stack(
        [e * log_s, e, -t * e * (A1 * log_s + A2), e * A1 / (t + tau0), np.ones_like(t)]
    )


@dataclass(frozen=True)
class Peak:
    """The stationary point of an emergence curve.

    Attributes:
        exists: True when the curve has a stationary point at some step ``t >= 0``.
        t_peak: Step of the stationary point, or None when ``exists`` is False.
        value: Curve value there, or None.
        kind: ``"max"`` for ``A > 0`` (a peak), ``"min"`` for ``A < 0`` (a trough).
        in_window: True when ``0 <= t_peak <= t_last`` (False when no window was given).
        reason: Human-readable explanation, in particular why there is no peak.
    """

    exists: bool
    t_peak: float | None
    value: float | None
    kind: str
    in_window: bool
    reason: str


def peak(params: EmergenceParams, t_last: float | None = None) -> Peak:
    """Locate the peak of the original form via the Lambert W function.

    ``d/dx [exp(-lambda x) log x] = 0`` gives ``x log x = 1 / lambda``, so
    ``x* = exp(W(1 / lambda))`` (principal branch) and ``t_peak = (x* - t0) / gamma``.

    Args:
        params: Curve parameters.
        t_last: Last observed step; used to decide whether the peak lies in the window.

    Returns:
        The peak; ``exists`` is False with a reason for ``lambda = 0`` (pure logarithmic
        rise) and for ``x* <= t0`` (stationary point before step 0).
    """
    kind = "max" if params.A >= 0 else "min"
    if params.lam <= 0.0:
        return Peak(False, None, None, kind, False, "lambda = 0: monotone logarithmic curve")
    # Imported here: the curve itself needs only numpy, and the CLI's parser imports this.
    from scipy.special import lambertw

    # W(z) ~ log z - log log z for large z; lambertw handles the whole positive range.
    x_star = float(np.exp(lambertw(1.0 / params.lam).real))
    if x_star <= params.t0:
        return Peak(
            False, None, None, kind, False, "x* <= t0: the stationary point is before step 0"
        )
    t_peak = (x_star - params.t0) / params.gamma
    value = float(params.A * math.exp(-params.lam * x_star) * math.log(x_star) + params.K)
    in_window = t_last is not None and t_peak <= t_last
    if t_last is None:
        reason = "stationary point found (no observation window given)"
    else:
        reason = "inside the observed window" if in_window else "after the last observed step"
    return Peak(True, t_peak, value, kind, in_window, reason)


def steady_state(params: EmergenceParams) -> float:
    """Limit of the curve as ``t -> inf``: ``K`` when ``lambda > 0``, else +-inf."""
    if params.lam > 0.0:
        return params.K
    return math.copysign(math.inf, params.A) if params.A != 0.0 else params.K


def step_grid(last: float, n: int = 200) -> np.ndarray:
    """Step 0 and ``n`` log-spaced steps from 1 to ``last``: where to draw a curve."""
    return np.unique(np.concatenate([[0.0], np.geomspace(1, max(float(last), 2.0), n)]))
