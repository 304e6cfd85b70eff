"""Shared fixtures: a tiny detector built in code and a tiny production run once per session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY_STAGES = """\
stages:
  - atmospheric_muons: {energy_min_gev: 10, can_margin_m: 100}
  - muon_propagation: {can_margin_m: 100}
  - direct_light: {}
  - pmt_response: {k40_rate_hz: 7000}
  - trigger: {muon_min_hits: 4, muon_min_doms: 4, road_width_m: 43, dmax_m: 200, tmax_event_ns: 1000}
  - track_fit: {}
"""


def write_tiny_production(directory: Path, *, chunk_size: int = 16, workers: int = 0, name: str = "tiny",
                          output: str = "out", extra: str = "") -> Path:
    """A small but complete production YAML in ``directory`` (3-DU ORCA block, 2 runs)."""
    text = textwrap.dedent(
        f"""\
        name: {name}
        seed: 4242
        output: {directory / output}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        runs:
          - {{run_id: 7, livetime_s: 2.0}}
          - {{run_id: 9, livetime_s: 1.5}}
        livetime_factor: 1
        chunk_size: {chunk_size}
        cluster: {{workers: {workers}}}
        """
    ) + extra + TINY_STAGES
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def tiny_production(tmp_path_factory):
    """The tiny production run in-process once; returns (yaml path, RunResult)."""
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    d = tmp_path_factory.mktemp("tiny")
    path = write_tiny_production(d)
    result = run_production(load_production(path))
    assert result.ok, result.failed
    return path, result


@pytest.fixture(scope="session")
def orca7():
    from km3sim.detector.geometry import build_orca_block

    return build_orca_block(n_dus=7)


@pytest.fixture(scope="module")
def detector(orca7):
    """The 7-DU ORCA block (modules may override with their own detector)."""
    return orca7


@pytest.fixture(scope="module")
def site():
    """The default site (ORCA)."""
    from km3sim.stage import Site

    return Site()


SMALL_STAGES = """\
stages:
  - atmospheric_muons: {energy_min_gev: 10, can_margin_m: 100}
  - muon_propagation: {can_margin_m: 100}
  - direct_light: {}
  - pmt_response: {k40_rate_hz: 7000}
"""


def write_small_production(directory: Path, *, runs: str | None = None, chunk_size: int = 8, workers: int = 0,
                           name: str = "small", output: str = "out", extra: str = "",
                           stages: str = SMALL_STAGES) -> Path:
    """A production YAML that stops at the PMT response (3-DU ORCA block, 2 short runs by default):
    the cheapest chain for tests of the production machinery."""
    runs = runs if runs is not None else "runs:\n  - {run_id: 3, livetime_s: 1.0}\n  - {run_id: 5, livetime_s: 0.8}\n"
    text = textwrap.dedent(
        f"""\
        name: {name}
        seed: 777
        output: {directory / output}
        detector: {{builder: orca, n_dus: 3}}
        site: orca
        livetime_factor: 1
        chunk_size: {chunk_size}
        cluster: {{workers: {workers}}}
        """
    ) + runs + extra + stages
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path
