"""numba kernels of the PMT response and the optical background.

Arrays, scalars and seeds only; see :mod:`km3sim.detector.pmt` (pulse model, PHYSICS.md §7.3),
:mod:`km3sim.detector.background` (⁴⁰K singles and coincidences, PHYSICS.md §8, §12) and
:mod:`km3sim.detector.response` (the stage) for the models and their sources.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform

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
def draw_pe_charge_above_threshold(state, gain, gain_spread, p_under, threshold):
    """:func:`draw_pe_charge` conditioned on ``charge > threshold`` (rejection).

    Used for background pe, whose rates are measured rates of hits above threshold."""
    for _ in range(1000):
        q = draw_pe_charge(state, gain, gain_spread, p_under)
        if q > threshold:
            return q
    return threshold * 1.000001 + 1e-9  # only for gains far below threshold


@nb.njit(cache=True)
def draw_background_charge(state, gain, gain_spread, threshold, cdf_lo, w_under, ndtri_table):
    """Charge of a background pe, drawn exactly from :func:`draw_pe_charge` conditioned on
    ``charge > threshold`` without rejection: under-amplified with probability ``w_under`` (the
    conditional weight of that component, uniform in (threshold, gain)), else the Gaussian
    above threshold by inversion, Φ⁻¹ taken from ``ndtri_table`` (values at the midpoints of a
    uniform grid on (0, 1), linear interpolation); ``cdf_lo`` = Φ((threshold − gain)/σ)."""
    if w_under > 0.0 and rng_uniform(state) < w_under:
        return threshold + (gain - threshold) * rng_uniform(state)
    if gain_spread <= 0.0:
        return gain
    u = cdf_lo + (1.0 - cdf_lo) * rng_uniform(state)
    n = ndtri_table.shape[0]
    x = u * n - 0.5
    if x <= 0.0:
        z = ndtri_table[0]
    elif x >= n - 1:
        z = ndtri_table[n - 1]
    else:
        k = int(x)
        f = x - k
        z = ndtri_table[k] + f * (ndtri_table[k + 1] - ndtri_table[k])
    q = gain + gain_spread * z
    return q if q > threshold else threshold * (1.0 + 1e-12) + 1e-12


@nb.njit(cache=True)
def pulse_tot(state, charge, threshold, band, band_mean, band_sigma, rise, decay, saturation, slope, transition):
    """ToT of a pulse: the pulse model, except in the threshold band (threshold, threshold +
    band] where Jpp draws the ToT from a Gaussian (mean ``band_mean``, σ ``band_sigma``, at
    least 0.5 ns) (PHYSICS.md §7.3)."""
    if charge <= threshold:
        return 0.0
    if charge <= threshold + band:
        t = band_mean + band_sigma * rng_normal(state)
        return t if t > 0.5 else 0.5
    return time_over_threshold_scalar(charge, threshold, rise, decay, saturation, slope, transition)


# ------------------------------------------------------------------------------ helpers


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


@nb.njit(cache=True)
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


# ------------------------------------------------------------------------------ main kernel

#: Columns of the parameter-class rows of :func:`simulate_hits` (PMTs with equal parameters
#: share a row, so that the hot loop touches a small table).
PP_UNUSED, PP_QE, PP_GAIN, PP_SPREAD, PP_THRESHOLD, PP_BAND, PP_RISE, PP_DECAY, PP_TRANSITION, PP_TTS, \
    PP_CDF_LO, PP_W_UNDER = range(12)
PP_COLUMNS = 12


@nb.njit(cache=True)
def simulate_hits(
    seeds,
    window_margin,
    # signal photo-electrons (rows of event e: mc_offsets[e]:mc_offsets[e+1], detector PMT index)
    mc_offsets, mc_pmt, mc_time, mc_origin,
    # extra uncorrelated singles per event (bioluminescence): PMT index and rate [1/ns]
    ex_offsets, ex_pmt, ex_rate,
    # per-PMT activity (1 = records hits), parameter class of each PMT, class rows (PP_* columns),
    # and the Φ⁻¹ table
    active, pc, pt, ndtri_table,
    # uncorrelated singles: cumulative rate over PMTs [1/ns] and its guide table
    singles_cum, singles_guide,
    # genuine coincidences: DOMs, their PMT slots, angular weights and fold rates
    dom_offsets, dom_pmts, dom_type, wmat, first_cum, fold_cum, coinc_sigma,
    # pulse model and PMT effects
    p_under, band_mean, band_sigma, saturation, slope,
    slewing, slew_table, slew_inv_step,
    ap_prob, ap_mean, ap_sigma,
):
    """Photo-electrons and optical background of each event -> digitised hits.

    Per event e, one xoshiro256** stream from ``seeds[e]`` with a fixed draw order (signal,
    coincidences, extra singles, singles), so that an event does not depend on the others:

    1. window [t_first − margin, t_last + margin] around the event's photo-electrons
       ([−margin, margin] without any);
    2. signal pe on active PMTs: kept with probability ``qe`` (a second copy with probability
       ``qe − 1`` where ``qe > 1``), Gaussian TTS, charge from :func:`draw_pe_charge`, and an
       afterpulse with probability ``ap_prob`` delayed by a Gaussian (``ap_mean``,
       ``ap_sigma``) [UNVERIFIED];
    3. genuine ⁴⁰K coincidences: a Poisson number over the window and the DOMs, uniform in
       time, DOM uniform, fold 2..6 from ``fold_cum`` (cumulative rates per DOM [1/ns]), PMTs
       from :func:`choose_coincidence_pmts`, times common ± ``coinc_sigma`` ± TTS, each hit kept
       if its PMT is active and with probability min(qe, 1), charge above threshold;
    4. extra singles (bioluminescence) and uncorrelated singles (rate ``singles_cum``), uniform
       in the window (the singles generated in time order as a Poisson process with
       exponential spacings), charge above threshold (:func:`draw_background_charge`; the rates
       are rates of hits);
    5. all pe in time order; per PMT, a pe arriving while the running pulse is over threshold
       (within its ToT from its first pe) piles up: charges add, the ToT is recomputed
       (:func:`pulse_tot`); sub-threshold pulses give no hit;
    6. time slewing (``slewing``): the hit time is delayed by slew(ToT) (``slew_table`` sampled
       every 1/``slew_inv_step`` ns of ToT), as the real leading edge is, so that Jpp's slewing
       correction restores it.

    Returns
    -------
    hit_event, hit_pmt, hit_time, hit_tot, hit_npe, hit_origin
        Hits ordered by event, then time (ties by PMT). ``hit_origin`` is the origin of the
        first signal pe of the hit, −1 for pure background.
    """
    n_events = seeds.shape[0]
    n_pmts = active.shape[0]
    n_cdoms = dom_offsets.shape[0] - 1
    n_folds = fold_cum.shape[0]
    coinc_rate = fold_cum[n_folds - 1] if n_folds > 0 else 0.0
    singles_rate = singles_cum[singles_cum.shape[0] - 1] if n_pmts > 0 else 0.0
    n_guide = singles_guide.shape[0]
    kmax = wmat.shape[1]

    # per-PMT pulse state: end of the running pulse (−inf: none) and its hit
    pulse_end = np.full(n_pmts, -np.inf)
    open_hit = np.zeros(n_pmts, dtype=np.int64)

    cap = 4096
    h_event = np.empty(cap, dtype=np.int64)
    h_pmt = np.empty(cap, dtype=np.int64)
    h_time = np.empty(cap, dtype=np.float64)
    h_tot = np.empty(cap, dtype=np.float64)
    h_q = np.empty(cap, dtype=np.float64)
    h_npe = np.empty(cap, dtype=np.int64)
    h_origin = np.empty(cap, dtype=np.int64)
    n_hits = 0

    xcap = 256
    x_pmt = np.empty(xcap, dtype=np.int64)
    x_time = np.empty(xcap, dtype=np.float64)
    x_q = np.empty(xcap, dtype=np.float64)
    x_origin = np.empty(xcap, dtype=np.int64)
    chosen = np.empty(8, dtype=np.int64)
    weights = np.empty(kmax, dtype=np.float64)

    for e in range(n_events):
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
            q_eff = pt[pc[p], PP_QE]
            n_copies = 1
            if q_eff < 1.0:
                if rng_uniform(state) >= q_eff:
                    continue
            elif q_eff > 1.0:
                if rng_uniform(state) < q_eff - 1.0:
                    n_copies = 2
            for _ in range(n_copies):
                t = mc_time[i] + pt[pc[p], PP_TTS] * rng_normal(state)
                x_pmt[nx] = p
                x_time[nx] = t
                x_q[nx] = draw_pe_charge(state, pt[pc[p], PP_GAIN], pt[pc[p], PP_SPREAD], p_under)
                x_origin[nx] = mc_origin[i]
                nx += 1
                if ap_prob > 0.0 and rng_uniform(state) < ap_prob:
                    d = ap_mean + ap_sigma * rng_normal(state)
                    x_pmt[nx] = p
                    x_time[nx] = t + (d if d > 0.0 else 0.0)
                    x_q[nx] = draw_pe_charge(state, pt[pc[p], PP_GAIN], pt[pc[p], PP_SPREAD], 0.0)
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
                tt = t0 + coinc_sigma * rng_normal(state) + pt[pc[p], PP_TTS] * rng_normal(state)
                if active[p] == 0:
                    continue
                if pt[pc[p], PP_QE] < 1.0 and rng_uniform(state) >= pt[pc[p], PP_QE]:
                    continue
                x_pmt[nx] = p
                x_time[nx] = tt
                x_q[nx] = draw_background_charge(state, pt[pc[p], PP_GAIN], pt[pc[p], PP_SPREAD], pt[pc[p], PP_THRESHOLD],
                                                 pt[pc[p], PP_CDF_LO], pt[pc[p], PP_W_UNDER], ndtri_table)
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
            for _ in range(n_ex):
                x_pmt[nx] = p
                x_time[nx] = w0 + w_len * rng_uniform(state)
                x_q[nx] = draw_background_charge(state, pt[pc[p], PP_GAIN], pt[pc[p], PP_SPREAD], pt[pc[p], PP_THRESHOLD],
                                                 pt[pc[p], PP_CDF_LO], pt[pc[p], PP_W_UNDER], ndtri_table)
                x_origin[nx] = -1
                nx += 1
        x_order = np.argsort(x_time[:nx], kind="mergesort")

        # ---------------------------------------------------------------- time-ordered pass
        first_hit = n_hits
        ix = 0
        if singles_rate > 0.0:
            ts = w0 - math.log(1.0 - rng_uniform(state)) / singles_rate
        else:
            ts = math.inf
        w1 = w0 + w_len
        while True:
            if ix < nx and (ts >= w1 or x_time[x_order[ix]] <= ts):
                a = x_order[ix]
                ix += 1
                p = x_pmt[a]
                t = x_time[a]
                q = x_q[a]
                origin = x_origin[a]
            elif ts < w1:
                t = ts
                u = rng_uniform(state)
                x = u * singles_rate
                g = int(u * n_guide)
                if g >= n_guide:
                    g = n_guide - 1
                p = singles_guide[g]
                while p < n_pmts - 1 and singles_cum[p] <= x:
                    p += 1
                q = draw_background_charge(state, pt[pc[p], PP_GAIN], pt[pc[p], PP_SPREAD], pt[pc[p], PP_THRESHOLD],
                                           pt[pc[p], PP_CDF_LO], pt[pc[p], PP_W_UNDER], ndtri_table)
                origin = -1
                ts = ts - math.log(1.0 - rng_uniform(state)) / singles_rate
            else:
                break
            if t < pulse_end[p]:
                h = open_hit[p]
                h_q[h] += q
                h_npe[h] += 1
                if h_origin[h] < 0 and origin >= 0:
                    h_origin[h] = origin
                tot = pulse_tot(state, h_q[h], pt[pc[p], PP_THRESHOLD], pt[pc[p], PP_BAND], band_mean, band_sigma,
                                pt[pc[p], PP_RISE], pt[pc[p], PP_DECAY], saturation, slope, pt[pc[p], PP_TRANSITION])
                h_tot[h] = tot
                pulse_end[p] = h_time[h] + tot
                continue
            tot = pulse_tot(state, q, pt[pc[p], PP_THRESHOLD], pt[pc[p], PP_BAND], band_mean, band_sigma,
                            pt[pc[p], PP_RISE], pt[pc[p], PP_DECAY], saturation, slope, pt[pc[p], PP_TRANSITION])
            if tot <= 0.0:
                continue
            if n_hits >= h_event.shape[0]:
                need = n_hits + 1
                h_event = _grow_i8(h_event, need)
                h_pmt = _grow_i8(h_pmt, need)
                h_time = _grow_f8(h_time, need)
                h_tot = _grow_f8(h_tot, need)
                h_q = _grow_f8(h_q, need)
                h_npe = _grow_i8(h_npe, need)
                h_origin = _grow_i8(h_origin, need)
            h_event[n_hits] = e
            h_pmt[n_hits] = p
            h_time[n_hits] = t
            h_tot[n_hits] = tot
            h_q[n_hits] = q
            h_npe[n_hits] = 1
            h_origin[n_hits] = origin
            open_hit[p] = n_hits
            pulse_end[p] = t + tot
            n_hits += 1
        for h in range(first_hit, n_hits):
            pulse_end[h_pmt[h]] = -np.inf

        # ---------------------------------------------------------------- slewing, order
        if slewing:
            for h in range(first_hit, n_hits):
                h_time[h] += table_lookup(h_tot[h], slew_table, slew_inv_step)
        # insertion sort by (time, PMT): hits are almost in order (slewing shifts of a few ns)
        for h in range(first_hit + 1, n_hits):
            tv = h_time[h]
            pv = h_pmt[h]
            if tv > h_time[h - 1] or (tv == h_time[h - 1] and pv >= h_pmt[h - 1]):
                continue
            totv = h_tot[h]
            qv = h_q[h]
            nv = h_npe[h]
            ov = h_origin[h]
            k = h - 1
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

    return (
        h_event[:n_hits].copy(),
        h_pmt[:n_hits].copy(),
        h_time[:n_hits].copy(),
        h_tot[:n_hits].copy(),
        h_npe[:n_hits].copy(),
        h_origin[:n_hits].copy(),
    )
