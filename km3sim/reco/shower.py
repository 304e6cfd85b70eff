"""Shower (cascade) reconstruction in the style of the Jpp JShower chain (stage ``shower_fit``).

For every triggered event the stage :class:`ShowerFit` writes three ``reco_tracks`` rows with
``rec_type`` 4000 (JPP_RECONSTRUCTION_TYPE) and ``rec_stage`` (km3io
``_definitions/reconstruction.py``, PHYSICS.md §9.2):

1. :data:`JSHOWERPREFIT` (101) — vertex and time of a point source from the hit times
   (:func:`~km3sim.reco._shower_kernels.point_prefit`: linear estimator of
   (c_n(t_i − t0))² = |x_i − v|², then robust Gauss–Newton steps with Cauchy weights, later
   hits down-weighted since direct light arrives first) on the triggered hits (L1 hits if
   there are too few). ``dir`` is the charge-weighted mean direction from the vertex to the
   hit PMTs (the light of a shower is beamed along its axis at the Cherenkov angle).
2. :data:`JSHOWERPOSITIONFIT` (102) — vertex and time by maximum likelihood of the first hit
   times of the PMTs within ``radius_m`` (time-residual PDF of :mod:`km3sim.reco.pdf` at the
   distance with the same photon path, expected pe of an isotropic emitter with the
   Rädel–Wiebusch light yield, background rate), conditioned on each PMT having a hit.
   ``energy`` is the isotropic-emitter energy fitted to the PMT charges.
3. :data:`JSHOWERCOMPLETEFIT` (103) — vertex, time, direction and energy by maximum
   likelihood over all usable PMTs within ``radius_m``: for hit PMTs the first-hit density
   (conditioned on a hit) and the Poisson probability of their charge (from the ToT) in the
   time window, for the others the probability of no hit, with the expected pe per PMT from the
   Rädel–Wiebusch shower (track length 5.32 m/GeV of an electron shower, the angular emission
   profile about the axis and ``longitudinal_bins`` bins of equal light along it; PHYSICS.md
   §5.4, :mod:`km3sim.propagation.showers`), Jpp absorption (PHYSICS.md §6.1) and the PMT area
   and angular acceptance (§7.2, :mod:`km3sim.detector.pmt`). Start directions: the best
   ``n_start_directions`` of a ``scan_directions`` scan of the likelihood at the position-fit
   vertex and energy. ``energy`` is the EM-equivalent shower energy (a hadronic shower of the
   same light is ~25 % more energetic at 100 GeV, PHYSICS.md §5.4); ``beta0_rad`` the angular
   error from the Hessian as in the track fit.

``status`` 0 = converged, 1 = failed (row written with NaN values).
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from km3sim import constants as C
from km3sim.detector.pmt import ACCEPTANCE_TABLE, ACCEPTANCE_TABLE_COS, PHOTOCATHODE_AREA_M2
from km3sim.errors import StageError
from km3sim.propagation import showers as sh
from km3sim.reco import _kernels as K
from km3sim.reco import _shower_kernels as SK
from km3sim.reco.numerics import central_hessian
from km3sim.reco.pdf import REFERENCE_WAVELENGTH_NM, light_tables
from km3sim.reco.track import (
    BACKGROUND_RATE_HZ,
    STATUS_FAILED,
    STATUS_OK,
    EventHits,
    _fibonacci_sphere,
    default_road_width,
    iterate_events,
    rows_to_table,
)
from km3sim.schema import empty_table
from km3sim.stage import Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "JSHOWERPREFIT",
    "JSHOWERPOSITIONFIT",
    "JSHOWERCOMPLETEFIT",
    "ShowerFit",
    "ShowerFitConfig",
    "ShowerFitter",
]

logger = logging.getLogger(__name__)

#: rec_stage values of the JShower applications (km3io ``_definitions/reconstruction.py``).
JSHOWERPREFIT = 101
JSHOWERPOSITIONFIT = 102
JSHOWERCOMPLETEFIT = 103

#: Floor of the vertex-PMT distance in the npe model [m] (as the simulation).
R_FLOOR_M = 0.2


class ShowerFitConfig(StageConfig):
    """Configuration of :class:`ShowerFit` (Jpp JShower* parameters in snake case)."""

    tts_ns: float = Field(2.0, gt=0, description="PMT transit-time spread σ of the time-residual PDF (PHYSICS.md §12)")
    slewing: bool = Field(True, description="correct hit times for the time slewing of their ToT (PHYSICS.md §7.3)")
    background_rate_hz: float | None = Field(None, ge=0, description="background rate per PMT; default 7 kHz ORCA, 6 kHz ARCA (PHYSICS.md §12)")
    pdf: str = Field("pandel", description="light-table provider of the time-residual PDF (km3sim.reco.pdf)")
    l1_tmax_ns: float = Field(25.0, gt=0, description="L1 coincidence window on one DOM (Jpp TMaxLocal_ns)")
    min_hits: int = Field(5, ge=5, description="minimum hits for each fit")
    prefit_window_ns: float = Field(20.0, gt=0, description="prefit: residual window of the robust fit and quality")
    prefit_max_hits: int = Field(150, ge=10, description="prefit: at most this many hits (bright events are thinned)")
    prefit_iterations: int = Field(8, ge=1, description="prefit: robust Gauss-Newton steps")
    prefit_late_weight: float = Field(0.5, gt=0, le=1, description="prefit: weight of hits later than the source")
    radius_m: float | None = Field(None, gt=0, description="PMTs within this distance of the vertex; default 2 x the track road width (100 m ORCA-like, 300 m ARCA-like)")
    t_min_ns: float = Field(-25.0, lt=0, description="earliest time residual of a hit")
    t_max_ns: float = Field(400.0, gt=0, description="latest time residual of a hit")
    longitudinal_bins: int = Field(3, ge=1, le=20, description="complete fit: bins of equal light along the shower axis")
    n_start_directions: int = Field(3, ge=1, description="complete fit: best directions of the start scan that are fitted")
    scan_directions: int = Field(200, ge=10, description="complete fit: directions of the start scan (Fibonacci grid)")
    scan_passes: int = Field(2, ge=1, le=4, description="complete fit: direction scans (the second at the vertex of the first fit)")
    polish_rounds: int = Field(2, ge=0, description="complete fit: restarts from better directions on 3 and 6 deg rings around the fit")
    n_phase: float = Field(C.INDEX_OF_REFRACTION_PHASE, gt=1, description="phase index (Cherenkov angle)")
    n_group: float = Field(C.INDEX_OF_REFRACTION_GROUP, gt=1, description="group index (light speed)")
    max_iterations: int = Field(60, ge=1, description="maximum iterations of each minimisation")

    @model_validator(mode="after")
    def _check(self):
        if self.t_max_ns <= self.t_min_ns:
            raise ValueError(f"t_max_ns ({self.t_max_ns}) must exceed t_min_ns ({self.t_min_ns})")
        return self


def _row(stage: int) -> dict:
    return dict(rec_stage=stage, pos=np.full(3, np.nan), dir=np.full(3, np.nan), time=np.nan, energy=np.nan,
                likelihood=np.nan, n_hits=0, chi2_ndf=np.nan, beta0=np.nan, status=STATUS_FAILED)


class ShowerFitter:
    """The JShower-style chain for one detector, site and configuration."""

    def __init__(self, config: ShowerFitConfig, detector, site=None):
        from km3sim.propagation.light import photon_yield
        from km3sim.propagation.water import WaterOptics

        self.cfg = cfg = config
        self.detector = detector
        site_name = getattr(site, "name", "orca") if site is not None else "orca"
        rate = cfg.background_rate_hz if cfg.background_rate_hz is not None else BACKGROUND_RATE_HZ.get(site_name, 7000.0)
        self.rate_bg = float(rate) * 1e-9
        self.radius = float(cfg.radius_m) if cfg.radius_m is not None else 2.0 * default_road_width(detector)
        self.cn = C.C_LIGHT / cfg.n_group
        cos_c = 1.0 / cfg.n_phase
        self.sin_c = math.sqrt(1.0 - cos_c * cos_c)
        self.tables = light_tables(cfg.pdf, site, cfg.tts_ns)
        if self.tables.t0 > cfg.t_min_ns or self.tables.t_max < cfg.t_max_ns:
            raise StageError(f"shower_fit: light tables {self.tables.name!r} cover residuals "
                             f"[{self.tables.t0}, {self.tables.t_max}] ns, the fit window is [{cfg.t_min_ns}, {cfg.t_max_ns}] ns")
        self.targs = self.tables.kernel_args()
        # npe model tables: area × photon yield Y(r) [pe/m of Cherenkov track, unit acceptance]
        pressure = float(getattr(site, "pressure_atm", 240.0)) if site is not None else 240.0
        water = WaterOptics(pressure_atm=pressure)
        r_grid = np.linspace(0.0, max(self.radius, 10.0) * 1.05 + 10.0, 2048)
        self.ytab = (float(r_grid[0]), float(r_grid[1] - r_grid[0]),
                     np.ascontiguousarray(PHOTOCATHODE_AREA_M2 * photon_yield(r_grid, water)))
        acc_c = np.linspace(-1.0, 1.0, 41)
        self.atab = (-1.0, 0.05, np.ascontiguousarray(np.interp(acc_c, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0)))
        n_ref = float(water.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
        ang_pdf, _ = sh.angular_profile_tables(n_ref)
        self.angtab = (-1.0, 2.0 / (len(ang_pdf) - 1), np.ascontiguousarray(ang_pdf))
        self.ang_max = float(np.max(ang_pdf))
        self.length_per_gev = float(sh.cherenkov_track_length(1.0, sh.KIND_ELECTRON))
        self.pmt_pos = np.ascontiguousarray(detector.pmt_pos, dtype=np.float64)
        self.pmt_dir = np.ascontiguousarray(detector.pmt_dir, dtype=np.float64)
        self.pmt_ok = np.ascontiguousarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=np.bool_)
        self.scan_dirs = _fibonacci_sphere(cfg.scan_directions)
        self.steps_pos = np.array([0.1, 0.1, 0.1, 0.2])
        self.steps_all = np.array([0.1, 0.1, 0.1, 0.2, 2e-3, 2e-3, 0.01])
        self.hess_all = np.array([0.5, 0.5, 0.5, 1.0, 0.015, 0.015, 0.05])

    def _margs(self):
        return (self.cn, self.sin_c, self.length_per_gev)

    def _tabargs(self):
        y0, ydd, ytab = self.ytab
        a0, adc, atab = self.atab
        g0, gd, gpdf = self.angtab
        return (R_FLOOR_M, y0, ydd, ytab, a0, adc, atab, g0, gd, gpdf, *self.targs)

    def _z_mid(self, energy: float) -> np.ndarray:
        n = self.cfg.longitudinal_bins
        q = (np.arange(n) + 0.5) / n
        return np.ascontiguousarray(sh.longitudinal_quantiles(max(energy, 1.0), sh.KIND_ELECTRON, q)[0])

    # ------------------------------------------------------------------ stages
    def prefit(self, ev: EventHits):
        """Point-source vertex and time: (v, t0, quality, n_in) or None."""
        cfg = self.cfg
        sel = np.flatnonzero(ev.triggered)
        if len(sel) < cfg.min_hits:
            sel = np.union1d(sel, K.build_l1(ev.dom, ev.pmt, ev.time, cfg.l1_tmax_ns)[0])
        if len(sel) > cfg.prefit_max_hits:
            sel = sel[:: int(math.ceil(len(sel) / cfg.prefit_max_hits))]
        if len(sel) < cfg.min_hits:
            return None
        pos = self.pmt_pos[ev.pmt[sel]]
        t = ev.time[sel]
        cog = pos.mean(axis=0)
        tm = float(t.mean())
        v, t0, q, n_in = SK.point_prefit(np.ascontiguousarray(pos - cog), np.ascontiguousarray(t - tm), self.cn,
                                         cfg.prefit_window_ns, cfg.prefit_iterations, cfg.prefit_late_weight)
        if not np.isfinite(q) or not np.all(np.isfinite(v)):
            return None
        return v + cog, float(t0) + tm, float(q), int(n_in)

    def _near(self, ev: EventHits, v, t0):
        cfg = self.cfg
        idx, thit = SK.first_hits_near(np.asarray(v, dtype=np.float64), float(t0), ev.pmt, ev.time, self.pmt_pos,
                                       self.pmt_ok, self.cn, self.radius, cfg.t_min_ns, cfg.t_max_ns)
        return idx, thit

    def isotropic_energy(self, ev: EventHits, v, t0):
        """Energy [GeV] of an isotropic emitter at v fitted to the charges of the PMTs within the radius."""
        cfg = self.cfg
        a, charge, _, _ = self._charges(ev, v, t0, None)
        if len(a) == 0:
            return np.nan
        e, _ = K.fit_brightness(a, charge, self.rate_bg * (cfg.t_max_ns - cfg.t_min_ns), 0.01, 1e9)
        return float(e)

    def _charges(self, ev: EventHits, v, t0, u):
        """Expected pe per GeV in the window (isotropic if u is None) and measured charge per PMT."""
        cfg = self.cfg
        idx, thit = self._near(ev, v, t0)
        pos = np.ascontiguousarray(self.pmt_pos[idx])
        pdir = np.ascontiguousarray(self.pmt_dir[idx])
        iso = u is None
        uu = np.array([0.0, 0.0, 1.0]) if iso else np.asarray(u, dtype=np.float64)
        z = np.zeros(1) if iso else self._z_mid(100.0)
        y0, ydd, ytab = self.ytab
        a0, adc, atab = self.atab
        g0, gd, gpdf = self.angtab
        m = SK.shower_npe(np.asarray(v, dtype=np.float64), uu, self.length_per_gev, z, pos, pdir, R_FLOOR_M,
                          y0, ydd, ytab, a0, adc, atab, g0, gd, gpdf, iso)
        # fraction of the Pandel PDF in the window at the equivalent distance
        d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf = self.targs
        r = np.linalg.norm(pos - np.asarray(v), axis=1) * self.sin_c
        w = _cdf_at(cdf, r, cfg.t_max_ns, d0, dd, tt0, dt) - _cdf_at(cdf, r, cfg.t_min_ns, d0, dd, tt0, dt)
        charge = self._window_charges(ev, v, t0, idx)
        return np.ascontiguousarray(m * w), charge, idx, thit

    def _window_charges(self, ev: EventHits, v, t0, idx):
        """Summed charge [pe] of the hits in the time window of each PMT of ``idx`` (negative where
        a hit saturated, see :func:`km3sim.reco.track.charge_from_tot`)."""
        cfg = self.cfg
        charge = np.zeros(len(idx))
        slot = np.full(len(self.pmt_pos), -1, dtype=np.int64)
        slot[idx] = np.arange(len(idx))
        dist = np.linalg.norm(self.pmt_pos[ev.pmt] - np.asarray(v), axis=1)
        tres = ev.time - t0 - dist / self.cn
        sel = (tres >= cfg.t_min_ns) & (tres <= cfg.t_max_ns) & (slot[ev.pmt] >= 0)
        np.add.at(charge, slot[ev.pmt[sel]], np.abs(ev.charge[sel]))
        saturated = np.zeros(len(idx), dtype=bool)
        saturated[slot[ev.pmt[sel & (ev.charge < 0)]]] = True
        return np.where(saturated, -charge, charge)

    def position_fit(self, ev: EventHits, v, t0, energy):
        """Vertex and time by likelihood of the hit PMTs; (v, t0, lnL, n) or None."""
        cfg = self.cfg
        idx, thit = self._near(ev, v, t0)
        hit = np.isfinite(thit)
        if hit.sum() < cfg.min_hits:
            return None
        pos = np.ascontiguousarray(self.pmt_pos[idx[hit]])
        pdir = np.ascontiguousarray(self.pmt_dir[idx[hit]])
        th = np.ascontiguousarray(thit[hit])
        qh = np.zeros(len(th))  # charges are not used by the position fit
        x0 = np.array([v[0], v[1], v[2], t0], dtype=np.float64)
        u0 = np.array([0.0, 0.0, 1.0])
        args = (SK.MODEL_POSITION, u0, u0, u0, math.log(max(energy, 0.01)), pos, pdir, th, qh, *self._margs(), np.zeros(1),
                self.rate_bg, cfg.t_min_ns, cfg.t_max_ns, *self._tabargs())
        x, f, n_it, ok = SK.shower_fit(x0, *args, self.steps_pos, cfg.max_iterations)
        if not ok or not np.all(np.isfinite(x)):
            return None
        return x[:3].copy(), float(x[3]), -float(f), int(hit.sum())

    def complete_fit(self, ev: EventHits, v, t0, energy):
        """Vertex, time, direction and energy by likelihood of all PMTs within the radius;
        (v, t0, u, E, lnL, n_hit, chi2_ndf, beta0) or None."""
        cfg = self.cfg
        idx, thit = self._near(ev, v, t0)
        n_hit = int(np.isfinite(thit).sum())
        if n_hit < cfg.min_hits:
            return None
        # PMTs without a hit that the shower cannot give 0.02 pe even at the peak of its angular
        # profile (×3 in energy) add a small and almost constant term: left out
        y0, ydd, ytab = self.ytab
        a0, adc, atab = self.atab
        iso = SK.shower_npe(np.asarray(v, dtype=np.float64), np.array([0.0, 0.0, 1.0]), self.length_per_gev,
                            np.zeros(1), np.ascontiguousarray(self.pmt_pos[idx]), np.ascontiguousarray(self.pmt_dir[idx]),
                            R_FLOOR_M, y0, ydd, ytab, a0, adc, atab, *self.angtab, True)
        keep = np.isfinite(thit) | (iso * (self.ang_max / 0.5) * 3.0 * energy > 2e-2)
        idx, thit = idx[keep], thit[keep]
        pos = np.ascontiguousarray(self.pmt_pos[idx])
        pdir = np.ascontiguousarray(self.pmt_dir[idx])
        th = np.ascontiguousarray(thit)
        z_mid = self._z_mid(energy)
        buf = np.empty(len(idx))
        # start directions: a likelihood scan at a fixed vertex; for every direction the energy is
        # first fitted to the PMT charges (the isotropic energy is biased by the angular profile,
        # and a wrong energy favours wrong directions). Pass 1 scans at the position-fit vertex,
        # pass 2 at the vertex of the best fit of pass 1 (the isotropic vertex can be biased
        # along the axis, which misleads the scan).
        charge = self._window_charges(ev, v, t0, idx)
        qh = np.ascontiguousarray(charge)
        d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf = self.targs
        bg = self.rate_bg * (cfg.t_max_ns - cfg.t_min_ns)
        le = math.log(max(energy, 0.01))
        best = None
        vv, tv = np.asarray(v, dtype=np.float64), float(t0)
        for scan_pass in range(cfg.scan_passes):
            r_eff = np.linalg.norm(pos - vv, axis=1) * self.sin_c
            wfrac = _cdf_at(cdf, r_eff, cfg.t_max_ns, d0, dd, tt0, dt) - _cdf_at(cdf, r_eff, cfg.t_min_ns, d0, dd, tt0, dt)
            vals = np.empty(len(self.scan_dirs))
            les = np.empty(len(self.scan_dirs))
            for j, d in enumerate(self.scan_dirs):
                m = SK.shower_npe(vv, d, self.length_per_gev, z_mid, pos, pdir, R_FLOOR_M, y0, ydd, ytab, a0, adc,
                                  atab, *self.angtab, False)
                e_d, _ = K.fit_brightness(np.ascontiguousarray(m * wfrac), charge, bg, 0.01, 1e9)
                les[j] = math.log(e_d)
                x = np.array([vv[0], vv[1], vv[2], tv, 0.0, 0.0, les[j]])
                f1, f2 = K.orthonormal_pair(d)
                vals[j] = SK.shower_terms(x, SK.MODEL_COMPLETE, d, f1, f2, les[j], pos, pdir, th, qh, *self._margs(),
                                          z_mid, self.rate_bg, cfg.t_min_ns, cfg.t_max_ns, *self._tabargs(), buf)
            order = np.argsort(vals, kind="stable")
            starts = []
            n_starts = cfg.n_start_directions if scan_pass == 0 else 1
            for j in order:
                if len(starts) >= n_starts or not np.isfinite(vals[j]):
                    break
                if any(np.dot(self.scan_dirs[j], s[0]) > math.cos(math.radians(25.0)) for s in starts):
                    continue
                starts.append((self.scan_dirs[j], les[j]))
            for d, le_d in starts:
                f1, f2 = K.orthonormal_pair(d)
                x0 = np.array([vv[0], vv[1], vv[2], tv, 0.0, 0.0, le_d])
                args = (SK.MODEL_COMPLETE, d, f1, f2, le, pos, pdir, th, qh, *self._margs(), z_mid, self.rate_bg,
                        cfg.t_min_ns, cfg.t_max_ns, *self._tabargs())
                x, f, n_it, ok = SK.shower_fit(x0, *args, self.steps_all, cfg.max_iterations)
                if ok and np.all(np.isfinite(x)) and (best is None or f < best[1]):
                    best = (x, f, d, f1, f2)
            if best is None:
                break
            vv, tv = best[0][:3].copy(), float(best[0][3])
        if best is None:
            return None
        # polish: the likelihood has local minima a few degrees apart; directions on rings of
        # 3 and 6 degrees around the fit (vertex, time and energy of the fit) that are better
        # restart the fit, at most ``polish_rounds`` times
        for _ in range(cfg.polish_rounds):
            x, f, d, f1, f2 = best
            u = d + x[4] * f1 + x[5] * f2
            u /= np.linalg.norm(u)
            g1, g2 = K.orthonormal_pair(u)
            trial = None
            for ring in (3.0, 6.0):
                for k in range(8):
                    phi = 2.0 * math.pi * k / 8
                    w = u + math.tan(math.radians(ring)) * (math.cos(phi) * g1 + math.sin(phi) * g2)
                    w /= np.linalg.norm(w)
                    h1, h2 = K.orthonormal_pair(w)
                    xt = np.array([x[0], x[1], x[2], x[3], 0.0, 0.0, x[6]])
                    val = SK.shower_terms(xt, SK.MODEL_COMPLETE, w, h1, h2, x[6], pos, pdir, th, qh, *self._margs(), z_mid,
                                          self.rate_bg, cfg.t_min_ns, cfg.t_max_ns, *self._tabargs(), buf)
                    if val < f - 0.5 and (trial is None or val < trial[1]):
                        trial = (w, val)
            if trial is None:
                break
            w = trial[0]
            h1, h2 = K.orthonormal_pair(w)
            xt = np.array([x[0], x[1], x[2], x[3], 0.0, 0.0, x[6]])
            args = (SK.MODEL_COMPLETE, w, h1, h2, le, pos, pdir, th, qh, *self._margs(), z_mid, self.rate_bg,
                    cfg.t_min_ns, cfg.t_max_ns, *self._tabargs())
            xn, fn, n_it, ok = SK.shower_fit(xt, *args, self.steps_all, cfg.max_iterations)
            if not (ok and np.all(np.isfinite(xn)) and fn < f):
                break
            best = (xn, fn, w, h1, h2)
        x, f, d, f1, f2 = best
        u = d + x[4] * f1 + x[5] * f2
        u /= np.linalg.norm(u)
        # covariance in the tangent frame of the final direction
        g1, g2 = K.orthonormal_pair(u)
        xf = np.array([x[0], x[1], x[2], x[3], 0.0, 0.0, x[6]])
        args = (SK.MODEL_COMPLETE, u, g1, g2, le, pos, pdir, th, qh, *self._margs(), z_mid, self.rate_bg,
                cfg.t_min_ns, cfg.t_max_ns, *self._tabargs())
        h = central_hessian(SK.shower_terms, xf, self.hess_all, *args, np.empty(pos.shape[0]))
        cov = K.invert_matrix(h)
        var = cov[4, 4] + cov[5, 5]
        beta0 = math.sqrt(var) if (np.isfinite(var) and cov[4, 4] > 0 and cov[5, 5] > 0) else np.nan
        n = len(idx)
        return x[:3].copy(), float(x[3]), u, float(math.exp(x[6])), -float(f), n_hit, 2.0 * f / (n - 7) if n > 7 else np.nan, beta0

    # ------------------------------------------------------------------ one event
    def fit_event(self, ev: EventHits) -> list[dict]:
        rows = [_row(JSHOWERPREFIT), _row(JSHOWERPOSITIONFIT), _row(JSHOWERCOMPLETEFIT)]
        pf = self.prefit(ev)
        if pf is None:
            return rows
        v, t0, q, n_in = pf
        a, charge, idx, thit = self._charges(ev, v, t0, None)
        u_mean = np.full(3, np.nan)
        charge = np.abs(charge)
        hit = charge > 0
        if hit.any():
            w = self.pmt_pos[idx[hit]] - v
            w /= np.maximum(np.linalg.norm(w, axis=1), 1e-9)[:, None]
            s = (charge[hit][:, None] * w).sum(axis=0)
            if np.linalg.norm(s) > 0:
                u_mean = s / np.linalg.norm(s)
        rows[0].update(pos=v, dir=u_mean, time=t0, likelihood=-q, n_hits=n_in, status=STATUS_OK)
        e_iso = self.isotropic_energy(ev, v, t0)
        if not np.isfinite(e_iso):
            return rows
        pfit = self.position_fit(ev, v, t0, e_iso)
        if pfit is None:
            return rows
        v, t0, lnl, n = pfit
        e_iso = self.isotropic_energy(ev, v, t0)
        rows[1].update(pos=v, time=t0, energy=e_iso, likelihood=lnl, n_hits=n, status=STATUS_OK)
        if not np.isfinite(e_iso):
            return rows
        cf = self.complete_fit(ev, v, t0, e_iso)
        if cf is None:
            return rows
        v, t0, u, e, lnl, n, chi2, beta0 = cf
        rows[2].update(pos=v, dir=u, time=t0, energy=e, likelihood=lnl, n_hits=n, chi2_ndf=chi2, beta0=beta0,
                       status=STATUS_OK)
        return rows


def _cdf_at(cdf, d, t, d0, dd, t0, dt):
    """Bilinear lookup of a (n_d, 1, n_t) CDF table at distances d and one residual t (numpy)."""
    nd, nt = cdf.shape[0], cdf.shape[2]
    u = np.clip((np.asarray(d) - d0) / dd, 0.0, nd - 1 - 1e-9)
    i = u.astype(np.int64)
    fi = u - i
    v = min(max((t - t0) / dt, 0.0), nt - 1 - 1e-9)
    j = int(v)
    fj = v - j
    a = cdf[i, 0, j] + fj * (cdf[i, 0, j + 1] - cdf[i, 0, j])
    b = cdf[i + 1, 0, j] + fj * (cdf[i + 1, 0, j + 1] - cdf[i + 1, 0, j])
    return a + fi * (b - a)


@register_stage
class ShowerFit(Stage):
    """JShower-style shower reconstruction (prefit, position fit, complete fit); see the module notes.

    Consumes ``triggered_events`` and ``snapshot_hits``; produces three ``reco_tracks`` rows per
    triggered event. Deterministic.
    """

    name: ClassVar[str] = "shower_fit"
    role: ClassVar[str] = "reconstruct"
    consumes: ClassVar[tuple[str, ...]] = ("triggered_events", "snapshot_hits")
    produces: ClassVar[tuple[str, ...]] = ("reco_tracks",)
    Config: ClassVar[type[StageConfig]] = ShowerFitConfig

    def __init__(self, config=None, detector=None, site=None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self._fitter: ShowerFitter | None = None

    def fitter(self, detector, site=None) -> ShowerFitter:
        """The :class:`ShowerFitter` of ``detector`` (cached)."""
        if self._fitter is None or self._fitter.detector is not detector:
            self._fitter = ShowerFitter(self.config, detector, self.site if (self._site_given or site is None) else site)
        return self._fitter

    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        detector = self.detector if self.detector is not None else ctx.detector
        if detector is None:
            raise StageError("stage 'shower_fit' needs a detector")
        events = tables["triggered_events"]
        if len(events) == 0:
            return {"reco_tracks": empty_table("reco_tracks")}
        fitter = self.fitter(detector, ctx.site)
        rows = []
        for e, ev in iterate_events(events, tables["snapshot_hits"], detector, self.config.slewing, self.name):
            rows.extend((e, r) for r in fitter.fit_event(ev))
        return {"reco_tracks": rows_to_table(rows)}

