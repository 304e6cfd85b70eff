"""After a production: the catalogue, `km3sim status`, export with combined weights, the
manifest and the resource estimate."""

from __future__ import annotations

import json
import shutil
import sqlite3
import textwrap
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from km3sim import weights
from km3sim.cli import main
from km3sim.io.hdf5 import read_attrs, read_stage_dir
from km3sim.pipeline.config import load_production
from km3sim.pipeline.export import export_production, write_manifest
from km3sim.pipeline.runner import run_production
from tests.conftest import write_small_production


def _adler32(path: Path) -> str:
    return f"{zlib.adler32(path.read_bytes()) & 0xFFFFFFFF:08x}"


# ------------------------------------------------------------------------------------ catalogue
def test_catalogue_has_every_task_with_checksum_events_and_cpu(tiny_production):
    path, result = tiny_production
    out = Path(load_production(path).output)
    con = sqlite3.connect(out / "catalogue.sqlite")
    rows = {r[0]: r for r in con.execute(
        "SELECT key, status, file, checksum_adler32, size, events, cpu_time_s, table_rows FROM tasks")}
    runs = dict(con.execute("SELECT run_id, livetime_s FROM runs").fetchall())
    info = dict(con.execute("SELECT key, value FROM production").fetchall())
    con.close()
    assert set(rows) == {t.key for t in result.plan.tasks}
    assert runs == {7: 2.0, 9: 1.5} and json.loads(info["name"]) == "tiny"
    for t in result.plan.tasks:
        key, status, file, adler, size, events, cpu, table_rows = rows[t.key]
        f = Path(file)
        assert status == "done" and file == t.output
        assert adler == _adler32(f) and size == f.stat().st_size
        assert events == t.n_events and cpu > 0
        assert json.loads(table_rows) == read_attrs(f)["table_rows"]


def test_status_shows_the_catalogue(tiny_production, capsys):
    path, result = tiny_production
    assert main(["status", str(path), "--chunks"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("complete") and "incomplete" not in out
    for t in result.plan.tasks[:6]:
        assert t.key in out
    assert "cpu_h" in out and "adler32" in out


# ------------------------------------------------------------------------------------ export
def test_export_levels_of_a_single_generator_production(tiny_production, tmp_path):
    path, result = tiny_production
    prod = load_production(path)
    out = Path(prod.output)
    res = export_production(prod, directory=tmp_path, manifest=False)
    names = [f.name for f in res.files]
    assert names == [f"tiny.{s}.h5" for s in ("atmospheric_muons", "muon_propagation", "direct_light", "pmt_response",
                                              "trigger", "track_fit")]
    gen = read_stage_dir(out / "atmospheric_muons")["events"]
    hits = read_stage_dir(out / "pmt_response")["hits"]
    trig = read_stage_dir(out / "trigger")
    tracks = read_stage_dir(out / "muon_propagation")["mc_tracks"]
    with h5py.File(tmp_path / "tiny.pmt_response.h5") as f:
        ei = f["event_info"][()]
        assert f.attrs["format"] == "km3sim-export-1" and f.attrs["level"] == "pmt_response"
        # every generated event, in event_id order, numbered by group_id
        assert np.array_equal(ei["event_id"], gen["event_id"]) and np.array_equal(ei["group_id"], np.arange(len(ei)))
        # MUPAGE-like weights: 1 / (summed livetime), as km3sim.weights computes them
        assert np.allclose(ei["weight"], weights.rate_weights(gen), rtol=1e-14, atol=0)
        g = f["generators"][()]
        assert g["effective_livetime_s"][0] == pytest.approx(3.5, rel=1e-12)  # Σw/Σw² = T for equal weights
        assert g["livetime_ratio"][0] == pytest.approx(1.0, rel=1e-12)  # livetime_factor 1
        # hits: column-split with group_id and km3pipe-style _indices
        for c in hits.columns:
            assert np.array_equal(f["hits"][c][()], hits[c]), c
        gid = f["hits/group_id"][()]
        assert np.array_equal(ei["event_id"][gid], hits["event_id"])
        idx = f["hits/_indices"][()]
        assert np.array_equal(np.repeat(np.arange(len(ei)), idx["n_items"]), gid)
        assert np.array_equal(idx["index"], np.concatenate([[0], np.cumsum(idx["n_items"])[:-1]]))
        assert np.array_equal(f["mc_tracks"]["track_id"], tracks["track_id"])
        assert len(f["provenance"]) == 3 * result.summary["chunks"]  # events, mc_tracks and hits files
    with h5py.File(tmp_path / "tiny.trigger.h5") as f:
        ei = f["event_info"][()]
        te = trig["triggered_events"]
        # at the trigger level only triggered events, with the same weights as before the selection
        assert np.array_equal(ei["event_id"], te["event_id"]) and 0 < len(ei) < len(gen)
        assert np.allclose(ei["weight"], 1.0 / 3.5, rtol=1e-14)
        assert np.array_equal(f["triggered_events"]["trigger_mask"], te["trigger_mask"])
        sel = np.isin(tracks["event_id"], te["event_id"])
        assert np.array_equal(f["mc_tracks"]["energy"], tracks["energy"][sel])
        assert np.array_equal(f["snapshot_hits/time"][()], trig["snapshot_hits"]["time"])
    with h5py.File(tmp_path / "tiny.track_fit.h5") as f:
        reco = read_stage_dir(out / "track_fit")["reco_tracks"]
        assert np.array_equal(f["reco_tracks"]["likelihood"], reco["likelihood"], equal_nan=True)
        assert np.array_equal(f["event_info"]["event_id"], trig["triggered_events"]["event_id"])


def test_export_of_several_generators_weights_each_generator(tmp_path, capsys):
    """Muons with livetime factor 3 and a fixed-size neutrino sample weighted to Honda: the
    merged weights equal km3sim.weights on each generator's events (the neutrino path
    evaluates the flux itself, the export only rescales weight_w3), and the effective livetime
    of the muons is 3 x the data livetime."""
    pytest.importorskip("km3flux")
    text = textwrap.dedent(f"""\
        name: multi
        seed: 99
        output: {tmp_path / 'out'}
        detector: {{builder: orca, n_dus: 3}}
        runs:
          - {{run_id: 11, livetime_s: 0.6, start_time: 2024-03-01T12:00:00Z}}
          - {{run_id: 12, livetime_s: 0.4}}
        livetime_factor: 3
        chunk_size: 25
        cluster: {{workers: 0}}
        generators:
          mupage: {{stage: atmospheric_muons, config: {{energy_min_gev: 10, can_margin_m: 100}}}}
          numu: {{stage: neutrinos, chunk_size: 9, config: {{flavours: [14, -14], n_events: 20, energy_min_gev: 10,
                 energy_max_gev: 1000, can_margin_m: 60, reference_flux: honda}}}}
        stages:
          - muon_propagation: {{can_margin_m: 100}}
          - direct_light: {{}}
        """)
    p = tmp_path / "multi.yaml"
    p.write_text(text)
    prod = load_production(p)
    assert run_production(prod).ok
    assert main(["export", str(p), "--level", "generators", "--level", "direct_light"]) == 0
    printed = capsys.readouterr().out
    assert "mupage" in printed and "numu" in printed and "manifest" in printed
    out = tmp_path / "out"
    ev = read_stage_dir(out / "atmospheric_muons")["events"]
    nu = read_stage_dir(out / "neutrinos")["events"]
    with h5py.File(out / "export" / "multi.direct_light.h5") as f:
        ei = f["event_info"][()]
        g = f["generators"][()]
        assert [x.decode() for x in g["label"]] == ["mupage", "numu"]
        mu, nm = ei["generator"] == 0, ei["generator"] == 1
        assert np.array_equal(ei["event_id"][mu], ev["event_id"]) and np.array_equal(ei["event_id"][nm], nu["event_id"])
        assert np.all(np.diff(ei["event_id"]) > 0)
        assert np.allclose(ei["weight"][mu], 1.0 / (3 * 1.0), rtol=1e-14)
        w_nu = weights.rate_weights(nu, weights.honda_flux())
        assert np.allclose(ei["weight"][nm], w_nu, rtol=1e-12, atol=0)
        assert g["effective_livetime_s"][0] == pytest.approx(3.0, rel=1e-12)
        assert g["livetime_ratio"][0] == pytest.approx(3.0, rel=1e-12)  # 3 years simulated per year of data
        assert g["effective_livetime_s"][1] == pytest.approx(w_nu.sum() / (w_nu ** 2).sum(), rel=1e-10)
        assert g["n_gen"][1] == 40 and g["data_livetime_s"][1] == pytest.approx(1.0)
        # UTC of the events of the run with a start time: start + mc_time
        r11 = (ei["run_id"] == 11) & mu
        t = ei["timestamp"][r11] + ei["nanoseconds"][r11] * 1e-9
        assert np.allclose(t, 1709294400.0 + ei["mc_time"][r11] * 1e-9, atol=2e-6)
        assert np.all(ei["timestamp"][ei["run_id"] == 12] == 0)
    assert (out / "export" / "multi.generators.h5").is_file()


def test_manifest_lists_every_file_with_size_and_adler32(tiny_production, tmp_path):
    path, _ = tiny_production
    out = tmp_path / "copy"
    shutil.copytree(Path(load_production(path).output), out)
    doc = json.loads(write_manifest(out).read_text())
    files = {e["name"]: e for e in doc["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(files) == on_disk - {"catalogue.sqlite", "manifest.json", "manifest.tsv", "failures.jsonl"}
    for name, e in files.items():
        assert e["bytes"] == (out / name).stat().st_size and e["adler32"] == _adler32(out / name)
    tsv = (out / "manifest.tsv").read_text().splitlines()
    assert len(tsv) == len(files) and tsv[0].count("\t") == 2


# ------------------------------------------------------------------------------------ estimate
def test_estimate_reproduces_the_measured_production(tiny_production):
    """Estimating a production from its own catalogue gives back its measured CPU and storage."""
    from km3sim.pipeline.estimate import SECONDS_PER_YEAR, estimate_production, measure_throughput

    path, result = tiny_production
    prod = load_production(path)
    out = Path(prod.output)
    est = estimate_production(prod, measure_throughput(out / "catalogue.sqlite"))
    con = sqlite3.connect(out / "catalogue.sqlite")
    measured = {s: (c, b, n) for s, c, b, n in con.execute(
        "SELECT stage, SUM(cpu_time_s), SUM(size), COUNT(*) FROM tasks GROUP BY stage")}
    con.close()
    rows = {r["stage"]: r for r in est.by_stage()}
    for stage, (cpu, size, n) in measured.items():
        assert rows[stage]["cpu_core_h"] * 3600 == pytest.approx(cpu, rel=1e-9)
        assert rows[stage]["hs06_h"] == pytest.approx(10 * rows[stage]["cpu_core_h"], rel=1e-12)
        assert rows[stage]["storage_bytes"] == pytest.approx(size, rel=1e-9)
        assert rows[stage]["files"] == n
    assert rows["total"]["events"] == result.summary["generated"]
    assert est.per_year_factor == pytest.approx(SECONDS_PER_YEAR / 3.5)


@pytest.mark.slow
def test_estimate_cli_calibrates_when_nothing_was_run(tmp_path, capsys):
    p = write_small_production(tmp_path)
    assert main(["estimate", str(p), "--calibration-events", "20"]) == 0
    out = capsys.readouterr().out
    assert "per year of data" in out and "HS06-h" in out
    for stage in ("atmospheric_muons", "muon_propagation", "direct_light", "pmt_response"):
        assert stage in out
    assert not (tmp_path / "out").exists()  # the calibration ran elsewhere


def test_verify_finds_a_file_changed_behind_the_catalogues_back(tiny_production, tmp_path):
    """A file whose bytes changed but whose size and modification time did not is trusted by a
    plain re-run and recomputed with --verify (Adler-32 against the catalogue)."""
    from tests.conftest import write_tiny_production

    path, result = tiny_production
    shutil.copytree(Path(load_production(path).output), tmp_path / "out")
    prod = load_production(write_tiny_production(tmp_path))  # same production, output in the copy
    victim = sorted((tmp_path / "out" / "pmt_response").glob("*.h5"))[0]
    before = read_stage_dir(tmp_path / "out" / "pmt_response")["hits"]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the data
    victim.write_bytes(bytes(data))
    import os

    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run_production(prod).computed == 0
    again = run_production(prod, verify=True)
    assert again.ok and again.computed == 1
    assert read_stage_dir(tmp_path / "out" / "pmt_response")["hits"].equals(before)
