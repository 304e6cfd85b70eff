"""The data/simulation validation report: plots, statistics and one self-contained HTML file.

:func:`validate` reads the simulation (:func:`~km3sim.validate.samples.sim_sample`) and the
data (:func:`~km3sim.validate.samples.data_sample`), draws every plot of :data:`PLOTS` with
matplotlib and computes its statistics (:mod:`km3sim.validate.stats`). The simulation is
weighted to the data livetime (rates x livetime) and stacked by component; without a known
data livetime it is normalised to the number of data entries (shapes only). A plot is flagged
when one of its p-values is below ``alpha``. :meth:`ValidationReport.write_html` embeds the
PNGs as base64 data URIs, so the file opens in a browser without a server.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim import __version__
from km3sim.detector.conditions import RING_COS_ZENITH
from km3sim.validate.samples import COINCIDENCE_WINDOW_NS, COMPONENTS, MAX_MULTIPLICITY, Sample
from km3sim.validate.stats import Comparison, chi2_histogram, chi2_values, ks_weighted

__all__ = ["PLOTS", "PlotResult", "ValidationReport", "validate", "build_report"]

log = logging.getLogger(__name__)

#: Every plot of the report: id -> title.
PLOTS = {
    "singles_rates_summaryslices": "PMT singles rates per PMT ring (data: summaryslices; simulation: background hits)",
    "singles_rates_snapshot": "PMT singles rates per PMT ring (non-triggered snapshot hits, both)",
    "coincidence_rates": f"Coincidence rates per DOM vs multiplicity ({COINCIDENCE_WINDOW_NS:g} ns clusters)",
    "hits_per_event": "Snapshot hits per triggered event",
    "triggered_hits_per_event": "Triggered hits per event",
    "triggered_doms_per_event": "Triggered DOMs per event",
    "tot": "Time over threshold of snapshot hits",
    "trigger_rates": "Trigger rates per trigger type",
    "reco_zenith": "Reconstructed zenith angle (best fit per event)",
    "reco_energy": "Reconstructed energy (best fit per event)",
    "reco_likelihood": "Fit likelihood (best fit per event)",
}

_COLOURS = {"muons": "tab:blue", "neutrinos": "tab:green", "pure noise": "tab:gray", "other": "tab:purple"}
_TRIGGER_BITS = ((1, "3DShower"), (2, "MXShower"), (4, "3DMuon"), (5, "NB"), (31, "factory limit"))


@dataclass
class PlotResult:
    """One plot of the report."""

    id: str
    title: str
    png: bytes = b""
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    available: bool = True

    def flagged(self, alpha: float) -> bool:
        return any(c.computed and c.p_value < alpha for c in self.comparisons)


@dataclass
class ValidationReport:
    """The result of :func:`validate`."""

    sim: Sample
    data: Sample
    plots: list[PlotResult]
    alpha: float = 1e-3
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def plot(self, plot_id: str) -> PlotResult:
        for p in self.plots:
            if p.id == plot_id:
                return p
        raise KeyError(plot_id)

    @property
    def flagged(self) -> list[str]:
        """Ids of the plots whose data and simulation disagree (a p-value < alpha)."""
        return [p.id for p in self.plots if p.flagged(self.alpha)]

    def summary(self) -> str:
        lines = []
        for p in self.plots:
            stat = "; ".join(c.text() for c in p.comparisons) or "no statistic"
            mark = "DISAGREE" if p.flagged(self.alpha) else ("n/a" if not p.available else "ok")
            lines.append(f"{mark:8s} {p.id}: {stat}")
        return "\n".join(lines)

    def write_html(self, path: str | os.PathLike) -> Path:
        """Write the report as one HTML file (PNGs embedded as data URIs), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _html(self)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


# ------------------------------------------------------------------------------------ drawing
def _figure(ncols=1):
    from km3sim._optional import require

    require("matplotlib", "the validation report")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * ncols, 4.2), layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _mode(sim: Sample, data: Sample) -> tuple[float | None, str]:
    if data.livetime_s:
        return data.livetime_s, f"simulation weighted to the data livetime ({data.livetime_s:.4g} s)"
    return None, "simulation normalised to the number of data entries (data livetime unknown)"


def _edges(values_list, lo=None, hi=None, n=25, integer=False, log=False):
    v = np.concatenate([np.asarray(x, dtype=float)[np.isfinite(x)] for x in values_list if len(x)] or [np.zeros(0)])
    if lo is None:
        lo = float(np.min(v)) if len(v) else 0.0
    if hi is None:
        hi = float(np.percentile(v, 99.5)) if len(v) else 1.0
    if hi <= lo:
        hi = lo + 1.0
    if log and lo > 0:
        e = np.geomspace(lo, hi * 1.0001, n + 1)
    else:
        e = np.linspace(lo, hi, n + 1)
    if integer:
        e = np.unique(np.floor(e)) - 0.5
        if len(e) < 2:
            e = np.array([lo - 0.5, lo + 0.5])
        e[-1] = max(e[-1], hi + 0.5)
    return e


def _clip(values, edges):
    """Values clipped into the histogram range (under- and overflow in the edge bins)."""
    v = np.asarray(values, dtype=float)
    return np.clip(v, edges[0], np.nextafter(edges[-1], -np.inf))


def _hist_compare(pid, title, data_vals, sim_vals, sim_w, sim_comp, edges, livetime, mode_text, xlabel,
                  logy=False, ks=True, ylabel_unit="events") -> PlotResult:
    res = PlotResult(pid, title)
    data_vals = np.asarray(data_vals, dtype=float)
    sim_vals = np.asarray(sim_vals, dtype=float)
    sim_w = np.asarray(sim_w, dtype=float)
    fd, fs = np.isfinite(data_vals), np.isfinite(sim_vals)
    d = np.histogram(_clip(data_vals[fd], edges), edges)[0].astype(float)
    sw = np.histogram(_clip(sim_vals[fs], edges), edges, weights=sim_w[fs])[0]
    sw2 = np.histogram(_clip(sim_vals[fs], edges), edges, weights=sim_w[fs] ** 2)[0]
    scale = livetime if livetime is not None else (d.sum() / sw.sum() if sw.sum() > 0 else 0.0)
    fig = _figure()
    ax = fig.add_subplot()
    comps = [c for c in COMPONENTS if np.any(sim_comp[fs] == c)]
    bottom = np.zeros(len(edges) - 1)
    for c in comps:
        m = fs & (sim_comp == c)
        h = np.histogram(_clip(sim_vals[m], edges), edges, weights=sim_w[m])[0] * scale
        ax.stairs(bottom + h, edges, baseline=bottom, fill=True, color=_COLOURS[c], alpha=0.6, label=f"sim: {c}")
        bottom = bottom + h
    if len(comps):
        err = np.sqrt(sw2) * scale
        ax.stairs(bottom + err, edges, baseline=np.clip(bottom - err, 0, None), fill=True, color="k", alpha=0.12,
                  label="sim MC error")
    centres = 0.5 * (edges[1:] + edges[:-1])
    if d.sum() > 0:
        ax.errorbar(centres, d, yerr=np.sqrt(d), fmt="o", color="k", ms=4, label=f"data ({int(d.sum())})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel_unit} per bin" + (" (in the data livetime)" if livetime is not None else " (sim scaled to data)"))
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    res.png = _png(fig)
    res.comparisons.append(chi2_histogram(d, sw, sw2, livetime_s=livetime))
    if ks:
        res.comparisons.append(ks_weighted(data_vals, np.ones(len(data_vals)), sim_vals, sim_w))
    res.notes.append(mode_text)
    if d.sum() == 0:
        res.notes.append("no data entries")
    if sw.sum() == 0:
        res.notes.append("no simulated entries")
    return res


def _rates_plot(pid, title, x, xlabels, data, sim, ylabel, xlabel, logy=False, notes=()) -> PlotResult:
    res = PlotResult(pid, title, notes=list(notes))
    fig = _figure()
    ax = fig.add_subplot()
    if sim is not None:
        ax.errorbar(x, sim["mean"], yerr=sim["err"], fmt="s-", color="tab:blue", ms=4, label="simulation")
    if data is not None:
        ax.errorbar(x, data["mean"], yerr=data["err"], fmt="o", color="k", ms=4, label="data")
    ax.set_xticks(x)
    ax.set_xticklabels(xlabels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    res.png = _png(fig)
    if data is None or sim is None:
        res.comparisons.append(Comparison("chi2", note="missing on the " + ("data" if data is None else "simulation") + " side"))
    else:
        res.comparisons.append(chi2_values(data["mean"], data["err"], sim["mean"], sim["err"]))
    return res


def _unavailable(pid, reason) -> PlotResult:
    fig = _figure()
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, f"not available:\n{reason}", ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(PLOTS[pid], fontsize=10)
    return PlotResult(pid, PLOTS[pid], png=_png(fig), comparisons=[Comparison("chi2", note=reason)],
                      notes=[reason], available=False)


def _snapshot_rates(s: Sample, what: str):
    """Weighted rate estimates from the per-event background measures of a sample."""
    snap = s.snap
    if not snap or not len(snap.get("span_s", ())):
        return None
    w = snap["weight"]
    exposure = float(np.sum(w * snap["span_s"]))
    if exposure <= 0:
        return None
    counts = snap["ring_counts"] if what == "rings" else snap["mult"][:, 2:]
    units = s.n_pmts_ring if what == "rings" else np.full(counts.shape[1], s.n_doms)
    span = snap["span_s"]
    num = (w[:, None] * counts).sum(axis=0)
    ratio = num / exposure  # per unit (PMT or DOM) after dividing by units
    # variance of the ratio estimator sum(w N)/sum(w T) by linearisation ("sandwich"): it uses
    # the event-to-event spread, so hits that come in groups (signal light, coincidences) and
    # varying windows are accounted for, not only Poisson counting
    resid = counts - ratio[None, :] * span[:, None]
    var = ((w**2)[:, None] * resid**2).sum(axis=0)
    n_ev = int(np.count_nonzero(span > 0))
    if n_ev > 1:
        var *= n_ev / (n_ev - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ratio / units
        err = np.sqrt(var) / (units * exposure)
    return {"mean": mean, "err": err}


# ------------------------------------------------------------------------------------ report
def build_report(sim: Sample, data: Sample, *, alpha: float = 1e-3) -> ValidationReport:
    """Draw every plot of :data:`PLOTS` and compute its statistics."""
    livetime, mode_text = _mode(sim, data)
    plots: list[PlotResult] = []
    ring_x = np.arange(len(RING_COS_ZENITH))
    ring_labels = [f"{c:+.2f}" for c in RING_COS_ZENITH]

    # 1. singles rates per ring: summaryslices vs simulated background hits
    if data.summary_rings is None:
        plots.append(_unavailable("singles_rates_summaryslices", "the data have no summaryslices"))
    elif sim.summary_rings is None:
        plots.append(_unavailable("singles_rates_summaryslices", "the simulation has no detector-response output"))
    else:
        to_khz = lambda r: {"mean": r["mean"] / 1e3, "err": r["err"] / 1e3}  # noqa: E731
        plots.append(_rates_plot("singles_rates_summaryslices", PLOTS["singles_rates_summaryslices"], ring_x,
                                 ring_labels, to_khz(data.summary_rings), to_khz(sim.summary_rings),
                                 "mean singles rate per PMT [kHz]", "PMT ring: cos(zenith) of the PMT axis (bottom -> top)",
                                 notes=[f"data: {data.summary_source}", f"simulation: {sim.summary_source}"]))
    # 2. singles rates per ring from snapshot hits
    d_r, s_r = _snapshot_rates(data, "rings"), _snapshot_rates(sim, "rings")
    if d_r is None or s_r is None:
        plots.append(_unavailable("singles_rates_snapshot", f"no snapshot hits on the {'data' if d_r is None else 'simulation'} side"))
    else:
        to_khz = lambda r: {"mean": r["mean"] / 1e3, "err": r["err"] / 1e3}  # noqa: E731
        plots.append(_rates_plot("singles_rates_snapshot", PLOTS["singles_rates_snapshot"], ring_x, ring_labels,
                                 to_khz(d_r), to_khz(s_r), "mean hit rate per PMT [kHz]",
                                 "PMT ring: cos(zenith) of the PMT axis (bottom -> top)",
                                 notes=["hits that took part in no trigger; time covered estimated from the hits' span"]))
    # 3. coincidences vs multiplicity
    d_c, s_c = _snapshot_rates(data, "mult"), _snapshot_rates(sim, "mult")
    if d_c is None or s_c is None:
        plots.append(_unavailable("coincidence_rates", f"no snapshot hits on the {'data' if d_c is None else 'simulation'} side"))
    else:
        mx = np.arange(2, MAX_MULTIPLICITY + 1)
        labels = [str(m) for m in mx[:-1]] + [f">={mx[-1]}"]
        plots.append(_rates_plot("coincidence_rates", PLOTS["coincidence_rates"], mx, labels, d_c, s_c,
                                 "clusters per DOM per second [Hz]", "multiplicity (distinct PMTs of a DOM)", logy=True,
                                 notes=["non-triggered snapshot hits; a counted cluster's hits open no other"]))
    # 4-6. per-event hit counts
    for pid, key, xl in (("hits_per_event", "n_hits", "snapshot hits"),
                         ("triggered_hits_per_event", "n_trig_hits", "triggered hits"),
                         ("triggered_doms_per_event", "n_trig_doms", "triggered DOMs")):
        if not data.events or not sim.events:
            plots.append(_unavailable(pid, f"no triggered events on the {'data' if not data.events else 'simulation'} side"))
            continue
        e = _edges([data.events[key], sim.events[key]], lo=0.0, integer=True, n=30)
        plots.append(_hist_compare(pid, PLOTS[pid], data.events[key], sim.events[key], sim.events["weight"],
                                   sim.events["component"], e, livetime, mode_text, xl))
    # 7. ToT
    if not len(data.tot.get("value", ())) or not len(sim.tot.get("value", ())):
        plots.append(_unavailable("tot", f"no snapshot hits on the {'data' if not len(data.tot.get('value', ())) else 'simulation'} side"))
    else:
        e = np.arange(-0.5, 80.5, 2.0)
        plots.append(_hist_compare("tot", PLOTS["tot"], data.tot["value"], sim.tot["value"], sim.tot["weight"],
                                   sim.tot["component"], e, None, "shapes only: the number of hits follows the "
                                   "number of events, so hits are not independent counts", "ToT [ns] (last bin: overflow)",
                                   logy=True, ylabel_unit="hits"))
    # 8. trigger rates per type
    plots.append(_trigger_plot(data, sim, livetime, mode_text))
    # 9-11. reconstruction
    rec_note = f"fits: data rec_type {data.rec_types or 'none'}, simulation rec_type {sim.rec_types or 'none'}"
    for pid, key, xl, edges in (("reco_zenith", "cos_zenith", "cos(zenith) of the fitted direction (1: down-going)",
                                 np.linspace(-1.0, 1.0, 21)),
                                ("reco_energy", "log10_energy", "log10(E / GeV)", None),
                                ("reco_likelihood", "likelihood", "likelihood (as written by the fit)", None)):
        dv = data.reco.get(key, np.zeros(0))
        sv = sim.reco.get(key, np.zeros(0))
        n_d, n_s = int(np.isfinite(dv).sum()), int(np.isfinite(sv).sum())
        if n_d == 0 or n_s == 0:
            side = "data" if n_d == 0 else "simulation"
            why = "no fitted events" if not len(dv if n_d == 0 else sv) else f"no finite {key} in the fits (the fit writes none)"
            plots.append(_unavailable(pid, f"{side}: {why}"))
            continue
        if edges is None:
            lo = float(np.nanpercentile(np.concatenate([dv, sv]), 0.5))
            hi = float(np.nanpercentile(np.concatenate([dv, sv]), 99.5))
            edges = _edges([dv, sv], lo=lo, hi=hi, n=20)
        r = _hist_compare(pid, PLOTS[pid], dv, sv, sim.reco["weight"], sim.reco["component"], edges, livetime,
                          mode_text, xl)
        r.notes.append(rec_note)
        if set(data.rec_types) != set(sim.rec_types):
            r.notes.append("data and simulation were fitted by different reconstructions")
        plots.append(r)
    return ValidationReport(sim=sim, data=data, plots=plots, alpha=alpha)


def _trigger_plot(data: Sample, sim: Sample, livetime, mode_text) -> PlotResult:
    pid = "trigger_rates"
    if not data.events or not sim.events:
        return _unavailable(pid, f"no triggered events on the {'data' if not data.events else 'simulation'} side")
    bits, names = [], []
    dm, sm, w = data.events["trigger_mask"], sim.events["trigger_mask"], sim.events["weight"]
    for bit, name in _TRIGGER_BITS:
        if np.any((dm >> np.uint64(bit)) & np.uint64(1)) or np.any((sm >> np.uint64(bit)) & np.uint64(1)):
            bits.append(bit)
            names.append(name)
    d = np.array([np.sum((dm >> np.uint64(b)) & np.uint64(1)) for b in bits], dtype=float)
    sw = np.array([np.sum(w[((sm >> np.uint64(b)) & np.uint64(1)) == 1]) for b in bits])
    sw2 = np.array([np.sum(w[((sm >> np.uint64(b)) & np.uint64(1)) == 1] ** 2) for b in bits])
    res = PlotResult(pid, PLOTS[pid], notes=[mode_text, "an event counts once for every trigger bit it has"])
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(bits))
    if livetime is not None:
        ax.bar(x, sw, color="tab:blue", alpha=0.6, label="simulation")
        ax.errorbar(x, sw, yerr=np.sqrt(sw2), fmt="none", color="tab:blue")
        ax.errorbar(x, d / livetime, yerr=np.sqrt(d) / livetime, fmt="o", color="k", label="data")
        ax.set_ylabel("trigger rate [Hz]")
    else:
        frac_s = sw / sw.sum() if sw.sum() > 0 else sw
        ax.bar(x, frac_s, color="tab:blue", alpha=0.6, label="simulation")
        nd = max(len(dm), 1)
        ax.errorbar(x, d / nd, yerr=np.sqrt(d) / nd, fmt="o", color="k", label="data")
        ax.set_ylabel("fraction of triggered events")
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.legend(fontsize=8)
    ax.set_title(PLOTS[pid], fontsize=10)
    res.png = _png(fig)
    # shapes only: the simulation scaled to the data summed over the bits (bits may overlap)
    res.comparisons.append(chi2_histogram(d, sw, sw2, livetime_s=livetime, merge=False))
    return res


def validate(sim_paths, data_paths, *, detector=None, data_livetime_s: float | None = None, flux=None,
             alpha: float = 1e-3, max_background_events: int = 2000) -> ValidationReport:
    """Compare simulation and data: the whole report (see the module docstring).

    Parameters
    ----------
    sim_paths : path or list of paths
        Productions (YAML or output directories).
    data_paths : list of paths
        Real-data files and/or km3sim files of data (:func:`~km3sim.validate.samples.data_sample`).
    detector : Detector or path, optional
        Detector of the data (calibration, PMT rings).
    data_livetime_s : float, optional
        Overrides the data livetime found in the files.
    flux : callable, optional
        For neutrino productions (default: Honda).
    alpha : float
        p-value below which a plot is flagged.
    """
    from km3sim.validate.samples import data_sample, sim_sample

    if isinstance(detector, (str, os.PathLike)):
        from km3sim.io.detx import read_detector

        detector = read_detector(detector)
    sim = sim_sample(sim_paths, flux=flux, max_background_events=max_background_events)
    data = data_sample(list(data_paths), detector=detector, livetime_s=data_livetime_s)
    return build_report(sim, data, alpha=alpha)


# ------------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:sans-serif;margin:1.5em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:0.9em;text-align:left}
.bad{background:#f8d0d0}.ok{background:#d8f0d8}.na{background:#eee}
.plot{display:inline-block;vertical-align:top;margin:0.6em;padding:0.4em;border:1px solid #ccc;width:600px}
.plot img{width:100%}.notes{font-size:0.8em;color:#555}
"""


def _html(rep: ValidationReport) -> str:
    e = html.escape
    sim, data = rep.sim, rep.data
    rows = []
    for p in rep.plots:
        cls = "bad" if p.flagged(rep.alpha) else ("na" if not p.available else "ok")
        verdict = "disagree" if cls == "bad" else ("not available" if cls == "na" else "agree")
        stats = "<br>".join(e(c.text()) for c in p.comparisons)
        rows.append(f'<tr class="{cls}"><td><a href="#{p.id}">{e(p.title)}</a></td><td>{stats}</td><td>{verdict}</td></tr>')
    blocks = []
    for p in rep.plots:
        img = base64.b64encode(p.png).decode("ascii")
        cls = "bad" if p.flagged(rep.alpha) else ("na" if not p.available else "ok")
        notes = "".join(f"<li>{e(n)}</li>" for n in p.notes)
        stats = "<br>".join(e(c.text()) for c in p.comparisons)
        blocks.append(f'<div class="plot" id="{p.id}"><h3>{e(p.title)}</h3>'
                      f'<img alt="{e(p.title)}" src="data:image/png;base64,{img}">'
                      f'<p class="{cls}">{stats}</p><ul class="notes">{notes}</ul></div>')

    def sample_info(s: Sample) -> str:
        lt = f"{s.livetime_s:.4g} s" if s.livetime_s else "unknown"
        src = "".join(f"<li>{e(x)}</li>" for x in s.sources)
        notes = "".join(f"<li>{e(x)}</li>" for x in s.notes)
        comps = ""
        if s.is_sim and s.events:
            parts = [f"{c}: {np.sum(s.events['weight'][s.events['component'] == c]):.4g} Hz"
                     for c in COMPONENTS if np.any(s.events["component"] == c)]
            comps = f"<p>triggered rate by component: {e(', '.join(parts))}</p>"
        return (f"<p>{s.n_events} triggered events, {len(s.reco.get('weight', ()))} fitted; livetime {lt}</p>"
                f"{comps}<ul>{src}</ul>" + (f'<ul class="notes">{notes}</ul>' if notes else ""))

    n_bad = len(rep.flagged)
    verdict = (f"<p class='bad'>{n_bad} of {len(rep.plots)} plots disagree (p &lt; {rep.alpha:g}): "
               f"{e(', '.join(rep.flagged))}</p>" if n_bad else
               f"<p class='ok'>no plot disagrees at p &lt; {rep.alpha:g}</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>km3sim validation report</title>
<style>{_CSS}</style></head><body>
<h1>km3sim validation: simulation vs data</h1>
<p>km3sim {e(__version__)}, {e(rep.created)}. Statistics: χ²/ndf of binned distributions and rates (data
Poisson and simulation MC errors; low-expectation bins merged) and, for distributions, the weighted
two-sample Kolmogorov-Smirnov test. A plot is flagged when a p-value is below {rep.alpha:g}.</p>
{verdict}
<h2>Simulation</h2>{sample_info(sim)}
<h2>Data</h2>{sample_info(data)}
<h2>Summary</h2>
<table><tr><th>plot</th><th>statistics</th><th>verdict</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>
{''.join(blocks)}
</body></html>
"""

