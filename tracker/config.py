"""Settings and summary of a walk, and the checks that need no model.

This module imports neither torch nor transformers, so the command line can declare and
validate a walk before anything heavy is loaded.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from massdyn.tracker.inputs import InputSpec, absolute_path
from massdyn.tracker.schedule import StepSelection
from massdyn.tracker.sources import looks_like_path

DTYPE_NAMES = ("float32", "float16", "bfloat16")
MECHANISM_TABLES = ("attention", "superweights", "interventions")
SINK_EPSILON = 0.3  # Gu et al.'s threshold on a head's sink share (attention table)
# What identifies a row of each mechanism table within a checkpoint.
MECHANISM_KEYS = {
    "attention": ("layer", "head"),
    "superweights": ("layer",),
    "interventions": ("layer", "mode"),
}


UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def parse_size(text: str) -> int:
    """``8GB``, ``512MiB``, ``1.5e9`` -> bytes.

    Raises:
        ValueError: naming the text and the accepted form.
    """
    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if m is None or unit not in UNITS:
        raise ValueError(
            f"--max-memory {text!r}: give a size such as 8GB, 512MB or 16GiB "
            "(units B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)"
        )
    try:
        return int(float(m.group(1)) * UNITS[unit])
    except ValueError:
        raise ValueError(f"--max-memory {text!r}: {m.group(1)!r} is not a number") from None


DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


@dataclass
class SourceSpec:
    """Which checkpoint series to walk.

    Attributes:
        source: Hub repo ids (``org/name``, branches ``step<N>``), folders of checkpoint
            folders (``step1000/``, ``checkpoint-1000/``, ...), or suite files listing them
            or a shipped suite by name (see :func:`massdyn.tracker.suite.expand_sources`).
        name: The series' name in the results (default: the repo id or the folder's name).
        revision_pattern: A regex with a ``step`` group for revision names the shipped
            grammar (``data/revisions.json``) does not know.
    """

    source: list[str] = field(
        metadata={
            "help": "Hub repo id(s) (org/name), folder(s) of checkpoint folders, a suite "
            "file (*.json) listing them, or a shipped suite's name (pythia, polypythias, ...)",
            "positional": True,
        }
    )
    name: str | None = field(
        default=None, metadata={"help": "series name in the results (default: repo or folder)"}
    )
    revision_pattern: str | None = field(
        default=None,
        metadata={
            "help": "regex naming the checkpoints of a series the shipped grammar does not know, "
            "with a (?P<step>...) group and optionally (?P<tokens>...), (?P<stage>...)",
            "metavar": "REGEX",
        },
    )

    def __post_init__(self):
        if isinstance(self.source, str):  # one source, as a config file may give it
            self.source = [self.source]
        if self.revision_pattern is not None:
            from massdyn.tracker.sources.revisions import compile_pattern

            compile_pattern(self.revision_pattern)  # refused before anything loads

    @property
    def is_suite(self) -> bool:
        """Several sources, or a suite file: a results folder per model."""
        from massdyn.tracker.suite import suite_file

        return len(self.source) > 1 or any(suite_file(s) for s in self.source)

    def open(self):
        """The checkpoint source (a Hub repo or a local folder) this names.

        Raises:
            ValueError: when it names no source or several.
        """
        from massdyn.tracker.sources import open_source

        if len(self.source) != 1:
            raise ValueError(f"expected one SOURCE, got {len(self.source)}")
        return open_source(self.source[0], name=self.name, revision_pattern=self.revision_pattern)


@dataclass(frozen=True)
class Mechanisms:
    """Which mechanisms a walk measures beside the block statistics.

    See :mod:`massdyn.tracker.mechanisms` for what each one records.

    Attributes:
        attention: Attention sink shares per head and position 0's norm (``attention.csv``).
        super_weights: The down-projection's spike per layer (``superweights.csv``).
        interventions: Layers whose top-3 entries are zeroed and mean-substituted
            (``interventions.csv``); ``()`` for none, None for every layer.
    """

    attention: bool = False
    super_weights: bool = False
    interventions: tuple[int, ...] | None = ()

    def tables(self) -> tuple[str, ...]:
        """The names of the tables these mechanisms add (``attention``, ...)."""
        on = (self.attention, self.super_weights, self.interventions != ())
        return tuple(n for n, o in zip(MECHANISM_TABLES, on, strict=True) if o)

    @classmethod
    def parse_layers(cls, text: str | None) -> tuple[int, ...] | None:
        """``--interventions``'s value: None (off) -> ``()``, ``all`` -> None, ``0,3``.

        Raises:
            ValueError: naming the accepted forms.
        """
        if text is None:
            return ()
        if text.strip() in ("", "all"):
            return None
        try:
            layers = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            layers = (-1,)
        if not layers or min(layers) < 0:
            raise ValueError(
                f"--interventions {text!r}: give layer indices from 0 (e.g. 0,3), or no "
                "value for every layer"
            )
        return layers


@dataclass
class WalkConfig:
    """Settings of a walk.

    Attributes:
        out: Results folder.
        steps: Which checkpoints to measure.
        inputs: Evaluation input recipe.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (bfloat16 on GPUs that support it, else float16; float32 on CPU),
            ``float32``, ``float16`` or ``bfloat16``.
        batch_size: Sequences per forward pass; None: as many as fit in 32k tokens (all
            10 x 2048 of the paper's inputs at once).
        keep_cache: Keep the revisions this walk downloads in the Hub cache (revisions
            cached before the walk are never deleted).
        disk_budget_gb: Most gigabytes of downloaded checkpoints held at once (None: no limit).
        max_attempts: A checkpoint that failed in this many walks in a row is not tried
            again (it stays recorded ``failed`` with its reason and ``attempts``).
        duplicates: ``skip``: a Hub revision whose weight files (by the LFS sha256 of the
            Hub's tree, before any download) equal an earlier selected revision's (or
            main's, which belong to the series' last step) is recorded with
            ``duplicate_of`` and not downloaded or measured; ``measure``: measure it anyway,
            its rows flagged with ``duplicate_of``.
        prefetch: Download the next checkpoint while measuring the current one.
        tokenizer: Tokenizer to use instead of the series' own (path or repo id).
        trust_remote_code: Allow model code from the checkpoint (off unless asked).
        progress: Show a progress bar.
        parquet: Also write ``measurements.parquet`` (needs pyarrow).
        max_memory: Largest model (weights in ``dtype``) loaded whole, e.g. ``8GB``; a
            bigger one is measured one decoder block at a time (None: always whole).
        tokens_per_step: Tokens per optimizer step, for ``tokens`` where the revision
            names give none (None: known suites' own, else ``tokens`` stays empty).
        attention: Also record attention sink shares (``attention.csv``).
        super_weights: Also record super weights (``superweights.csv``).
        interventions: Also record the loss with each layer's top-3 entries zeroed and
            mean-substituted (``interventions.csv``): ``all`` or a comma list of layers
            (None: not).
    """

    out: str = field(default="massdyn-walk", metadata={"help": "results folder"})
    steps: StepSelection = field(default_factory=StepSelection)
    inputs: InputSpec = field(default_factory=InputSpec)
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    dtype: str = field(
        default="auto",
        metadata={"help": "weights and activations", "choices": ("auto", *DTYPE_NAMES)},
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "sequences per pass (default: as many as fit in 32k tokens)"},
    )
    keep_cache: bool = field(
        default=False, metadata={"help": "keep the revisions this walk downloads in the Hub cache"}
    )
    disk_budget_gb: float | None = field(
        default=None,
        metadata={
            "help": "most GB of checkpoints held at once",
            "flag": "--disk-budget",
            "metavar": "GB",
        },
    )
    prefetch: bool = field(
        default=True, metadata={"help": "download and measure in turn", "flag": "--no-prefetch"}
    )
    max_attempts: int = field(
        default=3,
        metadata={"help": "stop retrying a checkpoint after it failed this many walks in a row"},
    )
    duplicates: str = field(
        default="skip",
        metadata={
            "help": "revisions whose weights the Hub lists as identical to an earlier one: skip "
            "(recorded with duplicate_of, not downloaded) or measure",
            "choices": ("skip", "measure"),
        },
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer path or repo (default: the series' own)"}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "run model code from the checkpoint"}
    )
    progress: bool = field(default=True, metadata={"cli": False})
    parquet: bool = field(default=False, metadata={"help": "also write measurements.parquet"})
    max_memory: str | None = field(
        default=None,
        metadata={
            "help": "stream models whose weights exceed SIZE one block at a time (e.g. 8GB)",
            "metavar": "SIZE",
        },
    )
    tokens_per_step: int | None = field(
        default=None,
        metadata={
            "help": "tokens per optimizer step (global batch x sequence length), for the tokens "
            "column where revision names do not give tokens (Pythia's is known)",
            "metavar": "N",
        },
    )
    attention: bool = field(
        default=False,
        metadata={"help": "also record each head's attention sink share and position 0's norm"},
    )
    super_weights: bool = field(
        default=False,
        metadata={
            "help": "also record each layer's MLP down-projection spike and the weight behind it"
        },
    )
    interventions: str | None = field(
        default=None,
        metadata={
            "help": "also record the loss with these layers' top-3 entries zeroed and "
            "mean-substituted (comma list; every layer when no value is given)",
            "nargs": "?",
            "const": "all",
            "metavar": "LAYERS",
        },
    )

    def __post_init__(self):
        # Settings are valid from birth: the command line (before torch loads), a config
        # file, a suite's shards and the library get the same refusals. What the files on
        # disk say is checked when a walk starts (check_files).
        self.check()

    @property
    def mechanisms(self) -> Mechanisms:
        """What is measured beside the block statistics."""
        return Mechanisms(
            self.attention, self.super_weights, Mechanisms.parse_layers(self.interventions)
        )

    def check(self) -> None:
        """Refuse settings that cannot work (run on construction).

        Raises:
            ValueError: naming the setting and the fix.
        """
        if self.tokens_per_step is not None and self.tokens_per_step <= 0:
            raise ValueError(
                f"--tokens-per-step must be a positive number of tokens, got {self.tokens_per_step}"
            )
        self.mechanisms  # noqa: B018 - parses --interventions, raising for a bad value
        if not DEVICE_PATTERN.match(self.device):
            raise ValueError(
                f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N (e.g. cuda:1)"
            )
        if self.dtype != "auto" and self.dtype not in DTYPE_NAMES:
            raise ValueError(
                f"unknown dtype {self.dtype!r}; use auto or one of {', '.join(DTYPE_NAMES)}"
            )
        if self.max_memory is not None:
            parse_size(self.max_memory)
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(
                f"--batch-size must be at least 1, got {self.batch_size} "
                "(leave it out for as many sequences as fit in 32k tokens)"
            )
        if self.max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if self.disk_budget_gb is not None and self.disk_budget_gb <= 0:
            raise ValueError(
                f"--disk-budget must be a positive number of GB, got {self.disk_budget_gb}"
            )
        if self.parquet and not _importable("pyarrow"):
            raise ValueError(
                "--parquet needs pyarrow, which is not installed: pip install 'massdyn[parquet]'"
                " (or leave out --parquet; measurements.csv is always written)"
            )

    def check_files(self) -> None:
        """Refuse input files, tokenizer folder or results folder that are not there or wrong.

        Run when a walk starts, before anything is loaded or written (files may be made
        between writing a config and running it).

        Raises:
            ValueError: naming the path and the fix.
        """
        for option, name in (("--text", self.inputs.text), ("--token-ids", self.inputs.token_ids)):
            if name and Path(name).is_dir():
                raise ValueError(f"{option} {name} is a folder; give one file")
            if name and not Path(name).is_file():
                raise ValueError(f"{option} {name}: no such file")
        if self.tokenizer and looks_like_path(self.tokenizer) and not Path(self.tokenizer).exists():
            raise ValueError(f"--tokenizer {self.tokenizer}: no such folder")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, not a folder; name a results folder")


def settings(obj) -> dict:
    """A config dataclass as a ``--config`` file holds it: the one serialiser of settings.

    Fields marked ``cli: False`` are left out; a nested config is a mapping under its
    field's name, or, marked ``flatten``, merged into its parent's (as the command line
    shows its options); tuples become lists.

    Args:
        obj: An instance of a config dataclass (``WalkConfig``, a command, ...).
    """
    out: dict = {}
    for f in fields(obj):
        if not f.init or f.metadata.get("cli", True) is False:
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            inner = settings(value)
            if f.metadata.get("flatten"):
                out.update(inner)
            else:
                out[f.name] = inner
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def walk_settings(source, config: WalkConfig) -> dict:
    """The resolved settings of a walk, in the layout of a ``massdyn walk --config`` file.

    Paths are absolute, so that ``massdyn walk --config DIR/config.yaml`` works from any
    folder.
    """
    tokenizer = config.tokenizer
    if tokenizer and (looks_like_path(tokenizer) or Path(tokenizer).exists()):
        tokenizer = absolute_path(tokenizer)
    absolute = replace(
        config, out=absolute_path(config.out), inputs=config.inputs.absolute(), tokenizer=tokenizer
    )
    return {"source": [source.location], "name": source.name, **settings(absolute)}


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def human_bytes(n: float) -> str:
    """``1234567`` -> ``'1.23 MB'`` (decimal units, as the Hub reports sizes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


@dataclass
class WalkSummary:
    """What a walk did."""

    model: str
    selected: list[int]
    already_done: list[int]
    ok: list[int]
    failed: dict[int, str]
    seconds: float
    out: str
    rows: int
    duplicates: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, int] = field(default_factory=dict)
    saved_bytes: int = 0
    given_up: dict[int, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    stopped: str = ""  # why the walk stopped before its queue was done (the server went away)
    moved: dict[int, tuple[str, str]] = field(default_factory=dict)  # step: (was, is) commit
    tables: tuple[str, ...] = ()  # the mechanism tables written beside the measurements

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.model}: {len(self.selected)} checkpoints selected, "
            f"{len(self.already_done)} already measured, {len(self.ok)} measured now, "
            f"{len(self.failed)} failed, {len(self.duplicates)} duplicates of another step, "
            f"{self.seconds:.1f} s",
            f"results: {self.out}/measurements.csv ({self.rows} rows), {self.out}/checkpoints.csv"
            + "".join(f", {self.out}/{name}.csv" for name in self.tables),
        ]
        lines += [f"  failed step {s}: {r}" for s, r in sorted(self.failed.items())]
        lines += [
            f"  step {s} failed in --max-attempts walks in a row, not tried again: {r}"
            for s, r in sorted(self.given_up.items())
        ]
        lines += [
            f"  step {s} has the same weights as step {d}"
            + (" (not downloaded: recorded as a duplicate)" if s in self.skipped else "")
            for s, d in sorted(self.duplicates.items())
        ]
        lines += [
            f"  step {s}: its revision moved from commit {was[:12]} to {is_[:12]} since it was "
            "measured; measured again"
            for s, (was, is_) in sorted(self.moved.items())
        ]
        if self.stopped:
            lines.append(self.stopped)
        if self.unmatched:
            shown = ", ".join(self.unmatched[:10]) + (", ..." if len(self.unmatched) > 10 else "")
            lines.append(
                f"not walked: {len(self.unmatched)} name(s) in the series match no checkpoint "
                f"pattern: {shown}"
            )
        if self.skipped:
            lines.append(
                f"the audit found {len(self.skipped)} revision(s) identical to another and saved "
                f"{human_bytes(self.saved_bytes)} of downloads (--duplicates measure measures "
                "them anyway)"
            )
        return "\n".join(lines)
