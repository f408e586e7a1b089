"""Suite walks as one Slurm job array, through submitit (what Hydra's Slurm launcher uses).

The submitting process plans the suite's units, leaves out those any earlier run has
measured (read from the result files), shares the rest among the array's tasks balanced
by download size, and submits one array whose tasks each walk their units into their own
shard folders. ``max_parallel`` bounds the tasks running at once, and so the concurrent Hub
downloads. Rerunning the same command after preemption, a node failure or ``scancel``
submits only what is still missing; ``massdyn status DIR`` reads progress from the files,
``massdyn merge DIR`` combines the shards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SlurmConfig:
    """Where and how the array runs.

    Attributes:
        slurm: Submit the suite as a Slurm job array instead of walking here.
        partition: Slurm partition (None: the cluster's default).
        gpus_per_task: GPUs per array task (0: none, for CPU partitions).
        time: Time limit per task, ``[D-]HH:MM:SS`` or minutes.
        max_parallel: Most tasks running at once (and so concurrent Hub downloads).
        slurm_extra: Further ``#SBATCH`` settings as ``KEY=VALUE`` (e.g. ``account=lab``).
    """

    slurm: bool = field(
        default=False, metadata={"help": "submit the suite as a Slurm job array (submitit)"}
    )
    partition: str | None = field(
        default=None, metadata={"help": "Slurm partition (default: the cluster's)"}
    )
    gpus_per_task: int = field(default=0, metadata={"help": "GPUs per array task"})
    time: str = field(
        default="2:00:00", metadata={"help": "time limit per task ([D-]HH:MM:SS or minutes)"}
    )
    max_parallel: int = field(
        default=16, metadata={"help": "most array tasks running at once (bounds Hub downloads)"}
    )
    slurm_extra: tuple[str, ...] = field(
        default=(), metadata={"help": "more #SBATCH settings, KEY=VALUE", "metavar": "KEY=VALUE"}
    )

    def minutes(self) -> int:
        """``time`` in minutes.

        Raises:
            ValueError: naming the accepted forms.
        """
        m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})|(\d+)", self.time.strip())
        if not m:
            raise ValueError(f"--time {self.time!r}: give [D-]HH:MM:SS (e.g. 2:00:00) or minutes")
        if m.group(5):
            return int(m.group(5))
        days, h, mi, sec = (int(g or 0) for g in m.groups()[:4])
        return days * 1440 + h * 60 + mi + (1 if sec else 0)

    def extra(self) -> dict[str, str]:
        """``slurm_extra`` as a mapping.

        Raises:
            ValueError: for an item that is not KEY=VALUE.
        """
        out = {}
        for item in self.slurm_extra:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--slurm-extra {item!r}: give KEY=VALUE, e.g. account=mylab")
            out[key.replace("-", "_")] = value
        return out


def _task(specs, units, config, name):
    """One array task: walk its units (runs on the node, in a fresh interpreter)."""
    from massdyn.tracker.suite import walk_units

    summaries = walk_units(specs, units, config, name)
    return {s.model: {"ok": len(s.ok), "failed": len(s.failed)} for s in summaries}


def submit(specs: list[str], config, slurm: SlurmConfig, tasks: int | None = None):
    """Submit the suite's missing units as one job array.

    Args:
        specs: The suite's sources.
        config: Walk settings (``out`` is the suite folder, absolute on the nodes).
        slurm: Where and how the array runs.
        tasks: Array size (None: one task per missing unit).

    Returns:
        ``(jobs, log folder, units submitted)``; ``jobs`` is empty when nothing is missing.
    """
    import submitit

    from massdyn.tracker.suite import assign, pending_units, write_plan

    if slurm.max_parallel < 1:
        raise ValueError(f"--max-parallel must be at least 1, got {slurm.max_parallel}")
    minutes, extra = slurm.minutes(), slurm.extra()
    units = pending_units(specs, config)
    logs = Path(config.out).resolve() / "slurm-logs"
    if not units:
        return [], logs, 0
    n = min(tasks or len(units), len(units))
    shards = [s for s in assign(units, n) if s]
    run = time_name()
    executor = submitit.SlurmExecutor(folder=str(logs / "%j"))
    params = dict(time=minutes, array_parallelism=slurm.max_parallel, job_name="massdyn-walk")
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.gpus_per_task:
        params["gpus_per_task"] = slurm.gpus_per_task
    if extra:
        params["additional_parameters"] = extra
    executor.update_parameters(**params)
    names = [f"{run}-{k}-of-{len(shards)}" for k in range(len(shards))]
    for name, units_of in zip(names, shards, strict=True):  # pending until a task runs
        write_plan(Path(config.out), name, units_of)
    jobs = executor.map_array(_task, [specs] * len(shards), shards, [config] * len(shards), names)
    return jobs, logs, len(units)


def time_name() -> str:
    """A name for one submission's shards: ``slurm-<UTC time>``."""
    import time

    return time.strftime("slurm-%Y%m%dT%H%M%S", time.gmtime())


__all__ = ["SlurmConfig", "submit"]
