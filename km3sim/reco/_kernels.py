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

from km3sim.propagation._table_kernels import radial_unit

__all__ = [
    "line_fit",
    "expected_times",
    "orthonormal_pair",
    "track_point_direction",
    "track_residuals",
    "track_jacobian",
    "scan_directions",
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
def _linear_track_fit(xp, yp, tau, active, k):
    """Linear fit of (T, x0, y0) for a fixed direction on the active hits; see :func:`scan_directions`."""
    k2 = k * k
    # normal equations of the rows (2τ, −2k²x', −2k²y', 1) and right-hand sides τ² − k²(x'² + y'²)
    s00 = s01 = s02 = s03 = s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    for i in range(xp.shape[0]):
        if not active[i]:
            continue
        r0 = 2.0 * tau[i]
        r1 = -2.0 * k2 * xp[i]
        r2 = -2.0 * k2 * yp[i]
        rhs = tau[i] * tau[i] - k2 * (xp[i] * xp[i] + yp[i] * yp[i])
        b0 += r0 * rhs
        b1 += r1 * rhs
        b2 += r2 * rhs
        b3 += rhs
        s00 += r0 * r0
        s01 += r0 * r1
        s02 += r0 * r2
        s03 += r0
        s11 += r1 * r1
        s12 += r1 * r2
        s13 += r1
        s22 += r2 * r2
        s23 += r2
        s33 += 1.0
    a = np.empty((4, 4))
    a[0, 0] = s00
    a[0, 1] = a[1, 0] = s01
    a[0, 2] = a[2, 0] = s02
    a[0, 3] = a[3, 0] = s03
    a[1, 1] = s11
    a[1, 2] = a[2, 1] = s12
    a[1, 3] = a[3, 1] = s13
    a[2, 2] = s22
    a[2, 3] = a[3, 2] = s23
    a[3, 3] = s33
    bv = np.empty(4)
    bv[0] = b0
    bv[1] = b1
    bv[2] = b2
    bv[3] = b3
    return _solve4(a, bv)


@nb.njit(cache=True)
def _scan_residuals(xp, yp, tau, T, x0, y0, k, c, res, jx, jy, active):
    """Time residuals of the scan fit and the derivatives of c·r_i with respect to (x0, y0), as
    :func:`_gauss_newton3` uses them (ρ clamped at 1 mm there); returns max |res| of the active hits."""
    rmax = 0.0
    for i in range(tau.shape[0]):
        dx = xp[i] - x0
        dy = yp[i] - y0
        rho = math.sqrt(dx * dx + dy * dy)
        res[i] = (tau[i] - T - k * rho) / c
        rc = rho if rho >= 1e-3 else 1e-3
        jx[i] = -k * dx / rc
        jy[i] = -k * dy / rc
        if active[i] and abs(res[i]) > rmax:
            rmax = abs(res[i])
    return rmax


@nb.njit(cache=True)
def _gauss_newton3(T, x0, y0, c, scale, active, res, jx, jy, late_weight):
    """One Gauss-Newton step of (T, x0, y0) for a fixed direction on the residuals
    c·r_i = τ_i − T − k·ρ_i of the active hits, with Cauchy weights 1/(1 + (r_i/scale)²), late
    hits (r_i > 0) weighted by ``late_weight``; ``res``, ``jx``, ``jy``: the residuals r_i [ns]
    and derivatives of c·r_i at (T, x0, y0) (:func:`_scan_residuals`). The 3 × 3 normal
    equations (slightly regularised) are solved by cofactors; not ok if (nearly) singular."""
    a00 = a01 = a02 = a11 = a12 = a22 = 0.0
    b0 = b1 = b2 = 0.0
    inv_s2 = 1.0 / (scale * scale)
    for i in range(res.shape[0]):
        if not active[i]:
            continue
        r = c * res[i]
        wt = 1.0 / (1.0 + res[i] * res[i] * inv_s2)
        if res[i] > 0.0:
            wt *= late_weight
        # r(T + d0, x0 + d1, y0 + d2) ≈ r - j·d with j = (1, -k dx/ρ, -k dy/ρ)
        j1 = jx[i]
        j2 = jy[i]
        wj1 = wt * j1
        wj2 = wt * j2
        b0 += wt * r
        b1 += wj1 * r
        b2 += wj2 * r
        a00 += wt
        a01 += wj1
        a02 += wj2
        a11 += wj1 * j1
        a12 += wj1 * j2
        a22 += wj2 * j2
    a00 += 1e-9 * (1.0 + a00)
    a11 += 1e-9 * (1.0 + a11)
    a22 += 1e-9 * (1.0 + a22)
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    det = a00 * c00 + a01 * c01 + a02 * c02
    scl = max(a00, a11, a22)
    if not (abs(det) > 1e-14 * scl * scl * scl) or not math.isfinite(det):
        return T, x0, y0, False
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    d0 = (c00 * b0 + c01 * b1 + c02 * b2) / det
    d1 = (c01 * b0 + c11 * b1 + c12 * b2) / det
    d2 = (c02 * b0 + c12 * b1 + c22 * b2) / det
    if not (math.isfinite(d0) and math.isfinite(d1) and math.isfinite(d2)):
        return T, x0, y0, False
    return T + d0, x0 + d1, y0 + d2, True


#: Bins per window width of :func:`_densest_window`.
_DENSE_BINS = 16


@nb.njit(cache=True)
def _densest_window(tau, width, cnt):
    """(count, lower edge) of the interval of length ``width`` holding the most values of ``tau``,
    on a grid of ``width``/:data:`_DENSE_BINS` from min(tau) (counting in bins, no sort; the
    exact densest interval by sorting if the values span more bins than ``cnt`` holds);
    (0, 0.0) if a value is not finite."""
    n = tau.shape[0]
    lo = tau[0]
    hi = tau[0]
    for i in range(n):
        if not math.isfinite(tau[i]):
            return 0, 0.0  # no window (the direction is skipped)
        lo = min(lo, tau[i])
        hi = max(hi, tau[i])
    h = width / _DENSE_BINS
    nb_ = int((hi - lo) / h) + 1
    if nb_ + _DENSE_BINS > cnt.shape[0]:
        srt = np.sort(tau)
        best_n = 0
        best_lo = srt[0]
        j = 0
        for i in range(n):
            while srt[i] - srt[j] > width:
                j += 1
            if i - j + 1 > best_n:
                best_n = i - j + 1
                best_lo = srt[j]
        return best_n, best_lo
    for b in range(nb_ + _DENSE_BINS):
        cnt[b] = 0
    for i in range(n):
        cnt[int((tau[i] - lo) / h)] += 1
    run = 0
    for b in range(_DENSE_BINS):
        run += cnt[b]
    best_n = run
    best_b = 0
    for b in range(1, nb_):
        run += cnt[b + _DENSE_BINS - 1] - cnt[b - 1]
        if run > best_n:
            best_n = run
            best_b = b
    return best_n, lo + best_b * h


@nb.njit(cache=True)
def scan_directions(pos, t, dirs, k, c, window, min_hits, n_iter, tau_window=0.0, late_weight=1.0, late_cost=1.0):
    """Direction-scan prefit: for each fixed direction, position and time from a linear fit.

    In the frame of direction u (hit coordinates x', y' across and z' along the track) the
    model c·(t_i − t0) = z'_i + k·ρ_i, ρ_i² = (x'_i − x0)² + (y'_i − y0)², squared, is linear in
    (T = c t0, x0, y0, C = k²(x0² + y0²) − T²):

        τ_i² − k²(x'_i² + y'_i²) = 2 τ_i T − 2k² x'_i x0 − 2k² y'_i y0 + C,  τ_i = c t_i − z'_i,

    (a linear estimator of the track for a fixed direction, in the spirit of Jpp's
    JMuonPrefit, PHYSICS.md §9.2).

    The algebraic fit is not robust. With ``tau_window`` > 0 only the hits in the densest
    interval of width ``tau_window`` of τ_i start the fit: for the true direction every
    hit of direct light within a distance ρ_max of the track has τ_i − T = kρ_i ∈ [0, kρ_max],
    so a window k·(road width) plus the time jitter holds them all, while uncorrelated hits
    spread over the whole snapshot. The algebraic solution starts Gauss–Newton steps of
    (T, x0, y0) on the time residuals themselves with Cauchy weights 1/(1 + (r/s)²) whose
    scale s halves from max(window, max|r|/2) to window/2 (at most ``n_iter`` steps;
    graduated M-estimation, robust against late light of showers along the track), after
    which the hits with |r| ≤ ``window`` are fitted twice more without robust weights.

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
        Maximum number of robust Gauss–Newton steps.
    tau_window : float
        Width of the starting interval of c·t − z' [m] (0: start with all hits).
    late_weight : float
        Factor on the weight of hits later than the fitted track (r > 0) in the fit. Direct
        Cherenkov light of the muon is the earliest light a PMT can see (Fermat), light of
        showers along the track and scattered light come later, so with a factor < 1 the
        fit follows the early front (a quantile-like regression) instead of the late light.
    late_cost : float
        Largest cost of a late hit in the quality (early hits cost up to 1).

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
    res = np.empty(n)
    jx = np.empty(n)
    jy = np.empty(n)
    active = np.empty(n, dtype=np.bool_)
    cnt = np.empty(_DENSE_BINS * 64 + 2, dtype=np.int64)
    w2 = window * window
    for kd in range(n_dir):
        u = dirs[kd]
        e1, e2 = orthonormal_pair(u)
        for i in range(n):
            xp[i] = pos[i, 0] * e1[0] + pos[i, 1] * e1[1] + pos[i, 2] * e1[2]
            yp[i] = pos[i, 0] * e2[0] + pos[i, 1] * e2[1] + pos[i, 2] * e2[2]
            zp = pos[i, 0] * u[0] + pos[i, 1] * u[1] + pos[i, 2] * u[2]
            tau[i] = c * t[i] - zp
            active[i] = True
        if tau_window > 0.0 and n > min_hits:
            best_n, best_lo = _densest_window(tau, tau_window, cnt)
            if best_n < min_hits:
                continue
            for i in range(n):
                active[i] = tau[i] >= best_lo and tau[i] <= best_lo + tau_window
        # algebraic fit for a start, then Gauss-Newton steps of (T, x0, y0) on the time residuals
        # with Cauchy weights whose scale halves from max(window, max|r|/2) to window/2
        # (graduated M-estimation), then the hits within the window are fitted without weights
        sol, ok = _linear_track_fit(xp, yp, tau, active, k)
        if not ok:
            continue
        T, x0, y0 = sol[0], sol[1], sol[2]
        rmax = _scan_residuals(xp, yp, tau, T, x0, y0, k, c, res, jx, jy, active)
        scale = max(window, 0.5 * rmax)
        for it in range(n_iter):
            T, x0, y0, ok = _gauss_newton3(T, x0, y0, c, scale, active, res, jx, jy, late_weight)
            if not ok:
                break
            _scan_residuals(xp, yp, tau, T, x0, y0, k, c, res, jx, jy, active)
            if scale <= 0.5 * window:
                break
            scale = max(0.5 * window, 0.5 * scale)
        if not ok:
            continue
        n_act = 0
        for i in range(n):
            active[i] = abs(res[i]) <= window
            if active[i]:
                n_act += 1
        if n_act < min_hits:
            continue
        for _ in range(2):
            T, x0, y0, ok = _gauss_newton3(T, x0, y0, c, 1e30, active, res, jx, jy, late_weight)
            if not ok:
                break
            _scan_residuals(xp, yp, tau, T, x0, y0, k, c, res, jx, jy, active)
        if not ok:
            continue
        q = 0.0
        for i in range(n):
            r2 = res[i] * res[i]
            cost = r2 / w2 if r2 < w2 else 1.0
            if res[i] > 0.0 and cost > late_cost:
                cost = late_cost
            q += cost
        quality[kd] = q
        for ax in range(3):
            points[kd, ax] = x0 * e1[ax] + y0 * e2[ax]
        t0s[kd] = T / c
    return quality, points, t0s


# ==========================================================================================
# JMuon-style chain: L1 hits, robust (simplex) fit, likelihood (Gandalf) fit, brightness
# ==========================================================================================

#: Fit parameters of the track: (α, β, a, b, t0), see :func:`track_point_direction`.
N_TRACK_PARAMS = 5


@nb.njit(cache=True)
def build_l1(dom, pmt, t, tmax):
    """L1 hits: the first hit of every cluster of hits on one DOM within ``tmax`` that has at
    least two distinct PMTs (Jpp ``JBuildL1`` with ``TMaxLocal_ns``; PHYSICS.md §12).

    Hits must be sorted by time. A cluster opens at a hit and takes the following hits of the
    same DOM up to ``tmax`` later; the next cluster of the DOM opens at the first hit after it.

    Parameters
    ----------
    dom, pmt : int arrays (n,)
        DOM and PMT index of each hit.
    t : float array (n,)
        Hit times [ns], ascending.
    tmax : float
        Coincidence window [ns].

    Returns
    -------
    first : int array
        Index of the first hit of each L1 (ascending in time).
    n_pmts : int array
        Distinct PMTs in each L1.
    """
    n = t.shape[0]
    order = np.argsort(dom, kind="mergesort")  # stable: time order within a DOM
    first = np.empty(n, dtype=np.int64)
    mult = np.empty(n, dtype=np.int64)
    n_l1 = 0
    i = 0
    while i < n:
        a = order[i]
        j = i + 1
        while j < n and dom[order[j]] == dom[a] and t[order[j]] - t[a] <= tmax:
            j += 1
        # distinct PMTs among order[i:j]
        npm = 0
        for q in range(i, j):
            seen = False
            for r in range(i, q):
                if pmt[order[r]] == pmt[order[q]]:
                    seen = True
                    break
            if not seen:
                npm += 1
        if npm >= 2:
            first[n_l1] = a
            mult[n_l1] = npm
            n_l1 += 1
        i = j
    out = first[:n_l1].copy()
    m = mult[:n_l1].copy()
    o = np.argsort(out)
    return out[o], m[o]


@nb.njit(cache=True)
def refine_directions(u, step, n_side):
    """A (2·n_side+1)² grid of unit vectors around ``u`` with angular spacing ``step`` [rad]."""
    f1, f2 = orthonormal_pair(u)
    m = 2 * n_side + 1
    out = np.empty((m * m, 3))
    q = 0
    for i in range(-n_side, n_side + 1):
        for j in range(-n_side, n_side + 1):
            a = math.tan(i * step)
            b = math.tan(j * step)
            nrm = 0.0
            for ax in range(3):
                out[q, ax] = u[ax] + a * f1[ax] + b * f2[ax]
                nrm += out[q, ax] ** 2
            nrm = math.sqrt(nrm)
            for ax in range(3):
                out[q, ax] /= nrm
            q += 1
    return out


@nb.njit(cache=True)
def _solve_sym(a, b):
    """Solve a x = b (small dense system) by Gaussian elimination with partial pivoting."""
    n = b.shape[0]
    m = a.copy()
    x = b.copy()
    scale = 0.0
    for i in range(n):
        for j in range(n):
            scale = max(scale, abs(m[i, j]))
    if scale == 0.0 or not np.isfinite(scale):
        return x, False
    for col in range(n):
        piv = col
        for r in range(col + 1, n):
            if abs(m[r, col]) > abs(m[piv, col]):
                piv = r
        if abs(m[piv, col]) <= 1e-14 * scale:
            return x, False
        if piv != col:
            for j in range(n):
                tmp = m[col, j]
                m[col, j] = m[piv, j]
                m[piv, j] = tmp
            tmp = x[col]
            x[col] = x[piv]
            x[piv] = tmp
        for r in range(col + 1, n):
            f = m[r, col] / m[col, col]
            for j in range(col, n):
                m[r, j] -= f * m[col, j]
            x[r] -= f * x[col]
    for col in range(n - 1, -1, -1):
        s = x[col]
        for j in range(col + 1, n):
            s -= m[col, j] * x[j]
        x[col] = s / m[col, col]
    for i in range(n):
        if not np.isfinite(x[i]):
            return x, False
    return x, True


@nb.njit(cache=True)
def invert_matrix(a):
    """Inverse of a small symmetric matrix (NaN-filled if singular)."""
    n = a.shape[0]
    out = np.empty((n, n))
    e = np.zeros(n)
    for j in range(n):
        e[:] = 0.0
        e[j] = 1.0
        x, ok = _solve_sym(a, e)
        if not ok:
            out[:, :] = np.nan
            return out
        out[:, j] = x
    return out


@nb.njit(cache=True)
def robust_track_fit(x0, pos, t, u0, f1, f2, cog, k, c, sigma, f_scale, max_iter):
    """Robust least-squares track fit (JMuonSimplex-like refinement, PHYSICS.md §9.2).

    Minimises Σ ρ(r_i), r_i = (t_i − t_exp,i)/σ, with the soft-L1 M-estimator
    ρ(r) = 2s²(sqrt(1 + (r/s)²) − 1), s = ``f_scale``, by iteratively reweighted Gauss–Newton
    steps with Levenberg–Marquardt damping (weights w = ρ'(r)/r = 2/sqrt(1 + (r/s)²)).
    Parameters and Jacobian as :func:`track_residuals` / :func:`track_jacobian`.

    Returns
    -------
    x : ndarray (5,)
    cost : float
        Σ ρ(r_i)/2 at x.
    ok : bool
        Converged to finite values.
    """
    x = x0.copy()
    s2 = f_scale * f_scale

    def cost_of(xx):
        r = track_residuals(xx, pos, t, u0, f1, f2, cog, k, c, sigma)
        s = 0.0
        for i in range(r.shape[0]):
            s += s2 * (math.sqrt(1.0 + r[i] * r[i] / s2) - 1.0)
        return s

    f = cost_of(x)
    if not np.isfinite(f):
        return x, f, False
    lam = 1e-3
    ok = False
    for it in range(max_iter):
        r = track_residuals(x, pos, t, u0, f1, f2, cog, k, c, sigma)
        jac = track_jacobian(x, pos, t, u0, f1, f2, cog, k, c, sigma)
        h = np.zeros((5, 5))
        g = np.zeros(5)
        for i in range(r.shape[0]):
            w = 1.0 / math.sqrt(1.0 + r[i] * r[i] / s2)
            for a in range(5):
                g[a] += w * r[i] * jac[i, a]
                for b in range(a, 5):
                    h[a, b] += w * jac[i, a] * jac[i, b]
        for a in range(5):
            for b in range(a):
                h[a, b] = h[b, a]
        accepted = False
        fn = f
        for inner in range(12):
            a_mat = h.copy()
            for a in range(5):
                a_mat[a, a] += lam * h[a, a] + 1e-12
            step, good = _solve_sym(a_mat, -g)
            if not good:
                lam *= 10.0
                continue
            xn = x + step
            fn = cost_of(xn)
            if np.isfinite(fn) and fn <= f:
                x = xn
                lam = max(lam * 0.2, 1e-9)
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            ok = True  # no further decrease possible: at a minimum (to numerical precision)
            break
        if f - fn < 1e-6 * (1.0 + f):
            f = fn
            ok = True
            break
        f = fn
    return x, f, ok


@nb.njit(cache=True, inline="always")
def _cell(x, x0, dx, n):
    """Lower node index and fraction for linear interpolation on a uniform grid (clamped)."""
    u = (x - x0) / dx
    if u <= 0.0:
        return 0, 0.0
    if u >= n - 1:
        return n - 2, 1.0
    i = int(u)
    return i, u - i


@nb.njit(cache=True, inline="always")
def _table_t(tab, d, cp, t, d0, dd, c0, dc, t0, dt):
    """Interpolate a (n_d, n_cp, n_t) table at (d, c, t); n_cp = 1 ignores c. Returns the
    value and the value at the end of the t range for t above it."""
    nd = tab.shape[0]
    ncp = tab.shape[1]
    nt = tab.shape[2]
    i, fi = _cell(d, d0, dd, nd)
    j, ft = _cell(t, t0, dt, nt)
    if ncp == 1:
        v00 = tab[i, 0, j] + ft * (tab[i, 0, j + 1] - tab[i, 0, j])
        v10 = tab[i + 1, 0, j] + ft * (tab[i + 1, 0, j + 1] - tab[i + 1, 0, j])
        return v00 + fi * (v10 - v00)
    q, fc = _cell(cp, c0, dc, ncp)
    v = 0.0
    for a in range(2):
        wa = fi if a == 1 else 1.0 - fi
        for b in range(2):
            wb = fc if b == 1 else 1.0 - fc
            lo = tab[i + a, q + b, j]
            hi = tab[i + a, q + b, j + 1]
            v += wa * wb * (lo + ft * (hi - lo))
    return v


@nb.njit(cache=True, inline="always")
def _pmt_track_geometry(px, py, pz, ux, uy, uz, xx, xy, xz, ax, ay, az, k, c, sin_c, cos_c):
    """(L, d, t_direct·c, cosine of the direct photon with the PMT axis) of a PMT and a track."""
    vx = xx - px
    vy = xy - py
    vz = xz - pz
    L = vx * ux + vy * uy + vz * uz
    d2 = vx * vx + vy * vy + vz * vz - L * L
    d = math.sqrt(d2) if d2 > 0.0 else 0.0
    if d > 1e-9:
        wx = sin_c * (vx - L * ux) / d + cos_c * ux
        wy = sin_c * (vy - L * uy) / d + cos_c * uy
        wz = sin_c * (vz - L * uz) / d + cos_c * uz
    else:
        wx, wy, wz = ux, uy, uz
    cp = wx * ax + wy * ay + wz * az
    return L, d, L + k * d, cp


# ------------------------------------------------------------------------------------------
# Light-table lookups of the likelihood kernels. A table set is passed to the kernels as
#   d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2
# (km3sim.reco.pdf.LightTables.track_kernel_args). Two layouts (PHYSICS.md §9.1):
#   n_phi == 0: the orientation is the cosine c between the direct Cherenkov photon and the PMT
#     axis, one axis of npe_d (n_d, n_c) and pdf/cdf (n_d, n_cp, n_t) (n_cp = 1: no c dependence);
#   n_phi >= 2: the orientation is the PMT axis in the track frame, polar angle θ from the track
#     direction (nodes c0 + a·dc) and azimuth φ ∈ [0, π] about it (φ = 0 pointing away from the
#     track; n_phi uniform nodes), flattened as a·n_phi + b on the second axis (the layout of
#     the simulation's light tables, km3sim.propagation.tables).
# The distance coordinate is d (d_scale == 0) or ln(1 + d/d_scale) (d_scale > 0), uniform from d0
# with step dd on the pdf/cdf grid; npe_d (d × expected pe of a unit-brightness track) may be
# sampled more finely over the same range (its step is dd·(n_pdf − 1)/(n_npe − 1)).
# A second light component (npe_d2, pdf2, cdf2, same grids) enters with the fraction w2 of the
# light: expected pe B·((1 − w2)·m1 + w2·m2) and time PDF the npe-weighted mixture; w2 = 0 skips it.
# ------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _pmt_track_orientation(px, py, pz, ux, uy, uz, xx, xy, xz, ax, ay, az, k, c, sin_c, cos_c, n_phi):
    """(L, d, c·t_direct, o1, o2) of a PMT at x with axis a and a track (p, u): o1 = cosine of the
    direct photon with the PMT axis (n_phi == 0, o2 = 0) or o1 = θ, o2 = φ of the PMT axis in the
    track frame (n_phi ≥ 2; see the notes above)."""
    if n_phi == 0:
        L, d, ct, cp = _pmt_track_geometry(px, py, pz, ux, uy, uz, xx, xy, xz, ax, ay, az, k, c, sin_c, cos_c)
        return L, d, ct, cp, 0.0
    vx = xx - px
    vy = xy - py
    vz = xz - pz
    L = vx * ux + vy * uy + vz * uz
    d2 = vx * vx + vy * vy + vz * vz - L * L
    d = math.sqrt(d2) if d2 > 0.0 else 0.0
    e1x, e1y, e1z = radial_unit(vx, vy, vz, ux, uy, uz, L, d)  # the light tables' track frame
    e2x = uy * e1z - uz * e1y
    e2y = uz * e1x - ux * e1z
    e2z = ux * e1y - uy * e1x
    c3 = ax * ux + ay * uy + az * uz
    c1 = ax * e1x + ay * e1y + az * e1z
    c2 = abs(ax * e2x + ay * e2y + az * e2z)
    theta = math.acos(min(1.0, max(-1.0, c3)))
    rho = math.sqrt(c1 * c1 + c2 * c2)
    phi = math.acos(min(1.0, max(-1.0, c1 / rho))) if rho > 0.0 else 0.0
    return L, d, L + k * d, theta, phi


@nb.njit(cache=True, inline="always")
def _dcoord(d, d_scale):
    """Distance coordinate of the tables: d, or ln(1 + d/d_scale) for d_scale > 0."""
    return math.log1p(d / d_scale) if d_scale > 0.0 else d


@nb.njit(cache=True, inline="always")
def _npe_o(npe_d, xd, d, o1, o2, d0, dd, c0, dc, n_pdf_d, n_phi, d_floor):
    """Expected pe of a unit-brightness track from d × npe at distance coordinate xd (see the notes)."""
    nd = npe_d.shape[0]
    i, fi = _cell(xd, d0, dd * (n_pdf_d - 1) / (nd - 1), nd)
    if n_phi == 0:
        q, fc = _cell(o1, c0, dc, npe_d.shape[1])
        v0 = npe_d[i, q] + fc * (npe_d[i, q + 1] - npe_d[i, q])
        v1 = npe_d[i + 1, q] + fc * (npe_d[i + 1, q + 1] - npe_d[i + 1, q])
        return (v0 + fi * (v1 - v0)) / max(d, d_floor)
    a, fa = _cell(o1, c0, dc, npe_d.shape[1] // n_phi)
    b, fb = _cell(o2, 0.0, math.pi / (n_phi - 1), n_phi)
    v = 0.0
    for di in range(2):
        wi = fi if di == 1 else 1.0 - fi
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                v += wi * wa * wb * npe_d[i + di, (a + da) * n_phi + b + db]
    return v / max(d, d_floor)


@nb.njit(cache=True, inline="always")
def _tab_o(tab, xd, o1, o2, t, d0, dd, c0, dc, n_phi, t0, dt):
    """Interpolate a pdf/cdf table at (xd, o1, o2, t) (see the notes).

    n_phi == 0: (n_d, n_c, n_t) table of the PDF/CDF. n_phi ≥ 2: (n_d, n_θ·n_φ, n_t + 1) table
    of npe × PDF (CDF) on the nodes with the node's npe in the last column; the result is the
    npe-weighted mixture of the corners, Σ w·npe·f / Σ w·npe (0 where no corner has light)."""
    if n_phi == 0:
        return _table_t(tab, xd, o1, t, d0, dd, c0, dc, t0, dt)
    nd = tab.shape[0]
    nt = tab.shape[2] - 1
    i, fi = _cell(xd, d0, dd, nd)
    j, ft = _cell(t, t0, dt, nt)
    a, fa = _cell(o1, c0, dc, tab.shape[1] // n_phi)
    b, fb = _cell(o2, 0.0, math.pi / (n_phi - 1), n_phi)
    v = 0.0
    w = 0.0
    for di in range(2):
        wi = fi if di == 1 else 1.0 - fi
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                q = (a + da) * n_phi + b + db
                lo = tab[i + di, q, j]
                ww = wi * wa * wb
                v += ww * (lo + ft * (tab[i + di, q, j + 1] - lo))
                w += ww * tab[i + di, q, nt]
    return v / w if w > 0.0 else 0.0


@nb.njit(cache=True, inline="always")
def _signal_npe(xd, d, o1, o2, d0, dd, c0, dc, npe_d, pdf, n_phi, w2, npe_d2, pdf2, d_floor):
    """Expected pe (m1, m2) of the two light components of a unit-brightness track (m2 = 0 if w2 = 0)."""
    m1 = _npe_o(npe_d, xd, d, o1, o2, d0, dd, c0, dc, pdf.shape[0], n_phi, d_floor)
    if w2 <= 0.0:
        return m1, 0.0
    m2 = _npe_o(npe_d2, xd, d, o1, o2, d0, dd, c0, dc, pdf2.shape[0], n_phi, d_floor)
    return (1.0 - w2) * m1, w2 * m2


@nb.njit(cache=True, inline="always")
def _signal_t(tab, tab2, m1, m2, xd, o1, o2, t, d0, dd, c0, dc, n_phi, t0, dt):
    """m1·tab(t) + m2·tab2(t): npe-weighted pdf or cdf of the light components."""
    v = m1 * _tab_o(tab, xd, o1, o2, t, d0, dd, c0, dc, n_phi, t0, dt)
    if m2 > 0.0:
        v += m2 * _tab_o(tab2, xd, o1, o2, t, d0, dd, c0, dc, n_phi, t0, dt)
    return v


@nb.njit(cache=True)
def _edge_table(tab, t, t0, dt, n_phi):
    """A pdf/cdf table at the fixed time t, (n_d, n_o, 2): [..., 0] the value interpolated in t
    as :func:`_tab_o` does it, [..., 1] the node's npe column (n_phi ≥ 2; 0 otherwise). The
    window edges t_lo, t_hi are the same for every PMT and call: :func:`_tab_edge` then needs
    no time lookup (bit-identical to :func:`_tab_o` at t)."""
    nd = tab.shape[0]
    no = tab.shape[1]
    nt = tab.shape[2] - 1 if n_phi != 0 else tab.shape[2]
    j, ft = _cell(t, t0, dt, nt)
    e = np.zeros((nd, no, 2))
    for i in range(nd):
        for q in range(no):
            lo = tab[i, q, j]
            e[i, q, 0] = lo + ft * (tab[i, q, j + 1] - lo)
            if n_phi != 0:
                e[i, q, 1] = tab[i, q, nt]
    return e


@nb.njit(cache=True, inline="always")
def _tab_edge(e, xd, o1, o2, d0, dd, c0, dc, n_phi):
    """:func:`_tab_o` at the time of the edge table ``e`` (:func:`_edge_table`), same arithmetic."""
    nd = e.shape[0]
    i, fi = _cell(xd, d0, dd, nd)
    if n_phi == 0:
        if e.shape[1] == 1:
            v00 = e[i, 0, 0]
            v10 = e[i + 1, 0, 0]
            return v00 + fi * (v10 - v00)
        q, fc = _cell(o1, c0, dc, e.shape[1])
        v = 0.0
        for a in range(2):
            wa = fi if a == 1 else 1.0 - fi
            for b in range(2):
                wb = fc if b == 1 else 1.0 - fc
                v += wa * wb * e[i + a, q + b, 0]
        return v
    a, fa = _cell(o1, c0, dc, e.shape[1] // n_phi)
    b, fb = _cell(o2, 0.0, math.pi / (n_phi - 1), n_phi)
    v = 0.0
    w = 0.0
    for di in range(2):
        wi = fi if di == 1 else 1.0 - fi
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                q = (a + da) * n_phi + b + db
                ww = wi * wa * wb
                v += ww * e[i + di, q, 0]
                w += ww * e[i + di, q, 1]
    return v / w if w > 0.0 else 0.0


@nb.njit(cache=True, inline="always")
def _signal_edge(e, e2, m1, m2, xd, o1, o2, d0, dd, c0, dc, n_phi):
    """:func:`_signal_t` at the time of the edge tables ``e``, ``e2`` (:func:`_edge_table`)."""
    v = m1 * _tab_edge(e, xd, o1, o2, d0, dd, c0, dc, n_phi)
    if m2 > 0.0:
        v += m2 * _tab_edge(e2, xd, o1, o2, d0, dd, c0, dc, n_phi)
    return v


@nb.njit(cache=True)
def window_edge_tables(cdf, cdf2, n_phi, tt0, dt, t_lo, t_hi):
    """The CDF edge tables (:func:`_edge_table`) at the window edges: (lo, hi, lo2, hi2)."""
    return (_edge_table(cdf, t_lo, tt0, dt, n_phi), _edge_table(cdf, t_hi, tt0, dt, n_phi),
            _edge_table(cdf2, t_lo, tt0, dt, n_phi), _edge_table(cdf2, t_hi, tt0, dt, n_phi))


@nb.njit(cache=True)
def track_light(p, u, pos, pdir, t_res, k, c, sin_c, cos_c, brightness, d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf,
                cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2):
    """Expected signal pe m, PDF f(t_res) and CDF F(t_res) of the light of track (p, u) at PMTs
    (pos, pdir) as the likelihood kernels see them (for checks and plots).

    Returns
    -------
    m, f, F : float arrays (n,)
    """
    n = pos.shape[0]
    m = np.empty(n)
    f = np.empty(n)
    F = np.empty(n)
    for i in range(n):
        L, d, ct, o1, o2 = _pmt_track_orientation(p[0], p[1], p[2], u[0], u[1], u[2], pos[i, 0], pos[i, 1],
                                                  pos[i, 2], pdir[i, 0], pdir[i, 1], pdir[i, 2], k, c, sin_c, cos_c,
                                                  n_phi)
        xd = _dcoord(d, d_scale)
        m1, m2 = _signal_npe(xd, d, o1, o2, d0, dd, c0, dc, npe_d, pdf, n_phi, w2, npe_d2, pdf2, d_floor)
        mm = m1 + m2
        m[i] = brightness * mm
        if mm > 0.0:
            f[i] = _signal_t(pdf, pdf2, m1, m2, xd, o1, o2, t_res[i], d0, dd, c0, dc, n_phi, tt0, dt) / mm
            F[i] = _signal_t(cdf, cdf2, m1, m2, xd, o1, o2, t_res[i], d0, dd, c0, dc, n_phi, tt0, dt) / mm
        else:
            f[i] = 0.0
            F[i] = 0.0
    return m, f, F


@nb.njit(cache=True)
def gandalf_terms(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                  d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2, out):
    """−ln L of each selected hit for the track of parameters x (JMuonGandalf-like likelihood).

    Each selected hit is the first hit of its PMT with a time residual in [t_lo, t_hi]. The
    photo-electrons of the track arrive as a Poisson process of rate B·m(d, c)·f(t_res|d)
    (expected pe m, time-residual PDF f, brightness B; :mod:`km3sim.reco.pdf`) on top of the
    background rate r_b, so the first hit in the window has the density
    λ(t)·exp(−Λ(t)), λ = B m f + r_b, Λ(t) = ∫_{t_lo}^{t} λ. Conditioned on the PMT having a
    hit in the window (the hit selection), −ln L_i = −ln λ(t_i) + Λ(t_i) + ln(1 − e^{−Λ(t_hi)}).

    Returns the sum; ``out`` receives the terms.
    """
    elo, ehi, elo2, ehi2 = window_edge_tables(cdf, cdf2, n_phi, tt0, dt, t_lo, t_hi)
    return gandalf_terms_e(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                           d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                           elo, ehi, elo2, ehi2, out)


@nb.njit(cache=True)
def gandalf_terms_e(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                    d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                    elo, ehi, elo2, ehi2, out):
    """:func:`gandalf_terms` with the CDF edge tables of :func:`window_edge_tables` given (the
    fits evaluate −ln L many times with the same tables; same result)."""
    p, u, _ = track_point_direction(x, u0, f1, f2, cog)
    total = 0.0
    for i in range(t.shape[0]):
        L, d, ct, o1, o2 = _pmt_track_orientation(p[0], p[1], p[2], u[0], u[1], u[2], pos[i, 0], pos[i, 1],
                                                  pos[i, 2], pdir[i, 0], pdir[i, 1], pdir[i, 2], k, c, sin_c, cos_c,
                                                  n_phi)
        tr = t[i] - x[4] - ct / c
        xd = _dcoord(d, d_scale)
        m1, m2 = _signal_npe(xd, d, o1, o2, d0, dd, c0, dc, npe_d, pdf, n_phi, w2, npe_d2, pdf2, d_floor)
        m1 *= brightness
        m2 *= brightness
        mf = _signal_t(pdf, pdf2, m1, m2, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
        trc = min(max(tr, t_lo), t_hi)
        mF = _signal_t(cdf, cdf2, m1, m2, xd, o1, o2, trc, d0, dd, c0, dc, n_phi, tt0, dt)
        mFlo = _signal_edge(elo, elo2, m1, m2, xd, o1, o2, d0, dd, c0, dc, n_phi)
        mFhi = _signal_edge(ehi, ehi2, m1, m2, xd, o1, o2, d0, dd, c0, dc, n_phi)
        lam = mf + rate_bg
        big_l = (mF - mFlo) + rate_bg * (trc - t_lo)
        big_w = (mFhi - mFlo) + rate_bg * (t_hi - t_lo)
        term = -math.log(lam) + big_l + math.log(-math.expm1(-big_w))
        out[i] = term
        total += term
    return total


# ------------------------------------------------------------------------------------------
# Analytic gradient of −ln L (gandalf_terms): the likelihood is piecewise multilinear in
# (distance coordinate, orientation, time residual) — for (R, θ, φ) tables a ratio of such
# interpolations (the npe-weighted mixture) — so its exact derivatives are those of the
# interpolation cells, chained with the derivatives of the track geometry (L, d, orientation)
# with respect to the fit parameters. One pass over the hits gives all five components, where
# central differences need ten.
# ------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _cell_g(x, x0, dx, n):
    """:func:`_cell` (same node and fraction) and the derivative of the fraction with respect to
    x (0 where clamped)."""
    u = (x - x0) / dx
    if u <= 0.0:
        return 0, 0.0, 0.0
    if u >= n - 1:
        return n - 2, 1.0, 0.0
    i = int(u)
    return i, u - i, 1.0 / dx


@nb.njit(cache=True, inline="always")
def _npe0_g(npe_d, xd, d, o1, d0, dd, c0, dc, n_pdf_d, d_floor):
    """:func:`_npe_o` for n_phi == 0 and its partial derivatives: (v, ∂v/∂xd, ∂v/∂d at fixed xd,
    ∂v/∂c)."""
    nd = npe_d.shape[0]
    i, fi, gi = _cell_g(xd, d0, dd * (n_pdf_d - 1) / (nd - 1), nd)
    q, fc, gc = _cell_g(o1, c0, dc, npe_d.shape[1])
    s0 = npe_d[i, q + 1] - npe_d[i, q]
    s1 = npe_d[i + 1, q + 1] - npe_d[i + 1, q]
    v0 = npe_d[i, q] + fc * s0
    v1 = npe_d[i + 1, q] + fc * s1
    den = max(d, d_floor)
    v = (v0 + fi * (v1 - v0)) / den
    return v, gi * (v1 - v0) / den, (-v / den if d > d_floor else 0.0), gc * (s0 + fi * (s1 - s0)) / den


@nb.njit(cache=True, inline="always")
def _tab0_g(tab, xd, o1, t, d0, dd, c0, dc, t0, dt):
    """:func:`_table_t` (a (n_d, n_cp, n_t) table) and its partial derivatives: (v, ∂v/∂xd,
    ∂v/∂c, ∂v/∂t)."""
    nd = tab.shape[0]
    ncp = tab.shape[1]
    nt = tab.shape[2]
    i, fi, gi = _cell_g(xd, d0, dd, nd)
    j, ft, gt = _cell_g(t, t0, dt, nt)
    if ncp == 1:
        a0 = tab[i, 0, j]
        s0 = tab[i, 0, j + 1] - a0
        b0 = tab[i + 1, 0, j]
        s1 = tab[i + 1, 0, j + 1] - b0
        v00 = a0 + ft * s0
        v10 = b0 + ft * s1
        return v00 + fi * (v10 - v00), gi * (v10 - v00), 0.0, gt * (s0 + fi * (s1 - s0))
    q, fc, gc = _cell_g(o1, c0, dc, ncp)
    v = 0.0
    vx = 0.0
    vc = 0.0
    vt = 0.0
    for a in range(2):
        wa = fi if a == 1 else 1.0 - fi
        ga = gi if a == 1 else -gi
        for b in range(2):
            wb = fc if b == 1 else 1.0 - fc
            gb = gc if b == 1 else -gc
            lo = tab[i + a, q + b, j]
            hi = tab[i + a, q + b, j + 1]
            val = lo + ft * (hi - lo)
            v += wa * wb * val
            vx += ga * wb * val
            vc += wa * gb * val
            vt += wa * wb * gt * (hi - lo)
    return v, vx, vc, vt


@nb.njit(cache=True, inline="always")
def _edge0_g(e, xd, o1, d0, dd, c0, dc):
    """:func:`_tab_edge` for n_phi == 0 and its partial derivatives: (v, ∂v/∂xd, ∂v/∂c)."""
    i, fi, gi = _cell_g(xd, d0, dd, e.shape[0])
    if e.shape[1] == 1:
        v00 = e[i, 0, 0]
        v10 = e[i + 1, 0, 0]
        return v00 + fi * (v10 - v00), gi * (v10 - v00), 0.0
    q, fc, gc = _cell_g(o1, c0, dc, e.shape[1])
    v = 0.0
    vx = 0.0
    vc = 0.0
    for a in range(2):
        wa = fi if a == 1 else 1.0 - fi
        ga = gi if a == 1 else -gi
        for b in range(2):
            wb = fc if b == 1 else 1.0 - fc
            gb = gc if b == 1 else -gc
            val = e[i + a, q + b, 0]
            v += wa * wb * val
            vx += ga * wb * val
            vc += wa * gb * val
    return v, vx, vc


@nb.njit(cache=True, inline="always")
def _light0_g(npe_d, pdf, cdf, elo, ehi, scale, xd, d, cp, tr, trc, d0, dd, c0, dc, tt0, dt, d_floor, dxd_dd, out):
    """One light component of :func:`gandalf_terms_grad` (n_phi == 0): adds m·(pdf, cdf, cdf_lo,
    cdf_hi) (m = ``scale`` × the unit-brightness npe) to out[0:4] and their derivatives with
    respect to d (out[4:8]), c (out[8:12]) and the time residual (out[12:14], pdf and cdf)."""
    n, nx, ndd, nc = _npe0_g(npe_d, xd, d, cp, d0, dd, c0, dc, pdf.shape[0], d_floor)
    m = scale * n
    m_d = scale * (nx * dxd_dd + ndd)
    m_c = scale * nc
    P, Px, Pc, Pt = _tab0_g(pdf, xd, cp, tr, d0, dd, c0, dc, tt0, dt)
    F, Fx, Fc, Ft = _tab0_g(cdf, xd, cp, trc, d0, dd, c0, dc, tt0, dt)
    Lo, Lox, Loc = _edge0_g(elo, xd, cp, d0, dd, c0, dc)
    Hi, Hix, Hic = _edge0_g(ehi, xd, cp, d0, dd, c0, dc)
    out[0] += m * P
    out[1] += m * F
    out[2] += m * Lo
    out[3] += m * Hi
    out[4] += m_d * P + m * Px * dxd_dd
    out[5] += m_d * F + m * Fx * dxd_dd
    out[6] += m_d * Lo + m * Lox * dxd_dd
    out[7] += m_d * Hi + m * Hix * dxd_dd
    out[8] += m_c * P + m * Pc
    out[9] += m_c * F + m * Fc
    out[10] += m_c * Lo + m * Loc
    out[11] += m_c * Hi + m * Hic
    out[12] += m * Pt
    out[13] += m * Ft


@nb.njit(cache=True, inline="always")
def _npeT_g(npe_d, xd, d, o1, o2, d0, dd, c0, dc, n_pdf_d, n_phi, d_floor):
    """:func:`_npe_o` for n_phi ≥ 2 and its partial derivatives: (v, ∂v/∂xd, ∂v/∂d at fixed xd,
    ∂v/∂θ, ∂v/∂φ)."""
    nd = npe_d.shape[0]
    i, fi, gi = _cell_g(xd, d0, dd * (n_pdf_d - 1) / (nd - 1), nd)
    a, fa, ga = _cell_g(o1, c0, dc, npe_d.shape[1] // n_phi)
    b, fb, gb = _cell_g(o2, 0.0, math.pi / (n_phi - 1), n_phi)
    v = 0.0
    vx = 0.0
    va = 0.0
    vb = 0.0
    for di in range(2):
        wi = fi if di == 1 else 1.0 - fi
        si = gi if di == 1 else -gi
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            sa = ga if da == 1 else -ga
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                sb = gb if db == 1 else -gb
                val = npe_d[i + di, (a + da) * n_phi + b + db]
                v += wi * wa * wb * val
                vx += si * wa * wb * val
                va += wi * sa * wb * val
                vb += wi * wa * sb * val
    den = max(d, d_floor)
    v /= den
    return v, vx / den, (-v / den if d > d_floor else 0.0), va / den, vb / den


@nb.njit(cache=True, inline="always")
def _tabT_g(tab, xd, o1, o2, t, d0, dd, c0, dc, n_phi, t0, dt, edge):
    """:func:`_tab_o` (``edge`` False) or :func:`_tab_edge` (``edge`` True: ``tab`` is an edge
    table, t unused) for n_phi ≥ 2, and the partial derivatives of the npe-weighted mixture
    R = Σ w·npe·f / Σ w·npe: (R, ∂R/∂xd, ∂R/∂θ, ∂R/∂φ, ∂R/∂t)."""
    nd = tab.shape[0]
    i, fi, gi = _cell_g(xd, d0, dd, nd)
    if edge:
        j, ft, gt, nt = 0, 0.0, 0.0, 1
    else:
        nt = tab.shape[2] - 1
        j, ft, gt = _cell_g(t, t0, dt, nt)
    a, fa, ga = _cell_g(o1, c0, dc, tab.shape[1] // n_phi)
    b, fb, gb = _cell_g(o2, 0.0, math.pi / (n_phi - 1), n_phi)
    v = vx = va = vb = vt = 0.0
    w = wx = wa_ = wb_ = 0.0
    for di in range(2):
        wi = fi if di == 1 else 1.0 - fi
        si = gi if di == 1 else -gi
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            sa = ga if da == 1 else -ga
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                sb = gb if db == 1 else -gb
                q = (a + da) * n_phi + b + db
                if edge:
                    val = tab[i + di, q, 0]
                    slope = 0.0
                    node = tab[i + di, q, 1]
                else:
                    lo = tab[i + di, q, j]
                    slope = tab[i + di, q, j + 1] - lo
                    val = lo + ft * slope
                    node = tab[i + di, q, nt]
                ww = wi * wa * wb
                v += ww * val
                vx += si * wa * wb * val
                va += wi * sa * wb * val
                vb += wi * wa * sb * val
                vt += ww * gt * slope
                w += ww * node
                wx += si * wa * wb * node
                wa_ += wi * sa * wb * node
                wb_ += wi * wa * sb * node
    if w <= 0.0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    r = v / w
    return r, (vx - r * wx) / w, (va - r * wa_) / w, (vb - r * wb_) / w, vt / w


@nb.njit(cache=True, inline="always")
def _lightT_g(npe_d, pdf, cdf, elo, ehi, scale, xd, d, o1, o2, tr, trc, d0, dd, c0, dc, tt0, dt, n_phi, d_floor,
              dxd_dd, out):
    """:func:`_light0_g` for n_phi ≥ 2: adds m·(pdf, cdf, cdf_lo, cdf_hi) to out[0:4] and their
    derivatives with respect to d (out[4:8]), θ (out[8:12]), the time residual (out[12:14]) and
    φ (out[14:18])."""
    n, nx, ndd, na, nb_ = _npeT_g(npe_d, xd, d, o1, o2, d0, dd, c0, dc, pdf.shape[0], n_phi, d_floor)
    m = scale * n
    m_d = scale * (nx * dxd_dd + ndd)
    m_a = scale * na
    m_b = scale * nb_
    for s in range(4):
        if s == 0:
            R, Rx, Ra, Rb, Rt = _tabT_g(pdf, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt, False)
            out[12] += m * Rt
        elif s == 1:
            R, Rx, Ra, Rb, Rt = _tabT_g(cdf, xd, o1, o2, trc, d0, dd, c0, dc, n_phi, tt0, dt, False)
            out[13] += m * Rt
        elif s == 2:
            R, Rx, Ra, Rb, Rt = _tabT_g(elo, xd, o1, o2, 0.0, d0, dd, c0, dc, n_phi, tt0, dt, True)
        else:
            R, Rx, Ra, Rb, Rt = _tabT_g(ehi, xd, o1, o2, 0.0, d0, dd, c0, dc, n_phi, tt0, dt, True)
        out[s] += m * R
        out[4 + s] += m_d * R + m * Rx * dxd_dd
        out[8 + s] += m_a * R + m * Ra
        out[14 + s] += m_b * R + m * Rb


@nb.njit(cache=True)
def gandalf_terms_grad(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                       d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                       elo, ehi, elo2, ehi2, out, jac):
    """:func:`gandalf_terms_e` and the exact gradient of every term with respect to the five fit
    parameters (``jac`` (n, 5)).

    The term of a hit depends on the parameters through the time residual t_r, the distance d
    and the PMT orientation (n_phi == 0: the cosine c of the direct photon with the PMT axis
    A; n_phi ≥ 2: θ, φ of A in the track frame); its partial derivatives in those are the
    slopes of the interpolation cells (the tables are piecewise multilinear; for (R, θ, φ)
    tables those of the npe-weighted mixture), and t_r, d and the orientation are
    differentiated analytically: with V = x − p, L = V·u, r = V − L u (|r| = d, e1 = r/d),
    δL = −u·δp + V·δu, δd = −(r·δp + L V·δu)/d, δr = −δp − δL u − L δu,
    c = sin θc (r·A)/d + cos θc (u·A), cos θ = A·u, φ = atan2(|A·(u × e1)|, A·e1), and
    δt_r = −(δL + k δd)/c − δt0 (p = cog + a f1 + b f2, u = (u0 + α f1 + β f2)/|…|).

    Returns the sum of the terms.
    """
    p, u, nrm = track_point_direction(x, u0, f1, f2, cog)
    uf1 = u[0] * f1[0] + u[1] * f1[1] + u[2] * f1[2]
    uf2 = u[0] * f2[0] + u[1] * f2[1] + u[2] * f2[2]
    # ∂u/∂α, ∂u/∂β
    gu = np.empty((2, 3))
    for a in range(3):
        gu[0, a] = (f1[a] - u[a] * uf1) / nrm
        gu[1, a] = (f2[a] - u[a] * uf2) / nrm
    acc = np.empty(18)
    w1 = (1.0 - w2) * brightness if w2 > 0.0 else brightness
    wb2 = w2 * brightness
    total = 0.0
    for i in range(t.shape[0]):
        vx = pos[i, 0] - p[0]
        vy = pos[i, 1] - p[1]
        vz = pos[i, 2] - p[2]
        ax = pdir[i, 0]
        ay = pdir[i, 1]
        az = pdir[i, 2]
        L = vx * u[0] + vy * u[1] + vz * u[2]
        d2 = vx * vx + vy * vy + vz * vz - L * L
        d = math.sqrt(d2) if d2 > 0.0 else 0.0
        rx = vx - L * u[0]
        ry = vy - L * u[1]
        rz = vz - L * u[2]
        ua = ax * u[0] + ay * u[1] + az * u[2]
        on_line = d <= 1e-9
        if n_phi == 0:
            if not on_line:
                wx = sin_c * rx / d + cos_c * u[0]
                wy = sin_c * ry / d + cos_c * u[1]
                wz = sin_c * rz / d + cos_c * u[2]
            else:
                wx, wy, wz = u[0], u[1], u[2]
            o1 = wx * ax + wy * ay + wz * az
            o2 = 0.0
            e1x = e1y = e1z = e2x = e2y = e2z = c1 = s2 = 0.0
        else:
            # as _pmt_track_orientation
            e1x, e1y, e1z = radial_unit(vx, vy, vz, u[0], u[1], u[2], L, d)
            e2x = u[1] * e1z - u[2] * e1y
            e2y = u[2] * e1x - u[0] * e1z
            e2z = u[0] * e1y - u[1] * e1x
            c1 = ax * e1x + ay * e1y + az * e1z
            s2 = ax * e2x + ay * e2y + az * e2z
            c2 = abs(s2)
            o1 = math.acos(min(1.0, max(-1.0, ua)))
            rho = math.sqrt(c1 * c1 + c2 * c2)
            o2 = math.acos(min(1.0, max(-1.0, c1 / rho))) if rho > 0.0 else 0.0
        tr = t[i] - x[4] - (L + k * d) / c
        trc = min(max(tr, t_lo), t_hi)
        xd = _dcoord(d, d_scale)
        dxd_dd = 1.0 / (d_scale + d) if d_scale > 0.0 else 1.0
        for a in range(18):
            acc[a] = 0.0
        if n_phi == 0:
            _light0_g(npe_d, pdf, cdf, elo, ehi, w1, xd, d, o1, tr, trc, d0, dd, c0, dc, tt0, dt, d_floor, dxd_dd, acc)
            if w2 > 0.0:
                _light0_g(npe_d2, pdf2, cdf2, elo2, ehi2, wb2, xd, d, o1, tr, trc, d0, dd, c0, dc, tt0, dt, d_floor,
                          dxd_dd, acc)
        else:
            _lightT_g(npe_d, pdf, cdf, elo, ehi, w1, xd, d, o1, o2, tr, trc, d0, dd, c0, dc, tt0, dt, n_phi, d_floor,
                      dxd_dd, acc)
            if w2 > 0.0:
                _lightT_g(npe_d2, pdf2, cdf2, elo2, ehi2, wb2, xd, d, o1, o2, tr, trc, d0, dd, c0, dc, tt0, dt, n_phi,
                          d_floor, dxd_dd, acc)
        lam = acc[0] + rate_bg
        big_w = (acc[3] - acc[2]) + rate_bg * (t_hi - t_lo)
        term = -math.log(lam) + (acc[1] - acc[2]) + rate_bg * (trc - t_lo) + math.log(-math.expm1(-big_w))
        out[i] = term
        total += term
        # ∂term/∂(d, o1, t_r, o2)
        ew = 1.0 / math.expm1(big_w)
        inwin = 1.0 if (tr >= t_lo and tr <= t_hi) else 0.0
        T_d = -acc[4] / lam + (acc[5] - acc[6]) + (acc[7] - acc[6]) * ew
        T_1 = -acc[8] / lam + (acc[9] - acc[10]) + (acc[11] - acc[10]) * ew
        T_2 = -acc[14] / lam + (acc[15] - acc[16]) + (acc[17] - acc[16]) * ew
        T_t = -acc[12] / lam + inwin * (acc[13] + rate_bg)
        ra = rx * ax + ry * ay + rz * az
        sin_t = math.sqrt(max(0.0, 1.0 - ua * ua))
        for a in range(4):
            # the perturbation (δp, δu) of parameter a: (0, ∂u/∂α), (0, ∂u/∂β), (f1, 0), (f2, 0)
            if a < 2:
                px_, py_, pz_ = 0.0, 0.0, 0.0
                qx, qy, qz = gu[a, 0], gu[a, 1], gu[a, 2]
            else:
                fv = f1 if a == 2 else f2
                px_, py_, pz_ = fv[0], fv[1], fv[2]
                qx, qy, qz = 0.0, 0.0, 0.0
            dL = -(u[0] * px_ + u[1] * py_ + u[2] * pz_) + (vx * qx + vy * qy + vz * qz)
            adu = ax * qx + ay * qy + az * qz
            if on_line:  # d, φ: no derivative; c = u·A (n_phi == 0), θ = acos(u·A)
                if n_phi == 0:
                    do1 = adu
                else:
                    do1 = -adu / sin_t if sin_t > 1e-9 else 0.0
                jac[i, a] = T_1 * do1 - T_t * dL / c
                continue
            dd_ = -((rx * px_ + ry * py_ + rz * pz_) + L * (vx * qx + vy * qy + vz * qz)) / d
            if n_phi == 0:
                dra = -(ax * px_ + ay * py_ + az * pz_) - dL * ua - L * adu
                do1 = sin_c * (dra / d - ra * dd_ / (d * d)) + cos_c * adu
                do2 = 0.0
            else:
                # δr, δe1 = (δr − e1 δd)/d, δ(A·e1), δ(A·(u × e1)) = A·(δu × e1) + A·(u × δe1)
                drx = -px_ - dL * u[0] - L * qx
                dry = -py_ - dL * u[1] - L * qy
                drz = -pz_ - dL * u[2] - L * qz
                dex = (drx - e1x * dd_) / d
                dey = (dry - e1y * dd_) / d
                dez = (drz - e1z * dd_) / d
                dc1 = ax * dex + ay * dey + az * dez
                ds2 = (ax * (qy * e1z - qz * e1y) + ay * (qz * e1x - qx * e1z) + az * (qx * e1y - qy * e1x)
                       + ax * (u[1] * dez - u[2] * dey) + ay * (u[2] * dex - u[0] * dez) + az * (u[0] * dey - u[1] * dex))
                dc2 = ds2 if s2 >= 0.0 else -ds2
                do1 = -adu / sin_t if sin_t > 1e-9 else 0.0
                rho2 = c1 * c1 + s2 * s2
                do2 = (c1 * dc2 - abs(s2) * dc1) / rho2 if rho2 > 1e-18 else 0.0
            jac[i, a] = T_d * dd_ + T_1 * do1 + T_2 * do2 - T_t * (dL + k * dd_) / c
        jac[i, 4] = -T_t
    return total


@nb.njit(cache=True)
def _gandalf_scores_g(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                      d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2, elo,
                      ehi, elo2, ehi2, buf, jac):
    """Gradient of −ln L and the BHHH matrix Σ s_i s_iᵀ of the per-hit scores (exact, :func:`gandalf_terms_grad`)."""
    gandalf_terms_grad(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                       d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                       elo, ehi, elo2, ehi2, buf, jac)
    g = np.zeros(5)
    h = np.zeros((5, 5))
    for i in range(t.shape[0]):
        for a in range(5):
            g[a] += jac[i, a]
            for b in range(a, 5):
                h[a, b] += jac[i, a] * jac[i, b]
    for a in range(5):
        for b in range(a):
            h[a, b] = h[b, a]
    return g, h


@nb.njit(cache=True)
def gandalf_hessian_g(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                      d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                      elo, ehi, elo2, ehi2, steps):
    """Hessian of −ln L (:func:`gandalf_terms`) at x by central differences of the exact gradient
    (:func:`gandalf_terms_grad`) with ``steps``, symmetrised: column b is
    (∇f(x + h_b e_b) − ∇f(x − h_b e_b))/(2 h_b). Ten gradient passes, where second differences
    of −ln L (:func:`km3sim.reco.numerics.central_hessian`) need 51 passes; with the same
    steps both average the piecewise-constant curvature of the tables over the same cells."""
    n = t.shape[0]
    buf = np.empty(n)
    jac = np.empty((n, 5))
    h = np.zeros((5, 5))
    for b in range(5):
        for sgn in (1.0, -1.0):
            xx = x.copy()
            xx[b] += sgn * steps[b]
            gandalf_terms_grad(xx, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                               d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2,
                               cdf2, elo, ehi, elo2, ehi2, buf, jac)
            for a in range(5):
                s = 0.0
                for i in range(n):
                    s += jac[i, a]
                h[a, b] += sgn * s / (2.0 * steps[b])
    for a in range(5):
        for b in range(a):
            v = 0.5 * (h[a, b] + h[b, a])
            h[a, b] = v
            h[b, a] = v
    return h


@nb.njit(cache=True)
def gandalf_fit(x0, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2, steps, max_iter):
    """Maximum-likelihood track fit (JMuonGandalf-like): quasi-Newton iterations with
    Levenberg–Marquardt damping on −ln L of :func:`gandalf_terms`.

    The curvature matrix starts as the BHHH approximation (Σ of the outer products of the
    per-hit scores) and is improved by BFGS updates from the gradient changes; exact gradients
    (:func:`gandalf_terms_grad`). ``steps`` (~1e-3 rad, 0.1 m, 0.2 ns) set the floor of the
    Levenberg–Marquardt damping.

    Returns
    -------
    x : ndarray (5,)
    f : float
        −ln L at x.
    n_iter : int
    ok : bool
        −ln L is finite (the iterations stop when a step gains less than 1e-4, when no damped
        step decreases −ln L, or after ``max_iter``).
    """
    n = t.shape[0]
    x = x0.copy()
    buf = np.empty(n)
    tp = np.empty(n)
    elo, ehi, elo2, ehi2 = window_edge_tables(cdf, cdf2, n_phi, tt0, dt, t_lo, t_hi)
    f = gandalf_terms_e(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                        d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                        elo, ehi, elo2, ehi2, buf)
    if not np.isfinite(f):
        return x, f, 0, False
    jac = np.empty((n, 5))
    g, h = _gandalf_scores_g(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo, t_hi,
                             d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2, pdf2, cdf2,
                             elo, ehi, elo2, ehi2, tp, jac)
    floor = np.empty(5)
    for a in range(5):
        floor[a] = 1e-6 / (steps[a] * steps[a])
    lam = 1e-3
    it = 0
    for it in range(max_iter):
        accepted = False
        fn = f
        step = np.zeros(5)
        for inner in range(16):
            a_mat = h.copy()
            for a in range(5):
                a_mat[a, a] += lam * max(h[a, a], floor[a]) + floor[a]
            step, good = _solve_sym(a_mat, -g)
            if good:
                xn = x + step
                fn = gandalf_terms_e(xn, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg,
                                     t_lo, t_hi, d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2,
                                     npe_d2, pdf2, cdf2, elo, ehi, elo2, ehi2, buf)
                if np.isfinite(fn) and fn <= f:
                    accepted = True
                    break
            lam *= 10.0
        if not accepted:
            break
        x = x + step
        gain = f - fn
        f = fn
        lam = max(lam * 0.1, 1e-6)
        if gain < 1e-4:
            break
        gn, hb = _gandalf_scores_g(x, u0, f1, f2, cog, pos, pdir, t, k, c, sin_c, cos_c, brightness, rate_bg, t_lo,
                                   t_hi, d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2,
                                   pdf2, cdf2, elo, ehi, elo2, ehi2, tp, jac)
        # BFGS update of the curvature with s = step, y = gn - g (skipped unless s·y > 0)
        y = gn - g
        sy = 0.0
        for a in range(5):
            sy += step[a] * y[a]
        hs = h @ step
        shs = 0.0
        for a in range(5):
            shs += step[a] * hs[a]
        if sy > 1e-12 and shs > 1e-12:
            for a in range(5):
                for b in range(5):
                    h[a, b] += y[a] * y[b] / sy - hs[a] * hs[b] / shs
        else:
            h = hb
        g = gn
    return x, f, it + 1, True


@nb.njit(cache=True)
def select_first_hits(p, u, t0, hit_pmt, t, pmt_pos, pmt_dir, k, c, sin_c, cos_c, road, t_lo, t_hi):
    """Indices of the first hit of each PMT with d ≤ ``road`` and a time residual in
    [t_lo, t_hi] of the track (p, u, t0). Hits must be sorted by time."""
    n = t.shape[0]
    out = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        q = hit_pmt[i]
        L, d, ct, cp = _pmt_track_geometry(p[0], p[1], p[2], u[0], u[1], u[2], pmt_pos[q, 0], pmt_pos[q, 1],
                                           pmt_pos[q, 2], pmt_dir[q, 0], pmt_dir[q, 1], pmt_dir[q, 2], k, c, sin_c, cos_c)
        if d > road:
            continue
        tr = t[i] - t0 - ct / c
        if tr < t_lo or tr > t_hi:
            continue
        dup = False
        for j in range(m):
            if hit_pmt[out[j]] == q:
                dup = True
                break
        if not dup:
            out[m] = i
            m += 1
    return out[:m].copy()


def pmt_blocks(pmt_pos, block_id):
    """Runs of consecutive PMTs with the same ``block_id`` (their DOM) as blocks for the road
    kernels: (start indices with the end appended, centres (n_blocks, 3), radii). The centre is
    the mean of the block's positions and the radius the largest distance of one of them from
    it, so a block whose centre is farther than road + radius from a track (the distance to a
    line is 1-Lipschitz in the point) has no PMT within the road."""
    pmt_pos = np.ascontiguousarray(pmt_pos, dtype=np.float64)
    block_id = np.asarray(block_id)
    n = pmt_pos.shape[0]
    if pmt_pos.ndim != 2 or pmt_pos.shape[1] != 3 or block_id.shape != (n,):
        raise ValueError(f"pmt_blocks: pmt_pos must be (n, 3) and block_id (n,), got {pmt_pos.shape} and {block_id.shape}")
    if n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros((0, 3)), np.zeros(0)
    start = np.concatenate([[0], np.flatnonzero(block_id[1:] != block_id[:-1]) + 1, [n]]).astype(np.int64)
    nb_ = len(start) - 1
    centre = np.empty((nb_, 3))
    radius = np.empty(nb_)
    for b in range(nb_):
        xs = pmt_pos[start[b]:start[b + 1]]
        centre[b] = xs.mean(axis=0)
        radius[b] = np.sqrt(np.max(np.sum((xs - centre[b]) ** 2, axis=1)))
    return start, np.ascontiguousarray(centre), radius


@nb.njit(cache=True)
def _block_outside(p, u, blk_c, blk_r, b, road):
    """Block b of :func:`pmt_blocks` lies wholly outside the road of the track (p, u) (1 mm margin
    for rounding)."""
    vx = blk_c[b, 0] - p[0]
    vy = blk_c[b, 1] - p[1]
    vz = blk_c[b, 2] - p[2]
    L = vx * u[0] + vy * u[1] + vz * u[2]
    d2 = vx * vx + vy * vy + vz * vz - L * L
    lim = road + blk_r[b] + 1e-3
    return d2 > lim * lim


@nb.njit(cache=True)
def road_light(p, u, t0, hit_pmt, t, hit_charge, pmt_pos, pmt_dir, pmt_ok, blk_start, blk_c, blk_r, k, c, sin_c, cos_c,
               road, t_lo, t_hi, z_min, z_max, d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2,
               npe_d2, pdf2, cdf2):
    """One pass over the road of the track (p, u, t0): the brightness-fit inputs of every PMT and
    what :func:`road_llr_of` needs to give :func:`road_llr` of the same track and tables.

    Per PMT within ``road`` of the track whose direct-light emission point lies in
    [z_min, z_max] along the track: the expected signal pe in the time window of a
    unit-brightness track, a_i = m(d, c)·(F(t_hi) − F(t_lo)), and the summed charge of its hits
    with a time residual in the window (0 without such a hit; PHYSICS.md §9.2 item 4,
    JMuonEnergy-like). ``blk_start, blk_c, blk_r``: PMT blocks (:func:`pmt_blocks`) culled as a
    whole when they lie outside the road (same result as testing every PMT).

    Returns
    -------
    a : float array (n_road,)
    charge : float array (n_road,)
        Summed ``hit_charge`` [pe] of the PMT's hits in the window, negative if one of them
        saturated (``hit_charge`` < 0; see :func:`fit_brightness`).
    z_emit : float array (n_road,)
        Emission point along the track [m] (from p).
    d : float array (n_road,)
    llr_data : float array (n_road, 12)
        Unit-brightness m1, m2 (:func:`_signal_npe`), the CDF tables at t_lo, t_hi of both
        components, 1.0 if the PMT has a hit in the window (else 0.0), the time residual t of
        its first one and the PDF and CDF tables of both components at t (only where used).
    """
    # the hits in the road and the window, grouped by PMT (stable: the first is the earliest);
    # arrays of the size of the road, not of the detector (no per-call zeroing of 10^5 PMTs)
    nh = t.shape[0]
    hq = np.empty(nh, dtype=np.int64)
    htr = np.empty(nh)
    m_hit = 0
    for i in range(nh):
        q = hit_pmt[i]
        L, d, ct, cp = _pmt_track_geometry(p[0], p[1], p[2], u[0], u[1], u[2], pmt_pos[q, 0], pmt_pos[q, 1],
                                           pmt_pos[q, 2], pmt_dir[q, 0], pmt_dir[q, 1], pmt_dir[q, 2], k, c, sin_c, cos_c)
        if d > road:
            continue
        tr = t[i] - t0 - ct / c
        if tr >= t_lo and tr <= t_hi:
            hq[m_hit] = i
            htr[m_hit] = tr
            m_hit += 1
    order = np.argsort(hit_pmt[hq[:m_hit]], kind="mergesort")
    uq = np.empty(m_hit, dtype=np.int64)  # PMTs with hits in the window, ascending
    ufirst = np.empty(m_hit)  # time residual of the first one
    ucharge = np.empty(m_hit)  # summed |charge|
    usat = np.zeros(m_hit, dtype=np.bool_)  # one of them saturated
    nu = 0
    for j in range(m_hit):
        i = hq[order[j]]
        q = hit_pmt[i]
        if nu == 0 or uq[nu - 1] != q:
            uq[nu] = q
            ufirst[nu] = htr[order[j]]
            ucharge[nu] = 0.0
            nu += 1
        ucharge[nu - 1] += abs(hit_charge[i])
        if hit_charge[i] < 0.0:
            usat[nu - 1] = True
    # the blocks within the road (PMT indices ascending, as uq)
    n_blk = blk_start.shape[0] - 1
    near = np.empty(n_blk, dtype=np.int64)
    n_near = 0
    n_max = 0
    for bk in range(n_blk):
        if not _block_outside(p, u, blk_c, blk_r, bk, road):
            near[n_near] = bk
            n_near += 1
            n_max += blk_start[bk + 1] - blk_start[bk]
    a = np.empty(n_max)
    charge = np.empty(n_max)
    z = np.empty(n_max)
    dist = np.empty(n_max)
    ld = np.empty((n_max, 12))
    m = 0
    ptr = 0
    cot_c = cos_c / sin_c
    road2 = road * road
    elo, ehi, elo2, ehi2 = window_edge_tables(cdf, cdf2, n_phi, tt0, dt, t_lo, t_hi)
    for ib in range(n_near):
        bk = near[ib]
        for q in range(blk_start[bk], blk_start[bk + 1]):
            if not pmt_ok[q]:
                continue
            vx = pmt_pos[q, 0] - p[0]
            vy = pmt_pos[q, 1] - p[1]
            vz = pmt_pos[q, 2] - p[2]
            L = vx * u[0] + vy * u[1] + vz * u[2]
            d2 = vx * vx + vy * vy + vz * vz - L * L
            if d2 > road2:
                continue
            d = math.sqrt(d2) if d2 > 0.0 else 0.0
            ze = L - d * cot_c
            if ze < z_min or ze > z_max:
                continue
            L2, d, ct, o1, o2 = _pmt_track_orientation(p[0], p[1], p[2], u[0], u[1], u[2], pmt_pos[q, 0], pmt_pos[q, 1],
                                                       pmt_pos[q, 2], pmt_dir[q, 0], pmt_dir[q, 1], pmt_dir[q, 2], k, c,
                                                       sin_c, cos_c, n_phi)
            xd = _dcoord(d, d_scale)
            m1, m2 = _signal_npe(xd, d, o1, o2, d0, dd, c0, dc, npe_d, pdf, n_phi, w2, npe_d2, pdf2, d_floor)
            for col in range(12):
                ld[m, col] = 0.0
            ld[m, 0] = m1
            ld[m, 1] = m2
            lo1 = _tab_edge(elo, xd, o1, o2, d0, dd, c0, dc, n_phi)
            hi1 = _tab_edge(ehi, xd, o1, o2, d0, dd, c0, dc, n_phi)
            ld[m, 2] = lo1
            ld[m, 3] = hi1
            # a = _signal_edge(ehi, ...) − _signal_edge(elo, ...), same arithmetic, each table once
            s_hi = m1 * hi1
            s_lo = m1 * lo1
            if m2 > 0.0:
                lo2 = _tab_edge(elo2, xd, o1, o2, d0, dd, c0, dc, n_phi)
                hi2 = _tab_edge(ehi2, xd, o1, o2, d0, dd, c0, dc, n_phi)
                ld[m, 4] = lo2
                ld[m, 5] = hi2
                s_hi += m2 * hi2
                s_lo += m2 * lo2
            a[m] = s_hi - s_lo
            while ptr < nu and uq[ptr] < q:
                ptr += 1
            hit = ptr < nu and uq[ptr] == q
            if hit:
                tr = ufirst[ptr]
                ld[m, 6] = 1.0
                ld[m, 7] = tr
                ld[m, 8] = _tab_o(pdf, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
                ld[m, 10] = _tab_o(cdf, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
                if m2 > 0.0:
                    ld[m, 9] = _tab_o(pdf2, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
                    ld[m, 11] = _tab_o(cdf2, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
            charge[m] = (-ucharge[ptr] if usat[ptr] else ucharge[ptr]) if hit else 0.0
            z[m] = ze
            dist[m] = d
            m += 1
    return a[:m].copy(), charge[:m].copy(), z[:m].copy(), dist[:m].copy(), ld[:m].copy()


@nb.njit(cache=True)
def road_llr_of(llr_data, brightness, rate_bg, z_emit, margin):
    """:func:`road_llr` of the track, tables and road of ``llr_data`` (:func:`road_light`, with
    no z range) at ``brightness``, over the PMTs whose emission point ``z_emit`` lies within
    ``margin`` of the range of emission points of the PMTs with a signal-like hit: a first hit
    at which the signal density B m f(t) exceeds the background rate (more likely light of the
    track than ⁴⁰K; any hit in the window would let the noise of a large road span all of it).
    All PMTs for an infinite margin or no signal-like hit: then the same sum in the same order
    and arithmetic as :func:`road_llr`.

    Returns (llr, n_hit)."""
    z_lo = -np.inf
    z_hi = np.inf
    if np.isfinite(margin):
        lo = np.inf
        hi = -np.inf
        for q in range(llr_data.shape[0]):
            if llr_data[q, 6] != 0.0:
                mf = llr_data[q, 0] * brightness * llr_data[q, 8]
                if llr_data[q, 1] > 0.0:
                    mf += llr_data[q, 1] * brightness * llr_data[q, 9]
                if mf > rate_bg:
                    lo = min(lo, z_emit[q])
                    hi = max(hi, z_emit[q])
        if lo <= hi:
            z_lo = lo - margin
            z_hi = hi + margin
    llr = 0.0
    n_hit = 0
    for q in range(llr_data.shape[0]):
        if z_emit[q] < z_lo or z_emit[q] > z_hi:
            continue
        m1 = llr_data[q, 0] * brightness
        m2 = llr_data[q, 1] * brightness
        mflo = m1 * llr_data[q, 2]
        if m2 > 0.0:
            mflo += m2 * llr_data[q, 4]
        if llr_data[q, 6] == 0.0:
            v = m1 * llr_data[q, 3]
            if m2 > 0.0:
                v += m2 * llr_data[q, 5]
            llr -= v - mflo
        else:
            mf = m1 * llr_data[q, 8]
            if m2 > 0.0:
                mf += m2 * llr_data[q, 9]
            mF = m1 * llr_data[q, 10]
            if m2 > 0.0:
                mF += m2 * llr_data[q, 11]
            llr += math.log1p(mf / rate_bg) - (mF - mflo)
            n_hit += 1
    return llr, n_hit


@nb.njit(cache=True)
def fit_brightness(a, charge, bg, b_min, b_max):
    """Maximum-likelihood brightness B from the charges of the PMTs in the road.

    Each PMT has expected charge μ_i = B·a_i + bg in the time window and measured charge n_i
    (from the ToT of its hits, 0 without a hit); the Poisson log-likelihood (continuous in n)

        ln L(B) = Σ_i [n_i ln μ_i − μ_i]

    is concave in B, so its maximum is the unique root of Σ n_i a_i/μ_i − Σ a_i, found by
    bisection in ln B on [b_min, b_max] (the bound if the root lies outside). A negative
    charge −q marks a PMT whose ToT saturated: its charge is only known to be at least q, and
    its term is censored, n ln μ − μ relative to its value at μ = q while μ < q and 0 above
    (a one-sided approximation of ln P(N ≥ q | μ)).

    Returns
    -------
    b : float
    gain : float
        ln L(B) − ln L(0), the likelihood gain over background only.
    """
    n = a.shape[0]
    # PMTs without charge add −a_i to dlnl and −(B a_i + bg) to ln L: summed once, so that the
    # iterations only loop over the PMTs with charge (a few % of a km³ road)
    a_zero = 0.0
    n_zero = 0
    hit = np.empty(n, dtype=np.int64)
    n_hit = 0
    for i in range(n):
        if charge[i] == 0.0:
            a_zero += a[i]
            n_zero += 1
        else:
            hit[n_hit] = i
            n_hit += 1

    def dlnl(b):
        s = -a_zero
        for j in range(n_hit):
            i = hit[j]
            mu = b * a[i] + bg
            if charge[i] > 0.0:
                s += charge[i] * a[i] / mu - a[i]
            elif mu < -charge[i]:
                s += a[i] * (-charge[i] / mu - 1.0)
        return s

    def lnl(b):
        s = -(b * a_zero + n_zero * bg)
        for j in range(n_hit):
            i = hit[j]
            mu = b * a[i] + bg
            if charge[i] > 0.0:
                s += charge[i] * math.log(mu) - mu
            elif mu < -charge[i]:
                q = -charge[i]
                s += q * math.log(mu) - mu - (q * math.log(q) - q)
        return s

    lo = math.log(b_min)
    hi = math.log(b_max)
    if dlnl(b_min) <= 0.0:
        b = b_min
    elif dlnl(b_max) >= 0.0:
        b = b_max
    else:
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if dlnl(math.exp(mid)) > 0.0:
                lo = mid
            else:
                hi = mid
        b = math.exp(0.5 * (lo + hi))
    return b, lnl(b) - lnl(0.0)


@nb.njit(cache=True)
def build_l1_any(dom, t, tmax):
    """First hit of every cluster of hits on one DOM within ``tmax`` (any number of hits);
    hits sorted by time. Returns (first-hit indices ascending, hits per cluster)."""
    n = t.shape[0]
    order = np.argsort(dom, kind="mergesort")
    first = np.empty(n, dtype=np.int64)
    mult = np.empty(n, dtype=np.int64)
    m = 0
    i = 0
    while i < n:
        a = order[i]
        j = i + 1
        while j < n and dom[order[j]] == dom[a] and t[order[j]] - t[a] <= tmax:
            j += 1
        first[m] = a
        mult[m] = j - i
        m += 1
        i = j
    out = first[:m].copy()
    mm = mult[:m].copy()
    o = np.argsort(out)
    return out[o], mm[o]


@nb.njit(cache=True)
def road_llr(p, u, t0, brightness, hit_pmt, t, pmt_pos, pmt_dir, pmt_ok, blk_start, blk_c, blk_r, k, c, sin_c, cos_c,
             road, t_lo, t_hi, rate_bg, d_floor, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, n_phi, d_scale, w2, npe_d2,
             pdf2, cdf2):
    """Log-likelihood ratio of track (p, u, t0) with brightness B against background only, over
    all usable PMTs within ``road``: for a PMT whose first hit in the window [t_lo, t_hi] (time
    residual) is at t, ln(1 + B m f(t)/r_b) − B m (F(t) − F(t_lo)); for a PMT without a hit in
    the window, −B m (F(t_hi) − F(t_lo)). PMTs outside the road, and hits outside the window
    (background under the track hypothesis), add nothing. Unlike −ln L of :func:`gandalf_terms`
    (conditional on the selected hits) it compares different tracks on the same data.
    ``blk_start, blk_c, blk_r``: PMT blocks (:func:`pmt_blocks`) culled as a whole when they lie
    outside the road (same result as testing every PMT).

    Returns
    -------
    llr : float
    n_hit : int
        PMTs with a hit in the window.
    """
    n_p = pmt_pos.shape[0]
    first = np.full(n_p, np.nan)
    for i in range(t.shape[0]):
        q = hit_pmt[i]
        if not np.isnan(first[q]):
            continue
        L, d, ct, cp = _pmt_track_geometry(p[0], p[1], p[2], u[0], u[1], u[2], pmt_pos[q, 0], pmt_pos[q, 1],
                                           pmt_pos[q, 2], pmt_dir[q, 0], pmt_dir[q, 1], pmt_dir[q, 2], k, c, sin_c, cos_c)
        if d > road:
            continue
        tr = t[i] - t0 - ct / c
        if tr >= t_lo and tr <= t_hi:
            first[q] = tr
    llr = 0.0
    n_hit = 0
    road2 = road * road
    elo, ehi, elo2, ehi2 = window_edge_tables(cdf, cdf2, n_phi, tt0, dt, t_lo, t_hi)
    for bk in range(blk_start.shape[0] - 1):
        if _block_outside(p, u, blk_c, blk_r, bk, road):
            continue
        for q in range(blk_start[bk], blk_start[bk + 1]):
            if not pmt_ok[q]:
                continue
            vx = pmt_pos[q, 0] - p[0]
            vy = pmt_pos[q, 1] - p[1]
            vz = pmt_pos[q, 2] - p[2]
            L = vx * u[0] + vy * u[1] + vz * u[2]
            if vx * vx + vy * vy + vz * vz - L * L > road2:
                continue
            L, d, ct, o1, o2 = _pmt_track_orientation(p[0], p[1], p[2], u[0], u[1], u[2], pmt_pos[q, 0], pmt_pos[q, 1],
                                                      pmt_pos[q, 2], pmt_dir[q, 0], pmt_dir[q, 1], pmt_dir[q, 2], k, c,
                                                      sin_c, cos_c, n_phi)
            xd = _dcoord(d, d_scale)
            m1, m2 = _signal_npe(xd, d, o1, o2, d0, dd, c0, dc, npe_d, pdf, n_phi, w2, npe_d2, pdf2, d_floor)
            m1 *= brightness
            m2 *= brightness
            mflo = _signal_edge(elo, elo2, m1, m2, xd, o1, o2, d0, dd, c0, dc, n_phi)
            if np.isnan(first[q]):
                llr -= _signal_edge(ehi, ehi2, m1, m2, xd, o1, o2, d0, dd, c0, dc, n_phi) - mflo
            else:
                tr = first[q]
                mf = _signal_t(pdf, pdf2, m1, m2, xd, o1, o2, tr, d0, dd, c0, dc, n_phi, tt0, dt)
                llr += math.log1p(mf / rate_bg) - (_signal_t(cdf, cdf2, m1, m2, xd, o1, o2, tr, d0, dd, c0, dc, n_phi,
                                                             tt0, dt) - mflo)
                n_hit += 1
    return llr, n_hit
