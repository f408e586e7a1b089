"""A forecast drawn with what it was made from: a pure function of the two tables."""

from __future__ import annotations


def forecast_figure(measurements, forecasts, metric: str = "ratio", upto=None):
    """Observed series (points), forecast (line) and 10-90% band, one panel per model.

    Args:
        measurements: The walker's long table.
        forecasts: Rows of :func:`massdyn.fitting.forecast.forecast_measurements`.
        metric: The series forecast.
        upto: The last step the forecast saw (drawn as a vertical line), if a backtest.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from massdyn.fitting.series import aggregate

    observed = aggregate(measurements, metric)
    models = sorted(forecasts["model"].unique())
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    cmap = plt.get_cmap("viridis")
    for ax, model in zip(axes.flat, models, strict=False):
        f = forecasts[forecasts["model"] == model]
        o = observed[observed["model"] == model]
        layers = sorted(f["layer"].unique())
        for i, layer in enumerate(layers):
            color = cmap(i / max(1, len(layers) - 1))
            lo = o[o["layer"] == layer]
            seen = lo if upto is None else lo[lo["step"] <= upto]
            later = lo.iloc[0:0] if upto is None else lo[lo["step"] > upto]
            ax.plot(seen["step"] + 1, seen["value"], "o", ms=2.5, color=color)
            ax.plot(later["step"] + 1, later["value"], "o", ms=2.5, mfc="none", color=color)
            c = f[f["layer"] == layer]
            ax.plot(c["step"] + 1, c["value"], "-", color=color, label=f"layer {layer}")
            ax.fill_between(c["step"] + 1, c["lo"], c["hi"], color=color, alpha=0.15, lw=0)
        if upto is not None:
            ax.axvline(upto + 1, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("training step + 1")
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=7)
    for row in axes:
        row[0].set_ylabel(f"{metric} (filled: seen, open: later)")
    return fig


def plot_forecast(measurements, forecasts, path: str, metric: str = "ratio", upto=None) -> None:
    """Draw :func:`forecast_figure` to an image file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = forecast_figure(measurements, forecasts, metric, upto)
    fig.savefig(path, dpi=130)
    plt.close(fig)
