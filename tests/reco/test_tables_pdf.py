"""Tests of the track fit with the simulation's light tables (``pdf: tables``, km3sim.reco.table_pdf).

A coarse ORCA light table is built once for this module (~20–30 s on one core, the size and
quality of tests/propagation/test_tables.py). Checked: the adapter's expected npe against the
table's own lookup (``direct_light`` tables mode), the time PDFs (normalisation, the table's
CDF reproduced without TTS, the TTS convolution), a fit of synthetic muons against the Pandel
fit on the same events, and the errors without a table.
"""

from __future__ import annotations

import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from km3sim import constants as C
from km3sim import schema
from km3sim.detector.geometry import build_orca_block, dom_pmt_layout
from km3sim.errors import ConfigError
from km3sim.propagation.light import DirectLight, DirectLightConfig
from km3sim.propagation.secondaries import secondary_light
from km3sim.propagation.tables import (
    LightTableError,
    _read_root_attrs,
    build_light_tables,
    load_light_tables,
    table_file_name,
)
from km3sim.propagation.water import water_for_site
from km3sim.reco import _kernels as K
from km3sim.reco.samples import stage_context
from km3sim.reco.table_pdf import muon_table_light_tables, shower_fraction_of_brightness, track_light_tables
from km3sim.reco.track import JMUONGANDALF, TrackFit, TrackFitConfig, TrackFitter
from km3sim.stage import SITE_PRESETS
from tests.reco.helpers import direction, muon_event, to_tables

SITE = SITE_PRESETS["orca"]
PMT_DIRS, _ = dom_pmt_layout()


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    """Coarse ORCA light table (as tests/propagation/test_tables.py builds it)."""
    return build_light_tables(water_for_site(SITE), tmp_path_factory.mktemp("tables") / "coarse.h5", site="orca",
                              quality="coarse", seed=3)


def _dom_ring(radii, seed=1):
    """31-PMT DOMs at closest distances ``radii`` from a track along u through the origin, spread
    along it and in azimuth, each rotated about z at random. Returns (detector, u)."""
    rng = np.random.default_rng(seed)
    n = len(radii)
    u = np.array([0.3, -0.2, 0.9])
    u /= np.linalg.norm(u)
    e1 = np.cross(u, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    ang = rng.uniform(0.0, 2.0 * math.pi, n)
    z = np.linspace(-100.0, 100.0, n)
    dom_pos = z[:, None] * u + np.asarray(radii)[:, None] * (np.cos(ang)[:, None] * e1 + np.sin(ang)[:, None] * e2)
    a = rng.uniform(0.0, 2.0 * math.pi, n)
    c, s = np.cos(a), np.sin(a)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    pmt_dir = np.ascontiguousarray(np.einsum("nij,kj->nki", rot, PMT_DIRS).reshape(-1, 3))
    det = SimpleNamespace(
        dom_pos=dom_pos, dom_pmt_offsets=np.arange(n + 1) * 31, pmt_id=np.arange(31 * n, dtype=np.int64),
        pmt_dom_id=np.repeat(np.arange(n, dtype=np.int64), 31), pmt_channel=np.tile(np.arange(31, dtype=np.int32), n),
        pmt_pos=np.repeat(dom_pos, 31, axis=0) + 0.2 * pmt_dir, pmt_dir=pmt_dir, pmt_status_ok=np.ones(31 * n, bool),
    )
    return det, u


def _kernel_light(lt, p, u, pos, pdir, t_res, brightness=1.0, w2=0.0):
    cos_c = 1.0 / lt.n_phase
    sin_c = math.sqrt(1.0 - cos_c**2)
    k = (lt.n_group - cos_c) / sin_c
    return K.track_light(np.asarray(p, float), np.asarray(u, float), np.ascontiguousarray(pos, dtype=float),
                         np.ascontiguousarray(pdir, dtype=float), np.asarray(t_res, float), k, C.C_LIGHT, sin_c, cos_c,
                         brightness, 0.2, *lt.track_kernel_args(w2))


# ------------------------------------------------------------------------------------------ npe
@pytest.mark.parametrize("secondaries, energy", [(False, 1e3), (True, 1e4)])
def test_npe_matches_the_tables_own_lookup(table_path, secondaries, energy):
    """Expected npe of the adapter (kernel lookup at the DOM centres) equals direct_light's tables
    mode for a 3 km muon with DOMs at 0.5–130 m from its middle, per DOM within 1 % and per PMT
    within 2 % (of the PMT's npe, or of 1 % of the DOM's brightest PMT). Deterministic: the
    difference is interpolation only (the adapter samples N(R)·shape 4× more finely in
    ln(1 + R/10 m) than the R nodes and interpolates linearly; measured ≤ 0.6 %). With
    secondaries the light is muon·(1 + ΔL/L) + continuous-loss showers·cont(E); the adapter gets
    it as B·((1 − η)·m_muon + η·m_showers) with B = 1 + ΔL/L + cont and η(B) from
    shower_fraction_of_brightness."""
    radii = np.array([0.5, 3.0, 10.0, 25.0, 47.0, 80.0, 130.0])
    det, u = _dom_ring(radii)
    dl = DirectLight(DirectLightConfig(mode="tables", tables=str(table_path), secondaries=secondaries, showers=False),
                     site=SITE)
    start = -1500.0 * u
    track = schema.make_table(
        "mc_tracks", event_id=np.zeros(1, int), track_id=np.zeros(1, int), parent_id=-np.ones(1, int),
        pdgid=np.array([13], np.int32), pos_x=start[:1], pos_y=start[1:2], pos_z=start[2:3], dir_x=u[:1], dir_y=u[1:2],
        dir_z=u[2:3], energy=np.array([energy]), time=np.zeros(1), length=np.array([3000.0]),
        energy_lost_in_can=np.zeros(1))
    ref = dl.table_expected_npe(track, det).reshape(-1, 31)
    lt = muon_table_light_tables(table_path, 2.0)
    assert lt.has_second_component  # format-2 tables carry the continuous-loss showers
    if secondaries:
        rw, cont = secondary_light(dl.n_phase).ratios(energy)
        b = 1.0 + rw + cont
        eta = shower_fraction_of_brightness(b, lt.n_phase)
        assert eta == pytest.approx(cont / b, rel=1e-6)
        assert 0.5 < eta < 0.99  # the showers carry most of the light of a 10 TeV muon
    else:
        b, eta = 1.0, 0.0
    pos = np.repeat(det.dom_pos, 31, axis=0)
    m, _, _ = _kernel_light(lt, start, u, pos, det.pmt_dir, np.zeros(len(pos)), b, eta)
    m = m.reshape(-1, 31)
    np.testing.assert_allclose(m.sum(axis=1), ref.sum(axis=1), rtol=0.01)
    floor = 0.01 * ref.max(axis=1, keepdims=True)
    assert np.max(np.abs(m - ref) / np.maximum(ref, floor)) < 0.02


# ------------------------------------------------------------------------------------------ time PDFs
def test_time_pdf_normalised_and_consistent(table_path):
    """For random PMTs around a track (0.5–180 m, any orientation): the PDF integrates to the CDF
    difference over the tabulated range (trapezoid on 0.05 ns steps; relative 2e-3, the
    piecewise-linear tables), F = 0 before the earliest light, F(700 ns) in (0.5, 1]."""
    lt = muon_table_light_tables(table_path, 2.0)
    rng = np.random.default_rng(4)
    n = 40
    u = np.array([0.0, 0.0, 1.0])
    r = np.exp(rng.uniform(math.log(0.5), math.log(180.0), n))
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    pos = np.column_stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(-50.0, 50.0, n)])
    pdir = rng.normal(size=(n, 3))
    pdir /= np.linalg.norm(pdir, axis=1)[:, None]
    t = np.arange(lt.t0, lt.t_max + 1e-9, 0.05)
    f = np.empty((n, len(t)))
    F = np.empty((n, len(t)))
    for j, tj in enumerate(t):
        _, f[:, j], F[:, j] = _kernel_light(lt, [0.0, 0.0, -500.0], u, pos, pdir, np.full(n, tj))
    integral = np.trapezoid(f, t, axis=1) if hasattr(np, "trapezoid") else np.trapz(f, t, axis=1)
    np.testing.assert_allclose(integral, F[:, -1] - F[:, 0], rtol=2e-3)
    assert np.all(F[:, 0] < 1e-9)
    assert np.all((F[:, -1] > 0.5) & (F[:, -1] <= 1.0 + 1e-9))
    assert np.all(np.diff(F, axis=1) >= -1e-12)


def test_time_pdf_reproduces_the_table_and_its_tts(table_path):
    """Without TTS (1e-3 ns) the adapter's CDF at the nodes equals the table's cumulative
    distribution at its bin edges on the 0.5 ns grid (within 0.01: the 0.1 ns fine grid of the
    construction, measured ≤ 0.004 at 1 m); with 2 ns it equals that CDF convolved with a 2 ns
    Gaussian, computed independently here (within 0.005, measured 7e-4; a 1 ns Gaussian would
    differ by 0.16)."""
    tab = load_light_tables(table_path)
    l0 = muon_table_light_tables(table_path, 1e-3)
    l2 = muon_table_light_tables(table_path, 2.0)
    n_t = l0.pdf.shape[2] - 1
    te = tab.t_edges
    cdf = tab.muon.cdf.reshape(len(tab.muon_r), -1, len(te))
    on = [j for j, x in enumerate(te) if l0.t0 <= x <= l0.t0 + l0.dt * (n_t - 1)
          and abs((x - l0.t0) / l0.dt - round((x - l0.t0) / l0.dt)) < 1e-9]
    assert len(on) > 15
    idx = [int(round((te[j] - l0.t0) / l0.dt)) for j in on]
    w = l0.cdf[..., n_t]
    assert np.all(w > 0)
    f0 = l0.cdf[..., :n_t] / w[..., None]
    assert np.max(np.abs(f0[:, :, idx] - cdf[:, :, on])) < 0.01
    x = np.arange(-16.0, 16.0 + 1e-9, 0.5)
    g = np.exp(-0.5 * (x / 2.0) ** 2)
    g /= g.sum()
    pad = len(x) // 2
    conv = np.apply_along_axis(
        lambda row: np.convolve(np.concatenate([np.zeros(pad), row, np.full(pad, row[-1])]), g, mode="same")[pad:-pad],
        2, f0)
    f2 = l2.cdf[..., :n_t] / l2.cdf[..., n_t:]
    assert np.max(np.abs(conv - f2)[..., 40:-40]) < 0.005


# ------------------------------------------------------------------------------------------ fit
@pytest.fixture(scope="module")
def muons():
    """16 synthetic 1 TeV muons (8 zeniths x 2 azimuths) within 20 m of the ORCA-7 block centre
    (tests/reco/helpers.py, as test_track.py)."""
    det = build_orca_block(7)
    rng = np.random.default_rng(7)
    events, truth = [], {}
    for e in range(16):
        u = direction(-0.9 + 1.6 * (e % 8) / 7, 0.4 * e)
        p = det.center() + rng.uniform(-20, 20, 3)
        events.append(muon_event(det, p, u, 0.0, rng, energy=1000.0, event_id=e))
        truth[e] = u
    return det, to_tables(events), truth


def _median_angle(det, hits, truth, **cfg):
    r = TrackFit(TrackFitConfig(**cfg), detector=det, site=SITE).run(
        hits, stage_context(det, SITE, sorted(truth), "track_fit"))["reco_tracks"]
    g = r[r["rec_stage"] == JMUONGANDALF]
    assert np.all(g["status"] == 0)
    d = np.column_stack([g["dir_x"], g["dir_y"], g["dir_z"]])
    u = np.array([truth[int(e)] for e in g["event_id"]])
    return np.median(np.degrees(np.arccos(np.clip((d * u).sum(axis=1), -1.0, 1.0))))


def test_fit_with_tables_converges_like_pandel(table_path, muons):
    """pdf: tables fits all 16 muons with a median space angle in (0.05°, 0.6°) and at most 1.5×
    that of pdf: pandel on the same events.

    These synthetic events carry direct light only, generated with the very npe model of the
    Pandel provider, so Pandel has the advantage here (measured: 0.23° Pandel, 0.31° tables).
    The median of 16 space angles is known to ~25 %, but both fits see the same hits, which
    correlates their errors: over five such 16-muon samples the ratio was 1.01–1.33 (mean 1.19,
    spread 0.13), so 1.5 (the issue's tolerance) is ~2.4 σ above the mean; a broken PDF (time or
    geometry) gives several times Pandel's."""
    det, hits, truth = muons
    med_p = _median_angle(det, hits, truth)
    med_t = _median_angle(det, hits, truth, pdf="tables", tables=str(table_path))
    assert 0.05 < med_t < 0.6
    assert med_t < 1.5 * med_p


def test_fitter_uses_table_geometry(table_path, muons):
    """pdf: tables: residuals with the table's refractive indices and DOM centres as PMT points;
    pdf: pandel: the configured ones and the PMT positions."""
    det = muons[0]
    ft = TrackFitter(TrackFitConfig(pdf="tables", tables=str(table_path)), det, SITE)
    tab = load_light_tables(table_path)
    assert ft.lk_cos == pytest.approx(1.0 / tab.n_phase)
    np.testing.assert_allclose(ft.lik_pos, det.dom_pos[det.pmt_dom_index])
    fp = TrackFitter(TrackFitConfig(), det, SITE)
    assert fp.lk_k == pytest.approx(fp.k)
    assert fp.lik_pos is fp.pmt_pos
    assert ft.tables.has_second_component and not fp.tables.has_second_component
    # a table file enters the chain hash like direct_light's
    assert TrackFit.input_files(TrackFitConfig(pdf="tables", tables=str(table_path))) == [str(table_path)]
    assert TrackFit.input_files(TrackFitConfig(pdf="tables")) == []
    assert TrackFit.input_files(TrackFitConfig()) == []
    # the shower fit's (d, c) kernels refuse (R, theta, phi) tables
    with pytest.raises(ConfigError, match="track fit"):
        ft.tables.kernel_args()


# ------------------------------------------------------------------------------------------ errors
def test_clear_errors_without_a_table(tmp_path, table_path):
    det = build_orca_block(2)
    with pytest.raises(ConfigError, match=r"no light table.*km3sim tables build --site orca"):
        TrackFitter(TrackFitConfig(pdf="tables", table_dir=str(tmp_path)), det, SITE)
    missing = tmp_path / "nope.h5"
    with pytest.raises(LightTableError, match="nope.h5.*does not exist"):
        TrackFitter(TrackFitConfig(pdf="tables", tables=str(missing)), det, SITE)
    # a table of another water model (ORCA table, ARCA site) is refused, naming the file
    with pytest.raises(LightTableError, match="coarse.h5.*pressure_atm"):
        track_light_tables(SITE_PRESETS["arca"], 2.0, str(table_path))
    # 'auto' finds the table of the site's water in the given directory (as direct_light does)
    d = tmp_path / "cache"
    d.mkdir()
    a = _read_root_attrs(table_path)
    shutil.copy(table_path, d / table_file_name("orca", "coarse", a["physics"], a["build"]))
    ft = TrackFitter(TrackFitConfig(pdf="tables", table_dir=str(d)), det, SITE)
    assert ft.tables.n_phi > 0


@pytest.mark.slow
def test_fit_with_tables_on_photon_tracker_events(table_path):
    """Muons simulated with the photon tracker (scattering; muon_propagation → direct_light
    mode photons → pmt_response → trigger): 30 single 1 TeV muons through the ORCA-7 block, 15 of
    which trigger. pdf: tables converges on all of them with a median space angle below 1° and
    at most 1.5× that of pdf: pandel (measured 0.35° vs 0.36°). The median of 15 angles is
    known to ~30 %; the two fits share the hits, but their ratio still varied between 0.6 and
    1.4 over three samples of 5–9 events, so 1.5 is the tolerance of the issue with ~2 σ margin
    for 15 events. (In ARCA-115, 22 photon-tracker muons of 1–10 TeV: 0.09° tables vs 0.15°
    Pandel, 68 % quantile 0.28° vs 2.2°: benchmarks/bench_reco.py --compare-pdf.)"""
    from km3sim.reco.samples import simulate_chain, single_muons

    det = build_orca_block(7)
    events, tracks = single_muons(det, 30, energy_gev=1000.0, seed=3)
    t = simulate_chain(det, SITE, {"events": events, "mc_tracks": tracks}, seed=3,
                       configs={"direct_light": {"mode": "photons"}, "pmt_response": {"k40_rate_hz": 7000.0},
                                "trigger": {"preset": "orca6"}})
    hits = {k: t[k] for k in ("triggered_events", "snapshot_hits")}
    ids = np.asarray(t["triggered_events"]["event_id"])
    assert len(ids) >= 10
    ev = t["events"]
    truth = {int(e): np.array([ev["dir_x"][i], ev["dir_y"][i], ev["dir_z"][i]]) for i, e in enumerate(ev["event_id"])
             if e in ids}
    med_p = _median_angle(det, hits, truth)
    med_t = _median_angle(det, hits, truth, pdf="tables", tables=str(table_path))
    assert med_t < 1.0
    assert med_t < 1.5 * med_p
