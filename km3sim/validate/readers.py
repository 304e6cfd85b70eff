"""Inputs of the validation report and the event display, as km3sim tables.

:func:`read_event_file` reads one file of any kind the report and the display accept and
returns a :class:`DataFile` holding what the file has, in the tables of :mod:`km3sim.schema`:

============================  =================================================================
file                          gives
============================  =================================================================
DAQ ROOT (``KM3NET_EVENT``,   ``triggered_events``, ``snapshot_hits`` (:func:`km3sim.io.daq.
``KM3NET_SUMMARYSLICE``) or   read_daq_events`, calibrated with the detector) and the run's
Jpp ``.dat`` stream, text     summaryslices as :class:`~km3sim.detector.conditions.RunConditions`
summaryslice dump             (livetime = number of timeslices x 0.1 s)
offline (aanet) ROOT, tree    ``triggered_events`` and ``snapshot_hits`` from ``Evt.hits``
``E`` with ``hits``/``trks``  (``trig`` = trigger mask; raw times + PMT t0 when the file has no
                              calibrated positions), ``reco_tracks``: the best Jpp muon fit
                              per event (:func:`best_offline_tracks`)
DST ROOT (trees ``E`` + ``T``)  ``reco_tracks`` as above; ``triggered_events`` hit counts from
                              ``T.sum_hits`` / ``T.sum_trig_hits`` (no hits)
km3sim HDF5 stage file(s),    every km3sim table in them (``triggered_events``,
production directory          ``snapshot_hits``, ``reco_tracks``, ``events``, ``mc_tracks``, ...);
                              livetime from the files' ``livetime_s`` attribute (per run)
============================  =================================================================

``event_id`` of ROOT/DAQ files is the 0-based entry number in the file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim._optional import require
from km3sim.errors import StageFileError
from km3sim.schema import make_table
from km3sim.table import Table

__all__ = ["DataFile", "read_event_file", "best_offline_tracks", "JPP_RECONSTRUCTION_TYPE", "FITINF"]

log = logging.getLogger(__name__)

#: rec_type of Jpp reconstructions (km3net-dataformat ``reconstruction.hh``).
JPP_RECONSTRUCTION_TYPE = 4000
#: Indices of ``trk.fitinf`` (km3net-dataformat ``fitparameters.csv``).
FITINF = {"JGANDALF_BETA0_RAD": 0, "JGANDALF_BETA1_RAD": 1, "JGANDALF_CHI2": 2, "JGANDALF_NUMBER_OF_HITS": 3,
          "JENERGY_ENERGY": 4}


@dataclass
class DataFile:
    """What one input file holds (None where it has nothing of that kind)."""

    path: str
    kind: str  # daq | offline | dst | km3sim | summaryslices
    triggered_events: Table | None = None
    snapshot_hits: Table | None = None
    reco_tracks: Table | None = None
    events: Table | None = None
    mc_tracks: Table | None = None
    hits: Table | None = None
    conditions: object | None = None  # RunConditions
    livetime_s: float | None = None
    detector: object | None = None
    det_id: int | None = None
    run_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # km3sim files of data: the files they were made from


def read_event_file(path, detector=None, events=None) -> DataFile:
    """Read one input file (kind detected from its content).

    Parameters
    ----------
    path : path-like
        File or (km3sim) directory.
    detector : Detector, optional
        Calibration and positions for real-data hits (pmt_id, time + t0).
    events : list of int, optional
        Keep only these events (entry numbers / event_ids): for the display.

    Raises
    ------
    StageFileError
        Missing or unreadable file, or a file of none of the kinds above.
    """
    path = Path(path)
    if not path.exists():
        raise StageFileError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix.lower() in (".h5", ".hdf5", ".yaml", ".yml"):
        out = _read_km3sim(path)
    else:
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"root":
            out = _read_root(path, detector)
        else:
            out = _read_daq_stream(path, detector)
    if events is not None:
        ids = np.asarray(events, dtype=np.int64)
        for name in ("triggered_events", "snapshot_hits", "reco_tracks", "events", "mc_tracks", "hits"):
            t = getattr(out, name)
            if t is not None:
                setattr(out, name, t.select_events(ids))
    return out


# ------------------------------------------------------------------------------ km3sim HDF5
def _read_km3sim(path: Path) -> DataFile:
    from km3sim.api import open as km3open

    ds = km3open(path)
    out = DataFile(path=str(path), kind="km3sim", detector=ds.detector)
    for name in ("triggered_events", "snapshot_hits", "reco_tracks", "events", "mc_tracks"):
        if name in ds.tables:
            setattr(out, name, ds[name])
    out.livetime_s = ds.livetime_s
    out.run_ids = ds.run_ids
    # outputs of `km3sim trigger` / `reconstruct` on real data name their input files
    for s in ds.stages:
        for f in s.files:
            for item in ds._attrs(f).get("inputs") or []:
                name = item.get("file") if isinstance(item, dict) else item
                if isinstance(name, str) and name not in out.inputs:
                    out.inputs.append(name)
    if out.triggered_events is None and out.reco_tracks is None:
        raise StageFileError(f"{path}: no triggered_events or reco_tracks table (tables: {sorted(ds.tables)})")
    return out


# ------------------------------------------------------------------------------ DAQ
def _read_daq_stream(path: Path, detector) -> DataFile:
    from km3sim.io.daq import read_daq_events, read_summaryslices

    out = DataFile(path=str(path), kind="daq")
    errors = []
    try:
        ev = read_daq_events(path, detector)
        _fill_daq(out, ev)
    except StageFileError as exc:
        errors.append(str(exc))
    try:
        out.conditions = read_summaryslices(path)
        out.livetime_s = out.conditions.livetime_s
        out.det_id = int(out.conditions.det_id)
        out.run_ids = sorted(set(out.run_ids) | {int(out.conditions.run_id)})
    except StageFileError as exc:
        errors.append(str(exc))
    if out.triggered_events is None and out.conditions is None:
        raise StageFileError(f"{path}: neither triggered events nor summaryslices: " + "; ".join(errors))
    if out.conditions is None:
        out.kind = "daq"
    elif out.triggered_events is None:
        out.kind = "summaryslices"
    return out


def _fill_daq(out: DataFile, ev) -> None:
    out.triggered_events = ev.events
    out.snapshot_hits = ev.snapshot_hits
    if len(ev.headers):
        out.det_id = int(ev.headers["det_id"][0])
        out.run_ids = sorted(set(np.unique(ev.headers["run_id"]).tolist()))


# ------------------------------------------------------------------------------ ROOT
def _read_root(path: Path, detector) -> DataFile:
    uproot = require("uproot", "reading KM3NeT ROOT files")
    try:
        f = uproot.open(path)
        names = {k.split(";")[0]: v for k, v in f.classnames().items()}
    except Exception as exc:  # noqa: BLE001 - uproot raises many kinds for corrupt files
        raise StageFileError(f"{path}: cannot open as ROOT file: {exc}") from exc
    if "KM3NET_EVENT" in names or "KM3NET_SUMMARYSLICE" in names:
        from km3sim.io.daq import read_daq_events, read_summaryslices

        out = DataFile(path=str(path), kind="daq")
        if "KM3NET_EVENT" in names:
            _fill_daq(out, read_daq_events(path, detector))
        if "KM3NET_SUMMARYSLICE" in names:
            out.conditions = read_summaryslices(path)
            out.livetime_s = out.conditions.livetime_s
            out.det_id = int(out.conditions.det_id)
        if "E" not in names:
            return out
        off = _read_offline(path, f, names, detector)
        out.reco_tracks = off.reco_tracks
        return out
    if names.get("E") == "TTree":
        return _read_offline(path, f, names, detector)
    raise StageFileError(f"{path}: ROOT file with neither DAQ trees (KM3NET_EVENT, KM3NET_SUMMARYSLICE) nor an "
                         f"offline tree 'E' (objects: {sorted(names)})")


def _np(ak, x):
    return ak.to_numpy(x)


def best_offline_tracks(trks: dict, n_events: int) -> Table:
    """The best Jpp muon fit of every event of an offline file as ``reco_tracks`` rows.

    Jpp writes the fits of an event ordered by quality; the best muon fit is the first
    ``rec_type`` 4000 track with the most reconstruction stages (the JGandalf -> JEnergy ->
    JStart chain), as km3io's ``best_jmuon`` picks it. ``rec_stage`` = the last application
    of its ``rec_stages`` (the stage that wrote it, as km3sim's own fits record it);
    ``n_hits``, ``beta0_rad`` from ``fitinf`` (JGANDALF_NUMBER_OF_HITS, JGANDALF_BETA0_RAD);
    ``chi2_ndf`` NaN (not stored). Events without such a track get no row.

    Parameters
    ----------
    trks : dict of awkward arrays
        ``trks.<field>`` branches (one list per event).
    n_events : int
    """
    ak = require("awkward", "reading offline ROOT files")

    def flat(name):
        return _np(ak, ak.flatten(trks[name])).astype(np.float64)

    def lists(name):
        """Per-track lists as (flat values, offsets)."""
        per_track = ak.flatten(trks[name], axis=1)
        counts = _np(ak, ak.num(per_track)).astype(np.int64)
        return _np(ak, ak.flatten(per_track)).astype(np.float64), np.concatenate([[0], np.cumsum(counts)])

    n_trk = _np(ak, ak.num(trks["trks.rec_type"])).astype(np.int64)
    ev = np.repeat(np.arange(n_events, dtype=np.int64), n_trk)
    rt = _np(ak, ak.flatten(trks["trks.rec_type"])).astype(np.int64)
    st_flat, st_off = lists("trks.rec_stages")
    n_st = np.diff(st_off)
    key = np.where(rt == JPP_RECONSTRUCTION_TYPE, n_st, -1)
    idx = np.arange(len(rt))
    order = np.lexsort((idx, -key, ev))  # per event: most stages first, then file order
    first = np.r_[True, ev[order][1:] != ev[order][:-1]] if len(order) else np.zeros(0, bool)
    pick = order[first]
    pick = pick[key[pick] >= 0]
    last_stage = np.where(n_st[pick] > 0, st_flat[np.maximum(st_off[pick + 1] - 1, 0)], 0).astype(np.int32)
    if "trks.fitinf" in trks:
        fi_flat, fi_off = lists("trks.fitinf")
        n_fi = np.diff(fi_off)

        def fitinf(i):
            return np.where(n_fi[pick] > i, fi_flat[np.minimum(fi_off[pick] + i, len(fi_flat) - 1)], np.nan) \
                if len(fi_flat) else np.full(len(pick), np.nan)

        nh = fitinf(FITINF["JGANDALF_NUMBER_OF_HITS"])
        b0 = fitinf(FITINF["JGANDALF_BETA0_RAD"])
    else:
        nh = b0 = np.full(len(pick), np.nan)
    col = {k: flat(f"trks.{k}")[pick] for k in ("pos.x", "pos.y", "pos.z", "dir.x", "dir.y", "dir.z", "t", "E", "lik")}
    n = len(pick)
    return make_table(
        "reco_tracks", event_id=ev[pick], rec_type=np.full(n, JPP_RECONSTRUCTION_TYPE, np.int32), rec_stage=last_stage,
        pos_x=col["pos.x"], pos_y=col["pos.y"], pos_z=col["pos.z"], dir_x=col["dir.x"], dir_y=col["dir.y"],
        dir_z=col["dir.z"], time=col["t"], energy=col["E"], likelihood=col["lik"],
        n_hits=np.where(np.isfinite(nh), nh, -1).astype(np.int32), chi2_ndf=np.full(n, np.nan),
        beta0_rad=b0.astype(float), status=np.zeros(n, np.int32),
    )


def _read_offline(path: Path, f, names: dict, detector) -> DataFile:
    ak = require("awkward", "reading offline ROOT files")
    tree = f["E"]
    keys = {k.split("/")[-1] for k in tree.keys(recursive=True)}
    n = int(tree.num_entries)
    out = DataFile(path=str(path), kind="dst" if "T" in names else "offline")
    try:
        scal = tree.arrays([k for k in ("det_id", "run_id", "trigger_mask", "trigger_counter") if k in keys], library="ak")
        trk_names = [f"trks.{b}" for b in ("rec_type", "rec_stages", "pos.x", "pos.y", "pos.z", "dir.x", "dir.y",
                                           "dir.z", "t", "E", "lik", "fitinf") if f"trks.{b}" in keys]
        trks = tree.arrays(trk_names, library="ak") if "trks.rec_type" in keys else None
        hit_names = [f"hits.{b}" for b in ("dom_id", "channel_id", "t", "tot", "trig", "pos.x", "pos.y", "pos.z")
                     if f"hits.{b}" in keys]
        hits = tree.arrays(hit_names, library="ak") if "hits.dom_id" in keys else None
    except Exception as exc:  # noqa: BLE001
        raise StageFileError(f"{path}: cannot read tree 'E': {exc}") from exc
    if n and "det_id" in scal.fields:
        out.det_id = int(_np(ak, scal["det_id"])[0])
        out.run_ids = sorted(set(_np(ak, scal["run_id"]).tolist())) if "run_id" in scal.fields else []
    mask = _np(ak, scal["trigger_mask"]).astype(np.uint64) if "trigger_mask" in scal.fields else np.zeros(n, np.uint64)
    counter = _np(ak, scal["trigger_counter"]).astype(np.int64) if "trigger_counter" in scal.fields else np.arange(n)
    if trks is not None:
        out.reco_tracks = best_offline_tracks({k: trks[k] for k in trks.fields}, n)
    n_hits = n_trig = n_doms = None
    t_lo = t_hi = np.full(n, np.nan)
    if hits is not None and int(ak.sum(ak.num(hits["hits.dom_id"]))) > 0:
        counts = _np(ak, ak.num(hits["hits.dom_id"])).astype(np.int64)
        ev = np.repeat(np.arange(n, dtype=np.int64), counts)
        dom = _np(ak, ak.flatten(hits["hits.dom_id"])).astype(np.int64)
        ch = _np(ak, ak.flatten(hits["hits.channel_id"])).astype(np.int64)
        t = _np(ak, ak.flatten(hits["hits.t"])).astype(np.float64)
        tot = _np(ak, ak.flatten(hits["hits.tot"])).astype(np.int64)
        trig = _np(ak, ak.flatten(hits["hits.trig"])).astype(np.uint64) if "hits.trig" in hits.fields else np.zeros(len(t), np.uint64)
        calibrated = "hits.pos.x" in hits.fields and bool(np.any(_np(ak, ak.flatten(hits["hits.pos.x"])) != 0))
        pmt = np.full(len(t), -1, np.int64)
        if detector is not None:
            try:
                k = detector.pmt_index(dom, ch)
            except KeyError as exc:
                raise StageFileError(f"{path}: hits on PMTs not in detector {detector.det_id}: {exc}") from None
            pmt = np.asarray(detector.pmt_id)[k]
            if not calibrated:
                t = t + np.asarray(detector.pmt_t0)[k]
                out.notes.append("hit times calibrated with the detector's PMT t0 (file has raw times)")
        elif not calibrated:
            out.notes.append("raw hit times (no detector given for calibration)")
        order = np.lexsort((t, ev))
        out.snapshot_hits = make_table(
            "snapshot_hits", event_id=ev[order], dom_id=dom[order].astype(np.int32), channel_id=ch[order].astype(np.int32),
            pmt_id=pmt[order].astype(np.int32), time=t[order], tot=np.clip(tot[order], 0, 255).astype(np.uint8),
            npe=np.zeros(len(t), np.int32), origin=np.full(len(t), -1, np.int32), trigger_mask=trig[order])
        n_hits = counts
        is_trig = trig != 0
        n_trig = np.bincount(ev[is_trig], minlength=n)
        pairs = np.unique(np.stack([ev[is_trig], dom[is_trig]]), axis=1) if is_trig.any() else np.zeros((2, 0), np.int64)
        n_doms = np.bincount(pairs[0], minlength=n)
        t_lo = np.full(n, np.nan)
        t_hi = np.full(n, np.nan)
        np.fmin.at(t_lo, ev, t)
        np.fmax.at(t_hi, ev, t)
    elif "T" in names:
        n_hits, n_trig, n_doms = _dst_counts(path, f["T"], n)
    if n_hits is not None:
        out.triggered_events = make_table(
            "triggered_events", event_id=np.arange(n, dtype=np.int64), trigger_mask=mask, trigger_counter=counter,
            snapshot_start=t_lo, snapshot_end=t_hi, n_hits=np.asarray(n_hits, np.int32),
            n_triggered_hits=np.asarray(n_trig, np.int32), n_triggered_doms=np.asarray(n_doms, np.int32))
    if "headerTree" in names:
        out.livetime_s = _dst_livetime(f["headerTree"])
    return out


def _dst_counts(path: Path, tree, n: int):
    keys = {k.split("/")[-1]: k for k in tree.keys(recursive=True)}
    need = ("nhits", "ndoms")
    try:
        arrs = {}
        for group in ("sum_hits", "sum_trig_hits"):
            for leaf in need:
                full = f"{group}/{leaf}" if f"{group}/{leaf}" in tree.keys(recursive=True) else None
                if full is None:
                    cands = [k for k in tree.keys(recursive=True) if k.startswith(group + "/") and k.endswith(leaf)]
                    full = cands[0] if cands else None
                if full is None:
                    raise StageFileError(f"{path}: DST tree 'T' has no {group}/{leaf} (branches: {sorted(keys)[:20]} ...)")
                arrs[(group, leaf)] = tree[full].array(library="np")
    except StageFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StageFileError(f"{path}: cannot read DST tree 'T': {exc}") from exc
    if len(arrs[("sum_hits", "nhits")]) != n:
        raise StageFileError(f"{path}: tree 'T' has {len(arrs[('sum_hits', 'nhits')])} entries, tree 'E' {n}")
    return arrs[("sum_hits", "nhits")], arrs[("sum_trig_hits", "nhits")], arrs[("sum_trig_hits", "ndoms")]


def _dst_livetime(tree) -> float | None:
    """Livetime [s] from a DST ``headerTree`` if it has a livetime branch."""
    try:
        for key in tree.keys(recursive=True):
            if "livetime" in key.lower():
                v = tree[key].array(library="np")
                total = float(np.nansum(np.asarray(v, dtype=float)))
                if total > 0:
                    return total
    except Exception as exc:  # noqa: BLE001 - optional information
        log.debug("no livetime in headerTree: %s", exc)
    return None


def files_summary(files: list[DataFile]) -> str:
    """One line per input file: kind, detector, runs, what it holds."""
    lines = []
    for d in files:
        have = [n for n in ("triggered_events", "snapshot_hits", "reco_tracks") if getattr(d, n) is not None]
        if d.conditions is not None:
            have.append(f"summaryslices ({d.conditions.n_frames} frames)")
        n_ev = len(d.triggered_events) if d.triggered_events is not None else (len(d.reco_tracks) if d.reco_tracks is not None else 0)
        lt = f", livetime {d.livetime_s:.1f} s" if d.livetime_s else ""
        lines.append(f"{os.path.basename(d.path)}: {d.kind}, det {d.det_id}, runs {d.run_ids}, {n_ev} events{lt}; "
                     f"{', '.join(have)}" + (f" ({'; '.join(d.notes)})" if d.notes else ""))
    return "\n".join(lines)
