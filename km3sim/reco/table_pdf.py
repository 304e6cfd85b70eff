"""Likelihood tables of the track fit from the simulation's light tables (``pdf: tables``).

The light tables of :mod:`km3sim.propagation.tables` (built with the photon tracker: Jpp
absorption, Kopelevich scattering, DOM spheres, PMT acceptance; ``km3sim tables build``) hold
for an infinite muon track the expected npe of a PMT and the cumulative distribution of its
time residual as functions of the closest distance R of the DOM centre to the track, the PMT
axis angles θ (from the track direction) and φ (about it, 0 = pointing away from the track),
and the residual t − t_direct (t_direct: the direct Cherenkov time at the DOM centre). This
module turns them into the :class:`~km3sim.reco.pdf.LightTables` of the track fit's kernels
(:mod:`km3sim.reco._kernels`), the JMuonGandalf way of using Jpp's muon PDFs (PHYSICS.md §9.1).

Choice: direct (R, θ, φ) lookup, no reduction to the cosine c
-------------------------------------------------------------
The (d, c) layout of the Pandel provider describes a PMT by the cosine c between the direct
Cherenkov photon and its axis. For direct light that is enough, but the scattered light a PMT
sees depends on both of its angles: at a fixed c a PMT looking along the track and one looking
back towards it see different amounts and delays of scattered light (in the coarse ORCA table,
orientation nodes with cosines within 0.05 of each other differ in npe by up to a factor 4–5 at
30–90 m). Averaging the table
over (θ, φ) at fixed c would throw this away, so the kernels look the table up by (R, θ, φ)
directly: the orientation axis of the tables is the flattened (θ, φ) grid of the light table
(``n_phi`` > 0 of :class:`~km3sim.reco.pdf.LightTables`), interpolated bilinearly, as the
simulation's tables mode does (:func:`km3sim.propagation._table_kernels.simulate_muon_table_light`).
The price is 8 instead of 4 table reads per lookup.

Conventions kept from the light tables (so that the fit describes what tables mode simulates):

* R is measured from the DOM centre and the residual is relative to the direct time at the
  DOM centre, so the fit uses the DOM centre as the position of each PMT
  (:class:`~km3sim.reco.track.TrackFitter` does this for ``pdf: tables``), and the Cherenkov
  angle and group index of the table (its ``refractive_index_phase``/``group`` at 470 nm);
* the distance axis is uniform in s = ln(1 + R/10 m), the spacing of the table's R nodes
  (:func:`km3sim.propagation.tables.binning_for`), so the time PDFs sit on the table's own nodes;
  the expected npe, d·N(R)·shape(R, θ, φ) with the table's smooth normalisation N(R) and its
  shape interpolated linearly in R (its own lookup), is sampled ``npe_oversample`` times
  more finely in s; below the first node (1 m) npe ∝ 1/R as in the simulation;
* between (R, θ, φ) nodes the time PDF is the npe-weighted mixture of the corners' PDFs (the
  simulation draws a corner with probability ∝ its npe and a residual from its distribution):
  the pdf/cdf tables hold npe × pdf and npe × cdf on the nodes with the node's npe in an extra
  last time column, and the kernel divides the interpolated products by the interpolated npe.

Time residuals: the binned cumulative distribution of the table (0.5 ns bins around the direct
time, a geometric tail to 5 µs) is interpolated with a monotone cubic (PCHIP) on a 0.1 ns grid
and convolved with a Gaussian of the PMT transit-time spread (the table is built from the
tracker's photon arrival times on the DOM surface and contains no TTS; ``pmt_response`` applies
it in the simulation), as :func:`km3sim.reco.pdf.convoluted_pandel_tables` does for Pandel, then
sampled on a 0.5 ns grid from −60 to 700 ns.

Light of the continuous-loss showers (second component)
---------------------------------------------------------
Light tables of format 2 also hold ``muon_showers``: the light of the EM showers of the muon's
continuous losses per metre of their Cherenkov track length per metre of muon (EM angular
profile about the track). The simulation gives a muon of energy E the light
``muon·(1 + ΔL/L(E)) + muon_showers·cont(E)`` (:mod:`km3sim.propagation.secondaries`). The
fit's brightness B is the light in units of a bare track (:mod:`km3sim.reco.energy`), so here
B = 1 + ΔL/L(E) + cont(E) and the expected npe is B·((1 − η)·m_muon + η·m_showers) with the
shower fraction η = cont/(1 + ΔL/L + cont), the time PDF the npe-weighted mixture of the two.
η(B) follows from inverting B(E) (:func:`shower_fraction_of_brightness`; for the propagation's
default cuts v_cut = 0.05, e_cut = 1 GeV), i.e. from the fit's current energy estimate: the
track fit fits B with η from the previous B (two passes; η = 0 to start). Tables of format 1
have no such component and give η = 0.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.interpolate import PchipInterpolator

from km3sim.errors import ConfigError
from km3sim.reco.pdf import LightTables

__all__ = [
    "D_SCALE_M",
    "muon_table_light_tables",
    "find_muon_light_table",
    "track_light_tables",
    "shower_fraction_of_brightness",
]

#: Scale of the distance coordinate ln(1 + R/scale) of the light tables' R nodes [m]
#: (:func:`km3sim.propagation.tables._distance_nodes`).
D_SCALE_M = 10.0
#: Output time-residual grid [ns] (as the Pandel provider).
T_MIN_NS, T_MAX_NS, T_STEP_NS = -60.0, 700.0, 0.5
#: Step of the fine grid of the TTS convolution [ns].
FINE_STEP_NS = 0.1


def _uniform_s_grid(r_nodes: np.ndarray) -> np.ndarray:
    s = np.log1p(r_nodes / D_SCALE_M)
    return np.linspace(s[0], s[-1], len(s))


def _interp_rows(x_new: np.ndarray, x_nodes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 of ``values`` (n_nodes, ...) at ``x_new`` (clamped)."""
    i = np.clip(np.searchsorted(x_nodes, x_new, side="right") - 1, 0, len(x_nodes) - 2)
    f = np.clip((x_new - x_nodes[i]) / (x_nodes[i + 1] - x_nodes[i]), 0.0, 1.0)
    shape = (len(x_new),) + (1,) * (values.ndim - 1)
    return values[i] * (1.0 - f.reshape(shape)) + values[i + 1] * f.reshape(shape)


def _component(r_nodes, npe, cdf_edges, t_edges, norm_grid, norm_fine, tts_ns, npe_oversample):
    """(npe_d, pdf, cdf, s0, ds) of one light component of a light table.

    npe : (n_r, n_θ, n_φ) table npe; cdf_edges : (n_r, n_θ, n_φ, n_edges) cumulative
    distribution at ``t_edges``; norm_grid/norm_fine: the table's smooth N(R) (mean npe over
    the orientation nodes, PCHIP in log-log)."""
    n_r, n_th, n_ph = npe.shape
    n_o = n_th * n_ph
    npe_o = npe.reshape(n_r, n_o).astype(np.float64)
    cdf_o = cdf_edges.reshape(n_r, n_o, -1).astype(np.float64)
    s_nodes = np.log1p(r_nodes / D_SCALE_M)
    s_grid = _uniform_s_grid(r_nodes)
    ds = float(s_grid[1] - s_grid[0])
    # expected npe: N(R)·shape(R, θ, φ), shape = npe/N linear in R between nodes (the table's lookup)
    norm_nodes = npe_o.mean(axis=1)
    shape = npe_o / np.where(norm_nodes > 0, norm_nodes, 1.0)[:, None]
    s_fine = np.linspace(s_grid[0], s_grid[-1], (n_r - 1) * npe_oversample + 1)
    r_fine = D_SCALE_M * np.expm1(s_fine)
    r_fine[0], r_fine[-1] = r_nodes[0], r_nodes[-1]
    n_fine = np.interp(r_fine, norm_grid, norm_fine)
    npe_d = r_fine[:, None] * n_fine[:, None] * _interp_rows(r_fine, r_nodes, shape)
    # time PDFs on the (uniform-in-s) nodes: npe-weighted mixtures, TTS-convolved
    w_nodes = _interp_rows(s_grid, s_nodes, npe_o)
    wcdf = _interp_rows(s_grid, s_nodes, npe_o[:, :, None] * cdf_o)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_rows = np.where(w_nodes[:, :, None] > 0, wcdf / w_nodes[:, :, None], 0.0)
    t_out = T_MIN_NS + T_STEP_NS * np.arange(int(round((T_MAX_NS - T_MIN_NS) / T_STEP_NS)) + 1)
    sig = max(float(tts_ns), 0.0)
    half = 8.0 * sig + 2.0 * FINE_STEP_NS
    lo = t_out[0] - half
    n_f = int(math.ceil((t_out[-1] + half - lo) / FINE_STEP_NS)) + 1
    edges = lo + FINE_STEP_NS * np.arange(n_f + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    if sig > 0:
        x = FINE_STEP_NS * np.arange(-int(math.ceil(half / FINE_STEP_NS)), int(math.ceil(half / FINE_STEP_NS)) + 1)
        kern = np.exp(-0.5 * (x / sig) ** 2)
        kern /= kern.sum()
    n_t = len(t_out)
    pdf = np.zeros((n_r, n_o, n_t + 1))
    cdf = np.zeros((n_r, n_o, n_t + 1))
    te = np.asarray(t_edges, dtype=np.float64)
    for i in range(n_r):
        rows = cdf_rows[i]  # (n_o, n_edges)
        rows = np.maximum.accumulate(np.clip(rows, 0.0, 1.0), axis=1)
        # PCHIP of the CDF through the edges (monotone), constant outside them
        f = PchipInterpolator(te, rows.T, axis=0, extrapolate=False)
        ce = f(np.clip(edges, te[0], te[-1])).T  # (n_o, n_f + 1)
        mass = np.clip(np.diff(ce, axis=1), 0.0, None)
        base = ce[:, :1]
        if sig > 0:
            mass = np.clip(signal.fftconvolve(mass, kern[None, :], mode="same", axes=1), 0.0, None)
        cum = np.concatenate([base, base + np.cumsum(mass, axis=1)], axis=1)
        w = w_nodes[i]
        for q in range(n_o):
            pdf[i, q, :n_t] = w[q] * np.interp(t_out, centres, mass[q] / FINE_STEP_NS)
            cdf[i, q, :n_t] = w[q] * np.interp(t_out, edges, cum[q])
        pdf[i, :, n_t] = w
        cdf[i, :, n_t] = w
    return np.ascontiguousarray(npe_d), np.ascontiguousarray(pdf), np.ascontiguousarray(cdf), float(s_grid[0]), ds


def muon_table_light_tables(path, tts_ns: float = 2.0, npe_oversample: int = 4,
                            showers: bool = True) -> LightTables:
    """:class:`~km3sim.reco.pdf.LightTables` of the track fit from the light-table file ``path``
    (see the module notes), with the time PDFs convolved with a Gaussian TTS of ``tts_ns``.

    With ``showers`` and a table that has the ``muon_showers`` component, it is the second
    component (``npe_d2``/``pdf2``/``cdf2``).
    """
    from km3sim.propagation.tables import load_light_tables

    tab = load_light_tables(path)
    n_r, n_th, n_ph = len(tab.muon_r), tab.n_theta, tab.n_phi
    n_t1 = len(tab.t_edges)
    npe_d, pdf, cdf, s0, ds = _component(
        tab.muon_r, np.asarray(tab.muon_npe), tab.muon.cdf.reshape(n_r, n_th, n_ph, n_t1), tab.t_edges,
        tab.muon.norm_grid, tab.muon.norm_fine, tts_ns, npe_oversample)
    extra = {}
    sh_npe = getattr(tab, "muon_showers_npe", None)
    sh_tab = getattr(tab, "muon_showers", None)
    if showers and sh_npe is not None and sh_tab is not None:
        n2, p2, c2, _, _ = _component(tab.muon_r, np.asarray(sh_npe), sh_tab.cdf.reshape(n_r, n_th, n_ph, n_t1),
                                      tab.t_edges, sh_tab.norm_grid, sh_tab.norm_fine, tts_ns, npe_oversample)
        extra = dict(npe_d2=n2, pdf2=p2, cdf2=c2)
    return LightTables(
        d0=s0, dd=ds, c0=0.0, dc=math.pi / (n_th - 1), t0=T_MIN_NS, dt=T_STEP_NS, npe_d=npe_d, pdf=pdf, cdf=cdf,
        name=f"light tables {Path(tab.path).name} (R, theta, phi; {'muon + continuous-loss showers' if extra else 'muon'}) "
             f"with {tts_ns} ns TTS",
        n_phi=n_ph, d_scale=D_SCALE_M, n_phase=tab.n_phase, n_group=tab.n_group, **extra,
    )


def find_muon_light_table(site=None, tables: str = "auto", table_dir=None) -> Path:
    """The light-table file of the track fit: ``tables`` itself, or for ``'auto'`` the cached table
    (:func:`km3sim.propagation.tables.find_light_tables`) for the site's water model with the
    default ``direct_light`` detection settings (as ``direct_light`` with ``mode: tables`` finds it).

    Raises
    ------
    ConfigError
        With ``'auto'`` when no matching table exists (naming the command that builds one).
    """
    from km3sim.propagation.tables import find_light_tables, physics_parameters, table_cache_dir
    from km3sim.propagation.water import water_for_site
    from km3sim.stage import SITE_PRESETS

    if tables != "auto":
        return Path(tables).expanduser()
    if site is None:
        site = SITE_PRESETS["orca"]
    water = water_for_site(site)
    path = find_light_tables(physics_parameters(water), table_dir)
    if path is None:
        name = getattr(site, "name", "orca")
        raise ConfigError(
            f"track_fit (pdf: tables, tables: auto): no light table for the water of site {name!r} "
            f"({water.pressure_atm} atm, absorption x{water.absorption_scale}, scattering x{water.scattering_scale}, "
            f"default direct_light detection settings) in {table_cache_dir(table_dir)}; build one with "
            f"`km3sim tables build --site {name}` (add --coarse for a quick one), give a file with tables: <path>, "
            f"or use pdf: pandel"
        )
    return path


@functools.lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, tts_ns: float, showers: bool) -> LightTables:
    return muon_table_light_tables(path, tts_ns, showers=showers)


def track_light_tables(site=None, tts_ns: float = 2.0, tables: str = "auto", table_dir=None,
                       showers: bool = True, check_water: bool = True) -> LightTables:
    """The track-fit :class:`~km3sim.reco.pdf.LightTables` of a light-table file (found as
    :func:`find_muon_light_table`; cached per file version and TTS). A file given by path is
    checked to be built for the site's water model (:meth:`~km3sim.propagation.tables.LightTables.check_physics`)
    unless ``check_water`` is false."""
    from km3sim.propagation.tables import load_light_tables, physics_parameters
    from km3sim.propagation.water import water_for_site
    from km3sim.stage import SITE_PRESETS

    path = find_muon_light_table(site, tables, table_dir)
    tab = load_light_tables(path)  # raises LightTableError naming the file if missing/corrupt
    if check_water:
        s = site if site is not None else SITE_PRESETS["orca"]
        tab.check_physics(physics_parameters(water_for_site(s)), f"track_fit (pdf: tables, site {getattr(s, 'name', '?')!r})")
    p = Path(tab.path)
    return _cached(str(p.resolve()), p.stat().st_mtime_ns, float(tts_ns), bool(showers))


@functools.lru_cache(maxsize=8)
def _fraction_table(refractive_index: float):
    from km3sim.propagation.secondaries import secondary_light

    sl = secondary_light(round(float(refractive_index), 6))
    b = 1.0 + sl.rw_ratio + sl.cont_ratio
    eta = sl.cont_ratio / b
    b = np.maximum.accumulate(b)  # B(E) is non-decreasing
    return b, eta


def shower_fraction_of_brightness(brightness, refractive_index: float) -> float:
    """Fraction η = cont/(1 + ΔL/L + cont) of a muon's light in its continuous-loss showers at
    the energy E where 1 + ΔL/L(E) + cont(E) equals the brightness B (the light in units of a
    bare track; :func:`km3sim.propagation.secondaries.secondary_light` with the default
    propagation cuts). B below the smallest tabulated value gives the fraction there, above the
    largest that at the largest."""
    b, eta = _fraction_table(float(refractive_index))
    x = float(brightness)
    if not np.isfinite(x):
        return 0.0
    return float(np.interp(x, b, eta))
