"""numba kernels of the PMT response: pulse time over threshold, TTS, charge, pile-up, K40 singles.

Arrays, scalars and seeds only; see :mod:`km3sim.detector.response` for the stage and
PHYSICS.md §7.3 / §8.2 for the models.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform


@nb.njit(cache=True)
def time_over_threshold_scalar(charge, threshold, rise_time, decay_time, saturation):
    """ToT [ns] of a pulse of ``charge`` p.e.: Gaussian edge (σ = rise_time) joined to an
    exponential tail (τ = decay_time) at t1 = σ²/τ with equal value and slope (PHYSICS.md
    §7.3 closed form); 0 below threshold, capped at ``saturation``."""
    if charge <= threshold:
        return 0.0
    log_ratio = math.log(charge / threshold)
    rise = rise_time * math.sqrt(2.0 * log_ratio)
    t1 = rise_time * rise_time / decay_time
    g1 = 0.5 * t1 * t1 / (rise_time * rise_time)  # -ln of the Gaussian at t1 (relative)
    if log_ratio <= g1:
        fall = rise  # threshold crossed on the Gaussian part, before the tail starts
    else:
        fall = t1 + decay_time * (log_ratio - g1)
    tot = rise + fall
    if tot > saturation:
        tot = saturation
    return tot


@nb.njit(cache=True)
def time_over_threshold_array(charges, threshold, rise_time, decay_time, saturation):
    """:func:`time_over_threshold_scalar` over an array of charges."""
    out = np.empty(charges.shape[0], dtype=np.float64)
    for i in range(charges.shape[0]):
        out[i] = time_over_threshold_scalar(charges[i], threshold, rise_time, decay_time, saturation)
    return out


@nb.njit(cache=True)
def draw_pe_charge(state, gain_spread):
    """Charge of one photo-electron: Gaussian about the gain (1) with σ = gain_spread,
    negative values set to 0 (Jpp PMT model, PHYSICS.md §7.3)."""
    q = 1.0 + gain_spread * rng_normal(state)
    return q if q > 0.0 else 0.0


@nb.njit(cache=True)
def draw_pe_charge_above_threshold(state, gain_spread, threshold):
    """Charge of one photo-electron from the Gaussian truncated below ``threshold``.

    Used for singles background, whose rate is a measured rate of hits above threshold."""
    while True:
        q = 1.0 + gain_spread * rng_normal(state)
        if q > threshold:
            return q


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
def _sort_event_hits_by_time(h_pmt, h_time, h_tot, h_npe, h_origin, start, stop):
    # hits were built PMT by PMT, so a stable sort by time breaks ties by PMT index
    if stop - start < 2:
        return
    order = np.argsort(h_time[start:stop], kind="mergesort") + start
    h_pmt[start:stop] = h_pmt[order]
    h_time[start:stop] = h_time[order]
    h_tot[start:stop] = h_tot[order]
    h_npe[start:stop] = h_npe[order]
    h_origin[start:stop] = h_origin[order]


@nb.njit(cache=True)
def simulate_pmt_response(
    seeds,
    mc_offsets,
    mc_pmt_index,
    mc_time,
    mc_origin,
    usable_pmt_index,
    tts,
    rate_per_ns,
    window_margin,
    gain_spread,
    threshold,
    rise_time,
    decay_time,
    saturation,
):
    """Turn photo-electrons into digitised hits and add uncorrelated singles background.

    Per event (one xoshiro256** stream from ``seeds[e]``; draws in a fixed order: the total
    background count, signal pe TTS and charge in input order, then PMT, time and charge of
    each background pe):

    1. each signal pe gets a Gaussian transit-time jitter (σ = ``tts``) and a charge
       (:func:`draw_pe_charge`);
    2. singles: per usable PMT a Poisson number (mean rate × window) of pe uniform in the
       window (drawn as one Poisson total over all usable PMTs, each pe on a uniformly chosen
       PMT: the same distribution, far fewer draws) [t_first − margin, t_last + margin] of the event's pe ([−margin, margin] if
       none), charges from the threshold-truncated Gaussian, origin −1;
    3. per PMT in time order, pe arriving while the running pulse is above threshold (within
       its ToT from the first pe) pile up: charges add and the ToT is recomputed; a pulse
       whose charge does not exceed the threshold gives no hit.

    Parameters
    ----------
    seeds : uint64 array (n_events,)
    mc_offsets : int64 array (n_events + 1,)
        Rows of event e in the mc arrays are ``mc_offsets[e]:mc_offsets[e+1]``.
    mc_pmt_index : int64 array
        Detector index of the PMT of each pe (only usable PMTs).
    mc_time : float64 array
        Photon arrival time [ns].
    mc_origin : int32/int64 array
        track_id of each pe.
    usable_pmt_index : int64 array
        Detector indices of the PMTs that produce background.
    tts : float
        Transit-time spread σ [ns].
    rate_per_ns : float
        Singles rate per PMT [1/ns].
    window_margin : float
        Margin of the background window around the event's pe [ns].
    gain_spread, threshold : float
        Charge σ and threshold [p.e.].
    rise_time, decay_time, saturation : float
        Pulse model parameters [ns] (see :func:`time_over_threshold_scalar`).

    Returns
    -------
    Hits ordered by event, then time (ties by PMT index).

    hit_event : int64 array
        Event index (into ``seeds``) of each hit.
    hit_pmt : int64 array
        Detector PMT index.
    hit_time : float64 array
        Time of the first pe of the hit [ns].
    hit_tot : float64 array
        ToT [ns] (not rounded).
    hit_npe : int64 array
        Number of pe (signal and background) in the hit.
    hit_origin : int64 array
        track_id of the first signal pe in the hit, −1 if none.
    """
    n_events = seeds.shape[0]
    n_usable = usable_pmt_index.shape[0]
    cap = 1024
    h_event = np.empty(cap, dtype=np.int64)
    h_pmt = np.empty(cap, dtype=np.int64)
    h_time = np.empty(cap, dtype=np.float64)
    h_tot = np.empty(cap, dtype=np.float64)
    h_npe = np.empty(cap, dtype=np.int64)
    h_origin = np.empty(cap, dtype=np.int64)
    n_hits = 0

    for e in range(n_events):
        state = rng_new(seeds[e])
        lo = mc_offsets[e]
        hi = mc_offsets[e + 1]
        n_sig = hi - lo
        if n_sig > 0:
            t_first = mc_time[lo]
            t_last = mc_time[lo]
            for i in range(lo, hi):
                if mc_time[i] < t_first:
                    t_first = mc_time[i]
                if mc_time[i] > t_last:
                    t_last = mc_time[i]
        else:
            t_first = 0.0
            t_last = 0.0
        w_start = t_first - window_margin
        w_len = (t_last + window_margin) - w_start

        # singles: the sum of independent Poisson counts over the usable PMTs is Poisson with
        # the summed mean, and given the total each pe sits on a uniformly chosen PMT
        n_bg = rng_poisson(state, rate_per_ns * w_len * n_usable) if n_usable > 0 else 0
        n_pe = n_sig + n_bg
        pe_pmt = np.empty(n_pe, dtype=np.int64)
        pe_time = np.empty(n_pe, dtype=np.float64)
        pe_q = np.empty(n_pe, dtype=np.float64)
        pe_origin = np.empty(n_pe, dtype=np.int64)
        for i in range(n_sig):
            pe_pmt[i] = mc_pmt_index[lo + i]
            pe_time[i] = mc_time[lo + i] + tts * rng_normal(state)
            pe_q[i] = draw_pe_charge(state, gain_spread)
            pe_origin[i] = mc_origin[lo + i]
        for j in range(n_sig, n_pe):
            k = int(rng_uniform(state) * n_usable)
            if k >= n_usable:
                k = n_usable - 1
            pe_pmt[j] = usable_pmt_index[k]
            pe_time[j] = w_start + w_len * rng_uniform(state)
            pe_q[j] = draw_pe_charge_above_threshold(state, gain_spread, threshold)
            pe_origin[j] = -1

        # order by (PMT, time): stable sort by time, then stable sort by PMT
        o1 = np.argsort(pe_time, kind="mergesort")
        o2 = np.argsort(pe_pmt[o1], kind="mergesort")
        order = o1[o2]

        if n_hits + n_pe > h_event.shape[0]:
            need = n_hits + n_pe
            h_event = _grow_i8(h_event, need)
            h_pmt = _grow_i8(h_pmt, need)
            h_time = _grow_f8(h_time, need)
            h_tot = _grow_f8(h_tot, need)
            h_npe = _grow_i8(h_npe, need)
            h_origin = _grow_i8(h_origin, need)

        first_hit = n_hits
        i = 0
        while i < n_pe:
            a = order[i]
            pmt = pe_pmt[a]
            t_start = pe_time[a]
            charge = pe_q[a]
            npe = 1
            origin = pe_origin[a]
            tot = time_over_threshold_scalar(charge, threshold, rise_time, decay_time, saturation)
            i += 1
            while i < n_pe:
                b = order[i]
                if pe_pmt[b] != pmt or pe_time[b] - t_start >= tot:
                    break
                charge += pe_q[b]
                npe += 1
                if origin < 0 and pe_origin[b] >= 0:
                    origin = pe_origin[b]
                tot = time_over_threshold_scalar(charge, threshold, rise_time, decay_time, saturation)
                i += 1
            if tot > 0.0:
                h_event[n_hits] = e
                h_pmt[n_hits] = pmt
                h_time[n_hits] = t_start
                h_tot[n_hits] = tot
                h_npe[n_hits] = npe
                h_origin[n_hits] = origin
                n_hits += 1
        _sort_event_hits_by_time(h_pmt, h_time, h_tot, h_npe, h_origin, first_hit, n_hits)

    return (
        h_event[:n_hits].copy(),
        h_pmt[:n_hits].copy(),
        h_time[:n_hits].copy(),
        h_tot[:n_hits].copy(),
        h_npe[:n_hits].copy(),
        h_origin[:n_hits].copy(),
    )
