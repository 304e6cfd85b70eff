"""Tests of the Jpp PMT parameter file reader (FORMATS.md §7, PHYSICS.md §7.3, §13)."""

import numpy as np
import pytest
from km3net_testdata import data_path

from km3sim.detector.pmt import pmt_parameters
from km3sim.errors import StageFileError
from km3sim.io.detx import read_detector
from km3sim.io.pmt_params import read_pmt_parameters

HEADER = "# comment\nQE=1\nmu=0.2\n%.QE=1\n%.gain=1\n%.gainSpread=0.4\n%.threshold=0.24\n%.slewing=1\n"


def test_pmteff_arca21():
    pf = read_pmt_parameters(data_path("calib/PMTeff.txt"))
    # ARCA21: 21 DUs × 18 DOMs × 31 PMTs
    assert pf.n_pmts == 21 * 18 * 31
    assert len(np.unique(pf.dom_id)) == 378
    # the defaults of the file are the Jpp values of PHYSICS.md §7.3
    assert pf.defaults == {"PunderAmplified": 0.05, "QE": 1.0, "TTS_ns": -1.0, "gain": 1.0, "gainSpread": 0.4,
                           "mean_ns": 4.5, "riseTime_ns": 7.24, "saturation": 210.0, "sigma_ns": 1.5,
                           "slewing": 1.0, "slope": 7.0, "threshold": 0.24, "thresholdBand": 0.12}
    assert pf.globals == {"QE": 1.0, "mu": 0.206}
    # first PMT line: "PMT= 806451584  0 0.795 1.117 0.439  7.24 -1.00 0.240"
    assert (pf.dom_id[0], pf.channel[0]) == (806451584, 0)
    assert [pf.values[k][0] for k in ("QE", "gain", "gainSpread", "riseTime_ns", "TTS_ns", "threshold")] == \
        [0.795, 1.117, 0.439, 7.24, -1.0, 0.24]
    # PHYSICS.md §13: relative efficiency 0.97 [0.85-1.05], 8 % switched off
    s = pf.summary()
    assert s["fraction_off"] == pytest.approx(0.08, abs=0.005)
    assert s["qe_median"] == pytest.approx(0.97, abs=0.005)
    assert s["qe_p16"] == pytest.approx(0.85, abs=0.01)
    assert s["qe_p84"] == pytest.approx(1.05, abs=0.01)


def test_pmt_parameters_from_file_on_arca21():
    det = read_detector(data_path("detx/KM3NeT_00000133_20221025.detx"))
    path = data_path("calib/PMTeff.txt")
    pf = read_pmt_parameters(path)
    p = pmt_parameters(det, path)
    row = pf.lookup(det.pmt_dom_id, det.pmt_channel)
    assert np.all(row >= 0)  # every PMT of the detector is in the file
    np.testing.assert_array_equal(p.qe, pf.values["QE"][row])
    np.testing.assert_array_equal(p.gain, pf.values["gain"][row])
    np.testing.assert_allclose(p.gain_spread, 0.5 * pf.values["gainSpread"][row])
    assert np.all(p.tts == 2.0)  # Jpp TTS −1: "measured distribution" -> the Gaussian default
    assert p.switched_on.mean() == pytest.approx(1 - 972 / 11718)
    assert p.p_under_amplified == 0.05 and p.slewing and p.saturation == 210.0 and p.slope == 7.0


def _write(tmp_path, body):
    f = tmp_path / "pmt.txt"
    f.write_text(HEADER + body)
    return f


def test_small_file_and_defaults_for_missing_pmts(tmp_path, orca7):
    det = orca7
    d0, d1 = int(det.pmt_dom_id[0]), int(det.pmt_dom_id[31])
    f = _write(tmp_path, f"PMT= {d0} 2 0.000 1.0 0.4 7.24 -1 0.24\nPMT= {d1} 0 1.1 0.9 0.3 7.24 1.5 0.30\n")
    pf = read_pmt_parameters(f)
    assert pf.n_pmts == 2 and pf.lookup([d0, d1, d0], [2, 0, 3]).tolist() == [0, 1, -1]
    p = pmt_parameters(det, f)
    assert not p.switched_on[2] and p.switched_on.sum() == det.n_pmts - 1
    assert p.qe[31] == 1.1 and p.gain[31] == 0.9 and p.tts[31] == 1.5 and p.threshold[31] == 0.30
    assert p.gain_spread[31] == pytest.approx(0.15)
    assert p.qe[5] == 1.0 and p.tts[5] == 2.0  # not in the file: its defaults


@pytest.mark.parametrize(
    "body, match",
    [
        ("PMT= 1 0 1.0 1.0 0.4 7.24 -1\n", r"line 9: a PMT= line needs 8 values"),
        ("PMT= 1 0 1.0 x 0.4 7.24 -1 0.24\n", r"line 9: gain: 'x' is not a number"),
        ("PMT= 1 0 1.0 1.0 0.4 7.24 -1 0.24\nPMT= 1 0 1.0 1.0 0.4 7.24 -1 0.24\n", r"line 10: DOM 1 channel 0 already given on line 9"),
        ("PMT= 1 0 -0.5 1.0 0.4 7.24 -1 0.24\n", r"line 9: QE = -0.5 is negative"),
        ("PMT= 1 99 1.0 1.0 0.4 7.24 -1 0.24\n", r"line 9: channel 99 out of range"),
        ("PMT= a 0 1.0 1.0 0.4 7.24 -1 0.24\n", r"line 9: DOM id and channel must be integers"),
        ("garbage\n", r"line 9: expected"),
        ("%.gain=nan\n", r"line 9: %.gain: 'nan' is not finite"),
    ],
)
def test_malformed_files(tmp_path, body, match):
    f = _write(tmp_path, body)
    with pytest.raises(StageFileError, match=match) as exc:
        read_pmt_parameters(f)
    assert str(f) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(StageFileError, match="cannot read PMT parameter file"):
        read_pmt_parameters(tmp_path / "nope.txt")
