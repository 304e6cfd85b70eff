"""Light of a muon's secondaries that are not shower rows of ``mc_tracks``.

A propagated muon's light has three parts (PHYSICS.md §5.3, §4.2):

1. the bare muon's Frank–Tamm light, on the Cherenkov cone;
2. the light of secondaries below E_cut = 0.5 GeV (mostly δ-rays), as the Rädel–Wiebusch
   factor ΔL/L = λ + κ ln(E/GeV) of the bare light (arXiv:1206.5530, PHYSICS.md §5.3; that
   fit is for secondaries below E_cut = 500 MeV, so everything above it must be added);
3. showers of the losses above E_cut that ``muon_propagation`` does not store as shower rows:
   it samples losses with a fractional energy loss v > v_cut one by one and keeps those of at
   least ``e_cut_gev`` as rows, so the losses with energies between 0.5 GeV and
   max(v_cut·E, e_cut) are part of its continuous loss. At TeV energies that range carries
   most of the pair-production loss (the pair spectrum v·dσ/dv peaks at v ~ 1e-3), e.g. for
   v_cut = 0.05: 0.13 GeV/m at 1 TeV and 1.5 GeV/m at 10 TeV, i.e. about 1× and 9× the bare
   muon's light. Without it a 10 TeV muon would give about half its light.

Part 3 is computed here as the mean energy per metre going into secondaries in that range,
per process, from the same differential cross sections as the propagation
(:func:`km3sim.propagation.stochastic.loss_coefficient`: bremsstrahlung, pair production and
knock-on electrons make EM showers, photonuclear interactions hadronic ones), converted to a
Cherenkov track length with the Rädel–Wiebusch shower yields (arXiv:1210.5140,
:func:`km3sim.propagation.showers.cherenkov_track_length`; EM: 5.32 m/GeV; hadronic at the
energy-weighted mean loss energy). This is the scheme of Jpp's JSirene, which gives a muon the
light of EM showers with b·E·dx per step (PHYSICS.md §5.3), restricted to the losses that are
not shower rows. Their light is taken as continuous along the muon: only the mean enters, not
the fluctuations of these (many, small) losses.

The result is tabulated per muon energy on a log grid as a ratio to the bare muon light per
metre (both are Cherenkov track lengths of β = 1 particles): ``cont_ratio(E)``.

How the light stage emits it (``direct_light``, :mod:`km3sim.propagation.light`): part 2 on
the muon's Cherenkov cone (as before), part 3 along the track with the Rädel–Wiebusch EM
shower angular profile about the muon direction (arXiv:1210.5140, PHYSICS.md §5.4), at the
muon energy E(z) = E − ΔE·z/L of the emission point. Direct mode integrates the line of point
emitters per PMT over the emission angle (:class:`AngularThetaTables`,
:func:`km3sim.propagation._light_kernels.continuous_shower_npe`); the photon tracker emits
the photons along the track by thinning with (1 + ΔL/L + cont)/max (:func:`secondary_max`).
The longitudinal extent of these (≤ 50 GeV, few-metre) showers is neglected: the sum along
the track is shift-invariant away from its ends.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from km3sim.propagation import showers as sh
from km3sim.propagation.stochastic import SEA_WATER_MEDIUM, loss_coefficient

__all__ = [
    "E_CUT_RW_GEV", "SecondaryLight", "secondary_light", "secondary_ratios", "secondary_max", "secondary_max_many",
    "continuous_shower_loss", "AngularThetaTables", "angular_theta_tables",
]

#: Energy cut of the Rädel–Wiebusch ΔL/L fit [GeV] (arXiv:1206.5530, PHYSICS.md §5.3).
E_CUT_RW_GEV = 0.5

_EM_PROCESSES = ("brems", "pair", "knockon")
_LOG_E_MIN, _LOG_E_MAX, _N_E = -1.0, 8.0, 181  # log10(E/GeV) grid: 0.1 GeV ... 1e8 GeV, 0.05 dex


def continuous_shower_loss(energy_gev, v_cut: float, e_cut_gev: float, density_g_cm3: float = 1.038):
    """Mean energy per metre lost to secondaries between 0.5 GeV and max(v_cut·E, e_cut) [GeV/m].

    Parameters
    ----------
    energy_gev : array_like
        Muon energy [GeV].
    v_cut : float
        ``muon_propagation.v_cut`` (1 if it ran without stochastic losses).
    e_cut_gev : float
        ``muon_propagation.e_cut_gev``: smallest stochastic loss stored as a shower row.
    density_g_cm3 : float
        Sea-water density.

    Returns
    -------
    em, hadronic, mean_hadronic_energy : ndarray
        EM (brems, pair, knock-on) and hadronic (photonuclear) parts [GeV/m], and the
        energy-weighted mean energy of the photonuclear losses in the range [GeV].
    """
    e = np.atleast_1d(np.asarray(energy_gev, dtype=np.float64))
    medium = SEA_WATER_MEDIUM.with_density(density_g_cm3)
    em = np.zeros(e.shape)
    had = np.zeros(e.shape)
    had_mean = np.zeros(e.shape)
    for i, ei in enumerate(e):
        if not ei > E_CUT_RW_GEV:
            continue
        v_lo = E_CUT_RW_GEV / ei
        v_hi = min(1.0, max(v_cut, e_cut_gev / ei))
        if v_hi <= v_lo:
            continue
        for p in _EM_PROCESSES:
            em[i] += float(loss_coefficient(p, ei, medium, v_min=v_lo, v_max=v_hi)[0]) * ei
        had[i] = float(loss_coefficient("photonuclear", ei, medium, v_min=v_lo, v_max=v_hi)[0]) * ei
        # energy-weighted mean loss energy: E·∫v²σ'dv / ∫vσ'dv ~ geometric mean for a 1/v spectrum
        had_mean[i] = (v_hi - v_lo) / max(math.log(v_hi / v_lo), 1e-12) * ei
    return em, had, had_mean


@dataclass(frozen=True)
class SecondaryLight:
    """Extra light of a muon per metre relative to the bare muon, on a log10 E grid.

    Attributes
    ----------
    log_e0, dlog_e : float
        First node and step of the log10(E/GeV) grid.
    rw_ratio : ndarray
        Rädel–Wiebusch ΔL/L(E) (secondaries below 0.5 GeV), clipped at 0.
    cont_ratio : ndarray
        Showers between 0.5 GeV and max(v_cut·E, e_cut): their Cherenkov track length per metre
        of muon (= ratio to the bare muon's light).
    v_cut, e_cut_gev : float
        The propagation cuts it was made for.
    """

    log_e0: float
    dlog_e: float
    rw_ratio: np.ndarray
    cont_ratio: np.ndarray
    v_cut: float
    e_cut_gev: float

    def args(self):
        """(log_e0, dlog_e, rw_ratio, cont_ratio) for the numba kernels (:func:`secondary_ratios`)."""
        return self.log_e0, self.dlog_e, self.rw_ratio, self.cont_ratio

    def ratios(self, energy_gev):
        """(ΔL/L of the RW secondaries, continuous-shower ratio) at the given muon energies."""
        le = np.log10(np.maximum(np.asarray(energy_gev, dtype=np.float64), 10.0**self.log_e0))
        grid = self.log_e0 + self.dlog_e * np.arange(len(self.rw_ratio))
        return np.interp(le, grid, self.rw_ratio), np.interp(le, grid, self.cont_ratio)


@functools.lru_cache(maxsize=32)
def secondary_light(refractive_index: float, v_cut: float = 0.05, e_cut_gev: float = 1.0,
                    density_g_cm3: float = 1.038) -> SecondaryLight:
    """The :class:`SecondaryLight` tables for a site's refractive index and the propagation cuts.

    ``v_cut = 0`` and ``e_cut_gev = 0`` switch the continuous-shower part off (for mc_tracks
    whose every loss above 0.5 GeV is a shower row).
    """
    from km3sim.propagation.light import radel_wiebusch_coefficients

    lam, kap = radel_wiebusch_coefficients(float(refractive_index))
    le = np.linspace(_LOG_E_MIN, _LOG_E_MAX, _N_E)
    e = 10.0**le
    rw = np.clip(lam + kap * np.log(e), 0.0, None)
    em, had, had_mean = continuous_shower_loss(e, float(v_cut), float(e_cut_gev), float(density_g_cm3))
    l_em = sh.cherenkov_track_length(1.0, sh.KIND_ELECTRON)  # per GeV (β ≈ 1)
    m = np.maximum(had_mean, E_CUT_RW_GEV)
    l_had = np.asarray(sh.cherenkov_track_length(m, np.full(m.shape, sh.KIND_HADRON))) / m
    cont = em * l_em + had * l_had
    return SecondaryLight(float(le[0]), float(le[1] - le[0]), np.ascontiguousarray(rw),
                          np.ascontiguousarray(cont), float(v_cut), float(e_cut_gev))


@nb.njit(cache=True)
def secondary_ratios(energy_gev, log_e0, dlog_e, rw_ratio, cont_ratio):
    """(RW ΔL/L, continuous-shower ratio) at one muon energy, linear in log10 E (numba).

    A plain (not ``inline="always"``) function: numba's IR inlining would re-bind the array
    arguments at every call (reference counting in the photon loop); LLVM inlines it anyway."""
    e = energy_gev if energy_gev > 1e-30 else 1e-30
    x = (math.log10(e) - log_e0) / dlog_e
    n = rw_ratio.shape[0]
    if x <= 0.0:
        return rw_ratio[0], cont_ratio[0]
    if x >= n - 1:
        return rw_ratio[n - 1], cont_ratio[n - 1]
    i = int(x)
    f = x - i
    return (rw_ratio[i] + f * (rw_ratio[i + 1] - rw_ratio[i]),
            cont_ratio[i] + f * (cont_ratio[i + 1] - cont_ratio[i]))


@nb.njit(cache=True)
def secondary_max(energy_a, energy_b, log_e0, dlog_e, rw_ratio, cont_ratio):
    """max of 1 + ΔL/L + cont_ratio over muon energies between ``energy_a`` and ``energy_b``
    (the end points and the table nodes between them: the tables are linear in between), for
    the photon tracker's thinning of the muon light (numba)."""
    lo = min(energy_a, energy_b)
    hi = max(energy_a, energy_b)
    r, c = secondary_ratios(lo, log_e0, dlog_e, rw_ratio, cont_ratio)
    best = 1.0 + r + c
    r, c = secondary_ratios(hi, log_e0, dlog_e, rw_ratio, cont_ratio)
    best = max(best, 1.0 + r + c)
    n = rw_ratio.shape[0]
    i0 = int(math.ceil((math.log10(max(lo, 1e-30)) - log_e0) / dlog_e))
    i1 = int(math.floor((math.log10(max(hi, 1e-30)) - log_e0) / dlog_e))
    for i in range(max(i0, 0), min(i1, n - 1) + 1):
        best = max(best, 1.0 + rw_ratio[i] + cont_ratio[i])
    return best


@nb.njit(cache=True)
def secondary_max_many(energy_a, energy_b, log_e0, dlog_e, rw_ratio, cont_ratio):
    """:func:`secondary_max` of arrays of energy pairs."""
    out = np.empty(energy_a.shape[0])
    for i in range(energy_a.shape[0]):
        out[i] = secondary_max(energy_a[i], energy_b[i], log_e0, dlog_e, rw_ratio, cont_ratio)
    return out


@dataclass(frozen=True)
class AngularThetaTables:
    """The shower angular profile f(cosθ) = dN/dcosθ as a distribution in the angle θ itself.

    For a line of point emitters along the muon (light dl = cont·dz of Cherenkov track per dz)
    seen from a PMT at distance ρ from the line, the substitution z → θ (emission angle:
    a − z = ρ·cotθ, r = ρ/sinθ, dz = ρ dθ/sin²θ) turns the fluence integral
    ∫ dz A·acc·cont·Y(r)·f(cosθ)/(2π r²) into (A/2πρ)·∫ dθ acc·cont·Y(ρ/sinθ)·f(cosθ): its
    only sharp factor is f (the cusp at the Cherenkov angle). With F(θ) = ∫₀^θ f(cosθ')dθ'
    and G = F/F(π) the integral is F(π)·∫ g dG of a smooth g, done with nodes equally spaced
    in G (:func:`km3sim.propagation._light_kernels.continuous_shower_npe`).

    Attributes
    ----------
    f_total : float
        F(π) = ∫₀^π f(cosθ) dθ.
    theta_step : float
        Step of the uniform θ grid of ``g_of_theta`` (0 … π).
    g_of_theta : ndarray
        G(θ) on that grid.
    theta_of_g : ndarray
        θ(G) on the uniform grid G = i/(n − 1).
    """

    f_total: float
    theta_step: float
    g_of_theta: np.ndarray
    theta_of_g: np.ndarray

    def args(self):
        """(f_total, theta_step, g_of_theta, theta_of_g) for the kernels."""
        return self.f_total, self.theta_step, self.g_of_theta, self.theta_of_g


@functools.lru_cache(maxsize=8)
def angular_theta_tables(refractive_index: float, n_grid: int = 4097, n_inverse: int = 8193) -> AngularThetaTables:
    """:class:`AngularThetaTables` of the Rädel–Wiebusch EM angular profile at index n
    (:func:`km3sim.propagation.showers.angular_profile`, arXiv:1210.5140)."""
    n = float(refractive_index)
    th_c = math.acos(1.0 / n)
    near = np.geomspace(1e-9, 0.05, 2000)
    fine = np.unique(np.concatenate([np.linspace(0.0, math.pi, 100001), th_c - near, th_c + near, [th_c]]))
    fine = fine[(fine >= 0.0) & (fine <= math.pi)]
    f = np.asarray(sh.angular_profile(np.cos(fine), n), dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(fine))])
    total = float(cum[-1])
    g = cum / total
    grid = np.linspace(0.0, math.pi, n_grid)
    g_grid = np.interp(grid, fine, g)
    keep = np.concatenate([[True], np.diff(g) > 0])
    inv = np.interp(np.linspace(0.0, 1.0, n_inverse), g[keep], fine[keep])
    inv[0], inv[-1] = 0.0, math.pi
    return AngularThetaTables(total, float(grid[1] - grid[0]), np.ascontiguousarray(g_grid), np.ascontiguousarray(inv))
