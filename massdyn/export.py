"""Walk results as a Hugging Face dataset folder: Parquet tables and a dataset card.

``massdyn export DIR... --out OUT`` gathers the measurements and checkpoints tables of one
or more walk folders (a single series, or a merged suite) and, where given, a parameters
table from ``massdyn fit``, and writes

    OUT/data/measurements.parquet   every row of every folder, in the walker's schema
    OUT/data/checkpoints.parquet    what was measured: revision, pinned commit, tokens, ...
    OUT/data/params.parquet         the fitted emergence parameters (when given)
    OUT/README.md                   the dataset card

The card's YAML declares one ``configs`` entry per table, so the Hub's viewer and
``datasets.load_dataset(OUT, "measurements")`` read the folder without a loading script.
Its text names what a reader needs to trust the numbers: the series walked, the commits
the revisions were pinned to, the input set and its sha256, and the massdyn version. The
folder is published as it is with ``hf upload USER/NAME OUT --repo-type dataset``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TABLES = ("measurements", "checkpoints", "params")
TAGS = ("massive-activations", "training-dynamics", "interpretability", "massdyn")


@dataclass
class Exported:
    """What :func:`export_dataset` wrote.

    Attributes:
        out: The dataset folder.
        rows: Rows per table written.
        models: The models in the measurements.
    """

    out: Path
    rows: dict[str, int]
    models: list[str]


def _table(folder: Path, name: str) -> pd.DataFrame | None:
    from massdyn.io import read_table

    for suffix in (".parquet", ".csv"):
        if (folder / f"{name}{suffix}").exists():
            return read_table(folder / f"{name}{suffix}")
    return None


def _walk_facts(folder: Path) -> dict:
    """The input set and the sources of a walk folder, from the files the walk recorded."""
    facts: dict = {}
    if (folder / "inputs.json").exists():
        facts["inputs"] = json.loads((folder / "inputs.json").read_text())
    if (folder / "config.yaml").exists():
        import yaml

        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        facts["sources"] = [str(s) for s in config.get("source") or []]
    return facts


def export_dataset(
    folders: list[str | Path],
    out: str | Path,
    params: str | Path | None = None,
    license: str = "cc-by-4.0",
    pretty_name: str | None = None,
) -> Exported:
    """Write the walk results of ``folders`` as a dataset folder at ``out``.

    Args:
        folders: Walk output folders (each holding ``measurements.csv`` or ``.parquet``).
        out: A new or empty folder.
        params: A ``massdyn fit`` parameters table to include.
        license: The card's license identifier.
        pretty_name: The card's title (default: the models' names).

    Returns:
        What was written.

    Raises:
        ValueError: a folder without measurements, tables that repeat a key, an ``out``
            that is not empty or is one of the inputs, or no Parquet engine.
    """
    from massdyn.fitting.series import check_measurements

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ValueError(
            "massdyn export writes Parquet: pip install 'massdyn[parquet]' (pyarrow)"
        ) from None
    out = Path(out)
    folders = [Path(f) for f in folders]
    for f in folders:
        if out.resolve() == f.resolve() or f.resolve() in out.resolve().parents:
            raise ValueError(f"--out {out} lies in the input folder {f}: choose a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty folder: choose a new one")
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    facts = {}
    for f in folders:
        if not f.is_dir():
            raise ValueError(f"{f} is not a folder; give the --out folder of a walk")
        m = _table(f, "measurements")
        if m is None:
            raise ValueError(f"{f} holds no measurements.csv: give the --out folder of a walk")
        tables["measurements"].append(m)
        ck = _table(f, "checkpoints")
        if ck is not None:
            tables["checkpoints"].append(ck)
        facts[str(f)] = _walk_facts(f)
    if params is not None:
        from massdyn.io import read_table

        tables["params"].append(read_table(params))
    frames = {k: pd.concat(v, ignore_index=True) for k, v in tables.items() if v}
    check_measurements(frames["measurements"])  # repeated keys across folders refused too
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, frame in frames.items():
        frame.to_parquet(out / "data" / f"{name}.parquet", index=False)
        rows[name] = len(frame)
    models = sorted(map(str, frames["measurements"]["model"].unique()))
    card = dataset_card(frames, facts, license, pretty_name or ", ".join(models))
    card.save(out / "README.md")
    return Exported(out, rows, models)


def dataset_card(frames: dict[str, pd.DataFrame], facts: dict, license: str, title: str):
    """The card: YAML configs per table, then what was walked, pinned and fed in."""
    from huggingface_hub import DatasetCard, DatasetCardData

    import massdyn

    configs = [
        {
            "config_name": name,
            "data_files": f"data/{name}.parquet",
            **({"default": True} if name == "measurements" else {}),
        }
        for name in TABLES
        if name in frames
    ]
    data = DatasetCardData(license=license, pretty_name=title, tags=list(TAGS), configs=configs)
    lines = [
        f"# {title}",
        "",
        "Massive activations (the largest residual-stream entries of every decoder block, "
        "Sun et al. 2024) measured over training checkpoints with "
        f"[massdyn](https://pypi.org/project/massdyn/) {massdyn.__version__}.",
        "",
        "## Tables",
        "",
    ]
    about = {
        "measurements": "one row per (model, step, layer, sequence): the top-3 magnitudes, "
        "the median and mean, and where the top entries sit (token, dimension)",
        "checkpoints": "one row per checkpoint: revision, status, the commit it was pinned to, "
        "tokens seen, the weights' sha256",
        "params": "the five-parameter emergence fit per (model, layer) (arXiv 2508.03616)",
    }
    for name, frame in frames.items():
        lines.append(f"- `{name}` ({len(frame):,} rows): {about[name]}.")
    lines += ["", "## What was walked", ""]
    ck = frames.get("checkpoints")
    for folder, f in facts.items():
        sources = ", ".join(f"`{s}`" for s in f.get("sources", [])) or f"`{folder}`"
        lines.append(f"- {sources}")
        inputs = f.get("inputs")
        if inputs:
            lines.append(
                f"  - inputs: {inputs.get('source', '?')}; sha256 `{inputs.get('sha256', '?')}`"
            )
    if ck is not None and "commit" in ck:
        pinned = ck[ck["commit"].notna() & (ck["commit"].astype(str) != "")]
        lines.append(
            f"- {len(pinned)} of {len(ck)} checkpoints pinned to a commit (column `commit` of "
            "`checkpoints`)"
        )
    lines += [
        "",
        "## Load and publish",
        "",
        "```python",
        "from datasets import load_dataset",
        'measurements = load_dataset("USER/NAME", "measurements", split="train")',
        "```",
        "",
        "```",
        "hf upload USER/NAME THIS_FOLDER --repo-type dataset",
        "```",
        "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
