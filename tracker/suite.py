"""Walk a whole suite of series as shards of (source, revision) units, and merge them.

A suite is several sources (Hub repo ids, local series folders, or a suite file listing
them, such as ``data/pythia.json``). The unit of work is one revision of one source. A
shard ``K/N`` (0-based ``K``) walks a deterministic 1/N of all units, balanced by download
size (largest first onto the lightest shard); inside a Slurm array task it takes ``K`` and
``N`` from ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``. Every shard writes its
own ordinary walk folders, so the walk's guarantees (atomic files, resume, identity check)
hold per (model, shard) and no two shards write the same file::

    DIR/plans/suite.json              every unit of the suite (and N for --shard K/N),
                                      recorded when the first shard starts
    DIR/plans/K-of-N.json             the units this shard was given
    DIR/<model>/shards/K-of-N/        an ordinary walk folder of those units
    DIR/<model>/measurements.csv      merged (massdyn merge, or the end of a walk)
    DIR/<model>/checkpoints.csv
    DIR/measurements.csv              every model of the suite

:func:`merge` refuses shards of one model whose inputs (sha256), tokenizer or measurement
settings differ, naming the difference; it is idempotent, and a planned unit that no shard
has measured is listed, not dropped. :func:`status` reads the state of every planned unit
from the result files alone. "Planned" means the whole suite as recorded in
``plans/suite.json`` when the first shard started, not only what the shards that ran were
given: shards that never ran leave their units pending, not forgotten. A later shard whose
suite (its units) or shard count differs is refused, since its K-of-N would cover other
units than the first shards' did. A shard's table cut short (a partial copy) makes the
steps it holds unreadable, listed as failed, never merged as NaN.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from massdyn.tracker.config import MECHANISM_KEYS, MECHANISM_TABLES
from massdyn.tracker.schedule import Schedule, StepSelection, is_pythia, shipped_suites
from massdyn.tracker.store import ResultStore, atomic_csv, atomic_write

SHARDS = "shards"
PLANS = "plans"


@dataclass(frozen=True)
class Unit:
    """One revision of one source: the unit of work."""

    source: str
    model: str
    step: int
    revision: str
    nbytes: int
    duplicate_of: int | None = None  # a Hub revision serving an earlier one's weights


def suite_file(spec: str) -> str | None:
    """The suite file ``spec`` names: itself (``*.json``), or a shipped suite's by name.

    A folder or file of that name in the working directory wins over a shipped suite.
    """
    if spec.endswith(".json"):
        return spec
    if "/" in spec or Path(spec).exists() or spec not in shipped_suites():
        return None
    from massdyn.data import path

    return str(path("suites", f"{spec}.json"))


def expand_sources(specs: list[str]) -> list[str]:
    """Sources, with each suite file (``*.json``) or suite name replaced by its sources.

    A suite file has ``"sources": [...]``, or ``"organisation"`` and ``"models"`` (as
    ``data/pythia.json``: ``EleutherAI/pythia-70m``, ...). A suite name is one of
    :func:`shipped_suites` (``data/suites/<name>.json``).

    Raises:
        ValueError: for a suite file that lists nothing, naming the accepted layouts.
    """
    return [source for source, _ in expand_suites(specs)]


@dataclass(frozen=True)
class SuiteFacts:
    """What a suite file declares of its sources, beyond listing them.

    Attributes:
        suite: The suite file's name ("" for a source named alone).
        schedule: The checkpoints it published (``"schedule"``), or None where unknown.
        revisions: The names of the ``data/revisions.json`` patterns its revisions follow.
        known_faults: Faults of the published series worth knowing before a walk.
    """

    suite: str = ""
    schedule: Schedule | None = None
    revisions: tuple[str, ...] = ()
    known_faults: tuple[str, ...] = ()


def expand_suites(specs: list[str]) -> list[tuple[str, SuiteFacts]]:
    """:func:`expand_sources`, each source with what its suite declares.

    A suite file's ``"schedule"`` (see :meth:`Schedule.from_data`), ``"revisions"`` and
    ``"known_faults"`` hold for all of its sources; a Pythia repo named alone has Pythia's
    schedule. Other sources have no schedule: an audit cannot say which of their
    checkpoints are missing.

    Raises:
        ValueError: for a suite file that lists nothing or declares a bad schedule.
    """
    out = []
    for given in specs:
        spec = suite_file(given)
        if spec is None:
            pythia = Schedule.from_data("pythia") if is_pythia(given) else None
            out.append((given, SuiteFacts(schedule=pythia)))
            continue
        try:
            data = json.loads(Path(spec).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(
                f'{spec} is not a valid suite file ({exc}); it is JSON with a "sources" list, '
                'or "organisation" and "models" as data/pythia.json has'
            ) from None
        if "sources" in data:
            listed = list(data["sources"])
        elif "organisation" in data and "models" in data:
            listed = [f"{data['organisation']}/{m}" for m in data["models"]]
        else:
            raise ValueError(
                f'{spec} lists no sources: give it a "sources" list, or "organisation" '
                'and "models" as data/pythia.json has'
            )
        try:
            schedule = Schedule.from_data(data["schedule"]) if "schedule" in data else None
        except ValueError as exc:
            raise ValueError(f"{spec}: {exc}") from None
        facts = SuiteFacts(
            Path(spec).stem,
            schedule,
            tuple(data.get("revisions", ())),
            tuple(data.get("known_faults", ())),
        )
        out += [(source, facts) for source in listed]
    names = [source for source, _ in out]
    if len(set(names)) < len(names):
        raise ValueError(
            f"a source is listed twice: {sorted(s for s in names if names.count(s) > 1)[0]}"
        )
    return out


def model_dir(name: str) -> str:
    """A model's folder in the suite: ``EleutherAI/pythia-70m`` -> ``EleutherAI--pythia-70m``."""
    return name.replace("/", "--")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` (0 <= K < N), else the Slurm array task's, else None.

    Raises:
        ValueError: naming the accepted form.
    """
    if text is None:
        task, count = (
            os.environ.get("SLURM_ARRAY_TASK_ID"),
            os.environ.get("SLURM_ARRAY_TASK_COUNT"),
        )
        if task is None or count is None:
            return None
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(task) - first, int(count)
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: give K/N, e.g. 0/4 (K from 0 to N-1)") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: K must be from 0 to N-1 (here 0 to {n - 1})")
    return k, n


def plan_units(sources: list, selection: StepSelection) -> list[Unit]:
    """Every selected revision of every source, with its download size."""
    from massdyn.tracker.sources import HubSource

    units = []
    for spec, source in sources:
        available = source.list_steps()
        steps = [s for s in selection.select(list(available)) if s in available]
        twins = {}
        if isinstance(source, HubSource) and steps:  # the listing the walk's audit reads
            from massdyn.tracker.audit import audit

            table = audit(source, steps=steps)
            dup = table[table["status"] == "duplicate"]
            twins = dict(zip(dup["step"].astype(int), dup["duplicate_of"].astype(int), strict=True))
        for step in steps:
            try:
                nbytes = int(source.size_of(available[step]))
            except Exception:  # a revision that cannot be listed fails when walked
                nbytes = 0
            units.append(Unit(spec, source.name, step, available[step], nbytes, twins.get(step)))
    return units


def assign(units: list[Unit], n: int) -> list[list[Unit]]:
    """``n`` shards balanced by bytes: largest unit first onto the lightest shard.

    A revision serving an earlier one's weights goes to its twin's shard. Deterministic:
    ties go to the lower shard, units of equal size in (model, step) order.
    """
    shards: list[list[Unit]] = [[] for _ in range(n)]
    load = [0] * n
    where = {}
    twins = [u for u in units if u.duplicate_of is not None]
    for u in sorted(
        (u for u in units if u.duplicate_of is None), key=lambda u: (-u.nbytes, u.model, u.step)
    ):
        i = min(range(n), key=lambda j: (load[j], len(shards[j]), j))
        shards[i].append(u)
        load[i] += u.nbytes
        where[(u.source, u.step)] = i
    for u in sorted(twins, key=lambda u: (u.model, u.step)):
        # With its twin, so that the shard's audit sees both and skips it (its download
        # costs nothing then); alone when the twin is already measured.
        i = where.get((u.source, u.duplicate_of))
        if i is None:
            i = min(range(n), key=lambda j: (load[j], len(shards[j]), j))
            load[i] += u.nbytes
        shards[i].append(u)
    return [sorted(s, key=lambda u: (u.model, u.step)) for s in shards]


def shard_name(shard: tuple[int, int] | None) -> str:
    """``K-of-N``, or ``all`` for an unsharded suite walk."""
    return "all" if shard is None else f"{shard[0]}-of-{shard[1]}"


def open_sources(specs: list[str]) -> list:
    """``(spec, source)`` for every source of the suite."""
    from massdyn.tracker.sources import open_source

    return [(s, open_source(s)) for s in expand_sources(specs)]


def pending_units(specs: list[str], config) -> list[Unit]:
    """The suite's selected units that no shard in ``config.out`` has measured yet.

    With mechanisms asked for (``--attention``, ...), a unit measured without one of their
    tables is pending too: the walk that takes it measures it again with them.
    """
    units = plan_units(open_sources(specs), config.steps)
    root = Path(config.out)
    record_suite_plan(root, units, None)
    done = status(root)
    done = {(r.model, int(r.step)) for r in done.itertuples() if r.state.startswith("done")}
    tables = config.mechanisms.tables()
    if tables:
        done = {key for key in done if _has_tables(root, *key, tables)}
    return [u for u in units if (u.model, u.step) not in done]


def _has_tables(root: Path, model: str, step: int, tables: tuple[str, ...]) -> bool:
    """Whether a shard of ``model`` holds ``step``'s part of every table in ``tables``."""
    return any(
        all(ResultStore(f, {}).extra_path(name, step).exists() for name in tables)
        for f in _shard_folders(root / model_dir(model))
    )


SUITE_PLAN = "suite.json"


def record_suite_plan(root: Path, units: list[Unit], shards: int | None) -> None:
    """Record every unit of the suite (and the shard count) once; refuse a changed plan.

    Args:
        root: The suite folder.
        units: Every unit of the suite under this walk's selection.
        shards: ``N`` of ``--shard K/N`` (None: a walk that covers every unit itself).

    Raises:
        ValueError: when an earlier shard recorded other units or another ``N``.
    """
    path = Path(root) / PLANS / SUITE_PLAN
    keys = sorted([u.model, u.step, u.revision] for u in units)
    if path.exists():
        recorded = json.loads(path.read_text())
        old = sorted([u["model"], int(u["step"]), u["revision"]] for u in recorded["units"])
        if old != keys:
            gone = len({tuple(k) for k in old} - {tuple(k) for k in keys})
            new = len({tuple(k) for k in keys} - {tuple(k) for k in old})
            raise ValueError(
                f"{root} was planned with {len(old)} units when its first shard started; this "
                f"walk plans {len(keys)} ({new} new, {gone} missing): walk with the same "
                "sources and steps, or into another --out"
            )
        if shards is not None and recorded.get("shards") not in (None, shards):
            raise ValueError(
                f"{root} was planned as {recorded['shards']} shards; --shard K/{shards} would "
                f"leave units walked by no shard: use --shard K/{recorded['shards']}"
            )
        if recorded.get("shards") is not None or shards is None:
            return
    plan = {"shards": shards, "units": [asdict(u) for u in units]}
    text = json.dumps(plan, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text))


def write_plan(root: Path, name: str, units: list[Unit]) -> None:
    """Record which units shard ``name`` was given (what :func:`status` counts as planned)."""
    plan = json.dumps([asdict(u) for u in units], indent=1) + "\n"
    atomic_write(Path(root) / PLANS / f"{name}.json", lambda f: f.write(plan))


def walk_units(specs: list[str], units: list[Unit], config, name: str, sources=None) -> list:
    """Walk the given units of the suite as shard ``name``; record them in its plan.

    ``sources`` are the suite's opened sources when the caller has them (their listings are
    kept); else they are opened here.

    Returns:
        The :class:`~massdyn.tracker.config.WalkSummary` of every model walked.
    """
    from massdyn.tracker.walker import walk

    root = Path(config.out)
    write_plan(root, name, units)
    summaries = []
    for spec, source in sources or open_sources(specs):
        steps = [u.step for u in units if u.source == spec]
        if not steps:
            continue
        sub = replace(
            config,
            out=str(root / model_dir(source.name) / SHARDS / name),
            steps=StepSelection(",".join(map(str, steps))),
        )
        summaries.append(walk(source, sub))
    return summaries


def walk_suite(specs: list[str], config, shard: tuple[int, int] | None = None, merge_after=True):
    """Walk this shard's units of the suite; merge when the walk is not one of several shards.

    Args:
        specs: Sources (see :func:`expand_sources`).
        config: The walk settings (``out`` is the suite folder ``DIR``).
        shard: ``(K, N)``, or None for every unit in this process.
        merge_after: Merge the suite folder when done (only without ``shard``).

    Returns:
        The :class:`~massdyn.tracker.config.WalkSummary` of every model walked.
    """
    sources = open_sources(specs)
    units = plan_units(sources, config.steps)
    record_suite_plan(Path(config.out), units, None if shard is None else shard[1])
    mine = units if shard is None else assign(units, shard[1])[shard[0]]
    summaries = walk_units(specs, mine, config, shard_name(shard), sources)
    if shard is None and merge_after:
        merge(config.out)
    return summaries


def _shard_folders(model_folder: Path) -> list[Path]:
    return sorted(p for p in (model_folder / SHARDS).glob("*") if (p / "walk.json").exists())


def _settings(folder: Path) -> dict:
    """What must agree between shards of one model: identity, inputs, dtype."""
    import yaml

    walk_file = json.loads((folder / "walk.json").read_text())
    identity = walk_file.get("identity", walk_file)
    inputs = (
        json.loads((folder / "inputs.json").read_text())
        if (folder / "inputs.json").exists()
        else {}
    )
    config = (
        yaml.safe_load((folder / "config.yaml").read_text())
        if (folder / "config.yaml").exists()
        else {}
    )
    return {
        "inputs sha256": inputs.get("sha256"),
        "tokenizer": identity.get("tokenizer"),
        "input recipe": json.dumps(identity.get("inputs"), sort_keys=True),
        "dtype": (config or {}).get("dtype"),
    }


def _suite_root(root: str | Path) -> Path:
    """``root`` as a path, once it is known to be the ``--out`` of a suite walk."""
    root = Path(root)
    if not (root / PLANS).is_dir():
        raise ValueError(f"{root} is not the folder of a suite walk (no {PLANS}/ in it)")
    return root


def merge(root: str | Path) -> pd.DataFrame:
    """Merge every model's shard folders in the suite folder ``root``.

    Writes ``<model>/measurements.csv`` and ``<model>/checkpoints.csv`` per model and
    ``measurements.csv`` for the suite, and likewise each mechanism table the shards
    recorded (``attention.csv``, ...). For a step walked by several shards an ``ok`` row
    wins over a failed one.

    Returns:
        :func:`status` of the suite after the merge.

    Raises:
        ValueError: when ``root`` is not the folder of a suite walk, or shards of one model
            differ in inputs, tokenizer or dtype, naming both folders and the difference;
            nothing is written then.
    """
    root = _suite_root(root)
    merged, suite_rows = {}, []
    for model_folder in sorted(p for p in root.iterdir() if (p / SHARDS).is_dir()):
        folders = _shard_folders(model_folder)
        if not folders:
            continue
        first = _settings(folders[0])
        for other in folders[1:]:
            theirs = _settings(other)
            for key, value in first.items():
                if theirs[key] != value:
                    raise ValueError(
                        f"refusing to merge {folders[0]} and {other}: their {key} differ "
                        f"({value!r} vs {theirs[key]!r}); walk them again with the same settings"
                    )
        checkpoints = pd.concat(
            [
                pd.read_csv(f / "checkpoints.csv", keep_default_na=False)
                for f in folders
                if (f / "checkpoints.csv").exists()
            ],
            ignore_index=True,
        )
        checkpoints["_ok"] = checkpoints["status"] == "ok"
        checkpoints = (
            checkpoints.sort_values(["step", "_ok"], ascending=[True, False], kind="stable")
            .drop_duplicates("step")
            .drop(columns="_ok")
        )
        parts, unreadable = [], {}
        for f in folders:
            if (f / "measurements.csv").exists():
                part, bad = _read_shard_table(f / "measurements.csv")
                parts.append(part)
                unreadable.update(dict.fromkeys(bad, f / "measurements.csv"))
        if unreadable:
            # Steps whose rows are cut short are not measured as far as the suite is
            # concerned: failed, with the reason, and left out of the merged table.
            hit = checkpoints["step"].astype(int).isin(unreadable)
            checkpoints.loc[hit, "status"] = "failed"
            checkpoints.loc[hit, "reason"] = [
                f"unreadable: {unreadable[int(s)]} is cut short at this step; walk it again"
                for s in checkpoints.loc[hit, "step"]
            ]
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        ok_steps = set(checkpoints.loc[checkpoints["status"] == "ok", "step"].astype(int))
        if len(table):
            table = _ok_rows(table, ok_steps, ("layer", "seq"))
        extras = _merged_mechanisms(folders, ok_steps)
        merged[model_folder] = (table, checkpoints, extras)
        suite_rows.append(table)
    suite_extras: dict[str, list[pd.DataFrame]] = {}
    for model_folder, (table, checkpoints, extras) in merged.items():
        atomic_csv(table, model_folder / "measurements.csv")
        atomic_csv(checkpoints, model_folder / "checkpoints.csv")
        for name, rows in extras.items():
            atomic_csv(rows, model_folder / f"{name}.csv")
            suite_extras.setdefault(name, []).append(rows)
    if suite_rows:
        atomic_csv(pd.concat(suite_rows, ignore_index=True), root / "measurements.csv")
    for name, parts in suite_extras.items():
        atomic_csv(pd.concat(parts, ignore_index=True), root / f"{name}.csv")
    return status(root)


def _merged_mechanisms(folders: list[Path], ok_steps: set[int]) -> dict[str, pd.DataFrame]:
    """Each mechanism table the shards of one model recorded, rows of ``ok`` steps only."""
    out = {}
    for name in MECHANISM_TABLES:
        parts = [pd.read_csv(f / f"{name}.csv") for f in folders if (f / f"{name}.csv").exists()]
        if not parts:
            continue
        out[name] = _ok_rows(pd.concat(parts, ignore_index=True), ok_steps, MECHANISM_KEYS[name])
    return out


def _ok_rows(rows: pd.DataFrame, ok_steps: set[int], keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``ok`` steps, each (step, *keys) once (shards may overlap), in that order."""
    keys = ["step", *keys]
    rows = rows[rows["step"].isin(ok_steps)].drop_duplicates(keys)
    return rows.sort_values(keys, kind="stable").reset_index(drop=True)


def _read_shard_table(path: Path) -> tuple[pd.DataFrame, set[int]]:
    """A shard's measurements and the steps whose rows are incomplete (a table cut short).

    The walker writes whole lines atomically, so a row with fewer fields than the header,
    or a last line without its newline, comes from a copy cut short: its step is
    unreadable (every row of it is left out), never filled with NaN.
    """
    import csv
    import io

    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    if not lines:
        return pd.DataFrame(), set()
    header = next(csv.reader([lines[0]]))
    at = header.index("step") if "step" in header else None
    steps: set[int] = set()
    for line in lines[1:]:
        fields = next(csv.reader([line]), [])
        if len(fields) != len(header) or not line.endswith("\n"):
            try:
                steps.add(int(float(fields[at])))
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"{path} has a row cut short before its step; walk that shard again"
                ) from None
    table = pd.read_csv(io.StringIO(text), on_bad_lines="skip")
    if not steps:
        return table, steps
    table = table[~pd.to_numeric(table["step"], errors="coerce").isin(steps)]
    return pd.read_csv(io.StringIO(table.to_csv(index=False))), steps


def status(root: str | Path) -> pd.DataFrame:
    """Every planned unit of the suite folder ``root``: ``done``, ``failed`` (reason), ``pending``.

    Read from the plans and the shards' ``checkpoints.csv``, not from the scheduler.

    Raises:
        ValueError: when ``root`` is not the folder of a suite walk.
    """
    root = _suite_root(root)
    planned = {}
    for plan in sorted((root / PLANS).glob("*.json")):
        data = json.loads(plan.read_text())
        for u in data["units"] if plan.name == SUITE_PLAN else data:
            planned.setdefault((u["model"], int(u["step"])), u)
    seen = {}
    for model_folder in sorted(p for p in root.iterdir() if (p / SHARDS).is_dir()):
        for f in _shard_folders(model_folder):
            if not (f / "checkpoints.csv").exists():
                continue
            cut = set()
            if (f / "measurements.csv").exists():
                cut = _read_shard_table(f / "measurements.csv")[1]
            for r in pd.read_csv(f / "checkpoints.csv", keep_default_na=False).itertuples():
                key = (r.model, int(r.step))
                state = (r.status, r.reason)
                if int(r.step) in cut:
                    why = f"unreadable: {f / 'measurements.csv'} is cut short at this step"
                    state = ("failed", f"{why}; walk it again")
                if seen.get(key, ("", ""))[0] != "ok":
                    seen[key] = state
    rows = []
    for (model, step), u in sorted(planned.items()):
        state, reason = seen.get((model, step), ("pending", ""))
        state = {"ok": "done", "duplicate": "done (duplicate)"}.get(state, state)
        rows.append(
            {
                "model": model,
                "step": step,
                "revision": u["revision"],
                "state": state,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["model", "step", "revision", "state", "reason"])


__all__ = [
    "Unit",
    "open_sources",
    "pending_units",
    "walk_units",
    "write_plan",
    "assign",
    "expand_sources",
    "expand_suites",
    "SuiteFacts",
    "merge",
    "model_dir",
    "parse_shard",
    "plan_units",
    "shard_name",
    "status",
    "walk_suite",
]
