"""``massdyn forecast``: where every series of a measurements table is heading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from massdyn.fitting.config import METRICS, ForecastConfig
from massdyn.io import keep_duplicates_option, time_option
from massdyn.options import opt


@dataclass
class ForecastCommand:
    """Forecast every (model, layer) series of a measurements table up to step UNTIL.

    The emergence function, its rivals and a line in log-step are fitted to the observed
    steps and averaged with weights from how well each forecasts the last third of them
    from the rest; a residual bootstrap gives the 10-90% band. Writes one row per (model,
    layer, step) for the measured steps past --upto and Pythia's checkpoint steps up to
    --until (columns model, layer, step, value, lo, hi, and measured where the table has
    it) to OUT, and per series the final value with its band, the peak step or none, the
    steady state or why it is not identifiable, and the models used to OUT with a _summary
    suffix. --upto ignores the rows after that step: a backtest against what followed.
    With --predictor and --configs, the predictor's curve for each architecture is one more
    candidate. Exits 1 when a series could not be forecast (the others are written).
    """

    measurements: str = opt(
        help="measurements table of the walker (.csv, .parquet)", positional=True
    )
    until: int = opt(help="the horizon: forecast up to this step (tokens with --time tokens)")
    upto: int | None = opt(None, "ignore the rows after this step or token count (backtest)")
    out: str = opt("forecast.csv", "per (model, layer, step) table")
    plot: str | None = opt(None, "also draw observed points and forecasts to this image file")
    predictor: str | None = opt(None, "file from `massdyn train-predictor`: its curve as a prior")
    configs: str | None = opt(None, "folder of <model>.json configs (with --predictor)")
    metric: str = opt("ratio", "series to forecast (sink: of an attention table)", choices=METRICS)
    jobs: int | None = opt(None, "worker processes (default: all cores)")
    keep_duplicates: bool = keep_duplicates_option()
    time: str = time_option()
    forecast: ForecastConfig = field(default_factory=ForecastConfig, metadata={"flatten": True})

    def run(self) -> int:
        """Forecast, write both tables, print the summary."""
        import numpy as np

        from massdyn.fitting.forecast import forecast_measurements
        from massdyn.io import (
            check_jobs,
            on_time_axis,
            read_measurements,
            refuse_overwriting_inputs,
            write_table,
        )
        from massdyn.tracker.schedule import pythia_steps

        if self.until <= 0:
            raise ValueError(f"--until must be a step > 0, got {self.until}")
        if self.upto is not None and self.upto >= self.until:
            raise ValueError(f"--upto {self.upto} must be before --until {self.until}")
        if (self.predictor is None) != (self.configs is None):
            raise ValueError("--predictor and --configs go together: give both or neither")
        check_jobs(self.jobs)
        out = Path(self.out)
        refuse_overwriting_inputs(
            [out, out.with_name(f"{out.stem}_summary{out.suffix}"), self.plot],
            [self.measurements, self.predictor],
        )
        table = on_time_axis(read_measurements(self.measurements, self.keep_duplicates), self.time)
        if self.time == "tokens":  # 40 log-spaced points from the first tokens seen
            first = float(table.loc[table["step"] > 0, "step"].min())
            steps = np.unique(np.r_[np.geomspace(min(first, self.until), self.until, 40)])
        else:
            steps = np.array([s for s in pythia_steps() if s <= self.until] + [self.until], float)
        priors = self._priors(table) if self.predictor else None
        rows, summary = forecast_measurements(
            table,
            self.until,
            self.upto,
            steps=steps,
            metric=self.metric,
            config=self.forecast,
            n_jobs=self.jobs,
            priors=priors,
        )
        out = write_table(rows, self.out)
        summary_path = write_table(summary, out.with_name(f"{out.stem}_summary{out.suffix}"))
        ok = summary[summary["status"] == "ok"]
        if len(ok):
            cols = ["model", "layer", "final", "final_lo", "final_hi", "peak_note", "models_used"]
            print(ok[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for row in summary[summary["status"] == "failed"].itertuples():
            print(f"  failed: model={row.model} layer={row.layer}: {row.reason}")
        print(f"wrote {out} and {summary_path}")
        if self.plot:
            from massdyn.figures.forecast import plot_forecast

            plot_forecast(table, rows, self.plot, self.metric, self.upto)
            print(f"wrote {self.plot}")
        return 1 if len(ok) < len(summary) else 0

    def _priors(self, table) -> dict:
        """The predictor's curve per (model, layer) of the table, by its config."""
        import numpy as np

        from massdyn.predictors import configs_from_dir, load_predictor

        est, _ = load_predictor(self.predictor)  # either protocol: both give predict_table
        archs = configs_from_dir(self.configs, sorted(table["model"].unique()))
        steps = np.geomspace(1.0, self.until, 80)
        priors = {}
        for arch in archs.values():
            curves = est.predict_table(arch, steps)
            for layer, c in curves.groupby("layer"):
                priors[(arch.name, int(layer))] = (c["step"].to_numpy(), c["ratio"].to_numpy())
        return priors
