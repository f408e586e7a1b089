"""Checkpoint schedules and step selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from massdyn.data import read_json


@cache
def pythia_facts() -> dict:
    """The Pythia suite description shipped in ``data/pythia.json``."""
    return read_json("pythia.json")


def pythia_steps() -> list[int]:
    """The 154 public Pythia revisions: step0, 1, 2, 4, ..., 512, then every 1000 to 143000."""
    return Schedule.from_data(pythia_facts()["schedule"]).steps()


@dataclass(frozen=True)
class Schedule:
    """The checkpoints a suite declares it published: what an audit calls ``missing`` against.

    Attributes:
        every: Steps between two checkpoints of the regular part.
        first: The regular part's first step.
        last: Its last step; None: the last step the series lists (a grid declared without
            its end, such as "every 1000 steps").
        log_steps: Extra early steps (Pythia's 0, 1, 2, 4, ..., 512).
    """

    every: int
    first: int = 0
    last: int | None = None
    log_steps: tuple[int, ...] = ()

    @classmethod
    def from_data(cls, data) -> Schedule:
        """A schedule from a suite file's ``"schedule"``.

        Accepted: ``"pythia"`` (the one in ``data/pythia.json``), ``{"every", "first",
        "last", "log_steps"}``, or Pythia's ``{"linear_every", "linear_start",
        "linear_stop", "log_steps"}``.

        Raises:
            ValueError: naming the accepted forms.
        """
        if data == "pythia":
            data = pythia_facts()["schedule"]
        if not isinstance(data, dict):
            data = {}
        every = data.get("every", data.get("linear_every"))
        if not isinstance(every, int) or every < 1:
            raise ValueError(
                f'schedule {data!r}: give "pythia", or {{"every": N}} with optional "first", '
                '"last" and "log_steps" (steps, N >= 1)'
            )
        return cls(
            every=every,
            first=int(data.get("first", data.get("linear_start", 0))),
            last=data.get("last", data.get("linear_stop")),
            log_steps=tuple(int(s) for s in data.get("log_steps", ())),
        )

    def steps(self, last_listed: int | None = None) -> list[int]:
        """Every declared step, the grid ending at ``last`` (else at ``last_listed``)."""
        last = self.last if self.last is not None else last_listed
        grid = range(self.first, last + 1, self.every) if last is not None else ()
        return sorted(set(self.log_steps) | set(grid))


def is_pythia(repo_id: str) -> bool:
    """True for ``EleutherAI/pythia-*`` repos, whose schedule is known without listing."""
    org, _, name = repo_id.partition("/")
    return org == pythia_facts()["organisation"] and name.startswith("pythia-")


def known_tokens_per_step(series: str) -> int | None:
    """Tokens per optimizer step of a series whose suite ``data/revisions.json`` knows.

    Args:
        series: A repo id (``EleutherAI/pythia-160m``) or a bare model name
            (``pythia-160m``, read as under each entry's organisation).
    """
    return tokens_per_step_source(series)[0]


def tokens_per_step_source(series: str) -> tuple[int | None, str]:
    """:func:`known_tokens_per_step` and where the number comes from (empty if unknown)."""
    import re

    for entry in read_json("revisions.json")["tokens_per_step"]:
        org = entry["repo"].lstrip("^").split("/")[0]
        names = [series] if "/" in series else [series, f"{org}/{series}"]
        if any(re.match(entry["repo"], n) for n in names):
            return int(entry["tokens_per_step"]), f"{entry['source']}; data/revisions.json"
    return None, ""


def shipped_suites() -> list[str]:
    """The names of the suites ``data/suites/`` defines (``massdyn walk pythia``, ...)."""
    from massdyn.data import path

    return sorted(p.stem for p in path("suites").glob("*.json"))


def paper_subset(steps: list[int], n: int | None = None) -> list[int]:
    """About ``n`` steps spread over training as the paper used (default 37).

    Keeps every log-spaced early step (< 1000) and the last step, and fills the rest with
    steps evenly spaced over the remainder of training.
    """
    n = n or pythia_facts()["paper_subset_size"]
    steps = sorted(steps)
    if len(steps) <= n:
        return steps
    early = [s for s in steps if s < 1000]
    late = [s for s in steps if s >= 1000]
    k = max(n - len(early), 2)
    if not late:
        return early[:: max(1, len(early) // n)]
    idx = np.unique(np.round(np.linspace(0, len(late) - 1, k)).astype(int))
    return early + [late[i] for i in idx]


@dataclass(frozen=True)
class StepSelection:
    """Which checkpoints of a series to measure.

    Attributes:
        spec: ``"all"``, ``"paper"`` (about 37 spread over training), ``"every:K"`` (every
            K-th available step) or a comma list of steps (exactly those).
        min_step: Drop steps below this.
        max_step: Drop steps above this.

    ``mode`` (``all``, ``paper``, ``every`` or ``list``), ``every`` and ``steps`` are read
    from ``spec``.
    """

    spec: str = field(
        default="all",
        metadata={
            "help": "all | paper (about 37 spread over training) | every:K | comma list",
            "flag": "--steps",
        },
    )
    min_step: int | None = field(default=None, metadata={"help": "skip steps below this"})
    max_step: int | None = field(default=None, metadata={"help": "skip steps above this"})
    mode: str = field(init=False, repr=False)
    every: int = field(init=False, repr=False)
    steps: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self):
        if (
            self.min_step is not None
            and self.max_step is not None
            and self.min_step > self.max_step
        ):
            raise ValueError(
                f"--min-step {self.min_step} is above --max-step {self.max_step}: no step can "
                "be selected; swap them"
            )
        mode, every, steps = _parse_spec(str(self.spec))
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "every", every)
        object.__setattr__(self, "steps", steps)

    @classmethod
    def parse(cls, spec: str, min_step: int | None = None, max_step: int | None = None):
        """The selection of a CLI spec: ``all``, ``paper``, ``every:K`` or ``0,1000,2000``."""
        return cls(spec, min_step, max_step)

    def select(self, available: list[int]) -> list[int]:
        """Apply the selection to the steps a source offers.

        Raises:
            ValueError: for an unknown mode.
        """
        avail = sorted(set(available))
        lo = self.min_step if self.min_step is not None else -1
        hi = self.max_step if self.max_step is not None else float("inf")
        avail = [s for s in avail if lo <= s <= hi]
        if self.mode == "all":
            return avail
        if self.mode == "paper":
            return paper_subset(avail)
        if self.mode == "every":
            return avail[:: self.every]
        if self.mode == "list":
            # Requested steps the source lacks are kept: the walker records them as missing.
            return sorted(s for s in set(self.steps) if lo <= s <= hi)
        raise ValueError(f"unknown step selection mode {self.mode!r}")


def _parse_spec(spec: str) -> tuple[str, int, tuple[int, ...]]:
    """``(mode, every, steps)`` of a step spec.

    Raises:
        ValueError: naming the accepted forms.
    """
    spec = spec.strip()
    if spec in ("all", "paper"):
        return spec, 1, ()
    if spec.startswith("every:"):
        k = spec.split(":", 1)[1]
        if not k.strip().isdigit() or int(k) < 1:
            raise ValueError(f"--steps every:K needs an integer K >= 1, got {k!r}")
        return "every", int(k), ()
    try:
        steps = tuple(int(s) for s in spec.split(",") if s.strip())
    except ValueError:
        raise ValueError(
            f"--steps must be 'all', 'paper', 'every:K' or a comma list of steps, got {spec!r}"
        ) from None
    if not steps:
        raise ValueError("--steps is empty; give 'all', 'paper', 'every:K' or a comma list")
    return "list", 1, steps
