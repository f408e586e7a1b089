"""``massdyn fit``: fit emergence curves to every layer of a measurements table."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

# The library's names (fitting.batch.METRICS, fitting.models.MODELS), checked by a test;
# written here so that --help does not import scipy.
METRICS = ("ratio", "top1", "median")
CURVE_MODELS = (
    "emergence",
    "log",
    "first_order",
    "second_order_under",
    "second_order_critical",
    "second_order_over",
    "logistic",
)


@dataclass
class FitCommand:
    """Fit the five-parameter emergence function (or a rival) to every (model, layer) series.

    Writes one row per series with parameters, standard errors, R^2, AIC/BIC, peak step
    and a status. Exits 1 when any series failed (all others are still written).
    """

    measurements: str
    out: str = "params.csv"
    metric: str = "ratio"
    fit_model: str = "emergence"
    compare: str | None = None
    weighted: bool = False
    jobs: int | None = None
    starts: int = 32
    seed: int = 0

    help = "fit emergence curves to a measurements table"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("measurements", help="measurements table (.csv or .parquet)")
        p.add_argument("--out", default="params.csv", help="parameters table to write")
        p.add_argument("--metric", default="ratio", choices=METRICS, help="series to fit")
        p.add_argument("--fit-model", default="emergence", choices=CURVE_MODELS, help="curve model")
        p.add_argument(
            "--compare",
            nargs="?",
            const="",
            default=None,
            metavar="PATH",
            help="also rank all rival models per series (default path: OUT with _compare)",
        )
        p.add_argument("--weighted", action="store_true", help="weight points by SEM over seqs")
        p.add_argument(
            "--jobs", type=int, default=None, help="worker processes (default: all cores)"
        )
        p.add_argument("--starts", type=int, default=32, help="space-filling starts per fit")
        p.add_argument("--seed", type=int, default=0, help="seed of the starts")

    def run(self) -> int:
        """Run the fit and print a summary."""
        from fitting import FitConfig, compare_measurements, fit_measurements
        from massdyn.io import read_table, write_table

        df = read_table(self.measurements)
        config = FitConfig(n_starts=self.starts, seed=self.seed)
        params = fit_measurements(
            df, self.metric, self.fit_model, config, n_jobs=self.jobs, weighted=self.weighted
        )
        out = write_table(params, self.out)
        counts = params["status"].value_counts().to_dict()
        ok = params[params["status"] != "failed"]
        print(
            f"fitted {len(params)} series ({self.metric}, {self.fit_model}): "
            + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        )
        if len(ok):
            print(f"R^2 mean {ok['r2'].mean():.4f}, median {ok['r2'].median():.4f}")
        print(f"wrote {out}")
        for row in params[params["status"] == "failed"].itertuples():
            print(f"  failed: model={row.model} layer={row.layer}: {row.reason}")
        if self.compare is not None:
            path = (
                Path(self.compare)
                if self.compare
                else out.with_name(f"{out.stem}_compare{out.suffix}")
            )
            table = compare_measurements(
                df, self.metric, config=config, n_jobs=self.jobs, weighted=self.weighted
            )
            write_table(table, path)
            best = table[table["rank"] == 1]["curve_model"].value_counts()
            print("best model by AICc: " + ", ".join(f"{m} {n}" for m, n in best.items()))
            print(f"wrote {path}")
        return 1 if counts.get("failed", 0) else 0
