"""State of a production's outputs, per stage: done, stale, missing, failed."""

from __future__ import annotations

import json
from pathlib import Path

from km3sim.io.hdf5 import is_complete
from km3sim.pipeline.config import Production
from km3sim.pipeline.plan import plan_production

__all__ = ["production_status", "format_status"]


def production_status(prod: Production) -> list[dict]:
    """One row per stage with the number of chunk files done / stale / missing / failed."""
    plan = plan_production(prod, write_detector=False)
    failures = {}
    fpath = Path(prod.output) / "failures.jsonl"
    if fpath.is_file():
        for line in fpath.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            failures[entry.get("task")] = entry.get("error", "")
    rows = []
    for stage, tasks in plan.by_stage().items():
        row = {"stage": stage, "chunks": len(tasks), "done": 0, "stale": 0, "missing": 0, "failed": 0, "events": 0}
        for t in tasks:
            if is_complete(t.output, t.chain_hash):
                row["done"] += 1
                row["events"] += t.n_events
            elif t.key in failures:
                row["failed"] += 1
            elif Path(t.output).exists():
                row["stale"] += 1
            else:
                row["missing"] += 1
        rows.append(row)
    return rows


def format_status(rows: list[dict]) -> str:
    """The status rows as an aligned text table."""
    cols = ["stage", "chunks", "done", "stale", "missing", "failed", "events"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) if c == "stage" else c.rjust(widths[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(str(r[c]).ljust(widths[c]) if c == "stage" else str(r[c]).rjust(widths[c]) for c in cols))
    return "\n".join(lines)
