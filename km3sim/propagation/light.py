"""Cherenkov light of muon tracks and showers at the PMTs (stage ``direct_light``).

Physics: Frank–Tamm yield (PHYSICS.md §5.1), Bailey refractive index (§5.2), light of
secondaries as a Rädel–Wiebusch ΔL/L factor (§5.3, arXiv:1206.5530), EM and hadronic showers
after Rädel & Wiebusch (§5.4, arXiv:1210.5140; :mod:`km3sim.propagation.showers`), Jpp
absorption lengths (§6.1), the KM3NeT 3-inch PMT area, QE and angular acceptance (§7.2) and the
Cherenkov geometry of §9.1.

Three modes: ``direct`` (default, fast) computes the expected photo-electrons of the unscattered
light analytically (muon: line emitter on its Cherenkov cone; shower: point-like emitter in
longitudinal bins with its angular profile) and samples them; ``photons`` tracks single photons
with scattering (:mod:`km3sim.propagation.photons`, §6.2–6.3); ``tables`` draws the
photo-electrons of direct and scattered light from light tables built with the photon tracker
(:mod:`km3sim.propagation.tables`, the JSirene approach of KM3NeT). In direct mode the
light of a muon's secondaries below 0.5 GeV is emitted on its Cherenkov cone, that of the
showers of its continuous losses above 0.5 GeV (:mod:`km3sim.propagation.secondaries`) with
the shower angular profile along the track, and nothing is scattered.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from km3sim import schema
from km3sim.constants import ALPHA_EM
from km3sim.detector.pmt import (
    ACCEPTANCE_TABLE,
    ACCEPTANCE_TABLE_COS,
    PHOTOCATHODE_AREA_M2,
    quantum_efficiency,
)
from km3sim.propagation import showers as sh
from km3sim.propagation._light_kernels import (
    expected_direct_npe,
    expected_shower_npe,
    simulate_continuous_light,
    simulate_direct_light,
    simulate_shower_light,
)
from km3sim.propagation._table_kernels import simulate_muon_table_light, simulate_shower_table_light
from km3sim.propagation.secondaries import angular_theta_tables, secondary_light
from km3sim.propagation.water import water_for_site
from km3sim.errors import StageError
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "REFERENCE_WAVELENGTH_NM",
    "MIN_CLOSEST_APPROACH_M",
    "frank_tamm_yield",
    "radel_wiebusch_coefficients",
    "photon_yield",
    "shower_light_arrays",
    "DirectLightConfig",
    "DirectLight",
]

log = logging.getLogger(__name__)

#: Wavelength at which the Cherenkov angle and the group index (arrival times) are taken [nm]
#: (near the maximum of QE × transmission; n_ph(470 nm, 240 atm) = 1.3492 ≈ aanet's 1.3499).
REFERENCE_WAVELENGTH_NM = 470.0

#: Floor of the closest-approach distance [m], about the DOM radius (0.216 m, PHYSICS.md §7.1):
#: avoids the 1/d_c singularity for tracks through a DOM.
MIN_CLOSEST_APPROACH_M = 0.2

# Rädel & Wiebusch (arXiv:1206.5530), E_cut = 500 MeV: ΔL/L = λ + κ ln(E/GeV) (PHYSICS.md §5.3)
_RW_N = np.array([1.30, 1.33, 1.36])
_RW_LAMBDA = np.array([0.1842, 0.1880, 0.1916])
_RW_KAPPA = np.array([0.0204, 0.0206, 0.0207])

# photon-yield table: wavelength step [nm]; uniform d_γ grid with at most 0.1 m steps (Y(d) is
# a smooth sum of exponentials with decay lengths >= 10 m, so linear interpolation on that grid
# is good to ~1e-5; a uniform grid needs no log/exp per lookup in the kernel)
_WAVELENGTH_STEP_NM = 0.5
_YIELD_GRID_STEP_M = 0.1
_YIELD_GRID_MIN_POINTS = 1024
# angular acceptance resampled on a uniform cosine grid: its nodes are multiples of 0.05, so
# linear interpolation on this grid reproduces the table's piecewise-linear A(c) exactly
_ACCEPTANCE_STEP = 0.05


def frank_tamm_yield(wavelength_nm, refractive_index, beta=1.0):
    """Cherenkov photons per metre of track per nm of wavelength.

    Frank–Tamm (PHYSICS.md §5.1)::

        d²N/dx dλ = (2πα/λ²)·(1 − 1/(β²n²))

    Parameters
    ----------
    wavelength_nm : float or array_like
        Wavelength [nm].
    refractive_index : float or array_like
        Phase refractive index n at that wavelength.
    beta : float
        Particle speed / c.

    Returns
    -------
    float or ndarray
        Photons / (m · nm); zero below threshold (βn ≤ 1).
    """
    lam_m = np.asarray(wavelength_nm, dtype=np.float64) * 1e-9
    n = np.asarray(refractive_index, dtype=np.float64)
    factor = np.clip(1.0 - 1.0 / (beta * beta * n * n), 0.0, None)
    out = 2.0 * math.pi * ALPHA_EM / (lam_m * lam_m) * factor * 1e-9
    return out if out.ndim else float(out)


def radel_wiebusch_coefficients(refractive_index: float) -> tuple[float, float]:
    """(λ, κ) of the secondaries' extra light ΔL/L = λ + κ ln(E/GeV) for muons.

    Rädel & Wiebusch, arXiv:1206.5530, E_cut = 500 MeV (PHYSICS.md §5.3), interpolated
    linearly in n (clamped to the table, n = 1.30–1.36).
    """
    return (
        float(np.interp(refractive_index, _RW_N, _RW_LAMBDA)),
        float(np.interp(refractive_index, _RW_N, _RW_KAPPA)),
    )


def photon_yield(distance_m, water, wavelength_min_nm=300.0, wavelength_max_nm=700.0, step_nm=_WAVELENGTH_STEP_NM):
    """Detectable Cherenkov photons per metre of track after a path ``distance_m``.

    ``Y(d) = ∫ dλ d²N/dxdλ(λ, n_ph(λ)) · QE(λ) · exp(−d/λ_abs(λ))`` (PHYSICS.md §5.1, §6.1,
    §7.2) by the trapezoidal rule on a ``step_nm`` grid.

    Parameters
    ----------
    distance_m : float or array_like
        Photon path length d [m].
    water : km3sim.propagation.water.WaterOptics
    wavelength_min_nm, wavelength_max_nm, step_nm : float
        Integration range and step [nm].

    Returns
    -------
    float or ndarray
        Y(d) [photo-electrons per metre of track for unit area and acceptance].
    """
    d = np.asarray(distance_m, dtype=np.float64)
    n_steps = max(2, int(round((wavelength_max_nm - wavelength_min_nm) / step_nm)) + 1)
    lam = np.linspace(wavelength_min_nm, wavelength_max_nm, n_steps)
    spectrum = frank_tamm_yield(lam, water.refractive_index_phase(lam)) * quantum_efficiency(lam)
    labs = water.absorption_length(lam)
    with np.errstate(divide="ignore"):
        inv_labs = np.where(labs > 0.0, 1.0 / np.where(labs > 0.0, labs, 1.0), np.inf)
    att = np.exp(-np.multiply.outer(d.reshape(-1), inv_labs))
    att[:, ~np.isfinite(inv_labs)] = 0.0
    y = np.trapezoid(spectrum * att, lam, axis=1).reshape(d.shape)
    return y if y.ndim else float(y)


class DirectLightConfig(StageConfig):
    """Configuration of :class:`DirectLight`."""

    mode: Literal["direct", "photons", "tables"] = Field(
        "direct",
        description="'direct': analytic unscattered light (fast); 'photons': photon tracker with scattering; "
        "'tables': light tables built with the photon tracker (direct and scattered light, fast)",
    )
    max_distance_m: float = Field(300.0, gt=0.0, description="maximum photon path d_γ [m]")
    wavelength_min_nm: float = Field(300.0, gt=0.0, description="lower end of the wavelength integral [nm]")
    wavelength_max_nm: float = Field(700.0, gt=0.0, description="upper end of the wavelength integral [nm]")
    absorption_scale: float = Field(1.0, gt=0.0, description="factor on the Jpp absorption lengths")
    secondaries: bool = Field(
        True,
        description="light of a muon's secondaries that are not shower rows: the Rädel–Wiebusch ΔL/L (below "
        "0.5 GeV) and the showers of the losses muon_propagation kept continuous (0.5 GeV to max(v_cut·E, e_cut))",
    )
    muon_v_cut: float = Field(
        0.05, ge=0.0, le=1.0,
        description="v_cut of the muon_propagation that made the muons (filled from it in a production): its "
        "losses below max(v_cut·E, e_cut) get light as continuous showers; 1: propagation without stochastic "
        "losses; 0 (with muon_e_cut_gev 0): every loss above 0.5 GeV is a shower row",
    )
    muon_e_cut_gev: float = Field(
        1.0, ge=0.0,
        description="e_cut_gev of the muon_propagation that made the muons (filled from it in a production): "
        "the smallest loss stored as a shower row [GeV]",
    )
    showers: bool = Field(True, description="light of shower rows of mc_tracks (e±, γ, π⁰, hadrons)")
    shower_fluctuations: bool = Field(True, description="draw each shower's light yield from its Rädel–Wiebusch spread")
    shower_bins: int = Field(20, ge=1, le=100, description="longitudinal bins of equal light of a shower (direct mode)")
    shower_npe_cut: float = Field(
        1e-4, gt=0.0, le=1e-2,
        description="direct and tables mode: skip PMTs that a shower, or a muon's continuous-loss showers (direct "
        "mode), can give at most this many expected pe (speed; the light dropped per PMT is below it)",
    )
    scattering: bool = Field(True, description="scatter photons (photons mode)")
    scattering_scale: float = Field(1.0, gt=0.0, description="factor on the Kopelevich scattering lengths (photons mode)")
    dom_radius_m: float = Field(0.216, gt=0.0, lt=1.0, description="DOM sphere radius for the photon tracker [m]")
    grid_cell_m: float | None = Field(
        None, gt=0.0, description="cell of the tracker's DOM column grid [m] (default: half the DU spacing)"
    )
    tables: str = Field(
        "auto",
        description="tables mode: light-table file (HDF5, `km3sim tables build`) or 'auto': the matching table "
        "with the most photons in the table directory",
    )
    table_dir: str | None = Field(
        None, description="tables mode, 'auto': table directory (default $KM3SIM_TABLE_DIR, else ~/.cache/km3sim/tables)"
    )
    table_build: Literal["never", "coarse", "medium", "full"] = Field(
        "never",
        description="tables mode, 'auto': build a table of this quality into the table directory when none matches "
        "(coarse: ~1 min; full: hours, better built once with `km3sim tables build`)",
    )
    table_shower_points: int = Field(
        8, ge=1, le=20, description="tables mode: points of equal light along each shower's axis"
    )

    @model_validator(mode="after")
    def _check_range(self):
        if self.wavelength_max_nm <= self.wavelength_min_nm:
            raise ValueError(
                f"wavelength_max_nm ({self.wavelength_max_nm}) must exceed wavelength_min_nm ({self.wavelength_min_nm})"
            )
        return self


def shower_light_arrays(tracks: Table, n_bins: int):
    """Per-shower inputs of the shower-light kernels for the shower rows of ``tracks``.

    Returns
    -------
    rows : int64 array
        Row index of each shower in ``tracks``.
    length, sigma : float64 arrays
        Mean Cherenkov track length and its spread [m] (:mod:`~km3sim.propagation.showers`).
    z_mid, z_edges : float64 arrays (n, n_bins), (n, n_bins + 1)
        Depths of the bins of equal light fraction [m]: the medians of the bins and their edges
        (the last edge at the 99.9 % quantile).
    """
    kind = sh.shower_kind(tracks["pdgid"])
    rows = np.flatnonzero(kind >= 0)
    k = kind[rows].astype(np.int64)
    e_vis = sh.visible_energy(tracks["pdgid"][rows], tracks["energy"][rows])
    length = np.asarray(sh.cherenkov_track_length(e_vis, k), dtype=np.float64).reshape(-1)
    sigma = np.asarray(sh.cherenkov_track_length_sigma(e_vis, k), dtype=np.float64).reshape(-1)
    edges_q = np.arange(n_bins + 1) / n_bins
    edges_q[-1] = 0.999
    mid_q = (np.arange(n_bins) + 0.5) / n_bins
    if len(rows):
        z_mid = sh.longitudinal_quantiles(e_vis, k, mid_q)
        z_edges = sh.longitudinal_quantiles(e_vis, k, edges_q)
    else:
        z_mid = np.zeros((0, n_bins))
        z_edges = np.zeros((0, n_bins + 1))
    return rows, length, sigma, np.ascontiguousarray(z_mid), np.ascontiguousarray(z_edges)


@register_stage
class DirectLight(Stage):
    """Cherenkov light of muon tracks and showers at every usable PMT.

    **Muons, direct mode.** For every muon (|pdgid| = 13, length > 0; the track runs from
    ``pos`` along ``dir`` for ``length`` m starting at ``time``) and every usable PMT, the
    expected number of photo-electrons of a line emitter (PHYSICS.md §5.1, §7.2, §9.1)::

        μ = A_pmt · A(c) · Y(d_γ) / (2π d_c sinθ_c) · (1 + ΔL/L(E))

    — the photon density at distance d_c is (dN/dx)/(2π d_c), and a disk of area A facing the
    photons intercepts those crossing a cylinder patch of area A/sinθ_c. Y(d_γ) (see
    :func:`photon_yield`) is tabulated once on a fine uniform grid of d_γ. θ_c and the group index n_g
    are taken at :data:`REFERENCE_WAVELENGTH_NM` and the site pressure. The number of pe is
    Poisson(μ) from the event's seed; each pe is one ``mc_hits`` row (npe = 1) at the
    arrival time t = time + z_emit/c + d_γ·n_g/c of §9.1 (no PMT t0: that is a calibration
    offset), with ``origin`` = track_id.

    Secondaries (``secondaries``, :mod:`km3sim.propagation.secondaries`), with E the muon
    energy at the emission point (energy loss spread uniformly along the track):

    * below 500 MeV (δ-rays, pair production, bremsstrahlung) the Rädel–Wiebusch factor
      ΔL/L = λ + κ ln(E/GeV) (arXiv:1206.5530), on the muon's Cherenkov cone;
    * the losses between 500 MeV and max(v_cut·E, e_cut) that ``muon_propagation`` kept
      continuous (``muon_v_cut``, ``muon_e_cut_gev``; in a production taken from it) as EM
      (and photonuclear: hadronic) showers with the mean light cont(E) per metre from the
      propagation's cross sections (~1x the bare muon light at 1 TeV, ~9x at 10 TeV), emitted
      along the track with the shower angular profile about the muon direction: per PMT a
      line of point emitters integrated over the emission angle
      (:func:`~km3sim.propagation._light_kernels.continuous_shower_npe`, geometry at the DOM
      centre, DOMs whose PMTs can get more than ``shower_npe_cut`` only), Poisson pe at an
      emission point drawn from the integrand, t = t_track + z/c + r·n_g/c, on a random
      stream of their own
      (:func:`~km3sim.propagation._light_kernels.simulate_continuous_light`).

    Losses above max(v_cut·E, e_cut) are shower rows (below).

    **Showers, direct mode.** Rows with pdgid ±11, 22, 111 (EM) or other hadrons (hadronic,
    e.g. the pdgid 211 "hadronic system" of a neutrino interaction or the showers of a muon's
    stochastic losses) emit the light of a Rädel–Wiebusch shower (PHYSICS.md §5.4,
    :mod:`~km3sim.propagation.showers`): Cherenkov track length l(E) (drawn from its spread
    with ``shower_fluctuations``), the angular profile about the axis, and ``shower_bins``
    longitudinal bins of equal light; see
    :func:`~km3sim.propagation._light_kernels.simulate_shower_light`. Arrival times
    t = t_shower + z/c + r·n_g/c. Shower light uses its own random stream of the event.

    **Photons mode** (``mode: photons``): all emitters are simulated by the photon tracker
    (:class:`~km3sim.propagation.photons.PhotonTracker`) with absorption, Kopelevich scattering
    (``scattering``) and the p0.0075 phase function; the arrival time is that at the DOM sphere.
    A muon's continuous-loss shower photons are emitted along it with the shower angular
    profile. Without scattering its mean npe agrees with direct mode
    (tests/propagation/test_photons.py, test_secondaries.py).

    **Tables mode** (``mode: tables``): the JSirene approach. Light tables built with the photon
    tracker in the same water (:mod:`km3sim.propagation.tables`; ``tables``: a file or 'auto',
    loaded once here and checked against this stage's water and detection parameters) give the
    expected npe and time-residual distribution of every usable PMT from the DOM's distance and
    the PMT orientation: muons use the infinite-track table where the Cherenkov emission point
    of the DOM lies on the track (× 1 + ΔL/L(E) with ``secondaries``) plus the
    ``muon_showers`` table of a line of EM showers along the track × cont(E) (the continuous
    losses above 500 MeV, each pe's time from its own component's table), showers the point-shower
    table at ``table_shower_points`` points of equal light along the axis, scaled by the
    Cherenkov track length (see :func:`~km3sim.propagation._table_kernels.simulate_muon_table_light`
    and :func:`~km3sim.propagation._table_kernels.simulate_shower_table_light`). The pe are
    Poisson, their times the direct time at the DOM centre plus a residual drawn from the
    table. PMTs beyond the table's range (R ≤ ``max_distance_m``·sinθ_c for muons,
    D ≤ ``max_distance_m`` for showers) or the shower reach (``shower_npe_cut``) are skipped
    before any lookup.

    Only usable PMTs (``detector.pmt_usable`` where available, else ``pmt_status_ok``) are
    illuminated. PMTs farther than ``max_distance_m`` of photon path are skipped: for 1 TeV
    muons crossing or passing a 115-DU block the light beyond 300 m is 1e-4 (ORCA) and 3e-3
    (ARCA) of the total.
    """

    name = "direct_light"
    role = "light"
    consumes = ("mc_tracks",)
    produces = ("mc_hits",)
    Config = DirectLightConfig

    def __init__(self, config: DirectLightConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        cfg = self.config
        self.water = water_for_site(self.site, cfg.absorption_scale, cfg.scattering_scale)
        self.n_phase = float(self.water.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
        self.n_group = float(self.water.refractive_index_group(REFERENCE_WAVELENGTH_NM))
        self.cos_c = 1.0 / self.n_phase
        self.sin_c = math.sqrt(1.0 - self.cos_c**2)
        self.tan_c = self.sin_c / self.cos_c
        self.rw_lambda, self.rw_kappa = radel_wiebusch_coefficients(self.n_phase)
        #: ΔL/L and continuous-loss shower light of muons (:func:`~km3sim.propagation.secondaries.secondary_light`)
        self.secondary_light = secondary_light(self.n_phase, cfg.muon_v_cut, cfg.muon_e_cut_gev,
                                               self.site.water_density_g_cm3)
        self._theta_tables = angular_theta_tables(self.n_phase)
        self._cont_envelope = None
        d_max = max(cfg.max_distance_m, 1.0) * 1.001
        n_grid = max(_YIELD_GRID_MIN_POINTS, int(math.ceil(d_max / _YIELD_GRID_STEP_M)) + 1)
        self._d_grid = np.linspace(0.0, d_max, n_grid)
        self._reach_envelope = None
        self._yield_table = np.ascontiguousarray(
            photon_yield(self._d_grid, self.water, cfg.wavelength_min_nm, cfg.wavelength_max_nm)
        )
        self._acc_c0 = -1.0
        n_acc = int(round((1.0 - self._acc_c0) / _ACCEPTANCE_STEP)) + 1
        acc_grid = np.linspace(self._acc_c0, 1.0, n_acc)
        self._acc_table = np.ascontiguousarray(
            np.interp(acc_grid, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0)
        )
        # shower angular profile dN/dcosθ on a uniform grid, at the reference index
        self._ang_pdf, _ = sh.angular_profile_tables(self.n_phase)
        self._ang_dc = 2.0 / (len(self._ang_pdf) - 1)
        self._pmt_cache: tuple | None = None
        self._tracker_cache: tuple | None = None
        self._dom_cache: tuple | None = None
        self.light_tables = self._load_light_tables() if cfg.mode == "tables" else None
        log.debug(
            "direct_light: n_ph=%.4f n_g=%.4f theta_c=%.2f deg, Y(0)=%.4g pe/m",
            self.n_phase, self.n_group, math.degrees(math.acos(self.cos_c)), self._yield_table[0],
        )

    # ------------------------------------------------------------------ tables mode set-up
    def table_physics(self) -> dict:
        """The light-table physics parameters this stage needs (:func:`~km3sim.propagation.tables.physics_parameters`)."""
        from km3sim.propagation.tables import physics_parameters

        cfg = self.config
        return physics_parameters(
            self.water, scattering=cfg.scattering, wavelength_min_nm=cfg.wavelength_min_nm,
            wavelength_max_nm=cfg.wavelength_max_nm, max_distance_m=cfg.max_distance_m, dom_radius_m=cfg.dom_radius_m,
        )

    def _load_light_tables(self):
        from km3sim.propagation.tables import (
            LightTableError, build_light_tables, find_light_tables, load_light_tables, table_cache_dir,
        )

        cfg = self.config
        physics = self.table_physics()
        if cfg.tables == "auto":
            path = find_light_tables(physics, cfg.table_dir)
            if path is None:
                if cfg.table_build == "never":
                    raise LightTableError(
                        f"direct_light (mode tables, tables: auto): no light table for this water model (site "
                        f"{self.site.name!r}, {self.water.pressure_atm} atm, absorption x{self.water.absorption_scale}, "
                        f"scattering x{self.water.scattering_scale}{'' if cfg.scattering else ' off'}, max_distance_m "
                        f"{cfg.max_distance_m}) in {table_cache_dir(cfg.table_dir)}; build one with `km3sim tables build "
                        f"--site {self.site.name}` or set table_build: coarse"
                    )
                log.warning("direct_light: building a %s light table into %s (no matching table found)",
                            cfg.table_build, table_cache_dir(cfg.table_dir))
                path = build_light_tables(
                    self.water, site=self.site.name, quality=cfg.table_build, scattering=cfg.scattering,
                    wavelength_min_nm=cfg.wavelength_min_nm, wavelength_max_nm=cfg.wavelength_max_nm,
                    max_distance_m=cfg.max_distance_m, dom_radius_m=cfg.dom_radius_m, table_dir=cfg.table_dir,
                )
        else:
            path = cfg.tables
        tables = load_light_tables(path)
        tables.check_physics(physics, f"the direct_light stage (site {self.site.name!r})")
        log.info("direct_light: light tables %s", tables.path)
        return tables

    def header(self) -> dict:
        if self.light_tables is None:
            return {}
        return {"light_tables": self.light_tables.summary()}

    @classmethod
    def input_files(cls, config) -> list[str]:
        if getattr(config, "mode", None) == "tables" and config.tables != "auto":
            return [config.tables]
        return []

    # ------------------------------------------------------------------ helpers
    def photon_yield(self, distance_m):
        """Tabulated Y(d_γ) as used by the kernel (interpolated) [pe/m for unit area]."""
        d = np.asarray(distance_m, dtype=np.float64)
        out = np.interp(d, self._d_grid, self._yield_table)
        return out if out.ndim else float(out)

    def _kernel_params(self):
        cfg = self.config
        return (
            self.sin_c, self.tan_c, MIN_CLOSEST_APPROACH_M, cfg.max_distance_m, PHOTOCATHODE_AREA_M2,
            0.0, float(self._d_grid[1]), self._yield_table, self._acc_c0, _ACCEPTANCE_STEP, self._acc_table,
            bool(cfg.secondaries), *self.secondary_light.args(), *self._theta_tables.args(),
        )

    def continuous_reach(self, energy, energy_lost=0.0) -> np.ndarray:
        """Distance [m] from a muon's line beyond which its continuous-loss showers give every
        PMT less than ``shower_npe_cut`` expected pe (direct mode).

        Bound of :func:`~km3sim.propagation._light_kernels.continuous_shower_npe` at distance
        ρ: acceptance ≤ max A, Y(r) ≤ Y(ρ), cont(E) ≤ its maximum over the muon's energies
        (E − ΔE … E) and the angular integral ≤ F(π): ``A_pmt·max A·Y(ρ)·F(π)·cont_max/(2πρ)``,
        made non-increasing in ρ; the reach is where it falls below the cut (0 without
        continuous light, at most ``max_distance_m``).
        """
        if self._cont_envelope is None:
            r = np.maximum(self._d_grid, MIN_CLOSEST_APPROACH_M)
            bound = (PHOTOCATHODE_AREA_M2 * float(np.max(self._acc_table)) * self._yield_table
                     * self._theta_tables.f_total / (2.0 * np.pi * r))
            self._cont_envelope = np.maximum.accumulate(bound[::-1])[::-1]
        cmax = self.continuous_max(energy, energy_lost)
        env = self._cont_envelope
        idx = np.searchsorted(-env, -self.config.shower_npe_cut / np.maximum(cmax, 1e-300), side="right")
        out = np.where(idx < len(env), self._d_grid[np.minimum(idx, len(env) - 1)], self.config.max_distance_m)
        out = np.where(cmax > 0.0, np.minimum(out, self.config.max_distance_m), 0.0)
        return np.ascontiguousarray(out, dtype=np.float64)

    def continuous_max(self, energy, energy_lost=0.0) -> np.ndarray:
        """Maximum of the continuous-shower ratio cont(E) over muon energies E − ΔE … E."""
        e_hi = np.atleast_1d(np.asarray(energy, dtype=np.float64))
        e_lo = np.maximum(e_hi - np.asarray(energy_lost, dtype=np.float64), 0.0)
        sl = self.secondary_light
        grid = sl.log_e0 + sl.dlog_e * np.arange(len(sl.cont_ratio))
        c_hi = sl.ratios(e_hi)[1]
        c_lo = sl.ratios(np.maximum(e_lo, 1e-30))[1]
        # the table nodes between the two energies (cont is piecewise linear in log E)
        lo = np.log10(np.maximum(e_lo, 1e-30))
        hi = np.log10(np.maximum(e_hi, 1e-30))
        inside = (grid[None, :] >= lo[:, None]) & (grid[None, :] <= hi[:, None]) if len(e_hi) < 4096 else None
        if inside is not None:
            c_mid = np.max(np.where(inside, sl.cont_ratio[None, :], 0.0), axis=1)
        else:
            c_mid = np.array([np.max(sl.cont_ratio[(grid >= a) & (grid <= b)], initial=0.0) for a, b in zip(lo, hi)])
        return np.ascontiguousarray(np.maximum(np.maximum(c_hi, c_lo), c_mid), dtype=np.float64)

    def _shower_params(self):
        return (
            MIN_CLOSEST_APPROACH_M, self.config.max_distance_m, PHOTOCATHODE_AREA_M2,
            0.0, float(self._d_grid[1]), self._yield_table, self._acc_c0, _ACCEPTANCE_STEP, self._acc_table,
            -1.0, self._ang_dc, self._ang_pdf,
        )

    def expected_npe(self, pos, direction, energy, length, pmt_pos, pmt_dir, energy_lost=0.0, continuous=False):
        """Expected photo-electrons of one muon track at the given PMTs (direct mode, no sampling).

        The light on the Cherenkov cone (bare muon × (1 + ΔL/L)) and, with ``continuous``
        (and ``secondaries``), that of the showers of its continuous losses (emitted along the
        track with the shower angular profile, at other times than the cone light; computed
        at the PMT positions without the ``shower_npe_cut`` reach): the stage's full muon light
        needs ``continuous=True``. The default (cone light only) keeps the meaning this
        method had before the continuous-loss light existed, for callers that put every pe at
        the Cherenkov time.

        Parameters
        ----------
        pos, direction : array_like, shape (3,)
            Track start [m] and unit direction.
        energy, length, energy_lost : float
            Energy at pos [GeV], track length [m], energy lost along it [GeV].
        pmt_pos, pmt_dir : array_like, shape (n, 3)
            PMT positions [m] and axes.

        Returns
        -------
        mu, z_emit, d_gamma : ndarray (n,)
            Expected pe, emission point on the Cherenkov cone along the track [m] and its photon
            path [m] (NaN where the PMT is beyond ``max_distance_m``·sinθ_c of the track line).
        """
        return expected_direct_npe(
            np.asarray(pos, dtype=np.float64), np.asarray(direction, dtype=np.float64),
            float(energy), float(energy_lost), float(length),
            np.ascontiguousarray(np.atleast_2d(pmt_pos), dtype=np.float64),
            np.ascontiguousarray(np.atleast_2d(pmt_dir), dtype=np.float64),
            *self._kernel_params(), bool(continuous),
        )

    def expected_shower_npe(self, pos, direction, energy, pdgid, pmt_pos, pmt_dir):
        """Expected photo-electrons of one shower (mean light yield) at the given PMTs (direct mode).

        Parameters
        ----------
        pos, direction : array_like, shape (3,)
            Shower vertex [m] and axis.
        energy : float
            Energy of the shower particle [GeV].
        pdgid : int
            PDG code of the shower particle (EM or hadronic, see :func:`~km3sim.propagation.showers.shower_kind`).
        pmt_pos, pmt_dir : array_like, shape (n, 3)

        Returns
        -------
        mu : ndarray (n,)
        """
        tracks = {"pdgid": np.array([pdgid]), "energy": np.array([float(energy)])}
        rows, length, _, z_mid, _ = shower_light_arrays(tracks, self.config.shower_bins)
        if len(rows) == 0:
            raise ValueError(f"pdgid {pdgid} does not make a shower")
        d = np.asarray(direction, dtype=np.float64)
        return expected_shower_npe(
            np.asarray(pos, dtype=np.float64), d / np.linalg.norm(d), float(length[0]), np.ascontiguousarray(z_mid[0]),
            np.ascontiguousarray(np.atleast_2d(pmt_pos), dtype=np.float64),
            np.ascontiguousarray(np.atleast_2d(pmt_dir), dtype=np.float64),
            *self._shower_params(),
        )

    def _pmts(self, detector):
        if self._pmt_cache is not None and self._pmt_cache[0] is detector:
            return self._pmt_cache[1:]
        usable = np.asarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=bool)
        index = np.flatnonzero(usable).astype(np.int64)
        pos = np.ascontiguousarray(detector.pmt_pos[index], dtype=np.float64)
        dirs = np.ascontiguousarray(detector.pmt_dir[index], dtype=np.float64)
        self._pmt_cache = (detector, index, pos, dirs)
        return index, pos, dirs

    def _doms(self, detector):
        """(dom_pos, dom_pmt_start, pmt_index, pmt_dir, pmt_ok) of ``detector`` for tables mode (cached)."""
        if self._dom_cache is not None and self._dom_cache[0] is detector:
            return self._dom_cache[1:]
        from km3sim.propagation.photons import _dom_geometry

        dom_pos, start, pmt_index = _dom_geometry(detector)
        usable = np.asarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=bool)[pmt_index]
        pmt_dir = np.ascontiguousarray(np.asarray(detector.pmt_dir, dtype=np.float64)[pmt_index])
        out = (np.ascontiguousarray(dom_pos, dtype=np.float64), np.ascontiguousarray(start, dtype=np.int64),
               np.ascontiguousarray(pmt_index, dtype=np.int64), pmt_dir, np.ascontiguousarray(usable))
        self._dom_cache = (detector, *out)
        return out

    def _dom_acceptance_bound(self, detector) -> float:
        """Upper bound of Σ_k A(w·a_k) over the PMTs of any DOM of ``detector`` and any photon
        direction w (for the thinning in
        :func:`~km3sim.propagation._light_kernels.simulate_continuous_light`, which checks it):
        the maximum over 2000 directions of every DOM (at most 400 DOMs, evenly picked; DOMs
        of one PMT layout up to a rotation share it) times 1.25 for the gaps between them."""
        if getattr(self, "_acc_bound_cache", None) is not None and self._acc_bound_cache[0] is detector:
            return self._acc_bound_cache[1]
        _, start, _, pmt_dir, _ = self._doms(detector)
        n = 2000
        i = np.arange(n) + 0.5
        cz = 1.0 - 2.0 * i / n
        phi = np.pi * (1.0 + 5.0**0.5) * i
        sz = np.sqrt(1.0 - cz * cz)
        w = np.column_stack([sz * np.cos(phi), sz * np.sin(phi), cz])
        acc_c = np.linspace(self._acc_c0, 1.0, len(self._acc_table))
        worst = 0.0
        n_doms = len(start) - 1
        for d in np.unique(np.linspace(0, n_doms - 1, min(n_doms, 400)).astype(int)):
            dirs = pmt_dir[start[d]:start[d + 1]]
            if len(dirs):
                worst = max(worst, float(np.interp(w @ dirs.T, acc_c, self._acc_table).sum(axis=1).max()))
        bound = 1.25 * worst
        self._acc_bound_cache = (detector, bound)
        return bound

    def tracker(self, detector):
        """The :class:`~km3sim.propagation.photons.PhotonTracker` of photons mode for ``detector`` (cached)."""
        if self._tracker_cache is not None and self._tracker_cache[0] is detector:
            return self._tracker_cache[1]
        from km3sim.propagation.photons import PhotonTracker

        cfg = self.config
        tracker = PhotonTracker.from_detector(
            detector, self.water, dom_radius_m=cfg.dom_radius_m, wavelength_min_nm=cfg.wavelength_min_nm,
            wavelength_max_nm=cfg.wavelength_max_nm, max_distance_m=cfg.max_distance_m, scattering=cfg.scattering,
            secondaries=cfg.secondaries, grid_cell_m=cfg.grid_cell_m, reference_wavelength_nm=REFERENCE_WAVELENGTH_NM,
            muon_v_cut=cfg.muon_v_cut, muon_e_cut_gev=cfg.muon_e_cut_gev,
            water_density_g_cm3=self.site.water_density_g_cm3,
        )
        self._tracker_cache = (detector, tracker)
        return tracker

    # ------------------------------------------------------------------ stage
    def process(self, tables: dict[str, Table], ctx: StageContext) -> dict[str, Table]:
        detector = self.detector if self.detector is not None else ctx.detector
        tracks = tables["mc_tracks"]
        if self.config.mode == "photons":
            parts = self._photons(tracks, ctx, detector)
        elif self.config.mode == "tables":
            parts = [self._table_muons(tracks, ctx.seeds, detector)]
            if self.config.showers:
                parts.append(self._table_showers(tracks, ctx.seeds, detector))
            parts = [p[:4] for p in parts if p is not None]
        else:
            parts = [self._direct_muons(tracks, ctx, detector)]
            if self.config.showers:
                parts.append(self._direct_showers(tracks, ctx, detector))
        parts = [p for p in parts if p is not None]
        if not parts:
            return {"mc_hits": schema.empty_table("mc_hits")}
        ev, pmt_idx, time, origin = (np.concatenate(c) for c in zip(*parts))
        n = len(time)
        hits = schema.make_table(
            "mc_hits",
            event_id=ev,
            pmt_id=detector.pmt_id[pmt_idx],
            dom_id=detector.pmt_dom_id[pmt_idx],
            channel_id=detector.pmt_channel[pmt_idx],
            time=time,
            npe=np.ones(n, dtype=np.int32),
            origin=origin,
        )
        order = np.lexsort((hits["origin"], hits["pmt_id"], hits["time"], hits["event_id"]))
        log.debug("direct_light (%s): %d tracks -> %d pe", self.config.mode, len(tracks), n)
        return {"mc_hits": hits[order]}

    def _direct_muons(self, tracks: Table, ctx: StageContext, detector):
        sel = (np.abs(tracks["pdgid"]) == 13) & (tracks["length"] > 0.0)
        muons = tracks[sel].sort(("event_id", "track_id"))
        if len(muons) == 0:
            return None
        event_ids, offsets = muons.offsets()
        seeds = ctx.seeds(event_ids)
        pmt_index, pmt_pos, pmt_dir = self._pmts(detector)
        track_pos = np.ascontiguousarray(np.column_stack([muons["pos_x"], muons["pos_y"], muons["pos_z"]]), dtype=np.float64)
        track_dir = np.column_stack([muons["dir_x"], muons["dir_y"], muons["dir_z"]]).astype(np.float64)
        track_dir /= np.linalg.norm(track_dir, axis=1)[:, None]
        track_dir = np.ascontiguousarray(track_dir)
        (sin_c, tan_c, d_floor, max_d, area, d0, dd, ytab, c0, dc, atab, sec, *sec_tabs) = self._kernel_params()
        sec_tabs, theta_tabs = sec_tabs[:4], sec_tabs[4:]
        time0 = np.ascontiguousarray(muons["time"], dtype=np.float64)
        length = np.ascontiguousarray(muons["length"], dtype=np.float64)
        energy = np.ascontiguousarray(muons["energy"], dtype=np.float64)
        lost = np.ascontiguousarray(muons["energy_lost_in_can"], dtype=np.float64)
        tid = np.ascontiguousarray(muons["track_id"], dtype=np.int64)
        ev_idx, pmt_idx, time, origin = simulate_direct_light(
            seeds, offsets, track_pos, track_dir, time0, length, energy, lost, tid,
            pmt_index, pmt_pos, pmt_dir,
            sin_c, tan_c, self.n_group, d_floor, max_d, area, d0, dd, ytab, c0, dc, atab, sec, *sec_tabs,
        )
        reach = self.continuous_reach(energy, lost) if sec else np.zeros(len(muons))
        if np.any(reach > 0.0):
            dom_pos, start, dom_pmt_index, dom_pmt_dir, pmt_ok = self._doms(detector)
            ce, cp, ct, co = simulate_continuous_light(
                seeds, offsets, track_pos, track_dir, time0, length, energy, lost, tid, reach,
                self.continuous_max(energy, lost), dom_pos, start, dom_pmt_index, dom_pmt_dir, pmt_ok, self._dom_acceptance_bound(detector),
                self.n_group, d_floor, max_d, area, d0, dd, ytab, c0, dc, atab, *sec_tabs, *theta_tabs,
            )
            ev_idx, pmt_idx, time, origin = (np.concatenate(x) for x in ((ev_idx, ce), (pmt_idx, cp), (time, ct),
                                                                          (origin, co)))
        return event_ids[ev_idx], pmt_idx, time, origin

    def shower_reach(self, track_length) -> np.ndarray:
        """Distance [m] beyond which a shower of Cherenkov track length ``track_length`` [m]
        gives every PMT less than ``shower_npe_cut`` expected pe (direct mode).

        Upper bound of the expected pe at distance r: all the light from the point of the
        axis nearest the PMT, at the peak of the angular profile, head-on acceptance 1:
        ``A_pmt · l · Y(r) · max f / (2π r²)`` (same terms as the kernel), made non-increasing
        in r; the reach is where it falls below the cut (at most ``max_distance_m``).
        """
        if self._reach_envelope is None:
            r = np.maximum(self._d_grid, MIN_CLOSEST_APPROACH_M)
            bound = PHOTOCATHODE_AREA_M2 * self._yield_table * float(np.max(self._ang_pdf)) / (2.0 * np.pi * r * r)
            self._reach_envelope = np.maximum.accumulate(bound[::-1])[::-1]  # non-increasing
        env = self._reach_envelope
        lengths = np.atleast_1d(np.asarray(track_length, dtype=np.float64))
        # first grid point where l * env < cut: env < cut / l; env is non-increasing -> search on -env
        idx = np.searchsorted(-env, -self.config.shower_npe_cut / np.maximum(lengths, 1e-300), side="right")
        out = np.where(idx < len(env), self._d_grid[np.minimum(idx, len(env) - 1)], self.config.max_distance_m)
        return np.ascontiguousarray(np.minimum(out, self.config.max_distance_m), dtype=np.float64)

    def _direct_showers(self, tracks: Table, ctx: StageContext, detector):
        kind = sh.shower_kind(tracks["pdgid"])
        showers = tracks[kind >= 0].sort(("event_id", "track_id"))
        if len(showers) == 0:
            return None
        event_ids, offsets = showers.offsets()
        seeds = ctx.seeds(event_ids)
        _, length, sigma, z_mid, z_edges = shower_light_arrays(showers, self.config.shower_bins)
        pmt_index, pmt_pos, pmt_dir = self._pmts(detector)
        pos = np.ascontiguousarray(np.column_stack([showers["pos_x"], showers["pos_y"], showers["pos_z"]]), dtype=np.float64)
        dirs = np.column_stack([showers["dir_x"], showers["dir_y"], showers["dir_z"]]).astype(np.float64)
        norm = np.linalg.norm(dirs, axis=1)
        if np.any(norm == 0.0):
            raise StageError("direct_light: mc_tracks shower rows with a zero direction vector")
        dirs = np.ascontiguousarray(dirs / norm[:, None])
        reach = self.shower_reach(length + (5.0 * sigma if self.config.shower_fluctuations else 0.0))
        ev_idx, pmt_idx, time, origin = simulate_shower_light(
            seeds, offsets, pos, dirs, np.ascontiguousarray(showers["time"], dtype=np.float64),
            length, sigma, z_mid, z_edges, np.ascontiguousarray(showers["track_id"], dtype=np.int64),
            reach, pmt_index, pmt_pos, pmt_dir, self.n_group, *self._shower_params(), bool(self.config.shower_fluctuations),
        )
        return event_ids[ev_idx], pmt_idx, time, origin

    def _photons(self, tracks: Table, ctx: StageContext, detector):
        cfg = self.config
        tracker = self.tracker(detector)
        event_ids = np.unique(np.asarray(tracks["event_id"], dtype=np.int64))
        if len(event_ids) == 0:
            return []
        emitters = tracker.emitters_from_tracks(tracks, event_ids, showers=cfg.showers,
                                                fluctuations=cfg.shower_fluctuations)
        if len(emitters) == 0:
            return []
        hits = tracker.track(emitters, ctx.seeds(event_ids))
        return [(event_ids[hits.event], hits.pmt_index, hits.time, emitters.origin[hits.emitter])]

    # ------------------------------------------------------------------ tables mode
    def _table_muons(self, tracks: Table, seeds_of, detector, expected_only: bool = False):
        sel = (np.abs(tracks["pdgid"]) == 13) & (tracks["length"] > 0.0)
        muons = tracks[sel].sort(("event_id", "track_id"))
        if len(muons) == 0:
            return None
        event_ids, offsets = muons.offsets()
        seeds = seeds_of(event_ids)
        dom_pos, start, pmt_index, pmt_dir, pmt_ok = self._doms(detector)
        pos = np.ascontiguousarray(np.column_stack([muons["pos_x"], muons["pos_y"], muons["pos_z"]]), dtype=np.float64)
        dirs = np.column_stack([muons["dir_x"], muons["dir_y"], muons["dir_z"]]).astype(np.float64)
        dirs = np.ascontiguousarray(dirs / np.linalg.norm(dirs, axis=1)[:, None])
        t = self.light_tables
        m = t.muon
        ms = t.muon_showers
        from km3sim.propagation.tables import MUON_R_FLOOR_M

        ev_idx, pmt_idx, time, origin, mu = simulate_muon_table_light(
            seeds, offsets, pos, dirs,
            np.ascontiguousarray(muons["time"], dtype=np.float64),
            np.ascontiguousarray(muons["length"], dtype=np.float64),
            np.ascontiguousarray(muons["energy"], dtype=np.float64),
            np.ascontiguousarray(muons["energy_lost_in_can"], dtype=np.float64),
            np.ascontiguousarray(muons["track_id"], dtype=np.int64),
            dom_pos, start, pmt_index, pmt_dir, pmt_ok,
            t.sin_c, t.tan_c, t.n_group, m.nodes, m.norm_x0, m.norm_inv_dx, m.norm_fine, m.x_max, MUON_R_FLOOR_M,
            t.n_theta, t.n_phi, m.shape, m.cdf, t.t_edges,
            ms.norm_x0, ms.norm_inv_dx, ms.norm_fine, ms.shape, ms.cdf,
            bool(self.config.secondaries), *self.secondary_light.args(), bool(expected_only),
        )
        return event_ids[ev_idx], pmt_idx, time, origin, mu

    def _table_showers(self, tracks: Table, seeds_of, detector, expected_only: bool = False):
        from km3sim.propagation.tables import SHOWER_D_FLOOR_M

        cfg = self.config
        kind = sh.shower_kind(tracks["pdgid"])
        showers = tracks[kind >= 0].sort(("event_id", "track_id"))
        if len(showers) == 0:
            return None
        event_ids, offsets = showers.offsets()
        seeds = seeds_of(event_ids)
        _, length, sigma, z_mid, _ = shower_light_arrays(showers, cfg.table_shower_points)
        # emission depths of the pe: midpoints of 8 equal-light sub-bins per light point
        n_fine = 8 * cfg.table_shower_points
        kind_s = sh.shower_kind(showers["pdgid"]).astype(np.int64)
        z_fine = np.ascontiguousarray(sh.longitudinal_quantiles(
            sh.visible_energy(showers["pdgid"], showers["energy"]), kind_s, (np.arange(n_fine) + 0.5) / n_fine))
        t = self.light_tables
        l_e = float(t.physics["electron_track_length_m_per_gev"])
        scale = np.ascontiguousarray(length / l_e)
        fluct = bool(cfg.shower_fluctuations) and not expected_only
        sig = np.ascontiguousarray(sigma / l_e) if fluct else np.zeros(len(scale))
        pos = np.ascontiguousarray(np.column_stack([showers["pos_x"], showers["pos_y"], showers["pos_z"]]), dtype=np.float64)
        dirs = np.column_stack([showers["dir_x"], showers["dir_y"], showers["dir_z"]]).astype(np.float64)
        norm = np.linalg.norm(dirs, axis=1)
        if np.any(norm == 0.0):
            raise StageError("direct_light: mc_tracks shower rows with a zero direction vector")
        dirs = np.ascontiguousarray(dirs / norm[:, None])
        reach = t.shower_reach(scale + 5.0 * sig, cfg.shower_npe_cut)
        dom_pos, start, pmt_index, pmt_dir, pmt_ok = self._doms(detector)
        s = t.shower
        ev_idx, pmt_idx, time, origin, mu = simulate_shower_table_light(
            seeds, offsets, pos, dirs, np.ascontiguousarray(showers["time"], dtype=np.float64), scale, sig,
            z_mid, z_fine, np.ascontiguousarray(showers["track_id"], dtype=np.int64), reach,
            dom_pos, start, pmt_index, pmt_dir, pmt_ok,
            t.n_group, s.nodes, t.cd_nodes, t.cd_y, t.cd_cusp, s.norm_x0, s.norm_inv_dx, s.norm_fine, s.x_max,
            SHOWER_D_FLOOR_M, t.n_theta, t.n_phi, s.shape, t.shower_log_shape, t.shower_max_shape,
            0.0 if expected_only else cfg.shower_npe_cut, s.cdf, t.t_edges, fluct, bool(expected_only),
        )
        return event_ids[ev_idx], pmt_idx, time, origin, mu

    def table_expected_npe(self, tracks: Table, detector=None) -> np.ndarray:
        """Expected npe per PMT of ``detector`` (row order of the detector's PMT arrays) from all
        light-emitting rows of ``tracks`` in tables mode (mean shower light, no sampling)."""
        if self.light_tables is None:
            raise StageError("table_expected_npe needs mode: tables")
        detector = detector if detector is not None else self.detector
        _, _, pmt_index, _, _ = self._doms(detector)
        out = np.zeros(len(detector.pmt_dir))

        def seeds_of(ev):
            return np.zeros(len(ev), dtype=np.uint64)

        for part in (self._table_muons(tracks, seeds_of, detector, True),
                     self._table_showers(tracks, seeds_of, detector, True) if self.config.showers else None):
            if part is not None:
                out[pmt_index] += part[4]
        return out
