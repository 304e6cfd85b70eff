"""Stage helpers."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from km3sim.stage import _in_sorted


@given(st.lists(st.integers(-5, 60), max_size=30), st.lists(st.integers(0, 50), unique=True, max_size=20))
def test_membership_check_matches_isin(values, ids):
    v, i = np.array(values, dtype=np.int64), np.array(ids, dtype=np.int64)
    assert np.array_equal(_in_sorted(v, i), np.isin(v, i))
