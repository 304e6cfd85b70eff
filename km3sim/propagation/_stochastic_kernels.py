"""numba kernels of stochastic lepton propagation (PHYSICS.md §4.2; tables of stochastic.py).

Algorithm (MMC, Chirkin & Rhode hep-ph/0407075, §"continuous randomization" omitted): between
two stochastic losses the lepton loses energy continuously at ``f_cont(E)``; the energy at which
the next loss (v > v_cut) happens solves ``Lam(E_f) = Lam(E) + ln(u)`` with
``Lam(E) = int sigma_tot/f_cont dE``, the distance is ``X(E) - X(E_f)`` with
``X(E) = int dE/f_cont``. Boundaries (medium change, can entry and exit, tau decay) stop a step
at the boundary energy; the process is memoryless, so sampling restarts there.

Tables are indexed [particle, medium, ...] (particle 0 = muon, 1 = tau; medium 0 = sea water,
1 = rock), on a log-uniform energy grid ``E[i] = exp(lnE0 + i dlnE)``; X and Lam are
interpolated linearly in E between nodes.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.propagation._muon_kernels import energy_after_one, muon_range_one
from km3sim.random import rng_new, rng_uniform

C_LIGHT = 0.299792458
TAU_MASS = 1.77686
TAU_CTAU_M = 87.03e-6
BR_MU = 0.1739
BR_E = 0.1782


@nb.njit(cache=True, inline="always")
def _node(E, lnE0, dlnE, n):
    i = int((math.log(E) - lnE0) / dlnE)
    if i < 0:
        i = 0
    if i > n - 2:
        i = n - 2
    return i


@nb.njit(cache=True)
def interp_e(E, lnE0, dlnE, Eg, Y):
    """Y(E), linear in E between nodes; below the grid Y ~ E (used for X) -- Lam is 0 there."""
    n = Eg.shape[0]
    if E <= Eg[0]:
        return Y[0] * E / Eg[0]
    i = _node(E, lnE0, dlnE, n)
    # guard against rounding of the log at node boundaries
    while i > 0 and E < Eg[i]:
        i -= 1
    while i < n - 2 and E > Eg[i + 1]:
        i += 1
    t = (E - Eg[i]) / (Eg[i + 1] - Eg[i])
    return Y[i] + t * (Y[i + 1] - Y[i])


@nb.njit(cache=True)
def inverse_e(y, Eg, Y):
    """E with Y(E) = y, for Y non-decreasing (first crossing); linear below the grid."""
    n = Eg.shape[0]
    if y <= Y[0]:
        if Y[0] <= 0.0:
            return Eg[0]
        return Eg[0] * y / Y[0]
    if y >= Y[n - 1]:
        return Eg[n - 1]
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if Y[mid] < y:
            lo = mid
        else:
            hi = mid
    dy = Y[hi] - Y[lo]
    t = 0.0 if dy <= 0.0 else (y - Y[lo]) / dy
    return Eg[lo] + t * (Eg[hi] - Eg[lo])


@nb.njit(cache=True)
def sample_loss(E, p, m, lnE0, dlnE, Eg, SIG, CDF, LVLO, LVHI, s):
    """Sample (process, v) of a stochastic loss at energy E. Returns (-1, 0) if no process."""
    n = Eg.shape[0]
    i = _node(max(E, Eg[0]), lnE0, dlnE, n)
    t = (E - Eg[i]) / (Eg[i + 1] - Eg[i])
    t = min(max(t, 0.0), 1.0)
    nproc = SIG.shape[2]
    tot = 0.0
    for k in range(nproc):
        tot += SIG[p, m, k, i] + t * (SIG[p, m, k, i + 1] - SIG[p, m, k, i])
    if tot <= 0.0:
        return -1, 0.0
    u = rng_uniform(s) * tot
    k = 0
    acc = 0.0
    for kk in range(nproc):
        acc += SIG[p, m, kk, i] + t * (SIG[p, m, kk, i + 1] - SIG[p, m, kk, i])
        k = kk
        if u < acc:
            break
    j = i + 1 if rng_uniform(s) < t else i
    if SIG[p, m, k, j] <= 0.0:  # at a threshold: use the neighbour that has the process
        j = i + i + 1 - j
    c = CDF[p, m, k, j]
    nw = c.shape[0]
    u = rng_uniform(s)
    lo, hi = 0, nw - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if c[mid] < u:
            lo = mid
        else:
            hi = mid
    dc = c[hi] - c[lo]
    f = 0.5 if dc <= 0.0 else (u - c[lo]) / dc
    w = (lo + f) / (nw - 1)
    lv = LVLO[p, m, k, j] + w * (LVHI[p, m, k, j] - LVLO[p, m, k, j])
    return k, math.exp(lv)


@nb.njit(cache=True)
def step(E, dmax, p, m, stochastic, closed, a, b, e_low, lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI, s):
    """One step of at most ``dmax`` [m] from energy E.

    Returns (E_before_loss, distance, loss, process): the lepton moved ``distance``, lost
    ``E - E_before_loss`` continuously and then ``loss`` in one stochastic interaction of
    ``process`` (-1 and loss 0 if none). E_before_loss = 0 means it stopped.
    ``closed``: continuous-only muon with the closed-form a + b E table (a, b, e_low).
    """
    if closed:
        r = muon_range_one(E, a, b, e_low)
        if r <= dmax:
            return 0.0, r, 0.0, -1
        return energy_after_one(E, dmax, a, b, e_low), dmax, 0.0, -1
    xt = X[p, m]
    xe = interp_e(E, lnE0, dlnE, Eg, xt)
    if stochastic:
        lt = LAM[p, m]
        le = interp_e(E, lnE0, dlnE, Eg, lt) if E > Eg[0] else 0.0
        if le > 0.0:
            u = rng_uniform(s)
            target = le + math.log(max(u, 1e-300))
            if target > 0.0:
                ef = min(inverse_e(target, Eg, lt), E)
                d = max(xe - interp_e(ef, lnE0, dlnE, Eg, xt), 0.0)
                if d < dmax:
                    k, v = sample_loss(ef, p, m, lnE0, dlnE, Eg, SIG, CDF, LVLO, LVHI, s)
                    if k >= 0:
                        return ef, d, v * ef, k
                    return ef, d, 0.0, -1
    if xe <= dmax:
        return 0.0, xe, 0.0, -1
    eb = min(inverse_e(xe - dmax, Eg, xt), E)
    return eb, dmax, 0.0, -1


@nb.njit(cache=True)
def tau_decay_fraction(channel, s):
    """Energy fraction of the visible product: leptons (5 - 9z^2 + 4z^3)/3, hadrons uniform."""
    if channel == 2:
        return rng_uniform(s)
    while True:
        z = rng_uniform(s)
        if rng_uniform(s) * 5.0 / 3.0 < (5.0 - 9.0 * z * z + 4.0 * z * z * z) / 3.0:
            return z


@nb.njit(cache=True)
def tau_decay_channel(s):
    """0: mu nu nu, 1: e nu nu, 2: hadrons nu (PDG branching ratios)."""
    u = rng_uniform(s)
    if u < BR_MU:
        return 0
    if u < BR_MU + BR_E:
        return 1
    return 2


# ---------------------------------------------------------------------------------------------
# straight line in one medium (tests, benchmarks)
# ---------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def propagate_straight(pdg, e0, dist, seeds, m, stochastic, tau_decay, closed, a, b, e_low,
                       lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI):
    """Leptons over ``dist`` [m] of one medium ``m``; a tau that decays continues as its muon.

    Returns per lepton: final energy (0 if stopped), path travelled by the initial lepton
    (to stop, decay or ``dist``), total continuous and stochastic losses, number of stochastic
    losses, decay flag, and the energy carried away at the decay (all of the tau's energy
    except what a decay muon carries on).
    """
    n = e0.shape[0]
    e_out = np.empty(n)
    path = np.empty(n)
    cont = np.zeros(n)
    sto = np.zeros(n)
    nloss = np.zeros(n, np.int64)
    decayed = np.zeros(n, np.bool_)
    e_decay_out = np.zeros(n)
    for i in range(n):
        s = rng_new(seeds[i])
        E = e0[i]
        p = 1 if abs(pdg[i]) == 15 else 0
        x = 0.0
        s_dec = np.inf
        if p == 1 and tau_decay:
            s_dec = -math.log(max(rng_uniform(s), 1e-300)) * (E / TAU_MASS) * TAU_CTAU_M
        path[i] = -1.0
        while True:
            lim = dist
            if p == 1:
                lim = min(lim, s_dec)
            if x >= lim:
                if p == 1 and x >= s_dec and s_dec < dist:
                    decayed[i] = True
                    path[i] = x
                    ch = tau_decay_channel(s)
                    z = tau_decay_fraction(ch, s)
                    if ch == 0:
                        e_decay_out[i] = E * (1.0 - z)
                        E = E * z
                        p = 0
                        continue
                    e_decay_out[i] = E
                    E = 0.0
                break
            ef, d, loss, k = step(E, lim - x, p, m, stochastic, closed and p == 0, a, b, e_low,
                                  lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI, s)
            cont[i] += E - ef
            sto[i] += loss
            if loss > 0.0:
                nloss[i] += 1
            x = lim if d >= lim - x else x + d
            if ef <= 0.0:
                E = 0.0
                break
            E = ef - loss
        if path[i] < 0.0:
            path[i] = x
        e_out[i] = E
    return e_out, path, cont, sto, nloss, decayed, e_decay_out


@nb.njit(cache=True)
def sample_v(E, p, m, k_want, n, seed, lnE0, dlnE, Eg, SIG, CDF, LVLO, LVHI):
    """``n`` samples of v of process ``k_want`` at energy E (rejecting the other processes)."""
    s = rng_new(seed)
    out = np.empty(n)
    j = 0
    while j < n:
        k, v = sample_loss(E, p, m, lnE0, dlnE, Eg, SIG, CDF, LVLO, LVHI, s)
        if k == k_want:
            out[j] = v
            j += 1
    return out


# ---------------------------------------------------------------------------------------------
# the stage kernel
# ---------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def propagate_tracks(ev_start, seeds, pdg, track_id, pos, dirs, energy, s_in_a, s_out_a, next_id,
                     stochastic, tau_decay, rock, closed_mu, e_cut, cap, a_w, b_w, el_w, a_r, b_r, el_r,
                     shower_pdg, lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI):
    """Propagate the muons and taus of ``mc_tracks`` (rows grouped by event, in track order).

    ``s_in_a``/``s_out_a``: path from the track start to the can entry/exit (NaN: misses).
    Sea water above z = 0, rock below if ``rock``. Returns per input row (moved, s_entry,
    e_entry, length, lost) and the new rows (showers, decay muons) in buffers of capacity
    ``cap``: source row, track id, parent id, pdg, path along the source line, energy, length,
    energy lost in the can. ``count`` may exceed ``cap``: then call again with more room.
    """
    n = pdg.shape[0]
    moved = np.zeros(n, np.bool_)
    s_entry = np.zeros(n)
    e_entry = energy.copy()
    length = np.zeros(n)
    lost = np.zeros(n)
    r_row = np.empty(cap, np.int64)
    r_tid = np.empty(cap, np.int32)
    r_par = np.empty(cap, np.int32)
    r_pdg = np.empty(cap, np.int32)
    r_s = np.empty(cap)
    r_e = np.empty(cap)
    r_len = np.zeros(cap)
    r_lost = np.zeros(cap)
    count = 0
    n_ev = ev_start.shape[0] - 1
    for ev in range(n_ev):
        st = rng_new(seeds[ev])
        nid = next_id[ev]
        for row in range(ev_start[ev], ev_start[ev + 1]):
            ap = abs(pdg[row])
            if ap != 13 and ap != 15:
                continue
            s_out = s_out_a[row]
            if not (s_out > 0.0):  # NaN (misses the can) or the can lies behind
                length[row] = 0.0
                lost[row] = 0.0
                continue
            s_in = max(s_in_a[row], 0.0)
            pz = pos[row, 2]
            dz = dirs[row, 2]
            s_floor = np.inf
            if rock and dz != 0.0:
                sf = -pz / dz
                if sf > 0.0:
                    s_floor = sf
            sign = 1 if pdg[row] > 0 else -1
            p = 1 if ap == 15 else 0
            E = energy[row]
            x = 0.0
            s_dec = np.inf
            if p == 1 and tau_decay:
                s_dec = -math.log(max(rng_uniform(st), 1e-300)) * (E / TAU_MASS) * TAU_CTAU_M
            is_input = True  # the current lepton is the input row (else a decay muon)
            buf = -1  # buffer index of the decay muon's row
            cur_tid = track_id[row]
            entered = False
            cur_lost = 0.0
            while True:
                if not entered and E > 0.0 and x >= s_in and x < s_out:
                    entered = True
                    if is_input:
                        s_entry[row] = x
                        e_entry[row] = E
                        moved[row] = x > 1e-6  # 1 um: leptons generated on the surface stay put
                    else:
                        buf = count
                        if count < cap:
                            r_row[count] = row
                            r_tid[count] = nid
                            r_par[count] = track_id[row]
                            r_pdg[count] = 13 * sign
                            r_s[count] = x
                            r_e[count] = E
                        cur_tid = nid
                        nid += 1
                        count += 1
                if x >= s_out or E <= 0.0:
                    break
                if p == 1 and x >= s_dec:
                    ch = tau_decay_channel(st)
                    z = tau_decay_fraction(ch, st)
                    if entered:
                        length[row] = x - s_entry[row]
                        lost[row] = cur_lost
                    if ch == 0:  # the muon goes on along the line
                        p = 0
                        E = E * z
                        is_input = False
                        entered = False
                        cur_lost = 0.0
                        continue
                    if x >= s_in and E * z >= e_cut:
                        if count < cap:
                            r_row[count] = row
                            r_tid[count] = nid
                            r_par[count] = track_id[row]
                            r_pdg[count] = 11 * sign if ch == 1 else 211
                            r_s[count] = x
                            r_e[count] = E * z
                        nid += 1
                        count += 1
                    E = 0.0
                    entered = False  # already closed
                    break
                lim = s_out
                if p == 1:
                    lim = min(lim, s_dec)
                if s_in > x:
                    lim = min(lim, s_in)
                if s_floor > x:
                    lim = min(lim, s_floor)
                zmid = pz + 0.5 * (x + lim) * dz
                m = 1 if (rock and zmid < 0.0) else 0
                closed = closed_mu and p == 0
                if m == 0:
                    ef, d, loss, k = step(E, lim - x, p, m, stochastic, closed, a_w, b_w, el_w,
                                          lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI, st)
                else:
                    ef, d, loss, k = step(E, lim - x, p, m, stochastic, closed, a_r, b_r, el_r,
                                          lnE0, dlnE, Eg, X, LAM, SIG, CDF, LVLO, LVHI, st)
                newx = lim if d >= lim - x else x + d
                if entered:
                    cur_lost += (E - ef) + loss
                    if loss > 0.0 and loss >= e_cut:
                        if count < cap:
                            r_row[count] = row
                            r_tid[count] = nid
                            r_par[count] = cur_tid
                            r_pdg[count] = shower_pdg[k]
                            r_s[count] = newx
                            r_e[count] = loss
                        nid += 1
                        count += 1
                x = newx
                E = 0.0 if ef <= 0.0 else ef - loss
            if entered:
                if is_input:
                    length[row] = min(x, s_out) - s_entry[row]
                    lost[row] = cur_lost
                elif buf < cap:
                    r_len[buf] = min(x, s_out) - r_s[buf]
                    r_lost[buf] = cur_lost
    return moved, s_entry, e_entry, length, lost, count, r_row, r_tid, r_par, r_pdg, r_s, r_e, r_len, r_lost
