"""numba kernels of the direct Cherenkov light of muon tracks.

Arrays, scalars and seeds only; see :mod:`km3sim.propagation.light` for the stage and
PHYSICS.md §5.1, §5.3, §7.2 and §9.1 for the models.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.propagation.secondaries import secondary_ratios
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform

#: Nodes (equal steps of the angular-profile distribution G(θ), see
#: :class:`~km3sim.propagation.secondaries.AngularThetaTables`) of the continuous-shower light
#: integral per PMT in :func:`continuous_shower_npe`. The midpoint rule converges as 1/N²:
#: against a brute-force integral the sum over PMTs is high by 1.9 % with 12 nodes, 0.8 % with
#: 24, 0.4 % with 32 (median per PMT 0.3 %) and 0.1 % with 48.
CONT_NODES = 32


@nb.njit(cache=True, inline="always")
def interpolate_uniform(x, x0, dx, ys):
    """Linear interpolation in a table on the uniform grid x0 + i·dx, clamped to the ends."""
    n = ys.shape[0]
    u = (x - x0) / dx
    if u <= 0.0:
        return ys[0]
    i = int(u)
    if i >= n - 1:
        return ys[n - 1]
    f = u - i
    return ys[i] + f * (ys[i + 1] - ys[i])


@nb.njit(cache=True, inline="always")
def direct_light_geometry(px, py, pz, ux, uy, uz, xx, xy, xz, sin_c, tan_c, d_floor):
    """Cherenkov geometry of PMT x and track (p, u) (PHYSICS.md §9.1).

    Returns (z_emit, d_c, d_γ, wx, wy, wz): emission point along the track, closest-approach
    distance (floored at ``d_floor``), photon path length and unit photon direction.
    """
    vx = xx - px
    vy = xy - py
    vz = xz - pz
    along = vx * ux + vy * uy + vz * uz
    d2 = vx * vx + vy * vy + vz * vz - along * along
    d_c = math.sqrt(d2) if d2 > 0.0 else 0.0
    if d_c < d_floor:
        d_c = d_floor
    z_emit = along - d_c / tan_c
    d_gamma = d_c / sin_c
    wx = vx - z_emit * ux
    wy = vy - z_emit * uy
    wz = vz - z_emit * uz
    norm = math.sqrt(wx * wx + wy * wy + wz * wz)
    if norm > 0.0:
        wx /= norm
        wy /= norm
        wz /= norm
    else:
        wx = ux
        wy = uy
        wz = uz
    return z_emit, d_c, d_gamma, wx, wy, wz


@nb.njit(cache=True)
def expected_direct_npe(
    pos, direction, energy, energy_lost, length,
    pmt_pos, pmt_dir,
    sin_c, tan_c, d_floor, max_distance, area,
    d0, dd, yield_table,
    c0, dc, acc_table,
    secondaries, log_e0, dlog_e, rw_tab, cont_tab,
    f_total, theta_step, g_of_theta, theta_of_g, continuous,
):
    """Expected photo-electrons of direct light from one track at each PMT (no sampling).

    ``mu`` = μ_cone + μ_cont: the light on the Cherenkov cone, A · A(c) · Y(d_γ) / (2π d_c
    sinθ_c) · (1 + ΔL/L(E)) (zero where the emission point is outside the track, d_γ >
    max_distance or A(c) = 0, see :func:`simulate_direct_light`), plus with ``secondaries``
    and ``continuous`` the continuous-loss showers (:func:`continuous_shower_npe`, no reach cut).

    Returns
    -------
    mu, z_emit, d_gamma : float64 arrays (n_pmts,)
        z_emit and d_γ are those of the Cherenkov cone.
    """
    n = pmt_pos.shape[0]
    mu = np.zeros(n, dtype=np.float64)
    z_out = np.full(n, np.nan)
    dg_out = np.full(n, np.nan)
    node_z = np.empty(CONT_NODES)
    node_r = np.empty(CONT_NODES)
    node_c = np.empty(CONT_NODES)
    node_s = np.empty(CONT_NODES)
    node_base = np.empty(CONT_NODES)
    node_w = np.empty(CONT_NODES)
    rw_use = rw_tab if secondaries else np.zeros(1)
    for k in range(n):
        m, z, dg = _npe_one(
            pos[0], pos[1], pos[2], direction[0], direction[1], direction[2], energy, energy_lost, length,
            pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2],
            sin_c, tan_c, d_floor, max_distance, area, d0, dd, yield_table,
            c0, dc, acc_table, log_e0, dlog_e, rw_use,
        )
        if secondaries and continuous:
            rho, ex, ey, ez, g_lo, dgc = continuous_geometry(
                pos[0], pos[1], pos[2], direction[0], direction[1], direction[2], energy, energy_lost, length,
                pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], max_distance, d_floor, max_distance, d0, dd,
                yield_table, log_e0, dlog_e, rw_tab, cont_tab, theta_step, g_of_theta, theta_of_g,
                node_z, node_r, node_c, node_s, node_base,
            )
            if dgc > 0.0:
                total = _cont_pmt_weights(direction[0], direction[1], direction[2], ex, ey, ez, pmt_dir[k, 0],
                                          pmt_dir[k, 1], pmt_dir[k, 2], c0, dc, acc_table, node_c, node_s,
                                          node_base, node_w)
                m += total * area * f_total * (dgc / CONT_NODES) / (2.0 * math.pi * rho)
        mu[k] = m
        z_out[k] = z
        dg_out[k] = dg
    return mu, z_out, dg_out


@nb.njit(cache=True, inline="always")
def _npe_one(
    px, py, pz, ux, uy, uz, energy, energy_lost, length,
    xx, xy, xz, ax, ay, az,
    sin_c, tan_c, d_floor, max_distance, area, d0, dd, yield_table,
    c0, dc, acc_table, log_e0, dlog_e, rw_tab,
):
    # (at most 29 arguments: CPython passes longer calls as *args, which numba cannot inline)
    # cheap rejection on the distance to the track line before the full geometry
    vx = xx - px
    vy = xy - py
    vz = xz - pz
    along = vx * ux + vy * uy + vz * uz
    d2 = vx * vx + vy * vy + vz * vz - along * along
    dmax_c = max_distance * sin_c
    if d2 > dmax_c * dmax_c:
        return 0.0, np.nan, np.nan
    z_emit, d_c, d_gamma, wx, wy, wz = direct_light_geometry(
        px, py, pz, ux, uy, uz, xx, xy, xz, sin_c, tan_c, d_floor
    )
    if z_emit < 0.0 or z_emit > length or d_gamma > max_distance:
        return 0.0, z_emit, d_gamma
    c = wx * ax + wy * ay + wz * az
    acc = interpolate_uniform(c, c0, dc, acc_table)
    if acc <= 0.0:
        return 0.0, z_emit, d_gamma
    y = interpolate_uniform(d_gamma, d0, dd, yield_table)
    mu = area * acc * y / (2.0 * math.pi * d_c * sin_c)
    # Rädel–Wiebusch ΔL/L (rw_tab: zeros without secondaries) at the muon energy at the emission
    # point (energy loss spread uniformly along the track)
    e_z = energy - energy_lost * (z_emit / length) if length > 0.0 else energy
    if e_z < MUON_MASS:
        e_z = MUON_MASS
    mu *= 1.0 + interpolate_uniform(math.log10(e_z), log_e0, dlog_e, rw_tab)
    return mu, z_emit, d_gamma


@nb.njit(cache=True, inline="always")
def _cont_point(rho, along, theta):
    """Emission depth z, photon path r, cosθ and sinθ of emission angle θ towards a PMT at
    distance ρ from the track line (foot of the perpendicular at depth ``along``)."""
    s = math.sin(theta)
    if s < 1e-12:
        s = 1e-12
    c = math.cos(theta)
    return along - rho * c / s, rho / s, c, s


@nb.njit(cache=True)
def continuous_geometry(
    px, py, pz, ux, uy, uz, energy, energy_lost, length, xx, xy, xz,
    reach, d_floor, max_distance, d0, dd, yield_table,
    log_e0, dlog_e, rw_tab, cont_tab, theta_step, g_of_theta, theta_of_g,
    node_z, node_r, node_c, node_s, node_base,
):
    """Nodes of the continuous-shower light integral seen from point x (see
    :func:`continuous_shower_npe`): for node k the emission depth z_k, photon path r_k, cos and
    sin of the emission angle and cont(E(z_k))·Y(r_k) (0 beyond ``max_distance``), written to
    the ``node_*`` arrays.

    Returns
    -------
    rho, ex, ey, ez, g_lo, dg : float
        Distance of x from the track line (floored at ``d_floor``), the unit vector from the
        line to x (perpendicular to u) and the G interval of the visible depths; dg = 0 where x
        is farther than ``reach`` from the line or no depth is within ``max_distance``.
    """
    vx = xx - px
    vy = xy - py
    vz = xz - pz
    along = vx * ux + vy * uy + vz * uz
    d2 = vx * vx + vy * vy + vz * vz - along * along
    if d2 > reach * reach:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    rho = math.sqrt(d2) if d2 > 0.0 else 0.0
    ex = vx - along * ux
    ey = vy - along * uy
    ez = vz - along * uz
    if rho > 1e-9:
        ex /= rho
        ey /= rho
        ez /= rho
    else:  # on the axis: any perpendicular
        if abs(ux) < 0.9:
            ex, ey, ez = 0.0, -uz, uy
        else:
            ex, ey, ez = uz, 0.0, -ux
        nrm = math.sqrt(ex * ex + ey * ey + ez * ez)
        ex /= nrm
        ey /= nrm
        ez /= nrm
    if rho < d_floor:
        rho = d_floor
    if rho >= max_distance:
        return rho, ex, ey, ez, 0.0, 0.0
    h = math.sqrt(max_distance * max_distance - rho * rho)
    z_lo = max(0.0, along - h)
    z_hi = min(length, along + h)
    if z_lo >= z_hi:
        return rho, ex, ey, ez, 0.0, 0.0
    g_lo = interpolate_uniform(math.atan2(rho, along - z_lo), 0.0, theta_step, g_of_theta)
    dg = interpolate_uniform(math.atan2(rho, along - z_hi), 0.0, theta_step, g_of_theta) - g_lo
    if dg <= 0.0:
        return rho, ex, ey, ez, 0.0, 0.0
    dq = 1.0 / (theta_of_g.shape[0] - 1)
    step = dg / CONT_NODES
    inv_len = 1.0 / length if length > 0.0 else 0.0
    for k in range(CONT_NODES):
        th = interpolate_uniform(g_lo + (k + 0.5) * step, 0.0, dq, theta_of_g)
        z, r, c, s = _cont_point(rho, along, th)
        node_z[k] = z
        node_r[k] = r
        node_c[k] = c
        node_s[k] = s
        if r <= max_distance:
            e_z = energy - energy_lost * z * inv_len
            if e_z < MUON_MASS:
                e_z = MUON_MASS
            _, cr = secondary_ratios(e_z, log_e0, dlog_e, rw_tab, cont_tab)
            node_base[k] = cr * interpolate_uniform(r, d0, dd, yield_table)
        else:
            node_base[k] = 0.0
    return rho, ex, ey, ez, g_lo, dg


@nb.njit(cache=True)
def _cont_pmt_weights(ux, uy, uz, ex, ey, ez, ax, ay, az, c0, dc, acc_table, node_c, node_s, node_base, node_w):
    """Node weights A(w_k·a)·cont·Y of a PMT with axis a (photon direction w_k = c_k u + s_k e)
    written to ``node_w``; returns their sum."""
    ca = ux * ax + uy * ay + uz * az
    ce = ex * ax + ey * ay + ez * az
    total = 0.0
    for k in range(CONT_NODES):
        w = 0.0
        if node_base[k] > 0.0:
            acc = interpolate_uniform(node_c[k] * ca + node_s[k] * ce, c0, dc, acc_table)
            if acc > 0.0:
                w = acc * node_base[k]
        node_w[k] = w
        total += w
    return total


@nb.njit(cache=True)
def continuous_shower_npe(
    px, py, pz, ux, uy, uz, energy, energy_lost, length,
    xx, xy, xz, ax, ay, az,
    reach, d_floor, max_distance, area, d0, dd, yield_table, c0, dc, acc_table,
    log_e0, dlog_e, rw_tab, cont_tab, f_total, theta_step, g_of_theta, theta_of_g,
):
    """Expected pe at PMT (x, a) of the showers of a muon's continuous losses (PHYSICS.md §5.3–5.4).

    The light cont(E(z)) [m of Cherenkov track per m of muon;
    :func:`~km3sim.propagation.secondaries.secondary_light`] is emitted along the track with
    the Rädel–Wiebusch EM angular profile f about the muon direction (arXiv:1210.5140), E(z) =
    E − ΔE·z/L; a line of point emitters, each as a shower bin of :func:`_shower_bin_npe`.
    With the PMT at distance ρ from the track line (floored at ``d_floor``) and the emission
    angle θ as variable (:class:`~km3sim.propagation.secondaries.AngularThetaTables`)::

        μ = ∫ dz A·A(w·a)·cont·Y(r)·f(cosθ)/(2π r²)
          = A/(2πρ) · ∫ dθ A(w(θ)·a) · cont(E(z(θ))) · Y(ρ/sinθ) · f(cosθ)
          = A·F(π)/(2πρ) · ∫ dG g(θ(G)),   z(θ) = along − ρ·cotθ

    over the depths 0 ≤ z ≤ L with photon path r = ρ/sinθ ≤ ``max_distance``, by the midpoint
    rule with :data:`CONT_NODES` nodes equally spaced in G (the profile's cusp at the
    Cherenkov angle is in G, g is smooth). 0 beyond ``reach`` from the track line.
    """
    node_z = np.empty(CONT_NODES)
    node_r = np.empty(CONT_NODES)
    node_c = np.empty(CONT_NODES)
    node_s = np.empty(CONT_NODES)
    node_base = np.empty(CONT_NODES)
    node_w = np.empty(CONT_NODES)
    rho, ex, ey, ez, g_lo, dg = continuous_geometry(
        px, py, pz, ux, uy, uz, energy, energy_lost, length, xx, xy, xz,
        reach, d_floor, max_distance, d0, dd, yield_table,
        log_e0, dlog_e, rw_tab, cont_tab, theta_step, g_of_theta, theta_of_g,
        node_z, node_r, node_c, node_s, node_base,
    )
    if dg <= 0.0:
        return 0.0
    total = _cont_pmt_weights(ux, uy, uz, ex, ey, ez, ax, ay, az, c0, dc, acc_table, node_c, node_s, node_base, node_w)
    return total * area * f_total * (dg / CONT_NODES) / (2.0 * math.pi * rho)


#: Added to the event seed for the continuous-shower light of muons (own random stream: the
#: light on the Cherenkov cone of an event does not depend on it).
CONTINUOUS_STREAM = np.uint64(0x3C0A_71A0_05C0_17E5)


@nb.njit(cache=True)
def simulate_continuous_light(
    seeds, track_offsets, track_pos, track_dir, track_time, track_length, track_energy, track_energy_lost,
    track_id, track_reach, track_cont_max, dom_pos, dom_pmt_start, pmt_index, pmt_dir, pmt_ok, dom_acc_bound,
    n_group, d_floor, max_distance, area, d0, dd, yield_table, c0, dc, acc_table,
    log_e0, dlog_e, rw_tab, cont_tab, f_total, theta_step, g_of_theta, theta_of_g,
):
    """Photo-electrons of the showers of the muons' continuous losses (direct mode, unscattered).

    The expected pe of each usable PMT are those of :func:`continuous_shower_npe` with the
    geometry (distances, emission angles, depths) of its DOM centre ``dom_pos`` (PMTs are
    0.2 m from it; the integrand nodes are computed once per DOM and muon) and the PMT's own
    axis for the acceptance, for DOMs within ``track_reach[t]`` of the track line (the light
    stage sets it where every PMT would get less than ``shower_npe_cut``). The number of pe of
    each PMT is Poisson(μ) from the event's stream ``seeds[e] ^ CONTINUOUS_STREAM``, drawn by
    thinning: a DOM gets Poisson(μ_bound) candidates with the bound μ_bound =
    ``dom_acc_bound``·A·F(π)·``track_cont_max[t]``·Y(r_seg)/(2πρ) (``dom_acc_bound`` ≥ the
    sum of its PMTs' acceptances for any photon direction, r_seg its distance to the track
    segment; checked: a DOM above it raises), and only for DOMs with candidates are the node
    integral and the PMTs' μ computed; each candidate becomes a pe of PMT k with probability
    μ_k/μ_bound (an exact Poisson(μ_k) per PMT), so that the many DOMs that get no pe cost
    almost nothing. Each pe picks a node ∝ its
    weight and G uniform in the node's interval, i.e. an emission depth z and path r, and
    arrives at t = t_track + z/c + r·n_g/c.

    Parameters
    ----------
    track_reach : float64 array (n_tracks,)
        Distance from the track line beyond which DOMs are skipped [m] (0: no light).
    track_cont_max : float64 array (n_tracks,)
        Maximum of cont(E) over the track's energies.
    dom_pos : float64 (n_doms, 3); dom_pmt_start : int64 (n_doms + 1,)
        DOM centres; PMTs of DOM d are rows ``dom_pmt_start[d]:dom_pmt_start[d+1]`` of
        ``pmt_index``, ``pmt_dir`` and ``pmt_ok``.
    pmt_index : int64; pmt_dir : float64 (n, 3); pmt_ok : bool
        Detector row, axis and usability of each PMT.
    dom_acc_bound : float
        Upper bound of Σ_k A(w·a_k) over a DOM's PMTs for every photon direction w.
    Other parameters as in :func:`simulate_direct_light` and :func:`continuous_shower_npe`.

    Returns
    -------
    pe_event, pe_pmt, pe_time, pe_origin : arrays as in :func:`simulate_direct_light`.
    """
    n_events = seeds.shape[0]
    n_doms = dom_pos.shape[0]
    cap = 1024
    out_event = np.empty(cap, dtype=np.int64)
    out_pmt = np.empty(cap, dtype=np.int64)
    out_time = np.empty(cap, dtype=np.float64)
    out_origin = np.empty(cap, dtype=np.int64)
    n_out = 0
    inv_c = 1.0 / C_LIGHT
    node_z = np.empty(CONT_NODES)
    node_r = np.empty(CONT_NODES)
    node_c = np.empty(CONT_NODES)
    node_s = np.empty(CONT_NODES)
    node_base = np.empty(CONT_NODES)
    pmt_mu = np.empty(64)
    pmt_w = np.empty((64, CONT_NODES))
    dq = 1.0 / (theta_of_g.shape[0] - 1)
    for e in range(n_events):
        state = rng_new(seeds[e] ^ CONTINUOUS_STREAM)
        for t in range(track_offsets[e], track_offsets[e + 1]):
            reach = track_reach[t]
            if reach <= 0.0:
                continue
            px = track_pos[t, 0]
            py = track_pos[t, 1]
            pz = track_pos[t, 2]
            ux = track_dir[t, 0]
            uy = track_dir[t, 1]
            uz = track_dir[t, 2]
            length = track_length[t]
            pre_coef = dom_acc_bound * area * f_total * track_cont_max[t] / (2.0 * math.pi)
            for d in range(n_doms):
                # bound of the DOM's expectation without the integral: acceptance sum <= dom_acc_bound,
                # ∫dG <= 1, cont <= its maximum, Y(r) <= Y(distance to the track segment)
                vx = dom_pos[d, 0] - px
                vy = dom_pos[d, 1] - py
                vz = dom_pos[d, 2] - pz
                along = vx * ux + vy * uy + vz * uz
                d2 = vx * vx + vy * vy + vz * vz - along * along
                if d2 > reach * reach:
                    continue
                if d2 < 0.0:
                    d2 = 0.0
                rho0 = max(math.sqrt(d2), d_floor)
                if rho0 >= max_distance:
                    continue
                off = -along if along < 0.0 else (along - length if along > length else 0.0)
                r_seg = math.sqrt(d2 + off * off)
                if r_seg > max_distance:
                    continue
                mu_bound = pre_coef * interpolate_uniform(r_seg, d0, dd, yield_table) / rho0
                if mu_bound <= 0.0:
                    continue
                n_cand = rng_poisson(state, mu_bound)
                if n_cand == 0:
                    continue
                rho, ex, ey, ez, g_lo, dg = continuous_geometry(
                    px, py, pz, ux, uy, uz, track_energy[t], track_energy_lost[t], length,
                    dom_pos[d, 0], dom_pos[d, 1], dom_pos[d, 2],
                    reach, d_floor, max_distance, d0, dd, yield_table,
                    log_e0, dlog_e, rw_tab, cont_tab, theta_step, g_of_theta, theta_of_g,
                    node_z, node_r, node_c, node_s, node_base,
                )
                if dg <= 0.0:
                    continue
                scale = area * f_total * (dg / CONT_NODES) / (2.0 * math.pi * rho)
                k0 = dom_pmt_start[d]
                n_k = dom_pmt_start[d + 1] - k0
                if n_k > pmt_mu.shape[0]:
                    pmt_mu = np.empty(n_k)
                    pmt_w = np.empty((n_k, CONT_NODES))
                mu_dom = 0.0
                for i in range(n_k):
                    k = k0 + i
                    m = 0.0
                    if pmt_ok[k]:
                        m = scale * _cont_pmt_weights(ux, uy, uz, ex, ey, ez, pmt_dir[k, 0], pmt_dir[k, 1],
                                                      pmt_dir[k, 2], c0, dc, acc_table, node_c, node_s, node_base,
                                                      pmt_w[i])
                    pmt_mu[i] = m
                    mu_dom += m
                if mu_dom > mu_bound * (1.0 + 1e-9):
                    raise ValueError("simulate_continuous_light: a DOM's expectation exceeds its bound "
                                     "(dom_acc_bound below its PMTs' acceptance sum, or track_cont_max too small)")
                for _ in range(n_cand):
                    u = rng_uniform(state) * mu_bound
                    if u >= mu_dom:
                        continue  # thinned
                    i = 0
                    acc = pmt_mu[0]
                    while u >= acc and i < n_k - 1:
                        i += 1
                        acc += pmt_mu[i]
                    # emission node ∝ its weight at this PMT, then G uniform within the node
                    tot = 0.0
                    for j in range(CONT_NODES):
                        tot += pmt_w[i, j]
                    v = rng_uniform(state) * tot
                    j = 0
                    acc = pmt_w[i, 0]
                    while v >= acc and j < CONT_NODES - 1:
                        j += 1
                        acc += pmt_w[i, j]
                    th = interpolate_uniform(g_lo + (j + rng_uniform(state)) * (dg / CONT_NODES), 0.0, dq, theta_of_g)
                    z, r, _, _ = _cont_point(rho, along, th)
                    if n_out >= out_event.shape[0]:
                        out_event, out_pmt, out_time, out_origin = _grow_out(
                            out_event, out_pmt, out_time, out_origin, n_out, n_out + 1)
                    out_event[n_out] = e
                    out_pmt[n_out] = pmt_index[k0 + i]
                    out_time[n_out] = track_time[t] + (z + r * n_group) * inv_c
                    out_origin[n_out] = track_id[t]
                    n_out += 1
    return (
        out_event[:n_out].copy(),
        out_pmt[:n_out].copy(),
        out_time[:n_out].copy(),
        out_origin[:n_out].copy(),
    )


@nb.njit(cache=True)
def _grow_out(out_event, out_pmt, out_time, out_origin, n_out, need):
    new_cap = max(2 * out_event.shape[0], need)
    a = np.empty(new_cap, dtype=np.int64)
    a[:n_out] = out_event[:n_out]
    b = np.empty(new_cap, dtype=np.int64)
    b[:n_out] = out_pmt[:n_out]
    c = np.empty(new_cap, dtype=np.float64)
    c[:n_out] = out_time[:n_out]
    d = np.empty(new_cap, dtype=np.int64)
    d[:n_out] = out_origin[:n_out]
    return a, b, c, d


@nb.njit(cache=True)
def simulate_direct_light(
    seeds,
    track_offsets,
    track_pos,
    track_dir,
    track_time,
    track_length,
    track_energy,
    track_energy_lost,
    track_id,
    pmt_index,
    pmt_pos,
    pmt_dir,
    sin_c,
    tan_c,
    n_group,
    d_floor,
    max_distance,
    area,
    d0,
    dd,
    yield_table,
    c0,
    dc,
    acc_table,
    secondaries,
    log_e0,
    dlog_e,
    rw_tab,
    cont_tab,
):
    """Photo-electrons of direct (unscattered) Cherenkov light from muon tracks on their Cherenkov cone.

    For every track and PMT (PHYSICS.md §9.1 geometry): closest approach d_c (floored at
    ``d_floor``), emission point z_emit = L − d_c/tanθ_c (must lie on the track), photon path
    d_γ = d_c/sinθ_c (≤ ``max_distance``), impact cosine c = photon direction · PMT axis.
    Expected pe on the Cherenkov cone (line emitter, PHYSICS.md §5.1/§7.2)::

        μ = A · A(c) · Y(d_γ) / (2π d_c sinθ_c) · (1 + ΔL/L(E))
        Y(d) = ∫ dλ d²N/dxdλ · QE(λ) · exp(−d/λ_abs(λ))

    with ΔL/L(E) the Rädel–Wiebusch light of secondaries below 0.5 GeV (arXiv:1206.5530;
    PHYSICS.md §5.3; table ``rw_tab``) when ``secondaries``; the number of pe is Poisson(μ)
    from the event's own xoshiro256** stream; each pe arrives at t = t_track + z_emit/c +
    d_γ·n_g/c.

    The light of the showers of the losses that the propagation kept continuous is made by
    :func:`simulate_continuous_light`.

    Parameters
    ----------
    seeds : uint64 array (n_events,)
    track_offsets : int64 array (n_events + 1,)
        Tracks of event e are ``track_offsets[e]:track_offsets[e+1]``.
    track_pos, track_dir : float64 arrays (n_tracks, 3)
        Start position [m] and unit direction.
    track_time, track_length, track_energy, track_energy_lost : float64 arrays (n_tracks,)
        Time at pos [ns], length [m], energy at pos [GeV], energy lost along the length [GeV].
    track_id : int64 array (n_tracks,)
    pmt_index : int64 array (n_pmts,)
        Detector index reported for each PMT row.
    pmt_pos, pmt_dir : float64 arrays (n_pmts, 3)
        PMT positions [m] and axis unit vectors.
    sin_c, tan_c : float
        Sine and tangent of the Cherenkov angle.
    n_group : float
        Group index for the photon travel time.
    d_floor : float
        Minimum closest-approach distance [m].
    max_distance : float
        Maximum photon path [m].
    area : float
        Photocathode area [m²].
    d0, dd, yield_table
        Y(d_γ) tabulated on the uniform grid d0 + i·dd [m].
    c0, dc, acc_table
        Angular acceptance A(c) tabulated on the uniform grid c0 + i·dc.
    secondaries : bool
    log_e0, dlog_e, rw_tab, cont_tab
        :meth:`~km3sim.propagation.secondaries.SecondaryLight.args` (ΔL/L from ``rw_tab``).

    Returns
    -------
    pe_event : int64 array
        Event index (into ``seeds``) of each pe.
    pe_pmt : int64 array
        ``pmt_index`` of the PMT.
    pe_time : float64 array
        Arrival time [ns].
    pe_origin : int64 array
        track_id of the emitting track.
    """
    n_events = seeds.shape[0]
    n_pmts = pmt_pos.shape[0]
    cap = 1024
    out_event = np.empty(cap, dtype=np.int64)
    out_pmt = np.empty(cap, dtype=np.int64)
    out_time = np.empty(cap, dtype=np.float64)
    out_origin = np.empty(cap, dtype=np.int64)
    n_out = 0
    inv_c = 1.0 / C_LIGHT
    rw_use = rw_tab if secondaries else np.zeros(1)
    for e in range(n_events):
        state = rng_new(seeds[e])
        for t in range(track_offsets[e], track_offsets[e + 1]):
            px = track_pos[t, 0]
            py = track_pos[t, 1]
            pz = track_pos[t, 2]
            ux = track_dir[t, 0]
            uy = track_dir[t, 1]
            uz = track_dir[t, 2]
            for k in range(n_pmts):
                mu, z_emit, d_gamma = _npe_one(
                    px, py, pz, ux, uy, uz, track_energy[t], track_energy_lost[t], track_length[t],
                    pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2],
                    sin_c, tan_c, d_floor, max_distance, area, d0, dd, yield_table,
                    c0, dc, acc_table, log_e0, dlog_e, rw_use,
                )
                if mu <= 0.0:
                    continue
                n_pe = rng_poisson(state, mu)
                if n_pe == 0:
                    continue
                if n_out + n_pe > out_event.shape[0]:
                    out_event, out_pmt, out_time, out_origin = _grow_out(
                        out_event, out_pmt, out_time, out_origin, n_out, n_out + n_pe)
                t_arrival = track_time[t] + (z_emit + d_gamma * n_group) * inv_c
                for _ in range(n_pe):
                    out_event[n_out] = e
                    out_pmt[n_out] = pmt_index[k]
                    out_time[n_out] = t_arrival
                    out_origin[n_out] = track_id[t]
                    n_out += 1
    return (
        out_event[:n_out].copy(),
        out_pmt[:n_out].copy(),
        out_time[:n_out].copy(),
        out_origin[:n_out].copy(),
    )


#: Added to the event seed for the shower light so that it has its own random stream (the
#: muon light of an event is then the same with and without showers).
SHOWER_STREAM = np.uint64(0x5D0E_C0FF_EE5A_11ED)


@nb.njit(cache=True, inline="always")
def _shower_bin_npe(
    xx, xy, xz, ax, ay, az, px, py, pz, ux, uy, uz, z, weight,
    r_floor, max_distance, area, d0, dd, yield_table, c0, dc, acc_table, ang_c0, ang_dc, ang_pdf,
):
    """Expected pe at PMT (x, a) of the light `weight` [m of Cherenkov track] emitted at p + z·u."""
    vx = xx - (px + z * ux)
    vy = xy - (py + z * uy)
    vz = xz - (pz + z * uz)
    r = math.sqrt(vx * vx + vy * vy + vz * vz)
    if r > max_distance:
        return 0.0, r
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
    acc = interpolate_uniform(c, c0, dc, acc_table)
    if acc <= 0.0:
        return 0.0, r
    cos_axis = (vx * ux + vy * uy + vz * uz) * inv_r
    prof = interpolate_uniform(cos_axis, ang_c0, ang_dc, ang_pdf)
    y = interpolate_uniform(r, d0, dd, yield_table)
    return area * acc * weight * y * prof / (2.0 * math.pi * r * r), r


@nb.njit(cache=True)
def expected_shower_npe(
    pos, direction, track_length, z_mid, pmt_pos, pmt_dir,
    r_floor, max_distance, area, d0, dd, yield_table, c0, dc, acc_table, ang_c0, ang_dc, ang_pdf,
):
    """Expected pe of one shower at each PMT (no sampling, no fluctuation); see :func:`simulate_shower_light`."""
    n = pmt_pos.shape[0]
    nb_ = z_mid.shape[0]
    mu = np.zeros(n, dtype=np.float64)
    w = track_length / nb_
    for k in range(n):
        for j in range(nb_):
            m, _ = _shower_bin_npe(
                pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2],
                pos[0], pos[1], pos[2], direction[0], direction[1], direction[2], z_mid[j], w,
                r_floor, max_distance, area, d0, dd, yield_table, c0, dc, acc_table, ang_c0, ang_dc, ang_pdf,
            )
            mu[k] += m
    return mu


@nb.njit(cache=True)
def simulate_shower_light(
    seeds, shower_offsets, sh_pos, sh_dir, sh_time, sh_length, sh_sigma, sh_z_mid, sh_z_edges, sh_track_id,
    sh_reach, pmt_index, pmt_pos, pmt_dir, n_group, r_floor, max_distance, area, d0, dd, yield_table,
    c0, dc, acc_table, ang_c0, ang_dc, ang_pdf, fluctuations,
):
    """Photo-electrons of the direct (unscattered) light of showers (PHYSICS.md §5.4, §6.1, §7.2).

    A shower of Cherenkov track length l (Rädel & Wiebusch; with ``fluctuations`` l is drawn
    from N(l, σ_l) truncated at 0) emits its light from B longitudinal bins of equal light
    fraction (depth z_j = ``sh_z_mid[s, j]``, bin edges ``sh_z_edges[s]``) along its axis. Bin j
    gives PMT (x, a), at distance r_j = |x − p − z_j u| (floored at ``r_floor``)::

        μ_j = A · A(w·a) · (l/B) · Y(r_j) · f(cosθ_j) / (2π r_j²)

    with f the normalised angular profile dN/dcosθ about the axis, Y(r) the QE-weighted
    Frank–Tamm yield per metre after absorption over r (:func:`photon_yield`) and w the photon
    direction (point-source fluence (l·Y·f/2π)/r² per solid angle). The number of pe is
    Poisson(Σμ_j); each pe picks a bin ∝ μ_j and a depth uniform in that bin and arrives at
    t = t_shower + z/c + |x − p − z u|·n_g/c. Zero beyond ``max_distance``, and PMTs farther
    than ``sh_reach[s]`` from every bin of shower s are skipped (the light stage sets the reach
    where a PMT would get less than a negligible expected npe, see ``shower_npe_cut``).

    Returns
    -------
    pe_event, pe_pmt, pe_time, pe_origin : arrays as in :func:`simulate_direct_light`.
    """
    n_events = seeds.shape[0]
    n_pmts = pmt_pos.shape[0]
    n_bins = sh_z_mid.shape[1]
    cap = 1024
    out_event = np.empty(cap, dtype=np.int64)
    out_pmt = np.empty(cap, dtype=np.int64)
    out_time = np.empty(cap, dtype=np.float64)
    out_origin = np.empty(cap, dtype=np.int64)
    n_out = 0
    inv_c = 1.0 / C_LIGHT
    mu_bin = np.empty(n_bins, dtype=np.float64)
    for e in range(n_events):
        state = rng_new(seeds[e] ^ SHOWER_STREAM)
        for s in range(shower_offsets[e], shower_offsets[e + 1]):
            px = sh_pos[s, 0]
            py = sh_pos[s, 1]
            pz = sh_pos[s, 2]
            ux = sh_dir[s, 0]
            uy = sh_dir[s, 1]
            uz = sh_dir[s, 2]
            length = sh_length[s]
            if fluctuations and sh_sigma[s] > 0.0:
                length = max(0.0, length + sh_sigma[s] * rng_normal(state))
            if length <= 0.0:
                continue
            w = length / n_bins
            z_far = sh_z_edges[s, n_bins]
            reach = min(max_distance, sh_reach[s]) + z_far
            for k in range(n_pmts):
                xx = pmt_pos[k, 0]
                xy = pmt_pos[k, 1]
                xz = pmt_pos[k, 2]
                # cheap rejection: no bin within max_distance
                vx = xx - px
                vy = xy - py
                vz = xz - pz
                if vx * vx + vy * vy + vz * vz > reach * reach:
                    continue
                total = 0.0
                for j in range(n_bins):
                    m, _ = _shower_bin_npe(
                        xx, xy, xz, pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2], px, py, pz, ux, uy, uz,
                        sh_z_mid[s, j], w, r_floor, max_distance, area, d0, dd, yield_table,
                        c0, dc, acc_table, ang_c0, ang_dc, ang_pdf,
                    )
                    mu_bin[j] = m
                    total += m
                if total <= 0.0:
                    continue
                n_pe = rng_poisson(state, total)
                if n_pe == 0:
                    continue
                if n_out + n_pe > out_event.shape[0]:
                    out_event, out_pmt, out_time, out_origin = _grow_out(
                        out_event, out_pmt, out_time, out_origin, n_out, n_out + n_pe)
                for _ in range(n_pe):
                    u = rng_uniform(state) * total
                    j = 0
                    acc = mu_bin[0]
                    while u >= acc and j < n_bins - 1:
                        j += 1
                        acc += mu_bin[j]
                    z = sh_z_edges[s, j] + rng_uniform(state) * (sh_z_edges[s, j + 1] - sh_z_edges[s, j])
                    qx = xx - (px + z * ux)
                    qy = xy - (py + z * uy)
                    qz = xz - (pz + z * uz)
                    r = math.sqrt(qx * qx + qy * qy + qz * qz)
                    out_event[n_out] = e
                    out_pmt[n_out] = pmt_index[k]
                    out_time[n_out] = sh_time[s] + (z + r * n_group) * inv_c
                    out_origin[n_out] = sh_track_id[s]
                    n_out += 1
    return (
        out_event[:n_out].copy(),
        out_pmt[:n_out].copy(),
        out_time[:n_out].copy(),
        out_origin[:n_out].copy(),
    )
