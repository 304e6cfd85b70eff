"""PREM column depths and transmission against PHYSICS.md §3.3 and scipy quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from km3sim.physics.earth import EarthModel, prem_density
from km3sim.stage import Site

R = 6371.0

# PREM written out again here from PHYSICS.md §3.3 (radius range [km], coefficients of x^k)
PREM_TABLE = [
    (1221.5, (13.0885, 0, -8.8381)),
    (3480, (12.5815, -1.2638, -3.6426, -5.5281)),
    (5701, (7.9565, -6.4761, 5.5283, -3.0807)),
    (5771, (5.3197, -1.4836)),
    (5971, (11.2494, -8.0298)),
    (6151, (7.1089, -3.8045)),
    (6346.6, (2.6910, 0.6924)),
    (6356, (2.9,)),
    (6368, (2.6,)),
    (6371, (1.02,)),
]


def reference_density(r):
    x = r / R
    for r_out, coef in PREM_TABLE:
        if r <= r_out:
            return sum(c * x**k for k, c in enumerate(coef))
    return 0.0


def reference_column_depth(cos_z, depth_km, density=reference_density, boundaries=None):
    """X [g/cm^2] by scipy quad along the path, split where it crosses layer boundaries."""
    r0 = R - depth_km
    s2 = 1 - cos_z**2
    length = math.sqrt(R**2 - r0**2 * s2) - r0 * cos_z
    points = []
    radii = [r_out for r_out, _ in PREM_TABLE[:-1]] if boundaries is None else boundaries
    for r_out in radii:
        d = r_out**2 - r0**2 * s2
        if d > 0:
            for root in (-r0 * cos_z - math.sqrt(d), -r0 * cos_z + math.sqrt(d)):
                if 0 < root < length:
                    points.append(root)
    edges = [0.0, *sorted(points), length]

    def rho(s):
        return density(math.sqrt(max(r0**2 + s**2 + 2 * r0 * s * cos_z, 0.0)))

    total = sum(quad(rho, a, b, epsabs=0, epsrel=1e-11, limit=200)[0] for a, b in zip(edges[:-1], edges[1:]) if b > a)
    return total * 1e5, length


@pytest.fixture(scope="module")
def prem():
    # PREM itself: 3 km ocean of 1.02 g/cm^3 (PHYSICS.md §3.3 table: detector at 2.45 km)
    return EarthModel(seabed_depth_m=3000.0, water_density_g_cm3=1.02)


def test_density_is_prem(prem):
    r = np.linspace(0, R, 20001)
    np.testing.assert_allclose(prem.density(r), [reference_density(v) for v in r], rtol=1e-12)
    np.testing.assert_allclose(prem_density(r), [reference_density(v) for v in r], rtol=1e-12)
    # mean density of the Earth (KM3io.jl constant 5.51 g/cm^3, PHYSICS.md §3.3)
    mass = quad(lambda v: 4 * math.pi * v * v * reference_density(v), 0, R, points=[1221.5, 3480, 5701], limit=200)[0]
    assert mass / (4 / 3 * math.pi * R**3) == pytest.approx(5.51, abs=0.01)
    assert prem.density(0.7 * R) == pytest.approx(reference_density(0.7 * R))


@pytest.mark.parametrize("cos_z", [1.0, 0.3, 0.0, -0.05, -0.2, -0.5, -0.8, -0.837, -0.9, -0.99, -1.0])
def test_column_depth_vs_quadrature(prem, cos_z):
    x_ref, length = reference_column_depth(cos_z, 2.45)
    assert prem.path_length_km(cos_z, 2450.0) == pytest.approx(length, rel=1e-12)
    # Gauss-Legendre per layer crossing against adaptive quadrature: 1e-8 relative
    assert prem.column_depth(cos_z, 2450.0) == pytest.approx(x_ref, rel=1e-8)


# PHYSICS.md §3.3, detector at 2.45 km: cos theta, L [km], X [g/cm^2] with its rounding half-width
TABLE_X = [
    (0.0, 177, 1.8e7, 0.05e7),
    (-0.2, 2560, 8.4e8, 0.05e8),
    (-0.5, 6373, 2.55e9, 0.005e9),
    (-1.0, 12740, 1.10e10, 0.005e10),
]


@pytest.mark.parametrize("cos_z,length,x,half", TABLE_X)
def test_column_depth_table(prem, cos_z, length, x, half):
    assert prem.path_length_km(cos_z, 2450.0) == pytest.approx(length, abs=0.5 + 1e-3 * length)
    # printed digits (half-width) plus 0.5 % for the handbook's own integration
    assert abs(prem.column_depth(cos_z, 2450.0) - x) <= half + 0.005 * x


# P(E) for CSMS nu, same table: value and half-width of its last printed digit
TABLE_P = {
    0.0: [(1.00, 0.005), (1.00, 0.005), (1.00, 0.005), (0.99, 0.005), (0.97, 0.005)],
    -0.2: [(1.00, 0.005), (0.97, 0.005), (0.87, 0.005), (0.62, 0.005), (0.26, 0.005)],
    -0.5: [(0.99, 0.005), (0.91, 0.005), (0.65, 0.005), (0.23, 0.005), (0.02, 0.005)],
    -1.0: [(0.95, 0.005), (0.67, 0.005), (0.15, 0.005), (0.002, 0.0005), (0.0, 1e-4)],
}
ENERGIES = [1e3, 1e4, 1e5, 1e6, 1e7]


@pytest.mark.parametrize("cos_z", sorted(TABLE_P))
def test_transmission_table(prem, cos_z):
    p = prem.transmission(np.array(ENERGIES), cos_z, 14, depth_m=2450.0)
    for got, (val, half) in zip(p, TABLE_P[cos_z]):
        # rounding of the table plus 1 % for differences in integration and interpolation
        assert abs(got - val) <= half + 0.01 * val, (cos_z, got, val)


def test_transmission_formula(prem):
    from km3sim.constants import AVOGADRO
    from km3sim.physics import xsec

    x = prem.column_depth(-0.6, 2450.0)
    for e in (3e3, 2e5):
        sig = xsec.dis_cross_section(e, -14, "cc") + xsec.dis_cross_section(e, -14, "nc")
        assert prem.transmission(e, -0.6, -14, 2450.0) == pytest.approx(math.exp(-AVOGADRO * x * sig), rel=1e-12)
    # nubar_e at the Glashow resonance: the electron column makes even a horizontal path
    # through 177 km of water matter: tau_GR = N_A X (Z/A) sigma_GR = 6e23 * 1.8e7 * 0.555 * 5e-31 = 3
    e_res = xsec.E_GLASHOW_RESONANCE_GEV
    p_e = prem.transmission(e_res, 0.0, -12, 2450.0)
    p_mu = prem.transmission(e_res, 0.0, -14, 2450.0)
    x_h, xe_h = prem.column_depths(0.0, 2450.0)
    assert xe_h == pytest.approx(0.555 * x_h, rel=1e-9)  # all water
    assert p_e / p_mu == pytest.approx(math.exp(-AVOGADRO * xe_h * xsec.glashow_cross_section(e_res)), rel=1e-9)
    assert 0.01 < p_e / p_mu < 0.2


def test_site_sea_replaces_the_ocean():
    site = Site(seabed_depth_m=3450.0, water_density_g_cm3=1.038)
    arca = EarthModel.from_site(site)
    assert arca.density(R - 1.0) == pytest.approx(1.038)
    assert arca.density(R - 3.6) == pytest.approx(2.6)  # crust 2 below the floor
    # down-going: only water, X = rho_w L for a detector on the floor
    for c in (1.0, 0.5, 0.1, 0.0):
        assert arca.column_depth(c) == pytest.approx(1.038 * arca.path_length_km(c) * 1e5, rel=1e-12)
    # a shallower sea: crust 2 (2.6) extends up to the floor
    orca = EarthModel(2440.0, 1.038)
    assert orca.density(R - 2.5) == pytest.approx(2.6)
    assert orca.density(R - 2.4) == pytest.approx(1.038)
    # up-going: against quadrature of the modified model
    def orca_density(r):
        return 1.038 if r > R - 2.44 else (2.6 if r > 6356 else reference_density(r))

    radii = [r_out for r_out, _ in PREM_TABLE[:-2]] + [R - 2.44]
    for c in (-1.0, -0.3, -0.01):
        assert orca.column_depth(c) == pytest.approx(reference_column_depth(c, 2.44, orca_density, radii)[0], rel=1e-8)
    with pytest.raises(ValueError):
        EarthModel(-5.0)
