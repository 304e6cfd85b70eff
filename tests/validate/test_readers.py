"""Readers of the report's inputs against the raw content of real KM3NeT files."""

from __future__ import annotations

import numpy as np
import pytest

from km3sim.errors import StageFileError
from km3sim.validate.readers import JPP_RECONSTRUCTION_TYPE, read_event_file

km3net_testdata = pytest.importorskip("km3net_testdata")
uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")


def test_offline_file_hits_and_best_jpp_fit():
    path = km3net_testdata.data_path("offline/km3net_offline.root")
    d = read_event_file(path)
    raw = uproot.open(path)["E"].arrays(["hits.trig", "trks.rec_type", "trks.rec_stages", "trks.lik", "trks.dir.z"])
    assert d.kind == "offline" and d.det_id == 44 and d.run_ids == [5971]
    assert d.triggered_events["n_hits"].tolist() == ak.num(raw["hits.trig"]).tolist()
    assert d.triggered_events["n_triggered_hits"].tolist() == ak.sum(raw["hits.trig"] > 0, axis=1).tolist()
    assert len(d.snapshot_hits) == int(ak.sum(ak.num(raw["hits.trig"])))
    # best fit: the first rec_type-4000 track with the longest chain of stages
    for e in range(len(raw)):
        ns = ak.num(raw["trks.rec_stages"][e]).to_numpy()
        jpp = np.flatnonzero(raw["trks.rec_type"][e].to_numpy() == JPP_RECONSTRUCTION_TYPE)
        k = jpp[np.argmax(ns[jpp])]
        row = d.reco_tracks.event(e)
        assert row["likelihood"][0] == raw["trks.lik"][e][k] and row["dir_z"][0] == raw["trks.dir.z"][e][k]
        assert row["rec_stage"][0] == raw["trks.rec_stages"][e][k][-1]


def test_dst_file_counts_from_summary_tree():
    path = km3net_testdata.data_path("dst/orca6_sample.root")
    d = read_event_file(path)
    t = uproot.open(path)["T"]
    assert d.kind == "dst" and d.det_id == 49
    assert d.snapshot_hits is None
    assert d.triggered_events["n_hits"].tolist() == t["sum_hits/nhits"].array(library="np").tolist()
    assert d.triggered_events["n_triggered_doms"].tolist() == t["sum_trig_hits/ndoms"].array(library="np").tolist()
    assert len(d.reco_tracks) > 0 and set(d.reco_tracks["rec_type"].tolist()) == {JPP_RECONSTRUCTION_TYPE}


def test_daq_stream_and_summaryslices():
    ev = read_event_file(km3net_testdata.data_path("daq/IO_EVT.dat"))
    assert ev.kind == "daq" and ev.conditions is None and len(ev.triggered_events) == 3
    ss = read_event_file(km3net_testdata.data_path("daq/IO_SUM.dat"))
    assert ss.kind == "summaryslices" and ss.triggered_events is None
    assert ss.livetime_s == pytest.approx(ss.conditions.n_frames * 0.1)


def test_unknown_file(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(StageFileError, match="x.bin"):
        read_event_file(p)
    with pytest.raises(StageFileError, match="no such file"):
        read_event_file(tmp_path / "missing.root")
