"""numba kernels of the atmospheric-muon generator (arrays, scalars and seeds only).

Physics: MUPAGE single-muon flux and energy spectrum (Becherini, Margiotta, Sioli, Spurio,
Astropart. Phys. 25 (2006) 1, hep-ph/0507228; PHYSICS.md §1.1 and §1.3). The formula
functions work on scalars and on numpy arrays alike (inside numba and from Python).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.random import rng_new, rng_uniform

#: Slope of the energy-threshold term, beta = 0.42 per km w.e. (PHYSICS.md §1.3).
MUPAGE_BETA = 0.42


@nb.njit(cache=True)
def mupage_single_muon_flux(h, cos_zenith):
    """MUPAGE flux of single-muon events K(h, theta) [m^-2 s^-1 sr^-1].

    ``K = K0(h) cos(theta) exp(K1(h) / cos(theta))`` with ``K0 = 7.2e-3 h^-1.927`` and
    ``K1 = -0.581 h + 0.034`` (PHYSICS.md §1.1; Becherini et al. 2006, MUPAGE Muons.cc).

    Parameters
    ----------
    h : float or ndarray
        Vertical depth [km w.e.].
    cos_zenith : float or ndarray
        Cosine of the zenith angle of the arrival direction (> 0).
    """
    k0 = 7.2e-3 * h ** (-1.927)
    k1 = -0.581 * h + 0.034
    return k0 * cos_zenith * np.exp(k1 / cos_zenith)


@nb.njit(cache=True)
def mupage_single_muon_gamma(h):
    """Spectral index of single muons, ``gamma1 = -0.232 ln h + 3.961`` (PHYSICS.md §1.3)."""
    return -0.232 * np.log(h) + 3.961


@nb.njit(cache=True)
def mupage_single_muon_e0_gev(h, cos_zenith):
    """Spectral scale E0 of single muons [GeV] (PHYSICS.md §1.3, MUPAGE Muons.cc).

    ``E0 = eps1 (1 - exp(-beta X))`` with slant depth ``X = h / cos(theta)``,
    ``beta = 0.42`` per km w.e. and
    ``eps1 = 0.0304 exp(0.359 h) / cos(theta) - 0.0077 h + 0.659`` TeV.
    """
    eps = 0.0304 * np.exp(0.359 * h) / cos_zenith - 0.0077 * h + 0.659
    return 1000.0 * eps * (1.0 - np.exp(-MUPAGE_BETA * h / cos_zenith))


@nb.njit(cache=True)
def spectrum_tail_fraction(e_gev, gamma, e0_gev):
    """P(E > e) for ``dN/dE = (gamma-1) E0^(gamma-1) (E+E0)^-gamma`` on [0, inf)."""
    return (e0_gev / (e_gev + e0_gev)) ** (gamma - 1.0)


@nb.njit(cache=True)
def single_muon_band_fraction(h, cos_zenith, emin_gev, emax_gev):
    """Fraction of single muons with energy in [emin, emax] at depth h and zenith theta."""
    g = mupage_single_muon_gamma(h)
    e0 = mupage_single_muon_e0_gev(h, cos_zenith)
    return spectrum_tail_fraction(emin_gev, g, e0) - spectrum_tail_fraction(emax_gev, g, e0)


@nb.njit(cache=True)
def single_muon_band_flux(h, cos_zenith, emin_gev, emax_gev):
    """K(h, theta) times the fraction of single muons in [emin, emax] [m^-2 s^-1 sr^-1]."""
    return mupage_single_muon_flux(h, cos_zenith) * single_muon_band_fraction(h, cos_zenith, emin_gev, emax_gev)


@nb.njit(cache=True)
def sample_single_muon_energy(v, gamma, e0_gev, emin_gev, emax_gev):
    """Energy with density ``(E+E0)^-gamma`` truncated to [emin, emax], by exact CDF inversion.

    Parameters
    ----------
    v : float
        Uniform deviate in [0, 1).
    gamma, e0_gev : float
        Spectral index and scale [GeV] (PHYSICS.md §1.3).
    emin_gev, emax_gev : float
        Truncation [GeV].
    """
    p = 1.0 - gamma
    lo = (emin_gev + e0_gev) ** p
    hi = (emax_gev + e0_gev) ** p
    e = (lo - v * (lo - hi)) ** (1.0 / p) - e0_gev
    # rounding can step a hair outside the band
    return min(max(e, emin_gev), emax_gev)


@nb.njit(cache=True)
def can_entry_density(cos_zenith, z, is_top, radius, z_top, seabed_depth_m, density_g_cm3, emin_gev, emax_gev):
    """Rate density of single muons entering the can, per unit cos(theta), z and azimuth.

    Top disk (``is_top``): ``pi r^2 cos(theta) Phi(h_top, theta)`` per unit cos(theta);
    lateral surface: ``2 r sin(theta) Phi(h(z), theta)`` per unit cos(theta) and unit z, with
    ``Phi = K(h, theta) P(emin < E < emax | h, theta)`` and ``h = rho (D - z) / 1000`` km w.e.
    (PHYSICS.md §1.1, §1.3, §1.4). Multiply by 2 pi for the azimuth.
    """
    if is_top:
        h = density_g_cm3 * (seabed_depth_m - z_top) * 1e-3
        return math.pi * radius * radius * cos_zenith * single_muon_band_flux(h, cos_zenith, emin_gev, emax_gev)
    h = density_g_cm3 * (seabed_depth_m - z) * 1e-3
    s = math.sqrt(max(1.0 - cos_zenith * cos_zenith, 0.0))
    return 2.0 * radius * s * single_muon_band_flux(h, cos_zenith, emin_gev, emax_gev)


@nb.njit(cache=True)
def sample_atmospheric_muons(
    seeds,
    cell_cdf,
    cell_u0,
    cell_du,
    cell_z0,
    cell_dz,
    cell_top,
    cell_max,
    can_x,
    can_y,
    can_radius,
    can_ztop,
    seabed_depth_m,
    density_g_cm3,
    emin_gev,
    emax_gev,
    livetime_ns,
    frac_mu_plus,
):
    """Draw single atmospheric muons on the can, one independent random stream per event.

    The arrival zenith and the entry height follow :func:`can_entry_density` exactly: a cell
    of the (cos theta, surface) grid is chosen with probability proportional to its envelope
    (cell maximum times cell size), a point is drawn uniformly in the cell and accepted with
    probability density / cell maximum; on rejection a new cell is drawn. The azimuth is
    uniform, the entry point uniform in projected area on the chosen surface, the energy from
    the MUPAGE single-muon spectrum at the entry depth (PHYSICS.md §1.3), the time uniform in
    the livetime and the charge mu+ with probability ``frac_mu_plus``.

    Parameters
    ----------
    seeds : ndarray of uint64, shape (n,)
        Per-event seeds.
    cell_* : ndarray, shape (n_cells,)
        Grid cells: normalised cumulative envelope, lower edge and width in cos(theta) and z,
        top-disk flag and maximum of the density in the cell.

    Returns
    -------
    pos : ndarray, shape (n, 3)
    dir : ndarray, shape (n, 3)
    energy : ndarray, shape (n,)
    time : ndarray, shape (n,)
        Event time in [0, livetime_ns).
    pdgid : ndarray of int32, shape (n,)
    n_tries : int
        Total number of proposals (acceptance = n / n_tries).
    n_over : int
        Proposals whose density exceeded the cell maximum (0 if the envelope is valid).
    """
    n = seeds.shape[0]
    ncell = cell_cdf.shape[0]
    pos = np.empty((n, 3))
    dirs = np.empty((n, 3))
    energy = np.empty(n)
    time = np.empty(n)
    pdgid = np.empty(n, dtype=np.int32)
    n_tries = 0
    n_over = 0
    for i in range(n):
        s = rng_new(seeds[i])
        c = 0
        u = 1.0
        z = 0.0
        while True:
            n_tries += 1
            c = np.searchsorted(cell_cdf, rng_uniform(s), side="right")
            if c >= ncell:
                c = ncell - 1
            u = cell_u0[c] + cell_du[c] * rng_uniform(s)
            z = cell_z0[c] + cell_dz[c] * rng_uniform(s)
            g = can_entry_density(
                u, z, cell_top[c], can_radius, can_ztop, seabed_depth_m, density_g_cm3, emin_gev, emax_gev
            )
            if g > cell_max[c]:
                n_over += 1
            if rng_uniform(s) * cell_max[c] < g:
                break
        sin_t = math.sqrt(max(1.0 - u * u, 0.0))
        phi = 2.0 * math.pi * rng_uniform(s)
        dx = sin_t * math.cos(phi)
        dy = sin_t * math.sin(phi)
        w = rng_uniform(s)
        w2 = rng_uniform(s)
        if cell_top[c]:
            rr = can_radius * math.sqrt(w)
            alpha = 2.0 * math.pi * w2
            pos[i, 0] = can_x + rr * math.cos(alpha)
            pos[i, 1] = can_y + rr * math.sin(alpha)
            pos[i, 2] = can_ztop
        else:
            # impact parameter uniform in [-r, r] across the projected lateral surface
            psi = math.asin(2.0 * w - 1.0)
            ang = phi + math.pi + psi
            pos[i, 0] = can_x + can_radius * math.cos(ang)
            pos[i, 1] = can_y + can_radius * math.sin(ang)
            pos[i, 2] = z
        dirs[i, 0] = dx
        dirs[i, 1] = dy
        dirs[i, 2] = -u
        h = density_g_cm3 * (seabed_depth_m - pos[i, 2]) * 1e-3
        energy[i] = sample_single_muon_energy(
            rng_uniform(s), mupage_single_muon_gamma(h), mupage_single_muon_e0_gev(h, u), emin_gev, emax_gev
        )
        time[i] = livetime_ns * rng_uniform(s)
        pdgid[i] = -13 if rng_uniform(s) < frac_mu_plus else 13
    return pos, dirs, energy, time, pdgid, n_tries, n_over


@nb.njit(cache=True)
def envelope_maxima(u_edges, z_edges, is_top, radius, z_top, seabed_depth_m, density_g_cm3, emin_gev, emax_gev, n_sub):
    """Maximum of :func:`can_entry_density` over each (cos theta, z) cell.

    Evaluated on an (n_sub+1) x (n_sub+1) lattice including the cell corners; for the top
    disk only along cos theta. The caller adds a safety factor.

    Returns
    -------
    ndarray, shape (len(u_edges) - 1, len(z_edges) - 1) (second dimension 1 for the top)
    """
    nu = u_edges.shape[0] - 1
    nz = 1 if is_top else z_edges.shape[0] - 1
    out = np.zeros((nu, nz))
    for i in range(nu):
        for j in range(nz):
            m = 0.0
            for a in range(n_sub + 1):
                u = u_edges[i] + (u_edges[i + 1] - u_edges[i]) * a / n_sub
                for b in range(n_sub + 1 if not is_top else 1):
                    z = z_top if is_top else z_edges[j] + (z_edges[j + 1] - z_edges[j]) * b / n_sub
                    g = can_entry_density(u, z, is_top, radius, z_top, seabed_depth_m, density_g_cm3, emin_gev, emax_gev)
                    if g > m:
                        m = g
            out[i, j] = m
    return out
