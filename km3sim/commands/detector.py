"""``km3sim detector``, ``km3sim conditions`` and ``km3sim stages``: look at inputs and the stage registry."""

from __future__ import annotations


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


def register(sub) -> None:
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
