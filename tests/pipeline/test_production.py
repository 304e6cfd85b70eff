"""End-to-end production: determinism across workers and chunk sizes, resuming, provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from km3sim.io.hdf5 import read_attrs, read_stage_dir
from km3sim.pipeline.config import load_production
from km3sim.pipeline.runner import run_production
from km3sim.pipeline.status import production_status
from tests.conftest import write_tiny_production

STAGE_NAMES = ["atmospheric_muons", "muon_propagation", "direct_light", "pmt_response", "trigger", "track_fit"]


def _all_tables(output: Path) -> dict:
    out = {}
    for stage in STAGE_NAMES:
        for name, table in read_stage_dir(output / stage).items():
            out[(stage, name)] = table
    return out


def test_tiny_production_runs_every_stage(tiny_production):
    path, result = tiny_production
    prod = load_production(path)
    out = Path(prod.output)
    s = result.summary
    assert s["generated"] == sum(result.plan.n_events_per_run.values()) > 20
    assert 0 < s["triggered"] <= s["generated"]
    assert 0 < s["reconstructed"] <= s["triggered"]
    # one HDF5 file per stage per chunk
    n_chunks = len([t for t in result.plan.tasks if t.stage_name == "atmospheric_muons"])
    for stage in STAGE_NAMES:
        assert len(list((out / stage).glob("*.h5"))) == n_chunks
    tables = _all_tables(out)
    ev = tables[("atmospheric_muons", "events")]
    assert len(np.unique(ev["event_id"])) == len(ev)  # event_id unique in the production
    assert set(np.unique(ev["run_id"])) == {7, 9}
    assert np.all(tables[("pmt_response", "hits")]["origin"] >= -1)
    # provenance
    a = read_attrs(next((out / "trigger").glob("*.h5")))
    assert a["stage"] == "trigger" and a["seed"] == 4242 and len(a["parents"]) == 1
    assert a["parents"][0]["table"] == "hits" and "config" in a and a["config_hash"]


@pytest.mark.slow
def test_same_events_for_any_workers_and_chunk_size(tiny_production, tmp_path):
    """1 and 2 dask workers, chunk sizes 16 and 5: bit-identical event data."""
    path, _ = tiny_production
    reference = _all_tables(Path(load_production(path).output))
    for workers, chunk in ((1, 16), (2, 5)):
        d = tmp_path / f"w{workers}c{chunk}"
        d.mkdir()
        p = write_tiny_production(d, chunk_size=chunk, workers=workers)
        result = run_production(load_production(p))
        assert result.ok, result.failed
        other = _all_tables(Path(load_production(p).output))
        assert other.keys() == reference.keys()
        for key, table in reference.items():
            assert other[key].equals(table), key


def test_rerun_recomputes_nothing(tiny_production):
    path, _ = tiny_production
    prod = load_production(path)
    files = sorted(Path(prod.output).rglob("*.h5"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    result = run_production(prod)
    assert result.computed == 0 and result.skipped == len(result.plan.tasks) and result.ok
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert all(r["done"] == r["chunks"] for r in production_status(prod))


def test_changed_trigger_redoes_only_trigger_and_later(tmp_path):
    p = write_tiny_production(tmp_path, chunk_size=40)
    prod = load_production(p)
    first = run_production(prod)
    assert first.ok
    text = p.read_text().replace("tmax_event_ns: 1000", "tmax_event_ns: 1500")
    p.write_text(text)
    second = run_production(load_production(p))
    n_chunks = len([t for t in second.plan.tasks if t.stage_name == "trigger"])
    assert second.computed == 2 * n_chunks  # trigger + track_fit
    assert second.skipped == 4 * n_chunks


def test_corrupt_or_partial_output_is_redone(tmp_path):
    p = write_tiny_production(tmp_path, chunk_size=40)
    prod = load_production(p)
    assert run_production(prod).ok
    out = Path(prod.output)
    before = _all_tables(out)
    victim = sorted((out / "direct_light").glob("*.h5"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # a truncated file
    rows = {r["stage"]: r for r in production_status(prod)}
    assert rows["direct_light"]["stale"] == 1
    result = run_production(prod)
    assert result.ok and result.computed >= 1
    after = _all_tables(out)
    for key in before:
        assert after[key].equals(before[key]), key


def test_failure_is_recorded_and_dependent_tasks_not_run(tmp_path, monkeypatch):
    from km3sim.pipeline import runner

    p = write_tiny_production(tmp_path, chunk_size=1000)
    prod = load_production(p)
    real = runner.execute_task

    def broken(task, *deps):
        if task.stage_name == "direct_light":
            raise RuntimeError("simulated crash")
        return real(task, *deps)

    monkeypatch.setattr(runner, "execute_task", broken)
    result = run_production(prod)
    assert not result.ok
    failed = {f["task"] for f in result.failed}
    assert any(k.startswith("direct_light") for k in failed) and any(k.startswith("track_fit") for k in failed)
    assert "simulated crash" in (Path(prod.output) / "failures.jsonl").read_text()
    assert not list((Path(prod.output)).glob("pmt_response/*.h5"))
    assert not list(Path(prod.output).rglob("*.tmp"))


# The external-scheduler path (`--scheduler ADDRESS`) is tested with real `dask scheduler` and
# `dask worker` processes in test_dask_cluster.py.
