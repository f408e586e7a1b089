"""``massdyn walk``: measure massive activations across a checkpoint series or a suite."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from massdyn.options import opt
from massdyn.tracker.config import SourceSpec, WalkConfig
from massdyn.tracker.slurm import SlurmConfig


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

    Several SOURCEs (or a suite file such as data/pythia.json) walk a suite: one folder per
    model under DIR, merged into DIR/<model>/measurements.csv and DIR/measurements.csv.
    --shard K/N walks a deterministic 1/N of the suite's (source, revision) units, balanced
    by download size (inside a Slurm array task K and N come from the task); --jobs N runs
    the N shards as processes here and merges them.
    """

    source: SourceSpec = field(metadata={"flatten": True})
    walk: WalkConfig = field(default_factory=WalkConfig, metadata={"flatten": True})
    shard: str | None = opt(
        None, "walk shard K of N of the suite's units (K from 0)", metavar="K/N"
    )
    jobs: int = opt(
        1, "run the suite as N shard processes here, then merge (with --slurm: array tasks)"
    )
    slurm: SlurmConfig = field(default_factory=SlurmConfig, metadata={"flatten": True})

    def run(self) -> int:
        """Walk and print a summary."""
        from massdyn.tracker.suite import parse_shard

        if not self.source.source:
            raise ValueError("give at least one SOURCE (a Hub repo id or a series folder)")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        shard = parse_shard(self.shard)
        if not (self.source.is_suite or shard is not None or self.jobs > 1):
            from massdyn.tracker.walker import walk

            quiet_transformers()
            summary = walk(self.source.open(), self.walk)
            print(summary.describe())
            return 1 if summary.failed else 0
        if self.source.name:
            raise ValueError("--name names one series; the models of a suite keep their own names")
        # Shards and array tasks check again when each walk starts; refuse here before
        # anything is planned or submitted.
        self.walk.check_files()
        if self.source.revision_pattern:
            raise ValueError(
                "--revision-pattern applies to one SOURCE; walk the suite's series one by one"
            )
        if self.slurm.slurm:
            if self.shard is not None:
                raise ValueError(
                    "--slurm shares the units among its tasks; give it without --shard"
                )
            return self._submit()
        if self.jobs > 1:
            if shard is not None:
                raise ValueError("--jobs runs every shard; give it without --shard")
            return self._local_jobs()
        from massdyn.tracker.suite import walk_suite

        quiet_transformers()
        summaries = walk_suite(self.source.source, self.walk, shard)
        for s in summaries:
            print(s.describe())
        if shard is None:
            print(f"merged: {self.walk.out}/measurements.csv")
        elif not os.environ.get("MASSDYN_JOBS_PARENT"):  # under --jobs the parent merges
            print(
                f"shard {shard[0]}/{shard[1]} done; when every shard is, run: massdyn merge "
                f"{self.walk.out}"
            )
        return 1 if any(s.failed for s in summaries) else 0

    def _submit(self) -> int:
        """Submit the missing units as one Slurm job array and say how to follow it."""
        from dataclasses import replace
        from pathlib import Path

        from massdyn.tracker.slurm import submit

        config = replace(self.walk, out=str(Path(self.walk.out).resolve()))
        jobs, logs, n = submit(
            self.source.source, config, self.slurm, self.jobs if self.jobs > 1 else None
        )
        if not jobs:
            print(f"nothing to submit: every unit of the suite is measured in {config.out}")
            return 0
        job_id = jobs[0].job_id.split("_")[0]
        print(
            f"submitted job array {job_id}: {len(jobs)} task(s) for {n} unit(s), at most "
            f"{self.slurm.max_parallel} at once\nlogs: {logs}/{job_id}_*\nfollow: squeue -j "
            f"{job_id}; massdyn status {config.out}\nwhen done: massdyn merge {config.out} "
            "(rerun this command first to resubmit what a preemption or scancel left)"
        )
        return 0

    def _local_jobs(self) -> int:
        """The suite's N shards as processes here (one GPU each where there are several)."""
        import os
        import subprocess
        import sys
        from dataclasses import replace
        from pathlib import Path

        from massdyn.options import dump, resolved
        from massdyn.tracker.suite import merge, open_sources, plan_units, record_suite_plan

        units = plan_units(open_sources(self.source.source), self.walk.steps)
        record_suite_plan(Path(self.walk.out), units, self.jobs)  # refused before any start
        folder = Path(self.walk.out) / "plans"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "jobs.yaml"
        config.write_text(dump(resolved(replace(self, jobs=1, shard=None))))
        gpus = _gpu_count()
        procs = []
        for k in range(self.jobs):
            env = dict(os.environ, MASSDYN_JOBS_PARENT="1")  # the parent merges, not the user
            if gpus > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(k % gpus)
            cmd = [sys.executable, "-m", "massdyn.cli", "walk", "--config", str(config)]
            procs.append(subprocess.Popen([*cmd, "--shard", f"{k}/{self.jobs}"], env=env))
        try:
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:  # the shards got it too: let them record what they have
            codes = [p.wait() for p in procs] + [130]
        if 130 in codes:  # a shard interrupted (its parent's own Ctrl-C may have been dropped)
            raise KeyboardInterrupt(
                "every shard stopped after recording what it had measured; rerun the same "
                "command to resume"
            ) from None
        table = merge(self.walk.out)
        print(_status_line(table))
        print(f"merged: {self.walk.out}/measurements.csv")
        return max(codes) if max(codes) in (0, 1) else 1


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def _status_line(table) -> str:
    counts = table["state"].value_counts()
    return f"{len(table)} units: " + ", ".join(f"{n} {k}" for k, n in counts.items())


def _print_units(table) -> int:
    """One line per unit of ``table`` (a suite status); returns how many."""
    for r in table.itertuples():
        print(f"  {r.model} step {r.step}: {r.state}{': ' + r.reason if r.reason else ''}")
    return len(table)


@dataclass
class MergeCommand:
    """Merge the shards of suite walks into one table per model and one for the suite.

    Refuses shards of one model whose inputs (sha256), tokenizer or dtype differ, naming the
    difference. Idempotent. Lists the planned units that no shard has measured yet.
    """

    folders: list[str] = opt(help="suite results folder(s) (walk --out)", positional=True)

    def run(self) -> int:
        """Merge each folder; exit 1 when units are still pending or failed."""
        from massdyn.tracker.suite import merge

        if not self.folders:
            raise ValueError("give the suite folder(s) to merge (the --out of the walk)")
        unfinished = 0
        for folder in self.folders:
            table = merge(folder)
            print(f"{folder}: {_status_line(table)}")
            unfinished += _print_units(table[table["state"].isin(["pending", "failed"])])
        return 1 if unfinished else 0


@dataclass
class StatusCommand:
    """Per-unit state of a suite walk (done, failed with its reason, pending).

    Read from the result files (plans and the shards' checkpoints), not from Slurm.
    """

    folder: str = opt(help="suite results folder (walk --out)", positional=True)

    def run(self) -> int:
        """Print the counts, the failed units with reasons and the pending ones."""
        from massdyn.tracker.suite import status

        table = status(self.folder)
        print(_status_line(table))
        _print_units(table[table["state"] != "done"])
        return 0
