"""Reading generator files: evt ASCII parsing and the ``generator_files`` stage, per core.

Builds a large gSeaGen evt file (the km3net-testdata sample repeated 100 times) in a temporary
directory and reports lines/s for the index pass and the full parse, and events/s for the stage
on the evt file and on the offline ROOT file (read 50 times).

Run: ``.venv/bin/python benchmarks/bench_generator_files.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from km3net_testdata import data_path

from km3sim.generators.files import GeneratorFiles
from km3sim.io.evt import EvtFile, read_evt
from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX
from km3sim.stage import StageContext


def _stage_rate(files: list[str]) -> tuple[int, int, float]:
    gen = GeneratorFiles(GeneratorFiles.Config(files=files))
    n = gen.n_events
    ctx = StageContext(seed=1, run_id=1, chunk=0, stage_name="generator_files",
                       event_ids=EVENTS_PER_RUN_MAX + np.arange(n, dtype=np.int64), livetime_s=1.0,
                       n_events_run=n, detector=None)
    t = time.perf_counter()
    out = gen.run({}, ctx)
    return n, len(out["mc_tracks"]), time.perf_counter() - t


def main() -> None:
    src = Path(data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt")).read_text()
    head, body = src.split("end_event:\n", 1)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.evt"
        with open(big, "w") as f:
            f.write(head + "end_event:\n")
            for _ in range(100):
                f.write(body)
        n_lines = sum(1 for _ in open(big))
        t = time.perf_counter()
        index = EvtFile(big)
        t_index = time.perf_counter() - t
        t = time.perf_counter()
        _, events = read_evt(big)
        t_parse = time.perf_counter() - t
        print(f"evt file: {n_lines} lines, {index.n_events} events")
        print(f"  index pass  {n_lines / t_index / 1e6:.2f} M lines/s")
        print(f"  full parse  {n_lines / t_parse / 1e3:.0f} k lines/s = {len(events) / t_parse:.0f} events/s")
        n, n_trk, dt = _stage_rate([str(big)])
        print(f"  generator_files stage  {n / dt:.0f} events/s, {n_trk / dt:.0f} tracks/s")
    root = data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.aa.root")
    n, n_trk, dt = _stage_rate([root] * 50)
    print(f"offline ROOT (x50): generator_files stage {n / dt:.0f} events/s")


if __name__ == "__main__":
    main()
