"""numba kernels of continuous muon energy loss, -dE/dx = a(E) + b(E) E, piecewise in E.

Physics: PHYSICS.md §4.1 (Jpp JGeane; Klimushin, Bugaev, Sokalski, ICRC 2001,
hep-ph/0106010). The loss table is given as segments ordered from high to low energy:
segment k holds energies above ``e_low[k]`` (and below ``e_low[k-1]``), the last segment has
``e_low = 0``; ``a`` [GeV/m] and ``b`` [1/m] already include the density. Within a segment

    E(x) = (E0 + a/b) exp(-b x) - a/b,        x(E0 -> E1) = ln[(a + b E0)/(a + b E1)] / b.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def muon_range_one(e0, a, b, e_low):
    """Distance [m] over which a muon of energy ``e0`` [GeV] loses all its energy."""
    e = e0
    x = 0.0
    for k in range(a.shape[0]):
        if e <= e_low[k]:
            continue
        x += math.log((a[k] + b[k] * e) / (a[k] + b[k] * e_low[k])) / b[k]
        e = e_low[k]
    return x


@nb.njit(cache=True)
def energy_after_one(e0, x, a, b, e_low):
    """Energy [GeV] of a muon of energy ``e0`` after a path ``x`` [m] (0 once stopped)."""
    if x <= 0.0:
        return e0
    e = e0
    for k in range(a.shape[0]):
        if e <= e_low[k]:
            continue
        d = math.log((a[k] + b[k] * e) / (a[k] + b[k] * e_low[k])) / b[k]
        if x < d:
            c = a[k] / b[k]
            # clamp: (e + c) - c can round one ulp above e
            return min(max((e + c) * math.exp(-b[k] * x) - c, e_low[k]), e)
        x -= d
        e = e_low[k]
    return 0.0


@nb.njit(cache=True)
def distance_to_energy_one(e0, e1, a, b, e_low):
    """Path [m] over which a muon slows from ``e0`` to ``e1`` [GeV] (0 if ``e1 >= e0``)."""
    if e1 >= e0:
        return 0.0
    e = e0
    x = 0.0
    for k in range(a.shape[0]):
        if e <= e_low[k]:
            continue
        target = max(e_low[k], e1)
        x += math.log((a[k] + b[k] * e) / (a[k] + b[k] * target)) / b[k]
        e = target
        if e <= e1:
            break
    return x


@nb.njit(cache=True)
def muon_range(e0, a, b, e_low):
    """:func:`muon_range_one` over a 1-D array of energies."""
    out = np.empty(e0.shape[0])
    for i in range(e0.shape[0]):
        out[i] = muon_range_one(e0[i], a, b, e_low)
    return out


@nb.njit(cache=True)
def energy_after(e0, x, a, b, e_low):
    """:func:`energy_after_one` over 1-D arrays of energies and paths."""
    out = np.empty(e0.shape[0])
    for i in range(e0.shape[0]):
        out[i] = energy_after_one(e0[i], x[i], a, b, e_low)
    return out


@nb.njit(cache=True)
def distance_to_energy(e0, e1, a, b, e_low):
    """:func:`distance_to_energy_one` over 1-D arrays."""
    out = np.empty(e0.shape[0])
    for i in range(e0.shape[0]):
        out[i] = distance_to_energy_one(e0[i], e1[i], a, b, e_low)
    return out


@nb.njit(cache=True)
def propagate_through_can(e0, s_in, s_out, a, b, e_low):
    """Continuous-loss propagation of muons over the part [s_in, s_out] of their path in the can.

    Parameters
    ----------
    e0 : ndarray, shape (n,)
        Energies at the start of the track [GeV].
    s_in, s_out : ndarray, shape (n,)
        Path lengths from the start of the track to where it enters and leaves the can [m]
        (``0 <= s_in <= s_out``).

    Returns
    -------
    length : ndarray, shape (n,)
        Track length inside the can [m]: from ``s_in`` to ``s_out`` or to where the muon stops.
    energy_lost : ndarray, shape (n,)
        Energy lost inside the can [GeV].
    """
    n = e0.shape[0]
    length = np.empty(n)
    lost = np.empty(n)
    for i in range(n):
        r = muon_range_one(e0[i], a, b, e_low)
        s1 = min(s_out[i], r)
        s0 = min(s_in[i], s1)
        length[i] = s1 - s0
        e_in = energy_after_one(e0[i], s0, a, b, e_low)
        e_out = 0.0 if s1 >= r else energy_after_one(e0[i], s1, a, b, e_low)
        lost[i] = e_in - e_out
    return length, lost
