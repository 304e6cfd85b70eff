"""Planning: a production becomes (stage, run, chunk) tasks that pass file paths.

Each task knows its output file, the files of the tables it consumes, and a chain hash over
everything that determines its content (stage config, seed, run, event range, detector,
site, data-model version and the chain hashes of its parents). An existing complete file with
the same chain hash is reused, so re-running a production resumes where it stopped and a
finished production recomputes nothing.

Planning scales to 10^4 runs and 10^5 chunks: the numbers of events are drawn once per run
and generator; the tasks themselves are made chunk by chunk when asked for
(:meth:`Plan.units`, :meth:`Plan.chunk_tasks`), with the parts of the chain hash that do not
depend on the chunk hashed once per stage.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from km3sim import __version__
from km3sim.detector.geometry import Detector, build_arca_block, build_orca_block
from km3sim.errors import ConfigError
from km3sim.io.detx import read_detector, write_detx
from km3sim.io.hdf5 import file_checksum
from km3sim.pipeline.config import Production, RunSpec, Stream, config_hash
from km3sim.schema import DATA_MODEL_VERSION
from km3sim.stage import get_stage

__all__ = ["Task", "Plan", "ChunkUnit", "RunPlan", "plan_production", "EVENTS_PER_RUN_MAX", "GENERATOR_STRIDE",
           "load_detector", "stage_output_path", "ChecksumCache"]

log = logging.getLogger(__name__)

#: event_id = run_id * EVENTS_PER_RUN_MAX + event number within the run.
EVENTS_PER_RUN_MAX = 1_000_000_000
#: In a production with ``generators:``, the event numbers of generator k start at k * GENERATOR_STRIDE.
GENERATOR_STRIDE = 100_000_000


@dataclass(frozen=True)
class Task:
    """One (stage, run, chunk) unit of work. Small and picklable: only paths and numbers."""

    stage_index: int
    stage_name: str
    config: dict
    run_id: int
    chunk: int
    first_event: int  # event number within the run (and generator)
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
    generator: str = ""  # label of the generator whose events this chunk holds
    generator_index: int = 0
    event_offset: int = 0  # added to the event numbers: generator_index * GENERATOR_STRIDE when tagged
    tagged: bool = False  # file names and keys carry the generator index
    run_start_utc_s: float | None = None
    production: str = ""
    production_hash: str = ""

    @property
    def key(self) -> str:
        if self.tagged:
            return f"{self.stage_name}-run{self.run_id}-g{self.generator_index}-chunk{self.chunk}"
        return f"{self.stage_name}-run{self.run_id}-chunk{self.chunk}"

    def event_ids(self) -> np.ndarray:
        base = np.int64(self.run_id) * EVENTS_PER_RUN_MAX + self.event_offset
        return base + np.arange(self.first_event, self.first_event + self.n_events, dtype=np.int64)


@dataclass(frozen=True)
class ChunkUnit:
    """One chunk of one generator in one run: the tasks of all its stages form a chain."""

    stream: int
    run_index: int
    run_id: int
    chunk: int
    first_event: int
    n_events: int


@dataclass
class RunPlan:
    """A run as planned: its resolved inputs and its number of events per generator."""

    run: RunSpec
    livetime_s: float  # data livetime (before the livetime factor)
    start_utc_s: float | None
    detector_file: Path
    detector_hash: str
    conditions: Path | None  # the run-conditions HDF5 file stages read
    conditions_source: str | None  # the file named in the production and its checksum
    conditions_checksum: str | None
    n_events: list[int] = field(default_factory=list)  # per stream

    @property
    def run_id(self) -> int:
        return self.run.run_id


class ChecksumCache:
    """SHA-256 of input files, recomputed only when a file's size or modification time changes.

    ``store`` (optional) is a mapping persisted by the caller (the catalogue) from path to
    ``(size, mtime_ns, sha256)``.
    """

    def __init__(self, store: dict | None = None):
        self.store = store if store is not None else {}
        self.changed: dict[str, tuple[int, int, str]] = {}

    def __call__(self, path) -> str:
        path = str(path)
        try:
            st = os.stat(path)
        except OSError:
            return file_checksum(path)  # raises the StageFileError naming the file
        hit = self.store.get(path)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        value = file_checksum(path)
        self.store[path] = self.changed[path] = (st.st_size, st.st_mtime_ns, value)
        return value


@dataclass
class Plan:
    production: Production
    detector_file: Path
    runs: list[RunPlan] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    n_events_per_run: dict[int, int] = field(default_factory=dict)
    _chains: dict = field(default_factory=dict, repr=False)
    _site: dict = field(default_factory=dict, repr=False)
    _static: dict = field(default_factory=dict, repr=False)
    _checksums: ChecksumCache = field(default_factory=ChecksumCache, repr=False)
    _production_hash: str = ""
    _prefixes: dict = field(default_factory=dict, repr=False)

    @property
    def output(self) -> Path:
        return Path(self.production.output)

    # ----------------------------------------------------------------------- enumeration
    def n_chunks_of(self, stream: Stream, n_run: int) -> int:
        return max(1, -(-n_run // stream.chunk_size))

    @property
    def n_chunks(self) -> int:
        """Number of (generator, run, chunk) units."""
        return sum(self.n_chunks_of(s, r.n_events[s.index]) for r in self.runs for s in self.streams)

    @property
    def n_tasks(self) -> int:
        return sum(self.n_chunks_of(s, r.n_events[s.index]) * len(self._chains[s.index])
                   for r in self.runs for s in self.streams)

    def units(self):
        """Every chunk, in (run, generator, chunk) order, i.e. in event_id order."""
        for i, r in enumerate(self.runs):
            for s in self.streams:
                n_run = r.n_events[s.index]
                size = s.chunk_size
                for c in range(self.n_chunks_of(s, n_run)):
                    first = c * size
                    yield ChunkUnit(s.index, i, r.run_id, c, first, max(0, min(size, n_run - first)))

    def stage_names(self) -> list[str]:
        """The stage names of the production, generators first, without repetition."""
        names: list[str] = []
        for s in self.streams:
            for spec in self._chains[s.index]:
                if spec.name not in names:
                    names.append(spec.name)
        return names

    def stage_index(self, task: Task) -> int:
        """Position of the task's stage in :meth:`stage_names`."""
        return self.stage_names().index(task.stage_name)

    def chunk_tasks(self, unit: ChunkUnit) -> list[Task]:
        """The tasks of one chunk, in stage order (each after the ones it reads)."""
        prod = self.production
        stream = self.streams[unit.stream]
        rp = self.runs[unit.run_index]
        chain = self._chains[stream.index]
        livetime = rp.livetime_s * stream.livetime_factor
        n_run = rp.n_events[stream.index]
        offset = stream.index * GENERATOR_STRIDE if stream.tagged else 0
        producer: dict[str, Task] = {}
        tasks = []
        for k, spec in enumerate(chain):
            cls = get_stage(spec.name)
            config, static = self._stage_static(stream.index, k, rp)
            parents = tuple((t, producer[t].output) for t in cls.consumes)
            parent_tasks = tuple(sorted({producer[t].key for t in cls.consumes}))
            parent_hashes = ",".join(sorted({producer[t].chain_hash for t in cls.consumes}))
            text = f"{static}|{unit.run_id}|{unit.first_event}|{unit.n_events}|{n_run}|{livetime!r}|{offset}|{parent_hashes}"
            chain_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
            task = Task(
                stage_index=k,
                stage_name=spec.name,
                config=config,
                run_id=unit.run_id,
                chunk=unit.chunk,
                first_event=unit.first_event,
                n_events=unit.n_events,
                n_events_run=n_run,
                livetime_s=livetime,
                seed=prod.seed,
                detector_file=str(rp.detector_file),
                detector_hash=rp.detector_hash,
                site=self._site,
                output=self._output_path(spec.name, unit.run_id, unit.chunk, stream.index if stream.tagged else None),
                parents=parents,
                parent_tasks=parent_tasks,
                chain_hash=chain_hash,
                generator=stream.label,
                generator_index=stream.index,
                event_offset=offset,
                tagged=stream.tagged,
                run_start_utc_s=rp.start_utc_s,
                production=prod.name,
                production_hash=self._production_hash,
            )
            tasks.append(task)
            for t in cls.produces:
                producer[t] = task
        return tasks

    def iter_tasks(self):
        """Every task, chunk by chunk."""
        for unit in self.units():
            yield from self.chunk_tasks(unit)

    @cached_property
    def tasks(self) -> list[Task]:
        """All tasks as a list (small productions; large ones use :meth:`iter_tasks`)."""
        return list(self.iter_tasks())

    def by_stage(self) -> dict[str, list[Task]]:
        out: dict[str, list[Task]] = {name: [] for name in self.stage_names()}
        for t in self.iter_tasks():
            out[t.stage_name].append(t)
        return out

    def _output_path(self, stage: str, run_id: int, chunk: int, generator: int | None) -> str:
        # string formatting instead of pathlib: this runs once per task (10^5 - 10^6 times)
        prefix = self._prefixes.get(stage)
        if prefix is None:
            prefix = self._prefixes[stage] = str(stage_output_path(self.output, stage, 0, 0).parent) + os.sep
        if generator is None:
            return f"{prefix}run{run_id:08d}_chunk{chunk:05d}.h5"
        return f"{prefix}run{run_id:08d}_g{generator}_chunk{chunk:05d}.h5"

    # ----------------------------------------------------------------------- hashing
    def _stage_static(self, stream: int, k: int, rp: RunPlan) -> tuple[dict, str]:
        """The task config and the chunk-independent part of the chain hash of a stage for a run."""
        key = (stream, k, rp.detector_hash, str(rp.conditions) if rp.conditions else None)
        hit = self._static.get(key)
        if hit is not None:
            return hit
        spec = self._chains[stream][k]
        cls = get_stage(spec.name)
        config = spec.config.model_dump(mode="json")
        cfg_obj = spec.config
        if rp.conditions is not None and "conditions" in cls.Config.model_fields:
            config = dict(config, conditions=str(rp.conditions))
            cfg_obj = cls.Config.model_validate(config)
        inputs = {}
        for f in cls.input_files(cfg_obj):
            if rp.conditions is not None and str(f) == str(rp.conditions):
                inputs[rp.conditions_source] = rp.conditions_checksum  # the summaryslices it was made of
            else:
                inputs[str(f)] = self._checksums(f)
        static = config_hash(
            {
                "stage": spec.name,
                "config": config,
                "inputs": inputs,
                "seed": self.production.seed,
                "detector": rp.detector_hash,
                "site": self._site,
                "data_model": DATA_MODEL_VERSION,
                "version": __version__,
            }
        )
        self._static[key] = (config, static)
        return config, static


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


def stage_output_path(output: Path, stage: str, run_id: int, chunk: int, generator: int | None = None) -> Path:
    """Where a stage file lives: ``<output>/<stage>/run<run:08d>_chunk<chunk:05d>.h5``, or with
    ``generators:`` ``<output>/<stage>/run<run:08d>_g<k>_chunk<chunk:05d>.h5`` (k = generator index),
    so that sorting the names sorts the files by event_id."""
    if generator is None:
        return Path(output) / stage / f"run{run_id:08d}_chunk{chunk:05d}.h5"
    return Path(output) / stage / f"run{run_id:08d}_g{generator}_chunk{chunk:05d}.h5"


def _is_conditions_hdf5(path: Path) -> bool:
    return path.suffix.lower() in (".h5", ".hdf5")


def _conditions_for_run(run: RunSpec, output: Path, checksums: ChecksumCache, write: bool):
    """(conditions HDF5 path, source path, source checksum, n_frames x frame length, utc start) of a run."""
    import h5py

    from km3sim.detector.conditions import RunConditions
    from km3sim.errors import StageFileError

    src = Path(run.conditions)
    digest = checksums(src)
    if _is_conditions_hdf5(src):
        path = src
        cond = None
        if run.livetime_s is not None and run.start_time is not None:
            # nothing to read at planning time: a bad file fails the chunks that read it, not the plan
            return path, str(src), digest, run.livetime_s, run.start_utc_s
    else:
        path = output / "conditions" / f"run{run.run_id:08d}_{digest[:12]}.h5"
        cond = None
        if not path.is_file():
            cond = RunConditions.from_daq([str(src)])
            if cond.run_id != run.run_id:
                log.warning("run %d: the summaryslices in %s are of run %d", run.run_id, src, cond.run_id)
            if write:
                cond.save(path)
    if cond is None:
        try:
            with h5py.File(path, "r") as f:
                n_frames = int(f["frame_start_s"].shape[0])
                frame = float(f.attrs["frame_length_s"])
                start = float(f.attrs["utc_start_s"])
        except (OSError, KeyError) as exc:
            raise StageFileError(f"run {run.run_id}: cannot read run conditions {path}: {exc}") from exc
    else:
        n_frames, frame, start = cond.n_frames, cond.frame_length_s, cond.utc_start_s
    return path, str(src), digest, n_frames * frame, start


def plan_production(prod: Production, write_detector: bool = True, checksums: ChecksumCache | None = None) -> Plan:
    """Turn a validated production into a plan (and write the built detector and converted
    run conditions if ``write_detector``).

    Parameters
    ----------
    prod : Production
    write_detector : bool
        Write derived inputs (built detector, conditions converted from summaryslices) into the
        output directory; ``False`` for read-only uses such as ``km3sim status``.
    checksums : ChecksumCache, optional
        Cache of input-file checksums (the catalogue keeps one between runs).
    """
    checksums = checksums if checksums is not None else ChecksumCache()
    detector = build_detector(prod)
    det_file = detector_file_for(prod, detector, write=write_detector)
    det_hash = detector.content_hash()
    site = prod.site_model()
    output = Path(prod.output)
    streams = prod.streams()
    plan = Plan(production=prod, detector_file=det_file, streams=streams, _checksums=checksums)
    plan._site = site.model_dump()
    plan._chains = {s.index: prod.chain(s) for s in streams}
    plan._production_hash = prod.production_hash()
    gen_classes = [get_stage(s.spec.name) for s in streams]

    detectors: dict[str, tuple[Detector, str]] = {str(det_file): (detector, det_hash)}
    for run in prod.run_list():
        if run.detector is not None and str(run.detector) not in detectors:
            d = read_detector(run.detector)
            detectors[str(run.detector)] = (d, d.content_hash())
        dfile = str(run.detector) if run.detector is not None else str(det_file)
        run_det, run_hash = detectors[dfile]
        cond = src = digest = None
        start = run.start_utc_s
        livetime = run.livetime_s
        if run.conditions is not None:
            cond, src, digest, cond_livetime, cond_start = _conditions_for_run(run, output, checksums, write_detector)
            livetime = livetime if livetime is not None else cond_livetime
            start = start if start is not None else cond_start
        rp = RunPlan(run=run, livetime_s=float(livetime), start_utc_s=start, detector_file=Path(dfile),
                     detector_hash=run_hash, conditions=cond, conditions_source=src, conditions_checksum=digest)
        for s, gen_cls in zip(streams, gen_classes):
            n = int(gen_cls.plan_events(s.spec.config, run_det, site, rp.livetime_s * s.livetime_factor,
                                        prod.seed, run.run_id))
            limit = GENERATOR_STRIDE if s.tagged else EVENTS_PER_RUN_MAX
            if n >= limit:
                raise ConfigError(f"run {run.run_id}, generator {s.label!r}: {n} events exceed {limit} per run"
                                  + (" and generator" if s.tagged else "") + "; split the run")
            rp.n_events.append(n)
        plan.runs.append(rp)
        plan.n_events_per_run[run.run_id] = sum(rp.n_events)
    log.info("planned %d chunks for %d runs and %d generators", plan.n_chunks, len(plan.runs), len(streams))
    return plan
