"""Statistics and background estimators of the validation report."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from km3sim.table import Table
from km3sim.validate._kernels import cluster_multiplicities
from km3sim.validate.samples import _span_estimate, best_fits
from km3sim.validate.stats import _merge_low_bins, chi2_histogram, chi2_values, ks_weighted


def test_chi2_histogram_is_calibrated_and_detects_a_shift():
    """Pseudo-data drawn from the simulated expectation: the fraction of p < 0.05 over 400
    experiments is 0.05 ± 0.011 (binomial σ); we accept 0.02-0.09 (about ±3σ, two-sided). A
    shift of the mean by 0.2σ in a 4000-event Gaussian sample adds about N·δ² = 160 to the χ²
    (Fisher information of the mean) on 11 ndf: p < 1e-6 by far."""
    rng = np.random.default_rng(1)
    edges = np.linspace(-3, 3, 13)
    sim = rng.normal(size=20000)
    w = np.full(len(sim), 1.0 / 20.0)  # rate per event [1/s]; livetime 1 s -> expectation 1000
    sw = np.histogram(sim, edges, weights=w)[0]
    sw2 = np.histogram(sim, edges, weights=w**2)[0]
    expected = sw * 1.0
    ps = []
    for _ in range(400):
        d = rng.poisson(expected)
        ps.append(chi2_histogram(d, sw, sw2, livetime_s=1.0).p_value)
    frac = np.mean(np.asarray(ps) < 0.05)
    assert 0.02 < frac < 0.09
    shifted = np.histogram(rng.normal(0.2, 1.0, 4000), edges)[0]
    assert chi2_histogram(shifted, sw, sw2, livetime_s=None).p_value < 1e-6
    # shape mode loses one degree of freedom
    assert chi2_histogram(rng.poisson(expected), sw, sw2, livetime_s=None).ndf == \
        chi2_histogram(rng.poisson(expected), sw, sw2, livetime_s=1.0).ndf - 1


def test_chi2_histogram_edge_cases():
    assert not chi2_histogram([0, 0], [1, 1], [1, 1], livetime_s=1.0).computed
    assert not chi2_histogram([3, 4], [0, 0], [0, 0], livetime_s=1.0).computed
    c = chi2_histogram([5, 5, 3], [5.0, 5.0, 0.0], [0.1, 0.1, 0.0], livetime_s=1.0, merge=False)
    assert c.p_value == 0.0 and "no entry" in c.note
    d, s, v = _merge_low_bins([1, 2, 10, 1], [1.0, 2.0, 10.0, 1.0], [0, 0, 0, 0], 5.0)
    assert s.min() >= 5.0 and d.sum() == 14 and s.sum() == 14.0


def test_ks_weighted_matches_scipy_and_uses_weights():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=300), rng.normal(0.2, 1.0, size=500)
    ours = ks_weighted(x, np.ones(300), y, np.ones(500))
    ref = stats.ks_2samp(x, y)
    assert ours.value == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=0.2)  # asymptotic vs scipy's exact/asymptotic
    # a uniform sample reweighted to a Gaussian shape agrees with Gaussian data; unweighted it does not
    u = rng.uniform(-4, 4, 20000)
    data = rng.normal(size=2000)
    good = ks_weighted(data, np.ones(2000), u, stats.norm.pdf(u))
    bad = ks_weighted(data, np.ones(2000), u, np.ones(20000))
    assert good.p_value > 1e-3 and bad.p_value < 1e-10


def test_chi2_values():
    c = chi2_values([1.0, 2.0, np.nan], [0.1, 0.1, 0.1], [1.1, 2.0, 3.0], [0.0, 0.1, 0.1])
    assert c.ndf == 2 and c.value * c.ndf == pytest.approx(0.01 / 0.01)


def test_span_estimator_is_unbiased():
    """Uniform hits in a 10 µs window, 30 per event: E[span (n+1)/(n-1)] = W. Over 2000 events
    the mean estimate has a relative error of about sqrt(2/(n^2)) / sqrt(2000) ~ 0.1 %; ±1 %."""
    rng = np.random.default_rng(3)
    n_ev, n = 2000, 30
    ev = np.repeat(np.arange(n_ev), n)
    t = rng.uniform(0.0, 10_000.0, n_ev * n) + np.repeat(rng.uniform(-1e6, 1e6, n_ev), n)
    est = _span_estimate(ev, t, n_ev)
    assert est.mean() == pytest.approx(10_000.0, rel=0.01)
    assert _span_estimate(np.array([0]), np.array([5.0]), 2).tolist() == [0.0, 0.0]


def test_cluster_multiplicities_by_hand():
    # event 0, DOM 1: channels 0,1,2 within 10 ns (3-fold), then 3 and 3 again (same PMT: no
    # coincidence), then 4,5 within 25 ns (2-fold); DOM 2: 7 and 8 40 ns apart (none)
    # event 1, DOM 1: a 9-fold cluster (counted in the last bin, >= 8)
    rows = [(0, 1, 0, 0.0), (0, 1, 1, 5.0), (0, 1, 2, 10.0), (0, 1, 3, 100.0), (0, 1, 3, 110.0),
            (0, 1, 4, 300.0), (0, 1, 5, 320.0), (0, 2, 7, 0.0), (0, 2, 8, 40.0)]
    rows += [(1, 1, c, 1.0 * c) for c in range(9)]
    a = np.array(rows, dtype=float)
    out = cluster_multiplicities(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64),
                                 a[:, 3], 2, 25.0, 8)
    assert out[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert out[1].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_best_fits_follows_the_jpp_chain():
    # Jpp stages are identifiers: JLINEFIT (6) is a prefit, JMUONENERGY (4) comes after JMUONGANDALF (3)
    t = Table({"event_id": np.array([1, 1, 1, 1]), "rec_type": np.full(4, 4000), "rec_stage": np.array([6, 1, 3, 4]),
               "status": np.array([0, 0, 0, 1]), "dir_z": np.array([-1.0, -0.9, -0.8, -0.7]),
               "energy": np.array([np.nan, np.nan, np.nan, 50.0])})
    b = best_fits(t)
    assert b["rec_stage"].tolist() == [3] and np.isnan(b["energy"][0])  # the energy row did not converge
    t2 = t.with_columns(status=np.zeros(4, int), energy=np.array([np.nan, np.nan, np.nan, 50.0]))
    b2 = best_fits(t2)
    assert b2["rec_stage"].tolist() == [4] and b2["energy"].tolist() == [50.0]


def test_best_fits_takes_the_last_converged_stage():
    t = Table({"event_id": np.array([1, 1, 2, 2, 3]), "rec_type": np.array([5001, 5002, 5001, 5002, 5001]),
               "rec_stage": np.array([1, 2, 1, 2, 1]), "status": np.array([0, 0, 0, 1, 1]),
               "dir_z": np.array([-1.0, -0.5, -0.9, np.nan, -0.2])})
    b = best_fits(t)
    assert b["event_id"].tolist() == [1, 2] and b["rec_type"].tolist() == [5002, 5001]
