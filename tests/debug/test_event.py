"""Single-event re-simulation: bit-identical to the production, overrides, stop, errors, CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from km3sim.cli import main
from km3sim.debug.event import parse_overrides, resimulate_event, resolve_event_id
from km3sim.errors import ConfigError
from km3sim.io.hdf5 import read_stage_dir, read_stage_file
from km3sim.pipeline.config import load_production
from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX, plan_production


def _production_rows(path, event_id):
    """Every stage's rows of one event, read straight from the production's chunk files."""
    prod = load_production(path)
    plan = plan_production(prod, write_detector=False)
    run = event_id // EVENTS_PER_RUN_MAX
    out = {}
    for task in plan.tasks:
        ids = task.event_ids()
        if task.run_id == run and len(ids) and ids[0] <= event_id <= ids[-1]:
            tables, _ = read_stage_file(task.output)
            out[task.stage_name] = {k: t.event(event_id) for k, t in tables.items()}
    return out


@pytest.fixture(scope="module")
def chosen_events(tiny_production):
    """A triggered event with a fit, an event with light that did not trigger, and an event of
    the second run in a later chunk (chunk_size 16)."""
    path, _ = tiny_production
    out = path.parent / "out"
    trig = read_stage_dir(out / "trigger")["triggered_events"]
    mc = read_stage_dir(out / "direct_light")["mc_hits"]
    triggered = int(trig["event_id"][0])
    lit = np.setdiff1d(np.unique(mc["event_id"]), trig["event_id"])
    later = 9 * EVENTS_PER_RUN_MAX + 20
    return path, [triggered, int(lit[0]), later]


def test_resimulated_event_equals_production_rows(chosen_events):
    path, ids = chosen_events
    for event_id in ids:
        sim = resimulate_event(path, event_id // EVENTS_PER_RUN_MAX, event_id)
        expected = _production_rows(path, event_id)
        assert [s.name for s in sim.stages] == list(expected)
        for run in sim.stages:
            for name, table in run.outputs.items():
                assert table.equals(expected[run.name][name]), (event_id, run.name, name)
            assert run.comparison == "identical"
        assert sim.identical is True
    # the triggered event really went through trigger and fit
    sim = resimulate_event(path, ids[0] // EVENTS_PER_RUN_MAX, ids[0])
    assert len(sim.tables["triggered_events"]) == 1 and len(sim.tables["reco_tracks"]) >= 1


def test_event_number_or_event_id(chosen_events):
    path, ids = chosen_events
    event_id = ids[2]
    run, number = divmod(event_id, EVENTS_PER_RUN_MAX)
    assert resolve_event_id(run, number) == resolve_event_id(run, event_id) == event_id
    a = resimulate_event(path, run, number, compare=False)
    assert a.event_id == event_id and a.chunk == number // 16
    with pytest.raises(ConfigError, match="belongs to run 9"):
        resolve_event_id(7, event_id)


def test_override_changes_the_stage_and_later_ones_only(chosen_events):
    path, ids = chosen_events
    event_id = ids[0]
    sim = resimulate_event(path, 7, event_id, overrides=parse_overrides(_no_trigger(path)))
    by = {s.name: s for s in sim.stages}
    assert all(by[n].comparison == "identical" for n in ("atmospheric_muons", "muon_propagation", "direct_light", "pmt_response"))
    assert by["trigger"].overridden and len(by["trigger"].outputs["triggered_events"]) == 0
    assert by["trigger"].comparison.startswith("differs") and "expected" in by["trigger"].comparison
    assert len(by["track_fit"].outputs["reco_tracks"]) == 0
    assert sim.identical is True  # the stages before the override are identical


def _no_trigger(path) -> list[str]:
    """--set options that keep any event from triggering: every trigger off (Jpp-style nested
    config), or an unreachable 3DMuon threshold (the older flat config)."""
    cfg = load_production(path).stage_specs()[4].config.model_dump()
    if "trigger3DMuon" in cfg:
        return [f"trigger.{t}.enabled=false" for t in ("trigger3DMuon", "trigger3DShower", "triggerMXShower") if t in cfg]
    return ["trigger.muon_min_hits=60"]


def test_stop_after_and_hook(chosen_events):
    path, ids = chosen_events
    seen = []
    sim = resimulate_event(path, 7, ids[0], stop_after="light", hook=lambda res, run, stage, ctx: seen.append(
        (run.name, stage.name, int(ctx.event_ids[0]), sorted(res.tables))))
    assert [s.name for s in sim.stages] == ["atmospheric_muons", "muon_propagation", "direct_light"]
    assert sim.stopped_after == "direct_light"
    assert "mc_hits" in sim.tables and "hits" not in sim.tables
    assert [s[0] for s in seen] == [s.name for s in sim.stages] and seen[-1][2] == ids[0]
    assert "mc_hits" in seen[-1][3]


def test_production_not_run_yet_gives_the_same_rows(chosen_events, tmp_path):
    # a copy of the production with another output directory that was never run: the event is
    # simulated from the YAML alone (detector built and written as the planner would)
    path, ids = chosen_events
    copy = tmp_path / "copy.yaml"
    copy.write_text(path.read_text().replace(str(path.parent / "out"), str(tmp_path / "never_run")))
    sim = resimulate_event(copy, 7, ids[0])
    assert sim.identical is None and all(s.comparison == "no production file" for s in sim.stages)
    expected = _production_rows(path, ids[0])
    for run in sim.stages:
        for name, table in run.outputs.items():
            assert table.equals(expected[run.name][name]), (run.name, name)
    assert not (tmp_path / "never_run").exists()


def test_stale_production_file_is_not_compared(chosen_events, tmp_path):
    path, ids = chosen_events
    out = tmp_path / "out"
    shutil.copytree(path.parent / "out", out)
    copy = tmp_path / "p.yaml"
    # another K40 rate: the detector-response files of the copy are stale for this config
    copy.write_text(path.read_text().replace(str(path.parent / "out"), str(out)).replace("k40_rate_hz: 7000", "k40_rate_hz: 9000"))
    sim = resimulate_event(copy, 7, ids[0])
    by = {s.name: s for s in sim.stages}
    assert by["direct_light"].comparison == "identical"
    assert by["pmt_response"].comparison.startswith("stale production file")


def test_errors_name_what_is_wrong(chosen_events):
    path, ids = chosen_events
    with pytest.raises(ConfigError, match="run 8 is not in production"):
        resimulate_event(path, 8, 0)
    with pytest.raises(ConfigError, match="not in run 7, which has"):
        resimulate_event(path, 7, 10_000)
    with pytest.raises(ConfigError, match="override for stage 'trigga'"):
        resimulate_event(path, 7, 0, overrides={"trigga": {"x": 1}})
    with pytest.raises(ConfigError, match="override of stage 'trigger'"):
        resimulate_event(path, 7, 0, overrides={"trigger": {"no_such_key": 1}})
    with pytest.raises(ConfigError, match="no stage or role 'nope'"):
        resimulate_event(path, 7, 0, stop_after="nope")
    with pytest.raises(ConfigError, match="STAGE.KEY=VALUE"):
        parse_overrides(["muon_min_hits=3"])
    assert parse_overrides(["trigger.muon_min_hits=3", "pmt_response.k40_preset=arca"]) == {
        "trigger": {"muon_min_hits": 3}, "pmt_response": {"k40_preset": "arca"}}


def test_cli_prints_every_stage_and_the_verdict(chosen_events, capsys, tmp_path):
    path, ids = chosen_events
    png = tmp_path / "ev.png"
    assert main(["event", str(path), "--run", "7", "--event", str(ids[0]), "--display", str(png)]) == 0
    out = capsys.readouterr().out
    for text in ("[1] atmospheric_muons", "primary: pdgid 81", "photo-electrons on", "signal (on",
                 "L1s:", "triggered by ", "rec_type ", "vs truth: angle", "bit-identical to the production"):
        assert text in out, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an event that did not trigger: the printout says how far it was from triggering
    assert main(["event", str(path), "--run", "7", "--event", str(ids[1]), "--stop-after", "trigger"]) == 0
    out = capsys.readouterr().out
    assert "not triggered: 3DMuon needs 4 hits on 4 DOMs" in out and "track_fit" not in out
    # user errors exit with 2 and a message
    assert main(["event", str(path), "--run", "8", "--event", "0"]) == 2
    assert "run 8 is not in production" in capsys.readouterr().err


def test_break_before_gives_the_debugger_the_stage_and_its_inputs(chosen_events, monkeypatch):
    import pdb
    import sys

    path, ids = chosen_events
    seen = {}

    def fake_set_trace(*args, **kwargs):
        frame = sys._getframe(1)  # the frame of resimulate_event: what the developer sees
        seen.update({k: frame.f_locals[k] for k in ("stage", "inputs", "ctx")})

    monkeypatch.setattr(pdb, "set_trace", fake_set_trace)
    resimulate_event(path, 7, ids[0], break_before="trigger", stop_after="trigger", compare=False)
    assert seen["stage"].name == "trigger" and list(seen["inputs"]) == ["hits"]
    assert int(seen["ctx"].event_ids[0]) == ids[0]
