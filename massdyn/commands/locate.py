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
    with the previous measured step's and with the last step's; with an attention table
    (walk --attention), position 0's hidden-state norm. With a super-weights table (walk
    --super-weights), also where each layer's super weight sits and how long it stays
    there (OUT with a _superweights suffix).
    """

    measurements: str = opt(help="measurements table (.csv or .parquet)", positional=True)
    out: str = opt("locations.csv", "table to write")
    attention: str | None = opt(
        None, "attention table for position 0's norm (default: attention.csv beside the input)"
    )
    super_weights: str | None = opt(
        None, "super-weights table (default: superweights.csv beside the input)"
    )
    keep_duplicates: bool = keep_duplicates_option()

    def run(self) -> int:
        """Compute, write, summarise the last step per model."""
        from pathlib import Path

        from massdyn.fitting.report import (
            locations,
            super_weight_persistence,
            with_position0_norm,
        )
        from massdyn.fitting.series import check_measurements
        from massdyn.io import read_measurements, read_table, refuse_overwriting_inputs, write_table

        out = Path(self.out)
        sw_out = out.with_name(f"{out.stem}_superweights{out.suffix}")
        beside = Path(self.measurements).parent
        attention = self.attention or _present(beside / "attention.csv")
        super_weights = self.super_weights or _present(beside / "superweights.csv")
        refuse_overwriting_inputs([out, sw_out], [self.measurements, attention, super_weights])
        table = read_measurements(self.measurements, self.keep_duplicates)
        check_measurements(table)
        loc = locations(table)
        if attention:
            loc = with_position0_norm(loc, read_table(attention))
        path = write_table(loc, self.out)
        if super_weights:
            persistence = super_weight_persistence(read_table(super_weights))
            write_table(persistence, sw_out)
            for r in persistence[persistence["stood_out"] > 0].itertuples():
                print(
                    f"{r.model} layer {r.layer}: super weight W[{r.row}, {r.col}] stands out in "
                    f"{r.stood_out} of {r.of} checkpoints (step {r.first_step:g} to "
                    f"{r.last_step:g})" + ("" if r.at_last else "; not at the last checkpoint")
                )
            print(f"wrote {sw_out}")
        last = loc[loc["step"] == loc.groupby("model")["step"].transform("max")]
        for r in last.itertuples():
            print(
                f"{r.model} layer {r.layer} at step {r.step:g}: top-1 on the first token in "
                f"{r.on_first_token:.0%} of sequences, in dim {r.top_dim} in "
                f"{r.top_dim_share:.0%}"
            )
        print(f"wrote {path}")
        return 0


def _present(path):
    """``path`` as a string if the file exists, else None."""
    return str(path) if path.exists() else None
