"""Optional dependencies: import them on use, with a clear message when missing."""

from __future__ import annotations

import importlib

from km3sim.errors import Km3simError

__all__ = ["require"]

#: module -> the km3sim extra that installs it
EXTRAS = {"uproot": "io", "awkward": "io", "corsikaio": "io", "km3flux": "flux", "dask_jobqueue": "batch", "matplotlib": "plot"}


def require(module: str, purpose: str):
    """Import ``module`` or raise :class:`Km3simError` saying what needs it and how to install it.

    Parameters
    ----------
    module : str
        Module name, e.g. ``"uproot"``.
    purpose : str
        What it is needed for, e.g. ``"reading gSeaGen ROOT files"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module)
        hint = f"pip install 'km3sim[{extra}]'" if extra else f"pip install {module}"
        raise Km3simError(f"{purpose} needs the optional package {module!r}, which is not installed: {hint}") from exc
