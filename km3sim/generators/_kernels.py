"""numba kernels of the atmospheric-muon (MUPAGE bundle) generator: arrays, scalars and seeds only.

Physics: the MUPAGE parametrisation of muon bundles in deep water (Becherini, Margiotta, Sioli,
Spurio, Astropart. Phys. 25 (2006) 1, hep-ph/0507228; MUPAGE: Carminati et al., CPC 179 (2008)
915, arXiv:0802.0562), PHYSICS.md §1.1 (flux of bundles of multiplicity m), §1.2 (lateral
distribution), §1.3 (energy spectra) and §1.4 (generation on the can). The formula functions
work on scalars and on numpy arrays alike (inside numba and from Python); the samplers take a
xoshiro256** state from :mod:`km3sim.random`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.random import rng_new, rng_normal, rng_uniform

#: Slope of the energy-threshold term, beta = 0.42 per km w.e. (PHYSICS.md §1.3).
MUPAGE_BETA = 0.42


# =============================================================================== flux (§1.1)
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
def mupage_multiplicity_index(h, cos_zenith):
    """Index nu(h, theta) of the multiplicity power law ``Phi(m) = K m^-nu`` (PHYSICS.md §1.1).

    ``nu = nu0(h) exp(nu1(h) / cos(theta))``, ``nu0 = -0.0771 h^2 + 0.524 h + 2.068``,
    ``nu1 = 0.030 exp(0.47 h)`` (Becherini et al. 2006; MUPAGE Muons.cc ``Flux``).
    """
    nu0 = -0.0771 * h * h + 0.524 * h + 2.068
    nu1 = 0.030 * np.exp(0.47 * h)
    return nu0 * np.exp(nu1 / cos_zenith)


@nb.njit(cache=True)
def mupage_bundle_flux(m, h, cos_zenith):
    """Flux of bundles of multiplicity m, ``Phi(m; h, theta) = K(h, theta) m^-nu(h, theta)``
    [m^-2 s^-1 sr^-1] (PHYSICS.md §1.1)."""
    return mupage_single_muon_flux(h, cos_zenith) * m ** (-mupage_multiplicity_index(h, cos_zenith))


# ===================================================================== single-muon energy (§1.3)
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
    return np.exp((1.0 - gamma) * np.log1p(e_gev / e0_gev))


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
def single_muon_pass_fraction(h, cos_zenith, threshold_gev, emin_gev, emax_gev):
    """P(E >= threshold) of a single muon whose spectrum is truncated to [emin, emax].

    The single-muon spectrum of PHYSICS.md §1.3 has a closed-form CDF, so this is exact.
    """
    g = mupage_single_muon_gamma(h)
    e0 = mupage_single_muon_e0_gev(h, cos_zenith)
    lo = spectrum_tail_fraction(emin_gev, g, e0)
    hi = spectrum_tail_fraction(emax_gev, g, e0)
    t = spectrum_tail_fraction(np.minimum(np.maximum(threshold_gev, emin_gev), emax_gev), g, e0)
    return (t - hi) / (lo - hi)


@nb.njit(cache=True)
def sample_truncated_spectrum(v, gamma, e0_gev, emin_gev, emax_gev):
    """Energy with density ``(E+E0)^-gamma`` truncated to [emin, emax], by exact CDF inversion.

    Parameters
    ----------
    v : float
        Uniform deviate in [0, 1).
    gamma, e0_gev : float
        Spectral index (> 1) and scale [GeV] (PHYSICS.md §1.3).
    emin_gev, emax_gev : float
        Truncation [GeV].
    """
    lo = spectrum_tail_fraction(emin_gev, gamma, e0_gev)
    hi = spectrum_tail_fraction(emax_gev, gamma, e0_gev)
    s = lo - v * (lo - hi)
    e = e0_gev * math.expm1(-math.log(s) / (gamma - 1.0))
    # rounding can step a hair outside the band
    return min(max(e, emin_gev), emax_gev)


@nb.njit(cache=True)
def sample_single_muon_energy(v, gamma, e0_gev, emin_gev, emax_gev):
    """Alias of :func:`sample_truncated_spectrum` (single-muon spectrum, PHYSICS.md §1.3)."""
    return sample_truncated_spectrum(v, gamma, e0_gev, emin_gev, emax_gev)


# ================================================================ lateral distribution (§1.2)
@nb.njit(cache=True)
def mupage_mean_radius(m, h, cos_zenith):
    """Mean distance <R> of bundle muons from the axis [m] (PHYSICS.md §1.2).

    ``<R> = rho0(m) h^-1.06 F(theta)``, ``rho0 = -1.786 m + 28.26``,
    ``F = 1 / (1 + exp(10.4 (theta - 1.3)))`` (theta in rad); m -> min(m, 4).
    """
    mm = np.minimum(m, 4)
    f = 1.0 / (1.0 + np.exp(10.4 * (np.arccos(cos_zenith) - 1.3)))
    return (-1.786 * mm + 28.26) * h ** (-1.06) * f


@nb.njit(cache=True)
def mupage_radial_alpha(m, h):
    """Exponent alpha(m, h) of ``dN/dR = C R / (R + R0)^alpha`` (PHYSICS.md §1.2).

    ``alpha = (-0.448 m + 4.969) exp((0.0194 m + 0.276) h)``; m -> min(m, 4).
    """
    mm = np.minimum(m, 4)
    return (-0.448 * mm + 4.969) * np.exp((0.0194 * mm + 0.276) * h)


@nb.njit(cache=True)
def radial_survival(r, alpha, r0):
    """P(R > r) of ``dN/dR = (alpha-1)(alpha-2) R0^(alpha-2) R / (R + R0)^alpha`` on [0, inf).

    Closed form: ``(1 + x)^(1 - alpha) (1 + (alpha - 1) x)`` with ``x = r / R0``.
    """
    x = r / r0
    return np.exp((1.0 - alpha) * np.log1p(x)) * (1.0 + (alpha - 1.0) * x)


# ====================================================================== bundle energies (§1.3)
@nb.njit(cache=True)
def mupage_bundle_muon_gamma(r, m, h):
    """Spectral index of a bundle muon at distance r [m] from the axis (PHYSICS.md §1.3).

    ``gamma = a r + b (1 - exp(q r) / 2)``, ``a = 0.0033 h + 0.0079``,
    ``b = (0.0407 m + 0.0283) h + (-0.312 m + 6.124)``, ``q = 0.0543 h - 0.365``; m -> min(m, 4).
    """
    mm = np.minimum(m, 4)
    a = 0.0033 * h + 0.0079
    b = (0.0407 * mm + 0.0283) * h + (-0.312 * mm + 6.124)
    q = 0.0543 * h - 0.365
    return a * r + b * (1.0 - 0.5 * np.exp(q * r))


@nb.njit(cache=True)
def mupage_bundle_muon_e0_gev(r, h, cos_zenith):
    """Spectral scale E0 [GeV] of a bundle muon at distance r [m] (PHYSICS.md §1.3).

    ``E0 = eps (1 - exp(-beta h / cos(theta)))``, ``eps = c theta + d`` [TeV],
    ``c = (-0.069 h + 0.488) exp(-0.117 r)``, ``d = (-0.398 h + 3.955) r^(0.012 h - 0.35)``
    (theta in rad). Independent of the multiplicity.
    """
    c = (-0.069 * h + 0.488) * np.exp(-0.117 * r)
    d = (-0.398 * h + 3.955) * r ** (0.012 * h - 0.35)
    eps = c * np.arccos(cos_zenith) + d
    return 1000.0 * eps * (1.0 - np.exp(-MUPAGE_BETA * h / cos_zenith))


# ========================================================================= discrete power law
@nb.njit(cache=True)
def truncated_zeta(s, a, b):
    """``sum_{m=a}^{b} m^-s`` for integers 1 <= a <= b (exact to ~1e-13 relative).

    Direct sum of the first terms, Euler-Maclaurin (three Bernoulli corrections) for the rest.
    """
    if b < a:
        return 0.0
    if b - a < 24:
        tot = 0.0
        for m in range(a, b + 1):
            tot += m ** (-s)
        return tot
    n0 = a + 12
    tot = 0.0
    for m in range(a, n0):
        tot += m ** (-s)
    x0 = float(n0)
    x1 = float(b)
    if abs(s - 1.0) < 1e-12:
        integral = math.log(x1 / x0)
    else:
        integral = (x0 ** (1.0 - s) - x1 ** (1.0 - s)) / (s - 1.0)
    tot += integral + 0.5 * (x0 ** (-s) + x1 ** (-s))
    # B2/2! f'(x) + B4/4! f'''(x) + B6/6! f^(5)(x), evaluated as [.]_{x0}^{x1}
    d1 = -s
    d3 = -s * (s + 1.0) * (s + 2.0)
    d5 = d3 * (s + 3.0) * (s + 4.0)
    for x, sign in ((x1, 1.0), (x0, -1.0)):
        tot += sign * (
            d1 * x ** (-s - 1.0) / 12.0 - d3 * x ** (-s - 3.0) / 720.0 + d5 * x ** (-s - 5.0) / 30240.0
        )
    return tot


@nb.njit(cache=True)
def sample_discrete_power_law(st, nu, a, b):
    """Integer m in [a, b] with P(m) proportional to m^-nu, exactly.

    Rejection from the continuous power law x^-nu on [a - 1/2, b + 1/2]: x is drawn by
    inversion, m = round(x) is accepted with probability ``m^-nu / int_{m-1/2}^{m+1/2} x^-nu dx``,
    which is <= 1 because x^-nu is convex (Jensen). Acceptance ~0.9 for a = 2, nu ~ 3.

    Parameters
    ----------
    st : ndarray of uint64
        xoshiro256** state.
    nu : float
        Index (> 0).
    a, b : int
        Range, 1 <= a <= b.
    """
    if a >= b:
        return a
    lo = a - 0.5
    hi = b + 0.5
    p = 1.0 - nu
    if abs(p) < 1e-12:
        llo = math.log(lo)
        lhi = math.log(hi)
        while True:
            x = math.exp(llo + rng_uniform(st) * (lhi - llo))
            m = int(math.floor(x + 0.5))
            m = min(max(m, a), b)
            cell = math.log((m + 0.5) / (m - 0.5))
            if rng_uniform(st) * cell <= m ** (-nu):
                return m
    plo = lo**p
    phi = hi**p
    while True:
        x = (plo + rng_uniform(st) * (phi - plo)) ** (1.0 / p)
        m = int(math.floor(x + 0.5))
        m = min(max(m, a), b)
        cell = ((m + 0.5) ** p - (m - 0.5) ** p) / p
        if rng_uniform(st) * cell <= m ** (-nu):
            return m


# ========================================================================= radius sampling
@nb.njit(cache=True)
def sample_gamma(st, k):
    """Gamma(k, 1) deviate (Marsaglia & Tsang, ACM TOMS 26 (2000) 363; k < 1 by boosting)."""
    if k < 1.0:
        g = sample_gamma(st, k + 1.0)
        return g * (1.0 - rng_uniform(st)) ** (1.0 / k)
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = rng_normal(st)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = 1.0 - rng_uniform(st)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v


@nb.njit(cache=True)
def sample_bundle_radius(st, alpha, r0, r_max):
    """Distance R [m] of a muon from the bundle axis, from ``dN/dR ~ R / (R + R0)^alpha``
    truncated to [0, r_max], exactly (PHYSICS.md §1.2).

    With ``y = R / (R + R0)`` the density becomes ``y (1 - y)^(alpha - 3)``, i.e. y follows a
    Beta(2, alpha - 2) law, drawn as ``G2 / (G2 + G_{alpha-2})`` from two Gamma deviates;
    R > r_max is redrawn (the truncated law).
    """
    b = alpha - 2.0
    while True:
        g2 = -math.log((1.0 - rng_uniform(st)) * (1.0 - rng_uniform(st)))
        gb = sample_gamma(st, b)
        y = g2 / (g2 + gb)
        if y >= 1.0:
            continue
        r = r0 * y / (1.0 - y)
        if r <= r_max:
            return r


@nb.njit(cache=True)
def draw_multiplicities(seeds, nu, a, b):
    """One :func:`sample_discrete_power_law` draw per seed (for tests and benchmarks)."""
    out = np.empty(seeds.shape[0], dtype=np.int64)
    for i in range(seeds.shape[0]):
        out[i] = sample_discrete_power_law(rng_new(seeds[i]), nu, a, b)
    return out


@nb.njit(cache=True)
def draw_radii(seeds, alpha, r0, r_max):
    """One :func:`sample_bundle_radius` draw per seed (for tests and benchmarks)."""
    out = np.empty(seeds.shape[0])
    for i in range(seeds.shape[0]):
        out[i] = sample_bundle_radius(rng_new(seeds[i]), alpha, r0, r_max)
    return out


# ============================================================================== geometry
@nb.njit(cache=True)
def line_can_entry(px, py, pz, dx, dy, dz, cx, cy, radius, zmin, zmax):
    """Where the line ``p + t d`` enters an upright cylinder.

    Returns
    -------
    hit : bool
        False if the line misses the cylinder (or only touches it).
    t_in : float
        Line parameter of the entry point (may be negative); 0 if no hit.
    """
    lo = -np.inf
    hi = np.inf
    ox = px - cx
    oy = py - cy
    a = dx * dx + dy * dy
    c = ox * ox + oy * oy - radius * radius
    if a < 1e-300:
        if c > 0.0:
            return False, 0.0
    else:
        b = ox * dx + oy * dy
        disc = b * b - a * c
        if disc < 0.0:
            return False, 0.0
        sq = math.sqrt(disc)
        q = -(b + math.copysign(sq, b))
        r1 = c / q if q != 0.0 else 0.0
        r2 = q / a
        lo = min(r1, r2)
        hi = max(r1, r2)
    if abs(dz) < 1e-300:
        if pz < zmin or pz > zmax:
            return False, 0.0
    else:
        t1 = (zmin - pz) / dz
        t2 = (zmax - pz) / dz
        lo = max(lo, min(t1, t2))
        hi = min(hi, max(t1, t2))
    if not lo < hi:
        return False, 0.0
    return True, lo


# ========================================================================== rate densities
@nb.njit(cache=True)
def multiplicity_weight(h, cos_zenith, threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi):
    """``W = [m_min = 1] P1(h, theta) + sum_{m = m_lo}^{m_hi} m^-nu`` (scalars).

    The rate of proposed events per unit area and solid angle is K(h, theta) W: single muons
    above the threshold (P1 exact) plus all bundles of multiplicity m_lo..m_hi (m_lo >= 2), before
    the threshold on the bundle energy (PHYSICS.md §1.1, §1.3).
    """
    w = 0.0
    if has_single:
        w += single_muon_pass_fraction(h, cos_zenith, threshold_gev, emin_gev, emax_gev)
    if m_hi >= m_lo:
        w += truncated_zeta(mupage_multiplicity_index(h, cos_zenith), m_lo, m_hi)
    return w


@nb.njit(cache=True)
def can_entry_density(
    cos_zenith, z, is_top, radius, z_top, seabed_depth_m, density_g_cm3,
    threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi,
):
    """Proposal rate density of bundle axes on the can, per unit cos(theta), z and azimuth.

    Top disk (``is_top``): ``pi r^2 cos(theta) K(h_top, theta) W`` per unit cos(theta);
    lateral surface: ``2 r sin(theta) K(h(z), theta) W`` per unit cos(theta) and unit z, with
    ``h = rho (D - z) / 1000`` km w.e. and W from :func:`multiplicity_weight` (PHYSICS.md §1.1,
    §1.4). Multiply by 2 pi for the azimuth.
    """
    if is_top:
        h = density_g_cm3 * (seabed_depth_m - z_top) * 1e-3
        geo = math.pi * radius * radius * cos_zenith
    else:
        h = density_g_cm3 * (seabed_depth_m - z) * 1e-3
        geo = 2.0 * radius * math.sqrt(max(1.0 - cos_zenith * cos_zenith, 0.0))
    w = multiplicity_weight(h, cos_zenith, threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi)
    return geo * mupage_single_muon_flux(h, cos_zenith) * w


@nb.njit(cache=True)
def envelope_maxima(
    u_edges, z_edges, is_top, radius, z_top, seabed_depth_m, density_g_cm3,
    threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi, n_sub,
):
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
                    g = can_entry_density(
                        u, z, is_top, radius, z_top, seabed_depth_m, density_g_cm3,
                        threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi,
                    )
                    if g > m:
                        m = g
            out[i, j] = m
    return out


# ============================================================= threshold on the bundle energy
@nb.njit(cache=True)
def _bundle_energy_bins(h, u, m, emin, emax, r_max, delta, n_e, gl_x, gl_w, n_panels):
    """Probabilities of ``E - emin`` of one bundle muon in bins [k delta, (k+1) delta), k < n_e,
    averaged over the radial distribution truncated to [0, r_max] (Gauss-Legendre in
    y = R / (R + R0), where the radial law is Beta(2, alpha - 2))."""
    alpha = mupage_radial_alpha(m, h)
    r0 = 0.5 * (alpha - 3.0) * mupage_mean_radius(m, h, u)
    y_max = r_max / (r_max + r0)
    q = np.zeros(n_e)
    wsum = 0.0
    npts = gl_x.shape[0]
    edges = np.empty(n_e + 1)
    for p in range(n_panels):
        ya = y_max * p / n_panels
        yb = y_max * (p + 1) / n_panels
        for j in range(npts):
            y = ya + 0.5 * (yb - ya) * (gl_x[j] + 1.0)
            wt = 0.5 * (yb - ya) * gl_w[j] * y * (1.0 - y) ** (alpha - 3.0)
            r = r0 * y / (1.0 - y)
            g = mupage_bundle_muon_gamma(r, m, h)
            e0 = mupage_bundle_muon_e0_gev(r, h, u)
            lo = spectrum_tail_fraction(emin, g, e0)
            hi = spectrum_tail_fraction(emax, g, e0)
            for k in range(n_e + 1):
                edges[k] = (lo - spectrum_tail_fraction(min(emin + k * delta, emax), g, e0)) / (lo - hi)
            for k in range(n_e):
                q[k] += wt * (edges[k + 1] - edges[k])
            wsum += wt
    for k in range(n_e):
        q[k] /= wsum
    return q


@nb.njit(cache=True)
def _convolve_truncated(a, b):
    n = a.shape[0]
    out = np.zeros(n)
    for k in range(n):
        s = 0.0
        for i in range(k + 1):
            s += a[i] * b[k - i]
        out[k] = s
    return out


@nb.njit(cache=True)
def _below(pmf, m, t_over_delta):
    """P(sum of m muon energies above m emin < t) from the pmf of the summed bin indices: the
    mass of index K sits uniformly on [K + m/2 - 1/2, K + m/2 + 1/2] (in bin units)."""
    tot = 0.0
    for k in range(pmf.shape[0]):
        f = t_over_delta - (k + 0.5 * m - 0.5)
        if f <= 0.0:
            break
        tot += pmf[k] * min(f, 1.0)
    return tot


@nb.njit(cache=True)
def bundle_threshold_deficits(h, u, m_lo, m_hi, threshold_gev, emin_gev, emax_gev, r_max, n_e, gl_x, gl_w, n_panels):
    """P(bundle energy < threshold | m, h, theta) for m = m_lo .. m_top (PHYSICS.md §1.2, §1.3).

    The m muon energies are independent, each drawn at its own R from the bundle spectrum
    truncated to [emin, emax]; their sum is compared with the threshold. m_top is the largest
    m <= m_hi with ``m emin < threshold`` (above it the deficit is exactly 0). The one-muon law
    of ``E - emin`` is binned on [0, threshold - m_lo emin) with n_e bins (exact bin
    probabilities from the closed-form CDF, averaged over R by Gauss-Legendre), and the law of
    the sum is its m-fold discrete convolution (midpoint rule: error O(bin width^2)).

    Returns
    -------
    ndarray, shape (m_top - m_lo + 1,)
        The deficits 1 - P(pass); empty if no multiplicity can fall below the threshold.
    """
    m_top = m_hi
    m_cut = int(math.ceil(threshold_gev / emin_gev)) - 1  # largest m with m emin < threshold
    if m_cut < m_top:
        m_top = m_cut
    if m_top < m_lo:
        return np.zeros(0)
    out = np.zeros(m_top - m_lo + 1)
    span = threshold_gev - m_lo * emin_gev
    delta = span / n_e
    chain = np.zeros(n_e)
    q4 = np.zeros(n_e)
    for m in range(m_lo, m_top + 1):
        if m <= 4 or m == m_lo:
            q = _bundle_energy_bins(h, u, min(m, 4), emin_gev, emax_gev, r_max, delta, n_e, gl_x, gl_w, n_panels)
            chain = q.copy()
            for _ in range(m - 1):
                chain = _convolve_truncated(chain, q)
            q4 = q
        else:
            chain = _convolve_truncated(chain, q4)
        d = _below(chain, m, (threshold_gev - m * emin_gev) / delta)
        out[m - m_lo] = d
        if m >= 4 and d < 1e-17:
            break
    return out


# ================================================================================ sampler
@nb.njit(cache=True)
def _grow(a, n):
    out = np.empty(n, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True)
def sample_muon_bundles(
    seeds,
    cell_cdf, cell_u0, cell_du, cell_z0, cell_dz, cell_top, cell_max,
    gen_x, gen_y, gen_radius, gen_ztop,
    can_radius, can_zmin, can_zmax,
    seabed_depth_m, density_g_cm3,
    threshold_gev, emin_gev, emax_gev, has_single, m_lo, m_hi, r_max,
    livetime_ns, frac_mu_plus, c_light,
):
    """Draw MUPAGE muon bundles on the can, one independent random stream per event.

    Per event (PHYSICS.md §1.1-§1.4):

    1. (cos theta, surface, z) from :func:`can_entry_density` by accept/reject within a cell of
       a tabulated envelope (cell chosen with probability proportional to cell maximum x size);
    2. single muon with probability ``P1 / W``, else a bundle with m from m^-nu on [m_lo, m_hi]
       (:func:`sample_discrete_power_law`);
    3. azimuth uniform, axis impact point uniform in projected area on the chosen surface of the
       generation can (``gen_*``, possibly enlarged);
    4. single muon: energy from its spectrum truncated to [max(threshold, emin), emax] (exact;
       equivalent to redrawing below the threshold). Bundle: per muon R from the lateral law
       (truncated at r_max), an angle around the axis uniform, energy from the bundle spectrum at
       R truncated to [emin, emax]; if the bundle energy is below the threshold the whole event
       is redrawn from step 1;
    5. muons parallel to the axis on the plane front through the axis impact point, each moved
       along the axis to where it enters the can ``can_*`` (kept on the plane front if it misses
       it); time = path difference / c (ns, relative to the axis impact);
    6. event time uniform in [0, livetime_ns), charge mu+ with probability ``frac_mu_plus``.

    Returns
    -------
    ev_pos, ev_dir : ndarray, shape (n, 3)
        Axis impact point on the generation can and direction.
    ev_energy, ev_time : ndarray, shape (n,)
        Bundle energy (sum) [GeV] and event time [ns].
    ev_mult : ndarray of int32, shape (n,)
    mu_event : ndarray of int64, shape (n_mu,)
        Index of each muon's event (muons grouped by event, in order).
    mu_pos : ndarray, shape (n_mu, 3)
    mu_energy, mu_time, mu_radius : ndarray, shape (n_mu,)
    mu_pdgid : ndarray of int32, shape (n_mu,)
    mu_hit : ndarray of bool, shape (n_mu,)
        Whether the muon's line enters the can.
    counters : ndarray of int64, shape (3,)
        Proposals (accept/reject steps), proposals above the envelope (0 if it is valid), and
        bundles redrawn because of the energy threshold.
    """
    n = seeds.shape[0]
    ncell = cell_cdf.shape[0]
    ev_pos = np.empty((n, 3))
    ev_dir = np.empty((n, 3))
    ev_energy = np.empty(n)
    ev_time = np.empty(n)
    ev_mult = np.empty(n, dtype=np.int32)
    cap = 2 * n + 16
    mu_event = np.empty(cap, dtype=np.int64)
    mu_x = np.empty(cap)
    mu_y = np.empty(cap)
    mu_z = np.empty(cap)
    mu_energy = np.empty(cap)
    mu_time = np.empty(cap)
    mu_radius = np.empty(cap)
    mu_pdgid = np.empty(cap, dtype=np.int32)
    mu_hit = np.empty(cap, dtype=np.bool_)
    nmax = max(m_hi, 1)
    sc_r = np.empty(nmax)
    sc_psi = np.empty(nmax)
    sc_e = np.empty(nmax)
    counters = np.zeros(3, dtype=np.int64)
    nmu = 0
    two_pi = 2.0 * math.pi
    for i in range(n):
        st = rng_new(seeds[i])
        m = 1
        total = 0.0
        u = 1.0
        sin_t = 0.0
        cphi = 1.0
        sphi = 0.0
        dx = 0.0
        dy = 0.0
        dz = -1.0
        x0 = 0.0
        y0 = 0.0
        z0 = 0.0
        while True:
            # 1. direction and surface
            counters[0] += 1
            c = np.searchsorted(cell_cdf, rng_uniform(st), side="right")
            if c >= ncell:
                c = ncell - 1
            u = cell_u0[c] + cell_du[c] * rng_uniform(st)
            z = cell_z0[c] + cell_dz[c] * rng_uniform(st)
            top = cell_top[c]
            if top:
                h = density_g_cm3 * (seabed_depth_m - gen_ztop) * 1e-3
                geo = math.pi * gen_radius * gen_radius * u
            else:
                h = density_g_cm3 * (seabed_depth_m - z) * 1e-3
                geo = 2.0 * gen_radius * math.sqrt(max(1.0 - u * u, 0.0))
            p1 = 0.0
            if has_single:
                p1 = single_muon_pass_fraction(h, u, threshold_gev, emin_gev, emax_gev)
            nu = mupage_multiplicity_index(h, u)
            zb = truncated_zeta(nu, m_lo, m_hi) if m_hi >= m_lo else 0.0
            g = geo * mupage_single_muon_flux(h, u) * (p1 + zb)
            if g > cell_max[c]:
                counters[1] += 1
            if rng_uniform(st) * cell_max[c] >= g:
                continue
            # 2. multiplicity
            if rng_uniform(st) * (p1 + zb) < p1:
                m = 1
            else:
                m = sample_discrete_power_law(st, nu, m_lo, m_hi)
            # 3. axis
            sin_t = math.sqrt(max(1.0 - u * u, 0.0))
            phi = two_pi * rng_uniform(st)
            cphi = math.cos(phi)
            sphi = math.sin(phi)
            dx = sin_t * cphi
            dy = sin_t * sphi
            dz = -u
            w1 = rng_uniform(st)
            w2 = rng_uniform(st)
            if top:
                rr = gen_radius * math.sqrt(w1)
                ang = two_pi * w2
                x0 = gen_x + rr * math.cos(ang)
                y0 = gen_y + rr * math.sin(ang)
                z0 = gen_ztop
            else:
                # impact parameter uniform in [-r, r] across the projected lateral surface
                ang = phi + math.pi + math.asin(2.0 * w1 - 1.0)
                x0 = gen_x + gen_radius * math.cos(ang)
                y0 = gen_y + gen_radius * math.sin(ang)
                z0 = z
            # 4. energies
            total = 0.0
            if m == 1:
                sc_r[0] = 0.0
                sc_psi[0] = 0.0
                sc_e[0] = sample_truncated_spectrum(
                    rng_uniform(st), mupage_single_muon_gamma(h), mupage_single_muon_e0_gev(h, u),
                    max(threshold_gev, emin_gev), emax_gev,
                )
                total = sc_e[0]
            else:
                alpha = mupage_radial_alpha(m, h)
                r0 = 0.5 * (alpha - 3.0) * mupage_mean_radius(m, h, u)
                for k in range(m):
                    r = sample_bundle_radius(st, alpha, r0, r_max)
                    sc_r[k] = r
                    sc_psi[k] = two_pi * rng_uniform(st)
                    e = sample_truncated_spectrum(
                        rng_uniform(st), mupage_bundle_muon_gamma(r, m, h), mupage_bundle_muon_e0_gev(r, h, u),
                        emin_gev, emax_gev,
                    )
                    sc_e[k] = e
                    total += e
                if total < threshold_gev:
                    counters[2] += 1
                    continue
            break
        # 5. muons on the plane front, moved to their can entry
        ev_pos[i, 0] = x0
        ev_pos[i, 1] = y0
        ev_pos[i, 2] = z0
        ev_dir[i, 0] = dx
        ev_dir[i, 1] = dy
        ev_dir[i, 2] = dz
        ev_energy[i] = total
        ev_mult[i] = m
        if nmu + m > cap:
            cap = max(2 * cap, nmu + m)
            mu_event = _grow(mu_event, cap)
            mu_x = _grow(mu_x, cap)
            mu_y = _grow(mu_y, cap)
            mu_z = _grow(mu_z, cap)
            mu_energy = _grow(mu_energy, cap)
            mu_time = _grow(mu_time, cap)
            mu_radius = _grow(mu_radius, cap)
            mu_pdgid = _grow(mu_pdgid, cap)
            mu_hit = _grow(mu_hit, cap)
        # unit vectors perpendicular to the axis
        e1x = u * cphi
        e1y = u * sphi
        e1z = sin_t
        e2x = -sphi
        e2y = cphi
        for k in range(m):
            r = sc_r[k]
            cps = math.cos(sc_psi[k])
            sps = math.sin(sc_psi[k])
            qx = x0 + r * (cps * e1x + sps * e2x)
            qy = y0 + r * (cps * e1y + sps * e2y)
            qz = z0 + r * cps * e1z
            if r == 0.0 and gen_radius == can_radius:
                hit = True
                t = 0.0
            else:
                hit, t = line_can_entry(qx, qy, qz, dx, dy, dz, gen_x, gen_y, can_radius, can_zmin, can_zmax)
            j = nmu + k
            mu_event[j] = i
            mu_x[j] = qx + t * dx
            mu_y[j] = qy + t * dy
            mu_z[j] = qz + t * dz
            mu_energy[j] = sc_e[k]
            mu_time[j] = t / c_light
            mu_radius[j] = r
            mu_hit[j] = hit
        # 6. time and charges
        ev_time[i] = livetime_ns * rng_uniform(st)
        for k in range(m):
            mu_pdgid[nmu + k] = -13 if rng_uniform(st) < frac_mu_plus else 13
        nmu += m
    mu_pos = np.empty((nmu, 3))
    mu_pos[:, 0] = mu_x[:nmu]
    mu_pos[:, 1] = mu_y[:nmu]
    mu_pos[:, 2] = mu_z[:nmu]
    return (
        ev_pos, ev_dir, ev_energy, ev_time, ev_mult,
        mu_event[:nmu].copy(), mu_pos, mu_energy[:nmu].copy(), mu_time[:nmu].copy(), mu_radius[:nmu].copy(),
        mu_pdgid[:nmu].copy(), mu_hit[:nmu].copy(), counters,
    )
