"""Statistics of the data/simulation comparisons: χ²/ndf of histograms and rates, weighted KS.

* Histograms (:func:`chi2_histogram`): data counts d_i against the simulation's expectation
  s_i = L·Σw (rates w [1/s], data livetime L) with its Monte Carlo variance v_i = L²·Σw²;
  χ² = Σ (d_i − s_i)² / (s_i + v_i) over bins with s_i + v_i > 0 (Pearson's form with the
  expected Poisson variance of the data plus the simulation's own), ndf = number of those bins.
  Without a livetime ("shape" mode) the simulation is scaled to the data total and ndf is
  reduced by one. Bins are merged from the edges inwards until each holds an expectation of at
  least 5 (the usual validity condition of the χ² approximation, Cochran 1954).
* Measured rates with errors (:func:`chi2_values`): χ² = Σ (a_i − b_i)² / (σa_i² + σb_i²).
* Unbinned distributions (:func:`ks_weighted`): the two-sample Kolmogorov–Smirnov distance with
  weighted empirical distribution functions, p-value from the asymptotic Kolmogorov
  distribution with the effective sizes n_eff = (Σw)²/Σw² (Kish), n = n1·n2/(n1 + n2).

p-values come from :func:`scipy.stats.chi2.sf` and :func:`scipy.special.kolmogorov`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["Comparison", "chi2_histogram", "chi2_values", "ks_weighted", "MIN_EXPECTED"]

#: minimum expectation per (merged) bin for the χ² test
MIN_EXPECTED = 5.0


@dataclass
class Comparison:
    """One statistic: its value, degrees of freedom and p-value (NaN where not computed)."""

    test: str  # "chi2" or "KS"
    value: float = math.nan  # χ²/ndf, or the KS distance D
    ndf: int = 0
    p_value: float = math.nan
    note: str = ""

    @property
    def computed(self) -> bool:
        return math.isfinite(self.p_value)

    def text(self) -> str:
        if not self.computed:
            return f"{self.test}: not computed ({self.note})"
        if self.test == "chi2" and not math.isfinite(self.value):
            return f"χ² = ∞, p = 0 ({self.note})"
        if self.test == "chi2":
            return f"χ²/ndf = {self.value * self.ndf:.1f}/{self.ndf} = {self.value:.2f}, p = {self.p_value:.2g}"
        return f"KS D = {self.value:.3f}, p = {self.p_value:.2g}" + (f" ({self.note})" if self.note else "")


def _merge_low_bins(d, s, v, min_expected):
    """Merge adjacent bins (from both edges inwards) until each has s >= min_expected."""
    d, s, v = list(d), list(s), list(v)

    def merge(i, j):
        d[i] += d[j]
        s[i] += s[j]
        v[i] += v[j]
        del d[j], s[j], v[j]

    while len(s) > 1 and s[0] < min_expected:
        merge(0, 1)
    while len(s) > 1 and s[-1] < min_expected:
        merge(len(s) - 2, len(s) - 1)
    i = 1
    while i < len(s) - 1:
        if s[i] < min_expected:
            merge(i, i + 1) if s[i + 1] <= s[i - 1] else merge(i - 1, i)
        else:
            i += 1
    return np.asarray(d, float), np.asarray(s, float), np.asarray(v, float)


def chi2_histogram(data_counts, sim_sum_w, sim_sum_w2, *, livetime_s: float | None,
                   min_expected: float = MIN_EXPECTED, merge: bool = True) -> Comparison:
    """χ² of data counts against the weighted simulation (see the module docstring).

    Parameters
    ----------
    data_counts : array
        Data events per bin.
    sim_sum_w, sim_sum_w2 : array
        Σw and Σw² of the simulation per bin (w: rate [1/s] each event stands for).
    livetime_s : float or None
        Data livetime; None: normalise the simulation to the data total (shape comparison).
    merge : bool
        Merge low-expectation bins (ordered quantities). Without merging (categories, e.g.
        trigger types) data in a bin where the simulation expects nothing at all gives p = 0.
    """
    d = np.asarray(data_counts, dtype=float)
    sw = np.asarray(sim_sum_w, dtype=float)
    sw2 = np.asarray(sim_sum_w2, dtype=float)
    if d.sum() <= 0:
        return Comparison("chi2", note="no data entries")
    if sw.sum() <= 0:
        return Comparison("chi2", note="no simulated entries")
    if livetime_s is not None:
        scale, ndf_loss = float(livetime_s), 0
    else:
        scale, ndf_loss = d.sum() / sw.sum(), 1
    s = sw * scale
    v = sw2 * scale * scale
    if merge:
        d, s, v = _merge_low_bins(d, s, v, min_expected)
    elif np.any((d > 0) & (s + v <= 0)):
        bins = np.flatnonzero((d > 0) & (s + v <= 0)).tolist()
        return Comparison("chi2", value=math.inf, ndf=int(np.sum(s + v > 0)), p_value=0.0,
                          note=f"data in bins {bins} where the simulation has no entry")
    ok = (s + v) > 0
    ndf = int(ok.sum()) - ndf_loss
    if ndf < 1:
        return Comparison("chi2", note="too few entries for a χ² test")
    chi2 = float(np.sum((d[ok] - s[ok]) ** 2 / (s[ok] + v[ok])))
    return Comparison("chi2", value=chi2 / ndf, ndf=ndf, p_value=float(stats.chi2.sf(chi2, ndf)),
                      note="" if livetime_s is not None else "shape only")


def chi2_values(a, sa, b, sb) -> Comparison:
    """χ² of two sets of measured values with errors (bins where both are finite)."""
    a, sa, b, sb = (np.asarray(x, dtype=float) for x in (a, sa, b, sb))
    var = sa**2 + sb**2
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(var) & (var > 0)
    ndf = int(ok.sum())
    if ndf < 1:
        return Comparison("chi2", note="no bin with values and errors on both sides")
    chi2 = float(np.sum((a[ok] - b[ok]) ** 2 / var[ok]))
    return Comparison("chi2", value=chi2 / ndf, ndf=ndf, p_value=float(stats.chi2.sf(chi2, ndf)))


def ks_weighted(x, wx, y, wy) -> Comparison:
    """Two-sample KS test with weights (module docstring); ``x``: data, ``y``: simulation."""
    x, wx, y, wy = (np.asarray(a, dtype=float) for a in (x, wx, y, wy))
    mx, my = np.isfinite(x) & (wx > 0), np.isfinite(y) & (wy > 0)
    x, wx, y, wy = x[mx], wx[mx], y[my], wy[my]
    if len(x) < 2 or len(y) < 2:
        return Comparison("KS", note=f"too few finite entries (data {len(x)}, simulation {len(y)})")
    grid = np.unique(np.concatenate([x, y]))

    def cdf(v, w):
        o = np.argsort(v)
        c = np.cumsum(w[o]) / w.sum()
        return np.concatenate([[0.0], c])[np.searchsorted(v[o], grid, side="right")]

    dist = float(np.max(np.abs(cdf(x, wx) - cdf(y, wy))))
    n1 = wx.sum() ** 2 / np.sum(wx**2)
    n2 = wy.sum() ** 2 / np.sum(wy**2)
    n = n1 * n2 / (n1 + n2)
    p = float(special.kolmogorov(math.sqrt(n) * dist)) if dist > 0 else 1.0
    return Comparison("KS", value=dist, p_value=p, note=f"n_eff {n1:.0f} data, {n2:.0f} sim")
