"""Re-simulate one event of a production through every stage, in this process.

Every random number of an event in a stage derives only from (production seed, run,
event_id, stage name) (DESIGN.md §6), and stages process the events of a chunk independently.
So running each stage on a "chunk" that holds just the one event, with the same config,
detector file, site, seed, run livetime and run size as the production's task, reproduces the
production's rows of that event bit for bit. :func:`resimulate_event` does that and compares
every stage's output with the rows of the event in the production's files when they exist.

The stages are built as :mod:`km3sim.pipeline.runner` builds them (the config dumped to JSON
and validated again, the detector read from the task's detector file), and the context holds
the task's seed, run, chunk, livetime and run size (:class:`km3sim.stage.StageContext`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from km3sim.errors import ConfigError, Km3simError, StageFileError
from km3sim.table import Table

__all__ = [
    "StageRun",
    "EventResimulation",
    "resimulate_event",
    "resolve_event_id",
    "parse_overrides",
    "compare_tables",
]

log = logging.getLogger(__name__)

#: Hook called after every stage: ``hook(result_so_far, stage_run, stage, context)``.
StageHook = Callable[["EventResimulation", "StageRun", Any, Any], None]


@dataclass
class StageRun:
    """What one stage did for the event.

    Attributes
    ----------
    index : int
        Position of the stage in the production.
    name, role : str
        Registered stage name and role (generate, propagate, light, detect, trigger, reconstruct).
    config : dict
        The config the stage ran with (JSON form).
    overridden : bool
        The config was changed for this re-simulation (``overrides``).
    inputs, outputs : dict of Table
        The tables the stage read and wrote (rows of this event only).
    production_file : str or None
        The production's output file of this stage for the event's chunk.
    comparison : str
        ``"identical"``, ``"differs: ..."``, ``"no production file"``, ``"stale production file"``
        (written with another config/chain hash), or ``"not compared"``.
    wall_s : float
        Time the stage took [s].
    """

    index: int
    name: str
    role: str
    config: dict
    overridden: bool
    inputs: dict[str, Table]
    outputs: dict[str, Table]
    production_file: str | None = None
    comparison: str = "not compared"
    wall_s: float = 0.0
    stage: Any = field(default=None, repr=False)  # the stage instance (for inspection)
    context: Any = field(default=None, repr=False)  # its StageContext

    @property
    def identical(self) -> bool | None:
        """True/False if compared with the production, None if there was nothing to compare."""
        if self.comparison == "identical":
            return True
        if self.comparison.startswith("differs"):
            return False
        return None


@dataclass
class EventResimulation:
    """The result of :func:`resimulate_event`."""

    production: Any
    run_id: int
    event_id: int
    chunk: int
    seed: int
    livetime_s: float
    n_events_run: int
    detector: Any
    detector_file: str
    stages: list[StageRun] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    stopped_after: str | None = None
    stage_configs: dict[str, Any] = field(default_factory=dict)  # stage name -> validated config

    @property
    def event_number(self) -> int:
        """Event number within the run."""
        from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX

        return int(self.event_id - self.run_id * EVENTS_PER_RUN_MAX)

    @property
    def compared(self) -> list[StageRun]:
        return [s for s in self.stages if s.identical is not None]

    @property
    def identical(self) -> bool | None:
        """True if every stage that could be compared (production file present, no overridden
        config in it or before it) equals the production bit for bit; None if none could be."""
        first_changed = next((s.index for s in self.stages if s.overridden), None)
        cmp = [s for s in self.compared if first_changed is None or s.index < first_changed]
        if not cmp:
            return None
        return all(s.identical for s in cmp)

    def stage(self, name_or_role: str) -> StageRun:
        """The :class:`StageRun` of a stage name (or, failing that, role)."""
        for s in self.stages:
            if s.name == name_or_role:
                return s
        for s in self.stages:
            if s.role == name_or_role:
                return s
        raise KeyError(f"no stage {name_or_role!r} ran; ran {[s.name for s in self.stages]}")


def resolve_event_id(run_id: int, event: int) -> int:
    """The ``event_id`` of event ``event`` of run ``run_id``.

    ``event`` is either the number of the event within the run (0-based, as printed in the
    chunk file names' ranges) or its production-wide ``event_id``
    (= run_id x EVENTS_PER_RUN_MAX + number, as stored in every table).
    """
    from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX

    event = int(event)
    if event < 0:
        raise ConfigError(f"event must be >= 0, got {event}")
    if event < EVENTS_PER_RUN_MAX:
        return int(run_id) * EVENTS_PER_RUN_MAX + event
    if event // EVENTS_PER_RUN_MAX != int(run_id):
        raise ConfigError(f"event_id {event} belongs to run {event // EVENTS_PER_RUN_MAX}, not to run {run_id}")
    return event


def parse_overrides(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["trigger.muon_min_hits=3", "pmt_response.k40_rate_hz=14000"]`` -> nested dict.

    Values are parsed as YAML (numbers, booleans, lists, ``null``); a key without ``stage.``
    prefix is an error. The key may itself be dotted to reach a nested section of the stage's
    config (``trigger.trigger3DMuon.numberOfHits=3``).
    """
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot or not stage or not name:
            raise ConfigError(f"--set {item!r}: expected STAGE.KEY=VALUE, e.g. trigger.muon_min_hits=3")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from None
        out.setdefault(stage, {})[name] = parsed
    return out


def _merge_config(base: dict, override: Mapping[str, Any]) -> dict:
    """``base`` with ``override`` applied; dotted keys (``trigger3DMuon.numberOfHits``) reach
    into nested sections, which are merged key by key rather than replaced."""
    out = json.loads(json.dumps(base))
    for key, value in override.items():
        path = key.split(".")
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(value, dict) and isinstance(node.get(path[-1]), dict):
            node[path[-1]] = _merge_config(node[path[-1]], value)
        else:
            node[path[-1]] = value
    return out


def compare_tables(ours: Table, theirs: Table) -> str:
    """``"identical"`` or ``"differs: <first difference>"`` (bitwise, NaN == NaN)."""
    if ours.columns != theirs.columns:
        return f"differs: columns {ours.columns} vs {theirs.columns}"
    if len(ours) != len(theirs):
        return f"differs: {len(ours)} rows vs {len(theirs)} in the production"
    for col in ours.columns:
        a, b = ours[col], theirs[col]
        if a.dtype != b.dtype:
            return f"differs: column {col!r} dtype {a.dtype} vs {b.dtype}"
        if a.tobytes() != b.tobytes():
            diff = np.flatnonzero(~((a == b) | (_isnan(a) & _isnan(b))))
            k = int(diff[0]) if len(diff) else 0  # empty: only NaN payloads or -0.0/0.0 differ
            return f"differs: column {col!r} row {k}: {a[k]!r} vs {b[k]!r} in the production ({len(diff)} rows differ)"
    return "identical"


def _isnan(a: np.ndarray) -> np.ndarray:
    return np.isnan(a) if a.dtype.kind == "f" else np.zeros(len(a), dtype=bool)


def _load_production(production):
    from km3sim.pipeline.config import Production, load_production

    if isinstance(production, Production):
        return production
    return load_production(production)


def _detector_for(task, plan, prod, tmpdir: Path):
    """The detector exactly as the production's task reads it (the task's detector file)."""
    from km3sim.io.detx import read_detector, write_detx
    from km3sim.pipeline.plan import build_detector, load_detector

    det_file = Path(task.detector_file)
    if det_file.is_file():
        return load_detector(det_file), str(det_file)
    if str(det_file) != str(plan.detector_file):
        raise Km3simError(f"detector file {det_file} of run {task.run_id} does not exist")
    # production not run yet: write the built detector as the planner would, and read it back
    # (the tasks see the detx round trip, not the builder's arrays)
    path = tmpdir / det_file.name
    write_detx(build_detector(prod), path)
    return read_detector(path), str(det_file)


def _event_tasks(plan, run_id: int, event_id: int) -> list:
    """The tasks (all stages) of the chunk holding ``event_id``, in stage order."""

    def holds(task) -> bool:
        ids = task.event_ids()
        return len(ids) > 0 and ids[0] <= event_id <= ids[-1]

    if hasattr(plan, "units") and hasattr(plan, "chunk_tasks"):  # plans made chunk by chunk
        for unit in plan.units():
            if unit.run_id == run_id and unit.n_events:
                tasks = plan.chunk_tasks(unit)
                if holds(tasks[0]):
                    return sorted(tasks, key=lambda t: t.stage_index)
        return []
    return sorted((t for t in plan.tasks if t.run_id == run_id and holds(t)), key=lambda t: t.stage_index)


def _production_rows(task, event_id: int) -> tuple[dict[str, Table] | None, str]:
    from km3sim.io.hdf5 import is_complete, read_stage_file

    out = Path(task.output)
    if not out.is_file():
        return None, "no production file"
    if not is_complete(out, task.chain_hash):
        return None, "stale production file (written with another config, seed or version)"
    try:
        tables, _ = read_stage_file(out)
    except StageFileError as exc:
        return None, f"unreadable production file: {exc}"
    return {k: t.event(event_id) for k, t in tables.items()}, ""


def resimulate_event(
    production,
    run_id: int,
    event: int,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    stop_after: str | None = None,
    compare: bool = True,
    hook: StageHook | None = None,
    break_before: str | None = None,
) -> EventResimulation:
    """Re-simulate one event of a production through its stages, in this process.

    Parameters
    ----------
    production : path or Production
        The production YAML (or a loaded :class:`~km3sim.pipeline.config.Production`).
    run_id : int
        The run of the event.
    event : int
        Event number within the run, or the ``event_id`` (see :func:`resolve_event_id`).
    overrides : mapping, optional
        ``{stage name: {config key: value}}``: change a stage's config for this event (the
        stage and the ones after it are then not expected to equal the production).
    stop_after : str, optional
        Stage name (or role) after which to stop.
    compare : bool
        Compare every stage's output with the event's rows in the production's files.
    hook : callable, optional
        ``hook(result, stage_run, stage, ctx)`` after each stage (e.g. to print, plot or
        inspect); ``result`` is the :class:`EventResimulation` so far.
    break_before : str, optional
        Stage name (or role) before which to enter the Python debugger (``pdb``), with the
        stage, its input tables and context as local variables ``stage``, ``inputs``, ``ctx``.

    Returns
    -------
    EventResimulation

    Raises
    ------
    ConfigError
        Unknown run, event outside the run, unknown stage in ``overrides``/``stop_after``, or
        an invalid override value.
    """
    from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX, plan_production
    from km3sim.pipeline.runner import task_context
    from km3sim.stage import Site, get_stage

    prod = _load_production(production)
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    specs = prod.stage_specs()
    names = [s.name for s in specs]
    roles = [get_stage(n).role for n in names]
    for key in overrides:
        if key not in names:
            raise ConfigError(f"override for stage {key!r}, which is not in the production (stages: {names})")
    for what, value in (("stop_after", stop_after), ("break_before", break_before)):
        if value is not None and value not in names and value not in roles:
            raise ConfigError(f"{what}: no stage or role {value!r} in the production (stages: {names})")

    plan = plan_production(prod, write_detector=False)
    run_id = int(run_id)
    if run_id not in plan.n_events_per_run:
        raise ConfigError(f"run {run_id} is not in production {prod.name!r} (runs: {sorted(plan.n_events_per_run)})")
    event_id = resolve_event_id(run_id, event)
    number = event_id - run_id * EVENTS_PER_RUN_MAX
    tasks = _event_tasks(plan, run_id, event_id)
    if not tasks:
        n = plan.n_events_per_run[run_id]
        raise ConfigError(f"event {event_id} (number {number}) is not in run {run_id}, "
                          f"which has {n} events (numbers 0..{n - 1} for a single generator)")

    with tempfile.TemporaryDirectory(prefix="km3sim-event-") as tmp:
        detector, det_file = _detector_for(tasks[0], plan, prod, Path(tmp))
    if detector.content_hash() != tasks[0].detector_hash:
        raise Km3simError(f"detector file {det_file} changed since the production was planned")
    t0 = tasks[0]
    result = EventResimulation(
        production=prod, run_id=run_id, event_id=event_id, chunk=t0.chunk, seed=t0.seed,
        livetime_s=t0.livetime_s, n_events_run=t0.n_events_run, detector=detector, detector_file=det_file,
    )
    site = Site.model_validate(t0.site)
    tables: dict[str, Table] = result.tables  # filled stage by stage (hooks see it)
    ids = np.array([event_id], dtype=np.int64)
    changed = False
    # every stage's config first (as the runner builds it: JSON dump validated again), so an
    # invalid override fails before anything runs
    configs = []
    for task in tasks:
        cls = get_stage(task.stage_name)
        cfg_json = json.loads(json.dumps(task.config, sort_keys=True))
        over = overrides.get(task.stage_name)
        if over:
            cfg_json = _merge_config(cfg_json, over)
        try:
            configs.append(cls.Config.model_validate(cfg_json))
        except ValidationError as exc:
            raise ConfigError(f"override of stage {task.stage_name!r}: {exc}") from None
    for task, config in zip(tasks, configs):
        cls = get_stage(task.stage_name)
        over = overrides.get(task.stage_name)
        stage = cls(config, detector=detector, site=site)
        result.stage_configs[task.stage_name] = config
        changed = changed or bool(over)
        ctx = task_context(task, detector, stage.site, event_ids=ids)
        inputs = {t: tables[t] for t in cls.consumes}
        if break_before is not None and break_before in (task.stage_name, cls.role):
            import pdb

            print(f"km3sim event: before stage {task.stage_name!r}: locals stage, inputs, ctx; "
                  f"'c' continues, 'outputs = stage.run(inputs, ctx)' runs it")
            pdb.set_trace()  # noqa: T100 - requested by the user (--pdb)
        w0 = time.perf_counter()
        outputs = stage.run(inputs, ctx)
        wall = time.perf_counter() - w0
        run = StageRun(
            index=task.stage_index, name=task.stage_name, role=cls.role,
            config=config.model_dump(mode="json"), overridden=bool(over), inputs=inputs, outputs=outputs,
            production_file=task.output, wall_s=wall, stage=stage, context=ctx,
        )
        if compare:
            prod_rows, why = _production_rows(task, event_id)
            if prod_rows is None:
                run.comparison = why
            else:
                verdicts = []
                for tname, table in outputs.items():
                    if tname not in prod_rows:
                        verdicts.append(f"differs: table {tname!r} missing in the production file")
                        continue
                    v = compare_tables(table, prod_rows[tname])
                    if v != "identical":
                        verdicts.append(f"differs: {tname}: {v[len('differs: '):]}")
                run.comparison = verdicts[0] if verdicts else "identical"
                if changed and verdicts:
                    run.comparison += " (expected: config overridden)"
        tables.update(outputs)
        result.stages.append(run)
        if hook is not None:
            hook(result, run, stage, ctx)
        log.info("event %d: stage %s done in %.3f s (%s)", event_id, task.stage_name, wall, run.comparison)
        if stop_after is not None and stop_after in (task.stage_name, cls.role):
            result.stopped_after = task.stage_name
            break
    return result
