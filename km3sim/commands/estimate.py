"""``km3sim estimate``: events, files, storage and CPU of a production from measured throughput."""

from __future__ import annotations


def _cmd_estimate(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.estimate import (calibrate, estimate_production, format_estimate, measure_throughput,
                                          throughput_source)

    prod = load_production(args.production, {"output": args.output})
    path, source = throughput_source(prod, args.from_)
    if path is not None and not args.calibrate:
        tp = measure_throughput(path)
    else:
        print(f"measuring throughput: {args.calibration_events} events x 2 chunks per generator on the first run "
              "(the first chunk is warm-up) ...", flush=True)
        tp = calibrate(prod, events_per_chunk=args.calibration_events)
        source = f"a calibration run of {args.calibration_events} events per chunk (this process)"
    est = estimate_production(prod, tp, hs06_per_core=args.hs06_per_core, source=source)
    print(f"production '{prod.name}': {len(est.rows)} (generator, stage) pairs")
    print(format_estimate(est, per_generator=args.per_generator))
    return 0


def register(sub) -> None:
    e = sub.add_parser("estimate", help="predicted events, files, storage and CPU (core-h, HS06-h) per stage, "
                                        "for the production and per year of data")
    e.add_argument("production", help="production YAML file")
    e.add_argument("--output", help="output directory (overrides the YAML)")
    e.add_argument("--from", dest="from_", metavar="CATALOGUE",
                   help="measure throughput from this catalogue.sqlite, output directory or production YAML "
                        "(default: this production's catalogue, else a calibration run)")
    e.add_argument("--calibrate", action="store_true", help="measure with a calibration run even if a catalogue exists")
    e.add_argument("--calibration-events", type=int, default=100, metavar="N", help="events per calibration chunk")
    e.add_argument("--hs06-per-core", type=float, default=10.0, help="HS06 per core (default 10)")
    e.add_argument("--per-generator", action="store_true", help="also print CPU and bytes per event per generator")
    e.set_defaults(func=_cmd_estimate)
