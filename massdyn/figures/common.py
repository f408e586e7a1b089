"""What every figure shares: the data bundle, the step axis, saving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from massdyn.data import read_json  # noqa: E402
from massdyn.fitting.series import aggregate  # noqa: E402
from massdyn.minisuite.spec import Suite  # noqa: E402

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
plt.rcParams.update(
    {
        "font.size": 7,
        "axes.titlesize": 7,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "lines.linewidth": 1.0,
        "figure.dpi": 200,
    }
)


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the set: its file name and how it is drawn.

    Attributes:
        number: The figure's number in the paper (the set is drawn in that order).
        name: File name, ``fig<number>_<what>``.
        draw: Pure function of :class:`FigureData` returning a Figure.
        needs_archs: Drawn only with an architecture per model (from
            :attr:`FigureData.importance`).
        needs_seeds: Drawn only with seeds pooled per architecture
            (:attr:`FigureData.seeds`) and one architecture of two seeds or more.
        needs_tables: The mechanism tables (:attr:`FigureData.tables`) it is drawn from.
    """

    number: int
    name: str
    draw: Callable
    needs_archs: bool = False
    needs_seeds: bool = False
    needs_tables: tuple[str, ...] = ()

    def __call__(self, data: FigureData):
        """Draw the figure."""
        return self.draw(data)


# The one list of figures: each figure function declares itself with @register.
REGISTRY: dict[str, FigureSpec] = {}


def register(
    number: int,
    what: str,
    needs_archs: bool = False,
    needs_seeds: bool = False,
    needs_tables: tuple[str, ...] = (),
):
    """Declare a figure function as figure ``number`` of the set, file ``fig<number>_<what>``."""

    def declare(draw):
        name = f"fig{number}_{what}"
        REGISTRY[name] = FigureSpec(number, name, draw, needs_archs, needs_seeds, needs_tables)
        return draw

    return declare


class MissingFigureDataError(ValueError):
    """The data lack what a figure is drawn from (the message says what, and how to get it)."""


@dataclass
class FigureData:
    """What the figures are drawn from.

    Attributes:
        measurements: Long table of per-(model, step, layer, seq) measurements.
        params: Fitted emergence parameters of the ratio series, one row per (model, layer).
        archs: Architectures by model name (for parameter counts and attributions).
        tokens_per_step: Tokens per optimizer step by model name, where known.
        predicted: Optional predicted curves (``model, layer, step, ratio, ratio_lo,
            ratio_hi``) to draw over the measured ones.
        time: What ``step`` holds: ``step``, or ``tokens`` (cumulative training tokens).
        seeds: With seeds pooled (``--by architecture``): each architecture's name (its
            first member) -> its member models; ``measurements`` then holds the pooled
            series under that name.
        members: With seeds pooled: the measurements of every member, unpooled.
        tables: Mechanism tables by name (``attention``, ``superweights``,
            ``interventions``: what ``massdyn walk --attention ...`` writes), ``step``
            on the same time axis as ``measurements``.
    """

    measurements: pd.DataFrame
    params: pd.DataFrame
    archs: dict = field(default_factory=dict)
    tokens_per_step: dict[str, int] = field(default_factory=dict)
    predicted: pd.DataFrame | None = None
    time: str = "step"
    seeds: dict[str, list[str]] = field(default_factory=dict)
    members: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def importance(self) -> pd.DataFrame:
        """Permutation importance per target and feature, from ``archs`` and the fits.

        Computed once: the attribution figures (9, 10) share it.
        """
        if "_importance" not in self.__dict__:
            from massdyn.predictors.paper.evaluate import feature_importance, training_table

            table = training_table(self.archs, self.params)
            self.__dict__["_importance"] = feature_importance(table, "rf", n_repeats=10)
        return self.__dict__["_importance"]

    @property
    def unit(self) -> str:
        """How a point in time is named in titles and legends: ``step`` or ``tokens``."""
        return "tokens" if self.time == "tokens" else "step"

    def __post_init__(self):
        self.series = {m: aggregate(self.measurements, m) for m in ("ratio", "top1", "median")}
        self.params = self.params[self.params.get("metric", "ratio") == "ratio"]
        # Params of a larger table serve a subset of its models; of another table, none.
        measured = set(self.measurements["model"])
        if len(self.params) and not measured & set(self.params["model"]):
            foreign = sorted(set(self.params["model"]))
            raise ValueError(
                f"the parameters table fits none of the measured models (it has "
                f"{', '.join(map(str, foreign[:3]))}); pass the params fitted to these "
                "measurements (massdyn fit MEASUREMENTS --out PARAMS)"
            )
        self.params = self.params[self.params["model"].isin(measured)]

    @property
    def models(self) -> list[str]:
        """Models ordered by size (non-embedding parameters, else depth x width)."""
        names = sorted(self.measurements["model"].unique())
        return sorted(names, key=lambda m: (self.size(m), m))

    def size(self, model: str) -> float:
        """Non-embedding parameter count (attention 4d^2 + MLP 2 d d_ff per layer)."""
        a = self.archs.get(model)
        if a is None:
            n_layers = self.measurements.loc[self.measurements["model"] == model, "layer"].max()
            return float(n_layers + 1)
        return float(a.n_layers * (4 * a.d_model**2 + 2 * a.d_model * a.d_ff))

    def curve(self, model: str, layer: int, metric: str = "ratio") -> pd.DataFrame:
        """The aggregated series (``step, value, sem``) of one layer."""
        s = self.series[metric]
        return s[(s["model"] == model) & (s["layer"] == layer)]

    def fit(self, model: str, layer: int):
        """The fitted parameter row of one layer, or None."""
        p = self.params[(self.params["model"] == model) & (self.params["layer"] == layer)]
        return None if p.empty else p.iloc[0]

    def n_layers(self, model: str) -> int:
        """Layers measured for ``model``."""
        return int(self.measurements.loc[self.measurements["model"] == model, "layer"].max()) + 1


def known_tokens_per_step() -> dict[str, int]:
    """Tokens per step of the Pythia models and the mini-suite members, from ``data/``."""
    pythia = read_json("pythia.json")
    out = {name: pythia["tokens_per_step"] for name in pythia["models"]}
    suite = Suite.load()
    per_step = suite.recipe.seq_len * suite.recipe.batch_size
    out.update({m.name: per_step for m in [*suite.members, *suite.replicates]})
    return out


def step_axis(ax, data: FigureData, model: str | None, log: bool = True) -> None:
    """Label the x axis in steps (symlog so step 0 shows), with tokens on top where known.

    On the tokens axis (``data.time``), the axis is tokens seen and there is no top axis.
    """
    if log:
        ax.set_xscale("symlog", linthresh=1)
    what = "tokens seen" if data.time == "tokens" else "training step"
    ax.set_xlabel(what + (" (log scale, 0 shown)" if log else ""))
    per = data.tokens_per_step.get(model, data.tokens_per_step.get(str(model).split("/")[-1]))
    if per:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per, lambda t: t / per))
        if log:
            top.set_xscale("symlog", linthresh=per)
        top.set_xlabel("tokens seen", fontsize=6)
        top.tick_params(labelsize=5)


def fitted_curve(row, steps: np.ndarray) -> np.ndarray:
    """The emergence function of a fitted row on ``steps``."""
    from massdyn.fitting.function import emergence

    with np.errstate(all="ignore"):
        return emergence(steps, row["A"], row["lambda"], row["gamma"], row["t0"], row["K"])


def layer_colors(n: int):
    """One colour per layer, shallow to deep."""
    return plt.cm.viridis(np.linspace(0, 0.9, max(n, 1)))


def save(fig, out: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` to ``out`` and close the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths
