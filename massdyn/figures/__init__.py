"""The paper's figure set, each a function of :class:`FigureData` returning a Figure."""

from __future__ import annotations

from pathlib import Path

from massdyn.figures.attribution import figure9, figure10, importance_table
from massdyn.figures.common import FigureData, known_tokens_per_step, save
from massdyn.figures.maps import figure2, figure5, figure7, figure8
from massdyn.figures.trajectories import figure1, figure3, figure4, figure6

FIGURES = {
    "fig1_overview": figure1,
    "fig2_size_vs_ratio": figure2,
    "fig3_first_last_per_layer": figure3,
    "fig4_topk_trajectories": figure4,
    "fig5_peak_heatmaps": figure5,
    "fig6_fits": figure6,
    "fig7_r2": figure7,
    "fig8_tpeak_surface": figure8,
    "fig9_attribution_K": figure9,
    "fig10_attribution_lambda": figure10,
}
NEEDS_ARCHS = {"fig9_attribution_K", "fig10_attribution_lambda"}


def draw_all(data: FigureData, out: str | Path, log=print) -> dict[str, list[Path]]:
    """Draw every figure the data allow into ``out`` (PNG and PDF).

    Attribution figures need an architecture per model and at least two models; they are
    left out, with a line saying why, otherwise.

    Returns:
        Paths written, by figure name.
    """
    out = Path(out)
    written: dict[str, list[Path]] = {}
    importance = None
    enough = len(data.archs) >= 2 and set(data.params["model"]) <= set(data.archs)
    for name, draw in FIGURES.items():
        if name in NEEDS_ARCHS:
            if not enough:
                log(f"{name}: skipped (needs the configs of at least two models)")
                continue
            importance = importance if importance is not None else importance_table(data)
            fig = draw(data, importance)
        else:
            fig = draw(data)
        written[name] = save(fig, out, name)
    return written


__all__ = ["FIGURES", "FigureData", "draw_all", "known_tokens_per_step", *FIGURES]
