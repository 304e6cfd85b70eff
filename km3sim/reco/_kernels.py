"""numba kernels of the muon track reconstruction (time residuals, Jacobian, prefits).

Only ``@njit`` functions live here; they take arrays and scalars, never config objects.
Physics in :mod:`km3sim.reco.track` (PHYSICS.md §9.1, §9.2).

Track model (PHYSICS.md §9.1): a muon through point p with unit direction u, at p at time t0,
moving at c. A PMT at x, with V = x − p, L = V·u and d = sqrt(|V|² − L²), sees direct
Cherenkov light at

    t_exp = t0 + (L − d/tanθc)/c + d·n_g/(c·sinθc) = t0 + (L + k·d)/c,
    k = (n_g − cosθc)/sinθc.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "line_fit",
    "expected_times",
    "orthonormal_pair",
    "track_point_direction",
    "track_residuals",
    "track_jacobian",
    "scan_directions",
    "truncated_chi2",
]

#: Smallest distance to the track used in derivatives [m] (d = 0 makes ∂d/∂p undefined).
_D_MIN = 1e-3


@nb.njit(cache=True)
def line_fit(pos, t):
    """Least-squares straight line x(t) = x0 + v·t through hit positions (PHYSICS.md §9.2).

    v = (<x t> − <x><t>) / (<t²> − <t>²) per coordinate.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Hit positions [m].
    t : ndarray, shape (n,)
        Hit times [ns].

    Returns
    -------
    direction : ndarray, shape (3,)
        v/|v| (NaN if undefined).
    cog : ndarray, shape (3,)
        <x> [m]: the fitted line passes there at time <t>.
    t_mean : float
        <t> [ns].
    speed : float
        |v| [m/ns] (NaN if undefined).
    """
    n = t.shape[0]
    direction = np.full(3, np.nan)
    cog = np.full(3, np.nan)
    if n < 2:
        return direction, cog, np.nan, np.nan
    tm = 0.0
    for i in range(n):
        tm += t[i]
    tm /= n
    vt = 0.0
    for i in range(n):
        vt += (t[i] - tm) ** 2
    for a in range(3):
        s = 0.0
        for i in range(n):
            s += pos[i, a]
        cog[a] = s / n
    if vt <= 0.0:
        return direction, cog, tm, np.nan
    v = np.zeros(3)
    for a in range(3):
        s = 0.0
        for i in range(n):
            s += (pos[i, a] - cog[a]) * (t[i] - tm)
        v[a] = s / vt
    speed = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    if speed > 0.0:
        for a in range(3):
            direction[a] = v[a] / speed
    else:
        speed = np.nan
    return direction, cog, tm, speed


@nb.njit(cache=True)
def expected_times(pos, p, u, t0, k, c):
    """Arrival times of direct Cherenkov light at ``pos`` from the track (p, u, t0) [ns]."""
    n = pos.shape[0]
    out = np.empty(n)
    for i in range(n):
        v0 = pos[i, 0] - p[0]
        v1 = pos[i, 1] - p[1]
        v2 = pos[i, 2] - p[2]
        L = v0 * u[0] + v1 * u[1] + v2 * u[2]
        d2 = v0 * v0 + v1 * v1 + v2 * v2 - L * L
        d = math.sqrt(d2) if d2 > 0.0 else 0.0
        out[i] = t0 + (L + k * d) / c
    return out


@nb.njit(cache=True)
def orthonormal_pair(u):
    """Two unit vectors f1, f2 with (f1, f2, u) orthonormal and right-handed.

    f1 lies in the vertical plane containing u (the zenith direction of increasing θ) unless
    u is (anti)parallel to z, where f1 = x.
    """
    f1 = np.empty(3)
    f2 = np.empty(3)
    h = math.sqrt(u[0] * u[0] + u[1] * u[1])
    if h < 1e-9:
        f1[0], f1[1], f1[2] = 1.0, 0.0, 0.0
    else:
        # ∂u/∂θ for u = (sinθ cosφ, sinθ sinφ, cosθ)
        f1[0] = u[0] * u[2] / h
        f1[1] = u[1] * u[2] / h
        f1[2] = -h
        nrm = math.sqrt(f1[0] ** 2 + f1[1] ** 2 + f1[2] ** 2)
        for a in range(3):
            f1[a] /= nrm
    # make f1 exactly orthogonal to u, then f2 = u x f1
    dot = f1[0] * u[0] + f1[1] * u[1] + f1[2] * u[2]
    for a in range(3):
        f1[a] -= dot * u[a]
    nrm = math.sqrt(f1[0] ** 2 + f1[1] ** 2 + f1[2] ** 2)
    for a in range(3):
        f1[a] /= nrm
    f2[0] = u[1] * f1[2] - u[2] * f1[1]
    f2[1] = u[2] * f1[0] - u[0] * f1[2]
    f2[2] = u[0] * f1[1] - u[1] * f1[0]
    return f1, f2


@nb.njit(cache=True)
def track_point_direction(params, u0, f1, f2, cog):
    """Point p and unit direction u of the fit parameters (α, β, a, b, t0).

    u = (u0 + α f1 + β f2)/|u0 + α f1 + β f2|, p = cog + a f1 + b f2: directions in the
    tangent plane of the seed direction u0 (no pole singularity; α, β are angles in radians
    to first order) and the track's crossing point with the plane through the hits' centre of
    gravity perpendicular to u0.
    """
    al, be = params[0], params[1]
    u = np.empty(3)
    p = np.empty(3)
    for a in range(3):
        u[a] = u0[a] + al * f1[a] + be * f2[a]
        p[a] = cog[a] + params[2] * f1[a] + params[3] * f2[a]
    nrm = math.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
    for a in range(3):
        u[a] /= nrm
    return p, u, nrm


@nb.njit(cache=True)
def track_residuals(params, pos, t, u0, f1, f2, cog, k, c, sigma):
    """Time residuals (t_hit − t_exp)/sigma of the hits for fit parameters (α, β, a, b, t0)."""
    p, u, _ = track_point_direction(params, u0, f1, f2, cog)
    te = expected_times(pos, p, u, params[4], k, c)
    out = np.empty(t.shape[0])
    for i in range(t.shape[0]):
        out[i] = (t[i] - te[i]) / sigma
    return out


@nb.njit(cache=True)
def track_jacobian(params, pos, t, u0, f1, f2, cog, k, c, sigma):
    """Jacobian of :func:`track_residuals` with respect to (α, β, a, b, t0), shape (n, 5).

    ∂t_exp/∂p = (−u + k (L u − V)/d)/c, ∂t_exp/∂u = V (1 − k L/d)/c, ∂t_exp/∂t0 = 1;
    ∂u/∂α = (f1 − u (u·f1))/|w|, ∂p/∂a = f1 (likewise β, b with f2).
    """
    p, u, wn = track_point_direction(params, u0, f1, f2, cog)
    uf1 = u[0] * f1[0] + u[1] * f1[1] + u[2] * f1[2]
    uf2 = u[0] * f2[0] + u[1] * f2[1] + u[2] * f2[2]
    du1 = np.empty(3)
    du2 = np.empty(3)
    for a in range(3):
        du1[a] = (f1[a] - u[a] * uf1) / wn
        du2[a] = (f2[a] - u[a] * uf2) / wn
    n = pos.shape[0]
    jac = np.empty((n, 5))
    s = -1.0 / (sigma * c)
    for i in range(n):
        v0 = pos[i, 0] - p[0]
        v1 = pos[i, 1] - p[1]
        v2 = pos[i, 2] - p[2]
        L = v0 * u[0] + v1 * u[1] + v2 * u[2]
        d2 = v0 * v0 + v1 * v1 + v2 * v2 - L * L
        d = math.sqrt(d2) if d2 > _D_MIN * _D_MIN else _D_MIN
        g = 1.0 - k * L / d
        # c * ∂t/∂u
        gu0, gu1, gu2 = v0 * g, v1 * g, v2 * g
        # c * ∂t/∂p
        gp0 = -u[0] + k * (L * u[0] - v0) / d
        gp1 = -u[1] + k * (L * u[1] - v1) / d
        gp2 = -u[2] + k * (L * u[2] - v2) / d
        jac[i, 0] = s * (gu0 * du1[0] + gu1 * du1[1] + gu2 * du1[2])
        jac[i, 1] = s * (gu0 * du2[0] + gu1 * du2[1] + gu2 * du2[2])
        jac[i, 2] = s * (gp0 * f1[0] + gp1 * f1[1] + gp2 * f1[2])
        jac[i, 3] = s * (gp0 * f2[0] + gp1 * f2[1] + gp2 * f2[2])
        jac[i, 4] = -1.0 / sigma
    return jac


@nb.njit(cache=True)
def _solve4(a, b):
    """Solve the 4x4 system a x = b by Gaussian elimination with partial pivoting.

    Returns (x, ok); ok is False for a (numerically) singular matrix.
    """
    m = a.copy()
    x = b.copy()
    scale = 0.0
    for i in range(4):
        for j in range(4):
            scale = max(scale, abs(m[i, j]))
    if scale == 0.0:
        return x, False
    for col in range(4):
        piv = col
        for r in range(col + 1, 4):
            if abs(m[r, col]) > abs(m[piv, col]):
                piv = r
        if abs(m[piv, col]) <= 1e-12 * scale:
            return x, False
        if piv != col:
            for j in range(4):
                tmp = m[col, j]
                m[col, j] = m[piv, j]
                m[piv, j] = tmp
            tmp = x[col]
            x[col] = x[piv]
            x[piv] = tmp
        for r in range(col + 1, 4):
            f = m[r, col] / m[col, col]
            for j in range(col, 4):
                m[r, j] -= f * m[col, j]
            x[r] -= f * x[col]
    for col in range(3, -1, -1):
        s = x[col]
        for j in range(col + 1, 4):
            s -= m[col, j] * x[j]
        x[col] = s / m[col, col]
    return x, True


@nb.njit(cache=True)
def _linear_track_fit(xp, yp, tau, w, active, k):
    """Weighted linear fit of (T, x0, y0) for a fixed direction; see :func:`scan_directions`."""
    a = np.zeros((4, 4))
    bv = np.zeros(4)
    row = np.empty(4)
    k2 = k * k
    for i in range(xp.shape[0]):
        if not active[i]:
            continue
        row[0] = 2.0 * tau[i]
        row[1] = -2.0 * k2 * xp[i]
        row[2] = -2.0 * k2 * yp[i]
        row[3] = 1.0
        rhs = tau[i] * tau[i] - k2 * (xp[i] * xp[i] + yp[i] * yp[i])
        wi = w[i] * w[i]
        for r in range(4):
            bv[r] += wi * row[r] * rhs
            for q in range(r, 4):
                a[r, q] += wi * row[r] * row[q]
    for r in range(4):
        for q in range(r):
            a[r, q] = a[q, r]
    return _solve4(a, bv)


@nb.njit(cache=True)
def scan_directions(pos, t, dirs, k, c, window, min_hits, n_iter):
    """Direction-scan prefit: for each fixed direction, position and time from a linear fit.

    In the frame of direction u (hit coordinates x', y' across and z' along the track) the
    model c·(t_i − t0) = z'_i + k·ρ_i, ρ_i² = (x'_i − x0)² + (y'_i − y0)², squared, is linear in
    (T = c t0, x0, y0, C = k²(x0² + y0²) − T²):

        τ_i² − k²(x'_i² + y'_i²) = 2 τ_i T − 2k² x'_i x0 − 2k² y'_i y0 + C,  τ_i = c t_i − z'_i,

    (a linear estimator of the track for a fixed direction, in the spirit of Jpp's
    JMuonPrefit, PHYSICS.md §9.2). After the first fit each equation is weighted by
    1/(|τ_i − T| + k ρ_i + 1 m), which makes its residual ≈ c × the time residual.

    The algebraic fit is not robust, so outliers are trimmed iteratively with a shrinking
    window: hits with |time residual| > max(window, max|r|/2) are dropped (and hits inside
    it re-admitted) and the fit repeated, at most ``n_iter`` times, until all used hits lie
    within ``window``.

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
        Hit positions [m], preferably centred.
    t : ndarray, shape (n,)
        Hit times [ns], preferably centred.
    dirs : ndarray, shape (n_dir, 3)
        Trial directions.
    k, c : float
        Cherenkov distance factor and speed of light [m/ns].
    window : float
        Time-residual window of the trimming and of the quality [ns].
    min_hits : int
        Fewest hits a fit may keep.
    n_iter : int
        Maximum number of trimming iterations.

    Returns
    -------
    quality : ndarray, shape (n_dir,)
        Truncated χ²: Σ_i min(r_i², window²)/window² over all hits (lower is better; a hit
        outside the window costs 1), inf where the fit failed.
    points : ndarray, shape (n_dir, 3)
        A point of each fitted track [m].
    t0 : ndarray, shape (n_dir,)
        Time of the track at that point [ns].
    """
    n = t.shape[0]
    n_dir = dirs.shape[0]
    quality = np.full(n_dir, np.inf)
    points = np.zeros((n_dir, 3))
    t0s = np.zeros(n_dir)
    xp = np.empty(n)
    yp = np.empty(n)
    tau = np.empty(n)
    w = np.empty(n)
    res = np.empty(n)
    active = np.empty(n, dtype=np.bool_)
    w2 = window * window
    for kd in range(n_dir):
        u = dirs[kd]
        e1, e2 = orthonormal_pair(u)
        for i in range(n):
            xp[i] = pos[i, 0] * e1[0] + pos[i, 1] * e1[1] + pos[i, 2] * e1[2]
            yp[i] = pos[i, 0] * e2[0] + pos[i, 1] * e2[1] + pos[i, 2] * e2[2]
            zp = pos[i, 0] * u[0] + pos[i, 1] * u[1] + pos[i, 2] * u[2]
            tau[i] = c * t[i] - zp
            w[i] = 1.0
            active[i] = True
        ok = True
        T = 0.0
        x0 = 0.0
        y0 = 0.0
        for it in range(n_iter + 1):
            sol, ok = _linear_track_fit(xp, yp, tau, w, active, k)
            if not ok:
                break
            T, x0, y0 = sol[0], sol[1], sol[2]
            rmax = 0.0
            for i in range(n):
                rho = math.sqrt((xp[i] - x0) ** 2 + (yp[i] - y0) ** 2)
                res[i] = (tau[i] - T - k * rho) / c
                w[i] = 1.0 / (abs(tau[i] - T) + k * rho + 1.0)
                if active[i] and abs(res[i]) > rmax:
                    rmax = abs(res[i])
            if rmax <= window or it == n_iter:
                break
            thr = max(window, 0.5 * rmax)
            n_act = 0
            for i in range(n):
                active[i] = abs(res[i]) <= thr
                if active[i]:
                    n_act += 1
            if n_act < min_hits:
                ok = False
                break
        if not ok:
            continue
        q = 0.0
        for i in range(n):
            r2 = res[i] * res[i]
            q += r2 / w2 if r2 < w2 else 1.0
        quality[kd] = q
        for ax in range(3):
            points[kd, ax] = x0 * e1[ax] + y0 * e2[ax]
        t0s[kd] = T / c
    return quality, points, t0s


@nb.njit(cache=True)
def truncated_chi2(pos, t, p, u, t0, k, c, window):
    """Σ_i min(r_i², window²)/window² of the time residuals r of a track (lower is better)."""
    te = expected_times(pos, p, u, t0, k, c)
    w2 = window * window
    q = 0.0
    for i in range(t.shape[0]):
        r2 = (t[i] - te[i]) ** 2
        q += r2 / w2 if r2 < w2 else 1.0
    return q
