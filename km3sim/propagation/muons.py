"""Muon propagation through the can with continuous energy loss.

Physics: PHYSICS.md §4.1. The mean loss is ``-dE/dx = a(E) + b(E) E`` with the piecewise
sea-water table of Jpp JGeane (after Klimushin, Bugaev, Sokalski, "Precise parametrizations of
muon energy losses in water", ICRC 2001, hep-ph/0106010), in GeV per m w.e. and per m w.e.,
multiplied by the density. Stochastic losses (PHYSICS.md §4.2) and multiple scattering are not
simulated: the muon goes straight and loses energy at the mean rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from km3sim.constants import C_LIGHT, DENSITY_ROCK, DENSITY_SEA_WATER
from km3sim.errors import StageError
from km3sim.generators.can import Can, can_from_detector
from km3sim.propagation import _muon_kernels as K
from km3sim.schema import SCHEMAS
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage
from km3sim.table import Table

__all__ = [
    "ContinuousLossTable",
    "SEA_WATER",
    "muon_range",
    "energy_after",
    "distance_to_energy",
    "MuonPropagation",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContinuousLossTable:
    """Piecewise ``-dE/dx = a + b E`` in one medium, segments ordered from high to low energy.

    Attributes
    ----------
    a : ndarray
        Constant (ionisation) term of each segment [GeV/m], density included.
    b : ndarray
        Radiative term of each segment [1/m], density included.
    e_low : ndarray
        Lower energy bound of each segment [GeV]; the last one is 0.
    """

    a: np.ndarray
    b: np.ndarray
    e_low: np.ndarray

    @classmethod
    def sea_water(cls, density_g_cm3: float = DENSITY_SEA_WATER) -> "ContinuousLossTable":
        """Sea water (PHYSICS.md §4.1, Jpp JGeane, Klimushin et al. hep-ph/0106010).

        ========================  ====================  ===================
        E range                   a [GeV / m w.e.]      b [1 / m w.e.]
        ========================  ====================  ===================
        > 35.3 TeV                -0.650                3.66e-4
        30 GeV - 35.3 TeV          0.267                3.40e-4
        < 30 GeV                   0.230                15.5e-4
        ========================  ====================  ===================
        """
        rho = float(density_g_cm3)
        return cls(
            a=np.array([-0.650, 0.267, 0.230]) * rho,
            b=np.array([3.66e-4, 3.40e-4, 15.5e-4]) * rho,
            e_low=np.array([35.3e3, 30.0, 0.0]),
        )

    @classmethod
    def rock(cls, density_g_cm3: float = DENSITY_ROCK) -> "ContinuousLossTable":
        """Standard rock: a = 0.267 x 0.9 rho, b = 3.40e-4 x 1.2 rho (PHYSICS.md §4.1, Jpp JGeane)."""
        rho = float(density_g_cm3)
        return cls(a=np.array([0.267 * 0.9 * rho]), b=np.array([3.40e-4 * 1.2 * rho]), e_low=np.array([0.0]))

    def args(self):
        return (
            np.ascontiguousarray(self.a, dtype=np.float64),
            np.ascontiguousarray(self.b, dtype=np.float64),
            np.ascontiguousarray(self.e_low, dtype=np.float64),
        )


#: The default sea-water table (rho = 1.038 g/cm^3).
SEA_WATER = ContinuousLossTable.sea_water()


def _vectorise(kernel, table, *arrays):
    arrs = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in arrays])
    shape = arrs[0].shape
    flat = [np.ascontiguousarray(x).ravel() for x in arrs]
    out = kernel(*flat, *table.args()).reshape(shape)
    return out if out.ndim else float(out)


def muon_range(energy_gev, table: ContinuousLossTable = SEA_WATER):
    """Range [m] of muons of energy ``energy_gev`` [GeV] (continuous loss to E = 0)."""
    return _vectorise(K.muon_range, table, energy_gev)


def energy_after(energy_gev, distance_m, table: ContinuousLossTable = SEA_WATER):
    """Energy [GeV] after a path ``distance_m`` [m] (0 once the muon stopped)."""
    return _vectorise(K.energy_after, table, energy_gev, distance_m)


def distance_to_energy(energy_gev, energy_final_gev, table: ContinuousLossTable = SEA_WATER):
    """Path [m] over which muons slow from ``energy_gev`` to ``energy_final_gev`` [GeV]."""
    return _vectorise(K.distance_to_energy, table, energy_gev, energy_final_gev)


@register_stage
class MuonPropagation(Stage):
    """Straight muons with continuous energy loss through the can (PHYSICS.md §4.1).

    For every muon (|pdgid| = 13) of ``mc_tracks``: ``length`` = path inside the can from its
    position (or from where it enters the can, if it starts outside), cut at its range;
    ``energy_lost_in_can`` = energy at the start of that path minus energy at its end (all of
    it if the muon stops). A muon that starts outside the can and reaches it is moved to its
    entry point (``pos``, ``time`` and ``energy`` there), so that ``pos + length * dir`` is the
    in-can segment. Other particles pass unchanged. Deterministic.
    """

    name = "muon_propagation"
    role = "propagate"
    consumes = ("events", "mc_tracks")
    produces = ("mc_tracks",)

    class Config(StageConfig):
        """Configuration of :class:`MuonPropagation`."""

        can_margin_m: float = Field(
            200.0, ge=0.0, description="can margin around the DOMs [m] (same as the generator's)"
        )

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self.loss_table = ContinuousLossTable.sea_water(self.site.water_density_g_cm3)
        self.can: Can | None = can_from_detector(detector, self.config.can_margin_m) if detector is not None else None

    def process(self, tables, ctx: StageContext):
        if self.can is None:
            if ctx.detector is None:
                raise StageError(f"stage {self.name!r} needs a detector to build its can")
            self.can = can_from_detector(ctx.detector, self.config.can_margin_m)
            if not self._site_given and ctx.site is not None:
                self.site = ctx.site
                self.loss_table = ContinuousLossTable.sea_water(self.site.water_density_g_cm3)
        tracks: Table = tables["mc_tracks"]
        cols = {k: tracks[k] for k in SCHEMAS["mc_tracks"].columns}
        mu = np.abs(cols["pdgid"]) == 13
        length = cols["length"].astype(np.float64, copy=True)
        lost = cols["energy_lost_in_can"].astype(np.float64, copy=True)
        if mu.any():
            pos = np.column_stack([cols["pos_x"][mu], cols["pos_y"][mu], cols["pos_z"][mu]])
            dirs = np.column_stack([cols["dir_x"][mu], cols["dir_y"][mu], cols["dir_z"][mu]])
            t_in, t_out = self.can.intersect(pos, dirs)
            hit = np.isfinite(t_in) & (t_out > 0.0)
            s_in = np.where(hit, np.maximum(t_in, 0.0), 0.0)
            s_out = np.where(hit, t_out, 0.0)
            ln, el = K.propagate_through_can(
                np.ascontiguousarray(cols["energy"][mu], dtype=np.float64), s_in, s_out, *self.loss_table.args()
            )
            length[mu] = ln
            lost[mu] = el
            # a muon that starts outside the can and reaches it: the track now starts at the
            # entry point, so that later stages (light) see the in-can segment
            idx = np.flatnonzero(mu)
            e_entry = energy_after(cols["energy"][mu], s_in, self.loss_table)
            moved = hit & (s_in > 1e-6) & (e_entry > 0.0)  # 1 µm: muons generated on the surface stay put
            if moved.any():
                rows, step = idx[moved], s_in[moved]
                for axis in "xyz":
                    cols[f"pos_{axis}"] = cols[f"pos_{axis}"].copy()
                    cols[f"pos_{axis}"][rows] += step * cols[f"dir_{axis}"][rows]
                cols["time"] = cols["time"].copy()
                cols["time"][rows] += step / C_LIGHT
                cols["energy"] = cols["energy"].copy()
                cols["energy"][rows] = e_entry[moved]
        cols["length"] = length
        cols["energy_lost_in_can"] = lost
        return {"mc_tracks": Table(cols, name="mc_tracks")}
