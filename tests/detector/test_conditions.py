"""RunConditions: built from real summaryslices, mapped onto detectors, rings, HDF5 storage."""

from __future__ import annotations

import numpy as np
import pytest

from km3sim.detector.conditions import N_CHANNELS, RING_COS_ZENITH, RunConditions, pmt_rings
from km3sim.errors import StageFileError

pytest.importorskip("uproot")
km3net_testdata = pytest.importorskip("km3net_testdata")

from km3sim.io import daq  # noqa: E402
from km3sim.io.detx import read_detector  # noqa: E402

ARCA_ROOT = "online/KM3NeT_00000267_00025291_JDAQEvent_JDAQSummaryslice.root"
ARCA21_DETX = "detx/KM3NeT_00000133_20221025.detx"


def dp(name: str) -> str:
    return km3net_testdata.data_path(name)


@pytest.fixture(scope="module")
def arca():
    return RunConditions.from_daq(dp(ARCA_ROOT))


@pytest.fixture(scope="module")
def det44():
    return read_detector(dp("detx/detx_v4.detx"))


def test_conditions_from_arca_summaryslices(arca):
    raw = daq.load_summaryslices(dp(ARCA_ROOT))
    assert (arca.det_id, arca.run_id) == (267, 25291)
    assert arca.n_frames == 13 and arca.livetime_s == pytest.approx(1.3)
    # consecutive frames of the DAQ: 100 ms apart (from the UTC stamps)
    np.testing.assert_allclose(np.diff(arca.frame_start_s), 0.1, atol=1e-9)
    h = raw.headers
    first = np.argmin(h["frame_index"])
    assert arca.utc_start_s == pytest.approx(h["utc_seconds"][first] + 16e-9 * h["utc_16ns"][first], abs=1e-6)
    # every decoded frame lands in its (frame, DOM) cell
    assert arca.present.sum() == len(raw.frames)
    k = 1234
    fr = raw.frames[k]
    f = np.flatnonzero(np.sort(raw.headers["frame_index"]) == raw.headers["frame_index"][fr["slice"]])[0]
    d = int(np.flatnonzero(arca.dom_ids == fr["dom_id"])[0])
    np.testing.assert_allclose(arca.rates_hz[f, d], daq.decode_rate_codes(fr["rate_codes"]), rtol=1e-6)
    np.testing.assert_array_equal(arca.hrv[f, d], [(int(fr["hrv"]) >> c) & 1 for c in range(N_CHANNELS)])


def test_pmt_rates_and_active_on_real_detector(det44):
    cond = RunConditions.from_daq(dp("daq/IO_SUM.dat"))
    raw = daq.load_summaryslices(dp("daq/IO_SUM.dat"))
    t = cond.frame_start_s[1] + 0.05  # inside the second frame
    rates = cond.pmt_rates(det44, t)
    active = cond.pmt_active(det44, t)
    # independent: the frames of the second slice (in time order) straight from the decoder
    order = np.argsort(raw.headers["frame_index"])
    sel = raw.frames["slice"] == order[1]
    fr = raw.frames[sel]
    k = det44.pmt_index(np.repeat(fr["dom_id"], N_CHANNELS), np.tile(np.arange(N_CHANNELS), len(fr)))
    exp = daq.decode_rate_codes(fr["rate_codes"]).ravel()
    np.testing.assert_allclose(rates[k], exp, rtol=1e-6)
    hrv = ((fr["hrv"][:, None] >> np.arange(N_CHANNELS)) & 1).ravel().astype(bool)
    fifo = ((fr["fifo"][:, None] >> np.arange(N_CHANNELS)) & 1).ravel().astype(bool)
    np.testing.assert_array_equal(active[k], (exp > 0) & ~hrv & ~fifo)
    # PMTs of DOMs without a frame in that slice: NaN rate, inactive
    others = np.setdiff1d(np.arange(det44.n_pmts), k)
    assert np.all(np.isnan(rates[others])) and not active[others].any()


def test_pmt_rings_detector_equals_nominal_layout(arca):
    det = read_detector(dp(ARCA21_DETX))
    nominal = pmt_rings(arca.dom_ids)
    from_det = pmt_rings(arca.dom_ids, det)
    in_det = np.isin(arca.dom_ids, det.dom_ids)
    assert 0 < in_det.sum() < arca.n_doms
    np.testing.assert_array_equal(from_det[in_det], nominal[in_det])
    assert np.all(from_det[~in_det] == -1)
    # a DOM has 1 bottom PMT and 5 rings of 6
    assert np.bincount(nominal[0], minlength=6).tolist() == [1, 6, 6, 6, 6, 6]
    assert list(RING_COS_ZENITH) == sorted(RING_COS_ZENITH)


def test_rates_by_ring_with_detector(arca):
    det = read_detector(dp(ARCA21_DETX))
    by_det = arca.rates_by_ring(det)
    # independent: the same medians from a conditions object restricted to the DOMs of the file
    keep = np.isin(arca.dom_ids, det.dom_ids)
    sub = RunConditions(arca.det_id, arca.run_id, arca.utc_start_s, arca.frame_start_s, arca.dom_ids[keep],
                        arca.rates_hz[:, keep], arca.hrv[:, keep], arca.fifo[:, keep], arca.present[:, keep])
    by_nom = sub.rates_by_ring()
    for a, b in zip(by_det, by_nom):
        assert a["n"] == b["n"] > 0
        assert a["median_rate_hz"] == b["median_rate_hz"]
    # downward-looking PMTs count more (PHYSICS.md §13)
    med = [r["median_rate_hz"] for r in by_det]
    assert med[0] > med[-1]


def test_save_load_roundtrip(arca, tmp_path):
    p = arca.save(tmp_path / "c.h5")
    back = RunConditions.load(p)
    for key in ("frame_start_s", "dom_ids", "rates_hz", "hrv", "fifo", "present"):
        np.testing.assert_array_equal(getattr(back, key), getattr(arca, key))
    assert (back.det_id, back.run_id, back.utc_start_s, back.source) == (arca.det_id, arca.run_id,
                                                                          arca.utc_start_s, arca.source)
    assert back.summary() == arca.summary()


def test_several_files_and_duplicates():
    one = RunConditions.from_daq(dp("online/summaryslices.root"))
    two = RunConditions.from_daq([dp("online/summaryslices.root")] * 2)
    assert two.n_frames == one.n_frames == 1000
    np.testing.assert_array_equal(two.rates_hz, one.rates_hz)
    with pytest.raises(StageFileError, match="several detectors/runs"):
        RunConditions.from_daq([dp("online/summaryslices.root"), dp("daq/IO_SUM.dat")])


def test_format_summary(arca):
    text = arca.format_summary()
    assert "detector 267, run 25291" in text
    assert "median 5.60 kHz" in text  # §13: 5.6 kHz
    assert "0.06 %" in text  # §13: HRV 0.06 %
    assert text.count("cos zenith") == 6


def test_frame_index_wraps_beyond_run(arca):
    n = arca.n_frames
    assert arca.frame_index(arca.frame_start_s[3] + 0.01) == 3
    assert arca.frame_index(arca.frame_start_s[0] + (n + 2) * 0.1 + 0.01) == 2
    assert arca.frame_index(-5.0) == 0
