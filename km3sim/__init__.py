"""km3sim: Monte Carlo simulation for KM3NeT-like deep-sea neutrino telescopes."""

__version__ = "0.1.0"

from km3sim.table import Table  # noqa: E402

__all__ = ["Table", "__version__"]  # km3sim.open (lazy, below) stays out of "import *": it would shadow open()


def __getattr__(name):
    # km3sim.open(path) is imported on first use (km3sim.api pulls in h5py and the pipeline)
    if name == "open":
        from km3sim.api import open as _open

        return _open
    raise AttributeError(f"module 'km3sim' has no attribute {name!r}")
