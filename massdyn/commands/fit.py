"""``massdyn fit``: fit emergence curves to every layer of a measurements table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from massdyn.fitting.config import FitConfig
from massdyn.io import keep_duplicates_option, time_option
from massdyn.options import opt


def _metrics():
    from massdyn.fitting.config import METRICS

    return METRICS


def _curve_models():
    from massdyn.fitting.models import MODELS

    return MODELS


@dataclass
class FitCommand:
    """Fit the five-parameter emergence function (or a rival) to every (model, layer) series.

    Writes one row per series with parameters, standard errors, R^2, AIC/BIC, peak step
    and a status. Exits 1 when any series failed (all others are still written).
    """

    measurements: str = opt(help="measurements table (.csv or .parquet)", positional=True)
    out: str = opt("params.csv", "parameters table to write")
    metric: str = opt("ratio", "series to fit (sink: of an attention table)", choices=_metrics)
    curve_model: str = opt("emergence", "curve model", flag="--fit-model", choices=_curve_models)
    compare: str | None = opt(
        None,
        "also rank all rival models per series (default path: OUT with _compare)",
        nargs="?",
        const="",
        metavar="PATH",
    )
    weighted: bool = opt(False, "weight points by SEM over seqs")
    jobs: int | None = opt(None, "worker processes (default: all cores)")
    by: str = opt(
        "model",
        "fit each model, or each architecture with its seeds pooled (needs --configs)",
        choices=("model", "architecture"),
    )
    configs: list[str] = opt(
        help="with --by architecture: folder(s) of one config per model", nargs="+", default=()
    )
    keep_duplicates: bool = keep_duplicates_option()
    time: str = time_option()
    fit: FitConfig = field(default_factory=FitConfig, metadata={"flatten": True})

    def run(self) -> int:
        """Run the fit and print a summary."""
        from massdyn.fitting import fit_and_rank, fit_measurements
        from massdyn.io import (
            check_jobs,
            on_time_axis,
            read_measurements,
            refuse_overwriting_inputs,
            write_table,
        )

        check_jobs(self.jobs)
        out = Path(self.out)
        outputs = [out] + ([] if self.compare is None else [self._compare_path(out)])
        refuse_overwriting_inputs(outputs, self.measurements)
        df = on_time_axis(read_measurements(self.measurements, self.keep_duplicates), self.time)
        seeds = None
        if self.by == "architecture":
            df, seeds = self._pooled(df)
        config = self.fit
        common = dict(config=config, n_jobs=self.jobs, weighted=self.weighted)
        if self.compare is None:
            params = fit_measurements(df, self.metric, self.curve_model, **common)
        else:
            params, ranking = fit_and_rank(df, self.metric, self.curve_model, **common)
        params.insert(2, "time", self.time)  # what t_peak, t_peak_lo and t_peak_hi count
        if seeds is not None:
            params = params.merge(seeds, on=["model", "layer"], how="left")
        out = write_table(params, self.out)
        counts = params["status"].value_counts().to_dict()
        ok = params[params["status"] != "failed"]
        print(
            f"fitted {len(params)} series ({self.metric}, {self.curve_model}): "
            + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        )
        if len(ok):
            print(f"R^2 mean {ok['r2'].mean():.4f}, median {ok['r2'].median():.4f}")
        dropped = params["n_dropped"].fillna(0).astype(int) if "n_dropped" in params else None
        if dropped is not None and dropped.sum():
            print(
                f"dropped {dropped.sum()} non-finite point(s) (NaN or inf in top1 or median) "
                f"from {int((dropped > 0).sum())} series; see n_dropped and reason in {out}"
            )
        print(f"wrote {out}")
        for row in params[params["status"] == "failed"].itertuples():
            print(f"  failed: model={row.model} layer={row.layer}: {row.reason}")
        if self.compare is not None:
            path = write_table(ranking, self._compare_path(out))
            best = ranking[ranking["rank"] == 1]["curve_model"].value_counts()
            print("best model by AICc: " + ", ".join(f"{m} {n}" for m, n in best.items()))
            print(f"wrote {path}")
        return 1 if counts.get("failed", 0) else 0

    def _pooled(self, df):
        """The table with each architecture's seeds pooled, and their spread at the end.

        Returns:
            ``(table, seeds)``: ``seeds`` has per (architecture, layer) its ``members``,
            ``seeds`` and the lowest and highest member's ratio at the last shared step
            (``final_seed_lo``, ``final_seed_hi``): the band across seeds.
        """
        import pandas as pd

        from massdyn.fitting.series import aggregate, check_measurements, pool_seeds
        from massdyn.predictors import configs_from_dir
        from massdyn.predictors.design import seed_groups

        if not self.configs:
            raise ValueError(
                "--by architecture needs --configs DIR (one config per model) to know which "
                "models are seeds of one architecture"
            )
        check_measurements(df)
        archs = configs_from_dir(list(self.configs), sorted(df["model"].unique()))
        groups = seed_groups(archs)
        pooled = pool_seeds(df, groups)
        rows = []
        for name, members in groups.items():
            steps = pooled.loc[pooled["model"] == name, "step"]
            ratio = aggregate(df[df["model"].isin(members) & (df["step"] == steps.max())])
            for layer, r in ratio.groupby("layer"):
                rows.append(
                    {
                        "model": name,
                        "layer": layer,
                        "members": ";".join(members),
                        "seeds": len(members),
                        "final_seed_lo": r["value"].min(),
                        "final_seed_hi": r["value"].max(),
                    }
                )
        dropped = sum(pooled.attrs["dropped_steps"].values())
        print(
            f"{len(groups)} architecture(s) from {len(archs)} model(s), seeds pooled"
            + (f"; {dropped} step(s) left out that not every seed measured" if dropped else "")
        )
        return pooled, pd.DataFrame(rows)

    def _compare_path(self, out: Path) -> Path:
        """Where the ranking goes: --compare PATH, else OUT with a _compare suffix."""
        return (
            Path(self.compare) if self.compare else out.with_name(f"{out.stem}_compare{out.suffix}")
        )
