"""Stage generator_files: evt / offline / gSeaGen ROOT files -> events and mc_tracks.

Expected values are taken from the raw text of the evt files (plain string parsing here),
from uproot directly, or from the generation formulas of the file headers.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from km3sim.errors import ConfigError, StageFileError
from km3sim.generators.files import GeneratorFiles, detect_format  # importing registers the stage
from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX
from km3sim.stage import StageContext

km3net_testdata = pytest.importorskip("km3net_testdata")
data_path = km3net_testdata.data_path

MUPAGE_EVT = data_path("mupage/mcv5.0.mupage_1G.5.evt")
GSG_EVT = data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt")
GSG_AA = data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.aa.root")
RUN = 4


def _run(files, positions=None, run_id=RUN, livetime_s=100.0, **cfg):
    gen = GeneratorFiles(GeneratorFiles.Config(files=[str(f) for f in files], **cfg))
    n = gen.n_events
    pos = np.arange(n) if positions is None else np.asarray(positions)
    ctx = StageContext(seed=1, run_id=run_id, chunk=0, stage_name="generator_files",
                       event_ids=np.int64(run_id) * EVENTS_PER_RUN_MAX + pos, livetime_s=livetime_s,
                       n_events_run=n, detector=None)
    out = gen.run({}, ctx)
    return gen, out["events"], out["mc_tracks"]


def _text_events(path):
    """Per event: tag -> list of token lists, from the raw text."""
    events, cur, header = [], None, True
    for ln in Path(path).read_text().splitlines():
        if not ln.strip():
            continue
        tag, _, rest = ln.partition(":")
        tag = tag.strip()
        if header:
            header = tag != "end_event"
        elif tag == "start_event":
            cur = {}
        elif tag == "end_event":
            events.append(cur)
        else:
            cur.setdefault(tag, []).append(rest.split())
    return events


def _header_value(path, tag):
    for ln in Path(path).read_text().splitlines():
        if ln.split(":", 1)[0].strip() == tag:
            return ln.split(":", 1)[1].split()
    raise KeyError(tag)


# ----------------------------------------------------------------------------- config
def test_format_detection():
    assert detect_format(MUPAGE_EVT) == "evt"
    assert detect_format(GSG_AA) == "offline"
    assert detect_format(data_path("gseagen/gseagen.root")) == "gseagen_root"


def test_config_names_missing_and_unknown_files(tmp_path):
    with pytest.raises(ValidationError, match=r"files\[1\]: file '.*nope.evt' does not exist"):
        GeneratorFiles.Config(files=[MUPAGE_EVT, str(tmp_path / "nope.evt")])
    junk = tmp_path / "junk.dat"
    junk.write_text("hello world\n")
    with pytest.raises(ValidationError, match=r"junk.dat: unknown generator file format"):
        GeneratorFiles.Config(files=[str(junk)])
    with pytest.raises(ValidationError):
        GeneratorFiles.Config(files=[])
    with pytest.raises(ValidationError):
        GeneratorFiles.Config(files=[MUPAGE_EVT], coordinates=[1.0, 2.0])
    cfg = GeneratorFiles.Config(files=[MUPAGE_EVT], coordinates=[1, 2, 3])
    assert GeneratorFiles.input_files(cfg) == [str(Path(MUPAGE_EVT).resolve())]


def test_production_yaml_reports_the_bad_file_with_its_line(tmp_path):
    from km3sim.pipeline.config import load_production

    y = tmp_path / "p.yaml"
    y.write_text(_production_yaml(tmp_path, [str(tmp_path / "missing.evt")]))
    with pytest.raises(ConfigError, match=r"p.yaml:\d+: .*generator_files.files.*missing.evt' does not exist"):
        load_production(y)


# ------------------------------------------------------------------------------ MUPAGE
def test_mupage_evt_bundles_muons_and_livetime():
    text = _text_events(MUPAGE_EVT)
    gen, ev, tr = _run([MUPAGE_EVT])
    livetime = float(_header_value(MUPAGE_EVT, "livetime")[0])
    assert livetime == 0.0738
    assert len(ev) == len(text) == 20 == GeneratorFiles.plan_events(gen.config, None, None, 1.0, 1, RUN)
    assert np.all(ev["pdgid"] == 81) and np.all(ev["is_cc"] == -1) and np.all(np.isnan(ev["weight_w2"]))
    bundles = np.array([[float(x) for x in t["track_bundle"][0]] for t in text])
    n_in = np.array([len(t["track_in"]) for t in text])
    assert np.array_equal(ev["n_muons"], bundles[:, 0]) and np.array_equal(ev["n_muons"], n_in)
    assert np.array_equal(ev["energy"], bundles[:, 7])
    assert np.array_equal(np.column_stack([ev["pos_x"], ev["pos_y"], ev["pos_z"]]), bundles[:, 1:4])
    assert np.array_equal(np.column_stack([ev["dir_x"], ev["dir_y"], ev["dir_z"]]), bundles[:, 4:7])
    assert np.all(ev["livetime_s"] == livetime) and np.allclose(ev["weight_w3"], 1.0 / livetime, rtol=1e-15)
    assert np.all(ev["n_gen"] == 20) and np.all(ev["mc_time"] == 0) and np.all(ev["run_id"] == RUN)
    # muons: one row per track_in line, GEANT3 5 -> PDG -13, energy and time of the file
    assert len(tr) == n_in.sum() == 23
    muons = np.array([[float(x) for x in line] for t in text for line in t["track_in"]])
    assert np.all(tr["pdgid"] == -13) and np.array_equal(tr["energy"], muons[:, 7])
    assert np.array_equal(tr["time"], muons[:, 8]) and np.array_equal(tr["pos_z"], muons[:, 3])
    assert np.array_equal(tr["track_id"], np.concatenate([np.arange(k) for k in n_in]))
    assert np.all(tr["parent_id"] == -1) and np.all(tr["length"] == 0) and np.all(tr["energy_lost_in_can"] == 0)
    assert np.array_equal(np.unique(tr["event_id"]), ev["event_id"])


# ----------------------------------------------------------------------------- gSeaGen
def test_gseagen_evt_neutrinos_and_weights():
    text = _text_events(GSG_EVT)
    gen, ev, tr = _run([GSG_EVT], livetime_s=123.0)
    nu = np.array([[float(x) for x in t["neutrino"][0]] for t in text])
    w = np.array([[float(x) for x in t["weights"][0]] for t in text])
    n_gen = float(_header_value(GSG_EVT, "genvol")[4])
    assert n_gen == 1000 and np.all(ev["n_gen"] == 1000)
    assert np.array_equal(ev["pdgid"], nu[:, 12]) and np.array_equal(ev["energy"], nu[:, 7])
    assert np.array_equal(ev["bjorken_y"], nu[:, 10]) and np.array_equal(ev["pos_z"], nu[:, 3])
    assert np.all(nu[:, 13] == 2) and np.all(ev["is_cc"] == 1)  # GENIE weak CC
    assert np.array_equal(ev["weight_w2"], w[:, 1])
    assert np.allclose(ev["weight_w3"], w[:, 2] / n_gen, rtol=1e-15)
    # gSeaGen w3 = w2 x flux with the header flux 1E-5*pow(x,-2) [GeV-1 m-2 s-1 sr-1]; the
    # file rounds E, w2 and w3 to 4-5 significant digits: 3e-3 relative tolerance
    assert _header_value(GSG_EVT, "flux")[2] == "1E-5*pow(x,-2)"
    assert np.allclose(ev["weight_w3"], w[:, 1] * 1e-5 * nu[:, 7] ** -2 / n_gen, rtol=3e-3)
    assert np.all(ev["livetime_s"] == 123.0)
    # final state: every track_in line, one muon (GEANT3 6 -> 13) per nu_mu CC event
    assert len(tr) == sum(len(t["track_in"]) for t in text)
    assert np.array_equal(ev["n_muons"], np.ones(len(ev)))
    mu = tr["pdgid"] == 13
    assert np.array_equal(np.unique(tr["event_id"][mu]), ev["event_id"])


def test_neutral_current_and_genhen_weights():
    path = data_path("evt/example_numuNC.evt")
    text = _text_events(path)
    _, ev, tr = _run([path])
    assert text[0]["neutrino"][0][13] == "3" and ev["is_cc"][0] == 0  # GENIE weak NC
    assert ev["weight_w2"][0] == float(text[0]["weights"][0][1])
    assert math.isnan(ev["weight_w3"][0])  # GENHEN w3 is not w2 x flux
    assert ev["n_gen"][0] == 5000 and len(tr) == 2


def test_same_sample_from_evt_and_aanet_root():
    _, ev_e, tr_e = _run([GSG_EVT])
    _, ev_r, tr_r = _run([GSG_AA])
    assert len(ev_e) == len(ev_r) == 82 and len(tr_e) == len(tr_r)
    for c in ("pdgid", "is_cc", "n_gen", "n_muons", "event_id"):
        assert np.array_equal(ev_e[c], ev_r[c]), c
    for c, tol in (("energy", 5e-4), ("weight_w2", 5e-4), ("weight_w3", 5e-4)):
        assert np.allclose(ev_e[c], ev_r[c], rtol=tol), c
    for c in ("pos_x", "pos_y", "pos_z"):
        assert np.allclose(ev_e[c], ev_r[c], atol=1e-3 + 1e-9), c
    assert np.array_equal(tr_e["pdgid"], tr_r["pdgid"]) and np.array_equal(tr_e["track_id"], tr_r["track_id"])
    assert np.allclose(tr_e["energy"], tr_r["energy"], rtol=5e-4, atol=1e-9)


def test_gseagen_native_root_weights():
    uproot = pytest.importorskip("uproot")
    path = data_path("gseagen/gseagen.root")
    f = uproot.open(path)
    ntot = f["Header"]["NTot"].array(library="np")[0]
    raw = f["Events"].arrays(["WGen", "WEvt", "E_nu", "InterId", "NTracks"], library="np")
    _, ev, tr = _run([path])
    assert np.all(ev["n_gen"] == ntot) and np.array_equal(ev["weight_w2"], raw["WGen"])
    assert np.allclose(ev["weight_w3"], raw["WEvt"] / ntot, rtol=1e-15)
    # WEvt = WGen x 1e-5 E^-2 (the header flux), to double precision
    assert np.allclose(raw["WEvt"], raw["WGen"] * 1e-5 * raw["E_nu"] ** -2, rtol=1e-9)
    assert np.array_equal(ev["is_cc"], (raw["InterId"] == 2).astype(int)) and len(tr) == raw["NTracks"].sum()


def test_cosmic_primaries():
    # gSeaGen in CORSIKA mode (aanet): proton primaries, the muons at the can
    path = data_path("gseagen/DAT000001.gSeaGen.1.aa.root")
    gen, ev, tr = _run([path])
    assert gen.samples[0].kind == "cosmic" and np.all(ev["n_gen"] == 10) and np.all(ev["pdgid"] == 2212)
    assert np.all(np.abs(tr["pdgid"]) == 13)
    assert np.array_equal(ev["n_muons"], np.bincount(tr["event_id"] - ev["event_id"][0], minlength=len(ev)))
    # Corant 4.2 evt: primary code 14 (CORSIKA proton), position at the can from center_on_can
    path = data_path("evt/example_corant_propa.evt")
    text = _text_events(path)[0]
    _, ev, tr = _run([path])
    assert ev["pdgid"][0] == 2212 and ev["energy"][0] == float(text["track_primary"][0][7])
    assert ev["pos_z"][0] == float(text["center_on_can"][0][3]) == 922.0
    assert len(tr) == len(text["track_in"]) == ev["n_muons"][0] == 3 and math.isnan(ev["weight_w3"][0])


def test_mupage_root_livetime():
    path = data_path("mupage/mcv8.1.mupage_tuned_100G.sirene.jterbr00013288.10.root")
    _, ev, tr = _run([path])
    assert np.all(ev["livetime_s"] == 1790.0) and np.allclose(ev["weight_w3"], 1 / 1790.0)
    assert np.all(ev["n_gen"] == 1_000_000) and np.all(tr["pdgid"] == 13)


# ---------------------------------------------------------------- runs, chunks, several files
def test_chunks_and_several_files_give_the_same_events():
    files = [MUPAGE_EVT, GSG_EVT]
    gen, ev, tr = _run(files)
    assert gen.n_events == 102
    assert np.all(ev["pdgid"][:20] == 81) and np.all(ev["pdgid"][20:] == 14)
    assert np.all(ev["n_gen"][:20] == 20) and np.all(ev["n_gen"][20:] == 1000)
    parts = [_run(files, positions=np.arange(a, b)) for a, b in ((0, 7), (7, 21), (21, 102))]
    for name, whole in (("events", ev), ("mc_tracks", tr)):
        k = 1 if name == "events" else 2
        joined = {c: np.concatenate([p[k][c] for p in parts]) for c in whole.columns}
        for c in whole.columns:
            assert np.array_equal(joined[c], whole[c], equal_nan=True), (name, c)
    # event 20 of the run is the first event of the second file
    _, one, _ = _run(files, positions=[20])
    first = _text_events(GSG_EVT)[0]
    assert one["energy"][0] == float(first["neutrino"][0][7])
    with pytest.raises(Exception, match="files hold 102"):
        _run(files, positions=[102])


def test_coordinate_offset():
    _, ev0, tr0 = _run([MUPAGE_EVT])
    _, ev1, tr1 = _run([MUPAGE_EVT], coordinates=[10.0, -20.0, 5.5])
    for t0, t1 in ((ev0, ev1), (tr0, tr1)):
        assert np.allclose(t1["pos_x"] - t0["pos_x"], 10.0) and np.allclose(t1["pos_y"] - t0["pos_y"], -20.0)
        assert np.allclose(t1["pos_z"] - t0["pos_z"], 5.5) and np.array_equal(t1["dir_z"], t0["dir_z"])


def test_header_keeps_file_headers():
    gen, _, _ = _run([MUPAGE_EVT, GSG_EVT])
    h = json.loads(json.dumps(gen.header()))
    assert [f["program"] for f in h["files"]] == ["MUPAGE", "gSeaGen"]
    assert h["files"][0]["header"]["livetime"].split() == _header_value(MUPAGE_EVT, "livetime")
    assert h["files"][1]["header"]["simul"][0].startswith("gSeaGen")
    assert h["n_gen"] == {"muon": 20, "neutrino": 1000} and h["livetime_s"] == {"muon": 0.0738}


# ----------------------------------------------------------------------------- bad files
def _corrupt(tmp_path, event_index):
    """Copy of the gSeaGen evt file with a non-numeric value in a track_in line of one event;
    returns (path, line number of the bad line)."""
    lines = Path(GSG_EVT).read_text().splitlines(keepends=True)
    k, bad_line = -1, None
    for i, ln in enumerate(lines):
        if ln.startswith("start_event:"):
            k += 1
        if k == event_index and ln.startswith("track_in:"):
            lines[i] = ln.replace("track_in:", "track_in: ", 1).replace(" 0.000000 ", " zero ", 1)
            bad_line = i + 1
            break
    p = tmp_path / "bad.evt"
    p.write_text("".join(lines))
    return p, bad_line


def test_bad_value_fails_the_chunk_that_holds_it(tmp_path):
    path, line = _corrupt(tmp_path, 5)
    gen, ev, _ = _run([path], positions=np.arange(0, 5))  # the index only checks the structure
    assert gen.n_events == 82 and len(ev) == 5
    with pytest.raises(StageFileError, match=rf"bad.evt, line {line}: 'track_in:' has a non-numeric value 'zero'"):
        _run([path], positions=np.arange(0, 10))


def test_truncated_file_fails_at_planning(tmp_path):
    text = Path(GSG_EVT).read_text()
    p = tmp_path / "cut.evt"
    p.write_text(text[: len(text) // 2])
    cfg = GeneratorFiles.Config(files=[str(p)])  # the first line is fine
    with pytest.raises(StageFileError, match=r"cut.evt: truncated file: event \d+ \(line \d+\) has no 'end_event:'"):
        GeneratorFiles.plan_events(cfg, None, None, 1.0, 1, 1)


# ------------------------------------------------------------------------- production
def _production_yaml(directory: Path, files: list[str], chunk_size: int = 8) -> str:
    file_list = ", ".join(json.dumps(f) for f in files)
    return textwrap.dedent(
        f"""\
        name: generator_files_test
        seed: 77
        output: {directory / 'out'}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 3, livetime_s: 1.0}}
          - {{run_id: 5, livetime_s: 1.0}}
        livetime_factor: 1
        chunk_size: {chunk_size}
        cluster: {{workers: 0}}
        stages:
          - generator_files: {{files: [{file_list}]}}
          - muon_propagation: {{can_margin_m: 100}}
          - direct_light: {{}}
          - pmt_response: {{k40_rate_hz: 7000}}
          - trigger: {{muon_min_hits: 4, muon_min_doms: 4, road_width_m: 43, dmax_m: 200, tmax_event_ns: 1000}}
          - track_fit: {{}}
        """
    )


def test_production_runs_the_chain_on_an_evt_file(tmp_path):
    from km3sim.io.hdf5 import read_attrs, read_stage_dir
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    y = tmp_path / "p.yaml"
    y.write_text(_production_yaml(tmp_path, [MUPAGE_EVT]))
    result = run_production(load_production(y))
    assert result.ok, result.failed
    assert result.plan.n_events_per_run == {3: 20, 5: 20}
    out = tmp_path / "out"
    gen = read_stage_dir(out / "generator_files")
    assert len(gen["events"]) == 40 and len(gen["mc_tracks"]) == 46
    assert set(np.unique(gen["events"]["run_id"])) == {3, 5}
    prop = read_stage_dir(out / "muon_propagation")["mc_tracks"]
    prim = prop["parent_id"] == -1
    assert prim.sum() == 46 and np.all(np.abs(prop["pdgid"][prim]) == 13)
    assert len(list((out / "track_fit").glob("*.h5"))) == 6  # 3 chunks per run
    a = read_attrs(next((out / "generator_files").glob("*.h5")))
    assert a["header"]["files"][0]["header"]["livetime"].split()[0] == "0.0738"


def test_production_with_a_bad_file_writes_no_partial_output(tmp_path):
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    path, line = _corrupt(tmp_path, 5)
    y = tmp_path / "p.yaml"
    y.write_text(_production_yaml(tmp_path, [str(path)], chunk_size=50).replace(
        "  - {run_id: 5, livetime_s: 1.0}\n", ""))
    result = run_production(load_production(y))
    assert not result.ok
    errors = [f["error"] for f in result.failed]
    assert any(f"line {line}" in e and "non-numeric" in e for e in errors), errors
    out = tmp_path / "out" / "generator_files"
    assert not (out / "run00000003_chunk00000.h5").exists()  # the chunk holding event 5
    assert (out / "run00000003_chunk00001.h5").exists()  # events 50-81 are fine
