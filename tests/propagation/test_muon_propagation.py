"""Tests of continuous muon energy loss and the muon propagation stage."""

import math

import numpy as np
import pytest

from km3sim.errors import StageError
from km3sim.generators.muons import AtmosphericMuonGenerator
from km3sim.propagation.muons import (
    ContinuousLossTable,
    MuonPropagation,
    distance_to_energy,
    energy_after,
    muon_range,
)
from km3sim.schema import make_table
from km3sim.stage import StageContext, get_stage
from km3sim.table import Table

RHO = 1.038


CONTINUOUS = MuonPropagation.Config(stochastic=False)


@pytest.fixture(scope="module")
def prop(detector, site):
    # mean-loss mode: the closed-form a + b E propagation these tests compare with
    return MuonPropagation(CONTINUOUS, detector=detector, site=site)


def _ctx(detector, site, ids, stage="muon_propagation", seed=7, run_id=2, livetime_s=30.0):
    return StageContext(
        seed=seed,
        run_id=run_id,
        chunk=0,
        stage_name=stage,
        event_ids=np.asarray(ids, dtype=np.int64),
        livetime_s=livetime_s,
        n_events_run=len(ids),
        detector=detector,
        site=site,
    )


@pytest.fixture(scope="module")
def generated(detector, site):
    ids = np.arange(2000, dtype=np.int64)
    gen = AtmosphericMuonGenerator(detector=detector, site=site)
    return ids, gen.run({}, _ctx(detector, site, ids, stage="atmospheric_muons"))


# --------------------------------------------------------------------------- loss functions
@pytest.mark.parametrize(
    "energy, range_m",
    [(1.0, 4.2), (10.0, 40.0), (100.0, 348.0), (1e3, 2.3e3), (1e4, 7.4e3), (1e5, 13.7e3), (1e6, 19.8e3)],
)
def test_range_table(energy, range_m):
    # PHYSICS.md §4.1 table, derived with the same scheme and rounded: 3 %
    assert muon_range(energy) == pytest.approx(range_m, rel=0.03)


def test_range_closed_form_low_energy():
    # below 30 GeV a single segment: R = ln(1 + bE/a)/b
    a, b = 0.230 * RHO, 15.5e-4 * RHO
    for e in (0.5, 5.0, 29.0):
        assert muon_range(e) == pytest.approx(math.log(1 + b * e / a) / b, rel=1e-12)


def test_loss_rate_matches_table():
    # numerical -dE/dx at the start of the path equals rho (a + b E) in each segment
    for e, a, b in [(10.0, 0.230, 15.5e-4), (1e3, 0.267, 3.40e-4), (1e5, -0.650, 3.66e-4)]:
        dx = 1e-3
        slope = (e - energy_after(e, dx)) / dx
        assert slope == pytest.approx(RHO * (a + b * e), rel=1e-5)


def test_energy_after_and_distance_are_consistent():
    e0 = np.geomspace(0.5, 1e7, 60)
    r = muon_range(e0)
    assert np.all(np.diff(r) > 0)
    np.testing.assert_array_equal(energy_after(e0, r * 1.000001), 0.0)
    assert np.all(energy_after(e0, 2 * r) == 0.0)
    np.testing.assert_array_equal(energy_after(e0, 0.0), e0)
    # crossing segment boundaries (30 GeV, 35.3 TeV): E(x(E0 -> E1)) = E1
    e1 = e0 * 0.013
    x = distance_to_energy(e0, e1)
    np.testing.assert_allclose(energy_after(e0, x), e1, rtol=1e-8)
    np.testing.assert_allclose(x, r - muon_range(e1), rtol=1e-9, atol=1e-9)
    assert np.all(distance_to_energy(e0, e0 * 2) == 0.0)
    np.testing.assert_allclose(distance_to_energy(e0, 0.0), r, rtol=1e-12)
    # energy decreases monotonically along the path and never below zero
    xs = np.linspace(0, 3e4, 301)
    e = energy_after(1e6, xs)
    assert np.all(np.diff(e) <= 0) and np.all(e >= 0)
    # broadcasting and shapes
    assert energy_after(np.full((2, 3), 100.0), np.array([0.0, 10.0, 20.0])).shape == (2, 3)
    assert isinstance(muon_range(5.0), float)


def test_low_energy_muon_stops_within_metres():
    assert muon_range(1.0) < 5.0
    assert muon_range(0.5) < 2.5
    assert energy_after(1.0, 5.0) == 0.0


def test_rock_is_denser_than_water():
    rock = ContinuousLossTable.rock()
    assert muon_range(100.0, rock) < 0.5 * muon_range(100.0)
    a, b = 0.267 * 0.9 * 2.65, 3.40e-4 * 1.2 * 2.65
    assert muon_range(100.0, rock) == pytest.approx(math.log(1 + b * 100 / a) / b, rel=1e-12)


# ------------------------------------------------------------------------------- the stage
def test_stage_declaration():
    assert get_stage("muon_propagation") is MuonPropagation
    assert MuonPropagation.Config().can_margin_m == AtmosphericMuonGenerator.Config().can_margin_m == 200.0
    with pytest.raises(Exception):
        MuonPropagation.Config(margin=3)


def test_propagates_generated_muons(prop, detector, site, generated):
    ids, tables = generated
    out = prop.run(tables, _ctx(detector, site, ids))["mc_tracks"]
    tr = tables["mc_tracks"]
    assert len(out) == len(tr)
    for k in ("event_id", "track_id", "pdgid", "pos_x", "pos_z", "dir_z", "energy", "time"):
        np.testing.assert_array_equal(out[k], tr[k])
    e0, length, lost = out["energy"], out["length"], out["energy_lost_in_can"]
    pos = np.column_stack([out["pos_x"], out["pos_y"], out["pos_z"]])
    d = np.column_stack([out["dir_x"], out["dir_y"], out["dir_z"]])
    _, chord = prop.can.intersect(pos, d)
    chord = np.nan_to_num(chord)  # bundle muons that miss the can keep length 0
    r = muon_range(e0)
    # energy conservation and geometry
    assert np.all(lost >= 0) and np.all(e0 - lost >= 0)
    assert np.all(length >= 0) and np.all(length <= chord + 1e-9)
    np.testing.assert_allclose(length, np.minimum(chord, r), rtol=1e-12)
    stopped = r < chord
    assert stopped.any() and (~stopped).any()  # 10 GeV muons stop, TeV muons cross
    np.testing.assert_allclose(lost[stopped], e0[stopped], rtol=1e-12)
    np.testing.assert_allclose(lost[~stopped], e0[~stopped] - energy_after(e0[~stopped], chord[~stopped]), rtol=1e-12)


def test_chunk_invariance(prop, detector, site, generated):
    ids, tables = generated
    whole = prop.run(tables, _ctx(detector, site, ids))["mc_tracks"]
    parts = []
    for sl in (slice(0, 777), slice(777, None)):
        sub = {k: t.select_events(ids[sl]) for k, t in tables.items()}
        parts.append(prop.run(sub, _ctx(detector, site, ids[sl]))["mc_tracks"])
    assert Table.concat(parts).equals(whole)
    # deterministic, and a stage built from the context's detector agrees
    assert MuonPropagation(CONTINUOUS).run(tables, _ctx(detector, site, ids))["mc_tracks"].equals(whole)
    with pytest.raises(StageError):
        MuonPropagation().run(tables, _ctx(None, site, ids))


def _tracks(rows):
    cols = {k: [] for k in ("event_id", "pdgid", "pos", "dir", "energy")}
    for ev, pdg, p, d, e in rows:
        cols["event_id"].append(ev)
        cols["pdgid"].append(pdg)
        cols["pos"].append(p)
        cols["dir"].append(d)
        cols["energy"].append(e)
    n = len(rows)
    p = np.array(cols["pos"], float)
    d = np.array(cols["dir"], float)
    d /= np.linalg.norm(d, axis=1)[:, None]
    return make_table(
        "mc_tracks",
        event_id=np.array(cols["event_id"]),
        track_id=np.zeros(n, np.int32),
        parent_id=np.full(n, -1, np.int32),
        pdgid=np.array(cols["pdgid"], np.int32),
        pos_x=p[:, 0],
        pos_y=p[:, 1],
        pos_z=p[:, 2],
        dir_x=d[:, 0],
        dir_y=d[:, 1],
        dir_z=d[:, 2],
        energy=np.array(cols["energy"], float),
        time=np.zeros(n),
        length=np.full(n, 5.0),
        energy_lost_in_can=np.full(n, 1.0),
    )


def test_hand_made_tracks(prop, detector, site):
    can = prop.can
    top = [can.x, can.y, can.zmax]
    rows = [
        (0, 13, top, [0, 0, -1], 1e4),  # vertical through the axis: crosses the full height
        (1, -13, [can.x, can.y, can.zmax + 100.0], [0, 0, -1], 1e4),  # starts 100 m above the can
        (2, 13, [can.x, can.y, can.zmax + 100.0], [0, 0, 1], 1e4),  # going away from the can
        (3, 13, top, [0, 0, -1], 0.8),  # stops within metres
        (4, 11, top, [0, 0, -1], 50.0),  # not a muon: left as it is
        (5, 13, [can.x, can.y, 50.0], [1, 0, 0], 1e3),  # starts inside, horizontal
    ]
    tracks = _tracks(rows)
    events = make_table(
        "events",
        **{k: np.zeros(6) for k in ("mc_time", "energy", "pos_x", "pos_y", "pos_z", "dir_x", "dir_y", "dir_z")},
        event_id=np.arange(6),
        run_id=np.zeros(6, np.int32),
        n_muons=np.ones(6, np.int32),
        pdgid=np.full(6, 13),
        n_gen=np.full(6, 6),
        livetime_s=np.ones(6),
        weight_w3=np.ones(6),
    )
    out = prop.run({"events": events, "mc_tracks": tracks}, _ctx(detector, site, np.arange(6)))["mc_tracks"]
    h = can.height
    assert out["length"][0] == pytest.approx(h)
    assert out["energy_lost_in_can"][0] == pytest.approx(1e4 - energy_after(1e4, h))
    # the part before the can is not counted
    assert out["length"][1] == pytest.approx(h)
    assert out["energy_lost_in_can"][1] == pytest.approx(energy_after(1e4, 100.0) - energy_after(1e4, 100.0 + h))
    assert out["length"][2] == 0.0 and out["energy_lost_in_can"][2] == 0.0
    assert out["length"][3] == pytest.approx(muon_range(0.8)) and out["length"][3] < 4.0
    assert out["energy_lost_in_can"][3] == 0.8
    assert out["length"][4] == 5.0 and out["energy_lost_in_can"][4] == 1.0
    assert out["length"][5] == pytest.approx(can.radius)


def test_muon_starting_outside_the_can_is_moved_to_its_entry_point():
    """Generator can larger than the propagation can: the in-can segment starts at the entry."""
    import numpy as np

    from km3sim.constants import C_LIGHT
    from km3sim.detector.geometry import build_orca_block
    from km3sim.generators.muons import AtmosphericMuonGenerator
    from km3sim.propagation.muons import MuonPropagation, energy_after
    from km3sim.stage import StageContext

    det = build_orca_block(n_dus=7)
    gen = AtmosphericMuonGenerator(AtmosphericMuonGenerator.Config(can_margin_m=200), detector=det)
    prop = MuonPropagation(MuonPropagation.Config(can_margin_m=50, stochastic=False), detector=det)
    ids = np.arange(400, dtype=np.int64)
    ctx = StageContext(seed=3, run_id=1, chunk=0, stage_name="atmospheric_muons", event_ids=ids,
                       livetime_s=1.0, n_events_run=400, detector=det)
    generated = gen.run({}, ctx)
    ctx.stage_name = "muon_propagation"
    out = prop.run(generated, ctx)["mc_tracks"]
    before = generated["mc_tracks"]
    pos0 = np.column_stack([before[f"pos_{a}"] for a in "xyz"])
    pos1 = np.column_stack([out[f"pos_{a}"] for a in "xyz"])
    dirs = np.column_stack([before[f"dir_{a}"] for a in "xyz"])
    step = np.einsum("ij,ij->i", pos1 - pos0, dirs)
    moved = step > 0
    assert 20 < moved.sum() < 400  # muons of the big can that reach the small one start outside it
    # moved along the track, time and energy consistent with the step
    assert np.allclose(pos1[moved], pos0[moved] + step[moved, None] * dirs[moved], atol=1e-9)
    assert np.allclose(out["time"][moved], before["time"][moved] + step[moved] / C_LIGHT)
    assert np.allclose(out["energy"][moved], energy_after(before["energy"][moved], step[moved]))
    # the segment pos .. pos + length*dir lies in the small can
    can = prop.can
    inside = out["length"] > 0
    for frac in (0.0, 0.5, 1.0):
        p = pos1[inside] + (frac * out["length"][inside])[:, None] * dirs[inside]
        r = np.hypot(p[:, 0] - can.x, p[:, 1] - can.y)
        assert np.all(r <= can.radius + 1e-6) and np.all(p[:, 2] >= can.zmin - 1e-6) and np.all(p[:, 2] <= can.zmax + 1e-6)
