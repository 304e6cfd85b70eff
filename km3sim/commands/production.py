"""``km3sim run`` and ``km3sim status``: run a production YAML and show what is done."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from km3sim import __version__


def _cmd_run(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    prod = load_production(args.production, {"output": args.output, "workers": args.workers, "scheduler": args.scheduler})
    where = f"scheduler {prod.cluster.scheduler}" if prod.cluster.scheduler else (
        "this process" if prod.cluster.workers == 0 else f"embedded LocalCluster with {prod.cluster.workers} workers"
    )
    print(f"km3sim {__version__}: production '{prod.name}' -> {prod.output}  ({where})", flush=True)
    t_last = [0.0]

    def progress(done, total, summary):
        now = time.perf_counter()
        if done == total or now - t_last[0] > 1.0 or args.verbose:
            t_last[0] = now
            print(f"  [{done}/{total}] {summary.get('key', '')}{'  FAILED: ' + summary['error'] if 'error' in summary else ''}", flush=True)

    result = run_production(prod, progress=progress)
    s = result.summary
    print(f"\nOutput: {Path(prod.output).resolve()}")
    print(f"  runs {s['runs']}, chunks {s['chunks']}, simulated livetime {s['livetime_s']:.1f} s")
    print(f"  tasks computed {result.computed}, skipped (already done) {result.skipped}, failed {len(result.failed)}")
    print(f"  events generated {s['generated']}, triggered {s['triggered']}, reconstructed {s['reconstructed']}")
    print(f"  wall time {result.wall_time_s:.1f} s")
    if result.failed:
        print(f"\n{len(result.failed)} task(s) failed; first: {result.failed[0]['task']}: {result.failed[0]['error']}", file=sys.stderr)
        print(f"details in {Path(prod.output) / 'failures.jsonl'}; re-run the same command to retry", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.status import format_status, production_status

    prod = load_production(args.production, {"output": args.output})
    rows = production_status(prod)
    print(f"production '{prod.name}' in {prod.output}")
    print(format_status(rows))
    complete = all(r["done"] == r["chunks"] for r in rows)
    print("complete" if complete else "incomplete")
    return 0


def register(sub) -> None:
    r = sub.add_parser("run", help="run a production YAML (resumes: finished outputs are skipped)")
    r.add_argument("production", help="production YAML file")
    r.add_argument("--workers", type=int, help="number of local dask workers (0: run in this process)")
    r.add_argument("--output", help="output directory (overrides the YAML)")
    r.add_argument("--scheduler", help="address of an existing dask scheduler, e.g. tcp://host:8786")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("status", help="show which outputs of a production are done")
    s.add_argument("production")
    s.add_argument("--output", help="output directory (overrides the YAML)")
    s.set_defaults(func=_cmd_status)
