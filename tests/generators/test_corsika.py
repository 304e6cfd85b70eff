"""Tests of the CORSIKA muon input stage (km3sim.generators.corsika) on km3net-testdata."""

import dataclasses
import gzip
import math
import re
import shutil
import textwrap

import numpy as np
import pytest
from pydantic import ValidationError

from km3sim.errors import ConfigError, StageFileError
from km3sim.generators.corsika import CorsikaMuons, corsika_to_pdg, read_corsika_muons
from km3sim.generators.cosmic_rays import get_flux_model
from km3sim.propagation.muons import energy_after
from km3sim.stage import StageContext

corsikaio = pytest.importorskip("corsikaio")
testdata = pytest.importorskip("km3net_testdata")

C_LIGHT = 0.299792458
MUON_MASS = 0.1056583755


@pytest.fixture(scope="module")
def dat():
    return testdata.data_path("corsika/DAT000001")


@pytest.fixture(scope="module")
def direct(dat):
    """Primaries and level-1 muons as corsikaio reports them, read here directly."""
    out = []
    with corsikaio.CorsikaParticleFile(dat) as f:
        for ev in f:
            pa = ev.particles
            code = np.floor(pa["particle_description"] / 1000).astype(int)
            mu = pa[(code == 5) | (code == 6)]
            out.append(dict(header=ev.header, muons=mu))
    return out


@pytest.fixture(scope="module")
def datacard():
    text = open(testdata.data_path("corsika/datacard_run_000001.inp")).read()
    cards = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            cards.setdefault(parts[0], parts[1:])
    return cards


@pytest.fixture(scope="module")
def log_primaries():
    """(energy, theta, phi) per shower from CORSIKA's own printout (datacard_run_000001.out.gz)."""
    with gzip.open(testdata.data_path("corsika/datacard_run_000001.out.gz"), "rt", errors="replace") as f:
        text = f.read()
    energies = [float(x) for x in re.findall(r"PRIMARY ENERGY =\s+([0-9.Ee+-]+)\s+GEV", text)]
    angles = [(float(a), float(b)) for a, b in re.findall(r"THETA =\s+([0-9.+-]+) RAD, PHI =\s+([0-9.+-]+) RAD", text)]
    return energies, angles


def _ctx(detector, site, ids, n_run=10, seed=3, run_id=0):
    return StageContext(seed=seed, run_id=run_id, chunk=0, stage_name="corsika_muons",
                        event_ids=np.asarray(ids, dtype=np.int64), livetime_s=5.0,
                        n_events_run=n_run, detector=detector, site=site)


def test_reader_against_corsikaio(dat, direct):
    sh = read_corsika_muons(dat)
    assert sh.n_showers == len(direct) == 10
    for k, d in enumerate(direct):
        h = d["header"]
        assert sh.energy[k] == float(h["total_energy"]) and sh.primary_code[k] == int(h["particle_id"])
        assert sh.zenith[k] == float(h["zenith"]) and sh.azimuth[k] == float(h["azimuth"])
        lo, hi = sh.mu_offsets[k], sh.mu_offsets[k + 1]
        assert hi - lo == len(d["muons"])
        np.testing.assert_array_equal(sh.mu_t[lo:hi], d["muons"]["t"])
        np.testing.assert_array_equal(sh.mu_xy[lo:hi, 0], d["muons"]["x"].astype(np.float64) * 0.01)
    assert set(np.unique(sh.mu_code)) == {5, 6} and set(np.unique(sh.mu_level)) == {1}
    assert read_corsika_muons(dat) is sh  # cached


def test_primaries_against_datacard_and_log(dat, detector, site, datacard, log_primaries):
    stage = CorsikaMuons(CorsikaMuons.Config(files=[dat], core="centre"), detector, site)
    ev = stage.run({}, _ctx(detector, site, np.arange(10)))["events"]
    assert int(datacard["NSHOW"][0]) == len(ev) == CorsikaMuons.plan_events(stage.config, detector, site, 1.0, 1, 0)
    assert datacard["PRMPAR"][0] == "14" and np.all(ev["pdgid"] == 2212)
    emin, emax = (float(x) for x in datacard["ERANGE"][:2])
    assert np.all((ev["energy"] >= emin) & (ev["energy"] <= emax))
    energies, angles = log_primaries
    assert len(energies) == len(angles) == 10
    # the log prints double-precision energies; the file holds float32
    np.testing.assert_allclose(ev["energy"], energies, rtol=1e-7)
    theta = np.arccos(-ev["dir_z"])
    assert np.all(np.degrees(theta) <= float(datacard["THETAP"][1]))
    np.testing.assert_allclose(theta, [a[0] for a in angles], atol=1e-4)  # log: 4 decimals
    # default frame rotation 90 deg: CORSIKA x (north) -> detector y
    phi_det = np.arctan2(ev["dir_y"], ev["dir_x"])
    dphi = np.angle(np.exp(1j * (phi_det - np.radians(90.0) - np.array([a[1] for a in angles]))))
    np.testing.assert_allclose(dphi, 0.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.column_stack([ev["dir_x"], ev["dir_y"], ev["dir_z"]]), axis=1), 1.0, rtol=1e-12)


def test_corsika_codes():
    assert corsika_to_pdg(14) == 2212 and corsika_to_pdg(5) == -13 and corsika_to_pdg(6) == 13
    assert corsika_to_pdg(402) == 1000020040 and corsika_to_pdg(5626) == 1000260560
    assert corsika_to_pdg(1407) == 1000070140
    with pytest.raises(ValueError):
        corsika_to_pdg(4)


@pytest.mark.parametrize("core", ["centre", "random"])
def test_muons_at_the_can(dat, detector, site, direct, core):
    """Every muon kept is a CORSIKA muon moved straight from the sea surface (core + rotated
    (x, y)) to its can entry or the plane through the axis impact, with continuous losses;
    the count equals the muons whose energy suffices; times are CORSIKA times plus path / c
    up to one offset per shower."""
    stage = CorsikaMuons(CorsikaMuons.Config(files=[dat], core=core, muon_energy_min_gev=1.0), detector, site)
    out = stage.run({}, _ctx(detector, site, np.arange(10)))
    ev, tr = out["events"], out["mc_tracks"]
    can = stage.can
    z_s = site.seabed_depth_m
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # +90 deg
    assert np.array_equal(np.bincount(tr["event_id"], minlength=10), ev["n_muons"])
    assert ev["n_muons"].sum() > 20
    for k, d in enumerate(direct):
        a = np.array([ev["dir_x"][k], ev["dir_y"][k], ev["dir_z"][k]])
        impact = np.array([ev["pos_x"][k], ev["pos_y"][k], ev["pos_z"][k]])
        assert abs(can.distance_to_surface(impact)) < 1e-6
        core_s = impact - (z_s - impact[2]) / -a[2] * a
        m = d["muons"]
        p = np.column_stack([m["px"], m["py"], m["pz"]]).astype(np.float64)
        pm = np.linalg.norm(p, axis=1)
        e_surf = np.sqrt(pm**2 + MUON_MASS**2)
        dirs = np.column_stack([p[:, :2] @ rot.T, -p[:, 2]]) / pm[:, None]
        start = np.column_stack([core_s[:2] + (np.column_stack([m["x"], m["y"]]).astype(np.float64) * 0.01) @ rot.T,
                                 np.full(len(m), z_s)])
        t_in, t_out = can.intersect(start, dirs)
        hit = np.isfinite(t_in)
        path = np.where(hit, t_in, ((impact - start) @ a) / (dirs @ a))
        e_can = energy_after(e_surf, path)
        expect = e_can >= 1.0
        sel = tr["event_id"] == k
        assert sel.sum() == expect.sum(), k
        if not expect.any():
            continue
        # match the stage's muons to the expected ones by direction (float32 momenta: distinct)
        td = np.column_stack([tr["dir_x"][sel], tr["dir_y"][sel], tr["dir_z"][sel]])
        idx = np.argmax(td @ dirs[expect].T, axis=1)
        assert len(np.unique(idx)) == len(idx)
        np.testing.assert_allclose(td, dirs[expect][idx], atol=1e-12)
        pos = start[expect][idx] + path[expect][idx, None] * dirs[expect][idx]
        np.testing.assert_allclose(np.column_stack([tr["pos_x"][sel], tr["pos_y"][sel], tr["pos_z"][sel]]), pos, atol=1e-6)
        np.testing.assert_allclose(tr["energy"][sel], e_can[expect][idx], rtol=1e-10)
        assert np.all(tr["energy"][sel] < e_surf[expect][idx])
        assert np.all(np.abs(tr["pdgid"][sel]) == 13)
        assert np.array_equal(tr["pdgid"][sel] == -13, (np.floor(m["particle_description"] / 1000) == 5)[expect][idx])
        offset = tr["time"][sel] - (m["t"][expect][idx] + path[expect][idx] / C_LIGHT)
        assert np.ptp(offset) < 1e-3  # float32 CORSIKA times (~1e6 ns): ~0.1 ns resolution
    assert np.all(np.isnan(ev["weight_w2"])) and np.all(np.isnan(ev["weight_w3"]))


def test_random_core_reproducible(dat, detector, site):
    stage = CorsikaMuons(CorsikaMuons.Config(files=[dat]), detector, site)
    full = stage.run({}, _ctx(detector, site, np.arange(10)))
    part = stage.run({}, _ctx(detector, site, [3, 4, 8]))
    for name in ("events", "mc_tracks"):
        sel = np.isin(full[name]["event_id"], [3, 4, 8])
        for col in full[name].columns:
            assert np.array_equal(full[name][col][sel], part[name][col], equal_nan=full[name][col].dtype.kind == "f")
    other = stage.run({}, _ctx(detector, site, np.arange(10), seed=4))
    assert not np.array_equal(other["events"]["pos_x"], full["events"]["pos_x"])
    np.testing.assert_array_equal(other["events"]["energy"], full["events"]["energy"])
    # event ids of a later run map to the same showers (event number within the run)
    from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX

    later = stage.run({}, _ctx(detector, site, 7 * EVENTS_PER_RUN_MAX + np.arange(10), run_id=7))
    np.testing.assert_array_equal(later["events"]["energy"], full["events"]["energy"])


def test_weights_from_the_event_header(dat, detector, site):
    n_gen = 10
    for mode in ("isotropic", "flat_detector"):
        stage = CorsikaMuons(CorsikaMuons.Config(files=[dat], zenith_sampling=mode, flux_model="H3a"), detector, site)
        ev = stage.run({}, _ctx(detector, site, np.arange(10), n_run=n_gen))["events"]
        u = -ev["dir_z"]
        # datacard: ESLOPE -2 on [1.1e6, 9e7] GeV, THETAP 0-87 deg, PHIP -180..180 deg
        i_e = 1 / 1.1e6 - 1 / 9e7
        c2 = math.cos(math.radians(87.0))
        omega = 2 * math.pi * (1 - c2) if mode == "isotropic" else 2 * math.pi * 0.5 * (1 - c2 * c2) / u
        w2 = stage.can.area_projected(u) * omega * i_e * ev["energy"] ** 2
        np.testing.assert_allclose(ev["weight_w2"], w2, rtol=1e-6)  # float32 header ranges
        phi = get_flux_model("H3a").flux(2212, ev["energy"])
        np.testing.assert_allclose(ev["weight_w3"], ev["weight_w2"] * phi / n_gen, rtol=1e-12)


def test_bad_files(tmp_path, dat, detector, site):
    missing = tmp_path / "nope.dat"
    with pytest.raises(StageFileError, match="nope.dat"):
        CorsikaMuons(CorsikaMuons.Config(files=[str(missing)]), detector, site)
    with pytest.raises(StageFileError, match=r"files\[0\]"):
        CorsikaMuons.plan_events(CorsikaMuons.Config(files=[str(missing)]), detector, site, 1.0, 1, 0)
    text = tmp_path / "text.dat"
    text.write_text("this is not a CORSIKA file\n" * 100)
    with pytest.raises(StageFileError, match="text.dat"):
        CorsikaMuons(CorsikaMuons.Config(files=[str(text)]), detector, site)
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(StageFileError, match="empty.dat"):
        read_corsika_muons(str(empty))
    trunc = tmp_path / "trunc.dat"
    raw = open(dat, "rb").read()
    trunc.write_bytes(raw[: len(raw) * 6 // 10])
    with pytest.raises(StageFileError, match="trunc.dat"):
        read_corsika_muons(str(trunc))
    with pytest.raises(StageFileError, match="not a regular file"):
        read_corsika_muons(str(tmp_path))


def test_config_and_files(tmp_path, dat, detector, site):
    with pytest.raises(ValidationError):
        CorsikaMuons.Config(files=[])
    with pytest.raises(ValidationError):
        CorsikaMuons.Config(files=[dat], cor="centre")
    with pytest.raises(ValidationError):
        CorsikaMuons.Config(files=[dat], core="edge")
    cfg = CorsikaMuons.Config(files=[dat, dat])
    assert CorsikaMuons.input_files(cfg) == [dat, dat]
    assert CorsikaMuons.plan_events(cfg, detector, site, 1.0, 1, 0) == 20
    stage = CorsikaMuons(cfg, detector, site)
    sh, j = stage.shower(13)
    assert j == 3 and sh.path.endswith("DAT000001")
    ev = stage.run({}, _ctx(detector, site, [3, 13], n_run=20))["events"]
    assert ev["energy"][0] == ev["energy"][1]
    with pytest.raises(Exception, match="shower 20"):
        stage.run({}, _ctx(detector, site, [20], n_run=20))
    bad_level = CorsikaMuons(CorsikaMuons.Config(files=[dat], observation_level=2), detector, site)
    with pytest.raises(ConfigError, match="observation_level"):
        bad_level.run({}, _ctx(detector, site, [0]))
    h = stage.header()
    assert h["n_showers"] == [10, 10] and h["primary_codes"] == [14] and h["spectrum"]["slope"] == -2.0


def test_observation_level_altitude(dat, detector, site):
    """Muons parallel to the axis keep their place relative to the axis when the level is
    raised into the air; diverging muons spread further."""
    base = read_corsika_muons(dat)
    k = 1
    lo, hi = base.mu_offsets[k], base.mu_offsets[k + 1]
    th, ph = base.zenith[k], base.azimuth[k]
    a = np.array([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)])  # pz along -z
    par = dataclasses.replace(base, mu_p=base.mu_p.copy(), obs_heights_m=base.obs_heights_m.copy())
    par.mu_p[lo:hi] = np.linalg.norm(base.mu_p[lo:hi], axis=1)[:, None] * a[None, :]
    high = dataclasses.replace(par, obs_heights_m=np.where(np.isfinite(par.obs_heights_m), 2000.0, np.nan))
    rot = math.radians(90.0)
    a_det = np.array([-a[1], a[0], -a[2]])  # direction of motion in the detector frame
    results = {}
    for at in ("sea_surface", "altitude"):
        stage = CorsikaMuons(CorsikaMuons.Config(files=[dat], observation_level_at=at), detector, site)
        impact = np.array([stage.can.x, stage.can.y, stage.can.zmax])  # the axis crosses the top centre
        results[at] = [stage.place_muons(x, k, impact, rot) for x in
                       (par, high, dataclasses.replace(base, obs_heights_m=high.obs_heights_m))]
    ref = results["sea_surface"][0]
    assert len(ref[0]) > 0
    for got in (results["sea_surface"][1], results["altitude"][0], results["altitude"][1]):
        for x, y in zip(ref, got):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-6)
    # real (diverging) muons: with the level 2 km up, a muon entering the top of the can in
    # both cases is shifted by its extra flight minus the axis's, h d/|d_z| - h a/|a_z| (horizontal)
    (p_sea, d_sea, e_sea, *_), (p_alt, d_alt, e_alt, *_) = results["sea_surface"][2], results["altitude"][2]
    assert len(p_sea) == len(p_alt) > 5
    np.testing.assert_allclose(d_alt, d_sea, rtol=0, atol=1e-15)
    top = (np.abs(p_sea[:, 2] - stage.can.zmax) < 1e-9) & (np.abs(p_alt[:, 2] - stage.can.zmax) < 1e-9)
    assert top.sum() > 5
    shift = 2000.0 * (d_sea[top] / -d_sea[top, 2:3] - a_det / -a_det[2])
    np.testing.assert_allclose(p_alt[top] - p_sea[top], shift, atol=1e-6)
    np.testing.assert_allclose(e_alt[top], e_sea[top], rtol=1e-12)  # no loss in air, same water path
    assert np.abs(shift[:, :2]).max() > 0.1


def test_production_with_propagation(tmp_path, dat):
    from km3sim.io.hdf5 import read_stage_dir
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    local = tmp_path / "DAT000001"
    shutil.copy(dat, local)
    text = textwrap.dedent(
        f"""\
        name: corsika
        seed: 5
        output: {tmp_path / "out"}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 2, livetime_s: 1.0}}
        livetime_factor: 1
        chunk_size: 4
        cluster: {{workers: 0}}
        stages:
          - corsika_muons: {{files: ["{local}"], flux_model: H3a, zenith_sampling: isotropic}}
          - muon_propagation: {{}}
        """
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = run_production(load_production(path))
    assert result.ok, result.failed
    ev = read_stage_dir(tmp_path / "out" / "corsika_muons")["events"]
    tr = read_stage_dir(tmp_path / "out" / "muon_propagation")["mc_tracks"]
    assert len(ev) == 10 and np.all(ev["n_gen"] == 10) and np.all(np.isfinite(ev["weight_w3"]))
    assert np.sum(tr["parent_id"] == -1) == ev["n_muons"].sum() > 0
