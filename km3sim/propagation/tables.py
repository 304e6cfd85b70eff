"""Light tables: the JSirene approach of KM3NeT, built from km3sim's own photon tracker.

Jpp's JSirene does not track photons in production: it draws the photo-electrons of every PMT
from tabulated distributions of the light of an infinite muon track and of an EM shower as a
function of the PMT's position and orientation and of the time residual. km3sim builds the same
kind of tables by running the photon tracker (:mod:`km3sim.propagation.photons`: Frank–Tamm
emission, Jpp absorption, Kopelevich scattering, p0.0075 phase function, DOM spheres and the
effective-area PMT model; PHYSICS.md §5–§7) on single emitters in a fixed water model, and the
``direct_light`` stage uses them in ``mode: tables``.

Tables
------
**Muon** (an infinite straight track, β = 1, Frank–Tamm × QE light, no secondaries: the
Rädel–Wiebusch factor 1 + ΔL/L(E) of PHYSICS.md §5.3 is applied at lookup):
expected npe of a PMT at closest distance R of its DOM centre from the track, with axis at
polar angle θ from the track direction and azimuth φ about it (φ = 0: pointing away from the
track, φ = π: facing it), and the cumulative distribution of the time residual
t − t_direct, with t_direct the Cherenkov arrival time at the DOM centre at the reference
wavelength (PHYSICS.md §9.1).

**Muon showers** (the light of the EM showers of a muon's losses that are part of its
continuous loss, :mod:`km3sim.propagation.secondaries`): an infinite line of point-like EM showers
along the track, per metre of their Cherenkov track length per metre of muon, every photon
emitted with the Rädel–Wiebusch EM angular profile about the track (PHYSICS.md §5.4; no
longitudinal extent: the showers are small and the line is uniform), same (R, θ, φ, time
residual) binning and t_direct as the muon table. At lookup a muon of energy E gives
``muon·(1 + ΔL/L(E)) + muon_showers·cont(E)`` (ΔL/L and cont from
:func:`~km3sim.propagation.secondaries.secondary_light`), the scheme of JSirene, whose muon
light has a bare-muon and an EM-shower ("b·E") part with their own PDFs.

**Shower** (a point-like EM shower, per GeV of electron-equivalent energy, i.e. per
l_e(1 GeV) = 5.32 m of Cherenkov track length with the Rädel–Wiebusch angular profile,
PHYSICS.md §5.4): expected npe of a PMT at distance D of its DOM centre from the shower point,
at cosθ_d = cos(shower axis, DOM − point), with axis at polar angle θ from the direction
point → DOM and azimuth φ about it (φ = 0 towards the shower axis side), and the time residual
w.r.t. t_direct = D·n_g/c. The cosθ_d nodes are uniform in y = sign(c − c₀)|c − c₀|^0.3
(c₀ = 1/n, the cusp of the angular profile exp(−6.03|c − c₀|^0.3)), and the npe is
interpolated log-linearly in y, which is exact for that profile (linear interpolation across
the cusp overestimates the light by 10–15 %). In table mode a shower's light is spread over
``table_shower_points`` points of equal light of its longitudinal profile (one point for DOMs
far from it) and scaled by its Cherenkov track length (hadronic showers: the π⁺ length of
§5.4), like Jpp does with its EM-shower PDF and JGeanz.

Build
-----
The orientation dimensions cost no photons: the tracker is given DOMs with an isotropic set
of 48 "fake" PMTs that detect almost every photon entering the DOM (with a probability P(w)
known for every direction w), and each detected photon adds coef·A(w·a)/P(w) to every
orientation node a (A = angular acceptance, coef = A_pmt/(πR_DOM²): the tracker's own detection
model), averaged with its mirror image. Symmetries give the position dimensions. Muon (and
muon showers, in the same DOM layout with their own photons: a line of point showers at
stratified random positions): one long track segment (along x: the tracker bins DOMs in vertical columns) with DOMs at the R nodes over
its middle 600 m, where every DOM sees the whole infinite-track light (the segment extends the
maximum photon distance beyond them). Shower: a point shower with DOMs on spheres of radius D
at the cosθ_d nodes (several DOMs of a node on rings spread symmetrically about it in y).
DOMs sit at random azimuths, each layer in its own azimuth sector; none lies within 3 DOM radii
of the direct-light ray of another, and the DOMs of one tracker run ("pass") cover at most 2 % of
the solid angle (cylinder) seen from the emitter, which bounds the bias on scattered light by
mutual shadowing. The DOM numbers per layer give about equal statistics up to 160 m. Layers far
from the emitter are tracked with absorption lengths k = 2–3 times longer and each detected
photon weighted by exp(−s(1 − 1/k)/λ_abs(λ)) (path s): the same expectation with 2–10× more
useful photons per CPU second at 100–300 m. Shower layers closer than 8 m get a pass each (their
DOMs cover several % of the sky); a cosθ_d node left without a DOM there is filled from its
neighbours (dataset ``shower/filled``). Every cell's effective number of builder photons is
stored (``n_eff``: relative statistical error ≈ 1/√n_eff). Sums are fixed-point integers, so a
table does not depend on the number of worker processes.

Accuracy, mean npe against the tracker (tests/propagation/test_tables.py with the coarse table,
and a medium table with 10⁷–10⁸ tracker photons): muons at 5–150 m within 3 % (bare muons);
muons of 1 and 10 TeV with their secondaries' light (ΔL/L and continuous-loss showers, 42 % and
87 % of the light) against photons mode within 2.5 % at 5–100 m and 0.945 ± 0.03 at 150 m;
the muon-shower table alone against a line of the tracker's point showers within 5 % ± 3 % at
5–50 m (coarse), time residuals compatible (KS); EM showers at
10–150 m from their light centroid within 5 %, at 5 m within 7 % (the shower's length matters
there; the earliest 5 % of the arrival times near a TeV shower come 2–3 ns too late). Not meant
for PMTs closer than 2 m to a shower point or 1 m to a track (extrapolated ∝ 1/D², 1/R from the
first node).

Files are HDF5 with provenance (km3sim version, water preset and parameters, binning, photons,
seed, build time), written atomically. :func:`table_cache_dir` is the cache directory
(``$KM3SIM_TABLE_DIR`` or ``~/.cache/km3sim/tables``), where files are named after a hash of
the physics parameters and one of the building parameters.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from km3sim import __version__
from km3sim.detector.pmt import ACCEPTANCE_TABLE, ACCEPTANCE_TABLE_COS, PHOTOCATHODE_AREA_M2, QE_TABLE, QE_TABLE_NM
from km3sim.errors import Km3simError
from km3sim.propagation import _table_kernels as tk
from km3sim.propagation import showers as sh
from km3sim.propagation import water as wm
from km3sim.propagation.water import WaterOptics

__all__ = [
    "TABLE_FORMAT",
    "TABLE_FORMAT_VERSION",
    "QUALITIES",
    "LightTableError",
    "TableBinning",
    "binning_for",
    "default_photons",
    "physics_parameters",
    "physics_hash",
    "table_cache_dir",
    "table_file_name",
    "find_light_tables",
    "build_light_tables",
    "load_light_tables",
    "LightTables",
    "format_info",
]

log = logging.getLogger(__name__)

TABLE_FORMAT = "km3sim-light-tables"
#: 2: the muon-shower table (group ``muon_showers``) was added.
TABLE_FORMAT_VERSION = 2
QUALITIES = ("coarse", "medium", "full")

#: Reference wavelength of the Cherenkov angle and group index of t_direct [nm] (as direct_light).
REFERENCE_WAVELENGTH_NM = 470.0
#: Smallest tabulated R of the muon table [m] (below: N(R_min)·R_min/R, R floored at 0.2 m).
MUON_R_MIN_M = 1.0
#: Smallest tabulated D of the shower table [m] (below: N(D_min)·(D_min/D)², D floored at 0.5 m).
SHOWER_D_MIN_M = 2.0
#: Floors of R and D in the extrapolation below the first node [m] (about the DOM radius).
MUON_R_FLOOR_M = 0.2
SHOWER_D_FLOOR_M = 0.5
#: Fake PMT axes per builder DOM (Fibonacci sphere): Σ_k A(w·a_k) varies by 2 % over directions.
N_FAKE_PMTS = 48
#: Photons per tracker call of the builder.
BATCH_PHOTONS = 1_000_000
#: Summed coverage (fraction of the solid angle, or of the cylinder, seen from the emitter) of
#: the DOMs of one builder pass: the bias on scattered light by mutual shadowing is below it.
PASS_COVERAGE = 0.02
#: Largest coverage of one layer.
LAYER_COVERAGE_MAX = 0.006
#: Layers beyond this distance [m] get fewer builder photons (∝ (x/x)²: their light is faint).
IMPORTANT_DISTANCE_M = 160.0

# passes: (name, lower and upper photon distance of the layers [m], absorption-length factor k
# of the tracker (hits weighted by exp(−s(k−1)/(kλ_abs))), fraction of the table's photons)
_MUON_PASSES = (
    ("near", 0.0, 60.0, 1.0, 0.3),
    ("mid", 60.0, 160.0, 2.0, 0.35),
    ("far", 160.0, math.inf, 3.0, 0.35),
)
_SHOWER_PASSES = (
    ("inner", 0.0, 8.0, 1.0, 0.12),
    ("near", 8.0, 60.0, 1.0, 0.2),
    ("mid", 60.0, 140.0, 2.0, 0.28),
    ("far", 140.0, math.inf, 3.0, 0.4),
)


class LightTableError(Km3simError):
    """A light-table file is missing, corrupt, or was built for another water or detection model."""


# ----------------------------------------------------------------------------------- binning
@dataclass(frozen=True)
class TableBinning:
    """Nodes and bins of both tables.

    Attributes
    ----------
    muon_r : R nodes [m]
    shower_d : D nodes [m]
    shower_cd : cosθ_d nodes: uniform in y = sign(c − c₀)·|c − c₀|^0.3 (c₀ = 1/n, the Cherenkov
        cusp of the shower's angular profile, a node itself), in which the profile
        exp(−6.03|c − c₀|^0.3) of PHYSICS.md §5.4 is exp(−6.03|y|): the npe is interpolated
        log-linearly in y, exact for that profile
    n_theta, n_phi : orientation nodes θ_a = aπ/(n_θ − 1), φ_b = bπ/(n_φ − 1)
    t_edges : time-residual bin edges [ns] (the first and last bins also take what lies beyond)
    """

    muon_r: tuple
    shower_d: tuple
    shower_cd: tuple
    n_theta: int
    n_phi: int
    t_edges: tuple

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> TableBinning:
        return cls(**{k: (tuple(float(x) for x in v) if isinstance(v, list) else int(v)) for k, v in d.items()})


def _distance_nodes(n: int, x_min: float, x_max: float, scale: float = 10.0) -> np.ndarray:
    """n nodes uniform in ln(1 + x/scale): ~geometric below ``scale``, denser than geometric above."""
    u = np.linspace(math.log1p(x_min / scale), math.log1p(x_max / scale), n)
    x = scale * np.expm1(u)
    x[0], x[-1] = x_min, x_max
    return np.round(x, 4)


#: Exponent of the transformed direction variable y = sign(c − c₀)|c − c₀|^p of the shower table
#: (the exponent of the Rädel–Wiebusch angular profile, PHYSICS.md §5.4).
CD_POWER = 0.3


def cd_to_y(cd, cusp: float):
    """Transformed direction variable y = sign(c − c₀)·|c − c₀|^0.3 of the shower table."""
    x = np.asarray(cd, dtype=np.float64) - cusp
    return np.sign(x) * np.abs(x) ** CD_POWER


def _cd_nodes(cusp: float, step: float) -> np.ndarray:
    """cosθ_d nodes: uniform in y with about ``step``, one at the cusp, without the two next to it
    (they would lie within |c − c₀| < 0.001, the same ring of DOMs as the cusp node at the
    builder's distances); the end nodes are moved in by a third of a step from ±1 (a ring, not a
    point, so that the builder can put DOMs on it)."""
    y_lo = -((1.0 + cusp) ** CD_POWER)
    y_hi = (1.0 - cusp) ** CD_POWER
    n_lo = max(3, int(round(-y_lo / step)))
    n_hi = max(3, int(round(y_hi / step)))
    lo = np.linspace(y_lo, 0.0, n_lo + 1)
    hi = np.linspace(0.0, y_hi, n_hi + 1)
    y = np.concatenate([lo[:-2], [0.0], hi[2:]])
    y[0] += (y[1] - y[0]) / 3.0
    y[-1] -= (y[-1] - y[-2]) / 3.0
    return np.round(cusp + np.sign(y) * np.abs(y) ** (1.0 / CD_POWER), 7)


def _time_edges(core_step: float, ratio: float) -> np.ndarray:
    low = [-40.0, -20.0, -10.0, -6.0, -4.0]
    core = np.arange(-3.0, 5.0 + 1e-9, core_step)
    tail = [5.0]
    while tail[-1] < 2000.0:
        tail.append(tail[-1] * ratio)
    tail = np.array(tail[1:])
    tail[-1] = 2000.0
    return np.round(np.concatenate([low, core, tail, [5000.0]]), 4)


_QUALITY = {
    # n_R, n_D, cd step in y, n_theta, n_phi, time core step/ratio, photons (muon, shower)
    "coarse": (13, 13, 0.12, 9, 5, 0.5, 1.6, 8e6, 1.2e7),
    "medium": (20, 20, 0.08, 13, 7, 0.5, 1.35, 1.2e8, 1.2e8),
    "full": (30, 28, 0.05, 19, 10, 0.25, 1.2, 2e9, 2e9),
}


def binning_for(quality: str, max_distance_m: float = 300.0, refractive_index: float | None = None) -> TableBinning:
    """The binning of a table quality ('coarse', 'medium' or 'full') for a maximum photon distance."""
    if quality not in _QUALITY:
        raise LightTableError(f"unknown table quality {quality!r}; choose one of {QUALITIES}")
    n_r, n_d, cd_step, n_th, n_ph, t_step, t_ratio, _, _ = _QUALITY[quality]
    n = refractive_index if refractive_index is not None else float(wm.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
    sin_c = math.sqrt(1.0 - 1.0 / n**2)
    return TableBinning(
        muon_r=tuple(float(x) for x in _distance_nodes(n_r, MUON_R_MIN_M, max_distance_m * sin_c)),
        shower_d=tuple(float(x) for x in _distance_nodes(n_d, SHOWER_D_MIN_M, max_distance_m)),
        shower_cd=tuple(float(x) for x in _cd_nodes(1.0 / n, cd_step)),
        n_theta=n_th,
        n_phi=n_ph,
        t_edges=tuple(float(x) for x in _time_edges(t_step, t_ratio)),
    )


def default_photons(quality: str) -> tuple[int, int]:
    """Photons tracked for the (muon, shower) table of a quality (the muon-shower table: as the muon table)."""
    if quality not in _QUALITY:
        raise LightTableError(f"unknown table quality {quality!r}; choose one of {QUALITIES}")
    return int(_QUALITY[quality][7]), int(_QUALITY[quality][8])


# ----------------------------------------------------------------------------------- physics
def _array_hash(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def physics_parameters(water: WaterOptics, *, scattering: bool = True, wavelength_min_nm: float = 300.0,
                       wavelength_max_nm: float = 700.0, max_distance_m: float = 300.0,
                       dom_radius_m: float = 0.216) -> dict:
    """Everything that the content of a light table depends on, besides binning and statistics.

    A table can only be used by a stage whose parameters give the same dict (:meth:`LightTables.check_physics`).
    """
    return {
        "pressure_atm": float(water.pressure_atm),
        "absorption_scale": float(water.absorption_scale),
        "scattering_scale": float(water.scattering_scale),
        "scattering": bool(scattering),
        "absorption_table": _array_hash(wm.ABSORPTION_TABLE_NM, wm.ABSORPTION_TABLE_M),
        "kopelevich_vs_vl": [wm.KOPELEVICH_VS, wm.KOPELEVICH_VL],
        "phase_function_f_g_a": [wm.PHASE_RAYLEIGH_FRACTION, wm.PHASE_HG_G, wm.PHASE_RAYLEIGH_A],
        "wavelength_min_nm": float(wavelength_min_nm),
        "wavelength_max_nm": float(wavelength_max_nm),
        "max_distance_m": float(max_distance_m),
        "dom_radius_m": float(dom_radius_m),
        "pmt_area_m2": float(PHOTOCATHODE_AREA_M2),
        "pmt_qe": _array_hash(QE_TABLE_NM, QE_TABLE),
        "pmt_acceptance": _array_hash(ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE),
        "reference_wavelength_nm": REFERENCE_WAVELENGTH_NM,
        "shower_angular_parameters": list(sh.ANGULAR_PARAMETERS),
        "electron_track_length_m_per_gev": float(sh.cherenkov_track_length(1.0, sh.KIND_ELECTRON)),
        "format_version": TABLE_FORMAT_VERSION,
    }


def _hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def physics_hash(physics: dict) -> str:
    """SHA-256 (hex) of a :func:`physics_parameters` dict."""
    return _hash(physics)


# ----------------------------------------------------------------------------------- cache
def table_cache_dir(directory: str | os.PathLike | None = None) -> Path:
    """Directory of cached light tables: ``directory``, else ``$KM3SIM_TABLE_DIR``, else ``~/.cache/km3sim/tables``."""
    if directory:
        return Path(directory).expanduser()
    env = os.environ.get("KM3SIM_TABLE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "km3sim" / "tables"


def table_file_name(site: str, quality: str, physics: dict, build: dict) -> str:
    """Cache file name: ``light_tables_<site>_<quality>_<physics hash>_<build hash>.h5``."""
    return f"light_tables_{site}_{quality}_{physics_hash(physics)[:12]}_{_hash(build)[:8]}.h5"


def find_light_tables(physics: dict, directory: str | os.PathLike | None = None) -> Path | None:
    """The cached table with these physics parameters that used the most photons, or None."""
    d = table_cache_dir(directory)
    if not d.is_dir():
        return None
    key = physics_hash(physics)
    best = None
    for path in sorted(d.glob(f"light_tables_*_{key[:12]}_*.h5")):
        try:
            attrs = _read_root_attrs(path)
        except LightTableError as exc:
            log.warning("ignoring unreadable light table %s: %s", path, exc)
            continue
        if attrs.get("physics_hash") != key:
            continue
        n = int(attrs.get("n_photons_total", 0))
        if best is None or n > best[0]:
            best = (n, path)
    return None if best is None else best[1]


# ----------------------------------------------------------------------------------- geometry
def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * i
    s = np.sqrt(1.0 - z * z)
    return np.ascontiguousarray(np.column_stack([s * np.cos(phi), s * np.sin(phi), z]))


def _acceptance_grid():
    grid = np.linspace(-1.0, 1.0, 41)
    return np.ascontiguousarray(np.interp(grid, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0))


def _fake_pmt_coef(dirs: np.ndarray, dom_radius: float) -> tuple[float, float]:
    """(coef, pmt area) of the fake PMTs: max over directions of Σ_k coef·A = 0.995."""
    rng = np.random.default_rng(12345)
    w = rng.normal(size=(100_000, 3))
    w /= np.linalg.norm(w, axis=1)[:, None]
    w = np.vstack([w, dirs, -dirs])
    s = np.interp(w @ dirs.T, ACCEPTANCE_TABLE_COS, ACCEPTANCE_TABLE, left=1.0, right=0.0).sum(axis=1)
    coef = 0.995 / float(s.max())
    return coef, coef * math.pi * dom_radius**2


@dataclass
class _Pass:
    """DOM layout and settings of one tracker run of the builder."""

    table: str  # "muon" | "muon_showers" | "shower"
    name: str
    boost: float  # absorption lengths × boost in the tracker, hits reweighted
    n_photons: int
    dom_pos: np.ndarray
    dom_cell: np.ndarray
    dom_frame: np.ndarray
    dom_t_direct: np.ndarray
    emitter: dict
    batch_offset: int
    n_dropped: int = 0
    coverage: float = 0.0


def _expected_fraction(d: np.ndarray, water: WaterOptics, boost: float, wl_min: float, wl_max: float) -> np.ndarray:
    """Effective photons per emitted photon at distance d, (Σw)²/Σw², for the direct light when the
    tracker absorbs with lengths ``boost``·λ_abs and the hits carry the weight
    w = exp(−d(1 − 1/boost)/λ_abs) (= the survival Y(d)/Y(0) for boost = 1)."""
    from km3sim.propagation.light import frank_tamm_yield
    from km3sim.detector.pmt import quantum_efficiency

    lam = np.linspace(wl_min, wl_max, 801)
    s = frank_tamm_yield(lam, water.refractive_index_phase(lam)) * quantum_efficiency(lam)
    s = s / s.sum()
    labs = water.absorption_length(lam)
    ia = np.where(labs > 0, 1.0 / np.maximum(labs, 1e-9), 1e9)
    out = []
    for x in np.atleast_1d(d):
        m = float((s * np.exp(-x * ia)).sum())
        m2 = float((s * np.exp(-x * ia * (2.0 - 1.0 / boost))).sum())
        out.append(m * m / max(m2, 1e-300))
    return np.array(out)


def _layer_coverage(a: np.ndarray, x: np.ndarray, total: float) -> np.ndarray:
    """Coverage per layer ∝ importance/a (equal expected hits up to :data:`IMPORTANT_DISTANCE_M`,
    fewer beyond), capped at :data:`LAYER_COVERAGE_MAX`, summing to ``total``."""
    importance = np.minimum(1.0, (IMPORTANT_DISTANCE_M / np.maximum(x, 1e-3)) ** 2)
    inv = importance / np.maximum(a, 1e-6)
    lo, hi = 0.0, total / inv.min()
    for _ in range(100):
        c = 0.5 * (lo + hi)
        if np.minimum(c * inv, LAYER_COVERAGE_MAX).sum() > total:
            hi = c
        else:
            lo = c
    return np.minimum(lo * inv, LAYER_COVERAGE_MAX)


def _sectors(layer: np.ndarray, margin_rad: np.ndarray):
    """Azimuth sector (start, width) of each candidate: one sector per layer of a pass, less a
    margin at both ends (at least a tenth of the sector)."""
    layers, idx = np.unique(layer, return_inverse=True)
    width = 2.0 * math.pi / len(layers)
    m = np.minimum(margin_rad, 0.45 * width)
    return idx * width + m, width - 2.0 * m


def _muon_passes(binning: TableBinning, water: WaterOptics, n_photons: int, max_d: float, dom_r: float,
                 wl: tuple, sin_c: float, tan_c: float, n_group: float, seed: int) -> list[_Pass]:
    r_nodes = np.asarray(binning.muon_r)
    zone = 2.0 * max_d
    rng = np.random.default_rng([seed, 1])
    passes = []
    offset = 0
    for k, (name, d_lo, d_hi, boost, frac) in enumerate(_MUON_PASSES):
        d = r_nodes / sin_c
        sel = np.flatnonzero((d > d_lo) & (d <= d_hi))
        if len(sel) == 0:
            continue
        # DOMs in [h, h + zone] of a track [0, zone + 2h] see the light of an infinite track: all
        # light that reaches them is emitted within h (the tracker's maximum distance; 200 m for
        # the near layers, whose light from farther than 200 m is < 1e-4 of the total)
        h = max_d if d_lo > 0.0 else min(max_d, 200.0)
        length = zone + 2.0 * h
        a = _expected_fraction(d[sel], water, boost, *wl)
        cov = _layer_coverage(a, r_nodes[sel], PASS_COVERAGE)
        n_dom = np.maximum(8, np.round(cov * 2.0 * r_nodes[sel] * zone / dom_r**2)).astype(int)
        layer = np.repeat(sel, n_dom)
        radius = r_nodes[layer]
        dz = zone / np.repeat(n_dom, n_dom)
        z0 = h + np.concatenate([(np.arange(n) + 0.5) * zone / n for n in n_dom])
        order = np.lexsort((rng.random(len(layer)), radius))  # inner layers first
        pos, placed = tk.place_doms(radius[order], z0[order], dz[order], np.zeros(len(order)),
                                    np.full(len(order), 2.0 * math.pi), np.full(len(order), 2.0),
                                    np.uint64(rng.integers(2**63)), 60, 3.0 * dom_r, 0.01, True, 1.0 / tan_c, 30.0, 0.0)
        cells = layer[order][placed].astype(np.int64)
        dropped = int((~placed).sum())
        r = np.hypot(pos[:, 0], pos[:, 1])
        t_direct = (pos[:, 2] - r / tan_c + r / sin_c * n_group) / 0.299792458
        # the track runs along x (the tracker bins DOMs in vertical columns: a vertical track would
        # put all DOMs of a layer into the few columns around it): (x, y, z) -> (z, x, y)
        cos_p, sin_p = pos[:, 0] / r, pos[:, 1] / r
        pos = np.ascontiguousarray(pos[:, [2, 0, 1]])
        frame = np.zeros((len(pos), 3, 3))
        frame[:, 0, 1] = cos_p  # e1: from the track to the DOM
        frame[:, 0, 2] = sin_p
        frame[:, 1, 1] = -sin_p  # e2 = e3 × e1
        frame[:, 1, 2] = cos_p
        frame[:, 2, 0] = 1.0  # e3: the track direction
        n_ph = int(round(frac * n_photons))
        cov_real = float(np.sum(dom_r**2 / (2.0 * r * zone)))
        p = _Pass("muon", name, boost, n_ph, pos, cells, frame, t_direct, {"kind": "muon", "length": length},
                  offset, dropped, cov_real)
        offset += 1 + n_ph // BATCH_PHOTONS
        passes.append(p)
        log.info("muon pass %s: %d layers, %d DOMs (%d dropped), coverage %.4f, %d photons",
                 name, len(sel), len(pos), dropped, p.coverage, n_ph)
    return passes


def _shower_passes(binning: TableBinning, water: WaterOptics, n_photons: int, dom_r: float, wl: tuple,
                   n_group: float, seed: int, batch_offset: int) -> list[_Pass]:
    d_nodes = np.asarray(binning.shower_d)
    cd_nodes = np.asarray(binning.shower_cd)
    cusp = 1.0 / float(water.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
    y_nodes = cd_to_y(cd_nodes, cusp)
    # the k DOMs of a node on k rings spread symmetrically over ±1/4 of the distance to the
    # neighbouring nodes in y (room for more DOMs; the mean offset is zero and the bias of the
    # average second order, ~(6.03·Δy/4)²/6 < 0.5 %); a single DOM sits on the node, none off
    # the cusp node, whose value is a sharp peak
    jitter = 0.25 * np.minimum(np.diff(np.concatenate([[y_nodes[0] - 1.0], y_nodes])),
                               np.diff(np.concatenate([y_nodes, [y_nodes[-1] + 1.0]])))
    jitter[np.argmin(np.abs(y_nodes))] = 0.0
    mid = 0.5 * (cd_nodes[1:] + cd_nodes[:-1])
    widths = np.diff(np.concatenate([[-1.0], mid, [1.0]]))  # cosθ range nearest to each node
    n_cd = len(cd_nodes)
    rng = np.random.default_rng([seed, 2])
    passes = []
    offset = batch_offset
    groups = []
    for name, d_lo, d_hi, boost, frac in _SHOWER_PASSES:
        sel = np.flatnonzero((d_nodes > d_lo) & (d_nodes <= d_hi))
        if name == "inner":
            # one pass per inner layer: their DOMs cover several % of the sky each, and all
            # cosθ_d nodes need a DOM
            groups += [(f"inner{k}", sel[k:k + 1], boost, frac / max(1, len(sel))) for k in range(len(sel))]
        elif len(sel):
            groups.append((name, sel, boost, frac))
    for name, sel, boost, frac in groups:
        a = _expected_fraction(d_nodes[sel], water, boost, *wl)
        cov = _layer_coverage(a, d_nodes[sel], PASS_COVERAGE)
        n_total = np.round(cov * 4.0 * d_nodes[sel] ** 2 / dom_r**2)
        dist, cosd, cell, jit = [], [], [], []
        for layer, nt in zip(sel, n_total):
            # half of the DOMs uniform in solid angle, half shared equally by the nodes (the nodes
            # at the cusp are close together but see the most light)
            per_bin = np.maximum(1, np.round(nt * (0.25 * widths + 0.5 / n_cd))).astype(int)
            for j in range(n_cd):
                k = per_bin[j]
                cosd.append(np.full(k, cd_nodes[j]))
                jit.append(jitter[j] * ((2.0 * np.arange(k) + 1.0) / k - 1.0))
                dist.append(np.full(k, d_nodes[layer]))
                cell.append(np.full(k, layer * n_cd + j))
        dist, cosd, cell, jit = (np.concatenate(v) for v in (dist, cosd, cell, jit))
        # inner layers first (they are the most crowded), random order within a layer
        order = np.lexsort((rng.random(len(dist)), dist))
        sep = np.clip(0.1 * dist[order], 3.0 * dom_r, 1.0)
        sin_t = np.sqrt(np.maximum(1.0 - cosd[order] ** 2, 1e-4))
        phi0, width = _sectors(np.searchsorted(d_nodes, dist[order]), 3.0 * dom_r / (dist[order] * sin_t))
        pos, placed = tk.place_doms(dist[order], cd_to_y(cosd[order], cusp) + jit[order], np.zeros(len(order)), phi0, width, sep,
                                    np.uint64(rng.integers(2**63)), 60, 3.0 * dom_r, 0.0, False, 0.0, 30.0, cusp)
        cells = cell[order][placed].astype(np.int64)
        dropped = int((~placed).sum())
        r = np.linalg.norm(pos, axis=1)
        e3 = pos / r[:, None]
        e1 = np.array([0.0, 0.0, 1.0])[None, :] - e3[:, 2:3] * e3
        nn = np.linalg.norm(e1, axis=1)
        bad = nn < 1e-9
        e1[bad] = np.array([1.0, 0.0, 0.0])
        nn[bad] = 1.0
        e1 /= nn[:, None]
        e2 = np.cross(e3, e1)
        frame = np.ascontiguousarray(np.stack([e1, e2, e3], axis=1))
        t_direct = r * n_group / 0.299792458
        n_ph = int(round(frac * n_photons))
        cov_real = float(np.sum(dom_r**2 / (4.0 * r * r)))
        p = _Pass("shower", name, boost, n_ph, pos, cells, frame, t_direct, {"kind": "shower"}, offset, dropped,
                  cov_real)
        offset += 1 + n_ph // BATCH_PHOTONS
        passes.append(p)
        log.info("shower pass %s: %d layers, %d DOMs (%d dropped), coverage %.4f, %d photons",
                 name, len(sel), len(pos), dropped, p.coverage, n_ph)
    return passes


# ----------------------------------------------------------------------------------- running
#: Photons per point shower of the builder's line of showers (muon-shower table).
LINE_PHOTONS_PER_POINT = 8


def _shower_line_emitters(n_photons: int, length: float, seed: int):
    """A line of point-like EM showers along x on [0, length] emitting ``n_photons`` in all
    (:data:`LINE_PHOTONS_PER_POINT` each), at stratified random positions (one per sub-segment
    of equal length), each at the time a β = 1 muon passes it: the light of a uniform line
    source with the showers' angular profile about the line (the tracker's point showers,
    ``long_scale`` 0). One event (exact photon counts)."""
    from km3sim.propagation.photons import EMITTER_SHOWER, Emitters

    k = max(1, n_photons // LINE_PHOTONS_PER_POINT)
    counts = np.full(k, n_photons // k, dtype=np.float64)
    counts[: n_photons - int(counts.sum())] += 1.0
    rng = np.random.default_rng([int(seed) & 0x7FFFFFFFFFFFFFFF, 7])
    z = (np.arange(k) + rng.random(k)) * (length / k)
    pos = np.zeros((k, 3))
    pos[:, 0] = z
    dirs = np.zeros((k, 3))
    dirs[:, 0] = 1.0
    zeros = np.zeros(k)
    return Emitters(
        event_offsets=np.array([0, k], dtype=np.int64), kind=np.full(k, EMITTER_SHOWER, dtype=np.int64),
        pos=pos, dir=dirs, time=z / 0.299792458, length=zeros, energy=zeros, energy_lost=zeros, mean_photons=counts,
        rel_sigma=zeros, long_shape=np.ones(k), long_scale=zeros, origin=np.zeros(k, dtype=np.int64),
    )


def _run_batches(args, progress=None) -> tuple:
    """Worker: track the photons of some batches of one pass and histogram them
    (``progress(n)`` after each batch of n photons, in this process)."""
    (p, batches, water, tracker_kw, seeds, n_cells, binning_d) = args
    from km3sim.propagation.photons import EMITTER_MUON, EMITTER_SHOWER, PhotonTracker

    binning = TableBinning.from_dict(binning_d)
    fake = _fibonacci_sphere(N_FAKE_PMTS)
    coef, area = _fake_pmt_coef(fake, tracker_kw["dom_radius_m"])
    n_dom = len(p.dom_pos)
    if p.boost != 1.0:
        water = dataclasses.replace(water, absorption_scale=water.absorption_scale * p.boost)
    # every DOM has the same fake PMTs, whose Σ_k p_k ≤ 0.995 _fake_pmt_coef ensures
    tracker = PhotonTracker(
        water, p.dom_pos, np.arange(n_dom + 1, dtype=np.int64) * N_FAKE_PMTS, np.tile(fake, (n_dom, 1)),
        secondaries=False, pmt_area_m2=area, check_detection_probability=False, **tracker_kw,
    )
    real_coef = PHOTOCATHODE_AREA_M2 / (math.pi * tracker_kw["dom_radius_m"] ** 2)
    acc = _acceptance_grid()
    t_edges = np.asarray(binning.t_edges)
    hist = np.zeros((n_cells, binning.n_theta, binning.n_phi, len(t_edges) - 1), dtype=np.int64)
    n_hits = np.zeros(n_cells, dtype=np.int64)
    sum_w = np.zeros(n_cells, dtype=np.int64)
    sum_w2 = np.zeros(n_cells, dtype=np.int64)
    n_emitted = 0
    for b, n_ph in batches:
        if p.emitter["kind"] == "muon":
            em = PhotonTracker.single_emitter(EMITTER_MUON, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], n_ph,
                                              length=p.emitter["length"])
        elif p.emitter["kind"] == "shower_line":
            em = _shower_line_emitters(n_ph, p.emitter["length"], seeds[b])
        else:
            em = PhotonTracker.single_emitter(EMITTER_SHOWER, [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], n_ph,
                                              long_shape=1.0, long_scale=0.0)
        hits = tracker.track(em, np.array([seeds[b]], dtype=np.uint64), exact_count=True)
        n_emitted += int(hits.n_emitted.sum())
        if p.boost == 1.0:
            weight = np.ones(len(hits))
        else:
            # survival exp(−s/λ) = exp(−s/(kλ)) in the tracker × this weight
            weight = np.exp(-hits.path_length * (p.boost - 1.0) * tracker.inverse_absorption_length(hits.wavelength))
        tk.fill_histogram(
            hist, n_hits, sum_w, sum_w2, hits.dom, hits.time, np.ascontiguousarray(hits.direction), np.ascontiguousarray(weight),
            p.dom_cell, p.dom_frame, p.dom_t_direct, fake, coef, real_coef, -1.0, 20.0, acc,
            binning.n_theta, binning.n_phi, t_edges,
        )
        if progress is not None:
            progress(n_ph)
    return hist, n_hits, sum_w, sum_w2, n_emitted


def _cell_doms(passes: list[_Pass], n_cells: int) -> np.ndarray:
    n = np.zeros(n_cells, dtype=np.int64)
    for p in passes:
        n += np.bincount(p.dom_cell, minlength=n_cells)
    return n


def build_light_tables(
    water: WaterOptics,
    output: str | os.PathLike | None = None,
    *,
    site: str = "custom",
    quality: str = "coarse",
    n_photons: int | None = None,
    seed: int = 1,
    scattering: bool = True,
    wavelength_min_nm: float = 300.0,
    wavelength_max_nm: float = 700.0,
    max_distance_m: float = 300.0,
    dom_radius_m: float = 0.216,
    table_dir: str | os.PathLike | None = None,
    jobs: int = 1,
    progress=None,
) -> Path:
    """Build the muon and shower light tables with the photon tracker and write them (HDF5).

    Parameters
    ----------
    water : WaterOptics
        Water model (site pressure, absorption and scattering scales).
    output : path-like, optional
        Output file; default: the cache directory (:func:`table_cache_dir` of ``table_dir``)
        with :func:`table_file_name`.
    site : str
        Name recorded in the file and its default name.
    quality : {'coarse', 'medium', 'full'}
        Binning (:func:`binning_for`) and default number of photons (:func:`default_photons`).
    n_photons : int, optional
        Photons tracked per table (muon, shower) instead of the quality's default.
    seed : int
        Seed of the DOM layout and of the tracker batches.
    scattering, wavelength_min_nm, wavelength_max_nm, max_distance_m, dom_radius_m
        Tracker settings (see :class:`~km3sim.propagation.photons.PhotonTracker`); the
        ``direct_light`` stage must use the same.
    jobs : int
        Worker processes (batches are summed in fixed point, so the file does not depend on it).
    progress : callable, optional
        ``progress(done_photons, total_photons)``.

    Returns
    -------
    Path of the written file.
    """
    t_start = time.perf_counter()
    physics = physics_parameters(water, scattering=scattering, wavelength_min_nm=wavelength_min_nm,
                                 wavelength_max_nm=wavelength_max_nm, max_distance_m=max_distance_m,
                                 dom_radius_m=dom_radius_m)
    n_ref = float(water.refractive_index_phase(REFERENCE_WAVELENGTH_NM))
    n_group = float(water.refractive_index_group(REFERENCE_WAVELENGTH_NM))
    sin_c = math.sqrt(1.0 - 1.0 / n_ref**2)
    tan_c = sin_c * n_ref
    binning = binning_for(quality, max_distance_m, n_ref)
    n_mu, n_sh = default_photons(quality)
    if n_photons is not None:
        if n_photons < 1000:
            raise LightTableError(f"n_photons must be at least 1000, got {n_photons}")
        n_mu = n_sh = int(n_photons)
    n_ms = n_mu  # muon-shower table: as many photons as the muon table
    build = {"quality": quality, "binning": binning.to_dict(), "n_photons_muon": n_mu, "n_photons_shower": n_sh,
             "n_photons_muon_showers": n_ms, "line_photons_per_point": LINE_PHOTONS_PER_POINT,
             "seed": int(seed), "batch_photons": BATCH_PHOTONS, "n_fake_pmts": N_FAKE_PMTS,
             "pass_coverage": PASS_COVERAGE}
    if output is None:
        output = table_cache_dir(table_dir) / table_file_name(site, quality, physics, build)
    output = Path(output)
    wl = (wavelength_min_nm, wavelength_max_nm)
    passes = _muon_passes(binning, water, n_mu, max_distance_m, dom_radius_m, wl, sin_c, tan_c, n_group, seed)
    offset = max(p.batch_offset + 1 + p.n_photons // BATCH_PHOTONS for p in passes)
    # muon showers: the muon passes' DOM layouts, a line of showers instead of the muon, own photons
    for p in list(passes):
        n_ph = int(round(p.n_photons * n_ms / n_mu))
        passes.append(dataclasses.replace(p, table="muon_showers", n_photons=n_ph, batch_offset=offset,
                                          emitter={"kind": "shower_line", "length": p.emitter["length"]}))
        offset += 1 + n_ph // BATCH_PHOTONS
    passes += _shower_passes(binning, water, n_sh, dom_radius_m, wl, n_group, seed, offset)
    n_t = len(binning.t_edges) - 1
    n_cells = {"muon": len(binning.muon_r), "muon_showers": len(binning.muon_r),
               "shower": len(binning.shower_d) * len(binning.shower_cd)}
    hist = {k: np.zeros((n, binning.n_theta, binning.n_phi, n_t), dtype=np.int64) for k, n in n_cells.items()}
    n_hits = {k: np.zeros(n, dtype=np.int64) for k, n in n_cells.items()}
    sum_w = {k: np.zeros(n, dtype=np.int64) for k, n in n_cells.items()}
    sum_w2 = {k: np.zeros(n, dtype=np.int64) for k, n in n_cells.items()}
    n_emit = {k: 0 for k in n_cells}
    tracker_kw = dict(dom_radius_m=dom_radius_m, wavelength_min_nm=wavelength_min_nm,
                      wavelength_max_nm=wavelength_max_nm, max_distance_m=max_distance_m, scattering=scattering,
                      grid_cell_m=5.0, reference_wavelength_nm=REFERENCE_WAVELENGTH_NM)
    from km3sim.random import event_seeds

    n_batches_all = max(p.batch_offset + 1 + p.n_photons // BATCH_PHOTONS for p in passes)
    seeds = event_seeds(seed, 0, np.arange(n_batches_all, dtype=np.int64), "light_tables")
    tasks = []
    for p in passes:
        sizes = [BATCH_PHOTONS] * (p.n_photons // BATCH_PHOTONS)
        if p.n_photons % BATCH_PHOTONS:
            sizes.append(p.n_photons % BATCH_PHOTONS)
        batches = [(p.batch_offset + i, n) for i, n in enumerate(sizes)]
        n_chunks = max(1, min(len(batches), jobs))  # one tracker per chunk (its set-up takes ~1 s)
        for c in range(n_chunks):
            part = batches[c::n_chunks]
            if part:
                tasks.append((p, part, water, tracker_kw, seeds, n_cells[p.table], binning.to_dict()))
    total = sum(p.n_photons for p in passes)
    done = 0

    def collect(task, res, counted=False):
        nonlocal done
        h, nh, sw, sw2, ne = res
        hist[task[0].table] += h
        n_hits[task[0].table] += nh
        sum_w[task[0].table] += sw
        sum_w2[task[0].table] += sw2
        n_emit[task[0].table] += ne
        if not counted:
            done += sum(n for _, n in task[1])
            if progress is not None:
                progress(done, total)

    def batch_done(n):
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if jobs <= 1:
        for task in tasks:
            t0 = time.perf_counter()
            collect(task, _run_batches(task, batch_done), counted=True)
            log.info("%s pass %s: %d photons in %.1f s", task[0].table, task[0].name,
                     sum(n for _, n in task[1]), time.perf_counter() - t0)
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = {ex.submit(_run_batches, task): task for task in tasks}
            for f in concurrent.futures.as_completed(futs):
                collect(futs[f], f.result())
    # normalisation
    from km3sim.propagation.photons import PhotonTracker

    probe = PhotonTracker(water, np.zeros((1, 3)), np.array([0, 1]), np.array([[0.0, 0.0, 1.0]]), secondaries=False,
                          **{k: v for k, v in tracker_kw.items() if k != "grid_cell_m"})
    per_metre = probe.photons_per_metre
    mu_passes = [p for p in passes if p.table == "muon"]
    ms_passes = [p for p in passes if p.table == "muon_showers"]
    sh_passes = [p for p in passes if p.table == "shower"]
    dom_mu = _cell_doms(mu_passes, n_cells["muon"])
    dom_ms = _cell_doms(ms_passes, n_cells["muon_showers"])
    dom_sh = _cell_doms(sh_passes, n_cells["shower"])
    # muon: npe of an infinite track with per_metre photons/m = hits per DOM × per_metre × L / N;
    # muon showers the same per metre of Cherenkov track length per metre (same spectrum, β = 1)
    f_mu = np.zeros(n_cells["muon"])
    for p in mu_passes:
        for c in np.unique(p.dom_cell):
            f_mu[c] = per_metre * p.emitter["length"] / p.n_photons / dom_mu[c]
    f_ms = np.zeros(n_cells["muon_showers"])
    for p in ms_passes:
        for c in np.unique(p.dom_cell):
            f_ms[c] = per_metre * p.emitter["length"] / p.n_photons / dom_ms[c]
    f_sh = np.zeros(n_cells["shower"])
    per_gev = per_metre * physics["electron_track_length_m_per_gev"]
    for p in sh_passes:
        for c in np.unique(p.dom_cell):
            f_sh[c] = per_gev / p.n_photons / dom_sh[c]
    if any(n_emit[k] != sum(p.n_photons for p in passes if p.table == k) for k in n_emit):
        raise LightTableError("photon tracker emitted an unexpected number of photons")  # exact_count was ignored
    data = {}
    filled = _fill_empty_shower_cells(hist["shower"], f_sh, dom_sh, binning, n_ref)
    for name, f, ndom in (("muon", f_mu, dom_mu), ("muon_showers", f_ms, dom_ms), ("shower", f_sh, dom_sh)):
        hsum = hist[name].astype(np.float64) / tk.FIXED_POINT_SCALE * f[:, None, None, None]
        npe = hsum.sum(axis=-1)
        cdf = np.concatenate([np.zeros(hsum.shape[:-1] + (1,)), np.cumsum(hsum, axis=-1)], axis=-1)
        tot = cdf[..., -1:]
        empty = tot[..., 0] <= 0.0
        cdf = np.where(tot > 0, cdf / np.where(tot > 0, tot, 1.0), 0.0)
        k0 = int(np.searchsorted(binning.t_edges, 0.0, side="right"))  # empty cells: all at t_res = 0
        cdf[empty, k0:] = 1.0
        cdf[..., -1] = 1.0
        sw = sum_w[name].astype(np.float64)
        n_eff = np.where(sum_w2[name] > 0, sw * sw / np.maximum(sum_w2[name], 1) / tk.FIXED_POINT_SCALE, 0.0)
        data[name] = {"npe": npe, "cdf": cdf.astype(np.float32), "n_hits": n_hits[name], "n_eff": n_eff,
                      "n_doms": ndom}
    data["shower"]["filled"] = filled
    build_time = time.perf_counter() - t_start
    attrs = {
        "format": TABLE_FORMAT,
        "format_version": TABLE_FORMAT_VERSION,
        "km3sim_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "site": site,
        "quality": quality,
        "physics": physics,
        "physics_hash": physics_hash(physics),
        "build": build,
        "build_hash": _hash(build),
        "build_time_s": build_time,
        "jobs": int(jobs),
        "n_photons_total": int(n_mu + n_ms + n_sh),
        "photons_per_metre": per_metre,
        "refractive_index_phase": n_ref,
        "refractive_index_group": n_group,
        "passes": [{"table": p.table, "name": p.name, "absorption_length_factor": p.boost, "photons": p.n_photons,
                    "doms": int(len(p.dom_pos)), "doms_dropped": int(p.n_dropped), "coverage": p.coverage,
                    "emitter_length_m": p.emitter.get("length", 0.0)}
                   for p in passes],
    }
    _write_tables(output, attrs, binning, data)
    log.info("light tables written to %s in %.1f s", output, build_time)
    return output


def _fill_empty_shower_cells(hist: np.ndarray, factor: np.ndarray, n_doms: np.ndarray, binning: TableBinning,
                             n_ref: float) -> np.ndarray:
    """Give shower cells that got no builder DOM (crowded small distances) the values of their
    neighbours at the same D: the npe log-linearly interpolated in y between the nearest filled
    cosθ_d nodes (per orientation and time bin), in place; returns the mask of filled cells."""
    n_d = len(binning.shower_d)
    n_cd = len(binning.shower_cd)
    y = cd_to_y(np.asarray(binning.shower_cd), 1.0 / n_ref)
    filled = np.zeros(n_d * n_cd, dtype=bool)
    h = hist.reshape(n_d, n_cd, -1)
    for i in range(n_d):
        have = np.flatnonzero(n_doms[i * n_cd:(i + 1) * n_cd] > 0)
        if len(have) == 0 or len(have) == n_cd:
            continue
        values = h[i].astype(np.float64) * factor[i * n_cd:(i + 1) * n_cd, None]
        for j in np.setdiff1d(np.arange(n_cd), have):
            lo = have[have < j]
            hi = have[have > j]
            if len(lo) and len(hi):
                a, b = lo[-1], hi[0]
                f = (y[j] - y[a]) / (y[b] - y[a])
                va, vb = values[a], values[b]
                with np.errstate(divide="ignore"):
                    v = np.where((va > 0) & (vb > 0), np.exp((1 - f) * np.log(np.where(va > 0, va, 1.0))
                                                             + f * np.log(np.where(vb > 0, vb, 1.0))),
                                 (1 - f) * va + f * vb)
            else:
                v = values[lo[-1] if len(lo) else hi[0]]
            h[i, j] = np.round(v).astype(np.int64)
            factor[i * n_cd + j] = 1.0
            filled[i * n_cd + j] = True
    return filled


def _write_tables(path: Path, attrs: dict, binning: TableBinning, data: dict) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            t_edges = np.asarray(binning.t_edges)
            theta = np.linspace(0.0, math.pi, binning.n_theta)
            phi = np.linspace(0.0, math.pi, binning.n_phi)
            g = f.create_group("muon")
            g.attrs["description"] = ("expected npe of a PMT from an infinite muon track (beta = 1, Frank-Tamm x QE, no "
                                      "secondaries) and cumulative time-residual distribution")
            _ds(g, "r_m", np.asarray(binning.muon_r), "m", "closest distance of the DOM centre to the track (nodes)")
            _ds(g, "theta_rad", theta, "rad", "PMT axis polar angle w.r.t. the track direction (nodes)")
            _ds(g, "phi_rad", phi, "rad", "PMT axis azimuth about the track, 0 = pointing away from the track (nodes)")
            _ds(g, "t_edges_ns", t_edges, "ns", "time-residual bin edges w.r.t. the direct Cherenkov time at the DOM centre")
            _ds(g, "npe", data["muon"]["npe"], "", "expected npe, shape (r, theta, phi)", **kw)
            _ds(g, "cdf", data["muon"]["cdf"], "", "cumulative time-residual distribution at t_edges", **kw)
            _ds(g, "n_hits", data["muon"]["n_hits"], "", "photons detected by the builder's DOMs per R node")
            _ds(g, "n_eff", data["muon"]["n_eff"], "", "effective number of photons (sum w)^2/sum w^2 per R node: "
                "the relative statistical error of the npe is about 1/sqrt(n_eff)")
            _ds(g, "n_doms", data["muon"]["n_doms"], "", "builder DOMs per R node")
            g = f.create_group("muon_showers")
            g.attrs["description"] = (
                "expected npe of a PMT from an infinite line of point-like EM showers along a muon track (Radel-Wiebusch "
                "angular profile about the track), per metre of Cherenkov track length per metre of track, and "
                "cumulative time-residual distribution; same nodes, orientation convention and direct time as the muon "
                "table")
            _ds(g, "r_m", np.asarray(binning.muon_r), "m", "closest distance of the DOM centre to the track (nodes)")
            _ds(g, "npe", data["muon_showers"]["npe"], "", "expected npe per (m of Cherenkov track length per m), "
                "shape (r, theta, phi)", **kw)
            _ds(g, "cdf", data["muon_showers"]["cdf"], "", "cumulative time-residual distribution at the muon t_edges",
                **kw)
            _ds(g, "n_hits", data["muon_showers"]["n_hits"], "", "photons detected by the builder's DOMs per R node")
            _ds(g, "n_eff", data["muon_showers"]["n_eff"], "", "effective number of photons per R node")
            _ds(g, "n_doms", data["muon_showers"]["n_doms"], "", "builder DOMs per R node")
            g = f.create_group("shower")
            g.attrs["description"] = ("expected npe per GeV (electron-equivalent) of a PMT from a point-like EM shower "
                                      "and cumulative time-residual distribution")
            cd_nodes = np.asarray(binning.shower_cd)
            n_cd = len(cd_nodes)
            shape = (len(binning.shower_d), n_cd, binning.n_theta, binning.n_phi)
            _ds(g, "d_m", np.asarray(binning.shower_d), "m", "distance of the DOM centre from the shower point (nodes)")
            _ds(g, "cd", cd_nodes, "", "cos(shower axis, DOM - shower point) (nodes; npe interpolated log-linearly in "
                "y = sign(cd - 1/n)|cd - 1/n|^0.3)")
            g["cd"].attrs["cusp"] = attrs["refractive_index_phase"] ** -1
            g["cd"].attrs["power"] = CD_POWER
            _ds(g, "theta_rad", theta, "rad", "PMT axis polar angle w.r.t. the direction shower point -> DOM (nodes)")
            _ds(g, "phi_rad", phi, "rad", "PMT axis azimuth, 0 = towards the shower axis side (nodes)")
            _ds(g, "t_edges_ns", t_edges, "ns", "time-residual bin edges w.r.t. D*n_g/c")
            _ds(g, "npe", data["shower"]["npe"].reshape(shape), "1/GeV", "expected npe per GeV, shape (d, cd, theta, phi)", **kw)
            _ds(g, "cdf", data["shower"]["cdf"].reshape(shape + (len(t_edges),)), "", "cumulative time-residual distribution", **kw)
            _ds(g, "n_hits", data["shower"]["n_hits"].reshape(shape[:2]), "", "photons detected per (d, cd) cell")
            _ds(g, "n_eff", data["shower"]["n_eff"].reshape(shape[:2]), "", "effective number of photons per (d, cd) cell")
            _ds(g, "n_doms", data["shower"]["n_doms"].reshape(shape[:2]), "", "builder DOMs per (d, cd) cell")
            _ds(g, "filled", data["shower"]["filled"].reshape(shape[:2]), "",
                "cells without a builder DOM, filled from the neighbouring cos nodes of the same distance")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _ds(g, name, data, unit, description, **kw):
    ds = g.create_dataset(name, data=data, **kw)
    ds.attrs["unit"] = unit
    ds.attrs["description"] = description


# ----------------------------------------------------------------------------------- loading
def _read_root_attrs(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {}
            for k, v in f.attrs.items():
                if isinstance(v, bytes):
                    v = v.decode()
                if isinstance(v, str) and v[:1] in "[{":
                    v = json.loads(v)
                elif isinstance(v, np.generic):
                    v = v.item()
                attrs[k] = v
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise LightTableError(f"light-table file {path} cannot be read (corrupt or not HDF5): {exc}") from exc
    if attrs.get("format") != TABLE_FORMAT:
        raise LightTableError(f"{path} is not a km3sim light-table file (format attribute {attrs.get('format')!r})")
    return attrs


def _pchip_fine(x_nodes: np.ndarray, values: np.ndarray, n_fine: int = 4096):
    """N(x) on a fine uniform grid: monotone cubic (PCHIP) interpolation of ln N in ln x."""
    from scipy.interpolate import PchipInterpolator

    v = np.maximum(values, 1e-300)
    f = PchipInterpolator(np.log(x_nodes), np.log(v))
    grid = np.linspace(x_nodes[0], x_nodes[-1], n_fine)
    fine = np.exp(f(np.log(grid)))
    return float(grid[0]), float((n_fine - 1) / (grid[-1] - grid[0])), np.ascontiguousarray(fine), grid


@dataclass
class _KernelTable:
    nodes: np.ndarray            # R or D nodes
    norm_x0: float
    norm_inv_dx: float
    norm_fine: np.ndarray        # N(x) on the fine grid
    norm_grid: np.ndarray
    shape: np.ndarray            # flat, npe / N(node)
    cdf: np.ndarray              # (n_cells, n_t + 1) float64
    x_max: float


class LightTables:
    """Muon, muon-shower and shower light tables loaded from a file (see the module docstring).

    ``muon``, ``muon_showers`` and ``shower`` are the kernels' views (smooth normalisation,
    shape, time CDFs); ``muon_npe``, ``muon_showers_npe``, ``shower_npe`` the tabulated npe.

    Use :func:`load_light_tables`, which caches loaded files per process.
    """

    def __init__(self, path: Path, attrs: dict, arrays: dict):
        self.path = Path(path)
        self.attrs = attrs
        self.physics = attrs["physics"]
        self.build = attrs["build"]
        self.n_phase = float(attrs["refractive_index_phase"])
        self.n_group = float(attrs["refractive_index_group"])
        self.sin_c = math.sqrt(1.0 - 1.0 / self.n_phase**2)
        self.tan_c = self.sin_c * self.n_phase
        self.t_edges = np.ascontiguousarray(arrays["muon/t_edges_ns"], dtype=np.float64)
        self.n_theta = len(arrays["muon/theta_rad"])
        self.n_phi = len(arrays["muon/phi_rad"])
        self.muon_npe = arrays["muon/npe"]
        self.muon_showers_npe = arrays["muon_showers/npe"]
        self.shower_npe = arrays["shower/npe"]
        self.muon_r = np.ascontiguousarray(arrays["muon/r_m"], dtype=np.float64)
        self.shower_d = np.ascontiguousarray(arrays["shower/d_m"], dtype=np.float64)
        self.cd_nodes = np.ascontiguousarray(arrays["shower/cd"], dtype=np.float64)
        self.cd_cusp = 1.0 / self.n_phase
        self.cd_y = np.ascontiguousarray(cd_to_y(self.cd_nodes, self.cd_cusp))
        self.muon_n_hits = arrays["muon/n_hits"]
        self.shower_n_hits = arrays["shower/n_hits"]
        self.muon_n_eff = arrays["muon/n_eff"]
        self.muon_showers_n_hits = arrays["muon_showers/n_hits"]
        self.muon_showers_n_eff = arrays["muon_showers/n_eff"]
        self.shower_n_eff = arrays["shower/n_eff"]
        n_t1 = len(self.t_edges)
        self.muon = self._kernel_table(self.muon_r, self.muon_npe, arrays["muon/cdf"], n_t1)
        self.muon_showers = self._kernel_table(self.muon_r, self.muon_showers_npe, arrays["muon_showers/cdf"], n_t1)
        self.shower = self._kernel_table(self.shower_d, self.shower_npe, arrays["shower/cdf"], n_t1)
        sh_shape = self.shower.shape
        self.shower_log_shape = np.ascontiguousarray(np.log(np.where(sh_shape > 0, sh_shape, 1.0)))
        self.shower_max_shape = np.ascontiguousarray(sh_shape.reshape(len(self.shower_d), len(self.cd_nodes), -1).max(axis=2))
        self._shower_envelope = None

    @staticmethod
    def _kernel_table(nodes, npe, cdf, n_t1) -> _KernelTable:
        n_nodes = len(nodes)
        per_node = npe.reshape(n_nodes, -1)
        norm = per_node.mean(axis=1)
        x0, inv_dx, fine, grid = _pchip_fine(nodes, norm)
        shape = per_node / np.where(norm > 0, norm, 1.0)[:, None]
        return _KernelTable(nodes, x0, inv_dx, fine, grid, np.ascontiguousarray(shape.reshape(-1), dtype=np.float64),
                            np.ascontiguousarray(cdf.reshape(-1, n_t1), dtype=np.float64), float(nodes[-1]))

    # ----------------------------------------------------------------- checks
    def check_physics(self, expected: dict, user: str = "the direct_light stage") -> None:
        """Raise :class:`LightTableError` naming the file and every parameter that differs."""
        diffs = []
        for k in sorted(set(expected) | set(self.physics)):
            a, b = self.physics.get(k), expected.get(k)
            if isinstance(a, float) or isinstance(b, float):
                same = a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
            else:
                same = a == b
            if not same:
                diffs.append(f"{k}: table {a!r}, wanted {b!r}")
        if diffs:
            raise LightTableError(
                f"light-table file {self.path} was built for another water/detection model than {user} uses ("
                + "; ".join(diffs) + "). Build a matching table with `km3sim tables build` (e.g. --site "
                + ("arca" if expected.get("pressure_atm", 240.0) > 300 else "orca") + ") or use mode 'direct'/'photons'"
            )

    # ----------------------------------------------------------------- helpers
    def muon_norm(self, r):
        """Smooth normalisation N(R) of the muon table (mean npe over orientation nodes)."""
        return np.interp(np.asarray(r, dtype=float), self.muon.norm_grid, self.muon.norm_fine, right=0.0)

    def shower_reach(self, scale_gev, npe_cut: float) -> np.ndarray:
        """Distance [m] beyond which a shower of ``scale_gev`` electron-equivalent GeV gives every PMT
        less than ``npe_cut`` expected pe (per light point; non-increasing upper envelope of the table)."""
        if self._shower_envelope is None:
            t = self.shower
            n_d = len(t.nodes)
            smax = t.shape.reshape(n_d, -1).max(axis=1)
            idx = np.clip(np.searchsorted(t.nodes, t.norm_grid, side="right") - 1, 0, n_d - 2)
            env = t.norm_fine * np.maximum(smax[idx], smax[idx + 1])
            self._shower_envelope = np.maximum.accumulate(env[::-1])[::-1]
        env = self._shower_envelope
        grid = self.shower.norm_grid
        s = np.atleast_1d(np.asarray(scale_gev, dtype=np.float64))
        i = np.searchsorted(-env, -npe_cut / np.maximum(s, 1e-300), side="right")
        return np.ascontiguousarray(np.where(i < len(env), grid[np.minimum(i, len(env) - 1)], self.shower.x_max))

    def summary(self) -> dict:
        return {
            "file": str(self.path),
            "site": self.attrs.get("site"),
            "quality": self.attrs.get("quality"),
            "physics_hash": self.attrs.get("physics_hash"),
            "build_hash": self.attrs.get("build_hash"),
            "n_photons": self.attrs.get("n_photons_total"),
        }


_LOADED: dict = {}


def load_light_tables(path: str | os.PathLike) -> LightTables:
    """Load (once per process and file version) and check a light-table file.

    Raises
    ------
    LightTableError
        If the file is missing, unreadable, of another format, or its datasets are inconsistent.
    """
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise LightTableError(f"light-table file {path} does not exist; build it with `km3sim tables build --output {path}`")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _LOADED:
        return _LOADED[key]
    attrs = _read_root_attrs(path)
    if int(attrs.get("format_version", -1)) != TABLE_FORMAT_VERSION:
        raise LightTableError(f"light-table file {path} has format version {attrs.get('format_version')}, "
                              f"this km3sim reads version {TABLE_FORMAT_VERSION}; rebuild it")
    for k in ("physics", "build", "refractive_index_phase", "refractive_index_group"):
        if k not in attrs:
            raise LightTableError(f"light-table file {path} lacks the attribute {k!r}")
    names = ["muon/r_m", "muon/theta_rad", "muon/phi_rad", "muon/t_edges_ns", "muon/npe", "muon/cdf", "muon/n_hits",
             "muon/n_eff", "muon_showers/r_m", "muon_showers/npe", "muon_showers/cdf", "muon_showers/n_hits",
             "muon_showers/n_eff", "shower/d_m", "shower/cd", "shower/t_edges_ns", "shower/npe", "shower/cdf",
             "shower/n_hits", "shower/n_eff"]
    arrays = {}
    try:
        with h5py.File(path, "r") as f:
            for n in names:
                if n not in f:
                    raise LightTableError(f"light-table file {path} lacks the dataset {n!r}")
                arrays[n] = np.asarray(f[n][()])
    except LightTableError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise LightTableError(f"light-table file {path}: cannot read its datasets (corrupt?): {exc}") from exc
    n_r, n_th, n_ph = len(arrays["muon/r_m"]), len(arrays["muon/theta_rad"]), len(arrays["muon/phi_rad"])
    n_t1 = len(arrays["muon/t_edges_ns"])
    n_d, n_cd = len(arrays["shower/d_m"]), len(arrays["shower/cd"])
    checks = [
        ("muon/npe", arrays["muon/npe"].shape == (n_r, n_th, n_ph)),
        ("muon/cdf", arrays["muon/cdf"].shape == (n_r, n_th, n_ph, n_t1)),
        ("muon_showers/r_m", np.array_equal(arrays["muon_showers/r_m"], arrays["muon/r_m"])),
        ("muon_showers/npe", arrays["muon_showers/npe"].shape == (n_r, n_th, n_ph)),
        ("muon_showers/cdf", arrays["muon_showers/cdf"].shape == (n_r, n_th, n_ph, n_t1)),
        ("muon_showers/npe", bool(np.all(np.isfinite(arrays["muon_showers/npe"]))
                                  and np.all(arrays["muon_showers/npe"] >= 0))),
        ("shower/npe", arrays["shower/npe"].shape == (n_d, n_cd, n_th, n_ph)),
        ("shower/cdf", arrays["shower/cdf"].shape == (n_d, n_cd, n_th, n_ph, n_t1)),
        ("shower/t_edges_ns", np.array_equal(arrays["shower/t_edges_ns"], arrays["muon/t_edges_ns"])),
        ("muon/r_m", n_r >= 2 and np.all(np.diff(arrays["muon/r_m"]) > 0)),
        ("shower/d_m", n_d >= 2 and np.all(np.diff(arrays["shower/d_m"]) > 0)),
        ("muon/t_edges_ns", n_t1 >= 3 and np.all(np.diff(arrays["muon/t_edges_ns"]) > 0)),
        ("muon/npe", bool(np.all(np.isfinite(arrays["muon/npe"])) and np.all(arrays["muon/npe"] >= 0))),
        ("shower/npe", bool(np.all(np.isfinite(arrays["shower/npe"])) and np.all(arrays["shower/npe"] >= 0))),
    ]
    bad = [n for n, ok in checks if not ok]
    if bad:
        raise LightTableError(f"light-table file {path} is inconsistent (datasets {bad}); rebuild it")
    tables = LightTables(path, attrs, arrays)
    _LOADED.clear()  # keep one file per process: tables can be large
    _LOADED[key] = tables
    return tables


# ----------------------------------------------------------------------------------- info
def format_info(path: str | os.PathLike) -> str:
    """Human-readable summary of a light-table file (provenance, binning, statistics)."""
    t = load_light_tables(path)
    a = t.attrs
    ph = t.physics
    lines = [
        f"light tables {t.path}",
        f"  format {a['format']} v{a['format_version']}, km3sim {a.get('km3sim_version')}, created {a.get('created')}",
        f"  site {a.get('site')}, quality {a.get('quality')}, build time {a.get('build_time_s', 0):.0f} s "
        f"({a.get('jobs', 1)} job(s)), seed {t.build.get('seed')}",
        f"  water: {ph['pressure_atm']} atm, absorption x{ph['absorption_scale']}, scattering x{ph['scattering_scale']}"
        f" ({'on' if ph['scattering'] else 'off'}); wavelengths {ph['wavelength_min_nm']}-{ph['wavelength_max_nm']} nm; "
        f"max distance {ph['max_distance_m']} m; DOM radius {ph['dom_radius_m']} m",
        f"  physics hash {a['physics_hash'][:16]}, build hash {a['build_hash'][:16]}",
        f"  photons: muon {t.build['n_photons_muon']:.3g}, muon showers {t.build['n_photons_muon_showers']:.3g}, "
        f"shower {t.build['n_photons_shower']:.3g} "
        f"({a.get('photons_per_metre', 0):.0f} QE-weighted photons per metre)",
        f"  muon table: R {t.muon_r[0]:g}-{t.muon_r[-1]:g} m ({len(t.muon_r)} nodes), theta x phi {t.n_theta} x {t.n_phi}, "
        f"{len(t.t_edges) - 1} time bins ({t.t_edges[0]:g} .. {t.t_edges[-1]:g} ns)",
        "  muon-shower table (line of EM showers along the muon, per m of Cherenkov track length per m): same binning",
        f"  shower table: D {t.shower_d[0]:g}-{t.shower_d[-1]:g} m ({len(t.shower_d)} nodes), {len(t.cd_nodes)} cos nodes",
        "  muon npe (mean over the orientation nodes) and detected photons per R node:",
    ]
    for r, n, h, ne in zip(t.muon_r, t.muon_npe.reshape(len(t.muon_r), -1).mean(axis=1), t.muon_n_hits, t.muon_n_eff):
        lines.append(f"    R {r:7.1f} m: mean npe/PMT {n:10.4g}   builder photons {int(h):9d}, effective {ne:9.0f} "
                     f"(stat. error ~{100 / math.sqrt(max(ne, 1)):.1f} %)")
    lines.append("  muon-shower npe (mean over the orientation nodes, per m/m) and detected photons per R node:")
    for r, n, h, ne in zip(t.muon_r, t.muon_showers_npe.reshape(len(t.muon_r), -1).mean(axis=1), t.muon_showers_n_hits,
                           t.muon_showers_n_eff):
        lines.append(f"    R {r:7.1f} m: mean npe/PMT {n:10.4g}   builder photons {int(h):9d}, effective {ne:9.0f} "
                     f"(stat. error ~{100 / math.sqrt(max(ne, 1)):.1f} %)")
    lines.append("  shower npe per GeV (mean over orientations, at the Cherenkov cusp node) and detected photons per D node:")
    peak = int(np.argmin(np.abs(t.cd_nodes - 1.0 / t.n_phase)))
    for i, d in enumerate(t.shower_d):
        n = t.shower_npe[i].reshape(len(t.cd_nodes), -1).mean(axis=1)
        h = int(t.shower_n_hits[i].sum())
        ne = float(t.shower_n_eff[i].sum())
        lines.append(f"    D {d:7.1f} m: {n[peak]:10.4g}/GeV at cos {t.cd_nodes[peak]:.3f}; builder photons {h:9d}, "
                     f"effective {ne:9.0f} (cusp node {t.shower_n_eff[i, peak]:.0f})")
    return "\n".join(lines)
