"""Tests of the atmospheric-muon generator stage (km3sim.generators.muons): single-muon flux,
rate, livetime, the stage contract and its configuration. Bundle physics: test_bundles.py."""

import json
import math
import textwrap

import numpy as np
import pytest
from scipy import integrate, stats

from km3sim.errors import ConfigError, StageError
from km3sim.generators import _kernels as K
from km3sim.generators.muons import (
    MUON_CHARGE_RATIO,
    MUPAGE_LIVETIME_BINS_DEG,
    AtmosphericMuonGenerator,
    mupage_livetime_estimate,
    single_muon_energy_cdf,
    single_muon_energy_params,
    single_muon_flux,
)
from km3sim.stage import SITE_PRESETS, Site, StageContext, get_stage
from km3sim.table import Table

# p-value below which a goodness-of-fit test with a fixed seed fails: a correct sampler fails
# such a test for 1 seed in 1000.
P_MIN = 1e-3


def _ctx(detector, site, event_ids, seed=7, run_id=3, livetime_s=50.0, n_events_run=1000):
    return StageContext(
        seed=seed,
        run_id=run_id,
        chunk=0,
        stage_name="atmospheric_muons",
        event_ids=np.asarray(event_ids, dtype=np.int64),
        livetime_s=livetime_s,
        n_events_run=n_events_run,
        detector=detector,
        site=site,
    )


def _p1(h, u, thr, emin=1.0, emax=5e5):
    """P(E >= thr) of a single muon, closed form of the spectrum of PHYSICS.md §1.3."""
    g, e0 = single_muon_energy_params(h, u)
    tail = lambda e: (e0 / (e + e0)) ** (g - 1)  # noqa: E731
    return (tail(max(thr, emin)) - tail(emax)) / (tail(emin) - tail(emax))


def _single_flux(h, u, thr=10.0):
    return single_muon_flux(h, u) * _p1(h, u, thr)


@pytest.fixture(scope="module")
def gen(detector, site):
    return AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(), detector, site)


@pytest.fixture(scope="module", params=["orca", "arca"])
def run_sample(request, detector):
    """A whole run generated through the stage: (site, generator, livetime, events, tracks)."""
    site = SITE_PRESETS[request.param]
    livetime = {"orca": 1000.0, "arca": 3000.0}[request.param]
    gen = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(), detector, site)
    n = AtmosphericMuonGenerator.plan_events(gen.config, detector, site, livetime, seed=11, run_id=1)
    out = gen.run({}, _ctx(detector, site, np.arange(n), seed=11, run_id=1, livetime_s=livetime, n_events_run=n))
    return site, gen, livetime, out["events"], out["mc_tracks"]


# ---------------------------------------------------------------------------- physics formulas
@pytest.mark.parametrize(
    "h, theta_deg, k_expected",
    [(2.5, 0.0, 2.98e-4), (2.5, 60.0, 3.61e-5), (3.5, 0.0, 8.72e-5), (3.5, 60.0, 5.9e-6)],
)
def test_flux_check_table(h, theta_deg, k_expected):
    # PHYSICS.md §1.1 check table, given to 3 (2 for 5.9e-6) significant digits
    rtol = 0.005 if k_expected != 5.9e-6 else 0.01
    assert single_muon_flux(h, math.cos(math.radians(theta_deg))) == pytest.approx(k_expected, rel=rtol)


def test_single_muon_spectrum_sanity_values():
    # PHYSICS.md §1.3: h = 3, vertical: gamma = 3.71, E0 = 0.52 TeV, <E> = E0/(gamma-2) ~ 0.30 TeV
    gamma, e0 = single_muon_energy_params(3.0, 1.0)
    assert float(gamma) == pytest.approx(3.71, abs=0.005)
    assert float(e0) == pytest.approx(520.0, rel=0.01)
    assert float(e0 / (gamma - 2)) == pytest.approx(300.0, rel=0.02)


def test_energy_sampling_by_inversion_matches_cdf():
    rng = np.random.default_rng(11)
    h, u, emin, emax = 2.2, 0.6, 10.0, 1e5
    gamma, e0 = (float(x) for x in single_muon_energy_params(h, u))
    e = np.array([K.sample_single_muon_energy(v, gamma, e0, emin, emax) for v in rng.random(20000)])
    assert e.min() >= emin and e.max() <= emax
    assert stats.kstest(e, lambda x: single_muon_energy_cdf(x, h, u, emin, emax)).pvalue > P_MIN
    # the band fraction equals the tail difference of the untruncated law
    frac = K.single_muon_band_fraction(h, u, emin, emax)
    assert frac == pytest.approx((e0 / (emin + e0)) ** (gamma - 1) - (e0 / (emax + e0)) ** (gamma - 1))


def test_single_pass_fraction_against_quadrature():
    for h, u, thr in ((2.2, 0.9, 10.0), (3.4, 0.2, 1000.0), (1.8, 0.5, 0.5)):
        g, e0 = single_muon_energy_params(h, u)

        def pdf(e):
            return (e + e0) ** (-g)

        pieces = [1.0, 10.0, 100.0, 1e3, 1e4, 5e5]
        norm = sum(integrate.quad(pdf, a, b, epsabs=0, epsrel=1e-12)[0] for a, b in zip(pieces[:-1], pieces[1:]))
        lo = max(thr, 1.0)
        above = integrate.quad(pdf, lo, 5e5, epsabs=0, epsrel=1e-12, points=[1e3, 1e4])[0]
        assert K.single_muon_pass_fraction(h, u, thr, 1.0, 5e5) == pytest.approx(above / norm, rel=1e-8)


# ----------------------------------------------------------------------------- rate integral
def test_rate_integral_against_scipy(gen):
    can = gen.gen_can
    umin = math.cos(math.radians(85.0))
    h_top = gen.depth_kmwe(can.zmax)

    def bundles(h, u):  # sum_{m=2}^{1000} Phi(m), by a direct sum
        nu = K.mupage_multiplicity_index(h, u)
        return single_muon_flux(h, u) * np.sum(np.arange(2, 1001, dtype=float) ** (-nu))

    for flux, rate in ((_single_flux, gen.rate_single_hz), (bundles, gen.rate_bundles_proposed_hz)):
        top = 2 * math.pi * integrate.quad(lambda u: math.pi * can.radius**2 * u * flux(h_top, u), umin, 1, epsrel=1e-10)[0]
        lat = 2 * math.pi * integrate.dblquad(
            lambda z, u: 2 * can.radius * math.sqrt(1 - u * u) * flux(gen.depth_kmwe(z), u),
            umin, 1, can.zmin, can.zmax, epsrel=1e-9,
        )[0]
        assert rate == pytest.approx(top + lat, rel=1e-7)
    assert gen.rate_hz == pytest.approx(gen.rate_single_hz + gen.rate_bundles_proposed_hz - gen.rate_deficit_hz, rel=1e-12)
    assert gen.rate_hz == pytest.approx(gen.rate_top_hz + gen.rate_lateral_hz, rel=1e-12)
    # order of magnitude: vertical flux x top area x ~1 sr (ORCA, can top at ~2.1 km w.e.)
    assert 20 < gen.rate_hz < 1000 and 0.05 < 1 - gen.rate_single_hz / gen.rate_hz < 0.3


def test_rate_scales_sensibly(detector, site, gen):
    hi = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(energy_min_gev=100.0), detector, site)
    deep = AtmosphericMuonGenerator(detector=detector, site=Site(name="arca", seabed_depth_m=3450.0))
    assert hi.rate_hz < gen.rate_hz and deep.rate_hz < gen.rate_hz
    assert hi.rate_single_hz / gen.rate_single_hz == pytest.approx(
        _p1(gen.h_top, 1.0, 100.0) / _p1(gen.h_top, 1.0, 10.0), rel=0.1
    )


# --------------------------------------------------------------- single-muon flux vs K(h, theta)
def test_single_muon_rate_through_top_vs_zenith_and_depth(run_sample):
    """m = 1 events through the top disk in zenith bins: counts vs livetime x scipy integral of
    K(h_top, theta) P(E > 10 GeV) pi r^2 cos(theta) dOmega (Poisson, chi2), at two sites."""
    site, gen, livetime, ev, _ = run_sample
    can = gen.gen_can
    h_top = gen.depth_kmwe(can.zmax)
    u = -ev["dir_z"]
    sel = (ev["n_muons"] == 1) & np.isclose(ev["pos_z"], can.zmax, rtol=0, atol=1e-9)
    edges = np.linspace(math.cos(math.radians(85.0)), 1.0, 21)
    obs, _ = np.histogram(u[sel], edges)
    exp = np.array([
        livetime * 2 * math.pi * integrate.quad(lambda x: math.pi * can.radius**2 * x * _single_flux(h_top, x), a, b, epsrel=1e-10)[0]
        for a, b in zip(edges[:-1], edges[1:])
    ])
    keep = exp > 5
    chi2 = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    assert stats.chi2.sf(chi2, keep.sum()) > P_MIN  # absolute expectations: ndf = number of bins
    # total: Poisson, 4 sigma two-sided
    assert abs(obs.sum() - exp.sum()) < 4 * math.sqrt(exp.sum())


def test_single_muons_through_the_lateral_surface_vs_depth(run_sample):
    """m = 1 events through the lateral surface in bins of entry height (depth 2.1-2.5 km w.e. at
    ORCA, 3.2-3.6 at ARCA): counts vs livetime x an own Gauss-Legendre integral of
    2 r sin(theta) K(h(z), theta) P(E > 10 GeV) over theta, azimuth and the bin."""
    site, gen, livetime, ev, _ = run_sample
    can = gen.gen_can
    sel = (ev["n_muons"] == 1) & ~np.isclose(ev["pos_z"], can.zmax, rtol=0, atol=1e-9)
    edges = np.linspace(can.zmin, can.zmax, 13)
    obs, _ = np.histogram(ev["pos_z"][sel], edges)
    x, w = np.polynomial.legendre.leggauss(96)
    tmax = math.radians(85.0)
    th = tmax * (x + 1) / 2
    wt = w * tmax / 2
    exp = []
    for a, b in zip(edges[:-1], edges[1:]):
        zx, zw = np.polynomial.legendre.leggauss(6)
        z = a + (b - a) * (zx + 1) / 2
        hh, tt = np.meshgrid(gen.depth_kmwe(z), th)
        f = _single_flux(hh, np.cos(tt)) * (2 * can.radius * np.sin(tt) ** 2)
        exp.append(2 * math.pi * livetime * np.sum(wt[:, None] * zw[None, :] * (b - a) / 2 * f))
    exp = np.array(exp)
    chi2 = np.sum((obs - exp) ** 2 / exp)
    assert stats.chi2.sf(chi2, len(exp)) > P_MIN


def test_mupage_livetime_estimate_agrees_with_generation_livetime(run_sample):
    site, gen, livetime, ev, _ = run_sample
    est = mupage_livetime_estimate(ev, gen)
    assert est.counts.sum() > 20_000
    assert list(est.edges_deg) == list(MUPAGE_LIVETIME_BINS_DEG)
    # its own statistical error is ~1/sqrt(N); 4 sigma two-sided. The inverse-variance weights
    # use the observed counts, a bias of O(1/N_bin) ~ 1e-3, well below the 0.3 % error.
    assert abs(est.livetime_s - livetime) < 4 * est.error_s
    assert est.error_s / livetime == pytest.approx(1 / math.sqrt(est.counts.sum()), rel=0.2)
    assert abs(est.pooled_livetime_s - livetime) < 4 * livetime / math.sqrt(est.counts.sum())
    # MUPAGE's bin-centre expectation is biased in the wide 76-85 deg bin (the flux falls by
    # e^-9 across it), but that bin has little weight: still within the error
    mid = mupage_livetime_estimate(ev, gen, midpoint=True)
    assert abs(mid.livetime_s - livetime) < 4 * mid.error_s
    assert mid.expected_rate_hz[-1] < 0.5 * est.expected_rate_hz[-1]
    # weights: every event stands for 1/livetime
    assert np.all(ev["weight_w3"] == 1 / livetime) and np.all(ev["livetime_s"] == livetime)


def test_muon_charge_ratio(run_sample):
    pdg = run_sample[4]["pdgid"]
    assert set(np.unique(pdg)) == {-13, 13}
    p = MUON_CHARGE_RATIO / (1 + MUON_CHARGE_RATIO)
    assert abs(np.mean(pdg == -13) - p) < 4 * math.sqrt(p * (1 - p) / len(pdg))


# ------------------------------------------------------------------------------ the stage
def test_config_defaults_and_strictness():
    cfg_cls = AtmosphericMuonGenerator.Config
    c = cfg_cls()
    assert (c.energy_min_gev, c.muon_energy_min_gev, c.muon_energy_max_gev) == (10.0, 1.0, 5e5)
    assert (c.multiplicity_min, c.multiplicity_max, c.zenith_max_deg) == (1, 1000, 85.0)
    assert (c.can_margin_m, c.can_enlarge_m, c.radius_max_m) == (200.0, 0.0, 100.0)
    bad = [
        {"energy_min_gv": 5.0},  # unknown key
        {"energy_max_gev": 1e5},  # removed key: the bundle generator has per-muon limits
        {"muon_energy_min_gev": 100.0, "muon_energy_max_gev": 50.0},
        {"multiplicity_min": 5, "multiplicity_max": 4},
        {"multiplicity_min": 0},
        {"multiplicity_min": 1.5},
        {"zenith_max_deg": 86.0},
        {"energy_min_gev": -1.0},
        {"energy_min_gev": 2e4},
        {"can_enlarge_m": -1.0},
        {"radius_max_m": 0.0},
    ]
    for kw in bad:
        with pytest.raises(Exception) as info:
            cfg_cls(**kw)
        assert any(k in str(info.value) for k in kw), (kw, str(info.value))
    with pytest.raises(Exception, match="no event could be generated"):
        cfg_cls(multiplicity_max=1, muon_energy_max_gev=5000.0, energy_min_gev=6000.0)
    assert get_stage("atmospheric_muons") is AtmosphericMuonGenerator


def test_bad_config_in_production_file_names_the_key(tmp_path):
    from km3sim.pipeline.config import load_production

    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(
        f"""\
        name: bad
        seed: 1
        output: {tmp_path / 'out'}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 1, livetime_s: 1.0}}
        stages:
          - atmospheric_muons: {{multiplicity_min: 3, multiplicity_max: 2}}
        """
    ))
    with pytest.raises(ConfigError, match=r"p.yaml:9.*atmospheric_muons.*multiplicity_max"):
        load_production(path)


def test_bad_site_or_detector(detector):
    with pytest.raises(ConfigError, match="above the sea surface"):
        AtmosphericMuonGenerator(detector=detector, site=Site(seabed_depth_m=100.0))
    with pytest.raises(StageError, match="needs a detector"):
        AtmosphericMuonGenerator().run({}, _ctx(None, Site(), [1, 2]))


def test_plan_events_poisson_and_reproducible(gen, detector, site):
    cfg = gen.config
    n1 = AtmosphericMuonGenerator.plan_events(cfg, detector, site, 10.0, seed=5, run_id=1)
    assert n1 == AtmosphericMuonGenerator.plan_events(cfg, detector, site, 10.0, seed=5, run_id=1)
    mu = gen.rate_hz * 10.0
    ns = [AtmosphericMuonGenerator.plan_events(cfg, detector, site, 10.0, seed=5, run_id=r) for r in range(20)]
    assert len(set(ns)) > 1  # runs differ
    # mean of 20 Poisson draws: 4 sigma
    assert abs(np.mean(ns) - mu) < 4 * math.sqrt(mu / 20)
    assert AtmosphericMuonGenerator.plan_events(cfg, detector, site, 0.0, seed=5, run_id=1) == 0
    with pytest.raises(ConfigError):
        AtmosphericMuonGenerator.plan_events(cfg, detector, site, -1.0, seed=5, run_id=1)


def test_process_tables(gen, detector, site):
    ids = np.arange(100, 1100, dtype=np.int64)
    out = gen.run({}, _ctx(detector, site, ids))
    ev, tr = out["events"], out["mc_tracks"]
    assert len(ev) == len(ids)
    np.testing.assert_array_equal(ev["event_id"], ids)
    assert np.all(ev["run_id"] == 3) and np.all(ev["pdgid"] == 81) and np.all(ev["n_gen"] == 1000)
    assert np.all(ev["livetime_s"] == 50.0) and np.all(ev["weight_w3"] == 1 / 50.0)
    assert np.all(ev["is_cc"] == -1) and np.all(np.isnan(ev["weight_w2"]))
    assert np.all((ev["mc_time"] >= 0) & (ev["mc_time"] < 50e9))
    assert (ev["n_muons"] > 1).any()
    # one track per muon, numbered 0..m-1 within the event, sorted by (event_id, track_id)
    counts = np.array([np.sum(tr["event_id"] == i) for i in ids])
    np.testing.assert_array_equal(counts, ev["n_muons"])
    first = np.cumsum(counts) - counts
    np.testing.assert_array_equal(tr["track_id"], np.arange(len(tr)) - np.repeat(first, counts))
    assert np.all(np.diff(tr["event_id"]) >= 0)
    # bundle energy = sum of the muon energies; all muons parallel to the axis
    np.testing.assert_allclose(np.bincount(np.repeat(np.arange(len(ids)), counts), weights=tr["energy"]), ev["energy"], rtol=1e-12)
    for a in "xyz":
        np.testing.assert_array_equal(tr[f"dir_{a}"], np.repeat(ev[f"dir_{a}"], counts))
    assert np.all(tr["parent_id"] == -1) and np.all(np.abs(tr["pdgid"]) == 13)
    assert np.all(tr["length"] == 0) and np.all(tr["energy_lost_in_can"] == 0)
    single = np.repeat(ev["n_muons"] == 1, counts)
    assert np.all(tr["time"][single] == 0) and np.any(tr["time"][~single] != 0)
    # events: bundle axis at its impact on the can
    np.testing.assert_allclose(gen.gen_can.distance_to_surface(np.column_stack([ev[f"pos_{a}"] for a in "xyz"])), 0, atol=1e-6)


def test_chunk_invariance_and_single_event(gen, detector, site):
    ids = np.arange(0, 300, dtype=np.int64) * 3 + 11
    whole = gen.run({}, _ctx(detector, site, ids))
    parts = [gen.run({}, _ctx(detector, site, ids[:137])), gen.run({}, _ctx(detector, site, ids[137:]))]
    # a fresh stage built lazily from the context gives the same output
    fresh = AtmosphericMuonGenerator().run({}, _ctx(detector, site, ids))
    for name in ("events", "mc_tracks"):
        joined = Table.concat([p[name] for p in parts])
        assert joined.equals(whole[name])
        assert fresh[name].equals(whole[name])
    k = int(np.nonzero(whole["events"]["n_muons"] > 2)[0][0])  # a bundle, alone
    one = gen.run({}, _ctx(detector, site, ids[k : k + 1]))
    assert one["events"].equals(whole["events"][k : k + 1])
    assert one["mc_tracks"].equals(whole["mc_tracks"].select_events(ids[k : k + 1]))
    # another seed or run gives other events
    other = gen.run({}, _ctx(detector, site, ids, seed=8))
    assert not np.array_equal(other["events"]["energy"], whole["events"]["energy"])


def test_header_and_setup_cache(gen, detector, site):
    hdr = json.loads(json.dumps(gen.header()))
    assert hdr["rate_hz"] == pytest.approx(gen.rate_hz)
    assert hdr["multiplicity_range"] == [1, 1000] and hdr["bundle_energy_min_gev"] == 10.0
    assert hdr["can"]["r"] == pytest.approx(gen.can.radius) and hdr["axis_can"]["r"] == pytest.approx(gen.gen_can.radius)
    assert hdr["depth_range_kmwe"] == [pytest.approx(gen.h_top), pytest.approx(gen.h_bottom)]
    # a second generator with the same configuration reuses the set-up, another one does not
    again = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(), detector, site)
    assert again._cells[0] is gen._cells[0] and again.rate_hz == gen.rate_hz
    other = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(zenith_max_deg=60.0), detector, site)
    assert other.rate_hz < gen.rate_hz
    s = other.generate(np.arange(1, 5001, dtype=np.uint64), 1.0)
    assert np.all(-s.dir[:, 2] >= math.cos(math.radians(60.0)))
    assert s.n_over == 0 and gen.envelope_efficiency > 0.9
