"""``km3sim reconstruct``: JMuon/JShower-style fits of real DAQ events or simulated triggered events.

Inputs (auto-detected, several allowed):

* KM3NeT DAQ files with triggered events (ROOT ``KM3NET_EVENT`` trees or Jpp ``.dat``
  streams); the snapshot hits are calibrated with the detector file (``--detector``);
* km3sim stage files or stage directories with ``triggered_events`` and ``snapshot_hits``
  (the ``trigger`` stage of a production, or ``km3sim trigger``); their detector file is used
  when no ``--detector`` is given.

Fits: ``--fit track`` (stage ``track_fit``: JMuonPrefit, JMuonSimplex, JMuonGandalf,
JMuonEnergy), ``--fit shower`` (stage ``shower_fit``: JShowerPrefit, JShowerPositionFit,
JShowerCompleteFit) or ``--fit both``. Settings: ``--set track.KEY=VALUE`` /
``--set shower.KEY=VALUE`` (config keys of the stages, e.g. ``track.road_width_m=120``).
The site (water, ⁴⁰K rate, energy calibration) follows the detector's UTM zone unless
``--site`` is given.

Output: one HDF5 file (km3sim stage-file layout) with the ``reco_tracks`` table: rec_type 4000
and rec_stage 1-4 (tracks) / 101-103 (showers), as the stages write it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _parse_sets(items):
    import yaml

    from km3sim.errors import ConfigError

    out = {"track": {}, "shower": {}}
    for item in items or []:
        key, sep, value = item.partition("=")
        group, dot, name = key.partition(".")
        if not sep or not dot or group not in out or not name:
            raise ConfigError(f"--set {item!r}: expected track.KEY=VALUE or shower.KEY=VALUE")
        try:
            out[group][name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from None
    return out


def _summary(table, fit: str) -> dict:
    import numpy as np

    from km3sim.reco.shower import JSHOWERCOMPLETEFIT
    from km3sim.reco.track import JMUONENERGY, JMUONGANDALF

    if fit == "track":
        g = table[table["rec_stage"] == JMUONGANDALF]
        ok = g["status"] == 0
        e = table[(table["rec_stage"] == JMUONENERGY) & (table["status"] == 0)]["energy"]
        return {
            "events": int(len(g)), "converged": int(ok.sum()),
            "down_going": int((g["dir_z"][ok] < 0).sum()),
            "median_beta0_deg": float(np.degrees(np.nanmedian(g["beta0_rad"][ok]))) if ok.any() else None,
            "median_energy_gev": float(np.nanmedian(e)) if len(e) else None,
        }
    c = table[table["rec_stage"] == JSHOWERCOMPLETEFIT]
    ok = c["status"] == 0
    return {"events": int(len(c)), "converged": int(ok.sum()),
            "median_energy_gev": float(np.nanmedian(c["energy"][ok])) if ok.any() else None}


def _cmd_reconstruct(args) -> int:
    import numpy as np

    from km3sim.errors import ConfigError
    from km3sim.io.detx import read_detector
    from km3sim.io.hdf5 import file_checksum, write_stage_file
    from km3sim.reco.inputs import is_stage_file, load_events, site_of
    from km3sim.reco.samples import stage_context
    from km3sim.reco.shower import ShowerFit, ShowerFitConfig
    from km3sim.reco.track import TrackFit, TrackFitConfig
    from km3sim.schema import empty_table
    from km3sim.table import Table

    sets = _parse_sets(args.set)
    fits = ["track", "shower"] if args.fit == "both" else [args.fit]
    try:
        configs = {"track": TrackFitConfig(**sets["track"]), "shower": ShowerFitConfig(**sets["shower"])}
    except ValueError as exc:
        raise ConfigError(f"--set: {exc}") from None
    inputs = [Path(p) for p in args.inputs]
    detector = read_detector(args.detector) if args.detector else None
    if detector is None and not all(p.exists() and is_stage_file(p) for p in inputs):
        raise ConfigError("DAQ inputs need a detector file: --detector DETX/DATX")
    data = load_events(inputs, detector)
    det_path = args.detector or data.detector_file
    if detector is None:
        if not det_path:
            raise ConfigError("the stage files name no detector file: give --detector DETX")
        detector = read_detector(det_path)
    events, hits = data.events, data.snapshot_hits
    if args.max_events is not None:
        keep = np.asarray(events["event_id"])[: args.max_events]
        events, hits = events.select_events(keep), hits.select_events(keep)
    site = site_of(detector, args.site)
    ids = np.asarray(events["event_id"], dtype=np.int64)
    print(f"{len(events)} triggered events from {len(inputs)} input(s); detector {detector.det_id} "
          f"({detector.n_dus} DUs), site {site.name}", flush=True)
    tables, info = [], {}
    for fit in fits:
        stage = (TrackFit if fit == "track" else ShowerFit)(configs[fit], detector=detector, site=site)
        t0 = time.process_time()
        out = stage.run({"triggered_events": events, "snapshot_hits": hits},
                        stage_context(detector, site, ids, stage.name))["reco_tracks"]
        cpu = time.process_time() - t0
        tables.append(out)
        info[fit] = {**_summary(out, fit), "cpu_s": round(cpu, 3)}
        s = info[fit]
        rate = f"{len(events) / cpu:.1f} events/s" if cpu > 0 else ""
        extra = f", down-going {s['down_going']}" if fit == "track" else ""
        print(f"  {stage.name}: {s['converged']} of {s['events']} converged{extra} ({cpu:.1f} s CPU, {rate})", flush=True)
    table = Table.concat(tables, name="reco_tracks").sort(("event_id",)) if tables else empty_table("reco_tracks")
    attrs = {
        "stage": "+".join(f"{f}_fit" for f in fits), "command": "km3sim reconstruct",
        "config": {f: configs[f].model_dump() for f in fits}, "site": site.model_dump(),
        "detector_file": str(det_path) if det_path else None, "detector_id": int(detector.det_id),
        "inputs": [{**s, "sha256": file_checksum(s["file"]) if Path(s["file"]).is_file() else None} for s in data.sources],
        "n_events": int(len(events)), "summary": info,
    }
    out_path = Path(args.output)
    write_stage_file(out_path, {"reco_tracks": table}, attrs)
    print(f"wrote {out_path} ({len(table)} reco_tracks rows)")
    if args.json:
        print(json.dumps(info))
    return 0


def register(sub) -> None:
    r = sub.add_parser(
        "reconstruct",
        help="reconstruct tracks and showers (JMuon/JShower-style) in DAQ files or simulated triggered events",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="DAQ file (ROOT with KM3NET_EVENT, or Jpp .dat) or km3sim stage file/directory with "
                        "triggered_events and snapshot_hits")
    r.add_argument("-d", "--detector", metavar="DETX",
                   help="detector file (detx/datx); default: the detector of a stage-file input")
    r.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="output HDF5 file with reco_tracks")
    r.add_argument("--fit", choices=("track", "shower", "both"), default="track", help="which fits (default track)")
    r.add_argument("--site", choices=("orca", "arca"), help="site (default: from the detector's UTM zone)")
    r.add_argument("--set", action="append", metavar="GROUP.KEY=VALUE",
                   help="fit setting, e.g. track.road_width_m=120 or shower.radius_m=200 (repeatable)")
    r.add_argument("--max-events", type=int, metavar="N", help="only the first N events")
    r.add_argument("--json", action="store_true", help="print a JSON summary line at the end")
    r.set_defaults(func=_cmd_reconstruct)
