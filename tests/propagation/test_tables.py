"""Tests of the light tables (km3sim.propagation.tables) and of tables mode of direct_light.

The key cross-check: the expected npe of tables mode agrees with the photon tracker (with
scattering) in the same water for muons (bare light, Rädel–Wiebusch secondaries and the showers
of the continuous losses, photons mode's own emission) and EM showers at 5–150 m, and the time
residuals agree by a two-sample KS test; the muon-shower table alone agrees with a line of the
tracker's point showers. The references run the tracker itself on real 31-PMT DOMs
spread over a cylinder (muon) or a sphere (shower) around one emitter, with a reduced number of
photons (the tracker's photons are independent, so the hits scale with their number; the
expectation is scaled by the same factor). A coarse table is built once per session.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from km3sim import schema
from km3sim.detector.geometry import dom_pmt_layout
from km3sim.propagation import _table_kernels as tk
from km3sim.propagation import showers as sh
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.propagation.photons import EMITTER_MUON, EMITTER_SHOWER, PhotonTracker
from km3sim.propagation.tables import (
    LightTableError,
    build_light_tables,
    cd_to_y,
    find_light_tables,
    load_light_tables,
    physics_parameters,
    table_file_name,
)
from km3sim.propagation.water import water_for_site
from km3sim.stage import SITE_PRESETS, Site, StageContext
from km3sim.table import Table

SITE = Site()
WATER = water_for_site(SITE)
PMT_DIRS, _ = dom_pmt_layout()
C = 0.299792458


@pytest.fixture(scope="session")
def coarse_table(tmp_path_factory):
    """The coarse ORCA table (built once per session, ~20–30 s on one core)."""
    return build_light_tables(WATER, tmp_path_factory.mktemp("tables") / "coarse.h5", site="orca", quality="coarse", seed=3)


@pytest.fixture(scope="module")
def stage(coarse_table):
    """Tables mode with the mean shower light (no shower-to-shower fluctuations)."""
    return table_stage(coarse_table, shower_fluctuations=False)


def table_stage(path, **kw) -> DirectLight:
    return DirectLight(DirectLightConfig(mode="tables", tables=str(path), **kw), site=SITE)


def dom_detector(dom_pos, rng):
    """Duck-typed detector: 31-PMT DOMs at ``dom_pos``, each rotated about z by a random angle."""
    n = len(dom_pos)
    a = rng.uniform(0.0, 2.0 * math.pi, n)
    c, s = np.cos(a), np.sin(a)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    pmt_dir = np.einsum("nij,kj->nki", rot, PMT_DIRS).reshape(-1, 3)
    return SimpleNamespace(
        dom_pos=np.ascontiguousarray(dom_pos, dtype=float), dom_pmt_offsets=np.arange(n + 1) * 31,
        pmt_id=np.arange(31 * n, dtype=np.int64), pmt_dom_id=np.repeat(np.arange(n, dtype=np.int64), 31),
        pmt_channel=np.tile(np.arange(31, dtype=np.int32), n), pmt_pos=np.repeat(dom_pos, 31, axis=0) + 0.2 * pmt_dir,
        pmt_dir=np.ascontiguousarray(pmt_dir), pmt_status_ok=np.ones(31 * n, dtype=bool),
    )


def one_track(pdgid, pos, direction, energy, length=0.0, n_events=1):
    ev = np.arange(n_events, dtype=np.int64)
    rep = lambda v: np.full(n_events, v)  # noqa: E731
    return schema.make_table(
        "mc_tracks", event_id=ev, track_id=np.zeros(n_events, dtype=int), parent_id=-np.ones(n_events, dtype=int),
        pdgid=rep(pdgid).astype(np.int32), pos_x=rep(pos[0]), pos_y=rep(pos[1]), pos_z=rep(pos[2]),
        dir_x=rep(direction[0]), dir_y=rep(direction[1]), dir_z=rep(direction[2]), energy=rep(float(energy)),
        time=np.zeros(n_events), length=rep(float(length)), energy_lost_in_can=np.zeros(n_events),
    )


def ctx_for(det, ev, seed=1):
    ev = np.asarray(ev, dtype=np.int64)
    return StageContext(seed=seed, run_id=1, chunk=0, stage_name="direct_light", event_ids=ev, livetime_s=1.0,
                        n_events_run=len(ev), detector=det, site=SITE)


def _frame(u):
    u = np.asarray(u, dtype=float) / np.linalg.norm(u)
    e1 = np.cross(u, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    return u, e1, np.cross(u, e1)


# ------------------------------------------------------------------------------ references
def muon_reference(stage, layers, energy, n_photons, seed):
    """Tracker hits of a long muon (secondaries on: the Rädel–Wiebusch light and the showers of
    the losses between 0.5 GeV and max(v_cut·E, e_cut), emitted by photons mode itself, with the
    default cuts of the stage) on 31-PMT DOMs at closest distances R.

    ``layers``: [(R, n_doms)]. The track is 1200 m long; the DOMs lie along its middle 600 m,
    where all light that can reach them (within 300 m, the tracker's maximum distance) is
    emitted on the track: they see an infinite track, as tables mode assumes. DOMs are placed
    so that none is in the direct light of another. Returns the detector, the track (one
    event), the R of each DOM, the hits, the factor expectation → reference (the tracker emits
    ``n_photons`` instead of the track's mean number) and the direct time at each DOM centre.
    """
    det, start, u, local, radius, length = muon_layout(layers, seed)
    tracker = PhotonTracker.from_detector(det, WATER, secondaries=True, grid_cell_m=5.0)
    em = PhotonTracker.single_emitter(EMITTER_MUON, start, u, n_photons, length=length, energy=energy)
    hits = tracker.track(em, np.array([seed], dtype=np.uint64), exact_count=True)
    scale = n_photons / float(tracker.muon_photons(length, energy))
    t = stage.light_tables
    t_direct = (local[:, 2] - radius / t.tan_c + radius / t.sin_c * t.n_group) / C
    return det, one_track(13, start, u, energy, length), radius, hits, scale, t_direct


def muon_layout(layers, seed):
    """DOMs around a 1200 m track for :func:`muon_reference`: (detector, track start, direction,
    DOM positions in the track frame (x, y across, z along), R of each DOM, track length)."""
    rng = np.random.default_rng(seed)
    u, e1, e2 = _frame([math.sin(0.4), 0.0, math.cos(0.4)])
    h, zone = 300.0, 600.0
    cand_r = np.concatenate([np.full(n, r) for r, n in layers])
    cand_z = np.concatenate([h + (np.arange(n) + rng.random(n)) * zone / n for _, n in layers])
    n = len(cand_r)
    local, placed = tk.place_doms(cand_r, cand_z, np.full(n, 1.0), np.zeros(n), np.full(n, 2 * math.pi),
                                  np.full(n, 2.0), np.uint64(seed), 60, 0.65, 0.01, True, 1.0 / 0.9, 30.0, 0.0)
    radius = cand_r[placed]
    start = np.array([5.0, -3.0, 20.0])
    dom_pos = start + local[:, 2:3] * u + local[:, 0:1] * e1 + local[:, 1:2] * e2
    det = dom_detector(dom_pos, rng)
    return det, start, u, local, radius, 2 * h + zone


def muon_line_reference(stage, layers, n_muon, n_line, seed):
    """Tracker hits of a bare muon (no secondaries, ``n_muon`` photons) plus a line of the
    tracker's point-like EM showers along it (Rädel–Wiebusch angular profile, ``n_line``
    photons; the builder's emitter of the muon-shower table), in the layout of
    :func:`muon_reference`: the light of a muon with ΔL/L = 0 and cont = n_line/n_muon.
    Returns the detector, the track, R per DOM, the hits (``hits.emitter`` 0: the muon, ≥ 1 the
    line), the factor expectation → reference per metre of bare muon, and the direct times."""
    from km3sim.propagation.photons import Emitters
    from km3sim.propagation.tables import _shower_line_emitters

    det, start, u, local, radius, length = muon_layout(layers, seed)
    tracker = PhotonTracker.from_detector(det, WATER, secondaries=False, grid_cell_m=5.0)
    line = _shower_line_emitters(n_line, length, seed)
    z = line.pos[:, 0]
    k = len(z)
    em = Emitters(
        event_offsets=np.array([0, k + 1], dtype=np.int64),
        kind=np.concatenate([[EMITTER_MUON], line.kind]), pos=np.vstack([start, start + z[:, None] * u]),
        dir=np.tile(u, (k + 1, 1)), time=np.concatenate([[0.0], line.time]),
        length=np.concatenate([[length], line.length]), energy=np.zeros(k + 1), energy_lost=np.zeros(k + 1),
        mean_photons=np.concatenate([[float(n_muon)], line.mean_photons]), rel_sigma=np.zeros(k + 1),
        long_shape=np.ones(k + 1), long_scale=np.zeros(k + 1), origin=np.zeros(k + 1, dtype=np.int64),
    )
    hits = tracker.track(em, np.array([seed], dtype=np.uint64), exact_count=True)
    scale = n_muon / (tracker.photons_per_metre * length)
    t = stage.light_tables
    t_direct = (local[:, 2] - radius / t.tan_c + radius / t.sin_c * t.n_group) / C
    return det, one_track(13, start, u, 1e4, length), radius, hits, scale, t_direct


def with_secondaries(path, rw, cont) -> DirectLight:
    """A tables-mode stage whose muons have the constant ratios ΔL/L = rw and cont (all energies)."""
    st = table_stage(path, shower_fluctuations=False)
    sl = st.secondary_light
    st.secondary_light = dataclasses.replace(sl, rw_ratio=np.full(len(sl.rw_ratio), float(rw)),
                                             cont_ratio=np.full(len(sl.cont_ratio), float(cont)))
    return st


def shower_reference(stage, layers, energy, n_photons, seed):
    """Tracker hits of an e⁻ shower (with its longitudinal profile) on 31-PMT DOMs at distances
    D from the shower's light centroid (vertex + mean depth × axis), spread uniformly in cosθ_d
    over [c_lo, c_hi] (default the whole sphere). ``layers``: [(D, n_doms[, c_lo, c_hi])].
    Returns as :func:`muon_reference` plus cosθ_d of each DOM."""
    rng = np.random.default_rng(seed)
    u, e1, e2 = _frame([0.3, -0.2, -1.0])
    a, b = sh.longitudinal_parameters(energy, sh.KIND_ELECTRON)
    scale_m = sh.RADIATION_LENGTH_WATER_M / b
    vertex = np.array([10.0, -20.0, 100.0])
    centroid = vertex + a * scale_m * u
    layers = [(*ly, -1.0, 1.0) if len(ly) == 2 else ly for ly in layers]
    cand_d = np.concatenate([np.full(n, d) for d, n, _, _ in layers])
    cand_c = np.concatenate([lo + (np.arange(n) + rng.random(n)) * (hi - lo) / n for _, n, lo, hi in layers])
    n = len(cand_d)
    cusp = 0.7  # (only the parametrisation of the cosines; no jitter)
    local, placed = tk.place_doms(cand_d, cd_to_y(cand_c, cusp), np.zeros(n), np.zeros(n), np.full(n, 2 * math.pi),
                                  np.full(n, 1.0), np.uint64(seed), 60, 0.65, 0.0, False, 0.0, 30.0, cusp)
    dist = cand_d[placed]
    dom_pos = centroid + local[:, 2:3] * u + local[:, 0:1] * e1 + local[:, 1:2] * e2
    det = dom_detector(dom_pos, rng)
    tracker = PhotonTracker.from_detector(det, WATER, grid_cell_m=5.0)
    em = PhotonTracker.single_emitter(EMITTER_SHOWER, vertex, u, n_photons, long_shape=a, long_scale=scale_m)
    hits = tracker.track(em, np.array([seed], dtype=np.uint64), exact_count=True)
    mean = sh.cherenkov_track_length(energy, sh.KIND_ELECTRON) * tracker.photons_per_metre
    t_direct = np.linalg.norm(dom_pos - vertex, axis=1) * stage.light_tables.n_group / C
    cosd = local[:, 2] / np.linalg.norm(local, axis=1)
    return det, one_track(11, vertex, u, energy), dist, cosd, hits, n_photons / mean, t_direct


def check_agreement(problems, n_obs, mu, table_err, what, required=True):
    """Record a problem unless |n_obs/μ − 1| < 10 %. The statistical error of the ratio (tracker
    Poisson 1/√n ⊕ the table's own, 1/√n_eff of its builder photons) must be below 3.3 %, so that
    10 % is at least 3 σ; checks that are not ``required`` are skipped where it is not."""
    sigma = math.hypot(1.0 / math.sqrt(max(n_obs, 1)), table_err)
    if sigma >= 0.033:
        if required:
            problems.append(f"{what}: too few photons, statistical error {sigma:.3f} (n = {n_obs})")
        return
    if abs(n_obs / mu - 1.0) >= 0.10:
        problems.append(f"{what}: tracker {n_obs} pe, tables {mu:.1f} (ratio {n_obs / mu:.3f} ± {sigma:.3f})")


def table_error(tables, kind, x, cosd=None, mu=None):
    """Relative statistical error of the table's npe around x, 1/√n_eff of the builder photons of
    the weaker of the two nodes in distance. For showers, per cosθ_d node, combined with the
    weights of the nodes in the expectation μ of the reference DOMs (at cosθ_d ``cosd``)."""
    if kind in ("muon", "muon_showers"):
        nodes, n_eff = tables.muon_r, (tables.muon_n_eff if kind == "muon" else tables.muon_showers_n_eff)
        i = int(np.clip(np.searchsorted(nodes, x) - 1, 0, len(nodes) - 2))
        return 1.0 / math.sqrt(min(n_eff[i], n_eff[i + 1]))
    nodes = tables.shower_d
    i = int(np.clip(np.searchsorted(nodes, x) - 1, 0, len(nodes) - 2))
    n_eff = np.minimum(tables.shower_n_eff[i], tables.shower_n_eff[i + 1])
    j = np.abs(cd_to_y(cosd, tables.cd_cusp)[:, None] - tables.cd_y[None, :]).argmin(axis=1)
    w = np.bincount(j, weights=mu, minlength=len(n_eff)) / mu.sum()
    return math.sqrt(np.sum(w**2 / np.maximum(n_eff, 1.0)))


def residuals(times, dom, t_direct, sel_dom):
    m = sel_dom[dom]
    return times[m] - t_direct[dom[m]]


def subsample(x, n):
    """At most n entries of x, drawn without replacement (fixed seed)."""
    return x if len(x) <= n else np.random.default_rng(0).choice(x, n, replace=False)


def _track_args(track):
    return ((track["pos_x"][0], track["pos_y"][0], track["pos_z"][0]),
            (track["dir_x"][0], track["dir_y"][0], track["dir_z"][0]), track["energy"][0], track["length"][0])


# ------------------------------------------------------------------------------ table content
def test_table_file_provenance_and_shape(coarse_table):
    t = load_light_tables(coarse_table)
    a = t.attrs
    assert a["format"] == "km3sim-light-tables" and a["site"] == "orca" and a["quality"] == "coarse"
    assert a["physics"] == physics_parameters(WATER)
    assert a["build"]["seed"] == 3 and a["build_time_s"] > 0 and a["n_photons_total"] > 0
    assert a["km3sim_version"] and a["created"]
    assert t.muon_npe.shape == (len(t.muon_r), t.n_theta, t.n_phi)
    assert t.shower_npe.shape == (len(t.shower_d), len(t.cd_nodes), t.n_theta, t.n_phi)
    assert a["format_version"] == 2 and a["build"]["n_photons_muon_showers"] == a["build"]["n_photons_muon"]
    assert t.muon_showers_npe.shape == t.muon_npe.shape and t.muon_showers.cdf.shape == t.muon.cdf.shape
    assert [p["table"] for p in a["passes"]].count("muon_showers") == [p["table"] for p in a["passes"]].count("muon")
    # cumulative distributions end at 1 and never decrease
    assert np.all(np.diff(t.muon.cdf, axis=1) >= -1e-6) and np.allclose(t.muon.cdf[:, -1], 1.0)
    assert np.all(np.diff(t.muon_showers.cdf, axis=1) >= -1e-6) and np.allclose(t.muon_showers.cdf[:, -1], 1.0)
    assert np.all(np.diff(t.shower.cdf, axis=1) >= -1e-6) and np.allclose(t.shower.cdf[:, -1], 1.0)
    # light falls with distance
    assert np.all(np.diff(t.muon_npe.mean(axis=(1, 2))) < 0)
    assert np.all(np.diff(t.shower_npe.mean(axis=(1, 2, 3))) < 0)
    # muon: a PMT facing the direct light (θ = 90° + θ_c, φ = π: towards the track) sees ≫ one facing away
    a_face = int(round((math.pi / 2 + math.acos(1 / t.n_phase)) / math.pi * (t.n_theta - 1)))
    assert np.all(t.muon_npe[:, a_face, -1] > 5 * t.muon_npe[:, a_face, 0])
    # muon showers: the same per metre of Cherenkov track length near the track, where every
    # photon arrives (the profile peaks on the Cherenkov cone; measured 0.94–1.12 up to 50 m,
    # statistical errors 2 %), falling with distance, and mostly towards the track as well
    ms = t.muon_showers_npe.mean(axis=(1, 2))
    near = t.muon_r <= 50.0
    assert np.all(np.abs(ms[near] / t.muon_npe.mean(axis=(1, 2))[near] - 1.0) < 0.2)
    assert np.all(np.diff(ms) < 0)
    assert np.all(t.muon_showers_npe[:, a_face, -1] > 5 * t.muon_showers_npe[:, a_face, 0])
    # shower: the light peaks at the Cherenkov angle, and PMTs facing the shower (θ = π) see most
    j = int(np.argmin(np.abs(t.cd_nodes - 1 / t.n_phase)))
    for i in range(len(t.shower_d) - 3):
        # (within the DOM's angular size of the cusp node at small distances)
        assert abs(int(np.argmax(t.shower_npe[i].mean(axis=(1, 2)))) - j) <= (1 if t.shower_d[i] < 10 else 0)
        assert t.shower_npe[i, j, -1].mean() > 5 * t.shower_npe[i, j, 0].mean()


# ------------------------------------------------------------------------------ agreement with the tracker
@pytest.mark.slow
@pytest.mark.parametrize("energy, layers, n_photons", [
    # DOMs per layer for ≳ 1000 detected pe each (coverage of each layer's cylinder ≤ 1 %); at
    # 1 and 10 TeV the continuous-loss showers give 42 % and 87 % of the light (v_cut = 0.05)
    (1e4, [(5.0, 250), (20.0, 2000), (50.0, 14000)], 6_000_000),
    (1e3, [(5.0, 250), (20.0, 2000), (50.0, 14000)], 6_000_000),
    (10.0, [(5.0, 400), (20.0, 3000)], 3_000_000),
])
def test_muon_tables_match_photon_tracker(stage, energy, layers, n_photons):
    det, track, radius, hits, scale, t_direct = muon_reference(stage, layers, energy, n_photons, seed=11)
    mu = stage.table_expected_npe(track, det).reshape(-1, 31) * scale
    n_dom = np.bincount(hits.dom, minlength=len(radius))
    up = PMT_DIRS[:, 2] > 0
    up_hit = up[hits.pmt % 31]
    problems = []
    for r, _ in layers:
        sel = radius == r
        err = table_error(stage.light_tables, "muon", r)
        check_agreement(problems, int(n_dom[sel].sum()), mu[sel].sum(), err, f"muon E={energy} R={r}")
        # orientation: the upward-looking PMTs alone (the track goes up, its direct light hits
        # mostly the downward-looking ones), where they see enough light
        n_up = int((sel[hits.dom] & up_hit).sum())
        check_agreement(problems, n_up, mu[sel][:, up].sum(), err, f"muon E={energy} R={r} upward PMTs", False)
    # time residuals: tables mode (sampled; 2 events) vs the tracker, per layer
    res = table_stage(stage.config.tables).run({"mc_tracks": one_track(13, *_track_args(track), n_events=2)},
                                               ctx_for(det, np.arange(2)))["mc_hits"]
    dom = res["pmt_id"] // 31
    for r, _ in layers:
        sel = radius == r
        a = residuals(res["time"], dom, t_direct, sel)
        b = residuals(hits.time, hits.dom, t_direct, sel)
        p = stats.ks_2samp(subsample(a, 3000), b).pvalue
        if p < 1e-3:
            problems.append(f"muon R={r}: time residuals differ, KS p = {p:.2g} (medians {np.median(a):.2f}, "
                            f"{np.median(b):.2f} ns)")
    assert not problems, problems


@pytest.mark.slow
def test_muon_shower_table_matches_line_of_showers(coarse_table):
    """The muon-shower table alone against the tracker: a bare muon plus a line of the tracker's
    point showers with cont = 3 (75 % of the light), per layer the line's hits against the
    table's muon-shower component (mean npe), and the sampled time residuals of both together
    (KS; with the muon table in place of the muon-shower table they differ at p < 1e-18: the
    showers' light comes 2–4 ns later in the median)."""
    layers = [(5.0, 250), (20.0, 2000), (50.0, 14000)]
    cont = 3.0
    n_line = 6_000_000  # ≳ 2000 line hits per layer: error ≤ 3.1 % with the table's own
    det, track, radius, hits, scale, t_direct = muon_line_reference(table_stage(coarse_table), layers,
                                                                    int(n_line / cont), n_line, seed=12)
    st = with_secondaries(coarse_table, 0.0, cont)
    mu_all = st.table_expected_npe(track, det).reshape(-1, 31) * scale
    mu_bare = with_secondaries(coarse_table, 0.0, 0.0).table_expected_npe(track, det).reshape(-1, 31) * scale
    mu_line = mu_all - mu_bare
    line = hits.emitter >= 1
    n_line_dom = np.bincount(hits.dom[line], minlength=len(radius))
    n_mu_dom = np.bincount(hits.dom[~line], minlength=len(radius))
    up = PMT_DIRS[:, 2] > 0
    problems = []
    for r, _ in layers:
        sel = radius == r
        err = table_error(st.light_tables, "muon_showers", r)
        check_agreement(problems, int(n_line_dom[sel].sum()), mu_line[sel].sum(), err, f"muon showers R={r}")
        n_up = int((sel[hits.dom] & line & up[hits.pmt % 31]).sum())
        check_agreement(problems, n_up, mu_line[sel][:, up].sum(), err, f"muon showers R={r} upward PMTs", False)
        # the bare muon of the same run against the muon table (a check of the reference)
        check_agreement(problems, int(n_mu_dom[sel].sum()), mu_bare[sel].sum(),
                        table_error(st.light_tables, "muon", r), f"bare muon R={r}", False)
    res = st.run({"mc_tracks": track}, ctx_for(det, np.arange(1)))["mc_hits"]
    dom = res["pmt_id"] // 31
    for r, _ in layers:
        sel = radius == r
        a = residuals(res["time"], dom, t_direct, sel)
        b = residuals(hits.time, hits.dom, t_direct, sel)
        p = stats.ks_2samp(subsample(a, 3000), b).pvalue
        if p < 1e-3:
            problems.append(f"muon + showers R={r}: time residuals differ, KS p = {p:.2g} (medians {np.median(a):.2f}, "
                            f"{np.median(b):.2f} ns)")
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.parametrize("energy, layers, n_photons", [
    # DOMs per layer for ≳ 2000 detected pe each (≤ 2 % of each sphere); at D = 150 m only in the
    # Cherenkov band |cosθ_d − 0.74| < 0.1, which holds 60 % of the light, on 10 % of its area
    (100.0, [(5.0, 25), (20.0, 250), (50.0, 3000), (150.0, 26000, 0.62, 0.86)], 9_000_000),
    (1.0, [(5.0, 25), (20.0, 300)], 2_000_000),
    (1000.0, [(5.0, 25), (20.0, 250), (50.0, 3000)], 3_500_000),
])
def test_shower_tables_match_photon_tracker(stage, energy, layers, n_photons):
    det, track, dist, cosd, hits, scale, t_direct = shower_reference(stage, layers, energy, n_photons, seed=21)
    mu = stage.table_expected_npe(track, det).reshape(-1, 31) * scale
    n_dom = np.bincount(hits.dom, minlength=len(dist))
    problems = []
    for d, *_ in layers:
        sel = dist == d
        mu_dom = mu.sum(axis=1)
        err = table_error(stage.light_tables, "shower", d, cosd[sel], mu_dom[sel])
        check_agreement(problems, int(n_dom[sel].sum()), mu[sel].sum(), err, f"shower E={energy} D={d}")
        # the Cherenkov-cone band alone, where it holds enough hits
        cone = sel & (np.abs(cosd - 1 / stage.light_tables.n_phase) < 0.1)
        err = table_error(stage.light_tables, "shower", d, cosd[cone], mu_dom[cone])
        check_agreement(problems, int(n_dom[cone].sum()), mu[cone].sum(), err, f"shower E={energy} D={d} cone", False)
    res = table_stage(stage.config.tables, shower_fluctuations=False).run(
        {"mc_tracks": one_track(11, *_track_args(track)[:3], n_events=1)}, ctx_for(det, np.arange(1)))["mc_hits"]
    dom = res["pmt_id"] // 31
    for d, *_ in layers:
        sel = dist == d
        a = residuals(res["time"], dom, t_direct, sel)
        b = residuals(hits.time, hits.dom, t_direct, sel)
        p = stats.ks_2samp(subsample(a, 3000), b).pvalue
        if p < 1e-3:
            problems.append(f"shower E={energy} D={d}: time residuals differ, KS p = {p:.2g} (medians "
                            f"{np.median(a):.2f}, {np.median(b):.2f} ns)")
    assert not problems, problems


# ------------------------------------------------------------------------------ tables mode of the stage
def _mixed_events(det, rng, event_ids):
    """Per event a muon crossing the DOMs and a shower (EM or hadronic) near them."""
    rows = []
    c = det.dom_pos.mean(axis=0)
    for i, e in enumerate(event_ids):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        rows.append(one_track(13, c - 60 * d, d, 500.0, 120.0).with_columns(event_id=np.array([e])))
        s = one_track(211 if i % 2 else 11, c + rng.uniform(-15, 15, 3), d, 30.0)
        rows.append(s.with_columns(event_id=np.array([e]), track_id=np.array([1], dtype=np.int32)))
    return Table.concat(rows).sort(("event_id", "track_id"))


def test_tables_mode_reproducible_per_event(coarse_table):
    rng = np.random.default_rng(4)
    dom_pos = rng.uniform(-40, 40, (60, 3))
    det = dom_detector(dom_pos, rng)
    ev = np.sort(rng.choice(10_000, 8, replace=False)).astype(np.int64)
    tracks = _mixed_events(det, rng, ev)
    stage = table_stage(coarse_table)
    whole = stage.run({"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    assert len(np.unique(whole["event_id"])) >= 6 and set(np.unique(whole["origin"])) == {0, 1}
    assert list(whole.columns) == list(schema.SCHEMAS["mc_hits"].columns)  # same layout as the other modes
    assert np.all(whole["npe"] == 1)
    # same output whatever the chunking; any event alone is identical; another seed differs
    parts = [stage.run({"mc_tracks": tracks.select_events(ids)}, ctx_for(det, ids))["mc_hits"]
             for ids in np.array_split(ev, 3)]
    assert Table.concat(parts).equals(whole)
    one = ev[5]
    alone = table_stage(coarse_table).run({"mc_tracks": tracks.event(one)}, ctx_for(det, [one]))["mc_hits"]
    assert alone.equals(whole.event(one))
    assert not stage.run({"mc_tracks": tracks}, ctx_for(det, ev, seed=2))["mc_hits"].equals(whole)
    # the muon light does not depend on the showers (own random streams)
    no_sh = table_stage(coarse_table, showers=False).run({"mc_tracks": tracks}, ctx_for(det, ev))["mc_hits"]
    assert no_sh.equals(whole[whole["origin"] == 0])


def test_tables_mode_mean_and_reach(coarse_table):
    """Sampled pe average to the expectation; PMTs beyond the table range get nothing."""
    rng = np.random.default_rng(5)
    dom_pos = np.vstack([rng.uniform(-30, 30, (40, 3)), [[0.0, 0.0, 400.0]]])  # the last DOM: 400 m away
    det = dom_detector(dom_pos, rng)
    stage = table_stage(coarse_table, shower_fluctuations=False)
    n_ev = 20
    tracks = Table.concat([one_track(13, (-200.0, 0.0, 0.0), (1.0, 0.0, 0.0), 1000.0, 400.0, n_events=n_ev),
                           one_track(11, (0.0, 5.0, 0.0), (0.0, 0.0, 1.0), 50.0, n_events=n_ev)
                           .with_columns(track_id=np.ones(n_ev, dtype=np.int32))]).sort(("event_id", "track_id"))
    hits = stage.run({"mc_tracks": tracks}, ctx_for(det, np.arange(n_ev)))["mc_hits"]
    mu = stage.table_expected_npe(tracks.event(0), det)
    # Poisson: the total over n_ev events within 4 σ of n_ev·Σμ
    assert abs(len(hits) - n_ev * mu.sum()) < 4 * math.sqrt(n_ev * mu.sum()), (len(hits), n_ev * mu.sum())
    assert mu[-31:].sum() == 0.0 and not np.any(hits["pmt_id"] >= 31 * 40)


def test_config_and_stage_info(coarse_table):
    stage = table_stage(coarse_table)
    assert stage.header()["light_tables"]["file"] == str(coarse_table)
    cfg = DirectLightConfig(mode="tables", tables=str(coarse_table))
    assert DirectLight.input_files(cfg) == [str(coarse_table)]
    assert DirectLight.input_files(DirectLightConfig(mode="tables")) == []
    assert DirectLight.input_files(DirectLightConfig()) == []
    assert DirectLight(DirectLightConfig(), site=SITE).header() == {}


# ------------------------------------------------------------------------------ errors and cache
def test_missing_and_corrupt_table_files(tmp_path, coarse_table):
    missing = tmp_path / "nope.h5"
    with pytest.raises(LightTableError, match="nope.h5"):
        table_stage(missing)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(LightTableError, match="bad.h5"):
        table_stage(bad)
    # a truncated copy of a real table
    cut = tmp_path / "cut.h5"
    data = coarse_table.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LightTableError, match="cut.h5"):
        table_stage(cut)


def test_table_of_format_1_is_refused(tmp_path, coarse_table):
    """A table without the muon-shower table (format 1) or lacking its group asks for a rebuild."""
    import h5py

    old = tmp_path / "v1.h5"
    shutil.copy(coarse_table, old)
    with h5py.File(old, "r+") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(LightTableError, match=r"v1.h5 has format version 1.*reads version 2; rebuild"):
        table_stage(old)
    cut = tmp_path / "no_muon_showers.h5"
    shutil.copy(coarse_table, cut)
    with h5py.File(cut, "r+") as f:
        del f["muon_showers"]
    with pytest.raises(LightTableError, match=r"no_muon_showers.h5 lacks the dataset 'muon_showers/r_m'"):
        table_stage(cut)


def test_table_of_another_water_model_is_refused(coarse_table):
    with pytest.raises(LightTableError, match=r"coarse.h5.*pressure_atm.*240.*350.*--site arca"):
        DirectLight(DirectLightConfig(mode="tables", tables=str(coarse_table)), site=SITE_PRESETS["arca"])
    with pytest.raises(LightTableError, match="absorption_scale"):
        table_stage(coarse_table, absorption_scale=1.1)
    with pytest.raises(LightTableError, match="max_distance_m"):
        table_stage(coarse_table, max_distance_m=200.0)


def test_auto_finds_the_cached_table(tmp_path, coarse_table, monkeypatch):
    monkeypatch.delenv("KM3SIM_TABLE_DIR", raising=False)
    with pytest.raises(LightTableError, match="km3sim tables build --site orca"):
        DirectLight(DirectLightConfig(mode="tables", table_dir=str(tmp_path)), site=SITE)
    t = load_light_tables(coarse_table)
    name = table_file_name("orca", "coarse", t.physics, t.build)
    shutil.copy(coarse_table, tmp_path / name)
    assert find_light_tables(physics_parameters(WATER), tmp_path) == tmp_path / name
    stage = DirectLight(DirectLightConfig(mode="tables", table_dir=str(tmp_path)), site=SITE)
    assert stage.light_tables.path == tmp_path / name
    monkeypatch.setenv("KM3SIM_TABLE_DIR", str(tmp_path))
    assert DirectLight(DirectLightConfig(mode="tables"), site=SITE).light_tables.path == tmp_path / name
    # ARCA water: not in the cache
    assert find_light_tables(physics_parameters(water_for_site(SITE_PRESETS["arca"])), tmp_path) is None


def test_cli_tables_info(coarse_table, capsys):
    from km3sim.cli import main

    assert main(["tables", "info", str(coarse_table)]) == 0
    out = capsys.readouterr().out
    assert "quality coarse" in out and "240.0 atm" in out and "muon table" in out
    assert "v2" in out and "muon-shower table" in out and "muon showers 8e+06" in out
    assert main(["tables", "info", str(coarse_table) + ".missing"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["tables", "build", "--site", "atlantis", "--coarse"]) == 2
    assert "unknown site 'atlantis'" in capsys.readouterr().err


def test_builder_sums_do_not_depend_on_batching(coarse_table):
    """The builder's fixed-point histograms of two batches tracked in one call or in two calls
    (as two worker processes would) add up to the same integers, so a table does not depend on
    the number of jobs."""
    import math as m

    from km3sim.propagation import tables as T
    from km3sim.random import event_seeds

    n_ref = WATER.refractive_index_phase(470.0)
    binning = T.binning_for("coarse", 300.0, n_ref)
    sin_c = m.sqrt(1 - 1 / n_ref**2)
    p = T._muon_passes(binning, WATER, 40_000, 300.0, 0.216, (300.0, 700.0), sin_c, sin_c * n_ref,
                       WATER.refractive_index_group(470.0), 5)[0]
    kw = dict(dom_radius_m=0.216, wavelength_min_nm=300.0, wavelength_max_nm=700.0, max_distance_m=300.0,
              scattering=True, grid_cell_m=5.0, reference_wavelength_nm=470.0)
    seeds = event_seeds(5, 0, np.arange(2), "light_tables")
    n = len(binning.muon_r)
    both = T._run_batches((p, [(0, 20_000), (1, 20_000)], WATER, kw, seeds, n, binning.to_dict()))
    one = T._run_batches((p, [(0, 20_000)], WATER, kw, seeds, n, binning.to_dict()))
    two = T._run_batches((p, [(1, 20_000)], WATER, kw, seeds, n, binning.to_dict()))
    assert both[1].sum() > 0
    for k in range(4):
        assert np.array_equal(both[k], one[k] + two[k])
