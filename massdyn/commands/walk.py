"""``massdyn walk``: measure massive activations across a checkpoint series."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from tracker.config import DTYPE_NAMES


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
    DIR/measurements.csv. Resumable: rerun the same command to continue. Exits 1 when any
    checkpoint failed (the others are measured and recorded with reasons).
    """

    source: str
    steps: str = "all"
    min_step: int | None = None
    max_step: int | None = None
    seqs: int = 10
    seq_len: int = 2048
    text: str | None = None
    dataset: str | None = None
    dataset_revision: str | None = None
    token_ids: str | None = None
    bos: bool = False
    seed: int = 1
    out: str = "massdyn-walk"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None
    keep_cache: bool = False
    disk_budget: float | None = None
    no_prefetch: bool = False
    tokenizer: str | None = None
    trust_remote_code: bool = False
    name: str | None = None
    parquet: bool = False

    help = "measure massive activations across a checkpoint series"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Declare the command's options."""
        p.add_argument("source", help="Hub repo id (org/name) or a folder of checkpoint folders")
        p.add_argument(
            "--steps",
            default="all",
            help="all | paper (about 37 spread over training) | every:K | comma list (default all)",
        )
        p.add_argument("--min-step", type=int, default=None, help="skip steps below this")
        p.add_argument("--max-step", type=int, default=None, help="skip steps above this")
        p.add_argument(
            "--seqs", type=int, default=10, help="number of input sequences (default 10)"
        )
        p.add_argument(
            "--seq-len", type=int, default=2048, help="tokens per sequence (default 2048)"
        )
        src = p.add_mutually_exclusive_group()
        src.add_argument("--text", help="local text file to draw the sequences from")
        src.add_argument("--dataset", help="Hub dataset id (default: the paper's RedPajama sample)")
        src.add_argument("--token-ids", help=".npy integer array (N x L) used as given")
        p.add_argument("--dataset-revision", default=None, help="revision of --dataset")
        p.add_argument("--bos", action="store_true", help="prepend the BOS token to every sequence")
        p.add_argument("--seed", type=int, default=1, help="seed of the sequence draw (default 1)")
        p.add_argument(
            "--out", default="massdyn-walk", help="results folder (default massdyn-walk)"
        )
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        p.add_argument("--dtype", default="auto", choices=["auto", *DTYPE_NAMES])
        p.add_argument(
            "--batch-size", type=int, default=None, help="sequences per pass (default: 32k tokens)"
        )
        p.add_argument("--keep-cache", action="store_true", help="keep downloaded revisions")
        p.add_argument(
            "--disk-budget", type=float, default=None, metavar="GB", help="most GB held at once"
        )
        p.add_argument("--no-prefetch", action="store_true", help="download and measure in turn")
        p.add_argument(
            "--tokenizer", default=None, help="tokenizer path or repo (default: the series')"
        )
        p.add_argument(
            "--trust-remote-code", action="store_true", help="run model code from the checkpoint"
        )
        p.add_argument(
            "--name", default=None, help="series name in the results (default: repo or folder)"
        )
        p.add_argument("--parquet", action="store_true", help="also write measurements.parquet")

    def run(self) -> int:
        """Walk and print a summary."""
        from tracker.config import WalkConfig
        from tracker.inputs import InputSpec
        from tracker.schedule import StepSelection
        from tracker.sources import open_source

        config = WalkConfig(
            out=self.out,
            steps=StepSelection.parse(self.steps, self.min_step, self.max_step),
            inputs=InputSpec(
                n_seqs=self.seqs,
                seq_len=self.seq_len,
                text=self.text,
                dataset=self.dataset,
                dataset_revision=self.dataset_revision,
                token_ids=self.token_ids,
                prepend_bos=self.bos,
                seed=self.seed,
            ),
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            keep_cache=self.keep_cache,
            disk_budget_gb=self.disk_budget,
            prefetch=not self.no_prefetch,
            tokenizer=self.tokenizer,
            trust_remote_code=self.trust_remote_code,
            parquet=self.parquet,
        )
        config.check()  # before torch and transformers load: bad options answer at once
        from tracker.walker import walk

        quiet_transformers()
        source = open_source(self.source, keep_cache=self.keep_cache, name=self.name)
        summary = walk(source, config)
        print(summary.describe())
        return 1 if summary.failed else 0
