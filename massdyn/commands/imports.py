"""``massdyn import``: the paper's released measurements as walker-format tables."""

from __future__ import annotations

from dataclasses import dataclass

from massdyn.options import opt

PAPER_DATASET = "Aimpoint-Digital/pythia-massive-activations"


@dataclass
class ImportCommand:
    """Read the paper's released measurements into one walker-format folder per model.

    SOURCE is the Hub dataset repo (default: the paper's, downloaded once into the Hub
    cache; only its stats files and JSON) or a local clone of it. Every
    ``pythia_{size}/stats/exp2_pythia_{size}_step{N}`` becomes rows of
    ``OUT/pythia-{size}/measurements.csv`` (with ``tokens``: Pythia's 2,097,152 per step),
    and every JSON file of the repo (the paper's fitted parameters) is copied to
    ``OUT/paper/`` for comparison. Malformed files are listed and left out. Then ``massdyn
    fit``, ``figures`` and ``train-predictor`` run on real Pythia without a GPU.
    """

    source: str = opt(PAPER_DATASET, "Hub dataset repo id or a local clone", positional=True)
    out: str = opt("pythia-paper", "folder to write (one sub-folder per model)")
    sizes: str | None = opt(None, "comma list of sizes to import (e.g. 14m,160m; default all)")
    revision: str | None = opt(None, "revision of the Hub dataset repo")

    def run(self) -> int:
        """Fetch (when a repo id), convert, write, list what was skipped."""
        import shutil
        from pathlib import Path

        from massdyn.io import write_table
        from massdyn.tracker.interop import import_paper_stats
        from massdyn.tracker.schedule import known_tokens_per_step

        root = self._local_copy()
        out = Path(self.out)
        if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
            raise ValueError(f"--out {out} lies inside the dataset being read; choose another")
        skipped: list = []
        sizes = [s.strip() for s in self.sizes.split(",")] if self.sizes else None
        table = import_paper_stats(root, sizes, skipped)
        per_step = known_tokens_per_step("EleutherAI/pythia-14m")
        table.insert(2, "tokens", table["step"].astype("int64") * per_step)
        for model, rows in table.groupby("model", sort=True):
            path = write_table(rows, out / str(model) / "measurements.csv")
            print(
                f"{model}: {rows['step'].nunique()} steps, {rows['layer'].nunique()} layers, "
                f"{rows['seq'].nunique()} sequences -> {path}"
            )
        for f in sorted(root.rglob("*.json")):
            if ".cache" in f.parts:
                continue
            target = out / "paper" / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            print(f"copied {f.relative_to(root)} -> {target}")
        for f, why in skipped:
            print(f"skipped (malformed): {Path(f).relative_to(root)}: {why}")
        return 0

    def _local_copy(self):
        """The dataset as a local folder: the given one, or a snapshot of the Hub repo."""
        import re
        from pathlib import Path

        local = Path(self.source).expanduser()
        if local.is_dir():
            return local
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", self.source):
            raise ValueError(
                f"{self.source!r} is neither a folder nor a Hub dataset repo id (org/name)"
            )
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(
                self.source,
                repo_type="dataset",
                revision=self.revision,
                allow_patterns=["pythia_*/stats/*", "*.json", "**/*.json"],
            )
        except Exception as exc:
            from massdyn.tracker.sources.base import first_line

            raise ValueError(
                f"cannot download the dataset {self.source}: {first_line(exc)}"
            ) from None
        return Path(path)
