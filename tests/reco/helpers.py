"""Synthetic events with known truth for the reconstruction tests (no simulation stages).

A muon (or a shower) gives every PMT Poisson(μ) photo-electrons with μ from an independent
evaluation of the light model of the simulation (km3sim.propagation.light.DirectLight:
direct Cherenkov light with the Jpp absorption, PMT area and acceptance); each photo-electron
arrives at the direct-light time of PHYSICS.md §9.1 plus a Gaussian TTS, the hit of a PMT has
the time of its first photo-electron and the ToT of its charge; ⁴⁰K singles are added
uniformly. Hits of DOMs with at least two signal hits within 25 ns are flagged as triggered
(an L1-based stand-in for the trigger). Hit times include the time slewing of their ToT, as
the PMT response of the simulation writes them.
"""

from __future__ import annotations

import numpy as np

from km3sim import constants as C
from km3sim.detector.pmt import time_over_threshold, time_slewing_ns
from km3sim.propagation.light import DirectLight
from km3sim.schema import make_table
from km3sim.stage import SITE_PRESETS
from km3sim.table import Table


def direction(cos_zenith, azimuth):
    s = np.sqrt(1.0 - cos_zenith**2)
    return np.array([s * np.cos(azimuth), s * np.sin(azimuth), cos_zenith])


def _finish(det, rng, pmt_npe, pmt_time, window, k40_hz, event_id):
    """Hit columns of one event from per-PMT signal npe/first times plus K40 singles."""
    sig = np.flatnonzero(pmt_npe > 0)
    n_k40 = rng.poisson(k40_hz * (window[1] - window[0]) * 1e-9, det.n_pmts)
    bg = np.repeat(np.arange(det.n_pmts), n_k40)
    pmt = np.concatenate([sig, bg])
    t = np.concatenate([pmt_time[sig], rng.uniform(window[0], window[1], len(bg))])
    npe = np.concatenate([pmt_npe[sig], np.ones(len(bg), np.int64)])
    origin = np.concatenate([np.zeros(len(sig), np.int32), np.full(len(bg), -1, np.int32)])
    tot = np.clip(np.round(time_over_threshold(npe.astype(float))), 1, 255).astype(np.uint8)
    t = t + time_slewing_ns(tot.astype(float))  # as the PMT response does (the fits correct it)
    order = np.argsort(t, kind="stable")
    pmt, t, npe, origin, tot = pmt[order], t[order], npe[order], origin[order], tot[order]
    # triggered: signal hits of DOMs with >= 2 signal hits within 25 ns
    dom = det.pmt_dom_index[pmt]
    trig = np.zeros(len(t), dtype=bool)
    s = origin >= 0
    for d in np.unique(dom[s]):
        k = np.flatnonzero(s & (dom == d))
        if len(k) >= 2 and t[k[1]] - t[k[0]] <= 25.0:
            trig[k] = True
    return dict(
        event_id=np.full(len(t), event_id, np.int64), dom_id=det.pmt_dom_id[pmt].astype(np.int32),
        channel_id=det.pmt_channel[pmt].astype(np.int32), pmt_id=det.pmt_id[pmt].astype(np.int32), time=t, tot=tot,
        npe=npe.astype(np.int32), origin=origin, trigger_mask=np.where(trig, np.uint64(16), np.uint64(0)),
    )


def muon_event(det, p, u, t0, rng, energy=1000.0, length=2000.0, tts_ns=2.0, k40_hz=7000.0, event_id=0,
               window=(-1500.0, 3000.0), site="orca"):
    """Hit columns of one muon (p at time t0, direction u) with its light from ``length``/2
    before p to ``length``/2 after it, ``energy`` for the Rädel–Wiebusch ΔL/L."""
    dl = _light(site)
    start = np.asarray(p) - 0.5 * length * np.asarray(u)
    mu, z_emit, d_gamma = dl.expected_npe(start, u, energy, length, det.pmt_pos, det.pmt_dir)
    n = rng.poisson(np.nan_to_num(mu))
    n_g = dl.n_group
    t_direct = t0 - 0.5 * length / C.C_LIGHT + np.nan_to_num(z_emit) / C.C_LIGHT + np.nan_to_num(d_gamma) * n_g / C.C_LIGHT
    first = np.full(det.n_pmts, np.inf)
    for q in np.flatnonzero(n):
        first[q] = t_direct[q] + rng.normal(0.0, tts_ns, n[q]).min()
    return _finish(det, rng, n, first, (t0 + window[0], t0 + window[1]), k40_hz, event_id)


def shower_event(det, v, u, t0, energy, rng, tts_ns=2.0, k40_hz=7000.0, event_id=0, window=(-1500.0, 2000.0),
                 site="orca"):
    """Hit columns of one electron shower at vertex v (time t0), axis u, energy [GeV]; the
    light of each PMT arrives at the point-source time of the vertex plus the TTS."""
    dl = _light(site)
    mu = dl.expected_shower_npe(v, u, energy, 11, det.pmt_pos, det.pmt_dir)
    n = rng.poisson(mu)
    r = np.linalg.norm(det.pmt_pos - np.asarray(v), axis=1)
    first = np.full(det.n_pmts, np.inf)
    for q in np.flatnonzero(n):
        first[q] = t0 + r[q] * dl.n_group / C.C_LIGHT + rng.normal(0.0, tts_ns, n[q]).min()
    return _finish(det, rng, n, first, (t0 + window[0], t0 + window[1]), k40_hz, event_id)


_LIGHT = {}


def _light(site):
    if site not in _LIGHT:
        _LIGHT[site] = DirectLight(DirectLight.Config(secondaries=True), site=SITE_PRESETS[site])
    return _LIGHT[site]


def to_tables(events: list[dict]) -> dict[str, Table]:
    """``triggered_events`` and ``snapshot_hits`` of a list of hit-column dicts."""
    cols = {k: np.concatenate([e[k] for e in events]) for k in events[0]}
    hits = make_table("snapshot_hits", **cols).sort(("event_id", "time"))
    ids = np.unique(hits["event_id"])
    trig = hits["trigger_mask"] != 0
    n_hits = np.array([np.sum(hits["event_id"] == e) for e in ids])
    n_trig = np.array([np.sum(trig & (hits["event_id"] == e)) for e in ids])
    n_doms = np.array([len(np.unique(hits["dom_id"][trig & (hits["event_id"] == e)])) for e in ids])
    start = np.array([hits["time"][hits["event_id"] == e].min() for e in ids])
    end = np.array([hits["time"][hits["event_id"] == e].max() for e in ids])
    ev = make_table("triggered_events", event_id=ids, trigger_mask=np.full(len(ids), 16, np.uint64),
                    trigger_counter=ids, snapshot_start=start, snapshot_end=end, n_hits=n_hits,
                    n_triggered_hits=n_trig, n_triggered_doms=n_doms)
    return {"triggered_events": ev, "snapshot_hits": hits}
