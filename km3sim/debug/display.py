"""Single-event display for simulated and real events.

One figure (matplotlib, no pyplot state unless shown interactively):

* top row: the detector seen from above (x-y) and from two sides (x-z, y-z); every DOM as a
  grey dot, hit DOMs coloured by the time of their first hit and sized by their summed ToT
  (the charge KM3NeT records); DOMs with triggered hits outlined in black; the MC tracks
  (muons solid, other particles thin) and the fitted track (dashed red) projected;
* bottom row: time versus height on the DUs with the most hits, with the expected arrival
  time of direct Cherenkov light from the true and from the fitted track at the DU's axis,
  t(z) = t0 + (L + k·d)/c with k = (n_g − cos θc)/sin θc (PHYSICS.md §9.1;
  :func:`km3sim.trigger.trigger.cherenkov_distance_factor`).

Inputs are tables (:class:`EventView`), so the same code draws a re-simulated event
(:func:`view_from_resimulation`), an event of a km3sim file or a real DAQ/offline file
(:func:`view_from_file`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from km3sim import constants as C
from km3sim.errors import Km3simError
from km3sim.table import Table

__all__ = ["EventView", "draw_event", "save_event_display", "view_from_resimulation", "view_from_file",
           "display_available"]

log = logging.getLogger(__name__)

_N_DU_PANELS = 6


@dataclass
class EventView:
    """What the display draws.

    Attributes
    ----------
    detector : Detector
    hits : Table
        Columns ``dom_id``, ``channel_id``, ``time`` [ns], ``tot`` [ns]; optional
        ``trigger_mask`` (triggered hits outlined), ``origin`` (>= 0: signal, simulation only).
    mc_tracks : Table or None
        True particles (``mc_tracks`` schema), times on the clock of the hits.
    reco : Table or None
        Fit results (``reco_tracks`` schema); the converged row furthest along its chain
        (:func:`km3sim.validate.samples.fit_rank`, first on ties) is drawn.
    title : str
    """

    detector: object
    hits: Table
    mc_tracks: Table | None = None
    reco: Table | None = None
    title: str = ""


def display_available() -> bool:
    """True if an interactive matplotlib window can be opened here."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _best_reco(reco: Table | None):
    if reco is None or not len(reco):
        return None
    from km3sim.validate.samples import fit_rank

    ok = np.flatnonzero((reco["status"] == 0) & np.isfinite(reco["dir_z"]))
    if not len(ok):
        return None
    k = ok[np.argmax(fit_rank(reco["rec_type"][ok], reco["rec_stage"][ok]))]  # argmax: first of the best
    p = np.array([reco["pos_x"][k], reco["pos_y"][k], reco["pos_z"][k]], dtype=float)
    d = np.array([reco["dir_x"][k], reco["dir_y"][k], reco["dir_z"][k]], dtype=float)
    return p, d / np.linalg.norm(d), float(reco["time"][k]), int(reco["rec_type"][k])


def _true_track(mc_tracks: Table | None):
    from km3sim.debug.explain import true_track

    tt = true_track(None, mc_tracks) if mc_tracks is not None and len(mc_tracks) else None
    if tt is None:
        return None
    return tt[0], tt[1] / np.linalg.norm(tt[1]), tt[2]


def _expected_curve(track, xy, z):
    """Arrival time of direct Cherenkov light at points (xy, z) from ``track`` (p, u, t0)."""
    from km3sim.reco._kernels import expected_times
    from km3sim.trigger.trigger import cherenkov_distance_factor

    p, u, t0 = track[:3]
    pts = np.column_stack([np.full(len(z), xy[0]), np.full(len(z), xy[1]), z]).astype(np.float64)
    return expected_times(pts, p.astype(np.float64), u.astype(np.float64), float(t0), cherenkov_distance_factor(),
                          C.C_LIGHT)


def _segment(track_pos, track_dir, length, box_lo, box_hi):
    """End points of a track for drawing: [pos, pos + length·dir], or, for length 0 (unknown),
    the part of the infinite line inside the (padded) detector box."""
    if length > 0:
        return np.stack([track_pos, track_pos + length * track_dir])
    pad = 0.3 * (box_hi - box_lo) + 20.0
    lo, hi = box_lo - pad, box_hi + pad
    s_lo, s_hi = -1e9, 1e9
    for i in range(3):
        if abs(track_dir[i]) < 1e-12:
            if not lo[i] <= track_pos[i] <= hi[i]:
                return None
            continue
        a = (lo[i] - track_pos[i]) / track_dir[i]
        b = (hi[i] - track_pos[i]) / track_dir[i]
        s_lo, s_hi = max(s_lo, min(a, b)), min(s_hi, max(a, b))
    if s_hi <= s_lo:
        return None
    return np.stack([track_pos + s_lo * track_dir, track_pos + s_hi * track_dir])


def draw_event(view: EventView, figure=None):
    """Draw ``view`` into a new (or the given) matplotlib Figure and return it."""
    from km3sim._optional import require

    require("matplotlib", "the event display")
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    det = view.detector
    hits = view.hits
    if len(hits):
        order = np.lexsort((hits["time"], hits["dom_id"]))
        hits = hits[order]
    fig = figure if figure is not None else Figure(figsize=(16, 9.5), layout="constrained")
    dom_pos = np.asarray(det.dom_pos, dtype=float)
    lo, hi = dom_pos.min(axis=0), dom_pos.max(axis=0)
    has_trig = "trigger_mask" in hits.columns
    has_origin = "origin" in hits.columns and bool(np.any(np.asarray(hits["origin"]) >= 0))
    trig = (np.asarray(hits["trigger_mask"]) != 0) if has_trig else np.zeros(len(hits), bool)
    t_ref = float(hits["time"][trig].min()) if trig.any() else (float(hits["time"].min()) if len(hits) else 0.0)
    t_rel = np.asarray(hits["time"], dtype=float) - t_ref
    reco = _best_reco(view.reco)
    truth = _true_track(view.mc_tracks)

    # per hit DOM: first time, summed ToT, any triggered hit
    hit_doms, first, inv = np.unique(hits["dom_id"], return_index=True, return_inverse=True) if len(hits) else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    dom_t = t_rel[first] if len(hits) else np.zeros(0)
    dom_tot = np.bincount(inv, weights=np.asarray(hits["tot"], dtype=float), minlength=len(hit_doms)) if len(hits) else np.zeros(0)
    dom_trig = np.bincount(inv, weights=trig.astype(float), minlength=len(hit_doms)) > 0 if len(hits) else np.zeros(0, bool)
    k_dom = det.dom_index(hit_doms) if len(hit_doms) else np.zeros(0, np.int64)
    hpos = dom_pos[k_dom]
    # colour scale over the triggered DOMs (the light front) when there are any, else all hit DOMs;
    # earlier/later background hits take the end colours
    scale_t = dom_t[dom_trig] if dom_trig.any() else dom_t
    t_lo, t_hi = (float(scale_t.min()) - 20.0, float(scale_t.max()) + 20.0) if len(scale_t) else (0.0, 1.0)
    if t_hi <= t_lo:
        t_hi = t_lo + 1.0
    norm = Normalize(t_lo, t_hi)
    cmap = colormaps["viridis"]
    size = 15.0 + 200.0 * dom_tot / dom_tot.max() if len(dom_tot) else np.zeros(0)

    grid = fig.add_gridspec(2, _N_DU_PANELS)
    views = (("top view", 0, 1, "x [m]", "y [m]"), ("side view", 0, 2, "x [m]", "z [m]"),
             ("side view", 1, 2, "y [m]", "z [m]"))
    spans = ((0, 2), (2, 4), (4, 6))
    sc = None
    for (name, a, b, xl, yl), (c0, c1) in zip(views, spans):
        ax = fig.add_subplot(grid[0, c0:c1])
        ax.scatter(dom_pos[:, a], dom_pos[:, b], s=4, c="0.8", zorder=1)
        srt = np.argsort(-dom_t) if len(dom_t) else np.zeros(0, np.int64)  # earliest drawn on top
        sc = ax.scatter(hpos[srt, a], hpos[srt, b], s=size[srt], c=dom_t[srt], cmap=cmap, norm=norm,
                        edgecolors=np.where(dom_trig[srt], "k", "none") if len(srt) else "none", linewidths=1.0, zorder=3)
        if view.mc_tracks is not None:
            mc = view.mc_tracks
            for i in range(len(mc)):
                p = np.array([mc["pos_x"][i], mc["pos_y"][i], mc["pos_z"][i]])
                d = np.array([mc["dir_x"][i], mc["dir_y"][i], mc["dir_z"][i]])
                muon = abs(int(mc["pdgid"][i])) == 13
                seg = _segment(p, d, float(mc["length"][i]) if muon else min(float(mc["length"][i]), 20.0), lo, hi)
                if seg is not None:
                    ax.plot(seg[:, a], seg[:, b], color="tab:blue" if muon else "tab:orange",
                            lw=1.5 if muon else 0.8, zorder=2)
        if reco is not None:
            seg = _segment(reco[0], reco[1], 0.0, lo, hi)
            if seg is not None:
                ax.plot(seg[:, a], seg[:, b], "--", color="tab:red", lw=1.5, zorder=4)
        pad = 0.15 * max(hi[a] - lo[a], hi[b] - lo[b], 20.0)
        ax.set_xlim(lo[a] - pad, hi[a] + pad)
        ax.set_ylim(lo[b] - pad, hi[b] + pad)
        if name == "top view":
            ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{name} ({yl[0]} vs {xl[0]})", fontsize=10)
    if sc is not None:
        fig.colorbar(sc, ax=fig.axes[-1], label="time of first hit [ns]", shrink=0.8)
    handles = [Line2D([], [], color="tab:blue", lw=1.5, label="MC muon"),
               Line2D([], [], color="tab:orange", lw=0.8, label="MC other"),
               Line2D([], [], color="tab:red", ls="--", lw=1.5, label="fitted track"),
               Line2D([], [], marker="o", ls="", mfc="none", mec="k", label="DOM with triggered hits")]
    fig.axes[0].legend(handles=handles, fontsize=7, loc="upper left")

    # time vs height on the DUs with the most (triggered) hits
    du_of_hit = np.asarray(det.dom_du)[det.dom_index(hits["dom_id"])] if len(hits) else np.zeros(0, np.int64)
    z_hit = np.asarray(det.pmt_pos)[det.pmt_index(hits["dom_id"], hits["channel_id"]), 2] if len(hits) else np.zeros(0)
    dus, counts = np.unique(du_of_hit, return_counts=True)
    tcounts = np.array([trig[du_of_hit == d].sum() for d in dus])
    pick = dus[np.lexsort((-counts, -tcounts))][:_N_DU_PANELS]
    z_all = np.linspace(lo[2] - 10.0, hi[2] + 10.0, 200)
    for j, du in enumerate(sorted(pick)):
        ax = fig.add_subplot(grid[1, j])
        m = du_of_hit == du
        sig = (np.asarray(hits["origin"]) >= 0) & m if has_origin else np.zeros(len(hits), bool)
        bkg = m & ~sig
        ax.scatter(t_rel[bkg], z_hit[bkg], s=10, facecolors="none", edgecolors="0.5", lw=0.6, label="hit")
        if has_origin:
            ax.scatter(t_rel[sig], z_hit[sig], s=12, c="tab:blue", label="signal hit (MC)")
        ax.scatter(t_rel[m & trig], z_hit[m & trig], s=30, facecolors="none", edgecolors="tab:red", lw=1.0,
                   label="triggered hit")
        du_dom = np.asarray(det.dom_du) == du
        xy = dom_pos[du_dom, :2].mean(axis=0)
        for track, style, label in ((truth, "-", "true track"), (reco, "--", "fitted track")):
            if track is not None:
                ax.plot(_expected_curve(track, xy, z_all) - t_ref, z_all, style,
                        color="tab:blue" if track is truth else "tab:red", lw=1.2, label=f"Cherenkov, {label}")
        if m.any():
            tm = t_rel[m & trig] if (m & trig).any() else t_rel[m]
            span = max(float(tm.max() - tm.min()), 200.0)
            ax.set_xlim(float(tm.min()) - 0.5 * span, float(tm.max()) + 0.5 * span)
        ax.set_ylim(lo[2] - 10.0, hi[2] + 10.0)
        ax.set_title(f"DU {int(du)}: {int(m.sum())} hits", fontsize=9)
        ax.set_xlabel("time [ns]")
        if j == 0:
            ax.set_ylabel("z [m]")
            ax.legend(fontsize=6, loc="best")
    if not len(pick):
        ax = fig.add_subplot(grid[1, :])
        ax.text(0.5, 0.5, "no hits", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    n_trig = int(trig.sum())
    extra = f"; fit rec_type {reco[3]}" if reco is not None else ""
    if reco is not None:
        centre = 0.5 * (lo + hi)
        v = centre - reco[0]
        miss = float(np.linalg.norm(v - np.dot(v, reco[1]) * reco[1]))
        if miss > np.linalg.norm(hi - lo) + 100.0:
            extra += f" passing {miss:.0f} m from the detector centre (another coordinate frame?)"
    fig.suptitle(f"{view.title}\n{len(hits)} hits on {len(hit_doms)} DOMs, {n_trig} triggered; times relative to "
                 f"the first {'triggered ' if n_trig else ''}hit (t = {t_ref:.1f} ns){extra}", fontsize=11)
    return fig


def save_event_display(view: EventView, path: str | os.PathLike, *, show: bool = False, dpi: int = 110) -> Path:
    """Draw ``view`` and write it as PNG (atomically); with ``show`` also open a window when a
    display is available (logs a warning otherwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = draw_event(view)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if show:
        show_event(view)
    return path


def show_event(view: EventView) -> bool:
    """Open an interactive window with the display; False (and a warning) without a display."""
    if not display_available():
        log.warning("no display available (DISPLAY/WAYLAND_DISPLAY unset): not showing the event interactively")
        return False
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 9.5), layout="constrained")
    draw_event(view, figure=fig)
    plt.show()
    return True


# ------------------------------------------------------------------------------- sources
def view_from_resimulation(sim) -> EventView:
    """The view of an :class:`~km3sim.debug.event.EventResimulation`: the snapshot hits if the
    event triggered, else all its L0 hits; true tracks; fit results."""
    t = sim.tables
    if "snapshot_hits" in t and len(t["snapshot_hits"]):
        hits = t["snapshot_hits"]
    elif "hits" in t:
        hits = t["hits"]
    elif "mc_hits" in t:  # stopped before the detector response: show the photo-electrons
        mc = t["mc_hits"]
        hits = Table({"event_id": mc["event_id"], "dom_id": mc["dom_id"], "channel_id": mc["channel_id"],
                      "time": mc["time"], "tot": mc["npe"].astype(float), "origin": mc["origin"]})
    else:
        hits = Table({"event_id": np.zeros(0, np.int64), "dom_id": np.zeros(0, np.int32),
                      "channel_id": np.zeros(0, np.int32), "time": np.zeros(0), "tot": np.zeros(0)})
    title = (f"{sim.production.name}: run {sim.run_id}, event {sim.event_number} (event_id {sim.event_id}), "
             f"simulated")
    return EventView(detector=sim.detector, hits=hits, mc_tracks=t.get("mc_tracks"), reco=t.get("reco_tracks"),
                     title=title)


def view_from_file(path, event: int, detector=None) -> EventView:
    """The view of one event of a file.

    Parameters
    ----------
    path : path
        A real-data file (DAQ ROOT or Jpp ``.dat`` with triggered events; offline/aanet ROOT
        with hits and fitted tracks) or a km3sim stage file / production output directory
        with ``snapshot_hits`` (and ``reco_tracks``, ``mc_tracks`` where present).
    event : int
        Entry number in a ROOT/DAQ file; ``event_id`` in a km3sim file.
    detector : Detector, optional
        Needed for real-data files (positions and calibration); km3sim files name theirs.
    """
    from km3sim.validate.readers import read_event_file

    data = read_event_file(path, detector=detector, events=[int(event)])
    det = data.detector if data.detector is not None else detector
    if det is None:
        raise Km3simError(f"{path}: a detector file is needed to draw its events (--detector)")
    hits = data.snapshot_hits
    if hits is None or not np.any(hits["event_id"] == event):
        have = data.triggered_events["event_id"] if data.triggered_events is not None else np.zeros(0)
        raise Km3simError(f"{path}: no hits of event {event} (events in the file: "
                          f"{_ranges(have)})")
    pick = lambda t: t.event(event) if t is not None else None  # noqa: E731
    return EventView(detector=det, hits=pick(hits), mc_tracks=pick(data.mc_tracks), reco=pick(data.reco_tracks),
                     title=f"{Path(path).name}: event {event}{' (' + data.kind + ')' if data.kind else ''}")


def _ranges(ids) -> str:
    ids = np.unique(np.asarray(ids))
    if not len(ids):
        return "none"
    if len(ids) <= 8:
        return ", ".join(str(int(i)) for i in ids)
    return f"{int(ids[0])} .. {int(ids[-1])} ({len(ids)} events)"
