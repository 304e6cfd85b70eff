"""Tabulated transit-time spread (``pmt_response.tts_table``, PHYSICS.md §7.3: Jpp uses the
measured TTS distribution where the TTS parameter is negative)."""

import math

import numpy as np
import pytest
from scipy.stats import kstest, norm

from km3sim.detector import pmt
from km3sim.detector._kernels import sample_tts_table
from km3sim.detector.background import packed_pmt_parameters
from km3sim.detector.response import PmtResponse, PmtResponseConfig
from km3sim.errors import ConfigError, StageFileError

from tests.detector.test_response import make_mc_hits, run, stub_detector

#: a skewed triangle with a flat shoulder, far from a Gaussian: rises 0 -> 1 over [-2, 0],
#: falls to 0.25 at 4 ns, flat to 12 ns, then 0 at 13 ns (written with a header, a comment,
#: commas and blank lines)
TABLE = """time_ns,pdf
# a test table
-2.0, 0.0
0.0, 1.0

4.0, 0.25
12.0  0.25
13.0  0
"""


def write(tmp_path, text, name="tts.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def exact_cdf(t):
    """CDF of TABLE integrated by hand (areas 1, 2.5, 2, 0.125; total 5.625)."""
    t = np.asarray(t, dtype=float)
    c = np.where(t < 0, 0.25 * (t + 2) ** 2, 0.0)
    c = np.where((t >= 0) & (t < 4), 1.0 + t - 0.09375 * t * t, c)
    c = np.where((t >= 4) & (t < 12), 3.5 + 0.25 * (t - 4), c)
    c = np.where(t >= 12, 5.5 + 0.25 * (t - 12) - 0.125 * (t - 12) ** 2, c)
    return np.clip(np.where(t >= 13, 5.625, np.where(t <= -2, 0.0, c)) / 5.625, 0, 1)


def test_table_file_and_exact_cdf(tmp_path):
    tab = pmt.read_tts_table(write(tmp_path, TABLE))
    np.testing.assert_array_equal(tab.time_ns, [-2, 0, 4, 12, 13])
    x = np.linspace(-3, 14, 341)
    np.testing.assert_allclose(tab.cdf(x), exact_cdf(x), atol=1e-12)
    # quantile nodes of the kernel: the CDF at them is j/(m-1) (ends: 1e-6 and 1 - 1e-6)
    u = np.linspace(0, 1, len(tab.icdf))
    u[0], u[-1] = pmt.TTS_TAIL_CUT, 1 - pmt.TTS_TAIL_CUT
    np.testing.assert_allclose(tab.cdf(tab.icdf), u, atol=1e-9)


def test_kernel_samples_the_table(tmp_path):
    # KS test at a fixed seed (n = 100 000: the 1 % critical distance is 0.0052); the same
    # sample against the table shifted by 0.1 ns must fail (the CDF moves by up to 0.05)
    tab = pmt.read_tts_table(write(tmp_path, TABLE))
    s = sample_tts_table(tab.icdf, 100_000, np.uint64(11))
    assert kstest(s, tab.cdf).pvalue > 0.01
    assert kstest(s, lambda t: tab.cdf(np.asarray(t) - 0.1)).pvalue < 1e-6
    assert -2.0 <= s.min() and s.max() <= 13.0


def test_builtin_distribution():
    # main Gaussian σ 2 ns with prepulse (0.5 %, ~-12 ns) and late-pulse (3 %, 4..30 ns) tails
    tab = pmt.tts_table(pmt.TTS_TABLE_BUILTIN)
    assert tab is pmt.tts_table("km3net_3inch")
    s = sample_tts_table(tab.icdf, 200_000, np.uint64(3))
    assert kstest(s, tab.cdf).pvalue > 0.01
    # component fractions from the model's definition (pmt.KM3NET_3INCH_TTS): below -6 ns the
    # prepulses (all but Φ(-4)) and the main Gaussian's tail Φ(-3); above +6 ns the late pulses
    # (uniform in 4..30 ns smeared by σ 2 ns) and the main tail. Binomial σ ≤ 0.04 % at n = 2e5;
    # tolerance 4 σ
    m = pmt.KM3NET_3INCH_TTS
    w_main = 1 - m["prepulse_fraction"] - m["late_fraction"]
    a = np.linspace(*m["late_range_ns"], 20001)
    late_above = np.mean(norm.sf(6.0 - a, 0.0, m["sigma_ns"]))
    exp_pre = m["prepulse_fraction"] * norm.cdf(-6.0, m["prepulse_offset_ns"], m["prepulse_sigma_ns"]) + w_main * norm.sf(3.0)
    exp_late = m["late_fraction"] * late_above + w_main * norm.sf(3.0)
    for got, exp in ((np.mean(s < -6.0), exp_pre), (np.mean(s > 6.0), exp_late)):
        assert abs(got - exp) < 4 * math.sqrt(exp / 200_000), (got, exp)
    # the core: σ 2 ns Gaussian within ±3 σ has rms 2·sqrt(1 − 6φ(3)/(2Φ(3) − 1)) = 1.973 ns
    core = s[np.abs(s) < 6.0]
    assert np.std(core) == pytest.approx(2.0 * math.sqrt(1 - 6 * norm.pdf(3.0) / (2 * norm.cdf(3.0) - 1)), rel=0.02)


@pytest.mark.parametrize(
    "text, match",
    [
        ("0 1\n1 x\n", r"line 2: pdf 'x' is not a number"),
        ("0 1\n1 2 3\n", r"line 2: expected 2 columns"),
        ("0 1\n# c\n1 1\n1 2\n", r"line 4: time 1.0 ns does not increase \(line 3"),
        ("0 1\n1 -0.5\n", r"line 2: pdf = -0.5 is negative"),
        ("0 1\nnan 1\n", r"line 2: time_ns = nan is not finite"),
        ("0 0\n1 0\n", r"zero everywhere"),
        ("# only\n0 1\n", r"at least 2 rows"),
        ("t p\n0 1\nabc 1\n", r"line 3: time_ns 'abc' is not a number"),
    ],
)
def test_bad_table_files(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(StageFileError, match=match) as info:
        pmt.read_tts_table(p)
    assert str(p) in str(info.value)


def test_missing_table_file_through_the_stage(tmp_path):
    det = stub_detector(31)
    stage = PmtResponse(PmtResponseConfig(tts_table=str(tmp_path / "none.txt")), detector=det)
    with pytest.raises(StageFileError, match="cannot read TTS table file"):
        run(stage, det, np.array([0]), make_mc_hits([0], [0], 0.0, det))
    bad = [{"pmt_id": int(det.pmt_id[0]), "tts_table": 3.0}]
    with pytest.raises(ConfigError, match="override #0: tts_table must be a file name"):
        run(PmtResponse(PmtResponseConfig(pmt_overrides=bad), detector=det), det, np.array([0]), make_mc_hits([0], [0], 0.0, det))
    assert PmtResponse.input_files(PmtResponseConfig(tts_table="a.txt", pmt_overrides=[
        {"pmt_id": 1, "tts_table": "b.txt"}, {"pmt_id": 2, "tts_table": "km3net_3inch"}])) == ["a.txt", "b.txt"]


QUIET = dict(k40_rate_hz=0.0, k40_coincidence_hz=[], slewing=False, afterpulse_probability=0.0, p_under_amplified=0.0,
             gain_spread=0.0)


def test_stage_hit_times_follow_the_table(tmp_path):
    # one pe per event at t = 1000 ns on 31 PMTs, charge exactly 1 p.e. (no losses), no
    # slewing: hit time - 1000 ns is the transit time. KS at a fixed seed, n = 6000 (1 %
    # critical distance 0.021); a Gaussian of the same mean and rms fails it
    det = stub_detector(31)
    path = write(tmp_path, TABLE)
    n_ev = 6000
    ev = np.arange(n_ev, dtype=np.int64)
    mc = make_mc_hits(ev, ev % 31, 1000.0, det, origin=1)
    hits = run(PmtResponse(PmtResponseConfig(tts_table=str(path), **QUIET), detector=det), det, ev, mc)
    assert len(hits) == n_ev
    dt = hits["time"] - 1000.0
    assert kstest(dt, exact_cdf).pvalue > 0.01
    assert kstest(dt, norm(dt.mean(), dt.std()).cdf).pvalue < 1e-6


def test_gaussian_default_and_per_pmt_choice(tmp_path):
    det = stub_detector(31)
    params = pmt.pmt_parameters(det)
    assert np.all(params.tts_table == -1) and params.tts_tables == []
    assert np.all(packed_pmt_parameters(params)[1][:, 14] == -1.0)  # PP_TTS_TABLE: Gaussian
    # global table for PMTs without their own TTS; PMT 0 Gaussian σ 0 by override, PMT 1 its own table
    path = write(tmp_path, TABLE)
    ov = [{"pmt_id": int(det.pmt_id[0]), "tts": 0.0}, {"pmt_id": int(det.pmt_id[1]), "tts_table": str(path)}]
    p2 = pmt.pmt_parameters(det, overrides=ov, tts_table="km3net_3inch")
    assert [t.source for t in p2.tts_tables] == [str(path), "km3net_3inch"]
    assert p2.tts_table[0] == -1 and p2.tts_table[1] == 0 and np.all(p2.tts_table[2:] == 1)
    # through the stage: PMT 0 exact times, PMT 1 the table (support -2..13 ns), others the built-in
    n_ev = 3000
    ev = np.arange(n_ev, dtype=np.int64)
    mc = make_mc_hits(ev, ev % 3, 1000.0, det)
    cfg = PmtResponseConfig(tts_table="km3net_3inch", pmt_overrides=ov, **QUIET)
    hits = run(PmtResponse(cfg, detector=det), det, ev, mc)
    dt = hits["time"] - 1000.0
    on = {k: dt[hits["pmt_id"] == det.pmt_id[k]] for k in range(3)}
    assert np.all(on[0] == 0.0)
    assert kstest(on[1], exact_cdf).pvalue > 0.001
    assert kstest(on[2], pmt.tts_table("km3net_3inch").cdf).pvalue > 0.001
    # a Jpp PMT file's positive TTS wins over the table, a negative one takes it (Jpp semantics)
    p3 = pmt.pmt_parameters(det, overrides=[{"pmt_id": int(det.pmt_id[4]), "tts": -1.0}], tts_table=path, tts_ns=1.0)
    assert p3.tts_table[4] == 0 and p3.tts[4] == 1.0
