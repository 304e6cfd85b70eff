"""Execution of a planned production: in-process, on an embedded LocalCluster, or on an
existing dask scheduler. Tasks pass file paths; big data stays in files.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from km3sim.errors import Km3simError, StageError
from km3sim.io.hdf5 import is_complete, read_attrs, read_stage_file, write_stage_file
from km3sim.pipeline.config import Production, config_hash
from km3sim.pipeline.plan import Plan, Task, load_detector, plan_production
from km3sim.stage import Site, StageContext, get_stage

__all__ = ["execute_task", "run_production", "RunResult", "summarize"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _stage_instance(name: str, config_json: str, detector_file: str, detector_mtime: float, site_json: str):
    cls = get_stage(name)
    config = cls.Config.model_validate(json.loads(config_json))
    return cls(config, detector=load_detector(detector_file), site=Site.model_validate(json.loads(site_json)))


def execute_task(task: Task, *_dependencies) -> dict:
    """Run one (stage, run, chunk) task and write its file; skip it if its output is complete.

    ``_dependencies`` are the results of the parent tasks (only used by dask for ordering).
    Returns a small summary dict.
    """
    out = Path(task.output)
    if is_complete(out, task.chain_hash):
        return {"key": task.key, "output": task.output, "skipped": True}
    wall0, cpu0 = time.perf_counter(), time.process_time()
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
    ctx = StageContext(
        seed=task.seed,
        run_id=task.run_id,
        chunk=task.chunk,
        stage_name=task.stage_name,
        event_ids=task.event_ids(),
        livetime_s=task.livetime_s,
        n_events_run=task.n_events_run,
        detector=detector,
        site=stage.site,
    )
    result = stage.run(tables, ctx)
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
        "detector_file": task.detector_file,
        "detector_hash": task.detector_hash,
        "site": task.site,
        "parents": [{"table": t, "file": p, "chain_hash": read_attrs(p).get("chain_hash")} for t, p in task.parents],
        "header": stage.header(),
        "table_rows": {k: len(v) for k, v in result.items()},
        "cpu_time_s": cpu,
        "wall_time_s": wall,
    }
    write_stage_file(out, result, attrs)
    return {"key": task.key, "output": task.output, "skipped": False, "cpu_time_s": cpu}


@dataclass
class RunResult:
    """What a production run did."""

    plan: Plan
    computed: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    summary: dict = field(default_factory=dict)
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def _record_failure(output: Path, task: Task, exc: BaseException, tb: str) -> dict:
    entry = {"task": task.key, "output": task.output, "error": f"{type(exc).__name__}: {exc}", "traceback": tb,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "failures.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def _quiet_dask_logging() -> None:
    # distributed sets its loggers to INFO when imported; keep shutdown chatter out of the CLI
    if logging.getLogger("km3sim").getEffectiveLevel() <= logging.INFO:
        return
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("distributed", "tornado")):
            logging.getLogger(name).setLevel(logging.ERROR)


def _client(workers: int, scheduler: str | None, memory_limit: str):
    from distributed import Client, LocalCluster

    _quiet_dask_logging()

    if scheduler:
        return Client(scheduler), None
    # one level of parallelism: worker processes, numba single-threaded inside them
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def run_production(
    prod: Production,
    progress: Callable[[int, int, dict], None] | None = None,
) -> RunResult:
    """Plan and run a production; finished outputs are skipped.

    Parameters
    ----------
    prod : Production
        Validated production (:func:`km3sim.pipeline.config.load_production`).
    progress : callable, optional
        Called as ``progress(done, total, task_summary)`` after each task.
    """
    t0 = time.perf_counter()
    plan = plan_production(prod)
    output = Path(prod.output)
    result = RunResult(plan=plan)
    pending = [t for t in plan.tasks if not is_complete(t.output, t.chain_hash)]
    result.skipped = len(plan.tasks) - len(pending)
    total = len(pending)
    cl = prod.cluster
    if pending and cl.workers == 0 and not cl.scheduler:
        failed_keys: set[str] = set()
        for i, task in enumerate(pending):
            if any(k in failed_keys for k in task.parent_tasks):
                failed_keys.add(task.key)
                result.failed.append({"task": task.key, "error": "parent task failed"})
                continue
            try:
                summary = execute_task(task)
                result.computed += not summary["skipped"]
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                failed_keys.add(task.key)
                result.failed.append(_record_failure(output, task, exc, traceback.format_exc()))
                summary = {"key": task.key, "error": str(exc)}
            if progress:
                progress(i + 1, total, summary)
    elif pending:
        from distributed import as_completed

        client, cluster = _client(cl.workers, cl.scheduler, cl.memory_limit)
        try:
            result.dashboard = getattr(client, "dashboard_link", None) if cl.scheduler else None
            futures = {}
            by_future = {}
            for task in pending:
                deps = [futures[k] for k in task.parent_tasks if k in futures]
                fut = client.submit(
                    execute_task, task, *deps, key=f"{task.key}-{task.chain_hash}", pure=False, retries=cl.retries
                )
                futures[task.key] = fut
                by_future[fut.key] = task
            done = 0
            for fut in as_completed(list(futures.values())):
                task = by_future[fut.key]
                done += 1
                if fut.status == "error":
                    exc = fut.exception()
                    tb = "".join(traceback.format_tb(fut.traceback())) if fut.traceback() else ""
                    result.failed.append(_record_failure(output, task, exc, tb))
                    summary = {"key": task.key, "error": str(exc)}
                else:
                    summary = fut.result()
                    result.computed += not summary["skipped"]
                if progress:
                    progress(done, total, summary)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    result.wall_time_s = time.perf_counter() - t0
    result.summary = summarize(plan)
    return result


def _last_task_of_role(plan: Plan, role: str) -> list[Task]:
    names = [s.name for s in plan.production.stage_specs() if get_stage(s.name).role == role]
    if not names:
        return []
    return [t for t in plan.tasks if t.stage_name == names[-1]]


def summarize(plan: Plan) -> dict:
    """Counts of the finished outputs: events generated, triggered and reconstructed."""
    out = {"runs": len(plan.n_events_per_run), "chunks": 0, "planned_events": sum(plan.n_events_per_run.values())}
    gen = _last_task_of_role(plan, "generate")
    out["chunks"] = len(gen)

    def done(tasks):
        return [t for t in tasks if is_complete(t.output, t.chain_hash)]

    out["generated"] = sum(read_attrs(t.output)["n_events"] for t in done(gen))
    out["triggered"] = sum(read_attrs(t.output)["table_rows"].get("triggered_events", 0) for t in done(_last_task_of_role(plan, "trigger")))
    n_reco = 0
    for t in done(_last_task_of_role(plan, "reconstruct")):
        reco = read_stage_file(t.output, ["reco_tracks"])[0]["reco_tracks"]
        last = reco["rec_stage"] == (reco["rec_stage"].max() if len(reco) else 0)
        n_reco += len(np.unique(reco["event_id"][last & (reco["status"] == 0)]))
    out["reconstructed"] = n_reco
    out["livetime_s"] = sum(
        plan.production.livetime_factor * r.livetime_s for r in plan.production.run_list()
    )
    return out


class ProductionFailed(Km3simError):
    """Some tasks of a production failed; see ``failures.jsonl`` in the output directory."""
