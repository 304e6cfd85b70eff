import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km3sim.table import Table


def _table(ev, x):
    return Table({"event_id": np.asarray(ev, dtype=np.int64), "x": np.asarray(x, dtype=np.float64)}, name="t")


event_lists = st.lists(st.integers(0, 20), max_size=60).map(sorted)


@settings(max_examples=60, deadline=None)
@given(event_lists)
def test_offsets_partition_rows_by_event(ev):
    t = _table(ev, np.arange(len(ev)))
    ids, offs = t.offsets()
    assert offs[0] == 0 and offs[-1] == len(t)
    for i, e in enumerate(ids):
        rows = t["event_id"][offs[i]:offs[i + 1]]
        assert np.all(rows == e) and len(rows) == ev.count(e)


@settings(max_examples=60, deadline=None)
@given(event_lists, st.integers(0, 60))
def test_concat_of_slices_gives_back_table(ev, cut):
    t = _table(ev, np.arange(len(ev)) * 0.5)
    cut = min(cut, len(t))
    back = Table.concat([t[:cut], t[cut:]])
    assert back.equals(t)


@settings(max_examples=40, deadline=None)
@given(event_lists)
def test_offsets_with_all_generated_events_include_empty_ones(ev):
    t = _table(ev, np.zeros(len(ev)))
    all_ids = np.arange(0, 21)
    ids, offs = t.offsets(all_ids)
    counts = np.diff(offs)
    assert counts.sum() == len(t)
    for e, c in zip(ids, counts):
        assert c == ev.count(e)


def test_sort_is_stable_and_multi_key():
    t = Table({"event_id": [2, 1, 2, 1], "time": [5.0, 3.0, 1.0, 3.0], "k": [0, 1, 2, 3]})
    s = t.sort(("event_id", "time"))
    assert list(s["event_id"]) == [1, 1, 2, 2]
    assert list(s["k"]) == [1, 3, 2, 0]


def test_select_events_and_event():
    t = _table([1, 1, 2, 3, 3, 3], np.arange(6))
    assert list(t.select_events([1, 3])["x"]) == [0, 1, 3, 4, 5]
    assert len(t.event(3)) == 3 and len(t.event(7)) == 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="event_id"):
        Table({"x": [1, 2]})
    with pytest.raises(ValueError, match="'y' has 1 rows, expected 2"):
        Table({"event_id": [1, 2], "y": [1]})
    with pytest.raises(ValueError, match="not sorted"):
        _table([2, 1], [0, 0]).offsets()
    with pytest.raises(ValueError, match="not in event_ids"):
        _table([1, 2], [0, 0]).offsets([1])
    with pytest.raises(ValueError, match="different columns"):
        Table.concat([_table([1], [0]), Table({"event_id": [1]})])


def test_equals_checks_dtype_and_values():
    a = _table([1, 2], [0.0, 1.0])
    assert a.equals(_table([1, 2], [0.0, 1.0]))
    assert not a.equals(_table([1, 2], [0.0, 2.0]))
    assert not a.equals(Table({"event_id": [1, 2], "x": np.array([0, 1], dtype=np.float32)}))
