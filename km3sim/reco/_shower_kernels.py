"""numba kernels of the shower reconstruction (point-source prefit, position and complete fits).

Arrays and scalars only; physics in :mod:`km3sim.reco.shower` (PHYSICS.md §5.4, §9.1, §9.2).

A shower is a point-like light source at vertex v and time t0 (PHYSICS.md §9.1): a PMT at x
sees its direct light at t0 + |x − v|·n_g/c. Its expected photo-electrons follow the
Rädel–Wiebusch light yield and angular profile (PHYSICS.md §5.4) emitted along the shower axis
in longitudinal bins of equal light (as :func:`km3sim.propagation._light_kernels` simulates).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.reco._kernels import _cell, _solve_sym, _table_t

__all__ = [
    "point_prefit",
    "shower_terms",
    "shower_fit",
    "shower_npe",
    "first_hits_near",
]

MODEL_POSITION = 0
MODEL_COMPLETE = 1


@nb.njit(cache=True)
def _interp1(x, x0, dx, ys):
    i, f = _cell(x, x0, dx, ys.shape[0])
    return ys[i] + f * (ys[i + 1] - ys[i])


@nb.njit(cache=True)
def point_prefit(pos, t, cn, window, n_iter, late_weight):
    """Vertex and time of a point source from hit times (JShowerPrefit-like, PHYSICS.md §9.1).

    Start: the linear estimator of (c_n(t_i − t0))² = |x_i − v|² (c_n = c/n_g), i.e.
    |x_i|² − c_n²t_i² = 2x_i·v − 2c_n² t_i t0 + D, least squares in (v, t0, D). Then
    Gauss–Newton steps of (v, t0) on the time residuals r_i = t_i − t0 − |x_i − v|/c_n with
    Cauchy weights whose scale halves from max(window, max|r|/2) to window/2, hits later than
    the source weighted by ``late_weight`` (direct light is the earliest), then two steps on the
    hits with |r| ≤ window.

    Parameters
    ----------
    pos : array (n, 3)
        Hit positions [m], preferably centred.
    t : array (n,)
        Hit times [ns], preferably centred.
    cn : float
        Light speed in water c/n_g [m/ns].
    window : float
        Residual window [ns].
    n_iter : int
        Robust steps.
    late_weight : float

    Returns
    -------
    v : array (3,)
    t0 : float
    quality : float
        Σ min(r², W²)/W² over all hits (inf on failure).
    n_in : int
        Hits with |r| ≤ window.
    """
    n = t.shape[0]
    v = np.zeros(3)
    if n < 5:
        return v, 0.0, np.inf, 0
    a = np.zeros((5, 5))
    b = np.zeros(5)
    row = np.empty(5)
    c2 = cn * cn
    for i in range(n):
        row[0] = 2.0 * pos[i, 0]
        row[1] = 2.0 * pos[i, 1]
        row[2] = 2.0 * pos[i, 2]
        row[3] = -2.0 * c2 * t[i]
        row[4] = 1.0
        rhs = pos[i, 0] ** 2 + pos[i, 1] ** 2 + pos[i, 2] ** 2 - c2 * t[i] * t[i]
        for p in range(5):
            b[p] += row[p] * rhs
            for q in range(5):
                a[p, q] += row[p] * row[q]
    sol, ok = _solve_sym(a, b)
    res = np.empty(n)
    best_v = np.zeros(3)
    best_t0 = 0.0
    best_q = np.inf
    best_n = 0
    for start in range(2):
        if start == 0:
            if not ok:
                continue
            v0 = np.array([sol[0], sol[1], sol[2]])
            t00 = sol[3]
        else:
            # the centre of gravity of the hits (the origin of the centred positions), the
            # median time of the light emitted there
            v0 = np.zeros(3)
            for i in range(n):
                res[i] = t[i] - math.sqrt(pos[i, 0] ** 2 + pos[i, 1] ** 2 + pos[i, 2] ** 2) / cn
            t00 = np.median(res)
        vv, tt, q, n_in = _point_robust(pos, t, cn, window, n_iter, late_weight, v0, t00, res)
        if q < best_q:
            best_v, best_t0, best_q, best_n = vv, tt, q, n_in
    return best_v, best_t0, best_q, best_n


@nb.njit(cache=True)
def _point_robust(pos, t, cn, window, n_iter, late_weight, v, t0, res):
    """Robust Gauss–Newton of (v, t0) from a start; see :func:`point_prefit`."""
    n = t.shape[0]
    active = np.ones(n, dtype=np.bool_)

    def residuals(v, t0):
        rmax = 0.0
        for i in range(n):
            r = math.sqrt((pos[i, 0] - v[0]) ** 2 + (pos[i, 1] - v[1]) ** 2 + (pos[i, 2] - v[2]) ** 2)
            res[i] = t[i] - t0 - r / cn
            if active[i] and abs(res[i]) > rmax:
                rmax = abs(res[i])
        return rmax

    def cost(v, t0, scale):
        c = 0.0
        for i in range(n):
            if not active[i]:
                continue
            r = t[i] - t0 - math.sqrt((pos[i, 0] - v[0]) ** 2 + (pos[i, 1] - v[1]) ** 2 + (pos[i, 2] - v[2]) ** 2) / cn
            lw = late_weight if r > 0.0 else 1.0
            if scale > 1e20:
                c += lw * r * r
            else:
                c += lw * math.log1p((r / scale) ** 2)
        return c

    def step(v, t0, scale):
        h = np.zeros((4, 4))
        g = np.zeros(4)
        jj = np.empty(4)
        for i in range(n):
            if not active[i]:
                continue
            dx = pos[i, 0] - v[0]
            dy = pos[i, 1] - v[1]
            dz = pos[i, 2] - v[2]
            r = math.sqrt(dx * dx + dy * dy + dz * dz)
            if r < 1e-3:
                r = 1e-3
            w = 1.0 / (1.0 + (res[i] / scale) ** 2)
            if res[i] > 0.0:
                w *= late_weight
            # r_i(v + d, t0 + d3) ≈ r_i − jj·d with jj = (−dx/(r cn), −dy/(r cn), −dz/(r cn), 1)
            jj[0] = -dx / (r * cn)
            jj[1] = -dy / (r * cn)
            jj[2] = -dz / (r * cn)
            jj[3] = 1.0
            for p in range(4):
                g[p] += w * jj[p] * res[i]
                for q in range(4):
                    h[p, q] += w * jj[p] * jj[q]
        for p in range(4):
            h[p, p] += 1e-9 * (1.0 + h[p, p])
        d, good = _solve_sym(h, g)
        if not good:
            return v, t0, False
        # halve the step until the robust cost Σ w·ln(1 + (r/s)²) does not increase
        c0 = cost(v, t0, scale)
        f = 1.0
        for _ in range(8):
            vn = v.copy()
            vn[0] += f * d[0]
            vn[1] += f * d[1]
            vn[2] += f * d[2]
            if cost(vn, t0 + f * d[3], scale) <= c0:
                return vn, t0 + f * d[3], True
            f *= 0.5
        return v, t0, True


    rmax = residuals(v, t0)
    scale = max(window, 0.5 * rmax)
    for it in range(n_iter):
        v, t0, ok = step(v, t0, scale)
        if not ok:
            return v, t0, np.inf, 0
        residuals(v, t0)
        if scale <= 0.5 * window:
            break
        scale = max(0.5 * window, 0.5 * scale)
    n_in = 0
    for i in range(n):
        active[i] = abs(res[i]) <= window
        if active[i]:
            n_in += 1
    if n_in < 5:
        return v, t0, np.inf, n_in
    for it in range(2):
        v, t0, ok = step(v, t0, 1e30)
        if not ok:
            return v, t0, np.inf, 0
        residuals(v, t0)
    q = 0.0
    w2 = window * window
    n_in = 0
    for i in range(n):
        r2 = res[i] * res[i]
        q += r2 / w2 if r2 < w2 else 1.0
        if r2 <= w2:
            n_in += 1
    return v, t0, q, n_in


@nb.njit(cache=True)
def _bin_npe(xx, xy, xz, ax, ay, az, px, py, pz, ux, uy, uz, z, r_floor, y0, ydd, ytab, a0, adc, atab,
             ang0, angd, angpdf, isotropic):
    """pe per metre of Cherenkov track emitted at p + z·u, at PMT (x, a) [pe/m], and the distance.

    area·A(c)·Y(r)·h(cosθ)/(2π r²), h the normalised angular profile dN/dcosθ (or 1/2 for an
    isotropic emitter, the direction average of h). ``ytab`` includes the photocathode area.
    """
    vx = xx - (px + z * ux)
    vy = xy - (py + z * uy)
    vz = xz - (pz + z * uz)
    r = math.sqrt(vx * vx + vy * vy + vz * vz)
    if r < r_floor:
        if r > 0.0:
            f = r_floor / r
            vx *= f
            vy *= f
            vz *= f
        else:
            vx = ux * r_floor
            vy = uy * r_floor
            vz = uz * r_floor
        r = r_floor
    inv_r = 1.0 / r
    c = (vx * ax + vy * ay + vz * az) * inv_r
    acc = _interp1(c, a0, adc, atab)
    if acc <= 0.0:
        return 0.0, r
    if isotropic:
        prof = 0.5
    else:
        prof = _interp1((vx * ux + vy * uy + vz * uz) * inv_r, ang0, angd, angpdf)
    y = _interp1(r, y0, ydd, ytab)
    return acc * y * prof / (2.0 * math.pi * r * r), r


@nb.njit(cache=True)
def shower_npe(v, u, length_per_gev, z_mid, pmt_pos, pmt_dir, r_floor, y0, ydd, ytab, a0, adc, atab,
               ang0, angd, angpdf, isotropic):
    """Expected pe per GeV of a shower at (v, u) at each PMT (Rädel–Wiebusch light, PHYSICS.md §5.4)."""
    n = pmt_pos.shape[0]
    out = np.zeros(n)
    w = length_per_gev / z_mid.shape[0]
    for k in range(n):
        s = 0.0
        for j in range(z_mid.shape[0]):
            m, _ = _bin_npe(pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2],
                            v[0], v[1], v[2], u[0], u[1], u[2], z_mid[j], r_floor, y0, ydd, ytab, a0, adc, atab,
                            ang0, angd, angpdf, isotropic)
            s += m
        out[k] = s * w
    return out


@nb.njit(cache=True)
def first_hits_near(v, t0, hit_pmt, t, pmt_pos, pmt_ok, cn, radius, t_lo, t_hi):
    """Usable PMTs within ``radius`` of v and the time residual of their first hit in
    [t_lo, t_hi] (NaN if none). Hits sorted by time.

    Returns
    -------
    pmts : int array
    tres : float array
    """
    n_p = pmt_pos.shape[0]
    first = np.full(n_p, np.nan)
    r2max = radius * radius
    for i in range(t.shape[0]):
        q = hit_pmt[i]
        if not np.isnan(first[q]):
            continue
        dx = pmt_pos[q, 0] - v[0]
        dy = pmt_pos[q, 1] - v[1]
        dz = pmt_pos[q, 2] - v[2]
        d2 = dx * dx + dy * dy + dz * dz
        if d2 > r2max:
            continue
        tr = t[i] - t0 - math.sqrt(d2) / cn
        if tr >= t_lo and tr <= t_hi:
            first[q] = t[i]
    idx = np.empty(n_p, dtype=np.int64)
    tt = np.empty(n_p)
    m = 0
    for q in range(n_p):
        if not pmt_ok[q]:
            continue
        dx = pmt_pos[q, 0] - v[0]
        dy = pmt_pos[q, 1] - v[1]
        dz = pmt_pos[q, 2] - v[2]
        if dx * dx + dy * dy + dz * dz > r2max:
            continue
        idx[m] = q
        tt[m] = first[q]
        m += 1
    return idx[:m].copy(), tt[:m].copy()


@nb.njit(cache=True)
def shower_terms(x, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg,
                 t_lo, t_hi, r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf,
                 d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, out):
    """−ln L of each PMT for a shower (see :mod:`km3sim.reco.shower`).

    ``model`` :data:`MODEL_POSITION`: x = (vx, vy, vz, t0); isotropic emission of energy
    e^log_e; PMTs are the selected hit PMTs only, each with the first-hit density conditioned on
    a hit in the window, −ln λ(t) + Λ(t) + ln(1 − e^{−Λ(t_hi)}).

    ``model`` :data:`MODEL_COMPLETE`: x = (vx, vy, vz, t0, α, β, ln E), direction
    u = (u0 + α f1 + β f2)/|…|, the Rädel–Wiebusch angular profile; all PMTs of ``pos``: a hit
    PMT (finite ``thit``) adds the conditional first-hit term above plus the Poisson term of
    its charge ``qhit`` in the window, Λ(t_hi) − n ln Λ(t_hi); a PMT without a hit in the
    window adds Λ(t_hi) (the Poisson probability of no pe and no background hit).

    λ(t) = μ f(t_res|r) + r_b and Λ(t) = ∫_{t_lo} λ; μ = E × pe per GeV; f is the muon's
    time-residual table taken at the distance r·sinθ_c that gives the same photon path.
    Returns the sum; ``out`` receives the terms.
    """
    vx, vy, vz, t0 = x[0], x[1], x[2], x[3]
    if model == MODEL_COMPLETE:
        ux = u0[0] + x[4] * f1[0] + x[5] * f2[0]
        uy = u0[1] + x[4] * f1[1] + x[5] * f2[1]
        uz = u0[2] + x[4] * f1[2] + x[5] * f2[2]
        nrm = math.sqrt(ux * ux + uy * uy + uz * uz)
        ux /= nrm
        uy /= nrm
        uz /= nrm
        energy = math.exp(x[6])
        iso = False
    else:
        ux, uy, uz = u0[0], u0[1], u0[2]
        energy = math.exp(log_e)
        iso = True
    w = length_per_gev / z_mid.shape[0]
    total = 0.0
    for i in range(pos.shape[0]):
        s = 0.0
        r0 = 0.0
        for j in range(z_mid.shape[0]):
            m, r = _bin_npe(pos[i, 0], pos[i, 1], pos[i, 2], pdir[i, 0], pdir[i, 1], pdir[i, 2], vx, vy, vz,
                            ux, uy, uz, z_mid[j] if not iso else 0.0, r_floor, y0, ydd, ytab, a0, adc, atab,
                            ang0, angd, angpdf, iso)
            s += m
            if j == 0:
                r0 = math.sqrt((pos[i, 0] - vx) ** 2 + (pos[i, 1] - vy) ** 2 + (pos[i, 2] - vz) ** 2)
        mu = energy * s * w
        deff = r0 * sin_c
        flo = _table_t(cdf, deff, 0.0, t_lo, d0, dd, c0, dc, tt0, dt)
        fhi = _table_t(cdf, deff, 0.0, t_hi, d0, dd, c0, dc, tt0, dt)
        big_w = mu * (fhi - flo) + rate_bg * (t_hi - t_lo)
        if np.isnan(thit[i]):
            term = big_w
        else:
            tr = thit[i] - t0 - r0 / cn
            f = _table_t(pdf, deff, 0.0, tr, d0, dd, c0, dc, tt0, dt)
            trc = min(max(tr, t_lo), t_hi)
            big_l = mu * (_table_t(cdf, deff, 0.0, trc, d0, dd, c0, dc, tt0, dt) - flo) + rate_bg * (trc - t_lo)
            term = -math.log(mu * f + rate_bg) + big_l + math.log(-math.expm1(-big_w))
            if model == MODEL_COMPLETE:
                # the charge of the PMT in the window: Poisson(n | Λ(t_hi)) (continuous in n;
                # the constant ln Γ(n + 1) left out); a saturated charge (−q) is censored: only
                # penalised while Λ < q (see km3sim.reco._kernels.fit_brightness)
                q = qhit[i]
                if q >= 0.0:
                    term += big_w - q * math.log(big_w)
                elif big_w < -q:
                    term += big_w + q * math.log(big_w) - (-q + q * math.log(-q))
        out[i] = term
        total += term
    return total


@nb.njit(cache=True)
def _scores(x, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg, t_lo, t_hi,
            r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf,
            steps, base, tp):
    """Gradient and BHHH matrix of the per-PMT terms by forward differences from ``base``
    (the terms at x)."""
    npar = x.shape[0]
    n = pos.shape[0]
    jac = np.empty((n, npar))
    for a in range(npar):
        xp = x.copy()
        xp[a] += steps[a]
        shower_terms(xp, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg, t_lo,
                     t_hi, r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0, dt, npe_d,
                     pdf, cdf, tp)
        for i in range(n):
            jac[i, a] = (tp[i] - base[i]) / steps[a]
    g = np.zeros(npar)
    h = np.zeros((npar, npar))
    for i in range(n):
        for a in range(npar):
            g[a] += jac[i, a]
            for b in range(a, npar):
                h[a, b] += jac[i, a] * jac[i, b]
    for a in range(npar):
        for b in range(a):
            h[a, b] = h[b, a]
    return g, h


@nb.njit(cache=True)
def shower_fit(x0, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg, t_lo, t_hi,
               r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf,
               steps, max_iter):
    """Minimise :func:`shower_terms` (quasi-Newton with Levenberg–Marquardt damping, BHHH start
    and BFGS updates as :func:`km3sim.reco._kernels.gandalf_fit`, forward-difference gradients).

    Returns (x, −ln L, iterations, ok).
    """
    npar = x0.shape[0]
    n = pos.shape[0]
    x = x0.copy()
    buf = np.empty(n)
    tp = np.empty(n)
    f = shower_terms(x, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg, t_lo,
                     t_hi, r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0, dt, npe_d,
                     pdf, cdf, buf)
    if not np.isfinite(f):
        return x, f, 0, False
    g, h = _scores(x, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg, t_lo, t_hi,
                   r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf,
                   steps, buf, tp)
    floor = np.empty(npar)
    for a in range(npar):
        floor[a] = 1e-6 / (steps[a] * steps[a])
    lam = 1e-3
    it = 0
    for it in range(max_iter):
        accepted = False
        fn = f
        step = np.zeros(npar)
        for inner in range(16):
            a_mat = h.copy()
            for a in range(npar):
                a_mat[a, a] += lam * max(h[a, a], floor[a]) + floor[a]
            step, good = _solve_sym(a_mat, -g)
            if good:
                xn = x + step
                fn = shower_terms(xn, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid,
                                  rate_bg, t_lo, t_hi, r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf,
                                  d0, dd, c0, dc, tt0, dt, npe_d, pdf, cdf, buf)
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
        # buf holds the terms of the accepted step
        gn, hb = _scores(x, model, u0, f1, f2, log_e, pos, pdir, thit, qhit, cn, sin_c, length_per_gev, z_mid, rate_bg,
                         t_lo, t_hi, r_floor, y0, ydd, ytab, a0, adc, atab, ang0, angd, angpdf, d0, dd, c0, dc, tt0,
                         dt, npe_d, pdf, cdf, steps, buf, tp)
        y = gn - g
        sy = 0.0
        for a in range(npar):
            sy += step[a] * y[a]
        hs = h @ step
        shs = 0.0
        for a in range(npar):
            shs += step[a] * hs[a]
        if sy > 1e-12 and shs > 1e-12:
            for a in range(npar):
                for b in range(npar):
                    h[a, b] += y[a] * y[b] / sy - hs[a] * hs[b] / shs
        else:
            h = hb
        g = gn
    return x, f, it + 1, True


