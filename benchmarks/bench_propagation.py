"""Throughput of stochastic muon propagation (stage ``muon_propagation``) on one core.

ARCA21 detector (km3net-testdata ``detx/KM3NeT_00000133_20221025.detx``), site ``arca``, can
margin 200 m, default configuration (v_cut = 0.05, e_cut = 1 GeV). Muons of fixed energy start
on the can top at random points, with directions isotropic over the down-going hemisphere, and
are propagated through the can. Prints the table set-up time, muons/s of the whole stage on
one core (after a warm-up call that compiles or loads the numba kernels) and the mean number of
shower rows per muon.

First it prints a range table: muons of fixed energy in sea water (rho = 1.038) propagated with
:func:`km3sim.propagation.stochastic.propagate_straight` (v_cut = 0.05, seed 1) until they stop:
mean range +- its statistical error, rms/mean (range straggling), the CSDA range of the
Klimushin-Bugaev-Sokalski a + bE table (PHYSICS.md §4.1) and the ratio mean / CSDA. The
fluctuations of the radiative losses shorten the mean range below the CSDA one above ~1 TeV
(Lipari & Stanev, PRD 44 (1991) 3543); the ratio does not depend on v_cut for v_cut <= 0.2
(tested). No published mean range WITH fluctuations in water could be read from a stored
source (MUM hep-ph/0010322, MMC hep-ph/0407075, Lipari-Stanev, Dutta et al. hep-ph/0012350,
Okumura et al. arXiv:1108.1246: only openings/abstracts were available). The last column is
therefore a secondhand, UNVERIFIED value: the fit R = ln(1 + E b/a)/b to the MMC average muon
range in ice, a = 0.259 GeV/mwe, b = 0.363e-3 per mwe, attributed to "MMC paper, Table 3"
(hep-ph/0407075) by the IceCube retro code; converted to sea water per m w.e. (R_m = R_mwe /
1.038; H2O in both media, so Z/A is the same and only the density differs).

Usage: ``python benchmarks/bench_propagation.py [n_muons] [--ranges-only]``
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

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


#: Secondhand, unverified MMC fit to the average range in ice (see the module docstring).
_MMC_A_GEV_PER_MWE, _MMC_B_PER_MWE = 0.259, 0.363e-3


def range_table(n: int = 20_000, water_density: float = 1.038) -> None:
    """Print mean range, straggling and reference ranges in sea water (module docstring)."""
    from km3sim.propagation.muons import ContinuousLossTable, muon_range
    from km3sim.propagation.stochastic import propagate_straight

    table = ContinuousLossTable.sea_water(water_density)
    print(f"muon range in sea water (rho = {water_density}), {n} muons per energy, v_cut = 0.05")
    print(f"{'E [GeV]':>9} {'<R> [m]':>9} {'+-':>6} {'rms/<R>':>8} {'CSDA [m]':>9} {'<R>/CSDA':>9} "
          f"{'MMC* [m]':>9} {'<R>/MMC*':>9}")
    for energy in (1e1, 1e2, 1e3, 1e4, 1e5):
        r = propagate_straight(13, np.full(n, energy), np.inf, seed=1, water_density=water_density)["path"]
        mean, err = r.mean(), r.std() / math.sqrt(n)
        csda = float(muon_range(energy, table))
        mmc = math.log1p(energy * _MMC_B_PER_MWE / _MMC_A_GEV_PER_MWE) / _MMC_B_PER_MWE / water_density
        print(f"{energy:9.0e} {mean:9.1f} {err:6.1f} {r.std() / mean:8.3f} {csda:9.1f} {mean / csda:9.4f} "
              f"{mmc:9.1f} {mean / mmc:9.4f}")
    print("MMC*: UNVERIFIED secondhand fit to the MMC average range in ice (hep-ph/0407075 'Table 3', "
          "a = 0.259 GeV/mwe, b = 0.363e-3/mwe, quoted by IceCube retro), per m w.e. / 1.038")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    range_table()
    if "--ranges-only" in sys.argv:
        return
    from km3net_testdata import data_path

    n = int(args[0]) if args else 50_000
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
