"""Stochastic energy losses of muons and taus: cross sections, sampling tables, decays.

Physics (PHYSICS.md §4.1, §4.2): the mean loss ``-dE/dx = a(E) + b(E) E`` is split at a
fractional energy loss ``v_cut`` (MUM scheme, Sokalski, Bugaev, Klimushin, PRD 64 (2001)
074015, hep-ph/0010322: ``v_cut = 0.05-0.1`` is enough). Losses with ``v > v_cut`` are
sampled one by one from the differential cross sections below; the rest is continuous.

Differential cross sections ``dsigma/dv`` per atom (``v = epsilon/E``, ``E`` the total lepton
energy), all written here from the published formulas:

* bremsstrahlung: Kelner, Kokoulin, Petrukhin, Phys. At. Nucl. 60 (1997) 576 (nucleus and
  atomic-electron terms with the screening constants B = 183 / 1429, 202.4 / 446 for
  hydrogen, nuclear size factor D_n = 1.54 A^0.27), as in Geant4 ``G4MuBremsstrahlungModel``
  (Geant4 Physics Reference Manual, "Muon bremsstrahlung");
* e+e- pair production: Kokoulin & Petrukhin, Proc. 12th ICRC (1971) 6, 2436, with the
  Kelner-Kokoulin-Petrukhin atomic-electron term zeta(E), integrated over the pair
  asymmetry with 8-point Gauss-Legendre in ln(1 - rho) (Geant4 ``G4MuPairProductionModel``,
  "formula of R.P. Kokoulin (18/01/98)");
* photonuclear: Borog & Petrukhin, Proc. 14th ICRC (1975) 6, 1949, with the Kokoulin
  photoabsorption cross section sigma_gammaN = 49.2 + 11.1 ln(eps) + 151.8/sqrt(eps) µb and
  shadowing A_eff = 0.22 A + 0.78 A^0.89 (Geant4 ``G4KokoulinMuonNuclearXS``). PHYSICS.md
  names Bezrukov-Bugaev; its formula could not be checked in a stored source, this cited
  one differs from it by a few per cent in b_nucl (the total loss is anchored to a + b E anyway);
* knock-on electrons (delta rays): the spin-1/2 formula of PDG "Passage of particles
  through matter" (Rev. Part. Phys., eq. of d2N/dT dx with 1 - beta^2 T/Tmax + T^2/2E^2),
  without the radiative correction.

Total mean loss. For muons the total ``a + b E`` is the Klimushin-Bugaev-Sokalski table
(:class:`km3sim.propagation.muons.ContinuousLossTable`); the stochastic part is the cross-section
integral above ``v_cut`` and the continuous part is the difference, so that the mean loss per
metre equals the table exactly (tested). Sum of the radiative cross sections in sea water at
1-100 TeV: b = 3.0-3.4e-4 per m w.e., within 10 % of the table's 3.40e-4 (tested). For taus
(no such table) the total is ``a`` (ionisation of the table's 30 GeV-35 TeV segment) plus the
full cross-section integrals with the tau mass.

Media: sea water as H2O at the site density (salt neglected), standard rock Z = 11, A = 22,
rho = 2.65 g/cm^3 (PHYSICS.md §4.1).

Tau decay (PDG 2024): c tau = 87.03 µm, BR(mu nu nu) = 17.39 %, BR(e nu nu) = 17.82 %, the
rest hadronic. Decay products are collinear with the tau. Lepton energy fraction z from the
unpolarised spectrum dN/dz = (5 - 9 z^2 + 4 z^3)/3 (Gaisser, "Cosmic Rays and Particle
Physics", tau decay in the collinear limit; Dutta, Reno, Sarcevic, Seckel, PRD 63 (2001)
094020); the hadronic system takes a fraction uniform in [0, 1] (exact for tau -> pi nu,
unpolarised; a documented simplification for rho, a1 ...). Tau polarisation is neglected.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from km3sim.constants import ALPHA_EM, AVOGADRO, DENSITY_ROCK, DENSITY_SEA_WATER, MUON_MASS

__all__ = [
    "ELECTRON_MASS",
    "TAU_MASS",
    "TAU_CTAU_M",
    "TAU_BR_MUON",
    "TAU_BR_ELECTRON",
    "PROCESSES",
    "Medium",
    "SEA_WATER_MEDIUM",
    "STANDARD_ROCK",
    "dsigma_dv",
    "loss_coefficient",
    "LossTables",
    "loss_tables",
    "stacked_tables",
    "propagate_straight",
    "sample_v",
]

logger = logging.getLogger(__name__)

#: Electron mass [GeV].
ELECTRON_MASS = 0.51099895e-3
#: Classical electron radius [m].
R_ELECTRON = 2.8179403262e-15
#: Proton mass [GeV].
PROTON_MASS = 0.93827208816
#: Tau mass [GeV] (PDG 2024).
TAU_MASS = 1.77686
#: c tau of the tau lepton [m] (PDG 2024: 87.03 µm).
TAU_CTAU_M = 87.03e-6
#: Tau branching ratios into mu nu nu and e nu nu (PDG 2024).
TAU_BR_MUON = 0.1739
TAU_BR_ELECTRON = 0.1782

#: Process names, in the order of the tables; ``SHOWER_PDG`` gives the stand-in particle code
#: of the shower each makes (11: EM shower, 211: hadronic shower).
PROCESSES = ("brems", "pair", "photonuclear", "knockon")
SHOWER_PDG = np.array([11, 11, 211, 11], dtype=np.int32)

_SQRTE = math.sqrt(math.e)
_MICROBARN_M2 = 1e-34


@dataclass(frozen=True)
class Medium:
    """A homogeneous medium: elements (Z, A [g/mol], atoms per molecule) and density [g/cm^3]."""

    name: str
    elements: tuple[tuple[float, float, float], ...]
    density_g_cm3: float

    def number_densities(self) -> np.ndarray:
        """Atoms per m^3 of each element."""
        molar = sum(a * n for _, a, n in self.elements)
        return np.array([n * self.density_g_cm3 * 1e6 * AVOGADRO / molar for _, _, n in self.elements])

    def with_density(self, density_g_cm3: float) -> "Medium":
        return Medium(self.name, self.elements, float(density_g_cm3))


SEA_WATER_MEDIUM = Medium("sea_water", ((1.0, 1.00794, 2.0), (8.0, 15.9994, 1.0)), DENSITY_SEA_WATER)
STANDARD_ROCK = Medium("standard_rock", ((11.0, 22.0, 1.0),), DENSITY_ROCK)


# ------------------------------------------------------------------------------ cross sections
def _brems(E, v, Z, A, m):
    eps = v * E
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = 0.5 * m * m * v / (E - eps)
        z13 = Z ** (-1.0 / 3.0)
        dn = 1.54 * A**0.27
        if Z < 1.5:
            b, b1, dnstar = 202.4, 446.0, dn
        else:
            b, b1, dnstar = 183.0, 1429.0, dn ** (1.0 - 1.0 / Z)
        rab0 = delta * _SQRTE
        rab1 = b * z13
        fn = np.log(rab1 / (dnstar * (ELECTRON_MASS + rab0 * rab1)) * (m + delta * (dnstar * _SQRTE - 2.0)))
        fn = np.where(fn > 0.0, fn, 0.0)
        epmax1 = E / (1.0 + 0.5 * m * m / (ELECTRON_MASS * E))
        rab2 = b1 * z13 * z13
        fe = np.log(rab2 * m / ((1.0 + delta * m / (ELECTRON_MASS**2 * _SQRTE)) * (ELECTRON_MASS + rab0 * rab2)))
        fe = np.where((eps < epmax1) & (fe > 0.0), fe, 0.0)
        coeff = 16.0 / 3.0 * ALPHA_EM * (R_ELECTRON * ELECTRON_MASS / m) ** 2
        out = coeff * (1.0 - v + 0.75 * v * v) * Z * (fn * Z + fe) / v
    ok = (v > 0.0) & (eps <= E - m)
    return np.where(ok & np.isfinite(out), out, 0.0)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
_GL_X = 0.5 * (_GL_X + 1.0)
_GL_W = 0.5 * _GL_W


def _pair(E, v, Z, A, m):
    eps = v * E
    resid = E - eps
    z13 = Z ** (1.0 / 3.0)
    z23 = z13 * z13
    mr = m / ELECTRON_MASS
    mr2 = mr * mr
    if Z < 1.5:
        bbb, g1, g2 = 202.4, 4.4e-5, 4.8e-5
    else:
        bbb, g1, g2 = 183.0, 1.95e-5, 5.3e-5
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        alf = 4.0 * ELECTRON_MASS / eps
        a3 = 1.0 - alf
        zeta1 = 0.073 * np.log(E / (m + g1 * z23 * E)) - 0.26
        zeta2 = 0.058 * np.log(E / (m + g2 * z13 * E)) - 0.14
        zeta = np.where(zeta1 > 0.0, zeta1 / zeta2, 0.0)
        z2 = Z * (Z + zeta)
        screen0 = 2.0 * ELECTRON_MASS * _SQRTE * bbb / (z13 * eps)
        a0 = E * resid
        a1 = eps * eps / a0
        bet = 0.5 * a1
        xi0 = 0.25 * mr2 * a1
        dl = 6.0 * m * m / a0
        tmnexp = (alf + 2.0 * dl * a3) / (1.0 + (1.0 - dl) * np.sqrt(np.clip(a3, 0.0, None)))
        tmn = np.log(tmnexp)
        total = np.zeros(np.broadcast(E, v).shape)
        for xg, wg in zip(_GL_X, _GL_W):
            a4 = np.exp(tmn * xg)
            a5 = a4 * (2.0 - a4)
            a6 = 1.0 - a5
            a7 = 1.0 + a6
            a9 = 3.0 + a6
            xi = xi0 * a5
            xii = 1.0 / xi
            xi1 = 1.0 + xi
            screen = screen0 * xi1 / a5
            yeu = 5.0 - a6 + 4.0 * bet * a7
            yed = 2.0 * (1.0 + 3.0 * bet) * np.log(3.0 + xii) - a6 - a1 * (2.0 - a6)
            ye1 = 1.0 + yeu / yed
            ale = np.log(bbb / z13 * np.sqrt(xi1 * ye1) / (1.0 + screen * ye1))
            cre = 0.5 * np.log(1.0 + 2.25 * z23 * xi1 * ye1 / mr2)
            be = np.where(
                xi <= 1e3,
                ((2.0 + a6) * (1.0 + bet) + xi * a9) * np.log(1.0 + xii) + (a5 - bet) / xi1 - a9,
                (3.0 - a6 + a1 * a7) / (2.0 * xi),
            )
            fe = np.clip((ale - cre) * be, 0.0, None)
            ymu = 4.0 + a6 + 3.0 * bet * a7
            ymd = a7 * (1.5 + a1) * np.log(3.0 + xi) + 1.0 - 1.5 * a6
            ym1 = 1.0 + ymu / ymd
            alm_crm = np.log(bbb * mr / (1.5 * z23 * (1.0 + screen * ym1)))
            a10 = (1.0 + a1) * a5
            bm = np.where(
                xi >= 1e-3,
                (a7 * (1.0 + 1.5 * bet) - a10 * xii) * np.log(xi1) + xi * (a5 - bet) / xi1 + a10,
                (5.0 - a6 + bet * a9) * (xi / 2.0),
            )
            fm = np.clip(alm_crm * bm, 0.0, None)
            total = total + wg * a4 * (fe + fm / mr2)
        factor = 4.0 * ALPHA_EM**2 * R_ELECTRON**2 / (3.0 * math.pi)
        # dsigma/deps = -tmn * sum * factor * z2 * resid / (E eps); dsigma/dv = E dsigma/deps
        out = -tmn * total * factor * z2 * resid / eps
    ok = (resid > 0.75 * _SQRTE * m * z13) & (a3 > 0.0) & (tmnexp > 0.0)
    return np.where(ok & np.isfinite(out) & (out > 0.0), out, 0.0)


def _photonuclear(E, v, Z, A, m):
    eps = v * E
    lam2, lam = 0.400, 0.632456
    with np.errstate(divide="ignore", invalid="ignore"):
        aeff = 0.22 * A + 0.78 * A**0.89
        sigph = (49.2 + 11.1 * np.log(eps) + 151.8 / np.sqrt(eps)) * _MICROBARN_M2
        v1 = 1.0 - v
        up = E * E * v1 / (m * m) * (1.0 + m * m * v * v / (lam2 * v1))
        down = 1.0 + eps / lam * (1.0 + lam / (2.0 * PROTON_MASS) + eps / lam)
        dsde = ALPHA_EM / math.pi * aeff * sigph / eps * (-v1 + (v1 + 0.5 * v * v * (1.0 + 2.0 * m * m / lam2)) * np.log(up / down))
        out = E * dsde
    ok = (eps > 0.2) & (eps < E - 0.5 * PROTON_MASS)
    return np.where(ok & np.isfinite(out) & (out > 0.0), out, 0.0)


def _tmax(E, m):
    gamma = E / m
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    r = ELECTRON_MASS / m
    return 2.0 * ELECTRON_MASS * beta2 * gamma * gamma / (1.0 + 2.0 * gamma * r + r * r)


def _knockon(E, v, Z, A, m):
    T = v * E
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = E / m
        beta2 = 1.0 - 1.0 / (gamma * gamma)
        tmax = _tmax(E, m)
        dsdt = 2.0 * math.pi * R_ELECTRON**2 * ELECTRON_MASS * Z / (beta2 * T * T) * (1.0 - beta2 * T / tmax + T * T / (2.0 * E * E))
        out = E * dsdt
    ok = (T > 0.0) & (T <= tmax) & (E > m)
    return np.where(ok & np.isfinite(out) & (out > 0.0), out, 0.0)


_FORMULAS = {"brems": _brems, "pair": _pair, "photonuclear": _photonuclear, "knockon": _knockon}


def dsigma_dv(process: str, energy_gev, v, medium: Medium = SEA_WATER_MEDIUM, mass_gev: float = MUON_MASS):
    """Macroscopic differential cross section ``n dsigma/dv`` [1/m] of one process in a medium.

    Parameters
    ----------
    process : {"brems", "pair", "photonuclear", "knockon"}
    energy_gev : array_like
        Total energy of the lepton [GeV].
    v : array_like
        Fractional energy loss (broadcast with ``energy_gev``).
    medium : Medium
    mass_gev : float
        Lepton mass (muon by default; the tau mass for taus).
    """
    if process not in _FORMULAS:
        raise ValueError(f"unknown process {process!r}; choose from {PROCESSES}")
    E, vv = np.broadcast_arrays(np.asarray(energy_gev, dtype=np.float64), np.asarray(v, dtype=np.float64))
    out = np.zeros(E.shape)
    for (Z, A, _), n in zip(medium.elements, medium.number_densities()):
        out += n * _FORMULAS[process](E, vv, Z, A, mass_gev)
    return out


def _v_bounds(process: str, E, medium: Medium, m: float, v_min_floor: float):
    """Kinematic range (v_lo, v_hi) of a process at total energy E (arrays)."""
    E = np.asarray(E, dtype=np.float64)
    zmin = min(z for z, _, _ in medium.elements)
    if process == "brems":
        lo, hi = np.full(E.shape, v_min_floor), 1.0 - m / E
    elif process == "pair":
        lo, hi = np.maximum(v_min_floor, 4.0 * ELECTRON_MASS / E), 1.0 - 0.75 * _SQRTE * m * zmin ** (1.0 / 3.0) / E
    elif process == "photonuclear":
        lo, hi = np.maximum(v_min_floor, 0.2 / E), 1.0 - 0.5 * PROTON_MASS / E
    else:
        lo, hi = np.full(E.shape, v_min_floor), _tmax(E, m) / E
    return lo, np.minimum(hi, 1.0 - 1e-9)


def loss_coefficient(process: str, energy_gev, medium: Medium = SEA_WATER_MEDIUM, mass_gev: float = MUON_MASS,
                     v_min: float = 0.0, v_max: float = 1.0, n_v: int = 400) -> np.ndarray:
    """``b_k(E) = int v n dsigma/dv dv`` [1/m] over ``v_min < v < v_max`` (quadrature in ln v).

    With the defaults, the full radiative loss coefficient of the process (for knock-on
    electrons: the part of the ionisation loss in delta rays above ``v_min``, divided by E).
    """
    E = np.atleast_1d(np.asarray(energy_gev, dtype=np.float64))
    floor = max(v_min, 1e-9)
    lo, hi = _v_bounds(process, E, medium, mass_gev, floor)
    hi = np.minimum(hi, v_max)
    out = np.zeros(E.shape)
    good = hi > lo
    if good.any():
        w = np.linspace(0.0, 1.0, n_v)
        llo, lhi = np.log(lo[good]), np.log(hi[good])
        lv = llo[:, None] + w[None, :] * (lhi - llo)[:, None]
        vv = np.exp(lv)
        f = vv * vv * dsigma_dv(process, E[good][:, None], vv, medium, mass_gev)  # v * dsigma/dv per d ln v
        out[good] = np.trapezoid(f, lv, axis=1)
    return out


# ------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class LossTables:
    """Sampling tables of one lepton in one medium, on a log-uniform energy grid.

    Attributes
    ----------
    energy : ndarray (nE,)
        Grid of total energies [GeV], log-uniform from ``energy[0]``, step ``dlnE``.
    x_cont : ndarray (nE,)
        Continuous range from each energy down to 0 with the continuous loss only [m]
        (below ``energy[0]`` it is proportional to E).
    lam : ndarray (nE,)
        Expected number of stochastic losses (v > v_cut) while slowing continuously from E to 0.
    sigma : ndarray (nP, nE)
        Macroscopic cross section above v_cut of each process [1/m].
    cdf : ndarray (nP, nE, nW)
        Cumulative distribution of w = (ln v - ln v_lo)/(ln v_hi - ln v_lo) on a uniform w grid.
    lvlo, lvhi : ndarray (nP, nE)
        ln v_lo and ln v_hi of each process and node.
    f_total, f_sto : ndarray (nE,)
        Total mean loss per metre and its stochastic part (v > v_cut) [GeV/m].
    """

    energy: np.ndarray
    dlnE: float
    x_cont: np.ndarray
    lam: np.ndarray
    sigma: np.ndarray
    cdf: np.ndarray
    lvlo: np.ndarray
    lvhi: np.ndarray
    f_total: np.ndarray
    f_sto: np.ndarray


_E_MIN, _E_MAX, _PER_DECADE, _NW = 1e-2, 1e10, 50, 101
_GQ_X, _GQ_W = np.polynomial.legendre.leggauss(3)
_GQ_X, _GQ_W = 0.5 * (_GQ_X + 1.0), 0.5 * _GQ_W


def _cumtrapz(y, x):
    out = np.zeros_like(y)
    out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))
    return out


def build_tables(medium: Medium, mass_gev: float, v_cut: float, total_loss=None, a_ion: float = 0.0,
                 processes=PROCESSES) -> LossTables:
    """Build :class:`LossTables` for a lepton of mass ``mass_gev`` in ``medium``.

    Parameters
    ----------
    total_loss : callable or None
        ``f(E) -> -dE/dx`` [GeV/m], the total mean loss (muons: the a + b E table). If None,
        ``a_ion + E * sum_k b_k(E)`` from the full cross-section integrals (taus).
    a_ion : float
        Ionisation loss [GeV/m] used when ``total_loss`` is None.
    processes : tuple of str
        Processes sampled stochastically (others of :data:`PROCESSES` get sigma = 0).
    """
    n_e = int(round(math.log10(_E_MAX / _E_MIN) * _PER_DECADE)) + 1
    lnE = np.linspace(math.log(_E_MIN), math.log(_E_MAX), n_e)
    E = np.exp(lnE)
    nP = len(PROCESSES)
    sigma = np.zeros((nP, n_e))
    cdf = np.zeros((nP, n_e, _NW))
    lvlo = np.zeros((nP, n_e))
    lvhi = np.zeros((nP, n_e))
    f_sto = np.zeros(n_e)
    w = np.linspace(0.0, 1.0, _NW)
    for k, proc in enumerate(PROCESSES):
        lo, hi = _v_bounds(proc, E, medium, mass_gev, v_cut)
        lvlo[k] = np.log(lo)
        lvhi[k] = np.log(np.maximum(hi, lo))
        if proc not in processes:
            continue
        good = np.flatnonzero((hi > lo) & (E > 2.0 * mass_gev))
        if good.size == 0:
            continue
        # bin integrals of dSigma/d ln v with 3-point Gauss-Legendre per w bin (the density
        # falls steeply at the kinematic end, where a trapezoid would miss the last bin)
        width = (lvhi[k, good] - lvlo[k, good])[:, None]
        wq = (w[:-1, None] + _GQ_X[None, :] * (w[1] - w[0])).ravel()
        lv = lvlo[k, good][:, None] + wq[None, :] * width
        vv = np.exp(lv)
        dens = vv * dsigma_dv(proc, E[good][:, None], vv, medium, mass_gev)  # dSigma / d ln v
        wts = np.tile(_GQ_W, _NW - 1)[None, :] * (w[1] - w[0]) * width
        binsum = (dens * wts).reshape(good.size, _NW - 1, len(_GQ_X)).sum(axis=2)
        c = np.zeros((good.size, _NW))
        c[:, 1:] = np.cumsum(binsum, axis=1)
        tot = c[:, -1]
        sigma[k, good] = tot
        f_sto[good] += E[good] * np.sum(vv * dens * wts, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cn = np.where(tot[:, None] > 0, c / tot[:, None], w[None, :])
        cdf[k, good] = cn
    # nodes without a cross section: uniform in w (never sampled unless at a threshold)
    for k in range(nP):
        zero = sigma[k] <= 0.0
        cdf[k, zero] = w[None, :]
    if total_loss is None:
        b_all = np.zeros(n_e)
        hi_e = E > 2.0 * mass_gev
        for proc in ("brems", "pair", "photonuclear"):
            b_all[hi_e] += loss_coefficient(proc, E[hi_e], medium, mass_gev)
        f_total = a_ion + E * b_all
    else:
        f_total = np.asarray(total_loss(E), dtype=np.float64)
    # the continuous part is the total minus the sampled part; never below 10 % of the total
    # (only reached for v_cut far below MUM's range, where the cross sections are scaled down)
    scale = np.minimum(1.0, 0.9 * f_total / np.maximum(f_sto, 1e-300))
    if np.any(scale < 1.0):
        logger.warning("stochastic losses above v_cut=%g exceed 90%% of the total loss at %d energies; scaled down",
                       v_cut, int(np.sum(scale < 1.0)))
    sigma *= scale[None, :]
    f_sto *= scale
    f_cont = f_total - f_sto
    # continuous range: X(E) = int_0^E dE'/f_cont, trapezoid in ln E; X ~ E/f below the grid
    x = _cumtrapz(E / f_cont, lnE) + E[0] / f_cont[0]
    lam = _cumtrapz(E * sigma.sum(axis=0) / f_cont, lnE)
    return LossTables(E, float(lnE[1] - lnE[0]), x, lam, sigma, cdf, lvlo, lvhi, f_total, f_sto)


@functools.lru_cache(maxsize=32)
def loss_tables(particle: str, medium_name: str, density_g_cm3: float, v_cut: float) -> LossTables:
    """Cached tables for ``particle`` in ("mu", "tau") and ``medium_name`` in ("sea_water", "rock").

    Muons: total loss from the Klimushin-Bugaev-Sokalski table (rock: the Jpp rock scaling,
    PHYSICS.md §4.1); all four processes sampled above ``v_cut``. Taus: ionisation a = 0.267
    GeV per m w.e. (the table's middle segment) plus the radiative cross sections with the tau
    mass; brems, pair and photonuclear sampled, knock-on electrons continuous.
    """
    from km3sim.propagation.muons import ContinuousLossTable  # here: muons imports this module

    if medium_name == "sea_water":
        medium, cont = SEA_WATER_MEDIUM.with_density(density_g_cm3), ContinuousLossTable.sea_water(density_g_cm3)
    elif medium_name == "rock":
        medium, cont = STANDARD_ROCK.with_density(density_g_cm3), ContinuousLossTable.rock(density_g_cm3)
    else:
        raise ValueError(f"unknown medium {medium_name!r}")
    if particle == "mu":
        a, b, e_low = cont.args()

        def total(E):
            k = np.searchsorted(-e_low, -E, side="right")  # segment: first with E > e_low
            k = np.clip(k, 0, len(a) - 1)
            return a[k] + b[k] * E

        return build_tables(medium, MUON_MASS, v_cut, total_loss=total)
    if particle == "tau":
        a_ion = float(cont.a[-2] if cont.a.size > 1 else cont.a[0])
        return build_tables(medium, TAU_MASS, v_cut, a_ion=a_ion, processes=("brems", "pair", "photonuclear"))
    raise ValueError(f"unknown particle {particle!r}")


def stacked_tables(v_cut: float, water_density: float, rock_density: float):
    """Tables of (mu, tau) x (sea water, rock) stacked for the numba kernels.

    Returns a tuple (lnE0, dlnE, E, X, LAM, SIG, CDF, LVLO, LVHI) with the arrays indexed
    [particle, medium, ...] (particle 0 = muon, 1 = tau; medium 0 = sea water, 1 = rock).
    """
    tabs = [[loss_tables(p, "sea_water", float(water_density), float(v_cut)),
             loss_tables(p, "rock", float(rock_density), float(v_cut))] for p in ("mu", "tau")]
    t0 = tabs[0][0]

    def st(attr):
        return np.ascontiguousarray(np.array([[getattr(t, attr) for t in row] for row in tabs]), dtype=np.float64)

    return (float(np.log(t0.energy[0])), float(t0.dlnE), np.ascontiguousarray(t0.energy), st("x_cont"), st("lam"),
            st("sigma"), st("cdf"), st("lvlo"), st("lvhi"))


def _medium_index(medium: str) -> int:
    if medium not in ("sea_water", "rock"):
        raise ValueError(f"medium must be 'sea_water' or 'rock', got {medium!r}")
    return 0 if medium == "sea_water" else 1


def propagate_straight(pdgid, energy_gev, distance_m, seed: int = 1, medium: str = "sea_water", v_cut: float = 0.05,
                       stochastic: bool = True, tau_decay: bool = True, water_density: float = DENSITY_SEA_WATER,
                       rock_density: float = DENSITY_ROCK) -> dict[str, np.ndarray]:
    """Propagate muons / taus along a straight line through one homogeneous medium.

    Parameters
    ----------
    pdgid, energy_gev : array_like
        Lepton codes (±13, ±15) and total energies [GeV].
    distance_m : float
        Length of the medium [m] (``np.inf``: until the lepton stops).
    seed : int
        Seed; lepton ``i`` draws from the stream of ``event_seeds(seed, 0, i, "straight")``.

    Returns
    -------
    dict with ``energy`` (final, 0 if stopped), ``path`` (range / decay distance / distance),
    ``continuous`` and ``stochastic`` (energy lost each way), ``n_losses``, ``decayed``,
    ``decay_energy`` (energy carried off by the decay products other than a decay muon).
    """
    from km3sim.propagation import _stochastic_kernels as SK
    from km3sim.random import event_seeds

    pdg = np.atleast_1d(np.asarray(pdgid, dtype=np.int64))
    e0 = np.atleast_1d(np.asarray(energy_gev, dtype=np.float64))
    pdg, e0 = np.broadcast_arrays(pdg, e0)
    seeds = event_seeds(seed, 0, np.arange(e0.size, dtype=np.int64), "straight")
    tabs = stacked_tables(v_cut, water_density, rock_density)
    m = _medium_index(medium)
    from km3sim.propagation.muons import ContinuousLossTable

    cont = ContinuousLossTable.sea_water(water_density) if m == 0 else ContinuousLossTable.rock(rock_density)
    out = SK.propagate_straight(np.ascontiguousarray(pdg), np.ascontiguousarray(e0), float(distance_m), seeds, m,
                                bool(stochastic), bool(tau_decay), not stochastic, *cont.args(), *tabs)
    keys = ("energy", "path", "continuous", "stochastic", "n_losses", "decayed", "decay_energy")
    return dict(zip(keys, out))


def sample_v(process: str, energy_gev: float, n: int, seed: int = 1, particle: str = "mu", medium: str = "sea_water",
             v_cut: float = 0.05, water_density: float = DENSITY_SEA_WATER, rock_density: float = DENSITY_ROCK) -> np.ndarray:
    """``n`` fractional losses v of ``process`` sampled by the propagation tables at ``energy_gev``."""
    from km3sim.propagation import _stochastic_kernels as SK

    k = PROCESSES.index(process)
    lnE0, dlnE, Eg, _, _, SIG, CDF, LVLO, LVHI = stacked_tables(v_cut, water_density, rock_density)
    p = 0 if particle == "mu" else 1
    m = _medium_index(medium)
    i = int(np.searchsorted(Eg, energy_gev))
    if SIG[p, m, k, i] <= 0.0:
        raise ValueError(f"process {process!r} has no losses above v_cut at {energy_gev} GeV")
    return SK.sample_v(float(energy_gev), p, m, k, int(n), np.uint64(seed), lnE0, dlnE, Eg, SIG, CDF, LVLO, LVHI)
