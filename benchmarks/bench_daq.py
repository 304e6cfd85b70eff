"""Decoding speed of real KM3NeT DAQ files (one core, warm): triggered events, L1 timeslices
and summaryslices from the ROOT files of km3net-testdata.

Run: ``.venv/bin/python benchmarks/bench_daq.py``
"""

from __future__ import annotations

import time

from km3net_testdata import data_path

from km3sim.io import daq


def bench(label, fn, n_items, unit):
    fn()  # warm up (file cache, imports)
    t = time.perf_counter()
    k = 0
    while time.perf_counter() - t < 1.0:
        fn()
        k += 1
    dt = (time.perf_counter() - t) / k
    print(f"{label}: {dt * 1e3:.1f} ms/file, {n_items / dt / 1e6:.2f} M {unit}/s")


def main() -> None:
    ev_file = data_path("online/muon_cc_daqevents.root")
    e = daq.read_daq_events(ev_file)
    n_hits = len(e.snapshot_hits) + len(e.triggered_hits)
    bench(f"events ({len(e.snapshot_hits)} snapshot + {len(e.triggered_hits)} triggered hits)",
          lambda: daq.read_daq_events(ev_file), n_hits, "hits")
    for name in ("online/KM3NeT_00000267_00025291_L1.root", "online/events_sample.root"):
        path = data_path(name)
        t = daq.read_timeslices(path, "L1")
        bench(f"L1 timeslices {name} ({len(t.hits)} hits)", lambda: daq.read_timeslices(path, "L1"), len(t.hits), "hits")
    ss_file = data_path("online/summaryslices.root")
    s = daq.load_summaryslices(ss_file)
    bench(f"summaryslices -> RunConditions ({len(s.frames)} DOM frames)",
          lambda: daq.read_summaryslices(ss_file), len(s.frames), "DOM frames")


if __name__ == "__main__":
    main()
