"""Throughput of the MUPAGE bundle generator (``atmospheric_muons``) on one core.

ARCA21 detector (km3net-testdata ``detx/KM3NeT_00000133_20221025.detx``), site ``arca``,
default configuration (m = 1..1000, bundle energy > 10 GeV, can margin 200 m). Prints the set-up
time (rate integrals, threshold tables, sampling envelope; numba compilation excluded), and
bundles/s and muons/s of the sampling kernel alone and of the whole stage (tables included),
single-threaded, after a warm-up call that compiles or loads the numba kernels. For comparison
the brief's target is 11,000 bundles/s per core (10x MUPAGE v3r4).

Usage: ``python benchmarks/bench_bundles.py [n_events] [energy_min_gev]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
from km3net_testdata import data_path

import km3sim.generators.muons as muons
from km3sim.io.detx import read_detector
from km3sim.stage import SITE_PRESETS, StageContext


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    detector = read_detector(data_path("detx/KM3NeT_00000133_20221025.detx"))
    site = SITE_PRESETS["arca"]
    cfg = muons.AtmosphericMuonGenerator.Config(energy_min_gev=threshold)

    t0 = time.perf_counter()
    gen = muons.AtmosphericMuonGenerator(cfg, detector, site)
    gen.generate(np.arange(1, 2001, dtype=np.uint64), 1.0)  # compile / load the kernels
    t_first = time.perf_counter() - t0
    muons._SETUP_CACHE.clear()
    t0 = time.perf_counter()
    gen = muons.AtmosphericMuonGenerator(cfg, detector, site)
    t_setup = time.perf_counter() - t0

    c = gen.can
    print(f"ARCA21 ({detector.n_dus} DUs), site arca: can r = {c.radius:.0f} m, z = {c.zmin:.0f}..{c.zmax:.0f} m, "
          f"depth {gen.h_top:.2f}-{gen.h_bottom:.2f} km w.e.")
    print(f"rate {gen.rate_hz:.2f} Hz (single muons {gen.rate_single_hz:.2f} Hz), bundle energy > {threshold:g} GeV; "
          f"proposal efficiency {gen.envelope_efficiency:.3f}, threshold efficiency {gen.threshold_efficiency:.4f}")
    print(f"set-up: {t_setup:.3f} s (first call with numba compile/cache load: {t_first:.2f} s)")

    seeds = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    t0 = time.perf_counter()
    s = gen.generate(seeds, 1.0)
    dt = time.perf_counter() - t0
    n_mu = len(s.muon_event)
    print(f"kernel: {n} events, {n_mu} muons (<m> = {n_mu / n:.3f}, max {s.multiplicity.max()}) in {dt:.3f} s: "
          f"{n / dt:,.0f} bundles/s, {n_mu / dt:,.0f} muons/s per core")

    ids = np.arange(n, dtype=np.int64)
    ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="atmospheric_muons", event_ids=ids,
                       livetime_s=n / gen.rate_hz, n_events_run=n, detector=detector, site=site)
    gen.run({}, StageContext(**{**ctx.__dict__, "event_ids": ids[:1000]}))  # warm-up
    t0 = time.perf_counter()
    out = gen.run({}, ctx)
    dt = time.perf_counter() - t0
    print(f"stage (seeds + kernel + tables + schema checks): {n / dt:,.0f} bundles/s, "
          f"{len(out['mc_tracks']) / dt:,.0f} muons/s per core")


if __name__ == "__main__":
    main()
