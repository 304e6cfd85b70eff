"""Tests of the brightness-to-energy calibration (km3sim.reco.energy)."""

from __future__ import annotations

import numpy as np
import pytest

from km3sim.reco import energy as E


@pytest.mark.parametrize("site", ["arca", "orca"])
def test_round_trip_and_monotone(site):
    # from the first calibration bin on (below it B is constant)
    e = np.logspace(E.CALIBRATIONS[site][0][0], 7.5, 60)
    b = E.energy_to_brightness(e, site)
    assert np.all(np.diff(b) > 0)  # strictly increasing: invertible
    np.testing.assert_allclose(E.brightness_to_energy(b, site), e, rtol=1e-6)


def test_calibration_points_and_extrapolation():
    le, lb = E.CALIBRATIONS["arca"]
    # at the table nodes B is the tabulated median (up to the 1e-6 tie-breaking slope)
    np.testing.assert_allclose(np.log10(E.energy_to_brightness(10 ** le, "arca")), np.maximum.accumulate(lb), atol=1e-5)
    # above the table B ∝ E (radiative losses): one decade of B is one decade of E
    assert E.brightness_to_energy(10 ** (lb[-1] + 1.0), "arca") == pytest.approx(10 ** (le[-1] + 1.0), rel=1e-4)
    # below the table: the lowest bin energy
    assert E.brightness_to_energy(1e-3, "arca") == pytest.approx(10 ** le[0], rel=1e-9)


def test_bad_brightness_gives_nan():
    out = E.brightness_to_energy(np.array([np.nan, 0.0, -1.0, 2.0]), "orca")
    assert np.all(np.isnan(out[:3])) and np.isfinite(out[3])
    # an unknown site name falls back to the ORCA table (ARCA only for names starting with "arca")
    assert E.brightness_to_energy(2.0, "somewhere") == E.brightness_to_energy(2.0, "orca")


def test_calibration_table_medians():
    rng = np.random.default_rng(5)
    le = rng.uniform(2.0, 4.0, 4000)
    lb = 0.5 * le - 1.0 + rng.normal(0, 0.2, 4000)
    c, m, n = E.calibration_table(le, lb, edges=np.arange(2.0, 4.01, 0.5))
    np.testing.assert_allclose(c, [2.25, 2.75, 3.25, 3.75])
    # ~1000 events per bin: the median of a uniform-in-le bin of width 0.5 is 0.5*centre - 1
    # (symmetric), with σ_median ≈ 1.25·σ/√n ≈ 0.01 (plus the spread of le in the bin): 0.03
    np.testing.assert_allclose(m, 0.5 * c - 1.0, atol=0.03)
    assert n.sum() == 4000


@pytest.mark.slow
def test_energy_of_independent_arca_muons():
    """Out of sample: 60 muons (seed 3, not the calibration's 11) of 3 TeV–3 PeV through the
    ARCA-115 block. The calibration's in-sample 68 % half-width of log10(E_reco/E) is 0.1–0.3
    per bin; over the whole sample the median must be unbiased to 0.15 (σ_median ≈
    1.25·0.25/√50 ≈ 0.05, plus the calibration's own statistical error) and the 68 % half-width
    below 0.4. A flat B(E), as before the continuous-loss light, fails both."""
    from km3sim.detector.geometry import build_arca_block
    from km3sim.stage import SITE_PRESETS

    det, site = build_arca_block(115), SITE_PRESETS["arca"]
    e_true, b_fit = E.calibrate_track_energy(det, site, n_muons=60, energy_gev=(3e3, 3e6), seed=3,
                                             configs={"pmt_response": {"k40_rate_hz": 6000.0}})
    assert len(e_true) >= 45
    r = E.log10_ratio(E.brightness_to_energy(b_fit, "arca"), e_true)
    r = r[np.isfinite(r)]
    q16, q50, q84 = np.percentile(r, [16, 50, 84])
    assert abs(q50) < 0.15, (q16, q50, q84)
    assert 0.5 * (q84 - q16) < 0.4, (q16, q50, q84)
