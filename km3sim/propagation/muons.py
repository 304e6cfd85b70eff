"""Muon and tau propagation through the can: continuous and stochastic energy losses.

Physics: PHYSICS.md §4.1. The mean loss is ``-dE/dx = a(E) + b(E) E`` with the piecewise
sea-water table of Jpp JGeane (after Klimushin, Bugaev, Sokalski, "Precise parametrizations of
muon energy losses in water", ICRC 2001, hep-ph/0106010), in GeV per m w.e. and per m w.e.,
multiplied by the density. With ``stochastic`` on (default), losses with a fractional energy
loss above ``v_cut`` are sampled from the cross sections of :mod:`km3sim.propagation.stochastic`
(PHYSICS.md §4.2, MUM scheme hep-ph/0010322) and become shower rows of ``mc_tracks``; taus
decay (PDG c tau). Multiple scattering is neglected: leptons go straight (the Highland angle
of a 1 TeV muon over 1 km of water is ~0.3 mrad; over 100 m at 10 GeV ~10 mrad).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from typing import Literal

from pydantic import Field

from km3sim.constants import C_LIGHT, DENSITY_ROCK, DENSITY_SEA_WATER
from km3sim.errors import StageError
from km3sim.generators.can import Can, can_from_detector
from km3sim.propagation import _muon_kernels as K
from km3sim.propagation import _stochastic_kernels as SK
from km3sim.propagation.stochastic import SHOWER_PDG, stacked_tables
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
    """Muons and taus through the can with continuous and stochastic losses (PHYSICS.md §4).

    For every muon / tau (|pdgid| 13 / 15) of ``mc_tracks``, from its start along its direction
    (sea water above the sea floor z = 0, rock below): ``length`` = path inside the can (to its
    exit, to where it stops, or to where a tau decays), ``energy_lost_in_can`` = all its losses
    inside the can (continuous + stochastic), so that energy at entry = energy at exit (0 if it
    stopped, the energy at the decay point for a tau) + ``energy_lost_in_can``. A lepton that
    starts outside the can and reaches it is moved to its entry point (``pos``, ``time`` and
    ``energy`` there). Leptons that miss the can or stop before it get length 0.

    New rows (track ids after the event's existing ones, ``parent_id`` = the lepton's track
    id, direction = the lepton's, ``time`` = lepton time + distance / c, ``length`` = 0):

    * every stochastic loss inside the can of at least ``e_cut_gev``: an EM shower stand-in
      (pdg 11) for bremsstrahlung, pair production and knock-on electrons, a hadronic shower
      stand-in (pdg 211) for photonuclear losses, at the loss position with the lost energy;
      smaller losses only enter ``energy_lost_in_can``;
    * tau decays inside the can: an electron (±11) or hadronic shower (211) with the visible
      energy; a muon from a tau decay (±13) gets a row where it enters the can (or is born in
      it) and is propagated like any muon, its showers have it as parent.

    Electrons, hadrons and neutrinos are left as they are. With ``stochastic: false`` muons lose
    energy at the mean rate of the a + b E table (closed form, deterministic); taus still decay.
    Random numbers come from the per-event seeds of the stage: an event's output does not
    depend on the chunking.
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
        stochastic: bool = Field(True, description="sample losses with v > v_cut one by one (else mean loss only)")
        v_cut: float = Field(
            0.05, gt=1e-4, lt=0.5,
            description="fractional energy loss above which losses are sampled (MUM, hep-ph/0010322: 0.05-0.1)",
        )
        e_cut_gev: float = Field(
            1.0, ge=0.0,
            description="smallest stochastic loss [GeV] stored as a shower row (smaller ones only count in "
            "energy_lost_in_can); 1 GeV: a shower gives ~1.3e5 Cherenkov photons/GeV, below that the "
            "light of the muon's mean radiative loss covers it",
        )
        rock_below_floor: bool = Field(True, description="rock (standard rock) below the sea floor z = 0, else water")
        rock_density_g_cm3: float = Field(2.65, gt=0.0, description="density of the rock below the sea floor [g/cm^3]")
        taus: Literal["decay", "stable"] = Field(
            "decay", description="'decay': taus decay after an exponential path (c tau = 87.03 um); 'stable': never"
        )

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._site_given = site is not None
        self.loss_table = ContinuousLossTable.sea_water(self.site.water_density_g_cm3)
        self.can: Can | None = can_from_detector(detector, self.config.can_margin_m) if detector is not None else None
        self._tables = None

    def header(self) -> dict:
        c = self.config
        return {
            "stochastic": c.stochastic,
            "v_cut": c.v_cut,
            "e_cut_gev": c.e_cut_gev,
            "rock_below_floor": c.rock_below_floor,
            "rock_density_g_cm3": c.rock_density_g_cm3,
            "taus": c.taus,
            "cross_sections": "brems KKP, pair Kokoulin-Petrukhin, photonuclear Borog-Petrukhin/Kokoulin, "
            "knock-on PDG; mean loss a+bE Klimushin-Bugaev-Sokalski",
        }

    def _setup(self, ctx: StageContext) -> None:
        if self.can is None:
            if ctx.detector is None:
                raise StageError(f"stage {self.name!r} needs a detector to build its can")
            self.can = can_from_detector(ctx.detector, self.config.can_margin_m)
            if not self._site_given and ctx.site is not None:
                self.site = ctx.site
                self.loss_table = ContinuousLossTable.sea_water(self.site.water_density_g_cm3)
        if self._tables is None:
            self._tables = stacked_tables(self.config.v_cut, self.site.water_density_g_cm3, self.config.rock_density_g_cm3)

    def process(self, tables, ctx: StageContext):
        self._setup(ctx)
        c = self.config
        tracks: Table = tables["mc_tracks"]
        cols = {k: np.asarray(tracks[k]) for k in SCHEMAS["mc_tracks"].columns}
        order = np.lexsort((cols["track_id"], cols["event_id"]))
        cols = {k: v[order] for k, v in cols.items()}
        n = len(order)
        lep = np.isin(np.abs(cols["pdgid"]), (13, 15))
        if not lep.any():
            return {"mc_tracks": Table(cols, name="mc_tracks")}
        pos = np.column_stack([cols["pos_x"], cols["pos_y"], cols["pos_z"]]).astype(np.float64)
        dirs = np.column_stack([cols["dir_x"], cols["dir_y"], cols["dir_z"]]).astype(np.float64)
        s_in = np.full(n, np.nan)
        s_out = np.full(n, np.nan)
        t_in, t_out = self.can.intersect(pos[lep], dirs[lep])
        s_in[lep], s_out[lep] = t_in, t_out
        ev_ids, ev_first = np.unique(cols["event_id"], return_index=True)
        ev_start = np.append(ev_first, n).astype(np.int64)
        next_id = (np.maximum.reduceat(cols["track_id"], ev_first) + 1).astype(np.int32)
        seeds = ctx.seeds(ev_ids)
        rock = self.loss_table if not c.rock_below_floor else ContinuousLossTable.rock(c.rock_density_g_cm3)
        cap = 4 * n + 64
        while True:
            res = SK.propagate_tracks(
                ev_start, seeds, np.ascontiguousarray(cols["pdgid"], dtype=np.int64),
                np.ascontiguousarray(cols["track_id"], dtype=np.int32), pos, dirs,
                np.ascontiguousarray(cols["energy"], dtype=np.float64), s_in, s_out, next_id,
                c.stochastic, c.taus == "decay", c.rock_below_floor, not c.stochastic, float(c.e_cut_gev), cap,
                *self.loss_table.args(), *rock.args(), SHOWER_PDG, *self._tables,
            )
            if res[5] <= cap:
                break
            cap = int(res[5]) + 16  # same seeds: the second pass makes the same rows
        moved, s_entry, e_entry, length, lost, count = res[:6]
        r_row, r_tid, r_par, r_pdg, r_s, r_e, r_len, r_lost = (a[:count] for a in res[6:])
        out = {k: v.copy() for k, v in cols.items()}
        out["length"] = np.where(lep, length, cols["length"]).astype(np.float64)
        out["energy_lost_in_can"] = np.where(lep, lost, cols["energy_lost_in_can"]).astype(np.float64)
        if moved.any():
            rows = np.flatnonzero(moved)
            for i, axis in enumerate("xyz"):
                out[f"pos_{axis}"][rows] = pos[rows, i] + s_entry[rows] * dirs[rows, i]
            out["time"][rows] = cols["time"][rows] + s_entry[rows] / C_LIGHT
            out["energy"][rows] = e_entry[rows]
        if count:
            new = {
                "event_id": cols["event_id"][r_row],
                "track_id": r_tid,
                "parent_id": r_par,
                "pdgid": r_pdg,
                "energy": r_e,
                "time": cols["time"][r_row] + r_s / C_LIGHT,
                "length": r_len,
                "energy_lost_in_can": r_lost,
            }
            for i, axis in enumerate("xyz"):
                new[f"pos_{axis}"] = pos[r_row, i] + r_s * dirs[r_row, i]
                new[f"dir_{axis}"] = dirs[r_row, i]
            out = {k: np.concatenate([out[k], np.asarray(new[k]).astype(out[k].dtype)]) for k in out}
            order = np.lexsort((out["track_id"], out["event_id"]))
            out = {k: v[order] for k, v in out.items()}
        return {"mc_tracks": Table(out, name="mc_tracks")}
