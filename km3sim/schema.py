"""The data model: every table's columns with dtype, unit and description.

Names follow KM3NeT/km3pipe vocabulary. Internal units: m, ns, GeV, rad. Truth tables start
with ``mc_``, reconstruction tables with ``reco_``. Child tables are sorted by
(``event_id``, ``time``). Bump :data:`DATA_MODEL_VERSION` on any change of this file that
changes what is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from km3sim.errors import StageError
from km3sim.table import Table

__all__ = [
    "DATA_MODEL_VERSION",
    "Column",
    "TableSchema",
    "SCHEMAS",
    "make_table",
    "empty_table",
    "validate_table",
]

DATA_MODEL_VERSION = "1.2"


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    dtype: str
    unit: str
    description: str
    default: object = None  # value make_table fills in when the column is not given (None: required)


@dataclass(frozen=True)
class TableSchema:
    """The columns of a table, in storage order, and its row order."""

    name: str
    description: str
    columns: dict[str, Column]
    sort_by: tuple[str, ...] = ("event_id",)
    per_event: bool = field(default=False)  # exactly one row per event


def _c(dtype, unit, description, default=None):
    return Column(np.dtype(dtype).str, unit, description, default)


_POS_DIR = {
    "pos_x": _c("f8", "m", "x of the position"),
    "pos_y": _c("f8", "m", "y of the position"),
    "pos_z": _c("f8", "m", "z of the position (up)"),
    "dir_x": _c("f8", "", "x of the unit direction of motion"),
    "dir_y": _c("f8", "", "y of the unit direction of motion"),
    "dir_z": _c("f8", "", "z of the unit direction of motion"),
}

SCHEMAS: dict[str, TableSchema] = {}


def _register(schema: TableSchema) -> None:
    SCHEMAS[schema.name] = schema


_register(
    TableSchema(
        "events",
        "One row per generated event: the primary, generation information and weight inputs.",
        {
            "event_id": _c("i8", "", "event identifier, unique in a production"),
            "run_id": _c("i4", "", "run the event belongs to"),
            "mc_time": _c("f8", "ns", "time of the event since the start of the run"),
            "pdgid": _c("i4", "", "PDG code of the primary: neutrino, nucleus (100ZZZAAA0), muon, or 81 for a MUPAGE muon bundle"),
            "n_muons": _c("i4", "", "number of muons of the event at the can (bundle multiplicity)"),
            "energy": _c("f8", "GeV", "energy of the primary: neutrino or cosmic-ray energy; for a bundle the sum of its muon energies at the can"),
            **_POS_DIR,
            "is_cc": _c("i4", "", "neutrino interaction: 1 charged current, 0 neutral current, -1 not a neutrino interaction", -1),
            "bjorken_y": _c("f8", "", "inelasticity y of the neutrino interaction (NaN if none)", np.nan),
            "n_gen": _c("i8", "", "number of primaries generated for the sample (the run) the event belongs to"),
            "livetime_s": _c("f8", "s", "livetime of the sample (the run) the event belongs to"),
            "weight_w2": _c("f8", "GeV m2 sr", "generation weight (gSeaGen w2; cosmic rays: the same without cross section); NaN if the generator has none", np.nan),
            "weight_w3": _c("f8", "1/s", "rate this event stands for in its own sample: 1/livetime_s for MUPAGE, w2 x reference flux / n_gen otherwise (NaN without a reference flux); recompute after merging with km3sim.weights", np.nan),
        },
        per_event=True,
    )
)

_register(
    TableSchema(
        "mc_tracks",
        "MC particles (one row per particle), linked by track_id/parent_id.",
        {
            "event_id": _c("i8", "", "event identifier"),
            "track_id": _c("i4", "", "particle number within the event (0-based)"),
            "parent_id": _c("i4", "", "track_id of the parent, -1 for primaries"),
            "pdgid": _c("i4", "", "PDG particle code"),
            **_POS_DIR,
            "energy": _c("f8", "GeV", "energy at pos"),
            "time": _c("f8", "ns", "time at pos, relative to the event time"),
            "length": _c("f8", "m", "track length inside the can (0 before propagation)"),
            "energy_lost_in_can": _c("f8", "GeV", "energy lost inside the can (0 before propagation)"),
        },
        sort_by=("event_id", "track_id"),
    )
)

_register(
    TableSchema(
        "mc_hits",
        "Photo-electrons at PMTs before the PMT response (one row per photo-electron).",
        {
            "event_id": _c("i8", "", "event identifier"),
            "pmt_id": _c("i4", "", "global PMT identifier (detector file)"),
            "dom_id": _c("i4", "", "module (DOM) identifier"),
            "channel_id": _c("i4", "", "PMT channel in the DOM (0-30)"),
            "time": _c("f8", "ns", "arrival time at the photocathode, relative to the event time"),
            "npe": _c("i4", "", "number of photo-electrons"),
            "origin": _c("i4", "", "track_id of the particle that emitted the light"),
        },
        sort_by=("event_id", "time"),
    )
)

_HIT_COLUMNS = {
    "event_id": _c("i8", "", "event identifier"),
    "dom_id": _c("i4", "", "module (DOM) identifier"),
    "channel_id": _c("i4", "", "PMT channel in the DOM (0-30)"),
    "pmt_id": _c("i4", "", "global PMT identifier"),
    "time": _c("f8", "ns", "hit time (leading edge), relative to the event time"),
    "tot": _c("u1", "ns", "time over threshold"),
    "npe": _c("i4", "", "number of photo-electrons in the hit, background included"),
    "origin": _c("i4", "", "track_id of the signal light, -1 for background"),
}

_register(
    TableSchema(
        "hits",
        "Digitised hits after PMT response plus optical background (L0 hits).",
        dict(_HIT_COLUMNS),
        sort_by=("event_id", "time"),
    )
)

_register(
    TableSchema(
        "triggered_events",
        "One row per triggered event (KM3NeT event header).",
        {
            "event_id": _c("i8", "", "event identifier"),
            "trigger_mask": _c("u8", "", "KM3NeT trigger mask: bit numbers 1 3DShower, 2 MXShower, 4 3DMuon, 31 factory limit (value 1 << bit)"),
            "trigger_counter": _c("i8", "", "triggered event number in the run"),
            "snapshot_start": _c("f8", "ns", "start of the snapshot window"),
            "snapshot_end": _c("f8", "ns", "end of the snapshot window"),
            "n_hits": _c("i4", "", "number of snapshot hits"),
            "n_triggered_hits": _c("i4", "", "number of hits that took part in a trigger"),
            "n_triggered_doms": _c("i4", "", "number of DOMs with triggered hits"),
            "overlays": _c("i4", "", "number of trigger clusters merged into this event, minus one (overlapping snapshots)", 0),
        },
        per_event=True,
    )
)

_register(
    TableSchema(
        "snapshot_hits",
        "Hits of triggered events within the snapshot window, with their trigger mask.",
        {**_HIT_COLUMNS, "trigger_mask": _c("u8", "", "trigger bits this hit took part in, 0 if none")},
        sort_by=("event_id", "time"),
    )
)

_register(
    TableSchema(
        "reco_tracks",
        "Reconstructed tracks, one row per fit result.",
        {
            "event_id": _c("i8", "", "event identifier"),
            "rec_type": _c("i4", "", "reconstruction type, KM3NeT numbering (4000 = JPP_RECONSTRUCTION_TYPE, km3sim.reco)"),
            "rec_stage": _c("i4", "", "fit stage of the row, KM3NeT numbering: 1 JMUONPREFIT, 2 JMUONSIMPLEX, 3 JMUONGANDALF, 4 JMUONENERGY, 101 JSHOWERPREFIT, 102 JSHOWERPOSITIONFIT, 103 JSHOWERCOMPLETEFIT"),
            **_POS_DIR,
            "time": _c("f8", "ns", "time at pos"),
            "energy": _c("f8", "GeV", "energy estimate"),
            "likelihood": _c("f8", "", "fit quality, higher is better: ln L of likelihood fits, minus the cost of prefits and least-squares fits (see km3sim.reco)"),
            "n_hits": _c("i4", "", "number of hits (or hit PMTs) used in the fit"),
            "chi2_ndf": _c("f8", "", "least-squares fits: sum of (time residual / sigma)^2 per degree of freedom; likelihood fits: -2 ln L per degree of freedom"),
            "beta0_rad": _c("f8", "rad", "angular error estimate from the fit covariance"),
            "status": _c("i4", "", "0 = converged, >0 = failed (see km3sim.reco)"),
        },
        sort_by=("event_id", "rec_type"),
    )
)


def make_table(name: str, **columns) -> Table:
    """Build table ``name`` from arrays, casting each to its schema dtype.

    Columns with a schema default (e.g. ``events.bjorken_y``) may be left out; they are filled
    with the default, broadcast to the length of the other columns.

    Raises
    ------
    StageError
        If a required column is missing, a column is unknown, or cannot be cast without loss
        of kind.
    """
    schema = SCHEMAS[name]
    missing = [c for c, col in schema.columns.items() if c not in columns and col.default is None]
    extra = [c for c in columns if c not in schema.columns]
    if missing or extra:
        raise StageError(f"table {name!r}: missing columns {missing}, unknown columns {extra}")
    n = None
    for key in schema.columns:
        if key in columns:
            n = len(np.atleast_1d(columns[key]))
            break
    out = {}
    for key, col in schema.columns.items():
        arr = np.asarray(columns[key]) if key in columns else np.full(n or 0, col.default)
        try:
            out[key] = arr.astype(col.dtype, casting="same_kind", copy=False)
        except TypeError as exc:
            raise StageError(f"table {name!r}, column {key!r}: cannot store {arr.dtype} as {col.dtype}") from exc
    return Table(out, name=name)


def empty_table(name: str) -> Table:
    """An empty table with the schema's columns."""
    schema = SCHEMAS[name]
    return Table({k: np.empty(0, dtype=c.dtype) for k, c in schema.columns.items()}, name=name)


def validate_table(table: Table, name: str) -> Table:
    """Check that ``table`` matches schema ``name`` exactly; return it in storage order.

    Raises :class:`StageError` naming the table and the offending column.
    """
    schema = SCHEMAS.get(name)
    if schema is None:
        raise StageError(f"unknown table {name!r}; known: {sorted(SCHEMAS)}")
    missing = [c for c in schema.columns if c not in table]
    extra = [c for c in table.columns if c not in schema.columns]
    if missing or extra:
        raise StageError(f"table {name!r}: missing columns {missing}, unknown columns {extra}")
    for key, col in schema.columns.items():
        if table[key].dtype != np.dtype(col.dtype):
            raise StageError(
                f"table {name!r}, column {key!r}: dtype {table[key].dtype}, schema says {np.dtype(col.dtype)}"
            )
    if not table.is_sorted_by_event():
        raise StageError(f"table {name!r} is not sorted by event_id")
    if schema.per_event and len(np.unique(table["event_id"])) != len(table):
        raise StageError(f"table {name!r} must have one row per event")
    return Table({k: table[k] for k in schema.columns}, name=name)
