"""Terminal progress of a running production: per stage and overall, with rate and ETA.

On a terminal the table is redrawn in place (at most a few times a second); in a log file (not
a TTY) one line is printed every ``interval_s`` seconds and at the end.
"""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressDisplay", "format_duration"]


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12s``, or ``-`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressDisplay:
    """Collects task outcomes and shows per-stage and overall progress.

    Use ``start`` as the ``on_start`` and the instance itself as the ``progress`` callback of
    :func:`km3sim.pipeline.runner.run_production`.
    """

    def __init__(self, stream=None, tty: bool | None = None, interval_s: float = 10.0, verbose: bool = False):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else 0.25
        self.verbose = verbose
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._lines = 0
        self.errors_shown = 0

    # ----------------------------------------------------------------------- callbacks
    def start(self, info: dict) -> None:
        self.totals = dict(info.get("pending_by_stage", {}))
        self.done = {s: 0 for s in self.totals}
        self.failed = {s: 0 for s in self.totals}
        self.t0 = time.perf_counter()
        w = self.stream
        where = info.get("where") or ""
        print(f"  {info.get('n_tasks', 0)} tasks, {info.get('n_done', 0)} already done, "
              f"{sum(self.totals.values())} to run{' on ' + where if where else ''}", file=w, flush=True)
        if info.get("dashboard"):
            print(f"  dask dashboard: {info['dashboard']}", file=w, flush=True)
        elif where and where != "this process":
            print("  dask dashboard: not available (the scheduler has none, or bokeh is not installed)", file=w,
                  flush=True)

    def __call__(self, n_done: int, total: int, summary: dict) -> None:
        stage = summary.get("stage", "?")
        self.totals.setdefault(stage, 0)
        self.done.setdefault(stage, 0)
        self.failed.setdefault(stage, 0)
        if summary.get("status") == "failed" or "error" in summary:
            self.failed[stage] += 1
            if self.errors_shown < 5 or self.verbose:
                self._clear()
                print(f"  FAILED {summary.get('key', '')}: [{summary.get('error_class', '?')}] {summary.get('error', '')}",
                      file=self.stream, flush=True)
                self.errors_shown += 1
        else:
            self.done[stage] += 1
        now = time.perf_counter()
        if n_done >= total or now - self._last >= self.interval_s or self.verbose:
            self._last = now
            self.render(final=n_done >= total)

    # ----------------------------------------------------------------------- drawing
    def _rate_eta(self, done: int, total: int, elapsed: float) -> tuple[str, str]:
        if done <= 0 or elapsed <= 0:
            return "-", "-"
        rate = done / elapsed
        return f"{rate:.2f}/s", format_duration((total - done) / rate if total > done else 0.0)

    def lines(self) -> list[str]:
        elapsed = time.perf_counter() - self.t0
        out = []
        w = max([len("overall"), *(len(s) for s in self.totals)])
        for stage, total in self.totals.items():
            d, f = self.done.get(stage, 0), self.failed.get(stage, 0)
            rate, eta = self._rate_eta(d + f, total, elapsed)
            pct = 100.0 * (d + f) / total if total else 100.0
            out.append(f"  {stage.ljust(w)}  {d + f:>7}/{total:<7} {pct:5.1f}%  failed {f:<5} {rate:>9}  ETA {eta}")
        d_all = sum(self.done.values()) + sum(self.failed.values())
        t_all = sum(self.totals.values())
        rate, eta = self._rate_eta(d_all, t_all, elapsed)
        pct = 100.0 * d_all / t_all if t_all else 100.0
        out.append(f"  {'overall'.ljust(w)}  {d_all:>7}/{t_all:<7} {pct:5.1f}%  failed {sum(self.failed.values()):<5} "
                   f"{rate:>9}  ETA {eta}  elapsed {format_duration(elapsed)}")
        return out

    def _clear(self) -> None:
        if self.tty and self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self._lines = 0

    def render(self, final: bool = False) -> None:
        lines = self.lines()
        if self.tty:
            self._clear()
            self.stream.write("\n".join(lines) + "\n")
            self._lines = len(lines)
        else:
            self.stream.write("\n".join(lines if final else lines[-1:]) + "\n")
        self.stream.flush()
