"""Throughput of the air-shower generator and of the CORSIKA muon input, one core.

Prints primaries/s per core for ``air_showers`` (the sampling kernel alone and the whole stage
with its tables and weights) for the default configuration (H3a, 1e3-1e8 GeV, E^-2, most
primaries below the muon threshold) and for a bundle-rich one (1e5-1e8 GeV), with the muons
per primary; then CORSIKA showers/s for ``corsika_muons`` on km3net-testdata's DAT000001
(reading the file once, placing its showers repeatedly). Asserts nothing about time.

Usage: ``python benchmarks/bench_air_showers.py [n_primaries]``
"""

from __future__ import annotations

import sys
import time

import numpy as np

from km3sim.detector.geometry import build_orca_block
from km3sim.generators.air_showers import AirShowerGenerator
from km3sim.generators.corsika import CorsikaMuons
from km3sim.stage import Site, StageContext


def _ctx(name, detector, site, ids):
    return StageContext(seed=1, run_id=1, chunk=0, stage_name=name, event_ids=ids, livetime_s=100.0,
                        n_events_run=len(ids), detector=detector, site=site)


def bench_air_showers(n: int, detector, site) -> None:
    seeds = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    ids = np.arange(n, dtype=np.int64)
    for label, cfg in (
        ("default (1e3-1e8 GeV)", AirShowerGenerator.Config()),
        ("bundles (1e5-1e8 GeV)", AirShowerGenerator.Config(energy_min_gev=1e5)),
    ):
        gen = AirShowerGenerator(cfg, detector, site)
        gen.generate(seeds[:100])  # compile / load the numba cache
        t0 = time.process_time()
        ev, mu, _, _ = gen.generate(seeds)
        t_kernel = time.process_time() - t0
        t0 = time.process_time()
        out = gen.run({}, _ctx("air_showers", detector, site, ids))
        t_stage = time.process_time() - t0
        with_mu = int(np.count_nonzero(ev[8]))
        print(f"air_showers {label}: {n / t_kernel:,.0f} primaries/s (kernel), {n / t_stage:,.0f} primaries/s "
              f"(stage with tables); {with_mu / n:.1%} send muons to the can, {len(mu[0]) / max(with_mu, 1):.2f} "
              f"muons per such primary, rate {out['events']['weight_w3'].sum():.1f} Hz (H3a)")


def bench_corsika(detector, site, repeat: int = 200) -> None:
    try:
        from km3net_testdata import data_path
    except ImportError:
        print("corsika_muons: km3net-testdata not installed, skipped")
        return
    path = data_path("corsika/DAT000001")
    t0 = time.process_time()
    stage = CorsikaMuons(CorsikaMuons.Config(files=[path]), detector, site)
    t_read = time.process_time() - t0
    n = stage.n_showers
    ids = np.arange(n, dtype=np.int64)
    stage.run({}, _ctx("corsika_muons", detector, site, ids))
    t0 = time.process_time()
    n_mu = 0
    for _ in range(repeat):
        n_mu += len(stage.run({}, _ctx("corsika_muons", detector, site, ids))["mc_tracks"])
    t = time.process_time() - t0
    print(f"corsika_muons: read {n} showers in {t_read * 1e3:.1f} ms; {repeat * n / t:,.0f} showers/s placed "
          f"({n_mu / (repeat * n):.1f} muons per shower at the can)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    detector = build_orca_block(n_dus=7)
    site = Site()
    bench_air_showers(n, detector, site)
    bench_corsika(detector, site)


if __name__ == "__main__":
    main()
