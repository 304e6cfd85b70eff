"""The trigger on synthetic hit patterns: L1, L2, 3DMuon, 3DShower, MXShower, factory limit,
event building (snapshots, merging), masks and the stage contract (km3sim.trigger.trigger)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from km3sim import constants as C
from km3sim.detector.geometry import build_orca_block
from km3sim.schema import make_table
from km3sim.stage import StageContext, get_stage
from km3sim.table import Table
from km3sim.trigger import _kernels as K
from km3sim.trigger.trigger import (
    MASK_3DMUON,
    MASK_3DSHOWER,
    MASK_FACTORY_LIMIT,
    MASK_MXSHOWER,
    Trigger,
    Trigger3DMuon,
    TriggerProcessor,
    cherenkov_distance_factor,
    n_grid_directions,
    preset,
    trigger_hits,
)
from tests.synthetic import muon_hit_pmts

KFAC = cherenkov_distance_factor()
INV_V = C.INDEX_OF_REFRACTION_GROUP / C.C_LIGHT  # ns per m of light travel in water
OFF = {"trigger3DMuon.enabled": False, "trigger3DShower.enabled": False, "triggerMXShower.enabled": False}


def only(name, base="orca6", **over):
    """Preset ``base`` with only trigger ``name`` enabled (and more overrides)."""
    return preset(base, **{**OFF, f"{name}.enabled": True, **over})


@pytest.fixture(scope="module")
def det():
    return build_orca_block(7)  # 126 DOMs, 20 m between DUs, 9 m between floors


def _ctx(det, event_ids):
    return StageContext(seed=1, run_id=1, chunk=0, stage_name="trigger", event_ids=np.asarray(event_ids, dtype=np.int64),
                        livetime_s=1.0, n_events_run=len(event_ids), detector=det)


def hit_columns(det, pmt_idx, t, event_id, origin=None):
    order = np.argsort(t, kind="stable")
    pmt_idx = np.asarray(pmt_idx)[order]
    n = len(order)
    return dict(
        event_id=np.full(n, event_id, dtype=np.int64), dom_id=det.pmt_dom_id[pmt_idx], channel_id=det.pmt_channel[pmt_idx],
        pmt_id=det.pmt_id[pmt_idx], time=np.asarray(t, dtype=np.float64)[order], tot=np.full(n, 25, dtype=np.uint8),
        npe=np.ones(n, dtype=np.int32),
        origin=(np.full(n, -1, dtype=np.int32) if origin is None else np.asarray(origin)[order]),
    )


def hits_table(events):
    return make_table("hits", **{k: np.concatenate([e[k] for e in events]) for k in events[0]})


def k40_pmts(det, rng, window_ns, rate_hz=7000.0, coinc_hz=570.0, coinc_sigma_ns=3.5):
    """Uncorrelated singles per PMT plus genuine 2-fold coincidences per DOM (PHYSICS.md §12)."""
    n = rng.poisson(rate_hz * window_ns * 1e-9, det.n_pmts)
    idx = np.repeat(np.arange(det.n_pmts), n)
    t = rng.uniform(0.0, window_ns, len(idx))
    nc = rng.poisson(coinc_hz * window_ns * 1e-9, det.n_doms)
    doms = np.repeat(np.arange(det.n_doms), nc)
    tc = rng.uniform(0.0, window_ns, len(doms))
    a = rng.integers(0, 31, len(doms))
    b = (a + rng.integers(1, 31, len(doms))) % 31
    off = det.dom_pmt_offsets
    return np.concatenate([idx, off[doms] + a, off[doms] + b]), np.concatenate([t, tc, tc + rng.normal(0, coinc_sigma_ns, len(doms))])


def random_direction(rng):
    ct = rng.uniform(-1, 1)
    phi = rng.uniform(0, 2 * math.pi)
    st = math.sqrt(1 - ct * ct)
    return np.array([st * math.cos(phi), st * math.sin(phi), ct])


def muon_event(det, rng, event_id, window_ns=10_000.0, background=True):
    u = random_direction(rng)
    p = det.center() + rng.uniform(-20, 20, 3)
    rows, t = muon_hit_pmts(det, p, u, window_ns / 2, rng)
    origin = np.zeros(len(rows), dtype=np.int32)
    if background:
        bi, bt = k40_pmts(det, rng, window_ns)
        rows, t = np.concatenate([rows, bi]), np.concatenate([t, bt])
        origin = np.concatenate([origin, np.full(len(bi), -1, dtype=np.int32)])
    return hit_columns(det, rows, t, event_id, origin)


def l2_pairs(det, doms, times, dt=3.0, channels=(0, 4)):
    """One L2 (two PMTs ``dt`` ns apart, axes < 90° apart) per DOM at the given times."""
    off = det.dom_pmt_offsets[np.asarray(doms)]
    idx = np.concatenate([off + channels[0], off + channels[1]])
    return idx, np.concatenate([times, np.asarray(times) + dt])


def point_source_times(det, doms, vertex, t0):
    """Arrival times of light from a point (PHYSICS.md §9.1: t = t0 + |x − v|·n_g/c)."""
    return t0 + np.linalg.norm(det.dom_pos[np.asarray(doms)] - vertex, axis=1) * INV_V


def run(det, cfg, *cols_list, **kw):
    return trigger_hits(hits_table(list(cols_list)), det, cfg, **kw)


# ------------------------------------------------------------------------------------------
# L1 and L2 (kernels called with the dtypes the stage uses: int32 DOM, int16 channel)
# ------------------------------------------------------------------------------------------


def _l1(dom, ch, t, tmax=25.0, min_hits=2, combine=True):
    dom = np.asarray(dom, dtype=np.int32)
    order = np.lexsort((np.asarray(t), dom))
    st, sc, sd = np.asarray(t, float)[order], np.asarray(ch, np.int16)[order], dom[order]
    return (st, sc, sd), K.find_l1(st, sc, sd, tmax, min_hits, combine)


def test_l1_window_distinct_pmts_same_dom():
    _, (dom, time, first, stop) = _l1([1, 1], [3, 7], [100.0, 120.0])
    assert dom.tolist() == [1] and time.tolist() == [100.0] and (first[0], stop[0]) == (0, 2)
    assert len(_l1([1, 1], [3, 7], [100.0, 130.0])[1][0]) == 0  # 30 ns > TMaxLocal_ns
    assert len(_l1([2, 2], [5, 5], [100.0, 110.0])[1][0]) == 0  # the same PMT twice
    assert len(_l1([1, 2], [3, 7], [100.0, 110.0])[1][0]) == 0  # two DOMs
    assert len(_l1([1, 1, 1], [3, 7, 9], [0.0, 10.0, 12.0], min_hits=3)[1][0]) == 1


def test_l1_combine_merges_overlapping_windows():
    _, (d1, t1, f1, s1) = _l1([0, 0, 0], [1, 2, 3], [0.0, 20.0, 40.0], combine=True)
    assert t1.tolist() == [0.0] and (s1 - f1).tolist() == [3]
    _, (d2, t2, _, _) = _l1([0, 0, 0], [1, 2, 3], [0.0, 20.0, 40.0], combine=False)
    assert t2.tolist() == [0.0, 20.0]


def test_l1_matches_bruteforce_on_k40(det):
    """Without combining, an L1 opens at every hit whose 25 ns window holds >= 2 distinct PMTs."""
    rng = np.random.default_rng(11)
    idx, t = k40_pmts(det, rng, 500_000.0)
    o = np.argsort(t, kind="stable")
    idx, t = idx[o], t[o]
    dom, ch = det.pmt_dom_index[idx], det.pmt_channel[idx]
    _, (l1_dom, l1_time, _, _) = _l1(dom, ch, t, combine=False)
    end = np.searchsorted(t, t + 25.0, side="right")
    expected = []
    for i in range(len(t)):
        j = np.arange(i, end[i])
        same = j[dom[j] == dom[i]]
        if len(np.unique(ch[same])) >= 2:
            expected.append((int(dom[i]), float(t[i])))
    got = sorted(zip(l1_dom.tolist(), l1_time.tolist()))
    assert got == sorted(expected)
    assert len(got) > 50  # ~1.7 kHz x 126 DOMs x 0.5 ms ≈ 110 coincidences
    (st, _, _), (cd, ct, cf, cs) = _l1(dom, ch, t, combine=True)
    assert 0 < len(cd) <= len(got)
    for d in np.unique(cd):  # combined L1s of a DOM never overlap
        k = np.flatnonzero(cd == d)
        assert np.all(ct[k][1:] > st[cs[k] - 1][:-1])


def test_l2_window_and_pmt_angle(det):
    axis = K.pmt_axis_table(det.dom_pmt_offsets, det.pmt_dir)
    up, down = 0, 22  # channel 0 looks up (cos zenith 0.555), channel 22 straight down
    assert axis[0, up] @ axis[0, down] < 0 and axis[0, 0] @ axis[0, 4] > 0

    def l2_time(ch, t, ct_min):
        (st, sc, sd), (_, _, first, stop) = _l1(np.zeros(len(t)), ch, t)
        return K.find_l2(st, sc, sd, axis, first, stop, 10.0, 2, ct_min)

    assert l2_time([0, 4], [0.0, 8.0], 0.0).tolist() == [0.0]
    assert np.isnan(l2_time([0, 4], [0.0, 15.0], 0.0)).all()  # an L1 (25 ns), not an L2 (10 ns)
    assert np.isnan(l2_time([up, down], [0.0, 5.0], 0.0)).all()  # PMT axes more than 90° apart
    assert l2_time([up, down], [0.0, 5.0], -1.0).tolist() == [0.0]
    assert l2_time([0, 4, 8], [0.0, 15.0, 20.0], 0.0).tolist() == [15.0]  # L2 time: its first hit


def test_greedy_clique_is_pairwise_compatible_and_keeps_a_universal_vertex():
    rng = np.random.default_rng(2)
    for _ in range(50):
        m = 12
        c = rng.random((m, m)) < 0.7
        c = c & c.T
        c[0, :] = c[:, 0] = True  # vertex 0 compatible with all: never removed
        alive = np.ones(m, bool)
        size = K.greedy_clique(c, m, alive, 3, np.empty(m, np.int64))
        k = np.flatnonzero(alive)
        assert size == len(k)
        if size >= 3:
            assert 0 in k
            sub = c[np.ix_(k, k)] | np.eye(len(k), dtype=bool)
            assert sub.all()


# ------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------


def test_direction_grid_covers_sphere():
    n = n_grid_directions(10.0)
    assert 380 <= n <= 450  # 4π / (10°)² = 412.5
    grid = K.direction_grid(n)
    np.testing.assert_allclose(np.linalg.norm(grid, axis=1), 1.0, atol=1e-12)
    v = np.random.default_rng(3).normal(size=(5000, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    worst = np.degrees(np.arccos(np.clip((v @ grid.T).max(axis=1), -1, 1))).max()
    assert worst < 8.0  # every direction within ~0.6 step of a grid direction


def test_cherenkov_factor_reduces_to_tan_theta_without_dispersion():
    n = 1.35
    assert cherenkov_distance_factor(n, n) == pytest.approx(math.sqrt(n * n - 1))
    assert cherenkov_distance_factor() == pytest.approx(0.9517, abs=2e-4)


def test_dom_neighbours(det):
    off, idx, dist = K.dom_neighbours(np.ascontiguousarray(det.dom_pos), 25.0)
    d_all = np.linalg.norm(det.dom_pos[:, None] - det.dom_pos[None], axis=2)
    for d in (0, 40, 125):
        got = idx[off[d]:off[d + 1]]
        assert got[0] == d and sorted(got.tolist()) == np.flatnonzero(d_all[d] <= 25.0).tolist()
        np.testing.assert_allclose(dist[off[d]:off[d + 1]], d_all[d, got])


# ------------------------------------------------------------------------------------------
# 3DMuon
# ------------------------------------------------------------------------------------------


def _exact_muon_l2s(det, u, p, t0, doms):
    """One L2 per DOM at the direct-light time of a muon (PHYSICS.md §9.1)."""
    V = det.dom_pos[doms] - p
    L = V @ u
    d = np.sqrt(np.maximum((V * V).sum(1) - L * L, 0))
    return l2_pairs(det, doms, t0 + (L + KFAC * d) / C.C_LIGHT)


MUON_DOMS = np.array([5, 30, 60, 90, 120])


def test_muon_l2s_fire_3dmuon_and_causality_decides(det):
    u = np.array([0.0, 0.6, -0.8])
    cfg = only("trigger3DMuon", "arca21")  # 5 L2s on 5 DOMs, 120 m road
    idx, t = _exact_muon_l2s(det, u, det.center(), 1000.0, MUON_DOMS)
    te, sh, _ = run(det, cfg, hit_columns(det, idx, t, 0))
    assert te["trigger_mask"].tolist() == [MASK_3DMUON]
    assert (sh["trigger_mask"] == MASK_3DMUON).sum() == 10
    t_bad = t.copy()
    t_bad[[2, 2 + len(MUON_DOMS)]] += 300.0  # both hits of the third L2: 90 m of light path off
    te, _, _ = run(det, cfg, hit_columns(det, idx, t_bad, 0))
    assert len(te) == 0
    te, _, _ = run(det, only("trigger3DMuon", "arca21", **{"trigger3DMuon.numberOfHits": 4,
                                                           "trigger3DMuon.numberOfModules": 4}),
                   hit_columns(det, idx, t_bad, 0))
    assert te["trigger_mask"].tolist() == [MASK_3DMUON]  # the other four still fire


def test_3dmuon_road_width(det):
    """A vertical muon along the central DU lights one floor of it and of its 4 nearest DUs
    (20 m away, up to 40 m from each other): a 100 m road fires, a 15 m road (narrower than
    any DU distance) cannot hold two of these hits."""
    du_xy = det.dom_pos[:, :2]
    centre = np.argmin(np.hypot(*du_xy.T) + 1e3 * (det.dom_floor != 9))
    r = np.hypot(*(du_xy - du_xy[centre]).T)
    doms = np.flatnonzero((det.dom_floor == 9) & (r < 21))[:5]
    assert len(doms) == 5 and len(np.unique(r[doms].round())) == 2  # the axis DU and 4 at 20 m
    p = np.array([*du_xy[centre], 300.0])
    idx, t = _exact_muon_l2s(det, np.array([0.0, 0.0, -1.0]), p, 0.0, doms)
    cfg = {"trigger3DMuon.numberOfHits": 5, "trigger3DMuon.numberOfModules": 5}
    wide, _, _ = run(det, only("trigger3DMuon", **cfg, **{"trigger3DMuon.roadWidth_m": 100.0}), hit_columns(det, idx, t, 0))
    narrow, _, _ = run(det, only("trigger3DMuon", **cfg, **{"trigger3DMuon.roadWidth_m": 15.0}), hit_columns(det, idx, t, 0))
    assert len(wide) == 1 and len(narrow) == 0


def test_l2_input_versus_l1_input(det):
    """L1s whose two hits are 20 ns apart are no L2s (10 ns): only an L2 window of 25 ns fires."""
    u = np.array([0.0, 0.6, -0.8])
    idx, t = _exact_muon_l2s(det, u, det.center(), 1000.0, MUON_DOMS)
    t[len(MUON_DOMS):] += 17.0
    cols = hit_columns(det, idx, t, 0)
    assert len(run(det, only("trigger3DMuon", "arca21"), cols)[0]) == 0
    te, _, _ = run(det, only("trigger3DMuon", "arca21", **{"L2.TMaxLocal_ns": 25.0}), cols)
    assert te["trigger_mask"].tolist() == [MASK_3DMUON]


def test_muons_with_background_fire_and_flag_their_hits(det):
    rng = np.random.default_rng(5)
    events = [muon_event(det, rng, e) for e in range(8)]
    stage = Trigger(only("trigger3DMuon"), detector=det)
    out = stage.run({"hits": hits_table(events)}, _ctx(det, range(8)))
    te, sh = out["triggered_events"], out["snapshot_hits"]
    assert te["event_id"].tolist() == list(range(8))
    assert np.all(te["trigger_mask"] == MASK_3DMUON)
    assert np.all(te["trigger_counter"] == te["event_id"]) and np.all(te["n_triggered_doms"] >= 4)
    signal, flagged = sh["origin"] >= 0, sh["trigger_mask"] != 0
    # every signal hit is in an L2 of the muon cluster (2 hits per DOM within a few ns)
    assert flagged[signal].mean() > 0.97
    assert (~signal[flagged]).mean() < 0.05
    assert sh.is_sorted_by_event() and all(np.all(np.diff(sh.event(e)["time"]) >= 0) for e in range(8))


def test_pure_k40_rarely_fires_3dmuon(det):
    """Pure 7 kHz K40 windows of 10 µs, ORCA settings, 3DMuon only (4 L2s on 4 DOMs, 43 m road).

    A cluster needs >= 4 L2s within the seed window T (longest causal span, ~0.7 µs): we
    check that implication window by window, and that the fires stay below the Poisson
    99.9 % quantile of N_win · n̄ · P(Poisson(λ_T) >= 3), λ_T = n̄ T / 10 µs — an upper bound,
    since the geometry cut makes fires rarer still.
    """
    from scipy.stats import poisson

    rng = np.random.default_rng(9)
    n_win = 300
    cfg = only("trigger3DMuon")
    stage = Trigger(cfg, detector=det)
    events = [hit_columns(det, *k40_pmts(det, rng, 10_000.0), e) for e in range(n_win)]
    hits = hits_table(events)
    out = stage.run({"hits": hits}, _ctx(det, range(n_win)))
    fired = set(out["triggered_events"]["event_id"].tolist())
    proc = stage.processor(det)
    ids, offs = hits.offsets(np.arange(n_win))
    res = proc.run(offs, det.dom_index(hits["dom_id"]).astype(np.int32), hits["channel_id"].astype(np.int16),
                   hits["time"], one_per_window=False)
    nbar = res.n_l2.mean()
    assert 0.2 < nbar < 5  # L2s (10 ns, ctMin 0): ~0.5 kHz per DOM x 126 DOMs x 10 µs ≈ 0.6
    lam = nbar * stage.muon_window_ns / 10_000.0
    bound = poisson.ppf(0.999, max(n_win * nbar * poisson.sf(cfg.trigger3DMuon.numberOfHits - 2, lam), 1e-3))
    assert len(fired) <= bound
    assert set(ids[res.n_l2 < 4].tolist()).isdisjoint(fired)


# ------------------------------------------------------------------------------------------
# 3DShower and MXShower: a point source fires, a random pattern of the same multiplicity not
# ------------------------------------------------------------------------------------------

SHOWER_VERTEX = np.array([0.0, 0.0, 110.0])


def _doms_near(det, vertex, n, rmax):
    d = np.linalg.norm(det.dom_pos - vertex, axis=1)
    near = np.flatnonzero(d <= rmax)
    return near[np.argsort(d[near], kind="stable")][:n]


def test_point_source_fires_3dshower(det):
    doms = _doms_near(det, SHOWER_VERTEX, 5, 40.0)
    t = point_source_times(det, doms, SHOWER_VERTEX, 2000.0)
    cfg = only("trigger3DShower", **{"trigger3DShower.numberOfHits": 5, "trigger3DShower.numberOfModules": 5})
    te, sh, _ = run(det, cfg, hit_columns(det, *l2_pairs(det, doms, t), 0))
    assert te["trigger_mask"].tolist() == [MASK_3DSHOWER] and (sh["trigger_mask"] != 0).sum() == 10


def test_3dshower_causality_cut(det):
    """|Δt| ≤ D·n/c + TMaxExtra for every pair: moving one L2 just inside the tightest of its
    limits keeps the 5-L2 cluster, 2 ns beyond it breaks it."""
    doms = _doms_near(det, SHOWER_VERTEX, 5, 40.0)
    t = point_source_times(det, doms, SHOWER_VERTEX, 2000.0)
    D = np.linalg.norm(det.dom_pos[doms][0] - det.dom_pos[doms][1:], axis=1)
    edge = np.min(t[1:] + D * INV_V + 25.0)  # latest time of L2 0 compatible with all others
    cfg = only("trigger3DShower", **{"trigger3DShower.numberOfHits": 5, "trigger3DShower.numberOfModules": 5})
    for dt, n in ((-1.0, 1), (+1.0, 0)):
        moved = t.copy()
        moved[0] = edge + dt
        assert len(run(det, cfg, hit_columns(det, *l2_pairs(det, doms, moved), 0))[0]) == n, dt


def test_random_l2_patterns_do_not_fire_3dshower(det):
    """The same 5 DOMs with their L2s at random times in 20 µs: no fire.

    For a fire all 5 L2s must lie within the seed window W = DMax·n/c + 25 ns ≈ 265 ns
    (orca6, DMax 52 m); P ≈ 5·(W/20 µs)^4 ≈ 2e-7 per pattern, so 40 patterns never fire.
    """
    rng = np.random.default_rng(4)
    doms = _doms_near(det, SHOWER_VERTEX, 5, 40.0)
    cfg = only("trigger3DShower", **{"trigger3DShower.numberOfHits": 5, "trigger3DShower.numberOfModules": 5})
    events = [hit_columns(det, *l2_pairs(det, doms, rng.uniform(0, 20_000, 5)), e) for e in range(40)]
    assert len(run(det, cfg, *events)[0]) == 0


def _mx_pattern(det, vertex, n_hits, t0=3000.0):
    """An L2 seed (2 hits) at the DOM nearest the vertex plus single hits on the next nearest
    DOMs, all at the point-source time; ``n_hits`` hits in all."""
    doms = _doms_near(det, vertex, 1 + (n_hits - 2), 30.0)
    seed = doms[0]
    t = point_source_times(det, doms, vertex, t0)
    off = det.dom_pmt_offsets
    idx = np.concatenate([[off[seed], off[seed] + 4], off[doms[1:]] + 2])
    tt = np.concatenate([[t[0], t[0] + 2.0], t[1:]])
    return idx, tt, doms


def test_point_source_fires_mxshower_with_more_than_number_of_hits(det):
    """numberOfHits = 8 L0 hits *besides* the seed hit: 9 hits fire, 8 do not (as in real data)."""
    cfg = only("triggerMXShower")  # orca6: 8 hits, 3 DOMs, DMax 47 m
    idx, t, doms = _mx_pattern(det, SHOWER_VERTEX, 9)
    assert len(np.unique(doms)) >= 3
    te, sh, _ = run(det, cfg, hit_columns(det, idx, t, 0))
    assert te["trigger_mask"].tolist() == [MASK_MXSHOWER] and (sh["trigger_mask"] == MASK_MXSHOWER).sum() == 9
    idx8, t8, _ = _mx_pattern(det, SHOWER_VERTEX, 8)
    assert len(run(det, cfg, hit_columns(det, idx8, t8, 0))[0]) == 0


def test_random_l0_patterns_do_not_fire_mxshower(det):
    """The same 9 hits (same DOMs and PMTs) at random times in 20 µs: no MX fire.

    A fire needs 9 hits within ±(D·n/c + 25 ns) ≤ ±240 ns of the seed; with the 7 single hits
    uniform in 20 µs P(all 7 near the seed) ≈ (0.5 µs/20 µs)^7 ≈ 6e-12.
    """
    rng = np.random.default_rng(8)
    idx, t, _ = _mx_pattern(det, SHOWER_VERTEX, 9)
    events = []
    for e in range(40):
        tt = t.copy()
        tt[2:] = rng.uniform(0, 20_000, len(t) - 2)
        tt[:2] = rng.uniform(0, 20_000) + np.array([0.0, 2.0])  # keep the seed an L2
        events.append(hit_columns(det, idx, tt, e))
    assert len(run(det, only("triggerMXShower"), *events)[0]) == 0


def test_mxshower_distance_cut(det):
    """A 9th hit on a DOM farther than DMax (47 m) from the seed does not count; on a DOM
    within DMax it does (point-source time in both cases)."""
    idx, t, doms = _mx_pattern(det, SHOWER_VERTEX, 8)
    seed_pos = det.dom_pos[doms[0]]
    d_seed = np.linalg.norm(det.dom_pos - seed_pos, axis=1)
    free = np.setdiff1d(np.arange(det.n_doms), doms)
    far = free[(d_seed[free] > 48) & (d_seed[free] < 60)][0]
    near = free[(d_seed[free] < 30) & (np.linalg.norm(det.dom_pos[free] - det.dom_pos[doms][:, None], axis=2).max(0) < 47)][0]
    cfg = only("triggerMXShower")
    for extra, n in ((far, 0), (near, 1)):
        te = point_source_times(det, [extra], SHOWER_VERTEX, 3000.0)
        cols = hit_columns(det, np.append(idx, det.dom_pmt_offsets[extra] + 2), np.append(t, te), 0)
        assert len(run(det, cfg, cols)[0]) == n


# ------------------------------------------------------------------------------------------
# factory limit, event building and masks
# ------------------------------------------------------------------------------------------


def test_factory_limit_sets_bit_31(det):
    rng = np.random.default_rng(8)
    doms = rng.choice(det.n_doms, 12, replace=False)
    idx, t = l2_pairs(det, doms, rng.uniform(0, 50, 12))  # 12 L2s in 50 ns, not causal
    cols = hit_columns(det, idx, t, 3)
    te, sh, _ = run(det, only("trigger3DShower", **{"trigger3DShower.factoryLimit": 10}), cols)
    assert te["trigger_mask"].tolist() == [MASK_3DSHOWER | MASK_FACTORY_LIMIT]
    assert np.all(sh["trigger_mask"] == MASK_3DSHOWER | MASK_FACTORY_LIMIT)
    te, _, _ = run(det, only("trigger3DShower", **{"trigger3DShower.factoryLimit": 13}), cols)
    assert all(int(m) & MASK_FACTORY_LIMIT == 0 for m in te["trigger_mask"])


def test_mask_bits_are_the_km3net_bit_numbers():
    """FORMATS.md §5 / km3io: bit numbers 1, 2, 4, 31 -> the real ARCA event with all three
    triggers has mask 22 (checked against the real files in test_real_data.py)."""
    assert (MASK_3DSHOWER, MASK_MXSHOWER, MASK_3DMUON, MASK_FACTORY_LIMIT) == (2, 4, 16, 2**31)
    assert MASK_3DSHOWER | MASK_MXSHOWER | MASK_3DMUON == 22


def test_overlapping_triggers_merge_into_one_event(det):
    """A muon and a shower 1.5 µs apart (orca6: TMaxEvent 1 µs, snapshots overlap) give one
    event with both bits; 5 µs apart (no overlap) two events, of which the stage keeps the
    larger."""
    cfg = preset("orca6", **{"triggerMXShower.enabled": False})
    u = np.array([0.0, 0.6, -0.8])
    mi, mt = _exact_muon_l2s(det, u, det.center(), 1000.0, np.array([5, 30, 60, 90, 120]))
    sdoms = _doms_near(det, SHOWER_VERTEX, 3, 20.0)
    for gap, n_events in ((1500.0, 1), (5000.0, 2)):
        t_sh = mt.max() + gap
        si, st = l2_pairs(det, sdoms, point_source_times(det, sdoms, SHOWER_VERTEX, t_sh))
        cols = hit_columns(det, np.concatenate([mi, si]), np.concatenate([mt, st]), 0)
        te, sh, _ = run(det, cfg, cols, one_per_window=False)
        assert len(te) == n_events, gap
        if n_events == 1:
            assert te["trigger_mask"][0] & (MASK_3DMUON | MASK_3DSHOWER) == MASK_3DMUON | MASK_3DSHOWER
            assert te["overlays"][0] >= 1
            trig_t = sh["time"][sh["trigger_mask"] != 0]
            assert te["snapshot_start"][0] == trig_t.min() - cfg.TMaxEvent_ns
            assert te["snapshot_end"][0] == trig_t.max() + cfg.TMaxEvent_ns
        else:
            assert te["snapshot_end"][0] < te["snapshot_start"][1]
            assert te["trigger_mask"].tolist() == [MASK_3DMUON, MASK_3DSHOWER]
            n_mu, n_sh = te["n_triggered_hits"].tolist()
            assert n_sh == 6 and n_mu >= 8  # 3 shower L2s; >= 4 of the 5 muon L2s (43 m road)
            kept, _, _ = run(det, cfg, cols)  # stage mode: one event per simulated window, the larger
            assert kept["trigger_mask"].tolist() == [MASK_3DMUON] and kept["n_triggered_hits"].tolist() == [n_mu]


def test_snapshot_window_bounds(det):
    rng = np.random.default_rng(6)
    cols = muon_event(det, rng, 0, window_ns=20_000.0)
    cfg = only("trigger3DMuon")
    te, sh, _ = run(det, cfg, cols)
    trig_t = sh["time"][sh["trigger_mask"] != 0]
    assert te["snapshot_start"][0] == trig_t.min() - cfg.TMaxEvent_ns
    assert te["snapshot_end"][0] == trig_t.max() + cfg.TMaxEvent_ns
    inside = (cols["time"] >= te["snapshot_start"][0]) & (cols["time"] <= te["snapshot_end"][0])
    assert len(sh) == inside.sum() == te["n_hits"][0] and 0 < inside.sum() < len(cols["time"])
    assert te["n_triggered_hits"][0] == (sh["trigger_mask"] != 0).sum()
    assert te["n_triggered_doms"][0] == len(np.unique(sh["dom_id"][sh["trigger_mask"] != 0]))


def test_dom_sorted_and_time_sorted_layouts_agree(det):
    rng = np.random.default_rng(14)
    cols = muon_event(det, rng, 0, window_ns=200_000.0)
    proc = TriggerProcessor(preset("orca6"), det)
    dom = det.dom_index(cols["dom_id"]).astype(np.int32)
    ch = cols["channel_id"].astype(np.int16)
    off = np.array([0, len(dom)])
    a = proc.run(off, dom, ch, cols["time"], one_per_window=False)
    o = np.lexsort((cols["time"], dom))
    b = proc.run(off, dom[o], ch[o], cols["time"][o], dom_sorted=True, one_per_window=False)
    assert len(a.ev_mask) >= 1
    for key in ("ev_start", "ev_end", "ev_mask", "ev_overlays"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(a.hit_mask[o], b.hit_mask)


def test_work_buffers_reused_between_calls(det):
    """A processor keeps its sorting buffers between calls; results do not depend on the history.

    Calls with a long window, then several windows, then the DOM-sorted layout, then a window
    of another channel dtype give exactly what a fresh processor gives for each.
    """
    rng = np.random.default_rng(15)
    cols = [muon_event(det, rng, e, window_ns=30_000.0) for e in range(3)]
    dom = np.concatenate([det.dom_index(c["dom_id"]) for c in cols]).astype(np.int32)
    ch = np.concatenate([c["channel_id"] for c in cols]).astype(np.int16)
    t = np.concatenate([c["time"] + 1e5 * e for e, c in enumerate(cols)])
    sizes = [len(c["time"]) for c in cols]
    whole = np.array([0, len(t)])
    per_event = np.concatenate([[0], np.cumsum(sizes)])
    o = np.lexsort((t, dom))
    calls = [(whole, dom, ch, t, False), (per_event, dom, ch, t, False), (whole, dom[o], ch[o], t[o], True),
             (per_event, dom, ch.astype(np.int32), t, False), (whole, dom, ch, t, False)]
    proc = TriggerProcessor(preset("orca6"), det)
    for off, d, c, x, ds in calls:
        got = proc.run(off, d, c, x, dom_sorted=ds, one_per_window=False)
        ref = TriggerProcessor(preset("orca6"), det).run(off, d, c, x, dom_sorted=ds, one_per_window=False)
        assert np.count_nonzero(ref.hit_mask) > 0
        for key, val in vars(ref).items():
            np.testing.assert_array_equal(getattr(got, key), val, err_msg=key)
    assert not proc._work[4].any()  # the trigger-bit buffer is left all zero


def test_work_buffers_too_short_raise(det):
    proc = TriggerProcessor(preset("orca6"), det)
    n = 10
    args = (np.array([0, n]), np.zeros(n, np.int32), np.zeros(n, np.int16), np.arange(n, dtype=np.float64), False,
            False, proc.dom_pos, proc.pmt_axis, proc.directions, proc.nb_off, proc.nb_idx, proc.nb_dist, proc.params)
    with pytest.raises(ValueError, match="work buffers shorter"):
        K.trigger_windows(*args, np.zeros(n, np.uint32),
                          *K.work_buffers(n - 1, np.zeros(0, np.int16), np.zeros(0, np.int32), np.zeros(0, np.int32)))
    with pytest.raises(ValueError, match="one entry per hit"):
        K.trigger_windows(*args, np.zeros(n - 1, np.uint32),
                          *K.work_buffers(n, np.zeros(0, np.int16), np.zeros(0, np.int32), np.zeros(0, np.int32)))


# ------------------------------------------------------------------------------------------
# stage contract
# ------------------------------------------------------------------------------------------


def test_chunk_invariance_unsorted_and_empty_input(det):
    rng = np.random.default_rng(12)
    events = [muon_event(det, rng, e) if e % 3 else hit_columns(det, *k40_pmts(det, rng, 10_000.0), e) for e in range(30)]
    hits = hits_table(events)
    stage = Trigger(preset("orca6"), detector=det)
    full = stage.run({"hits": hits}, _ctx(det, range(30)))
    parts = [stage.run({"hits": hits.select_events(range(a, a + 15))}, _ctx(det, range(a, a + 15))) for a in (0, 15)]
    for name in ("triggered_events", "snapshot_hits"):
        assert Table.concat([p[name] for p in parts]).equals(full[name])
    assert len(full["triggered_events"]) >= 20  # the 20 muon events
    shuffled = stage.run({"hits": hits[rng.permutation(len(hits))]}, _ctx(det, range(30)))
    assert shuffled["snapshot_hits"].equals(full["snapshot_hits"])
    empty = stage.run({"hits": hits[np.zeros(len(hits), bool)]}, _ctx(det, range(30)))
    assert len(empty["triggered_events"]) == 0 and len(empty["snapshot_hits"]) == 0


def test_bad_hits_raise(det):
    from km3sim.errors import StageError

    cols = hit_columns(det, [0, 1], [0.0, 1.0], 0)
    bad = dict(cols, channel_id=np.array([0, 40], dtype=np.int32))
    with pytest.raises(StageError, match="channel 40"):
        trigger_hits(make_table("hits", **bad), det)
    bad = dict(cols, dom_id=np.array([1, 999_999], dtype=np.int32))
    with pytest.raises(StageError, match="unknown to detector"):
        trigger_hits(make_table("hits", **bad), det)
    with pytest.raises(StageError, match="needs a detector"):
        Trigger(preset("orca6")).process({"hits": make_table("hits", **cols)}, _ctx(None, [0]))


def test_registered_and_backwards_compatible_names():
    cls = get_stage("trigger")
    assert cls is Trigger is Trigger3DMuon
    assert (cls.role, cls.consumes, cls.produces) == ("trigger", ("hits",), ("triggered_events", "snapshot_hits"))
