"""A real dask cluster: a scheduler and two single-threaded worker processes started on loopback.

A production completes on it with the same event data as in-process; killing a worker in the
middle still completes it identically; killing the submitting process and re-running resumes
without redoing finished chunks; a truncated output is recomputed; a bad input fails its chunks
with a clear message while the other chunks finish.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from km3sim.io.hdf5 import read_stage_dir
from km3sim.pipeline.config import load_production
from km3sim.pipeline.runner import run_production
from tests.conftest import write_small_production

pytestmark = pytest.mark.slow

STAGES = ["atmospheric_muons", "muon_propagation", "direct_light", "pmt_response"]
CHUNK = 8  # 2 runs, 76 events: 10 chunks, 40 tasks


def _tables(output: Path) -> dict:
    return {(s, name): t for s in STAGES for name, t in read_stage_dir(output / s).items()}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].equals(b[key]), key


class LoopbackCluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, started by the tests."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.procs: list[subprocess.Popen] = []
        sched_file = directory / "scheduler.json"
        self.scheduler = self._start("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                                                    "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                                    "--scheduler-file", str(sched_file)])
        deadline = time.monotonic() + 60
        while not sched_file.is_file() or not sched_file.read_text().strip():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError("dask scheduler did not start: " + (directory / "scheduler.log").read_text())
            time.sleep(0.1)
        self.address = json.loads(sched_file.read_text())["address"]
        self.workers: list[subprocess.Popen] = []
        self.n_started = 0
        self.add_workers(2)

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.procs.append(proc)
        return proc

    def add_workers(self, n: int) -> None:
        from distributed import Client

        for _ in range(n):
            self.n_started += 1
            self.workers.append(self._start(
                f"worker{self.n_started}",
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nworkers", "1",
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                 "--name", f"w{self.n_started}"]))
        alive = [w for w in self.workers if w.poll() is None]
        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(len(alive), timeout=120)

    def kill_worker(self, i: int = 0) -> None:
        w = self.workers.pop(i)
        w.kill()  # SIGKILL: no goodbye to the scheduler
        w.wait(timeout=30)

    def idle(self, timeout: float = 60) -> None:
        """Wait until the scheduler holds no task any more (e.g. those of a killed client)."""
        from distributed import Client

        def n_tasks(dask_scheduler):
            return len(dask_scheduler.tasks)

        def n_executing(dask_worker):
            return len(dask_worker.state.executing)  # released tasks still running in the worker thread

        with Client(self.address, timeout="30s") as c:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (c.run_on_scheduler(n_tasks) or any(c.run(n_executing).values())):
                time.sleep(0.2)

    def close(self) -> None:
        # workers first (so they do not wait for a scheduler that is gone), then the scheduler
        for group in (self.procs[1:], self.procs[:1]):
            for p in group:
                if p.poll() is None:
                    p.terminate()
            for p in group:
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LoopbackCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The production run in-process: the event data every cluster run must reproduce."""
    d = tmp_path_factory.mktemp("reference")
    p = write_small_production(d, chunk_size=CHUNK)
    result = run_production(load_production(p))
    assert result.ok, result.failed
    return _tables(d / "out")


def _production(directory: Path, **kw) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_small_production(directory, chunk_size=CHUNK, **kw)


def _catalogue_rows(output: Path, where: str = "") -> list[tuple]:
    con = sqlite3.connect(f"file:{output / 'catalogue.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(f"SELECT key, status, worker, attempts, error_class, error, traceback FROM tasks "
                           f"{'WHERE ' + where if where else ''}").fetchall()
    finally:
        con.close()


def test_production_on_two_workers_then_truncated_file(reference, cluster, tmp_path):
    p = _production(tmp_path)
    prod = load_production(p, {"scheduler": cluster.address})
    result = run_production(prod)
    assert result.ok, result.failed
    out = tmp_path / "out"
    _assert_same(_tables(out), reference)
    rows = _catalogue_rows(out)
    assert len(rows) == result.computed == len(result.plan.tasks)
    assert {r[1] for r in rows} == {"done"}
    assert len({r[2] for r in rows}) == 2  # both worker processes ran tasks
    # a truncated file is found (its size no longer matches the catalogue) and only it is redone
    victim = sorted((out / "direct_light").glob("*.h5"))[1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    again = run_production(prod)
    assert again.ok and again.computed == 1 and again.skipped == len(result.plan.tasks) - 1
    _assert_same(_tables(out), reference)


def test_killing_a_worker_mid_run_still_completes_identically(reference, cluster, tmp_path):
    p = _production(tmp_path)
    prod = load_production(p, {"scheduler": cluster.address})
    killed = []

    def progress(done, total, summary):
        if done == 5 and not killed:
            cluster.kill_worker(0)
            killed.append(done)

    try:
        result = run_production(prod, progress=progress)
    finally:
        cluster.add_workers(1)  # back to two workers for the next tests
    assert killed and result.ok, [(f["task"], f["error_class"], f["error"]) for f in result.failed]
    # a task the killed worker had finished writing is found complete when it is rerun elsewhere
    assert result.computed + result.skipped == len(result.plan.tasks) and result.skipped <= 1
    _assert_same(_tables(tmp_path / "out"), reference)


def test_killing_the_submitter_then_rerunning_resumes(reference, cluster, tmp_path):
    p = _production(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "km3sim.cli", "run", str(p), "--scheduler", cluster.address],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cluster.env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "catalogue.sqlite").is_file():
                try:
                    if len(_catalogue_rows(out, "status = 'done'")) >= 8:
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cluster.idle()
    finished = {f: f.stat().st_mtime_ns for f in out.rglob("*.h5")}
    assert len(finished) >= 8
    result = run_production(load_production(p, {"scheduler": cluster.address}))
    assert result.ok, result.failed
    n_tasks = len(result.plan.tasks)
    assert len(finished) < n_tasks, "the first run was not interrupted"
    assert result.skipped == len(finished) and result.computed == n_tasks - len(finished)
    assert {f: f.stat().st_mtime_ns for f in finished} == finished  # finished chunks were not redone
    _assert_same(_tables(out), reference)


def test_bad_input_fails_its_chunks_with_a_clear_message(cluster, tmp_path):
    bad = tmp_path / "bad_conditions.h5"
    bad.write_bytes(b"this is not HDF5" * 10)
    runs = ("runs:\n  - {run_id: 3, livetime_s: 1.0}\n"
            f"  - {{run_id: 5, livetime_s: 0.8, start_time: 2024-01-01T00:00:00Z, conditions: {bad}}}\n")
    p = _production(tmp_path, runs=runs)
    result = run_production(load_production(p, {"scheduler": cluster.address}))
    out = tmp_path / "out"
    failed = {f["task"]: f for f in result.failed}
    pmt5 = [k for k in failed if k.startswith("pmt_response-run5-")]
    assert pmt5 and set(failed) == set(pmt5)
    for k in pmt5:
        assert failed[k]["error_class"] == "bad_input"
        assert str(bad) in failed[k]["error"] and "run conditions" in failed[k]["error"]
    rows = {r[0]: r for r in _catalogue_rows(out)}
    assert all(rows[k][1] == "failed" and rows[k][3] == 1 and "Traceback" in rows[k][6] for k in pmt5)  # not retried
    # the other run and the earlier stages of run 5 finished
    done = {k for k, r in rows.items() if r[1] == "done"}
    assert done == set(rows) - set(pmt5)
    assert any(k.startswith("pmt_response-run3-") for k in done)
