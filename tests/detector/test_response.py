"""Tests of the PMT response and optical background stage (PHYSICS.md §7.3, §8.2)."""
# Most tests switch off the effects they do not look at: coincidences (k40_coincidence_hz=[]),
# slewing, afterpulses, under-amplified pe; each effect is then tested on its own.

import math
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from km3sim import schema
from km3sim.detector.pmt import time_over_threshold, time_slewing_ns
from km3sim.detector.response import PmtResponse, PmtResponseConfig
from km3sim.errors import ConfigError, StageError, StageFileError
from km3sim.stage import StageContext, get_stage
from km3sim.table import Table


def stub_detector(n, ok=None):
    """A duck-typed detector: ``n`` PMTs in DOMs of 31 (positions are not used here)."""
    return SimpleNamespace(
        pmt_id=np.arange(5000, 5000 + 3 * n, 3, dtype=np.int64)[::-1].copy(),  # unsorted ids
        pmt_dom_id=(800 + np.arange(n) // 31).astype(np.int64),
        pmt_channel=(np.arange(n) % 31).astype(np.int32),
        pmt_pos=np.zeros((n, 3)),
        pmt_dir=np.tile([0.0, 0.0, -1.0], (n, 1)),
        pmt_status_ok=np.ones(n, dtype=bool) if ok is None else np.asarray(ok, dtype=bool),
    )


def make_events(event_ids):
    ev = np.asarray(event_ids, dtype=np.int64)
    n = len(ev)
    z = np.zeros(n)
    return schema.make_table(
        "events", event_id=ev, run_id=np.ones(n, dtype=np.int32), mc_time=z, pdgid=np.full(n, 13), n_gen=np.full(n, n), n_muons=np.ones(n, dtype=np.int32),
        energy=z, pos_x=z, pos_y=z, pos_z=z, dir_x=z, dir_y=z, dir_z=z - 1, livetime_s=z + 1, weight_w3=z + 1,
    )


def make_mc_hits(event_id, pmt_index, time, det, origin=0):
    event_id = np.asarray(event_id, dtype=np.int64)
    pmt_index = np.asarray(pmt_index)
    n = len(event_id)
    t = schema.make_table(
        "mc_hits", event_id=event_id, pmt_id=det.pmt_id[pmt_index], dom_id=det.pmt_dom_id[pmt_index],
        channel_id=det.pmt_channel[pmt_index], time=np.broadcast_to(np.asarray(time, dtype=float), (n,)),
        npe=np.ones(n, dtype=np.int32), origin=np.broadcast_to(np.asarray(origin), (n,)).astype(np.int32),
    )
    return t.sort(("event_id", "time"))


def make_ctx(det, event_ids, seed=2024):
    ev = np.asarray(event_ids, dtype=np.int64)
    return StageContext(seed=seed, run_id=5, chunk=0, stage_name="pmt_response", event_ids=ev,
                        livetime_s=1.0, n_events_run=len(ev), detector=det)


def run(stage, det, ev, mc):
    return stage.run({"events": make_events(ev), "mc_hits": mc}, make_ctx(det, ev))["hits"]


def empty_mc():
    return schema.empty_table("mc_hits")


#: only uncorrelated singles and the plain pulse model
PLAIN = dict(k40_coincidence_hz=[], slewing=False, afterpulse_probability=0.0, p_under_amplified=0.0)


# ------------------------------------------------------------------------------ background
def test_k40_background_rate_without_signal():
    # 200 PMTs × 400 events, window 2 × 5000 ns at 7 kHz: mean 0.07 per PMT-window, expected
    # total 5600, Poisson σ = 75; 4 σ = 5.4 % (a rate wrong by 10 % fails by > 7 σ)
    det = stub_detector(200)
    ev = np.arange(400, dtype=np.int64)
    hits = run(PmtResponse(PmtResponseConfig(k40_rate_hz=7000.0, **PLAIN), detector=det), det, ev, empty_mc())
    expected = 200 * 400 * 7000e-9 * 10_000.0
    # count pe (sum of npe): two singles on one PMT within a ToT (~1 case here) make one hit
    assert abs(hits["npe"].sum() - expected) < 4 * math.sqrt(expected)
    assert np.all(hits["origin"] == -1)
    assert np.mean(hits["npe"] == 1) > 0.999
    assert hits["time"].min() >= -5000.0 and hits["time"].max() <= 5000.0
    # uniform in the window: mean 0 with σ = 10000/sqrt(12 N)
    assert abs(hits["time"].mean()) < 4 * 10_000.0 / math.sqrt(12 * len(hits))
    # every PMT takes part (mean 28 per PMT, P(0) = e^-28)
    assert len(np.unique(hits["pmt_id"])) == 200


def _close_pairs(h, max_dt=10.0):
    """Pairs of hits of one event and DOM within ``max_dt``."""
    o = np.lexsort((h["time"], h["dom_id"], h["event_id"]))
    ev, dom, t = h["event_id"][o], h["dom_id"][o], h["time"][o]
    n = 0
    for k in range(1, 8):
        n += int(np.sum((ev[k:] == ev[:-k]) & (dom[k:] == dom[:-k]) & (t[k:] - t[:-k] <= max_dt)))
    return n


def test_coincidences_add_correlated_hits_at_the_total_rate():
    # the configured singles rate is the TOTAL rate: with coincidences on, the number of hits
    # stays (coincidence hits are taken out of the uncorrelated singles), but hits on one DOM
    # within 10 ns appear. 62 PMTs (2 DOMs) × 4000 windows × 10 µs at 2 kHz: 4960 ± 70 hits.
    det = stub_detector(62)
    ev = np.arange(4000, dtype=np.int64)
    cfg = PmtResponseConfig(k40_rate_hz=2000.0, k40_coincidence_hz=[600.0, 60.0], slewing=False, afterpulse_probability=0)
    hits = run(PmtResponse(cfg, detector=det), det, ev, empty_mc())
    expected = 62 * 4000 * 2000e-9 * 10_000.0
    assert abs(len(hits) - expected) < 4 * math.sqrt(expected)
    # close pairs on one DOM: genuine 2 DOMs × (600 + 3·60)/s × 0.04 s = 62.4 pairs, plus
    # random 2 × 465 × 2000² × 20 ns × 0.04 s ≈ 3.0; Poisson σ ≈ 8
    assert abs(_close_pairs(hits) - 65.4) < 4 * math.sqrt(65.4)
    hits0 = run(PmtResponse(PmtResponseConfig(k40_rate_hz=2000.0, **PLAIN), detector=det), det, ev, empty_mc())
    assert abs(len(hits0) - expected) < 4 * math.sqrt(expected)
    assert _close_pairs(hits0) < 3.0 + 4 * math.sqrt(3.0)


def test_k40_window_follows_signal_and_only_usable_pmts():
    # signal pe between t = 1000 and 3000 ns -> window [1000 − 500, 3000 + 500] = 3000 ns;
    # 100 usable PMTs × 300 events × 3000 ns × 50 kHz: expected 4500, σ = 67 (4 σ = 6 %)
    ok = np.ones(120, dtype=bool)
    ok[100:] = False
    det = stub_detector(120, ok=ok)
    ev = np.arange(300, dtype=np.int64) * 3
    mc = make_mc_hits(np.repeat(ev, 3), np.tile([0, 1, 110], len(ev)), np.tile([1000.0, 3000.0, 2000.0], len(ev)), det)
    cfg = PmtResponseConfig(k40_rate_hz=50_000.0, window_margin_ns=500.0, tts_ns=0.0, **PLAIN)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    bg = hits[hits["origin"] == -1]
    expected = 100 * 300 * 3000.0 * 50_000e-9
    assert abs(len(bg) - expected) < 4 * math.sqrt(expected)
    assert bg["time"].min() >= 500.0 and bg["time"].max() <= 3500.0
    # disabled PMTs: no background and their signal is dropped
    assert not np.isin(hits["pmt_id"], det.pmt_id[100:]).any()


def test_switched_off_pmts_are_silent():
    # QE 0 (PMT parameter override) -> neither signal nor background; QE 0.5 halves the signal
    det = stub_detector(62)
    ov = [{"pmt_id": int(det.pmt_id[3]), "qe": 0.0}, {"pmt_id": int(det.pmt_id[7]), "qe": 0.5}]
    cfg = PmtResponseConfig(k40_rate_hz=20_000.0, pmt_overrides=ov, tts_ns=0.0, afterpulse_probability=0.0)
    ev = np.arange(2000, dtype=np.int64)
    mc = make_mc_hits(np.repeat(ev, 2), np.tile([3, 7], len(ev)), np.tile([0.0, 0.0], len(ev)), det, origin=1)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    assert not np.isin(hits["pmt_id"], det.pmt_id[3]).any()
    sig7 = np.sum((hits["origin"] == 1) & (hits["pmt_id"] == det.pmt_id[7]))
    # binomial: 2000 × 0.5 ± 22; the pe must also pass the threshold (P > 0.96 incl. under-amplified)
    assert abs(sig7 - 1000 * 0.962) < 4 * math.sqrt(2000 * 0.25) + 10


def test_background_tot_spectrum():
    # background pe: charge N(1, 0.2) truncated at 0.24 p.e. (no under-amplified pe here); mean
    # ToT of the model over that distribution (integrated numerically) vs the sample mean,
    # σ_ToT ≈ 2.5 ns, N ≈ 14000: 4σ ≈ 0.1 ns
    det = stub_detector(100)
    ev = np.arange(1000, dtype=np.int64)
    cfg = PmtResponseConfig(k40_rate_hz=20_000.0, **PLAIN)
    hits = run(PmtResponse(cfg, detector=det), det, ev, empty_mc())
    q = np.linspace(0.36, 3.0, 40001)  # above the threshold band
    w = norm.pdf(q, 1.0, 0.2)
    mean_tot = np.trapezoid(w * np.clip(np.rint(time_over_threshold(q)), 1, 255), q) / np.trapezoid(w, q)
    tot = hits["tot"].astype(float)
    assert abs(tot.mean() - mean_tot) < 4 * tot.std() / math.sqrt(len(tot))
    assert hits["tot"].dtype == np.uint8 and tot.min() >= 1


# ------------------------------------------------------------------------------ signal
def test_tts_spread_and_threshold_loss():
    # one pe per event at t = 1000 ns, no background. Jpp gain spread 0.8 -> σ 0.4 p.e. applied.
    # Sample std of N Gaussian values has relative error 1/sqrt(2N) = 1.0 % for N ≈ 4850
    # -> 4σ = 4 %; the mean has σ = 2/sqrt(N).
    det = stub_detector(31)
    n_ev = 5000
    ev = np.arange(n_ev, dtype=np.int64) + 10
    mc = make_mc_hits(ev, np.arange(n_ev) % 31, 1000.0, det, origin=4)
    cfg = PmtResponseConfig(k40_rate_hz=0.0, tts_ns=2.0, gain_spread=0.8, **PLAIN)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    dt = hits["time"] - 1000.0
    n = len(dt)
    assert abs(dt.mean()) < 4 * 2.0 / math.sqrt(n)
    assert dt.std() == pytest.approx(2.0, rel=4 / math.sqrt(2 * n))
    # single pe below threshold are lost: efficiency P(q > 0.24) for q ~ N(1, 0.4);
    # binomial σ = sqrt(p(1-p)/N) = 0.24 %
    p = norm.sf(0.24, 1.0, 0.4)
    assert abs(n / n_ev - p) < 4 * math.sqrt(p * (1 - p) / n_ev)
    assert np.all(hits["origin"] == 4) and np.all(hits["npe"] == 1)


def test_pile_up_and_tot_values():
    # deterministic: no TTS, no charge spread, no background
    det = stub_detector(31)
    cfg = PmtResponseConfig(k40_rate_hz=0.0, tts_ns=0.0, gain_spread=0.0, **PLAIN)
    stage = PmtResponse(cfg, detector=det)
    ev = np.array([1, 2, 3, 4], dtype=np.int64)
    mc = make_mc_hits(
        [1, 1, 1, 2, 2, 3, 3, 3] + [4] * 20,
        [0, 0, 0, 5, 5, 7, 7, 8] + [9] * 20,
        [100.0, 100.0, 110.0, 100.0, 200.0, 100.0, 120.0, 100.0] + [50.0] * 20,
        det,
        origin=[0, 1, 2, 0, 0, 3, 3, 3] + [6] * 20,
    )
    hits = run(stage, det, ev, mc)
    h1 = hits.event(1)
    assert len(h1) == 1 and h1["npe"][0] == 3 and h1["time"][0] == 100.0
    assert h1["tot"][0] == round(time_over_threshold(3.0))
    h2 = hits.event(2)  # 100 ns apart: beyond the 27 ns pulse -> two hits
    assert list(h2["npe"]) == [1, 1] and list(h2["time"]) == [100.0, 200.0]
    assert list(h2["tot"]) == [27, 27]
    h3 = hits.event(3)  # 20 ns after the first pe on PMT 7 (within 26.9 ns): piles up; PMT 8 alone
    assert sorted(h3["npe"]) == [1, 2]
    assert h3[h3["npe"] == 2]["tot"][0] == round(time_over_threshold(2.0))
    np.testing.assert_array_equal(h3["dom_id"], det.pmt_dom_id[[7, 8]])
    np.testing.assert_array_equal(np.sort(h3["channel_id"]), [7, 8])
    assert time_over_threshold(2.0) > time_over_threshold(1.0)
    # 20 pe at once: linear regime, ToT(20) = ToT(N1) + 7 ns/p.e. × (20 − N1), below saturation
    h4 = hits.event(4)
    assert h4["npe"][0] == 20 and h4["tot"][0] == round(time_over_threshold(20.0))
    assert 150 < h4["tot"][0] < 210


def test_time_slewing_delays_small_pulses():
    # deterministic pulses of 1 and 20 pe: hit time = pe time + slew(ToT) (Jpp table, §7.3)
    det = stub_detector(31)
    cfg = PmtResponseConfig(k40_rate_hz=0.0, tts_ns=0.0, gain_spread=0.0, k40_coincidence_hz=[],
                            afterpulse_probability=0.0, p_under_amplified=0.0, slewing=True)
    ev = np.array([1, 2], dtype=np.int64)
    mc = make_mc_hits([1] + [2] * 20, [0] + [1] * 20, [100.0] + [100.0] * 20, det)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    assert hits.event(1)["time"][0] == pytest.approx(100.0 + time_slewing_ns(26.9))
    assert hits.event(2)["time"][0] == pytest.approx(100.0 + time_slewing_ns(time_over_threshold(20.0)))
    assert hits.event(2)["time"][0] < 100.0 - 5.0  # large pulses cross the threshold early


def test_threshold_band_tot():
    # gain 0.3 p.e. without spread: every pulse in the band (0.24, 0.36] -> ToT N(4.5, 1.5)
    # rounded; N = 4000: mean error 1.5/sqrt(N) = 0.024 ns, std rel. error 1.1 %
    det = stub_detector(31)
    ov = [{"pmt_id": int(det.pmt_id[k]), "gain": 0.3} for k in range(31)]
    cfg = PmtResponseConfig(k40_rate_hz=0.0, tts_ns=0.0, gain_spread=0.0, pmt_overrides=ov, **PLAIN)
    ev = np.arange(4000, dtype=np.int64)
    hits = run(PmtResponse(cfg, detector=det), det, ev, make_mc_hits(ev, ev % 31, 0.0, det))
    tot = hits["tot"].astype(float)
    assert len(tot) == 4000
    # rounding to integers adds 1/12 ns² of variance
    assert abs(tot.mean() - 4.5) < 4 * 1.5 / math.sqrt(4000) + 0.02
    assert math.sqrt(tot.var() - 1 / 12) == pytest.approx(1.5, rel=0.05)


def test_afterpulses():
    # probability 0.4, delay N(1000, 300) ns: extra hits per pe binomial 0.4 ± 0.011 (N = 2000)
    det = stub_detector(31)
    cfg = PmtResponseConfig(k40_rate_hz=0.0, tts_ns=0.0, afterpulse_probability=0.4, k40_coincidence_hz=[],
                            slewing=False, p_under_amplified=0.0)
    ev = np.arange(2000, dtype=np.int64)
    hits = run(PmtResponse(cfg, detector=det), det, ev, make_mc_hits(ev, ev % 31, 0.0, det, origin=2))
    late = hits[hits["time"] > 100.0]
    assert abs(len(late) / 2000 - 0.4) < 4 * math.sqrt(0.4 * 0.6 / 2000)
    assert abs(late["time"].mean() - 1000.0) < 4 * 300.0 / math.sqrt(len(late))
    assert np.all(late["origin"] == 2)


def test_conditions_file_errors(tmp_path):
    det = stub_detector(31)
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    with pytest.raises(StageFileError):
        run(PmtResponse(PmtResponseConfig(conditions=str(bad)), detector=det), det, np.array([0]), empty_mc())
    with pytest.raises(StageFileError, match="cannot read PMT parameter file"):
        run(PmtResponse(PmtResponseConfig(pmt_parameters=str(tmp_path / "none.txt")), detector=det), det,
            np.array([0]), empty_mc())
    with pytest.raises(ConfigError, match="pmt_response.*override #0"):
        run(PmtResponse(PmtResponseConfig(pmt_overrides=[{"pmt_id": 1, "qe": 1}]), detector=det), det,
            np.array([0]), empty_mc())
    assert PmtResponse.input_files(PmtResponseConfig(conditions="a.h5", pmt_parameters="b.txt")) == ["a.h5", "b.txt"]


def test_background_merging_with_signal_origin():
    # singles at 10 MHz in [-100, 100] ns (2 per window on average) around a signal pe at t = 0:
    # a signal pe piled up behind a background pe must keep the signal origin
    det = stub_detector(1)
    cfg = PmtResponseConfig(k40_rate_hz=1e7, tts_ns=0.0, window_margin_ns=100.0, **PLAIN)
    ev = np.arange(300, dtype=np.int64)
    mc = make_mc_hits(ev, np.zeros(len(ev), dtype=int), 0.0, det, origin=9)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    assert set(np.unique(hits["origin"])) == {-1, 9}
    sig = hits[hits["origin"] == 9]
    assert len(np.unique(sig["event_id"])) == len(sig)  # at most one signal hit per event
    merged = sig[sig["npe"] >= 2]
    # P(a background pe in the 27 ns before t = 0) ≈ 1 − e^{-0.27} ≈ 24 %: many merged hits,
    # some of which start at the earlier background pe
    assert len(merged) > 30
    assert np.any(merged["time"] < 0.0)


def test_output_schema_and_sorting():
    det = stub_detector(62)
    ev = np.arange(30, dtype=np.int64)
    rng = np.random.default_rng(1)
    mc = make_mc_hits(rng.integers(0, 30, 300), rng.integers(0, 62, 300), rng.uniform(0, 500, 300), det)
    hits = run(PmtResponse(detector=det), det, ev, mc)
    assert hits.columns == list(schema.SCHEMAS["hits"].columns)
    key = np.lexsort((hits["time"], hits["event_id"]))
    assert np.array_equal(key, np.arange(len(hits)))
    idx = np.array([np.flatnonzero(det.pmt_id == p)[0] for p in hits["pmt_id"][:50]])
    np.testing.assert_array_equal(hits["dom_id"][:50], det.pmt_dom_id[idx])
    np.testing.assert_array_equal(hits["channel_id"][:50], det.pmt_channel[idx])
    assert np.all((hits["tot"] >= 1) & (hits["tot"] <= 255))


def test_unknown_pmt_is_an_error():
    det = stub_detector(10)
    mc = make_mc_hits([0], [0], 0.0, det)
    mc = mc.with_columns(pmt_id=np.array([12345], dtype=np.int32))
    with pytest.raises(StageError, match="12345"):
        run(PmtResponse(detector=det), det, np.array([0]), mc)


def test_config_is_strict():
    with pytest.raises(ValidationError):
        PmtResponseConfig(tts=2.0)
    with pytest.raises(ValidationError):
        PmtResponseConfig(threshold_pe=1.5)
    with pytest.raises(ValidationError):
        PmtResponseConfig(k40_coincidence_hz=[1, 2, 3, 4, 5, 6])
    with pytest.raises(ValidationError):
        PmtResponseConfig(k40_coincidence_hz=[-1.0])
    with pytest.raises(ValidationError):
        PmtResponseConfig(k40_preset="antares")
    assert PmtResponseConfig(k40_preset="arca").k40().singles_hz == 6500.0
    assert PmtResponseConfig(k40_rate_hz=5000).k40().singles_hz == 5000.0
    assert get_stage("pmt_response") is PmtResponse


@pytest.mark.parametrize("bio", [False, True])
def test_chunk_invariance(bio):
    det = stub_detector(93)
    rng = np.random.default_rng(3)
    ev = np.sort(rng.choice(100_000, 40, replace=False)).astype(np.int64)
    n = 600
    mc_ev = rng.choice(ev[::2], n)  # half of the events have no signal
    mc = make_mc_hits(mc_ev, rng.integers(0, 93, n), rng.uniform(0, 300, n), det, origin=rng.integers(0, 3, n))
    # everything on: coincidences, slewing, afterpulses, under-amplified pe; bursts on every DOM
    cfg = PmtResponseConfig(bioluminescence=bio, bioluminescence_burst_rate_hz=5.0)
    stage = PmtResponse(cfg, detector=det)

    def run_ev(st, ids, seed=2024):
        events = make_events(ids).with_columns(mc_time=ids.astype(float) * 1e4)  # spread over 1 s
        return st.run({"events": events, "mc_hits": mc.select_events(ids)}, make_ctx(det, ids, seed))["hits"]

    whole = run_ev(stage, ev)
    for n_chunks in (2, 4):
        parts = [run_ev(stage, ids) for ids in np.array_split(ev, n_chunks)]
        assert Table.concat(parts).equals(whole)
    one = ev[5]
    assert run_ev(PmtResponse(cfg, detector=det), np.array([one])).equals(whole.event(one))
    assert not run_ev(stage, ev, seed=7).equals(whole)
    if bio:  # bursts raise the rate: more hits than without; a 20 kHz veto silences bursting PMTs
        n0 = len(run_ev(PmtResponse(detector=det), ev))
        assert len(whole) > 1.2 * n0
        vetoed = PmtResponse(cfg.model_copy(update={"high_rate_veto_hz": 20_000.0}), detector=det)
        assert len(run_ev(vetoed, ev)) < n0
