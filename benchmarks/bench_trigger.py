"""Trigger throughput on background-dominated input: L0 hits per second through L1, L2, the 3D
triggers (3DMuon, 3DShower, MXShower) and event building, one core, warm (numba compiled).

Input: pure ⁴⁰K background (the detector stage's background generator, singles plus genuine
2-6-fold coincidences, PHYSICS.md §8, §12) over one timeslice of a 115-DU detector:
ORCA-115 with the ``orca6`` trigger preset and ARCA-115 with ``arca21``. Two layouts:

* ``dom-sorted``: hits grouped per DOM, in time within a DOM — the layout of a DAQ timeslice
  (one frame per DOM), no sorting needed;
* ``time-sorted``: all hits in time order, sorted per DOM inside;
* ``10 µs windows``: the same number of hits cut into 10 µs windows, time-sorted — the layout
  of the simulation stage (one window per simulated event), one event kept per window.

Prints the best of ``--repeat`` runs: CPU time of this (single-threaded) process, which
other processes sharing the cores hardly change, and wall time; and the CPU time of the first
run, which also pays the page faults of the sorting buffers that ``TriggerProcessor`` then keeps
for later calls (time-sorted layouts; the 10 µs windows reuse the time-sorted buffers).

Run: ``.venv/bin/python benchmarks/bench_trigger.py [--slice-ms 100] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from km3net_testdata import data_path

from km3sim.detector.background import simulate_background
from km3sim.io.detx import read_detector
from km3sim.trigger.trigger import TriggerProcessor, preset

DETECTORS = {
    "ORCA-115": ("detx/orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx", "orca", "orca6"),
    "ARCA-115": ("detx/KM3NeT_-00000001_20171212.detx", "arca", "arca21"),
}


def best_of(fn, repeat):
    """Best CPU time and best wall time of ``repeat`` calls, the last result, the first CPU time."""
    cpu = wall = np.inf
    out = first = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - t)
        first = cpu if first is None else first
    return cpu, wall, out, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice-ms", type=float, default=100.0, help="timeslice length [ms] (default 100)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--detector", choices=sorted(DETECTORS), action="append")
    args = ap.parse_args()
    window_ns = args.slice_ms * 1e6
    for name in args.detector or list(DETECTORS):
        path, site, preset_name = DETECTORS[name]
        det = read_detector(data_path(path))
        t = time.perf_counter()
        bg = simulate_background(det, 1, window_ns, k40=site, seed=7)
        t_gen = time.perf_counter() - t
        dom = det.pmt_dom_index[bg["pmt"]].astype(np.int32)
        ch = np.asarray(det.pmt_channel)[bg["pmt"]].astype(np.int16)
        tm = bg["time"]
        n = len(tm)
        proc = TriggerProcessor(preset(preset_name), det)
        offsets = np.array([0, n], dtype=np.int64)
        by_dom = np.lexsort((tm, dom))
        by_time = np.argsort(tm, kind="stable")
        print(f"{name}: {n / 1e6:.1f} M L0 hits in {args.slice_ms:g} ms ({n / window_ns * 1e9 / det.n_pmts / 1e3:.2f} kHz "
              f"per PMT; generated in {t_gen:.1f} s), trigger preset {preset_name}")
        # 10 µs windows: the window index of each time-sorted hit
        x_sorted = tm[by_time]
        win = np.floor((x_sorted - x_sorted[0]) / 10_000.0).astype(np.int64)
        win_offsets = np.searchsorted(win, np.arange(win[-1] + 2))
        layouts = {"dom-sorted": (by_dom, True, offsets, False), "time-sorted": (by_time, False, offsets, False),
                   "10 µs windows": (by_time, False, win_offsets, True)}
        for label, (order, dom_sorted, offs, one) in layouts.items():
            d, c, x = dom[order], ch[order], tm[order]
            proc.run(np.array([0, min(n, 1000)], np.int64), d, c, x, dom_sorted=dom_sorted)  # compile
            dt, wall, res, dt1 = best_of(lambda: proc.run(offs, d, c, x, dom_sorted=dom_sorted, one_per_window=one),
                                    args.repeat)
            masks = res.ev_mask
            n_ev = len(masks)
            per_bit = {b: int(np.count_nonzero(masks & (1 << k))) for b, k in
                       (("3DMuon", 4), ("3DShower", 1), ("MXShower", 2), ("factory", 31))}
            rate = ", ".join(f"{b} {v / (args.slice_ms * 1e-3):.0f} Hz" for b, v in per_bit.items())
            print(f"  {label:12s}: {dt:.2f} s CPU ({wall:.2f} s wall) -> {n / dt / 1e6:.1f} M L0 hits/s per core "
                  f"({n / wall / 1e6:.1f} M/s wall; first call {dt1:.2f} s CPU); "
                  f"L1 {res.n_l1.sum() / (args.slice_ms * 1e-3) / det.n_doms:.0f} Hz/DOM, "
                  f"L2 {res.n_l2.sum() / (args.slice_ms * 1e-3) / det.n_doms:.0f} Hz/DOM; "
                  f"{n_ev} events ({rate})")


if __name__ == "__main__":
    main()
