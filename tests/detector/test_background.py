"""Optical background at real-data level (issue 5 acceptance): PHYSICS.md §8, §12, §13.

The simulated background of a few DOMs of the real ARCA21 / ORCA-115 detector files is measured
the way the real data were (§13) and compared with the real-data figures.
"""

import functools
import math
from types import SimpleNamespace

import numpy as np
import pytest
from km3net_testdata import data_path
from scipy.optimize import curve_fit

from km3sim.detector import background as bg
from km3sim.detector.pmt import pmt_parameters
from km3sim.io.detx import read_detector


@functools.lru_cache(maxsize=2)
def _detector(path):
    return read_detector(data_path(path))


def first_doms(path, n_doms):
    det = _detector(path)
    sel = np.flatnonzero(det.pmt_dom_index < n_doms)
    return SimpleNamespace(
        pmt_id=det.pmt_id[sel], pmt_dom_id=det.pmt_dom_id[sel], pmt_channel=det.pmt_channel[sel],
        pmt_dir=det.pmt_dir[sel], pmt_usable=np.ones(len(sel), dtype=bool), dom_index=det.pmt_dom_index[sel],
    )


ARCA = "detx/KM3NeT_00000133_20221025.detx"
ORCA = "detx/orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx"
#: PMT rings by cos(zenith) of the axis, bottom -> top, and ARCA det 267 ring rates [kHz] (§13)
RING_COS = np.array([-1.0, -0.85, -0.555, -0.295, 0.295, 0.555])
ARCA_RING_KHZ = np.array([6.24, 6.07, 6.07, 5.75, 5.02, 4.27])


def ring_of(det):
    return np.argmin(np.abs(det.pmt_dir[:, 2][:, None] - RING_COS[None, :]), axis=1)


# ------------------------------------------------------------------------------ model pieces
def test_pair_weight_and_participation():
    # k40gen p(c) (§8.2): 1 at c = 0, e^(2.4347-0.68884+1.3911) head-on, ordering by angle
    assert bg.k40_pair_weight(0.0) == 1.0
    assert bg.k40_pair_weight(1.0) == pytest.approx(math.exp(2.4347 - 0.68884 + 1.3911))
    det = first_doms(ARCA, 1)
    doms = bg.DomCoincidences(det)
    assert doms.n_doms == 1 and doms.kmax == 31
    # participation probabilities: a k-fold puts k hits on the DOM
    for fold in (2, 3, 4):
        p = doms.participation(fold)[0]
        assert p.sum() == pytest.approx(fold, rel=1e-9 if fold == 2 else 3e-3)
    # two-fold pair frequencies vs the exact probability of the k40gen algorithm:
    # P(i, j) = p1(i) w_ij / S_i + p1(j) w_ji / S_j with S_i = Σ_k w_ik, p1(i) = S_i / Σ S
    w = doms.wmat[0]
    s = w.sum(axis=1)
    p1 = s / s.sum()
    exact = p1[:, None] * w / s[:, None]
    exact = exact + exact.T
    n = 200_000
    draws = doms.choose(2, n, seed=3)
    i, j = np.minimum(draws[:, 0], draws[:, 1]), np.maximum(draws[:, 0], draws[:, 1])
    counts = np.zeros((31, 31))
    np.add.at(counts, (i, j), 1)
    iu = np.triu_indices(31, 1)
    expected = n * exact[iu]
    # grouped by pair angle (rounded cos): each group's count within 4 Poisson σ of the exact one
    cos = np.round(det.pmt_dir @ det.pmt_dir.T, 2)[iu]
    for c in np.unique(cos):
        m = cos == c
        assert abs(counts[iu][m].sum() - expected[m].sum()) < 4 * math.sqrt(expected[m].sum()) + 1
    # neighbours (33°) are chosen far more often per pair than opposite PMTs
    assert exact[iu][cos > 0.8].mean() > 20 * exact[iu][cos < -0.8].mean()


def test_coincidence_subtraction_keeps_total_rate():
    det = first_doms(ARCA, 2)
    params = pmt_parameters(det)
    doms = bg.DomCoincidences(det)
    k40 = bg.K40_PRESETS["arca"]
    total = np.full(62, 6000.0)
    unc = bg.uncorrelated_rates_hz(total, params.switched_on, params, doms, k40)
    coinc = doms.pmt_rates_hz(k40.fold_hz, 62)
    np.testing.assert_allclose(unc + coinc, total)
    # all coincidence hits of a DOM: Σ_f f·R_f
    expected = sum((f + 2) * r for f, r in enumerate(k40.fold_hz))
    assert coinc[:31].sum() == pytest.approx(expected, rel=3e-3)


# ------------------------------------------------------------------------------ §13 figures
def test_ring_rates_from_conditions(tmp_path):
    """Median singles rate per PMT ring (ARCA det 267) configured per PMT through RunConditions,
    then MEASURED from the simulated hits of the stage: within 5 % of the real values."""
    from km3sim import schema
    from km3sim.detector.conditions import RunConditions
    from km3sim.detector.response import PmtResponse, PmtResponseConfig
    from km3sim.stage import StageContext

    n_doms = 6
    det = first_doms(ARCA, n_doms)
    ring = ring_of(det)
    dom_ids = np.unique(det.pmt_dom_id)
    rates = np.zeros((2, n_doms, 31), dtype=np.float32)
    di = np.searchsorted(dom_ids, det.pmt_dom_id)
    rates[:, di, det.pmt_channel] = ARCA_RING_KHZ[ring] * 1e3
    hrv = np.zeros((2, n_doms, 31), dtype=bool)
    hrv[1, 0, :5] = True  # second frame: 5 PMTs of the first DOM in high-rate veto
    cond = RunConditions(det_id=267, run_id=1, utc_start_s=0.0, frame_start_s=[0.0, 0.1], dom_ids=dom_ids,
                         rates_hz=rates, hrv=hrv, fifo=np.zeros_like(hrv))
    path = cond.save(tmp_path / "cond.h5")
    cfg = PmtResponseConfig(conditions=str(path), k40_preset="arca", window_margin_ns=500_000.0)
    stage = PmtResponse(cfg, detector=det)
    n_ev = 800  # 2 × 800 windows of 1 ms: 0.8 s per frame
    ev = np.arange(2 * n_ev, dtype=np.int64)
    mc_time = np.where(ev < n_ev, 0.05e9, 0.15e9)  # events in frame 0, then frame 1
    z = np.zeros(len(ev))
    events = schema.make_table("events", event_id=ev, run_id=np.ones(len(ev), np.int32), mc_time=mc_time,
                               pdgid=np.full(len(ev), 13), n_gen=np.full(len(ev), len(ev)),
                               n_muons=np.ones(len(ev), np.int32), energy=z, pos_x=z, pos_y=z, pos_z=z,
                               dir_x=z, dir_y=z, dir_z=z - 1, livetime_s=z + 1, weight_w3=z + 1)
    ctx = StageContext(seed=5, run_id=1, chunk=0, stage_name="pmt_response", event_ids=ev, livetime_s=1.0,
                       n_events_run=len(ev), detector=det)
    hits = stage.run({"events": events, "mc_hits": schema.empty_table("mc_hits")}, ctx)["hits"]
    idx = np.searchsorted(det.pmt_id, hits["pmt_id"], sorter=np.argsort(det.pmt_id))
    idx = np.argsort(det.pmt_id)[idx]
    f0 = hits["event_id"] < n_ev
    measured = np.bincount(idx[f0], minlength=len(ring)) / (n_ev * 1e-3)
    # per PMT ≈ 5000 hits: 1.4 % Poisson error, medians of 36 PMTs far better; tolerance 5 %
    for r in range(6):
        med = np.median(measured[ring == r])
        assert med == pytest.approx(ARCA_RING_KHZ[r] * 1e3, rel=0.05), (r, med)
    meds = [np.median(measured[ring == r]) for r in range(6)]
    assert meds[0] > meds[3] > meds[4] > meds[5]  # downward PMTs count more
    # frame 1: the vetoed PMTs are silent, the others keep their rate
    in_f1 = np.bincount(idx[~f0], minlength=len(ring))
    vetoed = (di == 0) & (det.pmt_channel < 5)
    assert in_f1[vetoed].sum() == 0 and np.all(in_f1[~vetoed] > 0)


def simulate(path, preset, total_hz, n_doms, seconds, seed=11):
    det = first_doms(path, n_doms)
    n_win = int(round(seconds * 1000))
    h = bg.simulate_background(det, n_win, 1e6, k40=preset, total_rates_hz=np.full(len(det.pmt_id), total_hz), seed=seed)
    return det, h


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, preset, singles, pairs, rms, clusters",
    [
        # §13: ARCA (det 267, median singles 5.6 kHz): 547 pairs/s, rms 3.5 ns, ≥4-fold 5.0 Hz
        (ARCA, "arca", 5600.0, 547.0, 3.5, 5.0),
        # ORCA (median singles 7.14 kHz, det 29): 522 pairs/s, rms 3.9 ns, ≥4-fold 3.9 Hz
        (ORCA, "orca", 7140.0, 522.0, 3.9, 3.9),
    ],
)
def test_k40_coincidences_match_real_data(path, preset, singles, pairs, rms, clusters):
    n_doms, seconds = 30, 2.0
    det, h = simulate(path, preset, singles, n_doms, seconds)
    live = seconds
    # total singles rate per PMT is the configured (measured) one: 186 PMTs × ~12000 hits
    r = bg.measured_pmt_rates_hz(h["pmt"], len(det.pmt_id), live)
    assert np.median(r) == pytest.approx(singles, rel=0.02)
    # two-fold excess within |Δt| ≤ 10 ns, random pairs R1·R2·Δt subtracted (km3pipe). Pairs:
    # ≈ 33000 genuine + ≈ 17000 random -> σ ≈ 0.7 %; tolerance 10 % (the brief's)
    rate2, rms2, _, _ = bg.twofold_coincidence_rate(h["window"], h["pmt"], h["time"], det.dom_index, n_doms, live)
    assert rate2 == pytest.approx(pairs, rel=0.10)
    assert rms2 == pytest.approx(rms, rel=0.15)
    # ≥4-fold 25-ns clusters: ≈ 250-300 counted -> σ ≈ 6 %; tolerance 25 % (≈ 4 σ)
    rate4 = bg.multifold_cluster_rate(h["window"], h["pmt"], h["time"], det.dom_index, n_doms, live)
    assert rate4 == pytest.approx(clusters, rel=0.25)


def _core_gaussian(tot):
    """Mean and σ of a Gaussian fitted to the ToT histogram within ±1.5 σ of the peak (iterated)."""
    h, e = np.histogram(tot, bins=np.arange(0.0, 60.0, 0.5))
    c = 0.5 * (e[1:] + e[:-1])
    mu, s = c[np.argmax(h)], 3.0
    for _ in range(8):
        m = (c > mu - 1.5 * s) & (c < mu + 1.5 * s)
        p, _ = curve_fit(lambda x, a, m_, s_: a * np.exp(-0.5 * (x - m_) ** 2 / s_**2), c[m], h[m], p0=[h.max(), mu, s])
        mu, s = p[1], abs(p[2])
    return mu, s


def test_single_pe_tot_distribution():
    # background hits are single p.e.: §7.3 measured 1-p.e. ToT 26.9 ± 2.44 ns (Gaussian part),
    # §13 median of real snapshot hits 25 ns. ~200 000 hits: statistical errors < 0.05 ns.
    det, h = simulate(ARCA, "arca", 6000.0, 6, 0.2)
    tot = h["tot"]
    assert len(tot) > 150_000
    assert 25.0 - 2.0 <= np.median(np.rint(tot)) <= 27.0 + 2.0
    mu, s = _core_gaussian(tot)
    assert mu == pytest.approx(26.9, abs=0.6)
    assert s == pytest.approx(2.44, rel=0.15)
    # low tail: threshold band (≈ 4.5 ns) and under-amplified pe exist, but are a few % only
    assert 0.005 < np.mean(tot < 10.0) < 0.06
    assert np.all(h["npe"] >= 1)


# ------------------------------------------------------------------------------ kernel mechanics
def test_alias_table_is_exact():
    # Walker alias table: P(i) = (prob_i + Σ_{j: alias_j = i} (1 − prob_j)) / n must be w_i / Σw
    from km3sim.detector._kernels import alias_table

    rng = np.random.default_rng(4)
    for w in (rng.uniform(0, 1, 1000) ** 4, np.r_[np.zeros(5), 1.0, np.zeros(3), 2.0], np.full(7, 3.0)):
        prob, alias = alias_table(w)
        n = len(w)
        p = prob.copy()
        np.add.at(p, alias, 1.0 - prob)
        np.testing.assert_allclose(p / n, w / w.sum(), atol=1e-12)
    prob, alias = alias_table(np.zeros(4))  # no rate: identity (never sampled)
    assert np.all(prob == 1.0) and list(alias) == [0, 1, 2, 3]


def test_kernel_output_that_does_not_fit_is_redone():
    # the kernel stops before an event that does not fit in the output arrays; the caller grows
    # them and goes on from there: the result must not depend on the initial capacity
    det = first_doms(ARCA, 3)
    params = pmt_parameters(det)
    doms = bg.DomCoincidences(det)
    k40 = bg.K40_PRESETS["arca"]
    singles = bg.uncorrelated_rates_hz(np.full(93, 2e5), params.switched_on, params, doms, k40)
    seeds = np.arange(1, 41, dtype=np.uint64) * np.uint64(7919)
    mc_off = np.arange(41, dtype=np.int64) * 5
    kw = dict(mc_offsets=mc_off, mc_pmt=np.tile(np.arange(5), 40), mc_time=np.tile(np.linspace(0, 40, 5), 40),
              mc_origin=np.full(200, 3))
    ref = bg.run_hit_kernel(seeds, params, params.switched_on, singles, doms, k40, 2000.0, **kw)
    for cap in (1, 50, 300):
        out = bg.run_hit_kernel(seeds, params, params.switched_on, singles, doms, k40, 2000.0, capacity=cap, **kw)
        for a, b in zip(ref, out):
            np.testing.assert_array_equal(a, b)
    assert len(ref[0]) > 5 * 300 and set(np.unique(ref[5])) == {-1, 3}
