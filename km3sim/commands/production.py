"""``km3sim run`` and ``km3sim status``: run a production YAML and show what is done."""

from __future__ import annotations

import sys
from pathlib import Path

from km3sim import __version__


def _fmt_count(v) -> str:
    return "n/a" if v is None else str(v)


def _cmd_run(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.progress import ProgressDisplay, format_duration
    from km3sim.pipeline.runner import run_production

    prod = load_production(args.production, {"output": args.output, "workers": args.workers, "scheduler": args.scheduler})
    cl = prod.cluster
    if cl.scheduler:
        where = f"scheduler {cl.scheduler}"
    elif cl.type != "local":
        where = f"{cl.type} jobs through dask-jobqueue"
    else:
        where = "this process" if cl.workers == 0 else f"embedded LocalCluster with {cl.workers} workers"
    print(f"km3sim {__version__}: production '{prod.name}' -> {prod.output}  ({where})", flush=True)
    display = ProgressDisplay(verbose=args.verbose, interval_s=args.progress_interval)
    result = run_production(prod, progress=display, on_start=display.start, verify=args.verify)
    s = result.summary
    print(f"\nOutput: {Path(prod.output).resolve()}")
    print(f"  runs {s['runs']}, chunks {s['chunks']}, simulated livetime {s['livetime_s']:.1f} s "
          f"(data livetime {s['data_livetime_s']:.1f} s)")
    print(f"  tasks computed {result.computed}, skipped (already done) {result.skipped}, failed {len(result.failed)}"
          f"{f', retried {result.retried}' if result.retried else ''}"
          f"{f', with sanity flags {result.flagged}' if result.flagged else ''}")
    print(f"  events generated {s['generated']}, triggered {s['triggered']}, reconstructed {_fmt_count(s['reconstructed'])}")
    print(f"  wall time {format_duration(result.wall_time_s)} ({result.wall_time_s:.1f} s); catalogue {result.catalogue}")
    if result.failed:
        first = result.failed[0]
        print(f"\n{len(result.failed)} task(s) failed; first: {first['task']}: {first['error']}", file=sys.stderr)
        print(f"details: km3sim status {args.production} --failed (and {Path(prod.output) / 'failures.jsonl'}); "
              "re-run the same command to retry", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.status import chunk_rows, format_chunks, format_status, production_status

    prod = load_production(args.production, {"output": args.output})
    rows = production_status(prod, by_generator=True if args.by_generator else None)
    print(f"production '{prod.name}' in {prod.output}")
    print(format_status(rows))
    if args.chunks or args.failed or args.flagged:
        where = []
        if args.failed:
            where.append("status = 'failed'")
        if args.flagged:
            where.append("flags IS NOT NULL AND flags != '[]'")
        sel = chunk_rows(prod, " OR ".join(where))
        print()
        print(format_chunks(sel, tracebacks=args.tracebacks))
    complete = all(r["done"] == r["chunks"] for r in rows)
    print("complete" if complete else "incomplete")
    return 0


def register(sub) -> None:
    r = sub.add_parser("run", help="run a production YAML (resumes: finished outputs are skipped)")
    r.add_argument("production", help="production YAML file")
    r.add_argument("--workers", type=int, help="number of local dask workers (0: run in this process)")
    r.add_argument("--output", help="output directory (overrides the YAML)")
    r.add_argument("--scheduler", help="address of an existing dask scheduler, e.g. tcp://host:8786")
    r.add_argument("--verify", action="store_true",
                   help="re-read finished files and compare their Adler-32 with the catalogue before skipping them")
    r.add_argument("--progress-interval", type=float, default=10.0, metavar="S",
                   help="seconds between progress lines when the output is not a terminal (default 10)")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("status", help="show the production catalogue: chunks done, failed, missing per stage")
    s.add_argument("production")
    s.add_argument("--output", help="output directory (overrides the YAML)")
    s.add_argument("--chunks", action="store_true", help="one line per task (stage, run, chunk) from the catalogue")
    s.add_argument("--failed", action="store_true", help="list the failed tasks with their error")
    s.add_argument("--flagged", action="store_true", help="list the tasks with sanity flags")
    s.add_argument("--tracebacks", action="store_true", help="with --failed: print the tracebacks")
    s.add_argument("--by-generator", action="store_true", help="one row per generator and stage")
    s.set_defaults(func=_cmd_status)
