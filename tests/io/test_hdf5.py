import os

import h5py
import numpy as np
import pytest

from km3sim.errors import StageFileError
from km3sim.io.hdf5 import is_complete, read_attrs, read_stage_file, write_stage_file
from km3sim.schema import DATA_MODEL_VERSION, make_table


def _hits(n=5):
    return make_table(
        "mc_hits", event_id=np.sort(np.arange(n) // 2), pmt_id=np.arange(n), dom_id=np.arange(n), channel_id=np.arange(n) % 31,
        time=np.linspace(0, 1, n), npe=np.ones(n, dtype=int), origin=np.zeros(n, dtype=int),
    )


def test_round_trip_with_provenance(tmp_path):
    p = tmp_path / "a" / "b.h5"
    t = _hits()
    write_stage_file(p, {"mc_hits": t}, {"stage": "x", "config": {"a": 1}, "chain_hash": "abc", "seed": 3})
    tables, attrs = read_stage_file(p)
    assert tables["mc_hits"].equals(t)
    assert attrs["config"] == {"a": 1} and attrs["seed"] == 3 and attrs["data_model_version"] == DATA_MODEL_VERSION
    with h5py.File(p) as f:
        assert f["mc_hits/time"].attrs["unit"] == "ns"
    assert is_complete(p, "abc") and not is_complete(p, "other")
    assert [f for f in os.listdir(p.parent)] == ["b.h5"]


def test_failed_write_leaves_nothing(tmp_path):
    p = tmp_path / "c.h5"
    bad = _hits().with_columns(time=np.zeros(5, dtype=np.int32))  # to_h5 ok, but attrs fail below
    with pytest.raises(TypeError):
        write_stage_file(p, {"mc_hits": bad}, {"weird": object()})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_missing_files_are_reported(tmp_path):
    with pytest.raises(StageFileError, match="does not exist"):
        read_stage_file(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(StageFileError, match="junk.h5 is not a readable HDF5"):
        read_attrs(junk)
    assert not is_complete(junk, "x")
    p = tmp_path / "ok.h5"
    write_stage_file(p, {"mc_hits": _hits()}, {"chain_hash": "h"})
    with pytest.raises(StageFileError, match="has no table 'hits'"):
        read_stage_file(p, ["hits"])
