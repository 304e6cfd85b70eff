"""The Earth seen by a neutrino: PREM density, column depth and transmission probability.

Physics (PHYSICS.md §3.3): the Preliminary Reference Earth Model (A. M. Dziewonski and
D. L. Anderson, Phys. Earth Planet. Inter. 25 (1981) 297) as a piecewise polynomial in
x = r / 6371 km, with the layer table of ``KM3NeT/Neurthino.jl:src/PREM.jl``.

The site replaces the outer layers (:class:`EarthModel`): PREM's 3 km ocean (1.02 g/cm^3)
becomes a sea of the site's depth and water density; below the sea floor PREM crust 2
(2.6 g/cm^3) continues up to the floor. With ``seabed_depth_m = 3000`` and
``water_density_g_cm3 = 1.02`` the model is PREM itself.

A neutrino reaching a detector at radius r0 = R - depth from zenith angle theta (theta = 0:
from straight above) has travelled ``L = sqrt(R^2 - r0^2 sin^2 theta) - r0 cos theta`` inside
the Earth, along which ``r(s)^2 = r0^2 + s^2 + 2 r0 s cos theta``. The column depth
``X = int rho(r(s)) ds`` [g/cm^2] is integrated with Gauss-Legendre between the points where
the path crosses layer boundaries (the density is smooth within a layer).

Transmission, without NC regeneration or tau regeneration (PHYSICS.md §3.3, §3.4)::

    P = exp(-N_A [X sigma_DIS,tot(E) + X_e sigma_GR(E)])

with sigma_DIS,tot = sigma_CC + sigma_NC per nucleon (:mod:`km3sim.physics.xsec`) and, for
nubar_e only, the Glashow resonance per electron with the electron column
X_e = int (Z/A) rho ds. Z/A is 0.555 for water, 0.5 for crust and mantle (standard rock) and
0.466 for the iron core [UNVERIFIED estimates; they only matter for nubar_e within a factor
~2 of 6.3 PeV, where up-going paths are opaque anyway].
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import AVOGADRO, DENSITY_SEA_WATER
from km3sim.physics.xsec import (
    Z_OVER_A_ROCK,
    Z_OVER_A_WATER,
    dis_total_cross_section,
    glashow_cross_section,
)

__all__ = [
    "EARTH_RADIUS_KM",
    "PREM_LAYERS",
    "Z_OVER_A_CORE",
    "prem_density",
    "path_length_km",
    "EarthModel",
]

#: Earth radius [km] (PREM).
EARTH_RADIUS_KM = 6371.0

#: Electrons per nucleon in the (iron) core: 26/55.85 [UNVERIFIED estimate].
Z_OVER_A_CORE = 0.466

#: PREM layers: (name, r_inner [km], r_outer [km], coefficients of 1, x, x^2, x^3 with
#: x = r / 6371 km) giving rho in g/cm^3 (PHYSICS.md §3.3).
PREM_LAYERS = (
    ("inner core", 0.0, 1221.5, (13.0885, 0.0, -8.8381, 0.0)),
    ("outer core", 1221.5, 3480.0, (12.5815, -1.2638, -3.6426, -5.5281)),
    ("lower mantle", 3480.0, 5701.0, (7.9565, -6.4761, 5.5283, -3.0807)),
    ("transition zone 1", 5701.0, 5771.0, (5.3197, -1.4836, 0.0, 0.0)),
    ("transition zone 2", 5771.0, 5971.0, (11.2494, -8.0298, 0.0, 0.0)),
    ("transition zone 3", 5971.0, 6151.0, (7.1089, -3.8045, 0.0, 0.0)),
    ("LVZ + LID", 6151.0, 6346.6, (2.6910, 0.6924, 0.0, 0.0)),
    ("crust 1", 6346.6, 6356.0, (2.9, 0.0, 0.0, 0.0)),
    ("crust 2", 6356.0, 6368.0, (2.6, 0.0, 0.0, 0.0)),
    ("ocean", 6368.0, 6371.0, (1.02, 0.0, 0.0, 0.0)),
)

_KM_TO_CM = 1e5
_GL_ORDER = 12


def _zoa(name: str) -> float:
    if "core" in name:
        return Z_OVER_A_CORE
    if name in ("ocean", "sea"):
        return Z_OVER_A_WATER
    return Z_OVER_A_ROCK


def prem_density(r_km):
    """Unmodified PREM density [g/cm^3] at radius ``r_km`` [km] (0 outside the Earth)."""
    r = np.asarray(r_km, dtype=np.float64)
    out = np.zeros_like(r)
    x = r / EARTH_RADIUS_KM
    done = np.zeros(r.shape, dtype=bool)
    for _, lo, hi, c in PREM_LAYERS:
        m = (~done) & (r >= lo) & (r <= hi)
        out[m] = c[0] + x[m] * (c[1] + x[m] * (c[2] + x[m] * c[3]))
        done |= m
    return out if out.ndim else float(out)


def path_length_km(cos_zenith, depth_km: float, radius_km: float = EARTH_RADIUS_KM):
    """Path length [km] from the surface to a point at ``depth_km`` for zenith cos_zenith.

    ``L = sqrt(R^2 - r0^2 sin^2 theta) - r0 cos theta`` with r0 = R - depth (PHYSICS.md §3.3).
    """
    c = np.asarray(cos_zenith, dtype=np.float64)
    r0 = radius_km - depth_km
    out = np.sqrt(radius_km**2 - r0**2 * (1.0 - c * c)) - r0 * c
    return out if out.ndim else float(out)


@nb.njit(cache=True)
def _density_layer(r, r_hi, coeffs, radius):
    """Density [g/cm^3] at radius r [km] and its layer index."""
    n = r_hi.shape[0]
    k = n - 1
    for j in range(n):
        if r <= r_hi[j]:
            k = j
            break
    x = r / radius
    rho = coeffs[k, 0] + x * (coeffs[k, 1] + x * (coeffs[k, 2] + x * coeffs[k, 3]))
    return rho, k


@nb.njit(cache=True)
def column_depths_kernel(cos_z, r0, r_hi, coeffs, zoa, radius, gl_x, gl_w):
    """Column depth and electron column [g/cm^2] from radius r0 [km] back to the surface.

    Parameters
    ----------
    cos_z : ndarray
        Cosines of the zenith angle of the arrival direction.
    r0 : float
        Radius of the end point [km].
    r_hi : ndarray
        Outer radius of each layer [km], increasing; the last equals ``radius``.
    coeffs : ndarray, shape (n_layers, 4)
        Density polynomial coefficients in x = r / radius.
    zoa : ndarray
        Electrons per nucleon of each layer.
    radius : float
        Earth radius [km].
    gl_x, gl_w : ndarray
        Gauss-Legendre nodes and weights on [-1, 1].
    """
    n = cos_z.shape[0]
    n_lay = r_hi.shape[0]
    x_col = np.empty(n)
    xe_col = np.empty(n)
    pts = np.empty(2 * n_lay + 2)
    for i in range(n):
        c = min(1.0, max(-1.0, cos_z[i]))
        s2 = 1.0 - c * c
        big_l = math.sqrt(max(radius * radius - r0 * r0 * s2, 0.0)) - r0 * c
        m = 0
        pts[m] = 0.0
        m += 1
        for j in range(n_lay - 1):
            d = r_hi[j] * r_hi[j] - r0 * r0 * s2
            if d <= 0.0:
                continue
            sq = math.sqrt(d)
            for root in (-r0 * c - sq, -r0 * c + sq):
                if 0.0 < root < big_l:
                    pts[m] = root
                    m += 1
        pts[m] = big_l
        m += 1
        seg = np.sort(pts[:m])
        tot = 0.0
        tot_e = 0.0
        for j in range(m - 1):
            a = seg[j]
            b = seg[j + 1]
            if b <= a:
                continue
            half = 0.5 * (b - a)
            mid = 0.5 * (b + a)
            for q in range(gl_x.shape[0]):
                s = mid + half * gl_x[q]
                r = math.sqrt(max(r0 * r0 + s * s + 2.0 * r0 * s * c, 0.0))
                rho, k = _density_layer(r, r_hi, coeffs, radius)
                tot += half * gl_w[q] * rho
                tot_e += half * gl_w[q] * rho * zoa[k]
        x_col[i] = tot * 1e5
        xe_col[i] = tot_e * 1e5
    return x_col, xe_col


class EarthModel:
    """PREM with the site's sea on top (see the module notes).

    Parameters
    ----------
    seabed_depth_m : float
        Depth of the sea floor below the sea surface [m] (>= 0).
    water_density_g_cm3 : float
        Density of the sea water [g/cm^3].
    radius_km : float
        Earth radius [km].

    Attributes
    ----------
    layers : list of (name, r_inner_km, r_outer_km, coefficients)
        The layers actually used, from the centre out.
    """

    def __init__(
        self,
        seabed_depth_m: float = 2440.0,
        water_density_g_cm3: float = DENSITY_SEA_WATER,
        radius_km: float = EARTH_RADIUS_KM,
    ):
        if not (0.0 <= seabed_depth_m <= 12000.0):
            raise ValueError(f"seabed depth must be within [0, 12000] m, got {seabed_depth_m}")
        if not (water_density_g_cm3 > 0.0):
            raise ValueError(f"water density must be > 0, got {water_density_g_cm3}")
        self.seabed_depth_m = float(seabed_depth_m)
        self.water_density_g_cm3 = float(water_density_g_cm3)
        self.radius_km = float(radius_km)
        r_sea = self.radius_km - self.seabed_depth_m * 1e-3
        base = [list(layer) for layer in PREM_LAYERS[:-1]]
        base[-1][2] = self.radius_km  # crust 2 continues up to the surface before the sea cut
        layers = []
        for name, lo, hi, coef in base:
            if lo >= r_sea:
                break
            layers.append((name, lo, min(hi, r_sea), tuple(coef)))
        if self.seabed_depth_m > 0.0:
            layers.append(("sea", r_sea, self.radius_km, (self.water_density_g_cm3, 0.0, 0.0, 0.0)))
        self.layers = layers
        self._r_hi = np.array([layer[2] for layer in layers], dtype=np.float64)
        self._r_hi[-1] = self.radius_km
        self._coeffs = np.array([layer[3] for layer in layers], dtype=np.float64)
        self._zoa = np.array([_zoa(layer[0]) for layer in layers], dtype=np.float64)
        self._gl_x, self._gl_w = np.polynomial.legendre.leggauss(_GL_ORDER)

    @classmethod
    def from_site(cls, site) -> "EarthModel":
        """The model for a :class:`km3sim.stage.Site` (sea depth and water density)."""
        return cls(float(site.seabed_depth_m), float(site.water_density_g_cm3))

    def density(self, r_km):
        """Density [g/cm^3] at radius ``r_km`` [km] (0 outside the Earth)."""
        r = np.asarray(r_km, dtype=np.float64)
        flat = np.ascontiguousarray(r).ravel()
        out = np.empty_like(flat)
        for i, ri in enumerate(flat):
            out[i] = _density_layer(ri, self._r_hi, self._coeffs, self.radius_km)[0] if 0.0 <= ri <= self.radius_km else 0.0
        out = out.reshape(r.shape)
        return out if out.ndim else float(out)

    def _depth_km(self, depth_m) -> float:
        d = self.seabed_depth_m if depth_m is None else float(depth_m)
        if not (0.0 <= d < self.radius_km * 1e3):
            raise ValueError(f"detector depth must be within [0, R), got {d} m")
        return d * 1e-3

    def path_length_km(self, cos_zenith, depth_m: float | None = None):
        """Path length [km] through the Earth (PHYSICS.md §3.3); default depth: the sea floor."""
        return path_length_km(cos_zenith, self._depth_km(depth_m), self.radius_km)

    def column_depths(self, cos_zenith, depth_m: float | None = None):
        """Column depth and electron column [g/cm^2].

        Parameters
        ----------
        cos_zenith : float or array_like
            Cosine of the zenith angle of the arrival direction (1: from straight above).
        depth_m : float, optional
            Depth of the end point below the sea surface [m]; default the sea floor.

        Returns
        -------
        x, x_e : float or ndarray
            ``int rho ds`` and ``int (Z/A) rho ds`` [g/cm^2].
        """
        c = np.asarray(cos_zenith, dtype=np.float64)
        r0 = self.radius_km - self._depth_km(depth_m)
        x, xe = column_depths_kernel(
            np.ascontiguousarray(c).ravel(), r0, self._r_hi, self._coeffs, self._zoa, self.radius_km, self._gl_x, self._gl_w
        )
        if c.ndim == 0:
            return float(x[0]), float(xe[0])
        return x.reshape(c.shape), xe.reshape(c.shape)

    def column_depth(self, cos_zenith, depth_m: float | None = None):
        """Column depth X(theta) [g/cm^2] from the surface to the detector."""
        return self.column_depths(cos_zenith, depth_m)[0]

    def transmission(self, energy_gev, cos_zenith, pdgid, depth_m: float | None = None):
        """Probability that a neutrino reaches the detector without interacting.

        ``P = exp(-N_A [X sigma_DIS,tot + X_e sigma_GR])`` (Glashow term for pdgid -12 only;
        see the module notes). Broadcasts over the three arrays.

        Parameters
        ----------
        energy_gev : float or array_like
            Neutrino energy [GeV].
        cos_zenith : float or array_like
            Cosine of the zenith angle of the arrival direction.
        pdgid : int or array_like
            Neutrino PDG code.
        depth_m : float, optional
            Depth of the detector [m]; default the sea floor.
        """
        e, c, pdg = np.broadcast_arrays(
            np.asarray(energy_gev, dtype=np.float64), np.asarray(cos_zenith, dtype=np.float64), np.asarray(pdgid)
        )
        shape = e.shape
        e, c, pdg = (np.ascontiguousarray(a).ravel() for a in (e, c, pdg))
        x, xe = self.column_depths(c, depth_m)
        tau = AVOGADRO * x * dis_total_cross_section(e, pdg)
        gr = pdg == -12
        if gr.any():
            tau[gr] += AVOGADRO * xe[gr] * glashow_cross_section(e[gr], "total")
        out = np.exp(-tau).reshape(shape)
        return out if out.ndim else float(out)
