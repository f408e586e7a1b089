"""A Pythia-style mini-suite of GPT-NeoX models trained on CPU, tracked live.

One concern per module: ``spec`` (the suite's schema: members, recipe, replicates; no
torch), ``corpus`` (training text and tokenizer), ``dataset`` (training tokens and held-out
evaluation inputs), ``train`` (one member's resumable training loop) and ``parallel``
(several members at once). The suite itself is data: ``data/minisuite.json``. Importing
this package imports no torch: the figures read the shipped data set through it.
"""

from __future__ import annotations

from pathlib import Path

from massdyn.data import path as data_path
from massdyn.data import read_json
from massdyn.minisuite.spec import PRECISIONS, Member, Recipe, Suite


def shipped_data() -> Path:
    """Folder of the shipped mini-suite data set (measurements, params, configs)."""
    return data_path("minisuite")


def grown_suite_data() -> list[Path]:
    """Folders of the grown suite's data sets, each with ``measurements.csv`` and ``configs/``.

    Which folders make up the grown suite (shipped members, their seed replicates, the
    design's members) is data: ``data_sets`` of ``data/minisuite-design.json``. A listed
    folder without measurements yet is left out.

    Raises:
        FileNotFoundError: naming a listed folder that massdyn does not ship.
    """
    folders = (data_path(d) for d in read_json("minisuite-design.json")["data_sets"])
    return [f for f in folders if (f / "measurements.csv").exists() and (f / "configs").is_dir()]


__all__ = ["PRECISIONS", "Member", "Recipe", "Suite", "grown_suite_data", "shipped_data"]
