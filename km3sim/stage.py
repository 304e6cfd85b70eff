"""Stage base class and stage registry (DESIGN.md §5).

A stage is a class registered under a snake_case ``name`` with ``consumes`` (tables it reads),
``produces`` (tables it must return, even empty), a strict pydantic ``Config`` and one method
``process(tables, ctx)`` that does no file I/O and takes every random number from
``ctx.seeds(...)``. One-time work (tables, interpolators) happens in ``__init__``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from km3sim.errors import ConfigError, StageError
from km3sim.random import event_seeds
from km3sim.schema import SCHEMAS, validate_table
from km3sim.table import Table

if TYPE_CHECKING:  # pragma: no cover
    from km3sim.detector.geometry import Detector

__all__ = ["StageConfig", "Stage", "StageContext", "Site", "register_stage", "get_stage", "STAGES", "SITE_PRESETS"]


class StageConfig(BaseModel):
    """Base of every stage config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class Site(BaseModel):
    """The site: sea depth, water density and pressure.

    ``seabed_depth_m`` is the depth of the sea floor (detector z = 0 lies on the floor, as in
    KM3NeT detector files, whose UTM z is the floor reference).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "orca"
    seabed_depth_m: float = 2440.0
    water_density_g_cm3: float = 1.038
    pressure_atm: float = 240.0


#: Site presets (PHYSICS.md §5.2, §7.1, FORMATS.md §3: ORCA floor at -2440 m, ARCA at -3450 m).
SITE_PRESETS = {
    "orca": Site(name="orca", seabed_depth_m=2440.0, pressure_atm=240.0),
    "arca": Site(name="arca", seabed_depth_m=3450.0, pressure_atm=350.0),
}


@dataclass
class StageContext:
    """What a stage knows about the piece of work it is processing.

    Attributes
    ----------
    seed : int
        Production seed.
    run_id : int
        Run being simulated.
    chunk : int
        Chunk index within the run.
    stage_name : str
        Registered name of the stage (part of the seed derivation).
    event_ids : ndarray of int64
        The events of this chunk (generators create exactly these; other stages see the same
        ids in their input tables).
    livetime_s : float
        Livetime represented by the whole simulated sample of this run [s].
    n_events_run : int
        Number of events generated for the whole run.
    detector : Detector
    site : Site
    event_offset : int
        Added to the event numbers of this chunk's generator stream (generator k of a
        production with ``generators:`` numbers its events from k × 10⁸): a generator that
        reads its events from files takes event ``id − run × 10⁹ − event_offset`` of them.
    """

    seed: int
    run_id: int
    chunk: int
    stage_name: str
    event_ids: np.ndarray
    livetime_s: float
    n_events_run: int
    detector: "Detector"
    site: Site = field(default_factory=Site)
    event_offset: int = 0

    def event_positions(self, event_ids: np.ndarray | None = None) -> np.ndarray:
        """Position of each event in its run's generator stream: id − run × 10⁹ − event_offset."""
        from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX

        ids = np.asarray(self.event_ids if event_ids is None else event_ids, dtype=np.int64)
        return ids - np.int64(self.run_id) * EVENTS_PER_RUN_MAX - np.int64(self.event_offset)

    def seeds(self, event_ids: np.ndarray | None = None) -> np.ndarray:
        """Per-event uint64 seeds of this stage for ``event_ids`` (default: the chunk's events)."""
        ids = self.event_ids if event_ids is None else event_ids
        return event_seeds(self.seed, self.run_id, ids, self.stage_name)


class Stage:
    """Base class of all stages. Subclasses set the class attributes and implement ``process``."""

    name: ClassVar[str] = ""
    role: ClassVar[str] = ""  # generate | propagate | light | detect | trigger | reconstruct
    consumes: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type[StageConfig]] = StageConfig

    def __init__(self, config: StageConfig | None = None, detector: "Detector | None" = None, site: Site | None = None):
        self.config = config if config is not None else self.Config()
        self.detector = detector
        self.site = site if site is not None else Site()

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:  # pragma: no cover
        raise NotImplementedError

    def run(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        """Call :meth:`process` and check its output against the declaration and the schema."""
        missing_in = [t for t in self.consumes if t not in tables]
        if missing_in:
            raise StageError(f"stage {self.name!r} needs tables {missing_in}, got {sorted(tables)}")
        out = self.process({t: tables[t] for t in self.consumes}, ctx)
        missing = [t for t in self.produces if t not in out]
        extra = [t for t in out if t not in self.produces]
        if missing or extra:
            raise StageError(f"stage {self.name!r} must produce {list(self.produces)}; missing {missing}, undeclared {extra}")
        checked = {}
        for tname in self.produces:
            table = validate_table(out[tname], tname)
            bad = ~_in_sorted(table["event_id"], ctx.event_ids)
            if bad.any():
                raise StageError(f"stage {self.name!r}, table {tname!r}: rows of events outside the chunk, e.g. {table['event_id'][bad][:3]}")
            checked[tname] = table
        return checked

    def chunk_event_ids(self, ctx: "StageContext") -> np.ndarray:
        """The chunk's event ids as sorted int64 (generators produce rows in this order).

        Raises :class:`StageError` on duplicate ids."""
        ids = np.asarray(ctx.event_ids, dtype=np.int64)
        if len(ids) > 1 and np.any(np.diff(ids) <= 0):
            if len(np.unique(ids)) != len(ids):
                raise StageError(f"stage {self.name!r}: duplicate event ids in the chunk")
            ids = np.sort(ids)
        return ids

    def header(self) -> dict:
        """Generation parameters of this stage, stored with every output file (attribute
        ``header``): e.g. the can, the generation volume, spectra and rates. JSON-serialisable.
        Stages that have none return ``{}``."""
        return {}

    @classmethod
    def input_files(cls, config: StageConfig) -> list[str]:
        """Files a stage reads besides its input tables (generator files); their checksums
        enter the chain hash, so a changed file is simulated anew."""
        return []

    # generators override this; it is called once per run at planning time
    @classmethod
    def plan_events(cls, config: StageConfig, detector: "Detector", site: Site, livetime_s: float, seed: int, run_id: int) -> int:
        """Number of events to generate for a run of ``livetime_s`` (generators only)."""
        raise StageError(f"stage {cls.name!r} is not a generator")


def _in_sorted(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(values, ids)`` by binary search (ids are few and usually sorted; values many)."""
    ids = np.asarray(ids)
    if len(ids) > 1 and np.any(np.diff(ids) < 0):
        ids = np.sort(ids)
    if not len(ids):
        return np.zeros(len(values), dtype=bool)
    pos = np.clip(np.searchsorted(ids, values), 0, len(ids) - 1)
    return ids[pos] == values


STAGES: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: register a stage under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in STAGES and STAGES[cls.name] is not cls:
        raise ValueError(f"stage name {cls.name!r} registered twice")
    for t in (*cls.consumes, *cls.produces):
        if t not in SCHEMAS:
            raise ValueError(f"stage {cls.name!r} declares unknown table {t!r}")
    STAGES[cls.name] = cls
    return cls


def _load_builtin_stages() -> None:
    # importing the modules registers their stages
    import importlib

    for mod in (
        "km3sim.generators.muons",
        "km3sim.generators.neutrinos",
        "km3sim.generators.air_showers",
        "km3sim.generators.corsika",
        "km3sim.generators.files",
        "km3sim.propagation.muons",
        "km3sim.propagation.light",
        "km3sim.detector.response",
        "km3sim.trigger.trigger",
        "km3sim.reco.track",
        "km3sim.reco.shower",
    ):
        importlib.import_module(mod)


def get_stage(name: str) -> type[Stage]:
    """The stage class registered as ``name``."""
    if name not in STAGES:
        _load_builtin_stages()
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    return STAGES[name]


def all_stages() -> dict[str, type[Stage]]:
    """All registered stages (built-in ones loaded)."""
    _load_builtin_stages()
    return dict(STAGES)
