"""Subcommands of the ``massdyn`` CLI, one module each."""

from massdyn.commands.demo import DemoCommand
from massdyn.commands.fit import FitCommand
from massdyn.commands.minisuite import MinisuiteCommand
from massdyn.commands.walk import WalkCommand

COMMANDS = {
    "walk": WalkCommand,
    "fit": FitCommand,
    "minisuite": MinisuiteCommand,
    "demo": DemoCommand,
}
