"""``km3sim export`` and ``km3sim manifest``: analysis files and the file list for registration."""

from __future__ import annotations

from pathlib import Path


def _cmd_export(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.export import export_production

    prod = load_production(args.production, {"output": args.output})
    result = export_production(prod, levels=args.level or None, directory=args.directory)
    print(f"production '{prod.name}': {len(result.files)} analysis file(s)")
    for f in result.files:
        print(f"  {f}  ({f.stat().st_size / 1e6:.3g} MB)")
    print("\nper generator (weights: rate [1/s] in the merged production):")
    print(f"  {'generator':<14} {'events':>9} {'T_sim':>12} {'T_eff = Σw/Σw²':>16} {'T_data':>12} {'T_eff/T_data':>13}")
    for g in result.generators:
        ratio = g["livetime_ratio"]
        t_sim = f"{g['livetime_s']:.4g} s" if g["livetime_s"] > 0 else "-"
        print(f"  {g['label']:<14} {g['n_events']:>9} {t_sim:>12} {g['effective_livetime_s']:>14.4g} s "
              f"{g['data_livetime_s']:>10.4g} s {ratio:>13.4g}")
    if result.manifest:
        print(f"\nmanifest (size, adler32): {result.manifest} and {Path(result.manifest).with_suffix('.tsv')}")
    return 0


def _cmd_manifest(args) -> int:
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.export import write_manifest

    prod = load_production(args.production, {"output": args.output})
    path = write_manifest(prod.output)
    import json

    doc = json.loads(Path(path).read_text())
    print(f"{doc['n_files']} files, {doc['bytes'] / 1e6:.4g} MB: {path} and {path.with_suffix('.tsv')}")
    return 0


def register(sub) -> None:
    e = sub.add_parser("export", help="merge a finished production into one analysis HDF5 file per stage level, "
                                      "with combined weights, and write the manifest")
    e.add_argument("production", help="production YAML file")
    e.add_argument("--output", help="output directory of the production (overrides the YAML)")
    e.add_argument("--level", action="append", metavar="STAGE",
                   help="level to export (a stage name; 'generators' with several generators); repeatable; default all")
    e.add_argument("--directory", help="where the analysis files go (default <output>/export)")
    e.set_defaults(func=_cmd_export)

    m = sub.add_parser("manifest", help="list every file of a production with size and adler32 (for Rucio)")
    m.add_argument("production")
    m.add_argument("--output", help="output directory (overrides the YAML)")
    m.set_defaults(func=_cmd_manifest)
