"""Particle codes: GEANT3 and CORSIKA codes to PDG, and PDG codes of nuclei.

Generator files do not all use PDG codes (FORMATS.md §2):

- KM3NeT evt ASCII files (gSeaGen, GENHEN, MUPAGE, KM3, Corant ``track_in``) give the particle
  type of ``track_in``/``track_aux``/``primarylepton`` lines as a **GEANT3** code (1 gamma,
  3 e-, 5 mu+, 6 mu-, ...); only the ``neutrino:`` line carries a PDG code.
- Corant (CORSIKA-based generator) files of version 4 give ``track_primary`` and the sea-level
  particles as **CORSIKA** codes (14 proton, 5626 iron, 5/6 mu+/mu-, 66-69 neutrinos); version
  5 writes PDG codes there (see :mod:`km3sim.io.evt`).
- Nuclei have PDG codes ``100ZZZAAAI`` = 1e9 + 10000 Z + 10 A (+ I for isomers, 0 here).

Sources of the tables (standard tables, also in PHYSICS.md §2.4 for CORSIKA):

- GEANT3 particle table: GEANT3 manual, CONS300 (codes 1-50); cross-checked with the STAR
  ``StParticleTable`` Geant3 -> PDG map (stored copy) and km3pipe's ``geant2pdg``.
- CORSIKA particle codes: CORSIKA 7 user guide, Table 4 (particle identification codes);
  cross-checked with the Pierre Auger Offline ``CorsikaToPDG`` map (stored copy). Nuclei are
  ``A x 100 + Z`` (2 <= A <= 59).

Codes without a PDG equivalent map to 0 ("unknown"): GEANT3 4 (a neutrino of unspecified
flavour), 48 (geantino), 50 (Cherenkov photon) and any code not in the table, e.g. the
GENHEN pseudo-particle 99 (secondary shower/hadron record, written after the real particles);
CORSIKA 4, 70, Cherenkov photons (9900) and unknown codes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GEANT3_TO_PDG",
    "CORSIKA_TO_PDG",
    "PDG_MUON_BUNDLE",
    "geant3_to_pdg",
    "corsika_to_pdg",
    "nucleus_pdg",
    "is_nucleus",
    "nucleus_za",
]

#: KM3NeT pseudo-PDG code of a MUPAGE muon bundle (km3net-dataformat ``PDG_MUONBUNDLE``).
PDG_MUON_BUNDLE = 81


def nucleus_pdg(z, a):
    """PDG code ``100ZZZAAA0`` of the nucleus (``z`` protons, ``a`` nucleons); vectorised.

    The proton (Z = A = 1) is 2212 and the neutron (Z = 0, A = 1) 2112, as in the PDG table.

    Parameters
    ----------
    z, a : int or array_like of int

    Returns
    -------
    int or ndarray of int64
    """
    z_arr = np.asarray(z, dtype=np.int64)
    a_arr = np.asarray(a, dtype=np.int64)
    if np.any(z_arr < 0) or np.any(a_arr < 1) or np.any(z_arr > a_arr):
        raise ValueError(f"invalid nucleus Z={z}, A={a}: need 0 <= Z <= A and A >= 1")
    out = 1_000_000_000 + 10_000 * z_arr + 10 * a_arr
    out = np.where((a_arr == 1) & (z_arr == 1), 2212, out)
    out = np.where((a_arr == 1) & (z_arr == 0), 2112, out)
    return int(out) if out.ndim == 0 else out


def is_nucleus(pdg):
    """True where ``pdg`` is a nucleus code ``10LZZZAAAI`` (|code| >= 1e9); vectorised."""
    p = np.abs(np.asarray(pdg, dtype=np.int64))
    out = (p >= 1_000_000_000) & (p < 2_000_000_000)
    return bool(out) if out.ndim == 0 else out


def nucleus_za(pdg):
    """(Z, A) of nucleus codes ``100ZZZAAAI`` (2212 -> (1, 1), 2112 -> (0, 1)); vectorised.

    Raises
    ------
    ValueError
        If a code is not a nucleus, a proton or a neutron.
    """
    p = np.abs(np.asarray(pdg, dtype=np.int64))
    nuc = (p >= 1_000_000_000) & (p < 2_000_000_000)
    ok = nuc | (p == 2212) | (p == 2112)
    if not np.all(ok):
        raise ValueError(f"not a nucleus code: {np.asarray(pdg)[~ok] if np.ndim(pdg) else pdg}")
    z = np.where(nuc, (p // 10_000) % 1000, np.where(p == 2212, 1, 0))
    a = np.where(nuc, (p // 10) % 1000, 1)
    if z.ndim == 0:
        return int(z), int(a)
    return z, a


#: GEANT3 particle code -> PDG code (GEANT3 manual CONS300; codes 45-49 are nuclei).
GEANT3_TO_PDG: dict[int, int] = {
    1: 22,  # gamma
    2: -11,  # e+
    3: 11,  # e-
    4: 0,  # neutrino of unspecified flavour -> unknown
    5: -13,  # mu+
    6: 13,  # mu-
    7: 111,  # pi0
    8: 211,  # pi+
    9: -211,  # pi-
    10: 130,  # K0 long
    11: 321,  # K+
    12: -321,  # K-
    13: 2112,  # neutron
    14: 2212,  # proton
    15: -2212,  # antiproton
    16: 310,  # K0 short
    17: 221,  # eta
    18: 3122,  # Lambda
    19: 3222,  # Sigma+
    20: 3212,  # Sigma0
    21: 3112,  # Sigma-
    22: 3322,  # Xi0
    23: 3312,  # Xi-
    24: 3334,  # Omega-
    25: -2112,  # antineutron
    26: -3122,  # anti-Lambda
    27: -3222,  # anti-Sigma- (antiparticle of Sigma+)
    28: -3212,  # anti-Sigma0
    29: -3112,  # anti-Sigma+ (antiparticle of Sigma-)
    30: -3322,  # anti-Xi0
    31: -3312,  # anti-Xi+
    32: -3334,  # anti-Omega+
    33: -15,  # tau+
    34: 15,  # tau-
    35: 411,  # D+
    36: -411,  # D-
    37: 421,  # D0
    38: -421,  # anti-D0
    39: 431,  # Ds+
    40: -431,  # Ds-
    41: 4122,  # Lambda_c+
    42: 24,  # W+
    43: -24,  # W-
    44: 23,  # Z0
    45: 1000010020,  # deuteron
    46: 1000010030,  # triton
    47: 1000020040,  # alpha
    48: 0,  # geantino -> unknown
    49: 1000020030,  # He3
    50: 0,  # Cherenkov photon -> unknown (no PDG code)
}

#: CORSIKA particle code -> PDG code (CORSIKA 7 user guide, Table 4). Nuclei (A x 100 + Z)
#: are handled by :func:`corsika_to_pdg`, not listed here.
CORSIKA_TO_PDG: dict[int, int] = {
    1: 22, 2: -11, 3: 11, 5: -13, 6: 13, 7: 111, 8: 211, 9: -211,
    10: 130, 11: 321, 12: -321, 13: 2112, 14: 2212, 15: -2212, 16: 310, 17: 221,
    18: 3122, 19: 3222, 20: 3212, 21: 3112, 22: 3322, 23: 3312, 24: 3334,
    25: -2112, 26: -3122, 27: -3222, 28: -3212, 29: -3112, 30: -3322, 31: -3312, 32: -3334,
    48: 331,  # eta'
    49: 333,  # phi
    50: 223,  # omega
    51: 113, 52: 213, 53: -213,  # rho0, rho+, rho-
    54: 2224, 55: 2214, 56: 2114, 57: 1114,  # Delta++, +, 0, -
    58: -2224, 59: -2214, 60: -2114, 61: -1114,  # anti-Deltas
    62: 313, 63: 323, 64: -323, 65: -313,  # K*0, K*+, K*-, anti-K*0
    66: 12, 67: -12, 68: 14, 69: -14,  # nu_e, anti-nu_e, nu_mu, anti-nu_mu
    71: 221, 72: 221, 73: 221, 74: 221,  # eta in its decay channels
    75: -13, 76: 13,  # mu+ / mu- "additional information" records
    95: -13, 96: 13,  # decayed mu+ / mu-
    116: 421, 117: 411, 118: -411, 119: -421, 120: 431, 121: -431, 122: 441,
    123: 423, 124: 413, 125: -413, 126: -423, 127: 433, 128: -433,
    130: 443,  # J/psi
    131: -15, 132: 15, 133: 16, 134: -16,  # tau+, tau-, nu_tau, anti-nu_tau
    137: 4122, 138: 4232, 139: 4132, 140: 4222, 141: 4212, 142: 4112, 143: 4332,
    149: -4122, 150: -4232, 151: -4132, 152: -4222, 153: -4212, 154: -4112, 155: -4332,
    161: 4224, 162: 4214, 163: 4114, 171: -4224, 172: -4214, 173: -4114,
    176: 511, 177: 521, 178: -521, 179: -511, 180: 531, 181: -531, 182: 541, 183: -541,
    184: 5122, 185: 5112, 186: 5222, 187: 5232, 188: 5132, 189: 5332,
    190: -5122, 191: -5112, 192: -5222, 193: -5232, 194: -5132, 195: -5332,
}


def _lookup_array(table: dict[int, int], size: int) -> np.ndarray:
    arr = np.zeros(size, dtype=np.int64)
    for k, v in table.items():
        arr[k] = v
    return arr


_GEANT3_LUT = _lookup_array(GEANT3_TO_PDG, 51)
_CORSIKA_LUT = _lookup_array(CORSIKA_TO_PDG, 200)


def _as_int_codes(codes) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind == "f":
        if np.any(~np.isfinite(arr)):
            raise ValueError("particle codes must be finite")
        rounded = np.rint(arr)
        if np.any(rounded != arr):
            raise ValueError(f"particle codes must be integers, got {arr[rounded != arr][:3]}")
        arr = rounded
    return arr.astype(np.int64)


def geant3_to_pdg(codes):
    """PDG codes of GEANT3 particle codes; 0 for codes without one (see module doc); vectorised.

    Parameters
    ----------
    codes : int, float or array_like
        GEANT3 codes (floats must be whole numbers, as read from text files).

    Returns
    -------
    int or ndarray of int64
    """
    c = _as_int_codes(codes)
    inside = (c >= 0) & (c < len(_GEANT3_LUT))
    out = np.where(inside, _GEANT3_LUT[np.where(inside, c, 0)], 0)
    return int(out) if out.ndim == 0 else out


def corsika_to_pdg(codes):
    """PDG codes of CORSIKA particle codes; vectorised.

    Codes below 200 are looked up in :data:`CORSIKA_TO_PDG`; codes ``A x 100 + Z`` with
    2 <= A <= 59 and 1 <= Z <= A are nuclei (:func:`nucleus_pdg`; 201 deuteron, 402 alpha,
    5626 iron). Everything else (e.g. 9900 Cherenkov photons, negative "ancestor" codes) is 0.
    """
    c = _as_int_codes(codes)
    small = (c >= 0) & (c < len(_CORSIKA_LUT))
    out = np.where(small, _CORSIKA_LUT[np.where(small, c, 0)], 0)
    a, z = c // 100, c % 100
    nuc = (c >= 200) & (a >= 2) & (a <= 59) & (z >= 1) & (z <= a)
    if np.any(nuc):
        out = np.where(nuc, 1_000_000_000 + 10_000 * z + 10 * a, out)
    return int(out) if np.ndim(out) == 0 else out
