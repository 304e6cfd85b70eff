"""Tests of km3sim.detector.geometry: the Detector class and the building-block builders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from km3sim.detector.geometry import (
    DOM_PMT_RADIUS,
    RING_COS_ZENITH,
    Detector,
    build_arca_block,
    build_block,
    build_orca_block,
    dom_pmt_layout,
)


# ---------------------------------------------------------------------- DOM layout
def test_dom_pmt_layout_rings():
    dirs, rel = dom_pmt_layout()
    assert dirs.shape == (31, 3) and rel.shape == (31, 3)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(rel, axis=1), DOM_PMT_RADIUS, atol=1e-15)
    np.testing.assert_allclose(rel, DOM_PMT_RADIUS * dirs)
    cz = np.round(dirs[:, 2], 6)
    counts = {c: int(np.sum(cz == c)) for c in RING_COS_ZENITH}
    assert counts == {-1.0: 1, -0.85: 6, -0.555: 6, -0.295: 6, 0.295: 6, 0.555: 6}
    assert np.sum(dirs[:, 2] > 0) == 12 and np.sum(dirs[:, 2] < 0) == 19
    assert dirs[22, 2] == -1.0  # channel 22 is the bottom PMT (ARCA21 convention)
    # within a ring 60 deg apart; adjacent rings staggered by 30 deg
    offsets = []
    for c in RING_COS_ZENITH[1:]:
        ring = dirs[cz == c]
        az = np.sort(np.degrees(np.arctan2(ring[:, 1], ring[:, 0])) % 360)
        np.testing.assert_allclose(np.diff(az), 60.0, atol=1e-9)
        offsets.append(az[0] % 60)
    np.testing.assert_allclose(np.abs(np.diff(offsets)), 30.0, atol=1e-9)
    # nearest neighbours 30.5-31.8 deg apart (PHYSICS.md 7.1)
    cosang = dirs @ dirs.T
    np.fill_diagonal(cosang, -2)
    nn = np.degrees(np.arccos(cosang.max(axis=1)))
    assert nn.min() > 30.0 and nn.max() < 32.0


def test_dom_pmt_layout_radius():
    _, rel = dom_pmt_layout(radius=0.25)
    np.testing.assert_allclose(np.linalg.norm(rel, axis=1), 0.25)


def test_dom_pmt_layout_matches_real_arca21():
    km3net_testdata = pytest.importorskip("km3net_testdata")
    from km3sim.io.detx import read_detx

    det = read_detx(km3net_testdata.data_path("detx/KM3NeT_00000133_20221025.detx"))
    dirs, _ = dom_pmt_layout()
    # the first DOM of the file has the identity orientation
    np.testing.assert_array_equal(det.module_quaternion[1], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(det.pmt_dir[:31], dirs, atol=2e-3)


# ---------------------------------------------------------------------- builders
@pytest.mark.parametrize("n_dus", [1, 7, 19, 115])
def test_build_orca_block_counts(n_dus):
    det = build_orca_block(n_dus)
    assert det.version == 5
    assert det.n_dus == n_dus
    assert det.n_doms == 18 * n_dus
    assert det.n_pmts == 31 * 18 * n_dus
    assert det.n_base_modules == n_dus
    assert det.n_modules == 19 * n_dus
    np.testing.assert_array_equal(det.du_ids, np.arange(1, n_dus + 1))
    assert np.unique(det.module_id).size == det.n_modules
    assert np.unique(det.pmt_id).size == det.n_pmts
    assert set(det.floors_per_du().values()) == {18}
    base = det.module_floor == 0
    assert np.all(det.module_n_pmts[base] == 0)
    np.testing.assert_array_equal(np.unique(det.dom_floor), np.arange(1, 19))
    assert det.utm_zone == "32N"
    np.testing.assert_array_equal(det.utm_reference, [256500.0, 4743000.0, -2440.0])
    # sea floor at z = 0: base modules at 0, lowest DOM 40 m above it
    np.testing.assert_array_equal(det.module_pos[base, 2], 0.0)
    assert det.height_range() == pytest.approx((40.0, 40.0 + 17 * 9.0))
    assert det.floor_spacing() == pytest.approx(9.0)
    if n_dus > 1:
        assert det.du_spacing() == pytest.approx(20.0)
        assert det.du_nearest_neighbour_distances().min() == pytest.approx(20.0)


def test_build_arca_block():
    det = build_arca_block()
    assert (det.n_dus, det.n_doms, det.n_pmts) == (115, 2070, 64170)
    assert det.floor_spacing() == pytest.approx(36.0)
    assert det.du_spacing() == pytest.approx(90.0)
    assert det.height_range()[0] == pytest.approx(80.0)
    assert det.utm_zone == "33N"
    np.testing.assert_array_equal(det.utm_reference, [587600.0, 4016800.0, -3450.0])
    # a 115-DU hexagonal block: about 6 rings of 90 m
    assert 5 * 90.0 < det.footprint_radius() < 6.5 * 90.0


def test_hexagonal_fill_is_compact():
    d7 = build_block(7, 10.0, 5.0, 20.0, n_floors=2)
    xy = d7.du_positions()
    np.testing.assert_allclose(xy[0], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.hypot(*xy[1:].T), 10.0)
    assert d7.footprint_radius() == pytest.approx(10.0)
    np.testing.assert_allclose(d7.center()[:2], 0.0, atol=1e-12)
    d19 = build_block(19, 10.0, 5.0, 20.0, n_floors=2)
    np.testing.assert_allclose(d19.center()[:2], 0.0, atol=1e-9)
    assert d19.footprint_radius() == pytest.approx(20.0)
    # hexagon of 2 rings: area of the hull = 6 equilateral triangles of side 20 m
    assert d19.footprint_area() == pytest.approx(6 * math.sqrt(3) / 4 * 20.0**2)


def test_square_layout():
    det = build_block(9, 10.0, 5.0, 20.0, n_floors=3, layout="square")
    xy = det.du_positions()
    assert sorted(map(tuple, xy.round(9).tolist())) == sorted(
        (x, y) for x in (-10.0, 0.0, 10.0) for y in (-10.0, 0.0, 10.0)
    )
    assert det.du_spacing() == pytest.approx(10.0)
    assert det.footprint_area() == pytest.approx(400.0)
    with pytest.raises(ValueError):
        build_block(3, 10.0, 5.0, 20.0, layout="triangular")


def test_builder_options():
    det = build_block(
        2, 50.0, 10.0, 30.0, n_floors=4, base_modules=False, det_id=7, seabed_z=-5.0
    )
    assert det.n_modules == 8 and det.n_base_modules == 0 and det.det_id == 7
    assert det.height_range() == pytest.approx((25.0, 55.0))
    big = build_block(1, 10.0, 1.0, 1.0, n_floors=120)
    assert np.unique(big.module_id).size == 121
    assert np.unique(big.pmt_id).size == big.n_pmts
    with pytest.raises(ValueError):
        build_block(0, 10.0, 5.0, 20.0)


def test_built_pmts_follow_layout():
    det = build_orca_block(7)
    dirs, rel = dom_pmt_layout()
    sl = det.pmt_index_of_dom()[5]
    np.testing.assert_allclose(det.pmt_dir[sl], dirs)
    np.testing.assert_allclose(det.pmt_pos[sl] - det.dom_pos[5], rel, atol=1e-12)
    np.testing.assert_array_equal(det.pmt_channel[sl], np.arange(31))


def test_random_dom_azimuth():
    det = build_arca_block(7, random_dom_azimuth=True, seed=5)
    dirs0, _ = dom_pmt_layout()
    # rings unchanged, every DOM rotated about z only
    np.testing.assert_allclose(det.pmt_dir[:, 2], np.tile(dirs0[:, 2], det.n_doms), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(det.pmt_dir, axis=1), 1.0, atol=1e-12)
    r = np.linalg.norm(det.pmt_pos - det.dom_pos[det.pmt_dom_index], axis=1)
    np.testing.assert_allclose(r, DOM_PMT_RADIUS, atol=1e-12)
    q = det.module_quaternion[det.is_optical]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)
    assert np.all(q[:, 1:3] == 0.0) and np.std(q[:, 3]) > 0.1
    # quaternion angle matches the rotation of channel 0
    ang_q = 2 * np.arctan2(q[:, 3], q[:, 0])
    d0 = det.pmt_dir[det.dom_pmt_offsets[:-1]]
    ang_d = np.arctan2(d0[:, 1], d0[:, 0]) - np.arctan2(dirs0[0, 1], dirs0[0, 0])
    np.testing.assert_allclose(np.mod(ang_q - ang_d + np.pi, 2 * np.pi) - np.pi, 0, atol=1e-9)
    # deterministic
    again = build_arca_block(7, random_dom_azimuth=True, seed=5)
    assert again.content_hash() == det.content_hash()
    assert build_arca_block(7, random_dom_azimuth=True, seed=6).content_hash() != det.content_hash()


# ---------------------------------------------------------------------- Detector helpers
@pytest.fixture(scope="module")
def small():
    return build_orca_block(3, n_floors=4)


def test_index_helpers(small):
    det = small
    assert det.n_doms == 12 and det.n_pmts == 372
    np.testing.assert_array_equal(det.dom_pmt_offsets, np.arange(13) * 31)
    np.testing.assert_array_equal(det.pmt_dom_index, np.repeat(np.arange(12), 31))
    slices = det.pmt_index_of_dom()
    assert slices[2] == slice(62, 93)
    idx = det.dom_index(det.dom_ids[[3, 0, 11]])
    np.testing.assert_array_equal(idx, [3, 0, 11])
    pidx = det.pmt_index(det.dom_ids[[3, 0]], [30, 1])
    np.testing.assert_array_equal(pidx, [3 * 31 + 30, 1])
    np.testing.assert_array_equal(det.pmt_dom_id[pidx], det.dom_ids[[3, 0]])
    with pytest.raises(KeyError):
        det.dom_index([det.module_id[0]])  # a base module is not a DOM
    with pytest.raises(KeyError):
        det.pmt_index(det.dom_ids[[0]], [31])


def test_pmt_status_bits(small):
    arr = small.to_arrays()
    arr["pmt_status"][:6] = [1, 2, 3, 4, 32, 0]
    arr["module_status"][4] = 1  # a DOM (floor 4 of DU 1) disabled
    assert arr["module_floor"][4] == 4 and arr["module_n_pmts"][4] == 31
    det = Detector.from_arrays(arr)
    np.testing.assert_array_equal(det.pmt_status_ok[:6], [False, True, False, True, True, True])
    assert (~det.pmt_status_ok).sum() == 2
    assert (~det.pmt_usable).sum() == 2 + 31
    info = det.format_info()
    assert "PMT_DISABLE 2" in info and "HIGH_RATE_VETO_DISABLE 2" in info


def test_content_hash_and_arrays(small, tmp_path):
    h = small.content_hash()
    assert len(h) == 64 and h == build_orca_block(3, n_floors=4).content_hash()
    arr = small.to_arrays()
    back = Detector.from_arrays(arr)
    assert back.arrays_equal(small) and back.comments == small.comments
    assert back.content_hash() == h
    arr["pmt_t0"][7] += 1e-9
    assert Detector.from_arrays(arr).content_hash() != h
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        g = f.create_group("detector")
        for k, v in small.to_arrays().items():
            g[k] = v
    with h5py.File(tmp_path / "d.h5", "r") as f:
        back = Detector.from_arrays(f["detector"])
    assert back.arrays_equal(small) and back.utm_zone == "32N"
    assert back.comments == small.comments


def test_select_dus(small):
    sub = small.select_dus([2])
    assert sub.n_dus == 1 and sub.n_doms == 4 and sub.n_base_modules == 1
    assert sub.n_pmts == 124
    np.testing.assert_array_equal(np.unique(sub.pmt_du), [2])


def test_validation():
    arr = build_orca_block(1, n_floors=2).to_arrays()
    bad = dict(arr)
    bad["module_du"] = arr["module_du"][:-1]
    with pytest.raises(ValueError, match="module_du"):
        Detector.from_arrays(bad)
    bad = dict(arr)
    bad["module_n_pmts"] = arr["module_n_pmts"].copy()
    bad["module_n_pmts"][1] = 30
    with pytest.raises(ValueError, match="PMTs"):
        Detector.from_arrays(bad)


def test_summary_and_info(small):
    s = small.summary()
    for key in (
        "det_id", "n_dus", "n_doms", "n_pmts", "n_base_modules", "floor_spacing_m",
        "du_spacing_median_m", "du_spacing_min_m", "footprint_radius_m",
        "footprint_area_hull_m2", "dom_z_min_m", "dom_z_max_m", "content_hash",
    ):
        assert key in s
    assert s["n_doms"] == 12 and s["doms_per_du"] == [4]
    info = small.format_info()
    for text in ("32N", "DUs", "DOMs", "PMTs", "base modules", "vertical spacing", "9.00 m",
                 "DU spacing", "20.00 m", "footprint", "DOM z range", "40.00 .. 67.00"):
        assert text in info, text
    assert "Detector(" in repr(small)


def test_degenerate_detectors():
    one = build_block(1, 10.0, 5.0, 20.0, n_floors=1)
    assert math.isnan(one.floor_spacing()) and math.isnan(one.du_spacing())
    assert one.footprint_radius() == 0.0 and one.footprint_area() == 0.0
    assert "DOMs" in one.format_info()
    line = build_block(3, 10.0, 5.0, 20.0, n_floors=2, layout="square")  # 3 DUs in an L
    assert line.footprint_area() == pytest.approx(50.0)
