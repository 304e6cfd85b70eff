"""numba kernels of the PMT response and the optical background.

Arrays, scalars and seeds only; see :mod:`km3sim.detector.pmt` (pulse model, PHYSICS.md §7.3),
:mod:`km3sim.detector.background` (⁴⁰K singles and coincidences, PHYSICS.md §8, §12) and
:mod:`km3sim.detector.response` (the stage) for the models and their sources.

Speed notes (the background is most of the hits; target 2·10⁷ hits/s per core): the singles are
generated in time order (no sorting), two 64-bit draws each with the generator state held in
registers, PMT by alias table, charge and ToT by table look-up; the per-hit loop
(:func:`time_ordered_pass`) is a separate function that never re-binds an array, because numba
reference-counts re-bound arrays on every loop iteration (atomic operations that cost more than
the physics), and calls its helpers that take arrays as plain functions (numba's
``inline="always"`` re-binds array arguments, with the same cost; LLVM inlines them anyway);
the caller allocates the output once (numpy, huge pages).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform, xoshiro_next, xoshiro_normal

# ------------------------------------------------------------------------------ pulse model


@nb.njit(cache=True)
def tot_log_ns(charge, threshold, rise_time, decay_time):
    """ToT [ns] of the Gaussian-edge / exponential-tail pulse (PHYSICS.md §7.3 closed form),
    without the linear regime and saturation; 0 for ``charge <= threshold``."""
    if charge <= threshold:
        return 0.0
    log_ratio = math.log(charge / threshold)
    rise = rise_time * math.sqrt(2.0 * log_ratio)
    t1 = rise_time * rise_time / decay_time
    g1 = 0.5 * t1 * t1 / (rise_time * rise_time)  # -ln of the Gaussian at t1 (relative)
    if log_ratio <= g1:
        return 2.0 * rise  # threshold crossed on the Gaussian part, before the tail starts
    return rise + t1 + decay_time * (log_ratio - g1)


@nb.njit(cache=True)
def time_over_threshold_scalar(charge, threshold, rise_time, decay_time, saturation, slope, transition):
    """ToT [ns] of a pulse of ``charge`` p.e. (Jpp model, PHYSICS.md §7.3): logarithmic
    (:func:`tot_log_ns`) up to ``transition`` p.e., then linear with ``slope`` ns/p.e., capped
    at ``saturation``; 0 below threshold."""
    if charge <= threshold:
        return 0.0
    if charge > transition:
        tot = tot_log_ns(transition, threshold, rise_time, decay_time) + slope * (charge - transition)
    else:
        tot = tot_log_ns(charge, threshold, rise_time, decay_time)
    if tot > saturation:
        tot = saturation
    return tot


@nb.njit(cache=True)
def time_over_threshold_array(charges, threshold, rise_time, decay_time, saturation, slope, transition):
    """:func:`time_over_threshold_scalar` over an array of charges."""
    out = np.empty(charges.shape[0], dtype=np.float64)
    for i in range(charges.shape[0]):
        out[i] = time_over_threshold_scalar(charges[i], threshold, rise_time, decay_time, saturation, slope, transition)
    return out


@nb.njit(cache=True)
def table_lookup(x, table, inv_step):
    """Linear interpolation in ``table`` sampled at x = k / inv_step, k = 0..n−1, constant
    beyond its ends."""
    f = x * inv_step
    n = table.shape[0]
    if f <= 0.0:
        return table[0]
    if f >= n - 1:
        return table[n - 1]
    k = int(f)
    f -= k
    return table[k] + f * (table[k + 1] - table[k])


@nb.njit(cache=True)
def draw_pe_charge(state, gain, gain_spread, p_under):
    """Charge of one photo-electron [p.e.]: with probability ``p_under`` an under-amplified pe,
    uniform in [0, gain) [UNVERIFIED shape], else Gaussian about ``gain`` with σ = ``gain_spread``;
    negative values set to 0 (Jpp PMT model, PHYSICS.md §7.3)."""
    if p_under > 0.0 and rng_uniform(state) < p_under:
        return gain * rng_uniform(state)
    q = gain + gain_spread * rng_normal(state)
    return q if q > 0.0 else 0.0



@nb.njit(cache=True)
def _grow_i8(a, n):
    out = np.empty(max(2 * a.shape[0], n), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True)
def _grow_f8(a, n):
    out = np.empty(max(2 * a.shape[0], n), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True, _nrt=False)
def choose_coincidence_pmts(state, wmat, first_cum, n_dom_pmts, fold, chosen, weights):
    """Choose ``fold`` distinct PMT slots of one DOM as k40gen does (PHYSICS.md §8.2): the first
    ∝ Σ_j p(c_ij) (``first_cum`` is its cumulative), each next one ∝ the product of p(c_kj)
    over the PMTs k already chosen. Writes the slots into ``chosen[:fold]``; returns the number
    chosen (less than ``fold`` only if the weights run out)."""
    u = rng_uniform(state) * first_cum[n_dom_pmts - 1]
    k = 0
    while k < n_dom_pmts - 1 and first_cum[k] <= u:
        k += 1
    chosen[0] = k
    n = 1
    for j in range(n_dom_pmts):
        weights[j] = wmat[k, j]
    weights[k] = 0.0
    while n < fold:
        tot = 0.0
        for j in range(n_dom_pmts):
            tot += weights[j]
        if tot <= 0.0:
            break
        u = rng_uniform(state) * tot
        acc = 0.0
        k = -1
        for j in range(n_dom_pmts):
            if weights[j] > 0.0:
                acc += weights[j]
                k = j
                if acc > u:
                    break
        chosen[n] = k
        n += 1
        for j in range(n_dom_pmts):
            weights[j] *= wmat[k, j]
        weights[k] = 0.0
    return n


@nb.njit(cache=True)
def coincidence_pmt_probabilities(wmat, first_cum, n_dom_pmts, fold, n_draws, seed):
    """Probability that each PMT slot of a DOM takes part in a ``fold``-fold coincidence
    (Monte Carlo of :func:`choose_coincidence_pmts` with ``n_draws`` draws)."""
    state = rng_new(seed)
    count = np.zeros(n_dom_pmts, dtype=np.float64)
    chosen = np.empty(max(fold, 1), dtype=np.int64)
    weights = np.empty(n_dom_pmts, dtype=np.float64)
    for _ in range(n_draws):
        n = choose_coincidence_pmts(state, wmat, first_cum, n_dom_pmts, fold, chosen, weights)
        for i in range(n):
            count[chosen[i]] += 1.0
    return count / n_draws


# ------------------------------------------------------------------------------ random numbers in registers
# The hot loop keeps the xoshiro256** state in four local variables (km3sim.random.xoshiro_*).

_TWO_M53 = 1.0 / 9007199254740992.0
_TWO_M32 = 1.0 / 4294967296.0


# ------------------------------------------------------------------------------ per-pe pieces

#: Columns of the parameter-class rows of :func:`simulate_hits` (PMTs with equal parameters
#: share a row, so that the hot loop touches a small table). PP_W_UNDER .. PP_QB: the background
#: charge sampler of :func:`background_charge`; PP_SHAPE: row of the ToT table of the pulse shape;
#: PP_TTS_TABLE: row of the transit-time table, −1 for the Gaussian TTS σ = PP_TTS.
(PP_QE, PP_GAIN, PP_SPREAD, PP_THRESHOLD, PP_BAND, PP_RISE, PP_DECAY, PP_TRANSITION, PP_TTS, PP_W_UNDER,
 PP_UNDER_SCALE, PP_QA, PP_QB, PP_SHAPE, PP_TTS_TABLE) = range(15)
PP_COLUMNS = 15


@nb.njit(cache=True)
def background_charge(u, threshold, gain, spread, w_under, under_scale, qa, qb, ndtri_table):
    """Charge of a background pe from ONE uniform ``u``: :func:`draw_pe_charge` conditioned on
    ``charge > threshold``, by inversion of the two-component mixture. ``u < w_under`` (the
    conditional weight of the under-amplified pe): uniform in (threshold, gain) with
    ``under_scale`` = (gain − threshold)/w_under; else the Gaussian above threshold, Φ⁻¹ from
    ``ndtri_table`` (values at the midpoints of a uniform grid on (0, 1), linear interpolation)
    at table position ``u·qa + qb`` (:func:`km3sim.detector.background.packed_pmt_parameters`)."""
    if u < w_under:
        return threshold + u * under_scale
    if spread <= 0.0:
        return gain
    x = u * qa + qb
    n = ndtri_table.shape[0]
    if x <= 0.0:
        z = ndtri_table[0]
    elif x >= n - 1:
        z = ndtri_table[n - 1]
    else:
        k = int(x)
        f = x - k
        z = ndtri_table[k] + f * (ndtri_table[k + 1] - ndtri_table[k])
    q = gain + spread * z
    return q if q > threshold else threshold * (1.0 + 1e-12) + 1e-12


@nb.njit(cache=True)
def tot_of_charge(q, tot_tables, shape, inv_step, threshold, rise, decay, saturation, slope, transition):
    """ToT [ns] of a pulse of ``q`` p.e. above the threshold band: linear interpolation in the
    ToT table of its pulse shape (``tot_tables[shape, k]`` = ToT at q = k/inv_step, from
    :func:`time_over_threshold_scalar`; |error| < 2e-4 ns on the default 1/512 p.e. grid), the
    closed form beyond the table."""
    f = q * inv_step
    if f < tot_tables.shape[1] - 1:
        k = int(f)
        f -= k
        a = tot_tables[shape, k]
        return a + f * (tot_tables[shape, k + 1] - a)
    return time_over_threshold_scalar(q, threshold, rise, decay, saturation, slope, transition)


@nb.njit(cache=True, _nrt=False)
def transit_time(state, pt, c, tts_tables):
    """Transit-time deviation [ns] of one pe of a PMT of parameter class ``c``: Gaussian with
    σ = ``pt[c, PP_TTS]``, or, if ``pt[c, PP_TTS_TABLE] >= 0``, by inverse CDF from that row of
    ``tts_tables`` (the quantiles at u = j/(m−1), j = 0..m−1, linear interpolation). Compiled
    without the numba runtime (it allocates nothing), so a call costs no reference counting."""
    k = int(pt[c, PP_TTS_TABLE])
    if k < 0:
        return pt[c, PP_TTS] * rng_normal(state)
    x = rng_uniform(state) * (tts_tables.shape[1] - 1)
    j = int(x)
    f = x - j
    return tts_tables[k, j] + f * (tts_tables[k, j + 1] - tts_tables[k, j])


@nb.njit(cache=True)
def sample_tts_table(icdf, n, seed):
    """``n`` transit times from one inverse-CDF row (as :func:`transit_time`; for tests)."""
    state = rng_new(seed)
    out = np.empty(n)
    m = icdf.shape[0]
    for i in range(n):
        x = rng_uniform(state) * (m - 1)
        j = int(x)
        f = x - j
        out[i] = icdf[j] + f * (icdf[j + 1] - icdf[j])
    return out


@nb.njit(cache=True)
def alias_table(weights):
    """Walker's alias table of ``weights`` (Vose's construction): choose slot i uniformly, keep
    it with probability ``prob[i]``, else take ``alias[i]`` (A. J. Walker, ACM TOMS 3 (1977) 253;
    M. D. Vose, IEEE TSE 17 (1991) 972). All-zero weights give the identity table."""
    n = weights.shape[0]
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n).astype(np.int32)
    total = 0.0
    for i in range(n):
        total += weights[i]
    if total <= 0.0:
        return prob, alias
    scaled = np.empty(n)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        scaled[i] = weights[i] * (n / total)
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    # slots left in either list hold 1 up to rounding: they keep themselves (prob 1)
    return prob, alias


@nb.njit(cache=True)
def window_lengths(mc_offsets, mc_time, window_margin):
    """Length [ns] of the background window of each event (see :func:`simulate_hits`)."""
    n = mc_offsets.shape[0] - 1
    out = np.empty(n)
    for e in range(n):
        lo = mc_offsets[e]
        hi = mc_offsets[e + 1]
        if hi > lo:
            t0 = mc_time[lo]
            t1 = mc_time[lo]
            for i in range(lo, hi):
                t0 = min(t0, mc_time[i])
                t1 = max(t1, mc_time[i])
            out[e] = (t1 + window_margin) - (t0 - window_margin)
        else:
            out[e] = 2.0 * window_margin
    return out


# ------------------------------------------------------------------------------ main kernel


@nb.njit(cache=True)
def time_ordered_pass(h_pmt, h_time, h_tot, h_q, h_npe, h_origin, n_hits,
                      x_order, x_pmt, x_time, x_q, x_origin, nx, ix, ts, w1, s0, s1, s2, s3,
                      pulse_end, open_hit, pc, pt, ndtri_table, tot_tables, tot_inv_step,
                      alias_prob, alias_idx, slot_scale, inv_rate, band_mean, band_sigma, saturation, slope):
    """Step 5 of :func:`simulate_hits`: the event's pe in time order -> pulses and hits.

    Merges the sorted extra pe (``x_*`` in the order ``x_order``, from position ``ix``) with the
    uncorrelated singles, a Poisson process of total rate 1/``inv_rate`` generated in time order
    from ``ts`` (the time of the next single) to ``w1``: exponential spacings, PMT from the alias
    table, charge from :func:`background_charge`. Returns at the end of the window, or when the
    hit arrays are full (at most one hit is opened per step), with
    ``(n_hits, ix, ts, s0, s1, s2, s3)`` to resume from.

    The hot loop of the background: one array-free function (no reference counting inside),
    two 64-bit draws per single (the first: slot and alias coin; the second: its upper half the
    spacing to the next single, its lower half the charge), table look-ups for Φ⁻¹ and the ToT.
    """
    cap = h_pmt.shape[0]
    one_class = pt.shape[0] == 1
    t_x = x_time[x_order[ix]] if ix < nx else math.inf
    while n_hits < cap:
        if ix < nx and (t_x <= ts or ts >= w1):
            a = x_order[ix]
            ix += 1
            t_x = x_time[x_order[ix]] if ix < nx else math.inf
            p = x_pmt[a]
            t = x_time[a]
            q = x_q[a]
            origin = x_origin[a]
        elif ts < w1:
            t = ts
            r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            x = float(r >> np.uint64(11)) * slot_scale
            p = int(x)
            if x - p >= alias_prob[p]:
                p = alias_idx[p]
            r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            ts -= math.log((float(r >> np.uint64(32)) + 0.5) * _TWO_M32) * inv_rate
            u = (float(r & np.uint64(0xFFFFFFFF)) + 0.5) * _TWO_M32
            c = 0 if one_class else pc[p]
            q = background_charge(u, pt[c, PP_THRESHOLD], pt[c, PP_GAIN], pt[c, PP_SPREAD], pt[c, PP_W_UNDER],
                                  pt[c, PP_UNDER_SCALE], pt[c, PP_QA], pt[c, PP_QB], ndtri_table)
            origin = -1
        else:
            break
        new_hit = t >= pulse_end[p]
        if not new_hit:  # pile-up on the running pulse: charges add, ToT from the sum
            h = open_hit[p]
            q = h_q[h] + q
            h_q[h] = q
            h_npe[h] += 1
            if h_origin[h] < 0 and origin >= 0:
                h_origin[h] = origin
            t = h_time[h]
        c = 0 if one_class else pc[p]
        th = pt[c, PP_THRESHOLD]
        if q <= th:
            continue  # a new pulse below threshold (a running pulse is above it)
        if q <= th + pt[c, PP_BAND]:  # threshold band: Jpp draws the ToT from a Gaussian
            z, s0, s1, s2, s3 = xoshiro_normal(s0, s1, s2, s3)
            tot = band_mean + band_sigma * z
            if tot < 0.5:
                tot = 0.5
        else:
            tot = tot_of_charge(q, tot_tables, int(pt[c, PP_SHAPE]), tot_inv_step, th, pt[c, PP_RISE],
                                pt[c, PP_DECAY], saturation, slope, pt[c, PP_TRANSITION])
        pulse_end[p] = t + tot
        if new_hit:
            h_pmt[n_hits] = p
            h_time[n_hits] = t
            h_tot[n_hits] = tot
            h_q[n_hits] = q
            h_npe[n_hits] = 1
            h_origin[n_hits] = origin
            open_hit[p] = n_hits
            n_hits += 1
        else:
            h_tot[open_hit[p]] = tot
    return n_hits, ix, ts, s0, s1, s2, s3


@nb.njit(cache=True)
def finish_event(h_pmt, h_time, h_tot, h_q, h_npe, h_origin, first_hit, n_hits, pulse_end, slewing, slew_table,
                 slew_inv_step):
    """Step 6 of :func:`simulate_hits` on the hits ``first_hit:n_hits`` of one event: clear the
    pulses, add the time slewing and sort by (time, PMT) by insertion (the hits come in time
    order; slewing moves them by a few ns only)."""
    n_slew = slew_table.shape[0]
    for h in range(first_hit, n_hits):
        pulse_end[h_pmt[h]] = -np.inf
    for h in range(first_hit, n_hits):
        tv = h_time[h]
        if slewing:
            f = h_tot[h] * slew_inv_step
            if f >= n_slew - 1:
                tv += slew_table[n_slew - 1]
            else:
                k = int(f)
                f -= k
                tv += slew_table[k] + f * (slew_table[k + 1] - slew_table[k])
        pv = h_pmt[h]
        k = h - 1
        if k < first_hit or tv > h_time[k] or (tv == h_time[k] and pv >= h_pmt[k]):
            h_time[h] = tv
            continue
        totv = h_tot[h]
        qv = h_q[h]
        nv = h_npe[h]
        ov = h_origin[h]
        while k >= first_hit and (h_time[k] > tv or (h_time[k] == tv and h_pmt[k] > pv)):
            h_time[k + 1] = h_time[k]
            h_pmt[k + 1] = h_pmt[k]
            h_tot[k + 1] = h_tot[k]
            h_q[k + 1] = h_q[k]
            h_npe[k + 1] = h_npe[k]
            h_origin[k + 1] = h_origin[k]
            k -= 1
        h_time[k + 1] = tv
        h_pmt[k + 1] = pv
        h_tot[k + 1] = totv
        h_q[k + 1] = qv
        h_npe[k + 1] = nv
        h_origin[k + 1] = ov


@nb.njit(cache=True)
def simulate_hits(
    seeds,
    window_margin,
    # signal photo-electrons (rows of event e: mc_offsets[e]:mc_offsets[e+1], detector PMT index)
    mc_offsets, mc_pmt, mc_time, mc_origin,
    # extra uncorrelated singles per event (bioluminescence): PMT index and rate [1/ns]
    ex_offsets, ex_pmt, ex_rate,
    # per-PMT activity (1 = records hits), parameter class of each PMT, class rows (PP_* columns),
    # Φ⁻¹ table, ToT tables per pulse shape and their grid, transit-time inverse CDFs
    active, pc, pt, ndtri_table, tot_tables, tot_inv_step, tts_tables,
    # uncorrelated singles: alias table over PMTs and total rate [1/ns]
    alias_prob, alias_idx, singles_rate,
    # genuine coincidences: DOMs, their PMT slots, angular weights and fold rates
    dom_offsets, dom_pmts, dom_type, wmat, first_cum, fold_cum, coinc_sigma,
    # pulse model and PMT effects
    p_under, band_mean, band_sigma, saturation, slope,
    slewing, slew_table, slew_inv_step,
    ap_prob, ap_mean, ap_sigma,
    # output (filled from row n_start, events from e_start on)
    h_event, h_pmt, h_time, h_tot, h_q, h_npe, h_origin, e_start, n_start,
):
    """Photo-electrons and optical background of each event -> digitised hits.

    Per event e, one xoshiro256** stream from ``seeds[e]`` with a fixed draw order (signal,
    coincidences, extra singles, singles), so that an event does not depend on the others:

    1. window [t_first − margin, t_last + margin] around the event's photo-electrons
       ([−margin, margin] without any);
    2. signal pe on active PMTs: kept with probability ``qe`` (a second copy with probability
       ``qe − 1`` where ``qe > 1``), transit-time spread (:func:`transit_time`: Gaussian or
       tabulated), charge from :func:`draw_pe_charge`, and an afterpulse with probability
       ``ap_prob`` delayed by a Gaussian (``ap_mean``, ``ap_sigma``) [UNVERIFIED];
    3. genuine ⁴⁰K coincidences: a Poisson number over the window and the DOMs, uniform in
       time, DOM uniform, fold 2..6 from ``fold_cum`` (cumulative rates per DOM [1/ns]), PMTs
       from :func:`choose_coincidence_pmts`, times common ± ``coinc_sigma`` ± transit time, each
       hit kept if its PMT is active and with probability min(qe, 1), charge above threshold
       (:func:`background_charge`; the rates are rates of hits);
    4. extra singles (bioluminescence), uniform in the window, charge above threshold;
    5. uncorrelated singles (total rate ``singles_rate``, PMT from the alias table) generated in
       time order and merged with the sorted pe of 2-4 (:func:`time_ordered_pass`); per PMT, a
       pe arriving while the running pulse is over threshold (within its ToT from its first pe)
       piles up: charges add, the ToT is recomputed; sub-threshold pulses give no hit; ToT from
       the pulse model (:func:`tot_of_charge`), or in the threshold band (threshold, threshold +
       band] Gaussian (``band_mean``, ``band_sigma``, at least 0.5 ns) (PHYSICS.md §7.3);
    6. time slewing (``slewing``): the hit time is delayed by slew(ToT) (``slew_table`` sampled
       every 1/``slew_inv_step`` ns of ToT), as the real leading edge is, so that Jpp's slewing
       correction restores it (:func:`finish_event`).

    The caller allocates the output arrays (``h_q`` is work space). If they fill up, the
    kernel stops before the event that did not fit, and returns; the caller enlarges the arrays
    and calls again from that event (events are independent, so this changes nothing).

    Returns
    -------
    e_done, n_hits : int
        Events done (``seeds.shape[0]`` when finished) and hits written. Hits are ordered by
        event, then time (ties by PMT); ``h_origin`` is the origin of the first signal pe of
        the hit, −1 for pure background; ``h_event`` the index in ``seeds``.
    """
    n_events = seeds.shape[0]
    n_pmts = active.shape[0]
    n_cdoms = dom_offsets.shape[0] - 1
    n_folds = fold_cum.shape[0]
    coinc_rate = fold_cum[n_folds - 1] if n_folds > 0 else 0.0
    slot_scale = alias_prob.shape[0] * _TWO_M53
    inv_rate = 1.0 / singles_rate if singles_rate > 0.0 else 0.0
    kmax = wmat.shape[1]

    # per-PMT pulse state: end of the running pulse (−inf: none) and its hit
    pulse_end = np.full(n_pmts, -np.inf)
    open_hit = np.zeros(n_pmts, dtype=np.int64)
    n_hits = n_start

    xcap = 256
    x_pmt = np.empty(xcap, dtype=np.int64)
    x_time = np.empty(xcap, dtype=np.float64)
    x_q = np.empty(xcap, dtype=np.float64)
    x_origin = np.empty(xcap, dtype=np.int64)
    chosen = np.empty(8, dtype=np.int64)
    weights = np.empty(kmax, dtype=np.float64)

    for e in range(e_start, n_events):
        state = rng_new(seeds[e])
        lo = mc_offsets[e]
        hi = mc_offsets[e + 1]
        if hi > lo:
            t_first = mc_time[lo]
            t_last = mc_time[lo]
            for i in range(lo, hi):
                t_first = min(t_first, mc_time[i])
                t_last = max(t_last, mc_time[i])
        else:
            t_first = 0.0
            t_last = 0.0
        w0 = t_first - window_margin
        w_len = (t_last + window_margin) - w0
        w1 = w0 + w_len

        # ---------------------------------------------------------------- extra pe list
        nx = 0
        n_coinc = rng_poisson(state, coinc_rate * n_cdoms * w_len) if (coinc_rate > 0.0 and n_cdoms > 0) else 0
        n_need = 2 * (2 * (hi - lo) + 6 * n_coinc) + 16
        if n_need > x_pmt.shape[0]:
            x_pmt = _grow_i8(x_pmt, n_need)
            x_time = _grow_f8(x_time, n_need)
            x_q = _grow_f8(x_q, n_need)
            x_origin = _grow_i8(x_origin, n_need)
        # signal
        for i in range(lo, hi):
            p = mc_pmt[i]
            if active[p] == 0:
                continue
            c = pc[p]
            q_eff = pt[c, PP_QE]
            n_copies = 1
            if q_eff < 1.0:
                if rng_uniform(state) >= q_eff:
                    continue
            elif q_eff > 1.0:
                if rng_uniform(state) < q_eff - 1.0:
                    n_copies = 2
            for _ in range(n_copies):
                t = mc_time[i] + transit_time(state, pt, c, tts_tables)
                x_pmt[nx] = p
                x_time[nx] = t
                x_q[nx] = draw_pe_charge(state, pt[c, PP_GAIN], pt[c, PP_SPREAD], p_under)
                x_origin[nx] = mc_origin[i]
                nx += 1
                if ap_prob > 0.0 and rng_uniform(state) < ap_prob:
                    d = ap_mean + ap_sigma * rng_normal(state)
                    x_pmt[nx] = p
                    x_time[nx] = t + (d if d > 0.0 else 0.0)
                    x_q[nx] = draw_pe_charge(state, pt[c, PP_GAIN], pt[c, PP_SPREAD], 0.0)
                    x_origin[nx] = mc_origin[i]
                    nx += 1
        # genuine coincidences
        for _c in range(n_coinc):
            t0 = w0 + w_len * rng_uniform(state)
            d = int(rng_uniform(state) * n_cdoms)
            if d >= n_cdoms:
                d = n_cdoms - 1
            u = rng_uniform(state) * coinc_rate
            f = 0
            while f < n_folds - 1 and fold_cum[f] <= u:
                f += 1
            fold = f + 2
            base = dom_offsets[d]
            n_dom_pmts = dom_offsets[d + 1] - base
            ty = dom_type[d]
            nch = choose_coincidence_pmts(state, wmat[ty], first_cum[ty], n_dom_pmts, fold, chosen, weights)
            for k in range(nch):
                p = dom_pmts[base + chosen[k]]
                c = pc[p]
                tt = t0 + coinc_sigma * rng_normal(state) + transit_time(state, pt, c, tts_tables)
                if active[p] == 0:
                    continue
                if pt[c, PP_QE] < 1.0 and rng_uniform(state) >= pt[c, PP_QE]:
                    continue
                x_pmt[nx] = p
                x_time[nx] = tt
                x_q[nx] = background_charge(rng_uniform(state), pt[c, PP_THRESHOLD], pt[c, PP_GAIN], pt[c, PP_SPREAD],
                                            pt[c, PP_W_UNDER], pt[c, PP_UNDER_SCALE], pt[c, PP_QA], pt[c, PP_QB],
                                            ndtri_table)
                x_origin[nx] = -1
                nx += 1
        # extra singles (bioluminescence)
        for j in range(ex_offsets[e], ex_offsets[e + 1]):
            p = ex_pmt[j]
            n_ex = rng_poisson(state, ex_rate[j] * w_len)
            if n_ex == 0 or active[p] == 0:
                continue
            if nx + n_ex > x_pmt.shape[0]:
                x_pmt = _grow_i8(x_pmt, nx + n_ex)
                x_time = _grow_f8(x_time, nx + n_ex)
                x_q = _grow_f8(x_q, nx + n_ex)
                x_origin = _grow_i8(x_origin, nx + n_ex)
            c = pc[p]
            for _ in range(n_ex):
                x_pmt[nx] = p
                x_time[nx] = w0 + w_len * rng_uniform(state)
                x_q[nx] = background_charge(rng_uniform(state), pt[c, PP_THRESHOLD], pt[c, PP_GAIN], pt[c, PP_SPREAD],
                                            pt[c, PP_W_UNDER], pt[c, PP_UNDER_SCALE], pt[c, PP_QA], pt[c, PP_QB],
                                            ndtri_table)
                x_origin[nx] = -1
                nx += 1
        x_order = np.argsort(x_time[:nx], kind="mergesort")

        # ---------------------------------------------------------------- time-ordered pass
        first_hit = n_hits
        s0 = state[0]
        s1 = state[1]
        s2 = state[2]
        s3 = state[3]
        if singles_rate > 0.0:
            r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            ts = w0 - math.log((float(r >> np.uint64(32)) + 0.5) * _TWO_M32) * inv_rate
        else:
            ts = math.inf
        n_hits, ix, ts, s0, s1, s2, s3 = time_ordered_pass(
            h_pmt, h_time, h_tot, h_q, h_npe, h_origin, n_hits,
            x_order, x_pmt, x_time, x_q, x_origin, nx, 0, ts, w1, s0, s1, s2, s3,
            pulse_end, open_hit, pc, pt, ndtri_table, tot_tables, tot_inv_step,
            alias_prob, alias_idx, slot_scale, inv_rate, band_mean, band_sigma, saturation, slope)
        if ix < nx or ts < w1:  # output full: drop this event, the caller makes room
            for h in range(first_hit, n_hits):
                pulse_end[h_pmt[h]] = -np.inf
            return e, first_hit
        finish_event(h_pmt, h_time, h_tot, h_q, h_npe, h_origin, first_hit, n_hits, pulse_end, slewing, slew_table,
                     slew_inv_step)
        for h in range(first_hit, n_hits):
            h_event[h] = e
    return n_events, n_hits


@nb.njit(cache=True)
def hit_columns(h_event, h_pmt, h_tot, event_ids, pmt_dom_id, pmt_channel, pmt_id):
    """Columns of the ``hits`` table in one pass: event id, DOM id, channel, PMT id of each hit,
    and the ToT rounded to integer ns and clipped to 1..255."""
    n = h_event.shape[0]
    ev = np.empty(n, dtype=np.int64)
    dom = np.empty(n, dtype=np.int32)
    ch = np.empty(n, dtype=np.int32)
    pid = np.empty(n, dtype=np.int32)
    tot = np.empty(n, dtype=np.uint8)
    for i in range(n):
        ev[i] = event_ids[h_event[i]]
        p = h_pmt[i]
        dom[i] = pmt_dom_id[p]
        ch[i] = pmt_channel[p]
        pid[i] = pmt_id[p]
        t = np.rint(h_tot[i])
        tot[i] = 1 if t < 1.0 else (255 if t > 255.0 else int(t))
    return ev, dom, ch, pid, tot
