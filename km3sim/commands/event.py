"""``km3sim event``: re-simulate one event of a production stage by stage (or show an event of
a data file), with a per-stage printout and an event display."""

from __future__ import annotations

import sys
from pathlib import Path


def _is_production(path: str) -> bool:
    return Path(path).suffix.lower() in (".yaml", ".yml")


def _cmd_event(args) -> int:
    from km3sim.errors import ConfigError

    if _is_production(args.file):
        return _resimulate(args)
    if args.set or args.stop_after or args.pdb is not None:
        raise ConfigError("--set, --stop-after and --pdb need a production YAML (the event is re-simulated)")
    return _show_data_event(args)


def _resimulate(args) -> int:
    from km3sim.debug.event import parse_overrides, resimulate_event
    from km3sim.debug.explain import format_header, format_stage, format_summary
    from km3sim.errors import ConfigError

    if args.run is None:
        raise ConfigError("--run is needed to re-simulate an event of a production")

    def printer(sim, run, stage, ctx):
        if run.index == 0 or sim.stages[0] is run:
            print(format_header(sim), flush=True)
        print(format_stage(run, sim) if not args.quiet else f"[{run.index + 1}] {run.name}: {run.comparison}",
              flush=True)

    try:
        sim = resimulate_event(
            args.file, args.run, args.event, overrides=parse_overrides(args.set), stop_after=args.stop_after,
            compare=not args.no_compare, break_before=args.pdb or None, hook=printer,
        )
    except Exception:
        if args.pdb is not None:
            import pdb
            import traceback

            traceback.print_exc()
            pdb.post_mortem(sys.exc_info()[2])
        raise
    print(format_summary(sim))
    if args.display:
        from km3sim.debug.display import save_event_display, view_from_resimulation

        out = save_event_display(view_from_resimulation(sim), args.display, show=args.show)
        print(f"event display written to {out}")
    elif args.show:
        from km3sim.debug.display import show_event, view_from_resimulation

        show_event(view_from_resimulation(sim))
    return 0 if sim.identical is not False else 1


def _show_data_event(args) -> int:
    from km3sim.debug.display import save_event_display, show_event, view_from_file
    from km3sim.errors import ConfigError
    from km3sim.io.detx import read_detector

    det = read_detector(args.detector) if args.detector else None
    view = view_from_file(args.file, args.event, detector=det)
    hits = view.hits
    n_trig = int((hits["trigger_mask"] != 0).sum()) if "trigger_mask" in hits.columns else 0
    print(f"{args.file}: event {args.event}: {len(hits)} hits on {len(set(hits['dom_id'].tolist()))} DOMs, "
          f"{n_trig} triggered")
    if view.reco is not None and len(view.reco):
        from km3sim.debug.explain import reco_vs_truth

        for r in reco_vs_truth(view.reco, None):
            print(f"  fit rec_type {r['rec_type']}: zenith {r['zenith_deg']:.2f} deg, likelihood {r['likelihood']:.4g}, "
                  f"E {r['energy']:.4g} GeV, {r['n_hits']} hits")
    if not args.display and not args.show:
        raise ConfigError("for a data file give --display OUT.png and/or --show")
    if args.display:
        out = save_event_display(view, args.display, show=args.show)
        print(f"event display written to {out}")
    elif args.show:
        show_event(view)
    return 0


def register(sub) -> None:
    e = sub.add_parser(
        "event",
        help="re-simulate one event of a production stage by stage (bit-identical, with a printout), "
             "or draw an event of a data file",
        description="With a production YAML: re-simulate event EVENT of run RUN through every stage in this "
                    "process, print what each stage did and compare each stage's rows with the production's "
                    "files (exit code 1 if they differ). With a data file (DAQ/offline ROOT, Jpp .dat, km3sim "
                    "HDF5): draw one of its events.",
    )
    e.add_argument("file", help="production YAML, or a data file (DAQ/offline ROOT, .dat, km3sim .h5 or directory)")
    e.add_argument("--run", type=int, help="run of the event (productions)")
    e.add_argument("--event", type=int, required=True,
                   help="event number within the run or its event_id (productions); entry number (ROOT/DAQ "
                        "files) or event_id (km3sim files)")
    e.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE",
                   help="change one stage's config for this event, e.g. --set trigger.muon_min_hits=3 (repeatable)")
    e.add_argument("--stop-after", metavar="STAGE", help="stop after this stage (name or role)")
    e.add_argument("--no-compare", action="store_true", help="do not compare with the production's files")
    e.add_argument("--pdb", nargs="?", const="", metavar="STAGE",
                   help="enter the Python debugger before STAGE (default: on an error only, post mortem)")
    e.add_argument("--display", metavar="OUT.png", help="write the event display as PNG")
    e.add_argument("--show", action="store_true", help="also open the display in a window (if a display is available)")
    e.add_argument("--detector", metavar="DETX", help="detector file for real-data files")
    e.add_argument("--quiet", "-q", action="store_true", help="one line per stage")
    e.set_defaults(func=_cmd_event)
