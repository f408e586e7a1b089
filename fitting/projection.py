"""Variable projection helpers: seeded space-filling starts and exact linear solves."""

from __future__ import annotations

import math

import numpy as np


def space_filling(lower, upper, log, n: int, seed: int) -> np.ndarray:
    """``n`` scrambled-Sobol points in a box, log-uniform along the ``log`` dimensions."""
    lo, hi, log = np.asarray(lower, float), np.asarray(upper, float), np.asarray(log, bool)
    from scipy.stats import qmc  # here: importing the models must stay light

    unit = qmc.Sobol(d=lo.size, scramble=True, rng=seed).random_base2(
        max(1, math.ceil(math.log2(n)))
    )
    lo_t = np.where(log, np.log(np.where(log, lo, 1.0)), lo)
    hi_t = np.where(log, np.log(np.where(log, hi, 1.0)), hi)
    pts = lo_t + unit[:n] * (hi_t - lo_t)
    return np.where(log, np.exp(pts), pts)


def project(bases: np.ndarray, yn: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and loss for a stack of design matrices.

    Args:
        bases: ``(S, n, m)`` design matrices, one per candidate.
        yn: ``(n,)`` targets.
        w: ``(n,)`` weights (inverse standard deviations).

    Returns:
        ``(losses, coefs)``: ``(S,)`` weighted sums of squares (inf where not finite) and
        ``(S, m)`` minimum-norm coefficients from the SVD.
    """
    B = bases * w[None, :, None]
    U, s, Vt = np.linalg.svd(B, full_matrices=False)
    wy = w * yn
    s_inv = np.where(s > s[:, :1] * 1e-12, 1.0 / np.where(s == 0, 1, s), 0.0)
    coefs = np.einsum("smk,sk,snk,n->sm", Vt.transpose(0, 2, 1), s_inv, U, wy)
    resid = np.einsum("snm,sm->sn", B, coefs) - wy
    loss = np.einsum("sn,sn->s", resid, resid)
    return np.where(np.isfinite(loss), loss, np.inf), coefs
