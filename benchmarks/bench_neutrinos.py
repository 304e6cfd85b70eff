"""Neutrino events per second per core for the ``neutrinos`` generator stage.

Runs the stage in this process (one core) on a 7-DU ORCA block for a few configurations,
in chunks of 10 000 events, after one warm-up chunk (numba compilation or cache load).
Prints events/s (CPU time), and the share spent in the Earth transmission and the cross
sections. Asserts nothing about time.

Usage: ``python benchmarks/bench_neutrinos.py [n_events]``
"""

from __future__ import annotations

import sys
import time

import numpy as np

from km3sim.detector.geometry import build_orca_block
from km3sim.generators.neutrinos import NeutrinoGenerator
from km3sim.physics.earth import EarthModel
from km3sim.physics.xsec import dis_cross_section
from km3sim.stage import Site, StageContext

CONFIGS = {
    "numu cc (default, 10 GeV-10 PeV)": {},
    "all flavours cc+nc+glashow": dict(flavours=[12, -12, 14, -14, 16, -16], interactions=["cc", "nc", "glashow"]),
    "numu cc, power-law w3": dict(reference_flux={"power_law": {"norm": 1e-4, "index": 2.0}}),
    "numu cc, honda w3 (10 GeV-10 TeV)": dict(energy_max_gev=1e4, reference_flux="honda"),
}
CHUNK = 10_000


def run(gen, detector, site, first, n, n_run):
    ctx = StageContext(seed=7, run_id=1, chunk=0, stage_name="neutrinos", event_ids=np.arange(first, first + n),
                       livetime_s=3600.0, n_events_run=n_run, detector=detector, site=site)
    return gen.run({}, ctx)


def main() -> None:
    n_total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    detector = build_orca_block(n_dus=7)
    site = Site()
    print(f"neutrinos stage, 7-DU ORCA block, {n_total} events per configuration in chunks of {CHUNK}, one core")
    print(f"{'configuration':<38}{'events/s':>12}{'tracks/event':>14}")
    for label, kw in CONFIGS.items():
        try:
            gen = NeutrinoGenerator(NeutrinoGenerator.Config(**kw), detector, site)
        except Exception as exc:  # e.g. km3flux missing for the Honda reference
            print(f"{label:<38}  skipped: {exc}")
            continue
        run(gen, detector, site, 10**9, 100, n_total)  # warm-up
        cpu0 = time.process_time()
        n_tracks = 0
        for first in range(0, n_total, CHUNK):
            out = run(gen, detector, site, first, min(CHUNK, n_total - first), n_total)
            n_tracks += len(out["mc_tracks"])
        cpu = time.process_time() - cpu0
        print(f"{label:<38}{n_total / cpu:12.0f}{n_tracks / n_total:14.2f}")
    # the two most expensive parts, alone
    rng = np.random.default_rng(1)
    e = 10 ** rng.uniform(1, 7, CHUNK)
    c = rng.uniform(-1, 1, CHUNK)
    earth = EarthModel.from_site(site)
    earth.transmission(e[:10], c[:10], 14)
    t0 = time.process_time()
    earth.transmission(e, c, 14)
    t_earth = time.process_time() - t0
    t0 = time.process_time()
    dis_cross_section(e, 14, "cc")
    t_xs = time.process_time() - t0
    print(f"Earth transmission alone: {CHUNK / t_earth:.0f} evaluations/s; DIS cross section alone: {CHUNK / t_xs:.0f}/s")


if __name__ == "__main__":
    main()
