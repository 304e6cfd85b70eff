"""Cross sections and inelasticity against PHYSICS.md §3.1, §3.2 and §3.7."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from km3sim.constants import AVOGADRO
from km3sim.physics import xsec

# PHYSICS.md §3.1: CSMS values at 10 energies [pb]: E, nu CC, nu NC, nubar CC, nubar NC
CSMS_HANDBOOK = [
    (1e2, 0.65, 0.20, 0.33, 0.12),
    (1e3, 6.2, 2.0, 3.6, 1.2),
    (1e4, 47, 15, 31, 11),
    (1e5, 210, 75, 180, 64),
    (1e6, 690, 260, 660, 240),
    (1e7, 1900, 730, 1900, 730),
    (1e8, 4800, 1900, 4800, 1900),
    (1e9, 11000, 4400, 11000, 4400),
    (1e11, 48000, 20000, 48000, 20000),
]


@pytest.mark.parametrize("row", CSMS_HANDBOOK)
def test_csms_nodes(row):
    e, nu_cc, nu_nc, nb_cc, nb_nc = row
    # at a table energy the interpolation returns the tabulated value (float rounding only)
    for pdg, cur, val in ((14, "cc", nu_cc), (14, "nc", nu_nc), (-14, "cc", nb_cc), (-14, "nc", nb_nc)):
        assert xsec.dis_cross_section(e, pdg, cur) == pytest.approx(val * 1e-36, rel=1e-9)


def test_same_for_all_flavours():
    e = np.geomspace(2.0, 1e10, 50)
    for cur in ("cc", "nc"):
        np.testing.assert_array_equal(xsec.dis_cross_section(e, 12, cur), xsec.dis_cross_section(e, 16, cur))
        np.testing.assert_array_equal(xsec.dis_cross_section(e, -12, cur), xsec.dis_cross_section(e, -14, cur))


def test_linear_regime_and_join():
    # below 50 GeV: sigma_CC / E = 0.677e-38 (nu), 0.334e-38 (nubar) cm^2/GeV (Formaggio & Zeller)
    e = np.array([2.0, 10.0, 30.0, 50.0])
    np.testing.assert_allclose(xsec.dis_cross_section(e, 14, "cc") / e, 0.677e-38, rtol=1e-12)
    np.testing.assert_allclose(xsec.dis_cross_section(e, -14, "cc") / e, 0.334e-38, rtol=1e-12)
    # NC: CC times the CSMS NC/CC ratio at 100 GeV
    np.testing.assert_allclose(xsec.dis_cross_section(e, 14, "nc") / e, 0.677e-38 * 0.20 / 0.65, rtol=1e-12)
    np.testing.assert_allclose(xsec.dis_cross_section(e, -14, "nc") / e, 0.334e-38 * 0.12 / 0.33, rtol=1e-12)
    # continuity at both ends of the join (relative jump over 1e-9 in E below 1e-7)
    for pdg in (14, -14):
        for cur in ("cc", "nc"):
            for ej in (50.0, 100.0):
                lo = xsec.dis_cross_section(ej * (1 - 1e-9), pdg, cur)
                hi = xsec.dis_cross_section(ej * (1 + 1e-9), pdg, cur)
                assert abs(hi / lo - 1) < 1e-7
    # in the join: log-log straight line, i.e. the geometric mean at the geometric mid-point
    mid = xsec.dis_cross_section(math.sqrt(50 * 100), 14, "cc")
    assert mid == pytest.approx(math.sqrt(0.677e-38 * 50 * 0.65e-36), rel=1e-9)


def test_monotonic_and_log_log_between_nodes():
    e = np.geomspace(1.0, 1e12, 2000)
    for pdg in (14, -14):
        for cur in ("cc", "nc"):
            s = xsec.dis_cross_section(e, pdg, cur)
            assert np.all(np.diff(s) > 0)
    # between 1e5 and 2e5: log-log straight line through the CSMS values 210 and 310 pb
    e1, e2 = 1e5, 2e5
    x = 1.3e5
    expected = 210 * (310 / 210) ** (math.log(x / e1) / math.log(e2 / e1)) * 1e-36
    assert xsec.dis_cross_section(x, 14, "cc") == pytest.approx(expected, rel=1e-9)


def test_high_energy_cross_checks():
    # Gandhi et al. power laws (valid 1e7-1e12 GeV) agree with CSMS within ~10 % there
    for e in (1e8, 1e9, 1e10):
        assert xsec.dis_cross_section(e, 14, "cc") == pytest.approx(5.53e-36 * e**0.363, rel=0.15)
        assert xsec.dis_cross_section(e, 14, "nc") == pytest.approx(2.31e-36 * e**0.363, rel=0.15)

    # Connolly, Thorne, Waters fit (1e4-1e12 GeV), PHYSICS.md §3.1
    def connolly(e, c):
        eps = math.log10(e)
        lnx = math.log(eps - c[0])
        return 10 ** (c[1] + c[2] * lnx + c[3] * lnx**2 + c[4] / lnx)

    fits = {
        (14, "nc"): (-1.826, -17.31, -6.448, 1.431, -18.61),
        (14, "cc"): (-1.826, -17.31, -6.406, 1.431, -17.91),
        (-14, "nc"): (-1.033, -15.95, -7.296, 1.569, -18.30),
        (-14, "cc"): (-1.033, -15.95, -7.247, 1.569, -17.72),
    }
    for (pdg, cur), c in fits.items():
        for e in (1e5, 1e7, 1e9, 1e11):
            # two independent parametrisations of similar PDF fits: within 20 %
            assert xsec.dis_cross_section(e, pdg, cur) == pytest.approx(connolly(e, c), rel=0.2)


@pytest.mark.parametrize("e,length_km", [(1e3, 1.9e6), (1e4, 2.6e5), (1e5, 5.6e4), (1e6, 1.7e4), (1e7, 6.1e3)])
def test_interaction_length_in_sea_water(e, length_km):
    # PHYSICS.md §3.1 table, rho = 1.04 g/cm^3, 2 significant digits -> 5 % two-sided
    sigma = xsec.dis_total_cross_section(e, 14)
    length = 1.0 / (AVOGADRO * 1.04 * sigma) / 1e5
    assert length == pytest.approx(length_km, rel=0.05)


def test_glashow_peak_values():
    # PHYSICS.md §3.7: E_res = 6.32e6 GeV; peaks 5.4e-32 (one leptonic channel), 5.0e-31
    # (total), 3.35e-31 cm^2 (hadronic), quoted to 2-3 digits
    e_res = xsec.E_GLASHOW_RESONANCE_GEV
    assert e_res == pytest.approx(6.32e6, rel=2e-3)
    assert xsec.glashow_cross_section(e_res, "mu") == pytest.approx(5.4e-32, rel=0.01)
    assert xsec.glashow_cross_section(e_res, "total") == pytest.approx(5.0e-31, rel=0.01)
    assert xsec.glashow_cross_section(e_res, "hadrons") == pytest.approx(3.35e-31, rel=0.005)
    # the peak is the maximum and equals 24 pi / M_W^2 B(e nu) B(mu nu) with B = Gamma_lep / Gamma
    gamma_lep = xsec.G_FERMI_GEV2 * xsec.M_W_GEV**3 / (6 * math.sqrt(2) * math.pi)
    b = gamma_lep / xsec.GAMMA_W_GEV
    peak = 24 * math.pi / xsec.M_W_GEV**2 * b * b * xsec.HBARC2_CM2_GEV2
    assert xsec.glashow_cross_section(e_res, "leptonic") == pytest.approx(peak, rel=1e-9)
    e = np.geomspace(1e6, 4e7, 2001)
    s = xsec.glashow_cross_section(e, "total")
    assert abs(e[np.argmax(s)] / e_res - 1) < 0.01
    # channels add up to the total
    parts = sum(xsec.glashow_cross_section(e, ch) for ch in xsec.GLASHOW_CHANNELS)
    np.testing.assert_allclose(parts, s, rtol=1e-12)
    # half width: s = M_W^2 +- Gamma M_W, i.e. E_res (1 +- Gamma/M_W)
    half = xsec.glashow_cross_section(e_res * (1 + xsec.GAMMA_W_GEV / xsec.M_W_GEV), "total")
    assert half / xsec.glashow_cross_section(e_res, "total") == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError):
        xsec.glashow_cross_section(1e6, "quarks")


# ------------------------------------------------------------------------------ inelasticity
def test_mean_y_at_fixed_ratio():
    # PHYSICS.md §3.2: with Qbar/Q = 0.2, <y>_nu = 0.484 and <y>_nubar = 0.344
    for anti, expected in ((False, 0.484), (True, 0.344)):
        a, b = xsec.inelasticity_shape_from_ratio(0.2, anti, True)
        assert a + b / 3 == pytest.approx(1.0)
        assert a / 2 + b / 12 == pytest.approx(expected, abs=5e-4)


def test_antiquark_ratio_from_cross_sections():
    # q = (R - 1/3)/(1 - R/3): R = 0.334/0.677 below 50 GeV, 1 above 1e7 GeV
    r = 0.334 / 0.677
    assert xsec.antiquark_ratio(20.0) == pytest.approx((r - 1 / 3) / (1 - r / 3), rel=1e-12)
    assert xsec.antiquark_ratio(20.0) == pytest.approx(0.2, abs=0.015)
    assert xsec.antiquark_ratio(1e8) == pytest.approx(1.0)
    # integrating the CC shapes gives back the cross-section ratio
    for e in (30.0, 1e3, 1e5):
        q = xsec.antiquark_ratio(e)
        ratio = (q + 1 / 3) / (1 + q / 3)
        assert ratio == pytest.approx(xsec.dis_cross_section(e, -14, "cc") / xsec.dis_cross_section(e, 14, "cc"), rel=1e-9)


def test_nc_shapes_give_the_csms_nc_cc_ratio():
    # The NC couplings enter only through the shapes; integrated, they must give an NC/CC
    # ratio close to the independent CSMS one at 100 GeV (0.20/0.65 nu, 0.12/0.33 nubar).
    # Parton model with the weak mixing angle: ~2 % agreement; 5 % two-sided tolerance.
    s = xsec.SIN2_THETA_W
    gl2 = (0.5 - 2 / 3 * s) ** 2 + (0.5 - 1 / 3 * s) ** 2
    gr2 = (2 / 3 * s) ** 2 + (1 / 3 * s) ** 2
    q = xsec.antiquark_ratio(100.0)
    nu = (gl2 + gr2 / 3 + q * (gr2 + gl2 / 3)) / (1 + q / 3)
    nubar = (gr2 + gl2 / 3 + q * (gl2 + gr2 / 3)) / (q + 1 / 3)
    assert nu == pytest.approx(0.20 / 0.65, rel=0.05)
    assert nubar == pytest.approx(0.12 / 0.33, rel=0.05)
    # and the module's normalised shapes are these ones
    a, b = xsec.inelasticity_shape(100.0, 14, "nc")
    assert b / a == pytest.approx((gr2 + q * gl2) / (gl2 + q * gr2), rel=1e-9)
    a, b = xsec.inelasticity_shape(100.0, -14, "nc")
    assert b / a == pytest.approx((gl2 + q * gr2) / (gr2 + q * gl2), rel=1e-9)


def test_pdf_cdf_mean_consistent():
    from scipy.integrate import quad

    for pdg, cur, e in ((14, "cc", 50.0), (-14, "cc", 3e4), (14, "nc", 1e3), (-12, "nc", 1e6)):
        norm = quad(lambda y: float(xsec.inelasticity_pdf(y, e, pdg, cur)), 0, 1)[0]
        assert norm == pytest.approx(1.0, rel=1e-9)
        mean = quad(lambda y: y * float(xsec.inelasticity_pdf(y, e, pdg, cur)), 0, 1)[0]
        assert mean == pytest.approx(float(xsec.mean_inelasticity(e, pdg, cur)), rel=1e-9)
        part = quad(lambda y: float(xsec.inelasticity_pdf(y, e, pdg, cur)), 0, 0.3)[0]
        assert part == pytest.approx(float(xsec.inelasticity_cdf(0.3, e, pdg, cur)), rel=1e-9)


@pytest.mark.parametrize("pdg,cur", [(14, "cc"), (-14, "cc"), (12, "nc"), (-16, "nc")])
def test_sampled_y_follows_the_pdf(pdg, cur):
    rng = np.random.default_rng(11)
    n = 20000
    e = 10 ** rng.uniform(1, 7, n)
    y = xsec.sample_inelasticity(rng.random(n), rng.random(n), e, np.full(n, pdg), cur)
    assert np.all((y >= 0) & (y < 1))
    # probability integral transform with the analytic CDF of each event's energy: uniform
    pit = xsec.inelasticity_cdf(y, e, pdg, cur)
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    # and the sample mean matches the mean of <y>(E) within 4 standard errors
    mean_expected = np.mean(xsec.mean_inelasticity(e, pdg, cur))
    assert abs(y.mean() - mean_expected) < 4 * y.std() / math.sqrt(n)


def test_glashow_lepton_fraction():
    rng = np.random.default_rng(5)
    x = xsec.sample_glashow_lepton_fraction(rng.random(20000))
    # pdf 3 (1-x)^2: CDF 1 - (1-x)^3, mean 1/4
    assert stats.kstest(x, lambda v: 1 - (1 - v) ** 3).pvalue > 1e-3
    assert x.mean() == pytest.approx(0.25, abs=4 * math.sqrt(3 / 80) / math.sqrt(20000))


def test_bad_arguments():
    with pytest.raises(ValueError):
        xsec.dis_cross_section(10.0, 14, "cx")
    with pytest.raises(ValueError):
        xsec.dis_cross_section(-1.0, 14, "cc")
