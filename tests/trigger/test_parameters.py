"""Trigger parameters: Jpp names, presets, the JTriggerParameters stored in real files, errors."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from km3sim.errors import ConfigError
from km3sim.stage import get_stage
from km3sim.trigger.parameters import (
    LEGACY_KEYS,
    MAX_FACTORY_LIMIT,
    TRIGGER_PRESETS,
    TriggerConfig,
    parse_overrides,
    preset,
)

km3net_testdata = pytest.importorskip("km3net_testdata")
ROOT = Path(__file__).resolve().parents[2]


def dp(name):
    return km3net_testdata.data_path(name)


# PHYSICS.md §12, written out from the table there (not from the code)
ARCA21_TABLE = {
    "TMaxLocal_ns": 25.0, "combineL1": True, "L2.numberOfHits": 2, "L2.TMaxLocal_ns": 10.0, "L2.ctMin": -1.0,
    "trigger3DMuon.numberOfHits": 5, "trigger3DMuon.numberOfModules": 5, "trigger3DMuon.roadWidth_m": 120.0,
    "trigger3DMuon.gridAngle_deg": 10.0, "trigger3DMuon.TMaxExtra_ns": 25.0,
    "trigger3DShower.numberOfHits": 5, "trigger3DShower.numberOfModules": 5, "trigger3DShower.DMax_m": 250.0,
    "triggerMXShower.numberOfHits": 8, "triggerMXShower.numberOfModules": 3, "triggerMXShower.DMax_m": 110.0,
    "trigger3DMuon.factoryLimit": 100,
}
ORCA_TABLE = {
    "TMaxLocal_ns": 25.0, "L2.numberOfHits": 2, "L2.TMaxLocal_ns": 10.0, "L2.ctMin": 0.0,
    "trigger3DMuon.numberOfHits": 4, "trigger3DMuon.numberOfModules": 4, "trigger3DMuon.roadWidth_m": 43.0,
    "trigger3DMuon.gridAngle_deg": 10.0, "trigger3DShower.numberOfHits": 3, "trigger3DShower.numberOfModules": 3,
    "trigger3DShower.DMax_m": 52.0, "triggerMXShower.numberOfHits": 8, "triggerMXShower.numberOfModules": 3,
    "triggerMXShower.DMax_m": 47.0, "TMaxEvent_ns": 1000.0,
}


@pytest.mark.parametrize("name, table", [("arca21", ARCA21_TABLE), ("orca6", ORCA_TABLE)])
def test_presets_carry_physics_md_values(name, table):
    flat = preset(name).jpp_dict()
    for key, value in table.items():
        assert flat[key] == value, key
    assert preset(name).preset == name


def test_rounded_physics_md_values():
    arca = preset("arca21")
    assert arca.trigger3DMuon.DMax_m == pytest.approx(891, abs=0.5)
    assert arca.TMaxEvent_ns == pytest.approx(4102, abs=0.5)
    assert preset("orca6").trigger3DMuon.DMax_m == pytest.approx(165, abs=0.5)
    assert TriggerConfig().model_dump(exclude={"preset"}) == arca.model_dump(exclude={"preset"})  # defaults: ARCA21


def test_presets_equal_the_parameters_stored_in_the_files():
    from km3sim.io.daq import read_trigger_parameters

    arca = read_trigger_parameters(dp("mupage/mcv8.1.mupage_tuned_100G.sirene.jterbr00013288.10.root"))
    orca = read_trigger_parameters(dp("online/events_sample.root"))
    assert TriggerConfig.from_jpp(arca).model_dump(exclude={"preset"}) == preset("arca21").model_dump(exclude={"preset"})
    assert TriggerConfig.from_jpp(orca).model_dump(exclude={"preset"}) == preset("orca6").model_dump(exclude={"preset"})
    # members the trigger does not use are decoded too (PHYSICS.md §12: high-rate veto, SN)
    assert arca["highRateVeto_Hz"] == 20000.0 and orca["highRateVeto_Hz"] == 1e6
    assert (arca["SN"]["numberOfHits"], arca["SN"]["TMaxLocal_ns"]) == (4, 25.0)
    assert (orca["SN"]["numberOfHits"], orca["SN"]["TMaxLocal_ns"]) == (4, 10.0)
    assert read_trigger_parameters(dp("online/km3net_online.root")) == orca


def test_files_without_trigger_parameters():
    from km3sim.io.daq import read_trigger_parameters

    assert read_trigger_parameters(dp("online/KM3NeT_00000267_00025291_JDAQEvent_JDAQSummaryslice.root")) is None
    assert read_trigger_parameters(dp("daq/IO_EVT.dat")) is None


def test_nested_dotted_and_deprecated_keys():
    a = TriggerConfig.model_validate({"preset": "orca6", "trigger3DMuon": {"numberOfHits": 6}, "L2.ctMin": 0.5})
    b = TriggerConfig.model_validate({"preset": "orca6", "trigger3DMuon.numberOfHits": 6, "L2": {"ctMin": 0.5}})
    assert a == b
    assert a.trigger3DMuon.numberOfHits == 6 and a.trigger3DMuon.roadWidth_m == 43.0  # rest of the preset kept
    c = TriggerConfig.model_validate({"L2Min": 3, "ctMin": 0.2})  # Jpp's deprecated top-level members
    assert (c.L2.numberOfHits, c.L2.ctMin) == (3, 0.2)
    assert preset("ORCA6", **{"trigger3DShower.DMax_m": 60.0}).trigger3DShower.DMax_m == 60.0


def test_legacy_flat_keys_still_work():
    """The keys of existing productions (tests/conftest.py) map onto the Jpp model."""
    old = {"muon_min_hits": 4, "muon_min_doms": 4, "road_width_m": 43, "dmax_m": 200, "tmax_event_ns": 1000}
    cfg = TriggerConfig.model_validate(old)
    mu = cfg.trigger3DMuon
    assert (mu.numberOfHits, mu.numberOfModules, mu.roadWidth_m, mu.DMax_m, cfg.TMaxEvent_ns) == (4, 4, 43, 200, 1000)
    assert set(LEGACY_KEYS) >= set(old)
    wide = TriggerConfig.model_validate({"l2_tmax_ns": None})  # old: all L1s feed the 3D trigger
    assert (wide.L2.TMaxLocal_ns, wide.L2.ctMin) == (wide.TMaxLocal_ns, -1.0)
    assert TriggerConfig.model_validate({"factory_limit": 0}).trigger3DMuon.factoryLimit == MAX_FACTORY_LIMIT
    assert preset("orca6", road_width_m=50.0).trigger3DMuon.roadWidth_m == 50.0


def test_production_yaml_trigger_entries_validate():
    """Every ``trigger:`` entry of the reviewed productions is still a valid config."""
    found = 0
    for path in sorted((ROOT / "productions").glob("*.yaml")):
        for stage in yaml.safe_load(path.read_text()).get("stages", []):
            if "trigger" in stage:
                get_stage("trigger").Config.model_validate(stage["trigger"] or {})
                found += 1
    assert found >= 3


@pytest.mark.parametrize(
    "data, match",
    [
        ({"road_width": 100}, "road_width"),
        ({"trigger3DMuon": {"bogus": 1}}, "bogus"),
        ({"trigger3DMuon": {"numberOfHits": 3, "numberOfModules": 4}}, "numberOfModules"),
        ({"trigger3DShower": {"numberOfHits": 5, "factoryLimit": 4}}, "factoryLimit"),
        ({"triggerMXShower": {"factoryLimit": MAX_FACTORY_LIMIT + 1}}, "factoryLimit"),
        ({"L2": {"TMaxLocal_ns": 30.0}}, "inside an L1"),
        ({"L2": {"ctMin": 1.5}}, "ctMin"),
        ({"TMaxLocal_ns": -1}, "TMaxLocal_ns"),
        ({"preset": "antares"}, "unknown trigger preset"),
        ({"muon_min_hits": 4, "trigger3DMuon": {"numberOfHits": 5}}, "contradicts"),
        ({"L2Min": 3, "L2": {"numberOfHits": 2}}, "contradicts"),
        ({"trigger3DMuon": 5}, "trigger3DMuon"),
        ({"trigger3DMuon": 5, "trigger3DMuon.numberOfHits": 4}, "mapping"),
    ],
)
def test_validation_errors_name_the_key(data, match):
    with pytest.raises(pydantic.ValidationError, match=match):
        TriggerConfig.model_validate(data)


def test_preset_function_errors():
    with pytest.raises(ConfigError, match="unknown trigger preset"):
        preset("antares")
    with pytest.raises(ConfigError, match="numberOfModules"):
        preset("orca6", **{"trigger3DMuon.numberOfModules": 9})


def test_overrides_and_jpp_view():
    cfg = preset("arca21").with_overrides(parse_overrides(["trigger3DMuon.numberOfHits=7", "combineL1=false",
                                                          "L2.ctMin = 0.3"]))
    assert (cfg.trigger3DMuon.numberOfHits, cfg.combineL1, cfg.L2.ctMin) == (7, False, 0.3)
    assert cfg.preset == "arca21"
    assert cfg.jpp_dict()["trigger3DMuon.numberOfHits"] == 7
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["trigger3DMuon.numberOfHits"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["=4"])
    with pytest.raises(pydantic.ValidationError, match="numberOfHits"):
        preset("arca21").with_overrides({"trigger3DMuon.numberOfHits": "many"})


def test_presets_are_not_mutated():
    before = repr(TRIGGER_PRESETS)
    TriggerConfig.model_validate({"preset": "arca21", "trigger3DMuon": {"numberOfHits": 9, "numberOfModules": 9}})
    assert repr(TRIGGER_PRESETS) == before
