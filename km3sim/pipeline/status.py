"""State of a production's outputs per stage (and generator): done, stale, missing, failed,
with events, CPU time and sanity flags from the catalogue."""

from __future__ import annotations

import json
import os
from pathlib import Path

from km3sim.io.hdf5 import is_complete
from km3sim.pipeline.catalogue import Catalogue
from km3sim.pipeline.config import Production
from km3sim.pipeline.plan import ChecksumCache, plan_production

__all__ = ["production_status", "format_status", "chunk_rows", "format_chunks"]


def _failures_jsonl(output: Path) -> dict[str, str]:
    failures = {}
    fpath = output / "failures.jsonl"
    if fpath.is_file():
        for line in fpath.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            failures[entry.get("task")] = entry.get("error", "")
    return failures


def production_status(prod: Production, by_generator: bool | None = None) -> list[dict]:
    """One row per stage (per generator and stage when ``by_generator``; default: when the
    production has ``generators:``) with the numbers of chunk files done / stale / missing /
    failed, the events done, the CPU hours spent and the chunks with sanity flags.

    A task is done if the catalogue records it with the same chain hash and its file still has
    the recorded size and modification time, or if its file is complete (outputs written
    without a catalogue). Failed: the catalogue (or ``failures.jsonl``) records a failure and
    no complete output exists. Stale: a file exists but is incomplete or from another config.
    """
    output = Path(prod.output)
    with Catalogue.for_output(output, readonly=True) as cat:
        plan = plan_production(prod, write_detector=False, checksums=ChecksumCache(cat.input_checksums()))
        rows_by_key = {r["key"]: r for r in cat.rows()}
    failures = _failures_jsonl(output)
    if by_generator is None:
        by_generator = prod.multi_generator
    rows: dict[tuple, dict] = {}
    for t in plan.iter_tasks():
        group = (t.generator, t.stage_name) if by_generator else ("", t.stage_name)
        row = rows.get(group)
        if row is None:
            row = rows[group] = {"stage": t.stage_name, "chunks": 0, "done": 0, "stale": 0, "missing": 0,
                                 "failed": 0, "events": 0, "cpu_h": 0.0, "flagged": 0}
            if by_generator:
                row = rows[group] = {"generator": t.generator, **row}
        row["chunks"] += 1
        rec = rows_by_key.get(t.key)
        try:
            st = os.stat(t.output)
        except OSError:
            st = None
        ok = False
        if st is not None:
            if rec is not None and rec["status"] == "done" and rec["chain_hash"] == t.chain_hash \
                    and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
                ok = True
            elif is_complete(t.output, t.chain_hash):
                ok = True
                rec = None if rec is None or rec["chain_hash"] != t.chain_hash else rec
        if ok:
            row["done"] += 1
            row["events"] += t.n_events
            if rec is not None:
                row["cpu_h"] += (rec["cpu_time_s"] or 0.0) / 3600.0
                row["flagged"] += bool(rec["flags"])
        elif (rec is not None and rec["status"] == "failed" and rec["chain_hash"] == t.chain_hash) or t.key in failures:
            row["failed"] += 1
        elif st is not None:
            row["stale"] += 1
        else:
            row["missing"] += 1
    return list(rows.values())


def format_status(rows: list[dict]) -> str:
    """The status rows as an aligned text table."""
    cols = [c for c in ("generator", "stage", "chunks", "done", "stale", "missing", "failed", "events", "cpu_h",
                        "flagged") if rows and c in rows[0]]

    def cell(r, c):
        v = r[c]
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in cols}
    left = ("generator", "stage")
    lines = ["  ".join(c.ljust(widths[c]) if c in left else c.rjust(widths[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(cell(r, c).ljust(widths[c]) if c in left else cell(r, c).rjust(widths[c]) for c in cols))
    return "\n".join(lines)


def chunk_rows(prod: Production, where: str = "", params: tuple = ()) -> list[dict]:
    """Catalogue rows of single tasks (``where``: SQL condition, e.g. ``"status = 'failed'"``)."""
    with Catalogue.for_output(prod.output, readonly=True) as cat:
        return cat.rows(where, params)


def format_chunks(rows: list[dict], tracebacks: bool = False) -> str:
    """Catalogue rows as a table: task, status, events, CPU s, checksum, flags / error."""
    if not rows:
        return "(no tasks)"
    lines = []
    w = max(len(r["key"]) for r in rows)
    lines.append(f"{'task'.ljust(w)}  {'status':8}  {'events':>7}  {'cpu_s':>8}  {'adler32':8}  attempts  flags / error")
    for r in sorted(rows, key=lambda r: (r["run_id"], r["generator"] or "", r["chunk"], r["stage_index"])):
        note = r["error"] if r["status"] == "failed" else "; ".join(r["flags"] or [])
        if r["status"] == "failed" and r["error_class"]:
            note = f"[{r['error_class']}] {note}"
        cpu = f"{r['cpu_time_s']:.3f}" if r["cpu_time_s"] is not None else "-"
        lines.append(f"{r['key'].ljust(w)}  {r['status']:8}  {r['events'] if r['events'] is not None else '-':>7}  "
                     f"{cpu:>8}  {r['checksum_adler32'] or '-':8}  {r['attempts'] or 0:>8}  {note or ''}")
        if tracebacks and r["traceback"]:
            lines.extend("      " + line for line in r["traceback"].rstrip().splitlines())
    return "\n".join(lines)
