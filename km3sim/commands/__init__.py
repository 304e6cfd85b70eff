"""Sub-commands of ``km3sim``: one module per group of commands.

Each module defines ``register(subparsers)``, which adds its sub-commands and sets
``func`` on each parser to a function ``f(args) -> int`` (the exit code). Modules are
found automatically, so adding a command means adding a module here.
"""

from __future__ import annotations

import importlib
import pkgutil


def command_modules() -> list:
    """The command modules of this package, in name order."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]
