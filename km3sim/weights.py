"""Event weights for merged samples, and the fluxes to weight to.

An ``events`` table (km3sim.schema) of one production -- any number of runs and chunks,
concatenated -- carries in every row what its own run sample needs for weighting: ``run_id``,
``n_gen`` (primaries generated for that run), ``livetime_s`` (livetime the run stands for) and
``weight_w2``. The functions here turn that into rates for the merged set:

- Livetime-based rows (MUPAGE-like atmospheric muons; ``weight_w2`` is NaN): the sample of
  all those runs together stands for their summed livetime T, so every event has the rate
  ``1 / T`` [1/s].
- Generation-weight rows (neutrinos, gSeaGen w2 [GeV m^2 sr]): ``rate = w2 Phi(E, theta) / N``
  [1/s], with Phi the flux [GeV^-1 m^-2 s^-1 sr^-1] of the event's primary type evaluated at
  its energy and zenith, and N the number of primaries generated in all those runs together
  (PHYSICS.md §3.5: N_expected = T sum_i w2_i Phi_i / N_gen). N counts all the types
  generated together, because w2 already holds 1/type_fraction.

Totals are summed over the distinct runs (``run_id``) of each kind, after checking that the
rows of one run agree on ``n_gen`` / ``livetime_s``. They must come from the full generated
sample: to weight a selection (say, triggered events), pass the selection as ``events`` and
the generated events as ``totals_from``, otherwise runs left empty by the selection are
missed. Runs that generated no event at all are not in any table and cannot be counted; for
fixed-size neutrino runs this never happens.

A flux is any callable ``flux(pdgid, energy_gev, cos_zenith) -> ndarray`` [GeV^-1 m^-2 s^-1
sr^-1] taking 1-D arrays, where cos_zenith is the cosine of the zenith angle of the arrival
direction (1: from straight above; ``cos_zenith = -dir_z``).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from km3sim._optional import require
from km3sim.errors import StageError, StageFileError

__all__ = [
    "FluxFunction",
    "power_law_flux",
    "honda_flux",
    "honda_table_path",
    "read_honda_table",
    "HondaFlux",
    "total_livetime",
    "total_n_gen",
    "rate_weights",
    "expected_events",
    "one_weight",
]

#: flux(pdgid, energy_gev, cos_zenith) -> flux [GeV^-1 m^-2 s^-1 sr^-1]
FluxFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _col(events, name: str) -> np.ndarray:
    try:
        return np.asarray(events[name])
    except KeyError as exc:
        raise StageError(f"events table has no column {name!r}") from exc


# ------------------------------------------------------------------------------- fluxes
def power_law_flux(norm: float, index: float, e0: float = 1.0, pdgids=None) -> FluxFunction:
    """Isotropic power law ``Phi(E) = norm (E / e0)^-index``.

    Parameters
    ----------
    norm : float
        Flux at ``e0`` [GeV^-1 m^-2 s^-1 sr^-1], per primary type it applies to.
    index : float
        Spectral index (positive for a falling spectrum).
    e0 : float
        Pivot energy [GeV].
    pdgids : iterable of int, optional
        Primary types with this flux (others get 0); default: every type.

    Returns
    -------
    callable
        ``flux(pdgid, energy_gev, cos_zenith)``.
    """
    if not (norm >= 0.0) or not (e0 > 0.0) or not math.isfinite(index):
        raise ValueError(f"power law needs norm >= 0, e0 > 0 and a finite index; got {norm}, {e0}, {index}")
    types = None if pdgids is None else np.array(sorted(int(p) for p in pdgids))

    def flux(pdgid, energy_gev, cos_zenith):
        e = np.asarray(energy_gev, dtype=np.float64)
        out = norm * (e / e0) ** (-index)
        if types is not None:
            out = np.where(np.isin(np.asarray(pdgid), types), out, 0.0)
        return np.broadcast_to(out, np.broadcast_shapes(e.shape, np.shape(cos_zenith))).astype(np.float64)

    flux.description = {"power_law": {"norm": norm, "index": index, "e0_gev": e0,
                                      "pdgids": None if types is None else types.tolist()}}
    return flux


#: Honda et al. 2015 (PRD 92 (2015) 023004) table for Frejus, all-year, azimuth-averaged
#: (20 cos bins), solar minimum (PHYSICS.md §3.6); km3flux ships it under these names.
_HONDA_CANDIDATES = (
    ("honda", "2014", "frj-ally-20-01-solmin.d.gz"),  # km3flux >= 2
    ("frj-ally-20-01-solmin.txt",),  # km3flux 1.x
)
#: column order of the Honda tables
_HONDA_COLUMNS = (14, -14, 12, -12)


def honda_table_path() -> Path:
    """Path of the Honda Frejus table (azimuth-averaged, solar minimum) shipped with km3flux."""
    km3flux = require("km3flux", "weighting to the Honda atmospheric neutrino flux")
    base = Path(km3flux.__file__).resolve().parent / "data"
    for parts in _HONDA_CANDIDATES:
        path = base.joinpath(*parts)
        if path.is_file():
            return path
    raise StageFileError(
        f"no Honda Frejus table found in the km3flux package ({base}); looked for "
        + ", ".join(str(base.joinpath(*p)) for p in _HONDA_CANDIDATES)
    )


def read_honda_table(path) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Read a Honda azimuth-averaged flux table (plain text or gzip).

    The file holds one block per cos(zenith) bin, each starting with a line
    ``average flux in [cosZ = a -- b, phi_Az = 0 -- 360]``, a column header and rows
    ``E  NuMu  NuMubar  NuE  NuEbar`` in GeV and (m^2 s sr GeV)^-1 (PHYSICS.md §3.6).

    Returns
    -------
    energy : ndarray
        Energies [GeV], increasing.
    cos_centres : ndarray
        Centres of the cos(zenith) bins, increasing (1: from straight above).
    table : dict of int to ndarray, shape (n_cos, n_energy)
        Flux per PDG code (14, -14, 12, -12).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise StageFileError(f"cannot read Honda table {path}: {exc}") from exc
    blocks: list[tuple[float, list[list[float]]]] = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("average flux"):
            try:
                inside = text.split("cosZ", 1)[1].split("=", 1)[1].split(",", 1)[0]
                lo, hi = (float(v) for v in inside.split("--"))
            except (IndexError, ValueError) as exc:
                raise StageFileError(f"{path}:{lineno}: cannot read the cosZ bin from {text!r}") from exc
            blocks.append((0.5 * (lo + hi), []))
        elif text.startswith("Enu"):
            continue
        else:
            if not blocks:
                raise StageFileError(f"{path}:{lineno}: data before the first 'average flux' header")
            try:
                row = [float(v) for v in text.split()]
            except ValueError as exc:
                raise StageFileError(f"{path}:{lineno}: not a row of numbers: {text!r}") from exc
            if len(row) != 5:
                raise StageFileError(f"{path}:{lineno}: expected 5 columns (E, NuMu, NuMubar, NuE, NuEbar), got {len(row)}")
            blocks[-1][1].append(row)
    if not blocks:
        raise StageFileError(f"{path}: no 'average flux in [cosZ = ...]' blocks")
    arrays = [np.array(rows) for _, rows in blocks]
    n_e = arrays[0].shape[0]
    if any(a.shape != (n_e, 5) for a in arrays) or any(not np.array_equal(a[:, 0], arrays[0][:, 0]) for a in arrays):
        raise StageFileError(f"{path}: the cosZ blocks do not share one energy grid")
    order = np.argsort([c for c, _ in blocks])
    cos_centres = np.array([blocks[i][0] for i in order])
    energy = arrays[0][:, 0]
    if np.any(np.diff(energy) <= 0) or np.any(np.diff(cos_centres) <= 0):
        raise StageFileError(f"{path}: energies and cosZ bins must be strictly increasing")
    table = {pdg: np.stack([arrays[i][:, k + 1] for i in order]) for k, pdg in enumerate(_HONDA_COLUMNS)}
    return energy, cos_centres, table


class HondaFlux:
    """Honda atmospheric neutrino flux, interpolated (callable as a flux function).

    Interpolation is bilinear in (ln E, cos zenith) of ln Phi between the table energies and
    the cos-bin centres; outside the centres the edge bins are used (flat in cos theta).
    Above the last table energy (10 TeV) ln Phi is extrapolated linearly in ln E with the
    slope of the last table interval (the conventional flux only; no prompt component,
    PHYSICS.md §3.6); below the first energy (0.1 GeV) the flux is NaN. nu_tau and nubar_tau
    (no conventional flux without oscillations) get 0; other codes NaN.

    Parameters
    ----------
    path : path-like, optional
        A Honda table; default the Frejus table of km3flux (:func:`honda_table_path`).
    """

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else honda_table_path()
        self.energy, self.cos_centres, table = read_honda_table(self.path)
        self._loge = np.log(self.energy)
        self._logf = {pdg: np.log(np.maximum(t, 1e-300)) for pdg, t in table.items()}
        self.description = "honda: Honda et al. 2015, Frejus, azimuth-averaged, solar minimum (" + self.path.name + ")"

    def __call__(self, pdgid, energy_gev, cos_zenith):
        pdg, e, c = np.broadcast_arrays(np.asarray(pdgid), np.asarray(energy_gev, dtype=np.float64),
                                        np.asarray(cos_zenith, dtype=np.float64))
        shape = e.shape
        pdg, e, c = (np.ascontiguousarray(a).ravel() for a in (pdg, e, c))
        out = np.full(e.shape, np.nan)
        out[np.abs(pdg) == 16] = 0.0
        le = np.log(np.maximum(e, 1e-300))
        # energy interval and fraction (extrapolating above with the last interval)
        ie = np.clip(np.searchsorted(self._loge, le, side="right") - 1, 0, len(self._loge) - 2)
        fe = (le - self._loge[ie]) / (self._loge[ie + 1] - self._loge[ie])
        fe = np.maximum(fe, 0.0)
        cc = np.clip(c, self.cos_centres[0], self.cos_centres[-1])
        ic = np.clip(np.searchsorted(self.cos_centres, cc, side="right") - 1, 0, len(self.cos_centres) - 2)
        fc = (cc - self.cos_centres[ic]) / (self.cos_centres[ic + 1] - self.cos_centres[ic])
        for code, logf in self._logf.items():
            m = pdg == code
            if not m.any():
                continue
            i, f, j, g = ie[m], fe[m], ic[m], fc[m]
            lo = logf[j, i] + f * (logf[j, i + 1] - logf[j, i])
            hi = logf[j + 1, i] + f * (logf[j + 1, i + 1] - logf[j + 1, i])
            val = np.exp(lo + g * (hi - lo))
            out[m] = np.where(e[m] >= self.energy[0], val, np.nan)
        return out.reshape(shape)


def honda_flux(path=None) -> HondaFlux:
    """The Honda 2015 Frejus atmospheric flux (azimuth-averaged, solar minimum) from km3flux.

    Needs the optional package km3flux (``pip install 'km3sim[flux]'``) unless ``path`` is
    given. See :class:`HondaFlux` for the interpolation.
    """
    return HondaFlux(path)


# ------------------------------------------------------------------------------- totals
def _per_run(run_id: np.ndarray, values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The value of every distinct run, checking that all rows of a run agree."""
    if len(run_id) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=values.dtype)
    runs, inv = np.unique(run_id, return_inverse=True)
    vmin = np.full(len(runs), np.inf)
    vmax = np.full(len(runs), -np.inf)
    v = values.astype(np.float64)
    np.minimum.at(vmin, inv, v)
    np.maximum.at(vmax, inv, v)
    bad = ~(vmin == vmax)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise StageError(
            f"events of run {int(runs[k])} disagree on {what}: values from {vmin[k]!r} to {vmax[k]!r}; "
            "were samples of different productions merged under the same run_id?"
        )
    return runs, vmin


def total_livetime(events) -> float:
    """Livetime [s] of the merged runs: the sum over distinct ``run_id`` of ``livetime_s``.

    Raises
    ------
    StageError
        If the rows of one run disagree on ``livetime_s``.
    """
    _, vals = _per_run(_col(events, "run_id"), _col(events, "livetime_s"), "livetime_s")
    return float(np.sum(vals))


def total_n_gen(events) -> int:
    """Primaries generated in the merged runs: the sum over distinct ``run_id`` of ``n_gen``.

    Raises
    ------
    StageError
        If the rows of one run disagree on ``n_gen``.
    """
    _, vals = _per_run(_col(events, "run_id"), _col(events, "n_gen"), "n_gen")
    return int(np.sum(vals))


def _select(events, mask: np.ndarray, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {c: _col(events, c)[mask] for c in columns}


def one_weight(events) -> np.ndarray:
    """IceCube-style OneWeight [GeV cm^2 sr] of each event: ``weight_w2`` in cm^2.

    IceCube defines OneWeight = P_int / E^-gamma x I_E x A_gen x Omega_gen and the rate
    ``OneWeight x Phi / (N_events x type_fraction)`` (PHYSICS.md §3.5). km3sim's w2 already
    contains the division by the fraction of the type, so with OneWeight = w2 x 1e4 the rate
    is ``OneWeight x Phi[GeV^-1 cm^-2 s^-1 sr^-1] / n_gen`` (type_fraction = 1 in IceCube's
    formula), ``n_gen`` summed over the merged runs as in :func:`total_n_gen`.

    Rows without a generation weight (MUPAGE) give NaN.
    """
    return np.asarray(events["weight_w2"], dtype=np.float64) * 1e4


def rate_weights(events, flux: FluxFunction | None = None, *, totals_from=None) -> np.ndarray:
    """Rate [1/s] every event stands for in the merged sample.

    Parameters
    ----------
    events : Table or mapping of arrays
        ``events`` rows (columns run_id, pdgid, energy, dir_z, n_gen, livetime_s, weight_w2).
    flux : callable, optional
        ``flux(pdgid, energy_gev, cos_zenith)`` [GeV^-1 m^-2 s^-1 sr^-1]; needed when there
        are rows with a finite ``weight_w2``.
    totals_from : Table or mapping of arrays, optional
        The full generated sample the totals (livetime, n_gen) are taken from; default
        ``events`` itself.

    Returns
    -------
    ndarray
        ``1 / T_total`` for rows without w2 (livetime-based samples), ``w2 Phi / N_gen,total``
        for the others (see the module notes).
    """
    ref = events if totals_from is None else totals_from
    w2 = _col(events, "weight_w2").astype(np.float64)
    ref_w2 = _col(ref, "weight_w2").astype(np.float64)
    live_rows, ref_live = np.isnan(w2), np.isnan(ref_w2)
    out = np.empty(len(w2))
    if live_rows.any():
        t = total_livetime(_select(ref, ref_live, ("run_id", "livetime_s")))
        if not t > 0.0:
            raise StageError(f"livetime-based events need a total livetime > 0, got {t} s")
        out[live_rows] = 1.0 / t
    gen_rows = ~live_rows
    if gen_rows.any():
        if flux is None:
            raise StageError("events with a generation weight (weight_w2) need a flux to be weighted")
        n = total_n_gen(_select(ref, ~ref_live, ("run_id", "n_gen")))
        if n <= 0:
            raise StageError(f"events with a generation weight need n_gen > 0 in total, got {n}")
        pdg = _col(events, "pdgid")[gen_rows]
        energy = _col(events, "energy")[gen_rows].astype(np.float64)
        cosz = -_col(events, "dir_z")[gen_rows].astype(np.float64)
        phi = np.empty(len(pdg))
        for code in np.unique(pdg):
            m = pdg == code
            phi[m] = np.asarray(flux(pdg[m], energy[m], cosz[m]), dtype=np.float64)
        out[gen_rows] = w2[gen_rows] * phi / n
    return out


def expected_events(events, flux: FluxFunction | None, livetime_s: float, *, totals_from=None) -> float:
    """Expected number of events of the sample in a livetime ``livetime_s`` [s]:
    ``livetime_s * sum(rate_weights(events, flux))``."""
    return float(livetime_s) * float(np.sum(rate_weights(events, flux, totals_from=totals_from)))
