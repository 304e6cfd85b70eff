"""Benchmark of the photon tracker: tracked photons per second on one core.

ARCA water (350 atm, Jpp absorption, Kopelevich scattering, p0.0075) with the full 115-DU ARCA
design detector of km3net-testdata (``detx/KM3NeT_-00000001_20171212.detx``) or, with
``--orca``, the ORCA-115 design file. Emitters: 1 TeV muons crossing the detector centre and
1 TeV EM showers at the centre. Prints photons/s per core (single-threaded numba kernel), the
detected fraction and the direct-mode time for the same events. Asserts nothing about time.

The rate is the best of ``--repeat`` runs, from the wall-clock time and from the process CPU
time (``time.process_time``): on a shared machine the CPU-time figure is the one that does not
depend on the load of other processes.

Run: ``.venv/bin/python benchmarks/bench_photons.py [--orca] [--events N] [--repeat N]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from km3sim import schema
from km3sim.io.detx import read_detector
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.stage import SITE_PRESETS, StageContext

FILES = {
    "arca": "detx/KM3NeT_-00000001_20171212.detx",
    "orca": "detx/orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx",
}


def make_tracks(n: int, pdgid: int, det, rng, length: float) -> "schema.Table":
    c = det.center()
    cz = rng.uniform(-1, 1, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    d = np.column_stack([np.sqrt(1 - cz**2) * np.cos(ph), np.sqrt(1 - cz**2) * np.sin(ph), cz])
    start = c - 0.5 * length * d if length > 0 else c + rng.uniform(-20, 20, (n, 3))
    return schema.make_table(
        "mc_tracks", event_id=np.arange(n, dtype=np.int64), track_id=np.zeros(n, dtype=int), parent_id=-np.ones(n, dtype=int),
        pdgid=np.full(n, pdgid, dtype=np.int32), pos_x=start[:, 0], pos_y=start[:, 1], pos_z=start[:, 2],
        dir_x=d[:, 0], dir_y=d[:, 1], dir_z=d[:, 2], energy=np.full(n, 1000.0), time=np.zeros(n),
        length=np.full(n, length), energy_lost_in_can=np.zeros(n),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orca", action="store_true", help="ORCA-115 detector instead of ARCA-115")
    ap.add_argument("--events", type=int, default=3, help="events per emitter type")
    ap.add_argument("--repeat", type=int, default=1, help="runs per emitter type (the best one is printed)")
    args = ap.parse_args()
    from km3net_testdata import data_path

    name = "orca" if args.orca else "arca"
    det = read_detector(data_path(FILES[name]))
    site = SITE_PRESETS["arca"]  # ARCA water in both cases
    print(f"detector {FILES[name]}: {det.n_doms} DOMs, {det.n_pmts} PMTs; water: ARCA ({site.pressure_atm} atm)")
    stage = DirectLight(DirectLightConfig(mode="photons"), site=site)
    direct = DirectLight(DirectLightConfig(), site=site)
    tracker = stage.tracker(det)
    print(f"DOM grid: {tracker.grid.nx} x {tracker.grid.ny} cells of {tracker.grid.cell:.1f} m; "
          f"{tracker.photons_per_metre:.0f} QE-weighted photons per metre of muon")
    rng = np.random.default_rng(1)
    # warm-up (numba compilation / cache load)
    warm = make_tracks(1, 11, det, rng, 0.0)
    warm["energy"][:] = 1.0
    ev = np.zeros(1, dtype=np.int64)
    ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="direct_light", event_ids=ev, livetime_s=1.0,
                       n_events_run=1, detector=det, site=site)
    stage.run({"mc_tracks": warm}, ctx)
    direct.run({"mc_tracks": warm}, ctx)
    for label, pdg, length in [("1 TeV muon, 400 m", 13, 400.0), ("1 TeV e- shower", 11, 0.0)]:
        tracks = make_tracks(args.events, pdg, det, rng, length)
        ev = np.arange(args.events, dtype=np.int64)
        ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="direct_light", event_ids=ev, livetime_s=1.0,
                           n_events_run=args.events, detector=det, site=site)
        emitters = tracker.emitters_from_tracks(tracks, ev)
        dt = dt_cpu = float("inf")
        for _ in range(max(args.repeat, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            hits = tracker.track(emitters, ctx.seeds(ev))
            dt, dt_cpu = min(dt, time.perf_counter() - t0), min(dt_cpu, time.process_time() - c0)
        n_ph = int(hits.n_emitted.sum())
        t1 = time.perf_counter()
        d_hits = direct.run({"mc_tracks": tracks}, ctx)["mc_hits"]
        dt_direct = time.perf_counter() - t1
        print(f"{label}: {n_ph:.3e} photons in {dt:.2f} s -> {n_ph / dt:.3e} photons/s per core "
              f"({n_ph / dt_cpu:.3e} per CPU second); "
              f"{len(hits) / args.events:.0f} pe/event (scattered {np.mean(hits.n_scatter > 0):.2f}); "
              f"direct mode {len(d_hits) / args.events:.0f} pe/event in {dt_direct / args.events * 1e3:.0f} ms/event")


if __name__ == "__main__":
    main()
