"""Subcommands of the ``massdyn`` CLI, one module each."""

from massdyn.commands.fit import FitCommand

COMMANDS = {"fit": FitCommand}
