"""ROOT generator files (offline/aanet and gSeaGen native) read into the neutral evt layout.

Expected values are read here directly with uproot (independent of km3sim.io.offline), or
from the evt file of the same gSeaGen sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from km3sim.errors import StageFileError
from km3sim.io.evt import read_evt
from km3sim.io.offline import GSeaGenRootFile, OfflineFile, open_root_file, read_offline, root_layout

km3net_testdata = pytest.importorskip("km3net_testdata")
uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
data_path = km3net_testdata.data_path

GSG_EVT = "gseagen/gseagen_v7.0.0_numuCC_diffuse.evt"
GSG_AA = "gseagen/gseagen_v7.0.0_numuCC_diffuse.aa.root"
MC_FILES = [
    GSG_AA,
    "gseagen/DAT000001.gSeaGen.1.aa.root",
    "mupage/mcv8.1.mupage_tuned_100G.sirene.jterbr00013288.10.root",
    "offline/numucc.root",
    "offline/mcv6.gsg_nue-CCHEDIS_1e4-1e6GeV.sirene.jte.jchain.aanet.1.root",
    "offline/mcv5.0.DAT004340.propa.sirene.jte.jchain.aanet.4340.root",
]


def _uproot_tracks(rel):
    t = uproot.open(data_path(rel))["E"]
    have = {k.split("/")[-1] for k in t.keys(recursive=True)}
    names = [n for n in ("mc_trks.type", "mc_trks.status", "mc_trks.E") if n in have]
    return t.num_entries, t.arrays(names, library="ak")


@pytest.mark.parametrize("rel", MC_FILES)
def test_event_and_final_state_counts_match_uproot(rel):
    n_entries, a = _uproot_tracks(rel)
    f = open_root_file(data_path(rel))
    assert isinstance(f, OfflineFile) and f.n_events == n_entries
    events = list(f.events())
    assert len(events) == n_entries and [e.index for e in events] == list(range(n_entries))
    n_trk = ak.to_numpy(ak.num(a["mc_trks.type"]))
    got_total = np.array([sum(len(e.rows(t)) for t in ("neutrino", "track_primary", "track_in", "track_aux"))
                          + (len(e.rows("track_bundle"))) for e in events])
    assert np.array_equal(got_total, n_trk)  # every MC track lands in exactly one tag
    if "mc_trks.status" in a.fields and ak.any(ak.flatten(a["mc_trks.status"]) != 0):
        n_final = ak.to_numpy(ak.sum(a["mc_trks.status"] == 1, axis=1))
        assert np.array_equal([len(e.tracks) for e in events], n_final)
        # final-state types are the file's PDG codes, in file order
        for e, types, st in zip(events, a["mc_trks.type"], a["mc_trks.status"]):
            assert np.array_equal(e.tracks[:, 9], ak.to_numpy(types[st == 1]))


def test_head_map_is_kept_with_repeated_tags_folded():
    path = data_path("mupage/mcv8.1.mupage_tuned_100G.sirene.jterbr00013288.10.root")
    raw = dict(uproot.open(path)["Head"].all_members["map<string,string>"])
    h = OfflineFile(path).header
    assert h.program == "MUPAGE" and h.program_version == "v5.1.1"
    assert h.raw["livetime"] == [raw["livetime"].strip()]
    assert h.get("livetime", "numberOfSeconds") == float(raw["livetime"].split()[0]) == 1790.0
    assert h.raw["physics"] == [raw[k].strip() for k in ("physics", "physics_1", "physics_2")]
    assert h.raw["simul"] == [raw["simul"].strip(), raw["simul_1"].strip()]
    assert h.get("norma", "numberOfPrimaries") == 1e6
    assert h.get("fixedcan", "zmax") == float(raw["fixedcan"].split()[3])


def test_mupage_bundle_and_muons():
    path = data_path("mupage/mcv8.1.mupage_tuned_100G.sirene.jterbr00013288.10.root")
    a = uproot.open(path)["E"].arrays(["mc_trks.type", "mc_trks.status", "mc_trks.E"], library="ak")
    for e, types, st, en in zip(OfflineFile(path).events(), a["mc_trks.type"], a["mc_trks.status"], a["mc_trks.E"]):
        b = e.row("track_bundle")
        assert b[7] == en[types == 81][0]
        assert b[0] == ak.sum((st == 1) & (abs(types) == 13)) == len(e.tracks)


def test_same_gseagen_sample_from_evt_and_root():
    """The evt and aa.root files of gSeaGen v7.0.0 numuCC are the same sample: check, then compare."""
    h_evt, evt = read_evt(data_path(GSG_EVT))
    h_root, root = read_offline(data_path(GSG_AA))
    # same sample? same size, same seed and generation volume, same first neutrino
    assert len(evt) == len(root) == 82
    assert h_evt.raw["seed"] == h_root.raw["seed"] and h_evt.raw["genvol"][0].split() == h_root.raw["genvol"][0].split()
    assert abs(evt[0].row("neutrino")[7] / root[0].row("neutrino")[7] - 1) < 1e-3
    for e, r in zip(evt, root):
        ne, nr = e.row("neutrino"), r.row("neutrino")
        # evt precision: positions 3 decimals, directions 6, E and w2 4 significant digits
        assert np.allclose(ne[1:4], nr[1:4], atol=1e-3 + 1e-9)
        assert np.allclose(ne[4:7], nr[4:7], atol=1e-6 + 1e-9)
        assert abs(ne[7] / nr[7] - 1) < 5e-4
        assert np.allclose(ne[9:11], nr[9:11], atol=1e-6)  # bjorken x, y
        assert ne[12] == nr[12] and ne[13] == nr[13] and ne[11] == nr[11]  # pdg, cc, ichan
        assert abs(e.weights[1] / r.weights[1] - 1) < 5e-4  # w2
        assert np.allclose(e.w2list, r.w2list[: len(e.w2list)], rtol=5e-4)
        # final state: same particles (GEANT3 -> PDG of evt equals the ROOT PDG codes)
        te, tr = e.tracks, r.tracks
        assert np.array_equal(te[:, 0], tr[:, 0]) and np.array_equal(te[:, 9], tr[:, 9])
        assert np.allclose(te[:, 7], tr[:, 7], rtol=5e-4, atol=1e-9)


def test_old_convention_neutrino_from_first_track():
    """numucc.root (GENHEN, no status): track 0 is the neutrino with usr bx by ichan cc, track 1 its copy."""
    path = data_path("offline/numucc.root")
    a = uproot.open(path)["E"].arrays(["mc_trks.type", "mc_trks.E", "mc_trks.usr", "mc_trks.usr_names"], library="ak")
    for e, types, en, usr, names in zip(OfflineFile(path).events(), a["mc_trks.type"], a["mc_trks.E"],
                                        a["mc_trks.usr"], a["mc_trks.usr_names"]):
        nu = e.row("neutrino")
        d = dict(zip(names[0], usr[0]))
        assert nu[12] == types[0] and nu[7] == en[0]
        assert (nu[9], nu[10], nu[11], nu[13]) == (d["bx"], d["by"], d["ichan"], d["cc"])
        assert len(e.rows("track_aux")) == 1 and len(e.tracks) == len(types) - 2


def test_old_corant_primary_code_converted():
    path = data_path("offline/mcv5.0.DAT004340.propa.sirene.jte.jchain.aanet.4340.root")
    f = OfflineFile(path)
    assert f.header.program == "Corant"
    types = uproot.open(path)["E"]["mc_trks.type"].array(library="ak")
    for e, t in zip(f.events(), types):
        assert t[0] == 14 and e.row("track_primary")[9] == 2212  # CORSIKA 14 = proton
        assert np.array_equal(e.tracks[:, 9], ak.to_numpy(t[1:]))


def test_gseagen_native_root():
    path = data_path("gseagen/gseagen.root")
    assert root_layout(path) == "gseagen_root"
    head = uproot.open(path)["Header"].arrays(["NTot", "Can1", "Can2", "Can3", "Alpha"], library="np")
    ev = uproot.open(path)["Events"].arrays(["E_nu", "Pdg_nu", "InterId", "By", "WGen", "WEvt", "NTracks", "Pdg_tr"],
                                             library="ak")
    f = open_root_file(path)
    assert isinstance(f, GSeaGenRootFile) and f.n_events == len(ev["E_nu"]) == 258
    h = f.header
    assert h.program == "gSeaGen" and h.get("genvol", "numberOfEvents") == head["NTot"][0] == 1000
    assert (h.get("can", "zmin"), h.get("can", "zmax"), h.get("can", "r")) == (head["Can1"][0], head["Can2"][0], head["Can3"][0])
    assert h.get("spectrum", "alpha") == -head["Alpha"][0]
    assert len(h.raw["flux"]) == 2
    events = list(f.events())
    for e, E, pdg, inter, by, wgen, wevt, ntr, pdg_tr in zip(events, *(ev[k] for k in ev.fields)):
        nu = e.row("neutrino")
        assert (nu[7], nu[12], nu[13], nu[10]) == (E, pdg, inter, by)
        assert e.weights[1] == wgen and e.weights[2] == wevt
        assert len(e.tracks) == ntr and np.array_equal(e.tracks[:, 9], ak.to_numpy(pdg_tr))
    part = list(f.events(100, 103, batch=2))
    assert [e.index for e in part] == [100, 101, 102]
    assert all(np.array_equal(p.tags["neutrino"], events[p.index].tags["neutrino"]) for p in part)


def test_batches_give_the_same_events():
    f = OfflineFile(data_path(GSG_AA))
    whole = list(f.events())
    pieces = list(f.events(5, 40, batch=7))
    assert [e.index for e in pieces] == list(range(5, 40))
    for p in pieces:
        w = whole[p.index]
        assert p.event_id == w.event_id and p.tags.keys() == w.tags.keys()
        assert all(np.array_equal(p.tags[k], w.tags[k], equal_nan=True) for k in p.tags)


def test_files_that_are_not_generator_files(tmp_path):
    with pytest.raises(StageFileError, match="no MC tracks"):
        OfflineFile(data_path("offline/km3net_offline.root"))  # real data
    other = data_path("oscillations/ORCA6_433kt-y_opendata_v0.5_testdata.root")
    with pytest.raises(StageFileError, match="not a KM3NeT generator ROOT file"):
        open_root_file(other)
    whole = open(data_path(GSG_AA), "rb").read()
    bad = tmp_path / "truncated.root"
    bad.write_bytes(whole[: int(0.9 * len(whole))])
    with pytest.raises(StageFileError, match="cannot read ROOT file .*truncated.root"):
        list(open_root_file(bad).events())
    with pytest.raises(StageFileError, match="not found"):
        open_root_file(tmp_path / "missing.root")


def test_empty_file_has_no_events():
    f = OfflineFile(data_path("offline/empty_events.root"))
    assert f.n_events == 0 and list(f.events()) == []
