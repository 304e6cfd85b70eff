"""Planning: a production becomes (stage, run, chunk) tasks that pass file paths.

Each task knows its output file, the files of the tables it consumes, and a chain hash over
everything that determines its content (stage config, seed, run, event range, detector,
site, data-model version and the chain hashes of its parents). An existing complete file with
the same chain hash is reused, so re-running a production resumes where it stopped and a
finished production recomputes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from km3sim import __version__
from km3sim.detector.geometry import Detector, build_arca_block, build_orca_block
from km3sim.io.detx import read_detector, write_detx
from km3sim.io.hdf5 import file_checksum
from km3sim.pipeline.config import Production, config_hash
from km3sim.schema import DATA_MODEL_VERSION
from km3sim.stage import get_stage

__all__ = ["Task", "Plan", "plan_production", "EVENTS_PER_RUN_MAX", "load_detector"]

log = logging.getLogger(__name__)

#: event_id = run_id * EVENTS_PER_RUN_MAX + event number within the run.
EVENTS_PER_RUN_MAX = 1_000_000_000


@dataclass(frozen=True)
class Task:
    """One (stage, run, chunk) unit of work. Small and picklable: only paths and numbers."""

    stage_index: int
    stage_name: str
    config: dict
    run_id: int
    chunk: int
    first_event: int  # event number within the run
    n_events: int
    n_events_run: int
    livetime_s: float
    seed: int
    detector_file: str
    detector_hash: str
    site: dict
    output: str
    parents: tuple[tuple[str, str], ...]  # (table name, file) for every consumed table
    parent_tasks: tuple[str, ...]  # keys of the tasks producing those files
    chain_hash: str

    @property
    def key(self) -> str:
        return f"{self.stage_name}-run{self.run_id}-chunk{self.chunk}"

    def event_ids(self) -> np.ndarray:
        base = np.int64(self.run_id) * EVENTS_PER_RUN_MAX
        return base + np.arange(self.first_event, self.first_event + self.n_events, dtype=np.int64)


@dataclass
class Plan:
    production: Production
    detector_file: Path
    tasks: list[Task] = field(default_factory=list)
    n_events_per_run: dict[int, int] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return Path(self.production.output)

    def by_stage(self) -> dict[str, list[Task]]:
        out: dict[str, list[Task]] = {}
        for t in self.tasks:
            out.setdefault(t.stage_name, []).append(t)
        return out


@lru_cache(maxsize=4)
def _load_detector_cached(path: str, mtime: float) -> Detector:
    return read_detector(path)


def load_detector(path: str | Path) -> Detector:
    """Read a detector file, cached per process (keyed by path and modification time)."""
    p = Path(path)
    return _load_detector_cached(str(p), p.stat().st_mtime)


def build_detector(prod: Production) -> Detector:
    spec = prod.detector
    if spec.file is not None:
        return read_detector(spec.file)
    kw = {}
    if spec.du_spacing_m is not None:
        kw["du_spacing_m"] = spec.du_spacing_m
    if spec.floor_spacing_m is not None:
        kw["floor_spacing_m"] = spec.floor_spacing_m
    builder = build_orca_block if spec.builder == "orca" else build_arca_block
    return builder(n_dus=spec.n_dus, **kw)


def detector_file_for(prod: Production, detector: Detector, write: bool = True) -> Path:
    """The detector file tasks read: the given file, or the built detector written as detx v5."""
    if prod.detector.file is not None:
        return Path(prod.detector.file)
    path = Path(prod.output) / "detector" / f"{prod.detector.builder}_{prod.detector.n_dus}du.detx"
    if write:
        if not path.is_file() or read_detector(path).content_hash() != detector.content_hash():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_detx(detector, path)
    return path


def stage_output_path(output: Path, stage: str, run_id: int, chunk: int) -> Path:
    """Where a stage file lives: ``<output>/<stage>/run<run:08d>_chunk<chunk:05d>.h5``."""
    return output / stage / f"run{run_id:08d}_chunk{chunk:05d}.h5"


def plan_production(prod: Production, write_detector: bool = True) -> Plan:
    """Turn a validated production into tasks (and write the built detector file if needed)."""
    detector = build_detector(prod)
    det_file = detector_file_for(prod, detector, write=write_detector)
    det_hash = detector.content_hash()
    site = prod.site_model()
    specs = prod.stage_specs()
    gen_cls = get_stage(specs[0].name)
    output = Path(prod.output)
    plan = Plan(production=prod, detector_file=det_file)
    site_dict = site.model_dump()
    configs = [s.config.model_dump(mode="json") for s in specs]
    inputs = [
        {str(f): file_checksum(f) for f in get_stage(s.name).input_files(s.config)} for s in specs
    ]

    for run in prod.run_list():
        livetime = run.livetime_s * prod.livetime_factor
        n_run = int(gen_cls.plan_events(specs[0].config, detector, site, livetime, prod.seed, run.run_id))
        if n_run >= EVENTS_PER_RUN_MAX:
            raise ValueError(f"run {run.run_id}: {n_run} events exceed {EVENTS_PER_RUN_MAX} per run")
        plan.n_events_per_run[run.run_id] = n_run
        n_chunks = max(1, -(-n_run // prod.chunk_size))
        for chunk in range(n_chunks):
            first = chunk * prod.chunk_size
            n = max(0, min(prod.chunk_size, n_run - first))
            producer: dict[str, Task] = {}
            for k, spec in enumerate(specs):
                cls = get_stage(spec.name)
                parents = tuple((t, producer[t].output) for t in cls.consumes)
                parent_tasks = tuple(sorted({producer[t].key for t in cls.consumes}))
                parent_hashes = sorted({producer[t].chain_hash for t in cls.consumes})
                chain = config_hash(
                    {
                        "stage": spec.name,
                        "config": configs[k],
                        "inputs": inputs[k],
                        "seed": prod.seed,
                        "run": run.run_id,
                        "first": first,
                        "n": n,
                        "n_run": n_run,
                        "livetime": livetime,
                        "detector": det_hash,
                        "site": site_dict,
                        "data_model": DATA_MODEL_VERSION,
                        "version": __version__,
                        "parents": parent_hashes,
                    }
                )
                task = Task(
                    stage_index=k,
                    stage_name=spec.name,
                    config=configs[k],
                    run_id=run.run_id,
                    chunk=chunk,
                    first_event=first,
                    n_events=n,
                    n_events_run=n_run,
                    livetime_s=livetime,
                    seed=prod.seed,
                    detector_file=str(det_file),
                    detector_hash=det_hash,
                    site=site_dict,
                    output=str(stage_output_path(output, spec.name, run.run_id, chunk)),
                    parents=parents,
                    parent_tasks=parent_tasks,
                    chain_hash=chain,
                )
                plan.tasks.append(task)
                for t in cls.produces:
                    producer[t] = task
    log.info("planned %d tasks for %d runs", len(plan.tasks), len(plan.n_events_per_run))
    return plan
