"""The production catalogue: one SQLite file with a row per (stage, run, chunk) task.

``<output>/catalogue.sqlite`` holds

- ``tasks``: stage, generator, run, chunk, status (``pending``, ``running``, ``done``,
  ``failed``), output file, chain hash and config hash, Adler-32 checksum, size and
  modification time of the file, events, table rows, CPU and wall time, attempts, worker,
  sanity flags, and for failures the error class, message and traceback;
- ``runs``: every run with its data livetime, start time, detector and conditions files and
  planned events per generator;
- ``production``: name, production hash, km3sim version, source YAML;
- ``input_checksums``: SHA-256 of input files by (path, size, mtime), so that re-planning does
  not re-read unchanged inputs.

Only the submitting process writes it (the workers return small summaries), so SQLite's
locking is never contended; writes are batched and committed about once a second. A catalogue
lost or left behind by a killed process is never trusted blindly: a ``done`` row counts only
while its file has the recorded size and modification time, otherwise the file itself is
checked (see :func:`km3sim.pipeline.runner.scan_plan`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

__all__ = ["Catalogue", "CATALOGUE_NAME", "TASK_COLUMNS"]

CATALOGUE_NAME = "catalogue.sqlite"

#: columns of the ``tasks`` table, in order
TASK_COLUMNS = (
    "key", "stage", "stage_index", "generator", "run_id", "chunk", "first_event", "n_events", "status", "file",
    "chain_hash", "config_hash", "checksum_adler32", "size", "mtime_ns", "events", "table_rows", "cpu_time_s",
    "wall_time_s", "attempts", "worker", "flags", "error_class", "error", "traceback", "updated",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS production (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, livetime_s REAL, start_utc_s REAL, detector TEXT, conditions TEXT,
    n_events TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY, stage TEXT, stage_index INTEGER, generator TEXT, run_id INTEGER, chunk INTEGER,
    first_event INTEGER, n_events INTEGER, status TEXT, file TEXT, chain_hash TEXT, config_hash TEXT,
    checksum_adler32 TEXT, size INTEGER, mtime_ns INTEGER, events INTEGER, table_rows TEXT, cpu_time_s REAL,
    wall_time_s REAL, attempts INTEGER DEFAULT 0, worker TEXT, flags TEXT, error_class TEXT, error TEXT,
    traceback TEXT, updated TEXT);
CREATE INDEX IF NOT EXISTS tasks_stage ON tasks (stage, status);
CREATE TABLE IF NOT EXISTS input_checksums (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT);
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


class Catalogue:
    """Read and write a production catalogue.

    Parameters
    ----------
    path : path-like
        The SQLite file (created with its tables if missing, unless ``readonly``).
    readonly : bool
        Open an existing file for reading only (``km3sim status``); a missing file reads as empty.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._pending: list[tuple] = []
        self._last_commit = time.monotonic()
        if readonly and not self.path.is_file():
            self.conn = None
            return
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.executescript(_SCHEMA)
            self.conn.commit()

    @classmethod
    def for_output(cls, output: str | os.PathLike, readonly: bool = False) -> "Catalogue":
        return cls(Path(output) / CATALOGUE_NAME, readonly=readonly)

    # ------------------------------------------------------------------------ reading
    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        """Task rows as dicts (``where`` is an SQL condition on the columns of :data:`TASK_COLUMNS`)."""
        if self.conn is None:
            return []
        self.flush()
        cur = self.conn.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks {('WHERE ' + where) if where else ''}",
                                params)
        out = []
        for row in cur:
            d = dict(zip(TASK_COLUMNS, row))
            for k in ("table_rows", "flags"):
                if d[k]:
                    d[k] = json.loads(d[k])
            out.append(d)
        return out

    def done_index(self) -> dict[str, tuple[str, int, int]]:
        """key -> (chain_hash, size, mtime_ns) of every ``done`` task."""
        if self.conn is None:
            return {}
        self.flush()
        cur = self.conn.execute("SELECT key, chain_hash, size, mtime_ns FROM tasks WHERE status = 'done'")
        return {k: (h, s, m) for k, h, s, m in cur}

    def status_index(self) -> dict[str, tuple[str, str | None]]:
        """key -> (status, chain_hash) of every task."""
        if self.conn is None:
            return {}
        self.flush()
        return {k: (st, h) for k, st, h in self.conn.execute("SELECT key, status, chain_hash FROM tasks")}

    def production_info(self) -> dict:
        if self.conn is None:
            return {}
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM production")}

    def run_rows(self) -> list[dict]:
        if self.conn is None:
            return []
        cols = ("run_id", "livetime_s", "start_utc_s", "detector", "conditions", "n_events")
        out = []
        for row in self.conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY run_id"):
            d = dict(zip(cols, row))
            d["n_events"] = json.loads(d["n_events"]) if d["n_events"] else {}
            out.append(d)
        return out

    def input_checksums(self) -> dict[str, tuple[int, int, str]]:
        if self.conn is None:
            return {}
        return {p: (s, m, h) for p, s, m, h in self.conn.execute("SELECT path, size, mtime_ns, sha256 FROM input_checksums")}

    # ------------------------------------------------------------------------ writing
    def set_production(self, info: dict) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO production (key, value) VALUES (?, ?)",
                              [(k, json.dumps(v, default=str)) for k, v in info.items()])
        self.conn.commit()

    def set_runs(self, plan) -> None:
        """Record the runs of a plan (replacing earlier rows of the same runs)."""
        labels = [s.label for s in plan.streams]
        rows = [
            (rp.run_id, rp.livetime_s, rp.start_utc_s, str(rp.detector_file),
             rp.conditions_source, json.dumps(dict(zip(labels, rp.n_events))))
            for rp in plan.runs
        ]
        self.conn.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.conn.commit()

    def save_input_checksums(self, changed: dict[str, tuple[int, int, str]]) -> None:
        if changed:
            self.conn.executemany("INSERT OR REPLACE INTO input_checksums VALUES (?, ?, ?, ?)",
                                  [(p, s, m, h) for p, (s, m, h) in changed.items()])
            self.conn.commit()

    def record(self, task, status: str, **values) -> None:
        """Queue an upsert of a task's row (committed by :meth:`flush`, at most a second later)."""
        row = {
            "key": task.key, "stage": task.stage_name, "stage_index": task.stage_index, "generator": task.generator,
            "run_id": task.run_id, "chunk": task.chunk, "first_event": task.first_event, "n_events": task.n_events,
            "status": status, "file": task.output, "chain_hash": task.chain_hash,
            "updated": _now(),
        }
        row.update(values)
        for k in ("table_rows", "flags"):
            if k in row and row[k] is not None and not isinstance(row[k], str):
                row[k] = json.dumps(row[k])
        self._pending.append(row)
        if len(self._pending) >= 5000 or time.monotonic() - self._last_commit > 1.0:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows (keeping the columns a row does not set)."""
        if not self._pending or self.conn is None or self.readonly:
            self._pending = [] if self.readonly else self._pending
            return
        # consecutive rows with the same columns go in one statement; the order of rows is kept
        groups: list[tuple[tuple, list]] = []
        for row in self._pending:
            cols = tuple(row)
            if not groups or groups[-1][0] != cols:
                groups.append((cols, []))
            groups[-1][1].append(tuple(row.values()))
        for cols, values in groups:
            updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "key")
            sql = (f"INSERT INTO tasks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                   f"ON CONFLICT(key) DO UPDATE SET {updates}")
            self.conn.executemany(sql, values)
        self.conn.commit()
        self._pending = []
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self.conn is not None:
            if not self.readonly:
                self.flush()
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
