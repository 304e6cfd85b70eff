"""Tests of the MUPAGE muon bundles (multiplicity, lateral distribution, bundle energies, threshold).

Physics: PHYSICS.md §1.1-§1.4. Expected values come from the published numbers of PHYSICS.md,
scipy quadrature, scipy's Hurwitz zeta, closed-form CDFs and brute-force numpy Monte Carlo, never
from running the generator itself.
"""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from km3sim.generators import _kernels as K
from km3sim.generators.muons import (
    AtmosphericMuonGenerator,
    bundle_energy_cdf,
    bundle_energy_params,
    bundle_flux,
    multiplicity_index,
    mupage_livetime_estimate,
    radial_cdf,
    radial_params,
    radial_pdf,
    single_muon_energy_cdf,
    single_muon_energy_params,
    single_muon_flux,
)

# p-value below which a goodness-of-fit test with a fixed seed fails: a correct sampler fails
# such a test for 1 seed in 1000.
P_MIN = 1e-3
SEEDS = np.arange(1, 400_001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def _chi2_p(obs, exp):
    obs = np.asarray(obs, float)
    exp = np.asarray(exp, float)
    assert np.all(exp > 5)  # chi2 approximation
    chi2 = np.sum((obs - exp) ** 2 / exp)
    return stats.chi2.sf(chi2, len(obs) - 1)


def _gl(a, b, n):
    x, w = np.polynomial.legendre.leggauss(n)
    return a + (b - a) * (x + 1) / 2, w * (b - a) / 2


def _expected_multiplicity_rates(gen, ms):
    """Rates [1/s] of bundles of multiplicity m on the can, ignoring the threshold for m >= 2
    (its effect is < 1e-3 relative at the default 10 GeV, see test_threshold_deficit_is_small),
    with an own Gauss-Legendre quadrature and direct sums over m."""
    can = gen.gen_can
    th, wt = _gl(0.0, math.radians(gen.config.zenith_max_deg), 160)
    u, s = np.cos(th), np.sin(th)
    z, wz = _gl(can.zmin, can.zmax, 24)
    h_top = gen.depth_kmwe(can.zmax)
    h = np.concatenate([[h_top], gen.depth_kmwe(z)])  # (nh,)
    geo = np.concatenate([[math.pi * can.radius**2], 2 * can.radius * wz])[:, None] * np.where(
        np.arange(len(h))[:, None] == 0, u[None, :], s[None, :]
    )  # (nh, nu)
    hh, uu = np.meshgrid(h, u, indexing="ij")
    kk = single_muon_flux(hh, uu)
    nu = multiplicity_index(hh, uu)
    wq = 2 * math.pi * geo * (wt * s)[None, :]
    out = []
    for m in ms:
        if m == 1:
            g, e0 = single_muon_energy_params(hh, uu)
            cfg = gen.config
            tail = lambda e: (e0 / (e + e0)) ** (g - 1)  # noqa: E731
            f = kk * (tail(max(cfg.energy_min_gev, cfg.muon_energy_min_gev)) - tail(cfg.muon_energy_max_gev)) / (
                tail(cfg.muon_energy_min_gev) - tail(cfg.muon_energy_max_gev)
            )
        else:
            f = kk * float(m) ** (-nu)
        out.append(np.sum(wq * f))
    return np.array(out)


# ================================================================= parametrisation (§1.1-§1.3)
@pytest.mark.parametrize(
    "h, theta_deg, nu_expected, ratio_expected",
    [(2.5, 0.0, 3.19, 0.109), (2.5, 60.0, 3.52, 0.087), (3.5, 0.0, 3.46, 0.091), (3.5, 60.0, 4.04, 0.061)],
)
def test_multiplicity_check_table(h, theta_deg, nu_expected, ratio_expected):
    # PHYSICS.md §1.1 check table, 3 significant digits (2 for the ratios' last digit)
    u = math.cos(math.radians(theta_deg))
    assert multiplicity_index(h, u) == pytest.approx(nu_expected, abs=0.006)
    assert bundle_flux(2, h, u) / bundle_flux(1, h, u) == pytest.approx(ratio_expected, abs=0.0006)
    assert bundle_flux(1, h, u) == pytest.approx(single_muon_flux(h, u), rel=1e-14)
    assert bundle_flux(7, h, u) == pytest.approx(single_muon_flux(h, u) * 7.0 ** (-nu_expected), rel=0.02)


def test_lateral_example_values():
    # PHYSICS.md §1.2: m = 2, h = 3, vertical: <R> = 7.7 m, alpha = 10.5, R0 = 28.8 m, mode 3.0 m
    mean_r, alpha, r0 = radial_params(2, 3.0, 1.0)
    assert mean_r == pytest.approx(7.7, abs=0.05)
    assert alpha == pytest.approx(10.5, abs=0.05)
    assert r0 == pytest.approx(28.8, abs=0.1)
    assert r0 / (alpha - 1) == pytest.approx(3.0, abs=0.05)
    # m -> min(m, 4)
    assert radial_params(9, 3.0, 0.5) == radial_params(4, 3.0, 0.5)
    assert radial_params(3, 3.0, 0.5) != radial_params(4, 3.0, 0.5)


def test_bundle_energy_example_values():
    # PHYSICS.md §1.3: m = 2, R = 5 m, h = 3, vertical: gamma = 4.86, <E> ~ 0.42 TeV
    gamma, e0 = bundle_energy_params(5.0, 2, 3.0, 1.0)
    assert gamma == pytest.approx(4.86, abs=0.005)
    assert e0 / (gamma - 2) == pytest.approx(420.0, rel=0.02)
    # the single-muon example: gamma = 3.71, E0 = 0.52 TeV
    g1, e01 = single_muon_energy_params(3.0, 1.0)
    assert (g1, e01) == (pytest.approx(3.71, abs=0.005), pytest.approx(520.0, rel=0.01))


@pytest.mark.parametrize("m, h, theta_deg", [(2, 3.0, 0.0), (3, 1.8, 50.0), (6, 4.0, 80.0)])
def test_radial_pdf_and_cdf(m, h, theta_deg):
    u = math.cos(math.radians(theta_deg))
    mean_r, alpha, r0 = radial_params(m, h, u)
    norm = integrate.quad(lambda r: radial_pdf(r, m, h, u), 0, np.inf, epsabs=0, epsrel=1e-11)[0]
    mean = integrate.quad(lambda r: r * radial_pdf(r, m, h, u), 0, np.inf, epsabs=0, epsrel=1e-11)[0]
    assert norm == pytest.approx(1.0, rel=1e-9)
    assert mean == pytest.approx(mean_r, rel=1e-8)  # R0 = (alpha - 3) <R> / 2 gives the mean
    for r in (0.5, 3.0, 12.0, 60.0):
        q = integrate.quad(lambda x: radial_pdf(x, m, h, u), 0, r, epsabs=0, epsrel=1e-11)[0]
        assert radial_cdf(r, m, h, u) == pytest.approx(q, rel=1e-9)
        qt = integrate.quad(lambda x: radial_pdf(x, m, h, u, r_max=40.0), 0, min(r, 40.0), epsabs=0, epsrel=1e-11)[0]
        assert radial_cdf(r, m, h, u, r_max=40.0) == pytest.approx(qt, rel=1e-9)
    assert radial_cdf(1e9, m, h, u) == pytest.approx(1.0, abs=1e-12)


def test_bundle_energy_cdf_against_quadrature():
    gamma, e0 = bundle_energy_params(7.0, 3, 2.4, 0.6)

    def pdf(e):
        return (gamma - 1) * e0 ** (gamma - 1) * (e + e0) ** (-gamma)

    norm = integrate.quad(pdf, 1.0, 5e5, epsabs=0, epsrel=1e-12)[0]
    for e in (3.0, 100.0, 2e3, 4e4):
        q = integrate.quad(pdf, 1.0, e, epsabs=0, epsrel=1e-12)[0] / norm
        assert bundle_energy_cdf(e, 7.0, 3, 2.4, 0.6, 1.0, 5e5) == pytest.approx(q, rel=1e-9)


@pytest.mark.parametrize("s, a, b", [(3.2, 2, 1000), (3.2, 2, 30), (4.7, 5, 100000), (2.5, 1, 1), (1.0, 1, 500), (3.9, 37, 60)])
def test_truncated_zeta(s, a, b):
    direct = np.sum(np.arange(a, b + 1, dtype=float) ** (-s))
    assert K.truncated_zeta(s, a, b) == pytest.approx(direct, rel=1e-12)
    if s != 1.0:
        hurwitz = special.zeta(s, a) - special.zeta(s, b + 1)
        assert K.truncated_zeta(s, a, b) == pytest.approx(hurwitz, rel=1e-12)


# ================================================================================ samplers
@pytest.mark.parametrize("nu, a, b", [(3.2, 2, 1000), (4.5, 2, 5), (1.0, 1, 40), (2.6, 3, 3)])
def test_discrete_power_law_sampler(nu, a, b):
    m = K.draw_multiplicities(SEEDS[:200_000], nu, a, b)
    assert m.min() >= a and m.max() <= b
    if a == b:
        return
    ms = np.arange(a, b + 1)
    p = ms ** (-nu) / np.sum(ms ** (-nu))
    obs = np.bincount(m - a, minlength=len(ms)).astype(float)
    exp = p * len(m)
    # merge the tail into one bin so that every bin expects > 5 events
    last = np.nonzero(exp > 20)[0].max()
    obs = np.append(obs[:last], obs[last:].sum())
    exp = np.append(exp[:last], exp[last:].sum())
    assert _chi2_p(obs, exp) > P_MIN


@pytest.mark.parametrize("m, h, theta_deg, r_max", [(2, 2.2, 25.0, 100.0), (4, 1.6, 70.0, 100.0), (3, 3.0, 10.0, 12.0)])
def test_radius_sampler(m, h, theta_deg, r_max):
    u = math.cos(math.radians(theta_deg))
    _, alpha, r0 = radial_params(m, h, u)
    r = K.draw_radii(SEEDS[:100_000], alpha, r0, r_max)
    assert r.min() >= 0 and r.max() <= r_max
    assert stats.kstest(r, lambda x: radial_cdf(x, m, h, u, r_max=r_max)).pvalue > P_MIN


def test_line_can_entry_matches_can_intersect(gen):
    rng = np.random.default_rng(5)
    can = gen.can
    n = 2000
    p = np.column_stack([rng.uniform(-600, 600, n) + can.x, rng.uniform(-600, 600, n) + can.y, rng.uniform(-100, 700, n)])
    ct = rng.uniform(0.05, 1, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    d = np.column_stack([np.sqrt(1 - ct**2) * np.cos(ph), np.sqrt(1 - ct**2) * np.sin(ph), -ct])
    t_in, _ = can.intersect(p, d)
    for i in range(n):
        hit, t = K.line_can_entry(*p[i], *d[i], can.x, can.y, can.radius, can.zmin, can.zmax)
        assert hit == np.isfinite(t_in[i])
        if hit:
            assert t == pytest.approx(t_in[i], abs=1e-9)


# ============================================================================ full sample
@pytest.fixture(scope="module")
def gen(detector, site):
    return AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(), detector, site)


@pytest.fixture(scope="module")
def sample(gen):
    return gen.generate(SEEDS, 100.0)


def _event_h_u(gen, s, idx=None):
    pos = s.pos if idx is None else s.pos[idx]
    d = s.dir if idx is None else s.dir[idx]
    return gen.depth_kmwe(pos[:, 2]), -d[:, 2]


def test_multiplicity_distribution(gen, sample):
    m = sample.multiplicity
    n = len(m)
    assert m.min() >= 1 and m.max() <= 1000
    groups = [[k] for k in range(1, 10)] + [list(range(10, 15)), list(range(15, 30)), list(range(30, 1001))]
    allm = np.arange(1, 1001)
    rates = _expected_multiplicity_rates(gen, allm)
    frac = rates / rates.sum()
    exp = np.array([frac[np.array(g) - 1].sum() for g in groups]) * n
    obs = np.array([np.isin(m, g).sum() for g in groups])
    assert _chi2_p(obs, exp) > P_MIN
    # the independent total agrees with the generator's rate (the threshold removes < 1e-4)
    assert rates.sum() == pytest.approx(gen.rate_hz, rel=3e-4)
    assert rates[0] == pytest.approx(gen.rate_single_hz, rel=1e-6)


def test_threshold_deficit_is_small(gen):
    # at the default 10 GeV bundle threshold and 1 GeV per muon, only m <= 9 can fall below it,
    # and a pair needs both muons below ~9 GeV when E0 ~ 1 TeV: deficit ~ 1e-3 for m = 2
    assert list(gen._deficit_m) == list(range(2, 10))
    for h, u in ((gen.h_top, 1.0), (gen.h_bottom, 0.2)):
        assert 0 < 1 - gen.pass_probability(2, h, u) < 2e-3
        assert 1 - gen.pass_probability(3, h, u) < 1e-5
        assert gen.pass_probability(10, h, u) == 1.0
    assert 0 < gen.rate_deficit_hz / gen.rate_hz < 1e-4


def test_muon_geometry(gen, sample):
    s = sample
    can = gen.can
    ev = s.muon_event
    assert s.n_over == 0 and s.n_proposals < 1.1 * len(s.energy)  # valid, efficient envelope
    assert np.array_equal(np.bincount(ev, minlength=len(s.multiplicity)), s.multiplicity)
    assert np.all(np.diff(ev) >= 0)
    d = s.dir[ev]
    v = s.muon_pos - s.pos[ev]
    along = np.einsum("ij,ij->i", v, d)
    perp = v - along[:, None] * d
    # every muon on the plane front through the axis impact point, moved along the axis by c t
    np.testing.assert_allclose(along, s.muon_time * 0.299792458, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(perp, axis=1), s.muon_radius, atol=1e-6)
    single = s.multiplicity[ev] == 1
    assert np.all(s.muon_radius[single] == 0) and np.all(s.muon_time[single] == 0)
    assert np.all(s.muon_radius[~single] > 0) and np.all(s.muon_radius <= gen.config.radius_max_m)
    # muons that hit the can sit on its surface, at their entry point; the others missed it
    t_in, _ = can.intersect(s.muon_pos, d)
    hit = s.muon_hit
    assert np.array_equal(hit, np.isfinite(t_in))
    assert 0.97 < hit.mean() < 1.0 and np.all(hit[single])
    np.testing.assert_allclose(can.distance_to_surface(s.muon_pos[hit]), 0.0, atol=1e-6)
    np.testing.assert_allclose(t_in[hit], 0.0, atol=1e-6)
    assert np.all(s.muon_time[~hit] == 0.0)
    # the angle around the axis is uniform: mean of cos and sin compatible with 0 (5 sigma)
    u = -d[:, 2]
    sin_t = np.sqrt(1 - u**2)
    e2 = np.column_stack([-d[:, 1], d[:, 0], np.zeros(len(d))]) / sin_t[:, None]
    e1 = np.cross(e2, d)
    b = ~single
    cps = np.einsum("ij,ij->i", perp[b], e1[b]) / s.muon_radius[b]
    sps = np.einsum("ij,ij->i", perp[b], e2[b]) / s.muon_radius[b]
    np.testing.assert_allclose(cps**2 + sps**2, 1.0, atol=1e-9)
    psi = np.arctan2(sps, cps) % (2 * np.pi)
    assert stats.kstest(psi, "uniform", args=(0, 2 * np.pi)).pvalue > P_MIN
    # the bundle energy is the sum of its muon energies
    np.testing.assert_allclose(np.bincount(ev, weights=s.muon_energy), s.energy, rtol=1e-12)


@pytest.mark.parametrize("group", [(2, 2), (3, 3), (4, 6), (7, 1000)])
def test_radial_distribution_per_multiplicity(gen, sample, group):
    s = sample
    ev = s.muon_event
    m = s.multiplicity[ev]
    sel = (m >= group[0]) & (m <= group[1])
    assert sel.sum() > 2000
    h, u = _event_h_u(gen, s, ev[sel])
    # probability integral transform with each muon's own (m, h, theta): uniform if R follows §1.2
    pit = radial_cdf(s.muon_radius[sel], m[sel], h, u, r_max=gen.config.radius_max_m)
    assert stats.kstest(pit, "uniform").pvalue > P_MIN


def test_single_muon_energies(gen, sample):
    s = sample
    cfg = gen.config
    one = s.multiplicity == 1
    h, u = _event_h_u(gen, s, np.nonzero(one)[0])
    e = s.energy[one]
    assert e.min() >= cfg.energy_min_gev and e.max() <= cfg.muon_energy_max_gev
    pit = single_muon_energy_cdf(e, h, u, cfg.energy_min_gev, cfg.muon_energy_max_gev)
    assert stats.kstest(pit, "uniform").pvalue > P_MIN


@pytest.mark.parametrize("r_bin", [(0.0, 3.0), (3.0, 8.0), (8.0, 20.0), (20.0, 100.0)])
def test_bundle_energies_in_radius_bins(gen, sample, r_bin):
    s = sample
    cfg = gen.config
    ev = s.muon_event
    m = s.multiplicity[ev]
    r = s.muon_radius
    sel = (m >= 2) & (r >= r_bin[0]) & (r < r_bin[1])
    assert sel.sum() > 2000
    h, u = _event_h_u(gen, s, ev[sel])
    e = s.muon_energy[sel]
    assert e.min() >= cfg.muon_energy_min_gev and e.max() <= cfg.muon_energy_max_gev
    # the threshold on the bundle energy removes < 1e-3 of the pairs (test_threshold_deficit_is_small),
    # far below the KS resolution of these samples (~1e-2)
    pit = bundle_energy_cdf(e, r[sel], m[sel], h, u, cfg.muon_energy_min_gev, cfg.muon_energy_max_gev)
    assert stats.kstest(pit, "uniform").pvalue > P_MIN


# ============================================================================= threshold
def _mc_pass_probability(m, h, u, thr, n, rng, emin=1.0, emax=5e5, r_max=100.0):
    """Brute-force numpy MC of P(sum of m muon energies >= thr) (R by inversion on a grid)."""
    rg = np.linspace(0, r_max, 400_001)
    r = np.interp(rng.random((n, m)), radial_cdf(rg, m, h, u, r_max=r_max), rg)
    g, e0 = bundle_energy_params(r, m, h, u)
    lo = (e0 / (emin + e0)) ** (g - 1)
    hi = (e0 / (emax + e0)) ** (g - 1)
    e = e0 * ((lo - rng.random((n, m)) * (lo - hi)) ** (-1 / (g - 1)) - 1)
    return np.mean(e.sum(axis=1) >= thr)


@pytest.fixture(scope="module")
def gen_high(detector, site):
    return AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(energy_min_gev=1000.0), detector, site)


@pytest.fixture(scope="module")
def sample_high(gen_high):
    return gen_high.generate(SEEDS[:60_000], 10.0)


@pytest.mark.parametrize("m, h, theta_deg", [(2, 2.2, 25.0), (5, 2.1, 45.0)])
def test_pass_probability_against_brute_force(gen_high, m, h, theta_deg):
    u = math.cos(math.radians(theta_deg))
    n = 200_000
    p_mc = _mc_pass_probability(m, h, u, 1000.0, n, np.random.default_rng(17 + m))
    p = gen_high.pass_probability(m, h, u)
    assert 0.05 < p < 0.99
    # binomial error of the MC, 4 sigma two-sided (the convolution itself is good to ~1e-4)
    assert abs(p - p_mc) < 4 * math.sqrt(p * (1 - p) / n)


def test_threshold_redraw(gen_high, sample_high):
    s = sample_high
    cfg = gen_high.config
    assert s.n_redrawn > 0.1 * len(s.energy)  # many bundles below 1 TeV were redrawn
    assert s.n_over == 0
    assert s.energy.min() >= 1000.0
    one = s.multiplicity == 1
    # the fraction of single muons is the analytic single rate over the total, which contains
    # the tabulated pass probabilities of the bundles (binomial, 4 sigma)
    p1 = gen_high.rate_single_hz / gen_high.rate_hz
    assert abs(one.mean() - p1) < 4 * math.sqrt(p1 * (1 - p1) / len(one))
    # single muons follow their spectrum truncated at the threshold
    h, u = _event_h_u(gen_high, s, np.nonzero(one)[0])
    pit = single_muon_energy_cdf(s.energy[one], h, u, 1000.0, cfg.muon_energy_max_gev)
    assert stats.kstest(pit, "uniform").pvalue > P_MIN
    # multiplicities after the threshold: chi2 against the rate integrals of the pass tables
    groups = [[1], [2], [3], [4], [5, 6], list(range(7, 11)), list(range(11, 1001))]
    rates = gen_high.multiplicity_rates(range(1, 11))
    exp_rates = [rates[0], rates[1], rates[2], rates[3], rates[4] + rates[5], rates[6:10].sum()]
    exp_rates.append(gen_high.rate_hz - rates.sum())
    exp = np.array(exp_rates) / gen_high.rate_hz * len(s.energy)
    obs = [np.isin(s.multiplicity, g).sum() for g in groups]
    assert _chi2_p(obs, exp) > P_MIN


@pytest.mark.slow
def test_deficit_table_precision(detector, site):
    """The rate with the default tables agrees with much finer ones (stated precision: 0.3 %)."""

    class Fine(AtmosphericMuonGenerator):
        DEFICIT_NODES_H = 11
        DEFICIT_NODES_THETA = 21
        DEFICIT_ENERGY_BINS = 1024
        DEFICIT_R_PANELS = 8

    cfg = AtmosphericMuonGenerator.Config(energy_min_gev=1e4, multiplicity_max=200)
    coarse = AtmosphericMuonGenerator(cfg, detector, site)
    fine = Fine(cfg, detector, site)
    assert coarse.threshold_efficiency < 0.1  # the threshold matters a lot here
    assert coarse.rate_hz == pytest.approx(fine.rate_hz, rel=3e-3)


# ==================================================================== configuration variants
def test_multiplicity_range_and_livetime_from_lowest_multiplicity(detector, site):
    gen = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(multiplicity_min=3, multiplicity_max=6), detector, site)
    livetime = 4000.0
    n = AtmosphericMuonGenerator.plan_events(gen.config, detector, site, livetime, seed=2, run_id=5)
    s = gen.generate(SEEDS[:n], livetime)
    assert s.multiplicity.min() == 3 and s.multiplicity.max() == 6 and s.n_over == 0
    rates = _expected_multiplicity_rates(gen, [3, 4, 5, 6])
    # the threshold removes < 1e-6 of the bundles with m >= 3 (test_threshold_deficit_is_small)
    assert rates.sum() == pytest.approx(gen.rate_hz, rel=1e-5)
    obs = np.bincount(s.multiplicity, minlength=7)[3:]
    assert _chi2_p(obs, rates / rates.sum() * n) > P_MIN
    events = {"pos_z": s.pos[:, 2], "dir_z": s.dir[:, 2], "n_muons": s.multiplicity}
    est = mupage_livetime_estimate(events, gen)
    assert abs(est.livetime_s - livetime) < 4 * est.error_s


def test_enlarged_can(detector, site):
    base = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(), detector, site)
    big = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(can_enlarge_m=100.0), detector, site)
    assert big.can == base.can and big.gen_can.radius == pytest.approx(base.can.radius + 100.0)
    # same depths, same fluxes: the top-disk rate scales with the disk area
    assert big.rate_top_hz / base.rate_top_hz == pytest.approx((big.gen_can.radius / base.can.radius) ** 2, rel=1e-9)
    s = big.generate(SEEDS[:50_000], 1.0)
    np.testing.assert_allclose(big.gen_can.distance_to_surface(s.pos), 0.0, atol=1e-6)
    # muons are moved to the real can; many single muons now miss it (time 0, on the axis can)
    assert 0.1 < 1 - s.muon_hit.mean() < 0.6
    t_in, _ = big.can.intersect(s.muon_pos, s.dir[s.muon_event])
    np.testing.assert_allclose(t_in[s.muon_hit], 0.0, atol=1e-6)
    assert np.all(np.isnan(t_in[~s.muon_hit])) and np.all(s.muon_time[~s.muon_hit] == 0.0)
