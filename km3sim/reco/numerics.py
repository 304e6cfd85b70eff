"""Numerical helpers shared by the track and shower fits."""

from __future__ import annotations

import numpy as np

__all__ = ["central_hessian"]


def central_hessian(func, x, steps, *args) -> np.ndarray:
    """Hessian of ``func(x, *args)`` at ``x`` by central second differences.

    Diagonal: (f(x+h_a) − 2f(x) + f(x−h_a))/h_a²; off-diagonal:
    (f(++) − f(+−) − f(−+) + f(−−))/(4 h_a h_b). ``func`` is typically a numba kernel returning
    the total −ln L (its per-call cost dominates; the loop here makes 2n² + 1 calls).
    """
    x = np.asarray(x, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.float64)
    n = x.shape[0]
    h = np.zeros((n, n))
    f0 = func(x, *args)

    def at(*shifts):
        xx = x.copy()
        for a, s in shifts:
            xx[a] += s * steps[a]
        return func(xx, *args)

    for a in range(n):
        h[a, a] = (at((a, 1)) - 2.0 * f0 + at((a, -1))) / (steps[a] * steps[a])
        for b in range(a + 1, n):
            v = (at((a, 1), (b, 1)) - at((a, 1), (b, -1)) - at((a, -1), (b, 1)) + at((a, -1), (b, -1))) \
                / (4.0 * steps[a] * steps[b])
            h[a, b] = h[b, a] = v
    return h
