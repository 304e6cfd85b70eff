"""The ``km3sim`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from km3sim import __version__
from km3sim.errors import Km3simError

log = logging.getLogger("km3sim")


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


def _cmd_detector_info(args) -> int:
    from km3sim.io.detx import read_detector

    print(read_detector(args.file).format_info())
    return 0


def _cmd_conditions(args) -> int:
    from km3sim.detector.conditions import RunConditions
    from km3sim.io.detx import read_detector

    detector = read_detector(args.detector) if args.detector else None
    cond = RunConditions.from_daq(args.files)
    print(cond.format_summary(detector))
    if args.save:
        out = cond.save(args.save)
        print(f"saved run conditions to {out}")
    return 0


def _cmd_stages(args) -> int:
    from km3sim.stage import all_stages

    for name, cls in all_stages().items():
        print(f"{name}  (role {cls.role}; consumes {list(cls.consumes)}; produces {list(cls.produces)})")
        for key, field in cls.Config.model_fields.items():
            print(f"    {key} = {field.default!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="km3sim", description="Monte Carlo simulation for KM3NeT-like neutrino telescopes")
    p.add_argument("--version", action="version", version=f"km3sim {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more output")
    sub = p.add_subparsers(dest="command", required=True)

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

    d = sub.add_parser("detector", help="detector files")
    dsub = d.add_subparsers(dest="detector_command", required=True)
    di = dsub.add_parser("info", help="print DUs, DOMs, PMTs, spacing and footprint of a detx/datx file")
    di.add_argument("file")
    di.set_defaults(func=_cmd_detector_info)

    c = sub.add_parser("conditions", help="run conditions (PMT rates, vetoes) from real summaryslices")
    c.add_argument("files", nargs="+", metavar="FILE",
                   help="summaryslices of one run: DAQ ROOT file, Jpp DAQ stream (.dat) or text dump")
    c.add_argument("--save", metavar="OUT.h5", help="store the conditions (HDF5) for productions")
    c.add_argument("--detector", metavar="DETX", help="detector file (detx/datx): PMT axes for the rates by ring")
    c.set_defaults(func=_cmd_conditions)

    st = sub.add_parser("stages", help="list the registered stages and their config keys")
    st.set_defaults(func=_cmd_stages)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Km3simError as exc:
        print(f"km3sim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("km3sim: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
