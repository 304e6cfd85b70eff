"""Python access to km3sim outputs: ``km3sim.open(path)``.

Example::

    import km3sim

    prod = km3sim.open("productions/quickstart.yaml")   # or its output directory, a stage
    print(prod)                                         # directory or one stage file
    trig = prod.table("triggered_events", weights=True) # numpy columns + 'weight' [1/s]
    reco = prod.table("reco_tracks", library="pandas")  # a pandas DataFrame
    rate = trig["weight"].sum()                         # triggered events per second

Tables are concatenated over all runs and chunks (rows sorted by ``event_id`` within each
file, files in run/chunk order). A table written by several stages (``mc_tracks`` by the
generator and by the propagation) is taken from the last of them unless ``stage=`` names
one. Weights are the rates each event stands for in the whole sample
(:func:`km3sim.weights.rate_weights`): 1/livetime for livetime-based generators (MUPAGE-like
muons), w2·Φ/N_gen for neutrinos (a ``flux`` is then needed).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim.errors import Km3simError, StageFileError
from km3sim.table import Table

__all__ = ["open", "Dataset", "StageFiles"]

log = logging.getLogger(__name__)

_ROLE_ORDER = ("generate", "propagate", "light", "detect", "trigger", "reconstruct")


@dataclass
class StageFiles:
    """The files of one stage: name, role and the chunk files (run/chunk order)."""

    name: str
    role: str
    files: list[Path] = field(default_factory=list)
    tables: tuple[str, ...] = ()


def open(path: str | os.PathLike, *, stage: str | None = None) -> "Dataset":  # noqa: A001 - km3sim.open
    """Open a production (its YAML or output directory), a stage directory or one stage file.

    Parameters
    ----------
    path : path-like
        ``production.yaml``, the production's ``output`` directory, one stage directory
        (``output/<stage>``) or a stage file (``run*_chunk*.h5``).
    stage : str, optional
        Restrict a production to one stage.

    Returns
    -------
    Dataset

    Raises
    ------
    StageFileError
        Nothing km3sim-like at ``path`` (the message says what was looked for).
    """
    return Dataset(path, stage=stage)


def _stage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("run*_chunk*.h5") if not p.name.startswith("."))


def _head_attrs(files: list[Path]) -> dict:
    from km3sim.io.hdf5 import read_attrs

    return read_attrs(files[0]) if files else {}


class Dataset:
    """Tables of a km3sim production, stage directory or stage file (see :func:`open`).

    Attributes
    ----------
    path : Path
    kind : str
        ``"production"``, ``"stage_dir"`` or ``"stage_file"``.
    stages : list of StageFiles
        In production order (roles generate -> reconstruct).
    production : Production or None
        The validated production when opened from its YAML.
    """

    def __init__(self, path, stage: str | None = None):
        self.path = Path(path)
        self.production = None
        self._cache: dict[tuple[str, str], Table] = {}
        self._attrs_cache: dict[Path, dict] = {}
        self._detector = None
        p = self.path
        if not p.exists():
            raise StageFileError(f"{p}: no such file or directory")
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
            from km3sim.pipeline.config import load_production
            from km3sim.stage import get_stage

            self.production = load_production(p)
            out = Path(self.production.output)
            self.kind = "production"
            self.stages = []
            for spec in self.production.stage_specs():
                if any(s.name == spec.name for s in self.stages):
                    continue  # several generators of one stage share its directory
                files = _stage_files(out / spec.name)
                self.stages.append(StageFiles(spec.name, get_stage(spec.name).role, files))
            if not any(s.files for s in self.stages):
                raise StageFileError(f"{p}: production output {out} has no stage files yet: run `km3sim run {p}` first")
        elif p.is_file():
            self.kind = "stage_file"
            attrs = self._attrs(p)
            self.stages = [StageFiles(str(attrs.get("stage", p.stem)), str(attrs.get("role", "")), [p])]
        elif _stage_files(p):
            self.kind = "stage_dir"
            attrs = self._attrs(_stage_files(p)[0])
            self.stages = [StageFiles(str(attrs.get("stage", p.name)), str(attrs.get("role", "")), _stage_files(p))]
        else:
            subs = [d for d in sorted(p.iterdir()) if d.is_dir() and _stage_files(d)]
            if not subs:
                raise StageFileError(f"{p}: neither a production YAML, a production output directory (with "
                                     f"<stage>/run*_chunk*.h5), a stage directory nor a stage file")
            self.kind = "production"
            self.stages = []
            for d in subs:
                files = _stage_files(d)
                attrs = self._attrs(files[0])
                self.stages.append(StageFiles(str(attrs.get("stage", d.name)), str(attrs.get("role", "")), files))
            rank = {r: i for i, r in enumerate(_ROLE_ORDER)}
            self.stages.sort(key=lambda s: (rank.get(s.role, len(rank)), s.name))
        for s in self.stages:
            s.files = [f for f in s.files if f.is_file()]
            if s.files:
                import json

                tabs = self._attrs(s.files[0]).get("tables")
                s.tables = tuple(json.loads(tabs) if isinstance(tabs, str) else (tabs or ()))
        if stage is not None:
            keep = [s for s in self.stages if s.name == stage or s.role == stage]
            if not keep:
                raise StageFileError(f"{p}: no stage {stage!r} (stages: {[s.name for s in self.stages]})")
            self.stages = keep

    # ---------------------------------------------------------------------------- info
    def _attrs(self, f: Path) -> dict:
        from km3sim.io.hdf5 import read_attrs

        if f not in self._attrs_cache:
            self._attrs_cache[f] = read_attrs(f)
        return self._attrs_cache[f]

    def __repr__(self) -> str:
        parts = [f"{s.name} ({s.role}, {len(s.files)} files: {', '.join(s.tables)})" for s in self.stages]
        return f"<km3sim Dataset {self.kind} {self.path}: " + "; ".join(parts) + ">"

    @property
    def tables(self) -> list[str]:
        """Names of the tables available."""
        out: list[str] = []
        for s in self.stages:
            out += [t for t in s.tables if t not in out]
        return out

    def _producer(self, name: str, stage: str | None = None) -> StageFiles:
        cands = [s for s in self.stages if name in s.tables and (stage is None or stage in (s.name, s.role))]
        if not cands:
            raise KeyError(f"no table {name!r}{' in stage ' + repr(stage) if stage else ''}; tables: {self.tables}")
        return cands[-1]

    @property
    def run_ids(self) -> list[int]:
        """Runs present (from the files' ``run_id`` attribute)."""
        ids = set()
        for s in self.stages:
            for f in s.files:
                r = self._attrs(f).get("run_id")
                if r is not None:
                    ids.add(int(r))
        return sorted(ids)

    @property
    def livetime_s(self) -> float | None:
        """Livetime the sample stands for [s]: the sum over runs of the ``livetime_s`` the files
        record (each run counted once; None if the files do not record it)."""
        per_run: dict[int, float] = {}
        for s in self.stages[:1] if self.stages else []:
            for f in s.files:
                a = self._attrs(f)
                if a.get("livetime_s") is not None:
                    per_run[int(a.get("run_id", -1))] = float(a["livetime_s"])
        if not per_run:
            for s in self.stages:
                for f in s.files:
                    a = self._attrs(f)
                    if a.get("livetime_s") is not None:
                        per_run[int(a.get("run_id", -1))] = float(a["livetime_s"])
        return float(sum(per_run.values())) if per_run else None

    @property
    def detector(self):
        """The detector the files name (``detector_file`` attribute), or None if not readable."""
        if self._detector is None:
            from km3sim.pipeline.plan import load_detector

            for s in self.stages:
                for f in s.files[:1]:
                    df = self._attrs(f).get("detector_file")
                    if df and Path(df).is_file():
                        self._detector = load_detector(df)
                        return self._detector
        return self._detector

    # ---------------------------------------------------------------------------- tables
    def table(self, name: str, *, stage: str | None = None, columns: list[str] | None = None,
              weights: bool = False, flux=None, library: str = "numpy"):
        """One table, concatenated over all files.

        Parameters
        ----------
        name : str
            Table name (:mod:`km3sim.schema`).
        stage : str, optional
            Stage (name or role) to take it from; default the last stage that writes it.
        columns : list of str, optional
            Keep only these columns (``event_id`` is always kept).
        weights : bool
            Add a column ``weight``: the rate [1/s] the row's event stands for
            (:meth:`event_weights`).
        flux : callable, optional
            Flux for generation-weighted (neutrino) events, see :mod:`km3sim.weights`.
        library : ``"numpy"`` or ``"pandas"``
            Return a :class:`~km3sim.table.Table` or a :class:`pandas.DataFrame`.
        """
        from km3sim.io.hdf5 import read_stage_file

        src = self._producer(name, stage)
        # several generators (a production with ``generators:``) each write their events: a
        # table last written by a generator is the union of all generators' files
        sources = [src]
        if stage is None and src.role == "generate":
            sources = [s for s in self.stages if s.role == "generate" and name in s.tables]
        key = (tuple(s.name for s in sources), name)
        if key not in self._cache:
            parts = [read_stage_file(f, [name])[0][name] for s in sources for f in s.files]
            if not parts:
                raise StageFileError(f"{self.path}: no files of table {name!r}")
            t = Table.concat(parts, name=name)
            if len(sources) > 1:
                t = t.sort(("event_id",))
            self._cache[key] = t
        t = self._cache[key]
        if columns is not None:
            t = Table({k: t[k] for k in ["event_id", *[c for c in columns if c != "event_id"]]}, name=name)
        if weights:
            t = t.with_columns(weight=self.event_weights(t["event_id"], flux=flux))
        if library == "pandas":
            from km3sim._optional import require

            pd = require("pandas", "km3sim.open(...).table(library='pandas')")
            return pd.DataFrame({k: v for k, v in t.items()})
        if library != "numpy":
            raise ValueError(f"library must be 'numpy' or 'pandas', got {library!r}")
        return t

    def __getitem__(self, name: str) -> Table:
        return self.table(name)

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def weights(self, flux=None) -> np.ndarray:
        """Rate [1/s] of every row of the ``events`` table (:func:`km3sim.weights.rate_weights`)."""
        from km3sim.weights import rate_weights

        if "events" not in self.tables:
            raise Km3simError(f"{self.path}: weights need the generator's 'events' table (tables: {self.tables})")
        return rate_weights(self["events"], flux)

    def event_weights(self, event_ids, flux=None) -> np.ndarray:
        """Rate [1/s] of the events ``event_ids`` (any order, repeats allowed)."""
        events = self["events"] if "events" in self.tables else None
        if events is None:
            raise Km3simError(f"{self.path}: weights need the generator's 'events' table (tables: {self.tables})")
        w = self.weights(flux)
        ev = events["event_id"]
        order = np.argsort(ev, kind="stable")
        ids = np.asarray(event_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(ev[order], ids), 0, max(len(ev) - 1, 0))
        if len(ids) and (not len(ev) or np.any(ev[order][pos] != ids)):
            raise Km3simError(f"{self.path}: rows of events not in the 'events' table, e.g. {ids[ev[order][pos] != ids][:3]}")
        return w[order][pos] if len(ids) else np.zeros(0)

    def event(self, event_id: int) -> dict[str, Table]:
        """All tables' rows of one event."""
        return {name: self[name].event(int(event_id)) for name in self.tables}

    def to_pandas(self, name: str, **kw):
        """``table(name, library="pandas", **kw)``."""
        return self.table(name, library="pandas", **kw)

