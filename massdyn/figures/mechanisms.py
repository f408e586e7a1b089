"""Figures of what massive activations do over training (figures 12-15).

Drawn from the tables ``massdyn walk --attention --super-weights --interventions`` (or the
live tracker) writes beside the measurements; each figure that lacks its table is left
out with the flag that records it. The outlier-dimension overlap needs only the
measurements' recorded (token, dim) positions.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from massdyn.figures.common import (
    COLUMN_WIDTH,
    FigureData,
    MissingFigureDataError,
    layer_colors,
    register,
    step_axis,
)
from massdyn.fitting.report import jaccard
from massdyn.tracker.config import SINK_EPSILON


def _table(data: FigureData, name: str, flag: str):
    table = data.tables.get(name)
    if table is None or table.empty:
        raise MissingFigureDataError(f"needs {name}.csv beside the measurements (walk {flag})")
    return table


def _model(data: FigureData, table) -> str:
    """The largest measured model that ``table`` covers."""
    covered = set(table["model"])
    models = [m for m in data.models if m in covered]
    if not models:
        raise MissingFigureDataError("its table covers none of the measured models")
    return models[-1]


@register(12, "sinks_over_training", needs_tables=("attention",))
def figure12(data: FigureData, model: str | None = None):
    """(a) Per layer over training: the ratio, the sink share and position 0's norm.

    One time axis for the three, to see whether they emerge together (reported for Pythia
    near step 1k). The sink share is the mean over heads; the dashed line is Gu et al.'s
    Sink metric (the share of heads above :data:`~massdyn.tracker.config.SINK_EPSILON`).
    """
    attention = _table(data, "attention", "--attention")
    model = model or _model(data, attention)
    a = attention[attention["model"] == model]
    per = (
        a.assign(sink=a["sink_share"] > SINK_EPSILON)
        .groupby(["layer", "step"], as_index=False)
        .agg(share=("sink_share", "mean"), metric=("sink", "mean"), norm=("pos0_norm", "first"))
    )
    layers = sorted(per["layer"].unique())
    colors = layer_colors(len(layers))
    fig, axes = plt.subplots(3, 1, figsize=(COLUMN_WIDTH, 5.2), sharex=True)
    for color, layer in zip(colors, layers, strict=True):
        c = data.curve(model, layer)
        p = per[per["layer"] == layer]
        axes[0].plot(c["step"], c["value"], color=color, label=f"layer {layer}")
        axes[1].plot(p["step"], p["share"], color=color)
        axes[1].plot(p["step"], p["metric"], "--", color=color, lw=0.6)
        axes[2].plot(p["step"], p["norm"], color=color)
    axes[0].set_ylabel("top-1 / median")
    axes[0].set_title(f"(a) {model}: ratio, attention sinks, position 0")
    axes[0].legend(ncol=2)
    axes[1].set_ylabel(f"sink share (mean over heads)\ndashed: share of heads > {SINK_EPSILON}")
    axes[1].set_ylim(0, 1)
    axes[2].set_ylabel("||h at position 0||")
    axes[2].set_yscale("log")
    step_axis(axes[2], data, model)
    axes[2].set_xlim(left=0)
    return fig


@register(13, "outlier_overlap")
def figure13(data: FigureData, model: str | None = None):
    """(b) How the outlier dimensions turn over: their overlap between every two checkpoints.

    The outlier dimensions of a checkpoint are every dimension among its sequences' top-3
    entries (as ``massdyn locate`` lists them), in the layer whose ratio grew most;
    the colour is their Jaccard overlap.
    """
    from massdyn.figures.trajectories import growth_layers

    m = data.measurements
    if "top1_dim" not in m.columns:
        raise MissingFigureDataError("needs the top-3 positions, which massdyn walk records")
    model = model or data.models[-1]
    layer = growth_layers(data, model, 1)[0]
    rows = m[(m["model"] == model) & (m["layer"] == layer)]
    cols = ["top1_dim", "top2_dim", "top3_dim"]
    steps = sorted(rows["step"].unique())
    dims = [set(rows.loc[rows["step"] == s, cols].to_numpy().ravel().tolist()) for s in steps]
    grid = np.array([[jaccard(a, b) for b in dims] for a in dims])
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.0))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(8, len(steps))).astype(int))
    labels = [f"{steps[i]:.3g}" for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel(data.unit)
    ax.set_ylabel(data.unit)
    ax.set_title(f"(b) {model} layer {layer}: outlier dims shared")
    fig.colorbar(im, ax=ax, label="Jaccard overlap of the top-3 dims")
    return fig


@register(14, "interventions", needs_tables=("interventions",))
def figure14(data: FigureData, model: str | None = None):
    """(c) The loss increase from zeroing the top-3 entries and from their dim's mean.

    Sun et al. find the mean harmless and zeroing catastrophic on trained models; the two
    panels show when in training that becomes true, per layer.
    """
    table = _table(data, "interventions", "--interventions")
    model = model or _model(data, table)
    t = table[table["model"] == model]
    layers = sorted(t["layer"].unique())
    colors = layer_colors(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4), sharey=True)
    for ax, mode in zip(axes, ("zero", "mean"), strict=True):
        for color, layer in zip(colors, layers, strict=True):
            s = t[(t["layer"] == layer) & (t["mode"] == mode)].sort_values("step")
            ax.plot(s["step"], s["loss"] - s["loss_base"], color=color, label=f"layer {layer}")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"(c) {model}: top-3 entries set to {'0' if mode == 'zero' else 'the mean'}")
        step_axis(ax, data, model)
        ax.set_xlim(left=0)
    axes[0].set_ylabel("loss increase (nats per token)")
    axes[0].legend(ncol=2)
    return fig


@register(15, "super_weights", needs_tables=("superweights",))
def figure15(data: FigureData, model: str | None = None):
    """(d) Super weights over training: each layer's spike, and where the largest one sits.

    Left: the down-projection's largest ``|output|`` per layer (filled where it stands out
    from the other layers'). Right: the weight's coordinates (output row, input column) of
    the layer with the largest spike at the last checkpoint, at every checkpoint.
    """
    table = _table(data, "superweights", "--super-weights")
    model = model or _model(data, table)
    t = table[table["model"] == model]
    layers = sorted(t["layer"].unique())
    colors = layer_colors(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.4))
    for color, layer in zip(colors, layers, strict=True):
        s = t[t["layer"] == layer].sort_values("step")
        axes[0].plot(s["step"], s["output"].abs(), color=color, label=f"layer {layer}")
        out = s[s["stands_out"].astype(bool)]
        axes[0].plot(out["step"], out["output"].abs(), "o", ms=2.5, color=color)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("|down-projection output| at its spike")
    axes[0].set_title(f"(d) {model}: spikes (dots: stand out)")
    axes[0].legend(ncol=2)
    step_axis(axes[0], data, model)
    axes[0].set_xlim(left=0)
    last = t[t["step"] == t["step"].max()]
    top = int(last.loc[last["output"].abs().idxmax(), "layer"])
    s = t[t["layer"] == top].sort_values("step")
    axes[1].step(s["step"], s["row"], where="post", label="row (output dim)")
    axes[1].step(s["step"], s["col"], where="post", label="column (input dim)")
    axes[1].set_ylabel("index in W")
    axes[1].set_title(f"layer {top}: super weight coordinates")
    axes[1].legend()
    step_axis(axes[1], data, model)
    return fig
