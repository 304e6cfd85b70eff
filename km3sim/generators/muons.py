"""Atmospheric muon bundles on the can, from the MUPAGE parametrisation.

Physics (PHYSICS.md §1.1-§1.4): Becherini, Margiotta, Sioli, Spurio, "A parameterisation of
single and multiple muons in the deep water or ice", Astropart. Phys. 25 (2006) 1,
hep-ph/0507228, as coded in MUPAGE (Carminati et al., CPC 179 (2008) 915, arXiv:0802.0562;
``giadac/MUPAGE``):

- flux of bundles of multiplicity m, ``Phi(m; h, theta) = K(h, theta) m^-nu(h, theta)``, for
  ``multiplicity_min <= m <= multiplicity_max`` (default 1..1000 as MUPAGE) and zenith angles up
  to ``zenith_max_deg`` (validity: 85 deg), with h the vertical depth of the axis impact point;
- for m >= 2 the distance R of each muon from the bundle axis follows ``dN/dR ~ R/(R+R0)^alpha``
  (truncated at ``radius_max_m`` = 100 m as MUPAGE's Rmax), the angle around the axis is
  uniform, and the muons are parallel to the axis on a plane front;
- energies from the single-muon spectrum (m = 1) or the bundle spectrum at each muon's R
  (m >= 2), ``(E + E0)^-gamma`` truncated to [``muon_energy_min_gev``, ``muon_energy_max_gev``]
  = [1 GeV, 500 TeV] as MUPAGE, sampled exactly by CDF inversion;
- a threshold ``energy_min_gev`` on the bundle energy (sum of the muon energies): events below
  it are redrawn, as MUPAGE does with its Ethreshold.

Differences from MUPAGE, on purpose:

- The can is built around the detector (:func:`km3sim.generators.can.can_from_detector`, a
  margin of ``can_margin_m`` around the DOMs, sea floor as bottom). Bundle axes hit a can whose
  radius is enlarged by ``can_enlarge_m``. MUPAGE enlarges its can by 100 m so that bundles whose
  axis misses the can but whose muons hit it are kept; here the default is 0 because the can
  already has a 200 m margin around the DOMs: the muons of a bundle whose axis misses the can
  pass at least 100 m (R <= 100 m; typically > 180 m, as R is mostly below 20 m) outside the
  horizontal footprint of the DOMs, through several absorption lengths of water, and such bundles
  are rare. ``can_enlarge_m: 100`` reproduces MUPAGE. Muons that miss the can are kept (on the plane
  front, ``muon_propagation`` gives them length 0) rather than dropped, so that n_muons and the
  bundle energy are those of the drawn bundle.
- Instead of hit-or-miss against a global bound (m uniform in [MULTmin, MULTmax], theta uniform)
  the events are drawn directly: (cos theta, surface, height) from a tabulated envelope of the
  exact rate density, then m from the discrete power law by an exact rejection from a continuous
  power law, R from its Beta(2, alpha-2) representation, energies by inversion.
- The rate of events is integrated numerically (Gauss-Legendre) once:
  ``rate = int dOmega int dS_perp sum_m Phi(m; h, theta) P(E_bundle >= threshold | m, h, theta)``,
  with P exact for m = 1 and tabulated by convolution for the few m >= 2 that can fall below
  the threshold (m * muon_energy_min < threshold). The number of events of a run is drawn from a
  Poisson law with mean rate x livetime and every event has weight w3 = 1/livetime.
  The tabulated pass probabilities keep the rate within 0.1 % of a much finer calculation up to
  the largest allowed threshold, 10 TeV (where only ~2 % of the proposed events pass).
  :func:`mupage_livetime_estimate` reproduces MUPAGE's own livetime estimator (PHYSICS.md §1.4
  step 6) on a generated sample, as a cross-check.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydantic import Field, model_validator
from scipy import special

from km3sim.constants import C_LIGHT
from km3sim.errors import ConfigError, StageError
from km3sim.generators import _kernels as K
from km3sim.generators.can import Can, can_from_detector
from km3sim.random import stage_key
from km3sim.schema import make_table
from km3sim.generators.base import CanGenerator
from km3sim.stage import Site, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "AtmosphericMuonGenerator",
    "BundleSample",
    "LivetimeEstimate",
    "MUON_CHARGE_RATIO",
    "MUPAGE_DEPTH_RANGE_KMWE",
    "MUPAGE_LIVETIME_BINS_DEG",
    "bundle_energy_cdf",
    "bundle_energy_params",
    "bundle_flux",
    "multiplicity_index",
    "mupage_livetime_estimate",
    "radial_cdf",
    "radial_params",
    "radial_pdf",
    "single_muon_energy_cdf",
    "single_muon_energy_params",
    "single_muon_flux",
]

logger = logging.getLogger(__name__)

#: mu+/mu- flux ratio. 1.27 is the charge ratio measured at sea level around 0.1-1 TeV
#: (e.g. CMS, Phys. Lett. B 692 (2010) 83). UNVERIFIED at the depth of the detector, where
#: it is expected to be similar (slowly rising with energy).
MUON_CHARGE_RATIO = 1.27

#: MUPAGE validity range of the vertical depth [km w.e.] (PHYSICS.md §1, BMSS06 abstract).
MUPAGE_DEPTH_RANGE_KMWE = (1.5, 5.0)

#: Zenith bins [deg] of MUPAGE's livetime estimator (PHYSICS.md §1.4 step 6, MUPAGE mupage.cc):
#: 0-10, 2-degree bins up to 70, then 70-76 and 76-85. (MUPAGE counts events in (70, 76] and
#: (76, 86] but computes the expectation over 70-75 and 76-85; here counts and expectations
#: use the same bins.)
MUPAGE_LIVETIME_BINS_DEG = (0.0, *np.arange(10.0, 70.1, 2.0).tolist(), 76.0, 85.0)


# ------------------------------------------------------------------------------- helpers
def _as_arrays(*xs):
    arrs = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xs])
    return arrs[0].shape, [np.ascontiguousarray(a).ravel() for a in arrs]


def _shaped(out, shape):
    out = np.asarray(out).reshape(shape)
    return out if out.ndim else float(out)


def _gauss_legendre(a: float, b: float, n_panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [a, b]."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, n_panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


@lru_cache(maxsize=8)
def _leggauss(order: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(order)


def _lobatto_nodes(a: float, b: float, n: int) -> np.ndarray:
    """Chebyshev-Lobatto nodes on [a, b], ascending, ends included."""
    return a + (b - a) * 0.5 * (1.0 - np.cos(np.pi * np.arange(n) / (n - 1)))


def _lobatto_matrix(x: np.ndarray, a: float, b: float, n: int) -> np.ndarray:
    """Barycentric interpolation matrix L (len(x), n) on the Chebyshev-Lobatto nodes of [a, b]:
    ``f(x) ~ L @ f(nodes)`` (Berrut & Trefethen, SIAM Rev. 46 (2004) 501)."""
    nodes = _lobatto_nodes(a, b, n)
    w = (-1.0) ** np.arange(n)
    w[0] *= 0.5
    w[-1] *= 0.5
    x = np.asarray(x, dtype=np.float64).ravel()
    diff = x[:, None] - nodes[None, :]
    exact = diff == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        c = w[None, :] / diff
        mat = c / c.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    mat[rows] = exact[rows].astype(np.float64)
    return mat


# ------------------------------------------------------------------------ physics formulas
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


def multiplicity_index(h, cos_zenith):
    """Index nu(h, theta) of the multiplicity law ``Phi(m) = K m^-nu`` (PHYSICS.md §1.1)."""
    shape, (h, u) = _as_arrays(h, cos_zenith)
    return _shaped(K.mupage_multiplicity_index(h, u), shape)


def bundle_flux(m, h, cos_zenith):
    """Flux of bundles of multiplicity m, ``Phi(m; h, theta) = K m^-nu`` [m^-2 s^-1 sr^-1]
    (PHYSICS.md §1.1; Becherini et al., Astropart. Phys. 25 (2006) 1).

    Parameters
    ----------
    m : int or array_like
        Multiplicity (>= 1).
    h : float or array_like
        Vertical depth [km w.e.].
    cos_zenith : float or array_like
    """
    shape, (m, h, u) = _as_arrays(m, h, cos_zenith)
    return _shaped(K.mupage_bundle_flux(m, h, u), shape)


def single_muon_energy_params(h, cos_zenith):
    """Spectral index gamma and scale E0 [GeV] of the single-muon spectrum (PHYSICS.md §1.3).

    ``dN/dE = (gamma-1) E0^(gamma-1) (E + E0)^-gamma``.
    """
    shape, (h, u) = _as_arrays(h, cos_zenith)
    return _shaped(K.mupage_single_muon_gamma(h), shape), _shaped(K.mupage_single_muon_e0_gev(h, u), shape)


def _truncated_cdf(e, gamma, e0, emin, emax):
    e = np.clip(np.asarray(e, dtype=np.float64), emin, emax)
    lo = (e0 / (emin + e0)) ** (gamma - 1.0)
    hi = (e0 / (emax + e0)) ** (gamma - 1.0)
    return (lo - (e0 / (e + e0)) ** (gamma - 1.0)) / (lo - hi)


def single_muon_energy_cdf(e_gev, h, cos_zenith, emin_gev, emax_gev):
    """CDF of the single-muon energy truncated to [emin, emax] at fixed (h, theta)."""
    gamma, e0 = single_muon_energy_params(h, cos_zenith)
    return _truncated_cdf(e_gev, gamma, e0, emin_gev, emax_gev)


def radial_params(m, h, cos_zenith):
    """Parameters of the lateral distribution of bundle muons (PHYSICS.md §1.2).

    Returns
    -------
    mean_r : float or ndarray
        <R>(m, h, theta) [m].
    alpha : float or ndarray
        Exponent of ``dN/dR = C R / (R + R0)^alpha``.
    r0 : float or ndarray
        ``R0 = (alpha - 3) <R> / 2`` [m].
    """
    shape, (m, h, u) = _as_arrays(m, h, cos_zenith)
    mean_r = K.mupage_mean_radius(m, h, u)
    alpha = K.mupage_radial_alpha(m, h)
    return _shaped(mean_r, shape), _shaped(alpha, shape), _shaped(0.5 * (alpha - 3.0) * mean_r, shape)


def radial_pdf(r, m, h, cos_zenith, r_max=np.inf):
    """Density of the distance R [m] of a bundle muon from the axis (PHYSICS.md §1.2).

    ``dN/dR = (alpha-1)(alpha-2) R0^(alpha-2) R / (R + R0)^alpha``, normalised on [0, r_max]
    (r_max = inf: the untruncated law of the paper; the generator truncates at ``radius_max_m``).
    """
    _, alpha, r0 = radial_params(m, h, cos_zenith)
    r = np.asarray(r, dtype=np.float64)
    c = (alpha - 1.0) * (alpha - 2.0) * r0 ** (alpha - 2.0)
    norm = 1.0 - K.radial_survival(np.float64(r_max), alpha, r0) if np.isfinite(r_max) else 1.0
    out = np.where((r >= 0) & (r <= r_max), c * r / (r + r0) ** alpha / norm, 0.0)
    return out if out.ndim else float(out)


def radial_cdf(r, m, h, cos_zenith, r_max=np.inf):
    """CDF of the distance R [m] of a bundle muon from the axis, truncated to [0, r_max].

    Closed form: ``P(R > r) = (1 + x)^(1-alpha) (1 + (alpha-1) x)``, ``x = r / R0``.
    """
    _, alpha, r0 = radial_params(m, h, cos_zenith)
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, r_max)
    s = K.radial_survival(r, alpha, r0)
    smax = K.radial_survival(np.float64(r_max), alpha, r0) if np.isfinite(r_max) else 0.0
    out = (1.0 - s) / (1.0 - smax)
    return out if np.ndim(out) else float(out)


def bundle_energy_params(r, m, h, cos_zenith):
    """Spectral index gamma and scale E0 [GeV] of a bundle muon at distance r [m] from the
    axis (PHYSICS.md §1.3): ``dN/dE = (gamma-1) E0^(gamma-1) (E + E0)^-gamma``."""
    shape, (r, m, h, u) = _as_arrays(r, m, h, cos_zenith)
    return _shaped(K.mupage_bundle_muon_gamma(r, m, h), shape), _shaped(K.mupage_bundle_muon_e0_gev(r, h, u), shape)


def bundle_energy_cdf(e_gev, r, m, h, cos_zenith, emin_gev, emax_gev):
    """CDF of the energy of a bundle muon at distance r, truncated to [emin, emax]."""
    gamma, e0 = bundle_energy_params(r, m, h, cos_zenith)
    return _truncated_cdf(e_gev, gamma, e0, emin_gev, emax_gev)


def _zeta_range(nu, a: int, b: int):
    """``sum_{m=a}^{b} m^-nu`` with scipy's Hurwitz zeta (vectorised)."""
    nu = np.asarray(nu, dtype=np.float64)
    if b < a:
        return np.zeros_like(nu)
    return special.zeta(nu, a) - special.zeta(nu, b + 1)


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class BundleSample:
    """Events and muons drawn by :meth:`AtmosphericMuonGenerator.generate`.

    Event arrays have one row per event; muon arrays one row per muon, grouped by event
    (``muon_event`` is the event index), muons of an event in their drawing order.
    """

    pos: np.ndarray  #: (n, 3) axis impact point on the generation can [m]
    dir: np.ndarray  #: (n, 3) bundle direction
    energy: np.ndarray  #: (n,) bundle energy, sum of the muon energies [GeV]
    time: np.ndarray  #: (n,) event time [ns] in [0, livetime)
    multiplicity: np.ndarray  #: (n,) number of muons
    muon_event: np.ndarray  #: (n_mu,) event index of each muon
    muon_pos: np.ndarray  #: (n_mu, 3) muon position: its can entry (or plane front if it misses)
    muon_energy: np.ndarray  #: (n_mu,) [GeV]
    muon_time: np.ndarray  #: (n_mu,) [ns] relative to the axis impact
    muon_radius: np.ndarray  #: (n_mu,) distance from the axis [m]
    muon_pdgid: np.ndarray  #: (n_mu,) -13 (mu+) or 13 (mu-)
    muon_hit: np.ndarray  #: (n_mu,) whether the muon enters the can
    n_proposals: int  #: accept/reject steps
    n_over: int  #: proposals above the envelope (0 when the envelope is valid)
    n_redrawn: int  #: bundles redrawn because their energy was below the threshold


@dataclass(frozen=True)
class LivetimeEstimate:
    """Result of :func:`mupage_livetime_estimate`."""

    livetime_s: float  #: inverse-variance weighted mean of the per-bin livetimes (MUPAGE)
    error_s: float  #: its statistical error
    pooled_livetime_s: float  #: total count / total expected rate (less biased for small counts)
    edges_deg: np.ndarray  #: zenith bin edges [deg]
    counts: np.ndarray  #: events per bin
    expected_rate_hz: np.ndarray  #: expected rate per bin, N*_MC [1/s]
    bin_livetime_s: np.ndarray  #: counts / expected rate per bin


# ------------------------------------------------------------------------------- the stage
#: Set-up results (rates, tables, envelope) by (config, can, site): planning builds one generator
#: per run, and all runs of a production share them.
_SETUP_CACHE: dict = {}
_SETUP_CACHE_SIZE = 8
_TUNING = (
    "N_CELLS_COS", "N_CELLS_Z", "N_SUB_MAX", "ENVELOPE_SAFETY", "DEFICIT_NODES_H", "DEFICIT_NODES_THETA",
    "DEFICIT_ENERGY_BINS", "DEFICIT_R_PANELS", "DEFICIT_R_ORDER",
)
_NOT_CACHED = ("config", "detector", "site", "_site_given", "last_acceptance", "last_n_over")


@register_stage
class AtmosphericMuonGenerator(CanGenerator):
    """Atmospheric muon bundles on the can (MUPAGE parametrisation, PHYSICS.md §1.1-§1.4).

    Attributes
    ----------
    can : Can
        The can around the detector (margin ``can_margin_m``); muons are moved to their entry
        point on it.
    gen_can : Can
        The can that bundle axes hit: ``can`` with its radius enlarged by ``can_enlarge_m``.
    rate_hz : float
        Rate of events (bundles and single muons) with bundle energy above ``energy_min_gev``
        and zenith below ``zenith_max_deg`` whose axis hits ``gen_can`` [1/s].
    rate_top_hz, rate_lateral_hz : float
        Its parts through the top disk and the lateral surface.
    rate_single_hz : float
        Its part with one muon.
    """

    name = "atmospheric_muons"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`AtmosphericMuonGenerator`."""

        energy_min_gev: float = Field(
            10.0,
            ge=0.0,
            le=1e4,
            description="threshold on the bundle energy, the sum of the muon energies at the can [GeV]; "
            "events below it are redrawn and the rate accounts for them (at most 10 TeV: above, the "
            "redraw efficiency drops below ~1 % and the tabulated pass probabilities lose precision)",
        )
        muon_energy_min_gev: float = Field(1.0, gt=0.0, description="lowest energy of a muon [GeV] (MUPAGE: 1 GeV)")
        muon_energy_max_gev: float = Field(
            5e5, gt=0.0, description="highest energy of a muon [GeV] (MUPAGE: 500 TeV)"
        )
        multiplicity_min: int = Field(1, ge=1, description="lowest bundle multiplicity (MUPAGE MULTmin)")
        multiplicity_max: int = Field(
            1000, ge=1, le=100_000, description="highest bundle multiplicity (MUPAGE MULTmax)"
        )
        zenith_max_deg: float = Field(
            85.0, gt=0.0, le=85.0, description="largest zenith angle [deg] (validity of the parametrisation: 85)"
        )
        can_margin_m: float = Field(200.0, ge=0.0, description="can margin around the DOMs [m]")
        can_enlarge_m: float = Field(
            0.0,
            ge=0.0,
            description="radius added to the can for the bundle-axis impact points [m] (MUPAGE: 100; "
            "0 by default because the can already has can_margin_m around the DOMs)",
        )
        radius_max_m: float = Field(
            100.0, gt=0.0, description="largest distance of a muon from the bundle axis [m] (MUPAGE Rmax)"
        )

        @model_validator(mode="after")
        def _check_ranges(self):
            if not self.muon_energy_max_gev > self.muon_energy_min_gev:
                raise ValueError(
                    f"muon_energy_max_gev ({self.muon_energy_max_gev}) must exceed "
                    f"muon_energy_min_gev ({self.muon_energy_min_gev})"
                )
            if self.multiplicity_max < self.multiplicity_min:
                raise ValueError(
                    f"multiplicity_max ({self.multiplicity_max}) must be >= multiplicity_min ({self.multiplicity_min})"
                )
            if not self.energy_min_gev < self.multiplicity_max * self.muon_energy_max_gev:
                raise ValueError(
                    f"energy_min_gev ({self.energy_min_gev}) is above the largest possible bundle energy "
                    f"multiplicity_max x muon_energy_max_gev: no event could be generated"
                )
            return self

    #: Sampling grid: cells in cos(theta), cells in z on the lateral surface, lattice points per
    #: cell side to find the cell maximum, and the safety factor on that maximum.
    N_CELLS_COS = 256
    N_CELLS_Z = 32
    N_SUB_MAX = 8
    ENVELOPE_SAFETY = 1.01
    #: Threshold deficit table: Chebyshev-Lobatto nodes in h and theta, energy bins of the
    #: convolution, Gauss-Legendre panels and order over the radial law.
    DEFICIT_NODES_H = 7
    DEFICIT_NODES_THETA = 13
    DEFICIT_ENERGY_BINS = 384
    DEFICIT_R_PANELS = 4
    DEFICIT_R_ORDER = 8

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self.can: Can | None = None
        self.gen_can: Can | None = None
        self.rate_hz = float("nan")
        self.rate_top_hz = float("nan")
        self.rate_lateral_hz = float("nan")
        self.rate_single_hz = float("nan")
        if detector is not None:
            self._setup(detector)

    # ------------------------------------------------------------------------------- setup
    def _setup(self, detector) -> None:
        cfg = self.config
        can = can_from_detector(detector, cfg.can_margin_m)
        key = (
            type(self),
            tuple(getattr(self, k) for k in _TUNING),
            cfg.model_dump_json(),
            (can.x, can.y, can.zmin, can.zmax, can.radius),
            float(self.site.seabed_depth_m),
            float(self.site.water_density_g_cm3),
        )
        cached = _SETUP_CACHE.get(key)
        if cached is not None:
            self.__dict__.update(cached)
            return
        self.can = can
        self.gen_can = Can(x=can.x, y=can.y, zmin=can.zmin, zmax=can.zmax, radius=can.radius + cfg.can_enlarge_m)
        self._rho = float(self.site.water_density_g_cm3)
        self._depth = float(self.site.seabed_depth_m)
        self._umin = math.cos(math.radians(cfg.zenith_max_deg))
        self._theta_max = math.radians(cfg.zenith_max_deg)
        self.h_top = float(self.depth_kmwe(can.zmax))
        self.h_bottom = float(self.depth_kmwe(can.zmin))
        if self.h_top <= 0.0:
            raise ConfigError(
                f"stage {self.name!r}: the top of the can (z = {can.zmax:.1f} m) is above the sea surface "
                f"(site seabed_depth_m = {self._depth})"
            )
        if self.h_top < MUPAGE_DEPTH_RANGE_KMWE[0] or self.h_bottom > MUPAGE_DEPTH_RANGE_KMWE[1]:
            logger.warning(
                "can depths %.2f-%.2f km w.e. lie outside the MUPAGE validity range %s km w.e.",
                self.h_top,
                self.h_bottom,
                MUPAGE_DEPTH_RANGE_KMWE,
            )
        self._has_single = cfg.multiplicity_min == 1
        self._m_lo = max(2, cfg.multiplicity_min)
        self._m_hi = cfg.multiplicity_max
        if self._m_hi >= self._m_lo:
            # the lateral law needs alpha > 3 (R0 > 0); alpha grows with h, so check the top
            alpha = min(float(K.mupage_radial_alpha(m, self.h_top)) for m in (2, 3, 4))
            if not alpha > 3.0:
                raise ConfigError(
                    f"stage {self.name!r}: the lateral distribution is undefined at h = {self.h_top:.2f} km w.e. "
                    f"(alpha = {alpha:.2f} <= 3); the can is far too shallow for the MUPAGE parametrisation"
                )
        self._build_deficit_table()
        self._compute_rates()
        self._build_envelope()
        if self.threshold_efficiency < 0.2:
            logger.warning(
                "atmospheric muons: only %.1f %% of the proposed events pass energy_min_gev = %g GeV; "
                "generation will be slow",
                100 * self.threshold_efficiency,
                cfg.energy_min_gev,
            )
        logger.info(
            "atmospheric muons: can r=%.1f m z=[%.1f, %.1f] m (axis can r=%.1f m), rate %.4g Hz "
            "(single %.4g Hz, top %.4g Hz), proposal efficiency %.3f, threshold efficiency %.4f",
            can.radius,
            can.zmin,
            can.zmax,
            self.gen_can.radius,
            self.rate_hz,
            self.rate_single_hz,
            self.rate_top_hz,
            self.envelope_efficiency,
            self.threshold_efficiency,
        )
        if len(_SETUP_CACHE) >= _SETUP_CACHE_SIZE:
            _SETUP_CACHE.pop(next(iter(_SETUP_CACHE)))
        _SETUP_CACHE[key] = {k: v for k, v in self.__dict__.items() if k not in _NOT_CACHED}

    def depth_kmwe(self, z):
        """Vertical depth [km w.e.] of detector-frame height ``z`` [m]: rho (D - z) / 1000."""
        return self._rho * (self._depth - np.asarray(z, dtype=np.float64)) * 1e-3

    def _kernel_args(self) -> tuple:
        cfg = self.config
        return (
            float(cfg.energy_min_gev),
            float(cfg.muon_energy_min_gev),
            float(cfg.muon_energy_max_gev),
            bool(self._has_single),
            int(self._m_lo),
            int(self._m_hi),
        )

    # ----------------------------------------------------------- threshold on bundle energy
    def pass_probability(self, m: int, h: float, cos_zenith: float) -> float:
        """P(bundle energy >= energy_min_gev | m, h, theta), computed directly (not interpolated).

        Exact for m = 1 (closed-form CDF); for m >= 2 by the convolution of
        :func:`km3sim.generators._kernels.bundle_threshold_deficits`.
        """
        cfg = self.config
        thr, emin, emax = cfg.energy_min_gev, cfg.muon_energy_min_gev, cfg.muon_energy_max_gev
        if m == 1:
            return float(K.single_muon_pass_fraction(float(h), float(cos_zenith), thr, emin, emax))
        d = self._deficits_at(float(h), float(cos_zenith), int(m), int(m))
        return 1.0 - (float(d[0]) if len(d) else 0.0)

    def _deficits_at(self, h: float, u: float, m_lo: int, m_hi: int) -> np.ndarray:
        cfg = self.config
        x, w = _leggauss(self.DEFICIT_R_ORDER)
        return K.bundle_threshold_deficits(
            h, u, m_lo, m_hi, float(cfg.energy_min_gev), float(cfg.muon_energy_min_gev),
            float(cfg.muon_energy_max_gev), float(cfg.radius_max_m), self.DEFICIT_ENERGY_BINS, x, w,
            self.DEFICIT_R_PANELS,
        )

    def _build_deficit_table(self) -> None:
        """Tabulate ``1 - P(pass | m, h, theta)`` for the multiplicities >= 2 that can fall below
        the threshold, on Chebyshev-Lobatto nodes in h (can depths) and theta."""
        cfg = self.config
        m_cut = math.ceil(cfg.energy_min_gev / cfg.muon_energy_min_gev) - 1
        m_top = min(self._m_hi, m_cut)
        self._deficit_m = np.arange(self._m_lo, m_top + 1) if m_top >= self._m_lo else np.zeros(0, dtype=np.int64)
        nh, nt = self.DEFICIT_NODES_H, self.DEFICIT_NODES_THETA
        tab = np.zeros((len(self._deficit_m), nh, nt))
        if len(self._deficit_m):
            hs = _lobatto_nodes(self.h_top, self.h_bottom, nh)
            ts = _lobatto_nodes(0.0, self._theta_max, nt)
            for i, h in enumerate(hs):
                for j, t in enumerate(ts):
                    d = self._deficits_at(float(h), math.cos(t), self._m_lo, m_top)
                    tab[: len(d), i, j] = d
        self._deficit_tab = tab

    def _deficit(self, h, u, m=None):
        """Interpolated ``sum_m m^-nu (1 - P(pass | m))`` (m = None) or ``1 - P(pass | m)``."""
        h = np.asarray(h, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        h, u = np.broadcast_arrays(h, u)
        shape = h.shape
        if m is not None:
            m = int(m)
            if m == 1 or m not in self._deficit_m:
                return np.zeros(shape)
            tabs = self._deficit_tab[[m - self._m_lo]]
        else:
            if not len(self._deficit_m):
                return np.zeros(shape)
            tabs = self._deficit_tab
        lh = _lobatto_matrix(h, self.h_top, self.h_bottom, self.DEFICIT_NODES_H)
        lt = _lobatto_matrix(np.arccos(np.clip(u, -1.0, 1.0)), 0.0, self._theta_max, self.DEFICIT_NODES_THETA)
        vals = np.einsum("qi,mij,qj->qm", lh, tabs, lt)  # (n_q, n_m)
        vals = np.clip(vals, 0.0, 1.0)
        if m is not None:
            return vals[:, 0].reshape(shape)
        nu = K.mupage_multiplicity_index(h.ravel(), u.ravel())
        weights = self._deficit_m[None, :].astype(np.float64) ** (-nu[:, None])
        return np.sum(vals * weights, axis=1).reshape(shape)

    # --------------------------------------------------------------------------------- rates
    def flux_passing(self, h, cos_zenith, multiplicity=None):
        """Flux of events above the threshold [m^-2 s^-1 sr^-1] at depth h and zenith theta.

        ``sum_m Phi(m; h, theta) P(pass | m, h, theta)`` over the configured multiplicities
        (``multiplicity=None``), or the term of one multiplicity.
        """
        cfg = self.config
        h, u = np.broadcast_arrays(np.asarray(h, dtype=np.float64), np.asarray(cos_zenith, dtype=np.float64))
        kk = K.mupage_single_muon_flux(h, u)
        thr, emin, emax = cfg.energy_min_gev, cfg.muon_energy_min_gev, cfg.muon_energy_max_gev
        if multiplicity is None:
            w = _zeta_range(K.mupage_multiplicity_index(h, u), self._m_lo, self._m_hi) - self._deficit(h, u)
            if self._has_single:
                w = w + K.single_muon_pass_fraction(h, u, thr, emin, emax)
            return kk * w
        m = int(multiplicity)
        if m < cfg.multiplicity_min or m > cfg.multiplicity_max:
            return np.zeros(h.shape)
        if m == 1:
            return kk * K.single_muon_pass_fraction(h, u, thr, emin, emax)
        return kk * float(m) ** (-K.mupage_multiplicity_index(h, u)) * (1.0 - self._deficit(h, u, m))

    def _integrate(self, flux, cos_range=None, n_panels=64, n_z_panels=8, order=8):
        """Rates [1/s] through the top disk and the lateral surface of ``gen_can``.

        ``R = 2 pi int dtheta sin(theta) [pi r^2 cos(theta) F(h_top, theta)
        + 2 r sin(theta) int dz F(h(z), theta)]`` for a flux F(h, cos theta) (PHYSICS.md §1.4).
        The integral runs over theta rather than cos(theta) because the lateral term,
        sqrt(1 - cos^2), is not smooth at cos(theta) = 1.
        """
        can = self.gen_can
        ua, ub = cos_range if cos_range is not None else (self._umin, 1.0)
        th, wt = _gauss_legendre(math.acos(min(ub, 1.0)), math.acos(max(ua, self._umin)), n_panels, order)
        u, s = np.cos(th), np.sin(th)
        z, wz = _gauss_legendre(can.zmin, can.zmax, n_z_panels, order)
        w = wt * s
        top = np.sum(w * math.pi * can.radius**2 * u * flux(np.full_like(u, self.h_top), u))
        hh, uu = np.meshgrid(self.depth_kmwe(z), u)  # shape (len(u), len(z))
        f = flux(hh, uu)
        lat = np.sum(w * 2.0 * can.radius * s * (f @ wz))
        return 2.0 * math.pi * float(top), 2.0 * math.pi * float(lat)

    def _compute_rates(self) -> None:
        cfg = self.config
        thr, emin, emax = cfg.energy_min_gev, cfg.muon_energy_min_gev, cfg.muon_energy_max_gev
        kk = K.mupage_single_muon_flux

        def single(h, u):
            if not self._has_single:
                return np.zeros(np.shape(h))
            return kk(h, u) * K.single_muon_pass_fraction(h, u, thr, emin, emax)

        def bundles(h, u):
            return kk(h, u) * _zeta_range(K.mupage_multiplicity_index(h, u), self._m_lo, self._m_hi)

        def deficit(h, u):
            return kk(h, u) * self._deficit(h, u)

        s_top, s_lat = self._integrate(single)
        b_top, b_lat = self._integrate(bundles)
        d_top, d_lat = self._integrate(deficit, n_panels=16, n_z_panels=2)
        self.rate_single_hz = s_top + s_lat
        self.rate_bundles_proposed_hz = b_top + b_lat
        self.rate_deficit_hz = d_top + d_lat
        self.rate_top_hz = s_top + b_top - d_top
        self.rate_lateral_hz = s_lat + b_lat - d_lat
        self.rate_hz = self.rate_top_hz + self.rate_lateral_hz
        #: fraction of proposed events that pass the threshold (the single muons always pass)
        self.threshold_efficiency = self.rate_hz / (self.rate_single_hz + self.rate_bundles_proposed_hz)
        if not self.rate_hz > 0.0:
            raise ConfigError(f"stage {self.name!r}: no event passes the configuration (rate {self.rate_hz})")

    def _build_envelope(self) -> None:
        can = self.gen_can
        u_edges = np.linspace(self._umin, 1.0, self.N_CELLS_COS + 1)
        z_edges = np.linspace(can.zmin, can.zmax, self.N_CELLS_Z + 1)
        args = (can.radius, can.zmax, self._depth, self._rho, *self._kernel_args(), self.N_SUB_MAX)
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
        self._cells = (cdf, u0, cdu, z0.ravel(), cdz.ravel(), top.ravel(), cmax.ravel())
        #: expected acceptance of the accept/reject step (before the threshold)
        self.envelope_efficiency = (self.rate_single_hz + self.rate_bundles_proposed_hz) / (2.0 * math.pi * total)

    # ------------------------------------------------------------------ expected densities
    def zenith_bin_rates(self, cos_edges, multiplicity=None, surface: str = "all") -> np.ndarray:
        """Expected rate [1/s] of generated events in bins of cos(theta).

        Parameters
        ----------
        cos_edges : array_like
            Increasing bin edges in cos(theta) (clipped to [cos(zenith_max), 1]).
        multiplicity : int, optional
            Only events of this multiplicity (default: all).
        surface : {"all", "top", "lateral"}
            Where the bundle axis hits ``gen_can``.
        """
        self._require_setup()
        if surface not in ("all", "top", "lateral"):
            raise ValueError(f"surface must be 'all', 'top' or 'lateral', got {surface!r}")
        e = np.clip(np.asarray(cos_edges, dtype=np.float64), self._umin, 1.0)
        out = []
        for a, b in zip(e[:-1], e[1:]):
            if b <= a:
                out.append(0.0)
                continue
            top, lat = self._integrate(
                lambda h, u: self.flux_passing(h, u, multiplicity), n_panels=4, n_z_panels=4, cos_range=(a, b)
            )
            out.append({"all": top + lat, "top": top, "lateral": lat}[surface])
        return np.array(out)

    def zenith_bin_fractions(self, cos_edges) -> np.ndarray:
        """Expected fraction of the generated events in bins of cos(theta)."""
        return self.zenith_bin_rates(cos_edges) / self.rate_hz

    def multiplicity_rates(self, multiplicities) -> np.ndarray:
        """Expected rate [1/s] of generated events of each given multiplicity."""
        self._require_setup()
        return np.array([sum(self._integrate(lambda h, u: self.flux_passing(h, u, m))) for m in multiplicities])

    def header(self) -> dict:
        self._require_setup()
        cfg = self.config
        c, g = self.can, self.gen_can
        return {
            "generator": "km3sim MUPAGE muon bundles",
            "parametrisation": "Becherini et al., Astropart. Phys. 25 (2006) 1 (MUPAGE)",
            "can": {"x": c.x, "y": c.y, "zmin": c.zmin, "zmax": c.zmax, "r": c.radius},
            "axis_can": {"x": g.x, "y": g.y, "zmin": g.zmin, "zmax": g.zmax, "r": g.radius},
            "rate_hz": self.rate_hz,
            "rate_top_hz": self.rate_top_hz,
            "rate_lateral_hz": self.rate_lateral_hz,
            "rate_single_hz": self.rate_single_hz,
            "threshold_efficiency": self.threshold_efficiency,
            "seabed_depth_m": self._depth,
            "water_density_g_cm3": self._rho,
            "depth_range_kmwe": [self.h_top, self.h_bottom],
            "multiplicity_range": [cfg.multiplicity_min, cfg.multiplicity_max],
            "zenith_max_deg": cfg.zenith_max_deg,
            "bundle_energy_min_gev": cfg.energy_min_gev,
            "muon_energy_range_gev": [cfg.muon_energy_min_gev, cfg.muon_energy_max_gev],
            "radius_max_m": cfg.radius_max_m,
            "muon_charge_ratio": MUON_CHARGE_RATIO,
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
        logger.info("run %d: %d atmospheric muon events for %.4g s at %.4g Hz", run_id, n, livetime_s, gen.rate_hz)
        return n

    # ---------------------------------------------------------------------------- process
    def generate(self, seeds: np.ndarray, livetime_s: float) -> BundleSample:
        """Draw one event per seed (see :func:`km3sim.generators._kernels.sample_muon_bundles`)."""
        self._require_setup()
        cfg = self.config
        g, c = self.gen_can, self.can
        frac_plus = MUON_CHARGE_RATIO / (1.0 + MUON_CHARGE_RATIO)
        out = K.sample_muon_bundles(
            np.ascontiguousarray(seeds, dtype=np.uint64),
            *self._cells,
            g.x, g.y, g.radius, g.zmax,
            c.radius, c.zmin, c.zmax,
            self._depth, self._rho,
            *self._kernel_args(),
            float(cfg.radius_max_m),
            float(livetime_s) * 1e9,
            frac_plus,
            C_LIGHT,
        )
        counters = out[-1]
        sample = BundleSample(*out[:-1], n_proposals=int(counters[0]), n_over=int(counters[1]), n_redrawn=int(counters[2]))
        if sample.n_over:
            logger.warning("atmospheric muons: %d proposals above the envelope (sampling slightly biased)", sample.n_over)
        self.last_acceptance = len(seeds) / sample.n_proposals if sample.n_proposals else float("nan")
        self.last_n_over = sample.n_over
        return sample

    def process(self, tables, ctx: StageContext):
        self._require_setup(ctx.detector, ctx.site)
        ids = self.chunk_event_ids(ctx)
        if ctx.livetime_s <= 0 and len(ids):
            raise StageError(f"stage {self.name!r}: livetime must be > 0, got {ctx.livetime_s}")
        s = self.generate(ctx.seeds(ids), ctx.livetime_s)
        n = len(ids)
        livetime = float(ctx.livetime_s)
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=s.time,
            pdgid=np.full(n, 81, dtype=np.int32),
            n_muons=s.multiplicity,
            energy=s.energy,
            pos_x=s.pos[:, 0],
            pos_y=s.pos[:, 1],
            pos_z=s.pos[:, 2],
            dir_x=s.dir[:, 0],
            dir_y=s.dir[:, 1],
            dir_z=s.dir[:, 2],
            is_cc=np.full(n, -1, dtype=np.int32),
            bjorken_y=np.full(n, np.nan),
            n_gen=np.full(n, ctx.n_events_run, dtype=np.int64),
            livetime_s=np.full(n, livetime),
            weight_w2=np.full(n, np.nan),
            weight_w3=np.full(n, 1.0 / livetime if livetime > 0 else 0.0),
        )
        nmu = len(s.muon_event)
        first = np.cumsum(s.multiplicity) - s.multiplicity
        ev = s.muon_event
        tracks = make_table(
            "mc_tracks",
            event_id=ids[ev],
            track_id=(np.arange(nmu) - first[ev]).astype(np.int32),
            parent_id=np.full(nmu, -1, dtype=np.int32),
            pdgid=s.muon_pdgid,
            pos_x=s.muon_pos[:, 0],
            pos_y=s.muon_pos[:, 1],
            pos_z=s.muon_pos[:, 2],
            dir_x=s.dir[ev, 0],
            dir_y=s.dir[ev, 1],
            dir_z=s.dir[ev, 2],
            energy=s.muon_energy,
            time=s.muon_time,
            length=np.zeros(nmu),
            energy_lost_in_can=np.zeros(nmu),
        )
        return {"events": events, "mc_tracks": tracks}


# ------------------------------------------------------------------- MUPAGE livetime estimate
def mupage_livetime_estimate(
    events: Table,
    generator: AtmosphericMuonGenerator,
    *,
    edges_deg=MUPAGE_LIVETIME_BINS_DEG,
    midpoint: bool = False,
) -> LivetimeEstimate:
    """MUPAGE's livetime estimator applied to generated events (PHYSICS.md §1.4 step 6).

    Counts the events of the lowest multiplicity (normally single muons) whose axis hits the top
    disk of the generation can, in zenith bins, and compares them with the expected rate in each
    bin ``N*_MC = int Phi(m_min; h_top, theta) P(pass) pi r^2 cos(theta) dOmega``:
    ``T_bin = N* / N*_MC``, ``dT_bin = sqrt(N*) / N*_MC``, and T is the inverse-variance weighted
    mean of the T_bin (bins without events are skipped).

    MUPAGE evaluates the flux at the bin centre times the solid angle of the bin, and counts the
    events before its energy threshold (so without P(pass)); here the events below the threshold
    were never produced, so the expectation includes P(pass | m_min, h_top, theta), exact for
    single muons. ``midpoint=True`` uses MUPAGE's bin-centre approximation instead of the integral
    over the bin.

    Parameters
    ----------
    events : Table
        ``events`` table of the generated sample (one run, or runs of equal livetime merged).
    generator : AtmosphericMuonGenerator
        The generator (configuration, detector and site) that produced them.
    edges_deg : sequence of float
        Zenith bin edges [deg]; clipped to ``zenith_max_deg``.
    midpoint : bool
        MUPAGE's bin-centre expectation.
    """
    generator._require_setup()
    cfg = generator.config
    g = generator.gen_can
    edges = np.asarray(edges_deg, dtype=np.float64)
    edges = np.unique(np.clip(edges, 0.0, cfg.zenith_max_deg))
    if len(edges) < 2:
        raise ValueError(f"need at least one zenith bin below zenith_max_deg, got edges {edges_deg}")
    m_min = cfg.multiplicity_min
    zen = np.degrees(np.arccos(np.clip(-np.asarray(events["dir_z"], dtype=np.float64), -1.0, 1.0)))
    on_top = np.abs(np.asarray(events["pos_z"]) - g.zmax) < 1e-6
    sel = on_top & (np.asarray(events["n_muons"]) == m_min)
    counts, _ = np.histogram(zen[sel], edges)
    cos_edges = np.cos(np.radians(edges))[::-1]  # increasing cos
    if midpoint:
        t_mid = np.radians(0.5 * (edges[1:] + edges[:-1]))
        u_mid = np.cos(t_mid)
        flux = generator.flux_passing(np.full_like(u_mid, generator.h_top), u_mid, m_min)
        d_omega = 2.0 * math.pi * (cos_edges[1:] - cos_edges[:-1])[::-1]
        expected = flux * math.pi * g.radius**2 * u_mid * d_omega
    else:
        expected = generator.zenith_bin_rates(cos_edges, multiplicity=m_min, surface="top")[::-1]
    ok = (counts > 0) & (expected > 0)
    if not ok.any():
        raise ValueError("no events of the lowest multiplicity through the top of the can: cannot estimate the livetime")
    t_bin = np.where(expected > 0, counts / np.where(expected > 0, expected, 1.0), np.nan)
    weights = np.where(ok, expected**2 / np.where(counts > 0, counts, 1), 0.0)
    livetime = float(np.sum(weights * np.nan_to_num(t_bin)) / np.sum(weights))
    error = float(1.0 / math.sqrt(np.sum(weights)))
    return LivetimeEstimate(
        livetime_s=livetime,
        error_s=error,
        pooled_livetime_s=float(counts.sum() / expected.sum()),
        edges_deg=edges,
        counts=counts,
        expected_rate_hz=expected,
        bin_livetime_s=t_bin,
    )
