"""The neutrino generator: weights against independent integrals, chunk invariance,
sampled distributions, products, configuration errors."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats
from scipy.integrate import quad

from km3sim.constants import AVOGADRO
from km3sim.errors import ConfigError
from km3sim.generators.can import can_from_detector
from km3sim.generators.neutrinos import NeutrinoGenerator
from km3sim.physics import xsec
from km3sim.physics.earth import EarthModel
from km3sim.propagation.muons import ContinuousLossTable, muon_range
from km3sim.stage import StageContext
from km3sim.table import Table
from km3sim.weights import expected_events, power_law_flux, total_n_gen

RHO_ROCK = 2.65


def run_generator(gen, detector, site, n, *, ids=None, run_id=1, seed=123, livetime=1000.0, n_run=None):
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    ctx = StageContext(
        seed=seed, run_id=run_id, chunk=0, stage_name="neutrinos", event_ids=ids, livetime_s=livetime,
        n_events_run=n if n_run is None else n_run, detector=detector, site=site,
    )
    return gen.run({}, ctx)


def cylinder_volumes(can, ext, sea_surface):
    """Water and rock volume [m^3] of the can enlarged by ext, cut at the sea surface."""
    area = math.pi * (can.radius + ext) ** 2
    z_lo, z_hi = can.zmin - ext, min(can.zmax + ext, sea_surface)
    return area * (z_hi - max(z_lo, 0.0)), area * max(0.0 - z_lo, 0.0)


def tangent_cosines(earth):
    """cos(zenith) where up-going paths graze a layer boundary (kinks of X)."""
    r0 = earth.radius_km - earth.seabed_depth_m * 1e-3
    return sorted(-math.sqrt(1 - (layer[1] / r0) ** 2) for layer in earth.layers[1:] if layer[1] < r0)


def cos_nodes(earth, c_min, c_max, order=48):
    """Gauss-Legendre nodes and weights in cos(zenith), one panel between successive kinks."""
    edges = [c_min, *[c for c in tangent_cosines(earth) if c_min < c < c_max], c_max]
    x, w = np.polynomial.legendre.leggauss(order)
    nodes = np.concatenate([0.5 * (a + b) + 0.5 * (b - a) * x for a, b in zip(edges[:-1], edges[1:])])
    weights = np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:])])
    return nodes, weights


def expected_rate(gen, detector, site, flux_norm, flux_index, channel_terms):
    """Independent integral  sum_f f_share int dE dOmega Phi P sum_c sigma_c n_c V_c  [1/s].

    scipy quad over ln E; over cos(zenith) Gauss-Legendre panels split at the kinks of the
    column depth (layer tangents). ``channel_terms(e, pdg)`` returns [(sigma per target
    [cm^2], extension [m], targets per nucleon in water, in rock)] for the simulated channels.
    """
    cfg = gen.config
    can = can_from_detector(detector, cfg.can_margin_m)
    earth = EarthModel(site.seabed_depth_m, site.water_density_g_cm3)
    n_w, n_r = site.water_density_g_cm3 * AVOGADRO * 1e6, RHO_ROCK * AVOGADRO * 1e6
    cs, wc = cos_nodes(earth, cfg.cos_zenith_min, cfg.cos_zenith_max)
    x_col, xe_col = earth.column_depths(cs)  # P = exp(-N_A (X sigma_tot + X_e sigma_GR)), PHYSICS.md §3.3
    total = 0.0
    for pdg in cfg.flavours:
        def integrand(loge):
            e = math.exp(loge)
            target = 0.0
            for sigma, ext, zw, zr in channel_terms(e, pdg):
                vw, vr = cylinder_volumes(can, ext, site.seabed_depth_m)
                target += sigma * 1e-4 * (n_w * zw * vw + n_r * zr * vr)
            tau = x_col * xsec.dis_total_cross_section(e, pdg)
            if pdg == -12:
                tau = tau + xe_col * xsec.glashow_cross_section(e)
            p_omega = 2 * math.pi * np.sum(wc * np.exp(-AVOGADRO * tau))
            return e * flux_norm * e ** (-flux_index) * target * p_omega

        lo, hi = math.log(cfg.energy_min_gev), math.log(cfg.energy_max_gev)
        pts = None
        if pdg == -12 and "glashow" in cfg.interactions and lo < math.log(xsec.E_GLASHOW_RESONANCE_GEV) < hi:
            pts = [math.log(xsec.E_GLASHOW_RESONANCE_GEV)]
        total += quad(integrand, lo, hi, points=pts, limit=200, epsrel=1e-6)[0]
    return total


def dis_terms(gen, site):
    water = ContinuousLossTable.sea_water(site.water_density_g_cm3)

    def terms(e, pdg):
        out = []
        if "cc" in gen.config.interactions:
            ext = float(muon_range(e, water)) if abs(pdg) in (14, 16) else 0.0
            out.append((xsec.dis_cross_section(e, pdg, "cc"), ext, 1.0, 1.0))
        if "nc" in gen.config.interactions:
            out.append((xsec.dis_cross_section(e, pdg, "nc"), 0.0, 1.0, 1.0))
        if "glashow" in gen.config.interactions and pdg == -12:
            for ch in xsec.GLASHOW_CHANNELS:
                ext = float(muon_range(e, water)) if ch in ("mu", "tau") else 0.0
                out.append((xsec.glashow_cross_section(e, ch), ext, 0.555, 0.5))
        return out

    return terms


CASES = {
    # nu_mu / nubar_mu CC + NC, unequal flavour fractions, full sky, through rock and water
    "numu": dict(flavours=[14, -14], flavour_fractions=[0.7, 0.3], interactions=["cc", "nc"],
                 energy_min_gev=100.0, energy_max_gev=1e5, spectral_index=1.4),
    # nubar_e around the Glashow resonance: channels on electrons, Z/A of water and rock
    "glashow": dict(flavours=[-12], interactions=["cc", "glashow"], energy_min_gev=2e6, energy_max_gev=2e7,
                    spectral_index=1.0, cos_zenith_min=-0.3, cos_zenith_max=1.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_expected_events_equal_the_analytic_integral(detector, site, case):
    """T sum w2 Phi / n_gen equals int Phi sigma rho N_A P dE dOmega dV within its statistical error."""
    gen = NeutrinoGenerator(NeutrinoGenerator.Config(**CASES[case]), detector, site)
    n = 200000
    ev = run_generator(gen, detector, site, n)["events"]
    norm, index = 1e-4, 2.0
    flux = power_law_flux(norm, index)
    livetime = 3.15e7
    n_mc = expected_events(ev, flux, livetime)
    contrib = ev["weight_w2"] * flux(ev["pdgid"], ev["energy"], -ev["dir_z"]) / n
    sigma_mc = livetime * contrib.std() * math.sqrt(n)  # standard error of the sum
    n_true = livetime * expected_rate(gen, detector, site, norm, index, dis_terms(gen, site))
    assert sigma_mc < 0.05 * n_true  # the check is meaningful
    assert abs(n_mc - n_true) < 4 * sigma_mc, (n_mc, n_true, sigma_mc)


def test_weights_do_not_depend_on_chunking(detector, site):
    cfg = NeutrinoGenerator.Config(flavours=[14, -14, 12, 16, -12], interactions=["cc", "nc", "glashow"],
                                   energy_min_gev=10.0, energy_max_gev=1e8,
                                   reference_flux={"power_law": {"norm": 1.0, "index": 2.5}})
    n = 300
    one = run_generator(NeutrinoGenerator(cfg, detector, site), detector, site, n, run_id=5)
    parts = [
        run_generator(NeutrinoGenerator(cfg, detector, site), detector, site, n, ids=np.arange(a, b), run_id=5, n_run=n)
        for a, b in ((0, 100), (100, 250), (250, 300))
    ]
    for name in ("events", "mc_tracks"):
        merged = Table.concat([p[name] for p in parts])
        assert merged.equals(one[name]), name
    assert total_n_gen(Table.concat([p["events"] for p in parts])) == n
    # a single event re-simulated alone is the same
    alone = run_generator(NeutrinoGenerator(cfg, detector, site), detector, site, n, ids=[137], run_id=5, n_run=n)
    assert alone["events"].equals(one["events"][137])
    # another run: other events
    other = run_generator(NeutrinoGenerator(cfg, detector, site), detector, site, n, run_id=6)
    assert not np.array_equal(other["events"]["energy"], one["events"]["energy"])
    # w3 = w2 Phi_ref / n_gen
    ev = one["events"]
    np.testing.assert_allclose(ev["weight_w3"], ev["weight_w2"] * ev["energy"] ** -2.5 / n, rtol=1e-12)


@pytest.fixture(scope="module")
def numu_sample(detector, site):
    cfg = NeutrinoGenerator.Config(flavours=[14, -14], interactions=["cc", "nc"], energy_min_gev=10.0,
                                   energy_max_gev=1e6, spectral_index=1.7, cos_zenith_min=-1.0, cos_zenith_max=0.2)
    gen = NeutrinoGenerator(cfg, detector, site)
    return gen, run_generator(gen, detector, site, 20000, livetime=50.0)


def test_sampled_distributions(numu_sample, site):
    gen, out = numu_sample
    ev = out["events"]
    cfg = gen.config
    e = ev["energy"]
    g = 1 - cfg.spectral_index
    lo, hi = cfg.energy_min_gev**g, cfg.energy_max_gev**g
    assert stats.kstest(e, lambda x: (x**g - lo) / (hi - lo)).pvalue > 1e-3
    cosz = -ev["dir_z"]
    assert stats.kstest(cosz, stats.uniform(cfg.cos_zenith_min, cfg.cos_zenith_max - cfg.cos_zenith_min).cdf).pvalue > 1e-3
    az = np.arctan2(-ev["dir_y"], -ev["dir_x"]) % (2 * np.pi)
    assert stats.kstest(az, stats.uniform(0, 2 * np.pi).cdf).pvalue > 1e-3
    np.testing.assert_allclose(ev["dir_x"] ** 2 + ev["dir_y"] ** 2 + ev["dir_z"] ** 2, 1.0, rtol=1e-12)
    # channel choice: P(NC | E) = sigma_NC / (sigma_CC + sigma_NC)
    p_nc = np.array([xsec.dis_cross_section(x, p, "nc") / xsec.dis_total_cross_section(x, p) for x, p in zip(e, ev["pdgid"])])
    n_nc = np.sum(ev["is_cc"] == 0)
    assert abs(n_nc - p_nc.sum()) < 4 * math.sqrt(np.sum(p_nc * (1 - p_nc)))
    # flavours equally likely (binomial, 4 sigma)
    assert abs(np.sum(ev["pdgid"] == 14) - 10000) < 4 * math.sqrt(20000 * 0.25)
    # vertices uniform in the channel's cylinder: PIT of rho^2 and z
    can = gen.can
    water = ContinuousLossTable.sea_water(site.water_density_g_cm3)
    ext = np.where(ev["is_cc"] == 1, muon_range(e, water), 0.0)
    rho2 = ((ev["pos_x"] - can.x) ** 2 + (ev["pos_y"] - can.y) ** 2) / (can.radius + ext) ** 2
    z_lo, z_hi = can.zmin - ext, np.minimum(can.zmax + ext, site.seabed_depth_m)
    zz = (ev["pos_z"] - z_lo) / (z_hi - z_lo)
    for v in (rho2, zz):
        assert v.min() >= 0 and v.max() <= 1
        assert stats.kstest(v, "uniform").pvalue > 1e-3
    nc = ev["is_cc"] == 0
    assert np.all(gen.can.contains(np.column_stack([ev["pos_x"], ev["pos_y"], ev["pos_z"]])[nc]))


def test_inelasticity_follows_its_pdf(numu_sample):
    _, out = numu_sample
    ev = out["events"]
    for pdg in (14, -14):
        for is_cc, cur in ((1, "cc"), (0, "nc")):
            m = (ev["pdgid"] == pdg) & (ev["is_cc"] == is_cc)
            pit = xsec.inelasticity_cdf(ev["bjorken_y"][m], ev["energy"][m], pdg, cur)
            assert stats.kstest(pit, "uniform").pvalue > 1e-3, (pdg, cur)


def test_products(numu_sample):
    _, out = numu_sample
    ev, tr = out["events"], out["mc_tracks"]
    assert len(tr) == 2 * len(ev)
    first, second = tr[tr["track_id"] == 0], tr[tr["track_id"] == 1]
    np.testing.assert_array_equal(first["event_id"], ev["event_id"])
    cc = ev["is_cc"] == 1
    # CC: charged lepton of the neutrino's sign; NC: the neutrino; then the hadronic system
    np.testing.assert_array_equal(first["pdgid"][cc], np.sign(ev["pdgid"][cc]) * 13)
    np.testing.assert_array_equal(first["pdgid"][~cc], ev["pdgid"][~cc])
    assert np.all(second["pdgid"] == 211)
    np.testing.assert_allclose(first["energy"] + second["energy"], ev["energy"], rtol=1e-12)
    np.testing.assert_allclose(second["energy"], ev["energy"] * ev["bjorken_y"], rtol=1e-12)
    np.testing.assert_array_equal(ev["n_muons"], cc.astype(np.int32))
    for axis in "xyz":
        np.testing.assert_array_equal(first[f"pos_{axis}"], ev[f"pos_{axis}"])
    # the products are no longer collinear with the neutrino (DIS kinematic angle, see
    # test_neutrino_kinematics.py); both stay forward-going within a few degrees on average
    for t in (first, second):
        cos = t["dir_x"] * ev["dir_x"] + t["dir_y"] * ev["dir_y"] + t["dir_z"] * ev["dir_z"]
        assert np.all(cos <= 1.0 + 1e-12) and np.median(cos) > math.cos(math.radians(10.0))
    assert np.all(tr["parent_id"] == -1) and np.all(tr["time"] == 0)
    assert np.all((ev["mc_time"] >= 0) & (ev["mc_time"] < 50e9))
    assert np.all(ev["n_gen"] == 20000) and np.all(ev["livetime_s"] == 50.0)
    assert np.all(np.isnan(ev["weight_w3"]))  # no reference flux
    assert np.all(ev["weight_w2"] > 0)


def test_glashow_channels(detector, site):
    cfg = NeutrinoGenerator.Config(flavours=[-12], interactions=["glashow"], energy_min_gev=6.0e6, energy_max_gev=6.6e6)
    gen = NeutrinoGenerator(cfg, detector, site)
    n = 20000
    out = run_generator(gen, detector, site, n)
    ev, tr = out["events"], out["mc_tracks"]
    assert np.all(ev["is_cc"] == 1) and np.all(np.isnan(ev["bjorken_y"]))
    first = tr[tr["track_id"] == 0]
    counts = {pdg: int(np.sum(first["pdgid"] == pdg)) for pdg in (211, 11, 13, 15)}
    assert sum(counts.values()) == n
    for pdg, b in ((211, xsec.B_W_HADRONS), (11, xsec.B_W_LEPTON), (13, xsec.B_W_LEPTON), (15, xsec.B_W_LEPTON)):
        assert abs(counts[pdg] - n * b) < 4 * math.sqrt(n * b * (1 - b)), pdg
    second = tr[tr["track_id"] == 1]
    lep_first = first[first["pdgid"] != 211]
    np.testing.assert_array_equal(second["pdgid"], -(lep_first["pdgid"] + 1))
    e_nu = ev["energy"][np.isin(ev["event_id"], lep_first["event_id"])]
    x = lep_first["energy"] / e_nu
    np.testing.assert_allclose(lep_first["energy"] + second["energy"], e_nu, rtol=1e-12)
    assert stats.kstest(x, lambda v: 1 - (1 - v) ** 3).pvalue > 1e-3
    had = first["pdgid"] == 211
    np.testing.assert_array_equal(first["energy"][had], ev["energy"][np.isin(ev["event_id"], first["event_id"][had])])


@pytest.mark.slow
def test_honda_weighting_vs_km3flux(detector, site):
    """sum w3 against an independent integral of the km3flux HDF5 Honda table."""
    h5py = pytest.importorskip("h5py")
    km3flux_data = pytest.importorskip("km3flux.data")
    from scipy.interpolate import RegularGridInterpolator

    cfg = NeutrinoGenerator.Config(flavours=[14, -14], interactions=["cc"], energy_min_gev=10.0, energy_max_gev=1e4,
                                   spectral_index=1.4, reference_flux="honda")
    gen = NeutrinoGenerator(cfg, detector, site)
    n = 200000
    ev = run_generator(gen, detector, site, n)["events"]
    rate_mc = float(np.sum(ev["weight_w3"]))
    contrib = ev["weight_w3"]
    sigma_mc = contrib.std() * math.sqrt(n)

    with h5py.File(km3flux_data.HONDAFILE, "r") as h5:
        energy = h5["energy"][:]
        cos_c = h5["cos_zen"][:]
        tables = {14: h5["nu_mu"][:], -14: h5["nu_mu_bar"][:]}
    interp = {
        pdg: RegularGridInterpolator((cos_c, np.log(energy)), np.log(t), bounds_error=False, fill_value=None)
        for pdg, t in tables.items()
    }
    earth = EarthModel(site.seabed_depth_m, site.water_density_g_cm3)
    can = can_from_detector(detector, cfg.can_margin_m)
    water = ContinuousLossTable.sea_water(site.water_density_g_cm3)
    n_w, n_r = site.water_density_g_cm3 * AVOGADRO * 1e6, RHO_ROCK * AVOGADRO * 1e6
    # grid integration: Gauss-Legendre in ln E (64 nodes) x cos (2 x 64 nodes, split at 0)
    xg, wg = np.polynomial.legendre.leggauss(64)
    le = 0.5 * (math.log(10.0) + math.log(1e4)) + 0.5 * math.log(1e3) * xg
    wle = 0.5 * math.log(1e3) * wg
    cs = np.concatenate([-0.5 + 0.5 * xg, 0.5 + 0.5 * xg])
    wc = np.concatenate([0.5 * wg, 0.5 * wg])
    rate_true = 0.0
    for pdg in (14, -14):
        for lei, wli in zip(le, wle):
            e = math.exp(lei)
            phi = np.exp(interp[pdg](np.column_stack([np.clip(cs, cos_c[0], cos_c[-1]), np.full_like(cs, lei)])))
            p = earth.transmission(e, cs, pdg)
            vw, vr = cylinder_volumes(can, float(muon_range(e, water)), site.seabed_depth_m)
            target = xsec.dis_cross_section(e, pdg, "cc") * 1e-4 * (n_w * vw + n_r * vr)
            rate_true += wli * e * 2 * math.pi * np.sum(wc * phi * p) * target
    # statistical error (4 sigma) plus 1 % for the different flux interpolations (linear in
    # ln Phi over (cos, ln E) here, over (ln E, cos) in the module, between the same nodes)
    assert abs(rate_mc - rate_true) < 4 * sigma_mc + 0.01 * rate_true, (rate_mc, rate_true, sigma_mc)
    assert sigma_mc < 0.05 * rate_true


def test_plan_events_and_header(detector, site):
    cfg = NeutrinoGenerator.Config(n_events=1234)
    assert NeutrinoGenerator.plan_events(cfg, detector, site, 10.0, 1, 1) == 1234
    assert NeutrinoGenerator.plan_events(cfg, detector, site, 1e6, 1, 2) == 1234
    h = NeutrinoGenerator(cfg, detector, site).header()
    import json

    json.dumps(h)
    can = can_from_detector(detector, 200.0)
    assert h["genvol"]["volume"] == pytest.approx(can.volume)
    assert h["genvol"]["numberOfEvents"] == 1234
    assert h["spectrum"]["alpha"] == 1.4
    g = 1.4
    assert h["I_E"] == pytest.approx((1e7 ** (1 - g) - 10 ** (1 - g)) / (1 - g))
    assert h["I_theta_sr"] == pytest.approx(4 * math.pi)
    assert NeutrinoGenerator.input_files(cfg) == []


@pytest.mark.parametrize(
    "bad,key",
    [
        (dict(energy_min_gev=1e5, energy_max_gev=1e3), "energy_max_gev"),
        (dict(energy_min_gev=100.0, energy_max_gev=100.0), "energy_max_gev"),
        (dict(flavours=[13]), "flavour"),
        (dict(flavours=[14, 14]), "repeated"),
        (dict(interactions=["cc", "dis"]), "interactions"),
        (dict(interactions=["glashow"], flavours=[14]), "glashow"),
        (dict(interactions=["glashow"], flavours=[-12, 14]), "no interaction"),
        (dict(flavour_fractions=[1.0]), "flavour_fractions"),
        (dict(flavour_fractions=[1.0, 0.0]), "flavour_fractions"),
        (dict(cos_zenith_min=0.5, cos_zenith_max=0.5), "cos_zenith_max"),
        (dict(energy_max_gev=1e12), "energy_max_gev"),
        (dict(reference_flux="bartol"), "reference_flux"),
        (dict(n_events=0), "n_events"),
        (dict(colour="red"), "colour"),
    ],
)
def test_bad_config(bad, key):
    with pytest.raises(ValidationError) as err:
        NeutrinoGenerator.Config(**bad)
    assert key in str(err.value)


def test_bad_config_in_a_production_names_the_key(tmp_path):
    from km3sim.pipeline.config import load_production

    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(
        f"""\
        name: bad
        seed: 1
        output: {tmp_path / 'out'}
        detector: {{builder: orca, n_dus: 2}}
        runs: [{{run_id: 1, livetime_s: 1.0}}]
        stages:
          - neutrinos: {{flavours: [14, 15], energy_min_gev: 10}}
        """
    ))
    with pytest.raises(ConfigError) as err:
        load_production(path)
    assert "flavour" in str(err.value) and "neutrinos" in str(err.value)


def test_production_weights_over_runs_and_chunks(tmp_path):
    """A production of 2 runs in several chunks: n_gen adds up over runs, and the merged
    events weight to the same rate as each run's own sample."""
    from km3sim.io.hdf5 import read_stage_dir
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    path = tmp_path / "nu.yaml"
    path.write_text(textwrap.dedent(
        f"""\
        name: nu
        seed: 99
        output: {tmp_path / 'out'}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 3, livetime_s: 10.0}}
          - {{run_id: 4, livetime_s: 10.0}}
        livetime_factor: 1
        chunk_size: 70
        cluster: {{workers: 0}}
        stages:
          - neutrinos: {{n_events: 150, energy_min_gev: 20, energy_max_gev: 1e4, interactions: [cc, nc],
                         reference_flux: {{power_law: {{norm: 1.0e-4, index: 2}}}}}}
          - muon_propagation: {{}}
        """
    ))
    result = run_production(load_production(path))
    assert result.ok, result.failed
    assert result.plan.n_events_per_run == {3: 150, 4: 150}
    ev = read_stage_dir(Path(tmp_path / "out" / "neutrinos"))["events"]
    assert len(ev) == 300 and len(np.unique(ev["event_id"])) == 300
    assert total_n_gen(ev) == 300
    flux = power_law_flux(1e-4, 2.0)
    # per run, w3 is the rate of the run's own sample; merged, each run counts half
    merged = expected_events(ev, flux, 1.0)
    per_run = [np.sum(ev["weight_w3"][ev["run_id"] == r]) for r in (3, 4)]
    assert merged == pytest.approx(0.5 * sum(per_run), rel=1e-12)
    tracks = read_stage_dir(Path(tmp_path / "out" / "muon_propagation"))["mc_tracks"]
    assert np.sum((np.abs(tracks["pdgid"]) == 13) & (tracks["parent_id"] == -1)) == np.sum(ev["n_muons"])
