"""``km3sim trigger``: run the KM3NeT trigger on real DAQ data or on simulated hits.

Inputs (auto-detected, several allowed):

* KM3NeT DAQ files with triggered events (ROOT ``KM3NET_EVENT`` trees or Jpp ``.dat``
  streams): the snapshot hits of every event are calibrated with the detector file and
  triggered again; the recorded trigger masks are compared with the new ones;
* km3sim stage files (HDF5) or stage directories with a ``hits`` table (detector response) or
  a ``snapshot_hits`` table (an earlier trigger): every simulated event is one time window.

Trigger settings, later ones overriding earlier ones: the ``JTriggerParameters`` stored in the
first DAQ input (when it has them and no ``--preset`` is given), else ``--preset`` (default
``arca21``); then ``--config FILE.yaml``; then ``--set KEY=VALUE`` (Jpp names, dotted for the
nested ones: ``trigger3DMuon.numberOfHits=4``).

Output: one HDF5 file (km3sim stage-file layout) with ``triggered_events`` and
``snapshot_hits``, the tables the ``trigger`` stage writes, so ``km3sim`` reconstruction reads
it as it reads a production's trigger output.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

_HIT_COLUMNS = ("event_id", "dom_id", "channel_id", "pmt_id", "time", "tot", "npe", "origin")


def _load_config(args, daq_params, daq_source):
    from km3sim.errors import ConfigError
    from km3sim.trigger.parameters import TriggerConfig, parse_overrides, preset

    if args.preset:
        cfg, origin = preset(args.preset), f"preset {args.preset}"
    elif daq_params is not None and not args.ignore_file_parameters:
        try:
            cfg = TriggerConfig.from_jpp(daq_params)
        except ValueError as exc:
            raise ConfigError(f"{daq_source}: stored JTriggerParameters are not usable: {exc}") from None
        origin = f"JTriggerParameters of {daq_source}"
    else:
        cfg, origin = preset("arca21"), "preset arca21 (default)"
    overrides = {}
    if args.config:
        overrides.update(_read_yaml(args.config))
        origin += f" + {args.config}"
    if args.set:
        overrides.update(parse_overrides(args.set))
        origin += " + --set " + " ".join(args.set)
    if overrides:
        try:
            cfg = cfg.with_overrides(overrides)
        except ValueError as exc:
            raise ConfigError(f"trigger settings ({origin}): {exc}") from None
    return cfg, origin


def _read_yaml(path):
    import yaml

    from km3sim.errors import ConfigError

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and set(data) == {"trigger"}:
        data = data["trigger"]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of trigger parameters (optionally under 'trigger:')")
    return data


def _is_hdf5(path: Path) -> bool:
    if path.is_dir():
        return True
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _read_sim(path: Path):
    """(hits-like table, attrs) of a stage file or directory: ``hits`` or ``snapshot_hits``."""
    from km3sim.errors import StageFileError
    from km3sim.io.hdf5 import read_attrs, read_stage_dir, read_stage_file

    if path.is_dir():
        tables = read_stage_dir(path)
        files = sorted(path.glob("run*_chunk*.h5"))
        attrs = read_attrs(files[0]) if files else {}
    else:
        attrs = read_attrs(path)
        names = attrs.get("tables") or []
        want = [t for t in ("hits", "snapshot_hits") if t in names]
        if not want:
            raise StageFileError(f"{path}: no 'hits' or 'snapshot_hits' table (tables: {names})")
        tables, _ = read_stage_file(path, want[:1])
    for name in ("hits", "snapshot_hits"):
        if name in tables:
            return tables[name], attrs
    raise StageFileError(f"{path}: no 'hits' or 'snapshot_hits' table (tables: {sorted(tables)})")


def _cmd_trigger(args) -> int:
    import numpy as np

    from km3sim.errors import ConfigError
    from km3sim.io.daq import read_daq_events, read_trigger_parameters
    from km3sim.io.detx import read_detector
    from km3sim.io.hdf5 import file_checksum, write_stage_file
    from km3sim.schema import make_table
    from km3sim.table import Table
    from km3sim.trigger.trigger import TriggerProcessor

    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory")
    kinds = ["sim" if _is_hdf5(p) else "daq" for p in inputs]
    sim_tables, daq_events, attrs0 = {}, {}, {}
    for p, kind in zip(inputs, kinds):
        if kind == "sim":
            sim_tables[p], attrs = _read_sim(p)
            attrs0.setdefault("detector_file", attrs.get("detector_file"))
    det_path = args.detector or attrs0.get("detector_file")
    if not det_path:
        raise ConfigError("a detector file is needed: --detector DETX (the geometry and the PMT time calibration)")
    detector = read_detector(det_path)
    daq_params, daq_source = None, None
    for p, kind in zip(inputs, kinds):
        if kind == "daq":
            daq_events[p] = read_daq_events(p, detector)
            if daq_params is None:
                daq_params = read_trigger_parameters(p)
                daq_source = p if daq_params is not None else None
    cfg, origin = _load_config(args, daq_params, daq_source)
    print(f"trigger settings: {origin}")
    if args.list_parameters:
        for k, v in cfg.jpp_dict().items():
            print(f"    {k} = {v}")

    # one hits table over all inputs. Simulated events keep their event_id (it links them to
    # the MC truth) unless two inputs share ids; DAQ events are numbered by entry, file after file
    sim_ids = [np.unique(sim_tables[p]["event_id"]) for p, k in zip(inputs, kinds) if k == "sim"]
    keep_ids = all(k == "sim" for k in kinds) and len(np.unique(np.concatenate(sim_ids))) == sum(map(len, sim_ids))
    parts, counters, recorded, ranges = [], [], [], []
    offset = 0
    for p, kind in zip(inputs, kinds):
        if kind == "daq":
            ev = daq_events[p]
            h = ev.snapshot_hits
            ids = np.arange(len(ev), dtype=np.int64)
            counters.append(np.asarray(ev.headers["trigger_counter"], dtype=np.int64))
            recorded.append(np.asarray(ev.headers["trigger_mask"], dtype=np.uint64))
        else:
            h = sim_tables[p]
            ids = np.unique(h["event_id"])
            counters.append(ids.copy())
            recorded.append(np.zeros(len(ids), np.uint64))
        cols = {k: h[k] for k in _HIT_COLUMNS if k != "event_id"}
        if keep_ids:
            parts.append(make_table("hits", event_id=h["event_id"], **cols))
            ranges.append({"file": str(p), "kind": kind, "n_events": int(len(ids)), "event_ids": "as in the input"})
        else:
            local = np.searchsorted(ids, h["event_id"])
            parts.append(make_table("hits", event_id=local + offset, **cols))
            ranges.append({"file": str(p), "kind": kind, "first_event_id": offset, "n_events": int(len(ids)),
                           "event_ids": "first_event_id + DAQ entry number" if kind == "daq" else
                           "first_event_id + rank of the input's event_id"})
        offset += len(ids)
    hits = Table.concat(parts, name="hits")
    t0 = time.perf_counter()
    proc = TriggerProcessor(cfg, detector)
    if keep_ids:
        events, snapshot, stats = proc.trigger_table(hits, np.unique(hits["event_id"]), where="km3sim trigger")
    else:
        events, snapshot, stats = proc.trigger_table(hits, np.arange(offset, dtype=np.int64),
                                                     trigger_counter=np.concatenate(counters), where="km3sim trigger")
    dt = time.perf_counter() - t0
    out = Path(args.output)
    attrs = {
        "stage": "trigger", "command": "km3sim trigger", "config": cfg.model_dump(), "trigger_settings": origin,
        "detector_file": str(det_path), "detector_id": int(detector.det_id),
        "inputs": [{**r, "sha256": file_checksum(r["file"]) if Path(r["file"]).is_file() else None} for r in ranges],
        "n_events": int(offset),
    }
    write_stage_file(out, {"triggered_events": events, "snapshot_hits": snapshot}, attrs)
    n_hits = len(hits)
    print(f"{offset} input events, {n_hits} hits, triggered in {dt:.2f} s: {len(events)} events, "
          f"{stats['n_l1']} L1s, {stats['n_l2']} L2s")
    masks = np.asarray(events["trigger_mask"], dtype=np.uint64)
    names = (("3DShower", 1), ("MXShower", 2), ("3DMuon", 4), ("factory limit", 31))
    print("  " + ", ".join(f"{n} {int(np.count_nonzero(masks & np.uint64(1 << b)))}" for n, b in names))
    rec = np.concatenate(recorded)
    if any(k == "daq" for k in kinds):
        new = np.zeros(offset, np.uint64)
        new[events["event_id"]] = masks
        daq = np.concatenate([np.full(r["n_events"], r["kind"] == "daq") for r in ranges])
        lost = daq & ((rec & ~new & np.uint64(0x7FFFFFFF)) != 0)
        print(f"  recorded DAQ events whose every recorded trigger fires again: {int(daq.sum() - lost.sum())} of {int(daq.sum())}")
        for b_name, b in names[:3]:
            m = np.uint64(1 << b)
            had = daq & ((rec & m) != 0)
            print(f"    {b_name}: recorded {int(had.sum())}, fired again {int((had & ((new & m) != 0)).sum())}")
    print(f"wrote {out}")
    if args.json:
        print(json.dumps({"n_events": int(offset), "n_triggered": len(events), **stats}))
    return 0


def register(sub) -> None:
    t = sub.add_parser(
        "trigger",
        help="run the KM3NeT trigger (L1/L2, 3DMuon, 3DShower, MXShower) on DAQ files or simulated hits",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="DAQ file (ROOT with KM3NET_EVENT, or Jpp .dat) or km3sim stage file/directory with hits")
    t.add_argument("-d", "--detector", metavar="DETX",
                   help="detector file (detx/datx) for the positions and the PMT time calibration "
                        "(default: the detector of a stage-file input)")
    t.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="output HDF5 file")
    t.add_argument("--preset", help="trigger preset (arca21, orca6); overrides the parameters stored in a DAQ file")
    t.add_argument("--config", metavar="YAML", help="trigger parameters (Jpp names), optionally under 'trigger:'")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one parameter, e.g. trigger3DMuon.numberOfHits=4 (repeatable)")
    t.add_argument("--ignore-file-parameters", action="store_true",
                   help="do not use the JTriggerParameters stored in a DAQ input")
    t.add_argument("--list-parameters", action="store_true", help="print every trigger parameter used")
    t.add_argument("--json", action="store_true", help="print a JSON summary line at the end")
    t.set_defaults(func=_cmd_trigger)
