"""Inputs of the reconstruction outside a production: real DAQ files and km3sim stage files.

:func:`load_events` reads triggered events from

* KM3NeT DAQ files (ROOT ``KM3NET_EVENT`` trees or Jpp ``.dat`` streams, FORMATS.md §5) with
  :func:`km3sim.io.daq.read_daq_events`: snapshot hits calibrated with the detector file
  (time = TDC + PMT t0), trigger masks of the triggered hits; the events of the i-th file are
  numbered from the sum of the events of the files before it (entry numbers otherwise);
* km3sim stage files or stage directories (HDF5) with ``triggered_events`` and
  ``snapshot_hits`` (the output of the ``trigger`` stage or of ``km3sim trigger``); their
  event ids are kept (they link to the MC truth).

:func:`site_of` picks the site (water, background rate, energy calibration) of a detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim.errors import ConfigError, StageFileError
from km3sim.stage import SITE_PRESETS, Site
from km3sim.table import Table

__all__ = ["RecoInput", "load_events", "site_of", "is_stage_file"]


@dataclass
class RecoInput:
    """Triggered events and their snapshot hits, with where they came from."""

    events: Table
    snapshot_hits: Table
    sources: list[dict] = field(default_factory=list)
    detector_file: str | None = None


def is_stage_file(path: Path) -> bool:
    """A directory (stage directory) or a file with the HDF5 signature."""
    if path.is_dir():
        return True
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _read_stage(path: Path) -> tuple[dict[str, Table], dict]:
    from km3sim.io.hdf5 import read_attrs, read_stage_dir, read_stage_file

    need = ("triggered_events", "snapshot_hits")
    if path.is_dir():
        files = sorted(path.glob("run*_chunk*.h5"))
        if not files:
            raise StageFileError(f"{path}: no stage files (run*_chunk*.h5) in the directory")
        tables = read_stage_dir(path)
        attrs = read_attrs(files[0])
    else:
        attrs = read_attrs(path)
        names = attrs.get("tables") or []
        missing = [t for t in need if t not in names]
        if missing:
            raise StageFileError(f"{path}: no table(s) {missing} (tables: {names}); give the output of the "
                                 "'trigger' stage or of 'km3sim trigger'")
        tables, _ = read_stage_file(path, need)
    missing = [t for t in need if t not in tables]
    if missing:
        raise StageFileError(f"{path}: no table(s) {missing} (tables: {sorted(tables)})")
    return {t: tables[t] for t in need}, attrs


def load_events(paths, detector=None) -> RecoInput:
    """Triggered events of DAQ files and/or stage files (see the module notes).

    Parameters
    ----------
    paths : list of path
    detector : Detector, optional
        Needed for DAQ files (calibration); stage files name their detector file
        (``RecoInput.detector_file``), which the caller may read when none is given.

    Raises
    ------
    ConfigError
        Missing input, or a DAQ input without a detector.
    StageFileError
        Unreadable or incomplete input.
    """
    from km3sim.io.daq import read_daq_events

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory")
    ev_parts, hit_parts, sources = [], [], []
    det_file = None
    offset = 0
    stage_ids = []
    for p in paths:
        if is_stage_file(p):
            tables, attrs = _read_stage(p)
            det_file = det_file or attrs.get("detector_file")
            ev, hits = tables["triggered_events"], tables["snapshot_hits"]
            stage_ids.append(np.asarray(ev["event_id"]))
            sources.append({"file": str(p), "kind": "stage", "n_events": len(ev), "event_ids": "as in the input"})
        else:
            if detector is None:
                raise ConfigError(f"{p}: a DAQ file needs a detector file (--detector) for the PMT positions and t0")
            daq = read_daq_events(p, detector)
            ev, hits = daq.events, daq.snapshot_hits
            ev = ev.with_columns(event_id=np.asarray(ev["event_id"], dtype=np.int64) + offset)
            hits = hits.with_columns(event_id=np.asarray(hits["event_id"], dtype=np.int64) + offset)
            sources.append({"file": str(p), "kind": "daq", "first_event_id": offset, "n_events": len(ev),
                            "det_id": int(daq.headers["det_id"][0]) if len(daq) else None,
                            "run_id": int(daq.headers["run_id"][0]) if len(daq) else None,
                            "event_ids": "first_event_id + entry number"})
            offset += len(ev)
        ev_parts.append(ev)
        hit_parts.append(hits)
    if stage_ids and offset:
        all_stage = np.concatenate(stage_ids)
        if np.any(all_stage < offset):
            raise ConfigError("cannot mix DAQ and stage-file inputs whose event ids overlap (give them separately)")
    ids = np.concatenate([np.asarray(e["event_id"]) for e in ev_parts]) if ev_parts else np.zeros(0, np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ConfigError("event ids repeat between the inputs (the same stage file twice?)")
    events = Table.concat(ev_parts, name="triggered_events").sort(("event_id",))
    hits = Table.concat(hit_parts, name="snapshot_hits")
    if len(hits) and not hits.is_sorted_by_event():
        hits = hits.sort(("event_id", "time"))
    return RecoInput(events, hits, sources, det_file)


def site_of(detector, name: str | None = None) -> Site:
    """The site preset ``name``, else the one of the detector's UTM zone (33N ARCA, 32N ORCA),
    else ARCA for DU spacings of 50 m or more and ORCA below."""
    if name is not None:
        key = str(name).lower()
        if key not in SITE_PRESETS:
            raise ConfigError(f"unknown site {name!r}; known: {sorted(SITE_PRESETS)}")
        return SITE_PRESETS[key]
    zone = str(getattr(detector, "utm_zone", "") or "").upper()
    if zone.startswith("33"):
        return SITE_PRESETS["arca"]
    if zone.startswith("32"):
        return SITE_PRESETS["orca"]
    try:
        spacing = detector.du_spacing
        spacing = float(spacing() if callable(spacing) else spacing)
    except (AttributeError, TypeError, ValueError):
        spacing = 0.0
    return SITE_PRESETS["arca" if np.isfinite(spacing) and spacing >= 50.0 else "orca"]

