"""Optical background: ⁴⁰K singles and genuine n-fold coincidences, dark counts, bioluminescence.

Model (PHYSICS.md §8.2 "How k40gen simulates ⁴⁰K", §12 production rates, §13 real-data figures):

- uncorrelated singles per PMT (⁴⁰K singles and dark counts), a Poisson process of one-p.e.
  hits; the rate of a PMT is either configured or read from :class:`RunConditions` at the event
  time. Configured and measured rates are TOTAL singles rates (everything a PMT counts), so the
  rate of hits the coincidences put on each PMT is subtracted (:meth:`DomCoincidences.pmt_rates_hz`);
- genuine coincidences per DOM, a Poisson process with the rates of 2..6-fold coincidences; the
  PMTs of a coincidence are chosen with the angular dependence of k40gen, p(c) ∝
  exp(c·(2.4347 − 0.68884c + 1.3911c²)) with c the cosine between PMT axes: the first PMT ∝
  Σ_j p(c_ij), the next ones ∝ the product of p(c_kj) over the PMTs already chosen; the hits
  have a common time with a Gaussian spread per hit (k40gen: σ 0.5 ns) plus the PMT TTS;
- every background hit is one p.e. whose charge is drawn above threshold from the PMT's charge
  model, so its ToT follows the pulse model (:mod:`km3sim.detector.pmt`);
- bioluminescence bursts (off by default): per DOM a Poisson process of bursts over the run,
  each multiplying the singles rates of the DOM's PMTs for its duration [UNVERIFIED parameters,
  PHYSICS.md §8.3: rate increase ×10-1000, 0.1-10 s, localised]; PMTs above the high-rate veto
  are silent.

The default coincidence rates and time spreads (:data:`K40_PRESETS`) are tuned so that the
real-data figures of PHYSICS.md §13 come out (two-fold excess 547/s ARCA, 522/s ORCA; peak rms
3.5 / 3.9 ns; ≥4-fold 25-ns clusters 5.0 / 3.9 Hz per DOM) when measured as in
:func:`twofold_coincidence_rate` and :func:`multifold_cluster_rate`; see the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from scipy.special import ndtr, ndtri

from km3sim.detector import _kernels as K
from km3sim.detector._kernels import choose_coincidence_pmts, coincidence_pmt_probabilities, simulate_hits
from km3sim.detector.pmt import PmtParameters, time_slewing_ns
from km3sim.random import stage_key

__all__ = [
    "K40_PRESETS",
    "K40Rates",
    "k40_pair_weight",
    "DomCoincidences",
    "Bioluminescence",
    "simulate_background",
    "run_hit_kernel",
    "measured_pmt_rates_hz",
    "twofold_coincidence_rate",
    "multifold_cluster_rate",
]


@dataclass(frozen=True)
class K40Rates:
    """⁴⁰K background of one site.

    Attributes
    ----------
    singles_hz : float
        Total singles rate per PMT [Hz] (everything a PMT counts: ⁴⁰K singles and coincidence
        hits, dark counts).
    fold_hz : tuple of float
        Genuine 2-, 3-, 4-, 5-, 6-fold coincidence rates per DOM [Hz].
    sigma_ns : float
        Gaussian spread of the hit times of a coincidence about their common time [ns] (before
        the PMT TTS).
    """

    singles_hz: float
    fold_hz: tuple
    sigma_ns: float


#: Site presets. Singles per PMT: production values of PHYSICS.md §12 (ORCA6 7000 Hz, ARCA21
#: 6500 Hz). Coincidence rates: the §12 production rates (570 / 57 / 7 / 0.8 / 0.09 Hz) scaled
#: down so that the measured two-fold excess and ≥4-fold cluster rates of §13 come out [D, tuned
#: with the measurement functions of this module]; the time spread replaces k40gen's 0.5 ns so
#: that with a 2 ns TTS the two-fold peak rms is the measured one (3.5 ns ARCA, 3.9 ns ORCA).
K40_PRESETS = {
    "orca": K40Rates(7000.0, (397.0, 33.0, 3.0, 0.35, 0.04), 1.75),
    "arca": K40Rates(6500.0, (410.0, 36.0, 4.0, 0.45, 0.05), 1.3),
}


def k40_pair_weight(cos_angle):
    """Angular weight of a ⁴⁰K PMT pair, p(c) = exp(c·(2.4347 − 0.68884c + 1.3911c²)) (k40gen,
    PHYSICS.md §8.2), c = cosine of the angle between the two PMT axes."""
    c = np.asarray(cos_angle, dtype=np.float64)
    return np.exp(c * (2.4347 - 0.68884 * c + 1.3911 * c * c))


def _dom_groups(detector) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, pmt indices) of the PMTs of each DOM, DOMs in order of first appearance."""
    dom = np.asarray(detector.pmt_dom_id, dtype=np.int64)
    if dom.size == 0:
        return np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.argsort(dom, kind="stable")
    ds = dom[order]
    starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
    offsets = np.r_[starts, len(ds)].astype(np.int64)
    # keep file order of DOMs
    first = order[starts]
    perm = np.argsort(first, kind="stable")
    counts = np.diff(offsets)[perm]
    pmts = np.concatenate([order[offsets[k]:offsets[k + 1]] for k in perm])
    off = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off, pmts.astype(np.int64)


class DomCoincidences:
    """The DOMs of a detector for genuine ⁴⁰K coincidences: PMT slots and angular weights.

    DOMs with fewer than two PMTs take no part. DOMs whose PMT-pair angle matrices agree
    (rounded to 1e-3 in cos) share one weight matrix ("type").
    """

    def __init__(self, detector):
        off, pmts = _dom_groups(detector)
        n_per = np.diff(off)
        keep = np.flatnonzero(n_per >= 2)
        self.dom_offsets = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(n_per[keep], out=self.dom_offsets[1:])
        self.dom_pmts = np.concatenate([pmts[off[k]:off[k + 1]] for k in keep]).astype(np.int64) if len(keep) else np.empty(0, np.int64)
        self.dom_ids = np.asarray(detector.pmt_dom_id, dtype=np.int64)[pmts[off[keep]]] if len(keep) else np.empty(0, np.int64)
        kmax = int(n_per[keep].max()) if len(keep) else 2
        self.kmax = kmax
        dirs = np.asarray(detector.pmt_dir, dtype=np.float64)
        cos_all = np.zeros((len(keep), kmax, kmax))
        nn = np.zeros(len(keep), dtype=np.int64)
        for j in range(len(keep)):
            idx = self.dom_pmts[self.dom_offsets[j]:self.dom_offsets[j + 1]]
            d = dirs[idx]
            d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
            n = len(idx)
            cos_all[j, :n, :n] = np.clip(d @ d.T, -1.0, 1.0)
            cos_all[j, n:, :] = 9.0  # padding marker
            cos_all[j, :, n:] = 9.0
            nn[j] = n
        if len(keep):
            key = np.round(cos_all, 3).reshape(len(keep), -1)
            _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        else:
            first, inv = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.dom_type = inv.reshape(-1).astype(np.int64)
        n_types = max(len(first), 1)
        self.wmat = np.zeros((n_types, kmax, kmax))
        self.first_cum = np.zeros((n_types, kmax))
        self.type_n_pmts = np.full(n_types, 2, dtype=np.int64)
        for t, j in enumerate(first):
            n = nn[j]
            w = k40_pair_weight(cos_all[j, :n, :n])
            np.fill_diagonal(w, 0.0)
            self.wmat[t, :n, :n] = w
            self.first_cum[t, :n] = np.cumsum(w.sum(axis=1))
            self.first_cum[t, n:] = self.first_cum[t, n - 1]
            self.type_n_pmts[t] = n
        self._prob_cache: dict = {}

    @property
    def n_doms(self) -> int:
        return len(self.dom_type)

    def participation(self, fold: int) -> list[np.ndarray]:
        """Per DOM type, the probability that each PMT slot takes part in a ``fold``-fold
        coincidence: exact for two-fold, Monte Carlo (400 000 draws, fixed seed) above."""
        if fold in self._prob_cache:
            return self._prob_cache[fold]
        out = []
        for t in range(len(self.type_n_pmts)):
            n = int(self.type_n_pmts[t])
            w = self.wmat[t, :n, :n]
            p1 = w.sum(axis=1) / w.sum()
            if fold == 2:
                p = p1 + (p1 / w.sum(axis=1)) @ w
            else:
                p = coincidence_pmt_probabilities(self.wmat[t], self.first_cum[t], n, fold, 400_000, 12345 + fold)
            out.append(np.asarray(p))
        self._prob_cache[fold] = out
        return out

    def pmt_rates_hz(self, fold_hz, n_pmts: int, keep_probability=None) -> np.ndarray:
        """Rate of coincidence hits each PMT records [Hz] (detector order, length ``n_pmts``).

        ``keep_probability`` (per PMT, default 1) is the chance that a coincidence photon on
        the PMT gives a hit (min(QE, 1) for active PMTs, 0 for silent ones).
        """
        out = np.zeros(n_pmts)
        for f, rate in enumerate(fold_hz):
            if rate <= 0:
                continue
            probs = self.participation(f + 2)
            for j in range(self.n_doms):
                sl = self.dom_pmts[self.dom_offsets[j]:self.dom_offsets[j + 1]]
                out[sl] += rate * probs[self.dom_type[j]][: len(sl)]
        if keep_probability is not None:
            out *= np.asarray(keep_probability, dtype=np.float64)
        return out

    def choose(self, fold: int, n: int, seed: int = 1) -> np.ndarray:
        """``n`` draws of the PMT slots of a ``fold``-fold coincidence on the first DOM (tests)."""
        from km3sim.random import rng_new

        state = rng_new(np.uint64(seed))
        t = int(self.dom_type[0])
        k = int(self.type_n_pmts[t])
        out = np.full((n, fold), -1, dtype=np.int64)
        chosen = np.empty(fold, dtype=np.int64)
        weights = np.empty(self.kmax)
        for i in range(n):
            m = choose_coincidence_pmts(state, self.wmat[t], self.first_cum[t], k, fold, chosen, weights)
            out[i, :m] = chosen[:m]
        return out


# ------------------------------------------------------------------------------ bioluminescence


@dataclass(frozen=True)
class Bioluminescence:
    """Bioluminescence bursts [all parameters UNVERIFIED, PHYSICS.md §8.3].

    Per DOM, bursts start as a Poisson process of ``burst_rate_hz``; a burst lasts a log-uniform
    time in ``duration_s`` and multiplies the singles rate of every PMT of the DOM by a
    log-uniform factor in ``factor`` (times a per-PMT log-normal spread ``pmt_spread`` to make it
    local). The timeline is drawn once per run from (seed, run) only.
    """

    burst_rate_hz: float = 0.002
    duration_s: tuple = (0.1, 10.0)
    factor: tuple = (1.5, 10.0)
    pmt_spread: float = 0.5

    def timeline(self, seed: int, run_id: int, livetime_s: float, n_doms: int, n_slots: int) -> dict:
        """Bursts of a run: arrays ``dom``, ``start_s``, ``stop_s``, ``factor`` (n_bursts, n_slots)."""
        rng = np.random.Generator(np.random.PCG64(int(stage_key(seed, run_id, "pmt_response/bioluminescence"))))
        n = rng.poisson(self.burst_rate_hz * max(livetime_s, 0.0) * n_doms)
        dom = rng.integers(0, max(n_doms, 1), n)
        start = rng.uniform(0.0, max(livetime_s, 0.0), n)
        lo, hi = np.log(self.duration_s[0]), np.log(self.duration_s[1])
        dur = np.exp(rng.uniform(lo, hi, n))
        flo, fhi = np.log(self.factor[0]), np.log(self.factor[1])
        f = np.exp(rng.uniform(flo, fhi, n))[:, None] * np.exp(self.pmt_spread * rng.standard_normal((n, n_slots)))
        return {"dom": dom, "start_s": start, "stop_s": start + dur, "factor": f}


# ------------------------------------------------------------------------------ kernel wrapper

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)
#: Φ⁻¹ at the midpoints of 2¹³ equal steps of (0, 1), for the background charge sampler (64 kB:
#: stays in the cache; the Gaussian is cut at ±3.7 σ).
NDTRI_TABLE = ndtri((np.arange(1 << 13) + 0.5) / (1 << 13))

#: Time slewing of PHYSICS.md §7.3 on a 1/8-ns grid of ToT 0..256 ns (exact: the table's nodes
#: are multiples of 1 ns, and it is linear between them).
SLEW_INV_STEP = 8.0
SLEW_TABLE = time_slewing_ns(np.arange(0, 256 * 8 + 1) / SLEW_INV_STEP)

#: ToT tables of the kernel: ToT of each pulse shape at q = 0, 1/512, ..., 8 p.e. (32 kB per
#: shape), linear interpolation (|error| < 2e-4 ns for the default shape, far below the 1-ns
#: digitisation); larger charges use the closed form.
TOT_INV_STEP = 512.0
TOT_Q_MAX = 8.0


def packed_pmt_parameters(params: PmtParameters) -> tuple:
    """Parameter class of each PMT, the class rows (``PP_*`` columns) of
    :func:`~km3sim.detector._kernels.simulate_hits`, the ToT tables of the distinct pulse shapes
    and the transit-time inverse CDFs; PMTs with equal parameters share a class."""
    n = params.n_pmts
    pp = np.zeros((n, K.PP_COLUMNS))
    pp[:, K.PP_QE] = params.qe
    pp[:, K.PP_GAIN] = params.gain
    pp[:, K.PP_SPREAD] = params.gain_spread
    pp[:, K.PP_THRESHOLD] = params.threshold
    pp[:, K.PP_BAND] = params.threshold_band
    pp[:, K.PP_RISE] = params.rise_time
    pp[:, K.PP_DECAY] = params.decay_time
    pp[:, K.PP_TRANSITION] = np.minimum(params.transition, 1e300)
    pp[:, K.PP_TTS] = params.tts
    n_tab = len(NDTRI_TABLE)
    with np.errstate(divide="ignore", invalid="ignore"):
        # background charge = draw_pe_charge conditioned above threshold: under-amplified part
        # (uniform in (threshold, gain)) with conditional weight w, else Gaussian above threshold
        z = np.where(params.gain_spread > 0, (params.threshold - params.gain) / params.gain_spread,
                     np.where(params.gain > params.threshold, -np.inf, np.inf))
        cdf_lo = ndtr(z)
        p_u = float(params.p_under_amplified)
        a = p_u * np.clip(1.0 - params.threshold / params.gain, 0.0, None)
        b = (1.0 - p_u) * (1.0 - cdf_lo)
        w = np.nan_to_num(np.where(a + b > 0, a / (a + b), 0.0))
        under_scale = np.nan_to_num(np.where(w > 0, (params.gain - params.threshold) / w, 0.0))
        g = np.where(w < 1.0, (1.0 - cdf_lo) / (1.0 - w), 0.0)
    pp[:, K.PP_W_UNDER] = w
    pp[:, K.PP_UNDER_SCALE] = under_scale
    pp[:, K.PP_QA] = n_tab * g  # position in NDTRI_TABLE = u·QA + QB for u >= w
    pp[:, K.PP_QB] = n_tab * (cdf_lo - w * g) - 0.5
    shapes = np.stack([params.threshold, params.rise_time, params.decay_time, pp[:, K.PP_TRANSITION]], axis=1)
    if n:
        ushape, sinv = np.unique(shapes, axis=0, return_inverse=True)
        pp[:, K.PP_SHAPE] = sinv.reshape(-1)
    else:
        ushape = np.array([[0.24, 7.24, 8.0, 1.7]])
    q = np.arange(int(TOT_Q_MAX * TOT_INV_STEP) + 1) / TOT_INV_STEP
    tot_tables = np.empty((len(ushape), len(q)))
    for k, (th, rise, dec, tr) in enumerate(ushape):
        tot_tables[k] = K.time_over_threshold_array(q, th, rise, dec, float(params.saturation), float(params.slope), tr)
    tts_index = getattr(params, "tts_table", None)
    pp[:, K.PP_TTS_TABLE] = -1.0 if tts_index is None else tts_index
    tables = list(getattr(params, "tts_tables", []) or [])
    tts_tables = np.stack([t.icdf for t in tables]) if tables else np.zeros((1, 2))
    if n == 0:
        return np.zeros(0, dtype=np.int32), np.zeros((1, K.PP_COLUMNS)), tot_tables, tts_tables
    table, pclass = np.unique(pp, axis=0, return_inverse=True)
    return (np.ascontiguousarray(pclass.reshape(-1), dtype=np.int32), np.ascontiguousarray(table),
            np.ascontiguousarray(tot_tables), np.ascontiguousarray(tts_tables))


def run_hit_kernel(
    seeds: np.ndarray,
    params: PmtParameters,
    active: np.ndarray,
    singles_hz: np.ndarray,
    doms: DomCoincidences,
    k40: K40Rates,
    window_margin_ns: float,
    *,  # packed: packed_pmt_parameters(params), to reuse between calls
    mc_offsets=None, mc_pmt=_EMPTY_I, mc_time=_EMPTY_F, mc_origin=_EMPTY_I,
    ex_offsets=None, ex_pmt=_EMPTY_I, ex_rate=_EMPTY_F,
    afterpulses: bool = True,
    packed: tuple | None = None,
    capacity: int | None = None,
):
    """Call :func:`km3sim.detector._kernels.simulate_hits` with the arrays of these objects.

    ``active`` (bool per PMT) are the PMTs that record hits; ``singles_hz`` the UNCORRELATED
    singles rate of each PMT [Hz] (0 for inactive ones). The output arrays are allocated here
    for the expected number of hits, or ``capacity`` (tests), and enlarged if an event does not
    fit.

    Returns
    -------
    hit_event, hit_pmt, hit_time, hit_tot, hit_npe, hit_origin : ndarray
        Index in ``seeds`` (int32), detector PMT index (int32), time [ns] (float64), ToT [ns,
        not rounded] (float32), number of pe (int32), origin (int32); ordered by event, then time.
    """
    n_ev = len(seeds)
    if mc_offsets is None:
        mc_offsets = np.zeros(n_ev + 1, dtype=np.int64)
    if ex_offsets is None:
        ex_offsets = np.zeros(n_ev + 1, dtype=np.int64)
    mc_offsets = np.ascontiguousarray(mc_offsets, dtype=np.int64)
    mc_time = np.ascontiguousarray(mc_time, dtype=np.float64)
    ex_offsets = np.ascontiguousarray(ex_offsets, dtype=np.int64)
    ex_rate = np.ascontiguousarray(ex_rate, dtype=np.float64)
    act = np.ascontiguousarray(active, dtype=np.uint8)
    pclass, ptable, tot_tables, tts_tables = packed_pmt_parameters(params) if packed is None else packed
    rates = np.clip(np.nan_to_num(np.where(act > 0, singles_hz, 0.0), nan=0.0), 0.0, None) * 1e-9  # [1/ns]
    alias_prob, alias_idx = K.alias_table(rates)
    singles_rate = float(rates.sum())
    fold_hz = np.asarray(k40.fold_hz, dtype=np.float64)
    fold_cum = np.cumsum(fold_hz) * 1e-9
    ap = float(params.afterpulse_probability if afterpulses else 0.0)

    # expected hits: singles + coincidence hits + extra singles + signal pe (with afterpulses)
    w_len = K.window_lengths(mc_offsets, mc_time, float(window_margin_ns))
    coinc_hits = float(np.sum((np.arange(len(fold_hz)) + 2) * fold_hz)) * 1e-9 * doms.n_doms
    expected = (singles_rate + coinc_hits) * float(w_len.sum()) + (1.0 + ap) * float(mc_offsets[-1])
    if len(ex_rate):
        ev_of_ex = np.repeat(np.arange(n_ev), np.diff(ex_offsets))
        expected += float(np.sum(ex_rate * w_len[ev_of_ex]))
    cap = int(expected + 6.0 * np.sqrt(expected) + 1024) if capacity is None else max(int(capacity), 1)
    out = _new_hit_arrays(cap)
    args = (
        np.ascontiguousarray(seeds, dtype=np.uint64), float(window_margin_ns),
        mc_offsets, np.ascontiguousarray(mc_pmt, dtype=np.int64), mc_time,
        np.ascontiguousarray(mc_origin, dtype=np.int64),
        ex_offsets, np.ascontiguousarray(ex_pmt, dtype=np.int64), ex_rate,
        act, pclass, ptable, NDTRI_TABLE, tot_tables, TOT_INV_STEP, tts_tables,
        alias_prob, alias_idx, singles_rate,
        doms.dom_offsets, doms.dom_pmts, doms.dom_type, doms.wmat, doms.first_cum, fold_cum, float(k40.sigma_ns),
        float(params.p_under_amplified), float(params.band_tot_mean), float(params.band_tot_sigma),
        float(params.saturation), float(params.slope),
        bool(params.slewing), SLEW_TABLE, SLEW_INV_STEP,
        ap, float(params.afterpulse_delay), float(params.afterpulse_delay_sigma),
    )
    e_done, n_hits = 0, 0
    while True:
        e_done, n_hits = simulate_hits(*args, *out, e_done, n_hits)
        if e_done >= n_ev:
            break
        # an event did not fit: room for the rest as expected so far, at least twice as much
        per_event = n_hits / max(e_done, 1) + 1024
        grown = _new_hit_arrays(max(2 * cap, int(n_hits + 1.2 * per_event * (n_ev - e_done)) + 4096))
        for old, new in zip(out, grown):
            new[:n_hits] = old[:n_hits]
        out, cap = grown, len(grown[0])
    h_event, h_pmt, h_time, h_tot, _, h_npe, h_origin = out
    return h_event[:n_hits], h_pmt[:n_hits], h_time[:n_hits], h_tot[:n_hits], h_npe[:n_hits], h_origin[:n_hits]


def _new_hit_arrays(n: int) -> tuple:
    """Output arrays of :func:`~km3sim.detector._kernels.simulate_hits` (event, PMT, time, ToT,
    charge, npe, origin) for ``n`` hits: 32 bytes per hit."""
    return (np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.float64), np.empty(n, np.float32),
            np.empty(n, np.float32), np.empty(n, np.int32), np.empty(n, np.int32))


def uncorrelated_rates_hz(total_hz: np.ndarray, active: np.ndarray, params: PmtParameters,
                          doms: DomCoincidences, k40: K40Rates) -> np.ndarray:
    """Uncorrelated singles rate per PMT [Hz]: the total rate minus the coincidence hits, ≥ 0."""
    keep = np.where(active, np.minimum(params.qe, 1.0), 0.0)
    coinc = doms.pmt_rates_hz(k40.fold_hz, len(total_hz), keep)
    return np.where(active, np.clip(np.nan_to_num(total_hz, nan=0.0) - coinc, 0.0, None), 0.0)


def simulate_background(
    detector,
    n_windows: int,
    window_ns: float,
    *,
    k40: K40Rates | str = "orca",
    total_rates_hz=None,
    params: PmtParameters | None = None,
    active=None,
    seed: int = 1,
):
    """Background hits only (no signal) in ``n_windows`` independent windows of ``window_ns``.

    For validation and benchmarks. ``total_rates_hz`` (per PMT, default ``k40.singles_hz``) are
    TOTAL singles rates, as measured; the coincidence hits are subtracted.

    Returns
    -------
    dict of arrays ``window``, ``pmt`` (detector index), ``time`` [ns, in [−window/2, window/2]
    up to the coincidence spread], ``tot`` [ns, not rounded], ``npe``.
    """
    from km3sim.detector.pmt import pmt_parameters

    if isinstance(k40, str):
        k40 = K40_PRESETS[k40]
    if params is None:
        params = pmt_parameters(detector)
    n = params.n_pmts
    act = params.switched_on if active is None else (np.asarray(active, dtype=bool) & params.switched_on)
    total = np.full(n, k40.singles_hz) if total_rates_hz is None else np.asarray(total_rates_hz, dtype=np.float64)
    doms = DomCoincidences(detector)
    singles = uncorrelated_rates_hz(total, act, params, doms, k40)
    seeds = np.arange(1, n_windows + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    ev, pmt, time, tot, npe, _ = run_hit_kernel(seeds, params, act, singles, doms, k40, 0.5 * window_ns, afterpulses=False)
    return {"window": ev, "pmt": pmt, "time": time, "tot": tot, "npe": npe}


# ------------------------------------------------------------------------------ measurements


def measured_pmt_rates_hz(pmt: np.ndarray, n_pmts: int, livetime_s: float) -> np.ndarray:
    """Hit rate of each PMT [Hz] from hit PMT indices over ``livetime_s``."""
    return np.bincount(np.asarray(pmt, dtype=np.int64), minlength=n_pmts)[:n_pmts] / livetime_s


@nb.njit(cache=True)
def _pair_histogram(window, dom, pmt, time, max_dt, n_bins):
    # hits sorted by (window, dom, time); pairs of different PMTs of one DOM with |dt| <= max_dt
    hist = np.zeros(n_bins, dtype=np.int64)
    n = window.shape[0]
    width = 2.0 * max_dt / n_bins
    for i in range(n):
        j = i + 1
        while j < n and window[j] == window[i] and dom[j] == dom[i] and time[j] - time[i] <= max_dt:
            if pmt[j] != pmt[i]:
                dt = time[j] - time[i]
                if pmt[j] < pmt[i]:
                    dt = -dt
                b = int((dt + max_dt) / width)
                if 0 <= b < n_bins:
                    hist[b] += 1
            j += 1
    return hist


def twofold_coincidence_rate(window, pmt, time, pmt_dom_index, n_doms: int, livetime_s: float,
                             max_dt_ns: float = 10.0, n_bins: int = 40):
    """Genuine two-fold coincidence rate per DOM as measured in data (PHYSICS.md §8.2, §13).

    All pairs of hits on different PMTs of one DOM with |Δt| ≤ ``max_dt_ns`` are histogrammed
    in Δt; the random pairs, R_i·R_j·(bin width) per pair of PMTs and unit time (km3pipe), are
    subtracted. Returns (excess pairs per DOM per second, rms of the excess Δt distribution
    [ns], bin centres, excess counts per bin).
    """
    window = np.asarray(window, dtype=np.int64)
    dom = np.asarray(pmt_dom_index, dtype=np.int64)[pmt]
    order = np.lexsort((time, dom, window))
    hist = _pair_histogram(window[order], dom[order], np.asarray(pmt)[order], np.asarray(time, dtype=np.float64)[order],
                           float(max_dt_ns), int(n_bins))
    counts = np.bincount(np.asarray(pmt, dtype=np.int64), minlength=len(pmt_dom_index)).astype(np.float64)
    rates = counts / livetime_s
    # Σ over unordered PMT pairs of one DOM of R_i·R_j
    per_dom_sum = np.bincount(pmt_dom_index, weights=rates, minlength=n_doms)
    per_dom_sq = np.bincount(pmt_dom_index, weights=rates**2, minlength=n_doms)
    pair_rate = 0.5 * (per_dom_sum**2 - per_dom_sq).sum()
    width_s = 2.0 * max_dt_ns / n_bins * 1e-9
    excess = hist - pair_rate * width_s * livetime_s
    centres = -max_dt_ns + (np.arange(n_bins) + 0.5) * (2.0 * max_dt_ns / n_bins)
    total = excess.sum()
    rms = math.sqrt(max(float(np.sum(excess * centres**2) / total), 0.0)) if total > 0 else math.nan
    return float(total / (n_doms * livetime_s)), rms, centres, excess


@nb.njit(cache=True)
def _count_clusters(window, dom, pmt, time, window_ns, min_pmts, n_pmts_max):
    n = window.shape[0]
    seen = np.full(n_pmts_max, -1, dtype=np.int64)
    count = 0
    i = 0
    while i < n:
        j = i
        k = 0
        while j < n and window[j] == window[i] and dom[j] == dom[i] and time[j] - time[i] <= window_ns:
            if seen[pmt[j]] != i:
                seen[pmt[j]] = i
                k += 1
            j += 1
        if k >= min_pmts:
            count += 1
            i = j  # next cluster starts after this one
        else:
            i += 1
    return count


def multifold_cluster_rate(window, pmt, time, pmt_dom_index, n_doms: int, livetime_s: float,
                           window_ns: float = 25.0, min_pmts: int = 4) -> float:
    """Rate per DOM [Hz] of clusters of hits on ≥ ``min_pmts`` different PMTs of one DOM within
    ``window_ns`` from the cluster's first hit (supernova-trigger-like, PHYSICS.md §12, §13);
    hits of a counted cluster do not start another one."""
    window = np.asarray(window, dtype=np.int64)
    dom = np.asarray(pmt_dom_index, dtype=np.int64)[pmt]
    order = np.lexsort((time, dom, window))
    pmt = np.asarray(pmt, dtype=np.int64)
    n = _count_clusters(window[order], dom[order], pmt[order], np.asarray(time, dtype=np.float64)[order],
                        float(window_ns), int(min_pmts), int(pmt.max()) + 1 if len(pmt) else 1)
    return n / (n_doms * livetime_s)
