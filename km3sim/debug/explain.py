"""What each stage did for one event, in words: the printout of ``km3sim event``.

:func:`explain_trigger` re-runs the trigger's building blocks (L1, L2, factory limit, 3DMuon
clustering: :mod:`km3sim.trigger._kernels`) on one event to say why it fired or not;
:func:`reco_vs_truth` compares fitted tracks with the true direction; :func:`format_stage`
turns a :class:`~km3sim.debug.event.StageRun` into text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from km3sim import constants as C
from km3sim.table import Table

__all__ = ["TriggerExplanation", "explain_trigger", "trigger_names", "count_l1", "reco_vs_truth", "true_track", "format_stage", "format_header",
           "format_summary"]


@dataclass
class TriggerExplanation:
    """What the trigger saw and decided for one event (:func:`explain_trigger`)."""

    n_hits: int = 0
    n_l1: int = 0
    n_l1_doms: int = 0
    n_l2_doms: int = 0  # DOMs with an L2 window (without the ctMin cut)
    l1_per_dom: dict[int, int] = field(default_factory=dict)
    fired: bool = False
    trigger_mask: int = 0
    fired_by: list[str] = field(default_factory=list)
    #: per trigger that did not fire: (name, configured numberOfHits, numberOfModules, the
    #: largest numberOfHits at which it fires for this event or 0, with numberOfModules)
    thresholds: list[tuple] = field(default_factory=list)
    reason: str = ""


#: KM3NeT trigger bits (FORMATS.md §5).
TRIGGER_BITS = {C.TRIGGER_BIT_3DSHOWER: "3DShower", C.TRIGGER_BIT_MXSHOWER: "MXShower",
                C.TRIGGER_BIT_3DMUON: "3DMuon", C.TRIGGER_BIT_NB: "NB", C.TRIGGER_BIT_FACTORY_LIMIT: "factory limit"}


def trigger_names(mask: int) -> list[str]:
    """Names of the trigger bits set in ``mask``."""
    return [name for bit, name in TRIGGER_BITS.items() if int(mask) >> bit & 1]


def _get(cfg: dict, *paths, default=None):
    """The first of several config paths present (the trigger config has Jpp-style nested keys
    and, in older versions, flat snake_case keys)."""
    for path in paths:
        node = cfg
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return node
    return default


def _trigger_knobs(cfg: dict) -> list[tuple[str, tuple, tuple]]:
    """(trigger name, path of its numberOfHits, path of its numberOfModules) of the enabled
    cluster triggers of a trigger config."""
    knobs = []
    for key, name in (("trigger3DMuon", "3DMuon"), ("trigger3DShower", "3DShower"), ("triggerMXShower", "MXShower")):
        sub = cfg.get(key)
        if isinstance(sub, dict) and sub.get("enabled", True) and "numberOfHits" in sub:
            knobs.append((name, (key, "numberOfHits"), (key, "numberOfModules")))
    if not knobs and "muon_min_hits" in cfg:
        knobs.append(("3DMuon", ("muon_min_hits",), ("muon_min_doms",)))
    return knobs


def _set(cfg: dict, path: tuple, value) -> dict:
    out = json.loads(json.dumps(cfg))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def count_l1(hits: Table, tmax_local_ns: float, min_pmts: int, combine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """L1 coincidences of one event's hits, counted here for the printout (PHYSICS.md §12):
    windows [t_i, t_i + ``tmax_local_ns``] on one DOM holding hits of >= ``min_pmts`` distinct
    PMTs; with ``combine`` overlapping windows are one L1. Returns (dom_id, first index into the
    DOM-time sorted hits) of each L1 and the sort order."""
    order = np.lexsort((hits["time"], hits["dom_id"]))
    dom = np.asarray(hits["dom_id"])[order]
    t = np.asarray(hits["time"], dtype=float)[order]
    ch = np.asarray(hits["channel_id"])[order]
    l1_dom, l1_first = [], []
    starts = np.flatnonzero(np.r_[True, dom[1:] != dom[:-1]])
    ends = np.r_[starts[1:], len(dom)]
    for a, b in zip(starts, ends):
        i = a
        while i < b:
            j = i
            while j < b and t[j] - t[i] <= tmax_local_ns:
                j += 1
            if len(set(ch[i:j].tolist())) >= min_pmts:
                l1_dom.append(int(dom[i]))
                l1_first.append(int(i))
                if combine:
                    stop = j
                    k = i + 1
                    while k < stop:
                        jj = k
                        while jj < b and t[jj] - t[k] <= tmax_local_ns:
                            jj += 1
                        if jj > stop and len(set(ch[k:jj].tolist())) >= min_pmts:
                            stop = jj
                        k += 1
                    i = stop
                else:
                    i += 1
            else:
                i += 1
    return np.asarray(l1_dom, dtype=np.int64), np.asarray(l1_first, dtype=np.int64)


def explain_trigger(hits: Table, detector, stage, ctx) -> TriggerExplanation:
    """What the trigger stage did with one event's L0 ``hits``, and why.

    The decision is the stage's own (it is run on the event); the L1/L2 numbers are counted
    here from the config (:func:`count_l1`). For every enabled cluster trigger (3DMuon,
    3DShower, MXShower) that did not fire, the stage is run again with its ``numberOfHits``
    lowered step by step (``numberOfModules`` capped at it) to find the largest threshold at
    which this event would fire: how far the event was from triggering.
    """
    cfg = stage.config.model_dump(mode="json")
    ex = TriggerExplanation(n_hits=len(hits))
    if len(hits):
        tmax = float(_get(cfg, ("TMaxLocal_ns",), ("tmax_local_ns",), default=25.0))
        l1min = int(_get(cfg, ("L1Min",), ("l1_min_hits",), default=2))
        combine = bool(_get(cfg, ("combineL1",), ("combine_l1",), default=True))
        l1_dom, _ = count_l1(hits, tmax, l1min, combine)
        ex.n_l1, ex.n_l1_doms = len(l1_dom), len(np.unique(l1_dom))
        u, c = np.unique(l1_dom, return_counts=True)
        ex.l1_per_dom = {int(d): int(n) for d, n in zip(u, c)}
        l2_t = _get(cfg, ("L2", "TMaxLocal_ns"), ("l2_tmax_ns",))
        l2_n = int(_get(cfg, ("L2", "numberOfHits"), ("l2_min_hits",), default=2))
        if l2_t is not None:
            # DOMs with an L2 window (the angle cut ctMin is not applied in this count)
            l2_dom, _ = count_l1(hits, float(l2_t), l2_n, False)
            ex.n_l2_doms = len(np.unique(l2_dom))
    out = stage.run({"hits": hits}, ctx)
    te = out["triggered_events"]
    if len(te):
        ex.fired = True
        ex.trigger_mask = int(np.bitwise_or.reduce(te["trigger_mask"]))
        ex.fired_by = trigger_names(ex.trigger_mask)
        ex.reason = f"triggered by {', '.join(ex.fired_by)} (trigger_mask {ex.trigger_mask})"
        return ex
    cls = type(stage)
    parts = []
    for name, p_hits, p_mods in _trigger_knobs(cfg):
        n0 = int(_get(cfg, p_hits))
        m0 = int(_get(cfg, p_mods, default=1))
        found, m_found = 0, 0
        for n in range(n0 - 1, 1, -1):
            m = min(m0, n)
            trial = _set(_set(cfg, p_hits, n), p_mods, m)
            try:
                alt = cls(cls.Config.model_validate(trial), detector=detector, site=stage.site)
            except Exception:  # noqa: BLE001 - a threshold the config does not allow: stop lowering
                break
            if len(alt.run({"hits": hits}, ctx)["triggered_events"]):
                found, m_found = n, m
                break
        ex.thresholds.append((name, n0, m0, found, m_found))
        parts.append(f"{name} needs {n0} hits on {m0} DOMs, " + (
            f"would fire with numberOfHits {found} (numberOfModules {m_found})" if found else
            "would not fire even with 2 hits"))
    ex.reason = "not triggered: " + ("; ".join(parts) if parts else "no cluster trigger enabled")
    return ex


# --------------------------------------------------------------------------------- truth
def true_track(events: Table, mc_tracks: Table | None):
    """The reference true track of an event: (position, direction, time, energy, label).

    The most energetic muon (|pdgid| 13) at the can if there is one, else the primary
    (events row). Times are relative to the event time, as the hit times.
    """
    if mc_tracks is not None and len(mc_tracks):
        mu = np.flatnonzero(np.abs(mc_tracks["pdgid"]) == 13)
        if len(mu):
            k = mu[np.argmax(mc_tracks["energy"][mu])]
            pos = np.array([mc_tracks["pos_x"][k], mc_tracks["pos_y"][k], mc_tracks["pos_z"][k]])
            d = np.array([mc_tracks["dir_x"][k], mc_tracks["dir_y"][k], mc_tracks["dir_z"][k]])
            return pos, d, float(mc_tracks["time"][k]), float(mc_tracks["energy"][k]), f"muon track {int(mc_tracks['track_id'][k])}"
    if events is not None and len(events):
        pos = np.array([events["pos_x"][0], events["pos_y"][0], events["pos_z"][0]])
        d = np.array([events["dir_x"][0], events["dir_y"][0], events["dir_z"][0]])
        return pos, d, 0.0, float(events["energy"][0]), "primary"
    return None


def _angle_deg(a, b) -> float:
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def reco_vs_truth(reco: Table, truth) -> list[dict]:
    """Per fitted track: angle to the true direction [deg], distance of the true track to the
    fitted position [m], time difference at the point of closest approach [ns], energies."""
    out = []
    for i in range(len(reco)):
        row = {k: reco[k][i] for k in reco.columns}
        d = np.array([row["dir_x"], row["dir_y"], row["dir_z"]])
        p = np.array([row["pos_x"], row["pos_y"], row["pos_z"]])
        entry = {"rec_type": int(row["rec_type"]), "status": int(row["status"]), "likelihood": float(row["likelihood"]),
                 "n_hits": int(row["n_hits"]), "energy": float(row["energy"]),
                 "zenith_deg": math.degrees(math.acos(max(-1.0, min(1.0, -float(row["dir_z"]))))) if np.isfinite(row["dir_z"]) else math.nan,
                 "angle_deg": math.nan, "distance_m": math.nan, "dt_ns": math.nan}
        if truth is not None and np.all(np.isfinite(d)) and np.all(np.isfinite(p)):
            tp, td, tt, te, _ = truth
            td = td / np.linalg.norm(td)
            entry["angle_deg"] = _angle_deg(d, td)
            s = float(np.dot(p - tp, td))
            closest = tp + s * td
            entry["distance_m"] = float(np.linalg.norm(p - closest))
            entry["dt_ns"] = float(row["time"] - (tt + s / C.C_LIGHT))
            entry["true_energy"] = te
        out.append(entry)
    return out


# ------------------------------------------------------------------------------ printing
#: Jpp application of each rec_stage of rec_type 4000 (km3io ``_definitions/reconstruction.py``).
JPP_STAGES = {1: "JMuonPrefit", 2: "JMuonSimplex", 3: "JMuonGandalf", 4: "JMuonEnergy", 5: "JMuonStart",
              6: "JLineFit"}

def _zenith_deg(dz) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, -float(dz)))))


def format_header(sim) -> str:
    prod = sim.production
    return (f"km3sim event: production '{prod.name}' (seed {sim.seed}), run {sim.run_id}, event {sim.event_number} "
            f"(event_id {sim.event_id}, chunk {sim.chunk}); detector {sim.detector_file}")


def _dom_label(detector, dom_id) -> str:
    k = int(detector.dom_index(np.array([dom_id]))[0])
    return f"DU{int(detector.dom_du[k])}-F{int(detector.dom_floor[k]):02d}"


def _fmt_generate(run, sim) -> list[str]:
    lines = []
    ev = run.outputs.get("events")
    if ev is not None and len(ev):
        r = {k: ev[k][0] for k in ev.columns}
        lines.append(f"primary: pdgid {int(r['pdgid'])}, E = {r['energy']:.4g} GeV, zenith {_zenith_deg(r['dir_z']):.1f} deg, "
                     f"{int(r['n_muons'])} muon(s) at the can, vertex ({r['pos_x']:.1f}, {r['pos_y']:.1f}, {r['pos_z']:.1f}) m, "
                     f"t = {r['mc_time'] * 1e-9:.6f} s into the run")
    tr = run.outputs.get("mc_tracks")
    if tr is not None:
        lines.append(f"{len(tr)} generated particle(s):")
        lines += _track_lines(tr)
    return lines


def _track_lines(tr: Table, limit: int = 12) -> list[str]:
    lines = []
    order = np.argsort(-tr["energy"], kind="stable")[:limit]
    for k in sorted(order, key=lambda i: int(tr["track_id"][i])):
        lines.append(f"    track {int(tr['track_id'][k]):3d} (parent {int(tr['parent_id'][k]):3d}) pdgid {int(tr['pdgid'][k]):6d}  "
                     f"E {tr['energy'][k]:10.4g} GeV  pos ({tr['pos_x'][k]:7.1f}, {tr['pos_y'][k]:7.1f}, {tr['pos_z'][k]:7.1f}) m  "
                     f"zenith {_zenith_deg(tr['dir_z'][k]):5.1f} deg  t {tr['time'][k]:8.1f} ns  "
                     f"length {tr['length'][k]:7.1f} m  lost in can {tr['energy_lost_in_can'][k]:.3g} GeV")
    if len(tr) > limit:
        lines.append(f"    ... and {len(tr) - limit} more (lower energy)")
    return lines


def _fmt_propagate(run, sim) -> list[str]:
    tr = run.outputs.get("mc_tracks")
    if tr is None:
        return []
    mu = np.abs(tr["pdgid"]) == 13
    lines = [f"{len(tr)} particle(s) after propagation: {int(mu.sum())} muon(s), {int((~mu).sum())} other (showers, ...); "
             f"muon energy lost in the can {float(tr['energy_lost_in_can'][mu].sum()):.4g} GeV, "
             f"muon track length in the can {float(tr['length'][mu].sum()):.1f} m"]
    lines += _track_lines(tr)
    return lines


def _fmt_light(run, sim) -> list[str]:
    mc = run.outputs.get("mc_hits")
    if mc is None:
        return []
    det = sim.detector
    npe = mc["npe"].astype(np.int64)
    if not len(mc):
        return ["no light reached a PMT"]
    doms, inv = np.unique(mc["dom_id"], return_inverse=True)
    per_dom = np.bincount(inv, weights=npe)
    t_first = np.full(len(doms), np.inf)
    np.minimum.at(t_first, inv, mc["time"])
    lines = [f"{int(npe.sum())} photo-electrons on {len(np.unique(mc['pmt_id']))} PMTs of {len(doms)} DOMs, "
             f"t = {mc['time'].min():.1f} .. {mc['time'].max():.1f} ns; npe per DOM (most first):"]
    for k in np.argsort(-per_dom, kind="stable")[:20]:
        lines.append(f"    DOM {int(doms[k])} ({_dom_label(det, doms[k])}): {int(per_dom[k]):5d} pe, first at {t_first[k]:8.1f} ns")
    if len(doms) > 20:
        lines.append(f"    ... and {len(doms) - 20} more DOMs")
    o, c = np.unique(mc["origin"], return_counts=True)
    lines.append("    pe by emitting track: " + ", ".join(f"track {int(a)}: {int(npe[mc['origin'] == a].sum())}" for a in o[:10]))
    return lines


def _fmt_detect(run, sim) -> list[str]:
    h = run.outputs.get("hits")
    if h is None:
        return []
    if not len(h):
        return ["no hits"]
    sig = h["origin"] >= 0
    span = float(h["time"].max() - h["time"].min())
    lines = [f"{len(h)} L0 hits in {span / 1e3:.2f} us: {int(sig.sum())} signal (on {len(np.unique(h['dom_id'][sig]))} DOMs), "
             f"{int((~sig).sum())} background (K40, dark counts, afterpulses; on {len(np.unique(h['dom_id'][~sig]))} DOMs)",
             f"    ToT: signal median {np.median(h['tot'][sig]) if sig.any() else float('nan'):.0f} ns, "
             f"background median {np.median(h['tot'][~sig]) if (~sig).any() else float('nan'):.0f} ns; "
             f"signal npe {int(h['npe'][sig].sum())}"]
    return lines


def _fmt_trigger(run, sim) -> list[str]:
    lines = []
    hits = run.inputs.get("hits")
    stage, ctx = run.stage, run.context
    if stage is not None and hits is not None:
        ex = explain_trigger(hits, sim.detector, stage, ctx)
        top = sorted(ex.l1_per_dom.items(), key=lambda kv: -kv[1])[:8]
        lines.append(f"L1s: {ex.n_l1} on {ex.n_l1_doms} DOMs"
                     + (f"  [most: {', '.join(f'{_dom_label(sim.detector, d)} {n}' for d, n in top)}]" if top else ""))
        if ex.n_l2_doms:
            lines.append(f"DOMs with an L2 window (input of the 3D triggers; ctMin not applied here): {ex.n_l2_doms}")
        lines.append(ex.reason)
    te = run.outputs.get("triggered_events")
    if te is not None and len(te):
        for i in range(len(te)):
            r = {k: te[k][i] for k in te.columns}
            lines.append(f"triggered event: trigger_mask {int(r['trigger_mask'])} ({', '.join(trigger_names(r['trigger_mask']))}), "
                         f"{int(r['n_hits'])} snapshot hits, {int(r['n_triggered_hits'])} triggered hits on "
                         f"{int(r['n_triggered_doms'])} DOMs, snapshot {r['snapshot_start']:.0f} .. {r['snapshot_end']:.0f} ns")
        sh = run.outputs.get("snapshot_hits")
        if sh is not None and len(sh):
            trig = sh["trigger_mask"] != 0
            lines.append(f"    triggered hits: {int((sh['origin'][trig] >= 0).sum())} signal, "
                         f"{int((sh['origin'][trig] < 0).sum())} background")
    elif te is not None:
        lines.append("no triggered event")
    return lines


def _fmt_reco(run, sim) -> list[str]:
    reco = run.outputs.get("reco_tracks")
    if reco is None:
        return []
    if not len(reco):
        return ["no fit (event not triggered)"]
    truth = true_track(sim.tables.get("events"), sim.tables.get("mc_tracks"))
    lines = []
    if truth is not None:
        lines.append(f"truth ({truth[4]}): zenith {_zenith_deg(truth[1][2]):.2f} deg, E {truth[3]:.4g} GeV")
    for r, stage in zip(reco_vs_truth(reco, truth), reco["rec_stage"]):
        status = "ok" if r["status"] == 0 else f"FAILED (status {r['status']})"
        name = JPP_STAGES.get(int(stage), str(int(stage))) if r["rec_type"] == 4000 else str(int(stage))
        lines.append(f"rec_type {r['rec_type']} stage {name}: {status}, zenith {r['zenith_deg']:.2f} deg, {r['n_hits']} hits, "
                     f"likelihood {r['likelihood']:.4g}, E {r['energy']:.4g} GeV; vs truth: angle {r['angle_deg']:.2f} deg, "
                     f"distance {r['distance_m']:.1f} m, dt {r['dt_ns']:.1f} ns")
    return lines


_FORMATTERS = {"generate": _fmt_generate, "propagate": _fmt_propagate, "light": _fmt_light, "detect": _fmt_detect,
               "trigger": _fmt_trigger, "reconstruct": _fmt_reco}


def format_stage(run, sim) -> str:
    """Text block of what stage ``run`` (a :class:`~km3sim.debug.event.StageRun`) did."""
    rows = ", ".join(f"{k} {len(v)}" for k, v in run.outputs.items())
    head = (f"[{run.index + 1}] {run.name} ({run.role}{', config overridden' if run.overridden else ''}) "
            f"{run.wall_s * 1e3:.0f} ms; rows: {rows}; vs production: {run.comparison}")
    body = _FORMATTERS.get(run.role, lambda r, s: [])(run, sim)
    return "\n".join([head] + [f"    {line}" for line in body])


def format_summary(sim) -> str:
    """Closing line: identical to the production or not."""
    first_changed = next((s.index for s in sim.stages if s.overridden), None)
    same = [s for s in sim.compared if first_changed is None or s.index < first_changed]
    changed = [s.name for s in sim.stages if first_changed is not None and s.index >= first_changed]
    tail = f"; stages {changed} ran with an overridden config" if changed else ""
    if not same:
        return "not compared with the production (no production files for this chunk)" + tail
    bad = [s.name for s in same if not s.identical]
    if bad:
        return f"DIFFERS from the production in stage(s) {bad}" + tail
    return f"bit-identical to the production's rows of this event in {len(same)} stage file(s) compared" + tail
