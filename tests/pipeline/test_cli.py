"""The km3sim command line: detector info, status, stages, and a production on a real detector file."""

from __future__ import annotations


import pytest

from km3sim.cli import main
from km3sim.io.hdf5 import read_stage_dir
from tests.conftest import write_tiny_production

km3net_testdata = pytest.importorskip("km3net_testdata")
ORCA6 = km3net_testdata.data_path("detx/D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx")


def test_detector_info_on_real_file(capsys):
    assert main(["detector", "info", ORCA6]) == 0
    out = capsys.readouterr().out
    assert "DUs               : 6" in out and "DOMs              : 108" in out and "PMTs              : 3348" in out
    assert "vertical spacing  : 9.52 m" in out


def test_detector_info_missing_file(capsys, tmp_path):
    assert main(["detector", "info", str(tmp_path / "nope.detx")]) == 2
    assert "nope.detx" in capsys.readouterr().err


def test_stages_lists_every_stage(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    for name in ("atmospheric_muons", "muon_propagation", "direct_light", "pmt_response", "trigger", "track_fit"):
        assert name in out


def test_run_then_status_on_real_detector(tmp_path, capsys):
    p = write_tiny_production(tmp_path, chunk_size=200)
    p.write_text(p.read_text().replace("{builder: orca, n_dus: 3}", f"{{file: {ORCA6}}}"))
    assert main(["status", str(p)]) == 0
    assert "incomplete" in capsys.readouterr().out
    assert main(["run", str(p), "--workers", "0", "--output", str(tmp_path / "elsewhere")]) == 0
    out = capsys.readouterr().out
    assert "events generated" in out and str(tmp_path / "elsewhere") in out
    assert not (tmp_path / "out").exists()
    assert main(["status", str(p), "--output", str(tmp_path / "elsewhere")]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("complete") and "incomplete" not in out
    hits = read_stage_dir(tmp_path / "elsewhere" / "pmt_response")["hits"]
    # hits carry the real detector's DOM ids
    from km3sim.io.detx import read_detector

    assert set(hits["dom_id"]) <= set(read_detector(ORCA6).dom_ids)
    ev = read_stage_dir(tmp_path / "elsewhere" / "atmospheric_muons")["events"]
    # the can follows the real detector (centred near x=458, y=575, not at the origin)
    assert abs(ev["pos_x"].mean() - 458) < 150 and abs(ev["pos_y"].mean() - 575) < 150
