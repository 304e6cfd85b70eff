"""Tests of the sea-water optics (PHYSICS.md §5.2, §6.1)."""

import math

import numpy as np
import pytest

from km3sim.propagation.water import (
    ABSORPTION_TABLE_M,
    ABSORPTION_TABLE_NM,
    WATER_PRESETS,
    absorption_length,
    refractive_index_group,
    refractive_index_phase,
    refractive_index_phase_derivative,
    phase_function,
    phase_function_mean_cos,
    scattering_length,
    water_for_site,
)
from km3sim.stage import SITE_PRESETS

# PHYSICS.md §5.2 table, given to 4 decimals (so ±5e-5 plus rounding of the last digit)
CHECK_VALUES = [
    # site pressure, λ, n_ph, n_g, θ_c (deg, 1 decimal)
    (240.0, 400.0, 1.3546, 1.3953, 42.4),
    (240.0, 470.0, 1.3492, 1.3778, 42.2),
    (240.0, 550.0, 1.3454, 1.3670, 42.0),
    (350.0, 470.0, 1.3508, 1.3794, 42.2),
]


@pytest.mark.parametrize("pressure, lam, n_ph, n_g, theta", CHECK_VALUES)
def test_refractive_index_check_values(pressure, lam, n_ph, n_g, theta):
    assert refractive_index_phase(lam, pressure) == pytest.approx(n_ph, abs=6e-5)
    assert refractive_index_group(lam, pressure) == pytest.approx(n_g, abs=6e-5)
    assert math.degrees(math.acos(1.0 / refractive_index_phase(lam, pressure))) == pytest.approx(theta, abs=0.06)


def test_refractive_index_pressure_term():
    # 1.4e-5 per atm (Bailey)
    assert refractive_index_phase(470.0, 350.0) - refractive_index_phase(470.0, 240.0) == pytest.approx(110 * 1.4e-5, rel=1e-9)


def test_phase_derivative_matches_finite_difference():
    lam = np.array([320.0, 400.0, 470.0, 600.0])
    h = 1e-3
    fd = (refractive_index_phase(lam + h) - refractive_index_phase(lam - h)) / (2 * h)
    np.testing.assert_allclose(refractive_index_phase_derivative(lam), fd, rtol=1e-6)
    # normal dispersion: n falls with λ, so n_g > n_ph
    assert np.all(refractive_index_group(lam) > refractive_index_phase(lam))


def test_array_shapes():
    lam = np.linspace(300, 700, 12).reshape(3, 4)
    assert refractive_index_phase(lam).shape == (3, 4)
    assert refractive_index_group(lam).shape == (3, 4)
    assert absorption_length(lam).shape == (3, 4)
    assert isinstance(refractive_index_phase(470.0), float)


def test_absorption_length_check_values():
    # PHYSICS.md §6.1: 42.3 m at 400 nm and 60.2 m at 470 nm (1 decimal)
    assert absorption_length(400.0) == pytest.approx(42.3, abs=0.05)
    assert absorption_length(470.0) == pytest.approx(60.2, abs=0.05)
    np.testing.assert_array_equal(absorption_length(ABSORPTION_TABLE_NM), ABSORPTION_TABLE_M)
    assert absorption_length(440.0) == 67.5
    # linear between nodes
    assert absorption_length(0.5 * (440.0 + 475.0)) == pytest.approx(0.5 * (67.5 + 59.0))


def test_absorption_length_outside_and_scale():
    assert absorption_length(280.0) == 0.0
    assert absorption_length(720.0) == 0.0
    assert absorption_length(470.0, scale=1.2) == pytest.approx(1.2 * absorption_length(470.0))


def test_site_presets():
    assert WATER_PRESETS["orca"].pressure_atm == 240.0
    assert WATER_PRESETS["arca"].pressure_atm == 350.0
    w = water_for_site(SITE_PRESETS["arca"], absorption_scale=0.9)
    assert w.refractive_index_phase(470.0) == pytest.approx(1.3508, abs=6e-5)
    assert w.absorption_length(470.0) == pytest.approx(0.9 * 60.214, abs=1e-3)
    assert w.refractive_index_group(470.0) == refractive_index_group(470.0, 350.0)


# PHYSICS.md §6.2 [D] table (1 decimal); 550 nm is 70.97 m (printed 70.9 there)
@pytest.mark.parametrize("lam, ls", [(300, 18.5), (350, 27.6), (400, 37.7), (440, 46.2), (470, 52.8),
                                     (500, 59.6), (550, 70.9), (600, 82.5)])
def test_scattering_length_kopelevich(lam, ls):
    assert scattering_length(lam) == pytest.approx(ls, abs=0.1)


def test_scattering_molecular_fraction():
    # PHYSICS.md §6.2: pure-water fraction of 1/λ_s is 0.18 at 470 nm, 0.25 at 400, 0.43 at 300
    for lam, frac in [(470.0, 0.18), (400.0, 0.25), (300.0, 0.43)]:
        assert 0.0017 * (550.0 / lam) ** 4.3 * scattering_length(lam) == pytest.approx(frac, abs=0.006)
    w = WATER_PRESETS["arca"]
    assert w.scattering_length(470.0) == scattering_length(470.0)


def test_phase_function_normalisation_and_mean_cosine():
    from scipy.integrate import quad

    norm = 2 * math.pi * quad(phase_function, -1, 1, epsabs=0, epsrel=1e-11)[0]
    assert norm == pytest.approx(1.0, rel=1e-9)
    mean = 2 * math.pi * quad(lambda x: x * phase_function(x), -1, 1, epsabs=0, epsrel=1e-11)[0]
    assert mean == pytest.approx(0.767, abs=5e-4)  # PHYSICS.md §6.3 [D]: (1 − f)·g = 0.767
    assert phase_function_mean_cos() == pytest.approx((1 - 0.17) * 0.924)
    # λ_eff = λ_s/(1 − <cos>) ≈ 227 m at 470 nm (PHYSICS.md §6.3 [D])
    assert scattering_length(470.0) / (1 - mean) == pytest.approx(227.0, abs=1.0)
