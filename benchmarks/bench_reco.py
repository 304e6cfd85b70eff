"""Reconstruction performance: resolutions, efficiencies and speed for ARCA-115 and ORCA-115.

Simulates, in this process (one core), neutrino interactions with the ``neutrinos`` generator
and the stages ``muon_propagation`` → ``direct_light`` → ``pmt_response`` → ``trigger``
(:func:`km3sim.reco.samples.simulate_chain`), then reconstructs them:

* νμ + ν̄μ CC with ``track_fit``: median space angle between the Gandalf track and the
  neutrino (and the muon), in bins of the true neutrino energy, for all converged fits and for
  fits with β0 < 1° (a simple quality cut); log10(E_reco/E_µ) of JMuonEnergy (E_µ at the
  can); efficiencies: triggered/generated and converged/triggered;
* νe + ν̄e CC with ``shower_fit``: the same for the complete fit (energy against E_ν; vertex
  error against the interaction vertex), vertices generated inside the can without margin.

Published ARCA numbers (PHYSICS.md §9.3, KM3NeT ARCA230 IRFs after event selection): tracks
median 0.81° at ~800 GeV, 0.25° at ~9 TeV, 0.12° at ~100 TeV, 0.078° at ~1 PeV; showers
3.1° at ~9 TeV, 1.9° at 100 TeV–1 PeV; shower energy spread well below 0.13 dex.

Speed: reconstructed events per CPU second (``time.process_time``) of each stage, after a
warm-up (numba compilation excluded). Asserts nothing.

Usage: ``python benchmarks/bench_reco.py [--quick] [--seed N] [--geometry arca|orca|both] [--pdf pandel|tables]``

``--pdf`` selects the light model of the track likelihood (``tables``: the simulation's light
tables of the site, :mod:`km3sim.reco.table_pdf`; build them first with ``km3sim tables build``).
``--compare-pdf N`` instead simulates N single muons (1–100 TeV, isotropic, through a disk of 0.7 ×
the footprint radius) in the ARCA-115 block (``--light`` picks the ``direct_light`` mode of the
simulation) and fits the same events with ``pdf: pandel`` and ``pdf: tables``: fits per CPU second
and median space angle to the muon at the can.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from km3sim.detector.geometry import build_arca_block, build_orca_block
from km3sim.generators.can import can_from_detector
from km3sim.generators.neutrinos import NeutrinoGenerator
from km3sim.propagation.muons import ContinuousLossTable, muon_range
from km3sim.reco.samples import simulate_chain, stage_context
from km3sim.reco.shower import JSHOWERCOMPLETEFIT, ShowerFit
from km3sim.reco.track import JMUONENERGY, JMUONGANDALF, TrackFit
from km3sim.stage import SITE_PRESETS

GEOMETRIES = {
    # name: builder, site, K40 rate [Hz], trigger config, can margin [m] (generation and the
    # aimed-muon filter), track bins, νμ per first bin (quick, full), shower bins [GeV]
    "arca": (build_arca_block, "arca", 6000.0, {}, 200.0, [300, 3e3, 3e4, 3e5, 3e6], (8000, 60000),
             [1e3, 1e4, 1e5, 1e6]),
    "orca": (build_orca_block, "orca", 7000.0, {"preset": "orca6"}, 30.0, [3, 10, 30, 100, 300], (300, 2000),
             [3, 10, 30, 100, 300]),
}
_WATER = ContinuousLossTable.sea_water()
PUBLISHED_TRACK = "ARCA230 IRF: 0.81° (~0.8 TeV), 0.25° (~9 TeV), 0.12° (~100 TeV), 0.078° (~1 PeV)"
PUBLISHED_SHOWER = "ARCA230 IRF: 3.1° (~9 TeV), 1.9° (~100 TeV - 1 PeV)"


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=1), -1.0, 1.0)))


def _dirs(t, prefix=""):
    return np.column_stack([t[prefix + "dir_x"], t[prefix + "dir_y"], t[prefix + "dir_z"]])


def simulate(name, flavours, n_per_bin, bins, seed, can_margin_m, aimed=False):
    """Generate interactions in each energy bin (E^-1 within the bin; ``n_per_bin``, for νμ
    scaled with the muon range at the bin's upper edge), keep the aimed ones (νμ) and simulate
    them. Returns (detector, site, tables, CPU s, n generated)."""
    from km3sim.table import Table

    build, site_name, k40, trig, margin, *_ = GEOMETRIES[name]
    det = build(115)
    site = SITE_PRESETS[site_name]
    parts = []
    first = 0
    n_total = 0
    for b, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])):
        # νμ: the generation volume grows with the muon range, so higher bins need more events
        n = int(n_per_bin * (muon_range(hi, _WATER) / muon_range(bins[1], _WATER) if aimed else 1.0))
        gen = NeutrinoGenerator(NeutrinoGenerator.Config(
            flavours=flavours, interactions=("cc",), energy_min_gev=lo, energy_max_gev=hi,
            spectral_index=1.0, n_events=n, can_margin_m=can_margin_m), det, site)
        ids = np.arange(first, first + n, dtype=np.int64)
        first += n
        n_total += n
        tables = gen.run({}, stage_context(det, site, ids, "neutrinos", seed))
        if aimed:
            # νμ: only events whose muon can reach the detector are simulated (the generation
            # volume extends by the muon range, most muons miss): the muon line must cross the
            # can (the geometry's margin) and enter it within the muon range
            tr = tables["mc_tracks"]
            mu = tr[np.abs(tr["pdgid"]) == 13]
            can = can_from_detector(det, margin)
            t_in, t_out = can.intersect(np.column_stack([mu["pos_x"], mu["pos_y"], mu["pos_z"]]), _dirs(mu))
            reach = np.isfinite(t_in) & (t_out > 0) & (t_in < muon_range(mu["energy"], _WATER))
            keep = np.unique(mu["event_id"][reach])
            tables = {k: v.select_events(keep) for k, v in tables.items()}
        parts.append(tables)
    tables = {k: Table.concat([p[k] for p in parts], name=k) for k in parts[0]}
    t0 = time.process_time()
    out = simulate_chain(det, site, tables, seed=seed, configs={"pmt_response": {"k40_rate_hz": k40}, "trigger": trig})
    return det, site, out, time.process_time() - t0, n_total


def reconstruct(stage, det, site, tables):
    ids = np.asarray(tables["triggered_events"]["event_id"])
    warm = ids[:2]
    stage.run({k: tables[k].select_events(warm) for k in ("triggered_events", "snapshot_hits")},
              stage_context(det, site, warm, stage.name))
    t0 = time.process_time()
    reco = stage.run({k: tables[k] for k in ("triggered_events", "snapshot_hits")},
                     stage_context(det, site, ids, stage.name))["reco_tracks"]
    return reco, time.process_time() - t0


def _fmt(x, f="{:.2f}"):
    return "   -" if x is None or not np.isfinite(x) else f.format(x)


def track_table(name, n_events, seed, pdf="pandel", tables="auto"):
    bins = GEOMETRIES[name][5]
    det, site, t, sim_cpu, n_gen = simulate(name, (14, -14), n_events, bins, seed, GEOMETRIES[name][4], aimed=True)
    n_aimed = len(t["events"])
    cfg = TrackFit.Config(pdf=pdf, tables=tables)
    reco, cpu = reconstruct(TrackFit(cfg, detector=det, site=site), det, site, t)
    ev = t["events"]
    n_trig = len(t["triggered_events"])
    g = reco[reco["rec_stage"] == JMUONGANDALF]
    en = reco[reco["rec_stage"] == JMUONENERGY]
    k = np.searchsorted(ev["event_id"], g["event_id"])
    e_nu = ev["energy"][k]
    ok = g["status"] == 0
    ang_nu = _angle_deg(_dirs(g), _dirs(ev)[k])
    # the muon: the highest-energy |pdg| 13 row of each event after propagation
    tr = t["mc_tracks"]
    mu = tr[np.abs(tr["pdgid"]) == 13]
    mu_dir = np.full((len(g), 3), np.nan)
    mu_e = np.full(len(g), np.nan)
    for i, e in enumerate(g["event_id"]):
        m = mu[mu["event_id"] == e]
        if len(m):
            j = int(np.argmax(m["energy"]))
            mu_dir[i] = [m["dir_x"][j], m["dir_y"][j], m["dir_z"][j]]
            mu_e[i] = m["energy"][j] if m["length"][j] > 0 else np.nan
    ang_mu = _angle_deg(_dirs(g), mu_dir)
    lr = np.log10(en["energy"] / mu_e)
    gen_e = ev["energy"]  # the simulated events: muon reaching the can
    trig_e = ev["energy"][np.searchsorted(ev["event_id"], t["triggered_events"]["event_id"])]
    print(f"\n{name.upper()}-115, νμ CC (track_fit): {n_gen} generated ({n_events} in the first bin, more in higher ones "
          f"in proportion to the muon range), {n_aimed} with the muon reaching the can "
          f"(simulated; 'gen' below), {n_trig} triggered, {ok.sum()} converged; "
          f"simulation {sim_cpu:.0f} s CPU; reconstruction {len(g) / cpu:.1f} events/s per core "
          f"({cpu / max(len(g), 1) * 1e3:.0f} ms/event)")
    print(f"{'E_nu [GeV]':>20} {'gen':>5} {'trig':>5} {'reco':>5} {'eff':>5} {'med° ν':>7} {'med° µ':>7} "
          f"{'β0<1°: n':>8} {'med° ν':>7} {'log10 Ereco/Eµ: med':>20} {'68% width':>9}")
    for lo, hi in zip(bins[:-1], bins[1:]):
        s = ok & (e_nu >= lo) & (e_nu < hi)
        n_gen = int(((gen_e >= lo) & (gen_e < hi)).sum())
        n_tr = int(((trig_e >= lo) & (trig_e < hi)).sum())
        cut = s & (g["beta0_rad"] < math.radians(1.0))
        ls = lr[s & np.isfinite(lr)]
        width = 0.5 * (np.percentile(ls, 84) - np.percentile(ls, 16)) if len(ls) > 2 else np.nan
        print(f"{f'{lo:g}-{hi:g}':>20} {n_gen:5d} {n_tr:5d} {int(s.sum()):5d} "
              f"{_fmt(s.sum() / n_tr if n_tr else np.nan):>5} {_fmt(np.median(ang_nu[s]) if s.any() else np.nan):>7} "
              f"{_fmt(np.nanmedian(ang_mu[s]) if s.any() else np.nan):>7} {int(cut.sum()):8d} "
              f"{_fmt(np.median(ang_nu[cut]) if cut.any() else np.nan):>7} "
              f"{_fmt(np.median(ls) if len(ls) else np.nan):>20} {_fmt(width):>9}")
    if name == "arca":
        print(f"  published: {PUBLISHED_TRACK}")
    return len(g) / cpu


def shower_table(name, n_events, seed):
    bins = GEOMETRIES[name][7]
    det, site, t, sim_cpu, n_gen = simulate(name, (12, -12), n_events, bins, seed, can_margin_m=0.0)
    reco, cpu = reconstruct(ShowerFit(detector=det, site=site), det, site, t)
    ev = t["events"]
    c = reco[reco["rec_stage"] == JSHOWERCOMPLETEFIT]
    k = np.searchsorted(ev["event_id"], c["event_id"])
    ok = c["status"] == 0
    ang = _angle_deg(_dirs(c), _dirs(ev)[k])
    e_nu = ev["energy"][k]
    lr = np.log10(c["energy"] / e_nu)
    dv = np.linalg.norm(np.column_stack([c["pos_x"] - ev["pos_x"][k], c["pos_y"] - ev["pos_y"][k],
                                         c["pos_z"] - ev["pos_z"][k]]), axis=1)
    gen_e = ev["energy"]
    trig_e = ev["energy"][np.searchsorted(ev["event_id"], t["triggered_events"]["event_id"])]
    print(f"\n{name.upper()}-115, νe CC (shower_fit), vertices in the can: {n_gen} generated ({n_events} per bin), "
          f"{len(t['triggered_events'])} triggered, {ok.sum()} converged; simulation {sim_cpu:.0f} s CPU; "
          f"reconstruction {len(c) / cpu:.2f} events/s per core ({cpu / max(len(c), 1):.2f} s/event)")
    print(f"{'E_nu [GeV]':>20} {'gen':>5} {'trig':>5} {'reco':>5} {'eff':>5} {'med° ν':>7} {'vertex m':>8} "
          f"{'log10 Ereco/Eν: med':>20} {'68% width':>9}")
    for lo, hi in zip(bins[:-1], bins[1:]):
        s = ok & (e_nu >= lo) & (e_nu < hi)
        n_gen = int(((gen_e >= lo) & (gen_e < hi)).sum())
        n_tr = int(((trig_e >= lo) & (trig_e < hi)).sum())
        ls = lr[s]
        width = 0.5 * (np.percentile(ls, 84) - np.percentile(ls, 16)) if len(ls) > 2 else np.nan
        print(f"{f'{lo:g}-{hi:g}':>20} {n_gen:5d} {n_tr:5d} {int(s.sum()):5d} "
              f"{_fmt(s.sum() / n_tr if n_tr else np.nan):>5} {_fmt(np.median(ang[s]) if s.any() else np.nan):>7} "
              f"{_fmt(np.median(dv[s]) if s.any() else np.nan):>8} {_fmt(np.median(ls) if len(ls) else np.nan):>20} "
              f"{_fmt(width):>9}")
    if name == "arca":
        print(f"  published: {PUBLISHED_SHOWER}")
    return len(c) / cpu


def compare_pdfs(n_muons, seed, light="direct", tables="auto", energy=(1e3, 1e5)):
    """Fit the same ARCA-115 single muons with pdf: pandel and pdf: tables (see the module notes)."""
    from km3sim.reco.samples import single_muons

    build, site_name, k40, trig, *_ = GEOMETRIES["arca"]
    det = build(115)
    site = SITE_PRESETS[site_name]
    events, tracks = single_muons(det, n_muons, energy_gev=energy, seed=seed)
    t0 = time.process_time()
    dl = {"mode": "tables", "tables": tables} if light == "tables" else {"mode": light}
    t = simulate_chain(det, site, {"events": events, "mc_tracks": tracks}, seed=seed,
                       configs={"pmt_response": {"k40_rate_hz": k40}, "trigger": trig, "direct_light": dl})
    sim_cpu = time.process_time() - t0
    tr = t["mc_tracks"]
    mu = tr[(np.abs(tr["pdgid"]) == 13) & (tr["parent_id"] < 0)]
    print(f"\nARCA-115, {n_muons} single muons {energy[0]:g}-{energy[1]:g} GeV (log-uniform, isotropic), direct_light "
          f"mode {light}: {len(t['triggered_events'])} triggered; simulation {sim_cpu:.0f} s CPU; seed {seed}")
    print(f"{'pdf':>8} {'fits':>5} {'conv.':>5} {'fits/s':>7} {'ms/fit':>7} {'med°':>6} {'68%°':>6} {'β0<1°: n':>8} {'med°':>6}")
    out = {}
    for pdf in ("pandel", "tables"):
        stage = TrackFit(TrackFit.Config(pdf=pdf, tables=tables), detector=det, site=site)
        reco, cpu = reconstruct(stage, det, site, t)
        g = reco[reco["rec_stage"] == JMUONGANDALF]
        ok = g["status"] == 0
        mdir = np.full((len(g), 3), np.nan)
        for i, e in enumerate(g["event_id"]):
            m = mu[mu["event_id"] == e]
            if len(m):
                mdir[i] = [m["dir_x"][0], m["dir_y"][0], m["dir_z"][0]]
        ang = _angle_deg(_dirs(g), mdir)[ok]
        cut = g["beta0_rad"][ok] < math.radians(1.0)
        out[pdf] = ang
        print(f"{pdf:>8} {len(g):5d} {int(ok.sum()):5d} {len(g) / cpu:7.2f} {cpu / max(len(g), 1) * 1e3:7.0f} "
              f"{_fmt(np.median(ang) if len(ang) else np.nan):>6} "
              f"{_fmt(np.percentile(ang, 68) if len(ang) else np.nan):>6} {int(cut.sum()):8d} "
              f"{_fmt(np.median(ang[cut]) if cut.any() else np.nan):>6}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small samples (a few minutes)")
    ap.add_argument("--seed", type=int, default=20261)
    ap.add_argument("--geometry", choices=("arca", "orca", "both"), default="both")
    ap.add_argument("--pdf", choices=("pandel", "tables"), default="pandel", help="light model of the track likelihood")
    ap.add_argument("--tables", default="auto", help="light-table file for --pdf tables / --light tables (default: auto)")
    ap.add_argument("--compare-pdf", type=int, default=0, metavar="N",
                    help="only: fit N ARCA-115 single muons (1-100 TeV) with pdf pandel and tables")
    ap.add_argument("--light", choices=("direct", "tables", "photons"), default="direct",
                    help="--compare-pdf: direct_light mode of the simulated sample")
    ap.add_argument("--energy", type=float, nargs=2, default=(1e3, 1e5), metavar=("LO", "HI"),
                    help="--compare-pdf: muon energy range [GeV] (default 1e3 1e5)")
    args = ap.parse_args()
    if args.compare_pdf:
        compare_pdfs(args.compare_pdf, args.seed, args.light, args.tables, tuple(args.energy))
        return
    n_shower = 12 if args.quick else 50
    names = ["arca", "orca"] if args.geometry == "both" else [args.geometry]
    print(f"km3sim reconstruction benchmark ({'quick' if args.quick else 'full'}): νμ CC (see each table) and {n_shower} νe CC "
          f"generated per energy bin, E^-1 within a bin, isotropic; seed {args.seed}; one core")
    speeds = {}
    for name in names:
        n_track = GEOMETRIES[name][6][0 if args.quick else 1]
        speeds[f"{name} track"] = track_table(name, n_track, args.seed, args.pdf, args.tables)
        speeds[f"{name} shower"] = shower_table(name, n_shower, args.seed + 1)
    print("\nreconstructed events per second per core: " + ", ".join(f"{k} {v:.1f}" for k, v in speeds.items()))


if __name__ == "__main__":
    main()
