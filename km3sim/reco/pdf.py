"""Arrival-time PDFs and expected photo-electrons of the reconstruction likelihoods.

The likelihood fits of :mod:`km3sim.reco.track` and :mod:`km3sim.reco.shower` need, for a PMT
at distance d from the light source, (1) the expected number of signal photo-electrons and
(2) the distribution of their time residuals t_res = t_hit − t_expected(direct light)
(PHYSICS.md §9.1). Both are handed to the numba kernels as tables on uniform grids
(:class:`LightTables`); this module fills them from analytic models. The light tables that are
being built from the photon tracker (``km3sim.propagation.tables``) can replace them: any
object with the same arrays works (see :class:`LightTables` and :func:`light_tables`).

Time-residual PDF: convoluted Pandel
------------------------------------
The Pandel function (D. Pandel, diploma thesis, Humboldt-Universität Berlin 1996; AMANDA
Collaboration, NIM A 524 (2004) 169, PHYSICS.md §6.4) is a gamma distribution of the delay
of scattered light at distance d,

    p(t|d) = ρ^k t^(k−1) e^(−ρt) / Γ(k),   k = d/λ_P,   ρ = 1/τ + c_m/λ_a,   c_m = c/n_g,

normalised on t ≥ 0 (its cumulative distribution is the regularised incomplete gamma function
P(k, ρt)). It is convolved with a Gaussian of the PMT transit-time spread σ (the "convoluted
Pandel" function of N. van Eijndhoven, O. Fadeev, G. Japaridze, Astropart. Phys. 28 (2007)
456 [reference from memory, not checked here]; done here numerically and exactly on a
0.05 ns grid instead of with their closed-form approximation).

Sea-water parameters: no published values exist (PHYSICS.md §6.4). They were fitted here to
the km3sim photon tracker (:class:`km3sim.propagation.photons.PhotonTracker`: Kopelevich
scattering with the p0.0075 phase function, Jpp absorption, Bailey dispersion at 350 atm),
see :func:`calibrate_pandel`: four 1 TeV muons (600 m, ΔL/L secondaries, no stochastic
showers) through a 37-DU grid of 31-PMT DOMs (30 m × 12 m), 57 000 detected photons with
closest-approach distance d = 0–180 m, residuals binned in d (4 m) and in t (edges 3, 6, 10,
15, 25, 40, 60, 100, 150, 250, 400, 700, 1000 ns; everything below 3 ns in one bin, since the
structure below the TTS does not matter), binned maximum likelihood with λ_a fixed to the Jpp
absorption length at 470 nm (60 m, PHYSICS.md §6.1; τ and λ_a are nearly degenerate, only ρ
is well constrained):

    τ = 1680 ns (±11 %),   λ_P = 192 m (±1 %),   λ_a = 60 m (fixed),   n_g = 1.38.

(For comparison, AMANDA ice: τ = 557 ns, λ_P = 33 m, λ_a = 98 m.) The fit reproduces the
fraction of photons within 3 ns of the direct time to ±0.05 between 10 and 100 m (e.g. 0.58
vs 0.64 at 20 m, 0.27 vs 0.27 at 60 m, 0.11 vs 0.11 at 100 m).

Expected photo-electrons of a muon
----------------------------------
For a track of unit brightness (Frank–Tamm light of a bare β = 1 track; the fits scale it by a
brightness factor B, see :mod:`km3sim.reco.energy`) the expected pe at a PMT at closest
distance d whose axis makes cosine c with the direct Cherenkov photon is the direct-light
formula of the simulation (:class:`km3sim.propagation.light.DirectLight`, PHYSICS.md §5.1,
§6.1, §7.2, §9.1)

    m(d, c) = A_pmt · A_eff(c, d) · Y(d/sinθ_c) / (2π d sinθ_c),

with absorption only (scattering redistributes light in time and direction but loses little
of it for a long track). Scattered light reaches PMTs facing away from the Cherenkov photon:
A_eff(c, d) = (1 − ε)·A(c) + ε·Ā, with the isotropised fraction ε = 1 − exp(−d/λ_eff),
λ_eff = λ_s/(1 − <cosθ>) the effective scattering length (227 m at 470 nm, PHYSICS.md §6.3) and
Ā the acceptance averaged over directions (0.186).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal, special

from km3sim import constants as C
from km3sim.detector.pmt import ACCEPTANCE_TABLE, ACCEPTANCE_TABLE_COS, PHOTOCATHODE_AREA_M2
from km3sim.errors import ConfigError

__all__ = [
    "PANDEL_SEA_WATER",
    "PandelParameters",
    "LightTables",
    "pandel_pdf",
    "pandel_cdf",
    "convoluted_pandel_tables",
    "muon_npe_table",
    "light_tables",
    "register_light_tables",
    "calibrate_pandel",
]

#: Reference wavelength of the Cherenkov angle and absorption in the npe model [nm] (as the
#: simulation, :data:`km3sim.propagation.light.REFERENCE_WAVELENGTH_NM`).
REFERENCE_WAVELENGTH_NM = 470.0

#: Floor of the closest distance in the npe model [m] (about a DOM radius, as the simulation).
D_FLOOR_M = 0.2


@dataclass(frozen=True)
class PandelParameters:
    """Parameters of the Pandel function (PHYSICS.md §6.4).

    Attributes
    ----------
    tau_ns : float
        τ [ns].
    lambda_p_m : float
        λ_P: distance per unit of the gamma shape k = d/λ_P [m].
    lambda_a_m : float
        λ_a: absorption length in ρ = 1/τ + c_m/λ_a [m].
    n_group : float
        Group index in c_m = c/n_g.
    """

    tau_ns: float
    lambda_p_m: float
    lambda_a_m: float
    n_group: float = C.INDEX_OF_REFRACTION_GROUP

    @property
    def rho(self) -> float:
        """ρ = 1/τ + c_m/λ_a [1/ns]."""
        return 1.0 / self.tau_ns + C.C_LIGHT / self.n_group / self.lambda_a_m


#: Sea-water Pandel parameters fitted to the km3sim photon tracker (see the module notes and
#: :func:`calibrate_pandel`).
PANDEL_SEA_WATER = PandelParameters(tau_ns=1680.0, lambda_p_m=192.0, lambda_a_m=60.0)


def pandel_pdf(t_ns, d_m, params: PandelParameters = PANDEL_SEA_WATER):
    """Pandel PDF p(t|d) [1/ns] of the delay t ≥ 0 at distance d (0 for t < 0).

    ``p = ρ^k t^(k−1) e^(−ρt)/Γ(k)``, k = d/λ_P (d floored at 0.1 m), PHYSICS.md §6.4.
    """
    t = np.asarray(t_ns, dtype=np.float64)
    k = np.maximum(np.asarray(d_m, dtype=np.float64), 0.1) / params.lambda_p_m
    rho = params.rho
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = k * math.log(rho) + (k - 1.0) * np.log(np.where(t > 0, t, 1.0)) - rho * t - special.gammaln(k)
    out = np.where(t > 0, np.exp(logp), 0.0)
    return out if out.ndim else float(out)


def pandel_cdf(t_ns, d_m, params: PandelParameters = PANDEL_SEA_WATER):
    """Cumulative Pandel distribution P(k, ρt) (regularised lower incomplete gamma), 0 for t < 0."""
    t = np.asarray(t_ns, dtype=np.float64)
    k = np.maximum(np.asarray(d_m, dtype=np.float64), 0.1) / params.lambda_p_m
    out = np.where(t > 0, special.gammainc(k, params.rho * np.maximum(t, 0.0)), 0.0)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class LightTables:
    """Tabulated light model of a muon track for the likelihood kernels.

    All grids are uniform. ``d`` is the closest distance between the track and the PMT [m];
    ``c`` the cosine between the direct Cherenkov photon and the PMT axis (−1 head-on);
    ``t`` the time residual [ns].

    Attributes
    ----------
    d0, dd : float
        First node and step of the distance grid [m].
    c0, dc : float
        First node and step of the cosine grid.
    t0, dt : float
        First node and step of the time-residual grid [ns].
    npe_d : ndarray (n_d, n_c)
        d × expected photo-electrons of a unit-brightness track [m·pe] (the product is smooth
        in d; the kernel divides by max(d, :data:`D_FLOOR_M`)).
    pdf : ndarray (n_d, n_cp, n_t)
        Time-residual PDF of a signal photo-electron [1/ns]; n_cp is 1 (no dependence on c,
        as for Pandel) or n_c.
    cdf : ndarray (n_d, n_cp, n_t)
        Its cumulative distribution from −∞.
    name : str
        Where the tables come from.
    n_phi : int
        0: the orientation axis is the cosine c (above). ≥ 2: it is the PMT axis in the track
        frame, polar angle θ (nodes c0 + a·dc, a < n_θ) from the track direction and azimuth
        φ ∈ [0, π] about it (φ = 0 pointing away from the track; ``n_phi`` uniform nodes),
        flattened as a·n_phi + b (the layout of the simulation's light tables; the track fit
        then uses the DOM centre as the point of the PMT, see :mod:`km3sim.reco.table_pdf`).
        ``pdf``/``cdf`` then have shape (n_d, n_θ·n_φ, n_t + 1) and hold npe × PDF (CDF) on
        the nodes with the node's npe in the last column: the kernels interpolate the
        npe-weighted mixture of the corners.
    d_scale : float
        0: the distance axis is d. > 0: it is ln(1 + d/d_scale) [d0, dd in that coordinate].
        ``npe_d`` may have more distance nodes than ``pdf`` over the same range (finer).
    npe_d2, pdf2, cdf2 : ndarray or None
        A second light component on the same grids (e.g. the EM showers of the muon's
        continuous losses): the kernels take the expected pe B·((1 − w)·m1 + w·m2) and the
        npe-weighted mixture of the time PDFs, w the component's fraction of the light
        (:meth:`track_kernel_args`).
    n_phase, n_group : float or None
        Refractive indices with which the tables' time residuals are defined (None: those of
        the fit configuration).
    """

    d0: float
    dd: float
    c0: float
    dc: float
    t0: float
    dt: float
    npe_d: np.ndarray
    pdf: np.ndarray
    cdf: np.ndarray
    name: str = ""
    n_phi: int = 0
    d_scale: float = 0.0
    npe_d2: np.ndarray | None = None
    pdf2: np.ndarray | None = None
    cdf2: np.ndarray | None = None
    n_phase: float | None = None
    n_group: float | None = None

    @property
    def t_max(self) -> float:
        """Largest tabulated time residual [ns]."""
        return self.t0 + self.dt * (self.pdf.shape[2] - (2 if self.n_phi else 1))

    @property
    def d_max(self) -> float:
        """Largest tabulated distance [m]."""
        x = self.d0 + self.dd * (self.pdf.shape[0] - 1)
        return float(self.d_scale * math.expm1(x)) if self.d_scale > 0 else float(x)

    @property
    def has_second_component(self) -> bool:
        return self.npe_d2 is not None

    def kernel_args(self) -> tuple:
        """The tuple the (d, c) kernels take: (d0, dd, c0, dc, t0, dt, npe_d, pdf, cdf).

        Raises
        ------
        ConfigError
            For (R, θ, φ) tables (``n_phi`` > 0), which only the track fit's kernels read
            (:meth:`track_kernel_args`).
        """
        if self.n_phi or self.d_scale or self.npe_d2 is not None:
            raise ConfigError(f"light tables {self.name!r} are (R, theta, phi) tables of the track fit "
                              "(pdf: tables); this fit supports only (d, cos) tables such as pdf: pandel")
        return (float(self.d0), float(self.dd), float(self.c0), float(self.dc), float(self.t0), float(self.dt),
                np.ascontiguousarray(self.npe_d, dtype=np.float64), np.ascontiguousarray(self.pdf, dtype=np.float64),
                np.ascontiguousarray(self.cdf, dtype=np.float64))

    def track_kernel_args(self, w2: float = 0.0) -> tuple:
        """The tuple the track-fit kernels take (:mod:`km3sim.reco._kernels`): (d0, dd, c0, dc, t0,
        dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2), with ``w2`` the fraction of
        the light in the second component (ignored, 0, without one; dummy arrays then)."""
        f8 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        if self.npe_d2 is None:
            w2 = 0.0
            n2, p2, c2 = _DUMMY_NPE, _DUMMY_T, _DUMMY_T
        else:
            n2, p2, c2 = f8(self.npe_d2), f8(self.pdf2), f8(self.cdf2)
        return (float(self.d0), float(self.dd), float(self.c0), float(self.dc), float(self.t0), float(self.dt),
                f8(self.npe_d), f8(self.pdf), f8(self.cdf), int(self.n_phi), float(self.d_scale),
                float(min(max(w2, 0.0), 1.0)), n2, p2, c2)


#: Placeholders of an absent second light component in :meth:`LightTables.track_kernel_args`.
_DUMMY_NPE = np.zeros((2, 2))
_DUMMY_T = np.zeros((2, 1, 2))


def convoluted_pandel_tables(d_grid, t_grid, sigma_ns: float, params: PandelParameters = PANDEL_SEA_WATER,
                             fine_step_ns: float = 0.05):
    """PDF and CDF of the Pandel function convolved with a Gaussian of σ = ``sigma_ns``.

    The Pandel distribution is discretised by its exact cumulative distribution on a
    ``fine_step_ns`` grid (so the t^(k−1) spike of small distances is integrated exactly),
    convolved with the sampled Gaussian (FFT), and interpolated onto ``t_grid``.

    Parameters
    ----------
    d_grid : array (n_d,)
        Distances [m].
    t_grid : array (n_t,)
        Uniform time-residual grid [ns].
    sigma_ns : float
        Gaussian σ (PMT TTS) [ns]; 0 gives the plain Pandel function (with the fine-grid
        resolution).

    Returns
    -------
    pdf, cdf : ndarray (n_d, n_t)
    """
    d = np.asarray(d_grid, dtype=np.float64)
    t = np.asarray(t_grid, dtype=np.float64)
    sig = max(float(sigma_ns), 0.0)
    half = 8.0 * sig + 2.0 * fine_step_ns
    lo = min(t[0], 0.0) - half
    hi = t[-1] + half
    n_fine = int(math.ceil((hi - lo) / fine_step_ns)) + 1
    edges = lo + fine_step_ns * np.arange(n_fine + 1)
    k = np.maximum(d, 0.1)[:, None] / params.lambda_p_m
    cdf_edges = np.where(edges[None, :] > 0, special.gammainc(k, params.rho * np.maximum(edges, 0.0)[None, :]), 0.0)
    mass = np.diff(cdf_edges, axis=1)  # mass in each fine bin
    if sig > 0:
        x = fine_step_ns * np.arange(-int(math.ceil(half / fine_step_ns)), int(math.ceil(half / fine_step_ns)) + 1)
        kern = np.exp(-0.5 * (x / sig) ** 2)
        kern /= kern.sum()
        mass = signal.fftconvolve(mass, kern[None, :], mode="same", axes=1)
        mass = np.clip(mass, 0.0, None)
    centres = 0.5 * (edges[1:] + edges[:-1])
    cum = np.concatenate([np.zeros((len(d), 1)), np.cumsum(mass, axis=1)], axis=1)
    pdf = np.empty((len(d), len(t)))
    cdf = np.empty((len(d), len(t)))
    for i in range(len(d)):
        pdf[i] = np.interp(t, centres, mass[i] / fine_step_ns)
        cdf[i] = np.interp(t, edges, cum[i])
    return pdf, cdf


def _acceptance(c):
    return np.interp(c, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0)


def muon_npe_table(d_grid, c_grid, water, wavelength_min_nm: float = 300.0, wavelength_max_nm: float = 700.0,
                   isotropic: bool = True):
    """d × expected pe of a unit-brightness muon track, ``npe_d[i, j]`` at (d_i, c_j) [m·pe].

    m(d, c) = A_pmt·A_eff(c, d)·Y(d/sinθ_c)/(2π d sinθ_c) (see the module notes), with Y from
    :func:`km3sim.propagation.light.photon_yield` (Frank–Tamm × QE × absorption) and θ_c at
    :data:`REFERENCE_WAVELENGTH_NM`.
    """
    from km3sim.propagation.light import photon_yield
    from km3sim.propagation.water import phase_function_mean_cos

    d = np.asarray(d_grid, dtype=np.float64)
    c = np.asarray(c_grid, dtype=np.float64)
    n_ph = float(water.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
    sin_c = math.sqrt(1.0 - 1.0 / n_ph**2)
    y = photon_yield(d / sin_c, water, wavelength_min_nm, wavelength_max_nm)
    base = PHOTOCATHODE_AREA_M2 * y / (2.0 * math.pi * sin_c)  # × 1/d gives pe
    acc = _acceptance(c)
    if isotropic:
        lam_eff = float(water.scattering_length(REFERENCE_WAVELENGTH_NM)) / (1.0 - phase_function_mean_cos())
        eps = 1.0 - np.exp(-d / lam_eff)
        a_mean = float(np.mean(_acceptance(np.linspace(-1.0, 1.0, 20001))))
        acc2 = (1.0 - eps)[:, None] * acc[None, :] + eps[:, None] * a_mean
    else:
        acc2 = np.broadcast_to(acc[None, :], (len(d), len(c)))
    return np.ascontiguousarray(base[:, None] * acc2)


_PROVIDERS: dict = {}


def register_light_tables(name: str, factory) -> None:
    """Register a provider of :class:`LightTables` under ``name`` (the ``pdf`` config key of the
    fits). ``factory(water, tts_ns)`` returns the tables; e.g. the photon-tracker light tables
    of ``km3sim.propagation.tables`` can register themselves here and replace Pandel."""
    _PROVIDERS[name] = factory


def _pandel_factory(water, tts_ns: float) -> LightTables:
    d_grid = np.arange(0.0, 400.0 + 1e-9, 2.0)
    c_grid = np.linspace(-1.0, 1.0, 41)
    t_grid = np.arange(-60.0, 700.0 + 1e-9, 0.5)
    pdf, cdf = convoluted_pandel_tables(d_grid, t_grid, tts_ns, PANDEL_SEA_WATER)
    npe_d = muon_npe_table(d_grid, c_grid, water)
    return LightTables(
        d0=0.0, dd=2.0, c0=-1.0, dc=0.05, t0=float(t_grid[0]), dt=0.5, npe_d=npe_d,
        pdf=pdf[:, None, :], cdf=cdf[:, None, :],
        name=f"convoluted Pandel (tau {PANDEL_SEA_WATER.tau_ns} ns, lambda_P {PANDEL_SEA_WATER.lambda_p_m} m, "
             f"lambda_a {PANDEL_SEA_WATER.lambda_a_m} m) with {tts_ns} ns TTS",
    )


register_light_tables("pandel", _pandel_factory)


def _tables_factory(water, tts_ns: float) -> LightTables:
    """The simulation's light tables for this water ('auto', :mod:`km3sim.reco.table_pdf`):
    (R, θ, φ) tables that only the track fit reads (``kernel_args`` refuses them)."""
    from km3sim.propagation.tables import find_light_tables, physics_parameters, table_cache_dir
    from km3sim.reco.table_pdf import muon_table_light_tables

    path = find_light_tables(physics_parameters(water))
    if path is None:
        raise ConfigError(f"light-table provider 'tables': no light table for {water.pressure_atm} atm water in "
                          f"{table_cache_dir()}; build one with `km3sim tables build --site <site>`")
    return muon_table_light_tables(path, tts_ns)


register_light_tables("tables", _tables_factory)


@functools.lru_cache(maxsize=16)
def _cached(name: str, pressure_atm: float, absorption_scale: float, tts_ns: float) -> LightTables:
    from km3sim.propagation.water import WaterOptics

    water = WaterOptics(pressure_atm=pressure_atm, absorption_scale=absorption_scale)
    return _PROVIDERS[name](water, tts_ns)


def light_tables(name: str = "pandel", site=None, tts_ns: float = 2.0, absorption_scale: float = 1.0) -> LightTables:
    """The :class:`LightTables` of provider ``name`` for a site's water and a TTS (cached).

    Raises
    ------
    ConfigError
        For an unknown provider.
    """
    if name not in _PROVIDERS:
        raise ConfigError(f"unknown light-table provider {name!r}; known: {sorted(_PROVIDERS)}")
    pressure = float(getattr(site, "pressure_atm", 240.0)) if site is not None else 240.0
    return _cached(name, pressure, float(absorption_scale), float(tts_ns))


def calibrate_pandel(n_muons: int = 4, photon_scale: float = 50.0, seed: int = 5, energy_gev: float = 1000.0,
                     pressure_atm: float = 350.0, lambda_a_m: float = 60.0):
    """Fit the sea-water Pandel parameters (τ, λ_P) to the photon tracker (the procedure behind
    :data:`PANDEL_SEA_WATER`; a few minutes on one core with the defaults).

    Muons of ``energy_gev`` (600 m, no stochastic showers) cross a 37-DU block (30 m × 12 m,
    40 floors) at random inclinations; ``photon_scale`` × the muon's photons are tracked.
    Photons emitted more than 5 m from the track ends are histogrammed in (d, t_res) and
    fitted as described in the module notes.

    Returns
    -------
    params : PandelParameters
    n_photons : int
    """
    from scipy import optimize

    from km3sim.detector.geometry import build_block
    from km3sim.propagation.photons import EMITTER_MUON, PhotonTracker
    from km3sim.propagation.water import WaterOptics

    det = build_block(37, 30.0, 12.0, 20.0, n_floors=40)
    water = WaterOptics(pressure_atm=pressure_atm)
    tracker = PhotonTracker.from_detector(det, water, max_distance_m=400.0)
    rng = np.random.default_rng(seed)
    k = (C.INDEX_OF_REFRACTION_GROUP - C.COS_CHERENKOV) / C.SIN_CHERENKOV
    rows = []
    for i in range(n_muons):
        cz = -0.3 - 0.5 * rng.uniform()
        az = rng.uniform(0.0, 2.0 * math.pi)
        u = np.array([math.sqrt(1 - cz * cz) * math.cos(az), math.sqrt(1 - cz * cz) * math.sin(az), cz])
        p = det.center() + rng.uniform(-10, 10, 3) - 300.0 * u
        length = 600.0
        em = tracker.single_emitter(EMITTER_MUON, p, u, photon_scale * float(tracker.muon_photons(length, energy_gev)),
                                    length=length, energy=energy_gev)
        h = tracker.track(em, np.array([seed * 1000 + i], np.uint64))
        x = det.pmt_pos[h.pmt_index]
        v = x - p
        along = v @ u
        d = np.sqrt(np.maximum((v * v).sum(axis=1) - along**2, 0.0))
        z_emit = along - d / C.TAN_CHERENKOV
        ok = (z_emit > 5.0) & (z_emit < length - 5.0)
        rows.append(np.column_stack([d[ok], h.time[ok] - (along[ok] + k * d[ok]) / C.C_LIGHT]))
    a = np.concatenate(rows)
    t_edges = np.array([-1e9, 3, 6, 10, 15, 25, 40, 60, 100, 150, 250, 400, 700, 1000.0])
    d_edges = np.arange(0.0, 200.0 + 1e-9, 4.0)
    hist = np.zeros((len(d_edges) - 1, len(t_edges) - 1))
    d_mean = np.zeros(len(d_edges) - 1)
    for i in range(len(d_edges) - 1):
        s = a[(a[:, 0] >= d_edges[i]) & (a[:, 0] < d_edges[i + 1])]
        hist[i] = np.histogram(s[:, 1], t_edges)[0]
        d_mean[i] = s[:, 0].mean() if len(s) else 0.5 * (d_edges[i] + d_edges[i + 1])
    te = np.clip(t_edges, 0.0, None)

    def nll(q):
        pp = PandelParameters(tau_ns=math.exp(q[0]), lambda_p_m=math.exp(q[1]), lambda_a_m=lambda_a_m)
        cdf = special.gammainc(np.maximum(d_mean, 0.5)[:, None] / pp.lambda_p_m, pp.rho * te[None, :])
        p = np.diff(cdf, axis=1) / cdf[:, -1:]
        return -float((hist * np.log(np.maximum(p, 1e-300))).sum())

    r = optimize.minimize(nll, [math.log(1500.0), math.log(190.0)], method="Nelder-Mead",
                          options=dict(maxiter=4000, xatol=1e-8, fatol=1e-8))
    return PandelParameters(tau_ns=math.exp(r.x[0]), lambda_p_m=math.exp(r.x[1]), lambda_a_m=lambda_a_m), len(a)
