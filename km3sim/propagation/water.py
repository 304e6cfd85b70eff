"""Optical properties of deep Mediterranean sea water.

Refractive index after the Jpp/Bailey dispersion formula (D. Bailey, Oxford thesis 2002;
PHYSICS.md §5.2), the absorption length table of Jpp (PHYSICS.md §6.1), the Kopelevich
scattering length (Mobley, "Light and Water" p. 119; PHYSICS.md §6.2) and the "p0.0075" phase
function (Jpp/KM3Sim; PHYSICS.md §6.3). All lengths in m, wavelengths in nm, pressures in atm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSORPTION_TABLE_NM",
    "ABSORPTION_TABLE_M",
    "WaterOptics",
    "WATER_PRESETS",
    "water_for_site",
    "refractive_index_phase",
    "refractive_index_phase_derivative",
    "refractive_index_group",
    "absorption_length",
    "KOPELEVICH_VS",
    "KOPELEVICH_VL",
    "PHASE_RAYLEIGH_FRACTION",
    "PHASE_HG_G",
    "PHASE_RAYLEIGH_A",
    "scattering_length",
    "phase_function",
    "phase_function_mean_cos",
]

# Bailey coefficients: n_ph = A0 + AP*P + A1/λ + A2/λ² + A3/λ³  (λ in nm, P in atm)
_A0 = 1.3201
_AP = 1.4e-5
_A1 = 16.2566
_A2 = -4383.0
_A3 = 1.1455e6

#: Wavelengths of the Jpp absorption-length table [nm] (PHYSICS.md §6.1).
ABSORPTION_TABLE_NM = np.array(
    [290.0, 310.0, 330.0, 350.0, 375.0, 412.0, 440.0, 475.0, 488.0, 510.0, 532.0, 555.0, 650.0, 676.0, 715.0]
)
#: Absorption lengths of the Jpp table [m] (PHYSICS.md §6.1).
ABSORPTION_TABLE_M = np.array(
    [0.0, 11.9, 16.4, 20.6, 29.5, 48.5, 67.5, 59.0, 55.1, 26.1, 19.9, 14.7, 2.8, 2.3, 1.0]
)


def refractive_index_phase(wavelength_nm, pressure_atm=240.0):
    """Phase refractive index of sea water.

    Jpp/Bailey dispersion (D. Bailey, Oxford thesis 2002; PHYSICS.md §5.2)::

        n_ph(λ, P) = 1.3201 + 1.4e-5·P + 16.2566/λ − 4383.0/λ² + 1.1455e6/λ³

    Parameters
    ----------
    wavelength_nm : float or array_like
        Vacuum wavelength [nm].
    pressure_atm : float
        Ambient pressure [atm] (ORCA 240, ARCA 350).

    Returns
    -------
    float or ndarray
        n_ph, same shape as ``wavelength_nm``.
    """
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    inv = 1.0 / lam
    n = _A0 + _AP * pressure_atm + inv * (_A1 + inv * (_A2 + inv * _A3))
    return n if n.ndim else float(n)


def refractive_index_phase_derivative(wavelength_nm):
    """dn_ph/dλ [1/nm] of the Bailey formula (independent of pressure)."""
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    inv = 1.0 / lam
    d = -inv * inv * (_A1 + inv * (2.0 * _A2 + inv * 3.0 * _A3))
    return d if d.ndim else float(d)


def refractive_index_group(wavelength_nm, pressure_atm=240.0):
    """Group refractive index of sea water.

    ``n_g = n_ph / (1 + (dn_ph/dλ)·λ/n_ph)`` with the Bailey n_ph (PHYSICS.md §5.2); light
    pulses travel at c/n_g.

    Parameters
    ----------
    wavelength_nm : float or array_like
        Vacuum wavelength [nm].
    pressure_atm : float
        Ambient pressure [atm].

    Returns
    -------
    float or ndarray
        n_g, same shape as ``wavelength_nm``.
    """
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    n = np.asarray(refractive_index_phase(lam, pressure_atm))
    ng = n / (1.0 + np.asarray(refractive_index_phase_derivative(lam)) * lam / n)
    return ng if ng.ndim else float(ng)


def absorption_length(wavelength_nm, scale=1.0):
    """Absorption length of sea water [m].

    Jpp table (PHYSICS.md §6.1, from LumenManufaktur ``absorption.jl``) interpolated linearly
    in λ; zero (total absorption) outside 290–715 nm.

    Parameters
    ----------
    wavelength_nm : float or array_like
        Wavelength [nm].
    scale : float
        Factor applied to the tabulated lengths (site or season variations, systematics).

    Returns
    -------
    float or ndarray
        Absorption length [m], same shape as ``wavelength_nm``.
    """
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    out = scale * np.interp(lam, ABSORPTION_TABLE_NM, ABSORPTION_TABLE_M, left=0.0, right=0.0)
    return out if out.ndim else float(out)


#: Concentrations of small and large particles of the Kopelevich model [ppm] (PHYSICS.md §6.2,
#: Jpp "p0.0075" water).
KOPELEVICH_VS = 0.0075
KOPELEVICH_VL = 0.0075

#: Weight f of the Rayleigh-like (Einstein–Smoluchowski) part of the p0.0075 phase function
#: (PHYSICS.md §6.3).
PHASE_RAYLEIGH_FRACTION = 0.17
#: Asymmetry g of the Henyey–Greenstein part (PHYSICS.md §6.3).
PHASE_HG_G = 0.924
#: Shape parameter of the Rayleigh-like part, R(x) ∝ 1 + a·x² (PHYSICS.md §6.3).
PHASE_RAYLEIGH_A = 0.835


def scattering_length(wavelength_nm, v_s=KOPELEVICH_VS, v_l=KOPELEVICH_VL, scale=1.0):
    """Scattering length of sea water [m] (Kopelevich model).

    Mobley, "Light and Water" (1994) p. 119, as in Jpp/LumenManufaktur ``scattering.jl``
    (PHYSICS.md §6.2)::

        1/λ_s = 0.0017·x^4.3 + 1.34·V_s·x^1.7 + 0.312·V_l·x^0.3,   x = 550/λ

    The first term is pure sea water, the others small and large particles.

    Parameters
    ----------
    wavelength_nm : float or array_like
        Wavelength [nm].
    v_s, v_l : float
        Concentrations of small and large particles [ppm] (0.0075 for the KM3NeT p0.0075 water).
    scale : float
        Factor applied to the resulting length.

    Returns
    -------
    float or ndarray
        λ_s [m], same shape as ``wavelength_nm``.
    """
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    x = 550.0 / lam
    inv = 0.0017 * x**4.3 + 1.34 * v_s * x**1.7 + 0.312 * v_l * x**0.3
    out = scale / inv
    return out if out.ndim else float(out)


def phase_function(cos_theta, f=PHASE_RAYLEIGH_FRACTION, g=PHASE_HG_G, a=PHASE_RAYLEIGH_A):
    """Scattering phase function "p0.0075" per unit solid angle [1/sr].

    PHYSICS.md §6.3 (Jpp/LumenManufaktur ``p00075``, KM3Sim ``G4OpMie``)::

        β(x) = f·(1 + a·x²)/(4π(1 + a/3)) + (1 − f)·(1 − g²)/(4π(1 + g² − 2g·x)^{3/2})

    normalised so that ∫β dΩ = 1; mean cosine (1 − f)·g.

    Parameters
    ----------
    cos_theta : float or array_like
        Cosine of the scattering angle.
    f, g, a : float
        Rayleigh fraction, Henyey–Greenstein asymmetry and Rayleigh shape parameter.
    """
    x = np.asarray(cos_theta, dtype=np.float64)
    rayleigh = (1.0 + a * x * x) / (4.0 * np.pi * (1.0 + a / 3.0))
    hg = (1.0 - g * g) / (4.0 * np.pi * (1.0 + g * g - 2.0 * g * x) ** 1.5)
    out = f * rayleigh + (1.0 - f) * hg
    return out if out.ndim else float(out)


def phase_function_mean_cos(f=PHASE_RAYLEIGH_FRACTION, g=PHASE_HG_G) -> float:
    """Mean cosine of the p0.0075 phase function, (1 − f)·g (PHYSICS.md §6.3)."""
    return (1.0 - f) * g


@dataclass(frozen=True)
class WaterOptics:
    """Optical model of the water at a site.

    Parameters
    ----------
    pressure_atm : float
        Ambient pressure at the detector [atm] (enters the phase index).
    absorption_scale : float
        Factor on the Jpp absorption lengths.
    scattering_scale : float
        Factor on the Kopelevich scattering lengths.
    """

    pressure_atm: float = 240.0
    absorption_scale: float = 1.0
    scattering_scale: float = 1.0

    def refractive_index_phase(self, wavelength_nm):
        """Phase index n_ph(λ) at this site's pressure (see :func:`refractive_index_phase`)."""
        return refractive_index_phase(wavelength_nm, self.pressure_atm)

    def refractive_index_group(self, wavelength_nm):
        """Group index n_g(λ) at this site's pressure (see :func:`refractive_index_group`)."""
        return refractive_index_group(wavelength_nm, self.pressure_atm)

    def absorption_length(self, wavelength_nm):
        """Absorption length [m] scaled by ``absorption_scale`` (see :func:`absorption_length`)."""
        return absorption_length(wavelength_nm, self.absorption_scale)

    def scattering_length(self, wavelength_nm):
        """Kopelevich scattering length [m] scaled by ``scattering_scale`` (see :func:`scattering_length`)."""
        return scattering_length(wavelength_nm, scale=self.scattering_scale)


#: Water at the KM3NeT sites (PHYSICS.md §5.2: ORCA 240 atm, ARCA 350 atm). Both use the same
#: Jpp absorption table for now; site-specific tables can replace it here.
WATER_PRESETS = {
    "orca": WaterOptics(pressure_atm=240.0),
    "arca": WaterOptics(pressure_atm=350.0),
}


def water_for_site(site, absorption_scale: float = 1.0, scattering_scale: float = 1.0) -> WaterOptics:
    """The water model of a :class:`km3sim.stage.Site` (its pressure) with absorption and scattering scales."""
    return WaterOptics(
        pressure_atm=float(site.pressure_atm),
        absorption_scale=float(absorption_scale),
        scattering_scale=float(scattering_scale),
    )
