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

Products (``mc_tracks``, all starting at the vertex at time 0, collinear with the neutrino):

- CC: the charged lepton (+-11/13/15, same sign as the neutrino's code) with E (1 - y), then
  the hadronic system with E y as one track with PDG code 211 (pi+, a stand-in for the
  hadronic shower; its sign means nothing).
- NC: the outgoing neutrino (same code) with E (1 - y), then the hadronic system (211, E y).
- Glashow: W -> hadrons: one 211 track with E; W -> l nubar_l: l- (11/13/15) with E x and
  nubar_l (-12/-14/-16) with E (1 - x), x drawn from 3 (1-x)^2.

Event rows (``events``): pdgid = the neutrino, energy = E_nu, pos = the vertex, dir = the
neutrino direction, is_cc = 1 for CC and the Glashow resonance (W exchange), 0 for NC,
bjorken_y = y (NaN for Glashow events), n_muons = muons among the products, n_gen = the
run's n_events_run, livetime_s = the run's livetime, mc_time uniform in [0, livetime).

Limitations: the products are collinear with the neutrino (the lepton-neutrino angle, of order
sqrt(m_N / E) rad, i.e. ~10 deg at 10 GeV and ~1 deg at 1 TeV, is neglected); lepton masses
and kinematic limits are ignored in y (the lepton energy E (1 - y) may fall below its mass;
the nu_tau CC threshold suppression below ~20 GeV is missing); no quasi-elastic or resonant
processes (the cross sections follow the DIS curve below 50 GeV); the hadronic system is a
single track; y follows the parton-model shapes of :mod:`km3sim.physics.xsec`.

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
#: vertex z, y part, y value (or Glashow lepton fraction), time
N_UNIFORMS = 11
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
                          "sigma_nubar/sigma_nu",
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
        channel, y, lepton_fraction, time_ns, w2, w3, volume, medium_density, p_earth).
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
        time_ns = u[:, 10] * (float(livetime_s) * 1e9 if livetime_s > 0 else 0.0)
        return {
            "pdgid": pdg, "energy": energy, "cos_zenith": cosz, "pos": pos, "dir": dirs, "channel": channel,
            "y": y, "lepton_fraction": lepton_fraction, "time_ns": time_ns, "w2": w2, "w3": w3,
            "volume": volume, "medium_density": density, "p_earth": p_earth,
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
        tracks = make_table(
            "mc_tracks",
            event_id=ids[ev_of_row],
            track_id=track_id,
            parent_id=np.full(m, -1, dtype=np.int32),
            pdgid=t_pdg,
            pos_x=pos[ev_of_row, 0], pos_y=pos[ev_of_row, 1], pos_z=pos[ev_of_row, 2],
            dir_x=dirs[ev_of_row, 0], dir_y=dirs[ev_of_row, 1], dir_z=dirs[ev_of_row, 2],
            energy=t_e,
            time=np.zeros(m),
            length=np.zeros(m),
            energy_lost_in_can=np.zeros(m),
        )
        return {"events": events, "mc_tracks": tracks}
