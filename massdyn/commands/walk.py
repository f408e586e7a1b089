"""``massdyn walk``: measure massive activations across a checkpoint series."""

from __future__ import annotations

from dataclasses import dataclass, field

from massdyn.tracker.config import SourceSpec, WalkConfig


def quiet_transformers() -> None:
    """One bar per walk is enough: silence transformers' per-checkpoint loading bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@dataclass
class WalkCommand:
    """Walk a checkpoint series and record massive-activation statistics per layer.

    SOURCE is a Hub repo with step<N> branches or a folder of checkpoint folders. Per layer
    and sequence: the top-3 |activation| with positions, the median and the mean, into
    DIR/measurements.csv; the resolved settings into DIR/config.yaml (reusable with
    --config). Resumable: rerun the same command to continue. Exits 1 when any checkpoint
    failed (the others are measured and recorded with reasons).
    """

    source: SourceSpec = field(metadata={"flatten": True})
    walk: WalkConfig = field(default_factory=WalkConfig, metadata={"flatten": True})

    def run(self) -> int:
        """Walk and print a summary."""
        self.walk.check()  # before torch and transformers load: bad options answer at once
        from massdyn.tracker.walker import walk

        quiet_transformers()
        summary = walk(self.source.open(), self.walk)
        print(summary.describe())
        return 1 if summary.failed else 0
