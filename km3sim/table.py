"""The columnar table every stage reads and writes.

A :class:`Table` is an ordered mapping of equal-length 1-D numpy arrays, one of which is
always ``event_id`` (int64). Child tables (hits, tracks, ...) hold many rows per event and
are kept sorted by ``event_id``; :meth:`Table.offsets` gives the per-event row ranges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Table"]


class Table:
    """Equal-length 1-D columns keyed by name, with a mandatory ``event_id`` column.

    Parameters
    ----------
    columns : mapping of str to array_like
        Column name to 1-D array. Must contain ``event_id``. Arrays are not copied when
        they already are numpy arrays.
    name : str, optional
        Table name (as in :mod:`km3sim.schema`), used in error messages.
    """

    __slots__ = ("_cols", "name")

    def __init__(self, columns: Mapping[str, object], name: str | None = None):
        self.name = name
        cols: dict[str, np.ndarray] = {}
        n = None
        for key, value in columns.items():
            arr = np.asarray(value)
            if arr.ndim != 1:
                raise ValueError(f"table {name!r}: column {key!r} must be 1-D, got shape {arr.shape}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(
                    f"table {name!r}: column {key!r} has {len(arr)} rows, expected {n}"
                )
            cols[key] = arr
        if "event_id" not in cols:
            raise ValueError(f"table {name!r} has no 'event_id' column")
        if cols["event_id"].dtype != np.int64:
            cols["event_id"] = cols["event_id"].astype(np.int64)
        self._cols = cols

    # -- mapping-like access ---------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """Column names in order."""
        return list(self._cols)

    def __len__(self) -> int:
        return len(self._cols["event_id"])

    def __contains__(self, key: str) -> bool:
        return key in self._cols

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def items(self):
        return self._cols.items()

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._cols[key]
        # row selection: slice, integer index array or boolean mask
        if isinstance(key, (int, np.integer)):
            key = slice(int(key), int(key) + 1) if key >= 0 else slice(len(self) + int(key), len(self) + int(key) + 1 or None)
        return Table({k: v[key] for k, v in self._cols.items()}, name=self.name)

    def __repr__(self) -> str:
        return f"Table(name={self.name!r}, rows={len(self)}, columns={self.columns})"

    def to_dict(self) -> dict[str, np.ndarray]:
        """Shallow copy of the columns as a dict."""
        return dict(self._cols)

    def with_columns(self, **columns) -> Table:
        """A new table with columns added or replaced."""
        cols = dict(self._cols)
        cols.update(columns)
        return Table(cols, name=self.name)

    def equals(self, other: Table) -> bool:
        """True if both tables have the same columns (names, dtypes) and bit-identical values."""
        if self.columns != other.columns or len(self) != len(other):
            return False
        for key in self.columns:
            a, b = self._cols[key], other._cols[key]
            if a.dtype != b.dtype:
                return False
            if a.tobytes() != b.tobytes():
                return False
        return True

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def concat(cls, tables: Sequence[Table], name: str | None = None) -> Table:
        """Concatenate tables with identical column names (row order kept)."""
        tables = list(tables)
        if not tables:
            raise ValueError("Table.concat needs at least one table")
        cols = tables[0].columns
        for t in tables[1:]:
            if t.columns != cols:
                raise ValueError(
                    f"cannot concatenate tables with different columns: {cols} vs {t.columns}"
                )
        return cls(
            {k: np.concatenate([t._cols[k] for t in tables]) for k in cols},
            name=name if name is not None else tables[0].name,
        )

    # -- event structure -------------------------------------------------------------------
    def sort(self, by: Iterable[str] = ("event_id",)) -> Table:
        """A copy sorted (stably) by the given columns, first key most significant."""
        keys = [k for k in by if k in self._cols]
        if len(self) == 0 or not keys:
            return self
        order = np.lexsort([self._cols[k] for k in reversed(keys)])
        return self[order]

    def is_sorted_by_event(self) -> bool:
        ev = self._cols["event_id"]
        return bool(np.all(ev[1:] >= ev[:-1]))

    def offsets(self, event_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-event row ranges of a table sorted by ``event_id``.

        Parameters
        ----------
        event_ids : array of int64, optional
            The events to give ranges for (e.g. all generated events, including those with no
            rows here). Default: the distinct event ids present.

        Returns
        -------
        event_ids : ndarray, int64, shape (n,)
        offsets : ndarray, int64, shape (n + 1,)
            Rows of event ``event_ids[i]`` are ``offsets[i]:offsets[i+1]``.
        """
        ev = self._cols["event_id"]
        if not self.is_sorted_by_event():
            raise ValueError(f"table {self.name!r} is not sorted by event_id")
        if event_ids is None:
            event_ids = np.unique(ev)
        event_ids = np.asarray(event_ids, dtype=np.int64)
        if len(event_ids) > 1 and np.any(event_ids[1:] <= event_ids[:-1]):
            raise ValueError("event_ids must be sorted and unique")
        counts = np.searchsorted(ev, event_ids, side="right") - np.searchsorted(
            ev, event_ids, side="left"
        )
        if counts.sum() != len(ev):
            raise ValueError(f"table {self.name!r} has rows of events not in event_ids")
        offs = np.zeros(len(event_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offs[1:])
        return event_ids, offs

    def select_events(self, event_ids: Iterable[int]) -> Table:
        """Rows whose ``event_id`` is in ``event_ids`` (order of rows kept)."""
        ids = np.asarray(list(event_ids) if not isinstance(event_ids, np.ndarray) else event_ids, dtype=np.int64)
        return self[np.isin(self._cols["event_id"], ids)]

    def event(self, event_id: int) -> Table:
        """Rows of one event."""
        return self[self._cols["event_id"] == np.int64(event_id)]
