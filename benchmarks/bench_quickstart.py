"""Events per second per stage for the quick-start production.

Runs ``productions/quickstart.yaml`` in this process (no dask, one core) into a fresh
temporary directory, twice: the first pass includes numba compilation (or cache loading), the
second measures the stages warm. Prints events/s and CPU time per stage from the
``cpu_time_s`` provenance attribute of each stage file.

Usage: ``python benchmarks/bench_quickstart.py [production.yaml]``
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from km3sim.io.hdf5 import read_attrs
from km3sim.pipeline.config import load_production
from km3sim.pipeline.runner import run_production


def measure(yaml_path: Path, output: Path) -> tuple[dict, float, dict]:
    prod = load_production(yaml_path, {"output": str(output), "workers": 0})
    t0 = time.perf_counter()
    result = run_production(prod)
    wall = time.perf_counter() - t0
    assert result.ok, result.failed
    per_stage = defaultdict(lambda: [0.0, 0, defaultdict(int)])
    for task in result.plan.tasks:
        a = read_attrs(task.output)
        s = per_stage[task.stage_name]
        s[0] += a["cpu_time_s"]
        s[1] += a["n_events"]
        for k, v in a["table_rows"].items():
            s[2][k] += v
    return per_stage, wall, result.summary


def main() -> None:
    yaml_path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "productions" / "quickstart.yaml")
    with tempfile.TemporaryDirectory() as d:
        _, wall_cold, _ = measure(yaml_path, Path(d) / "cold")
        per_stage, wall, summary = measure(yaml_path, Path(d) / "warm")
    print(f"production {yaml_path.name}: {summary['generated']} events generated, {summary['triggered']} triggered, "
          f"{summary['reconstructed']} reconstructed; {summary['livetime_s']:.0f} s livetime")
    print(f"wall time in one process: {wall_cold:.1f} s first pass (numba compile/cache load), {wall:.1f} s warm")
    print(f"{'stage':<20}{'CPU s':>9}{'events/s':>12}  rows written")
    for stage, (cpu, n, rows) in per_stage.items():
        rate = n / cpu if cpu > 0 else float("inf")
        print(f"{stage:<20}{cpu:9.2f}{rate:12.0f}  " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    cpu_fit = per_stage["track_fit"][0] if "track_fit" in per_stage else 0.0
    if cpu_fit > 0:
        print(f"track_fit on triggered events only: {summary['triggered'] / cpu_fit:.0f} fitted events/s")
    cpu_det = per_stage["pmt_response"][0] if "pmt_response" in per_stage else 0.0
    if cpu_det > 0:
        print(f"pmt_response: {per_stage['pmt_response'][2]['hits'] / cpu_det / 1e6:.2f} M hits/s written (K40 dominated); "
              f"trigger: {per_stage['pmt_response'][2]['hits'] / per_stage['trigger'][0] / 1e6:.2f} M L0 hits/s read")


if __name__ == "__main__":
    main()
