"""Tests of the photon tracker (PHYSICS.md §5, §6.2–6.3, §7) and of photons mode of direct_light.

The key cross-check: without scattering, the tracker's mean npe per DOM agrees with the
analytic direct-light expectation of the direct_light stage, for muons and for showers, at
5–150 m. DOMs are put on rings around the emitter (all 31 PMTs at the DOM centre, so the
direct calculation and the tracker's DOM sphere see the same point), which collects many DOMs
at the same distance per event.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from km3sim import schema
from km3sim.detector.geometry import build_orca_block, dom_pmt_layout
from km3sim.propagation import _photon_kernels as pk
from km3sim.propagation import showers as sh
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.propagation.photons import (
    DOM_RADIUS_M,
    EMITTER_ISOTROPIC,
    EMITTER_MUON,
    PhotonTracker,
    build_dom_grid,
    sample_scattering_cosines,
)
from km3sim.propagation.water import phase_function, water_for_site
from km3sim.stage import Site, StageContext
from km3sim.table import Table

SITE = Site()
WATER = water_for_site(SITE)
PMT_DIRS, _ = dom_pmt_layout()
STAGE = DirectLight(DirectLightConfig(secondaries=False, shower_fluctuations=False), site=SITE)


def ring(radius, z, n_dom):
    phi = (np.arange(n_dom) + 0.5) * 2 * np.pi / n_dom
    return np.column_stack([radius * np.cos(phi), radius * np.sin(phi), np.full(n_dom, z)])


def tracker_for(dom_pos, grid_cell_m=5.0, **kw):
    n = len(dom_pos)
    return PhotonTracker(WATER, dom_pos, np.arange(n + 1) * 31, np.tile(PMT_DIRS, (n, 1)), secondaries=False,
                         grid_cell_m=grid_cell_m, **kw)


def make_tracks(event_ids, pdgid, pos, dirs, energy, length=0.0, time=0.0, track_id=None):
    n = len(event_ids)
    pos = np.broadcast_to(np.asarray(pos, dtype=float), (n, 3))
    dirs = np.broadcast_to(np.asarray(dirs, dtype=float), (n, 3))
    return schema.make_table(
        "mc_tracks", event_id=np.asarray(event_ids, dtype=np.int64),
        track_id=np.zeros(n, dtype=int) if track_id is None else np.asarray(track_id),
        parent_id=-np.ones(n, dtype=int), pdgid=np.broadcast_to(np.asarray(pdgid), (n,)).astype(np.int32),
        pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2], dir_x=dirs[:, 0], dir_y=dirs[:, 1], dir_z=dirs[:, 2],
        energy=np.broadcast_to(np.asarray(energy, dtype=float), (n,)),
        time=np.broadcast_to(np.asarray(time, dtype=float), (n,)),
        length=np.broadcast_to(np.asarray(length, dtype=float), (n,)),
        energy_lost_in_can=np.zeros(n),
    )


def compare(n_obs, mu_total):
    """|obs − exp| within 10 % of exp plus 4 Poisson σ (npe per event is Poisson)."""
    assert abs(n_obs - mu_total) < 0.1 * mu_total + 4.0 * math.sqrt(mu_total), (n_obs, mu_total)


# ------------------------------------------------------------------------------ geometry
def test_grid_first_hit_matches_brute_force():
    det = build_orca_block(n_dus=7)
    dom_pos = det.dom_pos
    r = DOM_RADIUS_M
    grid = build_dom_grid(dom_pos, r, 3.0)
    rng = np.random.default_rng(3)
    c = dom_pos.mean(axis=0)
    n_found = 0
    for _ in range(3000):
        # rays aimed near a random DOM so that many hit
        target = dom_pos[rng.integers(len(dom_pos))] + rng.normal(0, 0.12, 3)
        p = c + rng.uniform(-60, 60, 3)
        d = target - p
        dist = np.linalg.norm(d)
        d /= dist
        s_max = dist * rng.uniform(0.5, 1.5)
        k, s = pk.first_dom_hit(p[0], p[1], p[2], d[0], d[1], d[2], s_max, dom_pos, r * r, grid.x0, grid.y0,
                                1.0 / grid.cell, grid.nx, grid.ny, grid.cell_start, grid.cell_doms,
                                grid.box_lo[2], grid.box_hi[2])
        v = dom_pos - p
        b = v @ d
        disc = b**2 - (np.sum(v * v, axis=1) - r * r)
        s_all = np.where((disc >= 0) & (b > 0), b - np.sqrt(np.clip(disc, 0, None)), np.inf)
        j = int(np.argmin(s_all))
        if s_all[j] <= s_max:
            n_found += 1
            assert k == j and s == pytest.approx(s_all[j], abs=1e-9)
        else:
            assert k == -1
    assert n_found > 1000


def test_detection_probability_below_one():
    tr = tracker_for(ring(10.0, 0.0, 3))
    assert 0.0 < tr._max_detection_probability() < 0.5
    assert tr.detect_coef == pytest.approx(math.pi * 0.047462**2 / (math.pi * 0.216**2))


# ------------------------------------------------------------------------------ scattering model
def test_phase_function_sampling():
    x = sample_scattering_cosines(400_000, seed=17)
    # mean cosine (1 − f)·g = 0.767 (PHYSICS.md §6.3); σ of the mean = std/sqrt(N) ≈ 0.35/632 = 5.5e-4
    assert x.mean() == pytest.approx((1 - 0.17) * 0.924, abs=4 * x.std() / math.sqrt(len(x)))
    edges = np.concatenate([np.linspace(-1, 0.8, 19), np.linspace(0.82, 1.0, 10)])
    h, _ = np.histogram(x, edges)
    p = np.array([2 * math.pi * quad(phase_function, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:])])
    exp = p * len(x)
    chi2 = np.sum((h - exp) ** 2 / exp)
    assert stats.chi2.sf(chi2, len(h) - 1) > 1e-4, chi2
    # the Rayleigh-like part alone (f = 1): ∝ 1 + 0.835 x², mean 0, <x²> = (1/3 + 0.835/5)/(1 + 0.835/3)
    xr = sample_scattering_cosines(200_000, seed=5, f=1.0)
    assert abs(xr.mean()) < 4 * 0.6 / math.sqrt(len(xr))
    assert np.mean(xr**2) == pytest.approx((1 / 3 + 0.835 / 5) / (1 + 0.835 / 3), abs=4 * 0.3 / math.sqrt(len(xr)))


def test_isotropic_source_without_absorption_and_scattering():
    # flux through a DOM at distance r from an isotropic point: N·πR²/(4πr²) DOM hits; detected
    # fraction of a hit: Σ_k A_pmt A(c_k)/(πR²), computed independently here for the direction
    dom = np.array([[0.0, 0.0, 10.0]])
    tr = tracker_for(dom, scattering=False, absorption=False)
    n = 4_000_000
    em = PhotonTracker.single_emitter(EMITTER_ISOTROPIC, [0, 0, 0], [0, 0, 1], n)
    hits = tr.track(em, np.array([99], dtype=np.uint64), exact_count=True)
    assert hits.n_emitted[0] == n
    c = PMT_DIRS @ np.array([0.0, 0.0, 1.0])
    from km3sim.detector.pmt import angular_acceptance
    p_det = np.sum(angular_acceptance(c)) * math.pi * 0.047462**2 / (math.pi * 0.216**2)
    mu = n * (0.216**2 / (4 * 10.0**2)) * p_det
    assert abs(len(hits) - mu) < 4 * math.sqrt(mu), (len(hits), mu)
    # arrival time = path·n_g(λ)/c with the path ≈ 30 m − R
    ng = WATER.refractive_index_group(hits.wavelength)
    # (n_g tabulated every 0.5 nm in the tracker: 1e-6)
    np.testing.assert_allclose(hits.time, hits.path_length * ng / 0.299792458, rtol=2e-6)
    # entry into the sphere: between 10 − R and sqrt(10² − R²) from the source
    assert np.all((hits.path_length > 10 - 0.216 - 1e-9) & (hits.path_length < math.sqrt(100 - 0.216**2) + 1e-9))
    # PMTs chosen ∝ A(c_k): only downward-looking PMTs (c < 0.25) and ∝ acceptance
    counts = np.bincount(hits.pmt, minlength=31)
    np.testing.assert_array_equal(counts[angular_acceptance(c) == 0], 0)


# ------------------------------------------------------------------------------ direct vs tracker
@pytest.mark.parametrize("d_c, n_dom, n_ev", [(5.0, 24, 10), (20.0, 100, 10), (50.0, 250, 20),
                                              pytest.param(150.0, 300, 500, marks=pytest.mark.slow)])
def test_muon_tracker_matches_direct_light(d_c, n_dom, n_ev):
    z_ring = 100.0
    dom_pos = ring(d_c, z_ring, n_dom)
    tr = tracker_for(dom_pos, scattering=False)
    z_emit = z_ring - d_c / STAGE.tan_c
    length = 30.0
    start = np.array([0.0, 0.0, z_emit - 0.5 * length])
    pmt_pos = np.repeat(dom_pos, 31, axis=0)
    pmt_dir = np.tile(PMT_DIRS, (n_dom, 1))
    mu = STAGE.expected_npe(start, [0, 0, 1], 100.0, length, pmt_pos, pmt_dir)[0]
    em = PhotonTracker.single_emitter(EMITTER_MUON, start, [0, 0, 1], tr.muon_photons(length, 100.0),
                                      length=length, energy=100.0)
    n_obs = sum(len(tr.track(em, np.array([i + 1], dtype=np.uint64))) for i in range(n_ev))
    compare(n_obs, n_ev * mu.sum())


@pytest.mark.parametrize("r, n_dom, n_ev, energy", [(5.0, 20, 4, 10.0), (20.0, 80, 4, 30.0), (50.0, 200, 3, 100.0),
                                                    pytest.param(150.0, 1000, 4, 300.0, marks=pytest.mark.slow)])
def test_shower_tracker_matches_direct_light(r, n_dom, n_ev, energy):
    # ring on the Cherenkov cone about the shower's median depth, plus a ring at 90° (profile tail)
    z_med = sh.longitudinal_quantiles([energy], [sh.KIND_ELECTRON], [0.5])[0, 0]
    ct = 1.0 / STAGE.n_phase
    st = math.sqrt(1 - ct * ct)
    cone = ring(r * st, z_med + r * ct, n_dom)
    side = ring(r, z_med, n_dom)
    dom_pos = np.vstack([cone, side])
    tr = tracker_for(dom_pos, scattering=False)
    ev = np.arange(n_ev, dtype=np.int64)
    tracks = make_tracks(ev, 11, [0, 0, 0], [0, 0, 1], energy)
    em = tr.emitters_from_tracks(tracks, ev, fluctuations=False)
    hits = tr.track(em, np.arange(1, n_ev + 1, dtype=np.uint64))
    pmt_dir = np.tile(PMT_DIRS, (2 * n_dom, 1))
    mu = STAGE.expected_shower_npe([0, 0, 0], [0, 0, 1], energy, 11, np.repeat(dom_pos, 31, axis=0), pmt_dir)
    mu_cone, mu_side = mu[: 31 * n_dom].sum(), mu[31 * n_dom:].sum()
    n_cone = np.sum(hits.dom < n_dom)
    compare(n_cone, n_ev * mu_cone)
    compare(len(hits) - n_cone, n_ev * mu_side)
    assert mu_side < 0.2 * mu_cone


def test_hadronic_shower_light_and_fluctuations():
    # π⁺ "hadronic system": mean light 0.74 of an e⁻ of 100 GeV, and its event-to-event spread
    dom_pos = ring(20.0 * math.sin(math.acos(1 / STAGE.n_phase)), 20.0 / STAGE.n_phase, 60)
    tr = tracker_for(dom_pos, scattering=False)
    ev = np.arange(40, dtype=np.int64)
    had = tr.emitters_from_tracks(make_tracks(ev, 211, [0, 0, 0], [0, 0, 1], 10.0), ev)
    em = tr.emitters_from_tracks(make_tracks(ev, 11, [0, 0, 0], [0, 0, 1], 10.0), ev)
    ratio = sh.cherenkov_track_length(10.0, sh.KIND_HADRON) / sh.cherenkov_track_length(10.0, sh.KIND_ELECTRON)
    assert had.mean_photons[0] / em.mean_photons[0] == pytest.approx(ratio, rel=1e-12)
    rel = 1.1920 * 10**0.8077 / (3.3355 * 10**1.0366)  # 21 % at 10 GeV (PHYSICS.md §5.4)
    assert had.rel_sigma[0] == pytest.approx(rel, rel=1e-3)
    seeds = np.arange(1, 41, dtype=np.uint64)
    n_h = tr.track(had, seeds).n_emitted
    # the photon number fluctuates by 21 % (≫ Poisson 0.2 %): sample σ/mean within 35 % of it
    # (40 events: relative error of a standard deviation ≈ 1/sqrt(2·39) = 11 %, so > 3 σ)
    assert n_h.std(ddof=1) / n_h.mean() == pytest.approx(rel, rel=0.35)
    n_e = tr.track(em, seeds).n_emitted
    assert n_e.std(ddof=1) / n_e.mean() < 0.01


# ------------------------------------------------------------------------------ scattering
def test_scattering_delays_light_and_reaches_off_cone_doms():
    d_c = 40.0
    length = 150.0
    start = np.array([0.0, 0.0, 100.0 - d_c / STAGE.tan_c - 0.5 * length])
    cone = ring(d_c, 100.0, 120)
    # 20 m above the track start: the Cherenkov emission point would be 24 m before the start,
    # so no direct light can reach them
    behind = ring(d_c, start[2] + 20.0, 120)
    dom_pos = np.vstack([cone, behind])
    res = {}
    for scat in (False, True):
        tr = tracker_for(dom_pos, scattering=scat)
        em = PhotonTracker.single_emitter(EMITTER_MUON, start, [0, 0, 1], tr.muon_photons(length, 100.0),
                                          length=length, energy=100.0)
        hits = [tr.track(em, np.array([s], dtype=np.uint64)) for s in range(1, 7)]
        t = np.concatenate([h.time for h in hits])
        dom = np.concatenate([h.dom for h in hits])
        # time residual w.r.t. the direct Cherenkov time at the DOM centre (§9.1)
        pos = dom_pos[dom]
        along = pos[:, 2] - start[2]
        dc = np.hypot(pos[:, 0], pos[:, 1])
        t_exp = (along - dc / STAGE.tan_c + dc / STAGE.sin_c * STAGE.n_group) / 0.299792458
        # per-photon expectation with the photon's own n(λ) and n_g(λ) (chromatic dispersion)
        lam = np.concatenate([h.wavelength for h in hits])
        n_ph = WATER.refractive_index_phase(lam)
        sin_l = np.sqrt(1 - 1 / n_ph**2)
        tan_l = sin_l * n_ph
        t_lam = (along - dc / tan_l + dc / sin_l * WATER.refractive_index_group(lam)) / 0.299792458
        res[scat] = (t - t_lam, dom, np.concatenate([h.n_scatter for h in hits]), t - t_exp)
    t0, dom0, ns0, tr0 = res[False]
    t1, dom1, ns1, tr1 = res[True]
    assert np.all(ns0 == 0) and np.any(ns1 > 0)
    # unscattered: on time within the DOM size (0.216 m ≈ 1 ns), nothing behind; with the
    # reference-wavelength time of §9.1 the chromatic spread is a few ns
    assert np.all(np.abs(t0[dom0 < 120]) < 1.2)
    assert np.percentile(np.abs(tr0), 90) < 5.0
    assert np.sum(dom0 >= 120) == 0
    # scattered: a delayed tail (> 10 ns) of scattered photons, and light behind the track start
    late = t1[dom1 < 120] > 10.0
    assert late.mean() > 0.03
    assert np.all(ns1[dom1 < 120][late] > 0)
    assert np.sum(dom1 >= 120) > 0
    assert np.all(t1 > -5.0)


# ------------------------------------------------------------------------------ stage, photons mode
def stub_detector(dom_pos):
    n = len(dom_pos)
    return SimpleNamespace(
        pmt_id=np.arange(5000, 5000 + 31 * n, dtype=np.int64),
        pmt_dom_id=np.repeat(np.arange(100, 100 + n, dtype=np.int64), 31),
        pmt_channel=np.tile(np.arange(31, dtype=np.int32), n),
        pmt_pos=np.repeat(np.asarray(dom_pos, dtype=float), 31, axis=0) + np.tile(0.2 * PMT_DIRS, (n, 1)),
        pmt_dir=np.tile(PMT_DIRS, (n, 1)),
        pmt_status_ok=np.ones(31 * n, dtype=bool),
    )


def ctx_for(det, ev, seed=1):
    ev = np.asarray(ev, dtype=np.int64)
    return StageContext(seed=seed, run_id=1, chunk=0, stage_name="direct_light", event_ids=ev, livetime_s=1.0,
                        n_events_run=len(ev), detector=det, site=SITE)


def test_photons_mode_reproducible_per_event():
    det = build_orca_block(n_dus=3)
    rng = np.random.default_rng(2)
    ev = np.sort(rng.choice(1000, 8, replace=False)).astype(np.int64)
    c = det.center()
    rows = []
    for i, e in enumerate(ev):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        rows.append(make_tracks([e], 13, c - 40 * d, d, 200.0, length=80.0, track_id=[0]))
        rows.append(make_tracks([e], 211 if i % 2 else 11, c + rng.uniform(-10, 10, 3), d, 20.0, track_id=[1]))
    tracks = Table.concat(rows)
    stage = DirectLight(DirectLightConfig(mode="photons"), site=SITE)
    whole = stage.run({"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    assert len(np.unique(whole["event_id"])) >= 6
    assert set(np.unique(whole["origin"])) == {0, 1}
    parts = [stage.run({"mc_tracks": tracks.select_events(ids)}, ctx_for(det, ids))["mc_hits"]
             for ids in np.array_split(ev, 3)]
    assert Table.concat(parts).equals(whole)
    one = ev[5]
    alone = DirectLight(DirectLightConfig(mode="photons"), site=SITE).run(
        {"mc_tracks": tracks.event(one)}, ctx_for(det, [one]))["mc_hits"]
    assert alone.equals(whole.event(one))
    assert not stage.run({"mc_tracks": tracks}, ctx_for(det, ev, seed=2))["mc_hits"].equals(whole)
    key = np.lexsort((whole["time"], whole["event_id"]))
    assert np.array_equal(key, np.arange(len(whole)))


def test_photons_mode_mean_matches_direct_mode_without_scattering():
    # whole-stage check on a stub detector (PMTs 0.2 m off the DOM centre as in a real DOM): a
    # 50 GeV e⁻ shower seen by a ring at 15 m; direct vs photons mode (no scattering) agree
    r = 15.0
    ct = 1.0 / STAGE.n_phase
    dom_pos = ring(r * math.sqrt(1 - ct * ct), 1.2 + r * ct, 60)
    det = stub_detector(dom_pos)
    ev = np.arange(6, dtype=np.int64)
    tracks = make_tracks(ev, 11, [0, 0, 0], [0, 0, 1], 50.0)
    direct = DirectLight(DirectLightConfig(shower_fluctuations=False), site=SITE).run(
        {"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    photons = DirectLight(DirectLightConfig(mode="photons", scattering=False, shower_fluctuations=False), site=SITE).run(
        {"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    # both samples are Poisson: difference within 10 % + 4 σ of the sum
    n_d, n_p = len(direct), len(photons)
    assert n_d > 300
    assert abs(n_d - n_p) < 0.1 * n_d + 4 * math.sqrt(n_d + n_p), (n_d, n_p)
    # times agree: the DOM-surface time of the tracker vs the PMT time of direct mode (0.2 m apart)
    assert np.median(photons["time"]) == pytest.approx(np.median(direct["time"]), abs=1.5)


# ------------------------------------------------------------------------------ kernel internals (speed-ups)
def test_grid_walk_with_clearance_matches_brute_force_in_a_sparse_detector():
    # ARCA-like spacing (90 m between DUs, 20 m cells): the walk jumps over empty space by the
    # cells' clearance; long random segments (mostly misses) and segments aimed at DOMs
    from km3sim.detector.geometry import build_arca_block

    det = build_arca_block(n_dus=12)
    dom_pos = det.dom_pos
    r = DOM_RADIUS_M
    grid = build_dom_grid(dom_pos, r, 20.0)
    clear = pk.grid_clearance(grid.cell_start, grid.cell_doms, dom_pos, r, grid.x0, grid.y0, grid.cell, grid.nx, grid.ny)
    assert np.all(clear[np.diff(grid.cell_start) > 0] == 0.0) and clear.max() > 40.0
    rng = np.random.default_rng(8)
    lo, hi = dom_pos.min(axis=0) - 30, dom_pos.max(axis=0) + 30
    n_found = 0
    for i in range(4000):
        p = rng.uniform(lo, hi)
        if i % 2:
            d = dom_pos[rng.integers(len(dom_pos))] + rng.normal(0, 0.15, 3) - p
        else:
            d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        s_max = rng.exponential(150.0)
        k, s = pk.first_dom_hit(p[0], p[1], p[2], d[0], d[1], d[2], s_max, dom_pos, r * r, grid.x0, grid.y0,
                                1.0 / grid.cell, grid.nx, grid.ny, grid.cell_start, grid.cell_doms,
                                grid.box_lo[2], grid.box_hi[2])
        v = dom_pos - p
        b = v @ d
        disc = b**2 - (np.sum(v * v, axis=1) - r * r)
        s_all = np.where((disc >= 0) & (b > 0) & (np.sum(v * v, axis=1) > r * r), b - np.sqrt(np.clip(disc, 0, None)), np.inf)
        j = int(np.argmin(s_all))
        if s_all[j] <= s_max:
            n_found += 1
            assert k == j and s == pytest.approx(s_all[j], abs=1e-9)
        else:
            assert k == -1 and s == s_max
    assert n_found > 150  # ≈ 250 of the 2000 aimed segments reach their DOM
    # clearance is a true clearance: no DOM disc within it of any point of the cell
    cx = grid.x0 + (np.arange(grid.nx) + 0.5) * grid.cell
    cy = grid.y0 + (np.arange(grid.ny) + 0.5) * grid.cell
    for c in rng.choice(np.flatnonzero(clear > 0), 300):
        q = np.array([cx[c % grid.nx], cy[c // grid.nx]]) + rng.uniform(-0.5, 0.5, (50, 2)) * grid.cell
        dmin = np.min(np.linalg.norm(q[:, None, :] - dom_pos[None, :, :2], axis=2), axis=1) - r
        assert np.all(dmin >= clear[c] - 1e-9)


def test_kernel_gamma_sampler():
    # the photon loop's Gamma(shape) sampler for shower depths (Marsaglia-Tsang, normal
    # deviates used in pairs): KS against scipy at a fixed seed (n = 60 000, 1 % critical
    # distance 0.0067), also for a shape below 1 (boosting)
    import numba as nb

    @nb.njit
    def draw(n, shape, seed):
        s = pk.rng_new(np.uint64(seed))
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
        spare = math.nan
        out = np.empty(n)
        for i in range(n):
            out[i], s0, s1, s2, s3, spare = pk._gamma_r(s0, s1, s2, s3, shape, spare)
        return out

    for shape in (0.6, 2.0, 4.7):
        x = draw(60_000, shape, 5)
        assert stats.kstest(x, stats.gamma(shape).cdf).pvalue > 0.01
        assert stats.kstest(x, stats.gamma(shape * 1.03).cdf).pvalue < 0.01  # the test can tell 3 %


def test_tracker_output_growth_does_not_change_results():
    # the photon loop writes into a fixed output; when it is full it stops, the output grows and
    # it goes on from the photon where it stopped. Two events with the same seed and emitter fill
    # the output at different photons (alone, and after another event), yet must agree exactly
    dom = ring(3.0, 0.0, 40)
    tr = tracker_for(dom, scattering=False)
    n = 1_200_000
    one = PhotonTracker.single_emitter(EMITTER_ISOTROPIC, [0, 0, 0], [0, 0, 1], n)
    alone = tr.track(one, np.array([21], dtype=np.uint64), exact_count=True)
    assert len(alone) > 3 * 4096  # the output (4096 rows at first) grows twice
    from km3sim.propagation.photons import Emitters

    cols = {k: np.concatenate([getattr(one, k)] * 2) for k in ("kind", "pos", "dir", "time", "length", "energy",
                                                                "energy_lost", "mean_photons", "rel_sigma",
                                                                "long_shape", "long_scale", "origin")}
    two = Emitters.concatenate_events(np.array([0, 1]), 2, **cols)
    both = tr.track(two, np.array([21, 21], dtype=np.uint64), exact_count=True)
    for e in (0, 1):
        sel = both.event == e
        np.testing.assert_array_equal(both.time[sel], alone.time)
        np.testing.assert_array_equal(both.pmt[sel], alone.pmt)
        np.testing.assert_array_equal(both.wavelength[sel], alone.wavelength)
    np.testing.assert_array_equal(both.n_emitted, [n, n])
