"""``massdyn demo``: the main job end to end on the embedded mini-suite, offline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from massdyn.options import opt

DEFAULT_MEMBER = "mini-d128-l4-h4"


def _indented(line: str) -> None:
    print(f"      {line}")


DEFAULT_HELD_OUT = "mini-d128-l4-h8"


@dataclass
class DemoCommand:
    """The main job end to end, into one folder.

    Train a mini-suite member briefly, walk its checkpoints, fit every layer, predict an
    unseen architecture from the shipped mini-suite, and draw the figures.
    """

    out: str = opt("demo-output", "output folder")
    member: str = opt(DEFAULT_MEMBER, "mini-suite member to train")
    steps: int = opt(600, "training steps of that member")
    held_out: str = opt(DEFAULT_HELD_OUT, "member the predictor does not see")
    text: str | None = opt(None, "train on this text file, not the corpus")

    def run(self) -> int:
        """Run every stage, printing where each output went and the headline numbers."""
        import pandas as pd

        from massdyn.commands.figures import draw_figures
        from massdyn.commands.walk import quiet_transformers
        from massdyn.demo import (
            heldout_prediction,
            train_series,
            walk_series,
            walker_matches_live,
        )
        from massdyn.figures import (
            FigureData,
            figure6,
            figure12,
            figure13,
            figure14,
            figure15,
            load_figure_data,
            save,
        )
        from massdyn.fitting import fit_measurements
        from massdyn.fitting.report import emergence_report
        from massdyn.io import write_table
        from massdyn.minisuite import shipped_data
        from massdyn.tracker.config import MECHANISM_TABLES

        quiet_transformers()
        out = Path(self.out)
        t0 = time.perf_counter()
        fmt = {"float_format": lambda v: f"{v:.3g}", "index": False}

        print(f"[1/5] training {self.member} for {self.steps} steps on CPU (checkpoints saved)")
        run = train_series(
            out, self.member, self.steps, self.text, log=lambda *_: None, note=_indented
        )
        print(f"      live measurements: {run / 'live' / 'measurements.csv'}")

        print("[2/5] walking the saved checkpoints with the walker (and the mechanisms)")
        walked = walk_series(run, out / "walk")
        diff = walker_matches_live(walked, run)
        print(
            f"      {out / 'walk' / 'measurements.csv'}: {walked['step'].nunique()} "
            f"checkpoints; walker vs live tracker, largest relative difference {diff:.1e}"
        )
        mechanisms = {name: pd.read_csv(out / "walk" / f"{name}.csv") for name in MECHANISM_TABLES}
        print(
            "      "
            + ", ".join(str(out / "walk" / f"{name}.csv") for name in mechanisms)
            + ": attention sinks, super weights, interventions"
        )

        print("[3/5] fitting the emergence function to every layer's top1/median ratio")
        params = fit_measurements(walked, "ratio")
        write_table(params, out / "walk_params.csv")
        ratios = emergence_report(walked).merge(params[["layer", "r2"]], on="layer")
        cols = ["layer", "ratio_first", "ratio_last", "growth", "fixed_share", "token_share", "r2"]
        print(ratios[cols].to_string(**fmt))
        print(f"      -> {out / 'walk_params.csv'}")

        print(f"[4/5] curve predictor trained on the shipped mini-suite without {self.held_out}")
        suite = shipped_data()
        data = load_figure_data()
        curves, scores = heldout_prediction(data.measurements, suite / "configs", self.held_out)
        write_table(curves, out / "heldout_curves.csv")
        write_table(scores, out / "heldout_scores.csv")
        print(scores.to_string(**fmt))
        print(
            f"      mean curve R^2 of {self.held_out}: {scores['curve_r2'].mean():.3f} "
            f"-> {out / 'heldout_scores.csv'}"
        )

        print("[5/5] figures of the shipped mini-suite, with the held-out prediction")
        data.predicted = curves
        written = draw_figures(data, out / "figures")
        heldout = save(figure6(data, [self.held_out]), out / "figures", "heldout_prediction")
        print(f"heldout_prediction: {heldout[0]}")
        walk_data = FigureData(
            walked, params, tokens_per_step=data.tokens_per_step, tables=mechanisms
        )
        walk_fig = save(figure6(walk_data, [walked["model"].iloc[0]]), out / "figures", "walk_fits")
        print(f"walk_fits: {walk_fig[0]}")
        walk_figures = {
            "walk_sinks": figure12,
            "walk_outlier_overlap": figure13,
            "walk_interventions": figure14,
            "walk_super_weights": figure15,
        }
        for name, figure in walk_figures.items():
            print(f"{name}: {save(figure(walk_data), out / 'figures', name)[0]}")
        figures = len(written) + 2 + len(walk_figures)
        print(
            f"\ndone in {time.perf_counter() - t0:.0f} s: {figures} figures and the tables "
            f"above are in {out}/"
        )
        return 0
