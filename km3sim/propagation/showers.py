"""Cherenkov light of electromagnetic and hadronic showers (cascades).

Parametrisations of L. Rädel and C. Wiebusch, "Calculation of the Cherenkov light yield from
electromagnetic cascades in ice with Geant4", Astropart. Phys. 44 (2013) 102, arXiv:1210.5140
(PHYSICS.md §5.4; numbers as in PLEnuM-group/PhotonPropagation.jl ``lightyield.jl`` and
pone-software/hyperion ``constants.py``):

* total Cherenkov track length ``l = α·E^β`` (m, E in GeV) with the shower-to-shower spread
  ``σ_l = α_dev·E^β_dev`` (m; absolute, as the source code evaluates it — the paper gives α and
  α_dev in cm). For photons the source lists β_dev = 5.666, which would give σ_l > l above 1 GeV;
  we use β_dev = 0.5 as for e± (an assumption, flagged in PHYSICS.md §5.4 terms as [UNVERIFIED]);
* longitudinal profile: gamma distribution in t = z/X0, ``dl/dt = b(bt)^(a−1)e^(−bt)/Γ(a)``,
  ``a = α_L + β_L·log10(E/GeV)``, with X0 = 0.36 m (Jpp ``X0_WATER_M``, PHYSICS.md §5.4);
* angular emission profile of the photons about the shower axis,
  ``dN/dcosθ ∝ a·exp(b·|cosθ − 1/n|^c) + d`` (e⁻ fit), normalised numerically on [−1, 1].
  Rädel's hadronic angular parameters were not found (PHYSICS.md §5.4 [UNVERIFIED]); hadronic
  showers use the same profile.

Hadronic showers use the π⁺ track length (α = 3.3355, β = 1.0366) and its larger fluctuations
(σ_l/l = 36 % at 1 GeV, 12 % at 100 GeV); their mean light relative to an EM shower is
0.74 at 100 GeV, which matches the IceCube factor F(E) of PHYSICS.md §5.4
(:func:`hadronic_em_ratio`). Above :data:`HADRON_FIT_MAX_GEV` the hadronic length follows
l_EM·F(E) (joined continuously), because the π⁺ power law would exceed the EM light above
~300 TeV.

The number of Cherenkov photons of a shower is ``l × (Frank–Tamm photons per metre)``
(PHYSICS.md §5.1, §5.4).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import integrate, special

__all__ = [
    "RADIATION_LENGTH_WATER_M",
    "HADRON_FIT_MAX_GEV",
    "KIND_NONE",
    "KIND_ELECTRON",
    "KIND_POSITRON",
    "KIND_PHOTON",
    "KIND_HADRON",
    "ANGULAR_PARAMETERS",
    "shower_kind",
    "visible_energy",
    "cherenkov_track_length",
    "cherenkov_track_length_sigma",
    "longitudinal_parameters",
    "longitudinal_profile",
    "longitudinal_quantiles",
    "angular_profile",
    "angular_profile_tables",
    "hadronic_em_ratio",
    "shower_photon_count",
]

#: Radiation length of sea water [m] (Jpp ``X0_WATER_M``, PHYSICS.md §5.4).
RADIATION_LENGTH_WATER_M = 0.36

#: Shower kinds (index into the parameter tables below).
KIND_NONE = -1
KIND_ELECTRON = 0
KIND_POSITRON = 1
KIND_PHOTON = 2
KIND_HADRON = 3

# Rädel & Wiebusch (arXiv:1210.5140), PHYSICS.md §5.4; rows e⁻, e⁺, γ, π⁺ (hadronic)
_TRACK_ALPHA = np.array([5.3207078881, 5.3211320598, 5.3208540905, 3.3355])  # m/GeV^β
_TRACK_BETA = np.array([1.00000211, 0.99999254, 0.99999877, 1.0366])
_DEV_ALPHA = np.array([0.0578170887, 0.0573419669, 0.0578170887, 1.1920])  # m
_DEV_BETA = np.array([0.5, 0.5, 0.5, 0.8077])  # γ: 0.5 assumed (source lists 5.666, see above)
_LONG_ALPHA = np.array([2.01849, 2.00035, 2.83923, 1.58357])
_LONG_BETA = np.array([1.45469, 1.45501, 1.34031, 0.96448])
_LONG_B = np.array([0.63207, 0.63008, 0.64526, 0.33833])

#: (a, b, c, d) of the angular emission profile of EM cascades (e⁻ fit, arXiv:1210.5140).
ANGULAR_PARAMETERS = (4.27033, -6.02527, 0.29887, -0.00103)

#: Upper end of the energy range in which the Rädel π⁺ track length is used [GeV]; above it
#: the α·E^β fit would keep growing relative to EM showers (it exceeds them above ~3e5 GeV), so
#: the hadronic length follows l_EM(E)·F(E) (IceCube factor, :func:`hadronic_em_ratio`), scaled
#: to join continuously (the two agree within 2 % at 10 TeV). The fit range is [UNVERIFIED].
HADRON_FIT_MAX_GEV = 1e4

# proton, neutron masses [GeV]: their rest energy gives no light
_NUCLEON_MASS = {2212: 0.93827208816, 2112: 0.93956542052}


def shower_kind(pdgid) -> np.ndarray:
    """Shower kind of each PDG code.

    e⁻ (11) → electron; e⁺ (−11) → positron; γ (22) and π⁰ (111, two photons) → photon;
    other hadrons (|pdgid| > 100 and not nuclei, e.g. ±211, 2212, 2112, 130, 310, ±321,
    3122) → hadronic; everything else (muons, taus, neutrinos, nuclei) → :data:`KIND_NONE`.

    Parameters
    ----------
    pdgid : int or array_like

    Returns
    -------
    ndarray of int8
    """
    p = np.asarray(pdgid, dtype=np.int64)
    a = np.abs(p)
    kind = np.full(p.shape, KIND_NONE, dtype=np.int8)
    kind[(a > 100) & (a < 1_000_000_000)] = KIND_HADRON
    kind[(p == 22) | (p == 111)] = KIND_PHOTON
    kind[p == 11] = KIND_ELECTRON
    kind[p == -11] = KIND_POSITRON
    return kind


def visible_energy(pdgid, energy) -> np.ndarray:
    """Energy that goes into the shower [GeV]: the total energy, less the rest mass for (anti)nucleons.

    A proton or neutron deposits only its kinetic energy; for other particles (e±, γ, pions,
    kaons, the "hadronic system" pdgid 211 of a neutrino interaction) the total energy is used.
    """
    p = np.abs(np.asarray(pdgid, dtype=np.int64))
    e = np.array(energy, dtype=np.float64, copy=True)
    for code, mass in _NUCLEON_MASS.items():
        m = p == code
        e[m] = e[m] - mass
    return np.clip(e, 0.0, None)


def _kind_index(kind):
    k = np.asarray(kind, dtype=np.int64)
    if np.any((k < 0) | (k > KIND_HADRON)):
        raise ValueError(f"shower kind must be in 0..{KIND_HADRON}, got {np.unique(k)}")
    return k


def cherenkov_track_length(energy, kind):
    """Mean total Cherenkov track length l = α·E^β of a shower [m] (Rädel & Wiebusch, PHYSICS.md §5.4).

    Parameters
    ----------
    energy : float or array_like
        Shower energy [GeV].
    kind : int or array_like
        :data:`KIND_ELECTRON`, :data:`KIND_POSITRON`, :data:`KIND_PHOTON` or :data:`KIND_HADRON`.
    """
    k = _kind_index(kind)
    e = np.clip(np.asarray(energy, dtype=np.float64), 0.0, None)
    out = _TRACK_ALPHA[k] * e ** _TRACK_BETA[k]
    # hadrons above the fitted range: EM length × F(E), joined continuously at HADRON_FIT_MAX_GEV
    high = (k == KIND_HADRON) & (e > HADRON_FIT_MAX_GEV)
    if np.any(high):
        eh = e[high] if np.ndim(e) else e
        em = _TRACK_ALPHA[KIND_ELECTRON] * eh ** _TRACK_BETA[KIND_ELECTRON]
        out = np.array(out, dtype=np.float64)
        out[high] = em * hadronic_em_ratio(eh) * _HADRON_JOIN
    return out if np.ndim(out) else float(out)


def cherenkov_track_length_sigma(energy, kind):
    """Shower-to-shower standard deviation σ_l = α_dev·E^β_dev of the track length [m] (PHYSICS.md §5.4)."""
    k = _kind_index(kind)
    e = np.clip(np.asarray(energy, dtype=np.float64), 0.0, None)
    out = _DEV_ALPHA[k] * e ** _DEV_BETA[k]
    return out if np.ndim(out) else float(out)


def longitudinal_parameters(energy, kind):
    """(a, b) of the gamma-distributed longitudinal profile in t = z/X0 (PHYSICS.md §5.4).

    ``a = α_L + β_L·log10(E/GeV)`` (floored at 1, where the profile stops peaking away from the
    vertex, i.e. below ~0.5 GeV for EM and 0.2 GeV for hadronic showers).
    """
    k = _kind_index(kind)
    e = np.clip(np.asarray(energy, dtype=np.float64), 1e-3, None)
    a = np.maximum(_LONG_ALPHA[k] + _LONG_BETA[k] * np.log10(e), 1.0)
    b = _LONG_B[k] * np.ones_like(a)
    if np.ndim(a) == 0:
        return float(a), float(b)
    return a, b


def longitudinal_profile(z_m, energy, kind, x0_m=RADIATION_LENGTH_WATER_M):
    """Fraction of the Cherenkov track length per metre at depth z along the axis [1/m].

    ``dl/dz = (1/X0)·b(bt)^(a−1)e^(−bt)/Γ(a)``, t = z/X0 (Rädel & Wiebusch, PHYSICS.md §5.4);
    integrates to 1 over z ≥ 0.
    """
    a, b = longitudinal_parameters(energy, kind)
    t = np.asarray(z_m, dtype=np.float64) / x0_m
    out = np.where(t > 0.0, b * np.exp((a - 1.0) * np.log(np.where(t > 0, b * t, 1.0)) - b * t - special.gammaln(a)), 0.0) / x0_m
    return out if out.ndim else float(out)


def longitudinal_quantiles(energy, kind, probabilities, x0_m=RADIATION_LENGTH_WATER_M):
    """Depths z [m] below which the given fractions of the shower's light are emitted.

    Parameters
    ----------
    energy, kind : array_like (n,)
    probabilities : array_like (m,)
        Cumulative fractions in [0, 1).

    Returns
    -------
    ndarray (n, m)
    """
    a, b = longitudinal_parameters(np.atleast_1d(energy), np.atleast_1d(kind))
    q = np.asarray(probabilities, dtype=np.float64)
    return special.gammaincinv(np.asarray(a)[:, None], q[None, :]) / np.asarray(b)[:, None] * x0_m


def _angular_raw(cos_theta, refractive_index):
    a, b, c, d = ANGULAR_PARAMETERS
    x = np.abs(np.asarray(cos_theta, dtype=np.float64) - 1.0 / refractive_index)
    return np.clip(a * np.exp(b * x**c) + d, 0.0, None)


@functools.lru_cache(maxsize=64)
def _angular_norm(refractive_index: float) -> float:
    cc = 1.0 / refractive_index
    return integrate.quad(lambda x: float(_angular_raw(x, refractive_index)), -1.0, 1.0, points=[cc], limit=200,
                          epsabs=0.0, epsrel=1e-10)[0]


def angular_profile(cos_theta, refractive_index):
    """Normalised angular distribution dN/dcosθ of the Cherenkov photons of a shower.

    ``∝ a·exp(b·|cosθ − 1/n|^c) + d`` with (a, b, c, d) = :data:`ANGULAR_PARAMETERS`
    (Rädel & Wiebusch, arXiv:1210.5140, e⁻ fit; PHYSICS.md §5.4), θ from the shower axis,
    normalised to 1 on cosθ ∈ [−1, 1]; peaked at the Cherenkov angle cosθ = 1/n.

    Parameters
    ----------
    cos_theta : float or array_like
    refractive_index : float
        Phase index n.
    """
    out = _angular_raw(cos_theta, refractive_index) / _angular_norm(float(refractive_index))
    return out if np.ndim(out) else float(out)


def angular_profile_tables(refractive_index: float, n_pdf: int = 4001, n_inverse: int = 8193):
    """Tables of the angular profile for the numba kernels.

    Returns
    -------
    pdf : ndarray (n_pdf,)
        dN/dcosθ on the uniform grid cosθ = −1 + i·2/(n_pdf − 1).
    inverse_cdf : ndarray (n_inverse,)
        cosθ at the uniform probability grid u = i/(n_inverse − 1) (sampling by interpolation).
    """
    n = float(refractive_index)
    cc = 1.0 / n
    norm = _angular_norm(n)
    grid = np.linspace(-1.0, 1.0, n_pdf)
    pdf = _angular_raw(grid, n) / norm
    # fine grid, denser near the cusp at 1/n, for the cumulative distribution
    near = np.geomspace(1e-9, 0.05, 2000)
    fine = np.unique(np.concatenate([np.linspace(-1.0, 1.0, 40001), cc - near, cc + near, [cc]]))
    fine = fine[(fine >= -1.0) & (fine <= 1.0)]
    f = _angular_raw(fine, n) / norm
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(fine))])
    cdf /= cdf[-1]
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    u = np.linspace(0.0, 1.0, n_inverse)
    inverse = np.interp(u, cdf[keep], fine[keep])
    inverse[0], inverse[-1] = -1.0, 1.0
    return np.ascontiguousarray(pdf), np.ascontiguousarray(inverse)


def hadronic_em_ratio(energy):
    """Mean light of a hadronic shower relative to an EM shower of the same energy, F(E).

    IceCube parametrisation (PHYSICS.md §5.4)::

        F(E) = 1 − (E/E0)^(−m)·(1 − f0),  E0 = 0.18791678 GeV, m = 0.16267529, f0 = 0.30974123

    Used here as an independent check of the Rädel π⁺ track length (ratio 0.74 at 100 GeV).
    """
    e = np.maximum(np.asarray(energy, dtype=np.float64), math.e)
    out = 1.0 - (e / 0.18791678) ** (-0.16267529) * (1.0 - 0.30974123)
    return out if out.ndim else float(out)


def shower_photon_count(energy, kind, photons_per_metre):
    """Mean number of Cherenkov photons of a shower: l(E) × Frank–Tamm photons per metre (PHYSICS.md §5.4).

    Parameters
    ----------
    energy : float or array_like
        Shower energy [GeV].
    kind : int or array_like
        Shower kind.
    photons_per_metre : float
        ∫ d²N/dxdλ dλ over the wavelength range of interest (e.g. QE-weighted) [1/m].
    """
    return cherenkov_track_length(energy, kind) * photons_per_metre


_HADRON_JOIN = float(
    _TRACK_ALPHA[KIND_HADRON] * HADRON_FIT_MAX_GEV ** _TRACK_BETA[KIND_HADRON]
    / (_TRACK_ALPHA[KIND_ELECTRON] * HADRON_FIT_MAX_GEV ** _TRACK_BETA[KIND_ELECTRON] * hadronic_em_ratio(HADRON_FIT_MAX_GEV))
)
