"""Profile of the track fit (where the time of ``TrackFitter.fit_event`` goes) on ARCA-115 muons.

Simulates ~60 single muons of 1–100 TeV (seed 8) through the ARCA-115 block with K40, fits
them once to warm up and once under cProfile, and prints fits per CPU second and the top
functions by cumulative time.

Usage: ``python benchmarks/profile_track_fit.py``
"""
import cProfile
import pstats
import time

from km3sim.detector.geometry import build_arca_block
from km3sim.stage import SITE_PRESETS
from km3sim.reco.samples import simulate_chain, single_muons
from km3sim.reco.track import TrackFitConfig, TrackFitter, iterate_events
det, site = build_arca_block(115), SITE_PRESETS["arca"]
events, tracks = single_muons(det, 60, (1e3, 1e5), seed=8)
t = simulate_chain(det, site, {"events": events, "mc_tracks": tracks}, seed=8, configs={"pmt_response": {"k40_rate_hz": 6000.0}})
f = TrackFitter(TrackFitConfig(), det, site)
evs = list(iterate_events(t["triggered_events"], t["snapshot_hits"], det, f.cfg.slewing, "track_fit"))
f.fit_event(evs[0][1])
pr = cProfile.Profile(); t0=time.process_time(); pr.enable()
for e, ev in evs: f.fit_event(ev)
pr.disable(); dt=time.process_time()-t0
print(len(evs), "events", len(evs)/dt, "fits/s CPU")
pstats.Stats(pr).sort_stats("cumulative").print_stats(18)
