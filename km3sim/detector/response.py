"""PMT response and optical background (stage ``pmt_response``).

Photo-electrons (``mc_hits``) become digitised L0 hits (``hits``) with the Jpp PMT model of
PHYSICS.md §7.3 (per-PMT QE, gain, gain spread, threshold, threshold band, under-amplified
pulses, TTS, pile-up, ToT logarithmic then linear then saturated, time slewing, afterpulses),
plus optical background around each event: uncorrelated singles (⁴⁰K and dark counts), genuine
⁴⁰K coincidences on each DOM with the angular dependence of k40gen, optional bioluminescence
bursts (PHYSICS.md §8, §12, §13; :mod:`km3sim.detector.background`). Rates and dead or vetoed
PMTs may come from the real run (:class:`~km3sim.detector.conditions.RunConditions`).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from km3sim import schema
from km3sim.detector import background as bg
from km3sim.detector import pmt as pmt_model
from km3sim.detector._kernels import hit_columns
from km3sim.errors import ConfigError, StageError
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = ["PmtResponseConfig", "PmtResponse"]

log = logging.getLogger(__name__)


class PmtResponseConfig(StageConfig):
    """Configuration of :class:`PmtResponse`. ``None`` means: from the PMT parameter file if
    one is given, else the default of PHYSICS.md §7.3 / the ⁴⁰K preset."""

    # ---------------------------------------------------------------- inputs
    conditions: str | None = Field(
        None, description="RunConditions HDF5 file (km3sim.detector.conditions): per-PMT rates and "
        "HRV/FIFO/absent PMTs of a real run, sampled at each event's mc_time (ns since run start)"
    )
    pmt_parameters: str | None = Field(None, description="Jpp PMT parameter file (e.g. calib/PMTeff.txt)")
    pmt_overrides: list[dict] = Field(
        default_factory=list,
        description="per-PMT values: [{pmt_id: .. | dom_id: .., channel: .., qe/gain/gain_spread/threshold/"
        "threshold_band/rise_time/tts: .., tts_table: <file or built-in name>}]",
    )
    # ---------------------------------------------------------------- PMT
    tts_ns: float = Field(pmt_model.TTS_NS, ge=0.0, description="Gaussian transit-time spread σ [ns] (PMTs without their own)")
    tts_table: str | None = Field(
        None, description="tabulated transit-time distribution instead of the Gaussian tts_ns for the PMTs "
        f"without a TTS of their own (Jpp TTS < 0): {pmt_model.TTS_TABLE_BUILTIN!r} (built-in, main peak σ 2 ns "
        "with prepulse and late-pulse tails [UNVERIFIED]) or a text file of two columns time_ns, pdf",
    )
    gain_spread: float | None = Field(None, ge=0.0, description="Jpp charge σ of one p.e. for every PMT [p.e.] (default 0.4)")
    gain_spread_tot_scale: float = Field(
        pmt_model.GAIN_SPREAD_TOT_SCALE, gt=0.0, le=1.0,
        description="fraction of the Jpp gain spread applied (tunes the 1-p.e. ToT width to 2.4 ns)",
    )
    threshold_pe: float | None = Field(None, gt=0.0, lt=1.0, description="discriminator threshold for every PMT [p.e.]")
    threshold_band_pe: float | None = Field(None, ge=0.0, description="threshold band for every PMT [p.e.]")
    p_under_amplified: float | None = Field(None, ge=0.0, le=1.0, description="probability of an under-amplified pe")
    slewing: bool | None = Field(None, description="apply time slewing (Jpp table)")
    afterpulse_probability: float = Field(
        pmt_model.AFTERPULSE_PROBABILITY, ge=0.0, le=1.0, description="afterpulses per signal pe [UNVERIFIED]"
    )
    afterpulse_delay_ns: float = Field(pmt_model.AFTERPULSE_DELAY_NS, ge=0.0, description="mean afterpulse delay [ns] [UNVERIFIED]")
    afterpulse_delay_sigma_ns: float = Field(pmt_model.AFTERPULSE_DELAY_SIGMA_NS, ge=0.0, description="σ of the delay [ns]")
    # ---------------------------------------------------------------- background
    window_margin_ns: float = Field(
        5000.0, ge=0.0,
        description="background window margin around the event's photo-electrons [ns]; must cover the "
        "trigger's TMaxEvent (4102 ns ARCA) plus the L1 window and a pulse",
    )
    k40_preset: Literal["orca", "arca"] = Field("orca", description="site preset of the ⁴⁰K rates (PHYSICS.md §12)")
    k40_rate_hz: float | None = Field(
        None, ge=0.0, description="TOTAL singles rate per PMT [Hz] (⁴⁰K singles, coincidence hits, dark counts)"
    )
    k40_coincidence_hz: list[float] | None = Field(
        None, max_length=5, description="genuine 2-, 3-, ..., 6-fold coincidence rates per DOM [Hz]; [] = none"
    )
    k40_coincidence_sigma_ns: float | None = Field(None, ge=0.0, description="time spread of coincident hits [ns]")
    dark_rate_hz: float = Field(pmt_model.DARK_RATE_HZ, ge=0.0, description="part of the singles rate not scaled by the PMT QE [Hz]")
    bioluminescence: bool = Field(False, description="add bioluminescence bursts [UNVERIFIED parameters]")
    bioluminescence_burst_rate_hz: float = Field(0.002, ge=0.0, description="bursts per DOM per second")
    bioluminescence_factor: tuple[float, float] = Field((1.5, 10.0), description="range of the rate factor of a burst")
    bioluminescence_duration_s: tuple[float, float] = Field((0.1, 10.0), description="range of burst durations [s]")
    high_rate_veto_hz: float | None = Field(None, gt=0.0, description="PMTs above this rate are silent (ARCA 20 kHz, §12)")

    @field_validator("k40_coincidence_hz")
    @classmethod
    def _rates_positive(cls, v):
        if v is not None and any((not np.isfinite(x)) or x < 0 for x in v):
            raise ValueError(f"k40_coincidence_hz must be finite and not negative, got {v}")
        return v

    @field_validator("bioluminescence_factor", "bioluminescence_duration_s")
    @classmethod
    def _range(cls, v):
        if not (0 < v[0] <= v[1]):
            raise ValueError(f"need 0 < low <= high, got {v}")
        return v

    def k40(self) -> bg.K40Rates:
        """The ⁴⁰K rates: the preset with the values given here."""
        p = bg.K40_PRESETS[self.k40_preset]
        return bg.K40Rates(
            p.singles_hz if self.k40_rate_hz is None else float(self.k40_rate_hz),
            p.fold_hz if self.k40_coincidence_hz is None else tuple(float(x) for x in self.k40_coincidence_hz),
            p.sigma_ns if self.k40_coincidence_sigma_ns is None else float(self.k40_coincidence_sigma_ns),
        )


@register_stage
class PmtResponse(Stage):
    """KM3NeT 3-inch PMT response with optical background, at real-data level.

    Per event, with random numbers only from the event's seed for this stage
    (:func:`km3sim.detector._kernels.simulate_hits` lists the steps and the draw order):

    - PMTs that record nothing: disabled in the detector file, QE 0 in the PMT parameter file,
      and -- with ``conditions`` -- PMTs without a rate, in high-rate veto or FIFO-full at the
      event time, or (``high_rate_veto_hz``) above the veto rate; their pe are dropped too;
    - signal pe: QE scale (thinning), transit-time spread (Gaussian, or tabulated with
      ``tts_table``), charge (Gaussian about the gain with the
      gain spread, or under-amplified), pile-up of pe within a running pulse, ToT from the
      pulse model (logarithmic, linear 7 ns/p.e., saturation 210 ns; threshold band
      4.5 ± 1.5 ns), time slewing, afterpulses [UNVERIFIED];
    - background in [t_first − margin, t_last + margin] around the event's pe: uncorrelated
      singles at the PMT's total rate (``k40_rate_hz`` × QE for the ⁴⁰K part, or the
      conditions' rate at the event time) minus the coincidence hits, genuine 2..6-fold
      coincidences per DOM, bioluminescence bursts (option); all one pe with a charge above
      threshold, so configured and measured rates are rates of hits.

    ``tot`` is rounded to integer ns and clipped to 1..255; ``npe`` counts every pe of the hit;
    ``origin`` is the track_id of the first signal pe in the hit (afterpulses keep the origin
    of their pe), −1 for background only. Hits are ordered by event, then time.
    """

    name = "pmt_response"
    role = "detect"
    consumes = ("events", "mc_hits")
    produces = ("hits",)
    Config = PmtResponseConfig

    def __init__(self, config: PmtResponseConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._det_cache: tuple | None = None
        self._conditions = None
        self._bio_cache: dict = {}
        self.k40 = self.config.k40()

    @classmethod
    def input_files(cls, config: PmtResponseConfig) -> list[str]:
        tables = [config.tts_table] + [ov.get("tts_table") for ov in config.pmt_overrides]
        tables = [t for t in dict.fromkeys(tables) if isinstance(t, str) and t != pmt_model.TTS_TABLE_BUILTIN]
        return [p for p in (config.conditions, config.pmt_parameters) if p] + tables

    def header(self) -> dict:
        k = self.k40
        return {
            "k40_singles_hz": k.singles_hz,
            "k40_coincidence_hz": list(k.fold_hz),
            "k40_coincidence_sigma_ns": k.sigma_ns,
            "conditions": self.config.conditions or "",
            "pmt_parameters": self.config.pmt_parameters or "",
        }

    # ------------------------------------------------------------------------ set-up
    def _setup(self, detector):
        if self._det_cache is not None and self._det_cache[0] is detector:
            return self._det_cache[1]
        cfg = self.config
        common = {}
        for key, name in (("p_under_amplified", "p_under_amplified"), ("slewing", "slewing")):
            if getattr(cfg, key) is not None:
                common[name] = getattr(cfg, key)
        try:
            params = pmt_model.pmt_parameters(
                detector, cfg.pmt_parameters, overrides=cfg.pmt_overrides or None, tts_ns=cfg.tts_ns,
                tts_table=cfg.tts_table,
                gain_spread_scale=cfg.gain_spread_tot_scale,
                afterpulse_probability=cfg.afterpulse_probability, afterpulse_delay=cfg.afterpulse_delay_ns,
                afterpulse_delay_sigma=cfg.afterpulse_delay_sigma_ns, **common,
            )
        except ConfigError as exc:
            raise ConfigError(f"stage {self.name!r}: {exc}") from exc
        changed = False
        if cfg.gain_spread is not None:
            params.gain_spread[:] = cfg.gain_spread * cfg.gain_spread_tot_scale
        if cfg.threshold_pe is not None:
            params.threshold[:] = cfg.threshold_pe
            changed = True
        if cfg.threshold_band_pe is not None:
            params.threshold_band[:] = cfg.threshold_band_pe
        if changed:
            params.update_pulse_shape()
        doms = bg.DomCoincidences(detector)
        n = params.n_pmts
        coinc_base = doms.pmt_rates_hz(self.k40.fold_hz, n)  # coincidence hits per PMT at QE 1
        pmt_ids = np.asarray(detector.pmt_id, dtype=np.int64)
        sorter = np.argsort(pmt_ids, kind="stable")
        setup = {
            "params": params, "doms": doms, "coinc_base": coinc_base, "packed": bg.packed_pmt_parameters(params),
            "pmt_ids": pmt_ids, "sorter": sorter, "on": params.switched_on,
            "pmt_dom_id": np.ascontiguousarray(detector.pmt_dom_id, dtype=np.int32),
            "pmt_channel": np.ascontiguousarray(detector.pmt_channel, dtype=np.int32),
            "pmt_id32": np.ascontiguousarray(pmt_ids, dtype=np.int32),
        }
        if cfg.conditions and self._conditions is None:
            from km3sim.detector.conditions import RunConditions

            self._conditions = RunConditions.load(cfg.conditions)
        self._det_cache = (detector, setup)
        return setup

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

    def _singles(self, setup, total_hz, active):
        """Uncorrelated singles rate per PMT [Hz] from the total rates."""
        params = setup["params"]
        keep = np.where(active, np.minimum(params.qe, 1.0), 0.0)
        return np.where(active, np.clip(np.nan_to_num(total_hz, nan=0.0) - setup["coinc_base"] * keep, 0.0, None), 0.0)

    def _bursts(self, ctx: StageContext, doms: bg.DomCoincidences) -> dict:
        key = (ctx.seed, ctx.run_id, ctx.livetime_s)
        if key not in self._bio_cache:
            cfg = self.config
            model = bg.Bioluminescence(cfg.bioluminescence_burst_rate_hz, tuple(cfg.bioluminescence_duration_s),
                                       tuple(cfg.bioluminescence_factor))
            self._bio_cache = {key: model.timeline(ctx.seed, ctx.run_id, ctx.livetime_s, doms.n_doms, doms.kmax)}
        return self._bio_cache[key]

    # ------------------------------------------------------------------------ process
    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        cfg = self.config
        detector = self.detector if self.detector is not None else ctx.detector
        setup = self._setup(detector)
        params, doms = setup["params"], setup["doms"]
        n_pmts = params.n_pmts

        events = tables["events"]
        order_ev = np.argsort(events["event_id"], kind="stable")
        event_ids = events["event_id"][order_ev]
        mc_time_ns = np.asarray(events["mc_time"], dtype=np.float64)[order_ev]
        mc = tables["mc_hits"]
        idx = self._pmt_index(mc["pmt_id"], setup["pmt_ids"], setup["sorter"])
        if not mc.is_sorted_by_event():
            order = np.lexsort((mc["time"], mc["event_id"]))
            mc = mc[order]
            idx = idx[order]
        _, offsets = mc.offsets(event_ids)
        seeds = ctx.seeds(event_ids)
        n_ev = len(event_ids)

        # --------------------------------------------- rates and active PMTs per event group
        groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (events, active, total rates)
        if self._conditions is not None:
            cond = self._conditions
            t_s = mc_time_ns * 1e-9 + cond.frame_start_s[0]
            frame = cond.frame_index(t_s) if n_ev else np.zeros(0, dtype=np.int64)
            for f in np.unique(frame):
                sel = np.flatnonzero(frame == f)
                t = float(cond.frame_start_s[f])
                active = cond.pmt_active(detector, t) & setup["on"]
                total = np.nan_to_num(cond.pmt_rates(detector, t), nan=0.0)
                groups.append((sel, active, total))
        else:
            k40_part = max(self.k40.singles_hz - cfg.dark_rate_hz, 0.0)
            total = np.minimum(self.k40.singles_hz, cfg.dark_rate_hz) + k40_part * params.qe
            groups.append((np.arange(n_ev), setup["on"], total))

        # --------------------------------------------- bioluminescence: extra singles per event
        extra: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if cfg.bioluminescence and doms.n_doms:
            bursts = self._bursts(ctx, doms)
            new_groups = []
            for sel, active, total in groups:
                plain = []
                for e in sel:
                    t = mc_time_ns[e] * 1e-9
                    hit = np.flatnonzero((bursts["start_s"] <= t) & (t < bursts["stop_s"]))
                    if hit.size == 0:
                        plain.append(e)
                        continue
                    add = np.zeros(n_pmts)
                    for b in hit:
                        d = bursts["dom"][b]
                        sl = doms.dom_pmts[doms.dom_offsets[d]:doms.dom_offsets[d + 1]]
                        add[sl] += (bursts["factor"][b, : len(sl)] - 1.0).clip(0.0) * total[sl]
                    act_e = active
                    if cfg.high_rate_veto_hz is not None:
                        act_e = active & (total + add <= cfg.high_rate_veto_hz)
                    pm = np.flatnonzero((add > 0) & act_e)
                    extra[int(e)] = (pm, add[pm] * 1e-9)
                    new_groups.append((np.array([e]), act_e, total))
                new_groups.append((np.asarray(plain, dtype=np.int64), active, total))
            groups = new_groups
        if cfg.high_rate_veto_hz is not None:
            groups = [(s, a & (t <= cfg.high_rate_veto_hz), t) for s, a, t in groups]

        # --------------------------------------------- kernel per group
        mc_pmt = np.ascontiguousarray(idx, dtype=np.int64)
        mc_t = np.ascontiguousarray(mc["time"], dtype=np.float64)
        mc_o = np.ascontiguousarray(mc["origin"], dtype=np.int64)
        parts = []
        for sel, active, total in groups:
            if len(sel) == 0:
                continue
            counts = offsets[sel + 1] - offsets[sel]
            g_off = np.zeros(len(sel) + 1, dtype=np.int64)
            np.cumsum(counts, out=g_off[1:])
            rows = np.repeat(offsets[sel] - g_off[:-1], counts) + np.arange(g_off[-1])
            ex_pmt = [extra[int(e)][0] if int(e) in extra else np.zeros(0, np.int64) for e in sel]
            ex_rate = [extra[int(e)][1] if int(e) in extra else np.zeros(0) for e in sel]
            ex_off = np.zeros(len(sel) + 1, dtype=np.int64)
            np.cumsum([len(x) for x in ex_pmt], out=ex_off[1:])
            singles = self._singles(setup, total, active)
            h_ev, h_pmt, h_time, h_tot, h_npe, h_origin = bg.run_hit_kernel(
                seeds[sel], params, active, singles, doms, self.k40, cfg.window_margin_ns,
                mc_offsets=g_off, mc_pmt=mc_pmt[rows], mc_time=mc_t[rows], mc_origin=mc_o[rows],
                ex_offsets=ex_off, ex_pmt=np.concatenate(ex_pmt).astype(np.int64) if ex_pmt else None,
                ex_rate=np.concatenate(ex_rate) if ex_rate else None, packed=setup["packed"],
            )
            parts.append((sel[h_ev] if len(sel) < n_ev else h_ev, h_pmt, h_time, h_tot, h_npe, h_origin))
        if len(parts) > 1:
            cols = [np.concatenate(c) for c in zip(*parts)]
            o = np.argsort(cols[0], kind="stable")  # group hits keep their time order
            cols = [c[o] for c in cols]
        elif parts:
            cols = parts[0]  # one group: its events are all events, in order
        else:
            cols = [np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.float32),
                    np.zeros(0, np.int32), np.zeros(0, np.int32)]
        h_ev, h_pmt, h_time, h_tot, h_npe, h_origin = cols
        ev_col, dom_col, ch_col, pmt_col, tot = hit_columns(
            h_ev, h_pmt, h_tot, event_ids, setup["pmt_dom_id"], setup["pmt_channel"], setup["pmt_id32"])
        hits = schema.make_table(
            "hits", event_id=ev_col, dom_id=dom_col, channel_id=ch_col, pmt_id=pmt_col, time=h_time, tot=tot,
            npe=h_npe, origin=h_origin,
        )
        log.debug("pmt_response: %d events, %d pe -> %d hits (%d background only)",
                  n_ev, len(mc), len(hits), int(np.sum(h_origin < 0)))
        return {"hits": hits}
