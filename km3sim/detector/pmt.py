"""The KM3NeT 3-inch PMT: photocathode area, quantum efficiency, angular acceptance, pulse model
and per-PMT parameters.

Values from PHYSICS.md §7.2 (LumenManufaktur ``pmt.jl``, "section 2.1.2 of the KM3NeT
simulation description") and §7.3 (Jpp ``JPMTAnalogueSignalProcessor`` pulse model and the
Jpp PMT parameters of a real KM3NeT calibration file, KM3io.jl ``test/hardware.jl``; time
slewing table of KM3io.jl ``src/calibration.jl``).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from km3sim.detector._kernels import time_over_threshold_array, tot_log_ns
from km3sim.errors import ConfigError, Km3simError

__all__ = [
    "PHOTOCATHODE_AREA_M2",
    "QE_TABLE_NM",
    "QE_TABLE",
    "ACCEPTANCE_TABLE_COS",
    "ACCEPTANCE_TABLE",
    "THRESHOLD_PE",
    "THRESHOLD_BAND_PE",
    "BAND_TOT_MEAN_NS",
    "BAND_TOT_SIGMA_NS",
    "P_UNDER_AMPLIFIED",
    "RISE_TIME_NS",
    "SATURATION_NS",
    "TOT_SLOPE_NS_PER_PE",
    "TOT_1PE_NS",
    "TOT_1PE_SIGMA_NS",
    "GAIN_SPREAD",
    "GAIN_SPREAD_TOT_SCALE",
    "TTS_NS",
    "DARK_RATE_HZ",
    "AFTERPULSE_PROBABILITY",
    "AFTERPULSE_DELAY_NS",
    "AFTERPULSE_DELAY_SIGMA_NS",
    "SLEWING_TOT_NS",
    "SLEWING_NS",
    "PmtParameters",
    "quantum_efficiency",
    "angular_acceptance",
    "tuned_decay_time_ns",
    "tot_transition_pe",
    "time_over_threshold",
    "time_slewing_ns",
    "pmt_parameters",
    "TTS_TABLE_BUILTIN",
    "KM3NET_3INCH_TTS",
    "km3net_3inch_tts_pdf",
    "TtsTable",
    "read_tts_table",
    "tts_table",
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
#: Threshold band [p.e.]: pulses with charge in (threshold, threshold + band] get a ToT drawn
#: from a Gaussian of mean :data:`BAND_TOT_MEAN_NS` and σ :data:`BAND_TOT_SIGMA_NS` (PHYSICS.md §7.3).
THRESHOLD_BAND_PE = 0.12
BAND_TOT_MEAN_NS = 4.5
BAND_TOT_SIGMA_NS = 1.5
#: Probability of an under-amplified photo-electron (Jpp ``PunderAmplified``, PHYSICS.md §7.3).
#: Its charge is drawn uniform in [0, gain) [UNVERIFIED shape].
P_UNDER_AMPLIFIED = 0.05
#: Gaussian width of the pulse leading edge [ns] (PHYSICS.md §7.3).
RISE_TIME_NS = 7.24
#: ToT saturation [ns] (PHYSICS.md §7.3).
SATURATION_NS = 210.0
#: Slope of the linear large-charge ToT regime [ns/p.e.] (PHYSICS.md §7.3).
TOT_SLOPE_NS_PER_PE = 7.0
#: Measured mean ToT of single photo-electron hits [ns] (k40gen, PHYSICS.md §7.3).
TOT_1PE_NS = 26.9
#: Measured σ of the Gaussian part of the 1-p.e. ToT distribution [ns] (k40gen, PHYSICS.md §7.3).
TOT_1PE_SIGMA_NS = 2.44
#: Jpp charge spread (σ) of one photo-electron in units of the gain (PHYSICS.md §7.3).
GAIN_SPREAD = 0.4
#: Fraction of the Jpp gain spread applied to the charge in this pulse model [D, tuned here].
#: With the closed-form pulse of PHYSICS.md §7.3, dToT/dq ≈ 12 ns/p.e. at 1 p.e., so the Jpp
#: σ = 0.4 gives a 1-p.e. ToT core of σ ≈ 4.0 ns (rms 5.3 ns) where data show 2.44 ns; an
#: effective σ of 0.5 × 0.4 = 0.2 p.e. gives a core of 27.2 ± 2.4 ns. (Jpp's own ToT function,
#: to which its gainSpread values are fitted, is not available here [UNVERIFIED].)
GAIN_SPREAD_TOT_SCALE = 0.5
#: Gaussian transit-time spread σ [ns] (PHYSICS.md §7.3 [UNVERIFIED]; production reconstruction
#: assumes 2 ns, §12).
TTS_NS = 2.0
#: Dark-count rate per PMT [Hz] (KM3io.jl K40Rates doc, PHYSICS.md §7.3).
DARK_RATE_HZ = 700.0
#: Afterpulse probability per photo-electron ("a few %", PHYSICS.md §7.3) and its delay
#: (Gaussian mean and σ) [ns] -- all three [UNVERIFIED].
AFTERPULSE_PROBABILITY = 0.03
AFTERPULSE_DELAY_NS = 1000.0
AFTERPULSE_DELAY_SIGMA_NS = 300.0
#: Jpp default time-slewing table (PHYSICS.md §7.3, KM3io.jl ``calibration.jl``): slew [ns] as
#: a function of ToT [ns]; calibration subtracts it from the hit time, so the simulation adds it.
SLEWING_TOT_NS = np.array([0.0, 10.0, 20.0, 26.0, 30.0, 50.0, 100.0, 150.0, 200.0, 201.0])
SLEWING_NS = np.array([8.0, 3.9, 1.2, 0.07, -0.6, -3.2, -6.45, -8.2, -9.0, -9.04])


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
        return tot_log_ns(1.0, threshold_pe, rise_time_ns, tau) - tot_1pe_ns

    if f(tau_min) > 0.0:
        raise ValueError(
            f"ToT(1 p.e.) = {tot_1pe_ns} ns is below the pure-Gaussian minimum for rise time "
            f"{rise_time_ns} ns and threshold {threshold_pe} p.e."
        )
    return float(brentq(f, tau_min, 1000.0, xtol=1e-12, rtol=1e-14))


@functools.lru_cache(maxsize=64)
def tot_transition_pe(
    threshold_pe: float = THRESHOLD_PE,
    rise_time_ns: float = RISE_TIME_NS,
    decay_time_ns: float | None = None,
    slope_ns_per_pe: float = TOT_SLOPE_NS_PER_PE,
) -> float:
    """Charge [p.e.] where the ToT turns from logarithmic to linear (PHYSICS.md §7.3).

    Jpp's ToT is "logarithmic in npe, then linear above a transition point"; the transition is
    taken here [D] where the slope of the logarithmic closed form,
    dToT/dN = σ_r/(N·sqrt(2 ln(N/th))) + τ_d/N on the tail branch, has fallen to
    ``slope_ns_per_pe``, so ToT and its slope are continuous (≈ 1.7 p.e. for the defaults).
    ``inf`` if the slope is 0 or negative (no linear regime).
    """
    if slope_ns_per_pe <= 0.0:
        return math.inf
    tau = tuned_decay_time_ns(threshold_pe=threshold_pe, rise_time_ns=rise_time_ns) if decay_time_ns is None else decay_time_ns
    g1 = 0.5 * (rise_time_ns / tau) ** 2

    def slope(n):
        lr = math.log(n / threshold_pe)
        edge = rise_time_ns / (n * math.sqrt(2.0 * lr))
        return edge + (tau / n if lr > g1 else edge) - slope_ns_per_pe

    lo = threshold_pe * (1.0 + 1e-9)
    hi = threshold_pe * 2.0
    while slope(hi) > 0.0:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    return float(brentq(slope, lo, hi, xtol=1e-12, rtol=1e-12))


def time_over_threshold(
    npe_charge,
    threshold_pe: float = THRESHOLD_PE,
    rise_time_ns: float = RISE_TIME_NS,
    decay_time_ns: float | None = None,
    saturation_ns: float = SATURATION_NS,
    slope_ns_per_pe: float = TOT_SLOPE_NS_PER_PE,
):
    """Time over threshold of a PMT pulse of a given charge.

    Closed form of PHYSICS.md §7.3 (Jpp ``JPMTAnalogueSignalProcessor``: Gaussian leading edge
    of width σ_r, exponential tail of decay time τ_d, joined with equal value and slope at
    t1 = σ_r²/τ_d)::

        rise = σ_r·sqrt(2 ln(N/th))
        fall = t1 + τ_d·ln(N·exp(−t1²/2σ_r²)/th)      (= rise if the crossing is before t1)
        ToT  = rise + fall                              for N ≤ N1
        ToT  = ToT(N1) + slope·(N − N1)                 for N > N1 (linear regime)

    capped at the saturation, and 0 for N ≤ th; N1 from :func:`tot_transition_pe`.

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
    slope_ns_per_pe : float
        Slope of the linear regime [ns/p.e.]; 0 switches it off (pure logarithmic ToT).

    Returns
    -------
    float or ndarray
        ToT [ns], same shape as ``npe_charge``.
    """
    if decay_time_ns is None:
        decay_time_ns = tuned_decay_time_ns()
    transition = tot_transition_pe(float(threshold_pe), float(rise_time_ns), float(decay_time_ns), float(slope_ns_per_pe))
    q = np.asarray(npe_charge, dtype=np.float64)
    out = time_over_threshold_array(
        np.ascontiguousarray(q.reshape(-1)), float(threshold_pe), float(rise_time_ns), float(decay_time_ns),
        float(saturation_ns), float(slope_ns_per_pe), float(transition),
    ).reshape(q.shape)
    return out if out.ndim else float(out)


def time_slewing_ns(tot_ns):
    """Time slewing [ns] of a hit of the given ToT: Jpp default table of PHYSICS.md §7.3,
    linear interpolation, constant beyond 0 and 201 ns."""
    t = np.asarray(tot_ns, dtype=np.float64)
    out = np.interp(t, SLEWING_TOT_NS, SLEWING_NS)
    return out if out.ndim else float(out)


# ------------------------------------------------------------------------------ transit-time distribution

#: Name of the built-in tabulated transit-time distribution (:func:`km3net_3inch_tts_pdf`).
TTS_TABLE_BUILTIN = "km3net_3inch"
#: Number of quantiles of the inverse CDF the kernel samples from (u = j/(m−1)).
TTS_ICDF_POINTS = 4097
#: Probability left out at either end of a tabulated transit-time distribution (the end nodes of
#: the inverse CDF are these quantiles).
TTS_TAIL_CUT = 1e-6

#: Parameters of the built-in distribution: main peak σ [ns]; prepulse fraction, offset and σ
#: [ns]; late-pulse fraction and the range of their delay [ns]. Main σ: PHYSICS.md §7.3 (σ ≈ 2 ns
#: [UNVERIFIED]; production reconstruction assumes 2 ns, §12). Tails: [UNVERIFIED] estimates of
#: the usual 3-inch PMT features (prepulses from photons converted on the first dynode, early by
#: about the photo-electron flight time; late pulses from photo-electrons scattered back from
#: the first dynode, delayed by up to twice that time) -- no published KM3NeT table is stored
#: here; replace them with the measured distribution (a table file) where it is known.
KM3NET_3INCH_TTS = {
    "sigma_ns": 2.0,
    "prepulse_fraction": 0.005,
    "prepulse_offset_ns": -12.0,
    "prepulse_sigma_ns": 1.5,
    "late_fraction": 0.03,
    "late_range_ns": (4.0, 30.0),
}


def km3net_3inch_tts_pdf(time_ns, sigma_ns=2.0, prepulse_fraction=0.005, prepulse_offset_ns=-12.0,
                         prepulse_sigma_ns=1.5, late_fraction=0.03, late_range_ns=(4.0, 30.0)):
    """Transit-time pdf [1/ns] of the built-in KM3NeT 3-inch PMT model (normalised to 1).

    A Gaussian main peak at 0 of width ``sigma_ns``, a Gaussian prepulse component (fraction
    ``prepulse_fraction`` at ``prepulse_offset_ns``) and late pulses (fraction ``late_fraction``)
    uniform in ``late_range_ns`` folded with the main Gaussian. Defaults:
    :data:`KM3NET_3INCH_TTS` (main σ from PHYSICS.md §7.3/§12; tail numbers [UNVERIFIED]).
    """
    from scipy.stats import norm

    t = np.asarray(time_ns, dtype=np.float64)
    main = norm.pdf(t, 0.0, sigma_ns)
    pre = norm.pdf(t, prepulse_offset_ns, prepulse_sigma_ns)
    a, b = late_range_ns
    late = (norm.cdf(t - a, 0.0, sigma_ns) - norm.cdf(t - b, 0.0, sigma_ns)) / (b - a)
    return (1.0 - prepulse_fraction - late_fraction) * main + prepulse_fraction * pre + late_fraction * late


@dataclass(frozen=True, eq=False)
class TtsTable:
    """A tabulated transit-time distribution: pdf values at increasing times, linear between
    the points and zero outside them.

    Attributes
    ----------
    time_ns, pdf : ndarray
        The table (pdf normalised to unit integral).
    source : str
        The file read, or the built-in name.
    icdf : ndarray
        Quantiles [ns] at u = j/(m−1), j = 1..m−2 (m = :data:`TTS_ICDF_POINTS`), and at
        u = :data:`TTS_TAIL_CUT`, 1 − :data:`TTS_TAIL_CUT` for the ends, computed exactly from the
        piecewise-linear pdf; the kernel samples by linear interpolation in them.
    """

    time_ns: np.ndarray
    pdf: np.ndarray
    source: str = ""
    icdf: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        t = np.ascontiguousarray(self.time_ns, dtype=np.float64)
        f = np.ascontiguousarray(self.pdf, dtype=np.float64)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(t))])
        object.__setattr__(self, "time_ns", t)
        object.__setattr__(self, "pdf", f / cum[-1])
        object.__setattr__(self, "icdf", _tts_quantiles(t, f, cum, TTS_ICDF_POINTS))

    def cdf(self, time_ns):
        """CDF of the piecewise-linear pdf at ``time_ns`` (exact, piecewise quadratic)."""
        t, f = self.time_ns, self.pdf
        x = np.asarray(time_ns, dtype=np.float64)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(t))])
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2)
        d = np.clip(x - t[i], 0.0, t[i + 1] - t[i])
        slope = (f[i + 1] - f[i]) / (t[i + 1] - t[i])
        out = cum[i] + f[i] * d + 0.5 * slope * d * d
        out = np.where(x <= t[0], 0.0, np.where(x >= t[-1], 1.0, out))
        return out if out.ndim else float(out)

    def mean_ns(self) -> float:
        """Mean transit-time deviation [ns]."""
        t, f = self.time_ns, self.pdf
        g = t * f
        return float(np.sum(0.5 * (g[1:] + g[:-1]) * np.diff(t)))


def _tts_quantiles(t, f, cum, m):
    """Exact quantiles of the piecewise-linear pdf (t, f) with cumulative ``cum`` at the nodes,
    at u = j/(m−1): in segment i, cum_i + f_i·x + (f_{i+1} − f_i)/(2h)·x² = target."""
    total = cum[-1]
    # the two end nodes: the 1e-6 and 1 − 1e-6 quantiles, not the ends of the support, so that a
    # thin far tail (a Gaussian's, say) is not spread uniformly over the whole end cell
    u = np.linspace(0.0, 1.0, m)
    u[0], u[-1] = TTS_TAIL_CUT, 1.0 - TTS_TAIL_CUT
    target = u * total
    i = np.clip(np.searchsorted(cum, target, side="right") - 1, 0, len(t) - 2)
    h = t[i + 1] - t[i]
    a = (f[i + 1] - f[i]) / (2.0 * h)
    b = f[i]
    d = np.clip(target - cum[i], 0.0, None)
    disc = np.sqrt(np.clip(b * b + 4.0 * a * d, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(b + disc > 0.0, 2.0 * d / (b + disc), 0.0)  # stable root in [0, h]
    q = t[i] + np.clip(x, 0.0, h)
    return np.maximum.accumulate(q)


def read_tts_table(path) -> TtsTable:
    """Read a transit-time table file: two columns, time [ns] and pdf (any normalisation).

    Columns separated by white space or a comma; ``#`` starts a comment; blank lines are
    skipped; a first line whose fields are not numbers (e.g. ``time_ns,pdf``) is a header. The
    pdf is taken linear between the points and zero outside them; the times of the table are
    ADDED to the photo-electron arrival times as they are (give the main peak at 0 for
    unbiased hit times).

    Raises
    ------
    StageFileError
        If the file cannot be read, a line does not hold two numbers, a time or pdf value is not
        finite, a time does not increase, a pdf value is negative, there are fewer than two
        rows, or the pdf integrates to zero. The message names the file and the line.
    """
    from pathlib import Path

    from km3sim.errors import StageFileError

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StageFileError(f"cannot read TTS table file {path}: {exc}") from exc
    times: list[float] = []
    pdf: list[float] = []
    last_line = 0
    seen_data = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [x for x in line.replace(",", " ").split()]
        values = []
        for x in fields:
            try:
                values.append(float(x))
            except ValueError:
                values.append(None)
        if not seen_data and all(v is None for v in values):
            seen_data = True  # header line
            continue
        seen_data = True
        if len(fields) != 2:
            raise StageFileError(f"TTS table file {path}, line {lineno}: expected 2 columns (time_ns, pdf), "
                                 f"got {len(fields)}: {raw.strip()!r}")
        for x, v, name in zip(fields, values, ("time_ns", "pdf")):
            if v is None:
                raise StageFileError(f"TTS table file {path}, line {lineno}: {name} {x!r} is not a number")
            if not math.isfinite(v):
                raise StageFileError(f"TTS table file {path}, line {lineno}: {name} = {x} is not finite")
        t, p = values
        if p < 0.0:
            raise StageFileError(f"TTS table file {path}, line {lineno}: pdf = {p} is negative")
        if times and t <= times[-1]:
            raise StageFileError(f"TTS table file {path}, line {lineno}: time {t} ns does not increase "
                                 f"(line {last_line} has {times[-1]} ns)")
        times.append(t)
        pdf.append(p)
        last_line = lineno
    if len(times) < 2:
        raise StageFileError(f"TTS table file {path}: needs at least 2 rows (time_ns, pdf), found {len(times)}")
    t = np.asarray(times)
    f = np.asarray(pdf)
    if np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(t)) <= 0.0:
        raise StageFileError(f"TTS table file {path}: the pdf is zero everywhere")
    return TtsTable(t, f, source=str(path))


@functools.lru_cache(maxsize=16)
def _builtin_tts_table() -> TtsTable:
    t = np.round(np.arange(-30.0, 60.0 + 1e-9, 0.1), 10)
    return TtsTable(t, km3net_3inch_tts_pdf(t, **KM3NET_3INCH_TTS), source=TTS_TABLE_BUILTIN)


def tts_table(spec) -> TtsTable:
    """The transit-time table named by ``spec``: a :class:`TtsTable`, the built-in name
    :data:`TTS_TABLE_BUILTIN` or the path of a table file (:func:`read_tts_table`)."""
    if isinstance(spec, TtsTable):
        return spec
    if str(spec) == TTS_TABLE_BUILTIN:
        return _builtin_tts_table()
    return read_tts_table(spec)


# ------------------------------------------------------------------------------ per-PMT parameters

#: Names of the per-PMT parameters of :class:`PmtParameters` that may be overridden per PMT.
PER_PMT_FIELDS = ("qe", "gain", "gain_spread", "threshold", "threshold_band", "rise_time", "tts")


@dataclass
class PmtParameters:
    """Parameters of every PMT of a detector (arrays in detector PMT order) and the common ones.

    Defaults are those of PHYSICS.md §7.3; a Jpp PMT parameter file
    (:func:`km3sim.io.pmt_params.read_pmt_parameters`) sets the per-PMT values and the common
    ones it lists (``%.`` lines). ``gain_spread`` is the σ applied to the charge, i.e. the Jpp
    value times :data:`GAIN_SPREAD_TOT_SCALE`.

    Attributes
    ----------
    qe : ndarray
        Relative efficiency (Jpp QE); 0 = switched off.
    gain, gain_spread : ndarray
        Mean and σ of the charge of one photo-electron [p.e.].
    threshold, threshold_band : ndarray
        Discriminator threshold and threshold band [p.e.].
    rise_time, decay_time, transition : ndarray
        Pulse leading-edge σ [ns], tail decay time [ns] (tuned: ToT(1 p.e.) = ``tot_1pe_ns``),
        start of the linear ToT regime [p.e.].
    tts : ndarray
        Gaussian transit-time spread σ [ns] (a negative Jpp TTS, "measured distribution", is
        replaced by the default σ).
    tts_table : ndarray of int
        Index in ``tts_tables`` of the tabulated transit-time distribution of each PMT, −1 for
        the Gaussian ``tts``.
    tts_tables : list of TtsTable
        The tabulated transit-time distributions in use.
    usable : ndarray of bool
        Not disabled in the detector file.
    p_under_amplified, band_tot_mean, band_tot_sigma, saturation, slope : float
        Common pulse-model values (PHYSICS.md §7.3).
    slewing : bool
        Apply time slewing.
    afterpulse_probability, afterpulse_delay, afterpulse_delay_sigma : float
        Afterpulses [UNVERIFIED].
    source : str
        The PMT parameter file used, ``""`` for the defaults.
    """

    qe: np.ndarray
    gain: np.ndarray
    gain_spread: np.ndarray
    threshold: np.ndarray
    threshold_band: np.ndarray
    rise_time: np.ndarray
    tts: np.ndarray
    usable: np.ndarray
    decay_time: np.ndarray = field(default=None)
    transition: np.ndarray = field(default=None)
    p_under_amplified: float = P_UNDER_AMPLIFIED
    band_tot_mean: float = BAND_TOT_MEAN_NS
    band_tot_sigma: float = BAND_TOT_SIGMA_NS
    saturation: float = SATURATION_NS
    slope: float = TOT_SLOPE_NS_PER_PE
    slewing: bool = True
    afterpulse_probability: float = AFTERPULSE_PROBABILITY
    afterpulse_delay: float = AFTERPULSE_DELAY_NS
    afterpulse_delay_sigma: float = AFTERPULSE_DELAY_SIGMA_NS
    tot_1pe_ns: float = TOT_1PE_NS
    source: str = ""
    tts_table: np.ndarray = field(default=None)
    tts_tables: list = field(default_factory=list)

    def __post_init__(self):
        n = len(self.qe)
        if self.tts_table is None:
            self.tts_table = np.full(n, -1, dtype=np.int64)
        self.tts_table = np.ascontiguousarray(self.tts_table, dtype=np.int64).reshape(-1)
        if self.tts_table.shape[0] != n or np.any(self.tts_table >= len(self.tts_tables)) or np.any(self.tts_table < -1):
            raise ValueError(f"PmtParameters.tts_table must hold {n} indices in -1..{len(self.tts_tables) - 1}")
        for name in PER_PMT_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"PmtParameters.{name} has {arr.shape[0]} entries, expected {n}")
            setattr(self, name, arr)
        self.usable = np.ascontiguousarray(self.usable, dtype=bool).reshape(-1)
        self.update_pulse_shape()

    def update_pulse_shape(self) -> None:
        """(Re)compute ``decay_time`` and ``transition`` from threshold and rise time (cached per
        distinct pair): the tail is tuned so that a pulse of 1 p.e. has ToT ``tot_1pe_ns`` at
        the nominal threshold, and keeps its shape when only the threshold changes."""
        n = len(self.qe)
        self.decay_time = np.empty(n)
        self.transition = np.empty(n)
        pairs = np.stack([self.threshold, self.rise_time], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        for k, (th, rise) in enumerate(uniq):
            tau = tuned_decay_time_ns(self.tot_1pe_ns, THRESHOLD_PE, float(rise))
            sel = inv.reshape(-1) == k
            self.decay_time[sel] = tau
            self.transition[sel] = tot_transition_pe(float(th), float(rise), tau, float(self.slope))

    @property
    def n_pmts(self) -> int:
        return len(self.qe)

    @property
    def switched_on(self) -> np.ndarray:
        """PMTs that can give hits: usable in the detector file and QE > 0."""
        return self.usable & (self.qe > 0.0)

    def tot(self, charge, pmt: int = 0):
        """ToT [ns] of pulses of ``charge`` p.e. on PMT ``pmt`` (no threshold band)."""
        q = np.asarray(charge, dtype=np.float64)
        out = time_over_threshold_array(
            np.ascontiguousarray(q.reshape(-1)), float(self.threshold[pmt]), float(self.rise_time[pmt]),
            float(self.decay_time[pmt]), float(self.saturation), float(self.slope), float(self.transition[pmt]),
        ).reshape(q.shape)
        return out if out.ndim else float(out)


_FILE_COMMON = {
    # Jpp "%." key -> (PmtParameters field, converter)
    "PunderAmplified": ("p_under_amplified", float),
    "mean_ns": ("band_tot_mean", float),
    "sigma_ns": ("band_tot_sigma", float),
    "saturation": ("saturation", float),
    "slope": ("slope", float),
    "slewing": ("slewing", lambda v: bool(round(v))),
}
_FILE_PER_PMT = {"QE": "qe", "gain": "gain", "gainSpread": "gain_spread", "threshold": "threshold",
                 "thresholdBand": "threshold_band", "riseTime_ns": "rise_time", "TTS_ns": "tts"}


def pmt_parameters(
    detector,
    source: "str | os.PathLike | None" = None,
    *,
    overrides: list[dict] | None = None,
    tts_ns: float = TTS_NS,
    tts_table=None,
    gain_spread_scale: float = GAIN_SPREAD_TOT_SCALE,
    **common,
) -> PmtParameters:
    """Parameters of every PMT of ``detector``.

    Parameters
    ----------
    detector
        Anything with ``pmt_dom_id``, ``pmt_channel``, ``pmt_id`` and ``pmt_usable`` (or
        ``pmt_status_ok``) arrays.
    source : path, optional
        Jpp PMT parameter file (:func:`km3sim.io.pmt_params.read_pmt_parameters`). PMTs it does
        not list get its ``%.`` defaults; its global ``QE`` multiplies every QE.
    overrides : list of dict, optional
        Per-PMT values, each ``{"pmt_id": id}`` or ``{"dom_id": d, "channel": c}`` plus any of
        :data:`PER_PMT_FIELDS` (``gain_spread`` as in Jpp, scaled like the file's).
    tts_ns : float
        Gaussian TTS σ for PMTs without a (positive) TTS of their own.
    tts_table : str or TtsTable, optional
        Tabulated transit-time distribution (:func:`tts_table`: the built-in
        :data:`TTS_TABLE_BUILTIN` or a table file) for the PMTs without a positive TTS of their
        own -- Jpp's "negative TTS: use the measured distribution" -- instead of the Gaussian
        ``tts_ns``. An override ``{"pmt_id": .., "tts_table": "<file or built-in name>"}`` gives
        one PMT its own table; an override with a positive ``tts`` makes it Gaussian.
    gain_spread_scale : float
        :data:`GAIN_SPREAD_TOT_SCALE`.
    **common
        Values of the common fields of :class:`PmtParameters` (e.g. ``slewing=False``,
        ``afterpulse_probability=0``); they take precedence over the file.

    Raises
    ------
    ConfigError
        For an override naming an unknown PMT or field, or a negative value.
    """
    n = len(detector.pmt_id)
    per = {"qe": 1.0, "gain": 1.0, "gain_spread": GAIN_SPREAD, "threshold": THRESHOLD_PE,
           "threshold_band": THRESHOLD_BAND_PE, "rise_time": RISE_TIME_NS, "tts": -1.0}
    arrays = {k: np.full(n, v, dtype=np.float64) for k, v in per.items()}
    kw: dict = {}
    src = ""
    if source is not None:
        from km3sim.io.pmt_params import read_pmt_parameters

        pf = read_pmt_parameters(source)
        src = pf.path
        for key, (name, conv) in _FILE_COMMON.items():
            if key in pf.defaults:
                kw[name] = conv(pf.defaults[key])
        for key, name in _FILE_PER_PMT.items():
            if key in pf.defaults:
                arrays[name][:] = pf.defaults[key]
        row = pf.lookup(detector.pmt_dom_id, detector.pmt_channel)
        have = row >= 0
        col = {"QE": "qe", "gain": "gain", "gainSpread": "gain_spread", "riseTime_ns": "rise_time",
               "TTS_ns": "tts", "threshold": "threshold"}
        for key, name in col.items():
            arrays[name][have] = pf.values[key][row[have]]
        arrays["qe"] *= pf.globals.get("QE", 1.0)
    tables: list[TtsTable] = []
    own_table = np.full(n, -1, dtype=np.int64)
    if overrides:
        _apply_overrides(detector, arrays, overrides, tables, own_table)
    arrays["gain_spread"] = arrays["gain_spread"] * gain_spread_scale
    table_index = own_table
    if tts_table is not None:
        k = _table_slot(tables, tts_table, "tts_table")
        table_index = np.where((own_table < 0) & (arrays["tts"] < 0.0), k, own_table)
    arrays["tts"] = np.where(arrays["tts"] >= 0.0, arrays["tts"], tts_ns)
    kw.update(common)
    usable = np.asarray(getattr(detector, "pmt_usable", getattr(detector, "pmt_status_ok", np.ones(n, bool))), dtype=bool)
    used = np.unique(table_index[table_index >= 0])  # drop tables no PMT uses
    remap = np.full(len(tables) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return PmtParameters(usable=usable, source=src, tts_table=remap[table_index], tts_tables=[tables[k] for k in used],
                         **arrays, **kw)


def _table_slot(tables: list, spec, where: str) -> int:
    """Index of the transit-time table ``spec`` in ``tables`` (loaded and appended if new)."""
    key = spec.source if isinstance(spec, TtsTable) else str(spec)
    for k, t in enumerate(tables):
        if t.source == key or t is spec:
            return k
    try:
        tables.append(tts_table(spec))
    except Km3simError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    return len(tables) - 1


def _apply_overrides(detector, arrays: dict, overrides: list[dict], tables: list, own_table: np.ndarray) -> None:
    pmt_ids = np.asarray(detector.pmt_id, dtype=np.int64)
    doms = np.asarray(detector.pmt_dom_id, dtype=np.int64)
    chans = np.asarray(detector.pmt_channel, dtype=np.int64)
    for k, ov in enumerate(overrides):
        ov = dict(ov)
        where = f"pmt_parameters override #{k}"
        if "pmt_id" in ov:
            sel = np.flatnonzero(pmt_ids == int(ov.pop("pmt_id")))
        elif "dom_id" in ov and "channel" in ov:
            sel = np.flatnonzero((doms == int(ov.pop("dom_id"))) & (chans == int(ov.pop("channel"))))
        else:
            raise ConfigError(f"{where}: give 'pmt_id' or 'dom_id' and 'channel', got keys {sorted(ov)}")
        if sel.size == 0:
            raise ConfigError(f"{where}: no such PMT in the detector")
        for name, value in ov.items():
            if name == "tts_table":
                if not isinstance(value, (str, os.PathLike, TtsTable)):
                    raise ConfigError(f"{where}: tts_table must be a file name or {TTS_TABLE_BUILTIN!r}, got {value!r}")
                own_table[sel] = _table_slot(tables, value, where)
                continue
            if name not in PER_PMT_FIELDS:
                raise ConfigError(f"{where}: unknown parameter {name!r}; known: {list(PER_PMT_FIELDS) + ['tts_table']}")
            value = float(value)
            if not math.isfinite(value) or (value < 0 and name != "tts"):
                raise ConfigError(f"{where}: {name} = {value} must be finite and not negative")
            arrays[name][sel] = value
