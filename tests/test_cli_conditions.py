"""``km3sim conditions``: run conditions from real summaryslices on the command line."""

from __future__ import annotations

import pytest

from km3sim.cli import main
from km3sim.detector.conditions import RunConditions

pytest.importorskip("uproot")
km3net_testdata = pytest.importorskip("km3net_testdata")


def dp(name: str) -> str:
    return km3net_testdata.data_path(name)


def test_conditions_command_prints_and_saves(tmp_path, capsys):
    out = tmp_path / "cond.h5"
    rc = main(["conditions", dp("daq/IO_SUM.dat"), "--save", str(out), "--detector", dp("detx/detx_v4.detx")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "detector 44, run 6760" in text
    assert "median 8.18 kHz" in text  # PHYSICS.md §13: 8.2 [7.0-11.3] kHz
    assert "PMT axes of detector 44, 69 of 69 DOMs" in text
    assert text.count("cos zenith") == 6
    assert "high-rate veto" in text and "FIFO almost full" in text
    saved = RunConditions.load(out)
    assert (saved.det_id, saved.run_id, saved.n_frames) == (44, 6760, 3)


def test_conditions_command_several_files_without_detector(capsys):
    rc = main(["conditions", dp("online/summaryslices.root"), dp("online/summaryslices.root")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "frames            : 1000" in text and "nominal DOM channel layout" in text


def test_conditions_command_errors(tmp_path, capsys):
    assert main(["conditions", str(tmp_path / "nope.root")]) == 2
    assert "nope.root: no such file" in capsys.readouterr().err
    assert main(["conditions", dp("daq/IO_EVT.dat")]) == 2
    assert "no summaryslice records" in capsys.readouterr().err
