"""Cosmic-ray primary flux models: Gaisser H3a / H4a and Gaisser-Stanev-Tilav (GST).

Physics: PHYSICS.md §2.1. Every model is a sum over nucleus groups ``i`` and populations ``j``
of power laws with an exponential cut-off at a fixed rigidity::

    dN/dE (group i) = sum_j a_ij E^(-gamma_ij - 1) exp(-E / (Z_i Rc_j))    [m^-2 s^-1 sr^-1 GeV^-1]

with E the total energy per nucleus [GeV], gamma the *integral* index and Rc the cut-off
rigidity [GV]. Sources of the numbers:

- H3a, H4a: T. K. Gaisser, "Spectrum of cosmic-ray nucleons, kaon production, and the
  atmospheric muon charge ratio", Astropart. Phys. 35 (2012) 801, arXiv:1111.6675, as
  tabulated in crflux (``mceq-project/crflux:crflux/models.py``, class ``HillasGaisser2012``).
- GST: T. K. Gaisser, T. Stanev, S. Tilav, "Cosmic ray energy spectrum from measurements of
  air showers", Front. Phys. 8 (2013) 748, arXiv:1303.3565, 3- and 4-population versions as
  tabulated in crflux (class ``GaisserStanevTilav``).

Groups and their PDG codes (``100ZZZAAA0`` for nuclei, 2212 for the proton)
------------------------------------------------------------------------------
All models here are expressed on the five mass groups used for generation (H3a's groups):

==============  ============  ======================  ===================================
group           PDG code      H3a / H4a (Z)           GST (Z used in the cut-off)
==============  ============  ======================  ===================================
p               2212          p (1)                   H (1)
He              1000020040    He (2)                  He (2)
CNO             1000060120    CNO (6)                 C (6)
Mg-Si           1000140280    Mg-Si (14)              **O (8)**
Fe              1000260560    Fe (26)                 Fe (26)
==============  ============  ======================  ===================================

GST has no Mg-Si group; its C and O groups are mapped onto the CNO and Mg-Si generation
groups, in the same way as IceCube's simweights ``GlobalFitGST`` maps C to N and O to Al
(PHYSICS.md §2.1 notes). The flux of the group is the model's own (O's Z = 8 enters its
cut-off), only the label (and the nucleus simulated for it) is the generation group's.
This keeps every model defined on the same groups, so that a sample generated once can be
re-weighted to any model. crflux's GST also carries Te (Z = 52) and Hg (Z = 80) terms, which
it leaves out of its total flux by default; they are left out here as well (they are not in
the PHYSICS.md table). The Fe group is labelled Fe-56 (crflux uses A = 54, ``5426``); the
mass number only matters for the muon yield.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate

from km3sim.io.pdg import nucleus_pdg, nucleus_za

__all__ = [
    "PROTON",
    "HELIUM",
    "CNO",
    "MGSI",
    "IRON",
    "GENERATION_GROUPS",
    "GROUP_NAMES",
    "PrimaryFlux",
    "FLUX_MODELS",
    "get_flux_model",
    "nucleus_pdg",
    "nucleus_za",
    "mass_number",
]

#: PDG codes of the five generation groups.
PROTON = 2212
HELIUM = 1000020040
CNO = 1000060120
MGSI = 1000140280
IRON = 1000260560
GENERATION_GROUPS = (PROTON, HELIUM, CNO, MGSI, IRON)
GROUP_NAMES = {PROTON: "p", HELIUM: "He", CNO: "CNO", MGSI: "Mg-Si", IRON: "Fe"}


def mass_number(pdg) -> np.ndarray:
    """Mass numbers A of nucleus PDG codes (array in, array out; the proton gives 1)."""
    p = np.asarray(pdg, dtype=np.int64)
    a = np.where(p == PROTON, 1, (p // 10) % 1000)
    bad = (p != PROTON) & ((p < 1_000_000_000) | (p >= 1_100_000_000))
    if np.any(bad):
        raise ValueError(f"PDG codes {np.unique(p[bad])[:5]} are not nuclei")
    return a


@dataclass(frozen=True)
class _Group:
    z: int  # charge used in the rigidity cut-off
    norm: tuple[float, ...]  # a_j [m^-2 s^-1 sr^-1 GeV^-1 at 1 GeV, before the cut-off]
    gamma: tuple[float, ...]  # integral spectral index gamma_j (differential: gamma + 1)


class PrimaryFlux:
    """A cosmic-ray primary flux model on nucleus groups (PHYSICS.md §2.1).

    Parameters
    ----------
    name : str
        Model name.
    rigidity_cutoffs_gv : sequence of float
        Cut-off rigidity Rc_j of each population [GV].
    groups : dict
        PDG code -> (Z, [a_j], [gamma_j]) per population.
    """

    def __init__(self, name: str, rigidity_cutoffs_gv, groups: dict[int, tuple[int, list, list]]):
        self.name = name
        self.rigidity_cutoffs_gv = tuple(float(r) for r in rigidity_cutoffs_gv)
        n = len(self.rigidity_cutoffs_gv)
        self._groups: dict[int, _Group] = {}
        for pdg, (z, norm, gamma) in groups.items():
            if len(norm) != n or len(gamma) != n:
                raise ValueError(f"{name}: group {pdg} needs {n} populations")
            self._groups[int(pdg)] = _Group(int(z), tuple(map(float, norm)), tuple(map(float, gamma)))

    def __repr__(self) -> str:
        return f"PrimaryFlux({self.name!r}, groups={list(self.groups)})"

    @property
    def groups(self) -> tuple[int, ...]:
        """PDG codes of the nucleus groups of the model."""
        return tuple(self._groups)

    def charge(self, pdg: int) -> int:
        """Charge Z the model uses for the rigidity cut-off of group ``pdg``."""
        return self._group(pdg).z

    def _group(self, pdg: int) -> _Group:
        pdg = PROTON if int(pdg) == 1_000_010_010 else int(pdg)
        try:
            return self._groups[pdg]
        except KeyError:
            raise ValueError(f"flux model {self.name!r} has no group {pdg}; its groups are {self.groups}") from None

    def flux(self, pdg, energy_gev):
        """Differential flux of group ``pdg`` [m^-2 s^-1 sr^-1 GeV^-1].

        Parameters
        ----------
        pdg : int or array_like of int
            PDG code of the group (one code, or one per energy).
        energy_gev : float or array_like
            Total energy per nucleus [GeV].
        """
        e = np.asarray(energy_gev, dtype=np.float64)
        p = np.asarray(pdg, dtype=np.int64)
        if p.ndim == 0:
            out = self._group_flux(self._group(int(p)), e)
            return out if out.ndim else float(out)
        p, e = np.broadcast_arrays(p, e)
        out = np.zeros(p.shape, dtype=np.float64)
        for code in np.unique(p):
            sel = p == code
            out[sel] = self._group_flux(self._group(int(code)), e[sel])
        return out

    def _group_flux(self, g: _Group, e: np.ndarray) -> np.ndarray:
        out = np.zeros(np.shape(e), dtype=np.float64)
        for a, gamma, rc in zip(g.norm, g.gamma, self.rigidity_cutoffs_gv):
            if a != 0.0:
                out = out + a * e ** (-gamma - 1.0) * np.exp(-e / (g.z * rc))
        return out

    def __call__(self, pdgid, energy_gev, cos_zenith=None):
        """The flux as a ``flux(pdgid, energy_gev, cos_zenith)`` function (isotropic: the
        zenith is ignored), the form :mod:`km3sim.weights` takes."""
        return self.flux(pdgid, energy_gev)

    def total_flux(self, energy_gev):
        """All-particle flux, the sum over groups at equal energy per nucleus [m^-2 s^-1 sr^-1 GeV^-1]."""
        e = np.asarray(energy_gev, dtype=np.float64)
        out = sum(self._group_flux(g, e) for g in self._groups.values())
        out = np.asarray(out, dtype=np.float64)
        return out if out.ndim else float(out)

    def integral(self, pdg: int, energy_min_gev: float, energy_max_gev: float) -> float:
        """Integral of the flux of group ``pdg`` over [emin, emax] [m^-2 s^-1 sr^-1].

        Gauss-Kronrod quadrature in ln E, term by term (relative accuracy ~1e-10).
        """
        g = self._group(pdg)
        lo, hi = np.log(float(energy_min_gev)), np.log(float(energy_max_gev))
        if not hi > lo:
            return 0.0
        total = 0.0
        for a, gamma, rc in zip(g.norm, g.gamma, self.rigidity_cutoffs_gv):
            if a == 0.0:
                continue
            zr = g.z * rc

            def f(t, a=a, gamma=gamma, zr=zr):
                e = np.exp(t)
                return a * e ** (-gamma) * np.exp(-e / zr)

            val, _ = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-11, limit=200)
            total += val
        return float(total)


def _gaisser_hillas(name: str) -> PrimaryFlux:
    # Gaisser, Astropart. Phys. 35 (2012) 801 (PHYSICS.md §2.1 table, crflux HillasGaisser2012)
    pop12 = {
        PROTON: (1, [7860.0, 20.0], [1.66, 1.4]),
        HELIUM: (2, [3550.0, 20.0], [1.58, 1.4]),
        CNO: (6, [2200.0, 13.4], [1.63, 1.4]),
        MGSI: (14, [1430.0, 13.4], [1.67, 1.4]),
        IRON: (26, [2120.0, 13.4], [1.63, 1.4]),
    }
    if name == "H3a":
        pop3 = {PROTON: (1.7, 1.4), HELIUM: (1.7, 1.4), CNO: (1.14, 1.4), MGSI: (1.14, 1.4), IRON: (1.14, 1.4)}
        rc3 = 2e9
    else:  # H4a: an extragalactic proton population only
        pop3 = {PROTON: (200.0, 1.6), HELIUM: (0.0, 1.4), CNO: (0.0, 1.4), MGSI: (0.0, 1.4), IRON: (0.0, 1.4)}
        rc3 = 6e10
    groups = {p: (z, [*a, pop3[p][0]], [*g, pop3[p][1]]) for p, (z, a, g) in pop12.items()}
    return PrimaryFlux(name, (4e6, 3e7, rc3), groups)


def _gst(version: int) -> PrimaryFlux:
    # Gaisser, Stanev, Tilav, arXiv:1303.3565 (PHYSICS.md §2.1 table, crflux GaisserStanevTilav);
    # C -> CNO group, O -> Mg-Si group (module docstring)
    fe2 = 2.3 if version == 3 else 2.1
    if version == 3:
        rcs = (1.2e5, 4e6, 1.3e9)
        groups = {
            PROTON: (1, [7000.0, 150.0, 14.0], [1.66, 1.4, 1.4]),
            HELIUM: (2, [3200.0, 65.0, 0.0], [1.58, 1.3, 1.4]),
            CNO: (6, [100.0, 6.0, 0.0], [1.4, 1.3, 1.4]),
            MGSI: (8, [130.0, 7.0, 0.0], [1.4, 1.3, 1.3]),
            IRON: (26, [60.0, fe2, 0.025], [1.3, 1.2, 1.2]),
        }
    else:
        rcs = (1.2e5, 4e6, 1.5e9, 4e10)
        groups = {
            PROTON: (1, [7000.0, 150.0, 12.0, 1.2], [1.66, 1.4, 1.4, 1.4]),
            HELIUM: (2, [3200.0, 65.0, 0.0, 0.0], [1.58, 1.3, 1.4, 0.0]),
            CNO: (6, [100.0, 6.0, 0.0, 0.0], [1.4, 1.3, 1.4, 0.0]),
            MGSI: (8, [130.0, 7.0, 0.0, 0.0], [1.4, 1.3, 1.3, 0.0]),
            IRON: (26, [60.0, fe2, 0.011, 0.0], [1.3, 1.2, 1.2, 0.0]),
        }
    return PrimaryFlux(f"GST{version}", rcs, groups)


#: Model name -> constructor.
FLUX_MODELS = {
    "H3a": lambda: _gaisser_hillas("H3a"),
    "H4a": lambda: _gaisser_hillas("H4a"),
    "GST3": lambda: _gst(3),
    "GST4": lambda: _gst(4),
}

_ALIASES = {
    "h3a": "H3a",
    "h4a": "H4a",
    "gst3": "GST3",
    "gst-3gen": "GST3",
    "gst 3-gen": "GST3",
    "gst4": "GST4",
    "gst-4gen": "GST4",
    "gst 4-gen": "GST4",
}


def get_flux_model(model) -> PrimaryFlux:
    """A :class:`PrimaryFlux` by name (``"H3a"``, ``"H4a"``, ``"GST3"``, ``"GST4"``); a
    :class:`PrimaryFlux` passes through."""
    if isinstance(model, PrimaryFlux):
        return model
    key = _ALIASES.get(str(model).strip().lower())
    if key is None:
        raise ValueError(f"unknown cosmic-ray flux model {model!r}; known: {sorted(FLUX_MODELS)}")
    return FLUX_MODELS[key]()
