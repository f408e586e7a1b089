"""The paper's figure set, each a function of :class:`FigureData` returning a Figure."""

from __future__ import annotations

from pathlib import Path

from massdyn.figures.attribution import figure9, figure10, importance_table
from massdyn.figures.common import REGISTRY, FigureData, FigureSpec, known_tokens_per_step, save
from massdyn.figures.maps import figure2, figure5, figure7, figure8
from massdyn.figures.trajectories import figure1, figure3, figure4, figure6

# By figure number; each module's figures declare themselves with @register.
FIGURES = {name: REGISTRY[name] for name in sorted(REGISTRY, key=lambda n: REGISTRY[n].number)}


def load_figure_data(
    measurements=None, params=None, configs=None, predictor=None, keep_duplicates=False
):
    """Build :class:`FigureData` from files; the shipped mini-suite fills what is not given."""
    import pandas as pd

    from massdyn.fitting import fit_measurements
    from massdyn.fitting.function import step_grid
    from massdyn.io import read_measurements, read_table
    from massdyn.minisuite import shipped_data
    from massdyn.predictors import configs_from_dir, load_predictor

    shipped = shipped_data()
    if measurements is None:
        measurements = shipped / "measurements.csv"
        params = params or shipped / "params.csv"
        configs = configs or shipped / "configs"
    m = read_measurements(measurements, keep_duplicates)
    p = read_table(params) if params else fit_measurements(m, "ratio")
    archs = configs_from_dir(configs, sorted(m["model"].unique())) if configs else {}
    predicted = None
    if predictor:
        est, _ = load_predictor(predictor)
        steps = step_grid(m["step"].max(), 100)
        parts = [est.predict_table(a, steps) for a in archs.values()]
        predicted = pd.concat(parts, ignore_index=True) if parts else None
    return FigureData(m, p, archs, known_tokens_per_step(), predicted)


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
    for name, spec in FIGURES.items():
        if spec.needs_archs:
            if not enough:
                log(f"{name}: skipped (needs the configs of at least two models)")
                continue
            importance = importance if importance is not None else importance_table(data)
        written[name] = save(spec(data, importance), out, name)
    return written


__all__ = [
    "FIGURES",
    "FigureData",
    "FigureSpec",
    "draw_all",
    "known_tokens_per_step",
    "load_figure_data",
    "figure1",
    "figure2",
    "figure3",
    "figure4",
    "figure5",
    "figure6",
    "figure7",
    "figure8",
    "figure9",
    "figure10",
]
