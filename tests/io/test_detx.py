"""Tests of km3sim.io.detx with the real detector files of km3net-testdata."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

km3net_testdata = pytest.importorskip("km3net_testdata")

from km3sim.detector.geometry import Detector, build_orca_block, dom_pmt_layout  # noqa: E402
from km3sim.errors import DetectorFileError  # noqa: E402
from km3sim.io.detx import (  # noqa: E402
    read_datx,
    read_detector,
    read_detx,
    write_datx,
    write_detx,
)

DETX = Path(km3net_testdata.data_path("detx"))
DATX = Path(km3net_testdata.data_path("datx"))

ORCA6 = "D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx"
ARCA21 = "KM3NeT_00000133_20221025.detx"
ORCA115 = "orca_115strings_av20min17mhorizontal_18OMs_alt9mvertical_v2.detx"
ORCA115_V1 = "orca_115strings_av23min20mhorizontal_18OMs_alt9mvertical_v1.detx"
ARCA115 = "KM3NeT_-00000001_20171212.detx"
JUL13 = "km3net_jul13_90m_r1494_corrected.detx"

# file: (version, det_id, utm_zone, n_dus, n_doms, n_pmts, n_base_modules)
EXPECTED = {
    ORCA6: (3, 49, "32N", 6, 108, 3348, 0),
    ARCA21: (5, 133, "33N", 21, 378, 11718, 21),
    ORCA115: (2, -1, "32N", 115, 2070, 64170, 0),
    ORCA115_V1: (1, -1, "", 115, 2070, 64170, 0),
    ARCA115: (2, 20, "33N", 115, 2070, 64170, 0),
    JUL13: (1, -1, "", 115, 2070, 64170, 0),
    "detx_v1.detx": (1, 1, "", 2, 6, 18, 0),
    "detx_v2.detx": (2, 23, "32N", 2, 6, 18, 0),
    "detx_v3.detx": (3, 23, "32N", 2, 6, 18, 0),
    "detx_v3_whitespace.detx": (3, 23, "32N", 2, 6, 18, 0),
    "detx_v4.detx": (4, 44, "32N", 5, 90, 2790, 0),
    "detx_v5.detx": (5, 49, "32N", 6, 108, 3348, 6),
    "detx_v5_invalid_multiline_comments.detx": (5, 49, "32N", 6, 108, 3348, 6),
    "km3net_offline.detx": (2, 44, "32N", 5, 90, 2790, 0),
}
ALL_FILES = sorted(EXPECTED)

_cache: dict[str, Detector] = {}


def _read(name: str) -> Detector:
    """Read a real file once per test session (detectors are treated as immutable)."""
    if name not in _cache:
        path = DATX / name if name.endswith(".datx") else DETX / name
        _cache[name] = read_detector(path)
    return _cache[name]


def test_all_real_detx_files_are_covered():
    names = {p.name for p in DETX.glob("*.detx")}
    assert names == set(EXPECTED), "a new detx file in km3net-testdata: add it to EXPECTED"


# ---------------------------------------------------------------------- reading
@pytest.mark.parametrize("name", ALL_FILES)
def test_read_real_detx_counts(name):
    det = _read(name)
    version, det_id, zone, n_dus, n_doms, n_pmts, n_base = EXPECTED[name]
    assert det.version == version
    assert det.det_id == det_id
    assert det.utm_zone == zone
    assert det.n_dus == n_dus
    assert det.n_doms == n_doms
    assert det.n_pmts == n_pmts
    assert det.n_base_modules == n_base
    assert det.n_modules == n_doms + n_base


@pytest.mark.parametrize("name", ALL_FILES + ["KM3NeT_00000133_20221025.datx"])
def test_read_real_invariants(name):
    det = _read(name)
    # PMTs grouped by module, channels 0..n-1 within each module
    assert int(det.module_n_pmts.sum()) == det.n_pmts
    np.testing.assert_array_equal(det.pmt_dom_id, np.repeat(det.module_id, det.module_n_pmts))
    for k, sl in enumerate(det.pmt_index_of_dom()):
        np.testing.assert_array_equal(det.pmt_channel[sl], np.arange(det.dom_n_pmts[k]))
        if k > 3:
            break
    assert det.pmt_channel.min() == 0
    assert det.pmt_channel.max() == det.module_n_pmts.max() - 1
    np.testing.assert_allclose(np.linalg.norm(det.pmt_dir, axis=1), 1.0, atol=1e-12)
    assert np.unique(det.pmt_id).size == det.n_pmts
    assert np.unique(det.module_id).size == det.n_modules
    np.testing.assert_array_equal(det.pmt_du, np.repeat(det.module_du, det.module_n_pmts))
    assert det.pmt_dom_index.shape == (det.n_pmts,)
    np.testing.assert_array_equal(det.dom_ids[det.pmt_dom_index], det.pmt_dom_id)
    assert det.module_pos.dtype == np.float64 and det.pmt_id.dtype == np.int64
    assert det.module_du.dtype == np.int32 and det.pmt_channel.dtype == np.int32


def test_orca6_geometry_facts():
    det = _read(ORCA6)
    assert det.version == 3  # header says "V3" (upper case)
    np.testing.assert_array_equal(det.utm_reference, [256500.0, 4743000.0, -2440.0])
    assert det.valid_from == 1580056200.0
    assert set(det.floors_per_du().values()) == {18}
    assert det.floor_spacing() == pytest.approx(9.5, abs=0.2)
    assert det.du_spacing() == pytest.approx(19.9, abs=0.3)
    zmin, zmax = det.height_range()
    assert zmin == pytest.approx(32.0, abs=1.0)
    assert zmax == pytest.approx(192.0, abs=1.0)
    assert len(det.comments) == 6
    assert det.comments[0] == "GIT 13.0.0-108-g487d9bfb"
    # v3: no module positions in the file -> mean of PMT positions, identity orientation
    sl = det.pmt_index_of_dom()[0]
    np.testing.assert_allclose(det.dom_pos[0], det.pmt_pos[sl].mean(axis=0), atol=1e-12)
    np.testing.assert_array_equal(det.module_quaternion, np.tile([1.0, 0, 0, 0], (108, 1)))
    # photocathodes ~0.2 m from the DOM centre (the PMT mean is ~4 cm below the true centre,
    # 19 PMTs look down and 12 up)
    r = np.linalg.norm(det.pmt_pos - det.dom_pos[det.pmt_dom_index], axis=1)
    assert np.all(np.abs(r - 0.2) < 0.045)


def test_arca21_geometry_facts():
    det = _read(ARCA21)
    np.testing.assert_array_equal(det.utm_reference, [587600.0, 4016800.0, -3450.0])
    base = det.module_floor == 0
    assert base.sum() == 21
    assert np.all(det.module_n_pmts[base] == 0)
    assert np.all(det.module_n_pmts[~base] == 31)
    assert set(det.floors_per_du().values()) == {18}
    assert det.floor_spacing() == pytest.approx(36.8, abs=0.3)
    nn = det.du_nearest_neighbour_distances()
    assert np.median(nn) == pytest.approx(80.0, abs=2.0)
    assert nn.min() == pytest.approx(50.0, abs=1.0)
    zmin, zmax = det.height_range()
    assert 55.0 < zmin < 70.0 and 680.0 < zmax < 700.0
    # base modules sit within a few metres of the sea-floor reference
    assert np.all(np.abs(det.module_pos[base, 2]) < 10.0)
    # 18 PMTs have status PMT_DISABLE (bit 0)
    assert (~det.pmt_status_ok).sum() == 18
    assert det.comments[0] == "$bdb89aa6-6181-45bf-a809-06fbcdcdfb40$"
    assert len(det.comments) == 25


def test_arca21_channel_pattern_matches_builder_layout():
    """The nominal channel -> PMT axis layout is that of the real ARCA21 DOMs."""
    det = _read(ARCA21)
    dirs, rel = dom_pmt_layout()
    n_match = 0
    for k, sl in enumerate(det.pmt_index_of_dom()):
        d = det.pmt_dir[sl]
        # undo the azimuthal rotation of the DOM, taken from channel 0
        a = np.arctan2(d[0, 1], d[0, 0]) - np.arctan2(dirs[0, 1], dirs[0, 0])
        c, s = np.cos(a), np.sin(a)
        rot = dirs @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
        n_match += np.abs(d - rot).max() < 0.01
    assert n_match >= det.n_doms - 1  # one DOM has its -0.85 ring permuted
    np.testing.assert_allclose(det.pmt_dir[:31], dirs, atol=2e-3)
    np.testing.assert_allclose(det.pmt_pos[:31] - det.dom_pos[0], rel, atol=2e-3)


def test_design_files_geometry():
    orca = _read(ORCA115)
    assert np.all(orca.module_floor == -1)  # old design files: floor -1 everywhere
    assert orca.floor_spacing() == pytest.approx(9.4, abs=0.2)
    nn = orca.du_nearest_neighbour_distances()
    assert nn.min() == pytest.approx(17.0, abs=0.3)  # "min17mhorizontal"
    assert 17.0 < np.median(nn) < 21.0
    np.testing.assert_array_equal(orca.utm_reference, [256500.0, 4743000.0, -2425.0])
    arca = _read(ARCA115)
    assert arca.floor_spacing() == pytest.approx(36.0, abs=0.05)
    assert 75.0 < arca.du_spacing() < 95.0
    jul = _read(JUL13)
    assert jul.floor_spacing() == pytest.approx(36.0, abs=0.05)
    assert jul.module_floor[0] == 18  # DOMs listed from the top


def test_detx_and_datx_arca21_identical():
    a = _read(ARCA21)
    b = _read("KM3NeT_00000133_20221025.datx")
    assert (a.det_id, a.version, a.valid_from, a.valid_to, a.utm_zone) == (
        b.det_id,
        b.version,
        b.valid_from,
        b.valid_to,
        b.utm_zone,
    )
    np.testing.assert_array_equal(a.utm_reference, b.utm_reference)
    assert a.comments == b.comments
    for name, _, _ in Detector._MODULE_ARRAYS + Detector._PMT_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if name == "module_quaternion":
            # detx prints 6 decimals; datx stores full doubles
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        elif name == "pmt_dir":
            # both normalised; datx stores float32-precision values
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_v1_sample_details():
    det = _read("detx_v1.detx")
    assert det.utm_zone == ""
    np.testing.assert_array_equal(det.utm_reference, [0.0, 0.0, 0.0])
    # direction (-1.1, 0.2, 0.3) normalised
    v = np.array([-1.1, 0.2, 0.3])
    np.testing.assert_allclose(det.pmt_dir[0], v / np.linalg.norm(v), rtol=1e-15)
    np.testing.assert_allclose(det.module_pos[0], [1.4, 1.5, 1.6], rtol=1e-14)
    np.testing.assert_array_equal(det.pmt_t0[:3], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(det.module_t0, 0.0)
    np.testing.assert_array_equal(det.pmt_status, 0)


def test_v3_whitespace_equals_v3():
    a = _read("detx_v3.detx")
    b = _read("detx_v3_whitespace.detx")
    assert a.arrays_equal(b)
    assert a.comments == ["a comment line", "another comment line starting with '#'"]
    np.testing.assert_array_equal(a.pmt_status[:3], [0, 0, 1])


def test_v4_has_module_positions_and_t0():
    det = _read("detx_v4.detx")
    np.testing.assert_array_equal(det.module_pos[0], [86.5, 9.1, 29.346])
    np.testing.assert_array_equal(det.module_quaternion[0], [1.0, 0.0, 0.0, 0.0])
    assert det.pmt_t0[0] == 207261.022


def test_multiline_comment_file():
    det = _read("detx_v5_invalid_multiline_comments.detx")
    multi = [c for c in det.comments if "\n" in c]
    assert len(multi) == 1
    assert multi[0].startswith("command ") and multi[0].endswith('808432835 15\\" -A -w')
    assert multi[0].count("\n") == 71
    assert det.valid_to == 1637103600.0
    ref = _read("detx_v5.detx")
    assert det.n_doms == ref.n_doms and det.det_id == ref.det_id


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ALL_FILES + ["KM3NeT_00000133_20221025.datx"])
def test_round_trip_detx_v5(name, tmp_path):
    det = _read(name)
    out = tmp_path / "rt.detx"
    write_detx(det, out)
    back = read_detx(out)
    assert back.version == 5
    assert det.arrays_equal(back)
    assert back.comments == det.comments
    assert back.content_hash() == det.content_hash()
    # nothing but the result left in the directory (atomic write via a temp file)
    assert [p.name for p in tmp_path.iterdir()] == ["rt.detx"]


def test_written_detx_is_jpp_style(tmp_path):
    det = _read(ARCA21)
    out = tmp_path / "x.detx"
    write_detx(det, out)
    lines = out.read_text().splitlines()
    data = [ln for ln in lines if not ln.startswith("#")]
    assert data[0] == "133 v5"
    assert data[1].split() == ["1662826947.0", "9999999999.0"]
    assert data[2].split() == ["UTM", "WGS84", "33N", "587600.0", "4016800.0", "-3450.0"]
    assert data[3] == "399"
    assert len(data[4].split()) == 13 and data[4].split()[-1] == "0"
    assert len(data[6].split()) == 9


@pytest.mark.parametrize("name", [ARCA21, "detx_v1.detx", ORCA6])
def test_round_trip_datx(name, tmp_path):
    det = _read(name)
    out = tmp_path / "rt.datx"
    write_datx(det, out)
    back = read_datx(out)
    assert det.arrays_equal(back)
    assert back.comments == det.comments


def test_round_trip_built_detector(tmp_path):
    det = build_orca_block(7, random_dom_azimuth=True, seed=3)
    write_detx(det, tmp_path / "b.detx")
    back = read_detector(tmp_path / "b.detx")
    assert det.arrays_equal(back)
    assert back.comments == det.comments
    assert back.content_hash() == det.content_hash()
    write_datx(det, tmp_path / "b.datx")
    assert det.arrays_equal(read_detector(tmp_path / "b.datx"))


def test_write_overwrites_existing_file(tmp_path):
    out = tmp_path / "x.detx"
    out.write_text("garbage")
    write_detx(_read("detx_v2.detx"), out)
    assert read_detx(out).det_id == 23


def test_write_only_v5(tmp_path):
    with pytest.raises(ValueError):
        write_detx(_read("detx_v2.detx"), tmp_path / "x.detx", version=3)


# ---------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    for fn in (read_detx, read_datx, read_detector):
        p = tmp_path / "nope.detx"
        with pytest.raises(DetectorFileError, match="nope.detx"):
            fn(p)


def test_unknown_suffix(tmp_path):
    p = tmp_path / "det.txt"
    p.write_text("1 0\n")
    with pytest.raises(DetectorFileError, match=r"det\.txt.*\.detx"):
        read_detector(p)


def _v3_text() -> list[str]:
    return (DETX / "detx_v3.detx").read_text().splitlines()


def _write(tmp_path, lines, name="bad.detx"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_truncated_detx(tmp_path):
    lines = (DETX / ARCA21).read_text().splitlines()
    p = _write(tmp_path, lines[:1000])
    with pytest.raises(DetectorFileError, match=r"bad\.detx.*truncated"):
        read_detx(p)
    p = _write(tmp_path, lines[:28])  # header cut before the number of modules
    with pytest.raises(DetectorFileError, match=r"bad\.detx.*end of file.*number of modules"):
        read_detx(p)


def test_bad_number_names_line(tmp_path):
    lines = _v3_text()
    # line 9 of the file (1-based) is the 2nd PMT of module 1
    assert lines[8].split()[0] == "2"
    lines[8] = lines[8].replace("1.5", "1.x5")
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"bad\.detx, line 9: expected a number y.*'1\.x5'"):
        read_detx(p)


def test_non_integer_id_names_line(tmp_path):
    lines = _v3_text()
    lines[10] = "2.5 1 2 3"  # module line
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"line 11: expected an integer module_id"):
        read_detx(p)


def test_too_few_pmts_in_module(tmp_path):
    lines = _v3_text()
    assert lines[6] == "1 1 1 3"
    lines[6] = "1 1 1 4"  # announces 4 PMTs, 3 follow, then the next module line
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"bad\.detx, line 11: expected PMT line 4 of 4"):
        read_detx(p)


def test_too_many_pmts_in_module(tmp_path):
    lines = _v3_text()
    lines[6] = "1 1 1 2"  # announces 2 PMTs, 3 follow
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"bad\.detx, line 10: expected module line 2 of 6"):
        read_detx(p)


def test_wrong_number_of_fields_in_pmt_line(tmp_path):
    lines = _v3_text()
    lines[7] = lines[7] + " 7"
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"line 8: expected PMT line 1 of 3 .* 9 fields"):
        read_detx(p)


def test_too_many_modules_lines(tmp_path):
    lines = _v3_text()
    lines[5] = "5"  # header says 5 modules, file has 6
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"line 27: unexpected extra line"):
        read_detx(p)


def test_bad_header(tmp_path):
    p = _write(tmp_path, ["# c", "23 x3", "1 2"])
    with pytest.raises(DetectorFileError, match=r"line 2: expected a version tag"):
        read_detx(p)
    p = _write(tmp_path, ["23 v9"])
    with pytest.raises(DetectorFileError, match=r"line 1: unsupported detx version v9"):
        read_detx(p)
    lines = _v3_text()
    lines[4] = "UTM WGS84 32N 256500.0 4743000.0"
    p = _write(tmp_path, lines)
    with pytest.raises(DetectorFileError, match=r"line 5: expected the UTM line"):
        read_detx(p)
    p = _write(tmp_path, [])
    with pytest.raises(DetectorFileError, match="empty"):
        read_detx(p)


def test_truncated_datx(tmp_path):
    data = (DATX / "KM3NeT_00000133_20221025.datx").read_bytes()
    p = tmp_path / "cut.datx"
    p.write_bytes(data[:100_000])
    with pytest.raises(DetectorFileError, match=r"cut\.datx, byte offset \d+: unexpected end of file"):
        read_datx(p)
    p.write_bytes(data + b"\0\0")
    with pytest.raises(DetectorFileError, match=r"cut\.datx, byte offset 785243: expected end of file"):
        read_datx(p)


def test_datx_bad_version(tmp_path):
    det = _read("detx_v2.detx")
    p = tmp_path / "v.datx"
    write_datx(det, p)
    data = bytearray(p.read_bytes())
    i = data.index(b"v5")
    data[i : i + 2] = b"v7"
    p.write_bytes(bytes(data))
    with pytest.raises(DetectorFileError, match=rf"v\.datx, byte offset {i - 4}: unsupported datx"):
        read_datx(p)


def test_unclosed_quote_in_comment_is_a_one_line_comment(tmp_path, caplog):
    p = _write(tmp_path, ['# command x \\"abc', "7 1", "1 1 1 1", " 1 0 0 0 0 0 1 0"])
    det = read_detx(p)
    assert det.comments == ['command x \\"abc']
    assert det.det_id == 7 and det.n_pmts == 1
    assert "never closed" in caplog.text


def test_error_is_km3sim_error():
    from km3sim.errors import Km3simError

    assert issubclass(DetectorFileError, Km3simError)


def test_read_accepts_str_path():
    det = read_detector(os.fspath(DETX / "detx_v2.detx"))
    assert det.det_id == 23
