"""Subcommands of the ``massdyn`` CLI: one module each, in one registry.

A command is a dataclass of its options (see :mod:`massdyn.options`) with a ``run`` method
returning the exit status. The registry names the class by import path, so that
``massdyn --help`` and a command's own parser import only that command's module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A registered subcommand: its class by import path and its one-line help."""

    target: str  # "module:Class"
    help: str

    def load(self) -> type:
        """The command's dataclass."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


COMMANDS: dict[str, Command] = {
    "walk": Command(
        "massdyn.commands.walk:WalkCommand",
        "measure massive activations across a checkpoint series",
    ),
    "merge": Command(
        "massdyn.commands.walk:MergeCommand", "merge the shards of suite walks into tables"
    ),
    "status": Command(
        "massdyn.commands.walk:StatusCommand", "per-unit state of a suite walk from its files"
    ),
    "audit": Command(
        "massdyn.commands.audit:AuditCommand",
        "list what each revision of a series serves, before downloading",
    ),
    "import": Command(
        "massdyn.commands.imports:ImportCommand",
        "read the paper's released measurements into walker-format tables",
    ),
    "locate": Command(
        "massdyn.commands.locate:LocateCommand",
        "where the massive activations sit over training, per step and layer",
    ),
    "export": Command(
        "massdyn.commands.export:ExportCommand",
        "write walk results as a Hugging Face dataset folder (Parquet and a card)",
    ),
    "fit": Command(
        "massdyn.commands.fit:FitCommand", "fit emergence curves to a measurements table"
    ),
    "forecast": Command(
        "massdyn.commands.forecast:ForecastCommand",
        "forecast where each series is heading, with a band",
    ),
    "train-predictor": Command(
        "massdyn.commands.predictor:TrainPredictorCommand",
        "train an architecture -> emergence-curve predictor",
    ),
    "predict": Command(
        "massdyn.commands.predictor:PredictCommand",
        "predict emergence curves for a new architecture",
    ),
    "figures": Command("massdyn.commands.figures:FiguresCommand", "draw the paper's figure set"),
    "minisuite": Command(
        "massdyn.commands.minisuite:MinisuiteCommand",
        "train the CPU mini-suite and write its measurements",
    ),
    "demo": Command(
        "massdyn.commands.demo:DemoCommand",
        "run the main job end to end on the embedded mini-suite",
    ),
}
