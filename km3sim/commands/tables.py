"""``km3sim tables``: build and inspect the light tables of ``direct_light`` in ``mode: tables``."""

from __future__ import annotations

import time


def _cmd_build(args) -> int:
    from km3sim.errors import ConfigError
    from km3sim.propagation.tables import build_light_tables, default_photons, table_cache_dir
    from km3sim.propagation.water import water_for_site
    from km3sim.stage import SITE_PRESETS

    if args.site not in SITE_PRESETS:
        raise ConfigError(f"unknown site {args.site!r}; choose one of {sorted(SITE_PRESETS)}")
    quality = "coarse" if args.coarse else args.quality
    site = SITE_PRESETS[args.site]
    water = water_for_site(site, args.absorption_scale, args.scattering_scale)
    n_mu, n_sh = default_photons(quality)
    n = int(args.photons) if args.photons is not None else None
    where = args.output or f"{table_cache_dir(args.table_dir)}/"
    print(f"building {quality} light tables for {site.name} water ({site.pressure_atm} atm, absorption x{args.absorption_scale}, "
          f"scattering x{args.scattering_scale}{'' if not args.no_scattering else ', scattering off'}): "
          f"{(n or n_mu):.3g} (muon) + {(n or n_mu):.3g} (muon showers) + {(n or n_sh):.3g} (shower) photons, "
          f"{args.jobs} job(s) -> {where}", flush=True)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if done == total or now - last[0] > 10.0:
            last[0] = now
            el = now - t0
            eta = el / done * (total - done) if done else float("nan")
            print(f"  {done / total:6.1%}  {done:.3g}/{total:.3g} photons, {el:.0f} s elapsed, ~{eta:.0f} s left", flush=True)

    path = build_light_tables(
        water, args.output, site=site.name, quality=quality, n_photons=n, seed=args.seed,
        scattering=not args.no_scattering, max_distance_m=args.max_distance_m, table_dir=args.table_dir,
        jobs=args.jobs, progress=progress,
    )
    print(f"written {path} in {time.perf_counter() - t0:.0f} s")
    return 0


def _cmd_info(args) -> int:
    from km3sim.propagation.tables import format_info

    print(format_info(args.file))
    return 0


def _cmd_list(args) -> int:
    from km3sim.propagation.tables import LightTableError, _read_root_attrs, table_cache_dir

    d = table_cache_dir(args.table_dir)
    files = sorted(d.glob("*.h5")) if d.is_dir() else []
    print(f"light tables in {d}: {len(files)}")
    for f in files:
        try:
            a = _read_root_attrs(f)
            print(f"  {f.name}: site {a.get('site')}, quality {a.get('quality')}, {a.get('n_photons_total', 0):.3g} photons, "
                  f"{a['physics']['pressure_atm']} atm, created {a.get('created')}")
        except (LightTableError, KeyError) as exc:
            print(f"  {f.name}: unreadable ({exc})")
    return 0


def register(sub) -> None:
    t = sub.add_parser("tables", help="light tables for direct_light mode: tables (JSirene-like, built with the photon tracker)")
    tsub = t.add_subparsers(dest="tables_command", required=True)
    b = tsub.add_parser("build", help="build the muon and shower light tables of a site's water with the photon tracker")
    b.add_argument("--site", default="orca", help="water of this site (orca: 240 atm, arca: 350 atm; default orca)")
    b.add_argument("--quality", choices=("coarse", "medium", "full"), default="full",
                   help="binning and photons: coarse (~30 s, CI), medium (~10 min), full (default; hours, use --jobs)")
    b.add_argument("--coarse", action="store_true", help="same as --quality coarse")
    b.add_argument("--photons", type=float, help="photons tracked per table (muon, shower) instead of the quality's default")
    b.add_argument("--output", help="output file (default: the table directory, named after the parameters' hashes)")
    b.add_argument("--table-dir", help="table directory (default $KM3SIM_TABLE_DIR, else ~/.cache/km3sim/tables)")
    b.add_argument("--seed", type=int, default=1, help="seed of the build (default 1)")
    b.add_argument("--jobs", type=int, default=1, help="worker processes (the table does not depend on it)")
    b.add_argument("--absorption-scale", type=float, default=1.0, help="factor on the absorption lengths (as direct_light)")
    b.add_argument("--scattering-scale", type=float, default=1.0, help="factor on the scattering lengths (as direct_light)")
    b.add_argument("--no-scattering", action="store_true", help="tables without scattering (direct_light scattering: false)")
    b.add_argument("--max-distance-m", type=float, default=300.0, help="maximum photon distance (as direct_light, default 300)")
    b.set_defaults(func=_cmd_build)
    i = tsub.add_parser("info", help="provenance, binning and statistics of a light-table file")
    i.add_argument("file")
    i.set_defaults(func=_cmd_info)
    ls = tsub.add_parser("list", help="the light tables in the table directory")
    ls.add_argument("--table-dir", help="table directory (default $KM3SIM_TABLE_DIR, else ~/.cache/km3sim/tables)")
    ls.set_defaults(func=_cmd_list)
