"""``massdyn minisuite``: train the mini-suite (CPU or a GPU), track it live, ship the tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from massdyn.options import opt
from massdyn.tracker.config import MECHANISM_TABLES


@dataclass
class MinisuiteCommand:
    """Train the Pythia-style mini-suite of data/minisuite.json and write its data set.

    Training is resumable (rerun to continue). The output folder receives the live
    measurements of every member (measurements.csv), each member's config.json, the fitted
    emergence parameters (params.csv) and provenance.json.
    """

    out: str = opt("data/minisuite", "data set folder to write")
    work: str = opt("minisuite-work", "training state (resumable)")
    suite: str | None = opt(None, "suite file (default: the shipped one)")
    members: str | None = opt(None, "comma list of members (default: all)")
    text: str | None = opt(None, "train on this text file instead")
    max_steps: int | None = opt(None, "override the recipe's steps")
    jobs: int = opt(1, "members trained at once (processes)")
    threads: int | None = opt(None, "torch threads per member (default: CPUs / jobs)")
    device: str = opt(
        "cpu",
        "where members train: cpu, or cuda (the --jobs members share one GPU); a member "
        "resumes only on the device it started on",
        choices=("cpu", "cuda"),
    )
    mechanisms: bool = opt(
        False,
        "also record attention sinks, super weights and interventions on every layer live "
        "(attention.csv, superweights.csv, interventions.csv in OUT)",
    )

    def run(self) -> int:
        """Train what is missing, then collect, fit and describe."""
        import pandas as pd
        import tokenizers
        import torch
        import transformers

        from massdyn.fitting import fit_measurements
        from massdyn.minisuite import Suite
        from massdyn.minisuite.dataset import default_cache, prepare_data
        from massdyn.minisuite.parallel import train_members
        from massdyn.minisuite.spec import Recipe, as_recorded_now
        from massdyn.minisuite.train import TrainingData, cpu_has_bf16, precision_note
        from massdyn.tracker.config import Mechanisms
        from massdyn.tracker.store import atomic_csv, atomic_write

        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"--device cuda: this torch ({torch.__version__}) sees no CUDA device; "
                "train with --device cpu, or install a CUDA build of torch on a GPU machine"
            )
        suite = Suite.load(self.suite)
        if self.max_steps:
            suite.recipe = replace(suite.recipe, max_steps=self.max_steps)
        note = precision_note(suite.recipe, cpu_has_bf16()) if self.device == "cpu" else None
        if note:
            print(
                f'warning: {note}; set "precision": "fp32" in the recipe of a copy of the '
                "suite file and pass it with --suite (its numbers then differ from the shipped "
                "data set, which was trained in bf16-mixed)"
            )
        names = self.members.split(",") if self.members else [m.name for m in suite.members]
        members = [suite.member(n) for n in names]
        work, out = Path(self.work), Path(self.out)
        old = _read_existing(out)
        recorded = old["recipe"]
        if recorded is not None:
            recorded = as_recorded_now(Recipe, recorded)
        if recorded is not None and recorded != json.loads(json.dumps(asdict(suite.recipe))):
            raise ValueError(
                f"{out} holds members trained with another recipe; write to another --out "
                "(its data are left as they were)"
            )
        tokenizer, train_tokens, eval_inputs = prepare_data(suite, default_cache(), self.text)
        t0 = time.perf_counter()
        data = TrainingData(train_tokens, eval_inputs, len(tokenizer), tokenizer.bos_token_id)
        runs = train_members(
            members,
            suite.recipe,
            data,
            work,
            self.jobs,
            self.threads,
            self.device,
            Mechanisms(True, True, None) if self.mechanisms else None,
        )
        machine = {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": _cpu_name(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "bfloat16_units": cpu_has_bf16(),
        }
        sitting = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "members": names,
            "jobs": self.jobs,
            "wall_seconds": time.perf_counter() - t0,
            "machine": machine,
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "configs").mkdir(exist_ok=True)
        tables = []
        for m in members:
            tables.append(pd.read_csv(work / m.name / "live" / "measurements.csv"))
            shutil.copy(work / m.name / "config.json", out / "configs" / f"{m.name}.json")
        measurements = _grown(tables, out / "measurements.csv", names)
        atomic_csv(measurements, out / "measurements.csv")
        for name in MECHANISM_TABLES:
            live = [work / m.name / "live" / f"{name}.csv" for m in members]
            fresh = [pd.read_csv(p) for p in live if p.exists()]
            grown = _grown(fresh, out / f"{name}.csv", names)
            if grown is not None:
                atomic_csv(grown, out / f"{name}.csv")
        params = fit_measurements(measurements, "ratio")
        atomic_csv(params, out / "params.csv")
        kept = lambda items: [x for x in items if x["name"] not in names]  # noqa: E731
        provenance = {
            "recipe": asdict(suite.recipe),
            "members": kept(old["members"]) + [asdict(m) for m in members],
            "corpus": suite.corpus if not self.text else {"text": Path(self.text).name},
            "tokenizer": suite.tokenizer,
            "eval_inputs": {"sha256": eval_inputs.sha256, "source": eval_inputs.source},
            "runs": kept(old["runs"]) + runs,
            "sittings": [*old["sittings"], sitting],
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
                "pandas": pd.__version__,
            },
        }
        text = json.dumps(provenance, indent=2, default=str) + "\n"
        atomic_write(out / "provenance.json", lambda f: f.write(text))
        print(describe(measurements, params))
        print(f"wrote {out}/measurements.csv, params.csv, configs/, provenance.json")
        return 0


def _grown(fresh: list, table: Path, names: list[str]):
    """The table ``table`` in OUT grown by this sitting's rows ``fresh`` (None: no rows).

    Members already in OUT that this sitting did not train stay: a data set grows sitting
    by sitting, and no sitting drops another's data.
    """
    import pandas as pd

    frames = list(fresh)
    if table.exists():
        earlier = pd.read_csv(table)
        frames.insert(0, earlier[~earlier["model"].isin(names)])
    return pd.concat(frames, ignore_index=True) if frames else None


def _read_existing(out: Path) -> dict:
    """What an earlier sitting's provenance left in ``out`` (nothing when it is new)."""
    found = {"members": [], "runs": [], "sittings": [], "recipe": None}
    prov = out / "provenance.json"
    if prov.exists():
        data = json.loads(prov.read_text())
        found["members"], found["runs"] = data.get("members", []), data.get("runs", [])
        found["recipe"] = data.get("recipe")
        # Older files recorded one sitting, with the machine beside it.
        sittings = data.get("sittings") or (
            [{**data["sitting"], "machine": data.get("machine")}] if "sitting" in data else []
        )
        found["sittings"] = sittings
    return found


def _cpu_name() -> str:
    """The CPU's model name (Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def describe(measurements, params) -> str:
    """Per member: the layer that grew most, its ratio, where its top-1 sits late, fit R^2."""
    from massdyn.fitting.report import emergence_report

    report = emergence_report(measurements)
    lines = []
    for model, grp in report.groupby("model"):
        best = grp.loc[grp["growth"].idxmax()]
        r2 = params.loc[params["model"] == model, "r2"].mean()
        lines.append(
            f"{model}: layer {best['layer']} ratio {best['ratio_first']:.1f} -> "
            f"{best['ratio_last']:.1f} ({best['growth']:.1f}x), top-1 at (token "
            f"{best['top1_token']}, dim {best['top1_dim']}) in {best['fixed_share']:.0%} of the "
            f"last third (on that token in {best['token_share']:.0%}); mean fit R^2 {r2:.3f}"
        )
    return "\n".join(lines)
