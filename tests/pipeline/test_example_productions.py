"""Every production YAML shipped in productions/ validates and plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from km3sim.pipeline.config import load_production
from km3sim.pipeline.plan import plan_production

PRODUCTIONS = sorted((Path(__file__).resolve().parents[2] / "productions").glob("*.yaml"))


def test_there_are_example_productions():
    names = {p.stem for p in PRODUCTIONS}
    assert {"quickstart", "neutrinos", "air_showers"} <= names


@pytest.mark.parametrize("path", PRODUCTIONS, ids=[p.stem for p in PRODUCTIONS])
def test_example_production_plans(path, tmp_path):
    prod = load_production(path, overrides={"output": str(tmp_path / "out")})
    plan = plan_production(prod)
    assert plan.tasks, f"{path.name}: no tasks planned"
    # every chunk of every generator goes through the generator and all processing stages
    for unit in plan.units():
        assert len(plan.chunk_tasks(unit)) == 1 + len(prod.processing_specs())
    assert all(n > 0 for n in plan.n_events_per_run.values())
