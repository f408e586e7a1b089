"""The paper's figure set, each a function of :class:`FigureData` returning a Figure."""

from __future__ import annotations

from pathlib import Path

from massdyn.figures.attribution import figure9, figure10
from massdyn.figures.common import (
    REGISTRY,
    FigureData,
    FigureSpec,
    MissingFigureDataError,
    known_tokens_per_step,
    save,
)
from massdyn.figures.maps import figure2, figure5, figure7, figure8
from massdyn.figures.mechanisms import figure12, figure13, figure14, figure15
from massdyn.figures.trajectories import figure1, figure3, figure4, figure6, figure11
from massdyn.tracker.config import MECHANISM_TABLES

# By figure number; each module's figures declare themselves with @register.
FIGURES = {name: REGISTRY[name] for name in sorted(REGISTRY, key=lambda n: REGISTRY[n].number)}


def load_figure_data(
    measurements=None,
    params=None,
    configs=None,
    predictor=None,
    keep_duplicates=False,
    time="step",
    by="model",
):
    """Build :class:`FigureData` from files; the shipped mini-suite fills what is not given.

    With ``time="tokens"`` every figure's time axis is cumulative training tokens (the
    table's ``tokens`` column), and the fits are made, or must have been made, on it. With
    ``by="architecture"`` the seeds of one architecture (equal configs up to the name) are
    pooled into one series, as ``massdyn fit --by architecture`` pools them, and the seed
    band figure draws the spread across them. The mechanism tables (``attention.csv``,
    ``superweights.csv``, ``interventions.csv``) are read from beside the (first)
    measurements table; the shipped mini-suite's from its member trained with them.
    """
    import pandas as pd

    from massdyn.fitting import fit_measurements
    from massdyn.fitting.function import step_grid
    from massdyn.fitting.series import pool_seeds
    from massdyn.io import on_time_axis, read_measurements, read_table
    from massdyn.minisuite import shipped_data
    from massdyn.predictors import configs_from_dir, load_predictor
    from massdyn.predictors.design import seed_groups

    shipped = shipped_data()
    beside = shipped / "mechanisms"
    if measurements is not None:
        first = measurements if isinstance(measurements, str | Path) else measurements[0]
        beside = Path(first).parent
    if measurements is None:
        measurements = [shipped / "measurements.csv"]
        configs = configs or [shipped / "configs"]
        if time == "step" and by == "model":  # the shipped fits are per model, on steps
            params = params or shipped / "params.csv"
        if by == "architecture":  # the members' shipped seed replicates join them
            measurements.append(shipped / "seeds" / "measurements.csv")
            configs = [*configs, shipped / "seeds" / "configs"]
    if by == "architecture" and not configs:
        raise ValueError(
            "--by architecture needs --configs DIR (one config per model) to know which "
            "models are seeds of one architecture"
        )
    if predictor and time != "step":
        raise ValueError(
            "predicted curves are drawn on the step axis: leave out --time tokens or --predictor"
        )
    m = on_time_axis(read_measurements(measurements, keep_duplicates), time)
    seeds, members = {}, None
    if by == "architecture":
        seeds = seed_groups(configs_from_dir(configs, sorted(m["model"].unique())))
        members, m = m, pool_seeds(m, seeds)
    p = read_table(params) if params else fit_measurements(m, "ratio")
    fitted_on = str(p["time"].iloc[0]) if "time" in p and len(p) else "step"
    if params and fitted_on != time:
        raise ValueError(
            f"{params} was fitted on the {fitted_on} axis; fit again with massdyn fit --time "
            f"{time}, or leave out --params"
        )
    archs = configs_from_dir(configs, sorted(m["model"].unique())) if configs else {}
    predicted = None
    if predictor:
        est, _ = load_predictor(predictor)
        steps = step_grid(m["step"].max(), 100)
        parts = [est.predict_table(a, steps) for a in archs.values()]
        predicted = pd.concat(parts, ignore_index=True) if parts else None
    per_step = known_tokens_per_step() if time == "step" else {}
    tables = {
        name: on_time_axis(read_table(beside / f"{name}.csv"), time)
        for name in MECHANISM_TABLES
        if (beside / f"{name}.csv").exists()
    }
    return FigureData(
        m, p, archs, per_step, predicted, time=time, seeds=seeds, members=members, tables=tables
    )


def draw_all(data: FigureData, out: str | Path, log=print) -> dict[str, list[Path]]:
    """Draw every figure the data allow into ``out`` (PNG and PDF).

    Attribution figures need an architecture per model and at least two models; they are
    left out, with a line saying why, otherwise.

    Returns:
        Paths written, by figure name.
    """
    out = Path(out)
    written: dict[str, list[Path]] = {}
    enough = len(data.archs) >= 2 and set(data.params["model"]) <= set(data.archs)
    seeded = any(len(members) > 1 for members in data.seeds.values())
    for name, spec in FIGURES.items():
        if spec.needs_archs and not enough:
            log(f"{name}: skipped (needs the configs of at least two models)")
            continue
        if spec.needs_seeds and not seeded:
            log(f"{name}: skipped (needs --by architecture and an architecture with 2+ seeds)")
            continue
        try:
            figure = spec(data)
        except MissingFigureDataError as exc:
            log(f"{name}: skipped ({exc})")
            continue
        written[name] = save(figure, out, name)
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
    "figure11",
    "figure12",
    "figure13",
    "figure14",
    "figure15",
    "MissingFigureDataError",
]
