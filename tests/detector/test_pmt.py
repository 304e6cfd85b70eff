"""Tests of the KM3NeT 3-inch PMT model (PHYSICS.md §7.2, §7.3)."""

import math

import numpy as np
import pytest

from km3sim.detector import pmt
from km3sim.detector.pmt import (
    PHOTOCATHODE_AREA_M2,
    angular_acceptance,
    pmt_parameters,
    quantum_efficiency,
    time_over_threshold,
    time_slewing_ns,
    tot_transition_pe,
    tuned_decay_time_ns,
)
from km3sim.errors import ConfigError


def test_photocathode_area():
    assert PHOTOCATHODE_AREA_M2 * 1e4 == pytest.approx(70.8, abs=0.05)


def test_quantum_efficiency_table():
    np.testing.assert_allclose(quantum_efficiency(pmt.QE_TABLE_NM), pmt.QE_TABLE)
    assert quantum_efficiency(390.0) == pytest.approx(0.283)
    assert quantum_efficiency(470.0) == pytest.approx(0.223)
    assert quantum_efficiency(410.0) == pytest.approx(0.5 * (0.280 + 0.269))
    assert quantum_efficiency(290.0) == 0.0
    assert quantum_efficiency(720.0) == 0.0
    assert np.all((quantum_efficiency(np.linspace(250, 750, 501)) >= 0) & (quantum_efficiency(np.linspace(250, 750, 501)) < 0.3))


def test_angular_acceptance_table():
    assert angular_acceptance(-1.0) == 1.0
    assert angular_acceptance(-0.5) == pytest.approx(0.319)
    assert angular_acceptance(0.0) == pytest.approx(0.040)
    assert angular_acceptance(-0.95) == pytest.approx(0.5 * (1.0 + 0.736))
    assert angular_acceptance(0.25) == 0.0
    assert angular_acceptance(0.6) == 0.0
    assert angular_acceptance(1.0) == 0.0
    c = np.linspace(-1, 1, 401)
    a = angular_acceptance(c)
    assert np.all(np.diff(a) <= 0.0), "acceptance must not grow away from head-on"


def test_decay_time_tuned_to_1pe_tot():
    tau = tuned_decay_time_ns()
    # PHYSICS.md §7.3: τ_d ≈ 7.5–8 ns for σ_r = 7.24 ns and th = 0.24
    assert 7.5 < tau < 8.0
    assert time_over_threshold(1.0) == pytest.approx(26.9, abs=1e-9)
    assert time_over_threshold(1.0, decay_time_ns=tau) == pytest.approx(26.9, abs=1e-9)
    # other targets are reached too
    assert time_over_threshold(1.0, decay_time_ns=tuned_decay_time_ns(30.0)) == pytest.approx(30.0, abs=1e-9)


def test_decay_time_impossible_target():
    with pytest.raises(ValueError):
        tuned_decay_time_ns(5.0)
    with pytest.raises(ValueError):
        tuned_decay_time_ns(26.9, threshold_pe=1.5)


def test_tot_monotonic_threshold_saturation():
    q = np.concatenate([np.linspace(0.0, 5.0, 501), np.geomspace(5.0, 1e12, 200)])
    tot = time_over_threshold(q)
    assert np.all(np.diff(tot) >= 0.0)
    assert np.all(tot[q <= 0.24] == 0.0)
    assert np.all(tot[q > 0.24] > 0.0)
    assert tot.max() == 210.0
    assert time_over_threshold(1e12) == 210.0
    assert time_over_threshold(0.3, threshold_pe=0.5) == 0.0


def _tot_numerical(charge, th=0.24, sigma=7.24, tau=None, dt=1e-4):  # logarithmic regime only
    """Time above threshold of the Gaussian-edge / exponential-tail pulse sampled on a grid."""
    tau = tuned_decay_time_ns() if tau is None else tau
    t1 = sigma**2 / tau
    t = np.arange(-100.0, 400.0, dt)
    gauss = charge * np.exp(-0.5 * t**2 / sigma**2)
    tail = charge * math.exp(-0.5 * t1**2 / sigma**2) * np.exp(-(t - t1) / tau)
    pulse = np.where(t <= t1, gauss, tail)
    return np.count_nonzero(pulse > th) * dt


@pytest.mark.parametrize("charge", [0.26, 0.3, 0.5, 1.0, 2.0, 10.0, 100.0])
def test_tot_closed_form_matches_sampled_pulse(charge):
    # the logarithmic regime (linear regime switched off): grid step 1e-4 ns -> agreement to ~2e-4 ns
    assert time_over_threshold(charge, slope_ns_per_pe=0.0) == pytest.approx(_tot_numerical(charge), abs=5e-4)
    if charge <= tot_transition_pe():
        assert time_over_threshold(charge) == pytest.approx(_tot_numerical(charge), abs=5e-4)


def test_tot_linear_regime_continuous():
    # PHYSICS.md §7.3: logarithmic, then linear with 7 ns/p.e., then saturated at 210 ns.
    n1 = tot_transition_pe()
    assert 1.2 < n1 < 2.5
    # slope of the log form at the transition (finite difference of the sampled pulse) is 7 ns/p.e.
    h = 1e-3
    d_log = (_tot_numerical(n1 + h, dt=2e-5) - _tot_numerical(n1 - h, dt=2e-5)) / (2 * h)
    assert d_log == pytest.approx(7.0, abs=0.1)
    # continuous at the transition, exactly linear above it
    assert time_over_threshold(n1 * (1 + 1e-9)) == pytest.approx(time_over_threshold(n1 * (1 - 1e-9)), abs=1e-6)
    for q in (3.0, 10.0, 20.0):
        assert time_over_threshold(q) == pytest.approx(_tot_numerical(n1) + 7.0 * (q - n1), abs=1e-3)
    q_sat = n1 + (210.0 - _tot_numerical(n1)) / 7.0
    assert time_over_threshold(q_sat - 0.1) < 210.0
    assert time_over_threshold(q_sat + 0.1) == 210.0


def test_time_slewing_table():
    # Jpp default table, PHYSICS.md §7.3
    assert time_slewing_ns(0.0) == 8.0
    assert time_slewing_ns(26.0) == pytest.approx(0.07)
    assert time_slewing_ns(40.0) == pytest.approx(0.5 * (-0.6 - 3.2))
    assert time_slewing_ns(255.0) == pytest.approx(-9.04)
    assert np.all(np.diff(time_slewing_ns(np.linspace(0, 255, 300))) <= 0)


def test_pmt_parameters_defaults_and_overrides(orca7):
    det = orca7
    p = pmt_parameters(det)
    assert p.n_pmts == det.n_pmts
    assert np.all(p.qe == 1.0) and np.all(p.threshold == 0.24) and np.all(p.tts == 2.0)
    np.testing.assert_allclose(p.gain_spread, 0.4 * pmt.GAIN_SPREAD_TOT_SCALE)
    assert p.switched_on.all() and p.slewing
    ov = [{"pmt_id": int(det.pmt_id[3]), "qe": 0.0},
          {"dom_id": int(det.pmt_dom_id[40]), "channel": int(det.pmt_channel[40]), "gain": 0.8, "threshold": 0.3}]
    p = pmt_parameters(det, overrides=ov, slewing=False)
    assert not p.switched_on[3] and p.switched_on.sum() == det.n_pmts - 1
    assert p.gain[40] == 0.8 and p.threshold[40] == 0.3 and not p.slewing
    # the pulse shape stays; only the threshold moves: ToT(1 p.e.) is smaller at 0.3 p.e.
    assert p.tot(1.0, 40) < p.tot(1.0, 0) == pytest.approx(26.9)
    with pytest.raises(ConfigError, match="override #0"):
        pmt_parameters(det, overrides=[{"pmt_id": -5, "qe": 1.0}])
    with pytest.raises(ConfigError, match="unknown parameter"):
        pmt_parameters(det, overrides=[{"pmt_id": int(det.pmt_id[0]), "quantum": 1.0}])
    with pytest.raises(ConfigError, match="negative"):
        pmt_parameters(det, overrides=[{"pmt_id": int(det.pmt_id[0]), "gain": -1.0}])


def test_tot_shapes():
    assert isinstance(time_over_threshold(2.0), float)
    assert time_over_threshold(np.ones((2, 3))).shape == (2, 3)
