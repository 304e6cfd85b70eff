"""DIS kinematics of the neutrino generator: Bjorken x, Q^2, the neutrino-lepton angle and
momentum balance of the products (km3sim.generators.neutrinos, module notes step 7).

Published reference for the angle: the mean neutrino-muon angle of the ANTARES proposal,
theta ~ 0.7 deg / (E_nu / TeV)^0.6 (ANTARES Collaboration, "A deep sea telescope for high
energy neutrinos", astro-ph/9907432, 1999, section on the angular response; nu_mu + nubar_mu
CC), a one-digit power-law fit; and the AMANDA point-source study quoting 0.9 deg at 1 TeV
and 0.06 deg at 100 TeV (http://www.ps.uci.edu/~youngs/pointsource/node15.html).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from km3sim.generators import neutrinos as nu_mod
from km3sim.generators.neutrinos import (
    M_LEPTON_GEV,
    M_NUCLEON_GEV,
    NeutrinoGenerator,
    grv95lo_valence_sea,
    sample_bjorken_x,
)
from km3sim.physics import xsec
from km3sim.stage import StageContext


def run_generator(gen, detector, site, n, *, ids=None, seed=123, livetime=10.0):
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    ctx = StageContext(seed=seed, run_id=1, chunk=0, stage_name="neutrinos", event_ids=ids, livetime_s=livetime,
                       n_events_run=n, detector=detector, site=site)
    return gen.run({}, ctx)


def kinematics(energy, pdg, current, n, seed):
    """x, Q^2, directions for n events at one energy, neutrino along -z."""
    rng = np.random.default_rng(seed)
    e = np.full(n, float(energy))
    p = np.full(n, pdg)
    u = rng.random((n, 5))
    y = xsec.sample_inelasticity(u[:, 0], u[:, 1], e, p, current)
    ch = np.full(n, 0 if current == "cc" else 1)
    d = np.tile([0.0, 0.0, -1.0], (n, 1))
    k = NeutrinoGenerator.dis_kinematics(d, e, p, ch, y, u[:, 0], u[:, 2], u[:, 3], u[:, 4])
    return e, y, d, k


def median_angle_deg(energy, n=10000, seed=5):
    """Median nu-lepton angle of nu_mu + nubar_mu CC (equal numbers)."""
    angles = []
    for k_pdg, pdg in enumerate((14, -14)):
        _, _, d, k = kinematics(energy, pdg, "cc", n, seed + k_pdg)
        angles.append(np.degrees(np.arccos(np.clip(np.sum(k["lepton_dir"] * d, axis=1), -1.0, 1.0))))
    return float(np.median(np.concatenate(angles)))


def antares(energy):
    return 0.7 * (energy / 1e3) ** -0.6


# ------------------------------------------------------------------------------- the PDFs
@pytest.mark.parametrize("q2", [1.0, 10.0, 1e3, 1e6])
def test_grv95_valence_number_sum_rule(q2):
    """int (u_v + d_v) dx = 3 at every Q^2: checks the transcription of the GRV95 LO valence
    coefficients (the parametrisation holds it to ~0.3 %)."""
    nv = quad(lambda lx: grv95lo_valence_sea(math.exp(lx), q2)[0], math.log(1e-8), 0.0, limit=200)[0]
    assert abs(nv - 3.0) < 0.01


def test_grv95_momentum_fractions():
    """Quark + antiquark momentum fraction V + 2 S ~ 0.5 at Q^2 = 10 GeV^2 (the gluons carry
    the rest, the textbook ~50 %), falling with Q^2; the sea grows relative to the valence."""
    def mom(q2, i):
        return quad(lambda x: grv95lo_valence_sea(x, q2)[i], 1e-8, 1.0, limit=200, points=[1e-4, 1e-2])[0]

    v10, s10 = mom(10.0, 0), mom(10.0, 1)
    v1e4, s1e4 = mom(1e4, 0), mom(1e4, 1)
    assert 0.45 < v10 + 2 * s10 < 0.6
    assert v1e4 + 2 * s1e4 < v10 + 2 * s10
    assert s1e4 / v1e4 > s10 / v10


@pytest.mark.parametrize("antiquark", [False, True])
def test_x_sampler_matches_pdf(antiquark):
    """Sampled x at fixed E, y against the CDF of x f(x, Q^2(x)) / (1 + Q^2/M_W^2)^2 integrated
    with scipy (KS, p > 1e-3)."""
    n, e, y = 4000, 3e4, 0.4
    rng = np.random.default_rng(11)
    x = sample_bjorken_x(np.full(n, e), np.full(n, y), np.full(n, M_LEPTON_GEV[13]), np.full(n, antiquark),
                         np.zeros(n, dtype=bool), rng.random(n))
    assert np.all((x > 0) & (x <= 1))
    scale = 2 * M_NUCLEON_GEV * e * y

    def pdf(lx):
        xx = math.exp(lx)
        v, s = grv95lo_valence_sea(xx, scale * xx)
        f = s if antiquark else v + s
        return xx * f / (1 + scale * xx / xsec.M_W_GEV**2) ** 2

    nodes = np.linspace(math.log(1e-9), 0.0, 401)
    pieces = [quad(pdf, a, b, limit=100)[0] for a, b in zip(nodes[:-1], nodes[1:])]
    cdf_nodes = np.concatenate([[0.0], np.cumsum(pieces)])
    cdf_nodes /= cdf_nodes[-1]
    assert stats.kstest(x, lambda t: np.interp(np.log(t), nodes, cdf_nodes)).pvalue > 1e-3


@pytest.mark.parametrize("pdg,current", [(14, "cc"), (-14, "cc"), (14, "nc"), (-14, "nc")])
def test_struck_parton_fractions(pdg, current):
    """P(antiquark struck) from the y model: integrate the quark and antiquark terms of
    d sigma/dy over y (flat term -> 1, (1-y)^2 term -> 1/3). CC nu: (q/3) / (1 + q/3); CC nubar:
    q / (q + 1/3); NC nu: q (gR^2 + gL^2/3) / [gL^2 + gR^2/3 + q (gR^2 + gL^2/3)], nubar with
    gL <-> gR. Binomial, 4 sigma."""
    n, e = 20000, 1e4
    q = xsec.antiquark_ratio(e)
    gl2, gr2 = xsec._GL2, xsec._GR2
    if current == "cc":
        quark, anti = (1.0, q / 3) if pdg > 0 else (1.0 / 3, q)
    else:
        gl2, gr2 = (gl2, gr2) if pdg > 0 else (gr2, gl2)
        quark, anti = gl2 + gr2 / 3, q * (gr2 + gl2 / 3)
    p = anti / (quark + anti)
    _, _, _, k = kinematics(e, pdg, current, n, seed=3)
    got = k["struck_antiquark"].sum()
    assert abs(got - n * p) < 4 * math.sqrt(n * p * (1 - p)), (got, n * p)


# --------------------------------------------------------------------- the published angle
def test_median_angle_vs_energy():
    """Median nu-mu angle of nu_mu + nubar_mu CC against 0.7 deg (E/TeV)^-0.6 (ANTARES).

    Tolerances: at 1 and 10 TeV, the centre of the range the power law was fitted to, the
    median must agree to +-25 % (the reference is quoted to one digit, 0.7, i.e. +-7 %, was
    made with another generator and PDF set, and does not say median or mean; measured here
    0.675 and 0.175 deg). At 100 GeV and 100 TeV, the ends of the range, the true curve bends
    away from one power law (lepton mass and low Q^2 below, the W propagator above), so a
    factor 1.6 is allowed (measured 2.36 and 0.032 deg against 2.79 and 0.044). The
    statistical error of the median with 20000 events is below 1 % and does not matter.
    Collinear products (angle 0) fail the first check; without the W propagator the slope
    is 0.54 (nearly the 1/sqrt(E) of Bjorken scaling) and fails the slope check.
    """
    med = {e: median_angle_deg(e) for e in (1e2, 1e3, 1e4, 1e5)}
    for e in (1e3, 1e4):
        assert 0.75 < med[e] / antares(e) < 1.25, (e, med[e])
    for e in (1e2, 1e5):
        assert 1 / 1.6 < med[e] / antares(e) < 1.6, (e, med[e])
    # falls faster than 1/sqrt(E) between 1 and 100 TeV (scaling violations, W propagator):
    # log-log slope 0.6 in the reference, 0.66 here
    slope = math.log10(med[1e3] / med[1e5]) / 2.0
    assert 0.55 < slope < 0.75, slope


# ------------------------------------------------------------------ Q^2 and momentum balance
@pytest.mark.parametrize("pdg,current", [(14, "cc"), (-14, "cc"), (12, "cc"), (16, "cc"), (14, "nc"), (-16, "nc")])
def test_q2_and_momentum_balance(pdg, current):
    """Per event: Q^2 = 2 M E x y; Q^2 = 2 E (E_l - p_l cos theta) - m_l^2 with the sampled
    direction; p_nu = p_l + p_had; the three momenta coplanar; x physical."""
    n = 3000
    for energy in (20.0, 1e3, 1e5):
        e, y, d, k = kinematics(energy, pdg, current, n, seed=int(energy))
        ok = np.isfinite(k["x"])
        m = M_LEPTON_GEV[abs(pdg) - 1] if current == "cc" else 0.0
        # an x exists iff E_l > m_l and Q^2_min = 2 E (E_l - p_l) - m_l^2 <= Q^2(x=1) = 2 M E y
        # (the y model ignores the lepton mass: a few events with y near 1, more for nu_tau
        # near threshold, have none and keep the lepton collinear)
        e_all = (1 - y) * e
        p_all = np.sqrt(np.clip(e_all**2 - m**2, 0, None))
        physical = (e_all > m) & (2 * e * (e_all - p_all) - m**2 <= 2 * M_NUCLEON_GEV * e * y)
        np.testing.assert_array_equal(ok, physical)
        assert ok.mean() > (0.8 if abs(pdg) == 16 and current == "cc" and energy < 50 else 0.99)
        x, q2 = k["x"][ok], k["q2"][ok]
        assert np.all((x > 0) & (x <= 1))
        np.testing.assert_allclose(q2, 2 * M_NUCLEON_GEV * e[ok] * x * y[ok], rtol=1e-12)
        e_l = (1 - y[ok]) * e[ok]
        p_l = np.sqrt(e_l**2 - m**2)
        np.testing.assert_allclose(k["lepton_momentum"][ok], p_l, rtol=1e-12)
        cos = np.sum(k["lepton_dir"][ok] * d[ok], axis=1)
        np.testing.assert_allclose(cos, k["cos_theta_lepton"][ok], rtol=0, atol=1e-12)
        # 1 - cos computed stably from the transverse part: 1 - cos = s^2 / (1 + cos)
        s2 = np.sum(np.cross(k["lepton_dir"][ok], d[ok]) ** 2, axis=1)
        q2_dir = 2 * e[ok] * (e_l - p_l) - m**2 + 2 * e[ok] * p_l * s2 / (1 + cos)
        np.testing.assert_allclose(q2_dir, q2, rtol=1e-6, atol=1e-14 * energy**2)
        # momentum conservation: E d = p_l l + p_h h
        p_nu = e[:, None] * d
        p_sum = k["lepton_momentum"][:, None] * k["lepton_dir"] + k["hadron_momentum"][:, None] * k["hadron_dir"]
        np.testing.assert_allclose(p_sum, p_nu, rtol=0, atol=1e-9 * energy)
        np.testing.assert_allclose(np.linalg.norm(k["hadron_dir"], axis=1), 1.0, rtol=1e-12)
        # azimuth of the lepton uniform about the neutrino
        phi = np.arctan2(k["lepton_dir"][ok, 1], k["lepton_dir"][ok, 0]) % (2 * np.pi)
        assert stats.kstest(phi, stats.uniform(0, 2 * np.pi).cdf).pvalue > 1e-3


# --------------------------------------------------------------- the generator's products
@pytest.fixture(scope="module")
def tev_sample(detector, site):
    cfg = NeutrinoGenerator.Config(flavours=[14, -14], interactions=["cc", "nc"], energy_min_gev=900.0,
                                   energy_max_gev=1100.0, spectral_index=2.0, n_events=3000)
    gen = NeutrinoGenerator(cfg, detector, site)
    return gen, run_generator(gen, detector, site, 3000)


def test_tracks_carry_the_kinematics(tev_sample):
    """mc_tracks: lepton and hadron directions from the kinematics, momentum balance in
    the plane of the neutrino and the lepton, energies unchanged (E (1-y), E y)."""
    gen, out = tev_sample
    ev, tr = out["events"], out["mc_tracks"]
    first, second = tr[tr["track_id"] == 0], tr[tr["track_id"] == 1]
    d = np.column_stack([ev["dir_x"], ev["dir_y"], ev["dir_z"]])
    lep = np.column_stack([first["dir_x"], first["dir_y"], first["dir_z"]])
    had = np.column_stack([second["dir_x"], second["dir_y"], second["dir_z"]])
    e = ev["energy"]
    np.testing.assert_allclose(first["energy"], e * (1 - ev["bjorken_y"]), rtol=1e-12)
    np.testing.assert_allclose(second["energy"], e * ev["bjorken_y"], rtol=1e-12)
    m = np.where(ev["is_cc"] == 1, M_LEPTON_GEV[13], 0.0)
    p_l = np.sqrt(first["energy"] ** 2 - m**2)
    p_h = e[:, None] * d - p_l[:, None] * lep
    np.testing.assert_allclose(had, p_h / np.linalg.norm(p_h, axis=1)[:, None], rtol=0, atol=1e-9)
    ang = np.degrees(np.arccos(np.clip(np.sum(lep * d, axis=1), -1, 1)))
    cc = ev["is_cc"] == 1
    assert 0.5 < np.median(ang[cc]) < 0.9  # ~0.7 deg at 1 TeV (test_median_angle_vs_energy)
    assert np.all(ang > 0)
    # the hadronic system is further off axis than the lepton (it carries less momentum)
    ang_h = np.degrees(np.arccos(np.clip(np.sum(had * d, axis=1), -1, 1)))
    assert np.median(ang_h) > np.median(ang)


def test_reproducible_and_chunk_invariant(tev_sample, detector, site):
    """Same seed: identical tracks; a subset of the event ids gives the same rows (each event
    only uses its own seed)."""
    gen, out = tev_sample
    again = run_generator(gen, detector, site, 3000)
    for col in ("dir_x", "dir_y", "dir_z", "energy", "pdgid"):
        np.testing.assert_array_equal(again["mc_tracks"][col], out["mc_tracks"][col])
    ids = np.arange(1000, 1400)
    part = run_generator(gen, detector, site, 3000, ids=ids)["mc_tracks"]
    full = out["mc_tracks"]
    sel = np.isin(full["event_id"], ids)
    for col in ("dir_x", "dir_y", "dir_z", "energy"):
        np.testing.assert_array_equal(part[col], full[col][sel])
    other = run_generator(gen, detector, site, 3000, seed=124)["mc_tracks"]
    assert not np.array_equal(other["dir_x"], full["dir_x"])


def test_glashow_products_stay_collinear(detector, site):
    """W decay products at ~6 PeV are within ~1e-5 rad of the neutrino: left collinear."""
    cfg = NeutrinoGenerator.Config(flavours=[-12], interactions=["glashow"], energy_min_gev=6.0e6,
                                   energy_max_gev=6.6e6, n_events=200)
    gen = NeutrinoGenerator(cfg, detector, site)
    out = run_generator(gen, detector, site, 200)
    ev, tr = out["events"], out["mc_tracks"]
    rows = np.searchsorted(ev["event_id"], tr["event_id"])
    for ax in "xyz":
        np.testing.assert_array_equal(tr[f"dir_{ax}"], ev[f"dir_{ax}"][rows])


def test_module_constants():
    assert nu_mod.N_UNIFORMS == 14
    assert M_NUCLEON_GEV == pytest.approx(0.9389, abs=1e-4)
