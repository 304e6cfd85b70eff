"""Neutrino cross sections: deep-inelastic scattering on nucleons, the Glashow resonance on
electrons, and the inelasticity (Bjorken y) of DIS.

Total DIS cross sections (PHYSICS.md §3.1)
------------------------------------------
Per nucleon of an isoscalar target, the same for all three flavours:

- E >= 100 GeV: the CSMS table (A. Cooper-Sarkar, P. Mertsch, S. Sarkar, "The high energy
  neutrino cross-section in the Standard Model and its uncertainty", JHEP 08 (2011) 042,
  arXiv:1106.3723, tables 1 and 2; 31 energies from 50 GeV to 5e11 GeV, read from the stored
  copy ``kcarloni/ParticleCrossSections.jl:data/nuDIS/coopersarkar2011_nu.txt`` and
  ``data/sig_nuDIS/coopersarkar2011_nubar.txt``), interpolated linearly in (ln E, ln sigma).
  Above 5e11 GeV the last log-log slope is continued.
- E <= 50 GeV: the linear DIS regime of J. A. Formaggio and G. P. Zeller, "From eV to EeV:
  neutrino cross sections across energy scales", Rev. Mod. Phys. 84 (2012) 1307:
  sigma_CC / E = 0.677e-38 cm^2/GeV (nu) and 0.334e-38 cm^2/GeV (nubar). NC is the CC value
  times the CSMS NC/CC ratio at 100 GeV (0.20/0.65 for nu, 0.12/0.33 for nubar).
- 50-100 GeV, the join: log-log interpolation between the linear law at 50 GeV and CSMS at
  100 GeV. The curve is continuous everywhere (its slope jumps at 50 and 100 GeV). The CSMS
  point at 50 GeV (5-10 % below the linear law) is not used: at 50 GeV the measured DIS
  average of Formaggio & Zeller is taken instead.

Below about 5 GeV quasi-elastic scattering and resonance production matter; the linear law
is only a rough guide there (PHYSICS.md §3.1).

Glashow resonance (PHYSICS.md §3.7)
-----------------------------------
nubar_e e- -> W- -> X, per electron, Breit-Wigner form of GENIE ``GlashowResXSec``::

    sigma(nubar_e e -> nubar_mu mu) = G_F^2 s / (3 pi) M_W^4 / ((s - M_W^2)^2 + Gamma_W^2 M_W^2),
    s = 2 m_e E.

This is one leptonic channel (its peak is 24 pi / M_W^2 B(e nu) B(mu nu)). Channel c has
sigma_c = sigma_lep B(W -> c) / B(W -> mu nu), with lepton universality B(W -> l nu) = 0.1086
for l = e, mu, tau and B(W -> hadrons) = 1 - 3 x 0.1086 = 0.6742 (PDG world averages
[UNVERIFIED, from memory; consistent with the ratios quoted in PHYSICS.md §3.7]). Lepton-mass
thresholds (e.g. s > m_tau^2) are neglected: they matter only where the resonance is
negligible against DIS. Per nucleon, multiply by the electrons per nucleon Z/A
(:data:`Z_OVER_A_WATER`, :data:`Z_OVER_A_ROCK`).

Inelasticity (PHYSICS.md §3.2)
------------------------------
Quark-parton model on an isoscalar target with quark and antiquark momentum fractions Q and
Qbar (Qbar/Q = q)::

    nu   CC : dsigma/dy ~ Q + Qbar (1-y)^2          nubar CC : ~ Qbar + Q (1-y)^2
    nu   NC : ~ (Q gL2 + Qbar gR2) + (Q gR2 + Qbar gL2) (1-y)^2
    nubar NC: ~ (Q gR2 + Qbar gL2) + (Q gL2 + Qbar gR2) (1-y)^2

with the neutral-current couplings summed over u and d quarks, gL = T3 - e_q sin^2 theta_W,
gR = -e_q sin^2 theta_W (standard electroweak couplings [D]; sin^2 theta_W = 0.2312
[UNVERIFIED, PDG value from memory]). With q = 0.2 the NC/CC ratios come out 0.31 (nu) and
0.36 (nubar), as in the CSMS table at 100 GeV.

The energy dependence of q is taken from the CC cross sections themselves: integrating the
CC shapes, sigma_nubar / sigma_nu = R = (q + 1/3) / (1 + q/3), hence
q(E) = (R - 1/3) / (1 - R/3) with R(E) from the cross sections above. This gives q = 0.19
below 50 GeV (R = 0.334/0.677, PHYSICS.md quotes Qbar/Q = 0.2), 0.42 at 10 TeV and 1 above
1e7 GeV where CSMS has sigma_nubar = sigma_nu (the sea dominates).

Limitation: the parton-model shapes ignore the W/Z propagator and the Q^2 evolution. Above
~100 TeV the true <y> falls to ~0.2-0.25 at EeV energies (PHYSICS.md §3.2), while this
model gives <y> -> 0.44 for q -> 1; so <y> is overestimated at very high energies. Below
~100 TeV <y> is 0.48 (nu) / 0.34 (nubar) at low energy, as quoted in PHYSICS.md §3.2. A full
generator (GENIE in gSeaGen) replaces all of this.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "PB_TO_CM2",
    "CSMS_ENERGY_GEV",
    "CSMS_NU_CC_PB",
    "CSMS_NU_NC_PB",
    "CSMS_NUBAR_CC_PB",
    "CSMS_NUBAR_NC_PB",
    "FZ_CC_SLOPE_NU",
    "FZ_CC_SLOPE_NUBAR",
    "E_LINEAR_MAX_GEV",
    "E_CSMS_MIN_GEV",
    "Z_OVER_A_WATER",
    "Z_OVER_A_ROCK",
    "M_W_GEV",
    "GAMMA_W_GEV",
    "G_FERMI_GEV2",
    "M_ELECTRON_GEV",
    "HBARC2_CM2_GEV2",
    "B_W_LEPTON",
    "B_W_HADRONS",
    "GLASHOW_CHANNELS",
    "GLASHOW_BRANCHING",
    "E_GLASHOW_RESONANCE_GEV",
    "SIN2_THETA_W",
    "is_antineutrino",
    "dis_cross_section",
    "dis_total_cross_section",
    "glashow_cross_section",
    "antiquark_ratio",
    "inelasticity_shape",
    "inelasticity_shape_from_ratio",
    "inelasticity_pdf",
    "inelasticity_cdf",
    "mean_inelasticity",
    "sample_inelasticity",
    "sample_glashow_lepton_fraction",
]

#: 1 pb in cm^2.
PB_TO_CM2 = 1e-36

#: CSMS energies [GeV] (JHEP 08 (2011) 042, tables 1-2; PHYSICS.md §3.1).
CSMS_ENERGY_GEV = np.array(
    [50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7,
     1e8, 2e8, 5e8, 1e9, 2e9, 5e9, 1e10, 2e10, 5e10, 1e11, 2e11, 5e11],
    dtype=np.float64,
)
#: CSMS nu CC cross section per isoscalar nucleon [pb].
CSMS_NU_CC_PB = np.array(
    [0.32, 0.65, 1.3, 3.2, 6.2, 12.0, 27.0, 47.0, 77.0, 140.0, 210.0, 310.0, 490.0, 690.0, 950.0,
     1400.0, 1900.0, 2600.0, 3700.0, 4800.0, 6200.0, 8700.0, 11000.0, 14000.0, 19000.0, 24000.0,
     30000.0, 39000.0, 48000.0, 59000.0, 75000.0]
)
#: CSMS nu NC cross section [pb].
CSMS_NU_NC_PB = np.array(
    [0.10, 0.20, 0.41, 1.0, 2.0, 3.8, 8.6, 15.0, 26.0, 49.0, 75.0, 110.0, 180.0, 260.0, 360.0,
     540.0, 730.0, 980.0, 1400.0, 1900.0, 2400.0, 3400.0, 4400.0, 5600.0, 7600.0, 9600.0,
     12000.0, 16000.0, 20000.0, 24000.0, 31000.0]
)
#: CSMS nubar CC cross section [pb].
CSMS_NUBAR_CC_PB = np.array(
    [0.15, 0.33, 0.69, 1.8, 3.6, 7.0, 17.0, 31.0, 55.0, 110.0, 180.0, 270.0, 460.0, 660.0, 920.0,
     1400.0, 1900.0, 2500.0, 3700.0, 4800.0, 6200.0, 8700.0, 11000.0, 14000.0, 19000.0, 24000.0,
     30000.0, 39000.0, 48000.0, 59000.0, 75000.0]
)
#: CSMS nubar NC cross section [pb].
CSMS_NUBAR_NC_PB = np.array(
    [0.05, 0.12, 0.24, 0.61, 1.20, 2.4, 5.8, 11.0, 19.0, 39.0, 64.0, 99.0, 170.0, 240.0, 350.0,
     530.0, 730.0, 980.0, 1400.0, 1900.0, 2400.0, 3400.0, 4400.0, 5600.0, 7600.0, 9600.0,
     12000.0, 16000.0, 20000.0, 24000.0, 31000.0]
)

#: sigma_CC / E in the linear regime [cm^2/GeV] (Formaggio & Zeller, RMP 84 (2012) 1307).
FZ_CC_SLOPE_NU = 0.677e-38
FZ_CC_SLOPE_NUBAR = 0.334e-38
#: The linear law holds up to this energy [GeV]; CSMS holds from E_CSMS_MIN_GEV on.
E_LINEAR_MAX_GEV = 50.0
E_CSMS_MIN_GEV = 100.0

#: Electrons per nucleon: water 10/18 (PHYSICS.md §3.7); standard rock Z/A = 11/22
#: [UNVERIFIED, PDG "standard rock" from memory].
Z_OVER_A_WATER = 0.555
Z_OVER_A_ROCK = 0.5

#: W mass and width [GeV], Fermi constant [GeV^-2], electron mass [GeV], (hbar c)^2
#: [cm^2 GeV^2] (PDG values [UNVERIFIED, from memory]; they reproduce the PHYSICS.md §3.7
#: resonance energy 6.32e6 GeV and peak 5.4e-32 cm^2).
M_W_GEV = 80.379
GAMMA_W_GEV = 2.085
G_FERMI_GEV2 = 1.1663787e-5
M_ELECTRON_GEV = 0.51099895e-3
HBARC2_CM2_GEV2 = 0.3893794e-27

#: W branching fractions: one lepton flavour, and hadrons.
B_W_LEPTON = 0.1086
B_W_HADRONS = 1.0 - 3.0 * B_W_LEPTON
#: Glashow channels in the order used everywhere (W- -> hadrons, e nubar_e, mu nubar_mu,
#: tau nubar_tau), and their branching fractions.
GLASHOW_CHANNELS = ("hadrons", "e", "mu", "tau")
GLASHOW_BRANCHING = np.array([B_W_HADRONS, B_W_LEPTON, B_W_LEPTON, B_W_LEPTON])
#: Resonance energy M_W^2 / (2 m_e) [GeV].
E_GLASHOW_RESONANCE_GEV = M_W_GEV**2 / (2.0 * M_ELECTRON_GEV)

#: Weak mixing angle used for the NC inelasticity shapes.
SIN2_THETA_W = 0.2312
_S = SIN2_THETA_W
_GL2 = (0.5 - 2.0 / 3.0 * _S) ** 2 + (-0.5 + 1.0 / 3.0 * _S) ** 2
_GR2 = (2.0 / 3.0 * _S) ** 2 + (1.0 / 3.0 * _S) ** 2

for _arr in (CSMS_NU_CC_PB, CSMS_NU_NC_PB, CSMS_NUBAR_CC_PB, CSMS_NUBAR_NC_PB):
    assert _arr.shape == CSMS_ENERGY_GEV.shape


def _node_table(cc_pb: np.ndarray, nc_pb: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray, float]:
    """ln(sigma [cm^2]) at the interpolation nodes: the linear law at 50 GeV, then CSMS from
    100 GeV; and the NC/CC ratio used below 50 GeV."""
    keep = CSMS_ENERGY_GEV >= E_CSMS_MIN_GEV
    i100 = int(np.flatnonzero(keep)[0])
    nc_over_cc = float(nc_pb[i100] / cc_pb[i100])
    cc = np.concatenate([[slope * E_LINEAR_MAX_GEV], cc_pb[keep] * PB_TO_CM2])
    nc = np.concatenate([[slope * E_LINEAR_MAX_GEV * nc_over_cc], nc_pb[keep] * PB_TO_CM2])
    return np.log(cc), np.log(nc), nc_over_cc


_LOG_E_NODES = np.log(np.concatenate([[E_LINEAR_MAX_GEV], CSMS_ENERGY_GEV[CSMS_ENERGY_GEV >= E_CSMS_MIN_GEV]]))
_NU_CC, _NU_NC, _NU_NC_RATIO = _node_table(CSMS_NU_CC_PB, CSMS_NU_NC_PB, FZ_CC_SLOPE_NU)
_NUBAR_CC, _NUBAR_NC, _NUBAR_NC_RATIO = _node_table(CSMS_NUBAR_CC_PB, CSMS_NUBAR_NC_PB, FZ_CC_SLOPE_NUBAR)
# (anti, cc) -> (ln sigma at the nodes, linear slope below 50 GeV [cm^2/GeV])
_TABLES = {
    (False, True): (_NU_CC, FZ_CC_SLOPE_NU),
    (False, False): (_NU_NC, FZ_CC_SLOPE_NU * _NU_NC_RATIO),
    (True, True): (_NUBAR_CC, FZ_CC_SLOPE_NUBAR),
    (True, False): (_NUBAR_NC, FZ_CC_SLOPE_NUBAR * _NUBAR_NC_RATIO),
}


def is_antineutrino(pdgid) -> np.ndarray:
    """True for antineutrinos (negative PDG code)."""
    return np.asarray(pdgid) < 0


def _current(interaction) -> bool:
    key = str(interaction).lower()
    if key not in ("cc", "nc"):
        raise ValueError(f"interaction must be 'cc' or 'nc', got {interaction!r}")
    return key == "cc"


def _sigma_one(energy: np.ndarray, anti: bool, cc: bool) -> np.ndarray:
    logs, slope = _TABLES[(anti, cc)]
    out = np.empty_like(energy)
    low = energy <= E_LINEAR_MAX_GEV
    out[low] = slope * energy[low]
    hi = ~low
    if hi.any():
        x = np.log(energy[hi])
        y = np.interp(x, _LOG_E_NODES, logs)
        above = x > _LOG_E_NODES[-1]
        if above.any():
            k = (logs[-1] - logs[-2]) / (_LOG_E_NODES[-1] - _LOG_E_NODES[-2])
            y[above] = logs[-1] + k * (x[above] - _LOG_E_NODES[-1])
        out[hi] = np.exp(y)
    return out


def dis_cross_section(energy_gev, pdgid, interaction: str):
    """DIS cross section per isoscalar nucleon [cm^2] (PHYSICS.md §3.1; see the module notes).

    Parameters
    ----------
    energy_gev : float or array_like
        Neutrino energy [GeV] (> 0).
    pdgid : int or array_like
        Neutrino PDG code; only its sign matters (negative: antineutrino).
    interaction : {"cc", "nc"}
        Charged or neutral current.

    Returns
    -------
    float or ndarray
        sigma [cm^2], broadcast over ``energy_gev`` and ``pdgid``.
    """
    cc = _current(interaction)
    e, pdg = np.broadcast_arrays(np.asarray(energy_gev, dtype=np.float64), np.asarray(pdgid))
    shape = e.shape
    e = np.ascontiguousarray(e).ravel()
    anti = np.ascontiguousarray(pdg).ravel() < 0
    if np.any(~(e > 0.0)):
        raise ValueError("neutrino energies must be > 0")
    out = np.empty_like(e)
    for a in (False, True):
        m = anti == a
        if m.any():
            out[m] = _sigma_one(e[m], a, cc)
    out = out.reshape(shape)
    return out if out.ndim else float(out)


def glashow_cross_section(energy_gev, channel: str = "total"):
    """Glashow-resonance cross section nubar_e e- -> W- -> X per electron [cm^2] (PHYSICS.md §3.7).

    Parameters
    ----------
    energy_gev : float or array_like
        Antineutrino energy [GeV] (electron at rest).
    channel : {"total", "hadrons", "e", "mu", "tau", "leptonic"}
        W decay channel; "leptonic" is one lepton flavour (= "e" = "mu" = "tau").
    """
    e = np.asarray(energy_gev, dtype=np.float64)
    s = 2.0 * M_ELECTRON_GEV * e
    mw2 = M_W_GEV * M_W_GEV
    lep = (
        G_FERMI_GEV2**2 * s / (3.0 * math.pi) * mw2 * mw2 / ((s - mw2) ** 2 + GAMMA_W_GEV**2 * mw2)
    ) * HBARC2_CM2_GEV2
    if channel == "total":
        factor = 1.0 / B_W_LEPTON
    elif channel in ("leptonic", "e", "mu", "tau"):
        factor = 1.0
    elif channel == "hadrons":
        factor = B_W_HADRONS / B_W_LEPTON
    else:
        raise ValueError(f"unknown Glashow channel {channel!r}; use total, hadrons, e, mu, tau or leptonic")
    out = lep * factor
    return out if out.ndim else float(out)


def dis_total_cross_section(energy_gev, pdgid):
    """sigma_CC + sigma_NC per nucleon [cm^2] (absorption in the Earth; Glashow not included)."""
    return dis_cross_section(energy_gev, pdgid, "cc") + dis_cross_section(energy_gev, pdgid, "nc")


# ----------------------------------------------------------------------------- inelasticity
def antiquark_ratio(energy_gev):
    """Qbar/Q of the parton-model y shapes, from sigma_CC(nubar)/sigma_CC(nu) (module notes).

    q = (R - 1/3) / (1 - R/3), clipped to [0, 1].
    """
    e = np.asarray(energy_gev, dtype=np.float64)
    r = np.asarray(dis_cross_section(e, -1, "cc") / dis_cross_section(e, 1, "cc"))
    q = np.clip((r - 1.0 / 3.0) / (1.0 - r / 3.0), 0.0, 1.0)
    return q if q.ndim else float(q)


def inelasticity_shape_from_ratio(q, anti, cc):
    """Normalised y-shape ``pdf(y) = a + b (1-y)^2`` (a + b/3 = 1) for Qbar/Q = ``q``.

    Parameters
    ----------
    q : float or array_like
        Antiquark to quark momentum fraction Qbar/Q.
    anti : bool or array_like
        Antineutrino.
    cc : bool or array_like
        Charged current (else neutral current).

    Returns
    -------
    a, b : ndarray or float
        Weights of the flat and the (1-y)^2 parts.
    """
    q, anti, cc = np.broadcast_arrays(np.asarray(q, dtype=np.float64), np.asarray(anti, dtype=bool), np.asarray(cc, dtype=bool))
    # flat weight and (1-y)^2 weight for a neutrino; an antineutrino swaps the roles of the
    # two helicity structures (quarks <-> antiquarks for CC, gL <-> gR for NC)
    a_cc_nu, b_cc_nu = np.ones_like(q), q
    a_nc_nu, b_nc_nu = _GL2 + q * _GR2, _GR2 + q * _GL2
    a_nc_nubar, b_nc_nubar = _GR2 + q * _GL2, _GL2 + q * _GR2
    a = np.where(cc, np.where(anti, q, a_cc_nu), np.where(anti, a_nc_nubar, a_nc_nu))
    b = np.where(cc, np.where(anti, 1.0, b_cc_nu), np.where(anti, b_nc_nubar, b_nc_nu))
    norm = a + b / 3.0
    a, b = a / norm, b / norm
    if a.ndim == 0:
        return float(a), float(b)
    return a, b


def inelasticity_shape(energy_gev, pdgid, interaction: str):
    """Normalised y-shape weights (a, b) at energy ``energy_gev`` for a neutrino ``pdgid``."""
    cc = _current(interaction)
    return inelasticity_shape_from_ratio(antiquark_ratio(energy_gev), is_antineutrino(pdgid), cc)


def inelasticity_pdf(y, energy_gev, pdgid, interaction: str):
    """pdf of Bjorken y on [0, 1]: a + b (1-y)^2."""
    a, b = inelasticity_shape(energy_gev, pdgid, interaction)
    y = np.asarray(y, dtype=np.float64)
    return np.where((y >= 0.0) & (y <= 1.0), a + b * (1.0 - y) ** 2, 0.0)


def inelasticity_cdf(y, energy_gev, pdgid, interaction: str):
    """CDF of Bjorken y: a y + b (1 - (1-y)^3) / 3."""
    a, b = inelasticity_shape(energy_gev, pdgid, interaction)
    y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
    return a * y + b * (1.0 - (1.0 - y) ** 3) / 3.0


def mean_inelasticity(energy_gev, pdgid, interaction: str):
    """<y> = a/2 + b/12."""
    a, b = inelasticity_shape(energy_gev, pdgid, interaction)
    return np.asarray(a) / 2.0 + np.asarray(b) / 12.0


def sample_inelasticity(u_part, u_value, energy_gev, pdgid, interaction: str):
    """Draw Bjorken y by inverse transform from two uniforms per event.

    ``u_part < a`` picks the flat part (y = u_value), otherwise the (1-y)^2 part
    (y = 1 - (1 - u_value)^(1/3)) (PHYSICS.md §3.2).

    Parameters
    ----------
    u_part, u_value : array_like
        Uniform deviates in [0, 1).
    energy_gev, pdgid : array_like
        Neutrino energy [GeV] and PDG code, per event.
    interaction : {"cc", "nc"}
    """
    a, _ = inelasticity_shape(energy_gev, pdgid, interaction)
    u_part = np.asarray(u_part, dtype=np.float64)
    u_value = np.asarray(u_value, dtype=np.float64)
    return np.where(u_part < a, u_value, 1.0 - np.cbrt(1.0 - u_value))


def sample_glashow_lepton_fraction(u):
    """Energy fraction x of the charged lepton in W- -> l- nubar_l after nubar_e e- -> W-.

    V-A helicity: the W- is produced with spin +1 along the nubar_e direction and the
    right-handed nubar_l is emitted preferentially forward, d sigma / d cos(theta*) ~
    (1 + cos theta*)^2, so the lepton takes x = (1 - cos theta*)/2 with pdf 3 (1-x)^2
    (<x> = 1/4) [D]. Inverse transform: x = 1 - (1 - u)^(1/3).
    """
    return 1.0 - np.cbrt(1.0 - np.asarray(u, dtype=np.float64))
