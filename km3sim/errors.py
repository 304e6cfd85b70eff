"""Exceptions raised by km3sim.

Every error that comes from bad input names *what* is wrong and *where* (file, line, key).
"""


class Km3simError(Exception):
    """Base class of all km3sim errors."""


class DetectorFileError(Km3simError):
    """A detector file (detx/datx) is missing, malformed or inconsistent."""


class ConfigError(Km3simError):
    """A production or stage configuration is invalid."""


class StageError(Km3simError):
    """A stage produced output that violates its declared contract or the schema."""


class StageFileError(Km3simError):
    """An HDF5 stage file is missing, incomplete or corrupt."""
