"""How hard the fitter tries, and what it reports: a dataclass with no heavy imports.

The command line reads its options (and their help) from these fields, so this module
imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The series a measurements table yields per (model, layer): see fitting.batch.aggregate.
METRICS = ("ratio", "top1", "median")


@dataclass(frozen=True)
class FitConfig:
    """How hard the fitter tries.

    Attributes:
        n_starts: Space-filling (scrambled Sobol) starts screened by variable projection.
        n_polish: Best distinct starts polished with TRF on all parameters.
        seed: Seed of the starts; equal seeds give identical fits.
        max_nfev: Function evaluations allowed per polish.
        cond_threshold: Condition number of the column-scaled ``J^T J`` above which a fit is
            flagged ill-conditioned and its standard errors are withheld (NaN).
        bound_rtol: Distance to a bound, as a share of the parameter's range (in log space
            for positive scale parameters), below which a parameter counts as at the bound.
        identifiable_cond: Condition number of the column-scaled ``J^T J`` above which the
            data do not pin the parameters down: the fit is flagged "not identifiable"
            (its standard errors are still reported up to ``cond_threshold``).
        max_rel_se: Relative standard error (``se / |value|``) above which a parameter
            counts as not identified, and the fit is flagged.
        peak_range: Compute the profile-likelihood range of the peak step of emergence fits
            (``t_peak_lo``, ``t_peak_hi``; see :mod:`massdyn.fitting.profile`), about a
            second per series.
        peak_level: Its confidence level.
    """

    n_starts: int = field(
        default=32, metadata={"help": "space-filling starts per fit", "flag": "--starts"}
    )
    n_polish: int = field(default=4, metadata={"help": "best starts polished on all parameters"})
    seed: int = field(default=0, metadata={"help": "seed of the starts"})
    max_nfev: int = field(default=200, metadata={"help": "function evaluations per polish"})
    cond_threshold: float = field(
        default=1e12, metadata={"help": "condition number above which SEs are withheld"}
    )
    bound_rtol: float = field(
        default=1e-6, metadata={"help": "distance to a bound (share of range) that counts as at it"}
    )
    identifiable_cond: float = field(
        default=1e8, metadata={"help": "condition number above which a fit is not identifiable"}
    )
    max_rel_se: float = field(
        default=1.0, metadata={"help": "relative SE above which a parameter is not identified"}
    )
    peak_range: bool = field(
        default=True,
        metadata={
            "help": "profile-likelihood range of the peak step (emergence fits)",
            "flag": "--no-peak-range",
        },
    )
    peak_level: float = field(
        default=0.95, metadata={"help": "confidence level of the peak-step range"}
    )

    def __post_init__(self):
        if not 0.0 < self.peak_level < 1.0:
            raise ValueError(f"peak_level must be between 0 and 1, got {self.peak_level}")
        for name in ("n_starts", "n_polish", "max_nfev"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
