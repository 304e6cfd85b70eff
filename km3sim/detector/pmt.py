"""The KM3NeT 3-inch PMT: photocathode area, quantum efficiency, angular acceptance, ToT.

Values from PHYSICS.md §7.2 (LumenManufaktur ``pmt.jl``, "section 2.1.2 of the KM3NeT
simulation description") and §7.3 (Jpp ``JPMTAnalogueSignalProcessor`` pulse model).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.optimize import brentq

from km3sim.detector._kernels import time_over_threshold_array, time_over_threshold_scalar

__all__ = [
    "PHOTOCATHODE_AREA_M2",
    "QE_TABLE_NM",
    "QE_TABLE",
    "ACCEPTANCE_TABLE_COS",
    "ACCEPTANCE_TABLE",
    "THRESHOLD_PE",
    "RISE_TIME_NS",
    "SATURATION_NS",
    "TOT_1PE_NS",
    "GAIN_SPREAD",
    "quantum_efficiency",
    "angular_acceptance",
    "tuned_decay_time_ns",
    "time_over_threshold",
]

#: Photocathode area including the reflector ring, π·(4.7462 cm)² = 70.8 cm² [m²]
#: (PHYSICS.md §7.2, current production value).
PHOTOCATHODE_AREA_M2 = math.pi * 0.047462**2

#: Wavelengths of the QE table [nm] (PHYSICS.md §7.2).
QE_TABLE_NM = np.array(
    [300, 310, 320, 330, 340, 350, 360, 370, 380, 390, 400, 420, 440, 460, 470, 480, 500, 520, 540,
     560, 600, 650, 700, 710],
    dtype=np.float64,
)
#: Quantum efficiency including glass and gel transmission, as a fraction (PHYSICS.md §7.2).
QE_TABLE = 0.01 * np.array(
    [0.0, 1.9, 7.7, 15.9, 22.0, 24.7, 26.5, 27.5, 27.2, 28.3, 28.0, 26.9, 26.0, 23.9, 22.3, 20.8,
     19.3, 16.6, 10.7, 7.9, 4.6, 1.6, 0.25, 0.0]
)

#: Cosine nodes of the angular-acceptance table; c = cos(photon direction, PMT axis), −1 head-on.
ACCEPTANCE_TABLE_COS = np.array(
    [-1.0, -0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.25]
)
#: Relative angular acceptance A(c), 1 head-on, 0 from c = 0.25 (PHYSICS.md §7.2).
ACCEPTANCE_TABLE = np.array(
    [1.000, 0.736, 0.600, 0.487, 0.395, 0.319, 0.245, 0.182, 0.128, 0.079, 0.040, 0.010, 0.002, 0.0]
)

#: Discriminator threshold [p.e.] (Jpp calibration, PHYSICS.md §7.3).
THRESHOLD_PE = 0.24
#: Gaussian width of the pulse leading edge [ns] (PHYSICS.md §7.3).
RISE_TIME_NS = 7.24
#: ToT saturation [ns] (PHYSICS.md §7.3).
SATURATION_NS = 210.0
#: Measured mean ToT of single photo-electron hits [ns] (k40gen, PHYSICS.md §7.3).
TOT_1PE_NS = 26.9
#: Charge spread (σ) of one photo-electron in units of the gain (PHYSICS.md §7.3).
GAIN_SPREAD = 0.4


def quantum_efficiency(wavelength_nm):
    """Quantum efficiency (fraction, glass and gel included) of the KM3NeT 3-inch PMT.

    Table of PHYSICS.md §7.2 (LumenManufaktur ``pmt.jl``), linear interpolation, zero outside
    300–710 nm.

    Parameters
    ----------
    wavelength_nm : float or array_like
        Wavelength [nm].

    Returns
    -------
    float or ndarray
        QE in [0, 1], same shape as ``wavelength_nm``.
    """
    lam = np.asarray(wavelength_nm, dtype=np.float64)
    out = np.interp(lam, QE_TABLE_NM, QE_TABLE, left=0.0, right=0.0)
    return out if out.ndim else float(out)


def angular_acceptance(cos_angle):
    """Relative angular acceptance A(c) of the PMT in its DOM.

    Table of PHYSICS.md §7.2 interpolated linearly; ``c`` is the cosine between the photon's
    direction of travel and the PMT axis (c = −1 head-on, A = 1; A = 0 for c ≥ 0.25).

    Parameters
    ----------
    cos_angle : float or array_like
        Cosine c in [−1, 1].

    Returns
    -------
    float or ndarray
        A(c), same shape as ``cos_angle``.
    """
    c = np.asarray(cos_angle, dtype=np.float64)
    out = np.interp(c, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0)
    return out if out.ndim else float(out)


@functools.lru_cache(maxsize=32)
def tuned_decay_time_ns(
    tot_1pe_ns: float = TOT_1PE_NS,
    threshold_pe: float = THRESHOLD_PE,
    rise_time_ns: float = RISE_TIME_NS,
) -> float:
    """Decay time τ_d of the pulse tail such that ToT(1 p.e.) equals ``tot_1pe_ns``.

    Solves the closed-form ToT of PHYSICS.md §7.3 for τ_d with :func:`scipy.optimize.brentq`.
    The exponential tail joins the Gaussian edge at t1 = σ_r²/τ_d; the model needs the fall
    crossing to lie on the tail, i.e. τ_d ≥ σ_r / sqrt(2 ln(1/th)). On that branch ToT(1 p.e.)
    rises monotonically with τ_d, so the root is unique. For the defaults τ_d ≈ 7.98 ns.

    Returns
    -------
    float
        τ_d [ns].
    """
    if threshold_pe >= 1.0:
        raise ValueError(f"threshold_pe must be below 1 p.e. to tune the 1-p.e. ToT, got {threshold_pe}")
    tau_min = rise_time_ns / math.sqrt(2.0 * math.log(1.0 / threshold_pe))

    def f(tau):
        return time_over_threshold_scalar(1.0, threshold_pe, rise_time_ns, tau, 1e9) - tot_1pe_ns

    if f(tau_min) > 0.0:
        raise ValueError(
            f"ToT(1 p.e.) = {tot_1pe_ns} ns is below the pure-Gaussian minimum for rise time "
            f"{rise_time_ns} ns and threshold {threshold_pe} p.e."
        )
    return float(brentq(f, tau_min, 1000.0, xtol=1e-12, rtol=1e-14))


def time_over_threshold(
    npe_charge,
    threshold_pe: float = THRESHOLD_PE,
    rise_time_ns: float = RISE_TIME_NS,
    decay_time_ns: float | None = None,
    saturation_ns: float = SATURATION_NS,
):
    """Time over threshold of a PMT pulse of a given charge.

    Closed form of PHYSICS.md §7.3 (Jpp ``JPMTAnalogueSignalProcessor``: Gaussian leading edge
    of width σ_r, exponential tail of decay time τ_d, joined with equal value and slope at
    t1 = σ_r²/τ_d)::

        rise = σ_r·sqrt(2 ln(N/th))
        fall = t1 + τ_d·ln(N·exp(−t1²/2σ_r²)/th)      (= rise if the crossing is before t1)
        ToT  = min(rise + fall, saturation)

    and 0 for N ≤ th. The large-charge linear regime of Jpp (7 ns/p.e.) is not modelled; the
    saturation cap applies directly.

    Parameters
    ----------
    npe_charge : float or array_like
        Pulse charge N [p.e., units of the gain].
    threshold_pe : float
        Threshold th [p.e.].
    rise_time_ns : float
        σ_r [ns].
    decay_time_ns : float, optional
        τ_d [ns]. Default: :func:`tuned_decay_time_ns` for the default threshold and rise time
        (ToT(1 p.e.) = 26.9 ns); the pulse shape stays fixed when only the threshold changes.
    saturation_ns : float
        Maximum ToT [ns].

    Returns
    -------
    float or ndarray
        ToT [ns], same shape as ``npe_charge``.
    """
    if decay_time_ns is None:
        decay_time_ns = tuned_decay_time_ns()
    q = np.asarray(npe_charge, dtype=np.float64)
    out = time_over_threshold_array(
        np.ascontiguousarray(q.reshape(-1)), float(threshold_pe), float(rise_time_ns), float(decay_time_ns), float(saturation_ns)
    ).reshape(q.shape)
    return out if out.ndim else float(out)
