"""Single atmospheric muons on the can, from the MUPAGE parametrisation.

Physics (PHYSICS.md §1.1, §1.3, §1.4): Becherini, Margiotta, Sioli, Spurio, "A parameterisation
of single and multiple muons in the deep water or ice", Astropart. Phys. 25 (2006) 1,
hep-ph/0507228, as coded in MUPAGE (Carminati et al., CPC 179 (2008) 915, arXiv:0802.0562).
Only the single-muon term (multiplicity 1) is generated: Phi(1; h, theta) = K(h, theta).

Differences from MUPAGE, on purpose:

- The can is built around the detector (:func:`km3sim.generators.can.can_from_detector`).
- Instead of hit-or-miss against a global bound and a livetime estimated from the accepted
  events, the rate of muons entering the can with ``energy_min_gev < E < energy_max_gev`` is
  integrated numerically (Gauss-Legendre) once, and the number of events of a run is drawn
  from a Poisson law with mean rate x livetime. Every event then has weight w3 = 1/livetime.
- (theta, entry surface, entry height) are drawn from the same rate density, exactly, with a
  tabulated envelope and accept/reject within a cell.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from pydantic import Field, model_validator

from km3sim.errors import ConfigError, StageError
from km3sim.generators import _kernels as K
from km3sim.generators.can import Can, can_from_detector
from km3sim.random import stage_key
from km3sim.schema import make_table
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage

__all__ = [
    "AtmosphericMuonGenerator",
    "MUON_CHARGE_RATIO",
    "single_muon_flux",
    "single_muon_energy_params",
    "single_muon_energy_cdf",
]

logger = logging.getLogger(__name__)

#: mu+/mu- flux ratio. 1.27 is the charge ratio measured at sea level around 0.1-1 TeV
#: (e.g. CMS, Phys. Lett. B 692 (2010) 83). UNVERIFIED at the depth of the detector, where
#: it is expected to be similar (slowly rising with energy).
MUON_CHARGE_RATIO = 1.27

#: MUPAGE validity range of the vertical depth [km w.e.] (PHYSICS.md §1, BMSS06 abstract).
MUPAGE_DEPTH_RANGE_KMWE = (1.5, 5.0)


def _as_arrays(*xs):
    arrs = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xs])
    return arrs[0].shape, [np.ascontiguousarray(a).ravel() for a in arrs]


def _shaped(out, shape):
    out = np.asarray(out).reshape(shape)
    return out if out.ndim else float(out)


def single_muon_flux(h, cos_zenith):
    """MUPAGE single-muon flux K(h, theta) [m^-2 s^-1 sr^-1] (PHYSICS.md §1.1).

    Parameters
    ----------
    h : float or array_like
        Vertical depth [km w.e.].
    cos_zenith : float or array_like
        Cosine of the zenith angle (> 0).
    """
    shape, (h, u) = _as_arrays(h, cos_zenith)
    return _shaped(K.mupage_single_muon_flux(h, u), shape)


def single_muon_energy_params(h, cos_zenith):
    """Spectral index gamma and scale E0 [GeV] of the single-muon spectrum (PHYSICS.md §1.3).

    ``dN/dE = (gamma-1) E0^(gamma-1) (E + E0)^-gamma``.
    """
    shape, (h, u) = _as_arrays(h, cos_zenith)
    return _shaped(K.mupage_single_muon_gamma(h), shape), _shaped(K.mupage_single_muon_e0_gev(h, u), shape)


def single_muon_energy_cdf(e_gev, h, cos_zenith, emin_gev, emax_gev):
    """CDF of the single-muon energy truncated to [emin, emax] at fixed (h, theta)."""
    gamma, e0 = single_muon_energy_params(h, cos_zenith)
    e = np.clip(np.asarray(e_gev, dtype=np.float64), emin_gev, emax_gev)
    lo = (emin_gev + e0) ** (1.0 - gamma)
    hi = (emax_gev + e0) ** (1.0 - gamma)
    return (lo - (e + e0) ** (1.0 - gamma)) / (lo - hi)


def _gauss_legendre(a: float, b: float, n_panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [a, b]."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, n_panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


@register_stage
class AtmosphericMuonGenerator(Stage):
    """Single atmospheric muons entering the can (MUPAGE single-muon term).

    Attributes
    ----------
    can : Can
        The generation volume.
    rate_hz : float
        Rate of muons entering the can with ``energy_min_gev < E < energy_max_gev`` and
        zenith below ``zenith_max_deg`` [1/s].
    rate_top_hz, rate_lateral_hz : float
        Its parts through the top disk and the lateral surface.
    """

    name = "atmospheric_muons"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`AtmosphericMuonGenerator`."""

        energy_min_gev: float = Field(10.0, gt=0.0, description="lowest muon energy at the can [GeV]")
        energy_max_gev: float = Field(1e5, gt=0.0, description="highest muon energy at the can [GeV]")
        zenith_max_deg: float = Field(
            85.0, gt=0.0, le=89.0, description="largest zenith angle [deg] (MUPAGE validity: 85)"
        )
        can_margin_m: float = Field(200.0, ge=0.0, description="can margin around the DOMs [m]")

        @model_validator(mode="after")
        def _check_band(self):
            if not self.energy_max_gev > self.energy_min_gev:
                raise ValueError(
                    f"energy_max_gev ({self.energy_max_gev}) must exceed energy_min_gev ({self.energy_min_gev})"
                )
            return self

    #: Sampling grid: cells in cos(theta), cells in z on the lateral surface, lattice points per
    #: cell side to find the cell maximum, and the safety factor on that maximum.
    N_CELLS_COS = 256
    N_CELLS_Z = 32
    N_SUB_MAX = 8
    ENVELOPE_SAFETY = 1.01

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self.can: Can | None = None
        self.rate_hz = float("nan")
        self.rate_top_hz = float("nan")
        self.rate_lateral_hz = float("nan")
        if detector is not None:
            self._setup(detector)

    # ------------------------------------------------------------------------------- setup
    def _setup(self, detector) -> None:
        cfg = self.config
        self.can = can_from_detector(detector, cfg.can_margin_m)
        self._rho = float(self.site.water_density_g_cm3)
        self._depth = float(self.site.seabed_depth_m)
        self._umin = math.cos(math.radians(cfg.zenith_max_deg))
        h_lo = self.depth_kmwe(self.can.zmax)
        h_hi = self.depth_kmwe(self.can.zmin)
        if h_lo < MUPAGE_DEPTH_RANGE_KMWE[0] or h_hi > MUPAGE_DEPTH_RANGE_KMWE[1]:
            logger.warning(
                "can depths %.2f-%.2f km w.e. lie outside the MUPAGE validity range %s km w.e.",
                h_lo,
                h_hi,
                MUPAGE_DEPTH_RANGE_KMWE,
            )
        self.rate_top_hz, self.rate_lateral_hz = self._integrate_rate(cfg.energy_min_gev, cfg.energy_max_gev)
        self.rate_hz = self.rate_top_hz + self.rate_lateral_hz
        self._build_envelope()
        logger.info(
            "atmospheric muons: can r=%.1f m z=[%.1f, %.1f] m, rate %.4g Hz (top %.4g Hz), envelope efficiency %.3f",
            self.can.radius,
            self.can.zmin,
            self.can.zmax,
            self.rate_hz,
            self.rate_top_hz,
            self.envelope_efficiency,
        )

    def _require_setup(self, detector=None, site: Site | None = None) -> None:
        if self.can is None:
            if detector is None:
                raise StageError(f"stage {self.name!r} needs a detector to build its can")
            if site is not None and not self._site_given:
                self.site = site
            self._setup(detector)

    def depth_kmwe(self, z):
        """Vertical depth [km w.e.] of detector-frame height ``z`` [m]: rho (D - z) / 1000."""
        return self._rho * (self._depth - np.asarray(z, dtype=np.float64)) * 1e-3

    def _band_flux(self, h, u, emin, emax):
        shape, (h, u) = _as_arrays(h, u)
        return _shaped(K.single_muon_band_flux(h, u, float(emin), float(emax)), shape)

    def _integrate_rate(self, emin, emax, n_panels=64, n_z_panels=8, order=8, cos_range=None):
        """Rates [1/s] through the top disk and the lateral surface, by Gauss-Legendre.

        ``R = 2 pi int dtheta sin(theta) [pi r^2 cos(theta) Phi(h_top, theta)
        + 2 r sin(theta) int dz Phi(h(z), theta)]`` with ``Phi = K P(emin < E < emax)``
        (PHYSICS.md §1.1, §1.3, §1.4). The integral runs over theta rather than cos(theta)
        because the lateral term, sqrt(1 - cos^2), is not smooth at cos(theta) = 1.
        """
        can = self.can
        ua, ub = cos_range if cos_range is not None else (self._umin, 1.0)
        th, wt = _gauss_legendre(math.acos(min(ub, 1.0)), math.acos(ua), n_panels, order)
        u, s = np.cos(th), np.sin(th)
        z, wz = _gauss_legendre(can.zmin, can.zmax, n_z_panels, order)
        w = wt * s
        top = np.sum(w * math.pi * can.radius**2 * u * self._band_flux(self.depth_kmwe(can.zmax), u, emin, emax))
        f = self._band_flux(self.depth_kmwe(z)[None, :], u[:, None], emin, emax)
        lat = np.sum(w * 2.0 * can.radius * s * (f @ wz))
        return 2.0 * math.pi * float(top), 2.0 * math.pi * float(lat)

    def _build_envelope(self) -> None:
        can = self.can
        cfg = self.config
        u_edges = np.linspace(self._umin, 1.0, self.N_CELLS_COS + 1)
        z_edges = np.linspace(can.zmin, can.zmax, self.N_CELLS_Z + 1)
        args = (can.radius, can.zmax, self._depth, self._rho, cfg.energy_min_gev, cfg.energy_max_gev, self.N_SUB_MAX)
        m_top = K.envelope_maxima(u_edges, z_edges, True, *args)[:, 0] * self.ENVELOPE_SAFETY
        m_lat = K.envelope_maxima(u_edges, z_edges, False, *args) * self.ENVELOPE_SAFETY
        du = np.diff(u_edges)
        dz = np.diff(z_edges)
        nu, nz = self.N_CELLS_COS, self.N_CELLS_Z
        # cell order: for each cos cell, the top disk then the lateral z cells
        u0 = np.repeat(u_edges[:-1], nz + 1)
        cdu = np.repeat(du, nz + 1)
        z0 = np.empty((nu, nz + 1))
        z0[:, 0] = can.zmax
        z0[:, 1:] = z_edges[None, :-1]
        cdz = np.zeros((nu, nz + 1))
        cdz[:, 1:] = dz[None, :]
        top = np.zeros((nu, nz + 1), dtype=np.bool_)
        top[:, 0] = True
        cmax = np.empty((nu, nz + 1))
        cmax[:, 0] = m_top
        cmax[:, 1:] = m_lat
        size = cdu * np.where(top.ravel(), 1.0, cdz.ravel())
        env = cmax.ravel() * size
        cdf = np.cumsum(env)
        total = cdf[-1]
        cdf /= total
        cdf[-1] = 1.0
        self._cells = (
            cdf,
            u0,
            cdu,
            z0.ravel(),
            cdz.ravel(),
            top.ravel(),
            cmax.ravel(),
        )
        #: expected acceptance of the accept/reject step
        self.envelope_efficiency = self.rate_hz / (2.0 * math.pi * total)

    # ------------------------------------------------------------------ expected densities
    def zenith_density(self, cos_zenith, surface: str = "all"):
        """Rate per unit cos(theta) [1/s], dR/dcos(theta), of the generated muons.

        Parameters
        ----------
        cos_zenith : array_like
        surface : {"all", "top", "lateral"}
        """
        self._require_setup()
        cfg = self.config
        can = self.can
        u = np.atleast_1d(np.asarray(cos_zenith, dtype=np.float64))
        out = np.zeros_like(u)
        if surface in ("all", "top"):
            out += math.pi * can.radius**2 * u * self._band_flux(self.depth_kmwe(can.zmax), u, cfg.energy_min_gev, cfg.energy_max_gev)
        if surface in ("all", "lateral"):
            z, wz = _gauss_legendre(can.zmin, can.zmax, 8, 8)
            f = self._band_flux(self.depth_kmwe(z)[None, :], u[:, None], cfg.energy_min_gev, cfg.energy_max_gev)
            out += 2.0 * can.radius * np.sqrt(np.clip(1.0 - u * u, 0.0, None)) * (f @ wz)
        out *= 2.0 * math.pi
        inside = (u >= self._umin) & (u <= 1.0)
        return np.where(inside, out, 0.0)

    def zenith_bin_fractions(self, cos_edges):
        """Expected fraction of the generated muons in bins of cos(theta).

        Parameters
        ----------
        cos_edges : array_like, increasing, within [cos(zenith_max), 1]
        """
        self._require_setup()
        e = np.asarray(cos_edges, dtype=np.float64)
        cfg = self.config
        rates = np.array(
            [
                sum(self._integrate_rate(cfg.energy_min_gev, cfg.energy_max_gev, n_panels=4, cos_range=(a, b)))
                for a, b in zip(e[:-1], e[1:])
            ]
        )
        return rates / self.rate_hz

    def rate_above(self, energy_gev: float) -> float:
        """Rate [1/s] of generated muons with energy above ``energy_gev`` (within the band)."""
        self._require_setup()
        cfg = self.config
        e = min(max(float(energy_gev), cfg.energy_min_gev), cfg.energy_max_gev)
        if e >= cfg.energy_max_gev:
            return 0.0
        return sum(self._integrate_rate(e, cfg.energy_max_gev))

    def energy_cdf(self, energy_gev):
        """Expected CDF of the energy of the generated muons (all zeniths and entry points)."""
        return np.array([1.0 - self.rate_above(e) / self.rate_hz for e in np.atleast_1d(energy_gev)])

    def header(self) -> dict:
        self._require_setup()
        c = self.can
        return {
            "generator": "km3sim MUPAGE single muons",
            "can": {"x": c.x, "y": c.y, "zmin": c.zmin, "zmax": c.zmax, "r": c.radius},
            "rate_hz": self.rate_hz,
            "seabed_depth_m": self._depth,
            "water_density_g_cm3": self._rho,
        }

    # --------------------------------------------------------------------------- planning
    @classmethod
    def plan_events(cls, config, detector, site, livetime_s, seed, run_id) -> int:
        """Number of events of a run: Poisson(rate_hz x livetime_s), deterministic per (seed, run)."""
        if livetime_s < 0:
            raise ConfigError(f"livetime must be >= 0, got {livetime_s}")
        gen = cls(config, detector, site)
        key = stage_key(seed, run_id, f"{cls.name}:plan")
        rng = np.random.Generator(np.random.PCG64(int(key)))
        n = int(rng.poisson(gen.rate_hz * float(livetime_s)))
        logger.info("run %d: %d atmospheric muons for %.4g s at %.4g Hz", run_id, n, livetime_s, gen.rate_hz)
        return n

    # ---------------------------------------------------------------------------- process
    def generate(self, seeds: np.ndarray, livetime_s: float):
        """Draw muons from per-event seeds; returns (pos, dir, energy, time_ns, pdgid)."""
        self._require_setup()
        cfg = self.config
        can = self.can
        frac_plus = MUON_CHARGE_RATIO / (1.0 + MUON_CHARGE_RATIO)
        pos, dirs, energy, time, pdgid, n_tries, n_over = K.sample_atmospheric_muons(
            np.ascontiguousarray(seeds, dtype=np.uint64),
            *self._cells,
            can.x,
            can.y,
            can.radius,
            can.zmax,
            self._depth,
            self._rho,
            cfg.energy_min_gev,
            cfg.energy_max_gev,
            float(livetime_s) * 1e9,
            frac_plus,
        )
        self.last_acceptance = len(seeds) / n_tries if n_tries else float("nan")
        if n_over:
            logger.warning("atmospheric muons: %d proposals above the envelope (sampling slightly biased)", n_over)
        self.last_n_over = int(n_over)
        return pos, dirs, energy, time, pdgid

    def process(self, tables, ctx: StageContext):
        self._require_setup(ctx.detector, ctx.site)
        ids = np.asarray(ctx.event_ids, dtype=np.int64)
        if len(ids) > 1 and np.any(np.diff(ids) <= 0):
            if len(np.unique(ids)) != len(ids):
                raise StageError(f"stage {self.name!r}: duplicate event ids in the chunk")
            ids = np.sort(ids)
        if ctx.livetime_s <= 0 and len(ids):
            raise StageError(f"stage {self.name!r}: livetime must be > 0, got {ctx.livetime_s}")
        seeds = ctx.seeds(ids)
        pos, dirs, energy, time, pdgid = self.generate(seeds, ctx.livetime_s)
        n = len(ids)
        px, py, pz = pos[:, 0], pos[:, 1], pos[:, 2]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        livetime = float(ctx.livetime_s)
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=time,
            pdgid=np.full(n, 81, dtype=np.int32),
            n_muons=np.ones(n, dtype=np.int32),
            energy=energy,
            pos_x=px,
            pos_y=py,
            pos_z=pz,
            dir_x=dx,
            dir_y=dy,
            dir_z=dz,
            is_cc=np.full(n, -1, dtype=np.int32),
            bjorken_y=np.full(n, np.nan),
            n_gen=np.full(n, ctx.n_events_run, dtype=np.int64),
            livetime_s=np.full(n, livetime),
            weight_w2=np.full(n, np.nan),
            weight_w3=np.full(n, 1.0 / livetime if livetime > 0 else 0.0),
        )
        tracks = make_table(
            "mc_tracks",
            event_id=ids,
            track_id=np.zeros(n, dtype=np.int32),
            parent_id=np.full(n, -1, dtype=np.int32),
            pdgid=pdgid,
            pos_x=px.copy(),
            pos_y=py.copy(),
            pos_z=pz.copy(),
            dir_x=dx.copy(),
            dir_y=dy.copy(),
            dir_z=dz.copy(),
            energy=energy.copy(),
            time=np.zeros(n),
            length=np.zeros(n),
            energy_lost_in_can=np.zeros(n),
        )
        return {"events": events, "mc_tracks": tracks}
