"""Invalid production files: clear errors naming key and line, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from km3sim.cli import main
from km3sim.errors import ConfigError
from km3sim.pipeline.config import load_production
from tests.conftest import write_tiny_production


def _line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_valid_production_loads(tmp_path):
    prod = load_production(write_tiny_production(tmp_path))
    assert [s.name for s in prod.stage_specs()][0] == "atmospheric_muons"
    assert prod.stage_specs()[3].config.k40_rate_hz == 7000


def test_unknown_top_level_key(tmp_path):
    p = write_tiny_production(tmp_path, extra="chunk_sise: 10\n")
    with pytest.raises(ConfigError) as err:
        load_production(p)
    assert f"{p}:{_line_of(p, 'chunk_sise')}" in str(err.value)
    assert "unknown key 'chunk_sise'" in str(err.value)


def test_unknown_stage_config_key(tmp_path):
    p = write_tiny_production(tmp_path)
    p.write_text(p.read_text().replace("k40_rate_hz: 7000", "k40_rate: 7000"))
    with pytest.raises(ConfigError) as err:
        load_production(p)
    msg = str(err.value)
    assert f"{p}:{_line_of(p, 'k40_rate')}" in msg and "stages[3].pmt_response.k40_rate" in msg and "unknown key" in msg


def test_wrong_type(tmp_path):
    p = write_tiny_production(tmp_path)
    p.write_text(p.read_text().replace("seed: 4242", "seed: many"))
    with pytest.raises(ConfigError) as err:
        load_production(p)
    assert f"{p}:{_line_of(p, 'seed: many')}: seed:" in str(err.value)


def test_unknown_stage_and_missing_detector_file(tmp_path):
    p = write_tiny_production(tmp_path)
    text = p.read_text().replace("{builder: orca, n_dus: 3}", "{file: no/such/detector.detx}")
    p.write_text(text.replace("- direct_light: {}", "- direct_lite: {}"))
    with pytest.raises(ConfigError) as err:
        load_production(p)
    msg = str(err.value)
    assert "unknown stage 'direct_lite'" in msg and f":{_line_of(p, 'direct_lite')}:" in msg
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"detector.file: file 'no/such/detector.detx' does not exist"):
        load_production(p)


def test_cli_invalid_yaml_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    p = write_tiny_production(tmp_path, extra="bogus: 1\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'bogus'" in err and str(p) in err
    assert not (tmp_path / "out").exists()


def test_cli_entry_point_runs(tmp_path):
    p = write_tiny_production(tmp_path, extra="bogus: 1\n")
    proc = subprocess.run([sys.executable, "-m", "km3sim.cli", "run", str(p)], capture_output=True, text=True)
    assert proc.returncode == 2 and "bogus" in proc.stderr and not (tmp_path / "out").exists()
