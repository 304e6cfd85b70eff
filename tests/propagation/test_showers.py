"""Tests of the shower light parametrisations (Rädel & Wiebusch, PHYSICS.md §5.4)."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from km3sim.propagation import showers as sh
from km3sim.propagation.light import frank_tamm_yield

N = 1.3492  # ORCA, 470 nm (PHYSICS.md §5.2)


def test_track_length_matches_radel_wiebusch_numbers():
    # PHYSICS.md §5.4 table: l = α E^β [m], α in m/GeV (4-5 significant digits there)
    assert sh.cherenkov_track_length(1.0, sh.KIND_ELECTRON) == pytest.approx(5.3207, rel=1e-4)
    assert sh.cherenkov_track_length(1.0, sh.KIND_POSITRON) == pytest.approx(5.3211, rel=1e-4)
    assert sh.cherenkov_track_length(1.0, sh.KIND_PHOTON) == pytest.approx(5.3209, rel=1e-4)
    assert sh.cherenkov_track_length(1e3, sh.KIND_ELECTRON) == pytest.approx(5.3207e3, rel=1e-3)
    assert sh.cherenkov_track_length(100.0, sh.KIND_HADRON) == pytest.approx(3.3355 * 100.0**1.0366, rel=1e-4)
    # hadronic / EM light at 100 GeV: 0.74 (Rädel) and F(100 GeV) = 0.75 (IceCube), PHYSICS.md §5.4 [D]
    ratio = sh.cherenkov_track_length(100.0, sh.KIND_HADRON) / sh.cherenkov_track_length(100.0, sh.KIND_ELECTRON)
    assert ratio == pytest.approx(0.74, abs=0.005)
    assert sh.hadronic_em_ratio(100.0) == pytest.approx(0.75, abs=0.005)
    # the two parametrisations agree within 7 % from 10 GeV to 10 PeV (Rädel's fit is 7 % above F
    # at 10 GeV, within 2 % at 10 TeV; above 10 TeV the length follows F); hadrons never give
    # more light than EM showers, and the length is continuous at the junction
    e = np.geomspace(10.0, 1e7, 25)
    r = sh.cherenkov_track_length(e, np.full(25, sh.KIND_HADRON)) / sh.cherenkov_track_length(e, np.zeros(25, int))
    np.testing.assert_allclose(r, sh.hadronic_em_ratio(e), rtol=0.07)
    assert np.all(r < 1.0) and np.all(np.diff(r) > 0)
    lo, hi = sh.cherenkov_track_length([sh.HADRON_FIT_MAX_GEV * (1 - 1e-9), sh.HADRON_FIT_MAX_GEV * (1 + 1e-9)], [3, 3])
    assert hi == pytest.approx(lo, rel=1e-6)


def test_photons_per_gev():
    # l × Frank–Tamm photons per metre; PHYSICS.md §5.1 [D]: 2.76e4 /m in 300–500 nm at n = 1.35
    lam = np.linspace(300.0, 500.0, 20001)
    per_m = np.trapezoid(frank_tamm_yield(lam, 1.35), lam)
    assert per_m == pytest.approx(2.76e4, rel=3e-3)
    assert sh.shower_photon_count(1.0, sh.KIND_ELECTRON, per_m) == pytest.approx(5.3207 * 2.76e4, rel=4e-3)


def test_fluctuations():
    # σ_l = α_dev E^β_dev [m]: EM ~1 %/sqrt(E), hadronic 12 % at 100 GeV (PHYSICS.md §5.4 numbers)
    assert sh.cherenkov_track_length_sigma(100.0, sh.KIND_ELECTRON) == pytest.approx(0.0578 * 10.0, rel=1e-3)
    rel_h = sh.cherenkov_track_length_sigma(100.0, sh.KIND_HADRON) / sh.cherenkov_track_length(100.0, sh.KIND_HADRON)
    assert rel_h == pytest.approx(1.1920 * 100**0.8077 / (3.3355 * 100**1.0366), rel=1e-3)
    assert 0.10 < rel_h < 0.14
    # the photon's σ uses β_dev = 0.5 like e± (see module docstring), not 5.67
    assert sh.cherenkov_track_length_sigma(100.0, sh.KIND_PHOTON) < 0.01 * sh.cherenkov_track_length(100.0, sh.KIND_PHOTON)


def test_shower_kind_and_visible_energy():
    pdg = [11, -11, 22, 111, 211, -211, 2212, 2112, 130, 321, 13, -13, 12, 15, 1000080160]
    kinds = sh.shower_kind(pdg)
    assert list(kinds) == [0, 1, 2, 2, 3, 3, 3, 3, 3, 3, -1, -1, -1, -1, -1]
    ev = sh.visible_energy([2212, 2112, 211, 11], [10.0, 0.5, 10.0, 10.0])
    np.testing.assert_allclose(ev, [10.0 - 0.93827208816, 0.0, 10.0, 10.0])


@pytest.mark.parametrize("kind, energy", [(sh.KIND_ELECTRON, 10.0), (sh.KIND_PHOTON, 1e3), (sh.KIND_HADRON, 1e4)])
def test_longitudinal_profile(kind, energy):
    a, b = sh.longitudinal_parameters(energy, kind)
    x0 = sh.RADIATION_LENGTH_WATER_M
    total = quad(lambda z: sh.longitudinal_profile(z, energy, kind), 0, np.inf, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-6)
    mean = quad(lambda z: z * sh.longitudinal_profile(z, energy, kind), 0, np.inf, limit=200)[0]
    assert mean == pytest.approx(a / b * x0, rel=1e-6)
    q = sh.longitudinal_quantiles([energy], [kind], [0.1, 0.5, 0.9])[0]
    np.testing.assert_allclose(q, stats.gamma.ppf([0.1, 0.5, 0.9], a, scale=x0 / b), rtol=1e-8)


def test_longitudinal_maximum_consistent_with_jpp():
    # PHYSICS.md §5.4: Jpp (Kopper) profile peaks at 2.8 m for 1 TeV; Rädel's at (a−1)/b·X0
    a, b = sh.longitudinal_parameters(1e3, sh.KIND_ELECTRON)
    z_max = (a - 1.0) / b * sh.RADIATION_LENGTH_WATER_M
    a_jpp = 1.85 + 0.62 * math.log(1e3)
    assert (a_jpp - 1.0) * 0.54 == pytest.approx(2.8, abs=0.05)
    assert z_max == pytest.approx(2.8, rel=0.15)


def test_angular_profile_normalised_and_peaked():
    norm = quad(lambda c: sh.angular_profile(c, N), -1, 1, points=[1 / N], limit=200)[0]
    assert norm == pytest.approx(1.0, abs=1e-8)
    c = np.linspace(-1, 1, 200001)
    f = sh.angular_profile(c, N)
    assert c[np.argmax(f)] == pytest.approx(1.0 / N, abs=2e-5)
    assert np.all(f >= 0)
    # the shape is the Rädel–Wiebusch form: ratio of two values independent of normalisation
    a, b, cc, d = 4.27033, -6.02527, 0.29887, -0.00103
    raw = lambda x: a * math.exp(b * abs(x - 1 / N) ** cc) + d  # noqa: E731
    assert sh.angular_profile(0.2, N) / sh.angular_profile(0.9, N) == pytest.approx(raw(0.2) / raw(0.9), rel=1e-12)
    # most light within ±10° of the Cherenkov angle (> 50 %), backward hemisphere small (< 5 %)
    tc = math.acos(1 / N)
    near = quad(lambda x: sh.angular_profile(x, N), math.cos(tc + math.radians(10)), math.cos(tc - math.radians(10)),
                points=[1 / N])[0]
    assert near > 0.5
    assert quad(lambda x: sh.angular_profile(x, N), -1, 0)[0] < 0.05


def test_angular_tables_and_sampling():
    pdf, inv = sh.angular_profile_tables(N)
    grid = np.linspace(-1, 1, len(pdf))
    np.testing.assert_allclose(pdf, sh.angular_profile(grid, N), rtol=1e-9)
    assert np.trapezoid(pdf, grid) == pytest.approx(1.0, abs=2e-3)  # cusp at 1/n between nodes
    u = np.random.default_rng(5).random(400_000)
    x = np.interp(u, np.linspace(0, 1, len(inv)), inv)
    edges = np.concatenate([np.linspace(-1, 0.6, 9), np.linspace(0.62, 0.86, 13), [0.9, 0.95, 1.0]])
    h, _ = np.histogram(x, edges)
    p = np.array([quad(lambda t: sh.angular_profile(t, N), lo, hi, points=[1 / N] if lo < 1 / N < hi else None)[0]
                  for lo, hi in zip(edges[:-1], edges[1:])])
    expected = p * len(u)
    chi2 = np.sum((h - expected) ** 2 / expected)
    # 23 degrees of freedom: P(χ² > 60) ≈ 4e-5 for a correct sampler
    assert chi2 < 60.0, chi2
