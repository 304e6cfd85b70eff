"""Throughput of the optical background and of the ``pmt_response`` stage on one core.

Detectors from km3net-testdata: ORCA-115 (``detx/orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx``)
and ARCA21 (``detx/KM3NeT_00000133_20221025.detx``), default configuration (⁴⁰K preset of the
site: singles, 2..6-fold coincidences; slewing, afterpulses, window ±5 µs around the event).
Prints, after a warm-up call that compiles or loads the numba kernels:

- background hits/s of the hit kernel alone (events without signal, pure background);
- events/s and hits/s of the whole stage (seeds, kernel, tables, schema checks) for events
  with 200 signal photo-electrons each;
- the real-data figures of the background (PHYSICS.md §13) measured on 30 DOMs × 2 s.

For comparison the brief's target is 2e7 background hits/s per core. Rates are the best of
``repeat`` runs, from the wall-clock time and from the process CPU time (``time.process_time``;
on a shared machine the CPU-time figure does not depend on the load of other processes).

Usage: ``python benchmarks/bench_detect.py [n_events] [repeat]``
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
from km3net_testdata import data_path

from km3sim import schema
from km3sim.detector import background as bg
from km3sim.detector.pmt import pmt_parameters
from km3sim.detector.response import PmtResponse, PmtResponseConfig
from km3sim.io.detx import read_detector
from km3sim.stage import StageContext

DETECTORS = {
    "ORCA-115": ("detx/orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx", "orca"),
    "ARCA21": ("detx/KM3NeT_00000133_20221025.detx", "arca"),
}


def kernel_rate(det, preset: str, n_events: int, repeat: int = 3) -> None:
    params = pmt_parameters(det)
    doms = bg.DomCoincidences(det)
    k40 = bg.K40_PRESETS[preset]
    active = params.switched_on
    singles = bg.uncorrelated_rates_hz(np.full(det.n_pmts, k40.singles_hz), active, params, doms, k40)
    packed = bg.packed_pmt_parameters(params)
    seeds = np.arange(1, n_events + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    bg.run_hit_kernel(seeds[:2], params, active, singles, doms, k40, 5000.0, packed=packed)  # warm-up
    best = best_cpu = 0.0
    for _ in range(max(repeat, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = bg.run_hit_kernel(seeds, params, active, singles, doms, k40, 5000.0, packed=packed)
        dt, dt_cpu = time.perf_counter() - t0, time.process_time() - c0
        best = max(best, len(out[0]) / dt)
        best_cpu = max(best_cpu, len(out[0]) / max(dt_cpu, 1e-9))
    print(f"  background kernel: {len(out[0]) / n_events:,.0f} hits per 10-µs window, {best:,.0f} hits/s per core "
          f"({best_cpu:,.0f} per CPU second)")


def stage_rate(det, preset: str, n_events: int, npe: int = 200, repeat: int = 3) -> None:
    stage = PmtResponse(PmtResponseConfig(k40_preset=preset), detector=det)
    rng = np.random.default_rng(1)
    ev = np.arange(n_events, dtype=np.int64)
    n = n_events * npe
    pmt = rng.integers(0, det.n_pmts, n)
    mc = schema.make_table(
        "mc_hits", event_id=np.repeat(ev, npe), pmt_id=det.pmt_id[pmt], dom_id=det.pmt_dom_id[pmt],
        channel_id=det.pmt_channel[pmt], time=np.tile(np.sort(rng.uniform(0, 2000, npe)), n_events),
        npe=np.ones(n, dtype=np.int32), origin=np.zeros(n, dtype=np.int32),
    )
    z = np.zeros(n_events)
    events = schema.make_table("events", event_id=ev, run_id=np.ones(n_events, np.int32), mc_time=ev * 1e6,
                               pdgid=np.full(n_events, 81), n_gen=np.full(n_events, n_events),
                               n_muons=np.ones(n_events, np.int32), energy=z, pos_x=z, pos_y=z, pos_z=z,
                               dir_x=z, dir_y=z, dir_z=z - 1, livetime_s=z + 1, weight_w3=z + 1)
    ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="pmt_response", event_ids=ev, livetime_s=1.0,
                       n_events_run=n_events, detector=det)
    t0 = time.perf_counter()
    stage.run({"events": events[:2], "mc_hits": mc.select_events(ev[:2])}, StageContext(**{**ctx.__dict__, "event_ids": ev[:2]}))
    t_setup = time.perf_counter() - t0
    dt = dt_cpu = float("inf")
    for _ in range(max(repeat, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        hits = stage.run({"events": events, "mc_hits": mc}, ctx)["hits"]
        dt, dt_cpu = min(dt, time.perf_counter() - t0), min(dt_cpu, time.process_time() - c0)
    print(f"  stage (set-up {t_setup:.2f} s once): {n_events / dt:,.0f} events/s, {len(hits) / dt:,.0f} hits/s per core "
          f"({len(hits) / dt_cpu:,.0f} per CPU second; {npe} signal pe + {len(hits) / n_events - npe:,.0f} background "
          f"hits per event)")


def real_data_figures(det, preset: str, singles_hz: float) -> None:
    n_doms, seconds = 30, 2.0
    sel = np.flatnonzero(det.pmt_dom_index < n_doms)
    sub = SimpleNamespace(pmt_id=det.pmt_id[sel], pmt_dom_id=det.pmt_dom_id[sel], pmt_channel=det.pmt_channel[sel],
                          pmt_dir=det.pmt_dir[sel], pmt_usable=np.ones(len(sel), dtype=bool))
    h = bg.simulate_background(sub, int(seconds * 1000), 1e6, k40=preset, total_rates_hz=np.full(len(sel), singles_hz))
    dom = det.pmt_dom_index[sel]
    r = bg.measured_pmt_rates_hz(h["pmt"], len(sel), seconds)
    r2, rms, _, _ = bg.twofold_coincidence_rate(h["window"], h["pmt"], h["time"], dom, n_doms, seconds)
    r4 = bg.multifold_cluster_rate(h["window"], h["pmt"], h["time"], dom, n_doms, seconds)
    print(f"  background of {n_doms} DOMs × {seconds:g} s at {singles_hz:g} Hz: median PMT rate {np.median(r):,.0f} Hz, "
          f"two-fold excess {r2:.0f} /s per DOM (rms {rms:.2f} ns), ≥4-fold 25-ns clusters {r4:.2f} Hz per DOM, "
          f"ToT median {np.median(np.rint(h['tot'])):.0f} ns [p16 {np.percentile(h['tot'], 16):.1f}, p84 {np.percentile(h['tot'], 84):.1f}]")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for name, (path, preset) in DETECTORS.items():
        det = read_detector(data_path(path))
        print(f"{name}: {det.n_doms} DOMs, {det.n_pmts} PMTs, preset {preset!r} {bg.K40_PRESETS[preset]}")
        kernel_rate(det, preset, n, repeat)
        stage_rate(det, preset, n, repeat=repeat)
        real_data_figures(det, preset, 5600.0 if preset == "arca" else 7140.0)


if __name__ == "__main__":
    main()
