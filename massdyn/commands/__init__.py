"""Subcommands of the ``massdyn`` CLI, one module each."""

from massdyn.commands.demo import DemoCommand
from massdyn.commands.figures import FiguresCommand
from massdyn.commands.fit import FitCommand
from massdyn.commands.minisuite import MinisuiteCommand
from massdyn.commands.predictor import PredictCommand, TrainPredictorCommand
from massdyn.commands.walk import WalkCommand

COMMANDS = {
    "walk": WalkCommand,
    "fit": FitCommand,
    "train-predictor": TrainPredictorCommand,
    "predict": PredictCommand,
    "figures": FiguresCommand,
    "minisuite": MinisuiteCommand,
    "demo": DemoCommand,
}
