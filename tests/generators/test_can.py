"""Tests of the generation can (km3sim.generators.can)."""

import math

import numpy as np
import pytest

from km3sim.detector.geometry import build_orca_block
from km3sim.generators.can import Can, can_from_detector


@pytest.fixture(scope="module")
def detector():
    return build_orca_block(n_dus=7)


@pytest.fixture(scope="module")
def can(detector):
    return can_from_detector(detector, 200.0)


def test_can_from_detector_encloses_doms(detector, can):
    pos = detector.dom_pos
    xy = pos[:, :2].mean(axis=0)
    footprint = np.hypot(pos[:, 0] - xy[0], pos[:, 1] - xy[1]).max()
    assert footprint == pytest.approx(20.0)  # 7-DU hexagon with 20 m spacing
    assert can.radius == pytest.approx(footprint + 200.0)
    assert can.zmax == pytest.approx(pos[:, 2].max() + 200.0)
    assert can.zmin == 0.0  # clipped at the sea floor
    assert (can.x, can.y) == pytest.approx(tuple(xy))
    assert np.all(can.contains(pos))
    # a smaller margin leaves the floor
    small = can_from_detector(detector, 10.0)
    assert small.zmin == pytest.approx(pos[:, 2].min() - 10.0)
    assert small.radius == pytest.approx(footprint + 10.0)
    assert np.all(small.contains(pos))


def test_can_rejects_bad_geometry():
    with pytest.raises(ValueError):
        Can(0.0, 0.0, 10.0, 5.0, 100.0)
    with pytest.raises(ValueError):
        Can(0.0, 0.0, 0.0, 5.0, 0.0)
    with pytest.raises(ValueError):
        can_from_detector(np.zeros((0, 3)))


def test_volume_and_areas():
    c = Can(1.0, -2.0, 0.0, 100.0, 50.0)
    assert c.volume == pytest.approx(math.pi * 50**2 * 100)
    assert c.area_projected(1.0) == pytest.approx(math.pi * 2500)
    assert c.area_projected(0.0) == pytest.approx(2 * 50 * 100)
    u = np.array([0.2, 0.7])
    np.testing.assert_allclose(c.area_projected(u), math.pi * 2500 * u + 2 * 50 * 100 * np.sqrt(1 - u**2))


def test_intersect_simple_lines():
    c = Can(10.0, 20.0, 0.0, 300.0, 100.0)
    # vertical, down through the axis from above
    t_in, t_out = c.intersect([10.0, 20.0, 400.0], [0.0, 0.0, -1.0])
    assert (t_in, t_out) == pytest.approx((100.0, 400.0))
    # horizontal through the axis, starting inside: enters behind pos
    t_in, t_out = c.intersect([10.0, 20.0, 50.0], [1.0, 0.0, 0.0])
    assert (t_in, t_out) == pytest.approx((-100.0, 100.0))
    # horizontal, offset b = 60 m: chord 2 sqrt(r^2 - b^2) = 160 m
    t_in, t_out = c.intersect([-500.0, 80.0, 50.0], [1.0, 0.0, 0.0])
    assert t_out - t_in == pytest.approx(160.0)
    # misses: passes beside, above, vertical outside
    for p, d in [([-500.0, 200.0, 50.0], [1, 0, 0]), ([-500.0, 20.0, 301.0], [1, 0, 0]), ([200.0, 20.0, 50.0], [0, 0, -1])]:
        t_in, t_out = c.intersect(np.array(p, float), np.array(d, float))
        assert math.isnan(t_in) and math.isnan(t_out)


def test_intersect_random_lines_lie_on_surface():
    rng = np.random.default_rng(1)
    c = Can(5.0, -3.0, 0.0, 250.0, 120.0)
    n = 20000
    pos = rng.uniform([-300, -300, -200], [300, 300, 450], size=(n, 3))
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    t_in, t_out = c.intersect(pos, d)
    hit = np.isfinite(t_in)
    assert 0.2 < hit.mean() < 0.9  # both kinds present
    assert np.all(t_in[hit] <= t_out[hit])
    for t in (t_in[hit], t_out[hit]):
        p = pos[hit] + t[:, None] * d[hit]
        np.testing.assert_allclose(c.distance_to_surface(p), 0.0, atol=1e-7)
    mid = pos[hit] + 0.5 * (t_in[hit] + t_out[hit])[:, None] * d[hit]
    assert np.all(c.contains(mid))
    # lines that miss never come inside: check points along them
    miss = np.flatnonzero(~hit)[:500]
    ts = np.linspace(-1500, 1500, 3001)
    pts = pos[miss][:, None, :] + ts[None, :, None] * d[miss][:, None, :]
    assert not np.any(c.distance_to_surface(pts) < -1e-6)


def test_projected_area_by_counting_lines():
    """Parallel lines thrown uniformly on a plane perpendicular to a direction: the fraction
    that hits the can times the plane area estimates area_projected."""
    rng = np.random.default_rng(2)
    c = Can(0.0, 0.0, 0.0, 200.0, 100.0)
    n = 100000
    for cos_z in (1.0, 0.6, 0.1):
        s = math.sqrt(1 - cos_z**2)
        d = np.array([s, 0.0, -cos_z])
        e1 = np.array([cos_z, 0.0, s])
        e2 = np.array([0.0, 1.0, 0.0])
        half = 300.0
        a, b = rng.uniform(-half, half, size=(2, n))
        centre = np.array([0.0, 0.0, 100.0])
        pos = centre + a[:, None] * e1 + b[:, None] * e2 - 1000.0 * d
        t_in, _ = c.intersect(pos, np.broadcast_to(d, pos.shape))
        p = np.isfinite(t_in).mean()
        est = p * (2 * half) ** 2
        # binomial error of the hit fraction; 5 sigma two-sided
        err = math.sqrt(p * (1 - p) / n) * (2 * half) ** 2
        assert abs(est - c.area_projected(cos_z)) < 5 * err
