"""The KM3NeT-like trigger: L0 hits -> L1 local coincidences -> 3DMuon trigger -> snapshot.

Stage :class:`Trigger3DMuon` (registered as ``"trigger"``). Parameters follow Jpp's
``JTriggerParameters`` (PHYSICS.md §12), in snake_case with units:

* **L1** (``TMaxLocal_ns``, ``combineL1``): at least ``l1_min_hits`` hits on different PMTs of
  one DOM within ``tmax_local_ns``; the L1 time is the time of its first hit.
* **L2** (Jpp L2 ``TMaxLocal_ns``, ``ctMin``): an L1 that contains at least ``l2_min_hits``
  hits on different PMTs within ``l2_tmax_ns`` (10 ns), with PMT axes at cos ≥ ``l2_ct_min``
  to the opening hit's PMT. The L2s, at the time of their first L2 hit, are the input of the
  3D trigger (PHYSICS.md §12: "L2 (input of the 3D triggers)"). ``l2_tmax_ns = None`` feeds
  all L1s to the 3D trigger instead.
* **3DMuon** (``numberOfHits``, ``numberOfModules``, ``roadWidth_m``, ``gridAngle_deg``,
  ``DMax_m``, ``TMaxExtra_ns``): for each direction of a Fibonacci grid covering the full
  sphere with ~``direction_step_deg`` spacing (413 directions for 10°), the input L2s are
  tested pairwise for causal compatibility with one straight muon along that direction; the
  largest pairwise compatible subset is found greedily (L2s with fewer compatible partners
  than a cluster needs are dropped, then the L2 with the most incompatibilities is removed
  until all remaining pairs are compatible); the direction fires if the subset has at least
  ``muon_min_hits`` L2s on at least ``muon_min_doms`` DOMs. The event fires if any direction
  fires; the triggered hits are all L0 hits of the L1s in the union of the firing subsets.
* **Factory limit**: a time window (the longest time a causally connected cluster can span)
  with at least ``factory_limit`` input L2s triggers without clustering (all of them are
  triggered hits), with bit 31 set besides the 3DMuon bit 4 (FORMATS.md §5 trigger bits).
* **Snapshot** (``TMaxEvent_ns``): all L0 hits within
  [first triggered hit − ``tmax_event_ns``, last triggered hit + ``tmax_event_ns``].

Causality condition of the 3DMuon trigger
-----------------------------------------
Take the muon along z' (speed c). A PMT at transverse distance ρ from the track and
longitudinal coordinate z' sees direct Cherenkov light at (PHYSICS.md §9.1)

    c·t = c·t0 + z' − ρ/tanθc + ρ·n_g/sinθc = c·t0 + z' + k·ρ,
    k = (n_g − cosθc) / sinθc,   cosθc = 1/n_phase,

(light is emitted at the phase-velocity Cherenkov angle and travels at the group velocity
c/n_g; for n_g = n_phase, k = tanθc). For two hits i, j this gives

    c·(t_j − t_i) − (z'_j − z'_i) = k·(ρ_j − ρ_i).

The track position is unknown, but both PMTs lie within the road width of the track
(0 ≤ ρ ≤ road_width) and, by the triangle inequality in the transverse plane,
|ρ_j − ρ_i| ≤ R_ij (their transverse distance) and R_ij ≤ ρ_i + ρ_j ≤ 2·road_width. Hence
the exact necessary conditions

    R_ij ≤ 2·road_width,
    |c·(t_j − t_i) − (z'_j − z'_i)| ≤ k·min(R_ij, road_width) + c·tmax_extra,

with ``tmax_extra_ns`` absorbing time jitter, scattering and the grid's direction error, and
the Jpp ``DMax`` cut |x_j − x_i| ≤ dmax. With n_phase = 1.3499 and n_g = 1.3800851282
(constants.py), k = 0.9517; a bound R·tanθc (tanθc = 0.9068) would be ~5 % tighter than the
geometry allows, because the light travels at the group velocity.

Simplifications: one triggered event per input event (the simulated time window), so two
muons in one window give one event; the snapshot hits are the L0 hits the detect stage wrote
for that window (a snapshot reaching outside it is cut there); the triggered hits are all the
hits of the L1s in a firing cluster; ``trigger_counter`` = ``event_id`` (chunk invariant and
unique in a production, unlike a running counter).
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from km3sim import constants as C
from km3sim.errors import ConfigError, StageError
from km3sim.schema import empty_table, make_table
from km3sim.stage import Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table
from km3sim.trigger import _kernels as K

__all__ = [
    "Trigger3DMuon",
    "Trigger3DMuonConfig",
    "TRIGGER_PRESETS",
    "preset",
    "cherenkov_distance_factor",
    "n_grid_directions",
]

logger = logging.getLogger(__name__)


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


class Trigger3DMuonConfig(StageConfig):
    """Configuration of :class:`Trigger3DMuon` (Jpp ``JTriggerParameters`` names in snake case).

    Defaults are the ARCA21 production values (PHYSICS.md §12); see :func:`preset`. In a
    production YAML, ``preset: orca6`` starts from a preset and the other keys override it.
    """

    preset: str | None = Field(None, description="start from this trigger preset (arca21, orca6); the other keys override it")

    tmax_local_ns: float = Field(25.0, gt=0, description="L1 window on one DOM (Jpp TMaxLocal_ns)")
    l1_min_hits: int = Field(2, ge=2, le=31, description="minimum distinct PMTs of an L1")
    combine_l1: bool = Field(True, description="merge overlapping L1s of a DOM (Jpp combineL1)")
    l2_tmax_ns: float | None = Field(
        10.0, gt=0, description="L2 window (input of the 3D trigger); None: the 3D trigger takes all L1s"
    )
    l2_min_hits: int = Field(2, ge=2, le=31, description="minimum distinct PMTs of an L2")
    l2_ct_min: float = Field(-1.0, ge=-1, le=1, description="L2: minimum cos of the angle between PMT axes (-1: no cut; Jpp ctMin)")
    muon_min_hits: int = Field(5, ge=2, description="3DMuon: minimum L1s in the cluster (numberOfHits)")
    muon_min_doms: int = Field(5, ge=1, description="3DMuon: minimum distinct DOMs (numberOfModules)")
    road_width_m: float = Field(120.0, gt=0, description="3DMuon road width (roadWidth_m)")
    direction_step_deg: float = Field(10.0, gt=0, le=90, description="3DMuon direction grid spacing (gridAngle_deg)")
    dmax_m: float = Field(891.0, gt=0, description="3DMuon maximum DOM distance (DMax_m)")
    tmax_extra_ns: float = Field(25.0, ge=0, description="3DMuon extra time tolerance (TMaxExtra_ns)")
    tmax_event_ns: float = Field(4102.0, ge=0, description="snapshot half-width around the triggered hits (TMaxEvent_ns)")
    factory_limit: int = Field(100, ge=0, description="3D-trigger inputs (L2s) in one causal time window from which on the event always triggers (0 = off)")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") is not None:
            name = str(data["preset"]).lower()
            if name not in TRIGGER_PRESETS:
                raise ValueError(f"unknown trigger preset {data['preset']!r}; known: {sorted(TRIGGER_PRESETS)}")
            return {**TRIGGER_PRESETS[name], **data, "preset": name}
        return data

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "Trigger3DMuonConfig":
        """The config of a named preset (``"arca21"``, ``"orca6"``), with optional overrides."""
        return preset(name, **overrides)


#: Trigger presets decoded from stored ``JTriggerParameters`` (PHYSICS.md §12).
#: ``arca21``: ARCA21 MC v8.1 run-by-run, detector 133. ``orca6``: no ORCA6 trigger parameters
#: were decoded; the values are those of the early ORCA detection-unit DAQ file (column
#: "early ORCA DU" of PHYSICS.md §12), the closest ORCA setting available.
TRIGGER_PRESETS: dict[str, dict] = {
    "arca21": dict(
        tmax_local_ns=25.0,
        l1_min_hits=2,
        combine_l1=True,
        l2_tmax_ns=10.0,
        l2_min_hits=2,
        l2_ct_min=-1.0,
        muon_min_hits=5,
        muon_min_doms=5,
        road_width_m=120.0,
        direction_step_deg=10.0,
        dmax_m=891.0,
        tmax_extra_ns=25.0,
        tmax_event_ns=4102.0,
        factory_limit=100,
    ),
    "orca6": dict(
        tmax_local_ns=25.0,
        l1_min_hits=2,
        combine_l1=True,
        l2_tmax_ns=10.0,
        l2_min_hits=2,
        l2_ct_min=0.0,
        muon_min_hits=4,
        muon_min_doms=4,
        road_width_m=43.0,
        direction_step_deg=10.0,
        dmax_m=165.0,
        tmax_extra_ns=25.0,
        tmax_event_ns=1000.0,
        factory_limit=100,
    ),
}


def preset(name: str, **overrides) -> Trigger3DMuonConfig:
    """:class:`Trigger3DMuonConfig` of preset ``name`` (see :data:`TRIGGER_PRESETS`).

    Raises
    ------
    ConfigError
        For an unknown preset name.
    """
    key = name.lower()
    if key not in TRIGGER_PRESETS:
        raise ConfigError(f"unknown trigger preset {name!r}; known: {sorted(TRIGGER_PRESETS)}")
    return Trigger3DMuonConfig(**{**TRIGGER_PRESETS[key], **overrides, "preset": key})


@register_stage
class Trigger3DMuon(Stage):
    """L1 + 3DMuon trigger with snapshot building (PHYSICS.md §12, FORMATS.md §5).

    Reads ``hits`` (L0) and writes, for every event that fires, one row of
    ``triggered_events`` and its ``snapshot_hits`` (all L0 hits in the snapshot window, each
    with the trigger bits of the L1s it belongs to). Events that do not fire produce no rows.

    ``trigger_mask`` = 1 << 4 (3DMuon), | 1 << 31 when the factory limit fired.
    ``trigger_counter`` = ``event_id``: a running counter would depend on the chunking.

    The direction grid and the DOM positions rotated into the frame of every grid direction
    depend only on the detector and are computed once (per detector) in ``__init__``.
    """

    name: ClassVar[str] = "trigger"
    role: ClassVar[str] = "trigger"
    consumes: ClassVar[tuple[str, ...]] = ("hits",)
    produces: ClassVar[tuple[str, ...]] = ("triggered_events", "snapshot_hits")
    Config: ClassVar[type[StageConfig]] = Trigger3DMuonConfig

    def __init__(self, config=None, detector=None, site=None):
        super().__init__(config, detector, site)
        cfg = self.config
        self.k_light = cherenkov_distance_factor()
        self.directions = K.direction_grid(n_grid_directions(cfg.direction_step_deg))
        # longest time two L1s of one causally connected cluster can be apart
        self.factory_window_ns = (
            math.sqrt(1.0 + self.k_light**2) * cfg.dmax_m / C.C_LIGHT + cfg.tmax_extra_ns
        )
        self._geom_det = None
        self._dom_pos = None
        self._rot_pos = None
        if detector is not None:
            self._prepare(detector)

    def _prepare(self, detector) -> None:
        if self._geom_det is detector:
            return
        self._dom_pos = np.ascontiguousarray(detector.dom_pos, dtype=np.float64)
        self._rot_pos = K.rotate_positions(self.directions, self._dom_pos)
        self._geom_det = detector
        logger.debug(
            "trigger geometry: %d DOMs x %d directions", self._dom_pos.shape[0], self.directions.shape[0]
        )

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        cfg = self.config
        detector = ctx.detector if ctx.detector is not None else self.detector
        if detector is None:
            raise StageError("stage 'trigger' needs a detector")
        self._prepare(detector)
        hits = tables["hits"]
        ev_all = np.asarray(ctx.event_ids, dtype=np.int64)
        if len(hits) == 0:
            return {"triggered_events": empty_table("triggered_events"), "snapshot_hits": empty_table("snapshot_hits")}
        hits = _sorted_by_event_time(hits)
        ev_ids, offs = hits.offsets(np.union1d(ev_all, np.unique(hits["event_id"])))
        try:
            dom_index = detector.dom_index(hits["dom_id"])
        except KeyError as exc:
            raise StageError(f"stage 'trigger': hits on modules unknown to the detector: {exc}") from None
        time = np.ascontiguousarray(hits["time"], dtype=np.float64)
        channel = np.ascontiguousarray(hits["channel_id"], dtype=np.int64)
        if np.any((channel < 0) | (channel > 62)):
            raise StageError("stage 'trigger': channel_id outside 0..62")
        use_l2 = cfg.l2_tmax_ns is not None
        if use_l2 and cfg.l2_ct_min > -1.0:
            try:
                hit_dir = np.ascontiguousarray(detector.pmt_dir[detector.pmt_index(hits["dom_id"], channel)])
            except KeyError as exc:
                raise StageError(f"stage 'trigger': hits on PMTs unknown to the detector: {exc}") from None
        else:
            hit_dir = np.zeros((0, 3))
        hit_mask, ev_mask, t_first, t_last, n_l1, n_l2 = K.trigger_3dmuon_events(
            offs,
            np.ascontiguousarray(dom_index, dtype=np.int64),
            channel,
            time,
            hit_dir,
            self._dom_pos,
            self._rot_pos,
            float(cfg.tmax_local_ns),
            int(cfg.l1_min_hits),
            bool(cfg.combine_l1),
            use_l2,
            float(cfg.l2_tmax_ns) if use_l2 else 0.0,
            int(cfg.l2_min_hits),
            float(cfg.l2_ct_min),
            float(cfg.road_width_m),
            float(cfg.dmax_m),
            float(cfg.tmax_extra_ns),
            float(self.k_light),
            float(C.C_LIGHT),
            int(cfg.muon_min_hits),
            int(cfg.muon_min_doms),
            int(cfg.factory_limit),
            float(self.factory_window_ns),
            int(C.TRIGGER_BIT_3DMUON),
            int(C.TRIGGER_BIT_FACTORY_LIMIT),
        )
        fired = ev_mask != 0
        logger.debug(
            "trigger: %d of %d events fired, %d L1s, %d into the 3D trigger",
            int(fired.sum()), len(ev_ids), int(n_l1.sum()), int(n_l2.sum()),
        )
        start = t_first - cfg.tmax_event_ns
        end = t_last + cfg.tmax_event_ns
        counts = np.diff(offs)
        hit_ev = np.repeat(np.arange(len(ev_ids)), counts)
        sel = fired[hit_ev] & (time >= start[hit_ev]) & (time <= end[hit_ev])
        snap = hits[sel]
        snap_mask = hit_mask[sel]
        snap_ev = hit_ev[sel]
        n_hits = np.bincount(snap_ev, minlength=len(ev_ids))
        trig_sel = snap_mask != 0
        n_trig = np.bincount(snap_ev[trig_sel], minlength=len(ev_ids))
        # distinct triggered DOMs per event
        pairs = np.unique(np.stack([snap_ev[trig_sel], snap["dom_id"][trig_sel].astype(np.int64)]), axis=1)
        n_trig_doms = np.bincount(pairs[0], minlength=len(ev_ids)) if pairs.size else np.zeros(len(ev_ids), np.int64)
        idx = np.flatnonzero(fired)
        triggered = make_table(
            "triggered_events",
            event_id=ev_ids[idx],
            trigger_mask=ev_mask[idx],
            trigger_counter=ev_ids[idx],
            snapshot_start=start[idx],
            snapshot_end=end[idx],
            n_hits=n_hits[idx].astype(np.int32),
            n_triggered_hits=n_trig[idx].astype(np.int32),
            n_triggered_doms=n_trig_doms[idx].astype(np.int32),
        )
        snapshot = make_table(
            "snapshot_hits",
            **{k: snap[k] for k in ("event_id", "dom_id", "channel_id", "pmt_id", "time", "tot", "npe", "origin")},
            trigger_mask=snap_mask,
        )
        return {"triggered_events": triggered, "snapshot_hits": snapshot}


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
