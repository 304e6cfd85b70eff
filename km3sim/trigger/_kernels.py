"""numba kernels of the KM3NeT-like trigger: L0 -> L1 coincidences and the 3DMuon trigger.

Only ``@njit`` functions live here; they take arrays and scalars, never config objects.
See :mod:`km3sim.trigger.trigger` for the physics and the stage that calls them
(PHYSICS.md §12, FORMATS.md §5).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "direction_grid",
    "rotate_positions",
    "sort_hits_by_dom",
    "find_l1",
    "find_l2",
    "match_3d",
    "factory_windows",
    "trigger_3dmuon_events",
]


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
def _orthonormal_basis(d):
    """Two unit vectors e1, e2 with (e1, e2, d) right-handed and orthonormal."""
    # pick the axis least aligned with d to build e1
    ax, ay, az = abs(d[0]), abs(d[1]), abs(d[2])
    if ax <= ay and ax <= az:
        a0, a1, a2 = 1.0, 0.0, 0.0
    elif ay <= az:
        a0, a1, a2 = 0.0, 1.0, 0.0
    else:
        a0, a1, a2 = 0.0, 0.0, 1.0
    # e1 = normalize(a x d)
    e10 = a1 * d[2] - a2 * d[1]
    e11 = a2 * d[0] - a0 * d[2]
    e12 = a0 * d[1] - a1 * d[0]
    nrm = math.sqrt(e10 * e10 + e11 * e11 + e12 * e12)
    e10 /= nrm
    e11 /= nrm
    e12 /= nrm
    # e2 = d x e1
    e20 = d[1] * e12 - d[2] * e11
    e21 = d[2] * e10 - d[0] * e12
    e22 = d[0] * e11 - d[1] * e10
    return e10, e11, e12, e20, e21, e22


@nb.njit(cache=True)
def rotate_positions(dirs, pos):
    """Positions expressed in the frame of each direction (direction = z').

    Parameters
    ----------
    dirs : ndarray, shape (n_dir, 3)
        Unit vectors.
    pos : ndarray, shape (n_pos, 3)
        Positions [m].

    Returns
    -------
    ndarray, shape (n_dir, n_pos, 3)
        (x', y', z') of every position for every direction; z' is along the direction.
    """
    n_dir = dirs.shape[0]
    n_pos = pos.shape[0]
    out = np.empty((n_dir, n_pos, 3))
    for k in range(n_dir):
        d = dirs[k]
        e10, e11, e12, e20, e21, e22 = _orthonormal_basis(d)
        for i in range(n_pos):
            x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
            out[k, i, 0] = x * e10 + y * e11 + z * e12
            out[k, i, 1] = x * e20 + y * e21 + z * e22
            out[k, i, 2] = x * d[0] + y * d[1] + z * d[2]
    return out


# --------------------------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def _popcount(x):
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@nb.njit(cache=True)
def sort_hits_by_dom(dom_index, counts):
    """Counting sort of one event's hits by DOM, stable (time order kept within a DOM).

    Parameters
    ----------
    dom_index : ndarray of int64, shape (n,)
        DOM index (0..n_doms-1) of each hit; hits are in time order.
    counts : ndarray of int64, shape (n_doms + 1,)
        Work array, all zero on entry; all zero again on return.

    Returns
    -------
    order : ndarray of int64, shape (n,)
        Hit indices sorted by (DOM, time).
    """
    n = dom_index.shape[0]
    n_doms = counts.shape[0] - 1
    for i in range(n):
        counts[dom_index[i] + 1] += 1
    for d in range(n_doms):
        counts[d + 1] += counts[d]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        d = dom_index[i]
        order[counts[d]] = i
        counts[d] += 1
    for d in range(n_doms + 1):
        counts[d] = 0
    return order


@nb.njit(cache=True)
def _window_end(sorted_time, sorted_channel, i, stop, tmax):
    """End (exclusive) of the window [t_i, t_i + tmax] and the bit mask of its PMT channels."""
    t0 = sorted_time[i]
    mask = np.int64(0)
    j = i
    while j < stop and sorted_time[j] - t0 <= tmax:
        mask |= np.int64(1) << np.int64(sorted_channel[j] & 63)
        j += 1
    return j, mask


@nb.njit(cache=True)
def find_l1(dom_index, channel, time, counts, tmax_local, min_hits, combine):
    """Local coincidences (L1) of one event's L0 hits.

    An L1 is a set of at least ``min_hits`` hits on *different* PMTs of one DOM within
    ``tmax_local`` ns of the first of them (PHYSICS.md §12, Jpp ``TMaxLocal_ns``). Its time is
    the time of its first hit. With ``combine`` true, L1 windows that overlap (a qualifying
    window starting inside the current L1) are merged into one L1, so one burst of light on a
    DOM gives one L1 (Jpp ``combineL1``); without it every hit that opens a qualifying window
    gives its own L1.

    Parameters
    ----------
    dom_index, channel : ndarray of int64, shape (n,)
        DOM index and PMT channel (0..30) of each hit.
    time : ndarray of float64, shape (n,)
        Hit times [ns], non-decreasing.
    counts : ndarray of int64, shape (n_doms + 1,)
        Zeroed work array (see :func:`sort_hits_by_dom`).
    tmax_local : float
        Coincidence window [ns].
    min_hits : int
        Minimum number of distinct PMTs.
    combine : bool
        Merge overlapping L1s.

    Returns
    -------
    order : ndarray of int64, shape (n,)
        Hit indices sorted by (DOM, time); L1 members are ranges of this array.
    l1_dom : ndarray of int64
        DOM index of each L1.
    l1_time : ndarray of float64
        Time of each L1 [ns] (time of its first hit).
    l1_first, l1_stop : ndarray of int64
        Members of L1 ``k`` are ``order[l1_first[k]:l1_stop[k]]``.
    """
    n = dom_index.shape[0]
    order = sort_hits_by_dom(dom_index, counts)
    st = np.empty(n)
    sc = np.empty(n, dtype=np.int64)
    sd = np.empty(n, dtype=np.int64)
    for k in range(n):
        st[k] = time[order[k]]
        sc[k] = channel[order[k]]
        sd[k] = dom_index[order[k]]
    # at most n L1s (one per opening hit)
    l1_dom = np.empty(n, dtype=np.int64)
    l1_time = np.empty(n)
    l1_first = np.empty(n, dtype=np.int64)
    l1_stop = np.empty(n, dtype=np.int64)
    n_l1 = 0
    g0 = 0
    while g0 < n:
        g1 = g0 + 1
        while g1 < n and sd[g1] == sd[g0]:
            g1 += 1
        if g1 - g0 >= min_hits:
            i = g0
            while i < g1:
                j, mask = _window_end(st, sc, i, g1, tmax_local)
                if j - i >= min_hits and _popcount(mask) >= min_hits:
                    if combine:
                        stop = j
                        k = i + 1
                        while k < stop:
                            jj, mk = _window_end(st, sc, k, g1, tmax_local)
                            if jj > stop and jj - k >= min_hits and _popcount(mk) >= min_hits:
                                stop = jj
                            k += 1
                        l1_dom[n_l1] = sd[i]
                        l1_time[n_l1] = st[i]
                        l1_first[n_l1] = i
                        l1_stop[n_l1] = stop
                        n_l1 += 1
                        i = stop
                    else:
                        l1_dom[n_l1] = sd[i]
                        l1_time[n_l1] = st[i]
                        l1_first[n_l1] = i
                        l1_stop[n_l1] = j
                        n_l1 += 1
                        i += 1
                else:
                    i += 1
        g0 = g1
    return order, l1_dom[:n_l1], l1_time[:n_l1], l1_first[:n_l1], l1_stop[:n_l1]


@nb.njit(cache=True)
def find_l2(order, channel, time, hit_dir, l1_first, l1_stop, tmax_l2, min_hits, ct_min):
    """L2 coincidences inside L1s: the input of the 3D triggers (PHYSICS.md §12).

    An L1 is also an L2 when one of its hits i opens a window [t_i, t_i + ``tmax_l2``] with at
    least ``min_hits`` distinct PMTs whose axes make cos ≥ ``ct_min`` with the axis of hit i's
    PMT (Jpp L2 ``TMaxLocal_ns`` 10 ns and ``ctMin``; ``ct_min`` ≤ −1: no angle cut).

    Parameters
    ----------
    order : ndarray of int64
        Hit indices sorted by (DOM, time), from :func:`find_l1`.
    channel : ndarray of int64
    time : ndarray of float64
    hit_dir : ndarray, shape (n, 3)
        PMT axis of each hit (only read when ``ct_min > -1``).
    l1_first, l1_stop : ndarray of int64
        L1 member ranges of ``order``.
    tmax_l2 : float
        [ns].
    min_hits : int
    ct_min : float

    Returns
    -------
    ndarray of float64
        Time of the first L2 window of each L1 [ns], NaN where the L1 is no L2.
    """
    n_l1 = l1_first.shape[0]
    out = np.full(n_l1, np.nan)
    use_ct = ct_min > -1.0
    for k in range(n_l1):
        a = l1_first[k]
        b = l1_stop[k]
        for i in range(a, b):
            hi = order[i]
            ti = time[hi]
            mask = np.int64(0)
            j = i
            while j < b and time[order[j]] - ti <= tmax_l2:
                hj = order[j]
                if use_ct:
                    ct = hit_dir[hi, 0] * hit_dir[hj, 0] + hit_dir[hi, 1] * hit_dir[hj, 1] + hit_dir[hi, 2] * hit_dir[hj, 2]
                    if ct < ct_min:
                        j += 1
                        continue
                mask |= np.int64(1) << np.int64(channel[hj] & 63)
                j += 1
            if _popcount(mask) >= min_hits:
                out[k] = ti
                break
    return out


# --------------------------------------------------------------------------------------------
# 3DMuon
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def factory_windows(l1_time, window, limit):
    """Flag L1s in a time window of length ``window`` holding at least ``limit`` L1s.

    ``l1_time`` must be sorted. Returns a bool array (True = in a window over the limit).
    Mirrors Jpp's factory limit: a cluster candidate that large triggers without clustering.
    """
    n = l1_time.shape[0]
    flag = np.zeros(n, dtype=np.bool_)
    if limit <= 0 or n < limit:
        return flag
    j = 0
    for i in range(n):
        if j < i:
            j = i
        while j < n and l1_time[j] - l1_time[i] <= window:
            j += 1
        if j - i >= limit:
            for k in range(i, j):
                flag[k] = True
    return flag


@nb.njit(cache=True)
def _greedy_clique(compat, alive, min_hits):
    """Reduce ``alive`` to a set of pairwise compatible vertices (in place); return its size.

    First drops, repeatedly, vertices with fewer than ``min_hits - 1`` compatible partners
    (they cannot belong to a clique of ``min_hits``; this never removes a member of such a
    clique). Then removes, one at a time, the vertex with the most incompatibilities among the
    remaining ones (the lowest index on ties) until all remaining pairs are compatible, as a
    greedy cluster builder does. Stops early (returns the current size) once fewer than
    ``min_hits`` vertices remain.
    """
    m = compat.shape[0]
    bad = np.zeros(m, dtype=np.int64)
    n_alive = 0
    for i in range(m):
        if alive[i]:
            n_alive += 1
    for i in range(m):
        if not alive[i]:
            continue
        c = 0
        for j in range(m):
            if j != i and alive[j] and not compat[i, j]:
                c += 1
        bad[i] = c
    # k-core pruning
    changed = True
    while changed and n_alive >= min_hits:
        changed = False
        for i in range(m):
            if alive[i] and (n_alive - 1 - bad[i]) < (min_hits - 1):
                alive[i] = False
                n_alive -= 1
                changed = True
                for j in range(m):
                    if alive[j] and not compat[i, j]:
                        bad[j] -= 1
    # greedy removal of the most incompatible vertex
    while n_alive >= min_hits:
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
            if alive[j] and not compat[worst, j]:
                bad[j] -= 1
    return n_alive


@nb.njit(cache=True)
def match_3d(
    l1_dom,
    l1_time,
    dom_pos,
    rot_pos,
    dom_marker,
    road_width,
    dmax,
    tmax_extra,
    k_light,
    c_light,
    min_hits,
    min_doms,
):
    """3DMuon cluster search on one event's L1 hits (sorted by time).

    For each direction of the grid (``rot_pos[k]`` are the DOM positions with that direction as
    z'), two L1s i, j are compatible when

    * ``|x_j - x_i| <= dmax`` (3D distance of their DOMs),
    * ``R_ij <= 2 road_width`` (transverse distance in the rotated frame), and
    * ``|c (t_j - t_i) - (z'_j - z'_i)| <= k_light * min(R_ij, road_width) + c * tmax_extra``,

    (derivation in :mod:`km3sim.trigger.trigger`). The largest pairwise compatible subset is
    found greedily (:func:`_greedy_clique`); the direction fires if it holds at least
    ``min_hits`` L1s on at least ``min_doms`` DOMs.

    Parameters
    ----------
    l1_dom : ndarray of int64, shape (n,)
    l1_time : ndarray of float64, shape (n,)
        L1 DOM indices and times [ns], sorted by time.
    dom_pos : ndarray, shape (n_doms, 3)
    rot_pos : ndarray, shape (n_dir, n_doms, 3)
    dom_marker : ndarray of bool, shape (n_doms,)
        All-False work array (restored on return).
    road_width, dmax : float
        [m].
    tmax_extra : float
        [ns].
    k_light : float
        (n_g - cos θc) / sin θc: growth of c·t_expected with the distance to the track.
    c_light : float
        [m/ns].
    min_hits, min_doms : int

    Returns
    -------
    keep : ndarray of bool, shape (n,)
        L1s in the cluster of at least one firing direction.
    n_fired : int
        Number of firing directions.
    """
    n = l1_dom.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    if n < min_hits:
        return keep, 0
    # direction-independent necessary condition: |Δz'| + k R <= sqrt(1 + k^2) D
    kk = math.sqrt(1.0 + k_light * k_light)
    ctx = c_light * tmax_extra
    cand = np.zeros((n, n), dtype=np.bool_)
    deg = np.zeros(n, dtype=np.int64)
    dmax2 = dmax * dmax
    for i in range(n):
        pi = dom_pos[l1_dom[i]]
        for j in range(i + 1, n):
            cdt = c_light * (l1_time[j] - l1_time[i])
            if cdt > kk * dmax + ctx:
                break  # sorted by time: no later j can match
            pj = dom_pos[l1_dom[j]]
            dx = pj[0] - pi[0]
            dy = pj[1] - pi[1]
            dz = pj[2] - pi[2]
            d2 = dx * dx + dy * dy + dz * dz
            if d2 > dmax2:
                continue
            if abs(cdt) <= kk * math.sqrt(d2) + ctx:
                cand[i, j] = True
                cand[j, i] = True
                deg[i] += 1
                deg[j] += 1
    # k-core pruning on the candidate graph
    alive0 = np.ones(n, dtype=np.bool_)
    n_alive = n
    changed = True
    while changed and n_alive >= min_hits:
        changed = False
        for i in range(n):
            if alive0[i] and deg[i] < min_hits - 1:
                alive0[i] = False
                n_alive -= 1
                changed = True
                for j in range(n):
                    if alive0[j] and cand[i, j]:
                        deg[j] -= 1
    if n_alive < min_hits:
        return keep, 0
    idx = np.empty(n_alive, dtype=np.int64)
    m = 0
    for i in range(n):
        if alive0[i]:
            idx[m] = i
            m += 1
    # distinct DOMs among candidates
    nd = 0
    for a in range(m):
        d = l1_dom[idx[a]]
        if not dom_marker[d]:
            dom_marker[d] = True
            nd += 1
    for a in range(m):
        dom_marker[l1_dom[idx[a]]] = False
    if nd < min_doms:
        return keep, 0

    compat = np.zeros((m, m), dtype=np.bool_)
    alive = np.empty(m, dtype=np.bool_)
    road2 = 4.0 * road_width * road_width
    n_fired = 0
    n_dir = rot_pos.shape[0]
    for kdir in range(n_dir):
        rp = rot_pos[kdir]
        for a in range(m):
            compat[a, a] = True
            ia = idx[a]
            da = l1_dom[ia]
            xa, ya, za = rp[da, 0], rp[da, 1], rp[da, 2]
            ta = l1_time[ia]
            for b in range(a + 1, m):
                ib = idx[b]
                ok = False
                if cand[ia, ib]:
                    db = l1_dom[ib]
                    dx = rp[db, 0] - xa
                    dy = rp[db, 1] - ya
                    r2 = dx * dx + dy * dy
                    if r2 <= road2:
                        r = math.sqrt(r2)
                        if r > road_width:
                            r = road_width
                        res = c_light * (l1_time[ib] - ta) - (rp[db, 2] - za)
                        ok = abs(res) <= k_light * r + ctx
                compat[a, b] = ok
                compat[b, a] = ok
        for a in range(m):
            alive[a] = True
        size = _greedy_clique(compat, alive, min_hits)
        if size < min_hits:
            continue
        nd = 0
        for a in range(m):
            if alive[a]:
                d = l1_dom[idx[a]]
                if not dom_marker[d]:
                    dom_marker[d] = True
                    nd += 1
        for a in range(m):
            if alive[a]:
                dom_marker[l1_dom[idx[a]]] = False
        if nd < min_doms:
            continue
        n_fired += 1
        for a in range(m):
            if alive[a]:
                keep[idx[a]] = True
    return keep, n_fired


@nb.njit(cache=True)
def trigger_3dmuon_events(
    offsets,
    dom_index,
    channel,
    time,
    hit_dir,
    dom_pos,
    rot_pos,
    tmax_local,
    l1_min_hits,
    combine_l1,
    use_l2,
    tmax_l2,
    l2_min_hits,
    l2_ct_min,
    road_width,
    dmax,
    tmax_extra,
    k_light,
    c_light,
    min_hits,
    min_doms,
    factory_limit,
    factory_window,
    bit_muon,
    bit_factory,
):
    """L1 + 3DMuon (+ factory limit) for every event of a chunk.

    Parameters
    ----------
    offsets : ndarray of int64, shape (n_events + 1,)
        Hit ranges of the events; within an event hits are in time order.
    dom_index, channel : ndarray of int64, shape (n_hits,)
    time : ndarray of float64, shape (n_hits,)
    hit_dir : ndarray, shape (n_hits, 3) or (0, 3)
        PMT axis of each hit (only needed for an L2 angle cut).
    dom_pos, rot_pos : see :func:`match_3d`.
    tmax_local, l1_min_hits, combine_l1 : see :func:`find_l1`.
    use_l2 : bool
        Feed the 3D trigger with the L2s among the L1s (at their L2 time) instead of all L1s.
    tmax_l2, l2_min_hits, l2_ct_min : see :func:`find_l2`.
    road_width, dmax, tmax_extra, k_light, c_light, min_hits, min_doms : see :func:`match_3d`.
    factory_limit : int
        Number of L1s in ``factory_window`` ns above which the event triggers unconditionally.
    factory_window : float
        [ns].
    bit_muon, bit_factory : int
        Trigger-mask bit numbers.

    Returns
    -------
    hit_mask : ndarray of uint64, shape (n_hits,)
        Trigger bits of each L0 hit (bits of the L1s it belongs to).
    event_mask : ndarray of uint64, shape (n_events,)
    t_first, t_last : ndarray of float64, shape (n_events,)
        Times of the first and last triggered L0 hit (NaN if the event did not trigger).
    n_l1 : ndarray of int64, shape (n_events,)
        Number of L1s found.
    n_l2 : ndarray of int64, shape (n_events,)
        Number of L1s that entered the 3D trigger (the L2s, or all L1s without ``use_l2``).
    """
    n_ev = offsets.shape[0] - 1
    n_doms = dom_pos.shape[0]
    hit_mask = np.zeros(time.shape[0], dtype=np.uint64)
    event_mask = np.zeros(n_ev, dtype=np.uint64)
    t_first = np.full(n_ev, np.nan)
    t_last = np.full(n_ev, np.nan)
    n_l1_out = np.zeros(n_ev, dtype=np.int64)
    n_l2_out = np.zeros(n_ev, dtype=np.int64)
    counts = np.zeros(n_doms + 1, dtype=np.int64)
    dom_marker = np.zeros(n_doms, dtype=np.bool_)
    mmuon = np.uint64(1) << np.uint64(bit_muon)
    mfact = np.uint64(1) << np.uint64(bit_factory)
    for e in range(n_ev):
        a = offsets[e]
        b = offsets[e + 1]
        if b - a < l1_min_hits:
            continue
        order, l1_dom, l1_time, l1_first, l1_stop = find_l1(
            dom_index[a:b], channel[a:b], time[a:b], counts, tmax_local, l1_min_hits, combine_l1
        )
        n_l1_out[e] = l1_dom.shape[0]
        if l1_dom.shape[0] == 0:
            continue
        if use_l2:
            l2_time = find_l2(
                order, channel[a:b], time[a:b], hit_dir[a:b] if hit_dir.shape[0] > 0 else hit_dir,
                l1_first, l1_stop, tmax_l2, l2_min_hits, l2_ct_min,
            )
            sel = np.flatnonzero(np.isfinite(l2_time))
            l1_dom = l1_dom[sel]
            l1_time = l2_time[sel]
            l1_first = l1_first[sel]
            l1_stop = l1_stop[sel]
        n_l1 = l1_dom.shape[0]
        n_l2_out[e] = n_l1
        if n_l1 == 0:
            continue
        srt = np.argsort(l1_time, kind="mergesort")
        s_dom = l1_dom[srt]
        s_time = l1_time[srt]
        fac = factory_windows(s_time, factory_window, factory_limit)
        any_fac = False
        for k in range(n_l1):
            if fac[k]:
                any_fac = True
                break
        if any_fac:
            keep = fac
            emask = mmuon | mfact
        else:
            keep, n_fired = match_3d(
                s_dom, s_time, dom_pos, rot_pos, dom_marker, road_width, dmax, tmax_extra,
                k_light, c_light, min_hits, min_doms,
            )
            emask = mmuon if n_fired > 0 else np.uint64(0)
        if emask == 0:
            continue
        event_mask[e] = emask
        tf = np.inf
        tl = -np.inf
        for k in range(n_l1):
            if not keep[k]:
                continue
            o = srt[k]
            for q in range(l1_first[o], l1_stop[o]):
                h = a + order[q]
                hit_mask[h] |= emask
                th = time[h]
                if th < tf:
                    tf = th
                if th > tl:
                    tl = th
        t_first[e] = tf
        t_last[e] = tl
    return hit_mask, event_mask, t_first, t_last, n_l1_out, n_l2_out
