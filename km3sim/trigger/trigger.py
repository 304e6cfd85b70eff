"""The KM3NeT trigger: L0 -> L1 -> L2 -> 3DMuon / 3DShower / MXShower -> events with snapshots.

The same code triggers simulated hits (stage ``trigger``) and real KM3NeT data
(``km3sim trigger``, :func:`trigger_hits`). Parameters: :class:`TriggerConfig` with Jpp's
names (:mod:`km3sim.trigger.parameters`, PHYSICS.md §12). Trigger-mask bits are bit *numbers*
as in KM3NeT files (FORMATS.md §5, km3io ``trigger.py``): 3DShower 1, MXShower 2, 3DMuon 4,
factory limit 31, i.e. ``trigger_mask & (1 << 4)`` is the 3DMuon flag; a real ARCA event with
all three shower/muon triggers has mask 2 + 4 + 16 = 22.

Levels
------
* **L0**: every hit.
* **L1** (``TMaxLocal_ns``, ``combineL1``, km3sim's ``L1Min``): at least ``L1Min`` (2) hits on
  different PMTs of one DOM within ``TMaxLocal_ns`` (25 ns) of the first of them. With
  ``combineL1`` overlapping L1s of a DOM merge into one.
* **L2** (``L2.numberOfHits``, ``L2.TMaxLocal_ns``, ``L2.ctMin``): an L1 holding at least
  ``numberOfHits`` PMTs within 10 ns whose axes make cos ≥ ``ctMin`` with the first one's. The
  L2s, at the time of their first L2 hit and at their DOM's position, are the input of the
  three event triggers (PHYSICS.md §12).

Event triggers (light speed in water c/n, n = group index 1.38009 as in Jpp)
-----------------------------------------------------------------------------
Every trigger works seed by seed: each input L2 in time order opens a time window; a window
holding more than ``factoryLimit`` hits triggers at once with all of them (bit 31 added);
otherwise the hits compatible with the seed are clustered — the largest pairwise compatible
subset, found greedily (:func:`~km3sim.trigger._kernels.greedy_clique`) — and a cluster of at
least ``numberOfHits`` hits on at least ``numberOfModules`` DOMs fires.

* **3DShower** (point source): two L2s i, j are compatible when their DOMs are within
  ``DMax_m`` and |t_i − t_j| ≤ |x_i − x_j|·n/c + ``TMaxExtra_ns`` — light from one point
  reaches two places at most their distance apart in time (triangle inequality).
* **MXShower** (point source, L0 level): around an L2 seed (DOM d, time t) the L0 hits of the
  DOMs within ``DMax_m`` of d with |t_h − t| ≤ D·n/c + ``TMaxExtra_ns`` are collected and
  clustered with the same pairwise condition (pairs also within ``DMax_m``). It fires with at
  least ``numberOfHits`` L0 hits *besides the seed hit* (more than ``numberOfHits`` in all) on
  at least ``numberOfModules`` DOMs: every MXShower-triggered event in the real files of
  km3net-testdata (ORCA det 44, ARCA det 133 and 267; numberOfHits 8) has ≥ 9 such hits, and
  many have exactly 9. With these rules pure ⁴⁰K (7 kHz) on the 5-DU ORCA detector 44 gives
  ~10 Hz of MXShower events (the real detector-44 files suggest a few Hz of events in all).
* **3DMuon** (straight track): for every direction u of a grid with ``gridAngle_deg`` spacing
  (a Fibonacci lattice over the full sphere, n = round(4π/step²) directions, 413 for 10°) two
  L2s are compatible when, seen along u, their transverse distance R ≤ ``roadWidth_m``, their
  distance ≤ ``DMax_m``, and

      |c·(t_j − t_i) − (z_j − z_i)| ≤ k·min(R, roadWidth − R) + c·TMaxExtra,
      k = (n_g − cosθc)/sinθc = 0.9517  (cosθc = 1/1.3499, n_g = 1.38009).

  Derivation: a muon along z with speed c reaches a PMT at distance ρ from the track with its
  direct Cherenkov light at c·t = c·t0 + z + k·ρ (PHYSICS.md §9.1: emission at the phase
  Cherenkov angle, travel at the group velocity; k = tanθc when n_g = n_phase). Hence
  c·Δt − Δz = k·Δρ. With both PMTs within roadWidth/2 of the track (the road width is the
  diameter of the road, as in Jpp), |Δρ| ≤ R (triangle inequality) and
  |Δρ| ≤ roadWidth − R (since ρ_i + ρ_j ≥ R, ρ ≤ roadWidth/2), so R ≤ roadWidth and the bound
  above are exact necessary conditions; ``TMaxExtra_ns`` absorbs time jitter, scattering and
  the grid's direction error. Every firing direction adds its L2s to the seed's cluster.

The triggered hits of a 3DMuon or 3DShower cluster are all L0 hits of its L1s; those of an
MXShower cluster its L0 hits. A hit's ``trigger_mask`` is the OR of the bits of the clusters it
is in.

Event building
--------------
A cluster's snapshot window is [first triggered hit − ``TMaxEvent_ns``, last + ``TMaxEvent_ns``];
clusters whose windows overlap merge into one event (mask = OR of their bits, ``overlays`` =
number of merged clusters − 1), so no L0 hit is in two snapshots. The snapshot hits are all L0
hits in the window.

Choices and simplifications (compared with Jpp, whose source is not public here)
------------------------------------------------------------------------------
* One triggered event per simulated event: a simulated time window with several disjoint
  events keeps the one with the most triggered hits (the others are counted and logged);
  ``trigger_counter`` = ``event_id`` (a running counter would depend on the chunking). With
  :func:`trigger_hits` ``one_per_window=False`` every event is returned (timeslices).
* A seed is skipped when it already belongs to a cluster of the same trigger and its window
  holds no hit outside such clusters (its cluster could add no new triggered hit); within one
  seed a direction is skipped when all its hits are already in the seed's cluster.
* DOM positions stand for the PMT positions in the causality conditions (≤ 0.2 m, < 1 ns).
* The L2 seeds of MXShower are the trigger input (Jpp's exact seed and hit selection for this
  trigger is not known here; the rules above reproduce every recorded MXShower bit).
* Validation on real data (tests/trigger/test_real_data.py): re-triggering the snapshots of
  the recorded events fires every recorded trigger bit (ORCA det 44 with its stored
  parameters, ARCA det 267 with the ARCA21 preset and the det-232 geometry, ARCA det 133);
  94-99 % of the hits Jpp flagged are flagged here too; ``overlays`` follows Jpp's.
* ``highRateVeto_Hz``, the supernova (SN) and nano-beacon (NB) triggers are not part of the
  event trigger here (the high-rate veto acts in the detector simulation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from km3sim import constants as C
from km3sim.errors import StageError
from km3sim.schema import empty_table, make_table
from km3sim.stage import Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table
from km3sim.trigger import _kernels as K
from km3sim.trigger.parameters import TRIGGER_PRESETS, TriggerConfig, preset

__all__ = [
    "Trigger",
    "TriggerConfig",
    "TriggerProcessor",
    "TriggerResult",
    "Trigger3DMuon",
    "Trigger3DMuonConfig",
    "TRIGGER_PRESETS",
    "preset",
    "trigger_hits",
    "cherenkov_distance_factor",
    "n_grid_directions",
    "MASK_3DSHOWER",
    "MASK_MXSHOWER",
    "MASK_3DMUON",
    "MASK_FACTORY_LIMIT",
]

logger = logging.getLogger(__name__)

#: Trigger-mask values (1 << bit number, FORMATS.md §5).
MASK_3DSHOWER = 1 << C.TRIGGER_BIT_3DSHOWER
MASK_MXSHOWER = 1 << C.TRIGGER_BIT_MXSHOWER
MASK_3DMUON = 1 << C.TRIGGER_BIT_3DMUON
MASK_FACTORY_LIMIT = 1 << C.TRIGGER_BIT_FACTORY_LIMIT


def cherenkov_distance_factor(
    n_phase: float = C.INDEX_OF_REFRACTION_PHASE, n_group: float = C.INDEX_OF_REFRACTION_GROUP
) -> float:
    """k = (n_g − cosθc)/sinθc: increase of c·t_expected per metre of distance to a muon track.

    From PHYSICS.md §9.1: t_exp = t0 + (L − d/tanθc + d·n_g/sinθc)/c = t0 + (L + k·d)/c.
    """
    cos_c = 1.0 / n_phase
    sin_c = math.sqrt(1.0 - cos_c * cos_c)
    return (n_group - cos_c) / sin_c


def n_grid_directions(step_deg: float) -> int:
    """Number of grid directions for a ~``step_deg`` spacing over the full sphere.

    Each direction of the Fibonacci lattice covers a solid angle 4π/n; n = round(4π/step²)
    makes that a "square" of side ``step`` (10° -> 413 directions; the largest angle between
    any direction and its nearest grid point is then ≈ 0.6·step).
    """
    step = math.radians(step_deg)
    return max(1, int(round(4.0 * math.pi / (step * step))))


@dataclass
class TriggerResult:
    """Raw output of :meth:`TriggerProcessor.run` (arrays over hits, events and windows)."""

    hit_mask: np.ndarray  # uint32 per hit
    ev_window: np.ndarray
    ev_start: np.ndarray
    ev_end: np.ndarray
    ev_mask: np.ndarray
    ev_overlays: np.ndarray
    ev_tfirst: np.ndarray
    ev_tlast: np.ndarray
    n_l1: np.ndarray
    n_l2: np.ndarray
    n_dropped: np.ndarray


class TriggerProcessor:
    """The trigger for one detector and one :class:`TriggerConfig`.

    Geometry that depends only on the detector and the parameters (DOM positions, PMT axes,
    the 3DMuon direction grid, the MXShower DOM neighbourhoods) is prepared once here.
    """

    def __init__(self, config: TriggerConfig, detector):
        self.config = config
        self.detector = detector
        self.k_light = cherenkov_distance_factor()
        mu = config.trigger3DMuon
        self.directions = np.ascontiguousarray(K.direction_grid(n_grid_directions(mu.gridAngle_deg)))
        self.dom_pos = np.ascontiguousarray(detector.dom_pos, dtype=np.float64)
        self.pmt_axis = K.pmt_axis_table(detector.dom_pmt_offsets, np.asarray(detector.pmt_dir, dtype=np.float64))
        self.nb_off, self.nb_idx, self.nb_dist = K.dom_neighbours(self.dom_pos, float(config.triggerMXShower.DMax_m))
        self.params = _params(config, self.k_light)

    def run(self, offsets, dom_index, channel, time, *, dom_sorted: bool = False,
            one_per_window: bool = True) -> TriggerResult:
        """Trigger the hits of every window ``offsets[i]:offsets[i+1]`` (see ``_kernels.trigger_windows``)."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        dom_index = np.ascontiguousarray(dom_index)
        channel = np.ascontiguousarray(channel)
        time = np.ascontiguousarray(time, dtype=np.float64)
        cap = 0 if dom_sorted or len(offsets) < 2 else max(int(np.max(np.diff(offsets))), 0)
        work = self._work_buffers(cap, channel.dtype, dom_index.dtype)
        try:
            out = K.trigger_windows(
                offsets, dom_index, channel, time,
                bool(dom_sorted), bool(one_per_window), self.dom_pos, self.pmt_axis, self.directions,
                self.nb_off, self.nb_idx, self.nb_dist, self.params, np.zeros(len(time), dtype=np.uint32),
                *work,
            )
        except BaseException:
            self._work = None  # the mask buffer may not be all zero any more
            raise
        return TriggerResult(*out)

    def _work_buffers(self, cap: int, channel_dtype, dom_dtype) -> tuple:
        """Work buffers of ``trigger_windows`` for windows of up to ``cap`` hits, kept between calls.

        The (DOM, time)-sorted copy of a window (times, channels, DOMs, input positions, trigger
        bits: 22 bytes per hit with int32 positions), reused by later calls: the first touch of
        fresh buffers for a 10⁸-ns ARCA timeslice (4·10⁷ hits) costs ~0.5 s of page faults, as
        much as the sorting itself. The buffers grow to the largest window seen and stay
        allocated. (They are allocated in numba, with plain pages: numpy advises huge pages for
        large arrays, which on a busy host cost seconds of memory compaction at first touch.)
        """
        w = getattr(self, "_work", None)
        pos_dtype = np.dtype(np.int32 if cap < 2**31 else np.int64)
        if (w is None or w[0].shape[0] < cap or w[1].dtype != channel_dtype or w[2].dtype != dom_dtype
                or w[3].dtype != pos_dtype):
            if cap == 0:
                return (np.empty(0), np.empty(0, dtype=channel_dtype), np.empty(0, dtype=dom_dtype),
                        np.empty(0, dtype=pos_dtype), np.empty(0, dtype=np.uint32))
            self._work = None  # free the old buffers first
            w = K.work_buffers(cap, np.empty(0, dtype=channel_dtype), np.empty(0, dtype=dom_dtype),
                               np.empty(0, dtype=pos_dtype))
            self._work = w
        return w

    def trigger_table(self, hits: Table, event_ids=None, *, one_per_window: bool = True,
                      trigger_counter=None, where: str = "trigger") -> tuple[Table, Table, dict]:
        """Trigger a ``hits``-like table (one time window per ``event_id``).

        Parameters
        ----------
        hits : Table
            Columns event_id, dom_id, channel_id, pmt_id, time, tot, npe, origin (schema
            ``hits``; extra columns are ignored), any order.
        event_ids : array of int64, optional
            All windows' ids (events without hits included); default: those in ``hits``.
        one_per_window : bool
            Keep one event per window (the output then has one row per triggered window,
            ``event_id`` = the window's id). Otherwise events get ``event_id`` 0, 1, ... in
            (window, time) order.
        trigger_counter : array of int64, optional
            ``trigger_counter`` per window (default: the window's event id).
        where : str
            Name used in error messages.

        Returns
        -------
        triggered_events, snapshot_hits : Table
        stats : dict
            ``n_l1``, ``n_l2``, ``n_dropped`` summed over the windows, ``n_windows``.
        """
        det = self.detector
        if len(hits) == 0:
            return empty_table("triggered_events"), empty_table("snapshot_hits"), dict(n_l1=0, n_l2=0, n_dropped=0, n_windows=0)
        hits = _sorted_by_event_time(hits)
        present = np.unique(hits["event_id"])
        ids = present if event_ids is None else np.union1d(np.asarray(event_ids, dtype=np.int64), present)
        ids, offs = hits.offsets(ids)
        try:
            dom_index = det.dom_index(hits["dom_id"])
        except KeyError as exc:
            raise StageError(f"{where}: hits on modules unknown to detector {det.det_id}: {exc}") from None
        channel = np.asarray(hits["channel_id"])
        bad = (channel < 0) | (channel >= np.asarray(det.dom_n_pmts)[dom_index])
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            raise StageError(f"{where}: hit {k} (event {hits['event_id'][k]}, DOM {hits['dom_id'][k]}) has channel "
                             f"{channel[k]}, outside the DOM's {det.dom_n_pmts[dom_index[k]]} PMTs")
        time = np.asarray(hits["time"], dtype=np.float64)
        if not np.all(np.isfinite(time)):
            raise StageError(f"{where}: hit times must be finite")
        res = self.run(offs, dom_index.astype(np.int32), channel.astype(np.int16), time, one_per_window=one_per_window)
        ev_idx = K.snapshot_event_index(offs, time, res.ev_window, res.ev_start, res.ev_end)
        sel = ev_idx >= 0
        snap = hits[sel]
        snap_ev = ev_idx[sel]
        snap_mask = res.hit_mask[sel].astype(np.uint64)
        n_ev = len(res.ev_window)
        if one_per_window:
            out_ids = ids[res.ev_window]
        else:
            out_ids = np.arange(n_ev, dtype=np.int64)
        counter = ids[res.ev_window] if trigger_counter is None else np.asarray(trigger_counter, dtype=np.int64)[res.ev_window]
        n_hits = np.bincount(snap_ev, minlength=n_ev)
        trig = snap_mask != 0
        n_trig = np.bincount(snap_ev[trig], minlength=n_ev)
        if trig.any():
            pairs = np.unique(np.stack([snap_ev[trig], snap["dom_id"][trig].astype(np.int64)]), axis=1)
            n_doms = np.bincount(pairs[0], minlength=n_ev)
        else:
            n_doms = np.zeros(n_ev, np.int64)
        events = make_table(
            "triggered_events", event_id=out_ids, trigger_mask=res.ev_mask.astype(np.uint64), trigger_counter=counter,
            snapshot_start=res.ev_start, snapshot_end=res.ev_end, n_hits=n_hits.astype(np.int32),
            n_triggered_hits=n_trig.astype(np.int32), n_triggered_doms=n_doms.astype(np.int32),
            overlays=res.ev_overlays.astype(np.int32),
        )
        cols = {k: snap[k] for k in ("dom_id", "channel_id", "pmt_id", "time", "tot", "npe", "origin")}
        snapshot = make_table("snapshot_hits", event_id=out_ids[snap_ev], **cols, trigger_mask=snap_mask)
        stats = dict(n_l1=int(res.n_l1.sum()), n_l2=int(res.n_l2.sum()), n_dropped=int(res.n_dropped.sum()),
                     n_windows=len(ids))
        return events, snapshot, stats


def _params(cfg: TriggerConfig, k_light: float) -> K.TriggerParams:
    mu, sh, mx = cfg.trigger3DMuon, cfg.trigger3DShower, cfg.triggerMXShower
    return K.TriggerParams(
        float(cfg.TMaxLocal_ns), int(cfg.L1Min), bool(cfg.combineL1),
        float(cfg.L2.TMaxLocal_ns), int(cfg.L2.numberOfHits), float(cfg.L2.ctMin),
        float(cfg.TMaxEvent_ns),
        bool(mu.enabled), int(mu.numberOfHits), int(mu.numberOfModules), float(mu.DMax_m), float(mu.roadWidth_m),
        float(mu.TMaxExtra_ns), int(mu.factoryLimit),
        bool(sh.enabled), int(sh.numberOfHits), int(sh.numberOfModules), float(sh.DMax_m), float(sh.TMaxExtra_ns),
        int(sh.factoryLimit),
        bool(mx.enabled), int(mx.numberOfHits), int(mx.numberOfModules), float(mx.DMax_m), float(mx.TMaxExtra_ns),
        int(mx.factoryLimit),
        float(k_light), float(C.INDEX_OF_REFRACTION_GROUP), float(C.C_LIGHT),
        int(C.TRIGGER_BIT_3DMUON), int(C.TRIGGER_BIT_3DSHOWER), int(C.TRIGGER_BIT_MXSHOWER),
        int(C.TRIGGER_BIT_FACTORY_LIMIT),
    )


def trigger_hits(hits: Table, detector, config: TriggerConfig | None = None, **kwargs) -> tuple[Table, Table, dict]:
    """Trigger a hits table with ``config`` (default ARCA21); see :meth:`TriggerProcessor.trigger_table`."""
    return TriggerProcessor(config or TriggerConfig(), detector).trigger_table(hits, **kwargs)


@register_stage
class Trigger(Stage):
    """L1/L2, 3DMuon, 3DShower and MXShower triggers with event building (see the module doc).

    Reads ``hits`` (L0) and writes, for every simulated event that fires, one row of
    ``triggered_events`` and its ``snapshot_hits`` (all L0 hits in the snapshot window, each
    with the trigger bits of the clusters it is in). Events that do not fire produce no rows.
    """

    name: ClassVar[str] = "trigger"
    role: ClassVar[str] = "trigger"
    consumes: ClassVar[tuple[str, ...]] = ("hits",)
    produces: ClassVar[tuple[str, ...]] = ("triggered_events", "snapshot_hits")
    Config: ClassVar[type[StageConfig]] = TriggerConfig

    def __init__(self, config=None, detector=None, site=None):
        super().__init__(config, detector, site)
        self._processor = None
        if detector is not None:
            self._processor = TriggerProcessor(self.config, detector)

    def processor(self, detector) -> TriggerProcessor:
        """The :class:`TriggerProcessor` for ``detector`` (built once per detector)."""
        if self._processor is None or self._processor.detector is not detector:
            self._processor = TriggerProcessor(self.config, detector)
        return self._processor

    @property
    def muon_window_ns(self) -> float:
        """Longest time span of a causally connected 3DMuon cluster [ns] (its seed window)."""
        mu = self.config.trigger3DMuon
        k = cherenkov_distance_factor()
        return (min(math.sqrt(1 + k * k) * mu.DMax_m, mu.DMax_m + 0.5 * k * mu.roadWidth_m)
                + C.C_LIGHT * mu.TMaxExtra_ns) / C.C_LIGHT

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        detector = ctx.detector if ctx.detector is not None else self.detector
        if detector is None:
            raise StageError("stage 'trigger' needs a detector")
        events, snapshot, stats = self.processor(detector).trigger_table(
            tables["hits"], np.asarray(ctx.event_ids, dtype=np.int64), where="stage 'trigger'")
        logger.debug("trigger: %d of %d events fired; %d L1s, %d L2s; %d further events in the same windows dropped",
                     len(events), len(ctx.event_ids), stats["n_l1"], stats["n_l2"], stats["n_dropped"])
        return {"triggered_events": events, "snapshot_hits": snapshot}


#: Names of km3sim < 0.x (3DMuon-only trigger), kept for existing code and productions.
Trigger3DMuon = Trigger
Trigger3DMuonConfig = TriggerConfig


def _sorted_by_event_time(hits: Table) -> Table:
    """``hits`` sorted by (event_id, time) (returned as is when already sorted)."""
    ev = hits["event_id"]
    t = hits["time"]
    if len(ev) < 2:
        return hits
    d_ev = np.diff(ev)
    if np.all((d_ev > 0) | ((d_ev == 0) & (np.diff(t) >= 0))):
        return hits
    return hits[np.lexsort((t, ev))]
