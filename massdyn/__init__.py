"""massdyn: massive-activation dynamics over transformer training."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("massdyn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
