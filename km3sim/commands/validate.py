"""``km3sim validate``: compare a simulation with real data in an HTML report."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _cmd_validate(args) -> int:
    from km3sim.errors import Km3simError
    from km3sim.validate.report import validate

    flux = None
    if args.flux == "honda":
        from km3sim.weights import honda_flux

        flux = honda_flux()
    if importlib.util.find_spec("matplotlib") is None:
        raise Km3simError("km3sim validate draws its plots with matplotlib, which is not installed: pip install matplotlib")
    rep = validate(args.sim, args.data, detector=args.detector, data_livetime_s=args.data_livetime, flux=flux,
                   alpha=args.alpha, max_background_events=args.max_background_events)
    out = rep.write_html(args.output)
    print(f"simulation: {rep.sim.n_events} triggered events; data: {rep.data.n_events} triggered events, "
          f"livetime {rep.data.livetime_s if rep.data.livetime_s else 'unknown (shapes only)'}")
    for note in rep.data.notes + rep.sim.notes:
        print(f"  note: {note}")
    print(rep.summary())
    print(f"report written to {Path(out).resolve()}")
    if rep.flagged:
        print(f"{len(rep.flagged)} plot(s) disagree at p < {args.alpha:g}: {', '.join(rep.flagged)}")
        return 1 if args.fail_on_disagreement else 0
    return 0


def register(sub) -> None:
    v = sub.add_parser(
        "validate",
        help="compare a simulation with real data: HTML report with plots and KS / chi2 statistics",
        description="Compare distributions of a km3sim production with real data (DAQ events and summaryslices, "
                    "offline/DST files with fits, or km3sim outputs of data) and write a self-contained HTML "
                    "report (PNG plots embedded).",
    )
    v.add_argument("--sim", nargs="+", required=True, metavar="PRODUCTION",
                   help="production YAML(s) or output directories (several are added up, each with its own weights)")
    v.add_argument("--data", nargs="+", required=True, metavar="FILE",
                   help="data files: DAQ ROOT/.dat, summaryslice dumps, offline/DST ROOT, km3sim .h5 or directories")
    v.add_argument("--detector", metavar="DETX", help="detector of the data (hit calibration, PMT rings)")
    v.add_argument("--data-livetime", type=float, metavar="SECONDS", help="data livetime (default: from summaryslices)")
    v.add_argument("--flux", choices=["honda"], help="flux for neutrino productions (default: honda when needed)")
    v.add_argument("--alpha", type=float, default=1e-3, help="p-value below which a plot is flagged (default 1e-3)")
    v.add_argument("--max-background-events", type=int, default=2000,
                   help="simulated events read for the background singles rates (default 2000)")
    v.add_argument("--output", "-o", default="validation.html", help="report file (default validation.html)")
    v.add_argument("--fail-on-disagreement", action="store_true", help="exit with 1 when a plot is flagged")
    v.set_defaults(func=_cmd_validate)
