"""``massdyn train-predictor`` and ``massdyn predict``: architecture -> emergence curves."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# predictors.model.REGRESSORS plus xgboost (checked by a test); written here so that --help
# does not import scikit-learn.
REGRESSORS = ("ridge", "lasso", "rf", "gb", "hgb", "xgb")


@dataclass
class TrainPredictorCommand:
    """Train a predictor from a parameters table and the configs of its models.

    PARAMS is a table written by `massdyn fit` (one row per model, layer). DIR holds one HF
    config per model, as DIR/<model>.json or DIR/<model>/config.json. Prints per-target R^2
    and MAE under the paper's protocol (random 80/20 split, 5-fold CV) and leave-one-model-out.
    """

    params: str
    configs: str
    out: str = "predictor.skops"
    regressor: str = "rf"
    seed: int = 0

    help = "train an architecture -> emergence-parameters predictor"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("params", help="parameters table from `massdyn fit` (.csv or .parquet)")
        p.add_argument(
            "--configs", required=True, help="folder of <model>.json or <model>/config.json"
        )
        p.add_argument("--out", default="predictor.skops", help="predictor file to write")
        p.add_argument("--regressor", default="rf", choices=REGRESSORS)
        p.add_argument("--seed", type=int, default=0)

    def run(self) -> int:
        """Train, report both protocols, save."""
        from massdyn.io import read_table
        from predictors import (
            EmergencePredictor,
            configs_from_dir,
            evaluate,
            save_predictor,
            training_table,
        )

        params = read_table(self.params)
        archs = configs_from_dir(self.configs, sorted(params["model"].unique()))
        table = training_table(archs, params)
        scores = evaluate(table, self.regressor, self.seed)
        n_models = table["model"].nunique()
        print(
            f"{len(table)} (model, layer) rows from {n_models} models; regressor {self.regressor}"
        )
        print(scores.pivot(index="target", columns="protocol", values="r2").round(3).to_string())
        est = EmergencePredictor(regressor=self.regressor, random_state=self.seed).fit(table, table)
        info = {
            "models": sorted(archs),
            "regressor": self.regressor,
            "scores": scores.to_dict("records"),
        }
        print(f"wrote {save_predictor(est, self.out, info)}")
        return 0


@dataclass
class PredictCommand:
    """Predict per-layer emergence parameters and curves for an architecture.

    CONFIG is a config.json, a model folder or a Hub repo id (config.json only is fetched).
    Writes the per-layer parameters with bootstrap intervals and derived quantities to OUT,
    and the predicted curves with their 10-90% band to OUT with a _curves suffix.
    """

    config: str
    predictor: str
    out: str = "predicted.csv"
    plot: str | None = None
    max_step: float = 143000.0
    revision: str | None = None

    help = "predict emergence curves for a new architecture"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("config", help="config.json, model folder or Hub repo id")
        p.add_argument("--predictor", required=True, help="file from `massdyn train-predictor`")
        p.add_argument("--out", default="predicted.csv", help="per-layer parameters table")
        p.add_argument("--plot", default=None, help="also draw the curves to this image file")
        p.add_argument("--max-step", type=float, default=143000.0, help="end of the step grid")
        p.add_argument("--revision", default=None, help="Hub revision of CONFIG")

    def run(self) -> int:
        """Predict, write tables, optionally plot."""
        from fitting.emergence import step_grid
        from massdyn.io import write_table
        from predictors import load_predictor, predict_architecture, read_config

        est, info = load_predictor(self.predictor)
        arch = read_config(self.config, revision=self.revision)
        steps = step_grid(self.max_step)
        params, curves = predict_architecture(est, arch, steps)
        out = write_table(params, self.out)
        curves_path = write_table(curves, out.with_name(f"{out.stem}_curves{out.suffix}"))
        print(
            f"{arch.name}: {arch.n_layers} layers (trained on {', '.join(info.get('models', []))})"
        )
        cols = ["layer", "A", "lambda", "gamma", "t0", "K", "t_peak", "peak_in_window"]
        print(params[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"wrote {out} and {curves_path}")
        if self.plot:
            plot_curves(curves, self.plot, arch.name)
            print(f"wrote {self.plot}")
        return 0


def plot_curves(curves, path: str, title: str) -> None:
    """Predicted curve and band per layer, log-x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    layers = sorted(curves["layer"].unique())
    for i, layer in enumerate(layers):
        c = curves[curves["layer"] == layer]
        color = cmap(i / max(1, len(layers) - 1))
        ax.plot(c["step"] + 1, c["predicted"], color=color, label=f"layer {layer}")
        ax.fill_between(c["step"] + 1, c["lower"], c["upper"], color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("training step + 1")
    ax.set_ylabel("predicted top-1 / median")
    ax.set_title(f"{title}: predicted emergence (10-90% band)")
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=150)
    plt.close(fig)
