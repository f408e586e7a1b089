"""Figures across models and layers (paper figures 2, 5, 7 and 8)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator

from massdyn.figures.common import COLUMN_WIDTH, FigureData, MissingFigureDataError, register
from massdyn.figures.trajectories import _draw_fit
from massdyn.fitting.function import EmergenceParams, peak


def _final_ratio(data: FigureData) -> pd.DataFrame:
    s = data.series["ratio"]
    last = s[s["step"] == s.groupby("model")["step"].transform("max")]
    return last.groupby("model")["value"].agg(["max", "mean"])


@register(2, "size_vs_ratio")
def figure2(data: FigureData):
    """Model size against the final top-1/median ratio (largest and mean over layers)."""
    final = _final_ratio(data)
    sizes = np.array([data.size(m) for m in final.index])
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    ax.scatter(sizes, final["max"], label="largest over layers", zorder=3)
    ax.scatter(sizes, final["mean"], marker="x", label="mean over layers", zorder=3)
    for name, x, y in zip(final.index, sizes, final["max"], strict=True):
        ax.annotate(
            str(name).split("/")[-1], (x, y), fontsize=5, xytext=(2, 2), textcoords="offset points"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    sized = bool(data.archs)
    ax.set_xlabel("non-embedding parameters" if sized else "model (ordered by depth)")
    ax.set_ylabel("final top-1 / median")
    ax.legend()
    return fig


def _layer_model_grid(data: FigureData, values: dict[tuple[str, int], float]) -> np.ndarray:
    models = data.models
    depth = max(data.n_layers(m) for m in models)
    grid = np.full((depth, len(models)), np.nan)
    for (model, layer), v in values.items():
        grid[layer, models.index(model)] = v
    return grid


def _heatmap(ax, data: FigureData, grid: np.ndarray, label: str, **imshow) -> None:
    """A (layer x model) map with model names below and a colour bar."""
    im = ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest", **imshow)
    ax.set_xticks(
        range(len(data.models)),
        [str(m).split("/")[-1] for m in data.models],
        rotation=45,
        ha="right",
    )
    ax.set_ylabel("layer")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    plt.colorbar(im, ax=ax, label=label)


def _log_heatmap(ax, data: FigureData, grid: np.ndarray, label: str) -> None:
    _heatmap(ax, data, grid, label, norm=LogNorm(np.nanmin(grid), np.nanmax(grid)), cmap="magma")


@register(5, "peak_heatmaps")
def figure5(data: FigureData):
    """Heatmaps over (layer x model) of the measured peak ratio and the step it occurs at."""
    s = data.series["ratio"]
    idx = s.groupby(["model", "layer"])["value"].idxmax()
    peaks = s.loc[idx]
    mag = {(r.model, r.layer): r.value for r in peaks.itertuples()}
    step = {(r.model, r.layer): max(r.step, 1) for r in peaks.itertuples()}
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.6))
    _log_heatmap(axes[0], data, _layer_model_grid(data, mag), "peak top-1 / median")
    axes[0].set_title("peak magnitude")
    _log_heatmap(axes[1], data, _layer_model_grid(data, step), "step of the peak (log)")
    axes[1].set_title("peak step")
    return fig


@register(7, "r2")
def figure7(data: FigureData):
    """R^2 of the fits: the best and worst fitted layer, and the (model x layer) map."""
    p = data.params[data.params["status"] != "failed"].dropna(subset=["r2"])
    if p.empty:
        raise MissingFigureDataError("no series was fitted (too few steps?)")
    best, worst = p.loc[p["r2"].idxmax()], p.loc[p["r2"].idxmin()]
    fig, axes = plt.subplots(1, 3, figsize=(2 * COLUMN_WIDTH, 2.3))
    for ax, row, tag in ((axes[0], best, "best"), (axes[1], worst, "worst")):
        _draw_fit(ax, data, row["model"], int(row["layer"]))
        ax.set_title(f"{tag}: {str(row['model']).split('/')[-1]} layer {int(row['layer'])}")
    grid = _layer_model_grid(data, {(r.model, r.layer): r.r2 for r in p.itertuples()})
    vmin = min(0.8, np.nanmin(grid))
    _heatmap(axes[2], data, grid, "R$^2$", cmap="viridis", vmin=vmin, vmax=1)
    axes[2].set_title(f"R$^2$ (mean {p['r2'].mean():.3f})")
    return fig


@register(8, "tpeak_surface")
def figure8(data: FigureData, t0: float | None = None):
    """t_peak over (lambda, gamma) at a fixed t0 (the median fitted one), fits overlaid.

    The surface spans lambda in [1e-3, 1e2] and gamma in [1e-7, 1]; fitted layers outside
    that window (degenerate fits of curves that never turn) are counted in the title.
    """
    p = data.params[data.params["status"] != "failed"]
    if p.empty and t0 is None:
        raise MissingFigureDataError("no series was fitted (too few steps?)")
    t0 = float(np.nanmedian(p["t0"])) if t0 is None else t0
    lam, gam = np.geomspace(1e-3, 1e2, 150), np.geomspace(1e-7, 1.0, 150)
    # t_peak scales as 1/gamma, so one peak per lambda (at gamma = 1) fills the grid.
    at_unit_gamma = np.array(
        [
            pk.t_peak if pk.exists else np.nan
            for pk in (peak(EmergenceParams(1.0, lm, 1.0, t0, 0.0)) for lm in lam)
        ]
    )
    L, G = np.meshgrid(lam, gam)
    with np.errstate(all="ignore"):
        T = np.log10(at_unit_gamma[None, :] / G)
    last = float(data.measurements["step"].max())
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6))
    levels = np.linspace(0, np.ceil(np.log10(last)) + 3, 22)
    cs = ax.contourf(L, G, np.clip(T, levels[0], levels[-1]), levels=levels, cmap="cividis")
    ax.contour(L, G, T, levels=[np.log10(last)], colors="r", linewidths=0.8)
    plt.colorbar(cs, ax=ax, label="log$_{10}$ t$_{peak}$ (steps)")
    no_peak = lam[np.isnan(at_unit_gamma)]
    if no_peak.size:  # x* <= t0: the curve only falls after step 0
        ax.axvspan(no_peak[0], lam[-1], color="0.85", lw=0)
        ax.text(
            np.sqrt(no_peak[0] * lam[-1]),
            np.sqrt(gam[0] * gam[-1]),
            "no peak after step 0",
            rotation=90,
            ha="center",
            va="center",
            fontsize=5,
        )
    inside = p[p["lambda"].between(lam[0], lam[-1]) & p["gamma"].between(gam[0], gam[-1])]
    ax.scatter(
        inside["lambda"], inside["gamma"], s=8, c="w", edgecolors="k", lw=0.4, label="fitted layers"
    )
    ax.plot([], [], "r", lw=0.8, label=f"t$_{{peak}}$ = last step ({last:.0f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$\\lambda$ (decay rate)")
    ax.set_ylabel("$\\gamma$ (time scale, 1/step)")
    outside = len(p) - len(inside)
    ax.set_title(
        f"t$_{{peak}}$ at t$_0$ = {t0:.3g}" + (f" ({outside} fits off the map)" if outside else "")
    )
    ax.legend(loc="lower left", fontsize=5)
    return fig
