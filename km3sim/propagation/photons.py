"""Photon tracker: reference simulation of Cherenkov light with scattering.

Emits Cherenkov photons from muon tracks (Frank–Tamm at n_ph(λ), PHYSICS.md §5.1–5.3) and from
showers (Rädel–Wiebusch yield, longitudinal and angular profiles, §5.4; :mod:`.showers`),
tracks them through sea water with absorption (Jpp table, §6.1), Kopelevich scattering (§6.2)
and the p0.0075 phase function (§6.3) at the group velocity c/n_g(λ) (§5.2), until they enter a
DOM sphere (radius 0.216 m, §7.1) or are lost, and converts a photon entering a DOM into a
photo-electron at one of its PMTs with the effective-area model A_pmt·A(c)/(πR²) (§7.2).

The wavelength is drawn from Frank–Tamm × QE(λ), so the QE is applied by the photon count and
every tracked photon is a potential photo-electron ("QE-weighted photons").

The kernel works on generic emitters (muon segment, shower, isotropic point) and returns every
detected photon with its DOM, PMT, time, wavelength, number of scatterings, path length and
direction, so a light-table builder can call :meth:`PhotonTracker.track` for one emitter and a
ring or grid of DOMs and histogram (distance, angles, time residual) itself. With
``absorption=False`` it gets the path length of every photon and may apply absorption as a
weight exp(−path/λ_abs(λ)) afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from km3sim.detector.pmt import ACCEPTANCE_TABLE, ACCEPTANCE_TABLE_COS, PHOTOCATHODE_AREA_M2, quantum_efficiency
from km3sim.propagation import _photon_kernels as _pk
from km3sim.propagation import showers as sh
from km3sim.propagation.water import (
    PHASE_HG_G,
    PHASE_RAYLEIGH_A,
    PHASE_RAYLEIGH_FRACTION,
    WaterOptics,
)

__all__ = [
    "DOM_RADIUS_M",
    "EMITTER_MUON",
    "EMITTER_SHOWER",
    "EMITTER_ISOTROPIC",
    "Emitters",
    "PhotonHits",
    "DomGrid",
    "build_dom_grid",
    "PhotonTracker",
    "sample_scattering_cosines",
]

#: Radius of the DOM glass sphere [m] (LumenManufaktur LMParameters, PHYSICS.md §7.1).
DOM_RADIUS_M = 0.216

EMITTER_MUON = _pk.EMITTER_MUON
EMITTER_SHOWER = _pk.EMITTER_SHOWER
EMITTER_ISOTROPIC = _pk.EMITTER_ISOTROPIC

#: Wavelength step of the tracker's optical tables [nm].
_LAMBDA_STEP_NM = 0.5
#: Number of nodes of the inverse-CDF tables.
_N_INVERSE = 8193
_ACCEPTANCE_STEP = 0.05


def sample_scattering_cosines(n: int, seed: int, f: float = PHASE_RAYLEIGH_FRACTION, g: float = PHASE_HG_G,
                              a: float = PHASE_RAYLEIGH_A) -> np.ndarray:
    """Scattering-angle cosines drawn from the p0.0075 phase function (PHYSICS.md §6.3) as the tracker does."""
    return _pk.sample_phase_function_many(np.uint64(seed), int(n), float(f), float(g), float(a))


@dataclass
class Emitters:
    """Light emitters of one or more events, grouped by event.

    Attributes
    ----------
    event_offsets : int64 (n_events + 1,)
        Emitters of event e are ``event_offsets[e]:event_offsets[e+1]``.
    kind : int64 (n,)
        :data:`EMITTER_MUON`, :data:`EMITTER_SHOWER` or :data:`EMITTER_ISOTROPIC`.
    pos, dir : float64 (n, 3)
        Start / vertex [m] and unit direction (axis).
    time : float64 (n,)
        Time at pos [ns].
    length : float64 (n,)
        Muon track length [m] (others: 0).
    energy, energy_lost : float64 (n,)
        Muon energy at pos and energy lost along the length [GeV] (for ΔL/L); shower energy.
    mean_photons : float64 (n,)
        Mean number of (QE-weighted) photons.
    rel_sigma : float64 (n,)
        Relative Gaussian spread of the photon number from emitter to emitter (shower light
        fluctuations); 0 for none.
    long_shape, long_scale : float64 (n,)
        Gamma shape a and scale X0/b [m] of the shower's longitudinal profile.
    origin : int64 (n,)
        Identifier reported with the detected photons (track_id).
    """

    event_offsets: np.ndarray
    kind: np.ndarray
    pos: np.ndarray
    dir: np.ndarray
    time: np.ndarray
    length: np.ndarray
    energy: np.ndarray
    energy_lost: np.ndarray
    mean_photons: np.ndarray
    rel_sigma: np.ndarray
    long_shape: np.ndarray
    long_scale: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def concatenate_events(cls, event_rows: np.ndarray, n_events: int, **columns) -> Emitters:
        """Build from per-emitter columns and the (sorted) event index of each emitter."""
        ev = np.asarray(event_rows, dtype=np.int64)
        if np.any(np.diff(ev) < 0):
            raise ValueError("emitters must be sorted by event")
        offsets = np.zeros(n_events + 1, dtype=np.int64)
        np.cumsum(np.bincount(ev, minlength=n_events), out=offsets[1:])
        return cls(event_offsets=offsets, **columns)


@dataclass
class PhotonHits:
    """Detected photons returned by :meth:`PhotonTracker.track` (one entry per photon).

    ``event`` and ``emitter`` index the inputs; ``dom`` and ``pmt`` index the tracker's DOM and
    PMT arrays (``pmt_index`` maps to the detector's PMT rows); ``time`` is the arrival time at
    the DOM surface [ns]; ``direction`` the photon direction there; ``n_emitted`` the photons
    emitted by each emitter.
    """

    event: np.ndarray
    emitter: np.ndarray
    dom: np.ndarray
    pmt: np.ndarray
    pmt_index: np.ndarray
    time: np.ndarray
    wavelength: np.ndarray
    n_scatter: np.ndarray
    path_length: np.ndarray
    direction: np.ndarray
    n_emitted: np.ndarray

    def __len__(self) -> int:
        return int(self.time.shape[0])


@dataclass
class DomGrid:
    """Column grid of DOM spheres for :func:`km3sim.propagation._photon_kernels.first_dom_hit`."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    cell_start: np.ndarray
    cell_doms: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray


def _default_cell(dom_pos: np.ndarray, radius: float) -> float:
    """Half the median horizontal distance between neighbouring DOM columns, 1–20 m."""
    xy = np.unique(np.round(dom_pos[:, :2], 1), axis=0)
    if len(xy) < 2:
        return 10.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.clip(0.5 * np.median(d[:, 1]), max(1.0, 4.0 * radius), 20.0))


def build_dom_grid(dom_pos, radius: float = DOM_RADIUS_M, cell_m: float | None = None) -> DomGrid:
    """Bin DOM spheres into vertical columns of a 2-D grid (each DOM in every cell it overlaps).

    Within a cell the DOMs are sorted by height.
    """
    pos = np.ascontiguousarray(dom_pos, dtype=np.float64).reshape(-1, 3)
    if len(pos) == 0:
        raise ValueError("the detector has no DOMs")
    cell = float(cell_m) if cell_m is not None else _default_cell(pos, radius)
    if not cell > 0.0:
        raise ValueError(f"grid cell size must be positive, got {cell}")
    lo = pos.min(axis=0) - radius
    hi = pos.max(axis=0) + radius
    nx = max(1, int(math.ceil((hi[0] - lo[0]) / cell)))
    ny = max(1, int(math.ceil((hi[1] - lo[1]) / cell)))
    ix0 = np.clip(np.floor((pos[:, 0] - radius - lo[0]) / cell).astype(np.int64), 0, nx - 1)
    ix1 = np.clip(np.floor((pos[:, 0] + radius - lo[0]) / cell).astype(np.int64), 0, nx - 1)
    iy0 = np.clip(np.floor((pos[:, 1] - radius - lo[1]) / cell).astype(np.int64), 0, ny - 1)
    iy1 = np.clip(np.floor((pos[:, 1] + radius - lo[1]) / cell).astype(np.int64), 0, ny - 1)
    cells, doms = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            ix = np.where(dx == 0, ix0, ix1)
            iy = np.where(dy == 0, iy0, iy1)
            valid = np.ones(len(pos), dtype=bool)
            if dx == 1:
                valid &= ix1 != ix0
            if dy == 1:
                valid &= iy1 != iy0
            cells.append((iy * nx + ix)[valid])
            doms.append(np.flatnonzero(valid))
    cells = np.concatenate(cells)
    doms = np.concatenate(doms)
    order = np.lexsort((pos[doms, 2], cells))
    cells, doms = cells[order], doms[order]
    cell_start = np.zeros(nx * ny + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells, minlength=nx * ny), out=cell_start[1:])
    return DomGrid(float(lo[0]), float(lo[1]), cell, nx, ny, cell_start, np.ascontiguousarray(doms, dtype=np.int64),
                   np.ascontiguousarray(lo), np.ascontiguousarray(hi))


def _dom_geometry(detector):
    """(dom_pos, dom_pmt_start, pmt_index) of a Detector, or of a duck-typed stub (DOM = mean PMT position)."""
    if hasattr(detector, "dom_pos") and hasattr(detector, "dom_pmt_offsets"):
        dom_pos = np.asarray(detector.dom_pos, dtype=np.float64)
        start = np.asarray(detector.dom_pmt_offsets, dtype=np.int64)
        pmt_index = np.arange(len(detector.pmt_id), dtype=np.int64)
        return dom_pos, start, pmt_index
    dom_id = np.asarray(detector.pmt_dom_id)
    pmt_index = np.argsort(dom_id, kind="stable").astype(np.int64)
    uniq, first, counts = np.unique(dom_id[pmt_index], return_index=True, return_counts=True)
    start = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    pos = np.asarray(detector.pmt_pos, dtype=np.float64)[pmt_index]
    dom_pos = np.add.reduceat(pos, first, axis=0) / counts[:, None]
    return dom_pos, start, pmt_index


class PhotonTracker:
    """Photon tracker for a set of DOMs in a water model.

    Parameters
    ----------
    water : WaterOptics
        Refractive index, absorption and scattering lengths.
    dom_pos : array (n_doms, 3)
        DOM centres [m].
    dom_pmt_start : int array (n_doms + 1,)
        PMTs of DOM d are rows ``dom_pmt_start[d]:dom_pmt_start[d+1]`` of ``pmt_dir``.
    pmt_dir : array (n_pmts, 3)
        PMT axes.
    pmt_ok : bool array (n_pmts,), optional
        Usable PMTs (others detect nothing; the photon is still stopped by the DOM).
    pmt_index : int array (n_pmts,), optional
        Row of each PMT in the detector (reported as :attr:`PhotonHits.pmt_index`).
    dom_radius_m : float
        DOM sphere radius [m].
    wavelength_min_nm, wavelength_max_nm : float
        Wavelength range of the emitted photons [nm].
    max_distance_m : float
        Photons farther than this from their emission point are dropped [m].
    scattering, absorption : bool
        Switch scattering / absorption on or off.
    secondaries : bool
        Light of a muon's secondaries that are not shower rows (PHYSICS.md §5.3,
        :mod:`km3sim.propagation.secondaries`): the Rädel–Wiebusch ΔL/L (on the Cherenkov
        cone) and the showers of the losses the propagation kept continuous (EM angular
        profile about the muon direction).
    muon_v_cut, muon_e_cut_gev : float
        The cuts of the ``muon_propagation`` that made the muons (its losses between 0.5 GeV
        and max(v_cut·E, e_cut) are continuous; see
        :func:`~km3sim.propagation.secondaries.secondary_light`).
    water_density_g_cm3 : float
        Sea-water density for those losses.
    grid_cell_m : float, optional
        Cell size of the DOM column grid [m] (default: half the DU spacing, 1–20 m).
    pmt_area_m2 : float
        Photocathode area [m²] (PHYSICS.md §7.2).
    reference_wavelength_nm : float
        Wavelength of the refractive index in the shower angular profile [nm].
    check_detection_probability : bool
        Check that Σ_k p_k ≤ 1 for the PMTs of every DOM (sampled directions; ~1 s for large
        detectors). The light-table builder, which checks its single PMT layout itself, skips it.
    """

    def __init__(
        self,
        water: WaterOptics,
        dom_pos,
        dom_pmt_start,
        pmt_dir,
        pmt_ok=None,
        pmt_index=None,
        *,
        dom_radius_m: float = DOM_RADIUS_M,
        wavelength_min_nm: float = 300.0,
        wavelength_max_nm: float = 700.0,
        max_distance_m: float = 300.0,
        scattering: bool = True,
        absorption: bool = True,
        secondaries: bool = True,
        grid_cell_m: float | None = None,
        pmt_area_m2: float = PHOTOCATHODE_AREA_M2,
        reference_wavelength_nm: float = 470.0,
        check_detection_probability: bool = True,
        muon_v_cut: float = 0.05,
        muon_e_cut_gev: float = 1.0,
        water_density_g_cm3: float = 1.038,
    ):
        from km3sim.propagation.light import frank_tamm_yield, radel_wiebusch_coefficients
        from km3sim.propagation.secondaries import secondary_light

        if not wavelength_max_nm > wavelength_min_nm:
            raise ValueError(f"wavelength_max_nm ({wavelength_max_nm}) must exceed wavelength_min_nm ({wavelength_min_nm})")
        self.water = water
        self.dom_pos = np.ascontiguousarray(dom_pos, dtype=np.float64).reshape(-1, 3)
        self.dom_pmt_start = np.ascontiguousarray(dom_pmt_start, dtype=np.int64)
        self.pmt_dir = np.ascontiguousarray(pmt_dir, dtype=np.float64).reshape(-1, 3)
        n_pmts = len(self.pmt_dir)
        if self.dom_pmt_start.shape != (len(self.dom_pos) + 1,) or self.dom_pmt_start[-1] != n_pmts:
            raise ValueError("dom_pmt_start must have n_doms + 1 entries ending at the number of PMTs")
        self.pmt_ok = np.ones(n_pmts, dtype=np.bool_) if pmt_ok is None else np.ascontiguousarray(pmt_ok, dtype=np.bool_)
        self.pmt_index = np.arange(n_pmts, dtype=np.int64) if pmt_index is None else np.asarray(pmt_index, dtype=np.int64)
        self.dom_radius_m = float(dom_radius_m)
        self.max_distance_m = float(max_distance_m)
        self.scattering = bool(scattering)
        self.absorption = bool(absorption)
        self.secondaries = bool(secondaries)
        self.grid = build_dom_grid(self.dom_pos, self.dom_radius_m, grid_cell_m)
        # photocathode effective area over the DOM cross-section; must leave Σ_k p_k ≤ 1
        self.detect_coef = float(pmt_area_m2) / (math.pi * self.dom_radius_m**2)
        # wavelength tables
        n_lam = max(2, int(round((wavelength_max_nm - wavelength_min_nm) / _LAMBDA_STEP_NM)) + 1)
        lam = np.linspace(wavelength_min_nm, wavelength_max_nm, n_lam)
        self._lam0 = float(lam[0])
        self._inv_dlam = 1.0 / float(lam[1] - lam[0])
        n_ph = water.refractive_index_phase(lam)
        spectrum = frank_tamm_yield(lam, n_ph) * quantum_efficiency(lam)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (spectrum[1:] + spectrum[:-1]) * np.diff(lam))])
        #: QE-weighted Cherenkov photons per metre of a β = 1 track [1/m].
        self.photons_per_metre = float(cdf[-1])
        cdf /= cdf[-1]
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        self._inv_cdf_lambda = np.ascontiguousarray(np.interp(np.linspace(0, 1, _N_INVERSE), cdf[keep], lam[keep]))
        self._n_phase = np.ascontiguousarray(n_ph)
        self._n_group = np.ascontiguousarray(water.refractive_index_group(lam))
        labs = water.absorption_length(lam)
        self._inv_labs = np.ascontiguousarray(np.where(labs > 0, 1.0 / np.where(labs > 0, labs, 1.0), 1e6))
        self._inv_lscat = np.ascontiguousarray(1.0 / water.scattering_length(lam))
        # shower angular profile and muon secondaries at the reference wavelength
        self.n_reference = float(water.refractive_index_phase(reference_wavelength_nm))
        _, self._ang_inv_cdf = sh.angular_profile_tables(self.n_reference, n_inverse=_N_INVERSE)
        self.rw_lambda, self.rw_kappa = radel_wiebusch_coefficients(self.n_reference)
        #: ΔL/L and continuous-loss shower light of muons (tables on a log E grid)
        self.secondary_light = secondary_light(self.n_reference, float(muon_v_cut), float(muon_e_cut_gev),
                                               float(water_density_g_cm3))
        # PMT angular acceptance on a uniform cosine grid (reproduces the piecewise-linear table)
        acc_grid = np.linspace(-1.0, 1.0, int(round(2.0 / _ACCEPTANCE_STEP)) + 1)
        self._acc_table = np.ascontiguousarray(np.interp(acc_grid, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0))
        worst = self._max_detection_probability() if check_detection_probability else 0.0
        if worst > 1.0:
            raise ValueError(f"PMT effective area exceeds the DOM cross-section (Σ p = {worst:.3f} > 1)")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_detector(cls, detector, water: WaterOptics, **kwargs) -> PhotonTracker:
        """Tracker for all DOMs of a :class:`~km3sim.detector.geometry.Detector` (usable PMTs detect).

        Duck-typed detectors without ``dom_pos`` are grouped by ``pmt_dom_id`` with the DOM at the
        mean PMT position.
        """
        dom_pos, start, pmt_index = _dom_geometry(detector)
        usable = np.asarray(getattr(detector, "pmt_usable", detector.pmt_status_ok), dtype=bool)[pmt_index]
        pmt_dir = np.asarray(detector.pmt_dir, dtype=np.float64)[pmt_index]
        return cls(water, dom_pos, start, pmt_dir, usable, pmt_index, **kwargs)

    def _max_detection_probability(self) -> float:
        # check Σ_k p_k over a set of directions for every distinct PMT layout (first DOM suffices
        # for standard DOMs; check all DOMs up to a few hundred)
        rng = np.random.default_rng(0)
        w = rng.normal(size=(2000, 3))
        w /= np.linalg.norm(w, axis=1)[:, None]
        worst = 0.0
        step = max(1, (len(self.dom_pos)) // 200)
        acc_c = np.linspace(-1.0, 1.0, len(self._acc_table))
        for d in range(0, len(self.dom_pos), step):
            k = slice(self.dom_pmt_start[d], self.dom_pmt_start[d + 1])
            c = w @ self.pmt_dir[k].T
            worst = max(worst, float(np.max(np.interp(c, acc_c, self._acc_table).sum(axis=1))) * self.detect_coef)
        return worst

    def inverse_absorption_length(self, wavelength_nm):
        """1/λ_abs(λ) [1/m] exactly as the kernel interpolates it (whether or not ``absorption`` is on).

        The light-table builder tracks with longer absorption lengths and weights each detected
        photon of wavelength λ and path s by the ratio of the survival probabilities.
        """
        lam = np.asarray(wavelength_nm, dtype=np.float64)
        grid = self._lam0 + np.arange(len(self._inv_labs)) / self._inv_dlam
        out = np.interp(lam, grid, self._inv_labs)
        return out if out.ndim else float(out)

    # ------------------------------------------------------------------ emitters
    def muon_photons(self, length, energy, energy_lost=0.0):
        """Mean photons to emit for muon segments (the ``mean_photons`` of their emitters).

        With ``secondaries`` the kernel thins them to the light 1 + ΔL/L(E(z)) + cont(E(z))
        at each point (E(z) = E − ΔE·z/L), so they are the bare muon's photons times the
        largest factor along the segment
        (:func:`~km3sim.propagation.secondaries.secondary_max`); the emitted mean is
        length × photons_per_metre × the mean factor along the segment.
        """
        from km3sim.propagation.secondaries import secondary_max_many

        length = np.asarray(length, dtype=np.float64)
        mean = length * self.photons_per_metre
        if self.secondaries:
            e = np.asarray(energy, dtype=np.float64)
            shape = np.broadcast(length, e, np.asarray(energy_lost)).shape
            e = np.broadcast_to(e, shape).reshape(-1)
            lost = np.broadcast_to(np.asarray(energy_lost, dtype=np.float64), shape).reshape(-1)
            f = secondary_max_many(np.ascontiguousarray(e), np.ascontiguousarray(np.maximum(e - lost, 0.1056583755)),
                                   *self.secondary_light.args())
            mean = mean * f.reshape(shape)
        return mean if np.ndim(mean) else float(mean)

    def emitters_from_tracks(self, tracks, event_ids: np.ndarray, *, showers: bool = True,
                             fluctuations: bool = True) -> Emitters:
        """Emitters of the light-emitting rows of an ``mc_tracks`` table.

        Muons (|pdgid| = 13, length > 0) become muon segments; shower rows (e±, γ, π⁰, hadrons;
        :func:`~km3sim.propagation.showers.shower_kind`) become showers with the Rädel–Wiebusch
        photon number, spread and profiles. ``event_ids`` (sorted) defines the event order.
        """
        pdg = np.asarray(tracks["pdgid"])
        is_mu = (np.abs(pdg) == 13) & (np.asarray(tracks["length"]) > 0.0)
        kind = sh.shower_kind(pdg)
        is_sh = (kind >= 0) if showers else np.zeros(len(pdg), dtype=bool)
        rows = np.flatnonzero(is_mu | is_sh)
        ev_col = np.asarray(tracks["event_id"])[rows]
        order = np.lexsort((np.asarray(tracks["track_id"])[rows], ev_col))
        rows = rows[order]
        ev_index = np.searchsorted(event_ids, np.asarray(tracks["event_id"])[rows])
        if np.any(ev_index >= len(event_ids)) or np.any(event_ids[np.minimum(ev_index, len(event_ids) - 1)] != np.asarray(tracks["event_id"])[rows]):
            raise ValueError("mc_tracks rows refer to events not in event_ids")
        n = len(rows)
        pos = np.column_stack([tracks["pos_x"], tracks["pos_y"], tracks["pos_z"]])[rows].astype(np.float64)
        dirs = np.column_stack([tracks["dir_x"], tracks["dir_y"], tracks["dir_z"]])[rows].astype(np.float64)
        norm = np.linalg.norm(dirs, axis=1)
        dirs = dirs / np.where(norm > 0, norm, 1.0)[:, None]
        energy = np.asarray(tracks["energy"], dtype=np.float64)[rows]
        length = np.asarray(tracks["length"], dtype=np.float64)[rows]
        lost = np.asarray(tracks["energy_lost_in_can"], dtype=np.float64)[rows]
        mu = is_mu[rows]
        k = np.where(mu, 0, kind[rows]).astype(np.int64)
        e_vis = sh.visible_energy(pdg[rows], energy)
        mean = np.where(mu, self.muon_photons(length, energy, np.where(mu, lost, 0.0)), 0.0)
        rel = np.zeros(n)
        shape = np.ones(n)
        scale = np.zeros(n)
        s = ~mu
        if np.any(s):
            l_mean = sh.cherenkov_track_length(e_vis[s], k[s])
            mean[s] = l_mean * self.photons_per_metre
            if fluctuations:
                rel[s] = np.where(l_mean > 0, sh.cherenkov_track_length_sigma(e_vis[s], k[s]) / np.where(l_mean > 0, l_mean, 1.0), 0.0)
            a, b = sh.longitudinal_parameters(e_vis[s], k[s])
            shape[s] = a
            scale[s] = sh.RADIATION_LENGTH_WATER_M / b
        return Emitters.concatenate_events(
            ev_index, len(event_ids),
            kind=np.where(mu, EMITTER_MUON, EMITTER_SHOWER).astype(np.int64),
            pos=np.ascontiguousarray(pos), dir=np.ascontiguousarray(dirs),
            time=np.asarray(tracks["time"], dtype=np.float64)[rows],
            length=np.where(mu, length, 0.0), energy=np.where(mu, energy, e_vis), energy_lost=np.where(mu, lost, 0.0),
            mean_photons=mean, rel_sigma=rel, long_shape=shape, long_scale=scale,
            origin=np.asarray(tracks["track_id"], dtype=np.int64)[rows],
        )

    @staticmethod
    def single_emitter(kind: int, pos, direction, n_photons: float, *, time: float = 0.0, length: float = 0.0,
                       energy: float = 0.0, energy_lost: float = 0.0, long_shape: float = 1.0,
                       long_scale: float = 0.0, rel_sigma: float = 0.0, origin: int = 0) -> Emitters:
        """One emitter as a one-event :class:`Emitters` (e.g. for light-table builders)."""
        d = np.asarray(direction, dtype=np.float64).reshape(1, 3)
        d = d / np.linalg.norm(d)
        return Emitters(
            event_offsets=np.array([0, 1], dtype=np.int64), kind=np.array([kind], dtype=np.int64),
            pos=np.asarray(pos, dtype=np.float64).reshape(1, 3), dir=np.ascontiguousarray(d),
            time=np.array([time], dtype=np.float64), length=np.array([length], dtype=np.float64),
            energy=np.array([energy], dtype=np.float64), energy_lost=np.array([energy_lost], dtype=np.float64),
            mean_photons=np.array([n_photons], dtype=np.float64), rel_sigma=np.array([rel_sigma], dtype=np.float64),
            long_shape=np.array([long_shape], dtype=np.float64), long_scale=np.array([long_scale], dtype=np.float64),
            origin=np.array([origin], dtype=np.int64),
        )

    # ------------------------------------------------------------------ tracking
    def track(self, emitters: Emitters, seeds, *, exact_count: bool = False) -> PhotonHits:
        """Track the photons of all emitters; event e draws from ``seeds[e]`` only.

        Parameters
        ----------
        emitters : Emitters
        seeds : uint64 array (n_events,)
            One seed per event of ``emitters.event_offsets``.
        exact_count : bool
            Emit exactly round(mean_photons) photons per emitter instead of a Poisson number.
        """
        seeds = np.ascontiguousarray(np.atleast_1d(seeds), dtype=np.uint64)
        if len(seeds) != len(emitters.event_offsets) - 1:
            raise ValueError(f"{len(seeds)} seeds for {len(emitters.event_offsets) - 1} events")
        g = self.grid
        out, n_emitted = _pk.track_photons(
            seeds, np.ascontiguousarray(emitters.event_offsets, dtype=np.int64),
            np.ascontiguousarray(emitters.kind, dtype=np.int64),
            np.ascontiguousarray(emitters.pos, dtype=np.float64), np.ascontiguousarray(emitters.dir, dtype=np.float64),
            np.ascontiguousarray(emitters.time, dtype=np.float64), np.ascontiguousarray(emitters.length, dtype=np.float64),
            np.ascontiguousarray(emitters.energy, dtype=np.float64),
            np.ascontiguousarray(emitters.energy_lost, dtype=np.float64),
            np.ascontiguousarray(emitters.mean_photons, dtype=np.float64),
            np.ascontiguousarray(emitters.rel_sigma, dtype=np.float64),
            np.ascontiguousarray(emitters.long_shape, dtype=np.float64),
            np.ascontiguousarray(emitters.long_scale, dtype=np.float64), bool(exact_count),
            self._lam0, self._inv_dlam, self._inv_cdf_lambda, self._n_phase, self._n_group, self._inv_labs,
            self._inv_lscat, self._ang_inv_cdf,
            self.secondaries, *self.secondary_light.args(),
            self.absorption, self.scattering, PHASE_RAYLEIGH_FRACTION, PHASE_HG_G, PHASE_RAYLEIGH_A, self.max_distance_m,
            self.dom_pos, self.dom_radius_m, self.dom_pmt_start, self.pmt_dir, self.pmt_ok, self.detect_coef,
            -1.0, 1.0 / _ACCEPTANCE_STEP, self._acc_table,
            g.x0, g.y0, 1.0 / g.cell, g.nx, g.ny, g.cell_start, g.cell_doms, g.box_lo, g.box_hi,
        )
        pmt = out[:, _pk.COL_PMT].astype(np.int64)
        return PhotonHits(
            event=out[:, _pk.COL_EVENT].astype(np.int64),
            emitter=out[:, _pk.COL_EMITTER].astype(np.int64),
            dom=out[:, _pk.COL_DOM].astype(np.int64),
            pmt=pmt,
            pmt_index=self.pmt_index[pmt],
            time=np.ascontiguousarray(out[:, _pk.COL_TIME]),
            wavelength=np.ascontiguousarray(out[:, _pk.COL_WAVELENGTH]),
            n_scatter=out[:, _pk.COL_N_SCATTER].astype(np.int64),
            path_length=np.ascontiguousarray(out[:, _pk.COL_PATH]),
            direction=np.ascontiguousarray(out[:, _pk.COL_DIR_X:_pk.COL_DIR_Z + 1]),
            n_emitted=n_emitted,
        )
