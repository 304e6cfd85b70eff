"""Muon track reconstruction in the style of the Jpp JMuon chain (stage ``track_fit``).

For every triggered event the stage :class:`TrackFit` writes up to four ``reco_tracks`` rows,
all with ``rec_type`` = :data:`JPP_RECONSTRUCTION_TYPE` (4000) and ``rec_stage`` the Jpp
application that made them (km3io ``_definitions/reconstruction.py``, PHYSICS.md §9.2):

1. :data:`JMUONPREFIT` (1) — direction scan (JMuonPrefit-like). Hits: the triggered hits
   (the L1 hits the 3D trigger found causally connected; far purer than all L1 hits of a
   snapshot in a km³ detector), or the L1 hits of the snapshot (≥ 2 PMTs of one DOM within
   ``l1_tmax_ns``, Jpp ``TMaxLocal_ns``) when there are fewer than ``min_hits``; bright events
   are thinned to ``prefit_max_hits``. Directions: a Fibonacci grid of
   ``prefit_n_directions`` over the sphere plus a local grid around the line fit of the hits
   (PHYSICS.md §9.2). For each direction, position and time follow from a linear estimator
   and robust Gauss–Newton steps on the time residuals (graduated Cauchy weights, late hits
   weighted by ``prefit_late_weight``: direct light is the earliest light, Fermat); quality:
   the truncated χ², Σ min(r², W²)/W² (W = ``hit_window_ns``) —
   :func:`km3sim.reco._kernels.scan_directions`. The ``n_prefits`` best directions at least
   ``seed_separation_deg`` apart are refined on local grids (``prefit_refine_deg``, steps
   shrinking by 3 over ``prefit_refine_levels`` levels). The row is the best prefit.
2. :data:`JMUONSIMPLEX` (2) — each prefit is refined by a robust least-squares fit of the
   direct-light time residuals (PHYSICS.md §9.1) of all snapshot hits within
   ±``hit_window_ns`` (soft-L1 M-estimator, Levenberg–Marquardt,
   :func:`~km3sim.reco._kernels.robust_track_fit`), hits re-selected and refitted. The
   candidates are ranked by the road likelihood ratio against background
   (:func:`~km3sim.reco._kernels.road_llr`, the PMTs within ``road_width_m`` along the seen
   segment of the track, from the first to the last emission point of a signal-like hit ± half
   a road width, so that a muon starting or stopping in the detector is not penalised for the dark
   part of its infinite line; each candidate with its own brightness), which compares
   candidates on the same data; the row is the best candidate.
3. :data:`JMUONGANDALF` (3) — maximum-likelihood fit of the arrival times (JMuonGandalf-like)
   from the ``n_gandalf`` best candidates: the first hit of every PMT within ``road_width_m``
   with a residual in [``t_min_ns``, ``t_max_ns``], with the time-residual PDF and expected
   photo-electrons of :mod:`km3sim.reco.pdf` (convoluted Pandel by default; ``pdf: tables``
   takes them from the simulation's light tables by distance and PMT orientation (R, θ, φ),
   with the light of the continuous-loss showers as a second component,
   :mod:`km3sim.reco.table_pdf`; other providers via ``register_light_tables``) scaled by the
   track brightness B, and a constant
   background rate (the ⁴⁰K singles rate, ``background_rate_hz``); see
   :func:`~km3sim.reco._kernels.gandalf_terms`. B is fitted first to the PMT charges on the
   candidate track. Minimised by quasi-Newton iterations with Levenberg–Marquardt damping
   (BHHH start, BFGS updates; the exact gradient of the piecewise-multilinear likelihood,
   :func:`~km3sim.reco._kernels.gandalf_terms_grad`), hits re-selected around the result and refitted; the
   result with the largest road likelihood ratio (seen segment, as above) is kept.
   ``beta0_rad`` = sqrt(C_αα + C_ββ) from the inverse of the numerical Hessian of −ln L
   (differences of the exact gradient; rms space-angle error for Gaussian errors; Jpp ``JGANDALF_BETA0_RAD``); ``chi2_ndf`` = −2 ln L/(n − 5).
4. :data:`JMUONENERGY` (4) — the brightness B refitted on the Gandalf track from the charges
   (ToT) of all usable PMTs within ``road_width_m`` (Poisson likelihood,
   :func:`~km3sim.reco._kernels.fit_brightness`), converted to the muon energy at the can
   with the calibration of :mod:`km3sim.reco.energy`; ``likelihood`` = the gain of ln L over
   background only, ``n_hits`` = PMTs with hits; direction and position as the Gandalf row.

Common columns: ``pos`` is the point of the track closest to the centre of gravity of the
fitted hits, ``time`` the muon's time there; ``n_hits`` the hits used (prefit hits for the
prefit); ``likelihood`` −(truncated χ²) for the prefit, −(robust cost) for the simplex,
ln L for Gandalf; ``status`` 0 = converged, :data:`STATUS_FAILED`
(1) = not enough hits or no convergence (row written with NaN values). Hit times are corrected
for the time slewing of their ToT (PHYSICS.md §7.3) unless ``slewing: false``.

Events with hits on only one or two DUs are intrinsically ambiguous (rotation about the DU
line) and may end up far from the truth with a good fit quality.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from km3sim import constants as C
from km3sim.detector.pmt import time_over_threshold, time_slewing_ns
from km3sim.errors import StageError
from km3sim.reco import _kernels as K
from km3sim.reco.pdf import D_FLOOR_M, light_tables
from km3sim.reco.table_pdf import shower_fraction_of_brightness, track_light_tables
from km3sim.schema import empty_table, make_table
from km3sim.stage import Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "JPP_RECONSTRUCTION_TYPE",
    "JMUONPREFIT",
    "JMUONSIMPLEX",
    "JMUONGANDALF",
    "JMUONENERGY",
    "JMUONSTART",
    "JLINEFIT",
    "STATUS_OK",
    "STATUS_FAILED",
    "BACKGROUND_RATE_HZ",
    "TrackFit",
    "TrackFitConfig",
    "TrackFitter",
    "EventHits",
]

logger = logging.getLogger(__name__)

#: rec_type of every Jpp-style fit (km3io ``JPP_RECONSTRUCTION_TYPE``).
JPP_RECONSTRUCTION_TYPE = 4000
#: rec_stage values of the JMuon applications (km3io ``_definitions/reconstruction.py``).
JMUONPREFIT = 1
JMUONSIMPLEX = 2
JMUONGANDALF = 3
JMUONENERGY = 4
JMUONSTART = 5
JLINEFIT = 6

STATUS_OK = 0
STATUS_FAILED = 1

#: Margin of the seen segment of the candidate ranking (:meth:`TrackFitter._llr_of`), in road
#: widths: PMTs farther before the first / after the last emission point of a signal-like hit do
#: not count.
LLR_SEGMENT_MARGIN = 0.5

#: ⁴⁰K singles rate per PMT assumed by the reconstruction in production [Hz] (PHYSICS.md §12:
#: 7 kHz ORCA, 6 kHz ARCA).
BACKGROUND_RATE_HZ = {"orca": 7000.0, "arca": 6000.0}


class TrackFitConfig(StageConfig):
    """Configuration of :class:`TrackFit` (Jpp JMuon* parameter names in snake case)."""

    tts_ns: float = Field(2.0, gt=0, description="PMT transit-time spread σ: residual scale of the simplex fit and Gaussian of the PDF (PHYSICS.md §12)")
    slewing: bool = Field(True, description="correct hit times for the time slewing of their ToT (PHYSICS.md §7.3)")
    background_rate_hz: float | None = Field(None, ge=0, description="background rate per PMT in the likelihood; default: 7 kHz ORCA, 6 kHz ARCA (PHYSICS.md §12)")
    pdf: str = Field("pandel", description="light model of the likelihood: 'tables' (the simulation's light tables, km3sim.reco.table_pdf) or a provider of km3sim.reco.pdf.register_light_tables ('pandel')")
    tables: str = Field("auto", description="pdf: tables: light-table file, or 'auto' (the cached table of the site's water, as direct_light mode tables finds it)")
    table_dir: str | None = Field(None, description="pdf: tables with tables: auto: directory to search (default $KM3SIM_TABLE_DIR, ~/.cache/km3sim/tables)")
    l1_tmax_ns: float = Field(25.0, gt=0, description="L1 coincidence window on one DOM (Jpp TMaxLocal_ns)")
    min_hits: int = Field(5, ge=5, description="minimum L1 hits for a prefit and hits for each fit")
    prefit_n_directions: int = Field(500, ge=10, description="directions of the prefit scan over the full sphere")
    prefit_refine_deg: float = Field(2.0, gt=0, description="step of the local grid refining each prefit direction")
    prefit_refine_steps: int = Field(3, ge=0, description="local grid of (2n+1)^2 directions around each prefit")
    prefit_refine_levels: int = Field(2, ge=0, description="refinement levels (the step shrinks by 3 per level)")
    prefit_linefit_deg: float = Field(2.0, gt=0, description="step of the local grid around the line fit of the prefit hits")
    prefit_linefit_steps: int = Field(6, ge=0, description="local grid of (2n+1)^2 directions around the line fit (0: none)")
    prefit_min_triggered: int = Field(0, ge=0, description="prefit: below this many triggered hits (at least min_hits) the snapshot L1 hits are added")
    prefit_iterations: int = Field(5, ge=1, description="prefit: robust Gauss-Newton steps per direction")
    prefit_max_hits: int = Field(150, ge=10, description="prefit: at most this many hits (bright events are thinned)")
    prefit_late_weight: float = Field(0.5, gt=0, le=1, description="prefit: weight of hits later than the track relative to earlier ones")
    prefit_late_cost: float = Field(1.0, gt=0, le=1, description="prefit: largest quality cost of a late hit (an early one costs up to 1)")
    n_prefits: int = Field(4, ge=1, description="prefit directions passed to the simplex fit (Jpp numberOfPrefits)")
    n_gandalf: int = Field(2, ge=1, description="best simplex candidates (by road likelihood ratio) passed to the likelihood fit")
    seed_separation_deg: float = Field(5.0, ge=0, description="minimum angle between two prefit directions")
    hit_window_ns: float = Field(20.0, gt=0, description="prefit/simplex: hits within ±window of the expected time")
    f_scale_ns: float = Field(5.0, gt=0, description="simplex: soft-L1 M-estimator scale")
    road_width_m: float | None = Field(None, gt=0, description="likelihood and energy fits: PMTs within this distance of the track; default 2 x the DU spacing within [50, 150] m")
    t_min_ns: float = Field(-25.0, lt=0, description="likelihood and energy fits: earliest time residual of a hit")
    t_max_ns: float = Field(400.0, gt=0, description="likelihood and energy fits: latest time residual of a hit")
    n_phase: float = Field(C.INDEX_OF_REFRACTION_PHASE, gt=1, description="phase index (Cherenkov angle)")
    n_group: float = Field(C.INDEX_OF_REFRACTION_GROUP, gt=1, description="group index (light speed)")
    max_iterations: int = Field(50, ge=1, description="maximum iterations of each minimisation")

    @model_validator(mode="after")
    def _check(self):
        if self.t_max_ns <= self.t_min_ns:
            raise ValueError(f"t_max_ns ({self.t_max_ns}) must exceed t_min_ns ({self.t_min_ns})")
        return self


@dataclass
class EventHits:
    """The hits of one event as the fitter needs them (times already slewing-corrected)."""

    pmt: np.ndarray  # detector PMT index of each hit (int64), hits sorted by time
    dom: np.ndarray  # detector DOM index of each hit (int64)
    time: np.ndarray  # [ns]
    triggered: np.ndarray  # bool
    charge: np.ndarray  # [pe], from the ToT (:func:`charge_from_tot`; negative: saturated)


def _row(stage: int) -> dict:
    return dict(rec_stage=stage, pos=np.full(3, np.nan), dir=np.full(3, np.nan), time=np.nan, energy=np.nan,
                likelihood=np.nan, n_hits=0, chi2_ndf=np.nan, beta0=np.nan, status=STATUS_FAILED)


def _fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` deterministic, evenly spread unit vectors over the full sphere."""
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def default_road_width(detector) -> float:
    """2 × the DU spacing, within [50, 150] m (ORCA-like 20 m → 50 m, ARCA-like 90 m → 150 m)."""
    try:
        spacing = detector.du_spacing
        spacing = float(spacing() if callable(spacing) else spacing)
    except (AttributeError, TypeError, ValueError):  # one DU or a duck-typed detector
        spacing = 25.0
    if not np.isfinite(spacing) or spacing <= 0:
        spacing = 25.0
    return float(min(150.0, max(50.0, 2.0 * spacing)))


class TrackFitter:
    """The JMuon-style chain for one detector, site and configuration.

    Parameters
    ----------
    config : TrackFitConfig
    detector : Detector
    site : Site, optional
        Selects the water (pressure) of the light tables and the default background rate.
    """

    def __init__(self, config: TrackFitConfig, detector, site=None):
        from km3sim.reco.energy import brightness_to_energy

        self.cfg = cfg = config
        self.detector = detector
        site_name = getattr(site, "name", "orca") if site is not None else "orca"
        self.site_name = str(site_name)
        rate = cfg.background_rate_hz if cfg.background_rate_hz is not None else BACKGROUND_RATE_HZ.get(site_name, 7000.0)
        self.rate_bg = float(rate) * 1e-9  # per ns
        self.road = float(cfg.road_width_m) if cfg.road_width_m is not None else default_road_width(detector)
        cos_c = 1.0 / cfg.n_phase
        self.cos_c = cos_c
        self.sin_c = math.sqrt(1.0 - cos_c * cos_c)
        self.k = (cfg.n_group - cos_c) / self.sin_c
        self.c = C.C_LIGHT
        if cfg.pdf == "tables":
            self.tables = track_light_tables(site, cfg.tts_ns, cfg.tables, cfg.table_dir)
        else:
            self.tables = light_tables(cfg.pdf, site, cfg.tts_ns)
        if self.tables.t0 > cfg.t_min_ns or self.tables.t_max < cfg.t_max_ns:
            raise StageError(f"track_fit: light tables {self.tables.name!r} cover residuals "
                             f"[{self.tables.t0}, {self.tables.t_max}] ns, the fit window is [{cfg.t_min_ns}, {cfg.t_max_ns}] ns")
        # likelihood geometry: the tables' time residuals are defined with their own Cherenkov
        # angle and group index, and (R, theta, phi) tables with the DOM centre as the PMT's point
        t = self.tables
        n_ph = t.n_phase if t.n_phase is not None else cfg.n_phase
        n_g = t.n_group if t.n_group is not None else cfg.n_group
        self.lk_cos = 1.0 / n_ph
        self.lk_sin = math.sqrt(1.0 - self.lk_cos**2)
        self.lk_k = (n_g - self.lk_cos) / self.lk_sin
        self.lk_n_phase = n_ph
        self.targs = t.track_kernel_args(0.0)
        self.scan_dirs = _fibonacci_sphere(cfg.prefit_n_directions)
        # prefit: hits of direct light within the road have c·t − z' in a band k·road wide
        self.tau_window = self.k * self.road + 2.0 * self.c * cfg.hit_window_ns
        self.cos_sep = math.cos(math.radians(cfg.seed_separation_deg))
        self.cos_dup = math.cos(math.radians(1.0))  # simplex results closer than 1 deg are one candidate
        self.pmt_pos = np.ascontiguousarray(detector.pmt_pos, dtype=np.float64)
        self.pmt_dir = np.ascontiguousarray(detector.pmt_dir, dtype=np.float64)
        self.pmt_ok = np.ascontiguousarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=np.bool_)
        if self.tables.n_phi:
            self.lik_pos = np.ascontiguousarray(np.asarray(detector.dom_pos, dtype=np.float64)[np.asarray(detector.pmt_dom_index)])
        else:
            self.lik_pos = self.pmt_pos
        # PMTs grouped by DOM for the road kernels: whole DOMs outside the road are skipped
        dom_of = getattr(detector, "pmt_dom_index", None)
        dom_of = np.zeros(len(self.lik_pos), dtype=np.int64) if dom_of is None else np.asarray(dom_of)
        self.blocks = K.pmt_blocks(self.lik_pos, dom_of)
        self.to_energy = brightness_to_energy
        # finite-difference steps of (α, β, a, b, t0) for scores and Hessian
        self.steps = np.array([1e-3, 1e-3, 0.1, 0.1, 0.2])
        self.hess_steps = np.array([2e-3, 2e-3, 0.3, 0.3, 0.5])

    # ------------------------------------------------------------------ helpers
    def _frame_x(self, p, u, t0, cog):
        """Parameters (0, 0, a, b, t) of track (p, u, t0) in its own tangent frame at cog."""
        f1, f2 = K.orthonormal_pair(u)
        s = float(np.dot(cog - p, u))
        ps = p + s * u
        return np.array([0.0, 0.0, np.dot(ps - cog, f1), np.dot(ps - cog, f2), t0 + s / self.c]), f1, f2

    def _closest(self, p, u, t0, cog):
        s = float(np.dot(cog - p, u))
        return p + s * u, t0 + s / self.c

    def _select_window(self, pos, t, p, u, t0, window):
        te = K.expected_times(pos, p, u, t0, self.k, self.c)
        return np.abs(t - te) <= window

    # ------------------------------------------------------------------ stages
    def prefit(self, ev: EventHits):
        """Direction scan (see the module notes): list of (quality, u, p, t0) of the best distinct
        directions, and the number of prefit hits."""
        cfg = self.cfg
        # the triggered hits (causally related L1 hits selected by the 3D trigger) are far purer
        # than all L1 hits of the snapshot in a large detector; without enough of them, L1 hits
        first = np.flatnonzero(ev.triggered)
        if len(first) < max(cfg.prefit_min_triggered, cfg.min_hits):
            # few triggered hits: the L1 hits of the snapshot join
            l1, _ = K.build_l1(ev.dom, ev.pmt, ev.time, cfg.l1_tmax_ns)
            first = np.union1d(first, l1)
        if len(first) > cfg.prefit_max_hits:
            # bright events: every m-th hit in time order (deterministic thinning)
            first = first[:: int(math.ceil(len(first) / cfg.prefit_max_hits))]
        if len(first) < cfg.min_hits:
            return [], len(first)
        pos = self.pmt_pos[ev.pmt[first]]
        t = ev.time[first]
        cog = pos.mean(axis=0)
        tm = float(t.mean())
        pc = np.ascontiguousarray(pos - cog)
        tc = np.ascontiguousarray(t - tm)
        scan = lambda dirs: K.scan_directions(  # noqa: E731
            pc, tc, dirs, self.k, self.c, cfg.hit_window_ns, cfg.min_hits, cfg.prefit_iterations, self.tau_window,
            cfg.prefit_late_weight, cfg.prefit_late_cost)
        # directions: the global grid plus a finer local grid around the line fit of the hits
        # (in a km-sized detector the line fit is within ~10 deg of the muon for 2/3 of the events)
        dirs = self.scan_dirs
        d_lf, _, _, _ = K.line_fit(pos, t)
        if np.all(np.isfinite(d_lf)) and cfg.prefit_linefit_steps > 0:
            dirs = np.vstack([dirs, K.refine_directions(d_lf, math.radians(cfg.prefit_linefit_deg), cfg.prefit_linefit_steps)])
        q, pts, t0s = scan(dirs)
        order = np.argsort(q, kind="stable")
        chosen = []
        for i in order:
            if not np.isfinite(q[i]) or len(chosen) >= cfg.n_prefits:
                break
            d = dirs[i]
            if any(np.dot(d, c[1]) > self.cos_sep for c in chosen):
                continue
            chosen.append((float(q[i]), d, pts[i], float(t0s[i])))
        out = []
        for qual, d, pt, tt in chosen:
            # local refinement: grids of (2n+1)^2 directions with the step shrinking by 3
            step = math.radians(cfg.prefit_refine_deg)
            for _ in range(cfg.prefit_refine_levels):
                grid = K.refine_directions(d, step, cfg.prefit_refine_steps)
                q2, p2, t2 = scan(grid)
                j = int(np.argmin(q2))
                if np.isfinite(q2[j]) and q2[j] <= qual:
                    qual, d, pt, tt = float(q2[j]), grid[j], p2[j], float(t2[j])
                step /= 3.0
            out.append((qual, d.copy(), pt + cog, tt + tm))
        out.sort(key=lambda r: r[0])
        return out, len(first)

    def simplex(self, ev: EventHits, u0, p0, t0):
        """Robust least-squares refinement; returns (p, u, t0, cost, n, chi2_ndf, beta0) or None."""
        cfg = self.cfg
        pos_all = self.pmt_pos[ev.pmt]
        p, u, tt = p0, u0, t0
        res = None
        for _ in range(2):
            sel = self._select_window(pos_all, ev.time, p, u, tt, cfg.hit_window_ns)
            n = int(sel.sum())
            if n < cfg.min_hits:
                return None
            pos = np.ascontiguousarray(pos_all[sel])
            t = np.ascontiguousarray(ev.time[sel])
            cog = pos.mean(axis=0)
            x0, f1, f2 = self._frame_x(p, u, tt, cog)
            x, cost, ok = K.robust_track_fit(x0, pos, t, u, f1, f2, cog, self.k, self.c, cfg.tts_ns,
                                             cfg.f_scale_ns / cfg.tts_ns, cfg.max_iterations)
            if not ok or not np.all(np.isfinite(x)):
                return None
            p, u, _ = K.track_point_direction(x, u, f1, f2, cog)
            tt = float(x[4])
            res = (pos, t, cost)
        pos, t, cost = res
        cog = pos.mean(axis=0)
        pc, tc = self._closest(p, u, tt, cog)
        x, f1, f2 = self._frame_x(pc, u, tc, cog)
        r = K.track_residuals(x, pos, t, u, f1, f2, cog, self.k, self.c, cfg.tts_ns)
        jac = K.track_jacobian(x, pos, t, u, f1, f2, cog, self.k, self.c, cfg.tts_ns)
        cov = K.invert_matrix(jac.T @ jac)
        var = cov[0, 0] + cov[1, 1]
        n = len(t)
        return pc, u, tc, cost, n, float(np.sum(r * r)) / (n - 5) if n > 5 else np.nan, math.sqrt(var) if var >= 0 else np.nan

    def brightness(self, ev: EventHits, p, u, t0, z_range=(-np.inf, np.inf), targs=None):
        """Brightness B (unit: a bare β = 1 track) from the charges of the PMTs in the road
        (:func:`~km3sim.reco._kernels.fit_brightness`); ``targs``: the kernels' table arguments
        (default :attr:`targs`).

        Returns (B, ln L gain over background, number of PMTs with hits, number of PMTs)."""
        return self._brightness(ev, p, u, t0, z_range, targs)[:4]

    def _brightness(self, ev: EventHits, p, u, t0, z_range=(-np.inf, np.inf), targs=None):
        """:meth:`brightness` and the road data of :func:`~km3sim.reco._kernels.road_light` for
        :meth:`_llr_of` (the road likelihood ratio of the same track and tables)."""
        cfg = self.cfg
        a, charge, z, d, llr_data = K.road_light(
            np.asarray(p, dtype=np.float64), np.asarray(u, dtype=np.float64), float(t0), ev.pmt, ev.time, ev.charge,
            self.lik_pos, self.pmt_dir, self.pmt_ok, *self.blocks, self.lk_k, self.c, self.lk_sin, self.lk_cos, self.road,
            cfg.t_min_ns, cfg.t_max_ns, float(z_range[0]), float(z_range[1]), D_FLOOR_M,
            *(self.targs if targs is None else targs),
        )
        bg = self.rate_bg * (cfg.t_max_ns - cfg.t_min_ns)
        if len(a) == 0:
            return np.nan, np.nan, 0, 0, llr_data, z
        b, gain = K.fit_brightness(a, charge, bg, 1e-2, 1e7)
        return b, gain, int(np.count_nonzero(charge)), len(a), llr_data, z

    def light(self, ev: EventHits, p, u, t0):
        """Brightness B of the track and the kernels' table arguments for it: with a second light
        component (the continuous-loss showers of :mod:`km3sim.reco.table_pdf`) its fraction η(B)
        is updated from B and B refitted (two passes from η = 0); otherwise :attr:`targs`."""
        res, targs = self._light(ev, p, u, t0)
        return res[0], targs

    def _light(self, ev: EventHits, p, u, t0):
        """:meth:`light` with the whole :meth:`_brightness` result of the last pass (B, gain, PMTs
        with hits, PMTs, road data) for the returned table arguments."""
        targs = self.targs
        res = self._brightness(ev, p, u, t0, targs=targs)
        if self.tables.has_second_component:
            for _ in range(2):
                if not np.isfinite(res[0]):
                    break
                targs = self.tables.track_kernel_args(shower_fraction_of_brightness(res[0], self.lk_n_phase))
                res = self._brightness(ev, p, u, t0, targs=targs)
        return res, targs

    def _llr_of(self, light_res, brightness) -> float:
        """Road likelihood ratio (:meth:`llr`) of the track and tables of a :meth:`_light` result
        (its road data, no second pass over the road) over the seen segment of the track: the
        PMTs whose direct-light emission point lies between those of the first and last PMT
        with a signal-like hit (signal density above the background rate), extended by
        :data:`LLR_SEGMENT_MARGIN` road widths at both ends."""
        # the seen segment: a muon that starts (or stops) in the detector gives no light before
        # (after) it, where the infinite track expects some
        q, _ = K.road_llr_of(light_res[4], float(brightness), self.rate_bg, light_res[5], LLR_SEGMENT_MARGIN * self.road)
        return float(q)

    def llr(self, ev: EventHits, p, u, t0, brightness, targs=None) -> float:
        """Road likelihood ratio of a track against background (:func:`~km3sim.reco._kernels.road_llr`)."""
        cfg = self.cfg
        q, _ = K.road_llr(np.asarray(p, dtype=np.float64), np.asarray(u, dtype=np.float64), float(t0), float(brightness),
                          ev.pmt, ev.time, self.lik_pos, self.pmt_dir, self.pmt_ok, *self.blocks, self.lk_k, self.c, self.lk_sin,
                          self.lk_cos, self.road, cfg.t_min_ns, cfg.t_max_ns, self.rate_bg, D_FLOOR_M,
                          *(self.targs if targs is None else targs))
        return float(q)

    def gandalf(self, ev: EventHits, p, u, t0, brightness, targs=None):
        """Likelihood fit; returns (p, u, t0, lnL, n, chi2_ndf, beta0) or None."""
        g = self._gandalf(ev, p, u, t0, brightness, targs)
        return None if g is None else (*g[:6], self._beta0(g[6]))

    def _beta0(self, hess_at) -> float:
        """beta0 = sqrt(C_αα + C_ββ) from the central Hessian of −ln L at the fitted track
        (``hess_at``: the parameters and kernel arguments of :meth:`_gandalf`): differences of
        the exact gradient (:func:`~km3sim.reco._kernels.gandalf_hessian_g`)."""
        x, args, targs = hess_at
        edges = K.window_edge_tables(targs[8], targs[14], targs[9], targs[4], targs[5], self.cfg.t_min_ns, self.cfg.t_max_ns)
        h = K.gandalf_hessian_g(x, *args, *edges, self.hess_steps)
        cov = K.invert_matrix(h)
        var = cov[0, 0] + cov[1, 1]
        return math.sqrt(var) if (np.isfinite(var) and var > 0 and cov[0, 0] > 0 and cov[1, 1] > 0) else np.nan

    def _gandalf(self, ev: EventHits, p, u, t0, brightness, targs=None):
        """:meth:`gandalf` without beta0: (p, u, t0, lnL, n, chi2_ndf, hess_at) or None, with
        ``hess_at`` the arguments of :meth:`_beta0` (the Hessian is only needed for the winner)."""
        cfg = self.cfg
        targs = self.targs if targs is None else targs
        res = None
        for it in range(2):
            idx = K.select_first_hits(np.asarray(p, dtype=np.float64), np.asarray(u, dtype=np.float64), float(t0),
                                      ev.pmt, ev.time, self.lik_pos, self.pmt_dir, self.lk_k, self.c, self.lk_sin,
                                      self.lk_cos, self.road, cfg.t_min_ns, cfg.t_max_ns)
            if len(idx) < cfg.min_hits:
                return None
            q = ev.pmt[idx]
            pos = np.ascontiguousarray(self.lik_pos[q])
            pdir = np.ascontiguousarray(self.pmt_dir[q])
            t = np.ascontiguousarray(ev.time[idx])
            cog = pos.mean(axis=0)
            x0, f1, f2 = self._frame_x(np.asarray(p, dtype=np.float64), np.asarray(u, dtype=np.float64), float(t0), cog)
            args = (u, f1, f2, cog, pos, pdir, t, self.lk_k, self.c, self.lk_sin, self.lk_cos, float(brightness),
                    self.rate_bg, cfg.t_min_ns, cfg.t_max_ns, D_FLOOR_M, *targs)
            x, f, n_it, ok = K.gandalf_fit(x0, *args, self.steps, cfg.max_iterations)
            if not ok or not np.all(np.isfinite(x)):
                return None
            p, u, _ = K.track_point_direction(x, u, f1, f2, cog)
            t0 = float(x[4])
            res = (pos, pdir, t, f)
        pos, pdir, t, f = res
        cog = pos.mean(axis=0)
        pc, tc = self._closest(p, u, t0, cog)
        x, f1, f2 = self._frame_x(pc, u, tc, cog)
        args = (u, f1, f2, cog, pos, pdir, t, self.lk_k, self.c, self.lk_sin, self.lk_cos, float(brightness),
                self.rate_bg, cfg.t_min_ns, cfg.t_max_ns, D_FLOOR_M, *targs)
        n = len(t)
        return pc, u, tc, -f, n, 2.0 * f / (n - 5) if n > 5 else np.nan, (x, args, targs)

    # ------------------------------------------------------------------ one event
    def fit_event(self, ev: EventHits) -> list[dict]:
        """The four rows (prefit, simplex, Gandalf, energy) of one event (times in any origin)."""
        cfg = self.cfg
        rows = [_row(JMUONPREFIT), _row(JMUONSIMPLEX), _row(JMUONGANDALF), _row(JMUONENERGY)]
        prefits, n_l1 = self.prefit(ev)
        rows[0]["n_hits"] = n_l1
        if not prefits:
            return rows
        qual, u, p, t0 = prefits[0]
        pp, tp = self._closest(p, u, t0, self.pmt_pos[ev.pmt].mean(axis=0))
        rows[0].update(pos=pp, dir=u, time=tp, likelihood=-qual, status=STATUS_OK)
        # simplex on every prefit; candidates ranked by the road likelihood ratio (road_llr)
        cands = []
        for _, u0, p0, t00 in prefits:
            r = self.simplex(ev, u0, p0, t00)
            if r is None:
                continue
            if any(np.dot(r[1], c[0][1]) > self.cos_dup for c in cands):
                continue
            light, targs = self._light(ev, r[0], r[1], r[2])
            b = light[0]
            if not np.isfinite(b):
                continue
            cands.append((r, b, self._llr_of(light, b), targs))
        if not cands:
            return rows
        cands.sort(key=lambda c: -c[2])
        p, u, t0, cost, n, chi2, beta0 = cands[0][0]
        rows[1].update(pos=p, dir=u, time=t0, likelihood=-cost, n_hits=n, chi2_ndf=chi2, beta0=beta0, status=STATUS_OK)
        # likelihood fit from the best candidates; the winner has the largest road likelihood ratio
        best = None
        for r, b, _, targs in cands[: cfg.n_gandalf]:
            g = self._gandalf(ev, r[0], r[1], r[2], b, targs)
            if g is None:
                continue
            light2, targs2 = self._light(ev, g[0], g[1], g[2])
            b2 = light2[0]
            q = self._llr_of(light2, b2) if np.isfinite(b2) else -np.inf
            if best is None or q > best[1]:
                best = (g, q, targs2, light2)
        if best is None:
            return rows
        p, u, t0, lnl, n, chi2, hess_at = best[0]
        beta0 = self._beta0(hess_at)  # the Hessian of the winner only
        rows[2].update(pos=p, dir=u, time=t0, likelihood=lnl, n_hits=n, chi2_ndf=chi2, beta0=beta0, status=STATUS_OK)
        # the energy row: the brightness fit of the winner's last light pass (same track and tables)
        b, gain, n_hit = best[3][:3]
        if np.isfinite(b):
            rows[3].update(pos=p, dir=u, time=t0, energy=float(self.to_energy(b, self.site_name)), likelihood=gain, n_hits=n_hit,
                           beta0=beta0, status=STATUS_OK, brightness=b)
        return rows


def event_hits(detector, hits: Table, slewing: bool, stage: str = "track_fit") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(PMT index, DOM index, corrected time) of every hit of a ``snapshot_hits`` table."""
    try:
        pmt = np.asarray(detector.pmt_index(hits["dom_id"], hits["channel_id"]), dtype=np.int64)
        dom = np.asarray(detector.dom_index(hits["dom_id"]), dtype=np.int64)
    except KeyError as exc:
        raise StageError(f"stage {stage!r}: hits on PMTs unknown to the detector: {exc}") from None
    t = np.asarray(hits["time"], dtype=np.float64)
    if slewing:
        t = t - time_slewing_ns(np.asarray(hits["tot"], dtype=np.float64))
    return pmt, dom, t


@functools.lru_cache(maxsize=1)
def _tot_charge_table():
    q = np.geomspace(0.05, 200.0, 2000)
    tot = np.asarray(time_over_threshold(q), dtype=np.float64)
    keep = np.concatenate([[True], np.diff(tot) > 0])  # strictly increasing part (below saturation)
    return tot[keep], q[keep]


def charge_from_tot(tot) -> np.ndarray:
    """Charge [pe] of hits from their ToT [ns]: the inverse of the KM3NeT pulse model
    :func:`km3sim.detector.pmt.time_over_threshold` (PHYSICS.md §7.3; 1 pe ↔ 26.9 ns, linear
    7 ns/pe above ~1.7 pe, saturated at 210 ns ≈ 30 pe). A saturated hit gets minus the
    saturation charge: its charge is only known to be at least that (the fits treat it as
    censored, :func:`km3sim.reco._kernels.fit_brightness`)."""
    tt, qq = _tot_charge_table()
    tot = np.asarray(tot, dtype=np.float64)
    q = np.interp(tot, tt, qq)
    # saturated ToT: the charge is only a lower bound, marked by the sign (censored in the fits)
    return np.where(tot >= tt[-1] - 0.5, -q, q)


def iterate_events(events: Table, hits: Table, detector, slewing: bool, stage: str):
    """Yield (event_id, EventHits) for every triggered event (hits sorted by corrected time)."""
    ev_ids = np.sort(np.asarray(events["event_id"], dtype=np.int64), kind="stable")
    if len(hits) and not hits.is_sorted_by_event():
        hits = hits.sort(("event_id", "time"))
    hev = np.asarray(hits["event_id"])
    lo = np.searchsorted(hev, ev_ids, side="left")
    hi = np.searchsorted(hev, ev_ids, side="right")
    pmt, dom, t = event_hits(detector, hits, slewing, stage)
    trig = np.asarray(hits["trigger_mask"]) != 0
    charge = charge_from_tot(hits["tot"])
    for e, a, b in zip(ev_ids, lo, hi):
        o = np.argsort(t[a:b], kind="stable") + a
        yield int(e), EventHits(pmt=np.ascontiguousarray(pmt[o]), dom=np.ascontiguousarray(dom[o]),
                                time=np.ascontiguousarray(t[o]), triggered=trig[o],
                                charge=np.ascontiguousarray(charge[o]))


def rows_to_table(rows: list[tuple[int, dict]]) -> Table:
    """``reco_tracks`` from (event_id, row dict) pairs (rec_type 4000)."""
    if not rows:
        return empty_table("reco_tracks")
    pos = np.array([r["pos"] for _, r in rows], dtype=np.float64).reshape(-1, 3)
    dirs = np.array([r["dir"] for _, r in rows], dtype=np.float64).reshape(-1, 3)
    col = lambda key, dt: np.array([r[key] for _, r in rows], dtype=dt)  # noqa: E731
    return make_table(
        "reco_tracks",
        event_id=np.array([e for e, _ in rows], dtype=np.int64),
        rec_type=np.full(len(rows), JPP_RECONSTRUCTION_TYPE, dtype=np.int32),
        rec_stage=col("rec_stage", np.int32),
        pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2],
        dir_x=dirs[:, 0], dir_y=dirs[:, 1], dir_z=dirs[:, 2],
        time=col("time", np.float64), energy=col("energy", np.float64),
        likelihood=col("likelihood", np.float64), n_hits=col("n_hits", np.int32),
        chi2_ndf=col("chi2_ndf", np.float64), beta0_rad=col("beta0", np.float64),
        status=col("status", np.int32),
    )


@register_stage
class TrackFit(Stage):
    """JMuon-style muon track reconstruction (prefit, simplex, Gandalf, energy); see the module notes.

    Consumes ``triggered_events`` and ``snapshot_hits``; produces four ``reco_tracks`` rows per
    triggered event. Deterministic: no random numbers are used.
    """

    name: ClassVar[str] = "track_fit"
    role: ClassVar[str] = "reconstruct"
    consumes: ClassVar[tuple[str, ...]] = ("triggered_events", "snapshot_hits")
    produces: ClassVar[tuple[str, ...]] = ("reco_tracks",)
    Config: ClassVar[type[StageConfig]] = TrackFitConfig

    def __init__(self, config=None, detector=None, site=None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self._fitter: TrackFitter | None = None

    @classmethod
    def input_files(cls, config) -> list[str]:
        """The light-table file of ``pdf: tables`` (its checksum enters the chain hash)."""
        if getattr(config, "pdf", None) == "tables" and getattr(config, "tables", "auto") != "auto":
            return [config.tables]
        return []

    def fitter(self, detector, site=None) -> TrackFitter:
        """The :class:`TrackFitter` of ``detector`` (cached)."""
        if self._fitter is None or self._fitter.detector is not detector:
            self._fitter = TrackFitter(self.config, detector, self.site if (self._site_given or site is None) else site)
        return self._fitter

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        detector = self.detector if self.detector is not None else ctx.detector
        if detector is None:
            raise StageError("stage 'track_fit' needs a detector")
        events = tables["triggered_events"]
        if len(events) == 0:
            return {"reco_tracks": empty_table("reco_tracks")}
        fitter = self.fitter(detector, ctx.site)
        rows = []
        n_ok = 0
        for e, ev in iterate_events(events, tables["snapshot_hits"], detector, self.config.slewing, self.name):
            out = fitter.fit_event(ev)
            n_ok += out[2]["status"] == STATUS_OK
            rows.extend((e, r) for r in out)
        logger.debug("track_fit: %d of %d events fitted", n_ok, len(events))
        return {"reco_tracks": rows_to_table(rows)}
