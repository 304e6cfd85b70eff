"""km3sim: Monte Carlo simulation for KM3NeT-like deep-sea neutrino telescopes."""

__version__ = "0.1.0"

from km3sim.table import Table  # noqa: E402

__all__ = ["Table", "__version__"]
