"""Figures of measured trajectories and their fits (paper figures 1, 3, 4 and 6)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from massdyn.figures.common import (
    COLUMN_WIDTH,
    FigureData,
    fitted_curve,
    layer_colors,
    register,
    step_axis,
)
from massdyn.fitting.function import step_grid


def _first_last(data: FigureData, model: str):
    m = data.measurements[data.measurements["model"] == model]
    first, last = m["step"].min(), m["step"].max()
    cols = ["top1", "top2", "top3", "median"]
    at = {s: m[m["step"] == s].groupby("layer")[cols].mean() for s in (first, last)}
    return first, last, at


def growth_layers(data: FigureData, model: str, n: int = 2) -> list[int]:
    """The ``n`` layers whose ratio grew most from the first to the last step."""
    s = data.series["ratio"]
    s = s[s["model"] == model]
    first = s[s["step"] == s["step"].min()].set_index("layer")["value"]
    last = s[s["step"] == s["step"].max()].set_index("layer")["value"]
    return list((last / first).sort_values(ascending=False).index[:n])


def spread_layers(data: FigureData, model: str) -> list[int]:
    """A shallow, a middle and a deep layer."""
    n = data.n_layers(model)
    return sorted({0, n // 2, n - 1})


def _draw_fit(ax, data: FigureData, model: str, layer: int, label_fit: bool = True) -> None:
    c = data.curve(model, layer)
    ax.errorbar(c["step"], c["value"], yerr=c["sem"], fmt="o", ms=2, lw=0.6, label="measured")
    row = data.fit(model, layer)
    if row is not None and row.get("status") != "failed":
        grid = step_grid(c["step"].max())
        ax.plot(grid, fitted_curve(row, grid), "C3", label=f"fit, R$^2$ {row['r2']:.3f}")
    p = None
    if data.predicted is not None:
        p = data.predicted[(data.predicted["model"] == model) & (data.predicted["layer"] == layer)]
        if len(p):
            ax.plot(p["step"], p["ratio"], "C2--", label="predicted")
            ax.fill_between(p["step"], p["ratio_lo"], p["ratio_hi"], color="C2", alpha=0.2, lw=0)
    ax.set_title(f"{model}, layer {layer}")
    ax.set_ylabel("top-1 / median")
    step_axis(ax, data, model)
    if p is not None and len(p):
        # The ratio is at least 1, and a wild prediction must not flatten the data: show
        # from 0 to the prediction, but at most 3x the largest measured value. (Set after
        # the step axis, whose symlog scale must see the x data first.)
        measured = float(np.nanmax(c["value"]))
        high = min(max(measured, float(np.nanmax(p["ratio"]))), 3 * measured)
        ax.set_ylim(0, 1.05 * high)
    ax.legend(loc="best")


@register(1, "overview")
def figure1(data: FigureData, model: str | None = None):
    """Overview of one model (largest by default).

    (a) top-3 and median per layer at the first and last step, (b) the ratio over training
    of the two layers that grew most, (c) their fits.
    """
    model = model or data.models[-1]
    first, last, at = _first_last(data, model)
    layers = growth_layers(data, model)
    fig, axes = plt.subplots(2, 2, figsize=(2 * COLUMN_WIDTH, 4.2))
    ax = axes[0, 0]
    for step, style in ((first, "--"), (last, "-")):
        for i, col in enumerate(["top1", "top2", "top3", "median"]):
            ax.plot(
                at[step].index,
                at[step][col],
                style,
                color=f"C{i}",
                marker=".",
                ms=3,
                label=f"{col}, {data.unit} {step}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("|activation| (mean over sequences)")
    ax.set_title(f"(a) {model}: {data.unit} {first} (dashed) vs {last} (solid)")
    ax.legend(
        [plt.Line2D([], [], color=f"C{i}") for i in range(4)],
        ["top-1", "top-2", "top-3", "median"],
        fontsize=5,
        loc="center right",
    )
    ax = axes[0, 1]
    for layer in layers:
        c = data.curve(model, layer)
        ax.plot(c["step"], c["value"], marker=".", ms=3, label=f"layer {layer}")
    ax.set_ylabel("top-1 / median")
    ax.set_title("(b) ratio over training")
    step_axis(ax, data, model)
    ax.legend()
    for ax, layer in zip(axes[1], layers, strict=False):
        _draw_fit(ax, data, model, layer)
        ax.set_title(f"(c) fit, {model} layer {layer}")
    return fig


@register(3, "first_last_per_layer")
def figure3(data: FigureData, models: list[str] | None = None):
    """Per-layer top-1 and median at the first and last step, for three model sizes."""
    models = models or _three(data.models)
    fig, axes = plt.subplots(1, len(models), figsize=(2 * COLUMN_WIDTH, 2.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        first, last, at = _first_last(data, model)
        for step, style in ((first, "--"), (last, "-")):
            for col, marker, color, name in (
                ("top1", "o", "C0", "top-1"),
                ("median", "s", "C1", "median"),
            ):
                ax.plot(
                    at[step].index,
                    at[step][col],
                    style + marker,
                    ms=2,
                    color=color,
                    label=f"{name}, {data.unit} {step}",
                )
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(model)
    axes[0, 0].set_ylabel("|activation|")
    axes[0, 0].legend(fontsize=5)
    return fig


@register(4, "topk_trajectories")
def figure4(data: FigureData, model: str | None = None):
    """top-1, top-2 and top-3 over the median through training, every layer of one model."""
    model = model or data.models[-1]
    m = data.measurements[data.measurements["model"] == model]
    g = m.groupby(["step", "layer"])[["top1", "top2", "top3", "median"]].mean().reset_index()
    n = data.n_layers(model)
    colors = layer_colors(n)
    fig, axes = plt.subplots(1, 3, figsize=(2 * COLUMN_WIDTH, 2.2), sharey=True)
    for ax, col in zip(axes, ["top1", "top2", "top3"], strict=True):
        for layer in range(n):
            s = g[g["layer"] == layer]
            ax.plot(s["step"], s[col] / s["median"], color=colors[layer], label=f"layer {layer}")
        ax.set_title(f"{model}: {col} / median")
        step_axis(ax, data, model)
    axes[0].set_ylabel("ratio to the median")
    axes[-1].legend(fontsize=5, ncol=1 + n // 8)
    return fig


@register(6, "fits")
def figure6(data: FigureData, models: list[str] | None = None):
    """Fits for a shallow, a middle and a deep layer of two models.

    Predicted curves and their bands are overlaid where ``data.predicted`` has them.
    """
    models = models or [data.models[0], data.models[-1]]
    rows = [(model, layer) for model in models for layer in spread_layers(data, model)]
    ncol = 3
    nrow = int(np.ceil(len(rows) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2 * COLUMN_WIDTH, 2.0 * nrow), squeeze=False)
    for ax, (model, layer) in zip(axes.ravel(), rows, strict=False):
        _draw_fit(ax, data, model, layer)
    for ax in axes.ravel()[len(rows) :]:
        ax.set_visible(False)
    return fig


def _three(models: list[str]) -> list[str]:
    """Smallest, middle and largest (fewer when fewer exist)."""
    if len(models) <= 3:
        return models
    return [models[0], models[len(models) // 2], models[-1]]


@register(11, "seed_bands", needs_seeds=True)
def figure11(data: FigureData, limit: int = 4):
    """Seeds of one architecture as one curve with a band (``--by architecture``).

    Per architecture of two or more seeds (the ``limit`` largest), the layer whose pooled
    ratio grew most: each seed's ratio (thin), the band from the lowest to the highest seed
    at every step they all measured, and the pooled series with its fit.
    """
    from massdyn.fitting.series import aggregate

    seeded = [name for name in data.models if len(data.seeds.get(name, ())) > 1][-limit:]
    fig, axes = plt.subplots(
        1, len(seeded), figsize=(2 * COLUMN_WIDTH, 2.4), squeeze=False, sharey=False
    )
    for ax, name in zip(axes[0], seeded, strict=True):
        members = data.seeds[name]
        layer = growth_layers(data, name, 1)[0]
        rows = data.members[data.members["model"].isin(members) & (data.members["layer"] == layer)]
        per_seed = aggregate(rows).pivot(index="step", columns="model", values="value")
        for member in members:
            ax.plot(per_seed.index, per_seed[member], color="0.6", lw=0.5)
        shared = per_seed.dropna()
        ax.fill_between(
            shared.index,
            shared.min(axis=1),
            shared.max(axis=1),
            color="C0",
            alpha=0.25,
            lw=0,
            label=f"band over {len(members)} seeds",
        )
        c = data.curve(name, layer)
        ax.plot(c["step"], c["value"], "C0o-", ms=2, label="seeds pooled")
        row = data.fit(name, layer)
        if row is not None and row.get("status") != "failed":
            grid = step_grid(c["step"].max())
            ax.plot(grid, fitted_curve(row, grid), "C3", label="fit of the pooled series")
        ax.set_title(f"{name}: {len(members)} seeds, layer {layer}")
        ax.set_ylabel("top-1 / median")
        step_axis(ax, data, name)
        ax.legend(loc="best")
    return fig
