"""Curve models as separable least-squares problems.

Every model here is linear in all but one or two parameters: for fixed nonlinear
parameters ``theta`` the curve is ``basis(u, theta) @ coef``, whose last column is the
constant baseline ``K``. The fitter exploits this (variable projection) to screen many
starts cheaply, then polishes all parameters jointly with TRF.

Models work in normalised time ``u = t / t_scale`` and map their parameters back to raw
steps in :meth:`CurveModel.to_params`. Coefficients arrive there already in raw ``y`` units.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from massdyn.fitting.function import (
    ORIGINAL_NAMES,
    ReparamParams,
    emergence,
    emergence_jacobian,
)
from massdyn.fitting.projection import project, space_filling


class CurveModel(ABC):
    """A separable curve model.

    Subclasses declare the nonlinear parameters (with bounds in normalised time, and the
    box that space-filling starts are drawn from) and the reported parameter names.
    """

    name: str
    description: str
    param_names: tuple[str, ...]
    theta_names: tuple[str, ...]
    theta_lower: tuple[float, ...]
    theta_upper: tuple[float, ...]
    start_lower: tuple[float, ...]
    start_upper: tuple[float, ...]
    start_log: tuple[bool, ...]

    @property
    def n_params(self) -> int:
        """Number of fitted parameters."""
        return len(self.param_names)

    @abstractmethod
    def basis(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Design matrix ``(n, m)`` at normalised times ``u``; last column all ones."""

    def basis_grad(self, u: np.ndarray, theta: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """``d(basis @ coef) / d theta`` as ``(n, k)``; central differences by default."""
        cols = []
        for k in range(len(theta)):
            h = 1e-6 * max(abs(theta[k]), 1e-6)
            up, down = theta.copy(), theta.copy()
            up[k] += h
            down[k] -= h
            cols.append((self.basis(u, up) - self.basis(u, down)) @ coef / (2 * h))
        return np.column_stack(cols)

    @abstractmethod
    def to_params(self, theta: np.ndarray, coef: np.ndarray, t_scale: float) -> dict[str, float]:
        """Reported raw-unit parameters from normalised ``theta`` and raw-``y`` ``coef``."""

    @abstractmethod
    def curve(self, t, **params: float) -> np.ndarray:
        """Evaluate the model at raw steps ``t`` with reported parameters."""

    def jacobian(self, t: np.ndarray, params: dict[str, float]) -> np.ndarray:
        """Jacobian w.r.t. the reported parameters (central differences by default)."""
        cols = []
        for name in self.param_names:
            h = 1e-6 * max(abs(params[name]), 1e-8)
            up, down = dict(params), dict(params)
            up[name] += h
            down[name] -= h
            cols.append((self.curve(t, **up) - self.curve(t, **down)) / (2 * h))
        return np.column_stack(cols)

    def extra_starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Model-specific starts (normalised ``theta``) tried besides the space-filling ones."""
        return []

    def screen(self, u, yn, w, n: int, seed: int):
        """Candidate starts with their exactly solved linear coefficients and losses.

        Returns:
            ``(thetas, losses, coefs)`` for the extra starts plus ``n`` space-filling ones.
        """
        sobol = space_filling(self.start_lower, self.start_upper, self.start_log, n, seed)
        thetas = np.vstack([*self.extra_starts(u, yn), sobol])
        losses, coefs = project(np.stack([self.basis(u, th) for th in thetas]), yn, w)
        return thetas, losses, coefs

    def bound_labels(self) -> tuple[str, ...]:
        """Reported name to blame when each nonlinear parameter sits at a bound."""
        return self.theta_names


class Emergence(CurveModel):
    """The five-parameter exponentially modulated logarithm of arXiv 2508.03616.

    Fitted as ``exp(-beta u) * A1 * (log(u + tau0) + g) + K``, the reparametrised form with
    ``A2 = A1 * g`` and ``g = log(gamma)`` in normalised time. Its bounds ``beta >= 0`` and
    ``tau0 > 0`` are exactly ``lambda >= 0`` and ``x > 0``; the generous bound on ``g`` only
    stops the fit from sliding along the gamma/t0 trade-off to infinite parameters.
    """

    name = "emergence"
    description = "A exp(-lambda x) log x + K, x = gamma t + t0"
    param_names = ORIGINAL_NAMES
    theta_names = ("beta", "tau0", "log_gamma")
    theta_lower = (0.0, 1e-9, -20.0)
    theta_upper = (1e3, 1e3, 20.0)
    start_lower = (1e-2, 1e-6, -3.0)
    start_upper = (1e3, 1e1, 8.0)
    start_log = (True, True, False)

    def basis(self, u, theta):
        beta, tau0, g = theta
        return np.column_stack([np.exp(-beta * u) * (np.log(u + tau0) + g), np.ones_like(u)])

    def basis_grad(self, u, theta, coef):
        beta, tau0, g = theta
        e = coef[0] * np.exp(-beta * u)
        return np.column_stack([-u * e * (np.log(u + tau0) + g), e / (u + tau0), e])

    def reparam(self, theta, coef, t_scale) -> ReparamParams:
        """Raw-unit reparametrised parameters from a normalised solution."""
        beta, tau0, g = theta
        A1, K = coef
        # log(u + tau0_n) = log(t + tau0) - log(t_scale) moves a constant into A2.
        return ReparamParams(
            A1=float(A1),
            A2=float(A1 * (g - math.log(t_scale))),
            beta=float(beta / t_scale),
            tau0=float(tau0 * t_scale),
            K=float(K),
        )

    def to_params(self, theta, coef, t_scale):
        return self.reparam(theta, coef, t_scale).to_original().as_dict()

    def curve(self, t, **params):
        return emergence(
            t, params["A"], params["lambda"], params["gamma"], params["t0"], params["K"]
        )

    def jacobian(self, t, params):
        return emergence_jacobian(t, *(params[n] for n in ORIGINAL_NAMES))

    def extra_starts(self, u, y):
        # The paper's initial guess on normalised data: lambda = 1/std(u), gamma = 1/range(u),
        # t0 = 1, i.e. beta = lambda * gamma, tau0 = t0 / gamma, g = log(gamma).
        lam = 1.0 / max(float(np.std(u)), 1e-12)
        gamma = 1.0 / max(float(np.ptp(u)), 1e-12)
        lo, hi = np.array(self.theta_lower), np.array(self.theta_upper)
        return [np.clip(np.array([lam * gamma, 1.0 / gamma, math.log(gamma)]), lo, hi)]

    def bound_labels(self):
        return ("lambda", "t0", "gamma")

    def screen(self, u, yn, w, n, seed):
        # For fixed (beta, tau0) the curve is linear in (A1, A2 = A1 g, K): screen that 2-D
        # space densely and read g off the solution, instead of sampling g as well.
        lo, hi = np.array(self.theta_lower), np.array(self.theta_upper)
        bt = np.vstack(
            [
                *(th[:2] for th in self.extra_starts(u, yn)),
                space_filling(
                    self.start_lower[:2], self.start_upper[:2], self.start_log[:2], n, seed
                ),
            ]
        )
        e = np.exp(-bt[:, :1] * u[None, :])
        bases = np.stack([e * np.log(u[None, :] + bt[:, 1:2]), e, np.ones_like(e)], axis=-1)
        losses, c3 = project(bases, yn, w)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.clip(np.nan_to_num(c3[:, 1] / c3[:, 0]), lo[2], hi[2])
        thetas = np.column_stack([bt, g])
        return thetas, losses, np.column_stack([c3[:, 0], c3[:, 2]])


class PureLog(CurveModel):
    """Pure logarithmic rise ``A log(1 + t / tau) + K`` (the emergence model at lambda = 0)."""

    name = "log"
    description = "A log(1 + t / tau) + K"
    param_names = ("A", "tau", "K")
    theta_names = ("tau",)
    theta_lower = (1e-9,)
    theta_upper = (1e3,)
    start_lower = (1e-6,)
    start_upper = (1e1,)
    start_log = (True,)

    def basis(self, u, theta):
        return np.column_stack([np.log1p(u / theta[0]), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        return {"A": float(coef[0]), "tau": float(theta[0] * t_scale), "K": float(coef[1])}

    def curve(self, t, **p):
        return p["A"] * np.log1p(np.asarray(t, dtype=float) / p["tau"]) + p["K"]


class FirstOrder(CurveModel):
    """First-order step response ``K + A (1 - exp(-t / tau))``."""

    name = "first_order"
    description = "K + A (1 - exp(-t / tau))"
    param_names = ("A", "tau", "K")
    theta_names = ("tau",)
    theta_lower = (1e-7,)
    theta_upper = (1e3,)
    start_lower = (1e-5,)
    start_upper = (1e1,)
    start_log = (True,)

    def basis(self, u, theta):
        return np.column_stack([-np.expm1(-u / theta[0]), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        return {"A": float(coef[0]), "tau": float(theta[0] * t_scale), "K": float(coef[1])}

    def curve(self, t, **p):
        return p["K"] - p["A"] * np.expm1(-np.asarray(t, dtype=float) / p["tau"])


def _under_damped(tt, omega, zeta):
    wd = omega * math.sqrt(1.0 - zeta**2)
    return 1.0 - np.exp(-zeta * omega * tt) * (
        np.cos(wd * tt) + zeta / math.sqrt(1.0 - zeta**2) * np.sin(wd * tt)
    )


class SecondOrderUnder(CurveModel):
    """Under-damped second-order step response (overshoot and ringing), ``0 < zeta < 1``."""

    name = "second_order_under"
    description = "K + A s(t), s under-damped with natural frequency omega and damping zeta"
    param_names = ("A", "omega", "zeta", "K")
    theta_names = ("omega", "zeta")
    theta_lower = (1e-3, 1e-3)
    theta_upper = (1e4, 0.999)
    start_lower = (1e-1, 0.05)
    start_upper = (1e3, 0.95)
    start_log = (True, False)

    def basis(self, u, theta):
        return np.column_stack([_under_damped(u, theta[0], theta[1]), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        return {
            "A": float(coef[0]),
            "omega": float(theta[0] / t_scale),
            "zeta": float(theta[1]),
            "K": float(coef[1]),
        }

    def curve(self, t, **p):
        return p["K"] + p["A"] * _under_damped(np.asarray(t, dtype=float), p["omega"], p["zeta"])


class SecondOrderCritical(CurveModel):
    """Critically damped second-order step response ``K + A (1 - exp(-w t)(1 + w t))``."""

    name = "second_order_critical"
    description = "K + A (1 - exp(-omega t) (1 + omega t))"
    param_names = ("A", "omega", "K")
    theta_names = ("omega",)
    theta_lower = (1e-3,)
    theta_upper = (1e6,)
    start_lower = (1e-1,)
    start_upper = (1e4,)
    start_log = (True,)

    @staticmethod
    def _s(tt, omega):
        return 1.0 - np.exp(-omega * tt) * (1.0 + omega * tt)

    def basis(self, u, theta):
        return np.column_stack([self._s(u, theta[0]), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        return {"A": float(coef[0]), "omega": float(theta[0] / t_scale), "K": float(coef[1])}

    def curve(self, t, **p):
        return p["K"] + p["A"] * self._s(np.asarray(t, dtype=float), p["omega"])


class SecondOrderOver(CurveModel):
    """Over-damped second-order step response with time constants ``tau1 > tau2``.

    Fitted with ``tau2 = rho * tau1``, ``rho < 1``, so the two constants never swap or merge.
    """

    name = "second_order_over"
    description = "K + A (1 - (tau1 exp(-t/tau1) - tau2 exp(-t/tau2)) / (tau1 - tau2))"
    param_names = ("A", "tau1", "tau2", "K")
    theta_names = ("tau1", "rho")
    theta_lower = (1e-7, 1e-4)
    theta_upper = (1e3, 0.99)
    start_lower = (1e-5, 1e-3)
    start_upper = (1e1, 0.9)
    start_log = (True, True)

    @staticmethod
    def _s(tt, tau1, tau2):
        return 1.0 - (tau1 * np.exp(-tt / tau1) - tau2 * np.exp(-tt / tau2)) / (tau1 - tau2)

    def basis(self, u, theta):
        tau1, rho = theta
        return np.column_stack([self._s(u, tau1, rho * tau1), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        tau1 = float(theta[0] * t_scale)
        return {
            "A": float(coef[0]),
            "tau1": tau1,
            "tau2": tau1 * float(theta[1]),
            "K": float(coef[1]),
        }

    def curve(self, t, **p):
        return p["K"] + p["A"] * self._s(np.asarray(t, dtype=float), p["tau1"], p["tau2"])

    def bound_labels(self):
        return ("tau1", "tau2")


class Logistic(CurveModel):
    """Logistic rise ``K + A / (1 + exp(-(t - t_mid) / width))``."""

    name = "logistic"
    description = "K + A / (1 + exp(-(t - t_mid) / width))"
    param_names = ("A", "t_mid", "width", "K")
    theta_names = ("t_mid", "width")
    theta_lower = (-1.0, 1e-6)
    theta_upper = (2.0, 1e2)
    start_lower = (-0.1, 1e-4)
    start_upper = (1.0, 1.0)
    start_log = (False, True)

    @staticmethod
    def _s(tt, t_mid, width):
        # Written via tanh, which cannot overflow, instead of 1 / (1 + exp(-z)).
        return 0.5 * (1.0 + np.tanh(0.5 * (tt - t_mid) / width))

    def basis(self, u, theta):
        return np.column_stack([self._s(u, theta[0], theta[1]), np.ones_like(u)])

    def to_params(self, theta, coef, t_scale):
        return {
            "A": float(coef[0]),
            "t_mid": float(theta[0] * t_scale),
            "width": float(theta[1] * t_scale),
            "K": float(coef[1]),
        }

    def curve(self, t, **p):
        return p["K"] + p["A"] * self._s(np.asarray(t, dtype=float), p["t_mid"], p["width"])


MODELS: dict[str, CurveModel] = {
    m.name: m
    for m in (
        Emergence(),
        PureLog(),
        FirstOrder(),
        SecondOrderUnder(),
        SecondOrderCritical(),
        SecondOrderOver(),
        Logistic(),
    )
}


def get_model(name: str | CurveModel) -> CurveModel:
    """Look a model up by name.

    Raises:
        ValueError: naming the unknown model and the known ones.
    """
    if isinstance(name, CurveModel):
        return name
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
