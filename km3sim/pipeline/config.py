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

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from km3sim.errors import ConfigError
from km3sim.stage import SITE_PRESETS, Site, StageConfig, get_stage

__all__ = ["Production", "StageSpec", "load_production", "config_hash"]


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
    """One data run: its id and its (data) livetime."""

    run_id: int = Field(ge=0, lt=2**31)
    livetime_s: float = Field(gt=0)


class SyntheticRuns(_Strict):
    """``n_runs`` synthetic runs numbered from ``first_run_id``, each of ``livetime_s``."""

    first_run_id: int = Field(1, ge=0, lt=2**31)
    n_runs: int = Field(ge=1, le=1_000_000)
    livetime_s: float = Field(gt=0)

    def expand(self) -> list[RunSpec]:
        return [RunSpec(run_id=self.first_run_id + i, livetime_s=self.livetime_s) for i in range(self.n_runs)]


class ClusterSpec(_Strict):
    """Dask execution: embedded LocalCluster with ``workers`` processes, or an existing ``scheduler``."""

    workers: int = Field(2, ge=0, le=1024)  # 0 = run in this process, no dask
    scheduler: str | None = None
    memory_limit: str = "auto"
    retries: int = Field(1, ge=0, le=10)


class StageSpec(BaseModel):
    """A stage of the production: its registered name and validated config."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    config: StageConfig


class Production(_Strict):
    """A production: what to simulate, where, and how to run it."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(ge=0, lt=2**63)
    output: Path
    detector: DetectorSpec
    site: Literal["orca", "arca"] | Site = "orca"
    runs: list[RunSpec] | SyntheticRuns
    livetime_factor: float = Field(10.0, gt=0)
    chunk_size: int = Field(1000, ge=1, le=10_000_000)
    cluster: ClusterSpec = ClusterSpec()
    stages: list[dict[str, dict[str, Any] | None]]

    # populated by load_production
    source: Path | None = None
    _stage_specs: list = PrivateAttr(default_factory=list)

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

    @field_validator("stages")
    @classmethod
    def _single_key(cls, stages):
        if not stages:
            raise ValueError("at least one stage is needed")
        for i, entry in enumerate(stages):
            if len(entry) != 1:
                raise ValueError(f"entry {i} must be a single 'stage_name: {{config}}' mapping, got keys {list(entry)}")
        return stages

    def run_list(self) -> list[RunSpec]:
        return self.runs.expand() if isinstance(self.runs, SyntheticRuns) else list(self.runs)

    def site_model(self) -> Site:
        return SITE_PRESETS[self.site] if isinstance(self.site, str) else self.site

    def stage_specs(self) -> list[StageSpec]:
        """The validated stages (built by :func:`load_production`)."""
        return list(self._stage_specs)


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
    specs: list[StageSpec] = []
    for i, entry in enumerate(prod.stages):
        (name, cfg), = entry.items()
        try:
            cls = get_stage(name)
        except ConfigError as exc:
            errors.append(f"{_where(source, lines, ('stages', i, name))}: stages[{i}]: {exc}")
            continue
        try:
            specs.append(StageSpec(name=name, config=cls.Config.model_validate(cfg or {})))
        except ValidationError as exc:
            errors.extend(_format_errors(exc, source, lines, prefix=("stages", i, name)))
    if not errors:
        roles = [get_stage(s.name).role for s in specs]
        if roles[0] != "generate" or roles.count("generate") != 1:
            errors.append(f"{_where(source, lines, ('stages',))}: stages: the first stage, and only it, must be a generator (roles: {roles})")
        produced: set[str] = set()
        for i, s in enumerate(specs):
            cls = get_stage(s.name)
            for t in cls.consumes:
                if t not in produced:
                    errors.append(f"{_where(source, lines, ('stages', i))}: stages[{i}].{s.name}: needs table {t!r}, which no earlier stage produces")
            produced.update(cls.produces)
    # files: the detector must exist
    base = path.parent
    det = prod.detector
    if det.file is not None:
        f = det.file if det.file.is_absolute() or det.file.exists() else base / det.file
        if not f.is_file():
            errors.append(f"{_where(source, lines, ('detector', 'file'))}: detector.file: file {str(det.file)!r} does not exist")
        else:
            prod = prod.model_copy(update={"detector": det.model_copy(update={"file": f.resolve()})})
    if errors:
        raise ConfigError("invalid production file:\n  " + "\n  ".join(errors))
    prod = prod.model_copy(update={"source": path.resolve()})
    prod._stage_specs = specs
    return prod
