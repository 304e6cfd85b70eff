"""Trigger parameters with Jpp's names and units (``JTRIGGER::JTriggerParameters``).

The model mirrors the object Jpp stores in every DAQ file and triggered MC file (PHYSICS.md
§12; :func:`km3sim.io.daq.read_trigger_parameters` reads it): the same member names, units in
the name suffix, nested per trigger::

    TMaxLocal_ns: 25          # L1: hits of one DOM within this window
    combineL1: true           # one L1 per burst of light on a DOM
    L2: {numberOfHits: 2, TMaxLocal_ns: 10, ctMin: -1}   # input of the 3D triggers
    TMaxEvent_ns: 4102.13     # snapshot: triggered hits +- this
    trigger3DMuon:   {enabled: true, numberOfHits: 5, numberOfModules: 5, DMax_m: 891.1,
                      roadWidth_m: 120, gridAngle_deg: 10, TMaxExtra_ns: 25, factoryLimit: 100}
    trigger3DShower: {enabled: true, numberOfHits: 5, numberOfModules: 5, DMax_m: 250,
                      TMaxExtra_ns: 25, factoryLimit: 100}
    triggerMXShower: {enabled: true, numberOfHits: 8, numberOfModules: 3, DMax_m: 110,
                      TMaxExtra_ns: 25, factoryLimit: 100}

Also accepted on input (and folded into the model above):

* ``preset: arca21 | orca6`` — start from a preset; the other keys override it;
* dotted keys, ``trigger3DMuon.numberOfHits: 4`` (what ``km3sim trigger --set`` passes);
* Jpp's deprecated top-level ``L2Min`` and ``ctMin`` (= ``L2.numberOfHits``, ``L2.ctMin``);
* the flat keys of km3sim < 0.x (``tmax_local_ns``, ``muon_min_hits``, ``road_width_m``, ...,
  see :data:`LEGACY_KEYS`), so old production files keep working.

One parameter is km3sim's own: ``L1Min`` (distinct PMTs of an L1; Jpp fixes it at 2).
Parameters of Jpp's object that the trigger does not use (``highRateVeto_Hz``, ``SN``, ``NB``,
``triggerNB``, ``numberOfBins``, the ``write*`` prescalers) are dropped by
:meth:`TriggerConfig.from_jpp` (the high-rate veto acts in the detector simulation here).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from km3sim.errors import ConfigError
from km3sim.stage import StageConfig

__all__ = [
    "L2Parameters",
    "Trigger3DMuonParameters",
    "Trigger3DShowerParameters",
    "TriggerMXShowerParameters",
    "TriggerConfig",
    "TRIGGER_PRESETS",
    "LEGACY_KEYS",
    "preset",
    "parse_overrides",
]


#: Largest accepted ``factoryLimit`` (the clustering keeps an n x n matrix of that size).
MAX_FACTORY_LIMIT = 5000


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class L2Parameters(_Parameters):
    """Jpp ``JL2Parameters``: the L2 coincidence that feeds the 3D triggers."""

    numberOfHits: int = Field(2, ge=2, le=31, description="minimal number of L0 hits (distinct PMTs)")
    TMaxLocal_ns: float = Field(10.0, gt=0, description="maximal time difference between the L0 hits [ns]")
    ctMin: float = Field(-1.0, ge=-1, le=1, description="minimal cosine of the angle between the PMT axes (-1: no cut)")


class _EventTrigger(_Parameters):
    enabled: bool = Field(True, description="enabled status of the trigger")
    numberOfHits: int = Field(5, ge=2, description="minimal number of hits to trigger an event")
    numberOfModules: int = Field(5, ge=1, description="minimal number of modules (DOMs) to trigger an event")
    DMax_m: float = Field(250.0, gt=0, description="maximal distance between DOMs [m]")
    TMaxExtra_ns: float = Field(25.0, ge=0, description="maximal extra time [ns]")
    factoryLimit: int = Field(100, ge=2, le=MAX_FACTORY_LIMIT,
                              description="above this many hits in the causal window, trigger without the trigger logic")

    @model_validator(mode="after")
    def _consistent(self):
        if self.numberOfModules > self.numberOfHits:
            raise ValueError(f"numberOfModules ({self.numberOfModules}) > numberOfHits ({self.numberOfHits})")
        if self.factoryLimit < self.numberOfHits:
            raise ValueError(f"factoryLimit ({self.factoryLimit}) < numberOfHits ({self.numberOfHits})")
        return self


class Trigger3DMuonParameters(_EventTrigger):
    """Jpp ``JTrigger3DMuon_t::JParameters``: L2 hits compatible with one straight muon."""

    numberOfHits: int = Field(5, ge=2, description="minimal number of L2 hits")
    DMax_m: float = Field(891.0955456969809, gt=0, description="maximal distance between DOMs [m]")
    roadWidth_m: float = Field(120.0, gt=0, description="maximal transverse distance between two hits seen along the muon [m]")
    gridAngle_deg: float = Field(10.0, gt=0, le=90, description="spacing of the grid of muon directions [deg]")


class Trigger3DShowerParameters(_EventTrigger):
    """Jpp ``JTrigger3DShower_t::JParameters``: L2 hits compatible with one point source."""

    numberOfHits: int = Field(5, ge=2, description="minimal number of L2 hits")
    DMax_m: float = Field(250.0, gt=0, description="maximal distance between DOMs [m]")


class TriggerMXShowerParameters(_EventTrigger):
    """Jpp ``JTriggerMXShower_t::JParameters``: an L2 seed plus L0 hits around it from one point."""

    numberOfHits: int = Field(8, ge=2, description="minimal number of L0 hits")
    numberOfModules: int = Field(3, ge=1, description="minimal number of modules (DOMs)")
    DMax_m: float = Field(110.0, gt=0, description="maximal distance of a DOM from the seed DOM [m]")


#: Presets decoded from stored ``JTriggerParameters`` (PHYSICS.md §12; the exact doubles of the
#: files). ``arca21``: ARCA21 (detector 133), run-by-run MC v8.1 (mupage/mcv8.1...jterbr00013288
#: in km3net-testdata). ``orca6``: no ORCA6 (detector 49) parameters are public; these are the
#: settings stored in the ORCA detector-44 DAQ files (online/events_sample.root,
#: online/km3net_online.root), the closest ORCA setting available.
TRIGGER_PRESETS: dict[str, dict] = {
    "arca21": {
        "TMaxLocal_ns": 25.0, "L1Min": 2, "combineL1": True, "TMaxEvent_ns": 4102.130249126104,
        "L2": {"numberOfHits": 2, "TMaxLocal_ns": 10.0, "ctMin": -1.0},
        "trigger3DMuon": {"enabled": True, "numberOfHits": 5, "numberOfModules": 5, "DMax_m": 891.0955456969809,
                          "roadWidth_m": 120.0, "gridAngle_deg": 10.0, "TMaxExtra_ns": 25.0, "factoryLimit": 100},
        "trigger3DShower": {"enabled": True, "numberOfHits": 5, "numberOfModules": 5, "DMax_m": 250.0,
                            "TMaxExtra_ns": 25.0, "factoryLimit": 100},
        "triggerMXShower": {"enabled": True, "numberOfHits": 8, "numberOfModules": 3, "DMax_m": 110.0,
                            "TMaxExtra_ns": 25.0, "factoryLimit": 100},
    },
    "orca6": {
        "TMaxLocal_ns": 25.0, "L1Min": 2, "combineL1": True, "TMaxEvent_ns": 1000.0,
        "L2": {"numberOfHits": 2, "TMaxLocal_ns": 10.0, "ctMin": 0.0},
        "trigger3DMuon": {"enabled": True, "numberOfHits": 4, "numberOfModules": 4, "DMax_m": 164.897,
                          "roadWidth_m": 43.0, "gridAngle_deg": 10.0, "TMaxExtra_ns": 25.0, "factoryLimit": 100},
        "trigger3DShower": {"enabled": True, "numberOfHits": 3, "numberOfModules": 3, "DMax_m": 52.0,
                            "TMaxExtra_ns": 25.0, "factoryLimit": 100},
        "triggerMXShower": {"enabled": True, "numberOfHits": 8, "numberOfModules": 3, "DMax_m": 47.0,
                            "TMaxExtra_ns": 25.0, "factoryLimit": 100},
    },
}

#: Flat keys of the earlier 3DMuon-only trigger config -> path in the Jpp model.
LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    "tmax_local_ns": ("TMaxLocal_ns",),
    "l1_min_hits": ("L1Min",),
    "combine_l1": ("combineL1",),
    "l2_tmax_ns": ("L2", "TMaxLocal_ns"),
    "l2_min_hits": ("L2", "numberOfHits"),
    "l2_ct_min": ("L2", "ctMin"),
    "muon_min_hits": ("trigger3DMuon", "numberOfHits"),
    "muon_min_doms": ("trigger3DMuon", "numberOfModules"),
    "road_width_m": ("trigger3DMuon", "roadWidth_m"),
    "direction_step_deg": ("trigger3DMuon", "gridAngle_deg"),
    "dmax_m": ("trigger3DMuon", "DMax_m"),
    "tmax_extra_ns": ("trigger3DMuon", "TMaxExtra_ns"),
    "factory_limit": ("trigger3DMuon", "factoryLimit"),
    "tmax_event_ns": ("TMaxEvent_ns",),
}

#: Jpp's deprecated top-level members -> their place in ``L2``.
_JPP_DEPRECATED = {"L2Min": ("L2", "numberOfHits"), "ctMin": ("L2", "ctMin")}
_NESTED = ("L2", "trigger3DMuon", "trigger3DShower", "triggerMXShower")


def _set_path(target: dict, path: tuple[str, ...], value, source: str, origin: dict) -> None:
    """Set ``target[path]``; a second, different value for the same path is an error."""
    node = target
    for key in path[:-1]:
        sub = node.setdefault(key, {})
        if not isinstance(sub, dict):
            raise ValueError(f"{'.'.join(path[:-1])} must be a mapping, got {sub!r}")
        node = sub
    dotted = ".".join(path)
    if path[-1] in node and node[path[-1]] != value and dotted in origin:
        raise ValueError(f"{source} = {value!r} contradicts {origin[dotted]} = {node[path[-1]]!r}")
    node[path[-1]] = value
    origin[dotted] = source


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _normalise(data: dict) -> dict:
    """Fold presets, dotted keys, Jpp's deprecated and km3sim's legacy keys into the nested model."""
    data = dict(data)
    name = data.pop("preset", None)
    user: dict[str, Any] = {}
    origin: dict[str, str] = {}
    # nested and plain keys first, then the aliases (which may not contradict them)
    for key, value in data.items():
        if key in LEGACY_KEYS or key in _JPP_DEPRECATED or "." in key:
            continue
        if isinstance(value, dict) and key in _NESTED:
            for sub, v in value.items():
                _set_path(user, (key, sub), v, f"{key}.{sub}", origin)
        else:
            _set_path(user, (key,), value, key, origin)
    for key, value in data.items():
        if "." in key:
            _set_path(user, tuple(key.split(".")), value, key, origin)
    for key, value in data.items():
        if key in _JPP_DEPRECATED:
            _set_path(user, _JPP_DEPRECATED[key], value, key, origin)
    for key, value in data.items():
        if key not in LEGACY_KEYS:
            continue
        path = LEGACY_KEYS[key]
        if key == "l2_tmax_ns" and value is None:
            # old meaning: the 3D triggers take every L1 -> an L2 as wide as the L1, no angle cut
            tmax = user.get("TMaxLocal_ns", data.get("tmax_local_ns", (TRIGGER_PRESETS.get(str(name).lower()) or {}).get("TMaxLocal_ns", 25.0)))
            _set_path(user, ("L2", "TMaxLocal_ns"), tmax, key, origin)
            _set_path(user, ("L2", "ctMin"), -1.0, key, origin)
            continue
        if key == "factory_limit" and value == 0:
            value = MAX_FACTORY_LIMIT  # old meaning of 0: no factory limit
        _set_path(user, path, value, key, origin)
    if name is None:
        return user
    key = str(name).lower()
    if key not in TRIGGER_PRESETS:
        raise ValueError(f"unknown trigger preset {name!r}; known: {sorted(TRIGGER_PRESETS)}")
    return {**_deep_merge(TRIGGER_PRESETS[key], user), "preset": key}


class TriggerConfig(StageConfig):
    """Configuration of the ``trigger`` stage and of ``km3sim trigger``: Jpp's parameters.

    Defaults are the ARCA21 production values (preset ``arca21``, PHYSICS.md §12). See the
    module docstring for the accepted keys; :meth:`jpp_dict` gives the flat Jpp view.
    """

    preset: str | None = Field(None, description="start from this trigger preset (arca21, orca6); the other keys override it")
    TMaxLocal_ns: float = Field(25.0, gt=0, description="L1: maximal time difference between L0 hits on one DOM [ns]")
    L1Min: int = Field(2, ge=2, le=31, description="L1: minimal number of L0 hits on distinct PMTs (km3sim; Jpp: 2)")
    combineL1: bool = Field(True, description="combine overlapping L1s of a DOM into one (many-fold coincidence)")
    L2: L2Parameters = Field(L2Parameters(), description="L2 coincidence, the input of the 3D triggers")
    TMaxEvent_ns: float = Field(4102.130249126104, ge=0, description="snapshot: maximal time before and after the triggered hits [ns]")
    # (frozen models: one shared default instance is safe)
    trigger3DMuon: Trigger3DMuonParameters = Field(Trigger3DMuonParameters())
    trigger3DShower: Trigger3DShowerParameters = Field(Trigger3DShowerParameters())
    triggerMXShower: TriggerMXShowerParameters = Field(TriggerMXShowerParameters())

    @model_validator(mode="before")
    @classmethod
    def _fold_aliases(cls, data):
        if isinstance(data, dict):
            return _normalise(data)
        return data

    @model_validator(mode="after")
    def _l2_inside_l1(self):
        if self.L2.TMaxLocal_ns > self.TMaxLocal_ns:
            raise ValueError(f"L2.TMaxLocal_ns ({self.L2.TMaxLocal_ns}) > TMaxLocal_ns ({self.TMaxLocal_ns}): "
                             "an L2 is found inside an L1")
        return self

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TriggerConfig":
        """The config of preset ``name`` (``"arca21"``, ``"orca6"``) with optional overrides."""
        return preset(name, **overrides)

    @classmethod
    def from_jpp(cls, params: dict, **overrides) -> "TriggerConfig":
        """Config from a Jpp ``JTriggerParameters`` dict (:func:`km3sim.io.daq.read_trigger_parameters`).

        Members the trigger does not use are dropped; Jpp's top-level ``L2Min``/``ctMin``
        are deprecated in Jpp and superseded by ``L2`` when that is present.
        """
        p = {k: params[k] for k in ("TMaxLocal_ns", "combineL1", "TMaxEvent_ns") if k in params}
        if "L2" in params:
            p["L2"] = {k: params["L2"][k] for k in ("numberOfHits", "TMaxLocal_ns", "ctMin") if k in params["L2"]}
        else:
            p.update({k: params[k] for k in ("L2Min", "ctMin") if k in params})
        for name, cls_ in (("trigger3DMuon", Trigger3DMuonParameters), ("trigger3DShower", Trigger3DShowerParameters),
                           ("triggerMXShower", TriggerMXShowerParameters)):
            if name in params:
                p[name] = {k: v for k, v in params[name].items() if k in cls_.model_fields}
        return cls.model_validate(_deep_merge(p, _nest(overrides)))

    def with_overrides(self, overrides: dict) -> "TriggerConfig":
        """A copy with ``overrides`` (nested or dotted keys) applied on top of this config."""
        base = self.model_dump(exclude={"preset"})
        return type(self).model_validate({**_deep_merge(base, _nest(overrides)), "preset": self.preset})

    def jpp_dict(self) -> dict[str, Any]:
        """Flat ``{dotted Jpp name: value}`` view, e.g. ``{"trigger3DMuon.roadWidth_m": 120.0, ...}``."""
        out = {}
        for k, v in self.model_dump(exclude={"preset"}).items():
            if isinstance(v, dict):
                out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                out[k] = v
        return out


def _nest(flat: dict) -> dict:
    out: dict = {}
    for k, v in flat.items():
        if isinstance(v, dict):
            out = _deep_merge(out, {k: v})
            continue
        node = out
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def preset(name: str, **overrides) -> TriggerConfig:
    """:class:`TriggerConfig` of preset ``name`` (see :data:`TRIGGER_PRESETS`) with overrides.

    Overrides may use Jpp names (nested dicts or dotted keys, given as ``**{"a.b": v}``) or
    the legacy flat keys (``road_width_m=50``).

    Raises
    ------
    ConfigError
        For an unknown preset name or invalid overrides.
    """
    key = name.lower()
    if key not in TRIGGER_PRESETS:
        raise ConfigError(f"unknown trigger preset {name!r}; known: {sorted(TRIGGER_PRESETS)}")
    try:
        return TriggerConfig.model_validate({**overrides, "preset": key})
    except ValueError as exc:
        raise ConfigError(f"trigger preset {key!r}: {exc}") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["trigger3DMuon.numberOfHits=4", "combineL1=false"]`` -> dotted-key dict.

    Values are read as JSON where possible (numbers, true/false, null), else kept as text.

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"trigger setting {item!r}: expected KEY=VALUE, e.g. trigger3DMuon.numberOfHits=4")
        text = text.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key] = value
    return out
