"""numba kernels of the KM3NeT-like trigger: L0 -> L1 -> L2 -> 3DMuon, 3DShower, MXShower -> events.

Only ``@njit`` functions live here; they take arrays, scalars and the :class:`TriggerParams`
named tuple, never config objects. The physics (causality conditions, their derivation) and the
choices made are described in :mod:`km3sim.trigger.trigger`.

Data layout inside one time window (a simulated event's hits, a DAQ snapshot, or a timeslice):
the L0 hits sorted by (DOM, time) ("sorted order"); an L1 is a range of that order; the trigger
input is the list of L2s sorted by time; triggers add *clusters* (first/last hit time, mask
bits) and OR their bits into the per-hit mask; overlapping clusters are merged into events.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba as nb
import numpy as np

__all__ = [
    "TriggerParams",
    "direction_grid",
    "rotate_positions",
    "dom_neighbours",
    "pmt_axis_table",
    "find_l1",
    "find_l2",
    "greedy_clique",
    "trigger_windows",
    "work_buffers",
    "snapshot_event_index",
]

#: Flat parameters of one trigger configuration (see ``km3sim.trigger.trigger._params``).
TriggerParams = namedtuple(
    "TriggerParams",
    [
        "tmax_local", "l1_min", "combine_l1",
        "l2_tmax", "l2_min", "l2_ct_min",
        "tmax_event",
        "mu_on", "mu_n", "mu_m", "mu_dmax", "mu_road", "mu_extra", "mu_factory",
        "sh_on", "sh_n", "sh_m", "sh_dmax", "sh_extra", "sh_factory",
        "mx_on", "mx_n", "mx_m", "mx_dmax", "mx_extra", "mx_factory",
        "k_light", "n_group", "c_light",
        "bit_mu", "bit_sh", "bit_mx", "bit_fl",
    ],
)


# --------------------------------------------------------------------------------------------
# geometry helpers (run once per detector)
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def direction_grid(n):
    """``n`` unit vectors spread evenly over the full sphere (Fibonacci lattice).

    Each point stands for a solid angle 4π/n; the lattice is deterministic and has no pole
    clustering. Returns an (n, 3) float64 array.
    """
    out = np.empty((n, 3))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    for i in range(n):
        z = 1.0 - (2.0 * i + 1.0) / n
        r = math.sqrt(max(0.0, 1.0 - z * z))
        phi = golden * i
        out[i, 0] = r * math.cos(phi)
        out[i, 1] = r * math.sin(phi)
        out[i, 2] = z
    return out


@nb.njit(cache=True)
def rotate_positions(dirs, pos):
    """Positions in the frame of each direction: (x', y', z') with z' along the direction.

    Parameters
    ----------
    dirs : ndarray, shape (n_dir, 3)
        Unit vectors.
    pos : ndarray, shape (n_pos, 3)
        Positions [m].

    Returns
    -------
    ndarray, shape (n_dir, n_pos, 3)
    """
    n_dir = dirs.shape[0]
    n_pos = pos.shape[0]
    out = np.empty((n_dir, n_pos, 3))
    for k in range(n_dir):
        d0, d1, d2 = dirs[k, 0], dirs[k, 1], dirs[k, 2]
        # the axis least aligned with d builds e1 = a x d / |a x d|; e2 = d x e1
        ax, ay, az = abs(d0), abs(d1), abs(d2)
        if ax <= ay and ax <= az:
            a0, a1, a2 = 1.0, 0.0, 0.0
        elif ay <= az:
            a0, a1, a2 = 0.0, 1.0, 0.0
        else:
            a0, a1, a2 = 0.0, 0.0, 1.0
        e10 = a1 * d2 - a2 * d1
        e11 = a2 * d0 - a0 * d2
        e12 = a0 * d1 - a1 * d0
        nrm = math.sqrt(e10 * e10 + e11 * e11 + e12 * e12)
        e10 /= nrm
        e11 /= nrm
        e12 /= nrm
        e20 = d1 * e12 - d2 * e11
        e21 = d2 * e10 - d0 * e12
        e22 = d0 * e11 - d1 * e10
        for i in range(n_pos):
            x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
            out[k, i, 0] = x * e10 + y * e11 + z * e12
            out[k, i, 1] = x * e20 + y * e21 + z * e22
            out[k, i, 2] = x * d0 + y * d1 + z * d2
    return out


@nb.njit(cache=True)
def dom_neighbours(dom_pos, dmax):
    """DOMs within ``dmax`` of each DOM (itself included), as CSR arrays.

    Returns
    -------
    offsets : ndarray of int64, shape (n_doms + 1,)
    index : ndarray of int64
        Neighbours of DOM ``d`` are ``index[offsets[d]:offsets[d + 1]]``, ``d`` first.
    distance : ndarray of float64
        Their distances [m].
    """
    n = dom_pos.shape[0]
    d2max = dmax * dmax
    counts = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for j in range(n):
            dx = dom_pos[j, 0] - dom_pos[i, 0]
            dy = dom_pos[j, 1] - dom_pos[i, 1]
            dz = dom_pos[j, 2] - dom_pos[i, 2]
            if dx * dx + dy * dy + dz * dz <= d2max:
                counts[i + 1] += 1
    for i in range(n):
        counts[i + 1] += counts[i]
    index = np.empty(counts[n], dtype=np.int64)
    dist = np.empty(counts[n])
    for i in range(n):
        k = counts[i]
        index[k] = i
        dist[k] = 0.0
        k += 1
        for j in range(n):
            if j == i:
                continue
            dx = dom_pos[j, 0] - dom_pos[i, 0]
            dy = dom_pos[j, 1] - dom_pos[i, 1]
            dz = dom_pos[j, 2] - dom_pos[i, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 <= d2max:
                index[k] = j
                dist[k] = math.sqrt(r2)
                k += 1
    return counts, index, dist


def pmt_axis_table(dom_pmt_offsets, pmt_dir, n_channels=31):
    """PMT axes by (DOM index, channel), shape (n_doms, n_channels, 3); NaN where no PMT."""
    n_doms = len(dom_pmt_offsets) - 1
    out = np.full((n_doms, n_channels, 3), np.nan)
    for d in range(n_doms):
        a, b = int(dom_pmt_offsets[d]), int(dom_pmt_offsets[d + 1])
        m = min(b - a, n_channels)
        out[d, :m] = pmt_dir[a:a + m]
    return out


# --------------------------------------------------------------------------------------------
# L1 and L2
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def _popcount(x):
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@nb.njit(cache=True, inline="always")
def _window_end(st, sc, i, stop, tmax):
    """End (exclusive) of the window [t_i, t_i + tmax] in sorted order, and its channel bits."""
    t0 = st[i]
    mask = np.int64(0)
    j = i
    while j < stop and st[j] - t0 <= tmax:
        mask |= np.int64(1) << np.int64(sc[j] & 63)
        j += 1
    return j, mask


@nb.njit(cache=True)
def _l1_scan(st, sc, sd, tmax_local, min_hits, combine, out_dom, out_time, out_first, out_stop, fill):
    """One pass of :func:`find_l1`: count the L1s, and with ``fill`` write them out.

    (Two passes instead of growing the outputs: arrays re-bound inside a numba loop make
    the whole loop several times slower.)
    """
    n = st.shape[0]
    n_l1 = 0
    g0 = 0
    while g0 < n:
        dom = sd[g0]
        g1 = g0 + 1
        while g1 < n and sd[g1] == dom:
            g1 += 1
        if g1 - g0 >= min_hits:
            i = g0
            while i < g1 - 1:
                if st[i + 1] - st[i] > tmax_local:  # fast path: a lone hit
                    i += 1
                    continue
                j, mask = _window_end(st, sc, i, g1, tmax_local)
                if j - i >= min_hits and _popcount(mask) >= min_hits:
                    stop = j
                    if combine:
                        k = i + 1
                        while k < stop:
                            jj, mk = _window_end(st, sc, k, g1, tmax_local)
                            if jj > stop and jj - k >= min_hits and _popcount(mk) >= min_hits:
                                stop = jj
                            k += 1
                    if fill:
                        out_dom[n_l1] = dom
                        out_time[n_l1] = st[i]
                        out_first[n_l1] = i
                        out_stop[n_l1] = stop
                    n_l1 += 1
                    i = stop if combine else i + 1
                else:
                    i += 1
        g0 = g1
    return n_l1


@nb.njit(cache=True)
def find_l1(st, sc, sd, tmax_local, min_hits, combine):
    """Local coincidences (L1) of hits sorted by (DOM, time).

    An L1 is a set of at least ``min_hits`` hits on *different* PMTs of one DOM within
    ``tmax_local`` ns of the first of them (Jpp ``TMaxLocal_ns``). Its time is the time of its
    first hit. With ``combine`` (Jpp ``combineL1``) a qualifying window that opens inside the
    current L1 and reaches beyond it extends the L1, so one burst of light on a DOM gives one
    L1; without it every hit that opens a qualifying window gives its own (overlapping) L1.

    Parameters
    ----------
    st : ndarray of float64
        Hit times [ns], sorted by (DOM, time).
    sc, sd : ndarray of int
        PMT channel (0..62) and DOM index of the same hits.
    tmax_local : float
    min_hits : int
    combine : bool

    Returns
    -------
    l1_dom : ndarray of int64
    l1_time : ndarray of float64
    l1_first, l1_stop : ndarray of int64
        The hits of L1 ``k`` are sorted positions ``l1_first[k]:l1_stop[k]``.
    """
    e_i = np.empty(0, dtype=np.int64)
    n_l1 = _l1_scan(st, sc, sd, tmax_local, min_hits, combine, e_i, np.empty(0), e_i, e_i, False)
    l1_dom = np.empty(n_l1, dtype=np.int64)
    l1_time = np.empty(n_l1)
    l1_first = np.empty(n_l1, dtype=np.int64)
    l1_stop = np.empty(n_l1, dtype=np.int64)
    _l1_scan(st, sc, sd, tmax_local, min_hits, combine, l1_dom, l1_time, l1_first, l1_stop, True)
    return l1_dom, l1_time, l1_first, l1_stop


@nb.njit(cache=True)
def _grow(a, cap):
    """A copy of 1-D ``a`` with room for ``cap`` elements."""
    b = np.empty(cap, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@nb.njit(cache=True)
def find_l2(st, sc, sd, pmt_axis, l1_first, l1_stop, tmax_l2, min_hits, ct_min):
    """L2 coincidences inside L1s: the input of the 3D triggers (Jpp ``L2`` parameters).

    An L1 is an L2 when one of its hits i opens a window [t_i, t_i + ``tmax_l2``] holding at
    least ``min_hits`` distinct PMTs whose axes make cos ≥ ``ct_min`` with the axis of hit i's
    PMT (``ct_min`` ≤ −1: no angle cut).

    Parameters
    ----------
    st, sc, sd : sorted hit times, channels, DOM indices (see :func:`find_l1`).
    pmt_axis : ndarray, shape (n_doms, n_channels, 3)
        PMT axes by (DOM, channel) (only read when ``ct_min > -1``).
    l1_first, l1_stop : ndarray of int64
    tmax_l2 : float
    min_hits : int
    ct_min : float

    Returns
    -------
    ndarray of float64
        Time of the first qualifying L2 window of each L1 [ns], NaN where the L1 is no L2.
    """
    n_l1 = l1_first.shape[0]
    out = np.full(n_l1, np.nan)
    use_ct = ct_min > -1.0
    for k in range(n_l1):
        a = l1_first[k]
        b = l1_stop[k]
        for i in range(a, b):
            ti = st[i]
            di = sd[i]
            ci = sc[i]
            mask = np.int64(0)
            j = i
            while j < b and st[j] - ti <= tmax_l2:
                if use_ct:
                    cj = sc[j]
                    ct = (pmt_axis[di, ci, 0] * pmt_axis[di, cj, 0] + pmt_axis[di, ci, 1] * pmt_axis[di, cj, 1]
                          + pmt_axis[di, ci, 2] * pmt_axis[di, cj, 2])
                    if not ct >= ct_min:
                        j += 1
                        continue
                mask |= np.int64(1) << np.int64(sc[j] & 63)
                j += 1
            if _popcount(mask) >= min_hits:
                out[k] = ti
                break
    return out


# --------------------------------------------------------------------------------------------
# clustering
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def greedy_clique(compat, m, alive, min_size, bad):
    """Reduce ``alive[:m]`` to a set of pairwise compatible vertices (in place); return its size.

    First drops, repeatedly, vertices with fewer than ``min_size - 1`` compatible partners
    (no clique of ``min_size`` can hold them). Then removes, one at a time, the vertex with the
    most incompatible partners (the lowest index on ties) until every remaining pair is
    compatible — the greedy cluster builder of the KM3NeT triggers (Jpp ``clusterizeWeight``
    keeps the vertices with the most matches the same way). A vertex compatible with all others
    (e.g. the seed) is never removed. Stops once fewer than ``min_size`` vertices remain.

    Parameters
    ----------
    compat : ndarray of bool, shape (>= m, >= m)
        Symmetric compatibility; the diagonal is ignored.
    m : int
        Number of vertices used.
    alive : ndarray of bool, shape (>= m,)
        In: candidate vertices. Out: the clique.
    min_size : int
    bad : ndarray of int64, shape (>= m,)
        Work array.
    """
    n_alive = 0
    for i in range(m):
        if alive[i]:
            n_alive += 1
    for i in range(m):
        bad[i] = 0
        if not alive[i]:
            continue
        c = 0
        for j in range(m):
            if j != i and alive[j] and not compat[i, j]:
                c += 1
        bad[i] = c
    changed = True
    while changed and n_alive >= min_size:
        changed = False
        for i in range(m):
            if alive[i] and (n_alive - 1 - bad[i]) < (min_size - 1):
                alive[i] = False
                n_alive -= 1
                changed = True
                for j in range(m):
                    if alive[j] and j != i and not compat[i, j]:
                        bad[j] -= 1
    while n_alive >= min_size:
        worst = -1
        wmax = 0
        for i in range(m):
            if alive[i] and bad[i] > wmax:
                wmax = bad[i]
                worst = i
        if worst < 0:
            break
        alive[worst] = False
        n_alive -= 1
        for j in range(m):
            if alive[j] and j != worst and not compat[worst, j]:
                bad[j] -= 1
    return n_alive


@nb.njit(cache=True)
def _count_doms(doms, sel, m, marker):
    """Distinct values of ``doms[sel[a]]`` for a < m (``marker``: all-False work array, restored)."""
    nd = 0
    for a in range(m):
        d = doms[sel[a]]
        if not marker[d]:
            marker[d] = True
            nd += 1
    for a in range(m):
        marker[doms[sel[a]]] = False
    return nd


# --------------------------------------------------------------------------------------------
# per-window trigger work
# --------------------------------------------------------------------------------------------
# Hot loops never re-bind arrays (numba then reloads them every iteration and the loop gets
# several times slower): work buffers are sized before the loops that use them.


@nb.njit(cache=True)
def _flag_l1_hits(sel, m, in_l1, l1_first, l1_stop, st, smask, bits):
    """OR ``bits`` into the L0 hits of the L1s of input hits ``sel[:m]``; their first/last time."""
    tf = np.inf
    tl = -np.inf
    for a in range(m):
        k = in_l1[sel[a]]
        for h in range(l1_first[k], l1_stop[k]):
            smask[h] |= bits
            if st[h] < tf:
                tf = st[h]
            if st[h] > tl:
                tl = st[h]
    return tf, tl


@nb.njit(cache=True)
def _flag_range(p, q, in_l1, l1_first, l1_stop, st, smask, bits):
    """OR ``bits`` into the L0 hits of the L1s of input hits p..q-1; their first/last time."""
    tf = np.inf
    tl = -np.inf
    for j in range(p, q):
        k = in_l1[j]
        for h in range(l1_first[k], l1_stop[k]):
            smask[h] |= bits
            if st[h] < tf:
                tf = st[h]
            if st[h] > tl:
                tl = st[h]
    return tf, tl


@nb.njit(cache=True)
def _max_window(in_t, window):
    """Largest number of input hits in [t_p, t_p + window] over all p (two pointers)."""
    m = in_t.shape[0]
    best = 0
    q = 0
    for p in range(m):
        if q < p + 1:
            q = p + 1
        while q < m and in_t[q] - in_t[p] <= window:
            q += 1
        if q - p > best:
            best = q - p
    return best


@nb.njit(cache=True)
def _fresh(used, p, q):
    """True if seed p or any input hit p+1..q-1 is not yet in a cluster of this trigger."""
    if not used[p]:
        return True
    for j in range(p + 1, q):
        if not used[j]:
            return True
    return False


@nb.njit(cache=True)
def _point_setup(dmax, extra, bit, P, cap):
    """Common set-up of the point-source (shower) triggers 3DShower and MXShower.

    Returns the cluster bits (``bit``, and with the factory-limit bit), n_g/c [ns/m], the
    largest time difference to the seed W = DMax·n_g/c + TMaxExtra [ns], DMax², and the work
    arrays of :func:`_point_cluster` for up to ``cap`` hits: the hit list, the compatibility
    matrix, and the ``alive`` and ``bad`` arrays of :func:`greedy_clique`.
    """
    bits = np.uint32(1) << np.uint32(bit)
    bits_fl = bits | (np.uint32(1) << np.uint32(P.bit_fl))
    inv_v = P.n_group / P.c_light
    window = dmax * inv_v + extra
    sel = np.empty(cap, dtype=np.int64)
    compat = np.zeros((cap, cap), dtype=np.bool_)
    alive = np.empty(cap, dtype=np.bool_)
    bad = np.empty(cap, dtype=np.int64)
    return bits, bits_fl, inv_v, window, dmax * dmax, sel, compat, alive, bad


@nb.njit(cache=True, inline="always")
def _point_cluster(sel, m, doms, times, dom_pos, dmax2, inv_v, extra, n_need, n_mod, compat, alive, bad, marker):
    """Largest set of hits ``sel[:m]`` compatible with light from one point (both shower triggers).

    Hits i, j (DOMs ``doms[i]``, times ``times[i]``) are compatible when their DOMs are within
    DMax (``dmax2`` = DMax²) and |t_i − t_j| ≤ D_ij·n_g/c + TMaxExtra (light from one point
    reaches two places at most their distance apart in time; D = 0 on one DOM). The pairwise
    compatible subset is found by :func:`greedy_clique` (the seed ``sel[0]``, compatible with
    all, is kept) and compacted into ``sel``. Returns its size, or −1 when it (or the input)
    has fewer than ``n_need`` hits or fewer than ``n_mod`` DOMs.
    """
    if m < n_need or _count_doms(doms, sel, m, marker) < n_mod:
        return -1
    for a in range(m):
        alive[a] = True
        ia = sel[a]
        da = doms[ia]
        for b in range(a + 1, m):
            ib = sel[b]
            db = doms[ib]
            dt = abs(times[ib] - times[ia])
            if da == db:
                ok = dt <= extra
            else:
                dx = dom_pos[db, 0] - dom_pos[da, 0]
                dy = dom_pos[db, 1] - dom_pos[da, 1]
                dz = dom_pos[db, 2] - dom_pos[da, 2]
                r2 = dx * dx + dy * dy + dz * dz
                ok = r2 <= dmax2 and dt <= math.sqrt(r2) * inv_v + extra
            compat[a, b] = ok
            compat[b, a] = ok
    if greedy_clique(compat, m, alive, n_need, bad) < n_need:
        return -1
    k = 0
    for a in range(m):
        if alive[a]:
            sel[k] = sel[a]
            k += 1
    if _count_doms(doms, sel, k, marker) < n_mod:
        return -1
    return k


@nb.njit(cache=True)
def _shower3d(in_t, in_dom, in_l1, l1_first, l1_stop, st, smask, dom_pos, P, marker,
              cl_first, cl_last, cl_bits, n_cl):
    """3DShower: L2s compatible with light from one point (Jpp ``JTrigger3DShower``).

    Seed p (each L2 in time order); candidates: the later L2s within
    W = DMax·n_g/c + TMaxExtra whose DOM is within DMax and that satisfy
    |t_j − t_p| ≤ |x_j − x_p|·n_g/c + TMaxExtra. The largest pairwise compatible subset
    (same condition for every pair, seed kept) of at least numberOfHits L2s on at least
    numberOfModules DOMs is a cluster. More than factoryLimit L2s in the window: all of them
    form a cluster (bit 31 added) without the causality logic. Returns the new cluster count.
    """
    m_in = in_t.shape[0]
    n_need = P.sh_n
    extra = P.sh_extra
    cap = min(_max_window(in_t, P.sh_dmax * (P.n_group / P.c_light) + extra), P.sh_factory) + 1
    bits, bits_fl, inv_v, window, dmax2, sel, compat, alive, bad = _point_setup(P.sh_dmax, extra, P.bit_sh, P, cap)
    used = np.zeros(m_in, dtype=np.bool_)
    q = 0
    for p in range(m_in):
        if q < p + 1:
            q = p + 1
        while q < m_in and in_t[q] - in_t[p] <= window:
            q += 1
        n_win = q - p
        if n_win < n_need or not _fresh(used, p, q):
            continue
        if n_win > P.sh_factory:
            for j in range(p, q):
                used[j] = True
            tf, tl = _flag_range(p, q, in_l1, l1_first, l1_stop, st, smask, bits_fl)
            cl_first[n_cl] = tf
            cl_last[n_cl] = tl
            cl_bits[n_cl] = bits_fl
            n_cl += 1
            continue
        dp = in_dom[p]
        m = 1
        sel[0] = p
        for j in range(p + 1, q):
            dj = in_dom[j]
            dx = dom_pos[dj, 0] - dom_pos[dp, 0]
            dy = dom_pos[dj, 1] - dom_pos[dp, 1]
            dz = dom_pos[dj, 2] - dom_pos[dp, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 <= dmax2 and in_t[j] - in_t[p] <= math.sqrt(r2) * inv_v + extra:
                sel[m] = j
                m += 1
        if m < n_need:  # (also checked in _point_cluster; here it saves a call for most seeds)
            continue
        k = _point_cluster(sel, m, in_dom, in_t, dom_pos, dmax2, inv_v, extra, n_need, P.sh_m, compat, alive, bad,
                           marker)
        if k < 0:
            continue
        for a in range(k):
            used[sel[a]] = True
        tf, tl = _flag_l1_hits(sel, k, in_l1, l1_first, l1_stop, st, smask, bits)
        cl_first[n_cl] = tf
        cl_last[n_cl] = tl
        cl_bits[n_cl] = bits
        n_cl += 1
    return n_cl


@nb.njit(cache=True)
def _muon3d(in_t, in_dom, in_l1, l1_first, l1_stop, st, smask, dom_pos, dirs, P, marker,
            cl_first, cl_last, cl_bits, n_cl):
    """3DMuon: L2s compatible with one straight muon along one of the grid directions.

    Two hits i, j with transverse distance R (seen along direction u) and longitudinal
    separation Δz are compatible when R ≤ roadWidth, |x_j − x_i| ≤ DMax and
    |c(t_j − t_i) − Δz| ≤ k·min(R, roadWidth − R) + c·TMaxExtra (derivation in
    :mod:`km3sim.trigger.trigger`). Seed p: the later L2s within the direction-independent
    bound |cΔt| ≤ min(√(1+k²)·D, D + k·roadWidth/2) + c·TMaxExtra; then for each direction
    the candidates compatible with p, and the largest pairwise compatible subset of them (p
    kept). Every direction with ≥ numberOfHits L2s on ≥ numberOfModules DOMs adds its L2s to
    the seed's cluster. factoryLimit as in :func:`_shower3d`. Returns the new cluster count.
    """
    m_in = in_t.shape[0]
    n_need = P.mu_n
    bits = np.uint32(1) << np.uint32(P.bit_mu)
    bits_fl = bits | (np.uint32(1) << np.uint32(P.bit_fl))
    c = P.c_light
    k = P.k_light
    road = P.mu_road
    road2 = road * road
    cx = c * P.mu_extra
    kk = math.sqrt(1.0 + k * k)
    half = 0.5 * k * road
    dmax2 = P.mu_dmax * P.mu_dmax
    window = (min(kk * P.mu_dmax, P.mu_dmax + half) + cx) / c
    n_dir = dirs.shape[0]
    cap = min(_max_window(in_t, window), P.mu_factory) + 1
    cand = np.empty(cap, dtype=np.int64)
    cdx = np.empty(cap)
    cdy = np.empty(cap)
    cdz = np.empty(cap)
    cd2 = np.empty(cap)
    cdt = np.empty(cap)
    sel = np.empty(cap, dtype=np.int64)  # positions in cand
    idx = np.empty(cap, dtype=np.int64)  # input indices
    compat = np.zeros((cap, cap), dtype=np.bool_)
    alive = np.empty(cap, dtype=np.bool_)
    bad = np.empty(cap, dtype=np.int64)
    in_cluster = np.zeros(cap, dtype=np.bool_)
    used = np.zeros(m_in, dtype=np.bool_)
    q = 0
    for p in range(m_in):
        if q < p + 1:
            q = p + 1
        while q < m_in and in_t[q] - in_t[p] <= window:
            q += 1
        n_win = q - p
        if n_win < n_need or not _fresh(used, p, q):
            continue
        if n_win > P.mu_factory:
            for j in range(p, q):
                used[j] = True
            tf, tl = _flag_range(p, q, in_l1, l1_first, l1_stop, st, smask, bits_fl)
            cl_first[n_cl] = tf
            cl_last[n_cl] = tl
            cl_bits[n_cl] = bits_fl
            n_cl += 1
            continue
        dp = in_dom[p]
        px, py, pz = dom_pos[dp, 0], dom_pos[dp, 1], dom_pos[dp, 2]
        m = 1
        cand[0] = p
        cdx[0] = 0.0
        cdy[0] = 0.0
        cdz[0] = 0.0
        cd2[0] = 0.0
        cdt[0] = 0.0
        for j in range(p + 1, q):
            dj = in_dom[j]
            dx = dom_pos[dj, 0] - px
            dy = dom_pos[dj, 1] - py
            dz = dom_pos[dj, 2] - pz
            r2 = dx * dx + dy * dy + dz * dz
            if r2 > dmax2:
                continue
            r = math.sqrt(r2)
            ct = c * (in_t[j] - in_t[p])
            if ct > min(kk * r, r + half) + cx:
                continue
            cand[m] = j
            cdx[m] = dx
            cdy[m] = dy
            cdz[m] = dz
            cd2[m] = r2
            cdt[m] = ct
            m += 1
        if m < n_need or _count_doms(in_dom, cand, m, marker) < P.mu_m:
            continue
        n_cluster = 0
        for kd in range(n_dir):
            ux, uy, uz = dirs[kd, 0], dirs[kd, 1], dirs[kd, 2]
            ns = 1
            sel[0] = 0
            for a in range(1, m):
                z = ux * cdx[a] + uy * cdy[a] + uz * cdz[a]
                rt2 = cd2[a] - z * z
                if rt2 > road2:
                    continue
                rt = math.sqrt(max(rt2, 0.0))
                if abs(cdt[a] - z) <= k * min(rt, road - rt) + cx:
                    sel[ns] = a
                    ns += 1
            if ns < n_need:
                continue
            fresh = False  # nothing new if every hit is already in this seed's cluster
            for s in range(ns):
                if not in_cluster[sel[s]]:
                    fresh = True
                    break
            if not fresh:
                continue
            for s in range(ns):
                idx[s] = cand[sel[s]]
            if _count_doms(in_dom, idx, ns, marker) < P.mu_m:
                continue
            for s in range(ns):
                alive[s] = True
                a = sel[s]
                for s2 in range(s + 1, ns):
                    b = sel[s2]
                    ok = True  # the seed (s == 0) is compatible with every selected hit
                    if s > 0:
                        dx = cdx[b] - cdx[a]
                        dy = cdy[b] - cdy[a]
                        dz = cdz[b] - cdz[a]
                        r2 = dx * dx + dy * dy + dz * dz
                        ok = False
                        if r2 <= dmax2:
                            z = ux * dx + uy * dy + uz * dz
                            rt2 = r2 - z * z
                            if rt2 <= road2:
                                rt = math.sqrt(max(rt2, 0.0))
                                ok = abs(cdt[b] - cdt[a] - z) <= k * min(rt, road - rt) + cx
                    compat[s, s2] = ok
                    compat[s2, s] = ok
            if greedy_clique(compat, ns, alive, n_need, bad) < n_need:
                continue
            kept = 0
            for s in range(ns):
                if alive[s]:
                    idx[kept] = cand[sel[s]]
                    kept += 1
            if _count_doms(in_dom, idx, kept, marker) < P.mu_m:
                continue
            for s in range(ns):
                if alive[s] and not in_cluster[sel[s]]:
                    in_cluster[sel[s]] = True
                    n_cluster += 1
        if n_cluster == 0:
            continue
        kept = 0
        for a in range(m):
            if in_cluster[a]:
                idx[kept] = cand[a]
                kept += 1
                in_cluster[a] = False
                used[cand[a]] = True
        tf, tl = _flag_l1_hits(idx, kept, in_l1, l1_first, l1_stop, st, smask, bits)
        cl_first[n_cl] = tf
        cl_last[n_cl] = tl
        cl_bits[n_cl] = bits
        n_cl += 1
    return n_cl


@nb.njit(cache=True)
def _mx_collect(tp, dp, st, dom_hi, ptr, nb_off, nb_idx, nb_dist, inv_v, extra, wmax, hits, limit):
    """L0 hits around seed (DOM dp, time tp): DOMs within DMax, |t − tp| ≤ D·n/c + TMaxExtra.

    Stores up to ``limit + 1`` hit positions in ``hits``; returns the number found (which may
    exceed the stored ones). Advances the per-DOM pointers ``ptr`` (seeds come in time order).
    """
    nh = 0
    for e in range(nb_off[dp], nb_off[dp + 1]):
        d = nb_idx[e]
        lim = nb_dist[e] * inv_v + extra
        h = ptr[d]
        stop = dom_hi[d]
        while h < stop and st[h] < tp - wmax:
            h += 1
        ptr[d] = h
        while h < stop and st[h] <= tp + lim:
            if st[h] >= tp - lim:
                if nh <= limit:
                    hits[nh] = h
                nh += 1
            h += 1
    return nh


@nb.njit(cache=True)
def _mxshower(in_t, in_dom, st, sd, smask, dom_hi, ptr, dom_pos, nb_off, nb_idx, nb_dist, P, marker,
              cl_first, cl_last, cl_bits, n_cl):
    """MXShower: an L2 seed plus the L0 hits around it compatible with one point of light.

    For seed p (DOM d_p, time t_p) the L0 hits of the DOMs within DMax of d_p (d_p included)
    with |t − t_p| ≤ D·n_g/c + TMaxExtra are collected (D: DOM distance). The largest
    pairwise compatible subset of them (DOMs within DMax and
    |t_i − t_j| ≤ D_ij·n_g/c + TMaxExtra) with at least numberOfHits L0 hits *besides the
    seed hit* (so more than numberOfHits in all: every MXShower event of the real KM3NeT files
    has ≥ 9 hits with numberOfHits = 8) on at least numberOfModules DOMs is a cluster. More
    than factoryLimit collected hits: all of them form a cluster (bit 31 added).
    Returns the new cluster count.
    """
    m_in = in_t.shape[0]
    n_need = P.mx_n + 1
    extra = P.mx_extra
    limit = P.mx_factory
    cap = min(limit, st.shape[0]) + 1
    bits, bits_fl, inv_v, wmax, dmax2, hits, compat, alive, bad = _point_setup(P.mx_dmax, extra, P.bit_mx, P, cap)
    used = np.zeros(m_in, dtype=np.bool_)
    for p in range(m_in):
        tp = in_t[p]
        dp = in_dom[p]
        nh = _mx_collect(tp, dp, st, dom_hi, ptr, nb_off, nb_idx, nb_dist, inv_v, extra, wmax, hits, limit)
        if nh < n_need:
            continue
        overflow = nh > limit
        if used[p] and not overflow:
            fresh = False
            for a in range(nh):
                if smask[hits[a]] & bits == 0:
                    fresh = True
                    break
            if not fresh:
                continue
        if overflow:
            # the factory limit: every collected hit, without the causality logic
            tf = np.inf
            tl = -np.inf
            for e in range(nb_off[dp], nb_off[dp + 1]):
                d = nb_idx[e]
                lim = nb_dist[e] * inv_v + extra
                h = ptr[d]
                while h < dom_hi[d] and st[h] <= tp + lim:
                    if st[h] >= tp - lim:
                        smask[h] |= bits_fl
                        tf = min(tf, st[h])
                        tl = max(tl, st[h])
                    h += 1
            used[p] = True
            cl_first[n_cl] = tf
            cl_last[n_cl] = tl
            cl_bits[n_cl] = bits_fl
            n_cl += 1
            continue
        kept = _point_cluster(hits, nh, sd, st, dom_pos, dmax2, inv_v, extra, n_need, P.mx_m, compat, alive, bad,
                              marker)
        if kept < 0:
            continue
        tf = np.inf
        tl = -np.inf
        for a in range(kept):
            h = hits[a]
            smask[h] |= bits
            tf = min(tf, st[h])
            tl = max(tl, st[h])
        used[p] = True
        cl_first[n_cl] = tf
        cl_last[n_cl] = tl
        cl_bits[n_cl] = bits
        n_cl += 1
    return n_cl


@nb.njit(cache=True)
def _merge_clusters(cl_first, cl_last, cl_bits, n_cl, tmax_event):
    """Events of one window from its clusters: overlapping snapshot windows merge.

    A cluster's snapshot is [t_first − TMaxEvent, t_last + TMaxEvent]; clusters whose
    snapshots overlap form one event (mask = OR of their bits, overlays = clusters − 1).
    Returns start, end, mask, overlays, t_first, t_last per event, sorted by start.
    """
    order = np.argsort(cl_first[:n_cl], kind="mergesort")
    ev_start = np.empty(n_cl)
    ev_end = np.empty(n_cl)
    ev_mask = np.empty(n_cl, dtype=np.int64)
    ev_over = np.empty(n_cl, dtype=np.int64)  # (n_cl: at most one event per cluster)
    ev_tf = np.empty(n_cl)
    ev_tl = np.empty(n_cl)
    n_ev = 0
    for r in range(n_cl):
        c = order[r]
        s = cl_first[c] - tmax_event
        e = cl_last[c] + tmax_event
        if n_ev > 0 and s <= ev_end[n_ev - 1]:
            j = n_ev - 1
            if e > ev_end[j]:
                ev_end[j] = e
            if cl_last[c] > ev_tl[j]:
                ev_tl[j] = cl_last[c]
            ev_mask[j] |= cl_bits[c]
            ev_over[j] += 1
        else:
            ev_start[n_ev] = s
            ev_end[n_ev] = e
            ev_mask[n_ev] = cl_bits[c]
            ev_over[n_ev] = 0
            ev_tf[n_ev] = cl_first[c]
            ev_tl[n_ev] = cl_last[c]
            n_ev += 1
    return ev_start[:n_ev], ev_end[:n_ev], ev_mask[:n_ev], ev_over[:n_ev], ev_tf[:n_ev], ev_tl[:n_ev]


@nb.njit(cache=True)
def _sort_window(dom, channel, time, a, b, counts, st, sc, sd, order):
    """Stable counting sort of hits a..b-1 by DOM (time order kept) into st, sc, sd, order.

    The values are scattered directly (one write stream per DOM) rather than gathered through
    the permutation afterwards, which would read the input at random; ``sd`` is filled DOM by
    DOM from the counts (sequential writes), and ``order`` may be int32 (fewer bytes scattered).
    """
    n_doms = counts.shape[0] - 1
    for i in range(a, b):
        counts[dom[i] + 1] += 1
    for d in range(n_doms):
        counts[d + 1] += counts[d]
        for k in range(counts[d], counts[d + 1]):
            sd[k] = d
    for i in range(a, b):
        d = dom[i]
        k = counts[d]
        order[k] = i - a
        st[k] = time[i]
        sc[k] = channel[i]
        counts[d] = k + 1
    for d in range(n_doms + 1):
        counts[d] = 0


@nb.njit(cache=True)
def _dom_ranges(sd, dom_lo, dom_hi, ptr, reset):
    """Per-DOM ranges of DOM-sorted hits into dom_lo/dom_hi/ptr (or back to 0 with ``reset``)."""
    n = sd.shape[0]
    g0 = 0
    while g0 < n:
        d = sd[g0]
        g1 = g0 + 1
        while g1 < n and sd[g1] == d:
            g1 += 1
        dom_lo[d] = 0 if reset else g0
        dom_hi[d] = 0 if reset else g1
        ptr[d] = 0 if reset else g0
        g0 = g1


@nb.njit(cache=True)
def _store_mask(hit_mask, smask, a, order):
    """Copy the trigger bits of sorted hits back to input positions ``a + order``; clear ``smask``."""
    for k in range(smask.shape[0]):
        if smask[k] != 0:
            hit_mask[a + order[k]] = smask[k]
            smask[k] = 0


@nb.njit(cache=True)
def _largest_event(smask, st, es, ee):
    """Index of the event (disjoint windows es..ee, sorted) holding the most triggered hits."""
    ne = es.shape[0]
    cnt = np.zeros(ne, dtype=np.int64)
    for k in range(smask.shape[0]):
        if smask[k] != 0:
            e = np.searchsorted(es, st[k], side="right") - 1
            if e >= 0 and st[k] <= ee[e]:
                cnt[e] += 1
    best = 0
    for e in range(1, ne):
        if cnt[e] > cnt[best]:
            best = e
    return best


@nb.njit(cache=True)
def _l2_input(l1_dom, l2_time):
    """Trigger input: the L1s that are L2s, sorted by L2 time -> (time, DOM, L1 index)."""
    n_in = 0
    for k in range(l2_time.shape[0]):
        if l2_time[k] == l2_time[k]:
            n_in += 1
    tmp_t = np.empty(n_in)
    tmp_k = np.empty(n_in, dtype=np.int64)
    j = 0
    for k in range(l2_time.shape[0]):
        if l2_time[k] == l2_time[k]:
            tmp_t[j] = l2_time[k]
            tmp_k[j] = k
            j += 1
    srt = np.argsort(tmp_t, kind="mergesort")
    in_t = tmp_t[srt]
    in_l1 = tmp_k[srt]
    in_dom = np.empty(n_in, dtype=np.int64)
    for j in range(n_in):
        in_dom[j] = l1_dom[in_l1[j]]
    return in_t, in_dom, in_l1


@nb.njit(cache=True)
def work_buffers(cap, channel_like, dom_like, pos_like):
    """Work buffers of :func:`trigger_windows` for windows of up to ``cap`` hits.

    Times (float64), channels, DOMs and input positions (the dtypes of the ``*_like`` arrays)
    and all-zero trigger bits (uint32).
    """
    return (np.empty(cap), np.empty(cap, dtype=channel_like.dtype), np.empty(cap, dtype=dom_like.dtype),
            np.empty(cap, dtype=pos_like.dtype), np.zeros(cap, dtype=np.uint32))


@nb.njit(cache=True)
def trigger_windows(offsets, dom, channel, time, dom_sorted, one_per_window, dom_pos, pmt_axis, dirs,
                    nb_off, nb_idx, nb_dist, P, hit_mask, work_t, work_c, work_d, work_order, work_mask):
    """L1, L2, the enabled 3D triggers and event building for every time window.

    Parameters
    ----------
    offsets : ndarray of int64, shape (n_windows + 1,)
        Hit ranges of the windows (simulated events, DAQ snapshots or timeslices).
    dom, channel : ndarray of int (any width)
        DOM index (into ``dom_pos``) and PMT channel of each hit.
    time : ndarray of float64
        Hit times [ns]. Within a window sorted by time, or — with ``dom_sorted`` — by
        (DOM, time) as in a DAQ timeslice.
    dom_sorted : bool
    one_per_window : bool
        Keep one event per window (the one with the most triggered hits), as the simulation
        stage needs; otherwise every event is returned.
    dom_pos : ndarray, shape (n_doms, 3)
    pmt_axis : ndarray, shape (n_doms, n_channels, 3)
    dirs : ndarray, shape (n_dir, 3)
        3DMuon direction grid.
    nb_off, nb_idx, nb_dist : DOM neighbours within MXShower DMax (:func:`dom_neighbours`).
    P : TriggerParams
    hit_mask : ndarray of uint32, shape (n_hits,)
        Out: zeros on entry (``np.zeros`` from the caller: untouched pages cost nothing), the
        trigger bits on return (also returned first).
    work_t, work_c, work_d, work_order, work_mask : ndarray
        Work buffers of the (DOM, time)-sorted copy of a window (unused with ``dom_sorted``):
        times (float64), channels (``channel.dtype``), DOMs (``dom.dtype``), input positions
        in the window (int32 or int64) and trigger bits (uint32, all zero on entry and on return), each at least as
        long as the longest window (:func:`work_buffers`). The caller
        (``TriggerProcessor.run``) keeps them between calls: the page faults of fresh buffers
        cost about as much as the sorting (~0.5 s of system time per 4·10⁷ hits).

    Returns
    -------
    hit_mask : ndarray of uint32, shape (n_hits,)
        Trigger bits of each hit (those of the clusters it took part in).
    ev_window : ndarray of int64
        Window of each event; events are sorted by (window, start) and do not overlap.
    ev_start, ev_end : ndarray of float64
        Snapshot window [ns].
    ev_mask : ndarray of int64
    ev_overlays : ndarray of int64
        Number of trigger clusters merged into the event, minus one.
    ev_tfirst, ev_tlast : ndarray of float64
        First and last triggered hit time [ns].
    n_l1, n_l2 : ndarray of int64, shape (n_windows,)
        L1s found and L2s fed to the 3D triggers, per window.
    n_dropped : ndarray of int64, shape (n_windows,)
        Events not kept with ``one_per_window``.
    """
    n_win = offsets.shape[0] - 1
    n_hits = time.shape[0]
    n_doms = dom_pos.shape[0]
    if hit_mask.shape[0] != n_hits:
        raise ValueError("trigger_windows: hit_mask must have one entry per hit")
    n_l1_out = np.zeros(n_win, dtype=np.int64)
    n_l2_out = np.zeros(n_win, dtype=np.int64)
    n_drop = np.zeros(n_win, dtype=np.int64)
    cap_ev = 16
    ev_window = np.empty(cap_ev, dtype=np.int64)
    ev_start = np.empty(cap_ev)
    ev_end = np.empty(cap_ev)
    ev_mask = np.empty(cap_ev, dtype=np.int64)
    ev_over = np.empty(cap_ev, dtype=np.int64)
    ev_tf = np.empty(cap_ev)
    ev_tl = np.empty(cap_ev)
    n_ev = 0
    counts = np.zeros(n_doms + 1, dtype=np.int64)
    dom_lo = np.zeros(n_doms, dtype=np.int64)
    dom_hi = np.zeros(n_doms, dtype=np.int64)
    ptr = np.zeros(n_doms, dtype=np.int64)
    marker = np.zeros(n_doms, dtype=np.bool_)
    n_triggers = int(P.mu_on) + int(P.sh_on) + int(P.mx_on)
    for w in range(n_win):
        a = offsets[w]
        b = offsets[w + 1]
        n = b - a
        if n < P.l1_min:
            continue
        # ---- hits sorted by (DOM, time)
        if dom_sorted:
            order = work_order[:0]
            st = time[a:b]
            sc = channel[a:b]
            sd = dom[a:b]
        else:
            if work_t.shape[0] < n or work_c.shape[0] < n or work_d.shape[0] < n or work_order.shape[0] < n \
                    or work_mask.shape[0] < n:
                raise ValueError("trigger_windows: work buffers shorter than a window")
            order = work_order[:n]
            st = work_t[:n]
            sc = work_c[:n]
            sd = work_d[:n]
            _sort_window(dom, channel, time, a, b, counts, st, sc, sd, order)
        # ---- L1, L2
        l1_dom, l1_time, l1_first, l1_stop = find_l1(st, sc, sd, P.tmax_local, P.l1_min, P.combine_l1)
        n_l1_out[w] = l1_dom.shape[0]
        if l1_dom.shape[0] == 0 or n_triggers == 0:
            continue
        l2_time = find_l2(st, sc, sd, pmt_axis, l1_first, l1_stop, P.l2_tmax, P.l2_min, P.l2_ct_min)
        in_t, in_dom, in_l1 = _l2_input(l1_dom, l2_time)
        n_in = in_t.shape[0]
        n_l2_out[w] = n_in
        if n_in == 0:
            continue
        # ---- triggers: each adds at most one cluster per seed; DOM-sorted input has the
        # hits in place, so the triggers flag them directly in the output mask
        if dom_sorted:
            smask = hit_mask[a:b]
        else:
            smask = work_mask[:n]  # all zero: _store_mask clears what a window set
        cl_first = np.empty(n_triggers * n_in)
        cl_last = np.empty(n_triggers * n_in)
        cl_bits = np.empty(n_triggers * n_in, dtype=np.uint32)
        n_cl = 0
        if P.mu_on and n_in >= P.mu_n:
            n_cl = _muon3d(in_t, in_dom, in_l1, l1_first, l1_stop, st, smask, dom_pos, dirs, P, marker,
                           cl_first, cl_last, cl_bits, n_cl)
        if P.sh_on and n_in >= P.sh_n:
            n_cl = _shower3d(in_t, in_dom, in_l1, l1_first, l1_stop, st, smask, dom_pos, P, marker,
                             cl_first, cl_last, cl_bits, n_cl)
        if P.mx_on:
            _dom_ranges(sd, dom_lo, dom_hi, ptr, False)
            n_cl = _mxshower(in_t, in_dom, st, sd, smask, dom_hi, ptr, dom_pos, nb_off, nb_idx, nb_dist, P, marker,
                             cl_first, cl_last, cl_bits, n_cl)
            _dom_ranges(sd, dom_lo, dom_hi, ptr, True)
        if n_cl == 0:  # (the triggers flag hits only when they add a cluster)
            continue
        # ---- events
        es, ee, em, eo, etf, etl = _merge_clusters(cl_first, cl_last, cl_bits, n_cl, P.tmax_event)
        ne = es.shape[0]
        first_keep = 0
        n_keep = ne
        if one_per_window and ne > 1:
            first_keep = _largest_event(smask, st, es, ee)
            n_keep = 1
            n_drop[w] = ne - 1
        if n_ev + n_keep > cap_ev:
            cap_ev = 2 * (n_ev + n_keep)
            ev_window = _grow(ev_window, cap_ev)
            ev_start = _grow(ev_start, cap_ev)
            ev_end = _grow(ev_end, cap_ev)
            ev_mask = _grow(ev_mask, cap_ev)
            ev_over = _grow(ev_over, cap_ev)
            ev_tf = _grow(ev_tf, cap_ev)
            ev_tl = _grow(ev_tl, cap_ev)
        for e in range(first_keep, first_keep + n_keep):
            ev_window[n_ev] = w
            ev_start[n_ev] = es[e]
            ev_end[n_ev] = ee[e]
            ev_mask[n_ev] = em[e]
            ev_over[n_ev] = eo[e]
            ev_tf[n_ev] = etf[e]
            ev_tl[n_ev] = etl[e]
            n_ev += 1
        if not dom_sorted:
            _store_mask(hit_mask, smask, a, order)
    return (hit_mask, ev_window[:n_ev], ev_start[:n_ev], ev_end[:n_ev], ev_mask[:n_ev], ev_over[:n_ev],
            ev_tf[:n_ev], ev_tl[:n_ev], n_l1_out, n_l2_out, n_drop)


@nb.njit(cache=True)
def snapshot_event_index(offsets, time, ev_window, ev_start, ev_end):
    """Event of each hit (index into the event arrays), −1 if in no snapshot window.

    Events must be sorted by (window, start) and not overlap within a window.
    """
    n_win = offsets.shape[0] - 1
    out = np.full(time.shape[0], -1, dtype=np.int64)
    n_ev = ev_window.shape[0]
    e0 = 0
    for w in range(n_win):
        while e0 < n_ev and ev_window[e0] < w:
            e0 += 1
        e1 = e0
        while e1 < n_ev and ev_window[e1] == w:
            e1 += 1
        if e1 == e0:
            continue
        for i in range(offsets[w], offsets[w + 1]):
            t = time[i]
            lo = e0
            hi = e1
            while hi - lo > 1:  # last event with start <= t
                mid = (lo + hi) // 2
                if ev_start[mid] <= t:
                    lo = mid
                else:
                    hi = mid
            if ev_start[lo] <= t <= ev_end[lo]:
                out[i] = lo
        e0 = e1
    return out
