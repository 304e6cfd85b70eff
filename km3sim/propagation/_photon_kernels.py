"""numba kernels of the photon tracker (reference light simulation).

Arrays, scalars and seeds only; see :mod:`km3sim.propagation.photons` for the Python API and
PHYSICS.md §5 (emission), §6 (absorption, Kopelevich scattering, p0.0075 phase function) and
§7 (DOM, PMT area, QE, acceptance) for the models.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform

#: Emitter kinds understood by :func:`track_photons`.
EMITTER_MUON = 0
EMITTER_SHOWER = 1
EMITTER_ISOTROPIC = 2

#: Columns of the detected-photon record returned by :func:`track_photons`.
N_OUT_COLUMNS = 11
(
    COL_EVENT, COL_EMITTER, COL_DOM, COL_PMT, COL_TIME, COL_WAVELENGTH, COL_N_SCATTER,
    COL_PATH, COL_DIR_X, COL_DIR_Y, COL_DIR_Z,
) = range(N_OUT_COLUMNS)

_INV_C = 1.0 / C_LIGHT
_TWO_PI = 2.0 * math.pi


@nb.njit(cache=True, inline="always")
def _interp_uniform(x, x0, inv_dx, ys):
    """Linear interpolation on the uniform grid x0 + i/inv_dx, clamped to the ends."""
    n = ys.shape[0]
    u = (x - x0) * inv_dx
    if u <= 0.0:
        return ys[0]
    i = int(u)
    if i >= n - 1:
        return ys[n - 1]
    f = u - i
    return ys[i] + f * (ys[i + 1] - ys[i])


@nb.njit(cache=True, inline="always")
def _random_azimuth(s):
    """(cos φ, sin φ) of a uniform azimuth, by rejection from the unit disc (no trigonometry)."""
    while True:
        x = 2.0 * rng_uniform(s) - 1.0
        y = 2.0 * rng_uniform(s) - 1.0
        r2 = x * x + y * y
        if 0.0 < r2 <= 1.0:
            return (x * x - y * y) / r2, 2.0 * x * y / r2


@nb.njit(cache=True, inline="always")
def rotate_direction(ux, uy, uz, cos_t, cos_p, sin_p):
    """Unit vector at polar angle θ (cos_t) and azimuth φ about the unit vector u."""
    sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    if abs(uz) > 0.99999999:
        sgn = 1.0 if uz > 0.0 else -1.0
        return sin_t * cos_p, sin_t * sin_p, sgn * cos_t
    den = math.sqrt(1.0 - uz * uz)
    nx = sin_t * (ux * uz * cos_p - uy * sin_p) / den + ux * cos_t
    ny = sin_t * (uy * uz * cos_p + ux * sin_p) / den + uy * cos_t
    nz = -sin_t * cos_p * den + uz * cos_t
    norm = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx * norm, ny * norm, nz * norm


@nb.njit(cache=True, inline="always")
def _cbrt(x):
    return math.copysign(abs(x) ** (1.0 / 3.0), x)


@nb.njit(cache=True)
def sample_phase_function(s, f, g, a):
    """cos θ of a scattering from the p0.0075 phase function (PHYSICS.md §6.3).

    With probability f the Rayleigh-like part ∝ 1 + a·x² (inverse CDF: the real root of
    x + a·x³/3 = (2u − 1)(1 + a/3), Cardano), otherwise Henyey–Greenstein with asymmetry g
    (closed form cosθ = [1 + g² − ((1 − g²)/(1 − g + 2gu))²]/(2g)).
    """
    u = rng_uniform(s)
    if rng_uniform(s) < f:
        c = (2.0 * u - 1.0) * (1.0 + a / 3.0)
        p = 3.0 / a
        q = -3.0 * c / a
        disc = math.sqrt(0.25 * q * q + p * p * p / 27.0)
        x = _cbrt(-0.5 * q + disc) + _cbrt(-0.5 * q - disc)
        return min(1.0, max(-1.0, x))
    if g == 0.0:
        return 2.0 * u - 1.0
    t = (1.0 - g * g) / (1.0 - g + 2.0 * g * u)
    x = (1.0 + g * g - t * t) / (2.0 * g)
    return min(1.0, max(-1.0, x))


@nb.njit(cache=True)
def sample_gamma(s, shape):
    """Gamma(shape, 1) deviate: Marsaglia & Tsang, ACM TOMS 26 (2000) 363 (shape < 1 by boosting)."""
    if shape < 1.0:
        u = rng_uniform(s)
        return sample_gamma(s, shape + 1.0) * (1.0 - u) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = rng_normal(s)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng_uniform(s)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v
        if math.log(1.0 - u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v


@nb.njit(cache=True, inline="always")
def _sphere_hit(px, py, pz, dx, dy, dz, cx, cy, cz, r2):
    """Path length to the entry into the sphere (c, √r2), or -1 if the ray misses it / starts inside."""
    vx = cx - px
    vy = cy - py
    vz = cz - pz
    b = vx * dx + vy * dy + vz * dz
    if b <= 0.0:
        return -1.0
    c2 = vx * vx + vy * vy + vz * vz - r2
    if c2 <= 0.0:
        return -1.0
    disc = b * b - c2
    if disc < 0.0:
        return -1.0
    return b - math.sqrt(disc)


@nb.njit(cache=True)
def first_dom_hit(px, py, pz, dx, dy, dz, s_max, dom_pos, r2, gx0, gy0, inv_cell, nx, ny, cell_start, cell_doms,
                  zlo, zhi):
    """First DOM sphere hit by the segment p + s·d, 0 ≤ s ≤ s_max.

    DOMs are binned in a 2-D grid of vertical columns (cells of 1/inv_cell m in x and y; a DOM
    is listed in every cell its sphere overlaps); the segment's projection is walked through
    the cells with a 2-D DDA (Amanatides & Woo, Eurographics 1987) and only the DOMs of the
    visited cells are tested. zlo/zhi bound the DOM spheres in z.

    Returns
    -------
    (dom, s) : (int, float)
        Index of the DOM and path length to its surface, or (-1, s_max).
    """
    # clip to the z slab of the DOMs and to the grid's xy box
    s0 = 0.0
    s1 = s_max
    if dz != 0.0:
        ta = (zlo - pz) / dz
        tb = (zhi - pz) / dz
        if ta > tb:
            ta, tb = tb, ta
        s0 = max(s0, ta)
        s1 = min(s1, tb)
    elif pz < zlo or pz > zhi:
        return -1, s_max
    cell = 1.0 / inv_cell
    xlo = gx0
    xhi = gx0 + nx * cell
    ylo = gy0
    yhi = gy0 + ny * cell
    if dx != 0.0:
        ta = (xlo - px) / dx
        tb = (xhi - px) / dx
        if ta > tb:
            ta, tb = tb, ta
        s0 = max(s0, ta)
        s1 = min(s1, tb)
    elif px < xlo or px > xhi:
        return -1, s_max
    if dy != 0.0:
        ta = (ylo - py) / dy
        tb = (yhi - py) / dy
        if ta > tb:
            ta, tb = tb, ta
        s0 = max(s0, ta)
        s1 = min(s1, tb)
    elif py < ylo or py > yhi:
        return -1, s_max
    if s0 > s1:
        return -1, s_max
    # starting cell
    sx = px + s0 * dx
    sy = py + s0 * dy
    ix = int((sx - gx0) * inv_cell)
    iy = int((sy - gy0) * inv_cell)
    ix = min(max(ix, 0), nx - 1)
    iy = min(max(iy, 0), ny - 1)
    # DDA set-up
    big = 1e300
    if dx > 0.0:
        step_x = 1
        t_next_x = (gx0 + (ix + 1) * cell - px) / dx
        dt_x = cell / dx
    elif dx < 0.0:
        step_x = -1
        t_next_x = (gx0 + ix * cell - px) / dx
        dt_x = -cell / dx
    else:
        step_x = 0
        t_next_x = big
        dt_x = big
    if dy > 0.0:
        step_y = 1
        t_next_y = (gy0 + (iy + 1) * cell - py) / dy
        dt_y = cell / dy
    elif dy < 0.0:
        step_y = -1
        t_next_y = (gy0 + iy * cell - py) / dy
        dt_y = -cell / dy
    else:
        step_y = 0
        t_next_y = big
        dt_y = big
    best = -1
    best_s = s1
    while True:
        c = iy * nx + ix
        for j in range(cell_start[c], cell_start[c + 1]):
            k = cell_doms[j]
            sh = _sphere_hit(px, py, pz, dx, dy, dz, dom_pos[k, 0], dom_pos[k, 1], dom_pos[k, 2], r2)
            if 0.0 <= sh <= best_s:
                best = k
                best_s = sh
        # a DOM listed only in later cells is entered after this cell's exit
        s_out = min(t_next_x, t_next_y)
        if s_out >= best_s or s_out >= s1:
            break
        if t_next_x < t_next_y:
            ix += step_x
            t_next_x += dt_x
            if ix < 0 or ix >= nx:
                break
        else:
            iy += step_y
            t_next_y += dt_y
            if iy < 0 or iy >= ny:
                break
    if best < 0:
        return -1, s_max
    return best, best_s


@nb.njit(cache=True, inline="always")
def _box_distance(px, py, pz, blo, bhi):
    ddx = max(0.0, blo[0] - px, px - bhi[0])
    ddy = max(0.0, blo[1] - py, py - bhi[1])
    ddz = max(0.0, blo[2] - pz, pz - bhi[2])
    return math.sqrt(ddx * ddx + ddy * ddy + ddz * ddz)


@nb.njit(cache=True)
def _grow(out, n_needed):
    if n_needed <= out.shape[0]:
        return out
    new = np.empty((max(2 * out.shape[0], n_needed), out.shape[1]), dtype=out.dtype)
    new[: out.shape[0]] = out
    return new


@nb.njit(cache=True)
def track_photons(
    seeds, event_offsets,
    em_kind, em_pos, em_dir, em_time, em_length, em_energy, em_energy_lost, em_mean_photons, em_rel_sigma,
    em_long_shape, em_long_scale, exact_count,
    lam0, inv_dlam, inv_cdf_lambda, n_phase_tab, n_group_tab, inv_labs_tab, inv_lscat_tab,
    ang_inv_cdf,
    secondaries, rw_lambda, rw_kappa,
    absorb, scatter, phase_f, phase_g, phase_a, max_distance,
    dom_pos, dom_radius, dom_pmt_start, pmt_dir, pmt_ok, detect_coef, acc_c0, acc_inv_dc, acc_table,
    gx0, gy0, inv_cell, nx, ny, cell_start, cell_doms, box_lo, box_hi,
):
    """Track Cherenkov photons of emitters through water to the DOMs.

    Photon source (PHYSICS.md §5): the number of photons of an emitter is
    Poisson(m·max(0, 1 + σ_rel·N(0,1))) (``em_mean_photons`` m, ``em_rel_sigma``; exactly
    round(m) with ``exact_count``); the wavelength is drawn from the tabulated inverse CDF
    (normally Frank–Tamm × QE, so every tracked photon is a potential photo-electron). Kinds:

    * muon (0): emission point uniform on [0, length] along the track, time + z/c; direction on
      the Cherenkov cone cosθ = 1/n_ph(λ) (β = 1); with ``secondaries`` the Rädel–Wiebusch
      extra light ΔL/L(E(z)) (PHYSICS.md §5.3) by thinning: ``em_mean_photons`` must already
      include the factor 1 + ΔL/L(E at the start);
    * shower (1): depth z = Gamma(``em_long_shape``)·``em_long_scale`` along the axis, time
      + z/c; cosθ to the axis from the tabulated inverse CDF of the angular profile (§5.4);
    * isotropic (2): a point source at pos (for tests and light tables).

    Propagation (§6): the photon's absorption path is Exp(λ_abs(λ)) (``absorb``); between
    scatterings it flies Exp(λ_s(λ)) (``scatter``, Kopelevich length) and is deflected by the
    p0.0075 phase function; it travels at c/n_g(λ). It stops when absorbed, when it is farther
    than ``max_distance`` from its emission point (or cannot reach the DOM bounding box any
    more), or when it enters a DOM sphere (radius ``dom_radius``, found with the column grid of
    :func:`first_dom_hit`). A photon entering a DOM with direction w is detected by PMT k with
    probability ``detect_coef``·A(w·a_k) (``detect_coef`` = A_pmt/(πR²), §7.2), one PMT at most,
    only if ``pmt_ok``; this is the effective-area model of the direct-light stage, so both agree
    where scattering is off.

    Returns
    -------
    out : float64 array (n_detected, N_OUT_COLUMNS)
        One row per detected photon: event index, emitter index, DOM index, PMT index, arrival
        time at the DOM surface [ns], wavelength [nm], number of scatterings, path length [m],
        direction at the DOM (3).
    n_emitted : int64 array (n_emitters,)
        Photons emitted (tracked) per emitter.
    """
    n_events = seeds.shape[0]
    n_em = em_kind.shape[0]
    n_emitted = np.zeros(n_em, dtype=np.int64)
    out = np.empty((1024, N_OUT_COLUMNS), dtype=np.float64)
    n_out = 0
    r2 = dom_radius * dom_radius
    n_inv_l = inv_cdf_lambda.shape[0]
    n_inv_a = ang_inv_cdf.shape[0]
    zlo = box_lo[2]
    zhi = box_hi[2]
    for e in range(n_events):
        state = rng_new(seeds[e])
        for m in range(event_offsets[e], event_offsets[e + 1]):
            kind = em_kind[m]
            mean = em_mean_photons[m]
            if em_rel_sigma[m] > 0.0:
                mean *= max(0.0, 1.0 + em_rel_sigma[m] * rng_normal(state))
            if exact_count:
                n_ph = int(mean + 0.5)
            else:
                n_ph = rng_poisson(state, mean)
            n_emitted[m] = n_ph
            ex = em_pos[m, 0]
            ey = em_pos[m, 1]
            ez = em_pos[m, 2]
            ux = em_dir[m, 0]
            uy = em_dir[m, 1]
            uz = em_dir[m, 2]
            length = em_length[m]
            # thinning of the secondaries' light along a muon: accept ∝ 1 + ΔL/L(E(z))
            sec_max = 1.0
            if kind == EMITTER_MUON and secondaries:
                sec_max = 1.0 + max(0.0, rw_lambda + rw_kappa * math.log(max(em_energy[m], MUON_MASS)))
            for _ in range(n_ph):
                # wavelength and its optical properties
                u = rng_uniform(state) * (n_inv_l - 1)
                i = int(u)
                if i >= n_inv_l - 1:
                    lam = inv_cdf_lambda[n_inv_l - 1]
                else:
                    lam = inv_cdf_lambda[i] + (u - i) * (inv_cdf_lambda[i + 1] - inv_cdf_lambda[i])
                # emission point, time and direction
                if kind == EMITTER_MUON:
                    z = length * rng_uniform(state)
                    if secondaries:
                        e_z = em_energy[m] - em_energy_lost[m] * (z / length) if length > 0.0 else em_energy[m]
                        extra = max(0.0, rw_lambda + rw_kappa * math.log(max(e_z, MUON_MASS)))
                        if rng_uniform(state) * sec_max > 1.0 + extra:
                            n_emitted[m] -= 1
                            continue
                    cos_t = 1.0 / _interp_uniform(lam, lam0, inv_dlam, n_phase_tab)
                elif kind == EMITTER_SHOWER:
                    z = sample_gamma(state, em_long_shape[m]) * em_long_scale[m]
                    v = rng_uniform(state) * (n_inv_a - 1)
                    j = int(v)
                    if j >= n_inv_a - 1:
                        cos_t = ang_inv_cdf[n_inv_a - 1]
                    else:
                        cos_t = ang_inv_cdf[j] + (v - j) * (ang_inv_cdf[j + 1] - ang_inv_cdf[j])
                else:
                    z = 0.0
                    cos_t = 2.0 * rng_uniform(state) - 1.0
                cp, sp = _random_azimuth(state)
                dx, dy, dz = rotate_direction(ux, uy, uz, cos_t, cp, sp)
                ox = ex + z * ux
                oy = ey + z * uy
                oz = ez + z * uz
                px = ox
                py = oy
                pz = oz
                t0 = em_time[m] + z * _INV_C
                ng = _interp_uniform(lam, lam0, inv_dlam, n_group_tab)
                if absorb:
                    ia = _interp_uniform(lam, lam0, inv_dlam, inv_labs_tab)
                    budget = -math.log(1.0 - rng_uniform(state)) / ia if ia > 0.0 else 1e300
                else:
                    budget = 1e300
                inv_ls = _interp_uniform(lam, lam0, inv_dlam, inv_lscat_tab) if scatter else 0.0
                path = 0.0
                n_sc = 0
                while True:
                    remaining = budget - path
                    reach = min(remaining, max_distance)
                    if _box_distance(px, py, pz, box_lo, box_hi) > reach:
                        break
                    if inv_ls > 0.0:
                        step = -math.log(1.0 - rng_uniform(state)) / inv_ls
                    else:
                        step = 1e300
                    s_max = min(step, reach)
                    dom, s_hit = first_dom_hit(px, py, pz, dx, dy, dz, s_max, dom_pos, r2, gx0, gy0, inv_cell,
                                               nx, ny, cell_start, cell_doms, zlo, zhi)
                    if dom >= 0:
                        path += s_hit
                        # choose the PMT (effective-area model), at most one
                        w = rng_uniform(state)
                        acc = 0.0
                        for k in range(dom_pmt_start[dom], dom_pmt_start[dom + 1]):
                            if not pmt_ok[k]:
                                continue
                            c = dx * pmt_dir[k, 0] + dy * pmt_dir[k, 1] + dz * pmt_dir[k, 2]
                            acc += detect_coef * _interp_uniform(c, acc_c0, acc_inv_dc, acc_table)
                            if w < acc:
                                out = _grow(out, n_out + 1)
                                out[n_out, COL_EVENT] = e
                                out[n_out, COL_EMITTER] = m
                                out[n_out, COL_DOM] = dom
                                out[n_out, COL_PMT] = k
                                out[n_out, COL_TIME] = t0 + path * ng * _INV_C
                                out[n_out, COL_WAVELENGTH] = lam
                                out[n_out, COL_N_SCATTER] = n_sc
                                out[n_out, COL_PATH] = path
                                out[n_out, COL_DIR_X] = dx
                                out[n_out, COL_DIR_Y] = dy
                                out[n_out, COL_DIR_Z] = dz
                                n_out += 1
                                break
                        break
                    if step >= reach:
                        break  # absorbed or beyond the maximum distance before the next scattering
                    path += step
                    px += step * dx
                    py += step * dy
                    pz += step * dz
                    rx = px - ox
                    ry = py - oy
                    rz = pz - oz
                    if rx * rx + ry * ry + rz * rz > max_distance * max_distance:
                        break
                    cs = sample_phase_function(state, phase_f, phase_g, phase_a)
                    cp, sp = _random_azimuth(state)
                    dx, dy, dz = rotate_direction(dx, dy, dz, cs, cp, sp)
                    n_sc += 1
    return out[:n_out].copy(), n_emitted


@nb.njit(cache=True)
def sample_phase_function_many(seed, n, f, g, a):
    """n cosines from :func:`sample_phase_function` with one xoshiro256** stream (tests, tables)."""
    s = rng_new(seed)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = sample_phase_function(s, f, g, a)
    return out
