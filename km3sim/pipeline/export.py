"""After production: analysis files, combined weights and the file manifest.

``km3sim export`` merges the chunk files of all runs and generators into one HDF5 file per
production and stage level, ``<output>/export/<production>.<level>.h5``, in the layout of
km3pipe (format 5) files, readable with plain h5py:

- ``event_info``: one row per event (compound dataset): ``group_id`` (0-based event counter
  of the file, linking the rows of every table), ``event_id``, ``run_id``, ``generator``
  (index in ``generators``), the columns of the ``events`` table, ``weight`` (the rate
  [1/s] the event stands for in the merged production, see below) and ``timestamp`` /
  ``nanoseconds`` (UTC of the event when the run's start time is known, else 0);
- ``mc_tracks`` and other row tables (``triggered_events``, ``reco_tracks``): compound
  datasets with ``group_id``;
- hit tables (``mc_hits``, ``hits``, ``snapshot_hits``): column-split groups, one 1-D dataset
  per column plus ``group_id`` and ``_indices`` (``index``, ``n_items`` per ``event_info`` row);
- ``generators``: per generator the totals and the effective livetime (below);
- ``header/<generator>``: the generator's header (JSON attribute); ``provenance``: the chunk
  files merged (path, Adler-32, chain hash).

The events of a level are all generated events, except at levels whose stage (or an earlier
one) produces a per-event table (``triggered_events``): there only the events in it.

Combined weights. Each event's ``weight_w3`` is its rate in its own run. Merging the runs of
one generator (PHYSICS.md §3.5; :mod:`km3sim.weights`):

- livetime-based events (``weight_w2`` NaN, MUPAGE-like): ``weight = 1 / T``, with T the
  summed livetime of the generator's runs (data livetime x livetime factor);
- events with a generation weight: ``weight = w2 Phi / N = weight_w3 x n_gen / N``, with N the
  primaries generated in all the generator's runs (``weight_w3 = w2 Phi / n_gen`` of the run,
  Phi the generator's reference flux; NaN without one).

The effective livetime of a weighted sample is ``T_eff = (sum w) / (sum w^2)``: the livetime
of data with the same relative statistical error as the simulation. For livetime-based
samples T_eff = T exactly, so ``T_eff / T_data`` = the livetime factor ("10 years of
simulation per year of data"); ``generators`` stores it for the generated sample and for the
events of the level.

``km3sim manifest`` (and ``export``) list every file of the production with its size and
Adler-32 (``zlib.adler32``, 8 hex digits: the checksum Rucio uses), in ``manifest.json`` and
``manifest.tsv`` (``name<TAB>bytes<TAB>adler32``), names relative to the output directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from km3sim import __version__
from km3sim.errors import Km3simError, StageError
from km3sim.io.hdf5 import adler32_checksum, is_complete, read_attrs, read_stage_file
from km3sim.pipeline.catalogue import CATALOGUE_NAME, Catalogue
from km3sim.pipeline.config import Production
from km3sim.pipeline.plan import ChecksumCache, Plan, plan_production
from km3sim.schema import DATA_MODEL_VERSION, SCHEMAS
from km3sim.stage import get_stage

__all__ = ["export_production", "ExportResult", "write_manifest", "EXPORT_FORMAT", "HIT_TABLES"]

log = logging.getLogger(__name__)

#: identifier of the export layout (root attribute ``format``)
EXPORT_FORMAT = "km3sim-export-1"
#: tables written column-split with ``_indices`` (as km3pipe stores hits)
HIT_TABLES = ("mc_hits", "hits", "snapshot_hits")

_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class ExportError(Km3simError):
    """The production cannot be exported (incomplete, inconsistent)."""


@dataclass
class GeneratorTotals:
    """Weighting totals of one generator over all its runs."""

    index: int
    label: str
    stage: str
    n_runs: int = 0
    n_events: int = 0
    livetime_s: float = 0.0  # summed livetime of the livetime-based runs
    data_livetime_s: float = 0.0  # summed data livetime of all runs (before the factor)
    n_gen: int = 0  # summed n_gen of runs with a generation weight
    n_live_rows: int = 0
    s1: float = 0.0  # sum of w3 * n_gen over generation-weight rows
    s2: float = 0.0  # sum of (w3 * n_gen)^2
    n_nan: int = 0  # generation-weight rows without a weight (no reference flux)
    header: dict = field(default_factory=dict)

    def weight(self, w2: np.ndarray, w3: np.ndarray, n_gen: np.ndarray) -> np.ndarray:
        """Combined rate [1/s] of rows of this generator."""
        live = np.isnan(w2)
        out = np.empty(len(w2))
        out[live] = 1.0 / self.livetime_s if self.livetime_s > 0 else np.nan
        out[~live] = w3[~live] * n_gen[~live] / self.n_gen if self.n_gen > 0 else np.nan
        return out

    def sums(self) -> tuple[float, float]:
        """(sum w, sum w^2) over the generated sample."""
        if self.n_nan:
            return math.nan, math.nan
        sw, sw2 = 0.0, 0.0
        if self.n_live_rows:
            sw += self.n_live_rows / self.livetime_s
            sw2 += self.n_live_rows / self.livetime_s ** 2
        if self.n_gen > 0:
            sw += self.s1 / self.n_gen
            sw2 += self.s2 / self.n_gen ** 2
        return sw, sw2


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    generators: list[dict] = field(default_factory=list)
    manifest: Path | None = None


# ---------------------------------------------------------------------------------- helpers
def _done(plan: Plan, tasks, rows: dict) -> list:
    missing = []
    for t in tasks:
        rec = rows.get(t.key)
        if rec is not None and rec["chain_hash"] == t.chain_hash and rec["status"] == "done":
            try:
                st = os.stat(t.output)
            except OSError:
                missing.append(t)
                continue
            if st.st_size == rec["size"] and st.st_mtime_ns == rec["mtime_ns"]:
                continue
        if not is_complete(t.output, t.chain_hash):
            missing.append(t)
    return missing


def _levels(plan: Plan) -> list[str]:
    """Export levels: the generator stage (single generator) or 'generators', then processing stages."""
    prod = plan.production
    first = "generators" if prod.multi_generator else plan.streams[0].spec.name
    return [first, *[s.name for s in prod.processing_specs()]]


def _level_position(plan: Plan, level: str) -> int:
    """Position in a chunk's chain of the level's stage (0 = generator)."""
    levels = _levels(plan)
    if level not in levels:
        raise ExportError(f"unknown level {level!r}; levels of this production: {levels}")
    return levels.index(level)


class _Writer:
    """Appends to resizable datasets of one HDF5 file."""

    def __init__(self, f: h5py.File):
        self.f = f
        self.n: dict[str, int] = {}

    def append(self, path: str, data: np.ndarray) -> None:
        if path not in self.f:
            self.f.create_dataset(path, data=data, maxshape=(None,), chunks=True, **_COMPRESSION)
            self.n[path] = len(data)
            return
        ds = self.f[path]
        n0 = self.n[path]
        if len(data):
            ds.resize((n0 + len(data),))
            ds[n0:] = data
        self.n[path] = n0 + len(data)


def _compound(columns: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(columns.values())))
    arr = np.empty(n, dtype=[(k, v.dtype) for k, v in columns.items()])
    for k, v in columns.items():
        arr[k] = v
    return arr


# ---------------------------------------------------------------------------------- totals
def _generator_totals(plan: Plan, rows: dict) -> list[GeneratorTotals]:
    """First pass over the generator files: per-generator totals for the combined weights."""
    out = []
    gen_tasks: dict[int, list] = {s.index: [] for s in plan.streams}
    for unit in plan.units():
        gen_tasks[unit.stream].append((unit, plan.chunk_tasks(unit)[0]))
    for s in plan.streams:
        tot = GeneratorTotals(index=s.index, label=s.label, stage=s.spec.name, n_runs=len(plan.runs))
        tot.data_livetime_s = sum(rp.livetime_s for rp in plan.runs)
        run_live: dict[int, float] = {}
        run_ngen: dict[int, int] = {}
        live_rows_seen = False
        for unit, task in gen_tasks[s.index]:
            ev = read_stage_file(task.output, ["events"])[0]["events"]
            if not tot.header:
                tot.header = read_attrs(task.output).get("header") or {}
            if not len(ev):
                continue
            tot.n_events += len(ev)
            w2 = np.asarray(ev["weight_w2"], dtype=np.float64)
            w3 = np.asarray(ev["weight_w3"], dtype=np.float64)
            ngen = np.asarray(ev["n_gen"], dtype=np.float64)
            live = np.isnan(w2)
            for mask, per_run, col, what in ((live, run_live, ev["livetime_s"], "livetime_s"),
                                             (~live, run_ngen, ev["n_gen"], "n_gen")):
                if not mask.any():
                    continue
                vals = np.asarray(col)[mask]
                if np.any(vals != vals[0]):
                    raise StageError(f"{task.output}: events of run {unit.run_id} disagree on {what}")
                v = vals[0].item()
                if unit.run_id in per_run and per_run[unit.run_id] != v:
                    raise StageError(f"{task.output}: run {unit.run_id} has {what} {v}, earlier chunks {per_run[unit.run_id]}")
                per_run[unit.run_id] = v
            if live.any():
                live_rows_seen = True
                tot.n_live_rows += int(live.sum())
            g = ~live
            prod_ = w3[g] * ngen[g]
            tot.n_nan += int(np.isnan(prod_).sum())
            tot.s1 += float(np.nansum(prod_))
            tot.s2 += float(np.nansum(prod_ ** 2))
        if live_rows_seen:
            # runs without any event still count with their livetime
            planned = {rp.run_id: rp.livetime_s * s.livetime_factor for rp in plan.runs}
            tot.livetime_s = float(sum(run_live.get(r, planned[r]) for r in planned))
        tot.n_gen = int(sum(run_ngen.values()))
        out.append(tot)
    return out


def _generator_record(tot: GeneratorTotals, sw_level: float, sw2_level: float, n_level: int) -> dict:
    sw, sw2 = tot.sums()
    eff = sw / sw2 if sw2 > 0 else math.nan
    eff_level = sw_level / sw2_level if sw2_level > 0 else math.nan
    return {
        "index": tot.index, "label": tot.label, "stage": tot.stage, "n_runs": tot.n_runs, "n_events": tot.n_events,
        "n_events_level": n_level, "n_gen": tot.n_gen, "livetime_s": tot.livetime_s,
        "data_livetime_s": tot.data_livetime_s, "sum_w": sw, "sum_w2": sw2, "effective_livetime_s": eff,
        "sum_w_level": sw_level, "sum_w2_level": sw2_level, "effective_livetime_level_s": eff_level,
        "livetime_ratio": eff / tot.data_livetime_s if tot.data_livetime_s > 0 else math.nan,
    }


# ---------------------------------------------------------------------------------- export
def export_production(prod: Production, levels: list[str] | None = None, directory: str | os.PathLike | None = None,
                      manifest: bool = True) -> ExportResult:
    """Merge a finished production into one analysis file per stage level (see the module notes).

    Parameters
    ----------
    prod : Production
    levels : list of str, optional
        Levels to export (stage names; ``generators`` for the generator level of a production
        with ``generators:``). Default: every level.
    directory : path-like, optional
        Where the files go (default ``<output>/export``).
    manifest : bool
        Also write ``manifest.json`` / ``manifest.tsv`` of the whole output directory.

    Raises
    ------
    ExportError
        If a needed chunk file is missing or incomplete (run ``km3sim run`` first).
    """
    output = Path(prod.output)
    with Catalogue.for_output(output, readonly=True) as cat:
        plan = plan_production(prod, write_detector=False, checksums=ChecksumCache(cat.input_checksums()))
        rows = {r["key"]: r for r in cat.rows()}
    all_levels = _levels(plan)
    levels = list(levels) if levels else all_levels
    positions = {lv: _level_position(plan, lv) for lv in levels}
    need = max(positions.values())
    tasks_needed = [t for unit in plan.units() for t in plan.chunk_tasks(unit)[: need + 1]]
    missing = _done(plan, tasks_needed, rows)
    if missing:
        by_stage: dict[str, int] = {}
        for t in missing:
            by_stage[t.stage_name] = by_stage.get(t.stage_name, 0) + 1
        raise ExportError(f"production '{prod.name}' is incomplete: missing or stale chunk files {by_stage} "
                          f"(e.g. {missing[0].output}); run `km3sim run` first")
    totals = _generator_totals(plan, rows)
    directory = Path(directory) if directory is not None else output / "export"
    directory.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    for level in levels:
        path = directory / f"{prod.name}.{level}.h5"
        records = _export_level(plan, level, positions[level], totals, path, rows)
        result.files.append(path)
        result.generators = records
        log.info("exported level %s to %s", level, path)
    if manifest:
        result.manifest = write_manifest(output, rows)
    return result


def _level_tables(chain, pos: int) -> tuple[dict[str, int], int | None]:
    """Tables written at a level and where they come from: the level's own tables, plus
    ``mc_tracks`` from the last stage up to the level that produces it. Also the position of
    the stage whose per-event table selects the events (None: all events)."""
    src: dict[str, int] = {}
    select = None
    for k in range(pos + 1):
        cls = get_stage(chain[k].name)
        for t in cls.produces:
            if t == "mc_tracks":
                src["mc_tracks"] = k
            if SCHEMAS[t].per_event and t != "events":
                select = k
    for t in get_stage(chain[pos].name).produces:
        if t != "events":
            src[t] = pos
    return src, select


def _export_level(plan: Plan, level: str, pos: int, totals: list[GeneratorTotals], path: Path, rows: dict) -> list[dict]:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    n_events = 0
    level_sums = {t.index: [0.0, 0.0, 0] for t in totals}
    n_files = 0
    try:
        with h5py.File(tmp, "w") as f:
            w = _Writer(f)
            prov = []
            for unit in plan.units():
                tasks = plan.chunk_tasks(unit)
                chain = plan._chains[unit.stream]
                src, select = _level_tables(chain, pos)
                rp = plan.runs[unit.run_index]
                ev = read_stage_file(tasks[0].output, ["events"])[0]["events"]
                files = {0}
                tables = {}
                for name, k in src.items():
                    tables[name] = read_stage_file(tasks[k].output, [name])[0][name]
                    files.add(k)
                if select is not None:
                    sel_name = next(t for t in get_stage(chain[select].name).produces if SCHEMAS[t].per_event)
                    sel_table = tables.get(sel_name)
                    if sel_table is None:
                        sel_table = read_stage_file(tasks[select].output, [sel_name])[0][sel_name]
                        files.add(select)
                    keep = np.isin(ev["event_id"], sel_table["event_id"])
                    ev = ev[keep]
                for k in sorted(files):
                    prov.append((tasks[k].output, tasks[k].chain_hash, rows.get(tasks[k].key, {}).get("checksum_adler32")))
                n_files += len(files)
                order = np.argsort(ev["event_id"], kind="stable")
                ev = ev[order]
                ids = ev["event_id"]
                group = np.arange(n_events, n_events + len(ev), dtype=np.int64)
                tot = totals[unit.stream]
                weight = tot.weight(np.asarray(ev["weight_w2"], dtype=np.float64),
                                    np.asarray(ev["weight_w3"], dtype=np.float64),
                                    np.asarray(ev["n_gen"], dtype=np.float64))
                ls = level_sums[unit.stream]
                ls[0] += float(np.sum(weight))
                ls[1] += float(np.sum(weight ** 2))
                ls[2] += len(ev)
                cols = {"group_id": group, "event_id": ids, "run_id": ev["run_id"],
                        "generator": np.full(len(ev), unit.stream, dtype=np.int32)}
                for c in SCHEMAS["events"].columns:
                    if c not in cols:
                        cols[c] = ev[c]
                cols["weight"] = weight
                if rp.start_utc_s is not None:
                    t_ns = np.round((rp.start_utc_s % 1.0) * 1e9 + np.asarray(ev["mc_time"], dtype=np.float64)).astype(np.int64)
                    cols["timestamp"] = np.int64(math.floor(rp.start_utc_s)) + t_ns // 1_000_000_000
                    cols["nanoseconds"] = t_ns % 1_000_000_000
                else:
                    cols["timestamp"] = np.zeros(len(ev), dtype=np.int64)
                    cols["nanoseconds"] = np.zeros(len(ev), dtype=np.int64)
                w.append("event_info", _compound(cols))
                for name, table in tables.items():
                    tev = table["event_id"]
                    idx = np.searchsorted(ids, tev)
                    inside = (idx < len(ids)) & (ids[np.minimum(idx, max(len(ids) - 1, 0))] == tev) if len(ids) else np.zeros(len(tev), bool)
                    sub = {c: table[c][inside] for c in table.columns}
                    gid = group[idx[inside]] if len(ids) else np.zeros(0, dtype=np.int64)
                    if name in HIT_TABLES:
                        for c, v in sub.items():
                            w.append(f"{name}/{c}", v)
                        w.append(f"{name}/group_id", gid)
                        counts = np.bincount(idx[inside], minlength=len(ids)).astype(np.int64) if len(ids) else np.zeros(0, np.int64)
                        start = w.n.get(f"{name}/group_id", 0) - len(gid)
                        index = start + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(ids) else counts
                        w.append(f"{name}/_indices", _compound({"index": index, "n_items": counts}))
                    else:
                        w.append(name, _compound({"group_id": gid, **sub}))
                n_events += len(ev)
            records = [_generator_record(t, *level_sums[t.index]) for t in totals]
            _write_meta(f, plan, level, records, totals, prov, n_events, n_files)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return records


def _write_meta(f, plan, level, records, totals, prov, n_events, n_files) -> None:
    prod = plan.production
    f.attrs["format"] = EXPORT_FORMAT
    f.attrs["layout"] = ("km3pipe format 5 layout: compound tables with group_id; hit tables column-split "
                         "with _indices (index, n_items)")
    f.attrs["km3sim_version"] = __version__
    f.attrs["data_model_version"] = DATA_MODEL_VERSION
    f.attrs["production"] = prod.name
    f.attrs["production_hash"] = prod.production_hash()
    f.attrs["level"] = level
    f.attrs["n_events"] = n_events
    f.attrs["n_source_files"] = n_files
    f.attrs["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    f.attrs["weight"] = "rate [1/s] of the event in the merged production (per generator); see km3sim.pipeline.export"
    rec_cols = {k: np.array([r[k] for r in records]) for k in records[0] if k not in ("label", "stage")}
    rec_cols["label"] = np.array([r["label"] for r in records], dtype="S64")
    rec_cols["stage"] = np.array([r["stage"] for r in records], dtype="S64")
    f.create_dataset("generators", data=_compound(rec_cols))
    h = f.create_group("header")
    for t in totals:
        h.attrs[t.label] = json.dumps(t.header, sort_keys=True, default=str)
    out = Path(prod.output)
    names = [os.path.relpath(p, out) for p, _, _ in prov]
    f.create_dataset("provenance", data=_compound({
        "file": np.array(names, dtype=f"S{max([len(n) for n in names] + [1])}"),
        "chain_hash": np.array([c for _, c, _ in prov], dtype="S16"),
        "adler32": np.array([a or "" for _, _, a in prov], dtype="S8"),
    }), **_COMPRESSION)
    if "event_info" not in f:
        f.create_dataset("event_info", data=np.zeros(0, dtype=[("group_id", "i8"), ("event_id", "i8")]))


# ---------------------------------------------------------------------------------- manifest
def write_manifest(output: str | os.PathLike, catalogue_rows: dict | None = None) -> Path:
    """List every file of a production directory with size and Adler-32 (``manifest.json``,
    ``manifest.tsv``). Stage files whose catalogue row matches their size and mtime take the
    recorded checksum; others are read. The catalogue, temporary files and the manifests
    themselves are left out."""
    output = Path(output)
    if catalogue_rows is None:
        with Catalogue.for_output(output, readonly=True) as cat:
            catalogue_rows = {r["key"]: r for r in cat.rows()}
    known = {r["file"]: r for r in catalogue_rows.values() if r.get("status") == "done"}
    entries = []
    skip = {CATALOGUE_NAME, "manifest.json", "manifest.tsv", "failures.jsonl", CATALOGUE_NAME + "-journal"}
    for p in sorted(output.rglob("*")):
        if not p.is_file() or p.name.startswith(".") or p.name in skip:
            continue
        st = p.stat()
        rec = known.get(str(p))
        if rec is not None and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns and rec["checksum_adler32"]:
            adler = rec["checksum_adler32"]
        else:
            adler = adler32_checksum(p)
        entries.append({"name": p.relative_to(output).as_posix(), "bytes": st.st_size, "adler32": adler})
    doc = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "km3sim_version": __version__,
           "checksum": "adler32 (zlib.adler32, 8 hex digits)", "n_files": len(entries),
           "bytes": sum(e["bytes"] for e in entries), "files": entries}
    path = output / "manifest.json"
    tmp = output / f".manifest.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    tsv = output / "manifest.tsv"
    tmp = output / f".manifest.{uuid.uuid4().hex}.tmp"
    tmp.write_text("".join(f"{e['name']}\t{e['bytes']}\t{e['adler32']}\n" for e in entries))
    os.replace(tmp, tsv)
    return path
