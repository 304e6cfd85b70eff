"""Benchmark of the light stage: tables mode vs photons mode for the same events, one core.

Events are made with the project's own stages: atmospheric muon bundles (``atmospheric_muons``,
bundle energy > 10 GeV) and νμ CC interactions of 1 TeV–1 PeV (``neutrinos``, E⁻² generation),
both propagated by ``muon_propagation`` (stochastic losses → shower rows); only events with a
muon inside the can are kept. Detectors: ARCA21
(km3net-testdata ``detx/KM3NeT_00000133_20221025.detx``, ARCA water) and the ORCA 115-DU block
of :func:`km3sim.detector.geometry.build_orca_block` (ORCA water). For each sample the light
stage (``direct_light``) runs in tables mode on all events and in photons mode on the first
``--photon-events`` of them (photons mode takes minutes for a PeV event); events/s are compared
on that common subset. Also prints the photon tracker's photons/s in photons mode.

Tables: ``--tables-orca/--tables-arca`` FILE, else the best matching table in the table
directory (``$KM3SIM_TABLE_DIR`` or ``~/.cache/km3sim/tables``); with ``--build QUALITY`` a
missing one is built first (coarse: ~30 s). Asserts nothing about time.

Run: ``.venv/bin/python benchmarks/bench_light.py [--events N] [--photon-events M] [--build coarse]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from km3sim.detector.geometry import build_orca_block
from km3sim.generators.muons import AtmosphericMuonGenerator
from km3sim.generators.neutrinos import NeutrinoGenerator
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.propagation.muons import MuonPropagation
from km3sim.stage import SITE_PRESETS, StageContext


def ctx_for(stage_name, det, site, ids):
    return StageContext(seed=11, run_id=1, chunk=0, stage_name=stage_name, event_ids=ids, livetime_s=1.0,
                        n_events_run=len(ids), detector=det, site=site)


def make_events(kind: str, det, site, n: int):
    """mc_tracks of the first n events, after muon propagation, with a muon inside the can."""
    n_gen = n * (1 if kind == "bundles" else 400)  # most neutrino vertices lie far outside the can
    ids = np.arange(n_gen, dtype=np.int64)
    if kind == "bundles":
        gen = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(energy_min_gev=10.0), det, site)
    else:
        gen = NeutrinoGenerator(NeutrinoGenerator.Config(flavours=(14,), interactions=("cc",), energy_min_gev=1e3,
                                                         energy_max_gev=1e6, spectral_index=2.0, n_events=n_gen),
                                det, site)
    out = gen.run({}, ctx_for(gen.name, det, site, ids))
    prop = MuonPropagation(detector=det, site=site)
    tracks = prop.run(out, ctx_for(prop.name, det, site, ids))["mc_tracks"]
    inside = np.unique(tracks["event_id"][(np.abs(tracks["pdgid"]) == 13) & (tracks["length"] > 0)])
    return tracks.select_events(inside[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200, help="events per sample in tables mode (default 200)")
    ap.add_argument("--photon-events", type=int, default=4, help="of which in photons mode (default 4)")
    ap.add_argument("--tables-orca", help="light-table file for ORCA water")
    ap.add_argument("--tables-arca", help="light-table file for ARCA water")
    ap.add_argument("--build", choices=("never", "coarse", "medium", "full"), default="never",
                    help="build a missing table of this quality into the table directory")
    ap.add_argument("--only", choices=("arca", "orca"), help="one detector only")
    args = ap.parse_args()
    from km3net_testdata import data_path
    from km3sim.io.detx import read_detector

    detectors = {
        "arca": ("ARCA21 (KM3NeT_00000133_20221025.detx)", lambda: read_detector(data_path("detx/KM3NeT_00000133_20221025.detx"))),
        "orca": ("ORCA-115 block (build_orca_block)", lambda: build_orca_block(115)),
    }
    print(f"{'detector':<40}{'sample':<22}{'events':>7}{'pe/event':>10}{'tables ev/s':>13}"
          f"{'photons ev/s':>14}{'speed-up':>10}{'photons/s':>11}{'pe tab*':>10}{'pe pho*':>10}")
    for name, (label, load) in detectors.items():
        if args.only and name != args.only:
            continue
        det = load()
        site = SITE_PRESETS[name]
        tables = getattr(args, f"tables_{name}")
        tab = DirectLight(DirectLightConfig(mode="tables", tables=tables or "auto", table_build=args.build), site=site)
        pho = DirectLight(DirectLightConfig(mode="photons"), site=site)
        for kind, sample in (("bundles", "atm. muon bundles"), ("numu", "numu CC 1 TeV-1 PeV")):
            tracks = make_events(kind, det, site, args.events)
            ids = np.unique(np.asarray(tracks["event_id"]))
            # warm-up (numba compilation or cache load) on an event with showers
            has_sh = np.unique(tracks["event_id"][tracks["parent_id"] >= 0])
            warm_id = has_sh[:1] if len(has_sh) else ids[:1]
            warm = tracks.select_events(warm_id)
            tab.run({"mc_tracks": warm}, ctx_for(tab.name, det, site, warm_id))
            t0 = time.process_time()
            hits = tab.run({"mc_tracks": tracks}, ctx_for(tab.name, det, site, ids))["mc_hits"]
            t_tab = time.process_time() - t0
            sub_ids = ids[: args.photon_events]
            sub = tracks.select_events(sub_ids)
            pho.run({"mc_tracks": warm}, ctx_for(pho.name, det, site, warm_id))
            t0 = time.process_time()
            pe_tab = len(tab.run({"mc_tracks": sub}, ctx_for(tab.name, det, site, sub_ids))["mc_hits"])
            t_tab_sub = time.process_time() - t0
            n_photons = float(pho.tracker(det).emitters_from_tracks(sub, sub_ids).mean_photons.sum())
            t0 = time.process_time()
            pe_pho = len(pho.run({"mc_tracks": sub}, ctx_for(pho.name, det, site, sub_ids))["mc_hits"])
            t_pho = time.process_time() - t0
            print(f"{label:<40}{sample:<22}{len(ids):>7}{len(hits) / len(ids):>10.0f}{len(ids) / t_tab:>13.1f}"
                  f"{len(sub_ids) / t_pho:>14.4f}{(t_pho / len(sub_ids)) / (t_tab_sub / len(sub_ids)):>10.0f}"
                  f"{n_photons / t_pho:>11.3g}{pe_tab / len(sub_ids):>10.0f}{pe_pho / len(sub_ids):>10.0f}", flush=True)
        print(f"  ({label}: tables {tab.light_tables.path.name}, photons mode on the first {args.photon_events} events; "
              f"speed-up = CPU time per event, photons / tables, same events; *: pe per event on those events)")


if __name__ == "__main__":
    main()
