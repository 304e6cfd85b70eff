"""Tests of the air-shower generator (km3sim.generators.air_showers)."""

import json
import math
import textwrap

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import optimize, stats

from km3sim.generators import air_showers as AS
from km3sim.generators.air_showers import (
    ELBERT_CONVENTIONAL,
    ELBERT_PROMPT,
    AirShowerGenerator,
    effective_cos_zenith,
    elbert_muon_yield,
    mupage_lateral_parameters,
    reweight,
    surface_energy_threshold,
    water_path_length,
)
from km3sim.generators.can import Can
from km3sim.generators.cosmic_rays import GENERATION_GROUPS, IRON, PROTON, get_flux_model
from km3sim.propagation.muons import ContinuousLossTable, energy_after, muon_range
from km3sim.stage import StageContext

# p-value below which a goodness-of-fit test with a fixed seed fails (1 false alarm per 1000
# seeds for a correct sampler)
P_MIN = 1e-3
R_EARTH = 6.371e6


def _seeds(n, offset=0):
    return (np.arange(1 + offset, n + 1 + offset, dtype=np.uint64)) * np.uint64(0x9E3779B97F4A7C15)


def _ctx(detector, site, event_ids, n_run=1000, seed=11, run_id=4):
    return StageContext(seed=seed, run_id=run_id, chunk=0, stage_name="air_showers",
                        event_ids=np.asarray(event_ids, dtype=np.int64), livetime_s=60.0,
                        n_events_run=n_run, detector=detector, site=site)


# ------------------------------------------------------------------------------ physics helpers
def test_effective_cos_zenith():
    assert effective_cos_zenith(1.0) == pytest.approx(1.0, rel=1e-14)
    u = np.array([0.05, 0.1, 0.3, 0.6])
    ceff = effective_cos_zenith(u)
    assert np.all(ceff > u) and np.all(np.diff(ceff) > 0)  # the curved atmosphere is thinner
    assert effective_cos_zenith(0.8) == pytest.approx(0.8, rel=0.01)  # flat at small zenith


def test_elbert_yield_transcription_and_classic_elbert():
    # PHYSICS.md §2.2 evaluated by hand: proton, E0 = 100 TeV, E_mu = 1 TeV, vertical
    k, p1, p2, p3 = 14.7, 1.79, 3.27, 0.64
    x = 1e3 / 1e5
    hand = k * 1 * (1 / 1e5) * x**-p1 * (1 - x**p3) ** p2
    assert elbert_muon_yield(1e3, 1e5, 1, 1.0) == pytest.approx(hand, rel=1e-12)
    kp, q1, q2, q3 = ELBERT_PROMPT
    assert elbert_muon_yield(1e3, 1e5, 1, 1.0, "prompt") == pytest.approx(kp * x**-q1 * (1 - x**q3) ** q2, rel=1e-12)
    assert elbert_muon_yield(1e3, 1e5, 1, 1.0, "total") == pytest.approx(
        elbert_muon_yield(1e3, 1e5, 1, 1.0) + elbert_muon_yield(1e3, 1e5, 1, 1.0, "prompt"), rel=1e-14)
    # no muon above E0 / A
    assert elbert_muon_yield(2e3, 1e5, 56, 1.0) == 0.0
    # the classic Elbert formula (Gaisser's textbook; K = 14.5 GeV, 0.757, 5.25) agrees within
    # 25 % for 1e-3 <= x <= 0.1 (the fit's x^-1.79 is steeper than x^-1.757: +36 % at x = 1e-4)
    for e0, a, emu, u in [(1e5, 1, 1e3, 1.0), (1e6, 4, 500.0, 1.0), (1e7, 56, 2e3, 1.0), (1e6, 1, 1e3, 0.9)]:
        classic = a * (14.5 / (emu * u)) * (e0 / (a * emu)) ** 0.757 * (1 - a * emu / e0) ** 5.25
        assert elbert_muon_yield(emu, e0, a, u) == pytest.approx(classic, rel=0.25)
    with pytest.raises(ValueError):
        elbert_muon_yield(1e3, 1e5, 1, 1.0, "charm")


def test_water_path_length():
    assert water_path_length(2000.0, 1.0) == pytest.approx(2000.0, rel=1e-12)
    assert water_path_length(2000.0, 0.8) == pytest.approx(2500.0, rel=2e-4)  # flat-Earth limit
    for d, u in [(2440.0, 0.0872), (3450.0, 0.2), (1000.0, 0.5)]:
        # independent: solve |P + L up| = R for a point at radius R - d (law of cosines)
        f = (lambda L, d=d, u=u: (R_EARTH - d) ** 2 + L * L + 2 * L * (R_EARTH - d) * u - R_EARTH**2)
        ref = optimize.brentq(f, 0.0, 1e6, xtol=1e-9, rtol=1e-15)
        assert water_path_length(d, u) == pytest.approx(ref, rel=1e-9)
    # 85 degrees: ~3 % shorter than depth / cos(theta) (module docstring)
    ratio = water_path_length(2440.0, math.cos(math.radians(85))) / (2440.0 / math.cos(math.radians(85)))
    assert 0.96 < ratio < 0.98


def test_surface_energy_threshold():
    table = ContinuousLossTable.sea_water(1.038)
    # PHYSICS.md §4.1 range table [D]: 1e3 GeV -> 2.3 km, 1e4 GeV -> 7.4 km, 1e5 -> 13.7 km
    for e, rng in [(1e3, 2300.0), (1e4, 7400.0), (1e5, 13700.0)]:
        assert surface_energy_threshold(rng, 0.0, table) == pytest.approx(e, rel=0.03)
    # exact inverse of the continuous loss across the segments (30 GeV and 35.3 TeV)
    for path in (5.0, 100.0, 2000.0, 9000.0, 20000.0):
        for e1 in (0.0, 1.0, 50.0, 5e4):
            e0 = surface_energy_threshold(path, e1, table)
            assert float(energy_after(e0, path, table)) == pytest.approx(e1, rel=1e-9, abs=1e-7)
            # and consistent with the ranges of the existing propagation code
            assert float(muon_range(e0, table) - muon_range(e1, table)) == pytest.approx(path, rel=1e-9)
    # single segment, arrival energy 0: E = (a/b)(e^(bL) - 1) when it stays below 30 GeV
    a, b = 0.230 * 1.038, 15.5e-4 * 1.038
    assert surface_energy_threshold(50.0, 0.0, table) == pytest.approx(a / b * math.expm1(b * 50.0), rel=1e-12)


def test_mupage_lateral_example():
    # PHYSICS.md §1.2 example: m = 2, h = 3, vertical: <R> = 7.7 m, alpha = 10.5, R0 = 28.8 m
    mean_r, alpha, r0 = mupage_lateral_parameters(2, 3.0, 0.0)
    assert mean_r == pytest.approx(7.7, abs=0.05)
    assert alpha == pytest.approx(10.5, abs=0.05)
    assert r0 == pytest.approx(28.8, abs=0.1)
    assert mupage_lateral_parameters(9, 3.0, 0.0) == mupage_lateral_parameters(4, 3.0, 0.0)  # m -> min(m, 4)


# ------------------------------------------------------------------------------ sampling kernels
@pytest.mark.parametrize("params, x_thr", [(ELBERT_CONVENTIONAL, 1e-3), (ELBERT_CONVENTIONAL, 0.3), (ELBERT_PROMPT, 1e-5)])
def test_elbert_energy_sampling(params, x_thr):
    _, p1, p2, p3 = params
    x = AS._sample_elbert_x_many(np.uint64(123), 40000, x_thr, p1, p2, p3)
    assert x.min() >= x_thr * (1 - 1e-12) and x.max() < 1.0

    def shape(x):
        return x ** (-p1) * (1.0 - x**p3) ** p2

    def cdf(v):
        return 1.0 - shape(np.clip(v, x_thr, 1.0)) / shape(x_thr)

    assert stats.kstest(x, cdf).pvalue > P_MIN


def test_lateral_radius_sampling():
    mean_r, alpha, r0 = mupage_lateral_parameters(3, 2.2, 0.4)
    r_max = 60.0
    r = AS._sample_radius_many(np.uint64(5), 40000, r0, alpha, r_max)
    assert r.min() >= 0.0 and r.max() <= r_max

    def tail(x):  # P(R > x) of dN/dR = C R/(R+R0)^alpha on [0, inf)
        w = r0 / (x + r0)
        return w ** (alpha - 2) * ((alpha - 1) - (alpha - 2) * w)

    def cdf(x):
        return (1.0 - tail(np.clip(x, 0, r_max))) / (1.0 - tail(r_max))

    assert stats.kstest(r, cdf).pvalue > P_MIN
    # untruncated mean is <R>: check on a sample without truncation; sd of the mean ~ <R>/sqrt(n)
    r = AS._sample_radius_many(np.uint64(6), 40000, r0, alpha, 1e9)
    assert r.mean() == pytest.approx(mean_r, rel=4 * r.std() / mean_r / math.sqrt(len(r)))


@pytest.mark.parametrize("lam", [1e-6, 0.3, 4.0, 40.0])
def test_poisson_at_least_one(lam):
    n = 40000
    k = AS._poisson_at_least_one_many(np.uint64(9), n, lam)
    assert k.min() >= 1
    kmax = max(3, int(lam + 8 * math.sqrt(lam) + 3))
    edges = np.arange(1, kmax + 2)
    p = stats.poisson.pmf(edges[:-1], lam) / -math.expm1(-lam)
    p[-1] += 1.0 - p.sum()
    obs = np.bincount(np.minimum(k, kmax), minlength=kmax + 1)[1:]
    keep = n * p > 5
    if keep.sum() < 2:
        assert np.all(k == 1)
        return
    o = np.append(obs[keep], obs[~keep].sum())
    e = np.append(n * p[keep], n * p[~keep].sum())
    o, e = o[e > 0], e[e > 0]
    assert stats.chisquare(o, e * o.sum() / e.sum()).pvalue > P_MIN


def test_can_intersection_kernel_matches_can():
    can = Can(x=3.0, y=-4.0, zmin=0.0, zmax=300.0, radius=150.0)
    rng = np.random.default_rng(2)
    p = rng.uniform([-400, -400, -200], [400, 400, 600], size=(3000, 3))
    d = rng.normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    t_in, t_out = can.intersect(p, d)
    for i in range(len(p)):
        a, b = AS._can_intersect(*p[i], *d[i], can.x, can.y, can.radius, can.zmin, can.zmax)
        if np.isnan(t_in[i]):
            assert math.isnan(a) and math.isnan(b)
        else:
            assert a == pytest.approx(t_in[i], abs=1e-9) and b == pytest.approx(t_out[i], abs=1e-9)


def test_can_impact_uniform_over_projected_area():
    can = Can(x=10.0, y=20.0, zmin=0.0, zmax=400.0, radius=250.0)
    u, phi = 0.6, 0.7
    n = 40000
    pos, top = AS._sample_can_impact_many(np.uint64(3), n, u, phi, can.x, can.y, can.radius, can.zmin, can.zmax)
    assert np.all(np.abs(can.distance_to_surface(pos)) < 1e-6)
    s = can.area_projected(u)
    f_top = math.pi * can.radius**2 * u / s
    assert top.mean() == pytest.approx(f_top, abs=4 * math.sqrt(f_top * (1 - f_top) / n))
    # visible side only: the entry faces the incoming direction
    st = math.sqrt(1 - u * u)
    d = np.array([st * math.cos(phi), st * math.sin(phi), -u])
    radial = pos[~top, :2] - [can.x, can.y]
    assert np.all(radial @ d[:2] <= 1e-9)
    # the horizontal transverse coordinate w of the shadow has density ∝ H sin + 2 sqrt(r^2-w^2) cos
    e1 = np.array([-math.sin(phi), math.cos(phi)])
    w = (pos[:, :2] - [can.x, can.y]) @ e1
    r, h = can.radius, can.height

    def cdf(x):
        x = np.clip(x, -r, r)
        return (h * st * (x + r) + u * (x * np.sqrt(r * r - x * x) + r * r * np.arcsin(x / r) + math.pi * r * r / 2)) / s

    assert stats.kstest(w, cdf).pvalue > P_MIN


# ------------------------------------------------------------------------------------ the stage
@pytest.fixture(scope="module")
def gen_none(detector, site):
    return AirShowerGenerator(AirShowerGenerator.Config(lateral="none", energy_sampling="full"), detector, site)


@pytest.fixture(scope="module")
def sample_none(gen_none):
    n = 200_000
    ev, mu, pdg, w2 = gen_none.generate(_seeds(n))
    return dict(n=n, ev=ev, mu=mu, pdg=pdg, w2=w2)


@pytest.fixture(scope="module")
def gen_trunc(detector, site):
    return AirShowerGenerator(AirShowerGenerator.Config(lateral="none"), detector, site)


@pytest.fixture(scope="module")
def sample_trunc(gen_trunc):
    n = 100_000
    ev, mu, pdg, w2 = gen_trunc.generate(_seeds(n))
    return dict(n=n, ev=ev, mu=mu, pdg=pdg, w2=w2)


def test_config_is_strict():
    C = AirShowerGenerator.Config
    with pytest.raises(ValidationError):
        C(n_event=5)
    with pytest.raises(ValidationError, match="energy_max_gev"):
        C(energy_min_gev=1e5, energy_max_gev=1e4)
    with pytest.raises(ValidationError, match="unknown groups"):
        C(group_fractions={1000080160: 1.0})
    with pytest.raises(ValidationError, match="positive sum"):
        C(group_fractions={PROTON: 0.0})
    with pytest.raises(ValidationError):
        C(cos_zenith_min=1.0)
    # JSON round trip of dict fractions (the runner re-validates dumped configs)
    c = C(group_fractions={PROTON: 3.0, IRON: 1.0})
    assert C(**json.loads(c.model_dump_json())) == c


def test_group_fractions(detector, site):
    # default: proportional to the flux integral over the band, computed here with crflux
    crflux_models = pytest.importorskip("crflux.models")
    from scipy import integrate

    g = AirShowerGenerator(AirShowerGenerator.Config(energy_min_gev=1e3, energy_max_gev=1e7), detector, site)
    ref = crflux_models.HillasGaisser2012("H3a")
    ints = []
    for cid in (14, 402, 1206, 2814, 5426):
        ints.append(integrate.quad(lambda t: ref.nucleus_flux(cid, math.exp(t))[0] * math.exp(t),
                                   math.log(1e3), math.log(1e7), epsrel=1e-10)[0])
    assert g.groups == GENERATION_GROUPS
    np.testing.assert_allclose(g.fractions, np.array(ints) / sum(ints), rtol=1e-7)
    g = AirShowerGenerator(AirShowerGenerator.Config(group_fractions="equal"), detector, site)
    np.testing.assert_allclose(g.fractions, 0.2, rtol=1e-15)
    g = AirShowerGenerator(AirShowerGenerator.Config(group_fractions={PROTON: 3.0, IRON: 1.0}), detector, site)
    assert g.groups == (PROTON, IRON) and list(g.fractions) == [0.75, 0.25]


def test_generation_distributions(gen_none, sample_none):
    ev, n = sample_none["ev"], sample_none["n"]
    cfg = gen_none.config
    can = gen_none.can
    # groups: chi2 against the configured fractions
    counts = np.bincount(ev[0], minlength=len(gen_none.groups))
    assert stats.chisquare(counts, n * gen_none.fractions).pvalue > P_MIN
    # energy per nucleus: E^-2 on [1e3, 1e8]
    emin, emax = cfg.energy_min_gev, cfg.energy_max_gev
    assert stats.kstest(ev[1], lambda e: (1 / emin - 1 / np.clip(e, emin, emax)) / (1 / emin - 1 / emax)).pvalue > P_MIN
    # zenith: density ∝ S(u) = A u + B sqrt(1-u^2) on [cos_min, 1]
    c0 = cfg.cos_zenith_min
    A, B = math.pi * can.radius**2, 2 * can.radius * can.height

    def prim(u):
        return A * u * u / 2 + B / 2 * (u * np.sqrt(1 - u * u) + np.arcsin(u))

    assert stats.kstest(ev[2], lambda u: (prim(np.clip(u, c0, 1)) - prim(c0)) / (prim(1.0) - prim(c0))).pvalue > P_MIN
    # acceptance G = 2 pi int S du, by quadrature here
    from scipy import integrate

    g = 2 * math.pi * integrate.quad(lambda u: can.area_projected(u), c0, 1.0, epsrel=1e-12)[0]
    assert gen_none.acceptance_m2_sr == pytest.approx(g, rel=1e-10)
    # directions are unit and down-going, impact points on the can surface
    d, pos = ev[3], ev[4]
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-12)
    assert np.all(-d[:, 2] >= c0)
    assert np.all(np.abs(can.distance_to_surface(pos)) < 1e-6)


def test_uniform_cos_sampling_and_weight(detector, site):
    g = AirShowerGenerator(AirShowerGenerator.Config(zenith_sampling="uniform_cos", cos_zenith_min=0.2,
                                                     energy_sampling="full"), detector, site)
    ev, mu, pdg, w2 = g.generate(_seeds(40000))
    assert stats.kstest(ev[2], stats.uniform(0.2, 0.8).cdf).pvalue > P_MIN
    # w2 = S(theta) 2 pi (1 - cos_min) I_E E^2 / f P(N >= 1)
    f = g.fractions[ev[0]]
    ref = g.can.area_projected(ev[2]) * 2 * math.pi * 0.8 * (1e-3 - 1e-8) * ev[1] ** 2 / f * ev[6]
    np.testing.assert_allclose(w2, ref, rtol=1e-12)


# ---------------------------------------------------------------- rates by independent quadrature
def _gl(a, b, n_panels, order):
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, n_panels + 1)
    half, mid = 0.5 * np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
    return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


def _quadrature_rates(gen, models):
    """Rate [1/s] of primaries sending >= 1 muon (>= muon_energy_min_gev at the axis impact)
    to the can, for each model: sum_g int dE Phi_g int dOmega int dA_perp (1 - exp(-lambda)).

    Written independently of the generator: slant path by the direct law-of-cosines root,
    E_thr from the existing muon_range, lambda from the PHYSICS.md §2.2 formula typed here."""
    cfg, can, site = gen.config, gen.can, gen.site
    table = ContinuousLossTable.sea_water(site.water_density_g_cm3)
    e_arr = cfg.muon_energy_min_gev
    r_arr = float(muon_range(e_arr, table))

    def e_thr(depth, u):
        rp = R_EARTH - depth
        path = -rp * u + math.sqrt(rp * rp * u * u + 2 * R_EARTH * depth - depth * depth)
        return optimize.brentq(lambda e: float(muon_range(e, table)) - r_arr - path, e_arr, 1e9, rtol=1e-13)

    def cos_eff(u):
        p1, p2, p3, p4, p5 = 0.102573, -0.068287, 0.958633, 0.0407253, 0.817285
        return np.sqrt((u * u + p1**2 + p2 * u**p3 + p4 * u**p5) / (1 + p1**2 + p2 + p4))

    def lam(emu, e0, a, u):
        x = a * emu / e0
        ok = x < 1
        x = np.where(ok, x, 0.5)
        conv = 14.7 * a * (a / (e0 * cos_eff(u))) * x**-1.79 * (1 - x**0.64) ** 3.27
        prompt = 2.8e-5 * a * x**-1.0 * (1 - x**0.78) ** 6.73 if cfg.prompt_muons else 0.0
        return np.where(ok, conv + prompt, 0.0)

    th, wth = _gl(0.0, math.acos(cfg.cos_zenith_min), 12, 8)  # in theta: the lateral term has sqrt(1-u^2)
    u, wu = np.cos(th), wth * np.sin(th)
    z, wz = _gl(can.zmin, can.zmax, 4, 6)
    lt, wlt = _gl(math.log(cfg.energy_min_gev), math.log(cfg.energy_max_gev), 20, 8)
    e0, we = np.exp(lt), wlt * np.exp(lt)
    z_s = site.seabed_depth_m
    # geometry weights: top disk and lateral slices, per unit cos(theta), times 2 pi (azimuth)
    geo = []
    for ui, wi in zip(u, wu):
        geo.append((e_thr(z_s - can.zmax, ui), 2 * math.pi * wi * math.pi * can.radius**2 * ui, ui))
        for zj, wj in zip(z, wz):
            geo.append((e_thr(z_s - zj, ui), 2 * math.pi * wi * 2 * can.radius * math.sqrt(1 - ui * ui) * wj, ui))
    ethr = np.array([g[0] for g in geo])
    wgeo = np.array([g[1] for g in geo])
    ug = np.array([g[2] for g in geo])
    out = {}
    for name in models:
        flux = get_flux_model(name)
        total = 0.0
        for pdg in gen.groups:
            a = 1 if pdg == PROTON else (pdg // 10) % 1000
            p = -np.expm1(-lam(ethr[:, None], e0[None, :], a, ug[:, None]))
            total += float(wgeo @ p @ (we * flux.flux(pdg, e0)))
        out[name] = total
    return out


@pytest.mark.parametrize("mode", ["full", "above_threshold"])
def test_muon_rate_and_reweighting_match_quadrature(mode, gen_none, sample_none, gen_trunc, sample_trunc):
    """Acceptance test: sum of w3 over events with >= 1 muon (H3a) and its change when the
    same sample is re-weighted to GST3 / H4a agree with independent quadrature, for both
    energy samplings (whole band, or above the muon threshold of each impact point)."""
    gen, sample = (gen_none, sample_none) if mode == "full" else (gen_trunc, sample_trunc)
    ev, pdg, w2, n = sample["ev"], sample["pdg"], sample["w2"], sample["n"]
    events = {"pdgid": pdg, "energy": ev[1], "weight_w2": w2, "n_gen": np.full(n, n)}
    has_mu = ev[8] >= 1
    assert np.array_equal(has_mu, ev[5] > 0)  # no lateral spread: every drawn muon reaches the impact
    w = {m: reweight(events, m) * has_mu for m in ("H3a", "GST3", "H4a")}
    ref = _quadrature_rates(gen, ("H3a", "GST3", "H4a"))
    # absolute rate, 4 sigma of the MC estimate (sigma = sqrt(sum w^2), ~1 %)
    rate, sigma = w["H3a"].sum(), math.sqrt((w["H3a"] ** 2).sum())
    assert abs(rate - ref["H3a"]) < 4 * sigma, (rate, sigma, ref["H3a"])
    assert 0.005 < sigma / rate < 0.03
    for m in ("GST3", "H4a"):
        r_mc = w[m].sum() / w["H3a"].sum()
        # delta method for a ratio of sums over the same events
        sig = math.sqrt(((w[m] - r_mc * w["H3a"]) ** 2).sum()) / w["H3a"].sum()
        r_q = ref[m] / ref["H3a"]
        assert abs(r_mc - r_q) < 4 * sig, (m, r_mc, r_q, sig)
        assert abs(r_q - 1.0) > 8 * sig  # the models differ by much more than the test's resolution


def test_sampling_above_threshold_wastes_no_events(sample_none, sample_trunc):
    # whole band: most primaries (heavy nuclei, low energies) cannot reach the can
    empty_full = np.mean(sample_none["ev"][8] == 0)
    empty_trunc = np.mean(sample_trunc["ev"][8] == 0)
    assert empty_full > 0.5
    # above threshold an event is empty only where no energy of the band reaches the can
    ev = sample_trunc["ev"]
    no_band = ev[10] == 0
    assert np.all(ev[8][~no_band] >= 1)
    assert empty_trunc == pytest.approx(np.mean(no_band)) and empty_trunc < 0.1 * empty_full


def test_w2_and_w3_formula(gen_none, sample_none, detector, site):
    ev, pdg, w2 = sample_none["ev"], sample_none["pdg"], sample_none["w2"]
    assert np.array_equal(pdg, np.array(gen_none.groups)[ev[0]])
    f = gen_none.fractions[ev[0]]
    ref = gen_none.acceptance_m2_sr * (1e-3 - 1e-8) * ev[1] ** 2 / f * -np.expm1(-ev[5])
    np.testing.assert_allclose(w2, ref, rtol=1e-12)
    assert np.all(w2[ev[5] == 0] == 0.0)
    # process: w3 = w2 Phi_H3a / n_gen and reweight to the generation model is the identity
    out = gen_none.run({}, _ctx(detector, site, np.arange(50), n_run=50))
    e = out["events"]
    phi = get_flux_model("H3a").flux(e["pdgid"], e["energy"])
    np.testing.assert_allclose(e["weight_w3"], e["weight_w2"] * phi / 50, rtol=1e-14)
    np.testing.assert_allclose(reweight(e, "H3a"), e["weight_w3"], rtol=1e-14)


# --------------------------------------------------------------------- bundles with lateral spread
@pytest.fixture(scope="module")
def gen_mupage(detector, site):
    # iron-rich, high-energy sample: many bundles
    cfg = AirShowerGenerator.Config(group_fractions={PROTON: 1.0, IRON: 1.0}, energy_min_gev=1e5, lateral_r_max_m=80.0)
    return AirShowerGenerator(cfg, detector, site)


def test_bundle_geometry_energy_and_time(gen_mupage):
    g = gen_mupage
    can = g.can
    ev, mu, pdg, w2 = g.generate(_seeds(20000, offset=7))
    mu_ev, mu_pdg, mu_pos, mu_e, mu_t, mu_es = mu
    assert np.all(np.diff(mu_ev) >= 0)
    assert np.array_equal(np.bincount(mu_ev, minlength=len(ev[1])), ev[8])
    assert np.all(ev[8] <= ev[7]) and ev[7].max() >= 20
    lost = ev[7].sum() - ev[8].sum()
    assert 0 <= lost < 0.05 * ev[7].sum()  # muons stopping between the plane and their entry are rare
    assert set(np.unique(mu_pdg)) == {-13, 13}
    d = ev[3][mu_ev]
    rel = mu_pos - ev[4][mu_ev]
    along = np.sum(rel * d, axis=1)
    perp = np.linalg.norm(rel - along[:, None] * d, axis=1)
    assert perp.max() <= 80.0 + 1e-6
    single = ev[7][mu_ev] == 1
    assert np.all(perp[single] < 1e-6)
    # time = path from the plane front through the impact point / c
    np.testing.assert_allclose(mu_t, along / 0.299792458, atol=1e-9)
    # on the can surface, or on the plane (time 0) if the muon misses the can
    on_surface = np.abs(can.distance_to_surface(mu_pos)) < 1e-6
    missed = np.isnan(can.intersect(mu_pos, d)[0])
    assert np.all(on_surface | (missed & (np.abs(along) < 1e-9)))
    # energy: surface energy after the water path to the muon's position
    u = -d[:, 2]
    path = water_path_length(g.site.seabed_depth_m - mu_pos[:, 2], u)
    np.testing.assert_allclose(mu_e, energy_after(mu_es, path, g.loss_table), rtol=1e-12)
    assert np.all(mu_e >= g.config.muon_energy_min_gev) and np.all(mu_e < mu_es)
    # surface energies above the threshold of the impact and below E0 / A
    a = np.where(pdg == PROTON, 1, 56)[mu_ev]
    assert np.all(mu_es <= ev[1][mu_ev] / a)
    # muons of bundles (N >= 2) spread: mean distance is metres to tens of metres (MUPAGE <R>)
    multi = ev[7][mu_ev] >= 2
    assert 3.0 < perp[multi].mean() < 40.0


def test_process_tables_and_reproducibility(gen_mupage, detector, site):
    ids = np.arange(120)
    out = gen_mupage.run({}, _ctx(detector, site, ids, n_run=120))
    ev, tr = out["events"], out["mc_tracks"]
    assert len(ev) == 120 and np.array_equal(ev["event_id"], ids)
    assert np.all(ev["n_gen"] == 120) and np.all(ev["livetime_s"] == 60.0)
    assert np.all((ev["mc_time"] >= 0) & (ev["mc_time"] < 60e9))
    assert set(np.unique(ev["pdgid"])) <= {PROTON, IRON}
    assert np.array_equal(np.bincount(tr["event_id"], minlength=120), ev["n_muons"])
    assert len(tr) > 0 and np.all(tr["parent_id"] == -1) and np.all(np.abs(tr["pdgid"]) == 13)
    for eid in np.unique(tr["event_id"]):
        assert list(tr["track_id"][tr["event_id"] == eid]) == list(range(ev["n_muons"][eid]))
    assert np.all(np.isfinite(ev["weight_w3"])) and np.all(ev["weight_w3"] >= 0)
    # per-event reproducibility: a sub-chunk alone gives the same rows
    sub = gen_mupage.run({}, _ctx(detector, site, ids[37:45], n_run=120))
    for name in ("events", "mc_tracks"):
        a, b = out[name], sub[name]
        sel = np.isin(a["event_id"], ids[37:45])
        for col in a.columns:
            assert np.array_equal(a[col][sel], b[col], equal_nan=a[col].dtype.kind == "f"), (name, col)
    # another production seed gives other events
    other = gen_mupage.run({}, _ctx(detector, site, ids, n_run=120, seed=12))
    assert not np.array_equal(other["events"]["energy"], ev["energy"])


def test_plan_and_header(gen_mupage, detector, site):
    cfg = AirShowerGenerator.Config(n_events=321)
    assert AirShowerGenerator.plan_events(cfg, detector, site, 10.0, 1, 2) == 321
    h = gen_mupage.header()
    json.dumps(h)
    assert h["flux_model"] == "H3a" and h["groups"] == [PROTON, IRON] and h["group_fractions"] == [0.5, 0.5]
    assert h["can"]["r"] == gen_mupage.can.radius and h["spectrum"]["index"] == 2.0


def test_production_with_propagation(tmp_path):
    from km3sim.io.hdf5 import read_attrs, read_stage_dir
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    text = textwrap.dedent(
        f"""\
        name: airshowers
        seed: 99
        output: {tmp_path / "out"}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 5, livetime_s: 1.0}}
        livetime_factor: 1
        chunk_size: 25
        cluster: {{workers: 0}}
        stages:
          - air_showers: {{n_events: 60, energy_min_gev: 1.0e+5, flux_model: GST3}}
          - muon_propagation: {{}}
        """
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = run_production(load_production(path))
    assert result.ok, result.failed
    out = tmp_path / "out"
    ev = read_stage_dir(out / "air_showers")["events"]
    tr = read_stage_dir(out / "muon_propagation")["mc_tracks"]
    assert len(ev) == 60 and np.all(ev["n_gen"] == 60)
    assert np.array_equal(np.bincount(tr["event_id"][tr["parent_id"] == -1] - ev["event_id"][0], minlength=60), ev["n_muons"])
    assert np.all(tr["length"] >= 0)
    a = read_attrs(next((out / "air_showers").glob("*.h5")))
    assert a["header"]["flux_model"] == "GST3"


def test_band_threshold_warning(detector, site, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="km3sim.generators.air_showers")
    g = AirShowerGenerator(AirShowerGenerator.Config(), detector, site)
    # vertical path to the can top, arrival at 1 GeV: the range table gives ~0.8 TeV for ~2 km
    depth = site.seabed_depth_m - g.can.zmax
    assert float(muon_range(g.energy_threshold_min_gev) - muon_range(1.0)) == pytest.approx(depth, rel=1e-9)
    assert g.config.energy_min_gev < 1.25 * g.energy_threshold_min_gev and "not simulated" not in caplog.text
    AirShowerGenerator(AirShowerGenerator.Config(energy_min_gev=2e3), detector, site)
    assert "not simulated" in caplog.text
