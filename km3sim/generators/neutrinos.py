"""Neutrino interactions in and around the can with gSeaGen-like generation weights.

Generation (in the spirit of gSeaGen: C. Distefano et al. for KM3NeT, "gSeaGen: the KM3NeT
GENIE-based code for neutrino telescopes", Comput. Phys. Commun. 256 (2020) 107477,
arXiv:2003.14040; weights as in PHYSICS.md §3.5). Every event is one interaction; nothing is
redrawn, so a run of n events has n_gen = n exactly:

1. Flavour: one of ``flavours`` with fixed probabilities f (``flavour_fractions``, equal by
   default).
2. Energy: E^-gamma on [energy_min_gev, energy_max_gev] (inverse transform).
3. Direction: uniform in cos(theta) on [cos_zenith_min, cos_zenith_max] and in azimuth.
   theta is the zenith angle of the arrival direction (theta = 0: from straight above, down-
   going), so the direction of motion is dir = -(sin theta cos phi, sin theta sin phi,
   cos theta) and cos(theta) = -dir_z.
4. Interaction channel among the simulated ones (``interactions``: DIS "cc", "nc" and, for
   nubar_e, the Glashow resonance "glashow" split into W -> hadrons, e, mu, tau), with
   probability p_c = sigma_c / sum sigma (cross sections in sea water,
   :mod:`km3sim.physics.xsec`).
5. Vertex uniform in the generation volume of the channel, an upright cylinder: the can
   (:func:`km3sim.generators.can.can_from_detector`) for channels whose products are only
   showers and neutrinos; for channels with a muon or tau (nu_mu CC, nu_tau CC, W -> mu nu,
   W -> tau nu) the can enlarged in radius, downwards and upwards by the sea-water muon range
   R_mu(E) at the neutrino energy (:func:`km3sim.propagation.muons.muon_range`, PHYSICS.md
   §4.1; an upper bound of the lepton's range, also in rock, where the range in metres is
   shorter). The cylinder is cut at the sea surface; the part below the sea floor (z < 0) is
   rock (:data:`km3sim.constants.DENSITY_ROCK`), the rest sea water (the site's density).
6. Inelasticity y (:func:`km3sim.physics.xsec.sample_inelasticity`) or the Glashow lepton
   energy fraction, and the time of the event, uniform in the run's livetime.
7. DIS kinematics (:meth:`NeutrinoGenerator.dis_kinematics`): Bjorken x given y from the
   leading-order parton model, d^2 sigma/dx dy ~ [x q(x,Q^2) + x qbar(x,Q^2) (1-y)^2] /
   (1 + Q^2/M_W,Z^2)^2 (Gandhi, Quigg, Reno, Sarcevic, Astropart. Phys. 5 (1996) 81), with
   the GRV95 LO parton distributions of an isoscalar nucleon (Glueck, Reya, Vogt, Z. Phys. C
   67 (1995) 433; :func:`grv95lo_valence_sea`). The part of the y pdf that was drawn tells
   whether a quark (valence + sea x-shape) or an antiquark (sea) was struck, so the y
   distribution is unchanged; x is drawn by inverse transform (:func:`sample_bjorken_x`)
   restricted to the physical region. Then Q^2 = 2 M_N E x y, E_l = (1-y) E,
   p_l = sqrt(E_l^2 - m_l^2), cos theta from Q^2 = 2 E (E_l - p_l cos theta) - m_l^2, a
   uniform azimuth about the neutrino, and the hadronic system along p_nu - p_l
   (:func:`dis_final_state`). The median nu_mu/nubar_mu CC angle is 2.4, 0.67, 0.17, 0.032
   deg at 0.1, 1, 10, 100 TeV (0.7 deg (E/TeV)^-0.6 in the ANTARES proposal,
   astro-ph/9907432).

Products (``mc_tracks``, all starting at the vertex at time 0):

- CC: the charged lepton (+-11/13/15, same sign as the neutrino's code) with (total) energy
  E (1 - y) along the DIS lepton direction (step 7), then the hadronic system with E y as one
  track with PDG code 211 (pi+, a stand-in for the hadronic shower; its sign means nothing)
  along p_nu - p_l.
- NC: the outgoing neutrino (same code) with E (1 - y), then the hadronic system (211, E y),
  directions as for CC (massless lepton, Z propagator).
- Glashow: W -> hadrons: one 211 track with E; W -> l nubar_l: l- (11/13/15) with E x and
  nubar_l (-12/-14/-16) with E (1 - x), x drawn from 3 (1-x)^2; collinear with the neutrino
  (the W has gamma ~ 8e4: opening angles ~ 1e-5 rad).

Event rows (``events``): pdgid = the neutrino, energy = E_nu, pos = the vertex, dir = the
neutrino direction, is_cc = 1 for CC and the Glashow resonance (W exchange), 0 for NC,
bjorken_y = y (NaN for Glashow events), n_muons = muons among the products, n_gen = the
run's n_events_run, livetime_s = the run's livetime, mc_time uniform in [0, livetime).

Limitations: lepton masses and kinematic limits are ignored in y (the lepton energy
E (1 - y) may fall below its mass; the nu_tau CC threshold suppression below ~20 GeV is
missing); where no x is physical for the drawn y (E (1 - y) <= m_l, or Q^2_min > 2 M_N E y:
~0.1 % of nu_mu CC events at 20 GeV, ~10 % of nu_tau CC at 20 GeV) the lepton stays
collinear with p_l = sqrt(max(E_l^2 - m_l^2, 0)); x given y uses LO PDFs without the
y-x correlation of the propagator in the y marginal, no charm-mass threshold, no nuclear
effects, and the GRV95 formulas extrapolated below x = 1e-5 (E above ~1e8 GeV) and frozen
below Q^2 = 0.23 GeV^2; the hadronic track energy is E y (not E y + M_N) and its momentum
|p_nu - p_l| is implied; no quasi-elastic or resonant processes (the cross sections follow
the DIS curve below 50 GeV); the hadronic system is a single track; y follows the
parton-model shapes of :mod:`km3sim.physics.xsec`.

Weights (PHYSICS.md §3.5). For an event of flavour f, channel c, energy E, zenith theta and
vertex x (medium m(x))::

    w2 = V_gen,c(E) * I_theta * I_E * E^gamma * sigma_c(E, m) / p_c(E) * n_N(m) * P_Earth(E, theta) / f

- V_gen,c(E) [m^3]: volume of the generation cylinder of the channel (step 5);
- I_theta = 2 pi (cos_zenith_max - cos_zenith_min) [sr];
- I_E = int E^-gamma dE over the energy range [GeV^(1-gamma)];
- sigma_c(E, m) / p_c(E) [m^2]: the channel's cross section per nucleon at the vertex over
  the probability with which the channel was chosen; for DIS this is the total simulated
  cross section sum_c sigma_c(E), as in gSeaGen. (The Glashow channels scale with the
  electrons per nucleon, which differ between water and rock; that is why sigma_c(E, m)
  appears and not simply the sum.)
- n_N(m) = rho(m) N_A [nucleons / m^3];
- P_Earth(E, theta): transmission from the surface to the sea floor below the can
  (:meth:`km3sim.physics.earth.EarthModel.transmission`; the vertex position within the
  generation volume is neglected, a < 1 % effect below 10 PeV);
- f: the flavour fraction (as the type_fraction of IceCube's OneWeight, PHYSICS.md §3.5),
  so that ``n_gen`` counts all flavours generated together.

w2 is in GeV m^2 sr and the expected number of events in a livetime T for a flux Phi
[GeV^-1 m^-2 s^-1 sr^-1] is ``T sum_i w2_i Phi_i / n_gen`` (:mod:`km3sim.weights`);
``weight_w3 = w2 Phi_ref / n_gen`` [1/s] with the configured reference flux (NaN without).
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numba as nb
import numpy as np
from pydantic import Field, field_validator, model_validator

from km3sim import weights
from km3sim.constants import AVOGADRO, DENSITY_ROCK
from km3sim.errors import ConfigError, StageError
from km3sim.generators.can import Can, can_from_detector
from km3sim.physics import xsec
from km3sim.physics.earth import EarthModel
from km3sim.propagation.muons import ContinuousLossTable, muon_range
from km3sim.random import rng_new, rng_uniform
from km3sim.schema import make_table
from km3sim.generators.base import CanGenerator
from km3sim.stage import Site, StageConfig, StageContext, register_stage

__all__ = [
    "NeutrinoGenerator",
    "PowerLawFluxSpec",
    "PowerLawReference",
    "CHANNEL_NAMES",
    "draw_event_uniforms",
]

logger = logging.getLogger(__name__)

#: Interaction channels, in the column order used internally.
CHANNEL_NAMES = ("cc", "nc", "glashow_hadrons", "glashow_e", "glashow_mu", "glashow_tau")
_CC, _NC, _GR_HAD, _GR_E, _GR_MU, _GR_TAU = range(6)
_N_CHANNELS = len(CHANNEL_NAMES)
#: uniform deviates per event: flavour, E, cos theta, phi, channel, vertex r, vertex phi,
#: vertex z, y part, y value (or Glashow lepton fraction), time, Bjorken x, lepton azimuth
#: about the neutrino, NC struck-parton type (appended after the first 11 so that those keep
#: their values)
N_UNIFORMS = 14
_NEUTRINOS = (12, -12, 14, -14, 16, -16)
_PION = 211


@nb.njit(cache=True)
def draw_event_uniforms(seeds, k):
    """``k`` uniform deviates in [0, 1) per event, each row from that event's seed only.

    Parameters
    ----------
    seeds : ndarray of uint64
        Per-event seeds (:meth:`km3sim.stage.StageContext.seeds`).
    k : int
        Deviates per event.
    """
    n = seeds.shape[0]
    out = np.empty((n, k))
    for i in range(n):
        s = rng_new(seeds[i])
        for j in range(k):
            out[i, j] = rng_uniform(s)
    return out


# ------------------------------------------------------------------- DIS kinematics (x, angle)
#: mean nucleon mass (p + n)/2 [GeV] (PDG)
M_NUCLEON_GEV = 0.5 * (0.93827208816 + 0.93956542052)
#: charged-lepton masses [GeV] (PDG): e, mu, tau
M_LEPTON_GEV = {11: 0.51099895e-3, 13: 0.1056583755, 15: 1.77686}
#: Z mass [GeV] (PDG), the NC propagator
M_Z_GEV = 91.1876
#: Bjorken-x grid of the inverse-CDF sampler: cells uniform in ln x on [X_GRID_MIN, 1]
X_GRID_MIN = 1e-9
N_X_CELLS = 160


@nb.njit(cache=True)
def grv95lo_valence_sea(x, q2):
    """x (u_v + d_v) and x S, S = ubar + dbar + s, of the proton at Bjorken x and Q^2 [GeV^2].

    The leading-order parametrisation GRV95 LO: M. Glueck, E. Reya, A. Vogt, "Dynamical
    parton distributions of the proton and small-x physics", Z. Phys. C 67 (1995) 433,
    appendix (LO: Lambda_4 = 0.232 GeV, mu^2 = 0.23 GeV^2, s = ln[ln(Q^2/Lambda^2) /
    ln(mu^2/Lambda^2)]; the functional forms x v = N x^a (1 + A x^b + B x + C x^(3/2))
    (1-x)^D for the valence quarks and x w = [x^a (A + B x + C x^2) ln(1/x)^b + s^alpha
    exp(-E + sqrt(E' s^beta ln(1/x)))] (1-x)^D for the light sea w = ubar + dbar, and the
    strange-sea form). Fitted for 1e-5 < x < 1 and mu^2 < Q^2 < 1e8 GeV^2; below mu^2 the
    input scale is used (s = 0), below x = 1e-5 the formulas are extrapolated. For an
    isoscalar nucleon (p + n)/2 the sums u_v + d_v and ubar + dbar are the same as for the
    proton, so these serve as the isoscalar quark (valence + sea) and antiquark shapes.
    """
    lam2 = 0.232 * 0.232
    mu2 = 0.23
    q2 = max(q2, mu2)
    s = math.log(math.log(q2 / lam2) / math.log(mu2 / lam2))
    s2 = s * s
    x1 = 1.0 - x
    if x1 <= 0.0:
        return 0.0, 0.0
    sx = math.sqrt(x)
    x32 = sx * x
    lx = math.log(1.0 / x)
    # u valence
    nu = 2.284 + 0.802 * s + 0.055 * s2
    au = 0.59 - 0.024 * s
    bu = 0.131 + 0.063 * s
    a_u = -0.449 - 0.138 * s - 0.076 * s2
    b_u = 0.213 + 2.669 * s - 0.728 * s2
    c_u = 8.854 - 9.135 * s + 1.979 * s2
    d_u = 2.997 + 0.753 * s - 0.076 * s2
    xuv = nu * x**au * (1.0 + a_u * x**bu + b_u * x + c_u * x32) * x1**d_u
    # d valence
    nd = 0.371 + 0.083 * s + 0.039 * s2
    ad = 0.376
    bd = 0.486 + 0.062 * s
    a_d = -0.509 + 3.31 * s - 1.248 * s2
    b_d = 12.41 - 10.52 * s + 2.267 * s2
    c_d = 6.373 - 6.208 * s + 1.418 * s2
    d_d = 3.691 + 0.799 * s - 0.071 * s2
    xdv = nd * x**ad * (1.0 + a_d * x**bd + b_d * x + c_d * x32) * x1**d_d
    # light sea w = ubar + dbar
    aw = 0.41 - 0.232 * s
    bw = 0.534 - 0.457 * s
    a_w = 0.89 - 0.14 * s
    b_w = -0.981
    c_w = 0.32 + 0.683 * s
    d_w = 4.752 + 1.164 * s + 0.286 * s2
    e_w = 4.119 + 1.713 * s
    ep_w = 0.682 + 2.978 * s
    xw = (x**aw * (a_w + b_w * x + c_w * x * x) * lx**bw
          + s**1.451 * math.exp(-e_w + math.sqrt(ep_w * s**0.271 * lx))) * x1**d_w
    # strange sea
    xs = 0.0
    if s > 0.0:
        a_s = 1.798 - 0.596 * s
        sq = math.sqrt(s)
        xs = (s**0.914 / lx**a_s * (1.0 + (-5.548 + 3.669 * sq - 0.616 * s) * sx + (18.92 - 16.73 * sq + 5.168 * s) * x)
              * x1 ** (6.379 - 0.35 * s + 0.142 * s2) * math.exp(-(3.981 + 1.638 * s) + math.sqrt(6.402 * s**0.577 * lx)))
    return max(xuv + xdv, 0.0), max(xw + xs, 0.0)


@nb.njit(cache=True)
def _q2_window(e_nu, y, m_lep):
    """Physical Q^2 range [GeV^2] at fixed E_nu, y for a lepton of mass m_lep: cos(theta) = +-1
    in Q^2 = 2 E_nu (E_l - p_l cos theta) - m_l^2. Returns (lo, hi, p_l); lo > hi if empty."""
    e_l = (1.0 - y) * e_nu
    if e_l <= m_lep:
        return 1.0, 0.0, 0.0
    p_l = math.sqrt((e_l - m_lep) * (e_l + m_lep))
    return 2.0 * e_nu * (e_l - p_l) - m_lep * m_lep, 2.0 * e_nu * (e_l + p_l) - m_lep * m_lep, p_l


#: the tables of :func:`x_cdf_tables`: nodes uniform in ln(2 M_N E y) [GeV^2]
SCALE_MIN_GEV2 = 1e-3
SCALE_MAX_GEV2 = 1e13
N_SCALE_PER_DECADE = 16


@nb.njit(cache=True)
def _build_x_cdf(antiquark, m_prop):
    """Cumulative x weights C[j, k] = int_{x_min}^{x_k} x f(x, s_j x) / (1 + s_j x / M^2)^2 d ln x
    at the scale nodes s_j (mid-point rule per cell of the ln-x grid)."""
    n_s = int(round(math.log10(SCALE_MAX_GEV2 / SCALE_MIN_GEV2) * N_SCALE_PER_DECADE)) + 1
    ls0 = math.log(SCALE_MIN_GEV2)
    dls = math.log(10.0) / N_SCALE_PER_DECADE
    lx0 = math.log(X_GRID_MIN)
    dlx = -lx0 / N_X_CELLS
    mp2 = m_prop * m_prop
    c = np.zeros((n_s, N_X_CELLS + 1))
    for j in range(n_s):
        s = math.exp(ls0 + j * dls)
        acc = 0.0
        for k in range(N_X_CELLS):
            xm = math.exp(lx0 + (k + 0.5) * dlx)
            q2 = s * xm
            v, sea = grv95lo_valence_sea(xm, q2)
            f = sea if antiquark else v + sea
            prop = 1.0 / (1.0 + q2 / mp2)
            acc += xm * f * prop * prop * dlx
            c[j, k + 1] = acc
    return c


_X_TABLES: dict = {}


def x_cdf_tables():
    """The cumulative x tables, shape (4, n_scale, N_X_CELLS + 1): [quark W, antiquark W,
    quark Z, antiquark Z] (built once per process, ~0.1 s)."""
    if "t" not in _X_TABLES:
        _X_TABLES["t"] = np.stack([
            _build_x_cdf(anti, mass)
            for mass in (xsec.M_W_GEV, M_Z_GEV) for anti in (False, True)
        ])
    return _X_TABLES["t"]


@nb.njit(cache=True)
def _row_cdf_at(c, j, t, lx0, dlx, lx):
    """Interpolated cumulative (1-t) C[j] + t C[j+1] at ln x = lx (linear in ln x per cell)."""
    if lx <= lx0:
        return 0.0
    pos = (lx - lx0) / dlx
    k = int(pos)
    if k >= N_X_CELLS:
        k = N_X_CELLS - 1
        f = 1.0
    else:
        f = pos - k
    a = (1.0 - t) * c[j, k] + t * c[j + 1, k]
    b = (1.0 - t) * c[j, k + 1] + t * c[j + 1, k + 1]
    return a + f * (b - a)


@nb.njit(cache=True)
def _sample_x_tabulated(tables, energy, y, m_lep, table_index, u):
    n = energy.shape[0]
    out = np.full(n, np.nan)
    n_s = tables.shape[1]
    ls0 = math.log(SCALE_MIN_GEV2)
    dls = math.log(10.0) / N_SCALE_PER_DECADE
    lx0 = math.log(X_GRID_MIN)
    dlx = -lx0 / N_X_CELLS
    for i in range(n):
        e = energy[i]
        yy = y[i]
        lo, hi, _ = _q2_window(e, yy, m_lep[i])
        scale = 2.0 * M_NUCLEON_GEV * e * yy
        if not (hi >= lo) or scale <= 0.0 or scale < lo:
            continue
        c = tables[table_index[i]]
        pos = (math.log(scale) - ls0) / dls
        if pos <= 0.0:
            j, t = 0, 0.0
        elif pos >= n_s - 1:
            j, t = n_s - 2, 1.0
        else:
            j = int(pos)
            t = pos - j
        # physical x range: Q^2 in [lo, hi], x in (0, 1]
        lx_lo = math.log(lo / scale) if lo > 0.0 else lx0
        lx_lo = max(lx_lo, lx0)
        lx_hi = min(math.log(hi / scale), 0.0)
        if lx_hi <= lx_lo:
            continue
        c_lo = _row_cdf_at(c, j, t, lx0, dlx, lx_lo)
        c_hi = _row_cdf_at(c, j, t, lx0, dlx, lx_hi)
        if not c_hi > c_lo:
            continue
        target = c_lo + u[i] * (c_hi - c_lo)
        # bisection on the cell index: the first k with C(x_{k+1}) > target
        k_a = max(int((lx_lo - lx0) / dlx), 0)
        k_b = min(int((lx_hi - lx0) / dlx), N_X_CELLS - 1)
        while k_a < k_b:
            k_m = (k_a + k_b) // 2
            if (1.0 - t) * c[j, k_m + 1] + t * c[j + 1, k_m + 1] > target:
                k_b = k_m
            else:
                k_a = k_m + 1
        a = (1.0 - t) * c[j, k_a] + t * c[j + 1, k_a]
        b = (1.0 - t) * c[j, k_a + 1] + t * c[j + 1, k_a + 1]
        f = (target - a) / (b - a) if b > a else 0.5
        lx = lx0 + (k_a + min(max(f, 0.0), 1.0)) * dlx
        out[i] = math.exp(min(max(lx, lx_lo), lx_hi))
    return out


def sample_bjorken_x(energy, y, m_lep, antiquark, neutral_current, u):
    """Draw Bjorken x given y per event by inverse transform (one uniform per event).

    Leading-order quark-parton model of DIS on an isoscalar nucleon (e.g. R. Gandhi, C. Quigg,
    M. H. Reno, I. Sarcevic, Astropart. Phys. 5 (1996) 81, eqs. 1-3):
    d^2 sigma / dx dy ~ [x q(x, Q^2) + x qbar(x, Q^2) (1-y)^2] / (1 + Q^2/M^2)^2 with
    Q^2 = 2 M_N E x y and M = M_W (CC) or M_Z (NC). The y marginal is that of the generator
    (PHYSICS.md §3.2), which picks whether a quark (x q = valence + sea) or an antiquark
    (x qbar = sea) was struck; given y and the parton type, x has pdf ~ x f(x, Q^2(x)) /
    (1 + Q^2/M^2)^2 with the GRV95 LO distributions (:func:`grv95lo_valence_sea`),
    restricted to the x where the lepton angle is physical (|cos theta| <= 1; equivalent to
    redrawing x until physical). The CDF is tabulated (:func:`x_cdf_tables`: 160 cells in
    ln x on [1e-9, 1], 16 nodes per decade in 2 M_N E y, linear interpolation of the
    cumulative in both).

    Parameters
    ----------
    energy, y : array_like
        Neutrino energy [GeV] and Bjorken y.
    m_lep : array_like
        Outgoing lepton mass [GeV] (0 for NC).
    antiquark : array_like of bool
        The struck parton is an antiquark (sea shape) rather than a quark (valence + sea).
    neutral_current : array_like of bool
        Z (else W) propagator.
    u : array_like
        Uniform deviates in [0, 1).

    Returns
    -------
    x : ndarray
        Bjorken x (NaN where no x is physical: E (1 - y) <= m_l or Q^2_min above
        2 M_N E y, e.g. nu_tau CC just above threshold).
    """
    energy = np.ascontiguousarray(energy, dtype=np.float64)
    n = energy.shape[0]
    args = [np.ascontiguousarray(np.broadcast_to(a, (n,)), dtype=np.float64) for a in (y, m_lep, u)]
    idx = (np.broadcast_to(np.asarray(antiquark, dtype=bool), (n,)).astype(np.int64)
           + 2 * np.broadcast_to(np.asarray(neutral_current, dtype=bool), (n,)).astype(np.int64))
    return _sample_x_tabulated(x_cdf_tables(), energy, args[0], args[1], np.ascontiguousarray(idx), args[2])



@nb.njit(cache=True)
def dis_final_state(nu_dir, energy, y, x, m_lep, u_phi):
    """Directions and momenta of the outgoing lepton and of the hadronic system.

    Q^2 = 2 M_N E x y; E_l = (1 - y) E; p_l = sqrt(E_l^2 - m_l^2); cos theta from
    Q^2 = 2 E (E_l - p_l cos theta) - m_l^2 (clipped to [-1, 1]); azimuth 2 pi u_phi about
    the neutrino direction; hadronic momentum p_had = p_nu - p_l (massless neutrino,
    nucleon at rest). Where x is NaN (no physical x) the lepton is collinear with
    p_l = sqrt(max(E_l^2 - m_l^2, 0)).

    Returns
    -------
    lep_dir, had_dir : ndarray (n, 3)
        Unit vectors.
    p_lep, p_had : ndarray (n,)
        Momentum magnitudes [GeV].
    cos_theta : ndarray (n,)
        cos of the neutrino-lepton angle.
    """
    n = energy.shape[0]
    lep = np.empty((n, 3))
    had = np.empty((n, 3))
    p_lep = np.empty(n)
    p_had = np.empty(n)
    cth = np.empty(n)
    for i in range(n):
        dx, dy, dz = nu_dir[i, 0], nu_dir[i, 1], nu_dir[i, 2]
        e = energy[i]
        e_l = (1.0 - y[i]) * e
        m = m_lep[i]
        pl = math.sqrt(max((e_l - m) * (e_l + m), 0.0))
        c = 1.0
        if not math.isnan(x[i]) and pl > 0.0:
            q2 = 2.0 * M_NUCLEON_GEV * e * x[i] * y[i]
            c = (2.0 * e * e_l - m * m - q2) / (2.0 * e * pl)
            c = min(1.0, max(-1.0, c))
        sn = math.sqrt(max(1.0 - c * c, 0.0))
        # orthonormal e1, e2 perpendicular to the neutrino direction
        if abs(dz) < 0.9:
            ax, ay, az = -dy, dx, 0.0
        else:
            ax, ay, az = 0.0, -dz, dy
        na = math.sqrt(ax * ax + ay * ay + az * az)
        ax, ay, az = ax / na, ay / na, az / na
        bx, by, bz = dy * az - dz * ay, dz * ax - dx * az, dx * ay - dy * ax
        ph = 2.0 * math.pi * u_phi[i]
        cp, sp = math.cos(ph), math.sin(ph)
        lx = c * dx + sn * (cp * ax + sp * bx)
        ly = c * dy + sn * (cp * ay + sp * by)
        lz = c * dz + sn * (cp * az + sp * bz)
        nl = math.sqrt(lx * lx + ly * ly + lz * lz)
        lx, ly, lz = lx / nl, ly / nl, lz / nl
        hx, hy, hz = e * dx - pl * lx, e * dy - pl * ly, e * dz - pl * lz
        ph_ = math.sqrt(hx * hx + hy * hy + hz * hz)
        if ph_ > 0.0:
            hx, hy, hz = hx / ph_, hy / ph_, hz / ph_
        else:
            hx, hy, hz = dx, dy, dz
        lep[i, 0], lep[i, 1], lep[i, 2] = lx, ly, lz
        had[i, 0], had[i, 1], had[i, 2] = hx, hy, hz
        p_lep[i] = pl
        p_had[i] = ph_
        cth[i] = c
    return lep, had, p_lep, p_had, cth


class PowerLawFluxSpec(StageConfig):
    """An isotropic power-law flux norm (E / e0)^-index, the same for every flavour."""

    norm: float = Field(..., ge=0.0, description="flux at e0_gev [GeV^-1 m^-2 s^-1 sr^-1], per neutrino type")
    index: float = Field(..., ge=-2.0, le=6.0, description="spectral index (2: E^-2)")
    e0_gev: float = Field(1.0, gt=0.0, description="pivot energy [GeV]")


class PowerLawReference(StageConfig):
    """``reference_flux: {power_law: {norm: ..., index: ...}}``."""

    power_law: PowerLawFluxSpec


@register_stage
class NeutrinoGenerator(CanGenerator):
    """Neutrino interactions in and around the can, gSeaGen-like (see the module notes).

    Attributes
    ----------
    can : Can
        The can (generation volume of the shower channels).
    earth : EarthModel
        The Earth model of the site for P_Earth.
    """

    name = "neutrinos"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`NeutrinoGenerator`."""

        flavours: tuple[int, ...] = Field(
            (14, -14), min_length=1, description="neutrino PDG codes to generate (12, -12, 14, -14, 16, -16)"
        )
        flavour_fractions: tuple[float, ...] | None = Field(
            None, description="relative probabilities of the flavours (same length as flavours; default equal)"
        )
        interactions: tuple[Literal["cc", "nc", "glashow"], ...] = Field(
            ("cc",), min_length=1, description="interactions to simulate: cc, nc, glashow (nubar_e on electrons)"
        )
        energy_min_gev: float = Field(10.0, ge=1.0, description="lowest neutrino energy [GeV]")
        energy_max_gev: float = Field(
            1e7, le=float(xsec.CSMS_ENERGY_GEV[-1]), description="highest neutrino energy [GeV] (at most 5e11, the CSMS table)"
        )
        spectral_index: float = Field(
            1.4, ge=0.0, le=5.0, description="generation spectrum E^-gamma (1.4, a usual gSeaGen choice, keeps high energies populated)"
        )
        cos_zenith_min: float = Field(-1.0, ge=-1.0, le=1.0, description="lowest cos(zenith) of the arrival direction (-1: up-going)")
        cos_zenith_max: float = Field(1.0, ge=-1.0, le=1.0, description="highest cos(zenith) of the arrival direction (1: down-going)")
        n_events: int = Field(1000, ge=1, le=10**9, description="neutrino interactions generated per run")
        can_margin_m: float = Field(200.0, ge=0.0, description="can margin around the DOMs [m]")
        reference_flux: Literal["none", "honda"] | PowerLawReference = Field(
            "none", description="flux for weight_w3: none (w3 = NaN), honda (km3flux Frejus), or {power_law: {norm, index, e0_gev}}"
        )

        @field_validator("flavours")
        @classmethod
        def _check_flavours(cls, v):
            bad = [p for p in v if p not in _NEUTRINOS]
            if bad:
                raise ValueError(f"unknown neutrino flavour(s) {bad}; use PDG codes {list(_NEUTRINOS)}")
            if len(set(v)) != len(v):
                raise ValueError(f"flavours repeated: {list(v)}")
            return v

        @field_validator("interactions")
        @classmethod
        def _check_interactions(cls, v):
            if len(set(v)) != len(v):
                raise ValueError(f"interactions repeated: {list(v)}")
            return v

        @model_validator(mode="after")
        def _check(self):
            if not self.energy_max_gev > self.energy_min_gev:
                raise ValueError(
                    f"energy_max_gev ({self.energy_max_gev}) must exceed energy_min_gev ({self.energy_min_gev})"
                )
            if not self.cos_zenith_max > self.cos_zenith_min:
                raise ValueError(
                    f"cos_zenith_max ({self.cos_zenith_max}) must exceed cos_zenith_min ({self.cos_zenith_min})"
                )
            if self.flavour_fractions is not None:
                if len(self.flavour_fractions) != len(self.flavours):
                    raise ValueError(
                        f"flavour_fractions has {len(self.flavour_fractions)} entries for {len(self.flavours)} flavours"
                    )
                if any(not (f > 0.0 and math.isfinite(f)) for f in self.flavour_fractions):
                    raise ValueError(f"flavour_fractions must be > 0, got {list(self.flavour_fractions)}")
            if "glashow" in self.interactions and -12 not in self.flavours:
                raise ValueError("interaction 'glashow' needs nubar_e (-12) among the flavours")
            if set(self.interactions) == {"glashow"} and set(self.flavours) != {-12}:
                other = [p for p in self.flavours if p != -12]
                raise ValueError(f"flavours {other} have no interaction to simulate (only 'glashow' is listed)")
            return self

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        cfg = self.config
        self.can: Can | None = None
        self.earth: EarthModel | None = None
        self._flavours = np.array(cfg.flavours, dtype=np.int32)
        frac = np.ones(len(cfg.flavours)) if cfg.flavour_fractions is None else np.array(cfg.flavour_fractions, dtype=np.float64)
        self._fractions = frac / frac.sum()
        self._cum_fractions = np.cumsum(self._fractions)
        self._cum_fractions[-1] = 1.0
        g = float(cfg.spectral_index)
        emin, emax = cfg.energy_min_gev, cfg.energy_max_gev
        if abs(1.0 - g) < 1e-12:
            self.integral_energy = math.log(emax / emin)
        else:
            self.integral_energy = (emax ** (1.0 - g) - emin ** (1.0 - g)) / (1.0 - g)
        self.integral_solid_angle = 2.0 * math.pi * (cfg.cos_zenith_max - cfg.cos_zenith_min)
        self._reference = self._make_reference_flux(cfg.reference_flux)
        if detector is not None:
            self._setup(detector)

    # ------------------------------------------------------------------------------ setup
    @staticmethod
    def _make_reference_flux(spec):
        if spec == "none":
            return None
        if spec == "honda":
            return weights.honda_flux()
        p = spec.power_law
        return weights.power_law_flux(p.norm, p.index, p.e0_gev)

    def _setup(self, detector) -> None:
        cfg = self.config
        self.can = can_from_detector(detector, cfg.can_margin_m)
        self._sea_surface_z = float(self.site.seabed_depth_m)
        self._rho_water = float(self.site.water_density_g_cm3)
        self._rho_rock = float(DENSITY_ROCK)
        if self.can.zmax >= self._sea_surface_z:
            raise StageError(
                f"stage {self.name!r}: the can top (z = {self.can.zmax:.1f} m) reaches the sea surface "
                f"(z = {self._sea_surface_z:.1f} m above the floor)"
            )
        self._water_losses = ContinuousLossTable.sea_water(self._rho_water)
        self.earth = EarthModel.from_site(self.site)
        logger.info(
            "neutrinos: can r=%.1f m z=[%.1f, %.1f] m, flavours %s, interactions %s, E^-%.2f on [%.3g, %.3g] GeV",
            self.can.radius, self.can.zmin, self.can.zmax, list(cfg.flavours), list(cfg.interactions),
            cfg.spectral_index, cfg.energy_min_gev, cfg.energy_max_gev,
        )

    # ------------------------------------------------------------------------- the physics
    def channel_cross_sections(self, energy_gev, pdgid, z_over_a: float = xsec.Z_OVER_A_WATER) -> np.ndarray:
        """Cross sections per nucleon [cm^2] of the simulated channels, shape (n, 6).

        Columns follow :data:`CHANNEL_NAMES`; channels not simulated (or impossible for the
        flavour) are 0. The Glashow channels are per electron times ``z_over_a``.
        """
        e = np.atleast_1d(np.asarray(energy_gev, dtype=np.float64))
        pdg = np.broadcast_to(np.atleast_1d(np.asarray(pdgid)), e.shape)
        out = np.zeros((e.shape[0], _N_CHANNELS))
        inter = self.config.interactions
        if "cc" in inter:
            out[:, _CC] = xsec.dis_cross_section(e, pdg, "cc")
        if "nc" in inter:
            out[:, _NC] = xsec.dis_cross_section(e, pdg, "nc")
        if "glashow" in inter:
            gr = pdg == -12
            if gr.any():
                for col, ch in zip((_GR_HAD, _GR_E, _GR_MU, _GR_TAU), xsec.GLASHOW_CHANNELS):
                    out[gr, col] = xsec.glashow_cross_section(e[gr], ch) * z_over_a
        return out

    def energy_from_uniform(self, u):
        """Inverse CDF of the generation spectrum E^-gamma on [energy_min_gev, energy_max_gev]."""
        cfg = self.config
        u = np.asarray(u, dtype=np.float64)
        g = 1.0 - float(cfg.spectral_index)
        ratio = cfg.energy_max_gev / cfg.energy_min_gev
        if abs(g) < 1e-12:
            return cfg.energy_min_gev * ratio**u
        return cfg.energy_min_gev * (1.0 + u * (ratio**g - 1.0)) ** (1.0 / g)

    def generation_cylinder(self, extension_m):
        """Generation cylinder(s) of the can enlarged by ``extension_m`` [m].

        Returns radius, z_low, z_high [m] and volume [m^3] (cut at the sea surface).
        """
        ext = np.asarray(extension_m, dtype=np.float64)
        can = self.can
        radius = can.radius + ext
        z_lo = can.zmin - ext
        z_hi = np.minimum(can.zmax + ext, self._sea_surface_z)
        return radius, z_lo, z_hi, math.pi * radius**2 * (z_hi - z_lo)

    def extension(self, energy_gev, pdgid, channel):
        """Enlargement [m] of the can for each event: the sea-water muon range at E for
        channels with a muon or tau, 0 otherwise."""
        e = np.asarray(energy_gev, dtype=np.float64)
        ch = np.asarray(channel)
        apdg = np.abs(np.asarray(pdgid))
        ext = ((ch == _CC) & ((apdg == 14) | (apdg == 16))) | (ch == _GR_MU) | (ch == _GR_TAU)
        out = np.zeros(e.shape)
        if ext.any():
            out[ext] = muon_range(e[ext], self._water_losses)
        return out

    # ---------------------------------------------------------------------------- header
    def header(self) -> dict:
        self._require_setup()
        cfg = self.config
        c = self.can
        r_max = float(muon_range(cfg.energy_max_gev, self._water_losses))
        rad, zlo, zhi, vol = self.generation_cylinder(r_max)
        ref = cfg.reference_flux if isinstance(cfg.reference_flux, str) else cfg.reference_flux.model_dump()
        return {
            "generator": "km3sim neutrinos (gSeaGen-like)",
            "can": {"x": c.x, "y": c.y, "zmin": c.zmin, "zmax": c.zmax, "r": c.radius},
            "genvol": {"zmin": c.zmin, "zmax": c.zmax, "r": c.radius, "volume": c.volume,
                       "numberOfEvents": int(cfg.n_events)},
            "genvol_extension": "channels with a muon or tau: the can enlarged by the sea-water muon range at E_nu "
                                "(radius, bottom and top; cut at the sea surface); rock below z = 0",
            "genvol_at_emax": {"zmin": float(zlo), "zmax": float(zhi), "r": float(rad), "volume": float(vol),
                               "muon_range_m": r_max},
            "spectrum": {"alpha": float(cfg.spectral_index)},
            "energy_range_gev": [cfg.energy_min_gev, cfg.energy_max_gev],
            "cos_zenith_range": [cfg.cos_zenith_min, cfg.cos_zenith_max],
            "I_E": self.integral_energy,
            "I_theta_sr": self.integral_solid_angle,
            "flavours": [int(p) for p in cfg.flavours],
            "flavour_fractions": [float(f) for f in self._fractions],
            "interactions": list(cfg.interactions),
            "xsec_model": "DIS: CSMS 2011 (arXiv:1106.3723) above 100 GeV, Formaggio-Zeller linear law below 50 GeV, "
                          "log-log join; Glashow: Breit-Wigner (GENIE GlashowResXSec); y: parton model, Qbar/Q from "
                          "sigma_nubar/sigma_nu; x given y: LO parton model with GRV95 LO PDFs and W/Z propagator; "
                          "lepton angle from Q^2 = 2 M_N E x y",
            "earth_model": "PREM with the site's sea; P = exp(-N_A X sigma_tot), no regeneration",
            "seabed_depth_m": self._sea_surface_z,
            "water_density_g_cm3": self._rho_water,
            "rock_density_g_cm3": self._rho_rock,
            "reference_flux": ref,
            "w2": "V_gen(E) I_theta I_E E^gamma sigma_c/p_c rho N_A P_Earth / flavour_fraction [GeV m2 sr]",
        }

    @classmethod
    def input_files(cls, config) -> list[str]:
        if config.reference_flux == "honda":
            return [str(weights.honda_table_path())]
        return []

    # -------------------------------------------------------------------------- planning
    @classmethod
    def plan_events(cls, config, detector, site, livetime_s, seed, run_id) -> int:
        """Neutrino samples have a fixed size: ``n_events`` per run, whatever the livetime."""
        if livetime_s < 0:
            raise ConfigError(f"livetime must be >= 0, got {livetime_s}")
        return int(config.n_events)

    # --------------------------------------------------------------------------- process
    def generate(self, seeds: np.ndarray, livetime_s: float, n_gen: int) -> dict[str, np.ndarray]:
        """Draw the interactions of the events with per-event ``seeds``.

        Returns a dict of per-event arrays (pdgid, energy, cos_zenith, pos (n, 3), dir (n, 3),
        channel, y, lepton_fraction, time_ns, w2, w3, volume, medium_density, p_earth, and the
        DIS kinematics of :meth:`dis_kinematics`: x, q2, lepton_dir, hadron_dir,
        lepton_momentum, hadron_momentum, cos_theta_lepton, struck_antiquark).
        """
        self._require_setup()
        cfg = self.config
        u = draw_event_uniforms(np.ascontiguousarray(seeds, dtype=np.uint64), N_UNIFORMS)
        n = u.shape[0]
        k = np.minimum(np.searchsorted(self._cum_fractions, u[:, 0], side="right"), len(self._flavours) - 1)
        pdg = self._flavours[k]
        frac = self._fractions[k]
        energy = self.energy_from_uniform(u[:, 1])
        cosz = cfg.cos_zenith_min + (cfg.cos_zenith_max - cfg.cos_zenith_min) * u[:, 2]
        phi = 2.0 * math.pi * u[:, 3]
        sinz = np.sqrt(np.clip(1.0 - cosz * cosz, 0.0, None))
        dirs = np.column_stack([-sinz * np.cos(phi), -sinz * np.sin(phi), -cosz])

        # channel, with probability sigma_c / sum sigma (in water)
        sig = self.channel_cross_sections(energy, pdg)
        total = sig.sum(axis=1)
        if np.any(~(total > 0.0)):
            raise StageError(f"stage {self.name!r}: a flavour has no simulated interaction")
        cum = np.cumsum(sig, axis=1) / total[:, None]
        last = _N_CHANNELS - 1 - np.argmax((sig > 0.0)[:, ::-1], axis=1)
        cum[np.arange(_N_CHANNELS)[None, :] >= last[:, None]] = 1.0
        channel = np.argmax(cum > u[:, 4:5], axis=1)
        rows = np.arange(n)
        sig_c = sig[rows, channel]
        p_c = sig_c / total

        # vertex in the channel's generation cylinder
        ext = self.extension(energy, pdg, channel)
        radius, z_lo, z_hi, volume = self.generation_cylinder(ext)
        rr = radius * np.sqrt(u[:, 5])
        aa = 2.0 * math.pi * u[:, 6]
        pos = np.column_stack([self.can.x + rr * np.cos(aa), self.can.y + rr * np.sin(aa), z_lo + (z_hi - z_lo) * u[:, 7]])
        rock = pos[:, 2] < 0.0
        density = np.where(rock, self._rho_rock, self._rho_water)
        sig_vertex = np.where(rock & (channel >= _GR_HAD), sig_c * (xsec.Z_OVER_A_ROCK / xsec.Z_OVER_A_WATER), sig_c)
        targets_per_m3 = density * AVOGADRO * 1e6

        p_earth = self.earth.transmission(energy, cosz, pdg)
        w2 = (
            volume
            * self.integral_solid_angle
            * self.integral_energy
            * energy ** float(cfg.spectral_index)
            * (sig_vertex * 1e-4 / p_c)
            * targets_per_m3
            * p_earth
            / frac
        )
        if self._reference is not None and n_gen > 0:
            w3 = w2 * np.asarray(self._reference(pdg, energy, cosz), dtype=np.float64) / float(n_gen)
        else:
            w3 = np.full(n, np.nan)

        y = np.full(n, np.nan)
        for ch, current in ((_CC, "cc"), (_NC, "nc")):
            m = channel == ch
            if m.any():
                y[m] = xsec.sample_inelasticity(u[m, 8], u[m, 9], energy[m], pdg[m], current)
        lepton_fraction = np.where(channel >= _GR_E, xsec.sample_glashow_lepton_fraction(u[:, 9]), np.nan)
        kin = self.dis_kinematics(dirs, energy, pdg, channel, y, u[:, 8], u[:, 11], u[:, 12], u[:, 13])
        time_ns = u[:, 10] * (float(livetime_s) * 1e9 if livetime_s > 0 else 0.0)
        return {
            "pdgid": pdg, "energy": energy, "cos_zenith": cosz, "pos": pos, "dir": dirs, "channel": channel,
            "y": y, "lepton_fraction": lepton_fraction, "time_ns": time_ns, "w2": w2, "w3": w3,
            "volume": volume, "medium_density": density, "p_earth": p_earth, **kin,
        }

    @staticmethod
    def dis_kinematics(dirs, energy, pdg, channel, y, u_part, u_x, u_phi, u_parton):
        """Bjorken x, Q^2 and the final-state directions of the DIS events (module notes, step 7).

        The struck parton (quark: valence + sea x-shape, antiquark: sea) follows from the
        part of the y pdf that was drawn (``u_part``, as in
        :func:`km3sim.physics.xsec.sample_inelasticity`): for CC nu the flat part is the
        quarks and the (1-y)^2 part the antiquarks, for CC nubar the reverse; for NC each
        part mixes both with the weights g_L^2, g_R^2, Qbar/Q of
        :func:`km3sim.physics.xsec.inelasticity_shape_from_ratio`, and ``u_parton`` picks one.

        Returns a dict with x, q2 [GeV^2], lepton_dir, hadron_dir (n, 3), lepton_momentum,
        hadron_momentum [GeV], cos_theta_lepton (x, q2 NaN and directions the neutrino's for
        Glashow events and where no x is physical).
        """
        n = energy.shape[0]
        dis = channel <= _NC
        x = np.full(n, np.nan)
        anti_nu = pdg < 0
        cc = channel == _CC
        m_lep = np.zeros(n)
        apdg = np.abs(pdg)
        for nu_code, lep_code in ((12, 11), (14, 13), (16, 15)):
            m_lep[cc & (apdg == nu_code)] = M_LEPTON_GEV[lep_code]
        antiquark = np.zeros(n, dtype=np.bool_)
        if dis.any():
            q = np.zeros(n)
            q[dis] = xsec.antiquark_ratio(energy[dis])
            a, _ = xsec.inelasticity_shape_from_ratio(q, anti_nu, cc)
            flat = u_part < a
            # CC: the flat part is the quarks for nu, the antiquarks for nubar
            anti_cc = np.where(flat, anti_nu, ~anti_nu)
            # NC: P(antiquark | part); nu flat: q g_R^2 / (g_L^2 + q g_R^2), nu (1-y)^2:
            # q g_L^2 / (g_R^2 + q g_L^2); nubar swaps g_L and g_R
            gl2, gr2 = xsec._GL2, xsec._GR2
            g_flat = np.where(anti_nu, gl2, gr2)
            g_other = np.where(anti_nu, gr2, gl2)
            p_anti_flat = q * g_flat / (g_other + q * g_flat)
            p_anti_quad = q * g_other / (g_flat + q * g_other)
            anti_nc = u_parton < np.where(flat, p_anti_flat, p_anti_quad)
            antiquark = np.where(cc, anti_cc, anti_nc) & dis
            idx = np.flatnonzero(dis)
            x[idx] = sample_bjorken_x(energy[idx], y[idx], m_lep[idx], antiquark[idx], ~cc[idx], u_x[idx])
        yy = np.where(dis, np.nan_to_num(y), 0.0)
        lep_dir, had_dir, p_lep, p_had, cth = dis_final_state(
            np.ascontiguousarray(dirs, dtype=np.float64), np.ascontiguousarray(energy, dtype=np.float64), yy, x,
            m_lep, np.ascontiguousarray(u_phi, dtype=np.float64),
        )
        lep_dir[~dis] = dirs[~dis]
        had_dir[~dis] = dirs[~dis]
        q2 = 2.0 * M_NUCLEON_GEV * energy * x * yy
        return {
            "x": x, "q2": q2, "lepton_dir": lep_dir, "hadron_dir": had_dir, "lepton_momentum": p_lep,
            "hadron_momentum": p_had, "cos_theta_lepton": np.where(dis, cth, 1.0), "struck_antiquark": antiquark,
        }

    @staticmethod
    def _products(g: dict[str, np.ndarray]):
        """Per-event first and second product (pdg, energy) and whether there is a second."""
        pdg, e, ch = g["pdgid"], g["energy"], g["channel"]
        y, x = g["y"], g["lepton_fraction"]
        sign = np.sign(pdg)
        lepton = sign * (np.abs(pdg) - 1)
        p0 = np.where(ch == _CC, lepton, pdg)
        e0 = e * (1.0 - np.nan_to_num(y))
        p1 = np.full(len(pdg), _PION)
        e1 = e * np.nan_to_num(y)
        has1 = ch <= _NC
        had = ch == _GR_HAD
        p0 = np.where(had, _PION, p0)
        e0 = np.where(had, e, e0)
        for col, lep in ((_GR_E, 11), (_GR_MU, 13), (_GR_TAU, 15)):
            m = ch == col
            p0 = np.where(m, lep, p0)
            e0 = np.where(m, e * x, e0)
            p1 = np.where(m, -(lep + 1), p1)
            e1 = np.where(m, e * (1.0 - x), e1)
            has1 |= m
        return p0.astype(np.int32), e0, p1.astype(np.int32), e1, has1

    def process(self, tables, ctx: StageContext):
        self._require_setup(ctx.detector, ctx.site)
        ids = self.chunk_event_ids(ctx)
        g = self.generate(ctx.seeds(ids), ctx.livetime_s, ctx.n_events_run)
        n = len(ids)
        p0, e0, p1, e1, has1 = self._products(g)
        ntr = 1 + has1.astype(np.int64)
        n_muons = (np.abs(p0) == 13).astype(np.int32) + (has1 & (np.abs(p1) == 13)).astype(np.int32)
        ch = g["channel"]
        pos, dirs = g["pos"], g["dir"]
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=g["time_ns"],
            pdgid=g["pdgid"].astype(np.int32),
            n_muons=n_muons,
            energy=g["energy"],
            pos_x=pos[:, 0], pos_y=pos[:, 1], pos_z=pos[:, 2],
            dir_x=dirs[:, 0], dir_y=dirs[:, 1], dir_z=dirs[:, 2],
            is_cc=np.where(ch == _NC, 0, 1).astype(np.int32),
            bjorken_y=g["y"],
            n_gen=np.full(n, ctx.n_events_run, dtype=np.int64),
            livetime_s=np.full(n, float(ctx.livetime_s)),
            weight_w2=g["w2"],
            weight_w3=g["w3"],
        )
        # track rows: event i has rows start[i] (first product) and start[i] + 1 (second)
        start = np.concatenate([[0], np.cumsum(ntr)[:-1]]).astype(np.int64)
        m = int(ntr.sum())
        ev_of_row = np.repeat(np.arange(n), ntr)
        track_id = (np.arange(m) - start[ev_of_row]).astype(np.int32)
        second = track_id == 1
        t_pdg = np.where(second, p1[ev_of_row], p0[ev_of_row]).astype(np.int32)
        t_e = np.where(second, e1[ev_of_row], e0[ev_of_row])
        t_dir = np.where(second[:, None], g["hadron_dir"][ev_of_row], g["lepton_dir"][ev_of_row])
        tracks = make_table(
            "mc_tracks",
            event_id=ids[ev_of_row],
            track_id=track_id,
            parent_id=np.full(m, -1, dtype=np.int32),
            pdgid=t_pdg,
            pos_x=pos[ev_of_row, 0], pos_y=pos[ev_of_row, 1], pos_z=pos[ev_of_row, 2],
            dir_x=t_dir[:, 0], dir_y=t_dir[:, 1], dir_z=t_dir[:, 2],
            energy=t_e,
            time=np.zeros(m),
            length=np.zeros(m),
            energy_lost_in_can=np.zeros(m),
        )
        return {"events": events, "mc_tracks": tracks}
