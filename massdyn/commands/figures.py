"""``massdyn figures``: the paper's figure set from any measurements of the right shape."""

from __future__ import annotations

from dataclasses import dataclass

from massdyn.io import keep_duplicates_option, time_option
from massdyn.options import opt


@dataclass
class FiguresCommand:
    """Draw figures 1-10 of arXiv 2508.03616 (PNG and PDF) from measurements and fits.

    With no inputs, draws the shipped mini-suite. PARAMS defaults to fitting the ratio series
    of MEASUREMENTS on the spot. CONFIGS (one config per model) enables the parameter-count
    axis and the attribution figures; PREDICTOR overlays predicted curves on figure 6.
    """

    measurements: list[str] = opt(
        help="measurements table(s) (default: shipped)", nargs="+", default=()
    )
    params: str | None = opt(None, "fitted parameters (default: fit now)")
    configs: list[str] = opt(help="folder(s) of <model>.json configs", nargs="+", default=())
    predictor: str | None = opt(None, "predictor file to overlay predictions")
    out: str = opt("figures", "output folder")
    keep_duplicates: bool = keep_duplicates_option()
    time: str = time_option()
    by: str = opt(
        "model",
        "draw each model, or each architecture with its seeds pooled and a band across them "
        "(needs configs: --configs, or the shipped suite's)",
        choices=("model", "architecture"),
    )

    def run(self) -> int:
        """Load, draw, list what was written."""
        from massdyn.figures import load_figure_data

        data = load_figure_data(
            list(self.measurements) or None,
            self.params,
            list(self.configs) or None,
            self.predictor,
            self.keep_duplicates,
            time=self.time,
            by=self.by,
        )
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
