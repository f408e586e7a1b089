"""How hard the fitter tries, and what it reports: a dataclass with no heavy imports.

The command line reads its options (and their help) from these fields, so this module
imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The series a measurements table yields per (model, layer): see fitting.series.aggregate
# (``sink``: from an attention table, the mean sink share over heads).
METRICS = ("ratio", "top1", "median", "sink")


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
            "help": "skip the profile-likelihood range of the peak step (faster; t_peak_lo "
            "and t_peak_hi stay empty)",
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


FORECAST_METHODS = ("auto", "average", "log_line", "power_law")
# Set from the forecast backtest (the module docstring of fitting.forecast says how).
FALLBACK_REACH = 1.15


@dataclass(frozen=True)
class ForecastConfig:
    """How a forecast is made.

    Attributes:
        curve_models: Candidate curve families (the log-step line and the power law are
            always two more).
        method: ``auto`` (the model average, or the better of the two simple rivals when
            the horizon lies too far past the observed part, see ``fallback_reach``),
            ``average`` (always the model average), ``log_line`` or ``power_law``.
        fallback_reach: ``auto`` forecasts with a simple rival when
            log(1 + horizon) / log(1 + last observed step) exceeds this.
        n_boot: Bootstrap draws, shared among the models by weight.
        n_probe: Bootstrap draws of every model to judge whether its forecast is pinned down.
        max_spread: A model whose 10-90% range at the horizon spans more than this factor
            (or reaches below zero) is left out of the average.
        level: Central probability of the band (0.8: the 10-90% band).
        seed: Seed of the bootstrap; equal seeds give equal forecasts.
        fit: Fitter settings of the fits to the observed series.
        refit: Fitter settings of the bootstrap refits (lighter: many are made).
    """

    curve_models: tuple[str, ...] = field(
        default=("emergence", "log", "first_order", "logistic"), metadata={"cli": False}
    )
    method: str = field(
        default="auto",
        metadata={
            "help": "auto (the model average, or a simple rival when the horizon is far), "
            "average, log_line or power_law",
            "choices": FORECAST_METHODS,
        },
    )
    fallback_reach: float = field(
        default=FALLBACK_REACH,
        metadata={"help": "auto uses a simple rival past this log(1+horizon)/log(1+observed)"},
    )
    n_boot: int = field(default=40, metadata={"help": "bootstrap draws per series"})
    n_probe: int = field(
        default=8, metadata={"help": "draws per model to judge whether it is pinned down"}
    )
    max_spread: float = field(
        default=10.0,
        metadata={"help": "leave out a model whose 10-90 percent range at the horizon spans more"},
    )
    level: float = field(default=0.8, metadata={"help": "central probability of the band"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap"})
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(n_starts=16, peak_range=False), metadata={"cli": False}
    )
    refit: FitConfig = field(
        default_factory=lambda: FitConfig(n_starts=6, n_polish=1, peak_range=False),
        metadata={"cli": False},
    )

    def __post_init__(self):
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be between 0 and 1, got {self.level}")
        if self.method not in FORECAST_METHODS:
            raise ValueError(
                f"method must be one of {', '.join(FORECAST_METHODS)}, got {self.method!r}"
            )
        if not self.fallback_reach >= 1.0:
            raise ValueError(f"fallback_reach must be at least 1, got {self.fallback_reach}")
        if self.n_boot < 1:
            raise ValueError(f"n_boot must be at least 1, got {self.n_boot}")
        from massdyn.fitting.models import get_model

        for name in self.curve_models:
            get_model(name)  # names the unknown one
