"""numba kernels of the photon tracker (reference light simulation).

Arrays, scalars and seeds only; see :mod:`km3sim.propagation.photons` for the Python API and
PHYSICS.md §5 (emission), §6 (absorption, Kopelevich scattering, p0.0075 phase function) and
§7 (DOM, PMT area, QE, acceptance) for the models.

Speed notes (target 5·10⁶ tracked photons/s per core, ARCA water, 115 DUs): the photon loop
(:func:`_track_events`) never re-binds an array, because numba reference-counts re-bound arrays
on every loop iteration with atomic operations; when the output is full it returns where it
stopped and goes on after the caller enlarged it. The random-number state of the photon loop is held in
registers (the xoshiro256** of :mod:`km3sim.random`, same sequence), and the DOM-grid walk
multiplies by reciprocals of the direction instead of dividing. Helpers that take arrays are
plain (not ``inline="always"``) functions: numba's IR inlining re-binds their array arguments,
which costs reference counting on every call (LLVM still inlines them).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.propagation.secondaries import secondary_max, secondary_ratios
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform, xoshiro_u01

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


# ------------------------------------------------------------------------------ state in registers (km3sim.random.xoshiro_*)


@nb.njit(cache=True)
def _azimuth_r(s0, s1, s2, s3):
    """:func:`_random_azimuth` with the state in registers."""
    while True:
        x, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        y, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        x = 2.0 * x - 1.0
        y = 2.0 * y - 1.0
        r2 = x * x + y * y
        if 0.0 < r2 <= 1.0:
            inv = 1.0 / r2
            return (x * x - y * y) * inv, 2.0 * x * y * inv, s0, s1, s2, s3


@nb.njit(cache=True)
def _phase_r(s0, s1, s2, s3, f, g, a):
    """:func:`sample_phase_function` (same formulas, same draws) with the state in registers."""
    u, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
    w, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
    if w < f:
        c = (2.0 * u - 1.0) * (1.0 + a / 3.0)
        p = 3.0 / a
        q = -3.0 * c / a
        disc = math.sqrt(0.25 * q * q + p * p * p / 27.0)
        x = _cbrt(-0.5 * q + disc) + _cbrt(-0.5 * q - disc)
        return min(1.0, max(-1.0, x)), s0, s1, s2, s3
    if g == 0.0:
        return 2.0 * u - 1.0, s0, s1, s2, s3
    t = (1.0 - g * g) / (1.0 - g + 2.0 * g * u)
    x = (1.0 + g * g - t * t) / (2.0 * g)
    return min(1.0, max(-1.0, x)), s0, s1, s2, s3


@nb.njit(cache=True)
def _gamma_r(s0, s1, s2, s3, shape, spare):
    """:func:`sample_gamma` (Marsaglia & Tsang) with the state in registers. The polar method
    makes normal deviates in pairs: the second one is kept in ``spare`` (NaN: none) for the next
    call. Returns (deviate, s0, s1, s2, s3, spare)."""
    boost = 1.0
    if shape < 1.0:
        u, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        boost = (1.0 - u) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        if spare == spare:
            x = spare
            spare = math.nan
        else:
            while True:
                a, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                b, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                a = 2.0 * a - 1.0
                b = 2.0 * b - 1.0
                q = a * a + b * b
                if 0.0 < q < 1.0:
                    f = math.sqrt(-2.0 * math.log(q) / q)
                    x = a * f
                    spare = b * f
                    break
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        u = 1.0 - u  # in (0, 1]; the same u in both tests
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v * boost, s0, s1, s2, s3, spare
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v * boost, s0, s1, s2, s3, spare


@nb.njit(cache=True)
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
def _rotate_unit(ux, uy, uz, cos_t, cos_p, sin_p):
    """:func:`rotate_direction` without the final renormalisation: the result of rotating a unit
    vector is a unit vector up to rounding (relative 1e-16 per rotation)."""
    sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    if abs(uz) > 0.99999999:
        sgn = 1.0 if uz > 0.0 else -1.0
        return sin_t * cos_p, sin_t * sin_p, sgn * cos_t
    den = math.sqrt(1.0 - uz * uz)
    a = sin_t / den
    return (a * (ux * uz * cos_p - uy * sin_p) + ux * cos_t, a * (uy * uz * cos_p + ux * sin_p) + uy * cos_t,
            -sin_t * cos_p * den + uz * cos_t)


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
        u = 1.0 - rng_uniform(s)  # in (0, 1]; the same u in both tests (squeeze and log test)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
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
    visited cells are tested, skipping empty space by the cells' clearance
    (:func:`grid_clearance`, computed here on every call: use the tracker for many rays).
    zlo/zhi bound the DOM spheres in z.

    Returns
    -------
    (dom, s) : (int, float)
        Index of the DOM and path length to its surface, or (-1, s_max).
    """
    idx = 1.0 / dx if dx != 0.0 else 0.0
    idy = 1.0 / dy if dy != 0.0 else 0.0
    idz = 1.0 / dz if dz != 0.0 else 0.0
    clear = grid_clearance(cell_start, cell_doms, dom_pos, math.sqrt(r2), gx0, gy0, 1.0 / inv_cell, nx, ny)
    return _first_dom_hit_r(px, py, pz, dx, dy, dz, idx, idy, idz, _jump_per_cell(dx, dy, 1.0), s_max,
                            dom_pos, r2, math.sqrt(r2), gx0, gy0, inv_cell, 1.0 / inv_cell, nx, ny, cell_start,
                            cell_doms, clear, cells_sorted_by_height(cell_start, cell_doms, dom_pos), zlo, zhi)


@nb.njit(cache=True)
def cells_sorted_by_height(cell_start, cell_doms, dom_pos):
    """Whether the DOMs of every grid cell are listed by increasing height."""
    for c in range(cell_start.shape[0] - 1):
        for j in range(cell_start[c] + 1, cell_start[c + 1]):
            if dom_pos[cell_doms[j], 2] < dom_pos[cell_doms[j - 1], 2]:
                return False
    return True


@nb.njit(cache=True)
def grid_clearance(cell_start, cell_doms, dom_pos, radius, gx0, gy0, cell, nx, ny):
    """Clearance of each cell of the DOM grid [m]: the x-y distance from the cell's rectangle to
    the nearest DOM sphere (0 for cells that list a DOM).

    From any point of a cell, a ray can move this far in x-y without touching a DOM sphere (a
    sphere lies within its x-y disc). Computed against the bounding box of the discs of each
    cell that lists DOMs (a lower bound of the distance to its spheres): O(cells × occupied
    cells)."""
    n = nx * ny
    occ = np.empty(n, dtype=np.int64)
    n_occ = 0
    for c in range(n):
        if cell_start[c + 1] > cell_start[c]:
            occ[n_occ] = c
            n_occ += 1
    bb = np.empty((n_occ, 4))
    for o in range(n_occ):
        c = occ[o]
        x0 = 1e300
        x1 = -1e300
        y0 = 1e300
        y1 = -1e300
        for j in range(cell_start[c], cell_start[c + 1]):
            k = cell_doms[j]
            x0 = min(x0, dom_pos[k, 0] - radius)
            x1 = max(x1, dom_pos[k, 0] + radius)
            y0 = min(y0, dom_pos[k, 1] - radius)
            y1 = max(y1, dom_pos[k, 1] + radius)
        bb[o, 0] = x0
        bb[o, 1] = x1
        bb[o, 2] = y0
        bb[o, 3] = y1
    out = np.empty(n)
    for iy in range(ny):
        ry0 = gy0 + iy * cell
        ry1 = ry0 + cell
        for ix in range(nx):
            rx0 = gx0 + ix * cell
            rx1 = rx0 + cell
            best = 1e300
            for o in range(n_occ):
                gx = max(0.0, bb[o, 0] - rx1, rx0 - bb[o, 1])
                gy = max(0.0, bb[o, 2] - ry1, ry0 - bb[o, 3])
                best = min(best, gx * gx + gy * gy)
            out[iy * nx + ix] = math.sqrt(best) * (1.0 - 1e-12)
    for o in range(n_occ):
        out[occ[o]] = 0.0
    return out


@nb.njit(cache=True, inline="always")
def _jump_per_cell(dx, dy, cell):
    """Path length along the direction (dx, dy, ·) per ``cell`` metres of x-y distance."""
    dxy = math.sqrt(dx * dx + dy * dy)
    return cell / dxy if dxy > 0.0 else 1e300


@nb.njit(cache=True, _nrt=False)
def _first_dom_hit_r(px, py, pz, dx, dy, dz, idx, idy, idz, jump, s_max, dom_pos, r2, r, gx0, gy0, inv_cell, cell,
                     nx, ny, cell_start, cell_doms, clear, z_sorted, zlo, zhi):
    """:func:`first_dom_hit` with the reciprocals ``idx, idy, idz`` of the direction (0 where the
    component is 0), the path length per metre of x-y distance ``jump``, the radius r = √r2,
    the cell size and the cells' clearance (:func:`grid_clearance`) given.

    The walk: from an empty cell the ray moves by the cell's clearance (x-y distance
    ``clear[c]`` metres, path ``clear[c]·jump``) if that takes it beyond the cell's exit, else
    to the next cell as the DDA does; in a cell that lists DOMs it tests them first.
    A DOM is tested only if its centre is within r (in z) of the part of the segment inside the
    cell: the entry point into a sphere lies in a cell that lists the DOM, so the first hit is
    still found (``z_sorted``: the DOMs of each cell are listed by height, as
    :func:`~km3sim.propagation.photons.build_dom_grid` makes them, and are searched by bisection). Compiled without the numba runtime (``_nrt=False``: it allocates nothing), so
    that calling it costs no reference counting of its array arguments.
    """
    best = -1
    best_s = s_max
    # clip to the z slab of the DOMs and to the grid's xy box
    s0 = 0.0
    s1 = s_max
    ok = True
    if dz != 0.0:
        ta = (zlo - pz) * idz
        tb = (zhi - pz) * idz
        s0 = max(s0, min(ta, tb))
        s1 = min(s1, max(ta, tb))
    elif pz < zlo or pz > zhi:
        ok = False
    xhi = gx0 + nx * cell
    yhi = gy0 + ny * cell
    if dx != 0.0:
        ta = (gx0 - px) * idx
        tb = (xhi - px) * idx
        s0 = max(s0, min(ta, tb))
        s1 = min(s1, max(ta, tb))
    elif px < gx0 or px > xhi:
        ok = False
    if dy != 0.0:
        ta = (gy0 - py) * idy
        tb = (yhi - py) * idy
        s0 = max(s0, min(ta, tb))
        s1 = min(s1, max(ta, tb))
    elif py < gy0 or py > yhi:
        ok = False
    if ok and s0 <= s1:
        big = 1e300
        step_x = 1 if dx > 0.0 else (-1 if dx < 0.0 else 0)
        step_y = 1 if dy > 0.0 else (-1 if dy < 0.0 else 0)
        margin = r * (1.0 + 1e-9) + 1e-9
        best_s = s1
        s = s0
        locate = True  # the cell of the point at s is to be found from its position
        ix = 0
        iy = 0
        while True:
            if locate:
                ix = min(max(int((px + s * dx - gx0) * inv_cell), 0), nx - 1)
                iy = min(max(int((py + s * dy - gy0) * inv_cell), 0), ny - 1)
            c = iy * nx + ix
            # exit of this cell
            if step_x > 0:
                tx = (gx0 + (ix + 1) * cell - px) * idx
            elif step_x < 0:
                tx = (gx0 + ix * cell - px) * idx
            else:
                tx = big
            if step_y > 0:
                ty = (gy0 + (iy + 1) * cell - py) * idy
            elif step_y < 0:
                ty = (gy0 + iy * cell - py) * idy
            else:
                ty = big
            s_out = min(tx, ty)
            j0 = cell_start[c]
            j1 = cell_start[c + 1]
            if j1 > j0:
                za = pz + s * dz
                zb = pz + min(max(s_out, s), s1) * dz
                z_min = min(za, zb) - margin
                z_max = max(za, zb) + margin
                if z_sorted:  # DOMs of a cell listed by height: start at the first one above z_min
                    lo = j0
                    hi = j1
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if dom_pos[cell_doms[mid], 2] < z_min:
                            lo = mid + 1
                        else:
                            hi = mid
                    j0 = lo
                for j in range(j0, j1):
                    kd = cell_doms[j]
                    zk = dom_pos[kd, 2]
                    if zk < z_min:
                        continue
                    if zk > z_max:
                        if z_sorted:
                            break
                        continue
                    sh = _sphere_hit(px, py, pz, dx, dy, dz, dom_pos[kd, 0], dom_pos[kd, 1], zk, r2)
                    if 0.0 <= sh <= best_s:
                        best = kd
                        best_s = sh
            else:
                # empty cell: the ray may move by the cell's clearance, if that leaves the cell
                s_jump = s + clear[c] * jump
                if s_jump > s_out:
                    s = s_jump
                    if s >= best_s:
                        break
                    locate = True
                    continue
            # a DOM listed only in later cells is entered after this cell's exit
            if s_out >= best_s:
                break
            s = max(s, s_out)
            locate = False
            if tx < ty:
                ix += step_x
                if ix < 0 or ix >= nx:
                    break
            else:
                iy += step_y
                if iy < 0 or iy >= ny:
                    break
        if best < 0:
            best_s = s_max
    return best, best_s


@nb.njit(cache=True)
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
    secondaries, log_e0, dlog_e, rw_tab, cont_tab,
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
      the Cherenkov cone cosθ = 1/n_ph(λ) (β = 1). With ``secondaries`` (tables
      ``log_e0, dlog_e, rw_tab, cont_tab`` of :mod:`km3sim.propagation.secondaries`, E(z) =
      E − ΔE·z/L) the light per metre is 1 + ΔL/L(E(z)) + cont(E(z)) times the bare muon's,
      by thinning: ``em_mean_photons`` must be the bare photons times their maximum along the
      track (:func:`~km3sim.propagation.secondaries.secondary_max`, as
      :meth:`~km3sim.propagation.photons.PhotonTracker.muon_photons` makes it); a photon is
      kept with probability (1 + ΔL/L + cont)/max, on the Cherenkov cone for the parts 1 +
      ΔL/L (Rädel–Wiebusch secondaries below 0.5 GeV, PHYSICS.md §5.3) and with cosθ to the
      muon direction from the shower angular profile for cont (showers of the losses the
      propagation kept continuous, §5.4);
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
    n_lam = n_phase_tab.shape[0]
    if n_lam < 2 or n_group_tab.shape[0] != n_lam or inv_labs_tab.shape[0] != n_lam or inv_lscat_tab.shape[0] != n_lam:
        raise ValueError("the optical tables must share one wavelength grid of at least 2 nodes")
    n_emitted = np.zeros(em_kind.shape[0], dtype=np.int64)
    out = np.empty((4096, N_OUT_COLUMNS), dtype=np.float64)
    clear = grid_clearance(cell_start, cell_doms, dom_pos, dom_radius, gx0, gy0, 1.0 / inv_cell, nx, ny)
    z_sorted = cells_sorted_by_height(cell_start, cell_doms, dom_pos)
    # where the photon loop stopped when the output was full: event, emitter (-1: none),
    # photon, photons rejected so far; generator state; spare normal deviate
    at = np.array([0, -1, 0, 0], dtype=np.int64)
    at_state = np.zeros(4, dtype=np.uint64)
    at_spare = np.zeros(1)
    n_out = 0
    while True:
        done, n_out = _track_events(
            at, at_state, at_spare, n_out, out, n_emitted, clear, z_sorted,
            seeds, event_offsets,
            em_kind, em_pos, em_dir, em_time, em_length, em_energy, em_energy_lost, em_mean_photons, em_rel_sigma,
            em_long_shape, em_long_scale, exact_count,
            lam0, inv_dlam, inv_cdf_lambda, n_phase_tab, n_group_tab, inv_labs_tab, inv_lscat_tab,
            ang_inv_cdf,
            secondaries, log_e0, dlog_e, rw_tab, cont_tab,
            absorb, scatter, phase_f, phase_g, phase_a, max_distance,
            dom_pos, dom_radius, dom_pmt_start, pmt_dir, pmt_ok, detect_coef, acc_c0, acc_inv_dc, acc_table,
            gx0, gy0, inv_cell, nx, ny, cell_start, cell_doms, box_lo, box_hi,
        )
        if done:
            break
        out = _grow(out, 2 * out.shape[0])  # full: more room, then on from the photon it stopped at
    return out[:n_out].copy(), n_emitted


@nb.njit(cache=True)
def _track_events(
    at, at_state, at_spare, n_out, out, n_emitted, clear, z_sorted,
    seeds, event_offsets,
    em_kind, em_pos, em_dir, em_time, em_length, em_energy, em_energy_lost, em_mean_photons, em_rel_sigma,
    em_long_shape, em_long_scale, exact_count,
    lam0, inv_dlam, inv_cdf_lambda, n_phase_tab, n_group_tab, inv_labs_tab, inv_lscat_tab,
    ang_inv_cdf,
    secondaries, log_e0, dlog_e, rw_tab, cont_tab,
    absorb, scatter, phase_f, phase_g, phase_a, max_distance,
    dom_pos, dom_radius, dom_pmt_start, pmt_dir, pmt_ok, detect_coef, acc_c0, acc_inv_dc, acc_table,
    gx0, gy0, inv_cell, nx, ny, cell_start, cell_doms, box_lo, box_hi,
):
    """The photons from event ``at[0]`` on (from emitter ``at[1]``, photon ``at[2]`` if
    ``at[1] >= 0``: a call that stopped there), detected photons written to ``out`` from row
    ``n_out`` (see :func:`track_photons`). Returns (finished, rows written). When ``out`` is
    full it stops before the next photon and records where in ``at``, ``at_state`` (generator)
    and ``at_spare``; the caller enlarges ``out`` and calls again, which goes on exactly as if it
    had not stopped."""
    n_events = seeds.shape[0]
    cap = out.shape[0]
    r2 = dom_radius * dom_radius
    radius = math.sqrt(r2)
    n_lam = n_phase_tab.shape[0]  # the four optical tables share the wavelength grid
    n_inv_l = inv_cdf_lambda.shape[0]
    n_inv_a = ang_inv_cdf.shape[0]
    zlo = box_lo[2]
    zhi = box_hi[2]
    bx0 = box_lo[0]
    by0 = box_lo[1]
    bz0 = box_lo[2]
    bx1 = box_hi[0]
    by1 = box_hi[1]
    bz1 = box_hi[2]
    cell = 1.0 / inv_cell
    max_d2 = max_distance * max_distance
    e_first = at[0]
    m_resume = at[1]
    for e in range(e_first, n_events):
        state = rng_new(seeds[e])
        m_first = event_offsets[e]
        if e == e_first and m_resume >= 0:
            m_first = m_resume
        for m in range(m_first, event_offsets[e + 1]):
            kind = em_kind[m]
            if e == e_first and m == m_resume:  # go on where the last call stopped
                n_ph = n_emitted[m]
                i_first = at[2]
                rejected = at[3]
                s0 = at_state[0]
                s1 = at_state[1]
                s2 = at_state[2]
                s3 = at_state[3]
                spare = at_spare[0]
            else:
                mean = em_mean_photons[m]
                if em_rel_sigma[m] > 0.0:
                    mean *= max(0.0, 1.0 + em_rel_sigma[m] * rng_normal(state))
                if exact_count:
                    n_ph = int(mean + 0.5)
                else:
                    n_ph = rng_poisson(state, mean)
                n_emitted[m] = n_ph
                i_first = 0
                rejected = 0
                s0 = state[0]
                s1 = state[1]
                s2 = state[2]
                s3 = state[3]
                spare = math.nan  # second normal deviate of the polar method (shower depths)
            ex = em_pos[m, 0]
            ey = em_pos[m, 1]
            ez = em_pos[m, 2]
            ux = em_dir[m, 0]
            uy = em_dir[m, 1]
            uz = em_dir[m, 2]
            length = em_length[m]
            long_shape = em_long_shape[m]
            long_scale = em_long_scale[m]
            t_em = em_time[m]
            energy = em_energy[m]
            energy_lost = em_energy_lost[m]
            # thinning of the secondaries' light along a muon: accept ∝ 1 + ΔL/L(E(z)) + cont(E(z))
            sec_max = 1.0
            if kind == EMITTER_MUON and secondaries:
                sec_max = secondary_max(energy, max(energy - energy_lost, MUON_MASS), log_e0, dlog_e, rw_tab, cont_tab)
            for i_ph in range(i_first, n_ph):
                if n_out >= cap:  # output full (a photon gives one row at most): stop here
                    at[0] = e
                    at[1] = m
                    at[2] = i_ph
                    at[3] = rejected
                    at_state[0] = s0
                    at_state[1] = s1
                    at_state[2] = s2
                    at_state[3] = s3
                    at_spare[0] = spare
                    return False, n_out
                # wavelength and its optical properties
                u, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                u *= n_inv_l - 1
                i = int(u)
                if i >= n_inv_l - 1:
                    lam = inv_cdf_lambda[n_inv_l - 1]
                else:
                    lam = inv_cdf_lambda[i] + (u - i) * (inv_cdf_lambda[i + 1] - inv_cdf_lambda[i])
                # position in the wavelength grid of the optical tables (clamped to its ends)
                fl = (lam - lam0) * inv_dlam
                if fl <= 0.0:
                    il = 0
                    fl = 0.0
                elif fl >= n_lam - 1:
                    il = n_lam - 2
                    fl = 1.0
                else:
                    il = int(fl)
                    fl -= il
                # emission point, time and direction
                if kind == EMITTER_MUON:
                    z, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                    z *= length
                    on_cone = True
                    if secondaries:
                        e_z = energy - energy_lost * (z / length) if length > 0.0 else energy
                        rw, cr = secondary_ratios(max(e_z, MUON_MASS), log_e0, dlog_e, rw_tab, cont_tab)
                        v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                        v *= sec_max
                        if v > 1.0 + rw + cr:
                            rejected += 1
                            continue
                        on_cone = v <= 1.0 + rw
                    if on_cone:
                        cos_t = 1.0 / (n_phase_tab[il] + fl * (n_phase_tab[il + 1] - n_phase_tab[il]))
                    else:  # continuous-loss shower light: the shower angular profile about the muon
                        v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                        v *= n_inv_a - 1
                        j = int(v)
                        if j >= n_inv_a - 1:
                            cos_t = ang_inv_cdf[n_inv_a - 1]
                        else:
                            cos_t = ang_inv_cdf[j] + (v - j) * (ang_inv_cdf[j + 1] - ang_inv_cdf[j])
                elif kind == EMITTER_SHOWER:
                    z, s0, s1, s2, s3, spare = _gamma_r(s0, s1, s2, s3, long_shape, spare)
                    z *= long_scale
                    v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                    v *= n_inv_a - 1
                    j = int(v)
                    if j >= n_inv_a - 1:
                        cos_t = ang_inv_cdf[n_inv_a - 1]
                    else:
                        cos_t = ang_inv_cdf[j] + (v - j) * (ang_inv_cdf[j + 1] - ang_inv_cdf[j])
                else:
                    z = 0.0
                    v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                    cos_t = 2.0 * v - 1.0
                cp, sp, s0, s1, s2, s3 = _azimuth_r(s0, s1, s2, s3)
                dx, dy, dz = _rotate_unit(ux, uy, uz, cos_t, cp, sp)
                ox = ex + z * ux
                oy = ey + z * uy
                oz = ez + z * uz
                px = ox
                py = oy
                pz = oz
                t0 = t_em + z * _INV_C
                ng = n_group_tab[il] + fl * (n_group_tab[il + 1] - n_group_tab[il])
                if absorb:
                    ia = inv_labs_tab[il] + fl * (inv_labs_tab[il + 1] - inv_labs_tab[il])
                    v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                    budget = -math.log(1.0 - v) / ia if ia > 0.0 else 1e300
                else:
                    budget = 1e300
                inv_ls = inv_lscat_tab[il] + fl * (inv_lscat_tab[il + 1] - inv_lscat_tab[il]) if scatter else 0.0
                ls = 1.0 / inv_ls if inv_ls > 0.0 else 0.0
                path = 0.0
                n_sc = 0
                idx = 1.0 / dx if dx != 0.0 else 0.0
                idy = 1.0 / dy if dy != 0.0 else 0.0
                idz = 1.0 / dz if dz != 0.0 else 0.0
                jump = _jump_per_cell(dx, dy, 1.0)
                while True:
                    remaining = budget - path
                    reach = min(remaining, max_distance)
                    # distance to the DOMs' bounding box
                    ddx = max(0.0, bx0 - px, px - bx1)
                    ddy = max(0.0, by0 - py, py - by1)
                    ddz = max(0.0, bz0 - pz, pz - bz1)
                    if ddx * ddx + ddy * ddy + ddz * ddz > reach * reach:
                        break
                    if inv_ls > 0.0:
                        v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                        step = -math.log(1.0 - v) * ls
                    else:
                        step = 1e300
                    s_max = min(step, reach)
                    # no DOM within the step's x-y reach from the photon's cell: skip the search
                    gx = (px - gx0) * inv_cell
                    gy = (py - gy0) * inv_cell
                    if 0.0 <= gx < nx and 0.0 <= gy < ny and clear[int(gy) * nx + int(gx)] * jump >= s_max:
                        dom = -1
                        s_hit = s_max
                    else:
                        dom, s_hit = _first_dom_hit_r(px, py, pz, dx, dy, dz, idx, idy, idz, jump, s_max, dom_pos,
                                                      r2, radius, gx0, gy0, inv_cell, cell, nx, ny, cell_start,
                                                      cell_doms, clear, z_sorted, zlo, zhi)
                    if dom >= 0:
                        path += s_hit
                        # choose the PMT (effective-area model), at most one
                        w, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
                        acc = 0.0
                        for k in range(dom_pmt_start[dom], dom_pmt_start[dom + 1]):
                            if not pmt_ok[k]:
                                continue
                            c = dx * pmt_dir[k, 0] + dy * pmt_dir[k, 1] + dz * pmt_dir[k, 2]
                            acc += detect_coef * _interp_uniform(c, acc_c0, acc_inv_dc, acc_table)
                            if w < acc:
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
                    if rx * rx + ry * ry + rz * rz > max_d2:
                        break
                    cs, s0, s1, s2, s3 = _phase_r(s0, s1, s2, s3, phase_f, phase_g, phase_a)
                    cp, sp, s0, s1, s2, s3 = _azimuth_r(s0, s1, s2, s3)
                    dx, dy, dz = _rotate_unit(dx, dy, dz, cs, cp, sp)
                    idx = 1.0 / dx if dx != 0.0 else 0.0
                    idy = 1.0 / dy if dy != 0.0 else 0.0
                    idz = 1.0 / dz if dz != 0.0 else 0.0
                    jump = _jump_per_cell(dx, dy, 1.0)
                    n_sc += 1
            n_emitted[m] -= rejected
            state[0] = s0
            state[1] = s1
            state[2] = s2
            state[3] = s3
    return True, n_out


@nb.njit(cache=True)
def sample_phase_function_many(seed, n, f, g, a):
    """n cosines from :func:`sample_phase_function` with one xoshiro256** stream (tests, tables)."""
    s = rng_new(seed)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = sample_phase_function(s, f, g, a)
    return out
