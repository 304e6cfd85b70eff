"""Speed and accuracy of the track fit with other settings, on the same ARCA-115 or ORCA-115 muons.

Simulates 100 single muons of 0.3–100 TeV (seed 21) through the ARCA-115 block with 6 kHz K40
(``--geometry orca``: muons of 10 GeV–1 TeV starting 150 m before the ORCA-115 block, 7 kHz,
trigger preset orca6) and fits the triggered ones with the default ``TrackFitConfig`` and with each JSON dict of
settings given on the command line; prints fits per CPU second, the median and 80 % quantile
of the angle to the muon, the number of fits off by more than 5°, the median of angle/β0 (0.83
for 2D Gaussian errors of total rms β0) and the number of fits with β0 < 1°.

Usage: ``python benchmarks/compare_track_fit_settings.py [--geometry arca|orca] [--muons N] [--seed S] '{"road_width_m": 100}' '{"n_prefits": 3}'``
(``--muons``: simulated muons, default 100; ``--seed``: default 21).
"""

import argparse
import json
import time

import numpy as np

from km3sim.detector.geometry import build_arca_block, build_orca_block
from km3sim.stage import SITE_PRESETS
from km3sim.reco.samples import simulate_chain, single_muons
from km3sim.reco.track import TrackFitConfig, TrackFitter, iterate_events
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--muons", type=int, default=100)
ap.add_argument("--seed", type=int, default=21)
ap.add_argument("--geometry", choices=("arca", "orca"), default="arca")
ap.add_argument("settings", nargs="*", help="JSON dicts of TrackFitConfig settings")
opts = ap.parse_args()
if opts.geometry == "arca":
    det, site, e_range, start = build_arca_block(115), SITE_PRESETS["arca"], (3e2, 1e5), 2000.0
    configs = {"pmt_response": {"k40_rate_hz": 6000.0}}
else:
    det, site, e_range, start = build_orca_block(115), SITE_PRESETS["orca"], (10.0, 1e3), 150.0
    configs = {"pmt_response": {"k40_rate_hz": 7000.0}, "trigger": {"preset": "orca6"}}
events, tracks = single_muons(det, opts.muons, e_range, seed=opts.seed, start_distance_m=start)
t = simulate_chain(det, site, {"events": events, "mc_tracks": tracks}, seed=opts.seed, configs=configs)
mu = t["mc_tracks"]; mu = mu[mu["track_id"] == 0]
for kw in [dict(), *[json.loads(a) for a in opts.settings]]:
    f = TrackFitter(TrackFitConfig(**kw), det, site)
    evs = list(iterate_events(t["triggered_events"], t["snapshot_hits"], det, f.cfg.slewing, "track_fit"))
    f.fit_event(evs[0][1])
    angs, beta0 = [], []
    t0 = time.process_time()
    for e, ev in evs:
        r = f.fit_event(ev)[2]
        k = int(np.searchsorted(mu["event_id"], e)); u = np.array([mu["dir_x"][k], mu["dir_y"][k], mu["dir_z"][k]])
        angs.append(np.degrees(np.arccos(np.clip(np.dot(r["dir"], u), -1, 1))) if r["status"] == 0 else 180.0)
        beta0.append(np.degrees(r["beta0"]) if r["status"] == 0 else np.nan)
    dt = time.process_time() - t0
    a, b0 = np.array(angs), np.array(beta0)
    # β0 calibration: for 2D Gaussian errors of total rms β0 the median angle/β0 is 0.83
    pull = float(np.nanmedian(a / b0))
    print(kw, len(evs), f"{len(evs)/dt:.1f} fits/s", "median", round(float(np.median(a)), 3), "p80",
          round(float(np.percentile(a, 80)), 3), ">5deg", int((a > 5).sum()), "median angle/beta0", round(pull, 2),
          "beta0<1deg", int(np.sum(b0 < 1)))
