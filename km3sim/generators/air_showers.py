"""Air showers: cosmic-ray primaries on the can and the muon bundles they send to it.

Each event is one cosmic-ray nucleus whose shower axis crosses the can. Physics and sources:

- Primary fluxes: :mod:`km3sim.generators.cosmic_rays` (Gaisser H3a/H4a, GST; PHYSICS.md §2.1).
- Muon yield per primary: the Elbert form fitted to MCEq with SIBYLL 2.3c (PHYSICS.md §2.2,
  "ElbertYield"), with x = A E_mu / E0 and the effective zenith cos(theta*) of D. Chirkin,
  hep-ph/0407078 (PHYSICS.md §1.5(c))::

      N_mu(>E_mu) = K A (A / (E0 cos theta*)) x^-p1 (1 - x^p3)^p2      conventional
      N_mu(>E_mu) = K A x^-p1 (1 - x^p3)^p2                             prompt

  with (K, p1, p2, p3) = (14.7, 1.79, 3.27, 0.64) and (2.8e-5, 1.0, 6.73, 0.78).
- Energy loss in the sea: continuous ``-dE/dx = a + b E`` (PHYSICS.md §4.1; Jpp JGeane after
  Klimushin, Bugaev, Sokalski, hep-ph/0106010), piecewise, with the site's water density.
- Lateral positions of the muons under water: the MUPAGE distribution (PHYSICS.md §1.2;
  Becherini et al., Astropart. Phys. 25 (2006) 1, hep-ph/0507228).

Generation (per event, from its own seed)
-----------------------------------------
1. Nucleus group g with fixed probability f_g (config ``group_fractions``).
2. Energy per nucleus E0 from E^-gamma_gen on [E_min, E_max], drawn after steps 3-5: with
   ``energy_sampling: above_threshold`` (default) on [max(E_min, A E_thr), E_max] instead,
   E_thr being the surface muon energy needed to reach the impact point (step 5). Below
   A E_thr the Elbert yield is exactly zero, so this wastes no events on primaries that
   cannot send a muon to the can, and the weight carries the per-event I_E of that band.
3. Arrival direction: azimuth uniform; cos(theta) on [cos_zenith_min, 1] either as an
   isotropic flux crossing the can, density ∝ S(theta) = pi r^2 cos(theta) + 2 r H sin(theta)
   (``zenith_sampling: isotropic_flux``, default), or uniform (``uniform_cos``).
4. Axis impact point uniform over the can area projected on the plane perpendicular to the
   axis (top disk with probability pi r^2 cos(theta) / S, else the visible half of the
   lateral surface). ``pos`` of the event is this point on the can surface.
5. Water path L from the sea surface to the impact point along the axis, for a spherical sea
   surface of radius 6371 km (equal to depth / cos(theta) within 0.1 % below 60 degrees, 3 %
   shorter at 85 degrees); the surface muon energy needed to arrive there with
   ``muon_energy_min_gev`` is E_thr(L), the exact inverse of the piecewise continuous loss
   (for one segment and arrival energy 0, E_thr = (a/b)(e^(bL) - 1)).
6. Number of muons: lambda = N_mu(>E_thr) (conventional + prompt); N from the Poisson law
   *conditioned on N >= 1* (empty events are not simulated); the weight carries the exact
   probability P(N >= 1) = 1 - exp(-lambda). An event whose primary cannot make a muon
   above E_thr (A E_thr >= E0) has lambda = 0, no muons and weight 0.
7. Each muon: family (prompt with probability lambda_prompt / lambda), surface energy from the
   Elbert distribution above E_thr by exact inversion of N(>E) / N(>E_thr), charge mu+ with
   probability r / (1 + r), r = 1.27 (:data:`km3sim.generators.muons.MUON_CHARGE_RATIO`).
   For N >= 2 and ``lateral: mupage`` the muon gets a distance R from the axis from the
   MUPAGE dN/dR at the impact depth with m = min(N, 4) (R / R0 ~ BetaPrime(2, alpha - 2),
   truncated at ``lateral_r_max_m`` as MUPAGE does) and a uniform azimuth, in the plane
   perpendicular to the axis through the impact point; a single muon stays on the axis.
   Muons are parallel to the axis on a plane front. A muon whose line crosses the can is
   moved along its direction to its entry point (time = path from the plane / c, so times are
   relative to the passage of the front at the axis impact point); a muon that misses the
   can keeps its plane position and time 0. Its energy there is the surface energy after
   the water path to that point; muons below ``muon_energy_min_gev`` are dropped (rare: only
   muons entering the can behind the plane can stop), so ``n_muons`` counts those kept.

Weights
-------
``weight_w2 = G I_E E0^gamma_gen / f_g x P(N >= 1)`` [GeV m^2 sr] with ``I_E = int E^-gamma_gen dE``
over the band and ``G = 2 pi int S(theta) dcos(theta)`` (isotropic_flux; the projected-area
integral replaces A Omega) or ``G = S(theta) 2 pi (1 - cos_zenith_min)`` (uniform_cos).
``weight_w3 = w2 Phi_model(pdg, E0) / n_gen`` [1/s], so that ``sum w3`` over a run sample is the
rate of primaries sending at least one muon (above ``muon_energy_min_gev`` at the impact)
to the can; :func:`reweight` gives the w3 of another flux model.

Approximations: muons of a shower whose axis misses the can are not simulated (the can
margin, 200 m by default, is much larger than the lateral spread, <R> ~ 10 m); the local
zenith at the sea surface point is taken equal to the one at the detector; no stochastic
losses or scattering before the can. Primaries outside [E_min, E_max] are not simulated: the
stage warns when E_min exceeds 1.25 times the lowest muon threshold (vertical, at the can
top), below which protons give < 1e-3 of the vertical proton muon rate.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numba as nb
import numpy as np
from pydantic import Field, field_validator, model_validator

from km3sim.constants import C_LIGHT
from km3sim.errors import ConfigError
from km3sim.generators.can import Can, can_from_detector
from km3sim.generators._kernels import mupage_mean_radius, mupage_radial_alpha
from km3sim.generators.cosmic_rays import GENERATION_GROUPS, GROUP_NAMES, get_flux_model, mass_number
from km3sim.generators.muons import MUON_CHARGE_RATIO
from km3sim.propagation._muon_kernels import energy_after_one
from km3sim.propagation.muons import ContinuousLossTable
from km3sim.random import rng_new, rng_normal, rng_poisson, rng_uniform
from km3sim.schema import make_table
from km3sim.generators.base import CanGenerator
from km3sim.stage import Site, StageConfig, StageContext, register_stage

__all__ = [
    "AirShowerGenerator",
    "ELBERT_CONVENTIONAL",
    "ELBERT_PROMPT",
    "EARTH_RADIUS_M",
    "effective_cos_zenith",
    "elbert_muon_yield",
    "water_path_length",
    "surface_energy_threshold",
    "mupage_lateral_parameters",
    "reweight",
]

logger = logging.getLogger(__name__)

#: Elbert-yield parameters (K, p1, p2, p3) fitted to MCEq with SIBYLL 2.3c (PHYSICS.md §2.2).
ELBERT_CONVENTIONAL = (14.7, 1.79, 3.27, 0.64)
ELBERT_PROMPT = (2.8e-5, 1.0, 6.73, 0.78)

#: Chirkin's cos(theta*) parameters P1..P5 (PHYSICS.md §1.5(c), hep-ph/0407078).
_CHIRKIN = (0.102573, -0.068287, 0.958633, 0.0407253, 0.817285)

#: Mean Earth radius [m] (sea surface as a sphere for the slant water path).
EARTH_RADIUS_M = 6.371e6


# ============================================================================ numba kernels
@nb.njit(cache=True)
def _effective_cos(u):
    p1, p2, p3, p4, p5 = 0.102573, -0.068287, 0.958633, 0.0407253, 0.817285
    return math.sqrt((u * u + p1 * p1 + p2 * u**p3 + p4 * u**p5) / (1.0 + p1 * p1 + p2 + p4))


@nb.njit(cache=True)
def _water_path(depth, u):
    """Path [m] from the sea surface (sphere of radius R) down to depth ``depth`` along zenith u."""
    if depth <= 0.0:
        return 0.0
    rp = EARTH_RADIUS_M - depth
    num = depth * (2.0 * EARTH_RADIUS_M - depth)
    return num / (math.sqrt(rp * rp * u * u + num) + rp * u)


@nb.njit(cache=True)
def _energy_before(e1, x, a, b, e_low):
    """Energy [GeV] a muon needs to arrive with ``e1`` after a path ``x`` [m] (inverse of the
    piecewise continuous loss; segments ordered from high to low energy)."""
    e = e1
    n = a.shape[0]
    for k in range(n - 1, -1, -1):
        if k > 0 and e >= e_low[k - 1]:
            continue
        c = a[k] / b[k]
        if k > 0:
            d = math.log((a[k] + b[k] * e_low[k - 1]) / (a[k] + b[k] * e)) / b[k]
            if x > d:
                x -= d
                e = e_low[k - 1]
                continue
        return (e + c) * math.exp(b[k] * x) - c
    return e


@nb.njit(cache=True)
def _elbert_n(k, p1, p2, p3, prompt, a_num, e0, cos_eff, e_mu):
    """Elbert N_mu(>e_mu) of one family (PHYSICS.md §2.2)."""
    x = a_num * e_mu / e0
    if x >= 1.0 or e0 <= 0.0:
        return 0.0
    if x <= 0.0:
        return np.inf
    pref = k * a_num
    if not prompt:
        pref *= a_num / (e0 * cos_eff)
    return pref * x ** (-p1) * (1.0 - x**p3) ** p2


@nb.njit(cache=True)
def _elbert_log_shape(t, p1, p2, p3):
    # ln[x^-p1 (1 - x^p3)^p2] at x = e^t (t < 0)
    return -p1 * t + p2 * math.log(-math.expm1(p3 * t))


@nb.njit(cache=True)
def _solve_elbert_x(v, x_thr, p1, p2, p3):
    """x >= x_thr with N(>x) / N(>x_thr) = v (0 < v <= 1): safeguarded Newton in t = ln x.

    ln N is concave and decreasing in t, so Newton steps taken from above the root converge
    monotonically; steps that leave the bracket are replaced by bisection.
    """
    lo = math.log(x_thr)
    hi = 0.0
    target = math.log(v) + _elbert_log_shape(lo, p1, p2, p3)
    t = 0.5 * lo  # start inside the bracket
    for _ in range(200):
        f = _elbert_log_shape(t, p1, p2, p3) - target
        if f > 0.0:
            lo = t
        else:
            hi = t
        em = math.exp(p3 * t)
        df = -p1 - p2 * p3 * em / (-math.expm1(p3 * t))
        tn = t - f / df
        if not (lo < tn < hi):
            tn = 0.5 * (lo + hi)
        if abs(tn - t) <= 1e-13 * (1.0 + abs(t)) or hi - lo <= 1e-14 * (1.0 + abs(lo)):
            t = tn
            break
        t = tn
    return math.exp(t)


@nb.njit(cache=True)
def _gamma_deviate(s, k):
    """Gamma(k, 1) deviate (Marsaglia & Tsang, ACM TOMS 26 (2000) 363; k < 1 by boosting)."""
    boost = 1.0
    if k < 1.0:
        boost = rng_uniform(s) ** (1.0 / k)
        k = k + 1.0
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = rng_normal(s)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng_uniform(s)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v * boost
        if u > 0.0 and math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v * boost


@nb.njit(cache=True)
def _mupage_lateral(m, h, cos_zenith):
    """(R0, alpha) of the MUPAGE dN/dR = C R / (R + R0)^alpha (PHYSICS.md §1.2), m -> min(m, 4);
    the parameters are those of the bundle generator (:mod:`km3sim.generators._kernels`)."""
    mean_r = mupage_mean_radius(m, h, cos_zenith)
    alpha = mupage_radial_alpha(m, h)
    return 0.5 * (alpha - 3.0) * mean_r, alpha


@nb.njit(cache=True)
def _sample_radius(s, r0, alpha, r_max):
    """R from dN/dR ∝ R (R + R0)^-alpha on [0, r_max]: R / R0 = G(2) / G(alpha - 2)."""
    if r0 <= 0.0 or alpha <= 2.0:
        return 0.0
    for _ in range(100000):
        g1 = -math.log(1.0 - rng_uniform(s)) - math.log(1.0 - rng_uniform(s))
        g2 = _gamma_deviate(s, alpha - 2.0)
        r = r0 * g1 / g2
        if r <= r_max:
            return r
    return r_max


@nb.njit(cache=True)
def _poisson_at_least_one(s, lam):
    """Poisson(lam) conditioned on >= 1: inversion for lam < 1, else rejection of zeros."""
    if lam < 1.0:
        u = rng_uniform(s) * (-math.expm1(-lam))
        k = 1
        p = lam * math.exp(-lam)
        c = p
        while u >= c and k < 1000 and p > 0.0:
            k += 1
            p *= lam / k
            c += p
        return k
    while True:
        k = rng_poisson(s, lam)
        if k >= 1:
            return k


@nb.njit(cache=True)
def _can_intersect(px, py, pz, dx, dy, dz, cx, cy, r, zmin, zmax):
    """(t_in, t_out) of the line p + t d with an upright cylinder; NaN, NaN if it misses."""
    lo = -np.inf
    hi = np.inf
    x = px - cx
    y = py - cy
    a = dx * dx + dy * dy
    c = x * x + y * y - r * r
    if a < 1e-300:
        if c > 0.0:
            return np.nan, np.nan
    else:
        b = x * dx + y * dy
        disc = b * b - a * c
        if disc < 0.0:
            return np.nan, np.nan
        sq = math.sqrt(disc)
        q = -(b + math.copysign(sq, b))
        r1 = c / q if q != 0.0 else 0.0
        r2 = q / a
        lo = min(r1, r2)
        hi = max(r1, r2)
    if abs(dz) < 1e-300:
        if pz < zmin or pz > zmax:
            return np.nan, np.nan
    else:
        t1 = (zmin - pz) / dz
        t2 = (zmax - pz) / dz
        lo = max(lo, min(t1, t2))
        hi = min(hi, max(t1, t2))
    if not (lo <= hi):
        return np.nan, np.nan
    return lo, hi


@nb.njit(cache=True)
def _projected_area(u, r, height):
    return math.pi * r * r * abs(u) + 2.0 * r * height * math.sqrt(max(1.0 - u * u, 0.0))


@nb.njit(cache=True)
def _sample_can_impact(s, u, phi, cx, cy, r, zmin, zmax):
    """Point on the can surface, uniform over the can area projected perpendicular to the
    direction (zenith cos u, azimuth phi of motion): top disk with probability
    pi r^2 u / S, else the visible lateral half (density ∝ cos of the angle to the source)."""
    height = zmax - zmin
    top = math.pi * r * r * u
    w = rng_uniform(s)
    w2 = rng_uniform(s)
    w3 = rng_uniform(s)
    if rng_uniform(s) * _projected_area(u, r, height) < top:
        rr = r * math.sqrt(w)
        ang = 2.0 * math.pi * w2
        return cx + rr * math.cos(ang), cy + rr * math.sin(ang), zmax, True
    psi = math.asin(2.0 * w - 1.0)
    ang = phi + math.pi + psi
    return cx + r * math.cos(ang), cy + r * math.sin(ang), zmin + height * w3, False


@nb.njit(cache=True)
def _grow1(a, n):
    out = np.empty(n, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True)
def _grow2(a, n):
    out = np.empty((n, a.shape[1]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@nb.njit(cache=True)
def simulate_air_showers(
    seeds,
    cum_frac,
    group_a,
    e_min,
    e_max,
    gamma_gen,
    cos_min,
    isotropic,
    cx,
    cy,
    radius,
    zmin,
    zmax,
    z_surface,
    density,
    e_min_can,
    loss_a,
    loss_b,
    loss_e_low,
    conv,
    prompt,
    use_prompt,
    lateral,
    r_max,
    frac_plus,
    truncate,
):
    """Draw air-shower events from per-event seeds (see the module docstring for the steps).

    Parameters
    ----------
    seeds : ndarray of uint64, shape (n,)
    cum_frac : ndarray, shape (n_groups,)
        Cumulative group probabilities (last = 1).
    group_a : ndarray of int64
        Mass number of each group.
    conv, prompt : ndarray, shape (4,)
        Elbert (K, p1, p2, p3) of the conventional and prompt families.
    lateral : bool
        Spread the muons of bundles with the MUPAGE dN/dR.
    truncate : bool
        Draw the primary energy above A x E_thr of the event's impact point (``energy_sampling:
        above_threshold``); the event's energy integral I_E is returned per event.

    Returns
    -------
    ev : tuple
        group index, energy, cos zenith, dir (n, 3), pos (n, 3), lambda, P(N >= 1), number of
        muons drawn, number kept, a uniform number for the event time, the energy integral
        I_E = int E^-gamma dE over the band the energy was drawn from.
    mu : tuple
        event index, pdgid, pos (m, 3), energy at pos, time [ns], surface energy.
    """
    n = seeds.shape[0]
    ng = cum_frac.shape[0]
    ev_group = np.empty(n, dtype=np.int64)
    ev_energy = np.empty(n)
    ev_u = np.empty(n)
    ev_dir = np.empty((n, 3))
    ev_pos = np.empty((n, 3))
    ev_lam = np.zeros(n)
    ev_p1 = np.zeros(n)
    ev_ndrawn = np.zeros(n, dtype=np.int64)
    ev_nkept = np.zeros(n, dtype=np.int64)
    ev_tfrac = np.empty(n)
    ev_ie = np.zeros(n)
    cap = max(64, 4 * n)
    mu_ev = np.empty(cap, dtype=np.int64)
    mu_pdg = np.empty(cap, dtype=np.int32)
    mu_pos = np.empty((cap, 3))
    mu_e = np.empty(cap)
    mu_t = np.empty(cap)
    mu_es = np.empty(cap)
    m = 0
    height = zmax - zmin
    s_bound = math.sqrt((math.pi * radius * radius) ** 2 + (2.0 * radius * height) ** 2)
    k1 = 1.0 - gamma_gen
    for i in range(n):
        s = rng_new(seeds[i])
        ev_tfrac[i] = rng_uniform(s)
        v = rng_uniform(s)
        g = 0
        while g < ng - 1 and v >= cum_frac[g]:
            g += 1
        ev_group[i] = g
        v_energy = rng_uniform(s)
        while True:
            u = cos_min + (1.0 - cos_min) * rng_uniform(s)
            if not isotropic:
                break
            if rng_uniform(s) * s_bound <= _projected_area(u, radius, height):
                break
        ev_u[i] = u
        phi = 2.0 * math.pi * rng_uniform(s)
        st = math.sqrt(max(1.0 - u * u, 0.0))
        dx = st * math.cos(phi)
        dy = st * math.sin(phi)
        dz = -u
        ev_dir[i, 0] = dx
        ev_dir[i, 1] = dy
        ev_dir[i, 2] = dz
        px, py, pz, _top = _sample_can_impact(s, u, phi, cx, cy, radius, zmin, zmax)
        ev_pos[i, 0] = px
        ev_pos[i, 1] = py
        ev_pos[i, 2] = pz
        depth = z_surface - pz
        e_thr = _energy_before(e_min_can, _water_path(depth, u), loss_a, loss_b, loss_e_low)
        a_num = float(group_a[g])
        # primary energy: power law on [e_lo, e_max]; with truncation e_lo = max(e_min, A E_thr),
        # below which the primary cannot send a muon to the can (the yield is exactly zero)
        e_lo = e_min
        if truncate and a_num * e_thr > e_min:
            e_lo = min(a_num * e_thr, e_max)
        if e_lo >= e_max:
            ev_energy[i] = e_max
            continue  # no primary in the band can reach the can here: I_E = 0, weight 0
        if abs(k1) < 1e-12:
            e0 = e_lo * (e_max / e_lo) ** v_energy
            ev_ie[i] = math.log(e_max / e_lo)
        else:
            e0 = (e_lo**k1 + v_energy * (e_max**k1 - e_lo**k1)) ** (1.0 / k1)
            ev_ie[i] = (e_max**k1 - e_lo**k1) / k1
        e0 = min(max(e0, e_lo), e_max)
        ev_energy[i] = e0
        ceff = _effective_cos(u)
        lam_c = _elbert_n(conv[0], conv[1], conv[2], conv[3], False, a_num, e0, ceff, e_thr)
        lam_p = 0.0
        if use_prompt:
            lam_p = _elbert_n(prompt[0], prompt[1], prompt[2], prompt[3], True, a_num, e0, ceff, e_thr)
        lam = lam_c + lam_p
        ev_lam[i] = lam
        if not (lam > 0.0):
            continue
        ev_p1[i] = -math.expm1(-lam)
        nmu = _poisson_at_least_one(s, lam)
        ev_ndrawn[i] = nmu
        x_thr = a_num * e_thr / e0
        r0 = 0.0
        alpha = 0.0
        spread = lateral and nmu >= 2
        # plane basis perpendicular to the axis: e1 horizontal, e2 = dir x e1
        e1x = -math.sin(phi)
        e1y = math.cos(phi)
        e2x = -dz * e1y
        e2y = dz * e1x
        e2z = dx * e1y - dy * e1x
        if spread:
            r0, alpha = _mupage_lateral(nmu, density * depth * 1e-3, min(u, 1.0))
        kept = 0
        for _j in range(nmu):
            if use_prompt and rng_uniform(s) * lam < lam_p:
                x = _solve_elbert_x(1.0 - rng_uniform(s), x_thr, prompt[1], prompt[2], prompt[3])
            else:
                x = _solve_elbert_x(1.0 - rng_uniform(s), x_thr, conv[1], conv[2], conv[3])
            e_surf = x * e0 / a_num
            pdg = -13 if rng_uniform(s) < frac_plus else 13
            qx, qy, qz = px, py, pz
            if spread:
                rr = _sample_radius(s, r0, alpha, r_max)
                beta = 2.0 * math.pi * rng_uniform(s)
                cb = rr * math.cos(beta)
                sb = rr * math.sin(beta)
                qx = px + cb * e1x + sb * e2x
                qy = py + cb * e1y + sb * e2y
                qz = pz + sb * e2z
            t_in, _t_out = _can_intersect(qx, qy, qz, dx, dy, dz, cx, cy, radius, zmin, zmax)
            step = 0.0
            if t_in == t_in:  # not NaN: the muon crosses the can
                step = t_in
            ox = qx + step * dx
            oy = qy + step * dy
            oz = qz + step * dz
            e_at = energy_after_one(e_surf, _water_path(z_surface - oz, u), loss_a, loss_b, loss_e_low)
            if not (e_at >= e_min_can):
                continue
            if m >= cap:
                cap *= 2
                mu_ev = _grow1(mu_ev, cap)
                mu_pdg = _grow1(mu_pdg, cap)
                mu_pos = _grow2(mu_pos, cap)
                mu_e = _grow1(mu_e, cap)
                mu_t = _grow1(mu_t, cap)
                mu_es = _grow1(mu_es, cap)
            mu_ev[m] = i
            mu_pdg[m] = pdg
            mu_pos[m, 0] = ox
            mu_pos[m, 1] = oy
            mu_pos[m, 2] = oz
            mu_e[m] = e_at
            mu_t[m] = step / C_LIGHT
            mu_es[m] = e_surf
            m += 1
            kept += 1
        ev_nkept[i] = kept
    ev = (ev_group, ev_energy, ev_u, ev_dir, ev_pos, ev_lam, ev_p1, ev_ndrawn, ev_nkept, ev_tfrac, ev_ie)
    mu = (mu_ev[:m], mu_pdg[:m], mu_pos[:m], mu_e[:m], mu_t[:m], mu_es[:m])
    return ev, mu


@nb.njit(cache=True)
def _sample_elbert_x_many(seed, n, x_thr, p1, p2, p3):
    s = rng_new(seed)
    out = np.empty(n)
    for i in range(n):
        out[i] = _solve_elbert_x(1.0 - rng_uniform(s), x_thr, p1, p2, p3)
    return out


@nb.njit(cache=True)
def _sample_radius_many(seed, n, r0, alpha, r_max):
    s = rng_new(seed)
    out = np.empty(n)
    for i in range(n):
        out[i] = _sample_radius(s, r0, alpha, r_max)
    return out


@nb.njit(cache=True)
def _sample_can_impact_many(seed, n, u, phi, cx, cy, r, zmin, zmax):
    s = rng_new(seed)
    out = np.empty((n, 3))
    top = np.empty(n, dtype=np.bool_)
    for i in range(n):
        x, y, z, t = _sample_can_impact(s, u, phi, cx, cy, r, zmin, zmax)
        out[i, 0] = x
        out[i, 1] = y
        out[i, 2] = z
        top[i] = t
    return out, top


@nb.njit(cache=True)
def _poisson_at_least_one_many(seed, n, lam):
    s = rng_new(seed)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = _poisson_at_least_one(s, lam)
    return out


# ===================================================================== python-level physics
def effective_cos_zenith(cos_zenith):
    """Chirkin's effective cos(theta*) for the curved atmosphere (PHYSICS.md §1.5(c), hep-ph/0407078)."""
    u = np.asarray(cos_zenith, dtype=np.float64)
    p1, p2, p3, p4, p5 = _CHIRKIN
    out = np.sqrt((u * u + p1 * p1 + p2 * u**p3 + p4 * u**p5) / (1.0 + p1 * p1 + p2 + p4))
    return out if out.ndim else float(out)


def elbert_muon_yield(energy_mu_gev, energy_primary_gev, mass_number, cos_zenith, family: str = "conventional"):
    """Mean number of muons above ``energy_mu_gev`` at the surface per primary (PHYSICS.md §2.2).

    Parameters
    ----------
    energy_mu_gev : array_like
        Muon energy threshold at the sea surface [GeV].
    energy_primary_gev : array_like
        Energy of the primary nucleus [GeV].
    mass_number : array_like
        Mass number A of the primary.
    cos_zenith : array_like
        Cosine of the zenith angle (cos(theta*) is applied inside).
    family : {"conventional", "prompt", "total"}
    """
    emu, e0, a, u = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (energy_mu_gev, energy_primary_gev, mass_number, cos_zenith)))
    x = a * emu / e0
    ok = (x > 0.0) & (x < 1.0)
    xs = np.where(ok, x, 0.5)
    out = np.zeros(x.shape)
    fams = {"conventional": [(ELBERT_CONVENTIONAL, False)], "prompt": [(ELBERT_PROMPT, True)],
            "total": [(ELBERT_CONVENTIONAL, False), (ELBERT_PROMPT, True)]}
    if family not in fams:
        raise ValueError(f"family must be one of {sorted(fams)}, got {family!r}")
    for (k, p1, p2, p3), is_prompt in fams[family]:
        pref = k * a * (1.0 if is_prompt else a / (e0 * effective_cos_zenith(u)))
        out = out + np.where(ok, pref * xs ** (-p1) * (1.0 - xs**p3) ** p2, 0.0)
    return out if out.ndim else float(out)


def water_path_length(depth_m, cos_zenith):
    """Path [m] through the sea from the surface to depth ``depth_m`` along zenith
    ``cos_zenith``, for a spherical sea surface of radius :data:`EARTH_RADIUS_M`."""
    d, u = np.broadcast_arrays(np.asarray(depth_m, dtype=np.float64), np.asarray(cos_zenith, dtype=np.float64))
    rp = EARTH_RADIUS_M - d
    num = np.clip(d, 0.0, None) * (2.0 * EARTH_RADIUS_M - d)
    out = num / (np.sqrt(rp * rp * u * u + num) + rp * u)
    return out if out.ndim else float(out)


def surface_energy_threshold(path_m, energy_final_gev=0.0, table: ContinuousLossTable | None = None):
    """Energy [GeV] a muon needs to travel ``path_m`` [m] and arrive with ``energy_final_gev``
    (exact inverse of the continuous loss of ``table``, default sea water, PHYSICS.md §4.1)."""
    table = table if table is not None else ContinuousLossTable.sea_water()
    args = table.args()
    x, e1 = np.broadcast_arrays(np.asarray(path_m, dtype=np.float64), np.asarray(energy_final_gev, dtype=np.float64))
    out = np.array([_energy_before(float(b), float(a), *args) for a, b in zip(x.ravel(), e1.ravel())]).reshape(x.shape)
    return out if out.ndim else float(out)


def mupage_lateral_parameters(multiplicity: int, h_kmwe: float, theta_rad: float) -> tuple[float, float, float]:
    """(<R> [m], alpha, R0 [m]) of the MUPAGE lateral distribution (PHYSICS.md §1.2)."""
    r0, alpha = _mupage_lateral(int(multiplicity), float(h_kmwe), math.cos(float(theta_rad)))
    mean_r = 2.0 * r0 / (alpha - 3.0)
    return float(mean_r), float(alpha), float(r0)


def reweight(events, model) -> np.ndarray:
    """weight_w3 [1/s] of air-shower events for another primary flux model.

    ``w3' = w2 Phi'(pdg, E) / n_gen`` (= ``w3 Phi' / Phi`` wherever the generation model's
    flux Phi is non-zero).

    Parameters
    ----------
    events : Table or mapping
        With columns ``pdgid``, ``energy``, ``weight_w2``, ``n_gen``.
    model : str or PrimaryFlux
        Target model (``"H3a"``, ``"H4a"``, ``"GST3"``, ``"GST4"``).
    """
    flux = get_flux_model(model)
    w2 = np.asarray(events["weight_w2"], dtype=np.float64)
    n_gen = np.asarray(events["n_gen"], dtype=np.float64)
    phi = flux.flux(np.asarray(events["pdgid"], dtype=np.int64), np.asarray(events["energy"], dtype=np.float64))
    return w2 * np.asarray(phi, dtype=np.float64) / n_gen


def _energy_integral(emin: float, emax: float, gamma: float) -> float:
    if abs(gamma - 1.0) < 1e-12:
        return math.log(emax / emin)
    k = 1.0 - gamma
    return (emax**k - emin**k) / k


# ==================================================================================== stage
@register_stage
class AirShowerGenerator(CanGenerator):
    """Cosmic-ray primaries on the can and their muon bundles (module docstring).

    Attributes
    ----------
    can : Can
    flux : PrimaryFlux
        The configured (generation-weight) flux model.
    groups : tuple of int
        PDG codes of the generated groups; ``fractions`` their probabilities.
    acceptance_m2_sr : float
        G = 2 pi int S dcos(theta) [m^2 sr] (isotropic_flux sampling).
    energy_integral : float
        I_E = int E^-gamma_gen dE [GeV^(1-gamma)].
    """

    name = "air_showers"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`AirShowerGenerator`."""

        n_events: int = Field(10000, ge=0, description="primaries generated per run (fixed-size samples)")
        flux_model: Literal["H3a", "H4a", "GST3", "GST4"] = Field(
            "H3a", description="primary flux model of weight_w3 (and of the 'flux' group fractions)"
        )
        group_fractions: Literal["flux", "equal"] | dict[int, float] = Field(
            "flux",
            description="probability of each nucleus group: 'flux' = proportional to the model's flux "
            "integral over the energy band, 'equal', or {pdg: fraction} (normalised)",
        )
        energy_min_gev: float = Field(1e3, gt=0.0, description="lowest primary energy per nucleus [GeV]")
        energy_max_gev: float = Field(1e8, gt=0.0, description="highest primary energy per nucleus [GeV]")
        spectral_index: float = Field(2.0, ge=0.0, le=5.0, description="generation spectrum E^-gamma: gamma")
        cos_zenith_min: float = Field(
            math.cos(math.radians(85.0)), ge=0.0, lt=1.0, description="lowest cos(zenith) (default: 85 degrees)"
        )
        zenith_sampling: Literal["isotropic_flux", "uniform_cos"] = Field(
            "isotropic_flux",
            description="isotropic_flux: cos(zenith) ∝ projected can area (an isotropic flux crossing the can); "
            "uniform_cos: uniform in cos(zenith)",
        )
        can_margin_m: float = Field(200.0, ge=0.0, description="can margin around the DOMs [m]")
        muon_energy_min_gev: float = Field(1.0, gt=0.0, description="lowest muon energy at the can [GeV]")
        prompt_muons: bool = Field(True, description="add the prompt Elbert family")
        energy_sampling: Literal["above_threshold", "full"] = Field(
            "above_threshold",
            description="above_threshold: primary energy drawn above A x (muon threshold at the impact point), "
            "where the muon yield is non-zero (no empty events); full: over the whole band",
        )
        lateral: Literal["mupage", "none"] = Field(
            "mupage", description="lateral spread of bundle muons: MUPAGE dN/dR (PHYSICS.md §1.2) or none (all on the axis)"
        )
        lateral_r_max_m: float = Field(100.0, gt=0.0, description="largest distance of a muon from the axis [m] (MUPAGE: 100)")

        @field_validator("group_fractions")
        @classmethod
        def _check_fractions(cls, v):
            if isinstance(v, dict):
                unknown = [k for k in v if k not in GENERATION_GROUPS]
                if unknown:
                    raise ValueError(f"unknown groups {unknown}; groups are {list(GENERATION_GROUPS)} ({GROUP_NAMES})")
                if any(not (f >= 0.0) or not math.isfinite(f) for f in v.values()) or not sum(v.values()) > 0.0:
                    raise ValueError(f"fractions must be >= 0 with a positive sum, got {v}")
            return v

        @model_validator(mode="after")
        def _check_band(self):
            if not self.energy_max_gev > self.energy_min_gev:
                raise ValueError(
                    f"energy_max_gev ({self.energy_max_gev}) must exceed energy_min_gev ({self.energy_min_gev})"
                )
            return self

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        cfg = self.config
        self.flux = get_flux_model(cfg.flux_model)
        self.groups, self.fractions = self._group_fractions()
        self.energy_integral = _energy_integral(cfg.energy_min_gev, cfg.energy_max_gev, cfg.spectral_index)
        self.can: Can | None = None
        if detector is not None:
            self._setup(detector)

    # ------------------------------------------------------------------------------- setup
    def _group_fractions(self):
        cfg = self.config
        gf = cfg.group_fractions
        if isinstance(gf, dict):
            groups = tuple(p for p in GENERATION_GROUPS if gf.get(p, 0.0) > 0.0)
            f = np.array([gf[p] for p in groups], dtype=np.float64)
        elif gf == "equal":
            groups = GENERATION_GROUPS
            f = np.ones(len(groups))
        else:
            groups = GENERATION_GROUPS
            f = np.array([self.flux.integral(p, cfg.energy_min_gev, cfg.energy_max_gev) for p in groups])
            keep = f > 0.0
            groups = tuple(p for p, k in zip(groups, keep) if k)
            f = f[keep]
        return groups, f / f.sum()

    def _setup(self, detector) -> None:
        cfg = self.config
        self.can = can_from_detector(detector, cfg.can_margin_m)
        self._rho = float(self.site.water_density_g_cm3)
        self._z_surface = float(self.site.seabed_depth_m)
        if self.can.zmax >= self._z_surface:
            raise ConfigError(
                f"stage {self.name!r}: the can top (z = {self.can.zmax:.1f} m) is not below the sea surface "
                f"(z = {self._z_surface:.1f} m above the floor); reduce can_margin_m"
            )
        self.loss_table = ContinuousLossTable.sea_water(self._rho)
        c = self.can
        u0 = cfg.cos_zenith_min
        area = math.pi * c.radius**2 * 0.5 * (1.0 - u0 * u0) + 2.0 * c.radius * c.height * 0.5 * (
            0.5 * math.pi - u0 * math.sqrt(1.0 - u0 * u0) - math.asin(u0)
        )
        self.acceptance_m2_sr = 2.0 * math.pi * area
        # lowest surface energy any muon needs (vertical, to the can top): protons below it
        # send no muon. Protons between it and 1.25 times it give < 1e-3 of the vertical proton
        # muon rate (H3a x Elbert, by quadrature); a band starting higher misses more.
        self.energy_threshold_min_gev = float(
            surface_energy_threshold(self._z_surface - c.zmax, cfg.muon_energy_min_gev, self.loss_table)
        )
        if cfg.energy_min_gev > 1.25 * self.energy_threshold_min_gev:
            logger.warning(
                "air showers: energy_min_gev = %.4g GeV is well above the lowest muon threshold %.4g GeV at the can top: "
                "primaries below the band also send muons to the can and are not simulated",
                cfg.energy_min_gev,
                self.energy_threshold_min_gev,
            )
        h_lo = self._rho * (self._z_surface - c.zmax) * 1e-3
        h_hi = self._rho * (self._z_surface - c.zmin) * 1e-3
        if cfg.lateral == "mupage" and (h_lo < 1.5 or h_hi > 5.0):
            logger.warning("air showers: can depths %.2f-%.2f km w.e. outside the MUPAGE lateral-distribution range 1.5-5", h_lo, h_hi)

    def header(self) -> dict:
        self._require_setup()
        cfg = self.config
        c = self.can
        return {
            "generator": "km3sim air showers (Elbert muon yield)",
            "flux_model": cfg.flux_model,
            "groups": [int(p) for p in self.groups],
            "group_names": [GROUP_NAMES[p] for p in self.groups],
            "group_fractions": [float(f) for f in self.fractions],
            "spectrum": {"index": cfg.spectral_index, "energy_min_gev": cfg.energy_min_gev, "energy_max_gev": cfg.energy_max_gev,
                         "energy_integral": self.energy_integral, "per": "nucleus"},
            "zenith": {"cos_min": cfg.cos_zenith_min, "cos_max": 1.0, "sampling": cfg.zenith_sampling},
            "acceptance_m2_sr": self.acceptance_m2_sr,
            "can": {"x": c.x, "y": c.y, "zmin": c.zmin, "zmax": c.zmax, "r": c.radius},
            "seabed_depth_m": self._z_surface,
            "water_density_g_cm3": self._rho,
            "muon_energy_min_gev": cfg.muon_energy_min_gev,
            "energy_threshold_min_gev": self.energy_threshold_min_gev,
            "muon_yield": {"conventional": list(ELBERT_CONVENTIONAL), "prompt": list(ELBERT_PROMPT) if cfg.prompt_muons else None},
            "lateral": cfg.lateral,
            "lateral_r_max_m": cfg.lateral_r_max_m,
            "muon_charge_ratio": MUON_CHARGE_RATIO,
            "n_events_per_run": cfg.n_events,
        }

    @classmethod
    def plan_events(cls, config, detector, site, livetime_s, seed, run_id) -> int:
        """``n_events`` of the config: every run is a fixed-size sample."""
        return int(config.n_events)

    # ---------------------------------------------------------------------------- generate
    def generate(self, seeds: np.ndarray):
        """Draw events from per-event seeds; returns the raw (events, muons) tuples of
        :func:`simulate_air_showers` plus the per-event group PDG codes and weight_w2."""
        self._require_setup()
        cfg = self.config
        c = self.can
        cum = np.cumsum(self.fractions)
        cum[-1] = 1.0
        ev, mu = simulate_air_showers(
            np.ascontiguousarray(seeds, dtype=np.uint64),
            cum,
            np.asarray(mass_number(np.array(self.groups)), dtype=np.int64),
            float(cfg.energy_min_gev),
            float(cfg.energy_max_gev),
            float(cfg.spectral_index),
            float(cfg.cos_zenith_min),
            cfg.zenith_sampling == "isotropic_flux",
            c.x,
            c.y,
            c.radius,
            c.zmin,
            c.zmax,
            self._z_surface,
            self._rho,
            float(cfg.muon_energy_min_gev),
            *self.loss_table.args(),
            np.array(ELBERT_CONVENTIONAL),
            np.array(ELBERT_PROMPT),
            bool(cfg.prompt_muons),
            cfg.lateral == "mupage",
            float(cfg.lateral_r_max_m),
            MUON_CHARGE_RATIO / (1.0 + MUON_CHARGE_RATIO),
            cfg.energy_sampling == "above_threshold",
        )
        group_idx, energy, u = ev[0], ev[1], ev[2]
        pdg = np.asarray(self.groups, dtype=np.int64)[group_idx]
        w2 = self.weight_w2(group_idx, energy, u, ev[6], ev[10])
        return ev, mu, pdg, w2

    def weight_w2(self, group_idx, energy, cos_zenith, p_at_least_one, energy_integral=None):
        """w2 = G I_E E^gamma / f_g x P(N >= 1) [GeV m^2 sr] (module docstring).

        ``energy_integral``: per-event I_E (``energy_sampling: above_threshold``); default the
        integral over the whole band."""
        cfg = self.config
        if cfg.zenith_sampling == "isotropic_flux":
            g = self.acceptance_m2_sr
        else:
            g = self.can.area_projected(cos_zenith) * 2.0 * math.pi * (1.0 - cfg.cos_zenith_min)
        f = self.fractions[np.asarray(group_idx)]
        ie = self.energy_integral if energy_integral is None else np.asarray(energy_integral)
        return g * ie * np.asarray(energy) ** cfg.spectral_index / f * np.asarray(p_at_least_one)

    def process(self, tables, ctx: StageContext):
        self._require_setup(ctx.detector, ctx.site)
        ids = self.chunk_event_ids(ctx)
        ev, mu, pdg, w2 = self.generate(ctx.seeds(ids))
        n = len(ids)
        n_gen = int(ctx.n_events_run)
        livetime = float(ctx.livetime_s)
        phi = self.flux.flux(pdg, ev[1]) if n else np.zeros(0)
        w3 = w2 * phi / n_gen if n_gen > 0 else np.full(n, np.nan)
        dirs, pos = ev[3], ev[4]
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=ev[9] * max(livetime, 0.0) * 1e9,
            pdgid=pdg.astype(np.int32),
            n_muons=ev[8].astype(np.int32),
            energy=ev[1],
            pos_x=pos[:, 0],
            pos_y=pos[:, 1],
            pos_z=pos[:, 2],
            dir_x=dirs[:, 0],
            dir_y=dirs[:, 1],
            dir_z=dirs[:, 2],
            n_gen=np.full(n, n_gen, dtype=np.int64),
            livetime_s=np.full(n, livetime),
            weight_w2=w2,
            weight_w3=w3,
        )
        mu_ev, mu_pdg, mu_pos, mu_e, mu_t, _ = mu
        nm = len(mu_ev)
        # track_id: 0-based within the event (muons of an event are consecutive)
        first = np.searchsorted(mu_ev, mu_ev, side="left")
        track_id = np.arange(nm) - first
        mdir = dirs[mu_ev] if nm else np.zeros((0, 3))
        tracks = make_table(
            "mc_tracks",
            event_id=ids[mu_ev],
            track_id=track_id.astype(np.int32),
            parent_id=np.full(nm, -1, dtype=np.int32),
            pdgid=mu_pdg,
            pos_x=mu_pos[:, 0],
            pos_y=mu_pos[:, 1],
            pos_z=mu_pos[:, 2],
            dir_x=mdir[:, 0],
            dir_y=mdir[:, 1],
            dir_z=mdir[:, 2],
            energy=mu_e,
            time=mu_t,
            length=np.zeros(nm),
            energy_lost_in_can=np.zeros(nm),
        )
        return {"events": events, "mc_tracks": tracks}
