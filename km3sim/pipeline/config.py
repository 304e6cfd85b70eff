"""The production YAML: a strict pydantic model whose errors name the key and the line.

Example (see ``productions/quickstart.yaml``)::

    name: quickstart
    seed: 20261122
    output: output/quickstart
    detector: {builder: orca, n_dus: 7}
    site: orca
    runs:
      - {run_id: 1, livetime_s: 30}
    livetime_factor: 1
    chunk_size: 200
    cluster: {workers: 2}
    stages:
      - atmospheric_muons: {energy_min_gev: 10}
      - muon_propagation: {}
      ...
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from km3sim.errors import ConfigError
from km3sim.stage import SITE_PRESETS, Site, StageConfig, get_stage

__all__ = ["Production", "StageSpec", "Stream", "RunSpec", "ClusterSpec", "JobqueueSpec", "GeneratorSpec",
           "load_production", "config_hash", "MAX_GENERATORS", "POSITIONAL_GENERATORS"]

#: Most generators in one production (event numbers of generator k start at k x 10^8 in a run).
MAX_GENERATORS = 10
#: Generators that read the event at position ``event_id - run_id x 10^9 - k x 10^8`` of their
#: input files (k: the generator's index, :meth:`km3sim.stage.StageContext.event_positions`).
POSITIONAL_GENERATORS = frozenset({"generator_files", "corsika_muons"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSpec(_Strict):
    """Where the detector comes from: a detx/datx ``file`` or a synthetic ``builder``."""

    file: Path | None = None
    builder: Literal["orca", "arca"] | None = None
    n_dus: int = Field(7, ge=1, le=1000)
    du_spacing_m: float | None = Field(None, gt=0)
    floor_spacing_m: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.file is None) == (self.builder is None):
            raise ValueError("give exactly one of 'file' or 'builder'")
        return self


class RunSpec(_Strict):
    """One data run: its id, (data) livetime and, optionally, start time, detector and conditions.

    ``livetime_s`` may be left out when ``conditions`` is given: the run then lasts as long as its
    summaryslices (number of timeslices x 0.1 s). ``start_time`` is UTC (ISO 8601 or seconds since
    1970; default: the start of the conditions, if any). ``detector`` replaces the production's
    detector for this run (a detx/datx file: each real run has its own calibration);
    ``conditions`` is a run-conditions HDF5 file (``km3sim conditions --save``) or the run's
    summaryslices themselves (DAQ ROOT file, Jpp ``.dat`` stream or text dump), converted once
    into ``<output>/conditions/``. It is handed to every stage that has a ``conditions`` key.
    """

    run_id: int = Field(ge=0, lt=2**31)
    livetime_s: float | None = Field(None, gt=0)
    start_time: datetime | None = None
    detector: Path | None = None
    conditions: Path | None = None

    @model_validator(mode="after")
    def _livetime_known(self):
        if self.livetime_s is None and self.conditions is None:
            raise ValueError("give livetime_s (or conditions, whose summaryslices define the livetime)")
        return self

    @property
    def start_utc_s(self) -> float | None:
        """Start time in seconds since 1970 (UTC), or None."""
        if self.start_time is None:
            return None
        t = self.start_time if self.start_time.tzinfo else self.start_time.replace(tzinfo=timezone.utc)
        return t.timestamp()


class SyntheticRuns(_Strict):
    """``n_runs`` synthetic runs numbered from ``first_run_id``, each of ``livetime_s``."""

    first_run_id: int = Field(1, ge=0, lt=2**31)
    n_runs: int = Field(ge=1, le=1_000_000)
    livetime_s: float = Field(gt=0)

    def expand(self) -> list[RunSpec]:
        make = RunSpec.model_construct  # validated as a whole above; 10^4 runs stay fast
        return [make(run_id=self.first_run_id + i, livetime_s=self.livetime_s, start_time=None, detector=None,
                     conditions=None) for i in range(self.n_runs)]


class RunsFile(_Strict):
    """Runs listed in a file: CSV with a header line (columns ``run_id, livetime_s, start_time,
    detector, conditions``; the last three optional, empty cells allowed) or a YAML/JSON list of
    mappings with those keys. Paths in it are relative to the file."""

    file: Path


class GeneratorSpec(_Strict):
    """One generator of a multi-generator production (an entry of ``generators:``)."""

    stage: str
    config: dict[str, Any] | None = None
    chunk_size: int | None = Field(None, ge=1, le=10_000_000)
    livetime_factor: float | None = Field(None, gt=0)


class JobqueueSpec(_Strict):
    """Batch jobs for dask-jobqueue (``cluster.type`` slurm, htcondor or pbs): one dask worker per
    job by default. Values go to the dask-jobqueue cluster class (see
    :func:`km3sim.pipeline.cluster.jobqueue_arguments`)."""

    cores: int = Field(1, ge=1, le=1024)
    processes: int = Field(1, ge=1, le=1024)
    memory: str = "4GB"
    disk: str | None = None  # HTCondor request_disk (default: memory)
    queue: str | None = None  # SLURM partition / PBS queue
    account: str | None = None  # SLURM account / PBS project
    walltime: str | None = "24:00:00"
    job_name: str = "km3sim"
    job_extra_directives: list[str] = []
    job_script_prologue: list[str] = []  # e.g. ["module load apptainer", "source env.sh"]
    worker_extra_args: list[str] = []
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    python: str | None = None  # python on the worker nodes (e.g. "apptainer exec km3sim.sif python")


class ClusterSpec(_Strict):
    """Execution: embedded LocalCluster (``workers`` processes; 0 = this process, no dask), an
    existing ``scheduler``, or a batch system through dask-jobqueue (``type`` slurm, htcondor,
    pbs; ``workers`` = number of jobs, or ``adapt_max`` for adaptive scaling)."""

    type: Literal["local", "slurm", "htcondor", "pbs"] = "local"
    workers: int = Field(2, ge=0, le=100_000)
    scheduler: str | None = None
    memory_limit: str = "auto"
    retries: int = Field(2, ge=0, le=10)  # for worker-lost and out-of-memory failures only
    memory_retry_factor: float = Field(2.0, ge=1.0, le=16.0)
    max_chunks_in_flight: int = Field(0, ge=0)  # chunks fed to the scheduler at a time; 0 = 4 x workers (>= 8)
    dashboard: bool = True  # LocalCluster dashboard (needs bokeh)
    adapt_max: int | None = Field(None, ge=1)
    jobqueue: JobqueueSpec | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.jobqueue is not None and self.type == "local":
            raise ValueError("a 'jobqueue' section needs type slurm, htcondor or pbs")
        if self.type != "local" and self.workers == 0 and self.adapt_max is None:
            raise ValueError(f"type {self.type!r} needs workers >= 1 (jobs) or adapt_max")
        return self


class SanitySpec(_Strict):
    """Per-chunk sanity checks; a failed check is a flag in the catalogue, not an error."""

    max_hits_per_event: float = Field(1e6, gt=0)
    min_hits_per_event: float = Field(0.0, ge=0)


class StageSpec(BaseModel):
    """A stage of the production: its registered name and validated config."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    config: StageConfig


@dataclass(frozen=True)
class Stream:
    """A generator of a production and the events it makes (the "stream" of its chunks).

    ``index`` is its position in ``generators:`` (0 for a single-generator production); its event
    numbers in a run start at ``index x 10^8`` when ``tagged`` (files ``run..._g<index>_chunk...``)
    and at 0 otherwise (the single-generator layout ``run..._chunk...``).
    """

    index: int
    label: str
    spec: StageSpec
    chunk_size: int
    livetime_factor: float
    tagged: bool


class Production(_Strict):
    """A production: what to simulate, where, and how to run it."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(ge=0, lt=2**63)
    output: Path
    detector: DetectorSpec
    site: Literal["orca", "arca"] | Site = "orca"
    runs: list[RunSpec] | SyntheticRuns | RunsFile
    livetime_factor: float = Field(10.0, gt=0)
    chunk_size: int = Field(1000, ge=1, le=10_000_000)
    cluster: ClusterSpec = ClusterSpec()
    sanity: SanitySpec = SanitySpec()
    generators: dict[str, GeneratorSpec] | None = None
    stages: list[dict[str, dict[str, Any] | None]] = []

    # populated by load_production
    source: Path | None = None
    _stage_specs: list = PrivateAttr(default_factory=list)
    _streams: list = PrivateAttr(default_factory=list)
    _processing: list = PrivateAttr(default_factory=list)

    @field_validator("runs")
    @classmethod
    def _unique_runs(cls, runs):
        if isinstance(runs, list):
            ids = [r.run_id for r in runs]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"run ids must be unique, repeated: {dup}")
            if not runs:
                raise ValueError("at least one run is needed")
        return runs

    @field_validator("generators")
    @classmethod
    def _generator_labels(cls, gens):
        if gens is not None:
            if not gens:
                raise ValueError("give at least one generator (or leave 'generators' out)")
            if len(gens) > MAX_GENERATORS:
                raise ValueError(f"at most {MAX_GENERATORS} generators, got {len(gens)}")
            import re

            bad = [k for k in gens if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(k))]
            if bad:
                raise ValueError(f"generator labels may use letters, digits, '_', '.', '-' only: {bad}")
        return gens

    @model_validator(mode="after")
    def _some_stage(self):
        if not self.stages and self.generators is None:
            raise ValueError("at least one stage is needed")
        return self

    @field_validator("stages")
    @classmethod
    def _single_key(cls, stages):
        for i, entry in enumerate(stages):
            if len(entry) != 1:
                raise ValueError(f"entry {i} must be a single 'stage_name: {{config}}' mapping, got keys {list(entry)}")
        return stages

    def run_list(self) -> list[RunSpec]:
        """The runs (a runs file is read by :func:`load_production`)."""
        if isinstance(self.runs, SyntheticRuns):
            return self.runs.expand()
        if isinstance(self.runs, RunsFile):
            raise ConfigError("the runs file has not been read: load the production with load_production()")
        return list(self.runs)

    def site_model(self) -> Site:
        return SITE_PRESETS[self.site] if isinstance(self.site, str) else self.site

    def stage_specs(self) -> list[StageSpec]:
        """The validated stages (built by :func:`load_production`): for a single-generator
        production the generator and then the processing stages; with ``generators:`` every
        generator, then the processing stages."""
        return list(self._stage_specs)

    def streams(self) -> list[Stream]:
        """The generators of the production, in order."""
        return list(self._streams)

    def processing_specs(self) -> list[StageSpec]:
        """The stages after the generator (the same for every generator)."""
        return list(self._processing)

    def chain(self, stream: Stream) -> list[StageSpec]:
        """The stages a chunk of ``stream`` goes through: its generator, then the processing stages."""
        return [stream.spec, *self._processing]

    @property
    def multi_generator(self) -> bool:
        return self.generators is not None

    def production_hash(self) -> str:
        """Hash of everything that decides the production's content (not how it is run)."""
        data = self.model_dump(mode="json", exclude={"cluster", "output", "source"})
        return config_hash(data)


def config_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (first 16 hex digits)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------


def _line_map(text: str) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}

    def walk(node, path):
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _where(source: str, lines: dict[tuple, int], loc: tuple) -> str:
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return f"{source}:{lines.get(loc, 1)}"


def _dotted(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _format_errors(exc: ValidationError, source: str, lines, prefix: tuple = ()) -> list[str]:
    msgs = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in ("list", "function-after", "function-before", "literal", "int", "str", "float"))))
        # pydantic inserts union-member tags into loc; drop those that are not keys of the document
        loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}"
        msgs.append(f"{_where(source, lines, loc)}: {_dotted(loc)}: {msg}")
    return msgs


def load_production(path: str | Path, overrides: dict[str, Any] | None = None) -> Production:
    """Read and validate a production YAML.

    Parameters
    ----------
    path : path-like
        The YAML file. Relative paths inside it (detector file, output) are taken relative to
        the current working directory if they exist there, else relative to the YAML file.
    overrides : dict, optional
        Top-level values replacing those of the file (e.g. from the command line).

    Raises
    ------
    ConfigError
        Naming every invalid key with file and line.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read production file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: a production file must be a mapping of keys, got {type(data).__name__}")
    data = dict(data)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("workers", "scheduler"):
            cluster = dict(data.get("cluster") or {})
            cluster[key] = value
            data["cluster"] = cluster
        else:
            data[key] = value
    try:
        prod = Production.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid production file:\n  " + "\n  ".join(_format_errors(exc, source, lines))) from None

    errors: list[str] = []
    base = path.parent

    def stage_spec(name, cfg, where: tuple, label: str):
        try:
            cls = get_stage(name)
        except ConfigError as exc:
            errors.append(f"{_where(source, lines, where)}: {label}: {exc}")
            return None
        try:
            return StageSpec(name=name, config=cls.Config.model_validate(cfg or {}))
        except ValidationError as exc:
            errors.extend(_format_errors(exc, source, lines, prefix=where))
            return None

    processing: list[StageSpec | None] = []
    gen_specs: list[tuple[str, GeneratorSpec, StageSpec | None]] = []
    for i, entry in enumerate(prod.stages):
        (name, cfg), = entry.items()
        processing.append(stage_spec(name, cfg, ("stages", i, name), f"stages[{i}]"))
    if prod.generators is None:
        first = processing.pop(0) if processing else None
        if first is not None:
            gen_specs.append((first.name, GeneratorSpec(stage=first.name), first))
        first_where = ("stages", 0)
    else:
        for label, g in prod.generators.items():
            gen_specs.append((label, g, stage_spec(g.stage, g.config, ("generators", label, "config"),
                                                   f"generators.{label}")))
        first_where = ("generators",)
    if not errors:
        for k, (label, g, spec) in enumerate(gen_specs):
            role = get_stage(spec.name).role
            where = ("generators", label) if prod.generators is not None else first_where
            if role != "generate":
                what = f"generators.{label}" if prod.generators is not None else "stages"
                errors.append(f"{_where(source, lines, where)}: {what}: stage {spec.name!r} is not a generator (role {role!r})"
                              + ("" if prod.generators is not None else "; the first stage, and only it, must be a generator"))
        for i, s in enumerate(processing):
            role = get_stage(s.name).role
            if role == "generate":
                hint = ("generators go in 'generators:'" if prod.generators is not None
                        else "the first stage, and only it, must be a generator")
                errors.append(f"{_where(source, lines, ('stages', i))}: stages[{i}].{s.name}: {hint}")
    if not errors:
        offset = 0 if prod.generators is not None else 1  # index in the YAML 'stages' list
        processing = _link_muon_cuts(processing, errors, source, lines, offset)
        for label, _, spec in gen_specs:
            produced: set[str] = set(get_stage(spec.name).produces)
            for i, s in enumerate(processing):
                cls = get_stage(s.name)
                for t in cls.consumes:
                    if t not in produced:
                        which = ("no earlier stage produces" if prod.generators is None
                                 else f"neither generator {label!r} nor an earlier stage produces")
                        errors.append(f"{_where(source, lines, ('stages', i + offset))}: stages[{i + offset}].{s.name}: "
                                      f"needs table {t!r}, which {which}")
                produced.update(cls.produces)

    # runs
    runs = prod.runs
    if isinstance(runs, RunsFile):
        f = _resolve_path(runs.file, base)
        try:
            runs = _read_runs_file(f)
        except ConfigError as exc:
            errors.append(f"{_where(source, lines, ('runs', 'file'))}: runs.file: {exc}")
            runs = []
        prod = prod.model_copy(update={"runs": runs})
    if isinstance(runs, list):
        resolved = []
        for i, r in enumerate(runs):
            upd = {}
            for key in ("detector", "conditions"):
                value = getattr(r, key)
                if value is not None:
                    f = _resolve_path(value, base)
                    if not f.is_file():
                        errors.append(f"{_where(source, lines, ('runs', i, key))}: runs[{i}].{key}: run {r.run_id}: "
                                      f"file {str(value)!r} does not exist")
                    else:
                        upd[key] = f.resolve()
            resolved.append(r.model_copy(update=upd) if upd else r)
        if resolved:
            ids = [r.run_id for r in resolved]
            if len(set(ids)) != len(ids):
                seen, dup = set(), set()
                for i in ids:
                    (dup if i in seen else seen).add(i)
                errors.append(f"{source}: runs: run ids must be unique, repeated: {sorted(dup)[:10]}")
            prod = prod.model_copy(update={"runs": resolved})
        elif not errors:
            errors.append(f"{_where(source, lines, ('runs',))}: runs: at least one run is needed")
    # files: the detector must exist
    det = prod.detector
    if det.file is not None:
        f = _resolve_path(det.file, base)
        if not f.is_file():
            errors.append(f"{_where(source, lines, ('detector', 'file'))}: detector.file: file {str(det.file)!r} does not exist")
        else:
            prod = prod.model_copy(update={"detector": det.model_copy(update={"file": f.resolve()})})
    if errors:
        raise ConfigError("invalid production file:\n  " + "\n  ".join(errors))
    prod = prod.model_copy(update={"source": path.resolve()})
    tagged = prod.generators is not None
    streams = [
        Stream(index=k, label=label, spec=spec, chunk_size=g.chunk_size or prod.chunk_size,
               livetime_factor=g.livetime_factor if g.livetime_factor is not None else prod.livetime_factor,
               tagged=tagged)
        for k, (label, g, spec) in enumerate(gen_specs)
    ]
    prod._streams = streams
    prod._processing = list(processing)
    prod._stage_specs = [s.spec for s in streams] + list(processing)
    return prod


def _link_muon_cuts(processing: list, errors: list[str], source: str, lines, offset: int) -> list:
    """Give ``direct_light`` the cuts of the production's ``muon_propagation`` (``muon_v_cut``:
    its ``v_cut``, or 1 with ``stochastic: false``; ``muon_e_cut_gev``: its ``e_cut_gev``): the
    light stage emits the light of the losses the propagation kept continuous. Keys set in the
    file must agree with them (else an error naming both stages and keys)."""
    mp = next((s for s in processing if s.name == "muon_propagation"), None)
    if mp is None:
        return processing
    want = {"muon_v_cut": float(mp.config.v_cut) if mp.config.stochastic else 1.0,
            "muon_e_cut_gev": float(mp.config.e_cut_gev)}
    src = {"muon_v_cut": "v_cut" if mp.config.stochastic else "stochastic: false (v_cut 1)",
           "muon_e_cut_gev": "e_cut_gev"}
    out = list(processing)
    for i, s in enumerate(processing):
        if s.name != "direct_light":
            continue
        update = {}
        for key, value in want.items():
            if key not in s.config.model_fields_set:
                update[key] = value
            elif abs(float(getattr(s.config, key)) - value) > 1e-12 * max(1.0, abs(value)):
                errors.append(f"{_where(source, lines, ('stages', i + offset, s.name, key))}: stages[{i + offset}]."
                              f"direct_light.{key} = {getattr(s.config, key)} disagrees with muon_propagation."
                              f"{src[key]} = {value}; leave {key} out (it is taken from muon_propagation) or "
                              "make them equal")
        if update:
            cfg = type(s.config).model_validate({**s.config.model_dump(exclude_unset=True), **update})
            out[i] = StageSpec(name=s.name, config=cfg)
    return out


def _resolve_path(p: Path, base: Path) -> Path:
    """A relative path: as given if it exists from the working directory, else relative to ``base``."""
    p = Path(p)
    return p if p.is_absolute() or p.exists() else base / p


_RUN_COLUMNS = ("run_id", "livetime_s", "start_time", "detector", "conditions")


def _read_runs_file(path: Path) -> list[RunSpec]:
    """Runs from a CSV (header line) or YAML/JSON list; relative paths are taken from the file's folder."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read runs file {path}: {exc.strerror}") from exc
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML/JSON: {exc}") from exc
        if not isinstance(data, list):
            raise ConfigError(f"{path}:1: a runs file must be a list of runs")
        for item, n in zip(data, node.value):
            rows.append((n.start_mark.line + 1, item))
    else:
        reader = csv.reader(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
        numbered = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
                    if line.strip() and not line.lstrip().startswith("#")]
        parsed = list(reader)
        if not parsed:
            raise ConfigError(f"{path}: no runs")
        header = [h.strip() for h in parsed[0]]
        unknown = [h for h in header if h not in _RUN_COLUMNS]
        if unknown or "run_id" not in header:
            raise ConfigError(f"{path}:{numbered[0][0]}: the header must name columns among {list(_RUN_COLUMNS)} "
                              f"including run_id; got {header}")
        for (lineno, _), cells in zip(numbered[1:], parsed[1:]):
            if len(cells) != len(header):
                raise ConfigError(f"{path}:{lineno}: {len(cells)} cells, the header has {len(header)}")
            rows.append((lineno, {h: c.strip() for h, c in zip(header, cells) if c.strip() != ""}))
    out = []
    for lineno, item in rows:
        if not isinstance(item, dict):
            raise ConfigError(f"{path}:{lineno}: a run must be a mapping, got {item!r}")
        item = dict(item)
        for key in ("detector", "conditions"):
            if item.get(key):
                item[key] = _resolve_path(Path(item[key]), path.parent)
        try:
            out.append(RunSpec.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "run"
            msg = f"unknown key {loc!r}" if err["type"] == "extra_forbidden" else err["msg"]
            raise ConfigError(f"{path}:{lineno}: {loc}: {msg}") from None
    return out
