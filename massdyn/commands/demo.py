"""``massdyn demo``: the main job end to end on a small embedded series, offline."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEMO_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000)


@dataclass
class DemoCommand:
    """Walk a small checkpoint series with the real walker, then fit every layer.

    The series is generated on the spot: tiny GPT-NeoX checkpoints with a planted,
    growing activation (not a trained model), so the demo runs offline in seconds.
    """

    out: str = "demo-output"

    help = "run the main job end to end on a small embedded series"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")

    def run(self) -> int:
        """Generate, walk, fit, and print where everything is."""
        from fitting import fit_measurements
        from massdyn.commands.walk import quiet_transformers
        from massdyn.io import write_table
        from tracker.inputs import InputSpec
        from tracker.sources import LocalSource
        from tracker.synthetic import SAMPLE_TEXT, tiny_config, write_series
        from tracker.walker import WalkConfig, walk

        quiet_transformers()
        out = Path(self.out)
        series = out / "series" / "tiny-neox"
        if not series.exists():
            print(f"writing {len(DEMO_STEPS)} synthetic checkpoints to {series}")
            write_series(series, DEMO_STEPS, config=tiny_config(n_layers=4, hidden=64))
        text = out / "corpus.txt"
        text.write_text(SAMPLE_TEXT * 200)
        config = WalkConfig(
            out=str(out / "walk"),
            inputs=InputSpec(n_seqs=4, seq_len=128, text=str(text), prepend_bos=True),
        )
        summary = walk(LocalSource(series), config)
        print(summary.describe())
        measurements = (out / "walk" / "measurements.csv").resolve()
        import pandas as pd

        params = fit_measurements(pd.read_csv(measurements), "ratio")
        path = write_table(params, out / "params.csv")
        print(f"\nfitted the top1/median ratio of every layer -> {path}")
        cols = ["layer", "A", "lambda", "gamma", "t0", "K", "r2", "status"]
        print(params[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        first = pd.read_csv(measurements).query("step == 0 or step == @DEMO_STEPS[-1]")
        ratio = first.groupby(["step", "layer"]).apply(
            lambda g: g["top1"].mean() / g["median"].mean()
        )
        print("\ntop1/median ratio at the first and last step, per layer:")
        print(ratio.unstack("step").to_string(float_format=lambda v: f"{v:.1f}"))
        return 1 if summary.failed else 0
