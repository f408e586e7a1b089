"""``massdyn figures``: the paper's figure set from any measurements of the right shape."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class FiguresCommand:
    """Draw figures 1-10 of arXiv 2508.03616 (PNG and PDF) from measurements and fits.

    With no inputs, draws the shipped mini-suite. PARAMS defaults to fitting the ratio series
    of MEASUREMENTS on the spot. CONFIGS (one config per model) enables the parameter-count
    axis and the attribution figures; PREDICTOR overlays predicted curves on figure 6.
    """

    measurements: str | None = None
    params: str | None = None
    configs: str | None = None
    predictor: str | None = None
    out: str = "figures"

    help = "draw the paper's figure set"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("--measurements", default=None, help="measurements table (default: shipped)")
        p.add_argument("--params", default=None, help="fitted parameters (default: fit now)")
        p.add_argument("--configs", default=None, help="folder of <model>.json configs")
        p.add_argument("--predictor", default=None, help="predictor file to overlay predictions")
        p.add_argument("--out", default="figures", help="output folder")

    def run(self) -> int:
        """Load, draw, list what was written."""
        from massdyn.figures import load_figure_data

        data = load_figure_data(self.measurements, self.params, self.configs, self.predictor)
        written = draw_figures(data, self.out)
        print(f"wrote {len(written)} figures (PNG and PDF) to {self.out}")
        return 0


def draw_figures(data, out) -> dict:
    """Draw every figure into ``out`` and print each path."""
    from massdyn.figures import draw_all

    written = draw_all(data, out)
    for name, paths in written.items():
        print(f"{name}: {paths[0]}")
    return written
