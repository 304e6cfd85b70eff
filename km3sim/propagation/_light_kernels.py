"""numba kernels of the direct Cherenkov light of muon tracks.

Arrays, scalars and seeds only; see :mod:`km3sim.propagation.light` for the stage and
PHYSICS.md §5.1, §5.3, §7.2 and §9.1 for the models.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform


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
    secondaries, rw_lambda, rw_kappa,
):
    """Expected photo-electrons of direct light from one track at each PMT (no sampling).

    μ = A · A(c) · Y(d_γ) / (2π d_c sinθ_c) · (1 + ΔL/L(E)), zero where the emission point is
    outside the track, d_γ > max_distance or A(c) = 0 (see :func:`simulate_direct_light`).

    Returns
    -------
    mu, z_emit, d_gamma : float64 arrays (n_pmts,)
    """
    n = pmt_pos.shape[0]
    mu = np.zeros(n, dtype=np.float64)
    z_out = np.full(n, np.nan)
    dg_out = np.full(n, np.nan)
    for k in range(n):
        m, z, dg = _npe_one(
            pos[0], pos[1], pos[2], direction[0], direction[1], direction[2], energy, energy_lost, length,
            pmt_pos[k, 0], pmt_pos[k, 1], pmt_pos[k, 2], pmt_dir[k, 0], pmt_dir[k, 1], pmt_dir[k, 2],
            sin_c, tan_c, d_floor, max_distance, area, d0, dd, yield_table,
            c0, dc, acc_table, secondaries, rw_lambda, rw_kappa,
        )
        mu[k] = m
        z_out[k] = z
        dg_out[k] = dg
    return mu, z_out, dg_out


@nb.njit(cache=True, inline="always")
def _npe_one(
    px, py, pz, ux, uy, uz, energy, energy_lost, length,
    xx, xy, xz, ax, ay, az,
    sin_c, tan_c, d_floor, max_distance, area, d0, dd, yield_table,
    c0, dc, acc_table, secondaries, rw_lambda, rw_kappa,
):
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
    if secondaries:
        # muon energy at the emission point: energy loss spread uniformly along the track
        e_z = energy - energy_lost * (z_emit / length) if length > 0.0 else energy
        if e_z < MUON_MASS:
            e_z = MUON_MASS
        extra = rw_lambda + rw_kappa * math.log(e_z)
        if extra > 0.0:
            mu *= 1.0 + extra
    return mu, z_emit, d_gamma


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
    rw_lambda,
    rw_kappa,
):
    """Photo-electrons of direct (unscattered) Cherenkov light from muon tracks.

    For every track and PMT (PHYSICS.md §9.1 geometry): closest approach d_c (floored at
    ``d_floor``), emission point z_emit = L − d_c/tanθ_c (must lie on the track), photon path
    d_γ = d_c/sinθ_c (≤ ``max_distance``), impact cosine c = photon direction · PMT axis.
    Expected pe (line emitter, PHYSICS.md §5.1/§7.2)::

        μ = A · A(c) · Y(d_γ) / (2π d_c sinθ_c) · (1 + ΔL/L(E))
        Y(d) = ∫ dλ d²N/dxdλ · QE(λ) · exp(−d/λ_abs(λ))

    with ΔL/L = λ_RW + κ_RW ln(E/GeV) for the light of secondaries (Rädel & Wiebusch,
    arXiv:1206.5530; PHYSICS.md §5.3) when ``secondaries``. The number of pe is Poisson(μ)
    from the event's own xoshiro256** stream; each pe arrives at
    t = t_track + z_emit/c + d_γ·n_g/c.

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
    rw_lambda, rw_kappa : float
        Rädel–Wiebusch coefficients at the refractive index.

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
                    c0, dc, acc_table, secondaries, rw_lambda, rw_kappa,
                )
                if mu <= 0.0:
                    continue
                n_pe = rng_poisson(state, mu)
                if n_pe == 0:
                    continue
                if n_out + n_pe > out_event.shape[0]:
                    new_cap = max(2 * out_event.shape[0], n_out + n_pe)
                    a = np.empty(new_cap, dtype=np.int64)
                    a[:n_out] = out_event[:n_out]
                    out_event = a
                    b = np.empty(new_cap, dtype=np.int64)
                    b[:n_out] = out_pmt[:n_out]
                    out_pmt = b
                    c = np.empty(new_cap, dtype=np.float64)
                    c[:n_out] = out_time[:n_out]
                    out_time = c
                    d = np.empty(new_cap, dtype=np.int64)
                    d[:n_out] = out_origin[:n_out]
                    out_origin = d
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
                    new_cap = max(2 * out_event.shape[0], n_out + n_pe)
                    a = np.empty(new_cap, dtype=np.int64)
                    a[:n_out] = out_event[:n_out]
                    out_event = a
                    b = np.empty(new_cap, dtype=np.int64)
                    b[:n_out] = out_pmt[:n_out]
                    out_pmt = b
                    c = np.empty(new_cap, dtype=np.float64)
                    c[:n_out] = out_time[:n_out]
                    out_time = c
                    d = np.empty(new_cap, dtype=np.int64)
                    d[:n_out] = out_origin[:n_out]
                    out_origin = d
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
