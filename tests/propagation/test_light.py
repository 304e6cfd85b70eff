"""Tests of the direct-light stage (PHYSICS.md §5.1, §5.3, §7.2, §9.1)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.integrate import quad

from km3sim import schema
from km3sim.detector.pmt import PHOTOCATHODE_AREA_M2, angular_acceptance, quantum_efficiency
from km3sim.propagation.light import (
    DirectLight,
    DirectLightConfig,
    frank_tamm_yield,
    photon_yield,
    radel_wiebusch_coefficients,
)
from km3sim.propagation.water import (
    ABSORPTION_TABLE_NM,
    absorption_length,
    refractive_index_group,
    refractive_index_phase,
)
from km3sim.stage import Site, StageContext, get_stage
from km3sim.table import Table

C = 0.299792458  # m/ns
SITE = Site()  # ORCA, 240 atm
N_PH = refractive_index_phase(470.0, SITE.pressure_atm)
N_G = refractive_index_group(470.0, SITE.pressure_atm)
COS_C = 1.0 / N_PH
SIN_C = math.sqrt(1.0 - COS_C**2)
TAN_C = SIN_C / COS_C
#: the light on the Cherenkov cone only: every loss above 0.5 GeV a shower row, so no continuous-loss
#: shower light (that part is tested in test_secondaries.py)
CONE_ONLY = dict(muon_v_cut=0.0, muon_e_cut_gev=0.0)


# ------------------------------------------------------------------------------ helpers
def stub_detector(pos, dirs, ok=None):
    """A duck-typed detector with the per-PMT arrays the stage reads."""
    pos = np.atleast_2d(np.asarray(pos, dtype=float))
    dirs = np.atleast_2d(np.asarray(dirs, dtype=float))
    dirs = dirs / np.linalg.norm(dirs, axis=1)[:, None]
    n = len(pos)
    return SimpleNamespace(
        pmt_id=np.arange(1000, 1000 + n, dtype=np.int64),
        pmt_dom_id=np.full(n, 77, dtype=np.int64) + np.arange(n) // 31,
        pmt_channel=(np.arange(n) % 31).astype(np.int32),
        pmt_pos=pos,
        pmt_dir=dirs,
        pmt_status_ok=np.ones(n, dtype=bool) if ok is None else np.asarray(ok, dtype=bool),
    )


def make_tracks(event_ids, pos, dirs, energy=100.0, length=1000.0, time=0.0, pdgid=13, track_id=None, energy_lost=0.0):
    n = len(event_ids)
    pos = np.broadcast_to(np.asarray(pos, dtype=float), (n, 3))
    dirs = np.broadcast_to(np.asarray(dirs, dtype=float), (n, 3))
    if track_id is None:
        track_id = np.zeros(n, dtype=int)
    return schema.make_table(
        "mc_tracks",
        event_id=np.asarray(event_ids, dtype=np.int64),
        track_id=np.asarray(track_id),
        parent_id=-np.ones(n, dtype=int),
        pdgid=np.broadcast_to(np.asarray(pdgid), (n,)).astype(np.int32),
        pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2],
        dir_x=dirs[:, 0], dir_y=dirs[:, 1], dir_z=dirs[:, 2],
        energy=np.broadcast_to(np.asarray(energy, dtype=float), (n,)),
        time=np.broadcast_to(np.asarray(time, dtype=float), (n,)),
        length=np.broadcast_to(np.asarray(length, dtype=float), (n,)),
        energy_lost_in_can=np.broadcast_to(np.asarray(energy_lost, dtype=float), (n,)),
    )


def make_ctx(detector, event_ids, seed=12345):
    ev = np.asarray(event_ids, dtype=np.int64)
    return StageContext(seed=seed, run_id=3, chunk=0, stage_name="direct_light", event_ids=ev,
                        livetime_s=1.0, n_events_run=len(ev), detector=detector, site=SITE)


def analytic_yield(d_gamma, lmin=300.0, lmax=700.0):
    """∫ dλ Frank–Tamm · QE · exp(−d/λ_abs), written out independently with scipy quad."""
    def integrand(lam):
        n = refractive_index_phase(lam, SITE.pressure_atm)
        ft = 2 * math.pi / 137.035999 / (lam * 1e-9) ** 2 * (1 - 1 / n**2) * 1e-9
        labs = absorption_length(lam)
        return ft * quantum_efficiency(lam) * (math.exp(-d_gamma / labs) if labs > 0 else 0.0)
    breaks = sorted(set([300, 310, 320, 330, 340, 350, 360, 370, 380, 390, 400, 420, 440, 460, 470, 480,
                         500, 520, 540, 560, 600, 650, 700] + list(ABSORPTION_TABLE_NM)))
    breaks = [b for b in breaks if lmin < b < lmax]
    return quad(integrand, lmin, lmax, points=breaks, limit=200, epsabs=0, epsrel=1e-9)[0]


def analytic_npe(d_c, cos_impact, energy):
    d_gamma = d_c / SIN_C
    lam_rw = 0.1842 + (N_PH - 1.30) / 0.03 * (0.1880 - 0.1842) if N_PH < 1.33 else 0.1880 + (N_PH - 1.33) / 0.03 * (0.1916 - 0.1880)
    kap_rw = 0.0204 + (N_PH - 1.30) / 0.03 * 0.0002 if N_PH < 1.33 else 0.0206 + (N_PH - 1.33) / 0.03 * 0.0001
    return (PHOTOCATHODE_AREA_M2 * angular_acceptance(cos_impact) * analytic_yield(d_gamma)
            / (2 * math.pi * d_c * SIN_C) * (1 + lam_rw + kap_rw * math.log(energy)))


def photon_dir_at(d_vec):
    """Photon direction of travel at a PMT displaced by unit vector d_vec ⟂ z from a +z track."""
    return SIN_C * np.asarray(d_vec, dtype=float) + COS_C * np.array([0.0, 0.0, 1.0])


def t_expected_91(track_pos, track_dir, t0, pmt_pos):
    """PHYSICS.md §9.1 written out directly."""
    V = pmt_pos - track_pos
    L = np.sum(V * track_dir, axis=1)
    d_c = np.sqrt(np.sum(V * V, axis=1) - L**2)
    d_gamma = d_c / SIN_C
    z_emit = L - d_c / TAN_C
    return t0 + z_emit / C + d_gamma * N_G / C, z_emit, d_c


# ------------------------------------------------------------------------------ physics
def test_frank_tamm_photons_per_metre():
    # PHYSICS.md §5.1 [D] for β = 1, n = 1.35 (3 significant digits)
    lam = np.linspace(250, 700, 45001)
    def n_photons(a, b):
        m = (lam >= a) & (lam <= b)
        return np.trapezoid(frank_tamm_yield(lam[m], 1.35), lam[m])
    assert n_photons(300, 600) == pytest.approx(3.45e4, rel=3e-3)
    assert n_photons(300, 500) == pytest.approx(2.76e4, rel=3e-3)
    assert n_photons(350, 550) == pytest.approx(2.15e4, rel=3e-3)
    # below threshold: nothing
    assert frank_tamm_yield(400.0, 1.35, beta=0.7) == 0.0


def test_radel_wiebusch_coefficients():
    assert radel_wiebusch_coefficients(1.33) == pytest.approx((0.1880, 0.0206))
    assert radel_wiebusch_coefficients(1.345) == pytest.approx((0.1898, 0.02065))


def test_photon_yield_table_matches_quadrature():
    stage = DirectLight(site=SITE)
    for d in [0.3, 1.0, 7.0, 33.0, 120.0, 299.0]:
        ref = analytic_yield(d)
        # 0.5 nm trapezoid on piecewise-linear tables, then log-grid interpolation: < 1e-3
        assert photon_yield(d, stage.water) == pytest.approx(ref, rel=1e-3)
        assert stage.photon_yield(d) == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize("d_c", [1.0, 5.0, 20.0, 60.0, 150.0])
def test_expected_npe_matches_analytic(d_c):
    stage = DirectLight(DirectLightConfig(**CONE_ONLY), site=SITE)
    w = photon_dir_at([1.0, 0.0, 0.0])
    pmt_pos = np.array([[d_c, 0.0, 500.0]])
    for pmt_dir, c in [(-w, -1.0), (np.array([-1.0, 0.0, 0.0]), -SIN_C)]:
        mu, z_emit, d_gamma = stage.expected_npe([0, 0, 0], [0, 0, 1], 100.0, 1000.0, pmt_pos, pmt_dir[None, :])
        assert z_emit[0] == pytest.approx(500.0 - d_c / TAN_C)
        assert d_gamma[0] == pytest.approx(d_c / SIN_C)
        assert mu[0] == pytest.approx(analytic_npe(d_c, c, 100.0), rel=1e-3)


def test_expected_npe_falls_like_exp_over_distance():
    stage = DirectLight(site=SITE)
    d_c = np.linspace(5.0, 180.0, 36)
    pos = np.column_stack([d_c, np.zeros_like(d_c), np.full_like(d_c, 500.0)])
    dirs = np.tile(-photon_dir_at([1.0, 0.0, 0.0]), (len(d_c), 1))
    mu = stage.expected_npe([0, 0, 0], [0, 0, 1], 100.0, 1000.0, pos, dirs)[0]
    # μ·d_c ∝ Σ_λ w_λ exp(−d_γ/λ_abs): decreasing, with a local attenuation length between the
    # smallest relevant and the largest tabulated absorption length (≤ 67.5 m), approaching the
    # latter at large distance as the longest-lived wavelengths dominate
    f = mu * d_c
    assert np.all(np.diff(f) < 0)
    d_gamma = d_c / SIN_C
    att = -np.diff(d_gamma) / np.diff(np.log(f))
    assert np.all(np.diff(att) > 0)
    assert 20.0 < att[0] < att[-1] < 67.5
    assert att[-1] > 55.0


def test_mean_npe_matches_expectation_statistically():
    # Two PMTs on different sides of a +z muon, head-on to the Cherenkov light, at d_c = 8 m
    # (μ ≈ 1.19) and 25 m (μ ≈ 0.186). 3000 events: the summed npe of each PMT is Poisson with
    # mean N·μ (≈ 3560 and 560), so |sum − Nμ| < 4 sqrt(Nμ) fails with probability 6e-5 per
    # check if the model is right, while a 10 % error in μ is a 6 σ shift at 8 m and a wrong
    # distance dependence (e.g. 1/d_c² instead of 1/d_c: factor 3) fails at 25 m by far.
    d1, d2 = 8.0, 25.0
    w1 = photon_dir_at([1.0, 0.0, 0.0])
    w2 = photon_dir_at([0.0, -1.0, 0.0])
    det = stub_detector([[d1, 0, 300.0], [0, -d2, 300.0]], [-w1, -w2])
    n_ev = 3000
    ev = np.arange(n_ev, dtype=np.int64) * 7 + 11
    tracks = make_tracks(ev, [0, 0, 0], [0, 0, 1], energy=100.0, length=800.0)
    stage = DirectLight(DirectLightConfig(**CONE_ONLY), detector=det, site=SITE)
    hits = stage.run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    for pmt_id, d_c in [(1000, d1), (1001, d2)]:
        mu = analytic_npe(d_c, -1.0, 100.0)
        total = np.sum(hits["npe"][hits["pmt_id"] == pmt_id])
        assert abs(total - n_ev * mu) < 4.0 * math.sqrt(n_ev * mu), (pmt_id, total, n_ev * mu)
    # the count per event is Poisson: variance ≈ mean; for N = 3000 the relative error of the
    # sample variance is ≈ sqrt((2 + 1/μ)/N) ≈ 4 % at μ ≈ 1, so 20 % is > 4 σ
    counts = np.bincount(np.searchsorted(ev, hits["event_id"][hits["pmt_id"] == 1000]), minlength=n_ev)
    assert counts.var() == pytest.approx(counts.mean(), rel=0.2)
    assert np.all(hits["npe"] == 1)
    assert np.all(hits["origin"] == 0)


def test_arrival_times_follow_cherenkov_geometry():
    from km3sim.detector.geometry import build_orca_block

    det = build_orca_block(n_dus=4)
    rng = np.random.default_rng(7)
    n = 20
    ev = np.arange(n, dtype=np.int64)
    cz = rng.uniform(-1, 1, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    dirs = np.column_stack([np.sqrt(1 - cz**2) * np.cos(ph), np.sqrt(1 - cz**2) * np.sin(ph), cz])
    c = det.center()
    start = c + rng.uniform(-40, 40, (n, 3)) - 200 * dirs
    t0 = rng.uniform(-100, 100, n)
    tracks = make_tracks(ev, start, dirs, energy=1000.0, length=400.0, time=t0)
    stage = DirectLight(DirectLightConfig(**CONE_ONLY), detector=det, site=SITE)
    hits = stage.run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    assert len(hits) > 500
    pmt_index = np.searchsorted(det.pmt_id, hits["pmt_id"])
    assert np.array_equal(det.pmt_id[pmt_index], hits["pmt_id"])
    e = hits["event_id"]
    t_exp, z_emit, d_c = t_expected_91(start[e], dirs[e], t0[e], det.pmt_pos[pmt_index])
    np.testing.assert_allclose(hits["time"], t_exp, rtol=0, atol=1e-6)
    assert np.all((z_emit >= 0) & (z_emit <= 400.0))
    # photons hit the PMTs from the front (A(c) > 0 needs c < 0.25)
    w = det.pmt_pos[pmt_index] - start[e] - z_emit[:, None] * dirs[e]
    w /= np.linalg.norm(w, axis=1)[:, None]
    assert np.all(np.sum(w * det.pmt_dir[pmt_index], axis=1) < 0.25)
    np.testing.assert_array_equal(hits["dom_id"], det.pmt_dom_id[pmt_index])
    np.testing.assert_array_equal(hits["channel_id"], det.pmt_channel[pmt_index])
    # sorted by (event_id, time)
    key = np.lexsort((hits["time"], hits["event_id"]))
    assert np.array_equal(key, np.arange(len(hits)))


def test_pmts_facing_away_and_outside_track_get_nothing():
    d_c = 3.0
    w = photon_dir_at([1.0, 0.0, 0.0])
    side = np.array([1.0, 0.0, 0.0])
    pos = [
        [d_c, 0, 100.0],        # looks along the photons (c = +1): A = 0
        [d_c, 0, 100.0],        # c = 0.3 > 0.25: A = 0
        [d_c, 0, 700.0],        # emission point beyond the track end (length 500)
        [d_c, 0, -50.0],        # emission point before the track start
        [0, 310.0, 100.0],      # d_γ > max_distance (300 m)
        [-d_c, 0, 100.0],       # control: head-on, gets light
    ]
    # a direction with c = 0.3: mix w with a vector ⟂ to it
    perp = np.cross(w, [0.0, 1.0, 0.0])
    perp /= np.linalg.norm(perp)
    d03 = 0.3 * w + math.sqrt(1 - 0.09) * perp
    dirs = [w, d03, -w, -w, [0, -1, 0], -photon_dir_at(-side)]
    det = stub_detector(pos, dirs)
    stage = DirectLight(DirectLightConfig(**CONE_ONLY), detector=det, site=SITE)
    mu = stage.expected_npe([0, 0, 0], [0, 0, 1], 100.0, 500.0, det.pmt_pos, det.pmt_dir)[0]
    assert np.all(mu[:5] == 0.0)
    assert mu[5] > 1.0
    ev = np.arange(300, dtype=np.int64)
    hits = stage.run({"mc_tracks": make_tracks(ev, [0, 0, 0], [0, 0, 1], length=500.0)}, make_ctx(det, ev))["mc_hits"]
    assert set(np.unique(hits["pmt_id"])) == {1005}


def test_only_muons_with_length_and_usable_pmts():
    w = photon_dir_at([1.0, 0.0, 0.0])
    det = stub_detector([[3.0, 0, 100.0], [3.0, 0, 100.0]], [-w, -w], ok=[True, False])
    ev = np.arange(50, dtype=np.int64)
    n = len(ev)
    tracks = make_tracks(
        np.repeat(ev, 4), [0, 0, 0], [0, 0, 1], length=np.tile([500.0, 500.0, 0.0, 500.0], n),
        pdgid=np.tile([13, 11, 13, -13], n), track_id=np.tile([0, 1, 2, 3], n),
    )
    stage = DirectLight(DirectLightConfig(showers=False), detector=det, site=SITE)
    hits = stage.run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    assert len(hits) > 0
    assert set(np.unique(hits["origin"])) == {0, 3}   # μ⁻ and μ⁺ with length, not e⁻ or length 0
    assert set(np.unique(hits["pmt_id"])) == {1000}   # the disabled PMT sees nothing


def test_secondaries_factor():
    w = photon_dir_at([1.0, 0.0, 0.0])
    args = ([0, 0, 0], [0, 0, 1], 1000.0, 1000.0, np.array([[10.0, 0, 500.0]]), -w[None, :])
    with_sec = DirectLight(site=SITE).expected_npe(*args, continuous=False)[0][0]
    without = DirectLight(DirectLightConfig(secondaries=False), site=SITE).expected_npe(*args)[0][0]
    lam, kap = radel_wiebusch_coefficients(N_PH)
    assert with_sec / without == pytest.approx(1 + lam + kap * math.log(1000.0), rel=1e-12)
    # energy at the emission point: losses spread along the track (z_emit = 500 − 10/tanθ_c)
    z = 500.0 - 10.0 / TAN_C
    lossy = DirectLight(site=SITE).expected_npe(*args[:4], args[4], args[5], energy_lost=900.0, continuous=False)[0][0]
    assert lossy / without == pytest.approx(1 + lam + kap * math.log(1000.0 - 900.0 * z / 1000.0), rel=1e-12)


def test_config_is_strict():
    with pytest.raises(ValidationError):
        DirectLightConfig(max_distance=100.0)
    with pytest.raises(ValidationError):
        DirectLightConfig(wavelength_min_nm=500.0, wavelength_max_nm=400.0)
    assert get_stage("direct_light") is DirectLight
    assert DirectLight.consumes == ("mc_tracks",) and DirectLight.produces == ("mc_hits",)


def test_tables_mode_config():
    # the tables-mode keys are validated; other modes ignore them and load nothing
    cfg = DirectLightConfig(mode="tables", tables="some.h5", table_shower_points=4, table_build="coarse")
    assert cfg.mode == "tables" and cfg.tables == "some.h5"
    with pytest.raises(ValidationError):
        DirectLightConfig(mode="table")
    with pytest.raises(ValidationError):
        DirectLightConfig(table_shower_points=0)
    with pytest.raises(ValidationError):
        DirectLightConfig(table_build="huge")
    stage = DirectLight(DirectLightConfig(tables="/nonexistent/file.h5"), site=SITE)
    assert stage.light_tables is None and stage.header() == {}


def test_no_muons_gives_empty_table():
    det = stub_detector([[3.0, 0, 100.0]], [[-1, 0, 0]])
    ev = np.arange(3, dtype=np.int64)
    tracks = make_tracks(np.repeat(ev, 2), [0, 0, 0], [0, 0, 1], pdgid=np.tile([11, 12], 3), track_id=np.tile([0, 1], 3))
    out = DirectLight(DirectLightConfig(showers=False), detector=det, site=SITE).run({"mc_tracks": tracks}, make_ctx(det, ev))
    assert len(out["mc_hits"]) == 0
    # neutrinos give no light in any mode
    tracks = make_tracks(ev, [0, 0, 0], [0, 0, 1], pdgid=12)
    out = DirectLight(detector=det, site=SITE).run({"mc_tracks": tracks}, make_ctx(det, ev))
    assert len(out["mc_hits"]) == 0
    assert out["mc_hits"].columns == list(schema.SCHEMAS["mc_hits"].columns)


def test_chunk_invariance():
    from km3sim.detector.geometry import build_orca_block

    det = build_orca_block(n_dus=3)
    rng = np.random.default_rng(11)
    ev = np.sort(rng.choice(10_000, 40, replace=False)).astype(np.int64)
    mult = rng.integers(1, 4, len(ev))
    ev_rows = np.repeat(ev, mult)
    tid = np.concatenate([np.arange(m) for m in mult])
    n = len(ev_rows)
    cz = rng.uniform(-1, 1, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    dirs = np.column_stack([np.sqrt(1 - cz**2) * np.cos(ph), np.sqrt(1 - cz**2) * np.sin(ph), cz])
    start = det.center() + rng.uniform(-30, 30, (n, 3)) - 150 * dirs
    tracks = make_tracks(ev_rows, start, dirs, energy=rng.uniform(10, 1e4, n), length=300.0,
                         time=rng.uniform(0, 50, n), track_id=tid)
    stage = DirectLight(detector=det, site=SITE)
    whole = stage.run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    assert len(np.unique(whole["event_id"])) > 30
    for n_chunks in (2, 5):
        parts = []
        for ids in np.array_split(ev, n_chunks):
            parts.append(stage.run({"mc_tracks": tracks.select_events(ids)}, make_ctx(det, ids))["mc_hits"])
        assert Table.concat(parts).equals(whole)
    # a fresh stage instance and a single event re-simulated alone agree too
    one = ev[17]
    alone = DirectLight(detector=det, site=SITE).run({"mc_tracks": tracks.event(one)}, make_ctx(det, [one]))["mc_hits"]
    assert alone.equals(whole.event(one))
    # a different production seed changes the photo-electrons
    other = stage.run({"mc_tracks": tracks}, make_ctx(det, ev, seed=999))["mc_hits"]
    assert not other.equals(whole)


# ------------------------------------------------------------------------------ showers (direct mode)
def independent_shower_npe(stage, energy, pdgid, pmt_pos, pmt_dir):
    """∫dz p(z) A·A(c)·l·Y(r)·f(cosθ)/(2π r²) by quadrature over the longitudinal profile."""
    from scipy import stats

    from km3sim.propagation import showers as sh

    kind = int(sh.shower_kind(pdgid))
    length = sh.cherenkov_track_length(energy, kind)
    a, b = sh.longitudinal_parameters(energy, kind)
    pdf = stats.gamma(a, scale=sh.RADIATION_LENGTH_WATER_M / b).pdf

    def integrand(z):
        v = np.asarray(pmt_pos) - np.array([0.0, 0.0, z])
        r = np.linalg.norm(v)
        w = v / r
        prof = sh.angular_profile(w[2], stage.n_phase)
        return pdf(z) * PHOTOCATHODE_AREA_M2 * angular_acceptance(w @ pmt_dir) * length * stage.photon_yield(r) * prof / (2 * math.pi * r * r)

    # break the integral where the PMT is seen on the Cherenkov cone (cusp of the profile)
    zz = np.linspace(0.0, 60.0, 60001)
    v = np.asarray(pmt_pos)[None, :] - np.column_stack([np.zeros_like(zz), np.zeros_like(zz), zz])
    g = v[:, 2] / np.linalg.norm(v, axis=1) - 1.0 / stage.n_phase
    cusps = list(zz[:-1][np.sign(g[:-1]) != np.sign(g[1:])])
    return quad(integrand, 0, 60, points=cusps or None, limit=400, epsrel=1e-6)[0]


@pytest.mark.parametrize("pdgid, energy, r, theta_deg", [(11, 100.0, 10.0, 42.0), (22, 1e3, 30.0, 60.0),
                                                          (211, 50.0, 20.0, 30.0), (-11, 1e4, 80.0, 42.0)])
def test_expected_shower_npe_matches_quadrature(pdgid, energy, r, theta_deg):
    stage = DirectLight(site=SITE)
    t = math.radians(theta_deg)
    pmt_pos = np.array([r * math.sin(t), 0.0, 3.0 + r * math.cos(t)])
    pmt_dir = -pmt_pos / np.linalg.norm(pmt_pos)
    mu = stage.expected_shower_npe([0, 0, 0], [0, 0, 1], energy, pdgid, pmt_pos[None], pmt_dir[None])[0]
    ref = independent_shower_npe(stage, energy, pdgid, pmt_pos, pmt_dir)
    # 20 point-like bins of equal light instead of the integral: the sharp peak of the angular
    # profile at the Cherenkov angle is sampled at 20 depths only, which is good to ~5 % at
    # r ≥ 10 m (measured 2–4 % for these cases; 9 % with 10 bins for the hadronic case)
    assert stage.config.shower_bins == 20
    assert mu == pytest.approx(ref, rel=0.06)


def test_shower_hits_statistics_and_times():
    # a 100 GeV e⁻ with fluctuations off: summed npe over 2000 events is Poisson with mean N·Σμ
    r = 12.0
    ct = 1 / N_PH
    pos = np.array([[r * math.sqrt(1 - ct**2), 0.0, 3.0 + r * ct], [0.0, r, 3.0]])
    dirs = -(pos - np.array([0, 0, 3.0])) / r
    det = stub_detector(pos, dirs)
    n_ev = 2000
    ev = np.arange(n_ev, dtype=np.int64)
    tracks = make_tracks(ev, [0, 0, 0], [0, 0, 1], energy=100.0, length=0.0, pdgid=11, time=50.0)
    stage = DirectLight(DirectLightConfig(shower_fluctuations=False), detector=det, site=SITE)
    hits = stage.run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    mu = stage.expected_shower_npe([0, 0, 0], [0, 0, 1], 100.0, 11, det.pmt_pos, det.pmt_dir)
    for k in range(2):
        n = np.sum(hits["pmt_id"] == 1000 + k)
        assert abs(n - n_ev * mu[k]) < 4 * math.sqrt(n_ev * mu[k]), (k, n, n_ev * mu[k])
    assert mu[0] > 5 * mu[1]  # on the Cherenkov cone vs at 90°
    # times: t0 + z/c + |x − z u|·n_g/c with z within the profile (0 … 99.9 % quantile)
    from km3sim.propagation import showers as sh

    z_hi = sh.longitudinal_quantiles([100.0], [0], [0.999])[0, 0]
    zz = np.linspace(0, z_hi, 2001)
    p = pos[0]
    t_of_z = 50.0 + (zz + np.sqrt(p[0] ** 2 + (p[2] - zz) ** 2) * N_G) / C
    sel = hits["pmt_id"] == 1000
    # (grid of 2001 depths: its minimum is above the true one by < 1e-4 ns)
    assert np.all((hits["time"][sel] >= t_of_z.min() - 1e-3) & (hits["time"][sel] <= t_of_z.max() + 1e-3))
    assert np.all(hits["origin"] == 0)
    # with fluctuations the mean is unchanged (EM spread 0.1 %)
    fl = DirectLight(detector=det, site=SITE).run({"mc_tracks": tracks}, make_ctx(det, ev))["mc_hits"]
    assert abs(len(fl) - n_ev * mu.sum()) < 4 * math.sqrt(n_ev * mu.sum())


def test_showers_do_not_change_muon_light():
    from km3sim.detector.geometry import build_orca_block

    det = build_orca_block(n_dus=2)
    ev = np.arange(20, dtype=np.int64)
    c = det.center()
    mu = make_tracks(ev, c - [0, 0, 100], [0, 0, 1], energy=500.0, length=200.0)
    shw = make_tracks(ev, c + [5, 0, 0], [1, 0, 0], energy=30.0, length=0.0, pdgid=211, track_id=np.ones(20, int))
    stage = DirectLight(detector=det, site=SITE)
    only_mu = stage.run({"mc_tracks": mu}, make_ctx(det, ev))["mc_hits"]
    both = stage.run({"mc_tracks": Table.concat([mu, shw]).sort(("event_id", "track_id"))}, make_ctx(det, ev))["mc_hits"]
    assert set(np.unique(both["origin"])) == {0, 1}
    assert both[both["origin"] == 0].equals(only_mu)


@pytest.mark.parametrize("energy", [1.0, 30.0, 1000.0])
def test_shower_reach_drops_only_negligible_light(energy):
    """PMTs beyond the shower reach get less than shower_npe_cut expected pe each (bound of
    the kernel's own expectation), and the reach grows with the shower energy."""
    from km3sim.detector.geometry import build_orca_block
    from km3sim.propagation import showers as sh

    det = build_orca_block(n_dus=7)
    stage = DirectLight(detector=det, site=SITE)
    centre = det.pmt_pos.mean(axis=0)
    direction = np.array([0.3, 0.0, -1.0]) / np.linalg.norm([0.3, 0.0, -1.0])
    mu = stage.expected_shower_npe(centre, direction, energy, 11, det.pmt_pos, det.pmt_dir)
    lengths = np.atleast_1d(sh.cherenkov_track_length(np.array([energy]), sh.shower_kind(np.array([11])))).astype(float)
    reach = stage.shower_reach(lengths)[0]
    dist = np.linalg.norm(det.pmt_pos - centre, axis=1)
    far = dist > reach + 20.0  # beyond the reach from every point of the shower (extent < 20 m)
    assert np.all(mu[far] < stage.config.shower_npe_cut)
    assert mu[~far].sum() > 0
    assert stage.shower_reach(lengths * 10)[0] >= reach
