"""The validation report: every plot and statistic from a small production and real KM3NeT files;
a wrong simulation (K40 rate doubled) is flagged, a correct one is not; the HTML opens in a
real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest

from km3sim.cli import main
from km3sim.errors import StageFileError
from km3sim.io.daq import read_summaryslices
from km3sim.validate.report import PLOTS, validate
from tests.conftest import write_tiny_production

km3net_testdata = pytest.importorskip("km3net_testdata")
pytest.importorskip("matplotlib")

DET44 = "detx/km3net_offline.detx"
#: real ORCA (det 44) files: DAQ events + summaryslices, a Jpp DAQ stream pair, more DAQ events,
#: and an offline file with hits and Jpp muon fits
REAL = ["online/km3net_online.root", "daq/IO_EVT.dat", "daq/IO_SUM.dat", "online/events_sample.root",
        "offline/km3net_offline.root"]


def _production(directory, name, seed, k40_hz):
    p = write_tiny_production(directory, name=name, chunk_size=100, output=f"out_{name}")
    p.write_text(p.read_text().replace("seed: 4242", f"seed: {seed}").replace("k40_rate_hz: 7000", f"k40_rate_hz: {k40_hz}"))
    return p


@pytest.fixture(scope="module")
def alternative_sims(tmp_path_factory):
    """The tiny production's configuration with another seed: as it is, and with the K40 rate
    doubled (a deliberately wrong simulation of the tiny production taken as 'data')."""
    from km3sim.pipeline.config import load_production
    from km3sim.pipeline.runner import run_production

    d = tmp_path_factory.mktemp("validate")
    out = {}
    for name, k40 in (("nominal", 7000), ("k40x2", 14000)):
        p = _production(d, name, 777, k40)
        assert run_production(load_production(p)).ok
        out[name] = p
    return out


@pytest.fixture(scope="module")
def real_report(tiny_production):
    path, _ = tiny_production
    return validate(path, [km3net_testdata.data_path(f) for f in REAL], detector=km3net_testdata.data_path(DET44))


def test_report_from_real_files_has_every_plot_and_statistic(real_report, tmp_path):
    rep = real_report
    assert [p.id for p in rep.plots] == list(PLOTS)
    assert rep.data.n_events == 3 + 3 + 10 + 10  # events of the four files with events
    assert rep.data.livetime_s is None  # run 5971 (offline file) has no summaryslices: shapes only
    for p in rep.plots:
        assert p.png[:8] == b"\x89PNG\r\n\x1a\n"
        computed = [c for c in p.comparisons if c.computed]
        if p.id == "reco_energy" and not np.isfinite(rep.sim.reco["log10_energy"]).any():
            # km3sim's track fit writes no energy: the report says so instead of a statistic
            assert not p.available and "no finite log10_energy" in p.notes[0]
            continue
        assert p.available and computed, (p.id, [c.text() for c in p.comparisons])
    # summaryslices of det 44 against the simulated background of the 3-DU block
    ss = rep.plot("singles_rates_summaryslices")
    assert ss.comparisons[0].ndf == 6
    frames = []
    for f in REAL:
        try:
            frames.append(read_summaryslices(km3net_testdata.data_path(f)).n_frames)
        except StageFileError:
            pass  # no summaryslices in this file
    assert any(f"summaryslices: {sum(frames)} timeslices of {len(frames)} file(s)" in n for n in ss.notes)
    # the HTML holds every title, one embedded PNG per plot and no external resource
    html = rep.write_html(tmp_path / "r.html").read_text()
    for title in PLOTS.values():
        assert title.replace("->", "-&gt;") in html or title in html
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == len(PLOTS)
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "http://" not in html and "https://" not in html


@pytest.mark.slow
def test_wrong_k40_rate_is_flagged_and_the_right_one_is_not(tiny_production, alternative_sims, tmp_path):
    """'Data' = the tiny production (seed 4242); simulations with seed 777. The singles rates
    per PMT ring must agree for the same K40 rate (p >= 1e-3; with errors from the
    event-to-event spread the p-value is uniform under the hypothesis, so this fails by chance
    with probability 1e-3) and be flagged for a doubled rate (expected shift ~ +7 kHz per PMT
    against errors of ~0.5 kHz per ring)."""
    path, _ = tiny_production
    data = [str(path.parent / "out")]
    good = validate(alternative_sims["nominal"], data)
    bad = validate(alternative_sims["k40x2"], data)
    assert good.data.livetime_s == pytest.approx(3.5)  # km3sim files record their livetime
    assert "singles_rates_snapshot" not in good.flagged
    assert "singles_rates_snapshot" in bad.flagged
    g = good.plot("singles_rates_snapshot").comparisons[0]
    b = bad.plot("singles_rates_snapshot").comparisons[0]
    assert g.computed and b.computed and b.p_value < 1e-6 < g.p_value
    # the CLI: exit code 1 with --fail-on-disagreement, the flagged plot named
    out = tmp_path / "bad.html"
    assert main(["validate", "--sim", str(alternative_sims["k40x2"]), "--data", *data, "-o", str(out),
                 "--fail-on-disagreement"]) == 1
    assert out.is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="needs headless Chromium (apt-get install chromium); see examples/screenshot_report.sh")
def test_report_renders_in_chromium(real_report, tmp_path):
    from matplotlib.image import imread

    html = real_report.write_html(tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1300,3000",
                    f"--screenshot={shot}", html.as_uri()], check=True, capture_output=True, timeout=120)
    img = imread(shot)
    assert img.shape[0] == 3000 and img.shape[1] == 1300
    # not a blank page: text and plots give many distinct colours, the red of a flagged row among them
    rgb = (img[..., :3] * 255).astype(int)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200
    assert np.any((rgb[..., 0] > 240) & (rgb[..., 1] > 200) & (rgb[..., 1] < 215))  # #f8d0d0 rows


def test_km3sim_trigger_output_of_real_data_replaces_the_daq_events(tiny_production, tmp_path):
    """Data run through ``km3sim trigger``: its events stand for the DAQ file's (counted once),
    whose summaryslices give the livetime."""
    import km3sim.commands as commands

    if "trigger" not in [m.__name__.rsplit(".", 1)[-1] for m in commands.command_modules()]:
        pytest.skip("no 'km3sim trigger' command")
    daq = km3net_testdata.data_path("online/events_sample.root")
    det = km3net_testdata.data_path(DET44)
    out = tmp_path / "trig.h5"
    assert main(["trigger", daq, "-d", det, "-o", str(out)]) == 0
    path, _ = tiny_production
    rep = validate(path, [str(out), daq], detector=det)
    from km3sim.io.hdf5 import read_stage_file

    n = len(read_stage_file(out, ["triggered_events"])[0]["triggered_events"])
    assert rep.data.n_events == n
    assert rep.data.livetime_s == pytest.approx(read_summaryslices(daq).livetime_s)
    assert any("counted once" in note for note in rep.data.notes)
