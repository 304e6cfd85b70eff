"""km3sim.open: productions, stage directories and files; weights; pandas; the example script."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import km3sim
from km3sim.errors import Km3simError, StageFileError
from km3sim.io.hdf5 import read_stage_dir, read_stage_file


def test_open_production_yaml_and_output_dir(tiny_production):
    path, _ = tiny_production
    out = path.parent / "out"
    for ds in (km3sim.open(path), km3sim.open(out)):
        assert ds.kind == "production"
        assert [s.role for s in ds.stages] == ["generate", "propagate", "light", "detect", "trigger", "reconstruct"]
        assert {"events", "mc_tracks", "mc_hits", "hits", "triggered_events", "snapshot_hits", "reco_tracks"} <= set(ds.tables)
        # tables are the concatenation of all chunk files, in run/chunk order
        for name, stage in (("triggered_events", "trigger"), ("reco_tracks", "track_fit")):
            assert ds[name].equals(read_stage_dir(out / stage)[name])
        # mc_tracks comes from the last stage writing it (the propagation), unless asked
        assert ds["mc_tracks"].equals(read_stage_dir(out / "muon_propagation")["mc_tracks"])
        assert ds.table("mc_tracks", stage="generate").equals(read_stage_dir(out / "atmospheric_muons")["mc_tracks"])
        assert ds.run_ids == [7, 9]
        assert ds.livetime_s == pytest.approx(3.5)  # 2.0 + 1.5 s, livetime_factor 1


def test_weights_are_rates(tiny_production):
    path, _ = tiny_production
    ds = km3sim.open(path)
    events = ds.table("events", weights=True)
    # MUPAGE-like sample: every event stands for 1 / (total livetime) [1/s]
    assert np.allclose(events["weight"], 1.0 / 3.5)
    trig = ds.table("triggered_events", weights=True)
    assert trig["weight"].sum() == pytest.approx(len(trig) / 3.5)
    with pytest.raises(Km3simError, match="not in the 'events' table"):
        ds.event_weights([123])  # an event that does not exist


def test_stage_dir_file_and_pandas(tiny_production):
    path, _ = tiny_production
    f = sorted((path.parent / "out" / "trigger").glob("run*.h5"))[0]
    one = km3sim.open(f)
    assert one.kind == "stage_file" and one.tables == ["triggered_events", "snapshot_hits"]
    assert one["snapshot_hits"].equals(read_stage_file(f, ["snapshot_hits"])[0]["snapshot_hits"])
    d = km3sim.open(f.parent)
    assert d.kind == "stage_dir" and len(d.stages[0].files) == 12
    df = km3sim.open(path).table("reco_tracks", library="pandas", columns=["rec_type", "dir_z"])
    assert list(df.columns) == ["event_id", "rec_type", "dir_z"]
    assert len(df) == len(read_stage_dir(path.parent / "out" / "track_fit")["reco_tracks"])
    assert km3sim.open(path, stage="trigger").tables == ["triggered_events", "snapshot_hits"]
    ev = km3sim.open(path).event(int(d["triggered_events"]["event_id"][0]))
    assert len(ev["triggered_events"]) == 1 and len(ev["events"]) == 1


def test_errors(tmp_path, tiny_production):
    with pytest.raises(StageFileError, match="no such file"):
        km3sim.open(tmp_path / "missing")
    with pytest.raises(StageFileError, match="neither a production YAML"):
        km3sim.open(tmp_path)
    path, _ = tiny_production
    with pytest.raises(KeyError, match="no table 'nope'"):
        km3sim.open(path)["nope"]
    with pytest.raises(StageFileError, match="no stage 'nope'"):
        km3sim.open(path, stage="nope")
    not_run = tmp_path / "p.yaml"
    not_run.write_text(path.read_text().replace(str(path.parent / "out"), str(tmp_path / "nothing")))
    with pytest.raises(StageFileError, match="run `km3sim run"):
        km3sim.open(not_run)


def test_example_script_makes_a_plot(tiny_production, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    path, _ = tiny_production
    script = Path(__file__).resolve().parents[1] / "examples" / "plot_reco_zenith.py"
    out = tmp_path / "zenith.png"
    monkeypatch.setattr(sys, "argv", [str(script), str(path), str(out)])
    runpy.run_path(str(script), run_name="__main__")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "track fits" in capsys.readouterr().out
