"""Execution of a planned production: in-process, on an embedded LocalCluster, on an existing
dask scheduler or on batch jobs. Tasks pass file paths; big data stays in files.

The client feeds the scheduler a window of chunks at a time (``cluster.max_chunks_in_flight``,
default four per worker) instead of one graph of the whole production; a chunk's next stage is
submitted when the stages it reads are done. Every task's outcome goes into the catalogue
(:mod:`km3sim.pipeline.catalogue`) as it arrives.

Failures are classified (:func:`classify_failure`):

- ``bad_input`` (a :class:`~km3sim.errors.Km3simError`: unreadable or inconsistent input, a stage
  contract violated) and ``bug`` (any other exception) are deterministic: not retried; the
  chunk's later stages are marked ``dependency``; the other chunks go on.
- ``worker_lost`` (the worker died or the connection broke) and ``memory`` (MemoryError) are
  retried up to ``cluster.retries`` times; a ``memory`` retry asks for
  ``cluster.memory_retry_factor`` times more memory where workers advertise a ``MEMORY``
  resource (``dask worker --resources MEMORY=8e9``), otherwise it is a plain retry.

A worker killed while running a task is handled by the dask scheduler itself, which reruns
the task elsewhere; results are identical because every random number derives from the seeds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from km3sim.errors import Km3simError, StageError
from km3sim.io.hdf5 import adler32_checksum, is_complete, read_attrs, read_stage_file, write_stage_file
from km3sim.pipeline.catalogue import Catalogue
from km3sim.pipeline.config import Production, config_hash
from km3sim.pipeline.plan import ChecksumCache, Plan, Task, load_detector, plan_production
from km3sim.stage import Site, StageContext, get_stage

__all__ = ["execute_task", "run_production", "RunResult", "summarize", "classify_failure", "sanity_flags",
           "scan_plan", "RETRYABLE", "ProductionFailed"]

log = logging.getLogger(__name__)

#: failure classes that are retried
RETRYABLE = frozenset({"worker_lost", "memory"})


@lru_cache(maxsize=16)
def _stage_instance(name: str, config_json: str, detector_file: str, detector_mtime: float, site_json: str):
    cls = get_stage(name)
    config = cls.Config.model_validate(json.loads(config_json))
    return cls(config, detector=load_detector(detector_file), site=Site.model_validate(json.loads(site_json)))


# ------------------------------------------------------------------------------------ checks
def sanity_flags(task: Task, role: str, tables: dict, header: dict | None, detector=None,
                 max_hits_per_event: float = 1e6, min_hits_per_event: float = 0.0) -> list[str]:
    """Sanity checks of one chunk's output; each failed check is a short string.

    - generators: the number of ``events`` rows equals the chunk's planned events
      (``events_generated``); the can of the header (``can: {x, y, zmin, zmax, r}``) encloses
      every optical module of the detector (``can_too_small``);
    - every table a stage produces is non-empty when the chunk has events (``empty_output``);
    - hit tables (``mc_hits``, ``hits``, ``snapshot_hits``) have between ``min_hits_per_event``
      and ``max_hits_per_event`` rows per event (``hits_per_event``);
    - a chunk without events (a run with none) is flagged ``empty_chunk``.
    """
    flags = []
    n = task.n_events
    if n == 0:
        flags.append("empty_chunk")
    if role == "generate":
        got = len(tables["events"]) if "events" in tables else 0
        if got != n:
            flags.append(f"events_generated: {got} rows, {n} expected")
        can = (header or {}).get("can") if isinstance(header, dict) else None
        if isinstance(can, dict) and detector is not None and {"x", "y", "zmin", "zmax", "r"} <= set(can):
            pos = np.asarray(detector.dom_pos, dtype=np.float64)
            if len(pos):
                rho = np.hypot(pos[:, 0] - can["x"], pos[:, 1] - can["y"]).max()
                tol = 1e-6 * max(1.0, abs(can["r"]))
                if rho > can["r"] + tol or pos[:, 2].min() < can["zmin"] - tol or pos[:, 2].max() > can["zmax"] + tol:
                    flags.append(f"can_too_small: r {can['r']:.1f} m, z {can['zmin']:.1f}..{can['zmax']:.1f} m do not "
                                 f"enclose the modules (r up to {rho:.1f} m, z {pos[:, 2].min():.1f}..{pos[:, 2].max():.1f} m)")
    if n > 0:
        for name, table in tables.items():
            if len(table) == 0:
                flags.append(f"empty_output: {name}")
            elif name in ("mc_hits", "hits", "snapshot_hits"):
                per = len(table) / n
                if per > max_hits_per_event or per < min_hits_per_event:
                    flags.append(f"hits_per_event: {name} {per:.3g} outside [{min_hits_per_event:g}, {max_hits_per_event:g}]")
    return flags


# ------------------------------------------------------------------------------------ one task
def _file_facts(path: Path) -> dict:
    st = path.stat()
    return {"checksum_adler32": adler32_checksum(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def task_context(task: Task, detector, site: Site, event_ids=None) -> StageContext:
    """The :class:`StageContext` of ``task`` (all its events, or only ``event_ids``).

    The one place that turns a planned task into what a stage sees: the production runner
    and the single-event re-simulation (:mod:`km3sim.debug`) both use it, so an event
    re-simulated alone gets exactly the seeds and context it had in the production.
    """
    return StageContext(
        seed=task.seed,
        run_id=task.run_id,
        chunk=task.chunk,
        stage_name=task.stage_name,
        event_ids=task.event_ids() if event_ids is None else event_ids,
        livetime_s=task.livetime_s,
        n_events_run=task.n_events_run,
        detector=detector,
        site=site,
        event_offset=task.event_offset,
    )


def execute_task(task: Task, *_dependencies, checks: dict | None = None) -> dict:
    """Run one (stage, run, chunk) task and write its file; skip it if its output is complete.

    ``_dependencies`` are ignored (kept for callers that pass parent results for ordering).
    Returns a small summary dict: key, output, skipped, cpu_time_s, wall_time_s, events,
    table_rows, flags, checksum_adler32, size, mtime_ns, worker.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(task.output)
    if is_complete(out, task.chain_hash):
        attrs = read_attrs(out)
        return {"key": task.key, "output": task.output, "skipped": True, "events": task.n_events,
                "table_rows": attrs.get("table_rows"), "cpu_time_s": attrs.get("cpu_time_s"),
                "wall_time_s": attrs.get("wall_time_s"), "flags": attrs.get("sanity_flags") or [],
                "worker": _worker_name(), **_file_facts(out)}
    detector = load_detector(task.detector_file)
    if detector.content_hash() != task.detector_hash:
        raise StageError(f"detector file {task.detector_file} changed since planning; re-plan the production")
    stage = _stage_instance(
        task.stage_name,
        json.dumps(task.config, sort_keys=True),
        task.detector_file,
        Path(task.detector_file).stat().st_mtime,
        json.dumps(task.site, sort_keys=True),
    )
    tables = {}
    for tname, path in task.parents:
        tables.update(read_stage_file(path, [tname])[0])
    ctx = task_context(task, detector, stage.site)
    result = stage.run(tables, ctx)
    header = stage.header()
    flags = sanity_flags(task, stage.role, result, header, detector, **(checks or {}))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    attrs = {
        "stage": task.stage_name,
        "role": stage.role,
        "config": task.config,
        "config_hash": config_hash(task.config),
        "chain_hash": task.chain_hash,
        "seed": task.seed,
        "seed_derivation": "SeedSequence(seed, spawn_key=(run_id, crc32(stage))) mixed with event_id by SplitMix64",
        "run_id": task.run_id,
        "chunk": task.chunk,
        "first_event_id": int(ctx.event_ids[0]) if len(ctx.event_ids) else -1,
        "n_events": task.n_events,
        "n_events_run": task.n_events_run,
        "livetime_s": task.livetime_s,
        "run_start_utc_s": task.run_start_utc_s,
        "production": task.production,
        "production_hash": task.production_hash,
        "generator": task.generator,
        "generator_index": task.generator_index,
        "event_offset": task.event_offset,
        "detector_file": task.detector_file,
        "detector_hash": task.detector_hash,
        "site": task.site,
        "parents": [{"table": t, "file": p, "chain_hash": read_attrs(p).get("chain_hash")} for t, p in task.parents],
        "header": header,
        "table_rows": {k: len(v) for k, v in result.items()},
        "sanity_flags": flags,
        "cpu_time_s": cpu,
        "wall_time_s": wall,
        "host": socket.gethostname(),
    }
    write_stage_file(out, result, attrs)
    facts = _file_facts(out)
    # the catalogue's times include writing and checksumming the file (attrs: the computation)
    return {"key": task.key, "output": task.output, "skipped": False, "cpu_time_s": time.process_time() - cpu0,
            "wall_time_s": time.perf_counter() - wall0, "events": task.n_events, "table_rows": attrs["table_rows"],
            "flags": flags, "worker": _worker_name(), **facts}


# ------------------------------------------------------------------------------------ failures
class WorkerLost(Exception):
    """A task's worker, or the result it held, was lost (retried)."""


def classify_failure(exc: BaseException) -> str:
    """``memory``, ``worker_lost``, ``bad_input`` or ``bug`` (see the module notes)."""
    if isinstance(exc, MemoryError):
        return "memory"
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if name in ("KilledWorker", "CommClosedError", "CancelledError", "FutureCancelledError", "StreamClosedError",
                "WorkerLost"):
        return "worker_lost"
    if module.startswith(("distributed", "tornado")) and isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return "worker_lost"
    if isinstance(exc, Km3simError):
        return "bad_input"
    return "bug"


def _record_failure(output: Path, task: Task, exc: BaseException | None, tb: str, error_class: str,
                    message: str | None = None) -> dict:
    entry = {"task": task.key, "output": task.output,
             "error": message if message is not None else f"{type(exc).__name__}: {exc}",
             "error_class": error_class, "traceback": tb, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "failures.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


# ------------------------------------------------------------------------------------ results
@dataclass
class RunResult:
    """What a production run did."""

    plan: Plan
    computed: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    retried: int = 0
    flagged: int = 0
    wall_time_s: float = 0.0
    summary: dict = field(default_factory=dict)
    dashboard: str | None = None
    where: str = ""
    catalogue: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class ScanResult:
    """Which tasks of a plan remain: ``pending`` = [(unit, stage positions to run)]."""

    pending: list = field(default_factory=list)
    n_tasks: int = 0
    n_pending: int = 0
    n_done: int = 0
    pending_by_stage: dict = field(default_factory=dict)


def scan_plan(plan: Plan, catalogue: Catalogue | None, verify: bool = False) -> ScanResult:
    """Find the tasks still to run.

    A task is done when the catalogue says so for the same chain hash and its file still has
    the recorded size and modification time (with ``verify``, also the recorded Adler-32), or
    when its file is a complete stage file with the same chain hash (it is then entered into
    the catalogue). Anything else -- missing, truncated, corrupt, stale -- is to be run.
    """
    done_idx = catalogue.done_index() if catalogue is not None else {}
    # rows to reset to 'pending' (failed, running when a submitter died, done but stale); tasks
    # never run have no row until they are submitted
    known = {k for k, (st, _) in catalogue.status_index().items() if st != "pending"} if catalogue is not None else set()
    sums = {}
    if verify and catalogue is not None:
        sums = {r["key"]: r["checksum_adler32"] for r in catalogue.rows("status = 'done'")}
    res = ScanResult()
    for unit in plan.units():
        tasks = plan.chunk_tasks(unit)
        todo = []
        for k, t in enumerate(tasks):
            res.n_tasks += 1
            if _is_done(t, done_idx, sums, catalogue, verify):
                res.n_done += 1
                continue
            todo.append(k)
            res.pending_by_stage[t.stage_name] = res.pending_by_stage.get(t.stage_name, 0) + 1
            if t.key in known:
                catalogue.record(t, "pending", attempts=0)
        if todo:
            res.pending.append((unit, tuple(todo)))
            res.n_pending += len(todo)
    if catalogue is not None:
        catalogue.flush()
    return res


def _is_done(t: Task, done_idx: dict, sums: dict, catalogue: Catalogue | None, verify: bool) -> bool:
    rec = done_idx.get(t.key)
    try:
        st = os.stat(t.output)
    except OSError:
        return False
    if rec is not None and rec[0] == t.chain_hash and rec[1] == st.st_size and rec[2] == st.st_mtime_ns:
        if not verify:
            return True
        if sums.get(t.key) and adler32_checksum(t.output) == sums[t.key]:
            return True
        log.warning("%s: Adler-32 differs from the catalogue (corrupt); removed, to be recomputed", t.output)
        Path(t.output).unlink(missing_ok=True)  # else the task would find a readable file and keep it
        return False
    if not is_complete(t.output, t.chain_hash):
        return False
    if catalogue is not None:
        attrs = read_attrs(t.output)
        catalogue.record(t, "done", config_hash=attrs.get("config_hash"), events=t.n_events,
                         table_rows=attrs.get("table_rows"), cpu_time_s=attrs.get("cpu_time_s"),
                         wall_time_s=attrs.get("wall_time_s"), flags=attrs.get("sanity_flags") or [],
                         **_file_facts(Path(t.output)))
    return True


# ------------------------------------------------------------------------------------ running
class _Chunk:
    """Bookkeeping of one chunk in flight: which of its tasks are to run, done, failed."""

    __slots__ = ("tasks", "todo", "done", "failed", "running")

    def __init__(self, tasks: list[Task], todo: tuple[int, ...]):
        self.tasks = tasks
        self.todo = set(todo)
        self.done = {t.key for k, t in enumerate(tasks) if k not in self.todo}
        self.failed: set[str] = set()
        self.running: set[int] = set()

    def ready(self) -> list[int]:
        out = []
        for k in sorted(self.todo - self.running):
            parents = self.tasks[k].parent_tasks
            if any(p in self.failed for p in parents):
                continue
            if all(p in self.done for p in parents):
                out.append(k)
        return out

    def fail_blocked(self) -> list[int]:
        """Mark failed (and return) the tasks that can never run because a task they need,
        directly or through others, failed."""
        out = []
        changed = True
        while changed:
            changed = False
            for k in sorted(self.todo - self.running):
                if any(p in self.failed for p in self.tasks[k].parent_tasks):
                    self.todo.discard(k)
                    self.failed.add(self.tasks[k].key)
                    out.append(k)
                    changed = True
        return out

    @property
    def finished(self) -> bool:
        return not self.todo


class _Outcome:
    """Turns task outcomes into catalogue rows, failures, counts and progress calls."""

    def __init__(self, plan: Plan, result: RunResult, catalogue: Catalogue | None, total: int,
                 progress: Callable | None):
        self.plan, self.result, self.catalogue = plan, result, catalogue
        self.total, self.progress, self.n = total, progress, 0
        self.output = Path(plan.production.output)

    def _tick(self, summary: dict) -> None:
        self.n += 1
        if self.progress:
            self.progress(self.n, self.total, summary)

    def started(self, task: Task, attempt: int) -> None:
        if self.catalogue is not None:
            self.catalogue.record(task, "running", attempts=attempt)

    def done(self, task: Task, summary: dict, attempt: int) -> None:
        self.result.computed += not summary.get("skipped", False)
        self.result.skipped += bool(summary.get("skipped", False))
        if summary.get("flags"):
            self.result.flagged += 1
        if self.catalogue is not None:
            self.catalogue.record(
                task, "done", attempts=attempt, config_hash=config_hash(task.config),
                events=summary.get("events"), table_rows=summary.get("table_rows"),
                cpu_time_s=summary.get("cpu_time_s"), wall_time_s=summary.get("wall_time_s"),
                worker=summary.get("worker"), flags=summary.get("flags") or [],
                checksum_adler32=summary.get("checksum_adler32"), size=summary.get("size"),
                mtime_ns=summary.get("mtime_ns"), error_class=None, error=None, traceback=None,
            )
        self._tick({**summary, "stage": task.stage_name, "status": "done"})

    def failed(self, task: Task, exc: BaseException | None, tb: str, error_class: str, attempt: int,
               message: str | None = None) -> None:
        entry = _record_failure(self.output, task, exc, tb, error_class, message)
        self.result.failed.append(entry)
        if self.catalogue is not None:
            self.catalogue.record(task, "failed", attempts=attempt, error_class=error_class, error=entry["error"],
                                  traceback=tb)
        self._tick({"key": task.key, "stage": task.stage_name, "status": "failed", "error": entry["error"],
                    "error_class": error_class})

    def retry(self, task: Task, exc: BaseException, error_class: str, attempt: int) -> None:
        self.result.retried += 1
        log.warning("%s: %s (%s), retrying (attempt %d)", task.key, exc, error_class, attempt + 1)
        if self.catalogue is not None:
            self.catalogue.record(task, "pending", attempts=attempt, error_class=error_class,
                                  error=f"{type(exc).__name__}: {exc} (retried)")


def _run_in_process(plan: Plan, scan: ScanResult, outcome: _Outcome, checks: dict) -> None:
    for unit, todo in scan.pending:
        chunk = _Chunk(plan.chunk_tasks(unit), todo)
        while chunk.todo:
            for k in chunk.fail_blocked():
                outcome.failed(chunk.tasks[k], None, "", "dependency", 0, message="parent task failed")
            ready = chunk.ready()
            if not ready:
                break
            k = ready[0]
            t = chunk.tasks[k]
            outcome.started(t, 1)
            try:
                summary = execute_task(t, checks=checks) if checks else execute_task(t)
            except Exception as exc:  # noqa: BLE001 - classified, recorded and reported
                chunk.todo.discard(k)
                chunk.failed.add(t.key)
                outcome.failed(t, exc, traceback.format_exc(), classify_failure(exc), 1)
                continue
            chunk.todo.discard(k)
            chunk.done.add(t.key)
            outcome.done(t, summary, 1)


def memory_retry_resources(worker_memory: list, attempt: int, factor: float) -> dict | None:
    """Resources of the ``attempt``-th retry of an out-of-memory task.

    ``worker_memory`` are the ``MEMORY`` resources the workers advertise (``dask worker
    --resources MEMORY=8e9``; None for workers without). The retry asks for the smallest
    worker's memory times ``factor ** attempt``, capped at the largest worker; None (a plain
    retry anywhere) when no worker advertises memory or all advertise the same.
    """
    have = [float(m) for m in worker_memory if m]
    if not have or max(have) <= min(have):
        return None
    return {"MEMORY": min(min(have) * factor ** attempt, max(have))}


def _worker_memory(handle) -> list:
    try:
        return [w.get("resources", {}).get("MEMORY") for w in handle.client.scheduler_info()["workers"].values()]
    except Exception:  # noqa: BLE001 - no information: plain retry
        return []


def _run_on_dask(plan: Plan, scan: ScanResult, outcome: _Outcome, handle, checks: dict) -> None:
    from distributed import as_completed

    cl = plan.production.cluster
    client = handle.client
    token = uuid.uuid4().hex[:6]
    n_workers = max(1, handle.n_workers(), cl.workers if cl.type != "local" else 0, cl.adapt_max or 0)
    window = cl.max_chunks_in_flight or max(8, 4 * n_workers)
    pending = iter(scan.pending)
    chunks: dict[int, _Chunk] = {}
    info: dict[str, tuple[int, int, int]] = {}  # future key -> (chunk id, task position, attempt)
    ac = as_completed(with_results=True, raise_errors=False)  # results come with the completion, no extra round trip
    next_id = 0

    def submit(cid: int, k: int, attempt: int, resources: dict | None = None) -> None:
        chunk = chunks[cid]
        t = chunk.tasks[k]
        kw = {"checks": checks} if checks else {}
        fut = client.submit(execute_task, t, key=f"{t.key}-{t.chain_hash[:8]}-{token}-a{attempt}", pure=False,
                            retries=0, resources=resources, **kw)
        chunk.running.add(k)
        info[fut.key] = (cid, k, attempt)
        outcome.started(t, attempt)
        ac.add(fut)

    def advance(cid: int) -> None:
        chunk = chunks[cid]
        for k in chunk.fail_blocked():
            outcome.failed(chunk.tasks[k], None, "", "dependency", 0, message="parent task failed")
        for k in chunk.ready():
            submit(cid, k, 1)
        if chunk.finished:
            del chunks[cid]

    def fill() -> None:
        nonlocal next_id
        while len(chunks) < window:
            try:
                unit, todo = next(pending)
            except StopIteration:
                return
            cid = next_id
            next_id += 1
            chunks[cid] = _Chunk(plan.chunk_tasks(unit), todo)
            advance(cid)

    fill()
    for fut, res in ac:
        cid, k, attempt = info.pop(fut.key)
        chunk = chunks[cid]
        t = chunk.tasks[k]
        chunk.running.discard(k)
        if fut.status == "finished" and isinstance(res, dict):
            summary = res
            chunk.todo.discard(k)
            chunk.done.add(t.key)
            outcome.done(t, summary, attempt)
        else:
            # raise_errors=False gives (type, exception, traceback) for a failed task, or the exception
            exc, tb_obj = res, None
            if isinstance(res, tuple) and len(res) == 3 and isinstance(res[1], BaseException):
                exc, tb_obj = res[1], res[2]
            if not isinstance(exc, BaseException):
                # e.g. 'lost': the worker holding the result died before the client fetched it
                exc = WorkerLost(f"task {t.key} ended with status {fut.status!r} (its worker was lost)")
            error_class = classify_failure(exc)
            if error_class in RETRYABLE and attempt <= cl.retries:
                outcome.retry(t, exc, error_class, attempt)
                res = (memory_retry_resources(_worker_memory(handle), attempt, cl.memory_retry_factor)
                       if error_class == "memory" else None)
                fut.release()
                submit(cid, k, attempt + 1, res)
                continue
            tb = "".join(traceback.format_exception(type(exc), exc, tb_obj)) if tb_obj is not None else f"{type(exc).__name__}: {exc}"
            chunk.todo.discard(k)
            chunk.failed.add(t.key)
            outcome.failed(t, exc, tb, error_class, attempt)
        fut.release()
        advance(cid)
        fill()


def run_production(
    prod: Production,
    progress: Callable[[int, int, dict], None] | None = None,
    *,
    use_catalogue: bool = True,
    verify: bool = False,
    on_start: Callable[[dict], None] | None = None,
) -> RunResult:
    """Plan and run a production; finished outputs are skipped.

    Parameters
    ----------
    prod : Production
        Validated production (:func:`km3sim.pipeline.config.load_production`).
    progress : callable, optional
        Called as ``progress(done, total, task_summary)`` after each task (``task_summary`` has
        ``key``, ``stage``, ``status`` and, for failures, ``error``).
    use_catalogue : bool
        Keep ``<output>/catalogue.sqlite`` (default).
    verify : bool
        Re-read every finished file and compare its Adler-32 with the catalogue.
    on_start : callable, optional
        Called once before the first task with a dict: ``pending_by_stage``, ``n_tasks``,
        ``n_done``, ``where`` (what runs it) and ``dashboard`` (address or None).
    """
    t0 = time.perf_counter()
    output = Path(prod.output)
    catalogue = Catalogue.for_output(output) if use_catalogue else None
    try:
        cache = ChecksumCache(catalogue.input_checksums() if catalogue else None)
        plan = plan_production(prod, checksums=cache)
        result = RunResult(plan=plan, catalogue=catalogue.path if catalogue else None)
        if catalogue is not None:
            catalogue.save_input_checksums(cache.changed)
            catalogue.set_production({
                "name": prod.name, "production_hash": prod.production_hash(), "source": str(prod.source),
                "km3sim_version": __import__("km3sim").__version__, "generators": [s.label for s in plan.streams],
                "stages": plan.stage_names(), "seed": prod.seed,
            })
            catalogue.set_runs(plan)
        scan = scan_plan(plan, catalogue, verify=verify)
        total = scan.n_pending
        cl = prod.cluster
        checks = prod.sanity.model_dump() if prod.sanity != type(prod.sanity)() else {}
        outcome = _Outcome(plan, result, catalogue, total, progress)
        in_process = cl.workers == 0 and not cl.scheduler and cl.type == "local"
        by_stage = {n: scan.pending_by_stage[n] for n in plan.stage_names() if n in scan.pending_by_stage}
        info = {"pending_by_stage": by_stage, "n_tasks": scan.n_tasks, "n_done": scan.n_done,
                "where": "this process" if in_process else "", "dashboard": None}
        if total and in_process:
            result.where = "this process"
            if on_start:
                on_start(info)
            _run_in_process(plan, scan, outcome, checks)
        elif total:
            from km3sim.pipeline.cluster import open_client

            handle = open_client(cl)
            try:
                result.where, result.dashboard = handle.description, handle.dashboard
                if on_start:
                    on_start({**info, "where": handle.description, "dashboard": handle.dashboard})
                _run_on_dask(plan, scan, outcome, handle, checks)
            finally:
                handle.close()
        elif on_start:
            on_start(info)
        result.skipped += scan.n_done
    finally:
        if catalogue is not None:
            catalogue.close()
    result.wall_time_s = time.perf_counter() - t0
    result.summary = summarize(plan, result.catalogue)
    return result


def _tasks_of_role(plan: Plan, role: str) -> list[Task]:
    """Tasks of the last stage with ``role`` in each generator's chain."""
    out = []
    for s in plan.streams:
        chain = plan._chains[s.index]
        names = [spec.name for spec in chain if get_stage(spec.name).role == role]
        if not names:
            continue
        k = max(i for i, spec in enumerate(chain) if spec.name == names[-1])
        for unit in plan.units():
            if unit.stream == s.index:
                out.append(plan.chunk_tasks(unit)[k])
    return out


def summarize(plan: Plan, catalogue: str | os.PathLike | None = None) -> dict:
    """Counts of the finished outputs: events generated, triggered and reconstructed.

    With a catalogue the counts come from its rows (no file is opened, except the
    reconstruction files of productions of up to :data:`SUMMARY_MAX_FILES` chunks, which are
    read to count the events with a successful fit; above that ``reconstructed`` is None).
    """
    out = {"runs": len(plan.runs), "chunks": plan.n_chunks, "planned_events": sum(plan.n_events_per_run.values())}
    out["livetime_s"] = sum(s.livetime_factor * rp.livetime_s for rp in plan.runs for s in plan.streams[:1])
    out["data_livetime_s"] = sum(rp.livetime_s for rp in plan.runs)
    rows = None
    if catalogue is not None and Path(catalogue).is_file():
        with Catalogue(catalogue, readonly=True) as cat:
            rows = {r["key"]: r for r in cat.rows("status = 'done'")}
    gen, trig, reco = (_tasks_of_role(plan, r) for r in ("generate", "trigger", "reconstruct"))

    def done(tasks):
        if rows is not None:
            return [t for t in tasks if t.key in rows and rows[t.key]["chain_hash"] == t.chain_hash]
        return [t for t in tasks if is_complete(t.output, t.chain_hash)]

    def table_rows(t):
        if rows is not None:
            return rows[t.key]["table_rows"] or {}
        return read_attrs(t.output)["table_rows"]

    out["generated"] = sum(table_rows(t).get("events", 0) for t in done(gen))
    out["triggered"] = sum(table_rows(t).get("triggered_events", 0) for t in done(trig))
    reco_done = done(reco)
    if len(reco_done) > SUMMARY_MAX_FILES:
        out["reconstructed"] = None
        return out
    n_reco = 0
    for t in reco_done:
        r = read_stage_file(t.output, ["reco_tracks"])[0]["reco_tracks"]
        last = r["rec_stage"] == (r["rec_stage"].max() if len(r) else 0)
        n_reco += len(np.unique(r["event_id"][last & (r["status"] == 0)]))
    out["reconstructed"] = n_reco
    return out


#: largest number of reconstruction files :func:`summarize` reads
SUMMARY_MAX_FILES = 2000


class ProductionFailed(Km3simError):
    """Some tasks of a production failed; see ``failures.jsonl`` in the output directory."""
