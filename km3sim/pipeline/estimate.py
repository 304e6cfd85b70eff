"""Resource estimate of a production from measured throughput (``km3sim estimate``).

For every generator and stage the throughput is measured -- CPU seconds per event and bytes
per event -- from finished tasks in a catalogue (this production's, or another one given with
``--from``), or, when there is none, by running a calibration sample (the first chunks of the
first run of every generator, :data:`CALIBRATION_EVENTS` events each) in a temporary
directory. The first calibration chunk of each stage is not used: it pays the one-time costs
(imports, numba cache loading, tables built in ``__init__``).

The plan of the production gives the events and files per stage; with the measured rates:

- storage = files x (empty-file overhead of the stage) + events x (bytes per event),
  the overhead measured by writing a stage file with empty tables;
- CPU = events x (CPU seconds per event), in core-hours and in HS06-hours at
  ``hs06_per_core`` (10 HS06 per core by default, the figure of the KM3NeT computing model);
- per year of data: the same figures scaled by (one year) / (data livetime of the runs),
  the "per building block and year" figures of the KM3NeT computing-model table when the
  detector is one building block (115 DUs) and the runs are a representative sample.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim.errors import Km3simError
from km3sim.io.hdf5 import write_stage_file
from km3sim.pipeline.catalogue import Catalogue
from km3sim.pipeline.config import Production, load_production
from km3sim.pipeline.plan import Plan, plan_production
from km3sim.schema import empty_table
from km3sim.stage import get_stage

__all__ = ["Throughput", "measure_throughput", "calibrate", "estimate_production", "format_estimate",
           "HS06_PER_CORE", "SECONDS_PER_YEAR", "CALIBRATION_EVENTS"]

log = logging.getLogger(__name__)

#: HS06 per core used to convert core-hours (KM3NeT computing model)
HS06_PER_CORE = 10.0
#: one year [s] (365.25 days)
SECONDS_PER_YEAR = 365.25 * 86400.0
#: events per calibration chunk
CALIBRATION_EVENTS = 100


@dataclass
class Throughput:
    """Measured cost of one stage for one generator."""

    generator: str
    stage: str
    tasks: int = 0
    events: int = 0
    cpu_s: float = 0.0
    bytes: int = 0
    overhead_bytes: int = 0  # size of the stage's file with empty tables

    @property
    def cpu_per_event_s(self) -> float:
        return self.cpu_s / self.events if self.events else float("nan")

    @property
    def bytes_per_event(self) -> float:
        if not self.events:
            return float("nan")
        return max(0.0, (self.bytes - self.tasks * self.overhead_bytes) / self.events)


def _overhead_bytes(stage: str) -> int:
    """Size of a stage file holding the stage's tables with no rows (typical provenance attributes)."""
    cls = get_stage(stage)
    with tempfile.TemporaryDirectory() as d:
        p = write_stage_file(Path(d) / "empty.h5", {t: empty_table(t) for t in cls.produces},
                             {"stage": stage, "config": {}, "header": {}, "parents": [], "site": {}})
        return p.stat().st_size


def measure_throughput(catalogue: str | Path, skip_first: bool = False) -> dict[tuple[str, str], Throughput]:
    """Throughput per (generator label, stage) from the ``done`` tasks of a catalogue that ran
    (tasks found already complete, without CPU time, are not used).

    ``skip_first``: leave out each (generator, stage)'s first chunk of its first run (warm-up).
    """
    with Catalogue(catalogue, readonly=True) as cat:
        rows = cat.rows("status = 'done' AND cpu_time_s IS NOT NULL AND events > 0")
    rows.sort(key=lambda r: (r["run_id"], r["chunk"]))
    out: dict[tuple[str, str], Throughput] = {}
    seen: set = set()
    for r in rows:
        key = (r["generator"] or "", r["stage"])
        if skip_first and key not in seen:
            seen.add(key)
            continue
        tp = out.get(key)
        if tp is None:
            tp = out[key] = Throughput(generator=key[0], stage=key[1], overhead_bytes=_overhead_bytes(key[1]))
        tp.tasks += 1
        tp.events += int(r["events"])
        tp.cpu_s += float(r["cpu_time_s"])
        tp.bytes += int(r["size"] or 0)
    return out


def calibrate(prod: Production, events_per_chunk: int = CALIBRATION_EVENTS, chunks: int = 2,
              directory: str | Path | None = None) -> dict[tuple[str, str], Throughput]:
    """Run the first ``chunks`` chunks of every generator on the first run, in this process,
    and measure them (the first chunk of each stage is only the warm-up when ``chunks`` > 1)."""
    from km3sim.pipeline.runner import ScanResult, _Outcome, _run_in_process, RunResult

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(directory) if directory is not None else Path(tmp) / "calibration"
        run0 = prod.run_list()[0]
        sub = prod.model_copy(update={"output": out, "runs": [run0],
                                      "chunk_size": min(prod.chunk_size, events_per_chunk)})
        sub._streams = [dataclasses.replace(s, chunk_size=min(s.chunk_size, events_per_chunk)) for s in prod.streams()]
        sub._processing = prod.processing_specs()
        sub._stage_specs = prod.stage_specs()
        plan = plan_production(sub)
        scan = ScanResult()
        for unit in plan.units():
            if unit.chunk < chunks and unit.n_events > 0:
                scan.pending.append((unit, tuple(range(len(plan.chunk_tasks(unit))))))
        if not scan.pending:
            raise Km3simError(f"production '{prod.name}': the first run has no events to calibrate on")
        with Catalogue.for_output(out) as cat:
            _run_in_process(plan, scan, _Outcome(plan, RunResult(plan=plan), cat, 0, None), {})
        return measure_throughput(out / "catalogue.sqlite", skip_first=chunks > 1)


@dataclass
class StageEstimate:
    stage: str
    generator: str
    events: int
    files: int
    storage_bytes: float
    cpu_core_h: float
    hs06_h: float
    cpu_per_event_s: float
    bytes_per_event: float


@dataclass
class Estimate:
    rows: list[StageEstimate] = field(default_factory=list)
    data_livetime_s: float = 0.0
    hs06_per_core: float = HS06_PER_CORE
    source: str = ""

    @property
    def per_year_factor(self) -> float:
        return SECONDS_PER_YEAR / self.data_livetime_s if self.data_livetime_s > 0 else float("nan")

    def by_stage(self) -> list[dict]:
        """Rows summed over generators, in stage order, plus a total row."""
        out: dict[str, dict] = {}
        for r in self.rows:
            d = out.setdefault(r.stage, {"stage": r.stage, "events": 0, "files": 0, "storage_bytes": 0.0,
                                         "cpu_core_h": 0.0, "hs06_h": 0.0})
            for k in ("events", "files", "storage_bytes", "cpu_core_h", "hs06_h"):
                d[k] += getattr(r, k)
        rows = list(out.values())
        total = {"stage": "total", **{k: sum(r[k] for r in rows) for k in ("files", "storage_bytes", "cpu_core_h",
                                                                          "hs06_h")}}
        # events of the production: those generated (every stage sees the same events again)
        total["events"] = sum(r.events for r in self.rows if get_stage(r.stage).role == "generate")
        return rows + [total]


def estimate_production(prod: Production, throughput: dict[tuple[str, str], Throughput],
                        hs06_per_core: float = HS06_PER_CORE, plan: Plan | None = None, source: str = "") -> Estimate:
    """Predicted events, files, storage and CPU per generator and stage of a production.

    Throughput is looked up by (generator label, stage), else by stage alone (any generator).

    Raises
    ------
    Km3simError
        If a stage has no measurement.
    """
    plan = plan if plan is not None else plan_production(prod, write_detector=False)
    by_stage: dict[str, list[Throughput]] = {}
    for (g, s), tp in throughput.items():
        by_stage.setdefault(s, []).append(tp)
    est = Estimate(data_livetime_s=sum(rp.livetime_s for rp in plan.runs), hs06_per_core=hs06_per_core, source=source)
    for s in plan.streams:
        events = sum(rp.n_events[s.index] for rp in plan.runs)
        files = sum(plan.n_chunks_of(s, rp.n_events[s.index]) for rp in plan.runs)
        for spec in plan._chains[s.index]:
            tp = throughput.get((s.label, spec.name))
            if tp is None and by_stage.get(spec.name):
                parts = by_stage[spec.name]
                tp = Throughput(generator="*", stage=spec.name, tasks=sum(p.tasks for p in parts),
                                events=sum(p.events for p in parts), cpu_s=sum(p.cpu_s for p in parts),
                                bytes=sum(p.bytes for p in parts), overhead_bytes=parts[0].overhead_bytes)
            if tp is None or not tp.events:
                raise Km3simError(f"no throughput measured for stage {spec.name!r} (generator {s.label!r}); "
                                  "run a sample of the production first or give --from CATALOGUE")
            cpu_h = events * tp.cpu_per_event_s / 3600.0
            est.rows.append(StageEstimate(
                stage=spec.name, generator=s.label, events=events, files=files,
                storage_bytes=files * tp.overhead_bytes + events * tp.bytes_per_event,
                cpu_core_h=cpu_h, hs06_h=cpu_h * hs06_per_core,
                cpu_per_event_s=tp.cpu_per_event_s, bytes_per_event=tp.bytes_per_event))
    return est


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000.0
    return f"{n:.3g} PB"


def format_estimate(est: Estimate, per_generator: bool = False) -> str:
    """The estimate as text tables: per stage for the production and per year of data."""
    lines = []
    if per_generator:
        lines.append(f"{'generator':<12} {'stage':<20} {'CPU s/event':>12} {'bytes/event':>12}")
        for r in est.rows:
            lines.append(f"{r.generator:<12} {r.stage:<20} {r.cpu_per_event_s:>12.4g} {r.bytes_per_event:>12.4g}")
        lines.append("")
    head = f"{'stage':<20} {'events':>12} {'files':>9} {'storage':>10} {'CPU core-h':>11} {'HS06-h':>11}"

    def table(scale: float, title: str):
        lines.append(title)
        lines.append(head)
        for d in est.by_stage():
            if d["stage"] == "total":
                lines.append("-" * len(head))
            lines.append(f"{d['stage']:<20} {d['events'] * scale:>12.4g} {d['files'] * scale:>9.4g} "
                         f"{_human_bytes(d['storage_bytes'] * scale):>10} {d['cpu_core_h'] * scale:>11.4g} "
                         f"{d['hs06_h'] * scale:>11.4g}")

    table(1.0, f"production (data livetime {est.data_livetime_s:.4g} s; {est.hs06_per_core:g} HS06 per core)")
    if np.isfinite(est.per_year_factor):
        lines.append("")
        table(est.per_year_factor, f"per year of data (x {est.per_year_factor:.4g})")
    if est.source:
        lines.append(f"\nthroughput from {est.source}")
    return "\n".join(lines)


def throughput_source(prod: Production, source: str | None) -> tuple[Path | None, str]:
    """The catalogue to measure: ``source`` (a catalogue file, an output directory or a
    production YAML) or this production's own catalogue if it has finished tasks."""
    if source:
        p = Path(source)
        if p.suffix in (".yaml", ".yml"):
            p = Path(load_production(p).output) / "catalogue.sqlite"
        elif p.is_dir():
            p = p / "catalogue.sqlite"
        if not p.is_file():
            raise Km3simError(f"no catalogue at {p}")
        return p, str(p)
    own = Path(prod.output) / "catalogue.sqlite"
    if own.is_file():
        with Catalogue(own, readonly=True) as cat:
            if cat.rows("status = 'done' AND cpu_time_s IS NOT NULL AND events > 0"):
                return own, str(own)
    return None, ""
