import numpy as np
import pytest

from km3sim import random as kr
from km3sim.errors import StageError
from km3sim.schema import SCHEMAS, empty_table, make_table, validate_table


def test_every_table_has_event_id_and_units():
    for name, schema in SCHEMAS.items():
        assert "event_id" in schema.columns, name
        assert np.dtype(schema.columns["event_id"].dtype) == np.int64
        for col, spec in schema.columns.items():
            assert spec.description, (name, col)
            if col in ("time", "pos_x", "length", "energy"):
                assert spec.unit in ("ns", "m", "GeV"), (name, col, spec.unit)


def test_make_and_validate_table():
    t = make_table("mc_hits", event_id=[1], pmt_id=[2], dom_id=[3], channel_id=[4], time=[1.5], npe=[1], origin=[0])
    assert validate_table(t, "mc_hits").columns == list(SCHEMAS["mc_hits"].columns)
    assert len(empty_table("hits")) == 0
    with pytest.raises(StageError, match="missing columns \\['origin'\\]"):
        make_table("mc_hits", event_id=[1], pmt_id=[2], dom_id=[3], channel_id=[4], time=[1.5], npe=[1])
    bad = t.with_columns(time=np.array([1], dtype=np.int32))
    with pytest.raises(StageError, match="'time': dtype int32"):
        validate_table(bad, "mc_hits")
    with pytest.raises(StageError, match="cannot store float64 as <i4"):
        make_table("mc_hits", event_id=[1], pmt_id=[2.5], dom_id=[3], channel_id=[4], time=[1.5], npe=[1], origin=[0])


def test_event_seeds_depend_on_every_input_and_nothing_else():
    ids = np.arange(100, dtype=np.int64)
    s = kr.event_seeds(1, 5, ids, "light")
    assert len(np.unique(s)) == 100
    # the same event gets the same seed whatever the other events of the chunk
    assert np.array_equal(kr.event_seeds(1, 5, ids[37:40], "light"), s[37:40])
    for other in (kr.event_seeds(2, 5, ids, "light"), kr.event_seeds(1, 6, ids, "light"), kr.event_seeds(1, 5, ids, "detect")):
        assert not np.any(other == s)


def test_rng_distributions():
    import numba

    @numba.njit
    def draw(seed, n):
        s = kr.rng_new(seed)
        u = np.empty(n)
        g = np.empty(n)
        e = np.empty(n)
        for i in range(n):
            u[i] = kr.rng_uniform(s)
            g[i] = kr.rng_normal(s)
            e[i] = kr.rng_exponential(s)
        return u, g, e

    n = 200_000
    u, g, e = draw(12345, n)
    # 5-sigma two-sided bounds on the sample means: sigma = std/sqrt(n)
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(g.mean()) < 5 / np.sqrt(n)
    assert abs(g.std() - 1) < 5 * np.sqrt(0.5 / n)
    assert abs(e.mean() - 1) < 5 / np.sqrt(n)


@pytest.mark.parametrize("lam", [0.05, 2.5, 9.9, 10.1, 47.0, 3000.0])
def test_rng_poisson_mean_and_variance(lam):
    import numba

    @numba.njit
    def draw(seed, n, lam):
        s = kr.rng_new(seed)
        out = np.empty(n)
        for i in range(n):
            out[i] = kr.rng_poisson(s, lam)
        return out

    n = 200_000
    k = draw(7, n, lam)
    # mean has sigma sqrt(lam/n); the variance estimator has sigma ~ lam*sqrt(2/n) (+ small 4th-cumulant term)
    assert abs(k.mean() - lam) < 5 * np.sqrt(lam / n)
    assert abs(k.var() - lam) < 5 * np.sqrt((2 * lam**2 + lam) / n)
    if lam < 20:
        from scipy.stats import poisson

        # pmf of the first values within 5 sigma of the binomial error
        for v in range(4):
            p = poisson.pmf(v, lam)
            assert abs(np.mean(k == v) - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-12
