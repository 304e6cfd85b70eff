"""Muon track reconstruction: line-fit prefit and a robust least-squares time-residual fit.

Stage :class:`TrackFit` (registered as ``"track_fit"``). For every triggered event it writes
two rows of ``reco_tracks``:

1. ``rec_type`` :data:`REC_TYPE_LINEFIT` (``rec_stage`` 1): the least-squares line through the
   DOM positions of the triggered hits versus their times (PHYSICS.md §9.2),
   v = (<x t> − <x><t>)/(<t²> − <t>²), direction v/|v|; pos = <x>, time = <t>.
2. ``rec_type`` :data:`REC_TYPE_TRACKFIT` (``rec_stage`` 2): a least-squares fit of the
   time residuals of direct Cherenkov light (PHYSICS.md §9.1, n_phase = 1.3499,
   n_g = 1.3800851282) with :func:`scipy.optimize.least_squares` and a soft-L1 robust loss.

The line fit is strongly biased for Cherenkov light (the light front is a cone, not a plane
moving with the muon), so the track fit is seeded from the line fit *and* from the best
directions of a direction scan (a Fibonacci grid over the full sphere, for each direction a
linear fit of position and time; :func:`km3sim.reco._kernels.scan_directions`), as in the
multi-seed strategy of PHYSICS.md §9.2. Each seed (the line fit and the ``n_seeds`` best scan
directions at least ``seed_separation_deg`` apart) is fitted on the triggered hits; the winner
is the fit with the smallest truncated χ² over *all* snapshot hits, Σ min(r², W²)/W² with
W = ``hit_window_ns`` (a hit outside the window costs 1, whatever its residual). This is
robust against the few background L1s a loose 3D trigger lets in, whose large residuals
dominate a soft-L1 cost, and it rewards tracks that also explain non-triggered hits. The hits
are then selected as the triggered hits plus the snapshot hits within ±``hit_window_ns`` of
the winner's expected times and fitted again; the selection is then redone around that fit
(all snapshot hits within ±``hit_window_ns``, triggered or not, so outlying triggered hits
drop out) for the final fit.

Events with hits on only one or two DUs are intrinsically ambiguous (rotation about the DU
line) and can end up far from the truth with a good fit quality.

Fit parameters: two angles (α, β) in the tangent plane of the seed direction, two
coordinates (a, b) of the track's crossing point with the plane through the hits' centre of
gravity perpendicular to the seed direction, and the time t0 at that point. Residuals are
(t_hit − t_exp)/σ with σ = ``sigma_ns`` (PMT TTS, PHYSICS.md §12); hit positions are the
PMT photocathode positions. The reported position is the point of the track closest to the
centre of gravity of the fitted hits, and ``time`` the time of the muon there.

Output columns of the track fit:

* ``likelihood`` = −(final robust cost) = −½ Σ ρ_softL1((r/σ)²) at f_scale = ``f_scale_ns``/σ;
* ``chi2_ndf`` = Σ (r/σ)² / (n_hits − 5), all fitted hits;
* ``beta0_rad`` = sqrt(C_αα + C_ββ) with C = (JᵀJ)⁻¹ of the unit-σ residuals, the angles taken
  in the tangent plane of the final direction (rms space-angle error for Gaussian errors);
* ``energy`` = NaN: no energy estimate yet (a proper energy fit comes later);
* ``status`` 0 = converged; :data:`STATUS_FAILED` (1) = fewer than ``min_hits`` triggered
  hits, degenerate hits or no convergence — the row is still written, with NaN values.

``REC_TYPE_LINEFIT`` = 5001 and ``REC_TYPE_TRACKFIT`` = 5002 are km3sim's own numbers
(distinct from Jpp's 4000 series) and are defined in this module.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np
from pydantic import Field
from scipy.optimize import least_squares

from km3sim import constants as C
from km3sim.errors import StageError
from km3sim.reco import _kernels as K
from km3sim.schema import empty_table, make_table
from km3sim.stage import Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "REC_TYPE_LINEFIT",
    "REC_TYPE_TRACKFIT",
    "STATUS_OK",
    "STATUS_FAILED",
    "TrackFit",
    "TrackFitConfig",
    "fit_track",
]

logger = logging.getLogger(__name__)

#: rec_type of the line-fit prefit rows (km3sim's own number).
REC_TYPE_LINEFIT = 5001
#: rec_type of the least-squares track-fit rows (km3sim's own number).
REC_TYPE_TRACKFIT = 5002

STATUS_OK = 0
STATUS_FAILED = 1


class TrackFitConfig(StageConfig):
    """Configuration of :class:`TrackFit`."""

    sigma_ns: float = Field(2.0, gt=0, description="time-residual resolution (PMT TTS) used to scale residuals")
    f_scale_ns: float = Field(5.0, gt=0, description="soft-L1 robust loss scale")
    hit_window_ns: float = Field(20.0, gt=0, description="snapshot hits within ±window of the expected time join the fit")
    min_hits: int = Field(5, ge=5, description="minimum triggered hits (and fitted hits) for a fit")
    scan_n_directions: int = Field(1000, ge=0, description="directions of the prefit scan over the full sphere (0 = line fit seed only)")
    n_seeds: int = Field(4, ge=1, description="best scan directions used as fit seeds (besides the line fit)")
    seed_separation_deg: float = Field(10.0, ge=0, description="minimum angle between two scan seeds")
    n_phase: float = Field(C.INDEX_OF_REFRACTION_PHASE, gt=1, description="phase index (Cherenkov angle)")
    n_group: float = Field(C.INDEX_OF_REFRACTION_GROUP, gt=1, description="group index (light speed)")
    max_nfev: int = Field(200, ge=10, description="maximum function evaluations per least-squares fit")


def _nan_row():
    return dict(
        pos=np.full(3, np.nan), dir=np.full(3, np.nan), time=np.nan, likelihood=np.nan,
        n_hits=0, chi2_ndf=np.nan, beta0=np.nan, status=STATUS_FAILED,
    )


class _Fitter:
    """Per-detector, per-config fitting helper (holds the scan grid and constants)."""

    def __init__(self, cfg: TrackFitConfig):
        self.cfg = cfg
        cos_c = 1.0 / cfg.n_phase
        sin_c = math.sqrt(1.0 - cos_c * cos_c)
        self.k = (cfg.n_group - cos_c) / sin_c
        self.c = C.C_LIGHT
        n = cfg.scan_n_directions
        self.scan_dirs = _fibonacci_sphere(n) if n > 0 else np.zeros((0, 3))
        self.cos_sep = math.cos(math.radians(cfg.seed_separation_deg))

    # -- one least-squares fit -------------------------------------------------------------
    def _lsq(self, pos, t, u0, p0, t0):
        """Fit starting at track (p0, u0, t0); returns (p, u, t0, cost, success)."""
        cfg = self.cfg
        f1, f2 = K.orthonormal_pair(u0)
        cog = pos.mean(axis=0)
        # start point: crossing of the seed track with the plane ⊥ u0 through cog
        s = float(np.dot(cog - p0, u0))
        p_start = p0 + s * u0
        x0 = np.array([0.0, 0.0, np.dot(p_start - cog, f1), np.dot(p_start - cog, f2), t0 + s / self.c])
        args = (pos, t, u0, f1, f2, cog, self.k, self.c, cfg.sigma_ns)
        try:
            res = least_squares(
                K.track_residuals, x0, jac=K.track_jacobian, args=args, loss="soft_l1",
                f_scale=cfg.f_scale_ns / cfg.sigma_ns, method="trf", x_scale="jac",
                max_nfev=cfg.max_nfev,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:  # degenerate hit sets
            logger.debug("least_squares failed: %s", exc)
            return None
        p, u, _ = K.track_point_direction(res.x, u0, f1, f2, cog)
        ok = bool(res.success) and np.all(np.isfinite(res.x))
        return p, u, float(res.x[4]), float(res.cost), ok

    def _select(self, pos_all, t_all, trig, p, u, t0):
        te = K.expected_times(pos_all, p, u, t0, self.k, self.c)
        return trig | (np.abs(t_all - te) <= self.cfg.hit_window_ns)

    # -- one event -------------------------------------------------------------------------
    def fit_event(self, dom_pos_all, pmt_pos_all, t_all, trig):
        """Line fit and track fit of one event; times centred by the caller."""
        cfg = self.cfg
        lf = _nan_row()
        tf = _nan_row()
        n_trig = int(trig.sum())
        lf["n_hits"] = n_trig
        if n_trig < cfg.min_hits:
            return lf, tf
        # (1) line fit on the triggered hits, DOM positions
        d_lf, cog_lf, tm_lf, _ = K.line_fit(dom_pos_all[trig], t_all[trig])
        if np.all(np.isfinite(d_lf)):
            lf.update(pos=cog_lf, dir=d_lf, time=tm_lf, status=STATUS_OK)
        # (2) seeds
        pos_t = pmt_pos_all[trig]
        t_t = t_all[trig]
        seeds = []  # (u, p, t0)
        cog = pos_t.mean(axis=0)
        tm = float(t_t.mean())
        if lf["status"] == STATUS_OK:
            # start at the hits' centre of gravity and mean time; the fit moves both
            seeds.append((d_lf, cog, tm))
        if self.scan_dirs.shape[0] > 0:
            q, pts, t0s = K.scan_directions(
                pos_t - cog, t_t - tm, self.scan_dirs, self.k, self.c, cfg.hit_window_ns, cfg.min_hits, 8
            )
            order = np.argsort(q, kind="stable")
            chosen = []
            for i in order:
                if not np.isfinite(q[i]) or len(chosen) >= cfg.n_seeds:
                    break
                d = self.scan_dirs[i]
                if any(np.dot(d, self.scan_dirs[j]) > self.cos_sep for j in chosen):
                    continue
                chosen.append(i)
                seeds.append((d, pts[i] + cog, float(t0s[i]) + tm))
        # each seed is fitted on the triggered hits; the winner has the smallest truncated chi2
        # over all snapshot hits (see the module docstring)
        best = None
        best_key = None
        for u0, p0, t0 in seeds:
            r = self._lsq(pos_t, t_t, u0, p0, t0)
            if r is None:
                continue
            key = (K.truncated_chi2(pmt_pos_all, t_all, r[0], r[1], r[2], self.k, self.c, cfg.hit_window_ns), r[3])
            if best is None or key < best_key:
                best, best_key = r, key
        if best is None:
            return lf, tf
        # (3) hit selection around the best track, fit, re-select, fit
        p, u, t0 = best[0], best[1], best[2]
        ok = best[4]
        sel = None
        for it in range(2):
            # first pass: triggered hits + hits in the window; second pass (re-selection):
            # the hits in the window of the first fit, triggered or not
            sel = self._select(pmt_pos_all, t_all, trig if it == 0 else np.zeros_like(trig), p, u, t0)
            if sel.sum() < cfg.min_hits:
                return lf, tf
            r = self._lsq(pmt_pos_all[sel], t_all[sel], u, p, t0)
            if r is None:
                return lf, tf
            p, u, t0, cost, ok = r
        pos_s = pmt_pos_all[sel]
        t_s = t_all[sel]
        n = int(sel.sum())
        # final quantities in the frame of the final direction
        cog = pos_s.mean(axis=0)
        s = float(np.dot(cog - p, u))
        p_c = p + s * u
        t_c = t0 + s / self.c
        f1, f2 = K.orthonormal_pair(u)
        x = np.array([0.0, 0.0, 0.0, 0.0, t_c])
        # p_c is on the plane ⊥ u through cog: a = b = 0 there
        args = (pos_s, t_s, u, f1, f2, p_c, self.k, self.c, cfg.sigma_ns)
        r = K.track_residuals(x, *args)
        jac = K.track_jacobian(x, *args)
        z = (r / (cfg.f_scale_ns / cfg.sigma_ns)) ** 2
        cost = 0.5 * (cfg.f_scale_ns / cfg.sigma_ns) ** 2 * float(np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))
        try:
            cov = np.linalg.inv(jac.T @ jac)
            beta0 = math.sqrt(cov[0, 0] + cov[1, 1]) if cov[0, 0] + cov[1, 1] >= 0 else np.nan
        except np.linalg.LinAlgError:
            beta0 = np.nan
        if not (ok and np.all(np.isfinite(u)) and np.isfinite(t_c)):
            return lf, tf
        tf.update(
            pos=p_c, dir=u, time=t_c, likelihood=-cost, n_hits=n,
            chi2_ndf=float(np.sum(r * r)) / (n - 5) if n > 5 else np.nan,
            beta0=beta0, status=STATUS_OK,
        )
        return lf, tf


def _fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` deterministic, evenly spread unit vectors over the full sphere."""
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def fit_track(dom_pos, pmt_pos, times, triggered, config: TrackFitConfig | None = None):
    """Line fit and track fit of one event's hits (the stage's per-event work).

    Parameters
    ----------
    dom_pos, pmt_pos : ndarray, shape (n, 3)
        DOM and PMT positions of the hits [m].
    times : ndarray, shape (n,)
        Hit times [ns].
    triggered : ndarray of bool, shape (n,)
        Hits that took part in the trigger.
    config : TrackFitConfig, optional

    Returns
    -------
    linefit, trackfit : dict
        Keys ``pos``, ``dir``, ``time``, ``likelihood``, ``n_hits``, ``chi2_ndf``, ``beta0``,
        ``status``.
    """
    fitter = _Fitter(config if config is not None else TrackFitConfig())
    return _fit_centred(fitter, dom_pos, pmt_pos, times, triggered)


def _fit_centred(fitter, dom_pos, pmt_pos, times, triggered):
    # centre the times on the triggered hits (numerical conditioning); fits are translation
    # invariant in time, so this does not change the result beyond rounding
    trig = np.asarray(triggered, dtype=bool)
    t_ref = float(times[trig].mean()) if trig.any() else 0.0
    lf, tf = fitter.fit_event(
        np.ascontiguousarray(dom_pos, dtype=np.float64),
        np.ascontiguousarray(pmt_pos, dtype=np.float64),
        np.ascontiguousarray(times, dtype=np.float64) - t_ref,
        trig,
    )
    lf["time"] = lf["time"] + t_ref
    tf["time"] = tf["time"] + t_ref
    return lf, tf


@register_stage
class TrackFit(Stage):
    """Line-fit prefit and robust least-squares muon track fit (PHYSICS.md §9.1, §9.2).

    Consumes ``triggered_events`` and ``snapshot_hits`` (hits with ``trigger_mask != 0`` are
    the triggered hits); produces two ``reco_tracks`` rows per triggered event (see the
    module docstring). Deterministic: no random numbers are used.
    """

    name: ClassVar[str] = "track_fit"
    role: ClassVar[str] = "reconstruct"
    consumes: ClassVar[tuple[str, ...]] = ("triggered_events", "snapshot_hits")
    produces: ClassVar[tuple[str, ...]] = ("reco_tracks",)
    Config: ClassVar[type[StageConfig]] = TrackFitConfig

    def __init__(self, config=None, detector=None, site=None):
        super().__init__(config, detector, site)
        self._fitter = _Fitter(self.config)

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        detector = ctx.detector if ctx.detector is not None else self.detector
        if detector is None:
            raise StageError("stage 'track_fit' needs a detector")
        events = tables["triggered_events"]
        hits = tables["snapshot_hits"]
        if len(events) == 0:
            return {"reco_tracks": empty_table("reco_tracks")}
        ev_ids = np.asarray(events["event_id"], dtype=np.int64)
        order = np.argsort(ev_ids, kind="stable")
        ev_ids = ev_ids[order]
        if len(hits) and not hits.is_sorted_by_event():
            hits = hits.sort(("event_id", "time"))
        hev = hits["event_id"]
        lo = np.searchsorted(hev, ev_ids, side="left")
        hi = np.searchsorted(hev, ev_ids, side="right")
        try:
            dom_index = detector.dom_index(hits["dom_id"])
            pmt_index = detector.pmt_index(hits["dom_id"], hits["channel_id"])
        except KeyError as exc:
            raise StageError(f"stage 'track_fit': hits on PMTs unknown to the detector: {exc}") from None
        dom_pos = detector.dom_pos[dom_index]
        pmt_pos = detector.pmt_pos[pmt_index]
        times = np.asarray(hits["time"], dtype=np.float64)
        trig = np.asarray(hits["trigger_mask"]) != 0
        rows = {k: [] for k in ("event_id", "rec_type", "rec_stage", "pos", "dir", "time", "likelihood", "n_hits", "chi2_ndf", "beta0", "status")}
        n_ok = 0
        for e, a, b in zip(ev_ids, lo, hi):
            lf, tf = _fit_centred(self._fitter, dom_pos[a:b], pmt_pos[a:b], times[a:b], trig[a:b])
            n_ok += tf["status"] == STATUS_OK
            for rec_type, rec_stage, r in ((REC_TYPE_LINEFIT, 1, lf), (REC_TYPE_TRACKFIT, 2, tf)):
                rows["event_id"].append(e)
                rows["rec_type"].append(rec_type)
                rows["rec_stage"].append(rec_stage)
                for key in ("pos", "dir", "time", "likelihood", "n_hits", "chi2_ndf", "beta0", "status"):
                    rows[key].append(r[key])
        logger.debug("track_fit: %d of %d events fitted", n_ok, len(ev_ids))
        pos = np.asarray(rows["pos"], dtype=np.float64).reshape(-1, 3)
        dirs = np.asarray(rows["dir"], dtype=np.float64).reshape(-1, 3)
        table = make_table(
            "reco_tracks",
            event_id=np.asarray(rows["event_id"], dtype=np.int64),
            rec_type=np.asarray(rows["rec_type"], dtype=np.int32),
            rec_stage=np.asarray(rows["rec_stage"], dtype=np.int32),
            pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2],
            dir_x=dirs[:, 0], dir_y=dirs[:, 1], dir_z=dirs[:, 2],
            time=np.asarray(rows["time"], dtype=np.float64),
            energy=np.full(len(rows["event_id"]), np.nan),
            likelihood=np.asarray(rows["likelihood"], dtype=np.float64),
            n_hits=np.asarray(rows["n_hits"], dtype=np.int32),
            chi2_ndf=np.asarray(rows["chi2_ndf"], dtype=np.float64),
            beta0_rad=np.asarray(rows["beta0"], dtype=np.float64),
            status=np.asarray(rows["status"], dtype=np.int32),
        )
        return {"reco_tracks": table}
