"""Production scaling: planning at 10^4 runs / 10^5 chunks, dask scheduler overhead per task,
and the speed-up from 1 to 2 local workers.

    python benchmarks/bench_scaling.py [--runs 10000] [--chunks-per-run 10] [--events 2000]

Prints:

1. planning: time to plan a production of ``--runs`` runs x ``--chunks-per-run`` chunks
   (6 stages each), to make every task, and to scan them against an empty catalogue;
2. scheduler overhead per task: a production of tiny chunks on a LocalCluster of 2 workers,
   ``(wall x workers - sum of task wall times) / tasks``, and the round trip of a no-op task;
3. scaling: the same production (``--events`` muon events through generation, propagation,
   light and PMT response) on 1 and 2 worker processes; efficiency = T1 / (2 T2).

Numbers depend on the machine and its load; no test asserts on them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from km3sim.pipeline.config import load_production  # noqa: E402
from km3sim.pipeline.plan import plan_production  # noqa: E402
from km3sim.pipeline.runner import run_production, scan_plan  # noqa: E402

CHAIN = """\
  - muon_propagation: {}
  - direct_light: {}
  - pmt_response: {k40_rate_hz: 7000}
"""


def _yaml(directory: Path, name: str, runs: str, chunk_size: int, workers: int, generator: str,
          stages: str = CHAIN) -> Path:
    text = textwrap.dedent(f"""\
        name: {name}
        seed: 1
        output: {directory / name}
        detector: {{builder: orca, n_dus: 7}}
        runs: {runs}
        livetime_factor: 1
        chunk_size: {chunk_size}
        cluster: {{workers: {workers}, dashboard: false}}
        stages:
          - {generator}
        """) + stages
    p = directory / f"{name}.yaml"
    p.write_text(text)
    return p


def bench_planning(tmp: Path, runs: int, chunks_per_run: int) -> None:
    from km3sim.pipeline.catalogue import Catalogue

    print(f"1. planning {runs} runs x {chunks_per_run} chunks x 6 stages")
    for gen, cfg in (("neutrinos", f"neutrinos: {{n_events: {100 * chunks_per_run}}}"),
                     ("atmospheric_muons", "atmospheric_muons: {energy_min_gev: 10}")):
        stages = CHAIN + "  - trigger: {}\n  - track_fit: {}\n"
        live = 60.0 if gen == "neutrinos" else None
        if live is None:
            # chunk size that gives ~chunks_per_run chunks per run at the muon rate of the block
            live = 5.0
        p = _yaml(tmp, f"plan_{gen}", f"{{first_run_id: 1, n_runs: {runs}, livetime_s: {live}}}", 100, 0, cfg, stages)
        prod = load_production(p)
        t0 = time.perf_counter()
        plan = plan_production(prod, write_detector=False)
        t1 = time.perf_counter()
        n = sum(1 for _ in plan.iter_tasks())
        t2 = time.perf_counter()
        cat = Catalogue(tmp / f"plan_{gen}.sqlite")
        scan = scan_plan(plan, cat)
        cat.close()
        t3 = time.perf_counter()
        print(f"   {gen:18s}: {len(plan.runs)} runs, {plan.n_chunks} chunks, {n} tasks: plan {t1 - t0:.2f} s, "
              f"make every task {t2 - t1:.2f} s ({1e6 * (t2 - t1) / n:.1f} us/task), "
              f"scan + catalogue rows {t3 - t2:.2f} s ({scan.n_pending} pending)")


def _task_wall(output: Path) -> tuple[float, int]:
    import sqlite3

    con = sqlite3.connect(output / "catalogue.sqlite")
    s, n = con.execute("SELECT SUM(wall_time_s), COUNT(*) FROM tasks WHERE status = 'done'").fetchone()
    con.close()
    return float(s or 0.0), int(n)


def bench_overhead(tmp: Path) -> None:
    from distributed import Client, LocalCluster

    print("2. scheduler overhead (LocalCluster, 2 workers x 1 thread)")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(int, 0).result()
        n = 500
        t0 = time.perf_counter()
        futs = [client.submit(int, i, pure=False) for i in range(n)]
        client.gather(futs)
        dt = time.perf_counter() - t0
        print(f"   no-op task round trip: {1e3 * dt / n:.2f} ms per task ({n} tasks)")
        # km3sim tasks: generation + propagation only, 2 events a chunk
        p = _yaml(tmp, "overhead", "{first_run_id: 1, n_runs: 4, livetime_s: 0.5}", 2, 2,
                  "atmospheric_muons: {energy_min_gev: 10}", "  - muon_propagation: {}\n")
        prod = load_production(p, {"scheduler": cluster.scheduler_address})
        run_production(prod)  # warm-up: imports and numba caches in the workers
        shutil.rmtree(tmp / "overhead")
        t0 = time.perf_counter()
        res = run_production(prod)
        wall = time.perf_counter() - t0
        busy, n_tasks = _task_wall(tmp / "overhead")
        print(f"   km3sim production: {n_tasks} tasks in {wall:.2f} s, task time {busy:.2f} s; overhead "
              f"(planning, scheduling, catalogue, checksums) {1e3 * (2 * wall - busy) / n_tasks:.1f} ms per task "
              f"per worker ({res.computed} computed)")


def bench_scaling(tmp: Path, events: int) -> None:
    print(f"3. scaling from 1 to 2 local workers ({events} muon events, 4 stages, chunks of 100)")
    rate_guess = 190.0  # Hz of muon bundles at the can of the 7-DU block above 10 GeV (measured)
    live = events / rate_guess
    times = {}
    for workers in (1, 2):
        p = _yaml(tmp, f"scale{workers}", f"{{first_run_id: 1, n_runs: 2, livetime_s: {live / 2:.3f}}}", 100, workers,
                  "atmospheric_muons: {energy_min_gev: 10}")
        prod = load_production(p)
        t0 = time.perf_counter()
        res = run_production(prod)
        times[workers] = time.perf_counter() - t0
        busy, n_tasks = _task_wall(tmp / f"scale{workers}")
        print(f"   {workers} worker(s): {times[workers]:.1f} s wall for {res.summary['generated']} events "
              f"({res.summary['generated'] / times[workers]:.1f} events/s), {n_tasks} tasks, task time {busy:.1f} s")
    print(f"   speed-up T1/T2 = {times[1] / times[2]:.2f}, efficiency T1/(2 T2) = {times[1] / (2 * times[2]):.2f} "
          f"(cpu cores here: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--chunks-per-run", type=int, default=10)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["planning", "overhead", "scaling"])
    args = ap.parse_args(argv)
    # distributed's periodic client callbacks can log harmless errors while clusters shut down
    for name in ("tornado.application", "distributed"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "planning" not in args.skip:
            bench_planning(tmp, args.runs, args.chunks_per_run)
        if "overhead" not in args.skip:
            bench_overhead(tmp)
        if "scaling" not in args.skip:
            bench_scaling(tmp, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
