"""PMT response and optical background (stage ``pmt_response``).

Photo-electrons (``mc_hits``) become digitised L0 hits (``hits``): transit-time spread,
charge per photo-electron, pile-up of pe within a pulse, time over threshold from the Jpp
pulse model (PHYSICS.md §7.3), plus uncorrelated singles from ⁴⁰K and dark counts
(PHYSICS.md §8.2, §12).
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from km3sim import schema
from km3sim.detector._kernels import simulate_pmt_response
from km3sim.detector.pmt import (
    GAIN_SPREAD,
    RISE_TIME_NS,
    SATURATION_NS,
    THRESHOLD_PE,
    tuned_decay_time_ns,
)
from km3sim.errors import StageError
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = ["PmtResponseConfig", "PmtResponse"]

log = logging.getLogger(__name__)


class PmtResponseConfig(StageConfig):
    """Configuration of :class:`PmtResponse`."""

    tts_ns: float = Field(2.0, ge=0.0, description="Gaussian transit-time spread σ [ns]")
    k40_rate_hz: float = Field(
        7000.0, ge=0.0, description="uncorrelated singles rate per PMT (⁴⁰K + dark counts) [Hz]"
    )
    window_margin_ns: float = Field(
        5000.0, ge=0.0, description="background window margin around the event's photo-electrons [ns]"
    )
    gain_spread: float = Field(GAIN_SPREAD, ge=0.0, description="charge σ of one photo-electron [p.e.]")
    threshold_pe: float = Field(THRESHOLD_PE, gt=0.0, lt=1.0, description="discriminator threshold [p.e.]")


@register_stage
class PmtResponse(Stage):
    """KM3NeT 3-inch PMT response with uncorrelated optical background.

    Per event, with random numbers only from the event's seed for this stage:

    - every photo-electron gets a Gaussian transit-time jitter (σ = ``tts_ns``) and a charge
      from a Gaussian about the gain (1) with σ = ``gain_spread`` (PHYSICS.md §7.3); a pulse
      whose total charge does not exceed ``threshold_pe`` gives no hit (single pe in the low
      tail are lost; QE is applied in the light stage);
    - per PMT in time order, pe arriving while the running pulse is over threshold (within
      its ToT, counted from the pulse's first pe) pile up into one hit whose ToT is recomputed
      from the summed charge;
    - ToT from the closed-form Jpp pulse model (:func:`km3sim.detector.pmt.time_over_threshold`,
      ToT(1 p.e.) = 26.9 ns), rounded to integer ns and clipped to 1..255;
    - hit time = arrival time of the first pe of the pulse (no time slewing);
    - uncorrelated singles (⁴⁰K and dark counts) at ``k40_rate_hz`` per usable PMT, uniform in
      [t_first − margin, t_last + margin] around the event's photo-electrons ([−margin, margin]
      for events without any), each one pe (npe = 1, origin −1) with a charge from the
      Gaussian truncated at the threshold, so that ``k40_rate_hz`` is the rate of hits.

    ``npe`` counts every pe of the hit, background pe included (a pure-background hit has
    npe = 1 unless singles pile up); ``origin`` is the track_id of the first signal pe in the
    hit, −1 if it has none.

    Only usable PMTs (``detector.pmt_usable`` where the detector has it, i.e. PMT and module
    not disabled, else ``pmt_status_ok``) produce hits; pe on other PMTs are dropped. Genuine ⁴⁰K coincidences between PMTs
    of one DOM (PHYSICS.md §8.2: ~570 Hz two-fold per DOM), afterpulses, time slewing,
    the threshold band, under-amplified pulses, per-PMT gain/QE/TTS values and the linear
    large-charge ToT regime are left for later.
    """

    name = "pmt_response"
    role = "detect"
    consumes = ("events", "mc_hits")
    produces = ("hits",)
    Config = PmtResponseConfig

    def __init__(self, config: PmtResponseConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        # the pulse shape is a PMT property: tuned once for the nominal threshold and kept
        # when only the threshold changes
        self.decay_time_ns = tuned_decay_time_ns()
        self._pmt_cache: tuple | None = None

    def _pmts(self, detector):
        if self._pmt_cache is not None and self._pmt_cache[0] is detector:
            return self._pmt_cache[1:]
        usable = np.asarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=bool)
        pmt_ids = np.asarray(detector.pmt_id, dtype=np.int64)
        sorter = np.argsort(pmt_ids, kind="stable")
        self._pmt_cache = (detector, usable, pmt_ids, sorter)
        return usable, pmt_ids, sorter

    def _pmt_index(self, mc_pmt_id, pmt_ids, sorter):
        """Detector index of each pmt_id; StageError for unknown PMTs."""
        if len(mc_pmt_id) == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(pmt_ids, mc_pmt_id, sorter=sorter), len(pmt_ids) - 1)
        idx = sorter[pos].astype(np.int64)
        bad = pmt_ids[idx] != mc_pmt_id
        if bad.any():
            raise StageError(
                f"stage {self.name!r}: mc_hits refer to PMTs not in the detector, e.g. pmt_id {mc_pmt_id[bad][:3]}"
            )
        return idx

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        cfg = self.config
        detector = self.detector if self.detector is not None else ctx.detector
        usable, pmt_ids, sorter = self._pmts(detector)

        events = tables["events"]
        event_ids = np.unique(events["event_id"])
        mc = tables["mc_hits"]
        idx = self._pmt_index(mc["pmt_id"], pmt_ids, sorter)
        keep = usable[idx]
        if not keep.all():
            mc = mc[keep]
            idx = idx[keep]
        if not mc.is_sorted_by_event():
            order = np.lexsort((mc["time"], mc["event_id"]))
            mc = mc[order]
            idx = idx[order]
        _, offsets = mc.offsets(event_ids)
        seeds = ctx.seeds(event_ids)
        h_ev, h_pmt, h_time, h_tot, h_npe, h_origin = simulate_pmt_response(
            seeds,
            offsets,
            np.ascontiguousarray(idx, dtype=np.int64),
            np.ascontiguousarray(mc["time"], dtype=np.float64),
            np.ascontiguousarray(mc["origin"], dtype=np.int64),
            np.flatnonzero(usable).astype(np.int64),
            float(cfg.tts_ns),
            float(cfg.k40_rate_hz) * 1e-9,
            float(cfg.window_margin_ns),
            float(cfg.gain_spread),
            float(cfg.threshold_pe),
            RISE_TIME_NS,
            self.decay_time_ns,
            SATURATION_NS,
        )
        tot = np.clip(np.rint(h_tot), 1, 255).astype(np.uint8)
        hits = schema.make_table(
            "hits",
            event_id=event_ids[h_ev],
            dom_id=detector.pmt_dom_id[h_pmt],
            channel_id=detector.pmt_channel[h_pmt],
            pmt_id=detector.pmt_id[h_pmt],
            time=h_time,
            tot=tot,
            npe=h_npe,
            origin=h_origin,
        )
        log.debug(
            "pmt_response: %d events, %d pe -> %d hits (%d background only)",
            len(event_ids), len(mc), len(hits), int(np.sum(h_origin < 0)),
        )
        return {"hits": hits}  # the kernel orders hits by (event, time)
