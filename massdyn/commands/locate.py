"""``massdyn locate``: where the massive activations sit, per step and layer."""

from __future__ import annotations

from dataclasses import dataclass

from massdyn.io import keep_duplicates_option
from massdyn.options import opt


@dataclass
class LocateCommand:
    """Where the top entries sit over training, from any walker-format measurements table.

    Per (model, step, layer): the share of sequences whose top-1 entry is on the first
    token, the most common top-1 dimension and its share, the outlier dimensions (every
    dimension among the sequences' top-3) and how they turn over: their overlap (Jaccard)
    with the previous measured step's and with the last step's.
    """

    measurements: str = opt(help="measurements table (.csv or .parquet)", positional=True)
    out: str = opt("locations.csv", "table to write")
    keep_duplicates: bool = keep_duplicates_option()

    def run(self) -> int:
        """Compute, write, summarise the last step per model."""
        from pathlib import Path

        from massdyn.fitting.report import locations
        from massdyn.fitting.series import check_measurements
        from massdyn.io import read_measurements, refuse_overwriting_inputs, write_table

        refuse_overwriting_inputs(Path(self.out), self.measurements)
        table = read_measurements(self.measurements, self.keep_duplicates)
        check_measurements(table)
        loc = locations(table)
        path = write_table(loc, self.out)
        last = loc[loc["step"] == loc.groupby("model")["step"].transform("max")]
        for r in last.itertuples():
            print(
                f"{r.model} layer {r.layer} at step {r.step:g}: top-1 on the first token in "
                f"{r.on_first_token:.0%} of sequences, in dim {r.top_dim} in "
                f"{r.top_dim_share:.0%}"
            )
        print(f"wrote {path}")
        return 0
