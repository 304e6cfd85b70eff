"""The quantities the validation report compares, computed the same way for simulation and data.

A :class:`Sample` holds, per triggered event, the numbers of snapshot hits, triggered hits and
triggered DOMs, the trigger mask, a weight and a component; per event its best fit (cos zenith,
log10 energy, likelihood); per snapshot hit its ToT; and two background measurements made on
the snapshot hits that took part in no trigger (the same estimator on both sides):

* singles rates per PMT ring: hits per ring / (PMTs of the ring x time covered);
* coincidence rates per DOM by multiplicity: clusters of hits on >= 2 distinct PMTs of a DOM
  within 25 ns (PHYSICS.md §13 "≥4-fold clusters (25 ns)"), counted by their number of PMTs.

The time an event's snapshot covers is estimated from its background hits themselves: for
n hits uniform in a window W the span s of the hits has E[s] = W (n − 1)/(n + 1), so
W ≈ s (n + 1)/(n − 1). This needs no knowledge of how the snapshot was built (real DAQ files
store only the hits).

Besides, data with summaryslices give the PMT singles rates per ring of the whole run
(clean PMT-frames, :meth:`~km3sim.detector.conditions.RunConditions.clean_mask`), and the
simulation the rates of its background hits (``origin`` = −1) in the detector-response output,
over the windows the response simulated (estimated as above).

Weights: simulated events carry the rate they stand for [1/s] (:mod:`km3sim.weights`), data
events weight 1. Components of simulated events: ``pure noise`` if none of the event's
triggered hits comes from a particle (``origin`` < 0 for all), else ``neutrinos`` (primary
pdgid ±12/14/16) or ``muons`` (MUPAGE bundles 81, muons, cosmic-ray nuclei); ``other`` for
anything else.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim.detector.conditions import RING_COS_ZENITH, pmt_rings
from km3sim.errors import Km3simError, StageError
from km3sim.table import Table
from km3sim.validate import _kernels as K

__all__ = ["Sample", "sim_sample", "data_sample", "best_fits", "fit_rank", "COMPONENTS", "COINCIDENCE_WINDOW_NS", "MAX_MULTIPLICITY"]

log = logging.getLogger(__name__)

COMPONENTS = ("muons", "neutrinos", "pure noise", "other")
#: coincidence window of the multiplicity measurement [ns] (PHYSICS.md §13: 25 ns clusters)
COINCIDENCE_WINDOW_NS = 25.0
#: multiplicities counted separately (the last bin holds this and more)
MAX_MULTIPLICITY = 8
N_RINGS = len(RING_COS_ZENITH)


@dataclass
class Sample:
    """Simulation or data, reduced to what the report plots (see the module docstring)."""

    label: str
    is_sim: bool
    livetime_s: float | None = None
    events: dict[str, np.ndarray] = field(default_factory=dict)
    reco: dict[str, np.ndarray] = field(default_factory=dict)
    tot: dict[str, np.ndarray] = field(default_factory=dict)
    snap: dict[str, np.ndarray] = field(default_factory=dict)
    n_pmts_ring: np.ndarray | None = None
    n_doms: int = 0
    summary_rings: dict[str, np.ndarray] | None = None  # mean, err per ring; source text
    summary_source: str = ""
    rec_types: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        return len(self.events.get("weight", ()))


# ------------------------------------------------------------------------------------ helpers
#: Order of the Jpp muon-chain applications from least to most complete (rec_type 4000):
#: JLINEFIT 6 < JMUONPREFIT 1 < JMUONSIMPLEX 2 < JMUONGANDALF 3 < JMUONENERGY 4 < JMUONSTART 5
#: (km3io ``_definitions/reconstruction.py``; the chain runs prefit -> simplex -> gandalf ->
#: energy -> start).
_JPP_STAGE_RANK = {6: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5}


def fit_rank(rec_type, rec_stage) -> np.ndarray:
    """How far along its reconstruction chain a fit row is (higher = later, better).

    Jpp-style rows (``rec_type`` 4000) follow the order of the JMuon chain (the stage numbers
    are identifiers, JLINEFIT = 6 being a prefit); other reconstructions number their stages
    in order."""
    rec_type = np.asarray(rec_type)
    rec_stage = np.asarray(rec_stage)
    jpp = np.vectorize(lambda s: _JPP_STAGE_RANK.get(int(s), int(s)), otypes=[np.int64])(rec_stage) \
        if rec_stage.size else rec_stage.astype(np.int64)
    return np.where(rec_type == 4000, jpp, rec_stage).astype(np.int64)


def best_fits(reco: Table) -> Table:
    """One row per event: the converged fit (status 0, finite direction) furthest along its
    chain (:func:`fit_rank`), the first such row on ties. Where that row has no finite energy,
    the energy of the furthest converged row that has one is taken (a chain's energy step may
    come before its last step or the direction fit may come last)."""
    if reco is None or not len(reco):
        return reco
    ok = (reco["status"] == 0) & np.isfinite(reco["dir_z"])
    r = reco[ok]
    if not len(r):
        return r
    rank = fit_rank(r["rec_type"], r["rec_stage"])
    order = np.lexsort((np.arange(len(r)), -rank, r["event_id"]))
    r = r[order]
    first = np.r_[True, r["event_id"][1:] != r["event_id"][:-1]]
    best = r[first]
    if "energy" in r.columns:
        e = np.asarray(r["energy"], dtype=float)
        fin = np.isfinite(e) & (e > 0)
        if fin.any() and not np.all(np.isfinite(best["energy"])):
            ids = r["event_id"][fin]
            efirst = np.r_[True, ids[1:] != ids[:-1]]
            lookup = dict(zip(ids[efirst].tolist(), e[fin][efirst].tolist()))
            energy = np.array([v if np.isfinite(v) else lookup.get(int(i), np.nan)
                               for i, v in zip(best["event_id"], best["energy"])], dtype=float)
            best = best.with_columns(energy=energy)
    return best


def _rings_of(detector, dom_ids_seen):
    """(ring of (dom index, channel), dom_index function, PMTs per ring, number of DOMs)."""
    if detector is not None:
        dom_ids = np.asarray(detector.dom_ids, dtype=np.int64)
        rings = pmt_rings(dom_ids, detector)
    else:
        dom_ids = np.unique(np.asarray(dom_ids_seen, dtype=np.int64))
        rings = pmt_rings(dom_ids, None)
    sorter = np.argsort(dom_ids)
    n_pmts = np.array([(rings == r).sum() for r in range(N_RINGS)], dtype=np.int64)

    def index(d):
        d = np.asarray(d, dtype=np.int64)
        pos = np.clip(np.searchsorted(dom_ids[sorter], d), 0, max(len(dom_ids) - 1, 0))
        k = sorter[pos]
        return np.where(dom_ids[k] == d, k, -1)

    return rings, index, n_pmts, len(dom_ids)


def _span_estimate(ev: np.ndarray, t: np.ndarray, n_ev: int) -> np.ndarray:
    """Window length [ns] per event from its hits' span: s (n + 1)/(n − 1) (0 for n < 2)."""
    n = np.bincount(ev, minlength=n_ev)
    lo = np.full(n_ev, np.inf)
    hi = np.full(n_ev, -np.inf)
    if len(ev):
        np.minimum.at(lo, ev, t)
        np.maximum.at(hi, ev, t)
    span = np.where(n >= 2, (hi - lo) * (n + 1) / np.maximum(n - 1, 1), 0.0)
    return np.where(np.isfinite(span), span, 0.0)


def _background_measures(ev: np.ndarray, dom: np.ndarray, channel: np.ndarray, t: np.ndarray, n_ev: int, ring_info):
    """Per event: covered time [s], hits per ring, clusters per multiplicity."""
    rings, index, _, _ = ring_info
    span_s = _span_estimate(ev, t, n_ev) * 1e-9
    k = index(dom)
    ok = (k >= 0) & (channel >= 0) & (channel < rings.shape[1])
    ring = np.full(len(ev), -1, np.int64)
    ring[ok] = rings[k[ok], channel[ok]]
    good = ring >= 0
    ring_counts = np.zeros((n_ev, N_RINGS), np.int64)
    np.add.at(ring_counts, (ev[good], ring[good]), 1)
    order = np.lexsort((t, dom, ev))
    mult = K.cluster_multiplicities(ev[order].astype(np.int64), dom[order].astype(np.int64),
                                    channel[order].astype(np.int64), t[order].astype(np.float64), n_ev,
                                    COINCIDENCE_WINDOW_NS, MAX_MULTIPLICITY)
    return span_s, ring_counts, mult


def _snapshot_part(te: Table, sh: Table | None, ring_info) -> dict[str, np.ndarray]:
    """Background measures on the non-triggered snapshot hits of the events ``te``."""
    n_ev = len(te)
    if sh is None or not len(sh) or not n_ev:
        return {"span_s": np.zeros(n_ev), "ring_counts": np.zeros((n_ev, N_RINGS), np.int64),
                "mult": np.zeros((n_ev, MAX_MULTIPLICITY + 1), np.int64)}
    ids = np.asarray(te["event_id"], dtype=np.int64)
    sorter = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[sorter], sh["event_id"]), 0, n_ev - 1)
    ev = sorter[pos]
    keep = (ids[ev] == sh["event_id"]) & (np.asarray(sh["trigger_mask"]) == 0)
    span, rc, mult = _background_measures(ev[keep], np.asarray(sh["dom_id"])[keep], np.asarray(sh["channel_id"])[keep],
                                          np.asarray(sh["time"], dtype=float)[keep], n_ev, ring_info)
    return {"span_s": span, "ring_counts": rc, "mult": mult}


def _tot_part(te: Table, sh: Table | None, weight: np.ndarray, component: np.ndarray) -> dict[str, np.ndarray]:
    if sh is None or not len(sh):
        return {"value": np.zeros(0), "weight": np.zeros(0), "component": np.zeros(0, dtype=object)}
    ids = np.asarray(te["event_id"], dtype=np.int64)
    sorter = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[sorter], sh["event_id"]), 0, max(len(ids) - 1, 0))
    ev = sorter[pos]
    keep = ids[ev] == sh["event_id"]
    return {"value": np.asarray(sh["tot"], dtype=float)[keep], "weight": weight[ev[keep]],
            "component": component[ev[keep]]}


def _reco_part(reco: Table | None, weight_of, component_of) -> dict[str, np.ndarray]:
    fits = best_fits(reco) if reco is not None else None
    if fits is None or not len(fits):
        return {"cos_zenith": np.zeros(0), "log10_energy": np.zeros(0), "likelihood": np.zeros(0),
                "weight": np.zeros(0), "component": np.zeros(0, dtype=object), "rec_type": np.zeros(0, np.int32)}
    e = np.asarray(fits["energy"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        le = np.where(e > 0, np.log10(e), np.nan)
    ids = np.asarray(fits["event_id"], dtype=np.int64)
    return {"cos_zenith": -np.asarray(fits["dir_z"], dtype=float), "log10_energy": le,
            "likelihood": np.asarray(fits["likelihood"], dtype=float), "weight": weight_of(ids),
            "component": component_of(ids), "rec_type": np.asarray(fits["rec_type"], dtype=np.int32)}


def _concat(parts: list[dict]) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ----------------------------------------------------------------------------------- simulation
def _components(events: Table, te: Table, sh: Table | None) -> np.ndarray:
    ids = np.asarray(te["event_id"], dtype=np.int64)
    ev_ids = np.asarray(events["event_id"], dtype=np.int64)
    sorter = np.argsort(ev_ids)
    pos = np.clip(np.searchsorted(ev_ids[sorter], ids), 0, max(len(ev_ids) - 1, 0))
    pdg = np.asarray(events["pdgid"], dtype=np.int64)[sorter][pos]
    a = np.abs(pdg)
    comp = np.where(np.isin(a, (12, 14, 16)), "neutrinos",
                    np.where((a == 13) | (a == 81) | (a > 1_000_000_000), "muons", "other")).astype(object)
    if sh is not None and len(sh):
        trig = np.asarray(sh["trigger_mask"]) != 0
        sig = trig & (np.asarray(sh["origin"]) >= 0)
        with_signal = np.isin(ids, np.unique(sh["event_id"][sig]))
        has_trig = np.isin(ids, np.unique(sh["event_id"][trig]))
        comp[has_trig & ~with_signal] = "pure noise"
    return comp


def _flux_for(ds, flux):
    from km3sim.weights import honda_flux

    if flux is not None:
        return flux
    ev = ds["events"]
    if np.any(np.isfinite(np.asarray(ev["weight_w2"], dtype=float))):
        log.info("%s: generation-weighted events: weighting to the Honda flux", ds.path)
        return honda_flux()
    return None


def _sim_background_rings(ds, ring_info, max_events: int) -> tuple[dict, str] | tuple[None, str]:
    """Singles rates per ring of the simulated background hits (detector-response output)."""
    from km3sim.io.hdf5 import read_stage_file

    det_stage = [s for s in ds.stages if "hits" in s.tables]
    if not det_stage:
        return None, "no detector-response output (table 'hits')"
    counts = np.zeros(N_RINGS, np.int64)
    time_s = 0.0
    n_ev = 0
    for f in det_stage[-1].files:
        hits = read_stage_file(f, ["hits"])[0]["hits"]
        bkg = hits[hits["origin"] < 0]
        ids, ev = np.unique(bkg["event_id"], return_inverse=True)
        span, rc, _ = _background_measures(ev.astype(np.int64), np.asarray(bkg["dom_id"]), np.asarray(bkg["channel_id"]),
                                           np.asarray(bkg["time"], dtype=float), len(ids), ring_info)
        counts += rc.sum(axis=0)
        time_s += float(span.sum())
        n_ev += len(ids)
        if n_ev >= max_events:
            break
    return ({"counts": counts, "exposure": ring_info[2] * time_s},
            f"background hits (origin -1) of {n_ev} simulated events, {time_s:.3g} s of windows")


def _rates(counts, exposure) -> dict:
    counts = np.asarray(counts, dtype=float)
    exposure = np.asarray(exposure, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(exposure > 0, counts / exposure, np.nan)
        err = np.where(exposure > 0, np.sqrt(counts) / exposure, np.nan)
    return {"mean": mean, "err": err, "n": counts}


def sim_sample(paths, *, flux=None, max_background_events: int = 2000, label: str | None = None) -> Sample:
    """The simulation side of the report from one or more productions (YAML or output dirs).

    Parameters
    ----------
    paths : path or list of paths
        Productions (:func:`km3sim.open`); each is weighted with its own generated events.
    flux : callable, optional
        Flux for generation-weighted (neutrino) events; default the Honda flux when needed.
    max_background_events : int
        Events of the detector-response output read for the background singles rates.
    """
    from km3sim.api import open as km3open

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    s = Sample(label=label or ", ".join(Path(p).name for p in paths), is_sim=True, livetime_s=None)
    ev_parts, snap_parts, tot_parts, reco_parts = [], [], [], []
    bg = []
    for p in paths:
        ds = km3open(p)
        s.sources.append(str(p))
        det = ds.detector
        need = ("events", "triggered_events", "snapshot_hits")
        missing = [t for t in need if t not in ds.tables]
        if missing:
            raise Km3simError(f"{p}: a simulation for the report needs tables {list(need)}; missing {missing}")
        fl = _flux_for(ds, flux)
        events = ds["events"]
        te, sh = ds["triggered_events"], ds["snapshot_hits"]
        try:
            w = ds.event_weights(te["event_id"], flux=fl)
        except StageError as exc:
            raise Km3simError(f"{p}: cannot weight the events: {exc}") from exc
        comp = _components(events, te, sh)
        ring_info = _rings_of(det, sh["dom_id"])
        s.n_pmts_ring, s.n_doms = ring_info[2], ring_info[3]
        ev_parts.append({"n_hits": np.asarray(te["n_hits"], float), "n_trig_hits": np.asarray(te["n_triggered_hits"], float),
                         "n_trig_doms": np.asarray(te["n_triggered_doms"], float),
                         "trigger_mask": np.asarray(te["trigger_mask"], np.uint64), "weight": w, "component": comp})
        snap = _snapshot_part(te, sh, ring_info)
        snap["weight"] = w
        snap_parts.append(snap)
        tot_parts.append(_tot_part(te, sh, w, comp))
        if "reco_tracks" in ds.tables:
            te_ids = np.asarray(te["event_id"], dtype=np.int64)
            order = np.argsort(te_ids)

            def comp_of(ids, te_ids=te_ids, order=order, comp=comp):
                pos = np.clip(np.searchsorted(te_ids[order], ids), 0, max(len(te_ids) - 1, 0))
                return np.where(te_ids[order][pos] == ids, comp[order][pos], "other").astype(object)

            reco_parts.append(_reco_part(ds["reco_tracks"], lambda ids, ds=ds, fl=fl: ds.event_weights(ids, flux=fl), comp_of))
        bg.append(_sim_background_rings(ds, ring_info, max_background_events))
        lt = ds.livetime_s
        s.livetime_s = (s.livetime_s or 0.0) + lt if lt else s.livetime_s
    s.events = _concat(ev_parts)
    s.snap = _concat(snap_parts)
    s.tot = _concat(tot_parts)
    s.reco = _concat(reco_parts) if reco_parts else _reco_part(None, None, None)
    s.rec_types = sorted(set(np.unique(s.reco["rec_type"]).tolist()))
    got = [b for b in bg if b[0] is not None]
    if got:
        # several productions: counts and exposures add up
        s.summary_rings = _rates(sum(g[0]["counts"] for g in got), sum(g[0]["exposure"] for g in got))
        s.summary_source = "; ".join(g[1] for g in got)
    else:
        s.notes += [f"no background singles rates: {b[1]}" for b in bg]
    return s


# ----------------------------------------------------------------------------------- data
def data_sample(paths, *, detector=None, livetime_s: float | None = None, label: str = "data") -> Sample:
    """The data side of the report from real-data files and/or km3sim files of data.

    Parameters
    ----------
    paths : list of paths
        DAQ ROOT/``.dat`` files (events, summaryslices), offline/DST ROOT files (fits, hits),
        km3sim HDF5 files or directories (``km3sim trigger``/``reconstruct`` outputs).
    detector : Detector, optional
        Calibrates DAQ hits and gives the PMT rings; strongly recommended for real data.
    livetime_s : float, optional
        Data livetime [s]; default: from the summaryslices of the runs with events (and the
        files' own livetime for km3sim and DST files); None (shapes only) if unknown.
    """
    from km3sim.validate.readers import read_event_file

    s = Sample(label=label, is_sim=False)
    ev_parts, snap_parts, tot_parts, reco_parts = [], [], [], []
    conds = []
    contributing: set = set()  # (det_id, run) of the events and fits counted
    run_live: dict = {}  # (det_id, run) -> livetime [s]
    file_live = 0.0
    live_known = True
    seen_event_runs: set = set()
    files = [read_event_file(p, detector=detector) for p in paths]
    # real-data files that a km3sim file of data was made from (`km3sim trigger` on DAQ files):
    # their events are replaced by the km3sim file's, their runs (and summaryslices) stay
    made_from: dict[str, set] = {}
    by_path = {str(Path(d.path).resolve()): d for d in files}
    for d in files:
        for name in d.inputs:
            src = by_path.get(str(Path(name).resolve()))
            if src is not None and src.kind != "km3sim":
                made_from.setdefault(d.path, set()).update({(src.det_id, r) for r in src.run_ids})
                if src.triggered_events is not None:
                    s.notes.append(f"{Path(src.path).name}: its events are those of {Path(d.path).name} "
                                   f"(made from it); counted once")
                    src.triggered_events = src.snapshot_hits = None
    for p, d in zip(paths, files):
        s.sources.append(str(p))
        det = detector if detector is not None else d.detector
        if d.conditions is not None:
            conds.append((d.conditions, det))
            key = (int(d.conditions.det_id), int(d.conditions.run_id))
            run_live[key] = max(run_live.get(key, 0.0), float(d.conditions.livetime_s))
        keys = {(d.det_id, r) for r in d.run_ids} if d.run_ids else {(d.det_id, str(p))}
        if d.kind == "km3sim":
            keys = made_from.get(d.path) or {("km3sim", k[1]) for k in keys}
        has_events = d.triggered_events is not None and len(d.triggered_events)
        if has_events and keys & seen_event_runs and d.kind != "km3sim":
            s.notes.append(f"{Path(p).name}: events of runs {sorted(r for _, r in keys & seen_event_runs)} already read "
                           f"from another file; its events are not counted again")
            has_events = False
        if has_events or (d.reco_tracks is not None and len(d.reco_tracks)):
            if d.kind == "km3sim" and d.path not in made_from:
                # km3sim files record the livetime of their runs (every chunk file of a run
                # the same value): count each run once
                contributing |= keys
                if d.livetime_s and len(keys) == 1:
                    for k in keys:
                        run_live[k] = max(run_live.get(k, 0.0), float(d.livetime_s))
                elif d.livetime_s:
                    file_live += d.livetime_s
                    contributing -= keys
                else:
                    live_known = False
            else:
                contributing |= keys
                if d.livetime_s and d.conditions is None:  # e.g. a DST headerTree
                    for k in keys:
                        run_live[k] = max(run_live.get(k, 0.0), float(d.livetime_s) / len(keys))
        if det is None and d.snapshot_hits is not None:
            s.notes.append(f"{Path(p).name}: no detector: nominal PMT rings, uncalibrated hit times")
        if has_events:
            seen_event_runs |= keys
            te, sh = d.triggered_events, d.snapshot_hits
            w = np.ones(len(te))
            comp = np.full(len(te), "data", dtype=object)
            ring_info = _rings_of(det, sh["dom_id"] if sh is not None else [])
            s.n_pmts_ring, s.n_doms = ring_info[2], ring_info[3]
            ev_parts.append({"n_hits": np.asarray(te["n_hits"], float), "n_trig_hits": np.asarray(te["n_triggered_hits"], float),
                             "n_trig_doms": np.asarray(te["n_triggered_doms"], float),
                             "trigger_mask": np.asarray(te["trigger_mask"], np.uint64), "weight": w, "component": comp})
            if sh is not None:
                snap = _snapshot_part(te, sh, ring_info)
                snap["weight"] = w
                snap_parts.append(snap)
                tot_parts.append(_tot_part(te, sh, w, comp))
        if d.reco_tracks is not None and len(d.reco_tracks):
            reco_parts.append(_reco_part(d.reco_tracks, lambda ids: np.ones(len(ids)),
                                         lambda ids: np.full(len(ids), "data", dtype=object)))
        s.notes += [f"{Path(p).name}: {n}" for n in d.notes]
    s.events = _concat(ev_parts) if ev_parts else {}
    s.snap = _concat(snap_parts) if snap_parts else {}
    s.tot = _concat(tot_parts) if tot_parts else {}
    s.reco = _concat(reco_parts) if reco_parts else _reco_part(None, None, None)
    s.rec_types = sorted(set(np.unique(s.reco["rec_type"]).tolist()))
    if livetime_s is not None:
        s.livetime_s = float(livetime_s)
    else:
        missing = sorted(str(r[1]) for r in contributing if r not in run_live)
        if missing or not live_known:
            s.livetime_s = None
            why = f"runs without summaryslices: {missing}" if missing else "km3sim files without livetime"
            s.notes.append(f"data livetime unknown ({why}); the simulation is normalised to the data (shapes only)")
        else:
            total = file_live + sum(run_live[r] for r in contributing)
            s.livetime_s = total if total > 0 else None
    if conds:
        s.summary_rings, s.summary_source = _summaryslice_rings(conds)
    return s


def _summaryslice_rings(conds) -> tuple[dict, str]:
    """Mean clean PMT rate per ring over all PMT-frames of the summaryslices, with the error of
    the mean (PMT-frame spread / sqrt(n))."""
    vals = [[] for _ in range(N_RINGS)]
    frames = 0
    for cond, det in conds:
        rings = pmt_rings(cond.dom_ids, det)
        clean = cond.clean_mask()
        frames += cond.n_frames
        for r in range(N_RINGS):
            vals[r].append(cond.rates_hz[clean & (rings == r)[None, :, :]].astype(np.float64))
    mean = np.full(N_RINGS, np.nan)
    err = np.full(N_RINGS, np.nan)
    n = np.zeros(N_RINGS, np.int64)
    for r in range(N_RINGS):
        v = np.concatenate(vals[r]) if vals[r] else np.zeros(0)
        n[r] = len(v)
        if len(v) > 1:
            mean[r] = v.mean()
            err[r] = v.std(ddof=1) / math.sqrt(len(v))
    return {"mean": mean, "err": err, "n": n}, f"summaryslices: {frames} timeslices of {len(conds)} file(s), clean PMTs"
