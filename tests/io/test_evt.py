"""evt ASCII reader and particle codes, on every evt file of km3net-testdata and on broken copies.

Expected values come from the raw text of the files, read here with plain string operations
(independent of the reader), or from the GEANT3 / CORSIKA / PDG conventions.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path

import numpy as np
import pytest

from km3sim.errors import StageFileError
from km3sim.io.evt import EvtFile, EvtReader, read_evt
from km3sim.io.pdg import (
    CORSIKA_TO_PDG,
    GEANT3_TO_PDG,
    corsika_to_pdg,
    geant3_to_pdg,
    is_nucleus,
    nucleus_pdg,
    nucleus_za,
)

km3net_testdata = pytest.importorskip("km3net_testdata")
data_path = km3net_testdata.data_path

EVT_FILES = sorted(
    glob.glob(data_path("evt") + "/*.evt")
    + glob.glob(data_path("gseagen") + "/*.evt")
    + glob.glob(data_path("mupage") + "/*.evt")
)
SMALL_FILES = [f for f in EVT_FILES if Path(f).stat().st_size < 1_000_000]


def _raw_lines(path):
    with open(path) as f:
        return [ln.rstrip("\n") for ln in f]


def _tag(line):
    return line.split(":", 1)[0].strip()


def _raw_structure(path):
    """Header lines and, per event, the tag of each line, from the text (independent parser)."""
    lines = _raw_lines(path)
    header, events, cur, in_header = [], [], None, True
    for ln in lines:
        if not ln.strip():
            continue
        tag = _tag(ln)
        if in_header:
            if tag == "end_event":
                in_header = False
            else:
                header.append((tag, ln.split(":", 1)[1].strip()))
        elif tag == "start_event":
            cur = {"id": int(ln.split(":", 1)[1].split()[0]), "tags": []}
        elif tag == "end_event":
            events.append(cur)
            cur = None
        else:
            cur["tags"].append((tag, ln.split(":", 1)[1].split()))
    return header, events


def test_all_testdata_evt_files_found():
    names = {Path(f).name for f in EVT_FILES}
    assert {"KM3Sim.evt", "corant_5.1.9.evt", "example_corant_propa.evt", "example_numuCC.evt",
            "example_numuNC.evt", "gseagen_v7.0.0_numuCC_diffuse.evt", "mcv5.0.mupage_1G.5.evt"} <= names


@pytest.mark.parametrize("path", EVT_FILES, ids=lambda p: Path(p).name)
def test_event_and_line_counts_match_the_text(path):
    header_lines, raw_events = _raw_structure(path)
    n_start = sum(1 for ln in _raw_lines(path) if _tag(ln) == "start_event")
    header, events = read_evt(path)
    assert len(events) == n_start == len(raw_events)
    assert EvtFile(path).n_events == n_start
    assert [e.event_id for e in events] == [r["id"] for r in raw_events]
    assert [e.index for e in events] == list(range(n_start))
    # every line of every event is kept, under its tag (numeric or text)
    for ev, raw in zip(events, raw_events):
        counts: dict[str, int] = {}
        for tag, _ in raw["tags"]:
            counts[tag] = counts.get(tag, 0) + 1
        got = {t: len(a) for t, a in ev.tags.items()}
        for t, v in ev.text.items():
            got[t] = got.get(t, 0) + len(v)
        assert got == counts, ev.event_id
    # the header keeps every line, in order per tag
    expected: dict[str, list[str]] = {}
    for tag, value in header_lines:
        expected.setdefault(tag, []).append(value)
    assert header.raw == expected


@pytest.mark.parametrize("path", SMALL_FILES, ids=lambda p: Path(p).name)
def test_numeric_columns_equal_the_text(path):
    """Every numeric value equals the float of its text token (types converted only in col 9)."""
    _, raw_events = _raw_structure(path)
    _, events = read_evt(path, convert_codes=False)
    for ev, raw in zip(events, raw_events):
        seen: dict[str, int] = {}
        for tag, toks in raw["tags"]:
            if tag in ev.text:
                continue
            i = seen.get(tag, 0)
            seen[tag] = i + 1
            row = ev.tags[tag][i]
            assert np.array_equal(row[: len(toks)], np.array([float(t) for t in toks])), (ev.event_id, tag)


def test_known_header_values():
    h, _ = read_evt(data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt"))
    assert h.program == "gSeaGen" and h.program_version == "dev"
    gv = [float(x) for x in h.raw["genvol"][0].split()]  # "340.454 1800.259 1661.659 2.41E+10 1.00E+03"
    assert h.get("genvol", "numberOfEvents") == gv[4] == 1000.0
    assert h.get("genvol", "volume") == 2.41e10
    assert h.get("fixedcan", "radius") == 888.4 and h.get("fixedcan", "zmax") == 1027.0
    assert h.get("cut_nu", "Emin") == 100.0 and h.get("cut_nu", "Emax") == 200.0
    assert h.get("spectrum", "alpha") == -1.40
    assert h.get("depth", "depth") == 3450.0
    assert [d["program"] for d in h.fields("simul")] == ["gSeaGen", "GENIE", "GENIE_REWEIGHT"]
    assert h.get("flux", "key") == "FUNC1" and h.get("flux", "file_1") == "1E-5*pow(x,-2)"
    assert h.get("can", "r", default=-1.0) == -1.0  # absent tag

    h, _ = read_evt(data_path("mupage/mcv5.0.mupage_1G.5.evt"))
    assert h.program == "MUPAGE"
    assert h.get("livetime", "numberOfSeconds") == 0.0738 and h.get("livetime", "errorOfSeconds") == 0.02
    assert h.get("norma", "numberOfPrimaries") == 20.0
    assert h.get("seabottom", "depth") == 2425.0
    assert h.get("fixedcan", "xcenter") == -38.6 and h.get("fixedcan", "ycenter") == 2.2
    assert len(h.raw["mupage_flux_params"][0].split()) >= 25  # unknown tag kept verbatim

    h, _ = read_evt(data_path("evt/KM3Sim.evt"))
    assert (h.get("can", "zmin"), h.get("can", "zmax"), h.get("can", "r")) == (-116.0, 130.0, 170.0)
    assert len(h.raw["flux"]) == 2 and h.fields("flux")[1]["type"] == "-12"

    # GENHEN writes Fortran numbers without blanks: "0.100E+09-0.100E+01"
    h, _ = read_evt(data_path("evt/example_numuNC.evt"))
    assert h.program == "GENHEN"
    assert "0.100E+09-0.100E+01" in h.raw["cut_nu"][0]
    assert [h.get("cut_nu", k) for k in ("Emin", "Emax", "cosTmin", "cosTmax")] == [100.0, 1e8, -1.0, 1.0]
    assert h.get("genvol", "numberOfEvents") == 5000.0

    # Corant writes ********* (Fortran overflow) for the can radius: NaN, raw text kept
    h, _ = read_evt(data_path("evt/example_corant_propa.evt"))
    assert h.program == "Corant" and h.program_version.startswith("4.2")
    assert math.isnan(h.fields("can")[0]["r"]) and "*********" in h.raw["can"][0]
    assert h.get("norma", "numberOfPrimaries") == 1000.0


#: GEANT3 codes and the particles they stand for (GEANT3 manual CONS300), written out
#: independently of km3sim.io.pdg for the checks below.
_GEANT3_NAMED = {1: 22, 2: -11, 3: 11, 5: -13, 6: 13, 7: 111, 8: 211, 9: -211, 13: 2112, 14: 2212, 15: -2212}


@pytest.mark.parametrize("path", SMALL_FILES, ids=lambda p: Path(p).name)
def test_track_types_are_converted_from_geant3(path):
    _, raw_events = _raw_structure(path)
    _, events = read_evt(path)
    n_checked = 0
    for ev, raw in zip(events, raw_events):
        codes = [int(float(toks[9])) for tag, toks in raw["tags"] if tag == "track_in"]
        if not codes:
            continue
        got = ev.tracks[:, 9].astype(int).tolist()
        for c, g in zip(codes, got):
            if c in _GEANT3_NAMED:
                assert g == _GEANT3_NAMED[c]
                n_checked += 1
            elif c == 99:  # GENHEN pseudo-particle: unknown
                assert g == 0
    if any(t == "track_in" for r in raw_events for t, _ in r["tags"]):
        assert n_checked > 0


def test_gseagen_evt_types_match_pdg_of_the_same_particles():
    """gSeaGen evt: primarylepton type 6 (GEANT3 mu-) for a nu_mu CC event, track_in muon 13."""
    _, events = read_evt(data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt"))
    for ev in events:
        nu = ev.row("neutrino")
        assert nu[12] == 14 and nu[13] == 2  # nu_mu, weak CC
        assert ev.row("primarylepton")[9] == 13
        assert np.count_nonzero(ev.tracks[:, 9] == 13) == 1


def test_corant_codes_by_version():
    # Corant 4.2: CORSIKA codes (14 = proton, 68/69 = nu_mu / anti-nu_mu, 5/6 = mu+/mu-)
    _, (ev,) = read_evt(data_path("evt/example_corant_propa.evt"))
    assert ev.row("track_primary")[9] == 2212 and ev.row("center_on_can")[9] == 2212
    assert set(ev.rows("track_seaneutrino")[:, 9].astype(int)) <= {14, -14, 12, -12}
    assert set(ev.rows("track_seamuon")[:, 9].astype(int)) == {13, -13}
    _, (raw,) = read_evt(data_path("evt/example_corant_propa.evt"), convert_codes=False)
    assert raw.row("track_primary")[9] == 14 and set(raw.rows("track_seaneutrino")[:, 9].astype(int)) <= {66, 67, 68, 69}
    # Corant 5.1.9 writes PDG codes: unchanged
    h, events = read_evt(data_path("evt/corant_5.1.9.evt"))
    assert h.program == "Corant" and h.program_version == "v5.1.9"
    assert all(e.row("track_primary")[9] == 2212 for e in events)
    assert set(events[0].rows("track_sealepton")[:, 9].astype(int)) == {13, -13, 14, -14}


def test_text_and_unknown_tags_are_kept():
    _, events = read_evt(data_path("evt/KM3Sim.evt"))
    assert events[0].text["target"] == ["O16       14.890"]
    _, events = read_evt(data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt"))
    assert events[0].text["target"] == ["8 16"] and events[0].rows("vertex").shape == (1, 2)


def test_reader_streams_and_indexed_file_reads_ranges():
    path = data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt")
    header, events = read_evt(path)
    with EvtReader(path) as reader:
        assert reader.header.raw == header.raw
        streamed = list(reader)
    ef = EvtFile(path)
    part = list(ef.events(10, 15))
    assert [e.index for e in part] == list(range(10, 15))
    for a, b, c in zip(events[10:15], streamed[10:15], part):
        assert a.event_id == b.event_id == c.event_id and a.line == c.line
        for tag in a.tags:
            assert np.array_equal(a.tags[tag], c.tags[tag]) and np.array_equal(a.tags[tag], b.tags[tag])
    assert list(ef.events(80, 1000))[-1].index == 81
    assert list(ef.events(5, 5)) == []
    assert np.array_equal(ef.event_ids, [e.event_id for e in events])


def test_tag_selection_skips_hit_lines():
    path = data_path("evt/example_numuCC.evt")
    ef = EvtFile(path, tags=("neutrino", "track_in"))
    evs = list(ef.events(0, 3))
    assert all(set(e.tags) <= {"neutrino", "track_in"} for e in evs)
    assert evs[0].tracks.shape[1] == 11  # GENHEN adds the muon length


# ------------------------------------------------------------------------------ bad files
GOOD = """start_run: 1
physics: gSeaGen 7.0 1 1
genvol: 0 100 50 1e6 10
end_event:
start_event: 1 1
neutrino: 1 0 0 0 0 0 1 10.0 0 0.2 0.3 3 14 2
track_in: 1 0 0 0 0 0 1 5.0 0 6
weights: 1 2 3
end_event:
start_event: 2 1
neutrino: 1 0 0 0 0 0 1 10.0 0 0.2 0.3 3 14 2
track_in: 1 0 0 0 0 0 1 5.0 0 6
end_event:
"""


def _write(tmp_path, text, name="f.evt"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _both_fail(path, match):
    with pytest.raises(StageFileError, match=match):
        read_evt(path)
    with pytest.raises(StageFileError, match=match):
        ef = EvtFile(path)
        list(ef.events())


def test_good_synthetic_file(tmp_path):
    h, evs = read_evt(_write(tmp_path, GOOD))
    assert len(evs) == 2 and evs[0].tracks[0, 9] == 13 and evs[0].weights.tolist() == [1, 2, 3]
    assert h.get("genvol", "numberOfEvents") == 10 and len(evs[1].weights) == 0


def test_truncated_file(tmp_path):
    lines = GOOD.splitlines(keepends=True)
    path = _write(tmp_path, "".join(lines[:-2]))  # cut inside event 2 (starts on line 10)
    _both_fail(path, r"f\.evt: truncated file: event 2 \(line 10\) has no 'end_event:'")
    path = _write(tmp_path, "".join(lines[:3]))  # header only, not closed
    _both_fail(path, "header .* not closed")


def test_garbage_line_names_the_line(tmp_path):
    lines = GOOD.splitlines(keepends=True)
    bad = lines[:6] + ["this is garbage\n"] + lines[6:]
    _both_fail(_write(tmp_path, "".join(bad)), r"f\.evt, line 7: not a 'tag: values' line")


def test_non_numeric_value_names_the_line(tmp_path):
    # the first event is fine; the second has the bad value (line 12)
    text = GOOD.rsplit("track_in: 1 0 0 0 0 0 1 5.0 0 6", 1)
    text = text[0] + "track_in: 1 0 0 x 0 0 1 5.0 0 6" + text[1]
    path = _write(tmp_path, text)
    with pytest.raises(StageFileError, match=r"line 12: 'track_in:' has a non-numeric value 'x'"):
        read_evt(path)
    ef = EvtFile(path)  # the index only checks the structure ...
    assert ef.n_events == 2 and len(list(ef.events(0, 1))) == 1
    with pytest.raises(StageFileError, match="line 12"):  # ... numbers are checked when read
        list(ef.events(1, 2))


def test_too_few_columns(tmp_path):
    path = _write(tmp_path, GOOD.replace("track_in: 1 0 0 0 0 0 1 5.0 0 6", "track_in: 1 0 0 0 0 0 1 5.0", 1))
    with pytest.raises(StageFileError, match=r"line 7: 'track_in:' needs at least 10 columns, got 8"):
        read_evt(path)


def test_missing_end_event(tmp_path):
    text = GOOD.replace("weights: 1 2 3\nend_event:\n", "weights: 1 2 3\n", 1)
    _both_fail(_write(tmp_path, text), r"line 9: 'start_event:' before the 'end_event:' of event 1 \(line 5\)")


def test_not_an_evt_file(tmp_path):
    _both_fail(_write(tmp_path, ""), "empty file")
    _both_fail(_write(tmp_path, "physics: x\nend_event:\n"), "line 1: an evt file starts with 'start_run:'")
    _both_fail(_write(tmp_path, GOOD.replace("start_event: 2 1", "start_event: two 1")),
               r"line 10: 'start_event:' needs an integer event id")
    _both_fail(_write(tmp_path, GOOD + "track_in: 1 2 3\n"), r"line 14: 'track_in:' line outside an event")
    with pytest.raises(StageFileError, match="cannot read evt file"):
        read_evt(tmp_path / "missing.evt")


def test_blank_lines_and_end_run_are_accepted(tmp_path):
    text = GOOD.replace("end_event:\nstart_event: 2", "end_event:\n\n   \nstart_event: 2") + "end_run:\n"
    _, evs = read_evt(_write(tmp_path, text))
    assert len(evs) == 2 and evs[1].line == 12


# ------------------------------------------------------------------------------- PDG codes
def test_geant3_table_covers_1_to_49_with_antiparticles():
    assert set(GEANT3_TO_PDG) >= set(range(1, 50))
    # GEANT3 particle / antiparticle pairs have opposite PDG codes
    for a, b in ((2, 3), (5, 6), (8, 9), (11, 12), (13, 25), (14, 15), (18, 26), (19, 27), (20, 28), (21, 29),
                 (22, 30), (23, 31), (24, 32), (33, 34), (35, 36), (37, 38), (39, 40), (42, 43)):
        assert geant3_to_pdg(a) == -geant3_to_pdg(b) != 0, (a, b)
    for code, pdg in _GEANT3_NAMED.items():
        assert geant3_to_pdg(code) == pdg
    # nuclei: d, t, alpha, He3 as 100ZZZAAA0
    assert [nucleus_za(geant3_to_pdg(c)) for c in (45, 46, 47, 49)] == [(1, 2), (1, 3), (2, 4), (2, 3)]
    # no PDG equivalent: generic neutrino, geantino, Cherenkov photon, GENHEN 99, out of range
    assert geant3_to_pdg([4, 48, 50, 99, 0, -5, 1000]).tolist() == [0] * 7


def test_geant3_and_corsika_codes_agree_below_33_except_4():
    codes = np.arange(1, 33)
    same = geant3_to_pdg(codes) == corsika_to_pdg(codes)
    assert same[codes != 4].all()
    assert corsika_to_pdg(4) == 0 and set(CORSIKA_TO_PDG) >= set(range(5, 33))


def test_corsika_codes():
    assert corsika_to_pdg([14, 5, 6, 66, 67, 68, 69, 133, 134]).tolist() == [2212, -13, 13, 12, -12, 14, -14, 16, -16]
    assert nucleus_za(corsika_to_pdg(5626)) == (26, 56)  # iron: A x 100 + Z
    assert nucleus_za(corsika_to_pdg(402)) == (2, 4) and nucleus_za(corsika_to_pdg(201)) == (1, 2)
    assert corsika_to_pdg([9900, -17, 0, 150_000, 100]).tolist() == [0, 0, 0, 0, 0]
    assert corsika_to_pdg(np.array([14.0, 5626.0])).dtype == np.int64
    with pytest.raises(ValueError):
        corsika_to_pdg(14.5)


def test_nucleus_codes():
    assert nucleus_pdg(26, 56) == 1000260560 and nucleus_pdg(8, 16) == 1000080160
    assert nucleus_pdg(1, 1) == 2212 and nucleus_pdg(0, 1) == 2112
    assert nucleus_pdg([2, 6], [4, 12]).tolist() == [1000020040, 1000060120]
    assert is_nucleus([1000080160, 2212, 14, -1000020040]).tolist() == [True, False, False, True]
    z, a = nucleus_za(np.array([1000080160, 2212, 2112]))
    assert z.tolist() == [8, 1, 0] and a.tolist() == [16, 1, 1]
    with pytest.raises(ValueError):
        nucleus_za(13)
    with pytest.raises(ValueError):
        nucleus_pdg(3, 2)
