"""Throughput of stochastic muon propagation (stage ``muon_propagation``) on one core.

ARCA21 detector (km3net-testdata ``detx/KM3NeT_00000133_20221025.detx``), site ``arca``, can
margin 200 m, default configuration (v_cut = 0.05, e_cut = 1 GeV). Muons of fixed energy start
on the can top at random points, with directions isotropic over the down-going hemisphere, and
are propagated through the can. Prints the table set-up time, muons/s of the whole stage on
one core (after a warm-up call that compiles or loads the numba kernels) and the mean number of
shower rows per muon.

Usage: ``python benchmarks/bench_propagation.py [n_muons]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
from km3net_testdata import data_path

from km3sim.io.detx import read_detector
from km3sim.propagation.muons import MuonPropagation
from km3sim.schema import make_table
from km3sim.stage import SITE_PRESETS, StageContext


def _tables(can, n, energy, rng):
    r = can.radius * np.sqrt(rng.uniform(size=n))
    phi = rng.uniform(0, 2 * np.pi, n)
    cz = -rng.uniform(0.05, 1.0, n)
    sz = np.sqrt(1 - cz**2)
    az = rng.uniform(0, 2 * np.pi, n)
    z = np.zeros(n)
    tracks = make_table(
        "mc_tracks", event_id=np.arange(n), track_id=np.zeros(n, np.int32), parent_id=np.full(n, -1, np.int32),
        pdgid=np.full(n, 13, np.int32), pos_x=can.x + r * np.cos(phi), pos_y=can.y + r * np.sin(phi),
        pos_z=np.full(n, can.zmax), dir_x=sz * np.cos(az), dir_y=sz * np.sin(az), dir_z=cz,
        energy=np.full(n, energy), time=z, length=z, energy_lost_in_can=z,
    )
    events = make_table(
        "events", event_id=np.arange(n), run_id=np.zeros(n, np.int32), mc_time=z, pdgid=np.full(n, 13),
        n_muons=np.ones(n, np.int32), energy=np.full(n, energy), pos_x=z, pos_y=z, pos_z=z, dir_x=z, dir_y=z,
        dir_z=z, n_gen=np.full(n, n), livetime_s=np.ones(n), weight_w3=np.ones(n),
    )
    return {"events": events, "mc_tracks": tracks}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    detector = read_detector(data_path("detx/KM3NeT_00000133_20221025.detx"))
    site = SITE_PRESETS["arca"]
    t0 = time.perf_counter()
    stage = MuonPropagation(detector=detector, site=site)
    ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="muon_propagation", event_ids=np.arange(n),
                       livetime_s=1.0, n_events_run=n, detector=detector, site=site)
    stage.run(_tables(stage.can, 100, 100.0, np.random.default_rng(0)),
              StageContext(**{**ctx.__dict__, "event_ids": np.arange(100)}))  # warm-up + tables
    print(f"set-up (tables + compile/load): {time.perf_counter() - t0:.2f} s")
    can = stage.can
    print(f"can: radius {can.radius:.0f} m, height {can.height:.0f} m")
    rng = np.random.default_rng(1)
    for energy in (1e2, 1e4, 1e6):
        tables = _tables(can, n, energy, rng)
        t = time.perf_counter()
        out = stage.run(tables, ctx)["mc_tracks"]
        dt = time.perf_counter() - t
        showers = int(np.sum(out["parent_id"] >= 0))
        mu = out["pdgid"] == 13
        print(f"E = {energy:8.0e} GeV: {n / dt:10.0f} muons/s per core, {showers / n:6.2f} showers/muon, "
              f"mean length in can {out['length'][mu].mean():6.1f} m")


if __name__ == "__main__":
    main()
