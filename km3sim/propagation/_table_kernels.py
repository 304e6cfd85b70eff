"""numba kernels of the light tables (building and table-mode hit generation).

Arrays, scalars and seeds only; see :mod:`km3sim.propagation.tables` for the table layout and
the physics, and :mod:`km3sim.propagation.light` for the stage.

Table conventions (all tables; the muon-shower table has the muon table's layout):

* PMT orientation nodes: θ_a = a·π/(n_θ − 1), φ_b = b·π/(n_φ − 1) (uniform, ends included);
  the PMT axis is ``sinθ cosφ e1 + sinθ sinφ e2 + cosθ e3`` in the local frame of the PMT's
  DOM. The light is mirror-symmetric about the (e1, e3) plane, so φ ∈ [0, π].
* Muon frame: e3 = track direction, e1 = unit vector from the track to the DOM (perpendicular
  to the track), e2 = e3 × e1.
* Shower frame: e3 = unit vector from the emission point to the DOM, e1 = the component of the
  shower axis perpendicular to e3 (normalised), e2 = e3 × e1.
* Table cells are flattened: muon ``(i_R·n_θ + a)·n_φ + b``, shower
  ``((i_D·n_cd + j)·n_θ + a)·n_φ + b``; ``shape[cell]`` is the npe of the cell divided by the
  smooth normalisation N(R) (or N(D)), ``cdf[cell]`` the cumulative time-residual distribution
  on the edges ``t_edges``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.propagation._light_kernels import _grow_out
from km3sim.propagation.secondaries import secondary_ratios
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform

_INV_C = 1.0 / C_LIGHT

#: Added to the event seed for the shower light of table mode (own random stream per event, as
#: in direct mode, so that the muon light of an event does not depend on its showers).
TABLE_SHOWER_STREAM = np.uint64(0x7AB1_E5D0_5E5A_11ED)

#: Table mode: DOMs farther from a shower's mean light depth than this factor times the spread
#: of its light points (first to last) see it as one point (error on the direction ≲ 0.05 rad).
FAR_SHOWER_FACTOR = 20.0

#: Scale of the fixed-point (int64) histogram weights of the table builder: integer sums do not
#: depend on the order of the additions, so a table is bit-identical for any number of jobs.
FIXED_POINT_SCALE = float(2**32)


@nb.njit(cache=True, inline="always")
def _interp_uniform(x, x0, inv_dx, ys):
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
def _edge_index(edges, x):
    """Bin k with edges[k] <= x < edges[k+1], clamped to 0 .. len(edges) − 2."""
    n = edges.shape[0]
    if x < edges[1]:
        return 0
    if x >= edges[n - 2]:
        return n - 2
    lo = 1
    hi = n - 2
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if edges[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo


@nb.njit(cache=True, inline="always")
def _node_index(nodes, x):
    """(i, f): x between nodes[i] and nodes[i+1] at fraction f (clamped to the ends)."""
    n = nodes.shape[0]
    if n == 1:
        return 0, 0.0
    if x <= nodes[0]:
        return 0, 0.0
    if x >= nodes[n - 1]:
        return n - 2, 1.0
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if nodes[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo, (x - nodes[lo]) / (nodes[lo + 1] - nodes[lo])


# -------------------------------------------------------------------------------- building
@nb.njit(cache=True, inline="always")
def _shadows(ix, iy, iz, ox, oy, oz, margin, dispersion, line_source, inv_tan_c):
    """Whether the nearer DOM i lies within ``margin`` (+ ``dispersion`` × the radial gap) of the
    direct-light ray to the farther DOM o.

    ``line_source``: light from the z axis (muon): the direct photons to a DOM at radius R_o
    travel in its azimuthal half-plane and cross radius R_i at height z_o − (R_o − R_i)/tanθ_c
    (``dispersion`` covers the spread of θ_c with wavelength); otherwise from the origin
    (shower point) along the radial ray.
    """
    if line_source:
        ri = math.sqrt(ix * ix + iy * iy)
        ro = math.sqrt(ox * ox + oy * oy)
        if ro <= 0.0:
            return False
        f = ri / ro
        ex = ix - ox * f
        ey = iy - oy * f
        ez = iz - (oz - (ro - ri) * inv_tan_c)
        lim = margin + dispersion * (ro - ri)
        return ex * ex + ey * ey + ez * ez < lim * lim
    do = math.sqrt(ox * ox + oy * oy + oz * oz)
    if do <= 0.0:
        return False
    ux = ox / do
    uy = oy / do
    uz = oz / do
    t = ix * ux + iy * uy + iz * uz
    if t <= 0.0:
        return False
    ex = ix - t * ux
    ey = iy - t * uy
    ez = iz - t * uz
    lim = margin + dispersion * (do - t)
    return ex * ex + ey * ey + ez * ez < lim * lim


@nb.njit(cache=True, inline="always")
def _cell_key(x, y, z, inv_cell):
    ix = np.int64(math.floor(x * inv_cell)) + 1048576
    iy = np.int64(math.floor(y * inv_cell)) + 1048576
    iz = np.int64(math.floor(z * inv_cell)) + 1048576
    return (ix << 42) | (iy << 21) | iz


@nb.njit(cache=True, inline="always")
def _ray_key(x, y, z, line_source, inv_tan_c, cell_a, cell_b, n_phi_cells, da, db):
    """Key of the shadow-hash cell (offset by (da, db[, dc])) of a DOM: (azimuth, emission height
    z − R/tanθ_c) for a line source, the direction from the origin for a point source."""
    if line_source:
        r = math.sqrt(x * x + y * y)
        ka = (np.int64(math.floor((math.atan2(y, x) + math.pi) / cell_a)) + da) % n_phi_cells
        kb = np.int64(math.floor((z - r * inv_tan_c) / cell_b)) + db + 1048576
        return (ka << 32) | kb
    d = math.sqrt(x * x + y * y + z * z)
    kx = np.int64(math.floor(x / d / cell_a)) + 1024
    ky = np.int64(math.floor(y / d / cell_a)) + 1024
    kz = np.int64(math.floor(z / d / cell_a)) + 1024 + db
    return (((kx + da // 3 - 1) << 40) | ((ky + da % 3 - 1) << 20) | kz)


@nb.njit(cache=True)
def place_doms(p0, p1, p2, phi0, phi_width, min_sep, seed, max_tries, margin, dispersion, line_source, inv_tan_c,
               ray_check_max, cusp):
    """Place the builder's DOMs at random azimuths in [phi0, phi0 + phi_width], avoiding neighbours and shadows.

    The light of both tables is symmetric about the z axis, so each layer of DOMs can have its
    own azimuth sector: the direct light to a DOM then never crosses the DOMs of other layers.

    Candidates must come in order of increasing distance from the source. Candidate k is, for
    a line source (muon table), radius ``p0[k]`` and height ``p1[k]`` ± 0.4·``p2[k]``; for a
    point source (shower table), distance ``p0[k]`` and cosθ from the z axis at
    y = ``p1[k]`` ± ``p2[k]`` (y = sign(c − ``cusp``)|c − ``cusp``|^0.3, the shower table's variable). A
    position is rejected if a placed DOM is closer than ``min_sep[k]`` (≤ 2 m) or if a placed
    (nearer) DOM shadows it (:func:`_shadows`). DOMs nearer to the source than
    ``ray_check_max`` (≥ 20 m) are checked one by one, the others through a hash of the
    direct-light rays. Up to ``max_tries`` positions are tried, else the candidate is dropped.

    Returns
    -------
    pos : float64 (n_placed, 3)
    placed : bool (n_candidates,)
    """
    n = p0.shape[0]
    pos = np.empty((n, 3), dtype=np.float64)
    placed = np.zeros(n, dtype=np.bool_)
    nxt = np.full(n, -1, dtype=np.int64)
    rnxt = np.full(n, -1, dtype=np.int64)
    head = nb.typed.Dict.empty(key_type=nb.types.int64, value_type=nb.types.int64)
    rhead = nb.typed.Dict.empty(key_type=nb.types.int64, value_type=nb.types.int64)
    inner = np.empty(n, dtype=np.int64)
    n_inner = 0
    cell = 2.0
    inv_cell = 1.0 / cell
    # shadow-hash cells: the largest tolerance of _shadows over the hashed (far) DOMs
    lim_max = margin + dispersion * 400.0
    if line_source:
        cell_a = 2.0 * math.pi / math.floor(2.0 * math.pi / max(lim_max / ray_check_max, 1e-3))
        cell_b = lim_max
        n_phi_cells = np.int64(round(2.0 * math.pi / cell_a))
        n_a, n_b = 3, 3
    else:
        cell_a = 1.2 * lim_max / ray_check_max
        cell_b = cell_a
        n_phi_cells = np.int64(1)
        n_a, n_b = 9, 3
    state = rng_new(seed)
    m = 0
    for k in range(n):
        for _ in range(max_tries):
            ph = phi0[k] + phi_width[k] * rng_uniform(state)
            if line_source:
                x = p0[k] * math.cos(ph)
                y = p0[k] * math.sin(ph)
                z = p1[k] + (rng_uniform(state) - 0.5) * 0.8 * p2[k]
            else:
                yv = p1[k] + (2.0 * rng_uniform(state) - 1.0) * p2[k]
                ct = cusp + math.copysign(abs(yv) ** (1.0 / 0.3), yv)
                ct = min(1.0, max(-1.0, ct))
                st = math.sqrt(max(0.0, 1.0 - ct * ct))
                x = p0[k] * st * math.cos(ph)
                y = p0[k] * st * math.sin(ph)
                z = p0[k] * ct
            bad = False
            sep2 = min_sep[k] * min_sep[k]
            for ddx in range(-1, 2):
                for ddy in range(-1, 2):
                    for ddz in range(-1, 2):
                        key = _cell_key(x + ddx * cell, y + ddy * cell, z + ddz * cell, inv_cell)
                        j = head[key] if key in head else np.int64(-1)
                        while j >= 0 and not bad:
                            dx = x - pos[j, 0]
                            dy = y - pos[j, 1]
                            dz = z - pos[j, 2]
                            if dx * dx + dy * dy + dz * dz < sep2:
                                bad = True
                            j = nxt[j]
            if not bad:
                for q in range(n_inner):
                    j = inner[q]
                    if _shadows(pos[j, 0], pos[j, 1], pos[j, 2], x, y, z, margin, dispersion, line_source, inv_tan_c):
                        bad = True
                        break
            if not bad:
                for da in range(n_a):
                    for db in range(n_b):
                        key = _ray_key(x, y, z, line_source, inv_tan_c, cell_a, cell_b, n_phi_cells,
                                       da - 1 if line_source else da, db - 1)
                        j = rhead[key] if key in rhead else np.int64(-1)
                        while j >= 0 and not bad:
                            if _shadows(pos[j, 0], pos[j, 1], pos[j, 2], x, y, z, margin, dispersion, line_source,
                                        inv_tan_c):
                                bad = True
                            j = rnxt[j]
            if bad:
                continue
            pos[m, 0] = x
            pos[m, 1] = y
            pos[m, 2] = z
            key = _cell_key(x, y, z, inv_cell)
            nxt[m] = head[key] if key in head else np.int64(-1)
            head[key] = m
            if p0[k] < ray_check_max:
                inner[n_inner] = m
                n_inner += 1
            else:
                key = _ray_key(x, y, z, line_source, inv_tan_c, cell_a, cell_b, n_phi_cells, 0, 0)
                if not line_source:
                    key = _ray_key(x, y, z, line_source, inv_tan_c, cell_a, cell_b, n_phi_cells, 4, 0)
                rnxt[m] = rhead[key] if key in rhead else np.int64(-1)
                rhead[key] = m
            placed[k] = True
            m += 1
            break
    return pos[:m].copy(), placed


@nb.njit(cache=True)
def detection_probability(wx, wy, wz, dirs, coef, acc_c0, acc_inv_dc, acc_table):
    """Probability that a photon entering a DOM with direction w is detected by one of its PMTs
    (axes ``dirs``, effective-area coefficient ``coef``): min(1, Σ_k coef·A(w·a_k)), as in the
    photon tracker."""
    p = 0.0
    for k in range(dirs.shape[0]):
        c = wx * dirs[k, 0] + wy * dirs[k, 1] + wz * dirs[k, 2]
        p += coef * _interp_uniform(c, acc_c0, acc_inv_dc, acc_table)
    return min(p, 1.0)


@nb.njit(cache=True)
def fill_histogram(
    hist, n_hits_cell, sum_w, sum_w2, hit_dom, hit_time, hit_dir, hit_weight,
    dom_cell, dom_frame, dom_t_direct,
    fake_dirs, fake_coef, real_coef, acc_c0, acc_inv_dc, acc_table,
    n_theta, n_phi, t_edges,
):
    """Add detected photons of the builder's tracker run to the fixed-point table histogram.

    Each photon entered DOM ``hit_dom[h]`` with direction w and was detected by the builder's
    isotropic set of fake PMTs with the known probability P(w) (:func:`detection_probability`).
    A real KM3NeT PMT with axis a would detect it with probability ``real_coef``·A(w·a) (the
    tracker's effective-area model, PHYSICS.md §7.2), so the photon adds
    ``hit_weight``·real_coef·A(w·a)/P(w) to every orientation node a of its DOM's cell (both
    mirror images averaged) in its time-residual bin. ``hit_weight`` carries the absorption
    weight of the far passes.

    Parameters
    ----------
    hist : int64 (n_cells, n_theta, n_phi, n_t)
        Fixed-point sums (:data:`FIXED_POINT_SCALE`), updated in place.
    n_hits_cell : int64 (n_cells,)
        Number of photons per cell, updated in place.
    sum_w, sum_w2 : int64 (n_cells,)
        Fixed-point sums of the photon weights ``hit_weight``/P(w) and of their squares (the
        effective sample size of a cell is (Σw)²/Σw²), updated in place.
    dom_frame : float64 (n_doms, 3, 3)
        Local frame (e1, e2, e3) of each DOM.
    dom_cell : int64 (n_doms,)
        Table cell of each DOM (−1: not part of the table).
    dom_t_direct : float64 (n_doms,)
        Direct (reference) arrival time at each DOM centre [ns].
    """
    n_t = t_edges.shape[0] - 1
    d_theta = math.pi / (n_theta - 1)
    d_phi = math.pi / (n_phi - 1)
    for h in range(hit_dom.shape[0]):
        d = hit_dom[h]
        cell = dom_cell[d]
        if cell < 0:
            continue
        wx = hit_dir[h, 0]
        wy = hit_dir[h, 1]
        wz = hit_dir[h, 2]
        p = detection_probability(wx, wy, wz, fake_dirs, fake_coef, acc_c0, acc_inv_dc, acc_table)
        if p <= 0.0:
            continue
        base = hit_weight[h] * real_coef / p
        w1 = wx * dom_frame[d, 0, 0] + wy * dom_frame[d, 0, 1] + wz * dom_frame[d, 0, 2]
        w2 = wx * dom_frame[d, 1, 0] + wy * dom_frame[d, 1, 1] + wz * dom_frame[d, 1, 2]
        w3 = wx * dom_frame[d, 2, 0] + wy * dom_frame[d, 2, 1] + wz * dom_frame[d, 2, 2]
        it = _edge_index(t_edges, hit_time[h] - dom_t_direct[d])
        if it >= n_t:
            it = n_t - 1
        n_hits_cell[cell] += 1
        ws = hit_weight[h] / p
        sum_w[cell] += np.int64(ws * FIXED_POINT_SCALE + 0.5)
        sum_w2[cell] += np.int64(ws * ws * FIXED_POINT_SCALE + 0.5)
        for a in range(n_theta):
            th = a * d_theta
            st = math.sin(th)
            ct = math.cos(th)
            for b in range(n_phi):
                ph = b * d_phi
                ax = st * math.cos(ph)
                ay = st * math.sin(ph)
                c1 = w1 * ax + w2 * ay + w3 * ct
                c2 = w1 * ax - w2 * ay + w3 * ct
                v = 0.5 * (_interp_uniform(c1, acc_c0, acc_inv_dc, acc_table)
                           + _interp_uniform(c2, acc_c0, acc_inv_dc, acc_table)) * base
                if v > 0.0:
                    hist[cell, a, b, it] += np.int64(v * FIXED_POINT_SCALE + 0.5)


# -------------------------------------------------------------------------------- lookup
@nb.njit(cache=True, inline="always")
def _acos(x):
    """arccos with |error| < 7e-5 rad (Abramowitz & Stegun 4.4.45, faster than the library call;
    the table's angular nodes are ≥ 10° apart)."""
    ax = abs(x)
    if ax >= 1.0:
        return 0.0 if x > 0.0 else math.pi
    r = math.sqrt(1.0 - ax) * (1.5707288 + ax * (-0.2121144 + ax * (0.0742610 - 0.0187293 * ax)))
    return r if x >= 0.0 else math.pi - r


@nb.njit(cache=True, inline="always")
def _orientation(ax, ay, az, e1x, e1y, e1z, e2x, e2y, e2z, e3x, e3y, e3z, inv_d_theta, inv_d_phi, n_theta, n_phi):
    """Node indices and fractions (a, fa, b, fb) of a PMT axis in a local frame."""
    c3 = ax * e3x + ay * e3y + az * e3z
    c1 = ax * e1x + ay * e1y + az * e1z
    c2 = abs(ax * e2x + ay * e2y + az * e2z)
    if c3 > 1.0:
        c3 = 1.0
    elif c3 < -1.0:
        c3 = -1.0
    ut = _acos(c3) * inv_d_theta
    a = int(ut)
    if a > n_theta - 2:
        a = n_theta - 2
    fa = ut - a
    rho = math.sqrt(c1 * c1 + c2 * c2)
    up = (_acos(c1 / rho) if rho > 0.0 else 0.0) * inv_d_phi
    b = int(up)
    if b > n_phi - 2:
        b = n_phi - 2
    fb = up - b
    return a, fa, b, fb


@nb.njit(cache=True, inline="always")
def _sample_cdf(state, cdf, row, t_edges):
    """Time residual drawn from the binned cumulative distribution ``cdf[row]`` (uniform within a bin)."""
    u = rng_uniform(state)
    n = t_edges.shape[0]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cdf[row, mid] <= u:
            lo = mid
        else:
            hi = mid
    c0 = cdf[row, lo]
    c1 = cdf[row, lo + 1]
    f = (u - c0) / (c1 - c0) if c1 > c0 else rng_uniform(state)
    return t_edges[lo] + f * (t_edges[lo + 1] - t_edges[lo])


@nb.njit(cache=True, inline="always")
def _norm(x, x0, inv_dx, fine, x_max, floor, power):
    """Smooth normalisation N(x) from its fine table; N(x0)·(x0/x)^power below x0 (x ≥ floor)."""
    if x > x_max:
        return 0.0
    if x < x0:
        xx = x if x > floor else floor
        return fine[0] * (x0 / xx) ** power
    return _interp_uniform(x, x0, inv_dx, fine)


@nb.njit(cache=True, inline="always")
def _muon_corners(i, fr, a, fa, b, fb, n_theta, n_phi, shape, cw, ci, offset):
    """Weights (× shape) and cells of the 8 corners around (R, θ, φ) (R between nodes i, i+1 at
    fraction fr) into cw/ci[offset:]; returns their sum."""
    total = 0.0
    k = offset
    for di in range(2):
        wi = fr if di == 1 else 1.0 - fr
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                cell = ((i + di) * n_theta + a + da) * n_phi + b + db
                w = wi * wa * wb * shape[cell]
                cw[k] = w
                ci[k] = cell
                total += w
                k += 1
    return total


@nb.njit(cache=True, inline="always")
def _shower_corners(i, fd, j, fc, a, fa, b, fb, n_cd, n_theta, n_phi, shape, log_shape, cw, ci, offset):
    """Weights and cells of the 16 corners around (D, cosθ_d, θ, φ) into cw/ci[offset:]; returns
    the interpolated shape.

    Linear in D (nodes i, i+1 at fraction fd), θ, φ; log-linear in y = sign(c − c₀)|c − c₀|^0.3
    between the cosθ_d nodes j, j+1 (fraction fc in y; exact for the Rädel–Wiebusch angular
    profile). The two cosθ_d corners of each (D, θ, φ) corner share its log-linear value v in
    the proportions of the linear weights, so that sampling a corner ∝ cw reproduces the
    mixture of the corners' time distributions.
    """
    total = 0.0
    k = offset
    for di in range(2):
        wi = fd if di == 1 else 1.0 - fd
        for da in range(2):
            wa = fa if da == 1 else 1.0 - fa
            for db in range(2):
                wb = fb if db == 1 else 1.0 - fb
                c0 = (((i + di) * n_cd + j) * n_theta + a + da) * n_phi + b + db
                c1 = c0 + n_theta * n_phi
                s0 = shape[c0]
                s1 = shape[c1]
                w = wi * wa * wb
                lin0 = (1.0 - fc) * s0
                lin1 = fc * s1
                lin = lin0 + lin1
                if s0 > 0.0 and s1 > 0.0 and lin > 0.0:
                    v = math.exp((1.0 - fc) * log_shape[c0] + fc * log_shape[c1])
                    g = w * v / lin
                    cw[k] = g * lin0
                    cw[k + 1] = g * lin1
                    total += w * v
                else:
                    cw[k] = w * lin0
                    cw[k + 1] = w * lin1
                    total += w * lin
                ci[k] = c0
                ci[k + 1] = c1
                k += 2
    return total


@nb.njit(cache=True, inline="always")
def _pick(weights, start, n, u):
    """Index in start..start+n−1 where the running sum of ``weights`` first exceeds u."""
    acc = 0.0
    for c in range(start, start + n - 1):
        acc += weights[c]
        if u < acc:
            return c
    return start + n - 1


@nb.njit(cache=True, inline="always")
def _muon_dom_geometry(px, py, pz, ux, uy, uz, x, y, z, sin_c, tan_c, r_max, length):
    """(ok, R, z_emit, e1) of a DOM centre x for the track (p, u, length): ok = within R_max and
    the Cherenkov emission point of x lies on the track."""
    vx = x - px
    vy = y - py
    vz = z - pz
    along = vx * ux + vy * uy + vz * uz
    r2 = vx * vx + vy * vy + vz * vz - along * along
    if r2 > r_max * r_max:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0
    r = math.sqrt(r2) if r2 > 0.0 else 0.0
    z_emit = along - r / tan_c
    if z_emit < 0.0 or z_emit > length:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0
    e1x, e1y, e1z = radial_unit(vx, vy, vz, ux, uy, uz, along, r)
    return True, r, z_emit, e1x, e1y, e1z


@nb.njit(cache=True, inline="always")
def radial_unit(vx, vy, vz, ux, uy, uz, along, r):
    """Unit vector from the track (direction u) to a point at offset v from a track point,
    perpendicular to u (``along`` = v·u, ``r`` = the perpendicular distance); for a point on the
    track (r ≈ 0) any fixed perpendicular direction. The x axis of the track frame of the light
    tables (φ is measured from it)."""
    if r > 1e-9:
        return (vx - along * ux) / r, (vy - along * uy) / r, (vz - along * uz) / r
    if abs(ux) < 0.9:
        e1x, e1y, e1z = 0.0, -uz, uy
    else:
        e1x, e1y, e1z = -uz, 0.0, ux
    nn = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    return e1x / nn, e1y / nn, e1z / nn


@nb.njit(cache=True)
def simulate_muon_table_light(
    seeds, track_offsets, track_pos, track_dir, track_time, track_length, track_energy, track_energy_lost,
    track_id, dom_pos, dom_pmt_start, pmt_index, pmt_dir, pmt_ok,
    sin_c, tan_c, n_group, r_nodes, norm_x0, norm_inv_dx, norm_fine, r_max, r_floor,
    n_theta, n_phi, shape, cdf, t_edges,
    ms_norm_x0, ms_norm_inv_dx, ms_norm_fine, ms_shape, ms_cdf,
    secondaries, sec_log_e0, sec_dlog_e, sec_rw, sec_cont, expected_only,
):
    """Photo-electrons of muon tracks from the infinite-track light tables (table mode).

    For every DOM within ``r_max`` of the track whose Cherenkov emission point (at the DOM
    centre) lies on the track (0 ≤ z_emit ≤ length, as in direct mode and JSirene), and every
    usable PMT of that DOM, the expected npe is the sum of two components::

        μ = N(R)·Σ_c w_c·shape_c · (1 + ΔL/L(E))  +  N_s(R)·Σ_c w_c·shape_s,c · cont(E)

    the bare muon table (trilinear interpolation in R, θ, φ; N(R) its smooth normalisation) with
    the Rädel–Wiebusch light of secondaries below 0.5 GeV (ΔL/L, arXiv:1206.5530), and the
    muon-shower table (a line of EM showers with the Rädel–Wiebusch angular profile, per metre of
    Cherenkov track length per metre; arXiv:1210.5140) times the Cherenkov track length per metre
    of the showers of the losses inside the propagation's continuous loss
    (:mod:`km3sim.propagation.secondaries`). Both ratios are taken at the muon energy at
    z_emit, E(z) = E − energy_lost·z/length, from the tables ``sec_*`` (``secondary_ratios``);
    without ``secondaries`` only the bare muon light. The number of pe is Poisson(μ) from the
    event's stream; each pe takes a corner of either component ∝ its weight and a time residual
    from that cell's cumulative distribution (of its component) and arrives at
    t = t_track + (z_emit + R/sinθ_c · n_g)/c + t_res (direct time at the DOM centre,
    PHYSICS.md §9.1). (The pe of a DOM are drawn as one Poisson number with mean Σ_PMT μ,
    shared among its PMTs ∝ μ: the same distribution as independent Poisson numbers per PMT.)

    With ``expected_only`` nothing is sampled and only ``mu`` is filled.

    Returns
    -------
    pe_event, pe_pmt, pe_time, pe_origin : arrays (one entry per pe)
    mu : float64 (n_pmts,)
        With ``expected_only``: the expected npe per PMT row, summed over all tracks and events.
    """
    n_events = seeds.shape[0]
    n_doms = dom_pos.shape[0]
    n_pmt_rows = pmt_dir.shape[0]
    inv_d_theta = (n_theta - 1) / math.pi
    inv_d_phi = (n_phi - 1) / math.pi
    cap = 1024 if not expected_only else 1
    out_event = np.empty(cap, dtype=np.int64)
    out_pmt = np.empty(cap, dtype=np.int64)
    out_time = np.empty(cap, dtype=np.float64)
    out_origin = np.empty(cap, dtype=np.int64)
    mu_sum = np.zeros(n_pmt_rows if expected_only else 1, dtype=np.float64)
    n_out = 0
    max_pmts = 1
    for dm in range(n_doms):
        max_pmts = max(max_pmts, dom_pmt_start[dm + 1] - dom_pmt_start[dm])
    # per PMT 16 corners: 8 of the muon table, then 8 of the muon-shower table
    cw = np.empty(16 * max_pmts, dtype=np.float64)
    ci = np.empty(16 * max_pmts, dtype=np.int64)
    pmt_mu = np.empty(max_pmts, dtype=np.float64)
    for e in range(n_events):
        state = rng_new(seeds[e])
        for t in range(track_offsets[e], track_offsets[e + 1]):
            px = track_pos[t, 0]
            py = track_pos[t, 1]
            pz = track_pos[t, 2]
            ux = track_dir[t, 0]
            uy = track_dir[t, 1]
            uz = track_dir[t, 2]
            length = track_length[t]
            for dm in range(n_doms):
                ok, r, z_emit, e1x, e1y, e1z = _muon_dom_geometry(
                    px, py, pz, ux, uy, uz, dom_pos[dm, 0], dom_pos[dm, 1], dom_pos[dm, 2], sin_c, tan_c, r_max, length
                )
                if not ok:
                    continue
                norm = _norm(r, norm_x0, norm_inv_dx, norm_fine, r_max, r_floor, 1.0)
                if norm <= 0.0:
                    continue
                norm_s = 0.0
                if secondaries:
                    e_z = track_energy[t] - track_energy_lost[t] * (z_emit / length) if length > 0.0 else track_energy[t]
                    if e_z < MUON_MASS:
                        e_z = MUON_MASS
                    rw, cont = secondary_ratios(e_z, sec_log_e0, sec_dlog_e, sec_rw, sec_cont)
                    if rw > 0.0:
                        norm *= 1.0 + rw
                    if cont > 0.0:
                        norm_s = cont * _norm(r, ms_norm_x0, ms_norm_inv_dx, ms_norm_fine, r_max, r_floor, 1.0)
                e2x = uy * e1z - uz * e1y
                e2y = uz * e1x - ux * e1z
                e2z = ux * e1y - uy * e1x
                i_r, f_r = _node_index(r_nodes, r)
                k0 = dom_pmt_start[dm]
                n_k = dom_pmt_start[dm + 1] - k0
                mu_dom = 0.0
                for j in range(n_k):
                    k = k0 + j
                    if not pmt_ok[k]:
                        pmt_mu[j] = 0.0
                        continue
                    a, fa, b, fb = _orientation(
                        pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2], e1x, e1y, e1z, e2x, e2y, e2z, ux, uy, uz,
                        inv_d_theta, inv_d_phi, n_theta, n_phi,
                    )
                    tot = norm * _muon_corners(i_r, f_r, a, fa, b, fb, n_theta, n_phi, shape, cw, ci, 16 * j)
                    for c in range(16 * j, 16 * j + 8):
                        cw[c] *= norm
                    if norm_s > 0.0:
                        tot += norm_s * _muon_corners(i_r, f_r, a, fa, b, fb, n_theta, n_phi, ms_shape, cw, ci,
                                                      16 * j + 8)
                        for c in range(16 * j + 8, 16 * j + 16):
                            cw[c] *= norm_s
                    else:
                        for c in range(16 * j + 8, 16 * j + 16):
                            cw[c] = 0.0
                            ci[c] = 0
                    pmt_mu[j] = tot
                    mu_dom += tot
                    if expected_only:
                        mu_sum[k] += tot
                if expected_only or mu_dom <= 0.0:
                    continue
                # one Poisson number for the DOM, shared by its PMTs ∝ μ (the same as a Poisson
                # number per PMT)
                n_pe = rng_poisson(state, mu_dom)
                if n_pe == 0:
                    continue
                if n_out + n_pe > out_event.shape[0]:
                    out_event, out_pmt, out_time, out_origin = _grow_out(
                        out_event, out_pmt, out_time, out_origin, n_out, n_out + n_pe)
                t_direct = track_time[t] + (z_emit + r / sin_c * n_group) * _INV_C
                for _ in range(n_pe):
                    j = _pick(pmt_mu, 0, n_k, rng_uniform(state) * mu_dom)
                    c = _pick(cw, 16 * j, 16 if norm_s > 0.0 else 8, rng_uniform(state) * pmt_mu[j])
                    if c < 16 * j + 8:
                        t_res = _sample_cdf(state, cdf, ci[c], t_edges)
                    else:
                        t_res = _sample_cdf(state, ms_cdf, ci[c], t_edges)
                    out_event[n_out] = e
                    out_pmt[n_out] = pmt_index[k0 + j]
                    out_time[n_out] = t_direct + t_res
                    out_origin[n_out] = track_id[t]
                    n_out += 1
    return out_event[:n_out].copy(), out_pmt[:n_out].copy(), out_time[:n_out].copy(), out_origin[:n_out].copy(), mu_sum


@nb.njit(cache=True)
def simulate_shower_table_light(
    seeds, shower_offsets, sh_pos, sh_dir, sh_time, sh_scale, sh_sigma, sh_z, sh_z_fine, sh_track_id, sh_reach,
    dom_pos, dom_pmt_start, pmt_index, pmt_dir, pmt_ok,
    n_group, d_nodes, cd_nodes, cd_y, cusp, norm_x0, norm_inv_dx, norm_fine, d_max, d_floor,
    n_theta, n_phi, shape, log_shape, max_shape, npe_cut, cdf, t_edges, fluctuations, expected_only,
):
    """Photo-electrons of showers from the point-shower light table (table mode).

    A shower of EM-equivalent energy s (``sh_scale`` [GeV], the Rädel–Wiebusch Cherenkov track
    length over that of a 1 GeV electron; with ``fluctuations`` s is drawn from N(s, σ_s)
    truncated at 0, σ_s = ``sh_sigma``) emits its light from K points of equal light along its
    axis (depths ``sh_z[s]``, the medians of K bins of equal light of the longitudinal profile,
    PHYSICS.md §5.4). Point k gives the PMT of a DOM at distance D_k, direction cosine
    cd_k = cos(axis, DOM − point) the expected npe::

        μ_k = (s/K) · N(D_k) · shape(D_k, cd_k, θ, φ)

    (interpolated in D, cd, θ, φ, see :func:`_shower_corners`, from the table's npe per GeV); DOMs
    farther than :data:`FAR_SHOWER_FACTOR` × the spread of the points use one point at their
    mean depth. DOMs farther than ``sh_reach[s]`` (+ the depth of the last point) from the
    vertex are skipped, and so are DOMs where no PMT can get ``npe_cut`` expected pe (bound from
    ``max_shape[i_D, j_cd]``, the largest shape over the orientations of each node). The number of pe
    is Poisson(Σμ_k); each pe takes a point and corner ∝ their terms, an emission depth z from
    the longitudinal profile within that point's bin of equal light (one of the depths
    ``sh_z_fine[s]`` at the midpoints of M equal-light sub-bins per point, at random) and a time
    residual from that cell's distribution, and arrives at
    t = t_shower + (z + |x − p − z·u|·n_g)/c + t_res.

    Returns
    -------
    pe_event, pe_pmt, pe_time, pe_origin, mu : as in :func:`simulate_muon_table_light`
    """
    n_events = seeds.shape[0]
    n_doms = dom_pos.shape[0]
    n_pmt_rows = pmt_dir.shape[0]
    n_pts = sh_z.shape[1]
    n_cd = cd_nodes.shape[0]
    inv_d_theta = (n_theta - 1) / math.pi
    inv_d_phi = (n_phi - 1) / math.pi
    cap = 1024 if not expected_only else 1
    out_event = np.empty(cap, dtype=np.int64)
    out_pmt = np.empty(cap, dtype=np.int64)
    out_time = np.empty(cap, dtype=np.float64)
    out_origin = np.empty(cap, dtype=np.int64)
    mu_sum = np.zeros(n_pmt_rows if expected_only else 1, dtype=np.float64)
    n_out = 0
    max_pmts = 1
    for dm in range(n_doms):
        max_pmts = max(max_pmts, dom_pmt_start[dm + 1] - dom_pmt_start[dm])
    stride = 16 * n_pts
    cw = np.empty(stride * max_pmts, dtype=np.float64)
    ci = np.empty(stride * max_pmts, dtype=np.int64)
    pmt_mu = np.empty(max_pmts, dtype=np.float64)
    pt_ok = np.zeros(n_pts, dtype=np.bool_)
    pt_i = np.empty(n_pts, dtype=np.int64)
    pt_fd = np.empty(n_pts, dtype=np.float64)
    pt_j = np.empty(n_pts, dtype=np.int64)
    pt_fc = np.empty(n_pts, dtype=np.float64)
    pt_norm = np.empty(n_pts, dtype=np.float64)
    pt_z = np.empty(n_pts, dtype=np.float64)
    pt_frame = np.empty((n_pts, 9), dtype=np.float64)
    n_fine = sh_z_fine.shape[1]
    for e in range(n_events):
        state = rng_new(seeds[e] ^ TABLE_SHOWER_STREAM)
        for s in range(shower_offsets[e], shower_offsets[e + 1]):
            px = sh_pos[s, 0]
            py = sh_pos[s, 1]
            pz = sh_pos[s, 2]
            ux = sh_dir[s, 0]
            uy = sh_dir[s, 1]
            uz = sh_dir[s, 2]
            scale = sh_scale[s]
            if fluctuations and sh_sigma[s] > 0.0:
                scale = max(0.0, scale + sh_sigma[s] * rng_normal(state))
            if scale <= 0.0:
                continue
            reach = sh_reach[s] + sh_z[s, n_pts - 1]
            z_mean = 0.0
            for q in range(n_pts):
                z_mean += sh_z[s, q] / n_pts
            far = FAR_SHOWER_FACTOR * (sh_z[s, n_pts - 1] - sh_z[s, 0])
            for dm in range(n_doms):
                x = dom_pos[dm, 0]
                y = dom_pos[dm, 1]
                z = dom_pos[dm, 2]
                vx = x - px
                vy = y - py
                vz = z - pz
                if vx * vx + vy * vy + vz * vz > reach * reach:
                    continue
                # far from the shower (≥ FAR_SHOWER_FACTOR × the spread of its light points) one
                # point at the mean depth carries all the light
                cx = vx - z_mean * ux
                cy = vy - z_mean * uy
                cz = vz - z_mean * uz
                if cx * cx + cy * cy + cz * cz > far * far:
                    n_use = 1
                    pt_z[0] = z_mean
                else:
                    n_use = n_pts
                    for q in range(n_pts):
                        pt_z[q] = sh_z[s, q]
                w_pt = scale / n_use
                any_ok = False
                bound = 0.0
                for q in range(n_use):
                    zq = pt_z[q]
                    qx = vx - zq * ux
                    qy = vy - zq * uy
                    qz = vz - zq * uz
                    d = math.sqrt(qx * qx + qy * qy + qz * qz)
                    norm = _norm(d, norm_x0, norm_inv_dx, norm_fine, d_max, d_floor, 2.0)
                    if norm <= 0.0:
                        pt_ok[q] = False
                        continue
                    pt_ok[q] = True
                    any_ok = True
                    if d > 1e-9:
                        e3x = qx / d
                        e3y = qy / d
                        e3z = qz / d
                    else:
                        e3x, e3y, e3z = ux, uy, uz
                    cd = ux * e3x + uy * e3y + uz * e3z
                    e1x = ux - cd * e3x
                    e1y = uy - cd * e3y
                    e1z = uz - cd * e3z
                    nn = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
                    if nn > 1e-9:
                        e1x /= nn
                        e1y /= nn
                        e1z /= nn
                    else:
                        if abs(e3x) < 0.9:
                            e1x, e1y, e1z = 0.0, -e3z, e3y
                        else:
                            e1x, e1y, e1z = -e3z, 0.0, e3x
                        nn = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
                        e1x /= nn
                        e1y /= nn
                        e1z /= nn
                    pt_norm[q] = norm * w_pt
                    i0, fd = _node_index(d_nodes, d)
                    j0, _ = _node_index(cd_nodes, cd)
                    xc = cd - cusp
                    fc = (math.copysign(abs(xc) ** 0.3, xc) - cd_y[j0]) / (cd_y[j0 + 1] - cd_y[j0])
                    pt_i[q] = i0
                    pt_fd[q] = fd
                    pt_j[q] = j0
                    pt_fc[q] = min(1.0, max(0.0, fc))
                    bound += pt_norm[q] * max(max_shape[i0, j0], max_shape[i0, j0 + 1],
                                              max_shape[i0 + 1, j0], max_shape[i0 + 1, j0 + 1])
                    pt_frame[q, 0] = e1x
                    pt_frame[q, 1] = e1y
                    pt_frame[q, 2] = e1z
                    pt_frame[q, 3] = e3y * e1z - e3z * e1y
                    pt_frame[q, 4] = e3z * e1x - e3x * e1z
                    pt_frame[q, 5] = e3x * e1y - e3y * e1x
                    pt_frame[q, 6] = e3x
                    pt_frame[q, 7] = e3y
                    pt_frame[q, 8] = e3z
                if not any_ok or bound < npe_cut:
                    continue
                k0 = dom_pmt_start[dm]
                n_k = dom_pmt_start[dm + 1] - k0
                mu_dom = 0.0
                for jp in range(n_k):
                    k = k0 + jp
                    pmt_mu[jp] = 0.0
                    if not pmt_ok[k]:
                        continue
                    mu = 0.0
                    for q in range(n_use):
                        off = stride * jp + 16 * q
                        if not pt_ok[q]:
                            for c in range(16):
                                cw[off + c] = 0.0
                                ci[off + c] = 0
                            continue
                        f = pt_frame[q]
                        a, fa, b, fb = _orientation(
                            pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2], f[0], f[1], f[2], f[3], f[4], f[5],
                            f[6], f[7], f[8], inv_d_theta, inv_d_phi, n_theta, n_phi,
                        )
                        tot = _shower_corners(pt_i[q], pt_fd[q], pt_j[q], pt_fc[q], a, fa, b, fb, n_cd, n_theta, n_phi,
                                              shape, log_shape, cw, ci, off)
                        for c in range(16):
                            cw[off + c] *= pt_norm[q]
                        mu += tot * pt_norm[q]
                    pmt_mu[jp] = mu
                    mu_dom += mu
                    if expected_only:
                        mu_sum[k] += mu
                if expected_only or mu_dom <= 0.0:
                    continue
                # one Poisson number for the DOM, shared by its PMTs ∝ μ
                n_pe = rng_poisson(state, mu_dom)
                if n_pe == 0:
                    continue
                if n_out + n_pe > out_event.shape[0]:
                    out_event, out_pmt, out_time, out_origin = _grow_out(
                        out_event, out_pmt, out_time, out_origin, n_out, n_out + n_pe)
                m_sub = n_fine // n_use
                for _ in range(n_pe):
                    jp = _pick(pmt_mu, 0, n_k, rng_uniform(state) * mu_dom)
                    c = _pick(cw, stride * jp, 16 * n_use, rng_uniform(state) * pmt_mu[jp])
                    q = (c - stride * jp) // 16
                    z = sh_z_fine[s, q * m_sub + min(int(rng_uniform(state) * m_sub), m_sub - 1)]
                    qx = vx - z * ux
                    qy = vy - z * uy
                    qz = vz - z * uz
                    t_dir = sh_time[s] + (z + math.sqrt(qx * qx + qy * qy + qz * qz) * n_group) * _INV_C
                    out_event[n_out] = e
                    out_pmt[n_out] = pmt_index[k0 + jp]
                    out_time[n_out] = t_dir + _sample_cdf(state, cdf, ci[c], t_edges)
                    out_origin[n_out] = sh_track_id[s]
                    n_out += 1
    return out_event[:n_out].copy(), out_pmt[:n_out].copy(), out_time[:n_out].copy(), out_origin[:n_out].copy(), mu_sum
