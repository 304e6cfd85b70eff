"""Where a production runs: an embedded LocalCluster, an existing dask scheduler, or batch jobs.

The ``cluster:`` section of a production (:class:`km3sim.pipeline.config.ClusterSpec`)::

    cluster:
      type: slurm              # local (default) | slurm | htcondor | pbs
      workers: 20              # local: worker processes; batch: jobs (one dask worker each)
      adapt_max: 200           # batch: scale adaptively up to this many jobs instead
      retries: 2               # for lost workers and out-of-memory failures
      jobqueue:                # batch jobs (dask-jobqueue; pip install 'km3sim[batch]')
        cores: 1
        memory: 4GB
        queue: normal
        account: km3net
        walltime: "12:00:00"
        job_script_prologue: ["module load apptainer"]
        python: apptainer exec km3sim.sif python

:func:`jobqueue_arguments` translates it into the class name and keyword arguments of
dask-jobqueue (tested without a batch system); :func:`open_client` starts what is needed and
returns a connected ``distributed.Client``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from km3sim.errors import ConfigError
from km3sim.pipeline.config import ClusterSpec, JobqueueSpec

__all__ = ["jobqueue_arguments", "make_jobqueue_cluster", "open_client", "ClientHandle", "JOBQUEUE_CLASSES"]

log = logging.getLogger(__name__)

#: cluster.type -> dask-jobqueue class
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}


def jobqueue_arguments(spec: ClusterSpec) -> tuple[str, dict]:
    """The dask-jobqueue class name and keyword arguments for a batch ``cluster`` section.

    One dask worker per job (``processes`` workers with ``cores // processes`` threads each);
    NUMBA_NUM_THREADS and OMP_NUM_THREADS are set to the threads per worker in the job script,
    keeping one level of parallelism.

    Raises
    ------
    ConfigError
        If ``spec.type`` is not a batch system.
    """
    if spec.type not in JOBQUEUE_CLASSES:
        raise ConfigError(f"cluster.type {spec.type!r} is not a batch system (one of {sorted(JOBQUEUE_CLASSES)})")
    jq = spec.jobqueue or JobqueueSpec()
    threads = max(1, jq.cores // jq.processes)
    prologue = [f"export NUMBA_NUM_THREADS={threads}", f"export OMP_NUM_THREADS={threads}", *jq.job_script_prologue]
    kw: dict = {
        "cores": jq.cores,
        "processes": jq.processes,
        "memory": jq.memory,
        "job_name": jq.job_name,
        "job_script_prologue": prologue,
        "worker_extra_args": list(jq.worker_extra_args),
    }
    for key in ("local_directory", "log_directory", "interface", "python"):
        value = getattr(jq, key)
        if value is not None:
            kw[key] = value
    if spec.type == "htcondor":
        kw["disk"] = jq.disk or jq.memory
        extra = {}
        for line in jq.job_extra_directives:
            if "=" not in line:
                raise ConfigError(f"cluster.jobqueue.job_extra_directives: HTCondor entries are 'key = value', got {line!r}")
            k, v = line.split("=", 1)
            extra[k.strip()] = v.strip()
        if jq.walltime:
            extra.setdefault("+MaxRuntime", str(_walltime_seconds(jq.walltime)))
        kw["job_extra_directives"] = extra
        for key in ("queue", "account"):
            if getattr(jq, key):
                log.warning("cluster.jobqueue.%s is ignored by HTCondor", key)
    else:
        kw["job_extra_directives"] = list(jq.job_extra_directives)
        for key in ("queue", "account", "walltime"):
            value = getattr(jq, key)
            if value is not None:
                kw[key] = value
    return JOBQUEUE_CLASSES[spec.type], kw


def _walltime_seconds(text: str) -> int:
    """'HH:MM:SS', 'HH:MM' or seconds -> seconds."""
    try:
        parts = [int(p) for p in str(text).split(":")]
    except ValueError:
        raise ConfigError(f"cluster.jobqueue.walltime: expected HH:MM:SS, got {text!r}") from None
    if len(parts) > 3:
        raise ConfigError(f"cluster.jobqueue.walltime: expected HH:MM:SS, got {text!r}")
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds * (60 if len(parts) == 2 else 1)


def make_jobqueue_cluster(spec: ClusterSpec):
    """A dask-jobqueue cluster for a batch ``cluster`` section (jobs not yet submitted).

    Raises
    ------
    ConfigError
        If dask-jobqueue is not installed (with the command that installs it).
    """
    name, kw = jobqueue_arguments(spec)
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConfigError(
            f"cluster.type {spec.type!r} runs the production through dask-jobqueue, which is not installed: "
            "pip install 'km3sim[batch]' (or pip install dask-jobqueue)"
        ) from exc
    return getattr(dask_jobqueue, name)(**kw)


def _quiet_dask_logging() -> None:
    # distributed sets its loggers to INFO when imported; keep shutdown chatter out of the CLI
    if logging.getLogger("km3sim").getEffectiveLevel() <= logging.INFO:
        return
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("distributed", "tornado")):
            logging.getLogger(name).setLevel(logging.ERROR)


def _have_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


@dataclass
class ClientHandle:
    """A connected client, what it runs on, and how to close what was started for it."""

    client: object
    cluster: object | None
    description: str
    dashboard: str | None

    def n_workers(self) -> int:
        try:
            return len(self.client.scheduler_info()["workers"])
        except Exception:  # noqa: BLE001 - informational
            return 0

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def open_client(spec: ClusterSpec) -> ClientHandle:
    """Connect to (or start) the dask cluster a production runs on."""
    from distributed import Client, LocalCluster

    _quiet_dask_logging()
    if spec.scheduler:
        client = Client(spec.scheduler, timeout="30s")
        try:
            has_dashboard = "dashboard" in client.scheduler_info().get("services", {})
        except Exception:  # noqa: BLE001 - informational only
            has_dashboard = False
        link = getattr(client, "dashboard_link", None) if has_dashboard else None
        return ClientHandle(client, None, f"scheduler {spec.scheduler}", link)
    if spec.type != "local":
        cluster = make_jobqueue_cluster(spec)
        if spec.adapt_max:
            cluster.adapt(minimum_jobs=0, maximum_jobs=spec.adapt_max)
            what = f"{spec.type} jobs, adaptive up to {spec.adapt_max}"
        else:
            cluster.scale(jobs=spec.workers)
            what = f"{spec.workers} {spec.type} jobs"
        client = Client(cluster)
        return ClientHandle(client, cluster, what, getattr(cluster, "dashboard_link", None))
    # one level of parallelism: worker processes, numba single-threaded inside them
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dashboard = spec.dashboard and _have_bokeh()
    cluster = LocalCluster(
        n_workers=spec.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=spec.memory_limit,
        dashboard_address=":0" if dashboard else None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    link = cluster.dashboard_link if dashboard else None
    return ClientHandle(client, cluster, f"embedded LocalCluster with {spec.workers} workers", link)
