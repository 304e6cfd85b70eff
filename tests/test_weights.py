"""Weights of merged event tables (km3sim.weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from km3sim.errors import StageError, StageFileError
from km3sim.schema import make_table
from km3sim.table import Table
from km3sim.weights import (
    HondaFlux,
    expected_events,
    honda_flux,
    one_weight,
    power_law_flux,
    rate_weights,
    read_honda_table,
    total_livetime,
    total_n_gen,
)


def events(run_id, n_gen, livetime, w2=None, pdgid=81, energy=None, dir_z=None, first_id=0):
    """An events table with one row per entry of ``run_id``."""
    run_id = np.asarray(run_id)
    n = len(run_id)
    return make_table(
        "events",
        event_id=np.arange(first_id, first_id + n),
        run_id=run_id.astype(np.int32),
        mc_time=np.zeros(n),
        pdgid=np.broadcast_to(np.asarray(pdgid, dtype=np.int32), (n,)).copy(),
        n_muons=np.ones(n, dtype=np.int32),
        energy=np.full(n, 100.0) if energy is None else np.asarray(energy, dtype=float),
        pos_x=np.zeros(n), pos_y=np.zeros(n), pos_z=np.zeros(n),
        dir_x=np.zeros(n), dir_y=np.zeros(n),
        dir_z=np.full(n, -1.0) if dir_z is None else np.asarray(dir_z, dtype=float),
        n_gen=np.asarray(n_gen, dtype=np.int64) * np.ones(n, dtype=np.int64),
        livetime_s=np.asarray(livetime, dtype=float) * np.ones(n),
        weight_w2=np.full(n, np.nan) if w2 is None else np.asarray(w2, dtype=float),
    )


def muon_sample():
    # two runs of a MUPAGE-like production, run 1 in two chunks: 10 s and 30 s
    chunk_a = events([1, 1, 1], n_gen=5, livetime=10.0)
    chunk_b = events([1, 1], n_gen=5, livetime=10.0, first_id=3)
    run2 = events([2, 2, 2, 2], n_gen=4, livetime=30.0, first_id=5)
    return Table.concat([chunk_a, chunk_b, run2])


def neutrino_sample():
    # three runs of 1000 generated neutrinos each (a few rows of each here)
    rng = np.random.default_rng(3)
    runs = np.repeat([1, 2, 3], [4, 3, 5])
    n = len(runs)
    return events(runs, n_gen=1000, livetime=5.0, w2=rng.uniform(1, 10, n), pdgid=rng.choice([14, -14, 12], n),
                   energy=rng.uniform(10, 1e3, n), dir_z=rng.uniform(-1, 1, n), first_id=100)


def test_totals_sum_over_distinct_runs():
    ev = muon_sample()
    assert total_livetime(ev) == 40.0
    assert total_n_gen(ev) == 9
    nu = neutrino_sample()
    assert total_n_gen(nu) == 3000 and total_livetime(nu) == 15.0
    # also with a plain dict of arrays, and empty
    assert total_n_gen(nu.to_dict()) == 3000
    assert total_livetime(nu[np.zeros(len(nu), dtype=bool)]) == 0.0


def test_totals_check_run_consistency():
    bad = Table.concat([events([1, 1], n_gen=5, livetime=10.0), events([1], n_gen=6, livetime=10.0, first_id=2)])
    with pytest.raises(StageError, match="run 1 disagree on n_gen"):
        total_n_gen(bad)
    bad = Table.concat([events([7], n_gen=5, livetime=10.0), events([7], n_gen=5, livetime=11.0, first_id=2)])
    with pytest.raises(StageError, match="run 7 disagree on livetime_s"):
        total_livetime(bad)


def test_livetime_rows_rate():
    ev = muon_sample()
    w = rate_weights(ev)
    np.testing.assert_allclose(w, 1.0 / 40.0)
    # events expected in one year = rows x year / simulated livetime
    assert expected_events(ev, None, 3.15e7) == pytest.approx(9 * 3.15e7 / 40.0)


def test_generation_weight_rows_rate():
    nu = neutrino_sample()
    flux = power_law_flux(2e-4, 2.7)
    w = rate_weights(nu, flux)
    np.testing.assert_allclose(w, nu["weight_w2"] * 2e-4 * nu["energy"] ** -2.7 / 3000, rtol=1e-14)
    # flux restricted to some types: the others weigh 0
    only_numu = power_law_flux(2e-4, 2.7, pdgids=[14])
    w14 = rate_weights(nu, only_numu)
    np.testing.assert_array_equal(w14 == 0, nu["pdgid"] != 14)
    with pytest.raises(StageError, match="need a flux"):
        rate_weights(nu)


def test_zenith_passed_to_the_flux():
    nu = neutrino_sample()

    def flux(pdg, e, cosz):  # up-going (cos zenith < 0) twice the down-going flux
        return np.where(cosz > 0, 1.0, 2.0)

    w = rate_weights(nu, flux)
    np.testing.assert_allclose(w, nu["weight_w2"] * np.where(-nu["dir_z"] > 0, 1.0, 2.0) / 3000)


def test_mixed_samples_and_selections():
    mu, nu = muon_sample(), neutrino_sample()
    both = Table.concat([mu, nu])  # run ids 1, 2 appear in both kinds: totals are per kind
    flux = power_law_flux(1.0, 2.0)
    w = rate_weights(both, flux)
    np.testing.assert_allclose(w[: len(mu)], 1 / 40.0)
    np.testing.assert_allclose(w[len(mu):], rate_weights(nu, flux))
    # a selection that lost run 3 and run 2 of the muons: totals from the generated sample
    keep = both["run_id"] == 1
    sel = both[keep]
    np.testing.assert_allclose(rate_weights(sel, flux, totals_from=both), w[keep])
    # without totals_from, the selection alone looks like a smaller sample
    assert rate_weights(sel, flux)[0] == pytest.approx(1 / 10.0)
    assert expected_events(sel, flux, 2.0, totals_from=both) == pytest.approx(2.0 * np.sum(w[keep]))


def test_power_law_flux():
    f = power_law_flux(3.0, 2.0, e0=10.0)
    np.testing.assert_allclose(f(np.array([14, -12]), np.array([10.0, 100.0]), np.array([0.0, 0.5])), [3.0, 0.03])
    with pytest.raises(ValueError):
        power_law_flux(-1.0, 2.0)
    assert f.description["power_law"]["index"] == 2.0


@pytest.fixture(scope="module")
def honda():
    pytest.importorskip("km3flux")
    return honda_flux()


def test_honda_matches_the_km3flux_hdf5_table(honda):
    """At the table nodes, the text table read here equals km3flux's own HDF5 table."""
    h5py = pytest.importorskip("h5py")
    km3flux_data = pytest.importorskip("km3flux.data")
    with h5py.File(km3flux_data.HONDAFILE, "r") as h5:
        energy = h5["energy"][:]
        cos_c = h5["cos_zen"][:]
        ref = {14: h5["nu_mu"][:], -14: h5["nu_mu_bar"][:], 12: h5["nu_e"][:], -12: h5["nu_e_bar"][:]}
    ee, cc = np.meshgrid(energy, cos_c)
    for pdg, table in ref.items():
        got = honda(np.full(ee.size, pdg), ee.ravel(), cc.ravel()).reshape(ee.shape)
        # the tables carry 5 significant digits
        np.testing.assert_allclose(got, table, rtol=1e-4)


def test_honda_interpolation(honda):
    e = honda.energy
    # between two energy nodes at a bin centre: between the neighbours, log-linear
    mid = math.sqrt(e[40] * e[41])
    lo, hi = honda(14, np.array([e[40], e[41]]), 0.55)
    got = honda(14, mid, 0.55)
    assert got == pytest.approx(math.sqrt(lo * hi), rel=1e-12)
    # beyond the cos centres: flat; nu_tau 0; below 0.1 GeV NaN
    assert honda(14, 10.0, 1.0) == pytest.approx(honda(14, 10.0, 0.95))
    assert honda(16, 10.0, 0.3) == 0.0 and honda(-16, 10.0, 0.3) == 0.0
    assert np.isnan(honda(14, 0.05, 0.3))
    # above 10 TeV: the last log-log slope continues (conventional flux only)
    f1, f2 = honda(14, np.array([e[-2], e[-1]]), -0.15)
    slope = math.log(f2 / f1) / math.log(e[-1] / e[-2])
    assert honda(14, 1e5, -0.15) == pytest.approx(f2 * (1e5 / e[-1]) ** slope, rel=1e-9)
    assert -4.2 < slope < -3.2
    # the horizontal flux exceeds the vertical one at 10 GeV (longer decay paths for pi, K)
    assert honda(14, 10.0, 0.05) > honda(14, 10.0, 0.95)


def test_honda_table_errors(tmp_path):
    bad = tmp_path / "bad.d"
    bad.write_text("average flux in [cosZ = 0.90 --  1.00, phi_Az =   0 -- 360]\n Enu(GeV) NuMu NuMubar NuE NuEbar\n 1.0 2.0 3.0\n")
    with pytest.raises(StageFileError, match="bad.d:3"):
        read_honda_table(bad)
    with pytest.raises(StageFileError, match="cannot read"):
        HondaFlux(tmp_path / "missing.d")
    empty = tmp_path / "empty.d"
    empty.write_text("\n")
    with pytest.raises(StageFileError, match="no 'average flux"):
        read_honda_table(empty)


def test_one_weight_gives_the_same_rate_in_icecube_units():
    nu = neutrino_sample()
    # the same flux in m^-2 and in cm^-2 (1e-4 of it)
    rate_m2 = rate_weights(nu, power_law_flux(2e-4, 2.7))
    ow = one_weight(nu)
    rate_cm2 = ow * 2e-8 * nu["energy"] ** -2.7 / total_n_gen(nu)
    np.testing.assert_allclose(rate_cm2, rate_m2, rtol=1e-12)
    assert np.all(np.isnan(one_weight(muon_sample())))
