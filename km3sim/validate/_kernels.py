"""numba kernels of the validation measurements (arrays in, arrays out)."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def cluster_multiplicities(event, dom, channel, time, n_events, window_ns, max_mult):
    """Count local coincidences by multiplicity, per event.

    Hits must be sorted by (event, dom, time). Starting from the earliest unused hit of a DOM,
    the hits within ``window_ns`` of it form a cluster; its multiplicity is the number of
    distinct PMT channels. A cluster of multiplicity >= 2 is counted and its hits are not used
    again (the next cluster starts after it), as in the real-data coincidence measurement of
    :func:`km3sim.detector.background.multifold_cluster_rate`; otherwise the next hit opens a
    window.

    Returns
    -------
    ndarray of int64, shape (n_events, max_mult + 1)
        Clusters per event and multiplicity; the last column counts multiplicities >= max_mult.
    """
    out = np.zeros((n_events, max_mult + 1), dtype=np.int64)
    n = event.shape[0]
    i = 0
    while i < n:
        j = i
        mask = np.int64(0)
        while j < n and event[j] == event[i] and dom[j] == dom[i] and time[j] - time[i] <= window_ns:
            mask |= np.int64(1) << np.int64(channel[j] & 63)
            j += 1
        k = 0
        m = mask
        while m:
            m &= m - 1
            k += 1
        if k >= 2:
            out[event[i], min(k, max_mult)] += 1
            i = j
        else:
            i += 1
    return out
