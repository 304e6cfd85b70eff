"""Readers of real KM3NeT DAQ data (km3sim.io.daq) on the km3net-testdata files.

Checks use facts independent of the decoder: the text dump shipped next to a ROOT file, the
PHYSICS.md §13 figures, the detector files of the same detector, the DAQ clock (frame_index
advances with the UTC time by exactly 100 ms), the JDAQPreamble record lengths, and the
trigger-bit definitions of FORMATS.md §5.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("uproot")
km3net_testdata = pytest.importorskip("km3net_testdata")

from km3sim.errors import StageFileError  # noqa: E402
from km3sim.io import daq  # noqa: E402
from km3sim.io.detx import read_detector  # noqa: E402
from km3sim.schema import validate_table  # noqa: E402


def dp(name: str) -> str:
    return km3net_testdata.data_path(name)


ORCA6_ROOT = "online/KM3NeT_00000049_00008456.summaryslice-167941.root"
ORCA6_TXT = "online/KM3NeT_00000049_00008456.summaryslice-167941.txt"
ARCA_ROOT = "online/KM3NeT_00000267_00025291_JDAQEvent_JDAQSummaryslice.root"
KNOWN_TRIGGER_BITS = sum(1 << b for b in daq.TRIGGER_BITS.values())


# ------------------------------------------------------------------------------ rate codes
def test_rate_code_decoding():
    # FORMATS.md §5: 0 -> 0, code 85 = 20 kHz, 255 = 2 MHz, 2 kHz * 1000^(code/255)
    r = daq.decode_rate_codes(np.array([0, 1, 85, 170, 255], dtype=np.uint8))
    assert r[0] == 0.0
    assert r[1] == pytest.approx(2000.0 * 1000.0 ** (1 / 255), rel=1e-12)
    assert r[2] == pytest.approx(20e3, rel=1e-12)
    assert r[3] == pytest.approx(200e3, rel=1e-12)
    assert r[4] == pytest.approx(2e6, rel=1e-12)
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(daq.rate_codes_from_hz(daq.decode_rate_codes(codes)), codes)


# ---------------------------------------------------------------------- text dump, exactly
def _format_dump(s: daq.Summaryslices) -> str:
    """The Jpp text dump layout: %10d dom_id, then per channel %7.1f kHz and the HRV, FIFO digits."""
    r, h, f = s.rates_hz / 1e3, s.hrv_bits, s.fifo_bits
    lines = []
    for i in range(len(s.frames)):
        cells = "".join("%7.1f %d%d" % (r[i, c], h[i, c], f[i, c]) for c in range(31))
        lines.append("%10d" % s.frames["dom_id"][i] + cells + " \n")
    return "".join(lines)


def test_root_summaryslice_reproduces_text_dump_exactly():
    s = daq.load_summaryslices(dp(ORCA6_ROOT))
    text = open(dp(ORCA6_TXT)).read()
    # the ROOT file holds one summaryslice; find the slice whose DOMs are those of the dump
    dump_doms = [int(line.split()[0]) for line in text.splitlines()]
    matches = [k for k in range(len(s.headers)) if s.frames["dom_id"][s.frames["slice"] == k].tolist() == dump_doms]
    assert matches == [0]
    assert s.headers["det_id"][0] == 49 and s.headers["run"][0] == 8456
    assert _format_dump(s) == text


def test_text_dump_reader_agrees_with_root():
    root = daq.load_summaryslices(dp(ORCA6_ROOT))
    txt = daq.load_summaryslices(dp(ORCA6_TXT))
    np.testing.assert_array_equal(txt.frames["dom_id"], root.frames["dom_id"])
    np.testing.assert_array_equal(txt.hrv_bits, root.hrv_bits)
    np.testing.assert_array_equal(txt.fifo_bits, root.fifo_bits)
    # the dump prints kHz with one decimal: agreement to the rounding (0.05 kHz, + float slack)
    np.testing.assert_allclose(txt.rates_hz, root.rates_hz, atol=50.0 + 1e-6)
    # codes recovered from the printed rates: exact where one code step exceeds the 0.1 kHz
    # print resolution (step = 2.7 % of the rate: rates above ~4 kHz)
    hi = root.rates_hz > 4000
    np.testing.assert_array_equal(txt.frames["rate_codes"][hi], root.frames["rate_codes"][hi])
    cond = daq.read_summaryslices(dp(ORCA6_TXT))
    assert (cond.det_id, cond.run_id, cond.n_frames, cond.n_doms) == (49, 8456, 1, 103)


# ------------------------------------------------------------------------ §13 figures
# (file, median, p16, p84 [kHz], number of decimals §13 quotes)
RATE_FIGURES = [
    (ARCA_ROOT, 5.6, 4.5, 6.4, 1),
    ("online/summaryslices.root", 7.14, 6.24, 7.96, 2),
    (ORCA6_ROOT, 11.6, 10.2, 14.8, 1),
    ("daq/IO_SUM.dat", 8.2, 7.0, 11.3, 1),
]


@pytest.mark.parametrize("name,median,p16,p84,decimals", RATE_FIGURES)
def test_clean_rate_figures_of_physics_13(name, median, p16, p84, decimals):
    s = daq.read_summaryslices(dp(name)).summary()
    # §13 rounds to `decimals`: the true value lies within half a unit of the last digit
    tol = 0.5 * 10.0**-decimals + 1e-9
    assert abs(s["median_rate_hz"] / 1e3 - median) <= tol
    assert abs(s["rate_p16_hz"] / 1e3 - p16) <= tol
    assert abs(s["rate_p84_hz"] / 1e3 - p84) <= tol


def test_hrv_fractions_of_physics_13():
    # ARCA 0.06 % (half a unit of the last digit: +-0.005 %); ORCA "3-17 %" (rounded: 2.5-17.5 %)
    arca = daq.read_summaryslices(dp(ARCA_ROOT)).summary()["hrv_fraction"]
    assert 0.055e-2 <= arca <= 0.065e-2
    for name in ("online/summaryslices.root", ORCA6_ROOT, "daq/IO_SUM.dat"):
        f = daq.read_summaryslices(dp(name)).summary()["hrv_fraction"]
        assert 0.025 <= f <= 0.175, name


def test_arca_ring_rates_of_physics_13():
    cond = daq.read_summaryslices(dp(ARCA_ROOT))
    rings = cond.rates_by_ring()  # nominal DOM layout, all 454 DOMs, as §13
    expected = [6.24, 6.07, 6.07, 5.75, 5.02, 4.27]  # kHz, bottom -> top, 2 decimals
    got = [r["median_rate_hz"] / 1e3 for r in rings]
    np.testing.assert_allclose(got, expected, atol=0.005 + 1e-9)
    assert [r["cos_zenith"] for r in rings] == sorted(r["cos_zenith"] for r in rings)


# --------------------------------------------------------------- headers and DOM ids
@pytest.mark.parametrize("name", [ARCA_ROOT, "online/summaryslices.root", "online/events_sample.root",
                                  "online/km3net_online.root", "daq/IO_SUM.dat", "daq/IO_SUM_legacy.dat"])
def test_summaryslice_headers_follow_the_daq_clock(name):
    h = daq.load_summaryslices(dp(name)).headers
    assert len(h) > 1
    # in 16-ns cycles: one frame = 100 ms = 6 250 000 cycles; UTC and frame_index must agree
    t = h["utc_seconds"].astype(np.int64) * 62_500_000 + h["utc_16ns"]
    np.testing.assert_array_equal(t - t[0], (h["frame_index"].astype(np.int64) - h["frame_index"][0]) * 6_250_000)
    assert len(np.unique(h["det_id"])) == 1 and len(np.unique(h["run"])) == 1


@pytest.mark.parametrize("name,detx", [
    (ORCA6_ROOT, "detx/D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx"),
    ("daq/IO_SUM.dat", "detx/detx_v4.detx"),
    ("online/km3net_online.root", "detx/detx_v4.detx"),
])
def test_summaryslice_doms_are_those_of_the_detector_file(name, detx):
    s = daq.load_summaryslices(dp(name))
    det = read_detector(dp(detx))
    assert int(s.headers["det_id"][0]) == det.det_id
    assert np.isin(s.frames["dom_id"], det.dom_ids).all()


def test_legacy_summaryslice_stream():
    s = daq.load_summaryslices(dp("daq/IO_SUM_legacy.dat"))
    assert set(s.headers["det_id"].tolist()) == {7} and set(s.headers["run"].tolist()) == {2101}
    # 52941 bytes = records of 28 + 4 + 39 n bytes: total frames follow from the file size
    n_rec = len(s.headers)
    assert 52941 == 32 * n_rec + 39 * len(s.frames)
    # legacy status word: bit 31 (White Rabbit) set in every real frame, as in newer files
    assert np.all(s.frames["hrv"] >> 31 == 1)


def test_root_preamble_lengths_match():
    # JDAQPreamble.length of every summaryslice = Jpp record length (with or without version word)
    import uproot

    t = uproot.open(dp(ARCA_ROOT))["KM3NET_SUMMARYSLICE"]
    b = t["KM3NET_SUMMARYSLICE/KM3NETDAQ::JDAQPreamble"].basket(0)
    length = np.frombuffer(bytes(b.data), dtype=">i4")[0::2]
    s = daq.load_summaryslices(dp(ARCA_ROOT))
    n = np.bincount(s.frames["slice"], minlength=len(s.headers))
    np.testing.assert_array_equal(length, 30 + 4 + 55 * n)


# ------------------------------------------------------------------------------ events
EVENT_FILES = [
    ("online/KM3NeT_00000133_JDAQEvent.root", "detx/KM3NeT_00000133_20221025.detx"),
    (ARCA_ROOT, None),
    ("online/events_sample.root", "detx/detx_v4.detx"),
    ("online/km3net_online.root", "detx/detx_v4.detx"),
    ("daq/IO_EVT.dat", "detx/detx_v4.detx"),
    ("daq/IO_EVT_legacy.dat", None),
]


def _root_vector_sizes(name: str, branch: str, item: int) -> np.ndarray:
    """Element counts of a vector branch from the ROOT basket byte offsets (10-byte vector header)."""
    import uproot

    b = uproot.open(dp(name))["KM3NET_EVENT"][f"KM3NET_EVENT/{branch}"]
    sizes = np.concatenate([np.diff(b.basket(i).byte_offsets) for i in range(b.num_baskets)])
    assert np.all((sizes - 10) % item == 0)
    return (sizes - 10) // item


@pytest.mark.parametrize("name,detx", EVENT_FILES)
def test_daq_events(name, detx):
    ev = daq.read_daq_events(dp(name))
    validate_table(ev.events, "triggered_events")
    validate_table(ev.snapshot_hits, "snapshot_hits")
    h = ev.headers
    if name.endswith(".root"):
        import uproot

        assert len(ev) == uproot.open(dp(name))["KM3NET_EVENT"].num_entries
        np.testing.assert_array_equal(h["n_snapshot_hits"], _root_vector_sizes(name, "snapshotHits", 10))
        np.testing.assert_array_equal(h["n_triggered_hits"], _root_vector_sizes(name, "triggeredHits", 24))
    np.testing.assert_array_equal(np.bincount(ev.snapshot_hits["event_id"], minlength=len(ev)), h["n_snapshot_hits"])
    np.testing.assert_array_equal(ev.events["n_hits"], h["n_snapshot_hits"])
    # trigger bits: only those of FORMATS.md §5; every event has one; hit masks within the event's
    assert np.all(h["trigger_mask"] & ~np.uint64(KNOWN_TRIGGER_BITS) == 0)
    assert np.all(h["trigger_mask"] > 0)
    tm = ev.triggered_hits["trigger_mask"]
    em = np.repeat(h["trigger_mask"], h["n_triggered_hits"])
    assert np.all(tm > 0) and np.all(tm & ~em == 0)
    # every triggered hit is one of the snapshot hits (Jpp writes the snapshot as a superset)
    assert int((ev.snapshot_hits["trigger_mask"] > 0).sum()) == len(ev.triggered_hits)
    # hit times lie inside their 100 ms timeslice (checks the byte order of the TDC)
    t = ev.snapshot_hits["time"]
    assert t.min() >= 0 and t.max() < 1e8
    assert np.all(ev.snapshot_hits["channel_id"] < 31)
    assert np.all(ev.events["snapshot_start"] <= ev.events["snapshot_end"])
    if detx is not None:
        det = read_detector(dp(detx))
        assert set(h["det_id"].tolist()) == {det.det_id}
        assert np.isin(ev.snapshot_hits["dom_id"], det.dom_ids).all()


def test_daq_events_calibrated_with_detector():
    name, detx = "online/KM3NeT_00000133_JDAQEvent.root", "detx/KM3NeT_00000133_20221025.detx"
    det = read_detector(dp(detx))
    raw = daq.read_daq_events(dp(name)).snapshot_hits
    cal = daq.read_daq_events(dp(name), detector=det).snapshot_hits
    assert np.all(raw["pmt_id"] == -1)
    # expected calibration of the raw hits: PMT of (DOM, channel) in the detector file, time + t0
    k = det.pmt_index(raw["dom_id"], raw["channel_id"])
    exp_pmt, exp_time = det.pmt_id[k], raw["time"] + det.pmt_t0[k]
    # compare as sets of rows (the t0 shift may reorder hits within an event)
    oa = np.lexsort((exp_time, raw["channel_id"], raw["dom_id"], raw["event_id"]))
    ob = np.lexsort((cal["time"], cal["channel_id"], cal["dom_id"], cal["event_id"]))
    np.testing.assert_array_equal(cal["pmt_id"][ob], exp_pmt[oa])
    np.testing.assert_array_equal(cal["time"][ob], exp_time[oa])
    np.testing.assert_array_equal(cal["trigger_mask"][ob], raw["trigger_mask"][oa])
    assert np.any(det.pmt_t0[k] != 0)
    assert np.all(np.diff(cal["time"])[np.diff(cal["event_id"]) == 0] >= 0)  # sorted by (event, time)


def test_arca_snapshot_tot_of_physics_13():
    tot = daq.read_daq_events(dp(ARCA_ROOT)).snapshot_hits["tot"].astype(float)
    # §13: median 25 ns [19-29]; ToT is integer ns, so the quantiles must be these integers (+-1 for
    # the interpolation between neighbouring integers of np.percentile)
    assert np.median(tot) == 25
    assert abs(np.percentile(tot, 16) - 19) <= 1 and abs(np.percentile(tot, 84) - 29) <= 1


def test_daq_events_unknown_doms_in_detector():
    det = read_detector(dp("detx/detx_v4.detx"))  # det 44, the events are det 133
    with pytest.raises(StageFileError, match="not in detector 44"):
        daq.read_daq_events(dp("online/KM3NeT_00000133_JDAQEvent.root"), detector=det)


# -------------------------------------------------------------------------- timeslices
TIMESLICE_FILES = [
    ("online/KM3NeT_00000267_00025291_L1.root", "L1"),
    ("online/KM3NeT_00000267_00025291_SN.root", "SN"),
    ("online/events_sample.root", "default"),
    ("online/events_sample.root", "L1"),
    ("online/km3net_online.root", "SN"),
    ("daq/IO_TSL1_1003.dat", "L1"),
    ("daq/IO_TSSN.dat", "SN"),
    ("daq/IO_TSL0_legacy.dat", None),
    ("daq/IO_TSL1_legacy.dat", None),
]


@pytest.mark.parametrize("name,stream", TIMESLICE_FILES)
def test_timeslices(name, stream):
    ts = daq.read_timeslices(dp(name), stream)
    hits, frames = ts.hits, ts.frames
    assert frames["n_hits"].sum() == len(hits)
    if len(hits):
        assert hits["tdc"].max() < 100_000_000  # inside the 100 ms timeslice
        assert hits["channel_id"].max() < 31
    assert len(np.unique(ts.headers["det_id"])) == 1
    if name.endswith(".root"):
        import uproot

        tree = uproot.open(dp(name))[daq._TREE_OF_STREAM[stream]]
        assert len(ts) == tree.num_entries
        keys = tree.keys(recursive=True)
        nh = [k for k in keys if k.endswith(".numberOfHits")]
        pre = [k for k in keys if k.endswith("KM3NETDAQ::JDAQPreamble")]
        if nh:  # split layout: uproot reads the member branch itself
            direct = np.concatenate(list(tree[nh[0]].array(library="np")))
            np.testing.assert_array_equal(frames["n_hits"], direct)
        elif pre and tree[pre[0]].num_baskets:  # preamble length = Jpp record length
            b = tree[pre[0]]
            raw = np.concatenate([np.frombuffer(bytes(b.basket(i).data), ">i4") for i in range(b.num_baskets)])
            length = raw[0::2]
            slice_of_frame = np.repeat(np.arange(len(ts)), ts.headers["n_frames"])
            nh_slice = np.bincount(slice_of_frame, weights=frames["n_hits"], minlength=len(ts)).astype(np.int64)
            expected = 30 + 4 + 56 * ts.headers["n_frames"] + 6 * nh_slice
            # newer Jpp records carry a 2-byte version word, older ones (det 44, 2019) not
            assert np.all(length == expected) or np.all(length == expected - 2)


def test_timeslice_doms_match_summaryslices_of_the_run():
    l1 = daq.read_timeslices(dp("online/KM3NeT_00000267_00025291_L1.root"), "L1")
    sn = daq.read_timeslices(dp("online/KM3NeT_00000267_00025291_SN.root"), "SN")
    summ = daq.load_summaryslices(dp(ARCA_ROOT))
    doms = np.unique(summ.frames["dom_id"])
    assert np.isin(l1.frames["dom_id"], doms).all() and np.isin(sn.frames["dom_id"], doms).all()
    # the SN timeslices cover the same frames as the summaryslices of that file
    assert set(summ.headers["frame_index"].tolist()) <= set(sn.headers["event_id"].tolist())
    # L1 hits: times sorted within each (frame, DOM, channel)
    h = l1.hits
    same = (np.diff(h["event_id"]) == 0) & (np.diff(h["dom_id"]) == 0) & (np.diff(h["channel_id"]) == 0)
    assert np.all(np.diff(h["tdc"].astype(np.int64))[same] >= 0)


def test_timeslice_stream_choice():
    with pytest.raises(StageFileError, match="choose one"):
        daq.read_timeslices(dp("online/events_sample.root"), None)
    with pytest.raises(StageFileError, match="no L1 timeslices"):
        daq.read_timeslices(dp("daq/IO_TSSN.dat"), "L1")
    with pytest.raises(StageFileError, match="unknown timeslice stream"):
        daq.read_timeslices(dp("daq/IO_TSSN.dat"), "L7")
    assert daq.read_timeslices(dp("daq/IO_TSSN.dat"), None).stream == "SN"


# ---------------------------------------------------------------------------- bad files
def test_bad_files(tmp_path):
    from pathlib import Path

    with pytest.raises(StageFileError, match="no such file"):
        daq.read_summaryslices(tmp_path / "missing.root")
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(StageFileError, match="empty"):
        daq.read_summaryslices(empty)
    rnd = tmp_path / "random.bin"
    rnd.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(StageFileError, match="unknown format"):
        daq.read_summaryslices(rnd)
    data = Path(dp("daq/IO_SUM.dat")).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:-7])
    with pytest.raises(StageFileError, match="truncated"):
        daq.read_summaryslices(cut)
    bad_n = bytearray(data)
    bad_n[30:34] = (5).to_bytes(4, "little")  # number of frames of the first record
    p = tmp_path / "bad_n.dat"
    p.write_bytes(bytes(bad_n))
    with pytest.raises(StageFileError, match="corrupt"):
        daq.read_summaryslices(p)
    ev = bytearray(Path(dp("daq/IO_EVT.dat")).read_bytes())
    ev[50:54] = (3).to_bytes(4, "little")  # number of triggered hits of the first event
    p = tmp_path / "bad_evt.dat"
    p.write_bytes(bytes(ev))
    with pytest.raises(StageFileError, match="corrupt"):
        daq.read_daq_events(p)
    with pytest.raises(StageFileError, match="no summaryslice records"):
        daq.read_summaryslices(dp("daq/IO_EVT.dat"))
    lines = Path(dp(ORCA6_TXT)).read_text().splitlines()
    lines[5] = lines[5][:100]
    p = tmp_path / "KM3NeT_00000049_00008456.summaryslice-1.txt"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(StageFileError, match="line 6"):
        daq.read_summaryslices(p)
    with pytest.raises(StageFileError, match="no tree 'KM3NET_SUMMARYSLICE'"):
        daq.read_summaryslices(dp("offline/km3net_offline.root"))
    with pytest.raises(StageFileError, match="no summaryslices"):  # tree present, no entries
        daq.read_summaryslices(dp("online/KM3NeT_00000267_00025291_L1.root"))
    root = Path(dp(ARCA_ROOT)).read_bytes()
    p = tmp_path / "cut.root"
    p.write_bytes(root[: len(root) // 2])
    with pytest.raises(StageFileError, match="cut.root"):
        daq.read_daq_events(p)


def test_summaryslices_of_several_runs_refused():
    with pytest.raises(StageFileError, match="several detectors/runs"):
        daq.read_summaryslices([dp("daq/IO_SUM.dat"), dp(ARCA_ROOT)])
