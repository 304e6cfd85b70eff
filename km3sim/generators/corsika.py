"""Muons from CORSIKA air showers (particle DAT files) brought to the can.

File format: PHYSICS.md §2.4 and FORMATS.md §7 (read with ``corsikaio``, Cherenkov-free,
unthinned particle files). Per shower the EVTH block gives the primary (CORSIKA code, total
energy, zenith and azimuth of its momentum, observation levels, generation spectrum and angle
ranges); the particle blocks give, per particle, ``description = id x 1000 + hadronic
generation x 10 + observation level``, the momentum (px, py, pz) [GeV/c] with pz along -z
(positive for down-going particles), the position (x, y) [cm] relative to the shower core at
the observation level and the time t [ns]. Muons are ids 5 (mu+) and 6 (mu-); rows with other
ids (75/76 "additional muon information", negative EHIST ancestors) are ignored.

What the stage does per shower (one event per shower; the n-th event of a run is the n-th
shower of the files, in the order listed):

1. The primary direction of motion is (sin th cos ph, sin th sin ph, -cos th) in the CORSIKA
   frame (x = magnetic north, y = west, z up), rotated about z by ``frame_rotation_deg``
   (default 90: x east, y north, the detector/UTM frame; the magnetic declination and the UTM
   grid convergence, a few degrees at the KM3NeT sites, can be added to that angle).
2. The shower axis is placed so that it crosses the can at a point uniform over the can's
   projected area (``core: random``, from the event's seed) or through the can centre
   (``core: centre``); the event's ``pos`` is the axis's entry point on the can surface.
   The shower core is where the axis meets the sea surface (detector z = site depth).
3. Observation level: the muons of one level (``observation_level``, default the lowest)
   are taken to lie on the sea surface (``observation_level_at: sea_surface``), or at their
   altitude above the sea (``altitude``), from which they travel straight to sea level
   without energy loss in air (about 0.24 GeV per km of air at sea-level density).
4. Each muon goes straight along its own direction, with continuous losses in sea water
   (PHYSICS.md §4.1), to its entry point on the can or, if it misses the can, to the plane
   through the axis's can entry perpendicular to the axis. Muons arriving with less than
   ``muon_energy_min_gev`` (or stopping) are dropped.
5. Times: the event time 0 is the passage, at the axis's can entry, of the plane front
   moving at c along the axis that the earliest muon of the shower defines
   (``T0 = min_i (t_i - r_i . a / c)`` at the sea surface); a muon's time is its CORSIKA
   time minus T0 plus its water path / c minus the axis's water path / c.

Weights: ``weight_w2`` is NaN unless ``zenith_sampling`` says how CORSIKA drew the zenith
angle (not written in the file): ``isotropic`` (dN ∝ dOmega) or ``flat_detector``
(dN ∝ cos(theta) dOmega, CORSIKA's default for a horizontal detector, UNVERIFIED here). Then,
with the EVTH generation spectrum E^slope on [E_low, E_high] and the zenith/azimuth ranges,
``w2 = S(theta) / p(Omega) x I_E x E^gamma`` [GeV m^2 sr] with gamma = -slope,
``I_E = int E^slope dE``, S the projected can area and p(Omega) the generation pdf in solid
angle. This assumes every shower is used once per run and all files share the generation
parameters. ``weight_w3 = w2 Phi(pdg, E) / n_gen`` with ``flux_model`` (NaN without one or for a
primary the model does not have).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numba as nb
import numpy as np
from pydantic import Field, field_validator

from km3sim._optional import require
from km3sim.constants import C_LIGHT, MUON_MASS
from km3sim.errors import ConfigError, StageError, StageFileError
from km3sim.generators.air_showers import _sample_can_impact
from km3sim.generators.can import Can, can_from_detector
from km3sim.generators.cosmic_rays import get_flux_model, mass_number
from km3sim.io.pdg import corsika_to_pdg as _corsika_to_pdg
from km3sim.propagation.muons import ContinuousLossTable, energy_after
from km3sim.random import rng_new, rng_uniform
from km3sim.schema import make_table
from km3sim.generators.base import CanGenerator
from km3sim.stage import Site, StageConfig, StageContext, register_stage

__all__ = ["CorsikaMuons", "CorsikaShowers", "read_corsika_muons", "corsika_to_pdg"]

logger = logging.getLogger(__name__)

def corsika_to_pdg(code: int) -> int:
    """PDG code of a CORSIKA particle code (14 = proton, A x 100 + Z = nucleus ``100ZZZAAA0``).

    Strict version of :func:`km3sim.io.pdg.corsika_to_pdg` for primaries: raises
    ``ValueError`` on a code that has no PDG equivalent.
    """
    pdg = _corsika_to_pdg(int(code))
    if pdg == 0:
        raise ValueError(f"unknown CORSIKA particle code {code}")
    return int(pdg)


@dataclass(frozen=True)
class CorsikaShowers:
    """The primaries and the muons of the showers of one CORSIKA particle file.

    Attributes
    ----------
    path : str
    primary_code, energy, zenith, azimuth : ndarray, shape (n,)
        CORSIKA primary code, total energy [GeV], zenith and azimuth of the momentum [rad].
    obs_heights_m : ndarray, shape (n, n_levels)
        Altitudes of the observation levels [m] (NaN where a shower has fewer levels).
    slope, energy_low, energy_high, theta_min, theta_max, phi_min, phi_max : ndarray, shape (n,)
        Generation spectrum E^slope on [energy_low, energy_high] [GeV] and angle ranges [deg].
    mu_offsets : ndarray of int64, shape (n + 1,)
        Muons of shower k are rows mu_offsets[k]:mu_offsets[k+1] of the mu_* arrays.
    mu_code, mu_level : ndarray of int
        Particle id (5 = mu+, 6 = mu-) and observation level (1-based) of each muon.
    mu_p : ndarray, shape (m, 3)
        Momentum (px, py, pz) [GeV/c], pz along -z.
    mu_xy : ndarray, shape (m, 2)
        Position at the observation level [m] (relative to the core).
    mu_t : ndarray, shape (m,)
        Time [ns].
    """

    path: str
    primary_code: np.ndarray
    energy: np.ndarray
    zenith: np.ndarray
    azimuth: np.ndarray
    obs_heights_m: np.ndarray
    slope: np.ndarray
    energy_low: np.ndarray
    energy_high: np.ndarray
    theta_min: np.ndarray
    theta_max: np.ndarray
    phi_min: np.ndarray
    phi_max: np.ndarray
    mu_offsets: np.ndarray
    mu_code: np.ndarray
    mu_level: np.ndarray
    mu_p: np.ndarray
    mu_xy: np.ndarray
    mu_t: np.ndarray

    @property
    def n_showers(self) -> int:
        return int(self.energy.shape[0])


def read_corsika_muons(path: str) -> CorsikaShowers:
    """Read the primaries and muons of a CORSIKA particle file (cached per path, size, mtime).

    Raises
    ------
    StageFileError
        If the file is missing, unreadable, truncated or not a CORSIKA particle file.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise StageFileError(f"CORSIKA file {p!r} cannot be read: {exc.strerror or exc}") from exc
    if not os.path.isfile(p):
        raise StageFileError(f"CORSIKA file {p!r} is not a regular file")
    return _read_cached(os.path.abspath(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _read_cached(path: str, size: int, mtime_ns: int) -> CorsikaShowers:
    corsikaio = require("corsikaio", "reading CORSIKA files")
    hdr = {k: [] for k in ("code", "e", "th", "ph", "obs", "slope", "elo", "ehi", "thmin", "thmax", "phmin", "phmax")}
    offsets = [0]
    codes, levels, moms, xys, ts = [], [], [], [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corsikaio warns on versions newer than it knows
            with corsikaio.CorsikaParticleFile(path) as f:
                for ev in f:
                    h = ev.header
                    nlev = int(round(float(h["n_observation_levels"])))
                    if not 1 <= nlev <= 10:
                        raise ValueError(f"shower {int(h['event_number'])}: {nlev} observation levels")
                    obs = np.full(10, np.nan)
                    obs[:nlev] = np.asarray(h["observation_height"][:nlev], dtype=np.float64) * 0.01
                    for key, field in (("code", "particle_id"), ("e", "total_energy"), ("th", "zenith"),
                                       ("ph", "azimuth"), ("slope", "energy_spectrum_slope"), ("elo", "energy_min"),
                                       ("ehi", "energy_max"), ("thmin", "theta_min"), ("thmax", "theta_max"),
                                       ("phmin", "phi_min"), ("phmax", "phi_max")):
                        hdr[key].append(float(h[field]))
                    hdr["obs"].append(obs)
                    pa = ev.particles
                    desc = np.asarray(pa["particle_description"], dtype=np.float64)
                    pid = np.floor(desc / 1000.0).astype(np.int64)
                    mu = (pid == 5) | (pid == 6)
                    m = pa[mu]
                    codes.append(pid[mu])
                    levels.append((np.rint(desc[mu]).astype(np.int64) % 10))
                    moms.append(np.column_stack([m["px"], m["py"], m["pz"]]).astype(np.float64))
                    xys.append(np.column_stack([m["x"], m["y"]]).astype(np.float64) * 0.01)
                    ts.append(np.asarray(m["t"], dtype=np.float64))
                    offsets.append(offsets[-1] + int(mu.sum()))
    except StageFileError:
        raise
    except Exception as exc:  # corsikaio raises ValueError / OSError / struct errors on bad input
        raise StageFileError(
            f"CORSIKA file {path!r} cannot be read as an (unthinned) CORSIKA particle file: {type(exc).__name__}: {exc}"
        ) from exc
    if not hdr["e"]:
        raise StageFileError(f"CORSIKA file {path!r} contains no showers")
    a = {k: np.asarray(v, dtype=np.float64) for k, v in hdr.items()}
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
    return CorsikaShowers(
        path=path,
        primary_code=np.rint(a["code"]).astype(np.int64),
        energy=a["e"],
        zenith=a["th"],
        azimuth=a["ph"],
        obs_heights_m=np.asarray(hdr["obs"], dtype=np.float64),
        slope=a["slope"],
        energy_low=a["elo"],
        energy_high=a["ehi"],
        theta_min=a["thmin"],
        theta_max=a["thmax"],
        phi_min=a["phmin"],
        phi_max=a["phmax"],
        mu_offsets=np.asarray(offsets, dtype=np.int64),
        mu_code=cat(codes, (0,)).astype(np.int64),
        mu_level=cat(levels, (0,)).astype(np.int64),
        mu_p=cat(moms, (0, 3)),
        mu_xy=cat(xys, (0, 2)),
        mu_t=cat(ts, (0,)),
    )


@nb.njit(cache=True)
def _impacts(seeds, u, phi, random_core, cx, cy, r, zmin, zmax):
    """Per event: a uniform number (event time) and, for a random core, the axis's can entry."""
    n = seeds.shape[0]
    pos = np.full((n, 3), np.nan)
    tfrac = np.empty(n)
    for i in range(n):
        s = rng_new(seeds[i])
        tfrac[i] = rng_uniform(s)
        if random_core and u[i] > 0.0:
            x, y, z, _top = _sample_can_impact(s, u[i], phi[i], cx, cy, r, zmin, zmax)
            pos[i, 0] = x
            pos[i, 1] = y
            pos[i, 2] = z
    return pos, tfrac


@register_stage
class CorsikaMuons(CanGenerator):
    """Muons of CORSIKA showers (particle DAT files) at the can (module docstring)."""

    name = "corsika_muons"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`CorsikaMuons`."""

        files: list[str] = Field(..., min_length=1, description="CORSIKA particle DAT files, read in this order")
        core: Literal["random", "centre"] = Field(
            "random", description="shower axis through a random point of the projected can area, or the can centre"
        )
        can_margin_m: float = Field(200.0, ge=0.0, description="can margin around the DOMs [m]")
        observation_level: int | None = Field(
            None, ge=1, le=10, description="observation level to use (1-based); default the lowest"
        )
        observation_level_at: Literal["sea_surface", "altitude"] = Field(
            "sea_surface",
            description="sea_surface: the observation level is the sea surface; altitude: it lies at its "
            "EVTH altitude above the sea and muons travel straight to sea level (no loss in air)",
        )
        frame_rotation_deg: float = Field(
            90.0, description="rotation about z from the CORSIKA frame (x north, y west) to the detector frame [deg]"
        )
        muon_energy_min_gev: float = Field(1.0, gt=0.0, description="lowest muon energy at the can [GeV]")
        zenith_sampling: Literal["unknown", "isotropic", "flat_detector"] = Field(
            "unknown", description="how CORSIKA drew the zenith angle, for weight_w2 (unknown: w2 = NaN)"
        )
        flux_model: Literal["H3a", "H4a", "GST3", "GST4"] | None = Field(
            None, description="primary flux model for weight_w3 (None: w3 = NaN)"
        )

        @field_validator("files")
        @classmethod
        def _no_empty(cls, v):
            for i, f in enumerate(v):
                if not str(f).strip():
                    raise ValueError(f"files[{i}] is empty")
            return v

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self.showers = [self._read(i, f) for i, f in enumerate(self.config.files)]
        self._first = np.cumsum([0] + [s.n_showers for s in self.showers])
        self.n_showers = int(self._first[-1])
        self.flux = get_flux_model(self.config.flux_model) if self.config.flux_model else None
        self.can: Can | None = None
        if detector is not None:
            self._setup(detector)

    @classmethod
    def _read(cls, i: int, path: str) -> CorsikaShowers:
        if not os.path.exists(path):
            raise StageFileError(f"stage {cls.name!r}: files[{i}] = {path!r} does not exist")
        return read_corsika_muons(path)

    @classmethod
    def input_files(cls, config) -> list[str]:
        return [str(f) for f in config.files]

    @classmethod
    def plan_events(cls, config, detector, site, livetime_s, seed, run_id) -> int:
        """Number of showers in the files: every run simulates each shower once."""
        return int(sum(cls._read(i, f).n_showers for i, f in enumerate(config.files)))

    def _setup(self, detector) -> None:
        self.can = can_from_detector(detector, self.config.can_margin_m)
        self._z_surface = float(self.site.seabed_depth_m)
        self.loss_table = ContinuousLossTable.sea_water(self.site.water_density_g_cm3)
        if self.can.zmax >= self._z_surface:
            raise ConfigError(
                f"stage {self.name!r}: the can top (z = {self.can.zmax:.1f} m) is not below the sea surface "
                f"(z = {self._z_surface:.1f} m); reduce can_margin_m"
            )

    def header(self) -> dict:
        self._require_setup()
        c = self.can
        s0 = self.showers[0]
        return {
            "generator": "km3sim CORSIKA muons",
            "files": [s.path for s in self.showers],
            "n_showers": [s.n_showers for s in self.showers],
            "primary_codes": sorted({int(x) for s in self.showers for x in np.unique(s.primary_code)}),
            "spectrum": {"slope": float(s0.slope[0]), "energy_min_gev": float(s0.energy_low[0]),
                         "energy_max_gev": float(s0.energy_high[0])},
            "theta_range_deg": [float(s0.theta_min[0]), float(s0.theta_max[0])],
            "phi_range_deg": [float(s0.phi_min[0]), float(s0.phi_max[0])],
            "observation_level": self.config.observation_level,
            "observation_level_at": self.config.observation_level_at,
            "frame_rotation_deg": self.config.frame_rotation_deg,
            "core": self.config.core,
            "zenith_sampling": self.config.zenith_sampling,
            "can": {"x": c.x, "y": c.y, "zmin": c.zmin, "zmax": c.zmax, "r": c.radius},
            "seabed_depth_m": self._z_surface,
            "muon_energy_min_gev": self.config.muon_energy_min_gev,
        }

    # ------------------------------------------------------------------------------ helpers
    def shower(self, k: int) -> tuple[CorsikaShowers, int]:
        """(file data, index in the file) of the k-th shower of the files."""
        if not 0 <= k < self.n_showers:
            raise StageError(f"stage {self.name!r}: shower {k} requested, the files hold {self.n_showers}")
        f = int(np.searchsorted(self._first, k, side="right") - 1)
        return self.showers[f], int(k - self._first[f])

    def _weights(self, sh: CorsikaShowers, j: int, pdg: int, cos_t: float, n_gen: int) -> tuple[float, float]:
        mode = self.config.zenith_sampling
        if mode == "unknown" or not cos_t > 0.0:
            return float("nan"), float("nan")
        slope = float(sh.slope[j])
        elo, ehi = float(sh.energy_low[j]), float(sh.energy_high[j])
        e = float(sh.energy[j])
        if abs(slope + 1.0) < 1e-9:
            i_e = math.log(ehi / elo)
        else:
            i_e = (ehi ** (slope + 1.0) - elo ** (slope + 1.0)) / (slope + 1.0)
        dphi = math.radians(float(sh.phi_max[j]) - float(sh.phi_min[j]))
        c1, c2 = math.cos(math.radians(float(sh.theta_min[j]))), math.cos(math.radians(float(sh.theta_max[j])))
        if not (dphi > 0.0 and c1 > c2 and ehi > elo):
            return float("nan"), float("nan")
        if mode == "isotropic":
            inv_pdf = dphi * (c1 - c2)
        else:
            inv_pdf = dphi * 0.5 * (c1 * c1 - c2 * c2) / cos_t
        w2 = self.can.area_projected(cos_t) * inv_pdf * i_e * e ** (-slope)
        w3 = float("nan")
        if self.flux is not None and n_gen > 0:
            key = self._flux_group(pdg)
            if key is not None:
                w3 = w2 * float(self.flux.flux(key, e)) / n_gen
        return float(w2), w3

    def _flux_group(self, pdg: int):
        groups = self.flux.groups
        if pdg in groups:
            return pdg
        try:
            a = int(mass_number([pdg])[0])
        except ValueError:
            return None
        ga = mass_number(np.array(groups))
        k = int(np.argmin(np.abs(ga - a)))
        return groups[k] if abs(int(ga[k]) - a) <= 3 else None  # nearby group, as crflux does

    def observation_level(self, sh: CorsikaShowers, j: int) -> tuple[int, float]:
        """(level, altitude [m]) used for shower ``j`` of ``sh``: the configured level
        (1-based) or the lowest one."""
        heights = sh.obs_heights_m[j]
        nlev = int(np.count_nonzero(np.isfinite(heights)))
        level = self.config.observation_level
        if level is None:
            level = int(np.nanargmin(heights)) + 1
        elif level > nlev:
            raise ConfigError(
                f"stage {self.name!r}: observation_level = {level}, but shower {j} of {sh.path!r} has {nlev} level(s)"
            )
        return level, float(heights[level - 1])

    def place_muons(self, sh: CorsikaShowers, j: int, impact: np.ndarray, rot: float):
        """Muons of shower ``j`` of ``sh`` at the can for an axis crossing the can at ``impact``.

        Returns ``(pos, dir, energy, time, corsika_code)`` of the muons kept (module
        docstring, steps 3-5), or None if the shower has no muon at the level.
        """
        lo, hi = int(sh.mu_offsets[j]), int(sh.mu_offsets[j + 1])
        level, height = self.observation_level(sh, j)
        sel = np.flatnonzero(sh.mu_level[lo:hi] == level) + lo
        if len(sel) == 0:
            return None
        p = sh.mu_p[sel]
        pmag = np.sqrt(np.sum(p * p, axis=1))
        ok = (p[:, 2] > 0.0) & (pmag > 0.0)  # pz is along -z: down-going
        sel, p, pmag = sel[ok], p[ok], pmag[ok]
        if len(sel) == 0:
            return None
        d = np.column_stack([p[:, 0], p[:, 1], -p[:, 2]]) / pmag[:, None]
        energy = np.sqrt(pmag * pmag + MUON_MASS * MUON_MASS)
        xy = sh.mu_xy[sel].copy()
        t = sh.mu_t[sel].copy()
        th, ph = float(sh.zenith[j]), float(sh.azimuth[j])
        a = np.array([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), -math.cos(th)])
        if self.config.observation_level_at == "altitude" and height != 0.0:
            s = height / (-d[:, 2])
            xy += s[:, None] * d[:, :2]
            t += s / C_LIGHT
            xy -= height * a[:2] / (-a[2])  # relative to where the axis meets sea level
        t0 = float(np.min(t - (xy @ a[:2]) / C_LIGHT))
        cr, sr = math.cos(rot), math.sin(rot)
        rot_m = np.array([[cr, -sr], [sr, cr]])
        xy = xy @ rot_m.T
        d = np.column_stack([d[:, :2] @ rot_m.T, d[:, 2]])
        a = np.array([*(rot_m @ a[:2]), a[2]])
        u = -a[2]
        dist = (self._z_surface - float(impact[2])) / u
        core = np.asarray(impact, dtype=np.float64) - dist * a
        start = np.column_stack([core[0] + xy[:, 0], core[1] + xy[:, 1], np.full(len(xy), self._z_surface)])
        t_in, t_out = self.can.intersect(start, d)
        hit = np.isfinite(t_in) & (t_out > 0.0)
        da = d @ a
        with np.errstate(divide="ignore", invalid="ignore"):
            to_plane = ((np.asarray(impact)[None, :] - start) @ a) / da
        path = np.where(hit, np.maximum(np.nan_to_num(t_in), 0.0), to_plane)
        valid = hit | ((da > 1e-6) & (to_plane > 0.0))
        path = np.where(valid, path, 0.0)
        e_at = np.asarray(energy_after(energy, path, self.loss_table), dtype=np.float64)
        keep = valid & (e_at >= self.config.muon_energy_min_gev)
        pos = start[keep] + path[keep, None] * d[keep]
        time = (t[keep] - t0) + (path[keep] - dist) / C_LIGHT
        return pos, d[keep], e_at[keep], time, sh.mu_code[sel][keep]

    # ---------------------------------------------------------------------------- process
    def process(self, tables, ctx: StageContext):
        self._require_setup(ctx.detector, ctx.site)
        cfg = self.config
        can = self.can
        ids = self.chunk_event_ids(ctx)
        n = len(ids)
        rot = math.radians(cfg.frame_rotation_deg)
        shows = [self.shower(int(k)) for k in ctx.event_positions(ids)]
        zen = np.array([sh.zenith[j] for sh, j in shows], dtype=np.float64)
        azi = np.array([sh.azimuth[j] for sh, j in shows], dtype=np.float64)
        u = np.cos(zen)
        st = np.sin(zen)
        dirs = np.column_stack([st * np.cos(azi + rot), st * np.sin(azi + rot), -u]) if n else np.zeros((0, 3))
        imp, tfrac = _impacts(ctx.seeds(ids), u, azi + rot, cfg.core == "random", can.x, can.y, can.radius, can.zmin, can.zmax)
        if cfg.core == "centre" and n:
            centre = np.array([can.x, can.y, 0.5 * (can.zmin + can.zmax)])
            t_in, _ = can.intersect(np.broadcast_to(centre, (n, 3)), dirs)
            imp = centre[None, :] + np.asarray(t_in)[:, None] * dirs
        n_gen = int(ctx.n_events_run)
        ev_pdg = np.zeros(n, dtype=np.int32)
        ev_e = np.zeros(n)
        ev_nmu = np.zeros(n, dtype=np.int32)
        w2 = np.full(n, np.nan)
        w3 = np.full(n, np.nan)
        out = {k: [] for k in ("ev", "pdg", "pos", "dir", "e", "t")}
        for i, (sh, j) in enumerate(shows):
            pdg = corsika_to_pdg(int(sh.primary_code[j]))
            ev_pdg[i] = pdg
            ev_e[i] = sh.energy[j]
            w2[i], w3[i] = self._weights(sh, j, pdg, float(u[i]), n_gen)
            if not u[i] > 1e-6:
                continue  # a horizontal shower never reaches the sea
            rows = self.place_muons(sh, j, imp[i], rot)
            if rows is None:
                continue
            pos, d, e, t, code = rows
            ev_nmu[i] = len(e)
            out["ev"].append(np.full(len(e), i, dtype=np.int64))
            out["pdg"].append(np.where(code == 5, -13, 13).astype(np.int32))
            out["pos"].append(pos)
            out["dir"].append(d)
            out["e"].append(e)
            out["t"].append(t)

        def cat(k, shape, dt):
            return np.concatenate(out[k]).astype(dt) if out[k] else np.zeros(shape, dtype=dt)

        mu_ev = cat("ev", (0,), np.int64)
        mu_pos = cat("pos", (0, 3), np.float64)
        mu_dir = cat("dir", (0, 3), np.float64)
        nm = len(mu_ev)
        livetime = float(ctx.livetime_s)
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=tfrac * max(livetime, 0.0) * 1e9,
            pdgid=ev_pdg,
            n_muons=ev_nmu,
            energy=ev_e,
            pos_x=imp[:, 0],
            pos_y=imp[:, 1],
            pos_z=imp[:, 2],
            dir_x=dirs[:, 0],
            dir_y=dirs[:, 1],
            dir_z=dirs[:, 2],
            n_gen=np.full(n, n_gen, dtype=np.int64),
            livetime_s=np.full(n, livetime),
            weight_w2=w2,
            weight_w3=w3,
        )
        first = np.searchsorted(mu_ev, mu_ev, side="left")
        tracks = make_table(
            "mc_tracks",
            event_id=ids[mu_ev],
            track_id=(np.arange(nm) - first).astype(np.int32),
            parent_id=np.full(nm, -1, dtype=np.int32),
            pdgid=cat("pdg", (0,), np.int32),
            pos_x=mu_pos[:, 0],
            pos_y=mu_pos[:, 1],
            pos_z=mu_pos[:, 2],
            dir_x=mu_dir[:, 0],
            dir_y=mu_dir[:, 1],
            dir_z=mu_dir[:, 2],
            energy=cat("e", (0,), np.float64),
            time=cat("t", (0,), np.float64),
            length=np.zeros(nm),
            energy_lost_in_can=np.zeros(nm),
        )
        return {"events": events, "mc_tracks": tracks}
