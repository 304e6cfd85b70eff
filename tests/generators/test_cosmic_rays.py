"""Tests of the cosmic-ray primary flux models (km3sim.generators.cosmic_rays)."""

import math

import numpy as np
import pytest
from scipy import integrate

from km3sim.generators.cosmic_rays import (
    CNO,
    GENERATION_GROUPS,
    HELIUM,
    IRON,
    MGSI,
    PROTON,
    PrimaryFlux,
    get_flux_model,
    mass_number,
    nucleus_pdg,
    nucleus_za,
)

crflux_models = pytest.importorskip("crflux.models")

#: energies [GeV] from below the knee to the ankle, including the knee region 1e6 - 1e8 GeV
ENERGIES = np.concatenate([np.logspace(1, 11, 31), [3e6, 4e6, 5e6, 1e7, 3e7, 8e7]])

#: crflux corsika ids of our groups: H3a/H4a share the groups; GST's C -> CNO, O -> Mg-Si
H_IDS = {PROTON: 14, HELIUM: 402, CNO: 1206, MGSI: 2814, IRON: 5426}
GST_IDS = {PROTON: 14, HELIUM: 402, CNO: 1206, MGSI: 1608, IRON: 5426}


def _crflux(name):
    m = crflux_models
    return {
        "H3a": (lambda: m.HillasGaisser2012("H3a"), H_IDS),
        "H4a": (lambda: m.HillasGaisser2012("H4a"), H_IDS),
        "GST3": (lambda: m.GaisserStanevTilav("3-gen"), GST_IDS),
        "GST4": (lambda: m.GaisserStanevTilav("4-gen"), GST_IDS),
    }[name]


def _close(a, b, rtol):
    """Relative agreement where the reference is non-zero, exact zeros elsewhere."""
    a, b = np.asarray(a), np.asarray(b)
    nz = b != 0.0
    assert np.all(a[~nz] == 0.0)
    np.testing.assert_allclose(a[nz], b[nz], rtol=rtol, atol=0.0)


@pytest.mark.parametrize("name", ["H3a", "H4a", "GST3", "GST4"])
def test_group_fluxes_match_crflux(name):
    make, ids = _crflux(name)
    ref = make()
    model = get_flux_model(name)
    assert set(model.groups) == set(GENERATION_GROUPS)
    for pdg, cid in ids.items():
        # same formula and constants: agreement to rounding (1e-6 relative is generous)
        _close(model.flux(pdg, ENERGIES), ref.nucleus_flux(cid, ENERGIES), 1e-6)
    _close(model.total_flux(ENERGIES), ref.total_flux(ENERGIES), 1e-6)


def test_flux_shapes_and_scalars():
    m = get_flux_model("H3a")
    assert isinstance(m.flux(PROTON, 1e4), float)
    assert isinstance(m.total_flux(1e4), float)
    e = np.array([1e3, 1e5, 1e7])
    pdg = np.array([PROTON, IRON, HELIUM])
    per_row = m.flux(pdg, e)
    assert per_row == pytest.approx([m.flux(p, x) for p, x in zip(pdg, e)], rel=1e-15)
    assert m.flux(1000010010, 1e4) == m.flux(PROTON, 1e4)  # proton as a nucleus code
    with pytest.raises(ValueError, match="no group"):
        m.flux(1000080160, 1e4)
    with pytest.raises(ValueError, match="unknown cosmic-ray flux model"):
        get_flux_model("H5b")
    assert get_flux_model("gst-3gen").name == "GST3"
    assert get_flux_model(m) is m
    # callable as flux(pdgid, energy, cos_zenith), isotropic
    np.testing.assert_array_equal(m(pdg, e, np.array([0.1, 0.5, 1.0])), per_row)


def test_knee_value_by_hand():
    # PHYSICS.md §2.1 table, typed here independently: H3a protons at 4 PeV and Fe at 100 PeV
    e = 4e6
    p = 7860 * e**-2.66 * math.exp(-e / 4e6) + 20 * e**-2.4 * math.exp(-e / 3e7) + 1.7 * e**-2.4 * math.exp(-e / 2e9)
    assert get_flux_model("H3a").flux(PROTON, e) == pytest.approx(p, rel=1e-12)
    e = 1e8
    fe = 2120 * e**-2.63 * math.exp(-e / (26 * 4e6)) + 13.4 * e**-2.4 * math.exp(-e / (26 * 3e7)) + 1.14 * e**-2.4 * math.exp(-e / (26 * 2e9))
    assert get_flux_model("H3a").flux(IRON, e) == pytest.approx(fe, rel=1e-12)
    # GST3: O (Z = 8) labelled as the Mg-Si group
    e = 1e6
    o = 130 * e**-2.4 * math.exp(-e / (8 * 1.2e5)) + 7 * e**-2.3 * math.exp(-e / (8 * 4e6))
    assert get_flux_model("GST3").flux(MGSI, e) == pytest.approx(o, rel=1e-12)


def test_knee_steepens_all_particle_spectrum():
    # the knee: the all-particle differential index goes from ~2.7 below ~1 PeV to ~3.0-3.1
    # above ~10 PeV (Gaisser 2012, Fig. 2; GST 2013) - a property of every model here
    for name in ("H3a", "H4a", "GST3", "GST4"):
        m = get_flux_model(name)

        def index(e, m=m):
            return -math.log(m.total_flux(e * 1.01) / m.total_flux(e / 1.01)) / math.log(1.01**2)

        assert 2.55 < index(1e5) < 2.8, name
        assert 2.9 < index(3e7) < 3.4, name
        assert index(3e7) - index(1e5) > 0.25, name


@pytest.mark.parametrize("pdg", [PROTON, IRON, MGSI])
def test_integral_against_direct_quadrature(pdg):
    m = get_flux_model("GST4")
    emin, emax = 1e3, 1e9
    # direct adaptive quadrature in E on log-spaced pieces (independent of the ln E substitution)
    edges = np.logspace(3, 9, 25)
    ref = sum(integrate.quad(lambda e: m.flux(pdg, e), a, b, epsrel=1e-12, epsabs=0.0)[0] for a, b in zip(edges[:-1], edges[1:]))
    assert m.integral(pdg, emin, emax) == pytest.approx(ref, rel=1e-8)
    assert m.integral(pdg, 10.0, 10.0) == 0.0


def test_nucleus_codes():
    assert nucleus_pdg(26, 56) == IRON == 1000260560
    assert nucleus_pdg(1, 1) == PROTON
    assert nucleus_pdg(2, 4) == HELIUM
    assert nucleus_za(CNO) == (6, 12) and nucleus_za(PROTON) == (1, 1)
    assert list(mass_number([PROTON, HELIUM, CNO, MGSI, IRON])) == [1, 4, 12, 28, 56]
    with pytest.raises(ValueError):
        nucleus_pdg(3, 2)
    with pytest.raises(ValueError):
        nucleus_za(13)
    with pytest.raises(ValueError):
        mass_number([13, PROTON])


def test_custom_model_validation():
    with pytest.raises(ValueError, match="populations"):
        PrimaryFlux("bad", (1e6, 1e7), {PROTON: (1, [1.0], [1.6])})
