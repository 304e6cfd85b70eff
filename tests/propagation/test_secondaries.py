"""Light of a muon's continuous losses (km3sim.propagation.secondaries; PHYSICS.md §5.3–5.4).

The showers of the losses that ``muon_propagation`` keeps continuous (0.5 GeV to
max(v_cut·E, e_cut)) must give light: tables against the cross sections, the direct-mode
integral against brute force, photons vs direct mode, light balance against a propagation that
stores those losses as shower rows, and the production auto-fill of the cuts.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from scipy.integrate import quad

from km3sim import schema
from km3sim.detector.geometry import dom_pmt_layout
from km3sim.detector.pmt import PHOTOCATHODE_AREA_M2
from km3sim.errors import ConfigError
from km3sim.propagation import showers as sh
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.propagation.photons import EMITTER_MUON, PhotonTracker
from km3sim.propagation.secondaries import E_CUT_RW_GEV, secondary_light
from km3sim.propagation.stochastic import SEA_WATER_MEDIUM, dsigma_dv
from km3sim.propagation.water import water_for_site
from km3sim.stage import Site, StageContext

SITE = Site()  # ORCA, 240 atm, density 1.038
WATER = water_for_site(SITE)
PMT_DIRS, _ = dom_pmt_layout()
CONE_ONLY = dict(muon_v_cut=0.0, muon_e_cut_gev=0.0)
STAGE = DirectLight(site=SITE)


def ring(radius, z, n_dom):
    phi = (np.arange(n_dom) + 0.5) * 2 * np.pi / n_dom
    return np.column_stack([radius * np.cos(phi), radius * np.sin(phi), np.full(n_dom, z)])


def muon_tracks(event_ids, pos, direction, energy, length, energy_lost=0.0, time=0.0):
    n = len(event_ids)
    pos = np.broadcast_to(np.asarray(pos, dtype=float), (n, 3))
    d = np.broadcast_to(np.asarray(direction, dtype=float), (n, 3))
    return schema.make_table(
        "mc_tracks", event_id=np.asarray(event_ids, dtype=np.int64), track_id=np.zeros(n, dtype=int),
        parent_id=-np.ones(n, dtype=int), pdgid=np.full(n, 13, dtype=np.int32),
        pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2], dir_x=d[:, 0], dir_y=d[:, 1], dir_z=d[:, 2],
        energy=np.full(n, float(energy)), time=np.full(n, float(time)), length=np.full(n, float(length)),
        energy_lost_in_can=np.full(n, float(energy_lost)),
    )


def stub_detector(dom_pos):
    from types import SimpleNamespace

    n = len(dom_pos)
    pmt_pos = np.repeat(dom_pos, 31, axis=0) + 0.2 * np.tile(PMT_DIRS, (n, 1))
    return SimpleNamespace(
        pmt_id=np.arange(n * 31, dtype=np.int64), pmt_dom_id=np.repeat(np.arange(n, dtype=np.int64), 31),
        pmt_channel=np.tile(np.arange(31, dtype=np.int32), n), pmt_pos=pmt_pos,
        pmt_dir=np.tile(PMT_DIRS, (n, 1)), pmt_status_ok=np.ones(n * 31, dtype=bool),
    )


def ctx_for(det, ev, seed=5):
    ev = np.asarray(ev, dtype=np.int64)
    return StageContext(seed=seed, run_id=1, chunk=0, stage_name="direct_light", event_ids=ev, livetime_s=1.0,
                        n_events_run=len(ev), detector=det, site=SITE)


# ------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("energy", [1e3, 1e4])
def test_cont_ratio_matches_cross_section_integral(energy):
    """cont_ratio(E) = Σ_EM E∫v n dσ/dv dv · l_EM + (photonuclear) · l_had(Ē)/Ē over
    0.5 GeV/E < v < 0.05, with the integral done independently (scipy quad in ln v of the
    propagation's own n dσ/dv). The tables (loss_coefficient: 400-node trapezoid in ln v; E on
    exact grid nodes) agree to < 1e-3; 5e-3 allows for the geometric-mean energy of the
    hadronic part (a ~3 % share) vs the exact energy-weighted mean used here."""
    v_lo, v_hi = E_CUT_RW_GEV / energy, 0.05
    medium = SEA_WATER_MEDIUM.with_density(SITE.water_density_g_cm3)

    def loss(process, power=1):
        f = lambda lv: math.exp(lv) ** (power + 1) * float(dsigma_dv(process, energy, math.exp(lv), medium))
        return quad(f, math.log(v_lo), math.log(v_hi), limit=200, epsrel=1e-8)[0]

    em = sum(loss(p) for p in ("brems", "pair", "knockon")) * energy  # GeV/m
    had = loss("photonuclear") * energy
    had_mean = energy * loss("photonuclear", 2) / loss("photonuclear")
    l_em = float(sh.cherenkov_track_length(1.0, sh.KIND_ELECTRON))
    l_had = float(np.ravel(sh.cherenkov_track_length(np.array([had_mean]), np.array([sh.KIND_HADRON])))[0]) / had_mean
    expected = em * l_em + had * l_had
    table = secondary_light(STAGE.n_phase, 0.05, 1.0, SITE.water_density_g_cm3)
    assert table.ratios(energy)[1] == pytest.approx(expected, rel=5e-3)
    # the figures: ~1x the bare muon light at 1 TeV, ~9x at 10 TeV
    assert 0.8 < expected / (energy / 1e3) ** 0.97 < 1.2


def test_cont_ratio_cuts():
    e = np.array([10.0, 100.0, 1e3, 1e4])
    default = secondary_light(STAGE.n_phase, 0.05, 1.0).ratios(e)[1]
    assert np.all(secondary_light(STAGE.n_phase, 0.0, 0.0).ratios(e)[1] == 0.0)  # every loss a row
    no_stoch = secondary_light(STAGE.n_phase, 1.0, 1.0).ratios(e)[1]  # stochastic: false
    assert np.all(no_stoch > default) and np.all(np.diff(default) > 0)
    # below 20 GeV the range is 0.5–1 GeV (e_cut), independent of v_cut
    assert default[0] == pytest.approx(secondary_light(STAGE.n_phase, 0.01, 1.0).ratios(10.0)[1], rel=1e-12)


# ------------------------------------------------------------------------------ direct mode
def test_continuous_npe_matches_brute_force_integration():
    """The node integral of continuous_shower_npe against a trapezoid over 4e5 depths of the
    point-emitter fluence A·A(c)·cont(E(z))·Y(r)·f(cosθ)/(2πr²) (the shower-bin formula).
    The 32 nodes are equally spaced in the angular profile, so PMTs lit by its tails (close
    to the track and facing forward: only light emitted backwards reaches them) are resolved
    by few nodes: of the PMTs with more than 1 % of the largest expectation, most agree to
    3 % (median 0.3 %, 90 % within 2 % in a 300-PMT sample), the tail-lit ones to 20 %; the sum
    over PMTs to 1 % (measured +0.2 … +0.4 %)."""
    rng = np.random.default_rng(1)
    energy, length, lost = 3000.0, 800.0, 1500.0
    n = 60
    rho = np.exp(rng.uniform(math.log(2.0), math.log(150.0), n))
    along = rng.uniform(-50.0, 850.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    pos = np.column_stack([rho * np.cos(phi), rho * np.sin(phi), along])
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    mu = STAGE.expected_npe([0, 0, 0], [0, 0, 1], energy, length, pos, d, energy_lost=lost, continuous=True)[0]
    mu_cone = STAGE.expected_npe([0, 0, 0], [0, 0, 1], energy, length, pos, d, energy_lost=lost, continuous=False)[0]
    mu_cont = mu - mu_cone
    z = np.linspace(0.0, length, 400001)
    cont = STAGE.secondary_light.ratios(energy - lost * z / length)[1]
    acc_grid = np.linspace(-1.0, 1.0, len(STAGE._acc_table))
    ref = np.empty(n)
    for i in range(n):
        v = pos[i] - np.column_stack([np.zeros_like(z), np.zeros_like(z), z])
        r = np.linalg.norm(v, axis=1)
        w = v / r[:, None]
        f = sh.angular_profile(w[:, 2], STAGE.n_phase)
        acc = np.interp(w @ d[i], acc_grid, STAGE._acc_table)
        y = STAGE.photon_yield(np.minimum(r, 300.0)) * (r <= 300.0)
        ref[i] = np.trapezoid(PHOTOCATHODE_AREA_M2 * acc * cont * y * f / (2 * np.pi * r * r), z)
    big = ref > 0.01 * ref.max()
    assert big.sum() > 15
    rel = np.abs(mu_cont[big] / ref[big] - 1.0)
    assert np.mean(rel < 0.03) > 0.8 and rel.max() < 0.2, np.sort(rel)
    assert mu_cont.sum() == pytest.approx(ref.sum(), rel=0.01)


def test_total_light_rises_as_the_tables_predict():
    """In a uniform detector of randomly oriented PMTs every emitted photon has the same
    detection chance whatever its direction (photon path × PMT density), so the total expected
    npe of a muon (no energy loss, no stochastic rows) scales as 1 + ΔL/L(E) + cont(E): from
    100 GeV (cont 0.14) to 10 TeV (cont 9.1) the light rises by 7.5x. The PMT sample (3e4
    PMTs uniform within 150 m of the middle 1 km of a 3 km track) reproduces the uniform
    detector to a few %: the cone/profile detection ratio is found within 5 % of 1."""
    rng = np.random.default_rng(3)
    n = 30000
    rho = 150.0 * np.sqrt(rng.uniform(size=n))
    phi = rng.uniform(0, 2 * np.pi, n)
    pos = np.column_stack([rho * np.cos(phi), rho * np.sin(phi), rng.uniform(1000.0, 2000.0, n)])
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    sl = STAGE.secondary_light
    totals = {}
    for e in (100.0, 1e4):
        mu = STAGE.expected_npe([0, 0, 0], [0, 0, 1], e, 3000.0, pos, d, continuous=True)[0].sum()
        cone = STAGE.expected_npe([0, 0, 0], [0, 0, 1], e, 3000.0, pos, d, continuous=False)[0].sum()
        rw, cont = sl.ratios(e)
        # detection of the profile light per unit light relative to the cone light
        assert (mu - cone) / cont / (cone / (1 + rw)) == pytest.approx(1.0, abs=0.05)
        totals[e] = mu
    rw0, c0 = sl.ratios(100.0)
    rw1, c1 = sl.ratios(1e4)
    predicted = (1 + rw1 + c1) / (1 + rw0 + c0)
    assert 7.0 < predicted < 8.0
    assert totals[1e4] / totals[100.0] == pytest.approx(predicted, rel=0.05)


def test_stage_continuous_hits_counts_and_times():
    """Direct mode: the continuous-shower pe come on their own random stream (the cone pe are
    those of the cone-only stage), their number is Poisson with the expected_npe difference
    (DOM-centre geometry in the stage, PMT positions in expected_npe: 2 % for DOMs at >= 10 m),
    and no pe arrives before the earliest possible time (emission at cosθ = 1/n_g)."""
    dom_pos = np.vstack([ring(10.0, 150.0, 8), ring(30.0, 60.0, 8), ring(10.0, 10.0 / STAGE.tan_c - 3.0, 6)])
    det = stub_detector(dom_pos)
    ev = np.arange(40, dtype=np.int64)
    tracks = muon_tracks(ev, [0, 0, 0], [0, 0, 1], 5000.0, 300.0, energy_lost=1000.0, time=10.0)
    full = DirectLight(detector=det, site=SITE).run({"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    cone = DirectLight(DirectLightConfig(**CONE_ONLY), detector=det, site=SITE).run(
        {"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    key = lambda h: set(zip(h["event_id"].tolist(), h["pmt_id"].tolist(), np.round(h["time"], 9).tolist()))
    assert key(cone) <= key(full)
    n_cont = len(full) - len(cone)
    mu = STAGE.expected_npe([0, 0, 0], [0, 0, 1], 5000.0, 300.0, det.pmt_pos, det.pmt_dir, energy_lost=1000.0, continuous=True)[0]
    mu_cone = STAGE.expected_npe([0, 0, 0], [0, 0, 1], 5000.0, 300.0, det.pmt_pos, det.pmt_dir, energy_lost=1000.0,
                                 continuous=False)[0]
    m = len(ev) * (mu - mu_cone).sum()
    assert m > 2000
    assert abs(n_cont - m) < 0.02 * m + 4 * math.sqrt(m), (n_cont, m)
    # earliest arrival: t0 + (a − ρ/tanθ_g + ρ n_g/sinθ_g)/c with cosθ_g = 1/n_g
    pmt = full["pmt_id"]
    p = det.pmt_pos[pmt]
    rho = np.hypot(p[:, 0], p[:, 1])
    cg = 1.0 / STAGE.n_group
    sg = math.sqrt(1 - cg * cg)
    t_min = 10.0 + (p[:, 2] - rho * cg / sg + rho * STAGE.n_group / sg) / 0.299792458
    # (the stage takes the continuous-light geometry at the DOM centre, 0.2 m from the PMT)
    assert np.all(full["time"] >= t_min - 0.2 * STAGE.n_group / 0.299792458 - 0.01)
    # the ring before the track start (cone emission point z < 0) sees only continuous light
    before = pmt >= 16 * 31
    assert before.sum() > 50 and not np.any(cone["pmt_id"] >= 16 * 31)


def test_secondaries_false_switches_both_parts_off():
    bare = DirectLight(DirectLightConfig(secondaries=False), site=SITE)
    pos = np.array([[10.0, 0.0, 300.0], [15.0, 0.0, -5.0]])
    dirs = np.array([[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    a = bare.expected_npe([0, 0, 0], [0, 0, 1], 1e4, 600.0, pos, dirs, continuous=True)[0]
    b = bare.expected_npe([0, 0, 0], [0, 0, 1], 1e4, 600.0, pos, dirs, continuous=False)[0]
    np.testing.assert_array_equal(a, b)
    assert a[1] == 0.0 and STAGE.expected_npe([0, 0, 0], [0, 0, 1], 1e4, 600.0, pos, dirs, continuous=True)[0][1] > 0.0
    tr = PhotonTracker(WATER, ring(10.0, 0.0, 2), np.arange(3) * 31, np.tile(PMT_DIRS, (2, 1)), secondaries=False)
    assert tr.muon_photons(100.0, 1e4) == pytest.approx(100.0 * tr.photons_per_metre, rel=1e-12)
    on = PhotonTracker(WATER, ring(10.0, 0.0, 2), np.arange(3) * 31, np.tile(PMT_DIRS, (2, 1)))
    rw, cont = on.secondary_light.ratios(1e4)
    assert on.muon_photons(100.0, 1e4) == pytest.approx(100.0 * on.photons_per_metre * (1 + rw + cont), rel=1e-9)


# ------------------------------------------------------------------------------ photons mode
@pytest.mark.parametrize("where", ["before_start", "on_cone"])
def test_photons_mode_matches_direct_mode(where):
    """Photon tracker (no scattering) vs the direct-mode expectation for a 10 TeV muon losing
    energy at 62.5 GeV/m (E(z) and the thinning maximum matter). 'before_start': a ring whose
    cone emission point is 3 m before the track start gets only continuous-shower light
    (emitted with the shower angular profile); 'on_cone': both parts (cont ≈ 7x the cone
    light here). Poisson counts of ~3000–10000: 3 % + 4σ (DOM sphere vs PMT point geometry
    ~1 %, the direct node integral < 1 %)."""
    tan_c = STAGE.tan_c
    energy = 1e4
    if where == "before_start":
        length = 30.0
        dom_pos = ring(8.0, 8.0 / tan_c - 3.0, 40)
        n_ev = 8
    else:
        length = 80.0
        dom_pos = ring(20.0, 40.0 + 20.0 / tan_c, 40)
        n_ev = 4
    lost = 62.5 * length
    tr = PhotonTracker(WATER, dom_pos, np.arange(len(dom_pos) + 1) * 31, np.tile(PMT_DIRS, (len(dom_pos), 1)),
                       scattering=False, grid_cell_m=5.0)
    em = PhotonTracker.single_emitter(EMITTER_MUON, [0, 0, 0], [0, 0, 1], tr.muon_photons(length, energy, lost),
                                      length=length, energy=energy, energy_lost=lost)
    n_obs = sum(len(tr.track(em, np.array([i + 1], dtype=np.uint64))) for i in range(n_ev))
    pmt_pos = np.repeat(dom_pos, 31, axis=0)
    pmt_dir = np.tile(PMT_DIRS, (len(dom_pos), 1))
    mu = STAGE.expected_npe([0, 0, 0], [0, 0, 1], energy, length, pmt_pos, pmt_dir, energy_lost=lost, continuous=True)
    m = n_ev * mu[0].sum()
    if where == "before_start":
        assert np.all(np.isnan(mu[1]) | (mu[1] < 0))  # no cone light: emission point before the start
    assert m > 1500
    assert abs(n_obs - m) < 0.03 * m + 4 * math.sqrt(m), (n_obs, m)


# ------------------------------------------------------------------------------ light balance
@pytest.mark.slow
def test_continuous_light_balances_shower_rows_of_a_fine_propagation():
    """Light of the continuous part (default cuts v_cut 0.05, e_cut 1 GeV) ≈ light of the shower
    rows of the same losses when the propagation stores them (v_cut 5e-4, e_cut 0.5 GeV: at
    E ≤ 1 TeV every loss above 0.5 GeV is a row; its sampled losses stay below 90 % of the
    total up to ~12 TeV, so it does not scale its cross sections down here). 1 TeV muons, 300
    with each propagation, cross the can (400 m, entering at ~760 GeV) along the axis of 9 rings
    of 6 DOMs at 25 m, 40 m apart; rows of B with energy < 0.05·E(s) (E(s) from the muon's
    loss spread along its path) are the losses A keeps continuous (~49 GeV per muon in ~20
    rows). Their light per muon fluctuates by ~55 % (showers near a DOM), so the mean of 300
    is known to ~3 %: 10 % is > 3σ (measured: A/B = 1.04); a missing continuous part, or one
    counted twice, fails by far."""
    from km3sim.detector.geometry import build_orca_block
    from km3sim.propagation.light import shower_light_arrays
    from km3sim.propagation._light_kernels import expected_shower_npe
    from km3sim.propagation.muons import MuonPropagation

    det = build_orca_block(n_dus=1)
    c = det.pmt_pos.mean(axis=0)
    # rings in the planes x = c_x + (-160 … 160 m) around the muons' line
    dom_pos = np.vstack([ring(25.0, x, 6)[:, [2, 0, 1]] for x in np.arange(-160.0, 161.0, 40.0)]) + c
    pmt_pos = np.repeat(dom_pos, 31, axis=0)
    pmt_dir = np.tile(PMT_DIRS, (len(dom_pos), 1))
    n = 300
    results = {}
    for label, cfg in (("A", dict(v_cut=0.05, e_cut_gev=1.0)), ("B", dict(v_cut=5e-4, e_cut_gev=0.5))):
        ev = np.arange(n, dtype=np.int64)
        tracks = muon_tracks(ev, c + np.array([-600.0, 0.0, 0.0]), [1, 0, 0], 1000.0, 0.0)
        prop = MuonPropagation(MuonPropagation.Config(**cfg), detector=det, site=SITE)
        ctx = StageContext(seed=11 if label == "A" else 12, run_id=1, chunk=0, stage_name="muon_propagation",
                           event_ids=ev, livetime_s=1.0, n_events_run=n, detector=det, site=SITE)
        out = prop.run({"mc_tracks": tracks, "events": schema.empty_table("events")}, ctx)["mc_tracks"]
        results[label] = out
    # A: the continuous-shower light of each muon
    stage_a = DirectLight(DirectLightConfig(muon_v_cut=0.05, muon_e_cut_gev=1.0), site=SITE)
    mu_a = results["A"][(np.abs(results["A"]["pdgid"]) == 13) & (results["A"]["length"] > 0)]
    light_a = 0.0
    for i in range(len(mu_a)):
        p = np.array([mu_a["pos_x"][i], mu_a["pos_y"][i], mu_a["pos_z"][i]])
        args = (p, [1, 0, 0], mu_a["energy"][i], mu_a["length"][i], pmt_pos, pmt_dir)
        lost = mu_a["energy_lost_in_can"][i]
        light_a += (stage_a.expected_npe(*args, energy_lost=lost, continuous=True)[0].sum()
                    - stage_a.expected_npe(*args, energy_lost=lost, continuous=False)[0].sum())
    # B: shower rows below 0.05·E(s)
    b = results["B"]
    mu_b = b[(np.abs(b["pdgid"]) == 13) & (b["length"] > 0)]  # (a rare one may stop before the can)
    assert len(mu_a) > 0.95 * n and len(mu_b) > 0.95 * n and np.median(mu_b["length"]) > 350.0
    rows = b[b["parent_id"] >= 0]
    parent = mu_b[np.searchsorted(mu_b["event_id"], rows["event_id"])]
    s = rows["pos_x"] - parent["pos_x"]
    e_s = parent["energy"] - parent["energy_lost_in_can"] * s / parent["length"]
    small = rows[rows["energy"] < 0.05 * e_s]
    assert len(small) > 10 * n
    _, length, _, z_mid, _ = shower_light_arrays(small, 20)
    light_b = 0.0
    params = STAGE._shower_params()
    for i in range(len(small)):
        p = np.array([small["pos_x"][i], small["pos_y"][i], small["pos_z"][i]])
        light_b += expected_shower_npe(p, np.array([1.0, 0.0, 0.0]), float(length[i]), np.ascontiguousarray(z_mid[i]),
                                       pmt_pos, pmt_dir, *params).sum()
    per_a, per_b = light_a / len(mu_a), light_b / len(mu_b)
    print(f"continuous light {per_a:.3f} pe/muon, rows {per_b:.3f} pe/muon")
    assert per_a > 10.0
    assert per_a / per_b == pytest.approx(1.0, abs=0.10), (per_a, per_b)


# ------------------------------------------------------------------------------ production config
_PROD = """\
name: cuts
seed: 1
output: {out}
detector: {{builder: orca, n_dus: 2}}
site: orca
runs:
  - {{run_id: 1, livetime_s: 1.0}}
stages:
  - atmospheric_muons: {{}}
  - muon_propagation: {mp}
  - direct_light: {dl}
"""


def _load(tmp_path, mp="{}", dl="{}"):
    from km3sim.pipeline.config import load_production

    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(_PROD.format(out=tmp_path / "out", mp=mp, dl=dl)))
    return load_production(path), path


def _light_cfg(prod):
    return next(s.config for s in prod.stage_specs() if s.name == "direct_light")


def test_production_fills_the_muon_cuts(tmp_path):
    prod, _ = _load(tmp_path, mp="{v_cut: 0.02, e_cut_gev: 3.0}")
    cfg = _light_cfg(prod)
    assert (cfg.muon_v_cut, cfg.muon_e_cut_gev) == (0.02, 3.0)
    prod, _ = _load(tmp_path, mp="{stochastic: false}")
    assert _light_cfg(prod).muon_v_cut == 1.0
    prod, _ = _load(tmp_path, mp="{v_cut: 0.02}", dl="{muon_v_cut: 0.02, mode: direct}")  # equal: fine
    assert _light_cfg(prod).muon_v_cut == 0.02 and _light_cfg(prod).muon_e_cut_gev == 1.0


def test_production_rejects_conflicting_muon_cuts(tmp_path):
    with pytest.raises(ConfigError, match=r"direct_light\.muon_v_cut .*muon_propagation\.v_cut"):
        _load(tmp_path, mp="{v_cut: 0.02}", dl="{muon_v_cut: 0.05}")
    with pytest.raises(ConfigError, match=r"direct_light\.muon_e_cut_gev .*muon_propagation\.e_cut_gev"):
        _load(tmp_path, dl="{muon_e_cut_gev: 2.0}")
    with pytest.raises(ConfigError, match=r"stochastic: false"):
        _load(tmp_path, mp="{stochastic: false}", dl="{muon_v_cut: 0.05}")
