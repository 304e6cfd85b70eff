"""Tests of the time-residual PDFs and expected photo-electrons (km3sim.reco.pdf)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from km3sim.errors import ConfigError
from km3sim.propagation.light import DirectLight
from km3sim.reco import pdf as P
from km3sim.stage import SITE_PRESETS


@pytest.mark.parametrize("d", [2.0, 30.0, 120.0])
def test_pandel_pdf_integrates_to_its_cdf(d):
    # the analytic PDF and the incomplete-gamma CDF are separate formulas: their agreement
    # checks both (quad is accurate to ~1e-8 here; the t^(k-1) spike is integrable)
    for t in (1.0, 20.0, 300.0):
        val, _ = integrate.quad(lambda x: P.pandel_pdf(x, d), 0.0, t, limit=400, points=[1e-6, 1e-3, 0.1])
        assert val == pytest.approx(P.pandel_cdf(t, d), abs=2e-5)


def test_pandel_mean_is_k_over_rho():
    # mean of the gamma distribution: k/ρ with k = d/λ_P
    d = 80.0
    k = d / P.PANDEL_SEA_WATER.lambda_p_m
    mean = integrate.quad(lambda x: x * P.pandel_pdf(x, d), 0.0, 1.0, limit=400, points=[1e-6, 1e-3])[0] \
        + integrate.quad(lambda x: x * P.pandel_pdf(x, d), 1.0, np.inf, limit=400)[0]
    assert mean == pytest.approx(k / P.PANDEL_SEA_WATER.rho, rel=1e-5)
    # sea-water parameters of the module notes: rho = 1/1680 + c/(1.38 * 60 m)
    assert P.PANDEL_SEA_WATER.rho == pytest.approx(1 / 1680 + 0.299792458 / (1.3800851282 * 60.0), rel=1e-9)


def test_convoluted_tables_normalised_and_gaussian_at_small_distance():
    t = np.arange(-60.0, 700.0 + 1e-9, 0.5)
    d = np.array([0.1, 20.0, 100.0])
    pdf, cdf = P.convoluted_pandel_tables(d, t, sigma_ns=2.0)
    assert np.all(pdf >= 0) and np.all(np.diff(cdf, axis=1) >= -1e-12)
    # the CDF is the integral of the PDF (trapezoid on the 0.5 ns grid: curvature error < 1e-3)
    cum = np.concatenate([np.zeros((3, 1)), np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * 0.5, axis=1)], axis=1)
    np.testing.assert_allclose(cum, cdf - cdf[:, :1], atol=2e-3)
    # up to 700 ns the CDF misses only the Pandel tail beyond it
    np.testing.assert_allclose(cdf[:, -1], P.pandel_cdf(700.0, d), atol=1e-3)
    # at 0.1 m, k = 5e-4: nearly all light is direct, so the PDF is the TTS Gaussian around 0
    # (peak 1/(σ√(2π)) = 0.1995 /ns, less the 0.05 % late Pandel part)
    i0 = np.argmin(np.abs(t))
    assert pdf[0, i0] == pytest.approx(1 / (2.0 * math.sqrt(2 * math.pi)), rel=0.01)
    # farther away the delay grows: the median residual increases with d
    med = [np.interp(0.5, cdf[j], t) for j in range(3)]
    assert med[0] < med[1] < med[2]


def test_npe_table_matches_direct_light_of_the_simulation():
    """m(d, c) without the scattering term against DirectLight.expected_npe (secondaries off):
    independent implementations of PHYSICS.md §5.1/§6.1/§7.2/§9.1."""
    site = SITE_PRESETS["orca"]
    dl = DirectLight(DirectLight.Config(secondaries=False), site=site)
    from km3sim.propagation.water import water_for_site

    water = water_for_site(site)
    # a track along z through the origin, PMTs at distance d in the x direction, axes facing
    # the Cherenkov photon at various cosines c
    cos_c = 1.0 / float(water.refractive_index_phase(P.REFERENCE_WAVELENGTH_NM))
    sin_c = math.sqrt(1 - cos_c**2)
    photon = np.array([sin_c, 0.0, cos_c])
    pos, dirs, d_list, c_list = [], [], [], []
    for d in (5.0, 25.0, 60.0):
        for c in (-1.0, -0.6, -0.2):
            # PMT axis a with a·photon = c, in the x-z plane
            ang = math.acos(c)
            rot = np.array([[math.cos(ang), 0, -math.sin(ang)], [0, 1, 0], [math.sin(ang), 0, math.cos(ang)]])
            dirs.append(rot @ photon)
            pos.append([d, 0.0, 500.0])
            d_list.append(d)
            c_list.append(c)
    mu, _, _ = dl.expected_npe([0, 0, 0], [0, 0, 1], 100.0, 2000.0, np.array(pos), np.array(dirs))
    table = P.muon_npe_table(np.array(d_list), np.array(c_list), water, isotropic=False)
    mine = table[np.arange(len(d_list)), np.arange(len(d_list))] / np.array(d_list)
    # the simulation interpolates its yield table on a 0.1 m grid: agreement to 1e-4
    np.testing.assert_allclose(mine, mu, rtol=1e-4)


def test_light_tables_provider_hook():
    t = P.light_tables("pandel", SITE_PRESETS["arca"], 2.0)
    assert t.t0 <= -25 and t.t_max >= 400 and t.pdf.shape[1] == 1
    assert P.light_tables("pandel", SITE_PRESETS["arca"], 2.0) is t  # cached
    with pytest.raises(ConfigError, match="unknown light-table provider"):
        P.light_tables("no-such-tables")

    def flat(water, tts_ns):
        base = P.light_tables("pandel", None, tts_ns)
        return P.LightTables(base.d0, base.dd, base.c0, base.dc, base.t0, base.dt, base.npe_d * 2.0, base.pdf,
                             base.cdf, name="test")

    P.register_light_tables("test-double", flat)
    try:
        t2 = P.light_tables("test-double", None, 2.0)
        np.testing.assert_allclose(t2.npe_d, 2.0 * P.light_tables("pandel", None, 2.0).npe_d)
    finally:
        P._PROVIDERS.pop("test-double")
