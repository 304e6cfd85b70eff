"""Readers of real KM3NeT DAQ data: summaryslices, triggered events and timeslices.

Byte layouts: FORMATS.md §5; what the real files show: PHYSICS.md §13. Three containers:

- **ROOT** files written by the DAQ / JDAQ converters (trees ``KM3NET_SUMMARYSLICE``,
  ``KM3NET_EVENT``, ``KM3NET_TIMESLICE[_L0|_L1|_L2|_SN]``). uproot cannot interpret the
  KM3NETDAQ classes, so the raw bytes of each entry (``TBasket.data`` / ``byte_offsets``) are
  decoded here with numpy structured dtypes. Big-endian, each nested object preceded by a
  4-byte byte count (top bit set) and a 2-byte version. Layouts seen in km3net-testdata:

  * summaryslices (all files, 2017-2025): branches ``JDAQPreamble`` (length, type),
    ``JDAQSummarysliceHeader`` (44 bytes) and ``vector<JDAQSummaryFrame>`` (10-byte vector
    header, then 55 bytes per DOM);
  * events (all files): ``JDAQEventHeader`` (76 bytes), ``triggeredHits`` (24 bytes per hit),
    ``snapshotHits`` (10 bytes per hit); the hit time is stored little-endian;
  * timeslices: old files split the ``vector<JDAQSuperFrame>`` into member branches
    (``.id``, ``.numberOfHits``, ... read by uproot, ``.buffer`` = 6-byte header + all hits of
    all frames); the default stream of old files and all streams of newer files (det 267)
    stream the vector **member-wise** in one branch (see :func:`_decode_memberwise_superframes`).

- **Jpp DAQ binary streams** (``*.dat``, little-endian): records of ``length`` i4 (the record
  included), ``type`` i4, ``version`` u2 (absent in the legacy layout ``*_legacy.dat``), then the
  header det, run, frame_index, UTC s, UTC 16-ns cycles and the payload. Types: 2001
  summaryslice, 10001 event, 1001 timeslice (default / legacy L0-L2), 1002 L0, 1003 L1, 1004 L2,
  1005 SN. Legacy summary frames are 39 bytes (dom_id, one status word, 31 rate codes). Hit
  times (TDC) are big-endian in these streams (network order, as the DOM sends them).

- **Text dump** of one summaryslice (``*.summaryslice-N.txt``): per DOM one line, dom_id and
  31 x (rate [kHz] with one decimal, two flag digits HRV and FIFO).

Time conventions: hit times (``tdc`` / ``time``) are in ns since the start of the hit's
timeslice (frame); the start of a timeslice is ``UTC_seconds + 16 ns x UTC_16nanosecondcycles``.
Triggered events keep that convention: :attr:`DaqEvents.snapshot_hits` ``time`` is the hit time
relative to the start of the event's timeslice (plus the PMT t0 when a detector is given), and
``snapshot_start`` / ``snapshot_end`` of :attr:`DaqEvents.events` are the first and last snapshot
hit times on the same clock.

Summaryslice rates: 8-bit logarithmic code, ``rate = 2 kHz * exp(code * ln(1000) / 255)``,
0 for code 0 (FORMATS.md §5; code 85 = 20 kHz, 255 = 2 MHz).
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from km3sim._optional import require
from km3sim.detector.conditions import FRAME_LENGTH_S, N_CHANNELS, RunConditions
from km3sim.errors import Km3simError, StageFileError
from km3sim.schema import make_table
from km3sim.table import Table

__all__ = [
    "Summaryslices",
    "DaqEvents",
    "Timeslices",
    "decode_rate_codes",
    "rate_codes_from_hz",
    "load_summaryslices",
    "read_summaryslices",
    "read_daq_events",
    "read_timeslices",
    "DAQ_TYPE_SUMMARYSLICE",
    "DAQ_TYPE_EVENT",
    "DAQ_TYPE_TIMESLICE",
    "TRIGGER_BITS",
    "read_trigger_parameters",
]

log = logging.getLogger(__name__)

#: Jpp DAQ data types (preamble ``type``).
DAQ_TYPE_SUMMARYSLICE = 2001
DAQ_TYPE_EVENT = 10001
#: timeslice type per stream; ``"default"`` (1001) is also what legacy files use for L0/L1/L2
DAQ_TYPE_TIMESLICE = {"default": 1001, "L0": 1002, "L1": 1003, "L2": 1004, "SN": 1005}
_SUPERFRAME_TYPE = 101
#: KM3NeT trigger bits (FORMATS.md §5).
TRIGGER_BITS = {"3DShower": 1, "MXShower": 2, "3DMuon": 4, "NB": 5, "FactoryLimit": 31}

_RATE_BASE_HZ = 2000.0
_RATE_LOG_STEP = math.log(1000.0) / 255.0
_CHANNEL_MASK = (1 << N_CHANNELS) - 1
_TREE_OF_STREAM = {"default": "KM3NET_TIMESLICE", "L0": "KM3NET_TIMESLICE_L0", "L1": "KM3NET_TIMESLICE_L1",
                   "L2": "KM3NET_TIMESLICE_L2", "SN": "KM3NET_TIMESLICE_SN"}

# ------------------------------------------------------------------------------- dtypes
#: one summaryslice header, as returned in :attr:`Summaryslices.headers` etc.
SLICE_HEADER_DTYPE = np.dtype([("det_id", "i4"), ("run", "i4"), ("frame_index", "i4"),
                               ("utc_seconds", "u4"), ("utc_16ns", "u4")])
#: one summary frame (per DOM and slice); ``slice`` indexes :attr:`Summaryslices.headers`
SUMMARY_FRAME_DTYPE = np.dtype([("slice", "i8"), ("dom_id", "i4"), ("dq_status", "u4"), ("hrv", "u4"),
                                ("fifo", "u4"), ("status3", "u4"), ("status4", "u4"),
                                ("rate_codes", "u1", (N_CHANNELS,))])


def _frame_dtype(e: str) -> np.dtype:
    return np.dtype([("dom_id", e + "i4"), ("dq_status", e + "u4"), ("hrv", e + "u4"), ("fifo", e + "u4"),
                     ("status3", e + "u4"), ("status4", e + "u4"), ("rate_codes", "u1", (N_CHANNELS,))])


_ROOT_SUMMARY_FRAME = _frame_dtype(">")  # 55 bytes
_DAT_SUMMARY_FRAME = _frame_dtype("<")  # 55 bytes
_DAT_LEGACY_SUMMARY_FRAME = np.dtype([("dom_id", "<i4"), ("status", "<u4"), ("rate_codes", "u1", (N_CHANNELS,))])
_ROOT_SLICE_HEADER = np.dtype([("_cv", "V18"), ("det_id", ">i4"), ("run", ">i4"), ("frame_index", ">i4"),
                               ("_cv2", "V6"), ("utc_seconds", ">u4"), ("utc_16ns", ">u4")])  # 44 bytes
_ROOT_EVENT_HEADER = np.dtype([("_cv", "V18"), ("det_id", ">i4"), ("run", ">i4"), ("frame_index", ">i4"),
                               ("_cv2", "V6"), ("utc_seconds", ">u4"), ("utc_16ns", ">u4"),
                               ("_cv3", "V6"), ("trigger_counter", ">u8"), ("_cv4", "V6"),
                               ("trigger_mask", ">u8"), ("overlays", ">u4")])  # 76 bytes
_ROOT_KEY_HIT = np.dtype([("dom_id", ">i4"), ("channel", "u1"), ("tdc", "<u4"), ("tot", "u1")])  # 10 bytes
_ROOT_TRIG_HIT = np.dtype([("dom_id", ">i4"), ("channel", "u1"), ("tdc", "<u4"), ("tot", "u1"),
                           ("_cv", "V6"), ("trigger_mask", ">u8")])  # 24 bytes
_ROOT_HIT = np.dtype([("channel", "u1"), ("tdc", "<u4"), ("tot", "u1")])  # 6 bytes
_DAT_KEY_HIT = np.dtype([("dom_id", "<i4"), ("channel", "u1"), ("tdc", ">u4"), ("tot", "u1")])  # 10 bytes
_DAT_TRIG_HIT = np.dtype([("dom_id", "<i4"), ("channel", "u1"), ("tdc", ">u4"), ("tot", "u1"),
                          ("trigger_mask", "<u8")])  # 18 bytes
_DAT_HIT = np.dtype([("channel", "u1"), ("tdc", ">u4"), ("tot", "u1")])  # 6 bytes
_DAT_EVENT_TAIL = np.dtype([("trigger_counter", "<u8"), ("trigger_mask", "<u8"), ("overlays", "<u4")])  # 20
_DAT_SUPERFRAME_HEAD = np.dtype([("length", "<i4"), ("type", "<i4"), ("det_id", "<i4"), ("run", "<i4"),
                                 ("frame_index", "<i4"), ("utc_seconds", "<u4"), ("utc_16ns", "<u4"),
                                 ("dom_id", "<i4"), ("dq_status", "<u4"), ("hrv", "<u4"), ("fifo", "<u4"),
                                 ("status3", "<u4"), ("status4", "<u4"), ("n_hits", "<i4")])  # 56 bytes
assert _ROOT_SUMMARY_FRAME.itemsize == 55 and _DAT_LEGACY_SUMMARY_FRAME.itemsize == 39
assert _ROOT_SLICE_HEADER.itemsize == 44 and _ROOT_EVENT_HEADER.itemsize == 76
assert _ROOT_TRIG_HIT.itemsize == 24 and _DAT_TRIG_HIT.itemsize == 18 and _DAT_SUPERFRAME_HEAD.itemsize == 56


# ---------------------------------------------------------------------------- rate codes
def decode_rate_codes(codes) -> np.ndarray:
    """Singles rates [Hz] of 8-bit summaryslice rate codes: ``2 kHz * exp(code ln(1000)/255)``, 0 for 0."""
    c = np.asarray(codes)
    rates = _RATE_BASE_HZ * np.exp(c.astype(np.float64) * _RATE_LOG_STEP)
    return np.where(c == 0, 0.0, rates)


def rate_codes_from_hz(rates_hz) -> np.ndarray:
    """Nearest 8-bit rate code of rates [Hz] (inverse of :func:`decode_rate_codes`; 0 for rates <= 0)."""
    r = np.asarray(rates_hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.rint(np.log(np.where(r > 0, r, 1.0) / _RATE_BASE_HZ) / _RATE_LOG_STEP)
    c = np.clip(c, 1, 255)
    return np.where(r > 0, c, 0).astype(np.uint8)


# ----------------------------------------------------------------------------- containers
@dataclass
class Summaryslices:
    """Decoded summaryslices (one file or several of one run).

    Attributes
    ----------
    headers : ndarray of :data:`SLICE_HEADER_DTYPE`, shape (n_slices,)
        det_id, run, frame_index, utc_seconds, utc_16ns of each summaryslice (file order).
    frames : ndarray of :data:`SUMMARY_FRAME_DTYPE`, shape (n_frames,)
        One summary frame per DOM and slice: ``slice`` (index into ``headers``), dom_id,
        dq_status (low 15 bits UDP packets received, high 16 bits max. sequence number), hrv
        (bit c: high-rate veto of channel c; bit 31 White Rabbit), fifo (bit c: FIFO almost full;
        bit 31 UDP trailer), status3, status4, rate_codes (31 x u1).
    source : str
        File name(s).
    text_rates_hz : ndarray or None
        Text dumps only: the rates as printed (0.1 kHz resolution), shape (n_frames, 31) [Hz];
        ``rate_codes`` then holds the nearest codes.
    """

    headers: np.ndarray
    frames: np.ndarray
    source: str = ""
    text_rates_hz: np.ndarray | None = None

    @property
    def rates_hz(self) -> np.ndarray:
        """(n_frames, 31) decoded rates [Hz]."""
        if self.text_rates_hz is not None:
            return self.text_rates_hz
        return decode_rate_codes(self.frames["rate_codes"])

    @property
    def hrv_bits(self) -> np.ndarray:
        """(n_frames, 31) high-rate-veto flag per channel."""
        return _bits(self.frames["hrv"])

    @property
    def fifo_bits(self) -> np.ndarray:
        """(n_frames, 31) FIFO-almost-full flag per channel."""
        return _bits(self.frames["fifo"])

    @classmethod
    def concatenate(cls, parts: list["Summaryslices"]) -> "Summaryslices":
        """Join several (e.g. one per file): slices are renumbered."""
        headers, frames, rates, off = [], [], [], 0
        for p in parts:
            f = p.frames.copy()
            f["slice"] += off
            off += len(p.headers)
            headers.append(p.headers)
            frames.append(f)
            rates.append(p.rates_hz)
        text = any(p.text_rates_hz is not None for p in parts)
        return cls(np.concatenate(headers) if headers else np.empty(0, SLICE_HEADER_DTYPE),
                   np.concatenate(frames) if frames else np.empty(0, SUMMARY_FRAME_DTYPE),
                   ", ".join(p.source for p in parts),
                   np.concatenate(rates) if text else None)

    def to_conditions(self) -> RunConditions:
        """The :class:`RunConditions` of these slices (sorted in time, duplicate frames dropped).

        Raises
        ------
        StageFileError
            If the slices belong to several detectors or runs, or there are none.
        """
        h = self.headers
        if not len(h):
            raise StageFileError(f"{self.source}: no summaryslices")
        pairs = np.unique(np.stack([h["det_id"], h["run"]], axis=1), axis=0)
        if len(pairs) > 1:
            raise StageFileError(f"{self.source}: summaryslices of several detectors/runs {pairs.tolist()}; "
                                 "run conditions hold one run")
        # frame start relative to the first slice: UTC when the files have it, else frame_index x 0.1 s
        has_utc = bool(np.all(h["utc_seconds"] > 0))
        order = np.lexsort((h["frame_index"], h["utc_16ns"], h["utc_seconds"])) if has_utc else \
            np.argsort(h["frame_index"], kind="stable")
        _, first = np.unique(h["frame_index"][order], return_index=True)
        keep = order[np.sort(first)]
        n_dup = len(h) - len(keep)
        if n_dup:
            log.info("%s: %d duplicate summaryslice(s) dropped", self.source, n_dup)
        hk = h[keep]
        if has_utc:
            s0, c0 = int(hk["utc_seconds"][0]), int(hk["utc_16ns"][0])
            t_rel = (hk["utc_seconds"].astype(np.float64) - s0) + (hk["utc_16ns"].astype(np.float64) - c0) * 16e-9
            utc_start = s0 + c0 * 16e-9
        else:
            t_rel = (hk["frame_index"].astype(np.float64) - hk["frame_index"][0]) * FRAME_LENGTH_S
            utc_start = 0.0
        if len(t_rel) > 1 and np.any(np.diff(t_rel) <= 0):
            raise StageFileError(f"{self.source}: summaryslice times are not increasing with frame_index")
        slice_pos = np.full(len(h), -1, dtype=np.int64)
        slice_pos[keep] = np.arange(len(keep))
        fr = self.frames
        fpos = slice_pos[fr["slice"]]
        use = fpos >= 0
        dom_ids = np.unique(fr["dom_id"][use]).astype(np.int64)
        dpos = np.searchsorted(dom_ids, fr["dom_id"][use])
        nf, nd = len(keep), len(dom_ids)
        rates = np.zeros((nf, nd, N_CHANNELS), dtype=np.float32)
        hrv = np.zeros((nf, nd, N_CHANNELS), dtype=bool)
        fifo = np.zeros((nf, nd, N_CHANNELS), dtype=bool)
        present = np.zeros((nf, nd), dtype=bool)
        fp = fpos[use]
        rates[fp, dpos] = self.rates_hz[use]
        hrv[fp, dpos] = self.hrv_bits[use]
        fifo[fp, dpos] = self.fifo_bits[use]
        present[fp, dpos] = True
        return RunConditions(det_id=int(hk["det_id"][0]), run_id=int(hk["run"][0]), utc_start_s=utc_start,
                             frame_start_s=t_rel, dom_ids=dom_ids, rates_hz=rates, hrv=hrv, fifo=fifo,
                             present=present, source=self.source)


@dataclass
class DaqEvents:
    """Triggered events (JDAQEvent) of one file.

    ``event_id`` is the 0-based entry number of the event in the file.

    Attributes
    ----------
    headers : Table
        event_id, det_id, run_id, frame_index, utc_seconds, utc_16ns (start of the event's
        timeslice), trigger_counter, trigger_mask, overlays, n_snapshot_hits, n_triggered_hits.
    events : Table
        Schema ``triggered_events`` (snapshot_start/end: first/last snapshot hit time, ns since
        the timeslice start; NaN without snapshot hits).
    snapshot_hits : Table
        Schema ``snapshot_hits``: time = TDC [ns since the timeslice start] + PMT t0 when a
        detector was given; pmt_id from the detector (-1 without one); npe 0 (unknown in
        data); origin -1; trigger_mask from the matching triggered hit (0 if none).
        Sorted by (event_id, time).
    triggered_hits : Table
        event_id, dom_id, channel_id, pmt_id, time, tot, trigger_mask (file order).
    source : str
    """

    headers: Table
    events: Table
    snapshot_hits: Table
    triggered_hits: Table
    source: str = ""

    def __len__(self) -> int:
        return len(self.headers)


@dataclass
class Timeslices:
    """Timeslices of one stream. ``event_id`` of every table is the timeslice ``frame_index``.

    Attributes
    ----------
    headers : Table
        event_id (= frame_index), det_id, run_id, utc_seconds, utc_16ns, n_frames (DOM frames).
    frames : Table
        Per DOM frame: event_id (= frame_index), dom_id, dq_status, hrv, fifo, status3, status4,
        n_hits.
    hits : Table
        event_id (= frame_index), dom_id, channel_id, tdc [ns since the timeslice start, u4],
        tot [ns]; in the order of the file (per frame, per channel, in time).
    stream : str
        ``"L0"``, ``"L1"``, ``"L2"``, ``"SN"`` or ``"default"``.
    source : str
    """

    headers: Table
    frames: Table
    hits: Table
    stream: str = ""
    source: str = ""

    def __len__(self) -> int:
        return len(self.headers)


def _bits(words) -> np.ndarray:
    w = np.asarray(words, dtype=np.uint32)
    return ((w[:, None] >> np.arange(N_CHANNELS, dtype=np.uint32)) & 1).astype(bool)


# ------------------------------------------------------------------------- file handling
def _kind(path: Path) -> str:
    """'root', 'dat' or 'text' from the first bytes of the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise StageFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise StageFileError(f"{path}: cannot read: {exc}") from exc
    if not head:
        raise StageFileError(f"{path}: empty file")
    if head[:4] == b"root":
        return "root"
    if len(head) >= 8:
        length, typ = np.frombuffer(head[:8], "<i4")
        if (typ in (DAQ_TYPE_SUMMARYSLICE, DAQ_TYPE_EVENT) or 1001 <= typ <= 1005) and length >= 28:
            return "dat"
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and re.match(r"^\s*\d+(\s+[-+0-9.eE]+)+", text):
        return "text"
    raise StageFileError(f"{path}: unknown format (neither a ROOT file, a Jpp DAQ binary stream nor a "
                         f"summaryslice text dump); first bytes {head[:16].hex()}")


def _open_root(path: Path):
    uproot = require("uproot", "reading KM3NeT DAQ ROOT files")
    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises many kinds for corrupt files
        raise StageFileError(f"{path}: cannot open as ROOT file: {exc}") from exc


def _tree(f, name: str, path: Path):
    names = {k.split(";")[0]: k for k in f.keys(cycle=True)}
    if name not in names:
        trees = sorted(k for k in names if k.startswith("KM3NET"))
        raise StageFileError(f"{path}: no tree {name!r} (DAQ trees in the file: {trees})")
    return f[name]


def _branches(tree) -> dict:
    """Branches by the last component of their name (the first one found)."""
    out = {}
    for key in tree.keys(recursive=True):
        out.setdefault(key.split("/")[-1], tree[key])
    return out


def _raw_entries(branch, n_entries: int, path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated raw bytes of all entries of ``branch`` and the entry byte offsets (n+1)."""
    datas, offsets, base = [], [np.zeros(1, np.int64)], 0
    try:
        for i in range(branch.num_baskets):
            bk = branch.basket(i)
            data = np.asarray(bk.data, dtype=np.uint8)
            n = bk.num_entries
            if bk.byte_offsets is None:
                if n and len(data) % n:
                    raise StageFileError(f"{path}: {what}: basket {i} of {len(data)} bytes for {n} fixed-size entries")
                off = np.arange(1, n + 1, dtype=np.int64) * (len(data) // max(n, 1))
            else:
                off = np.asarray(bk.byte_offsets, dtype=np.int64)[1:n + 1]
            datas.append(data)
            offsets.append(off + base)
            base += len(data)
    except StageFileError:
        raise
    except Exception as exc:
        raise StageFileError(f"{path}: {what}: cannot read the ROOT baskets: {exc}") from exc
    off = np.concatenate(offsets)
    if len(off) != n_entries + 1:
        raise StageFileError(f"{path}: {what}: {len(off) - 1} entries in the baskets, tree has {n_entries}")
    return (np.concatenate(datas) if datas else np.zeros(0, np.uint8)), off


def _fixed_records(data: np.ndarray, off: np.ndarray, dtype: np.dtype, path: Path, what: str) -> np.ndarray:
    sizes = np.diff(off)
    if np.any(sizes != dtype.itemsize):
        bad = int(np.flatnonzero(sizes != dtype.itemsize)[0])
        raise StageFileError(f"{path}: {what}: entry {bad} has {sizes[bad]} bytes, expected {dtype.itemsize}")
    return np.frombuffer(data[: len(sizes) * dtype.itemsize].tobytes(), dtype=dtype)


def _vectors(data: np.ndarray, off: np.ndarray, dtype: np.dtype, path: Path, what: str,
             header: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``vector<T>`` entries (``header`` bytes: byte count, version, n) of fixed-size ``T``.

    Returns the elements of all entries and their count per entry.
    """
    n_entries = len(off) - 1
    if n_entries == 0:
        return np.empty(0, dtype), np.zeros(0, np.int64)
    sizes = np.diff(off)
    if np.any(sizes < header):
        bad = int(np.flatnonzero(sizes < header)[0])
        raise StageFileError(f"{path}: {what}: entry {bad} has {sizes[bad]} bytes, less than a vector header")
    # header fields, vectorised: version (2 bytes at +4), n (4 bytes at +6), big-endian
    idx = off[:-1, None] + np.arange(header)
    hb = data[idx]
    version = (hb[:, 4].astype(np.int64) << 8) | hb[:, 5]
    if np.any(version & 0x4000):
        raise StageFileError(f"{path}: {what}: member-wise streamed vector of {dtype.itemsize}-byte elements "
                             "is not supported here (only seen for timeslice super frames)")
    n = hb[:, 6:10].copy().view(">u4").ravel().astype(np.int64)
    if np.any(sizes != header + n * dtype.itemsize):
        bad = int(np.flatnonzero(sizes != header + n * dtype.itemsize)[0])
        raise StageFileError(f"{path}: {what}: entry {bad} has {sizes[bad]} bytes for {n[bad]} elements of "
                             f"{dtype.itemsize} bytes (+{header}): corrupt or not this layout")
    keep = np.ones(len(data), dtype=bool)
    keep[idx.ravel()] = False
    keep[off[-1]:] = False
    body = data[keep]
    return np.frombuffer(body.tobytes(), dtype=dtype), n


def _check_preamble(tree, branches: dict, path: Path, expected_length: np.ndarray, what: str) -> None:
    """Compare the JDAQPreamble lengths (when filled; converted MC has 0) with the decoded sizes."""
    b = branches.get("KM3NETDAQ::JDAQPreamble")
    if b is None or b.num_baskets == 0:
        return
    data, off = _raw_entries(b, tree.num_entries, path, "JDAQPreamble")
    if np.any(np.diff(off) != 8):
        return
    pre = np.frombuffer(data.tobytes(), dtype=[("length", ">i4"), ("type", ">i4")])
    filled = pre["length"] > 0
    # the length is that of the Jpp binary record: with the 2-byte version word (newer Jpp) or without
    bad = filled & (pre["length"] != expected_length) & (pre["length"] != expected_length - 2)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise StageFileError(f"{path}: {what} entry {k}: decoded size {expected_length[k]} bytes differs from "
                             f"the preamble length {pre['length'][k]}: corrupt or unknown layout")


def _guarded(path: Path, what: str, fn, *args):
    """Run a decoder; any unexpected error of a damaged file becomes a StageFileError naming it."""
    try:
        return fn(path, *args)
    except Km3simError:
        raise
    except Exception as exc:  # uproot / numpy errors on truncated or corrupt input
        raise StageFileError(f"{path}: cannot decode {what}: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------- summaryslices
def _root_summaryslices(path: Path) -> Summaryslices:
    f = _open_root(path)
    tree = _tree(f, "KM3NET_SUMMARYSLICE", path)
    br = _branches(tree)
    hb, vb = br.get("KM3NETDAQ::JDAQSummarysliceHeader"), br.get("vector<KM3NETDAQ::JDAQSummaryFrame>")
    if hb is None or vb is None or (tree.num_entries and (hb.num_baskets == 0 or vb.num_baskets == 0)):
        raise StageFileError(f"{path}: KM3NET_SUMMARYSLICE has no readable header/frame branches "
                             f"(branches: {sorted(br)}): unsupported layout")
    n = tree.num_entries
    hdata, hoff = _raw_entries(hb, n, path, "summaryslice header")
    raw_h = _fixed_records(hdata, hoff, _ROOT_SLICE_HEADER, path, "summaryslice header")
    vdata, voff = _raw_entries(vb, n, path, "summary frames")
    frames_be, counts = _vectors(vdata, voff, _ROOT_SUMMARY_FRAME, path, "summary frames")
    _check_preamble(tree, br, path, 30 + 4 + counts * 55, "summaryslice")
    return Summaryslices(_headers_from(raw_h), _frames_from(frames_be, counts), str(path))


def _headers_from(raw) -> np.ndarray:
    out = np.empty(len(raw), SLICE_HEADER_DTYPE)
    for k in SLICE_HEADER_DTYPE.names:
        out[k] = raw[k]
    return out


def _frames_from(raw, counts) -> np.ndarray:
    out = np.zeros(len(raw), SUMMARY_FRAME_DTYPE)
    out["slice"] = np.repeat(np.arange(len(counts)), counts)
    for k in raw.dtype.names:
        if k in SUMMARY_FRAME_DTYPE.names:
            out[k] = raw[k]
    return out


def _text_summaryslices(path: Path) -> Summaryslices:
    rows = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) != 1 + 2 * N_CHANNELS:
                raise StageFileError(f"{path}, line {lineno}: {len(tok)} fields, expected {1 + 2 * N_CHANNELS} "
                                     "(dom_id and 31 x rate, flags)")
            try:
                dom = int(tok[0])
                rates = [float(x) for x in tok[1::2]]
                flags = tok[2::2]
                if any(len(fl) != 2 or fl.strip("01") for fl in flags):
                    raise ValueError("flags must be two digits 0/1")
            except ValueError as exc:
                raise StageFileError(f"{path}, line {lineno}: {exc}") from None
            hrv = sum(1 << c for c, fl in enumerate(flags) if fl[0] == "1")
            fifo = sum(1 << c for c, fl in enumerate(flags) if fl[1] == "1")
            rows.append((dom, rates, hrv, fifo))
    if not rows:
        raise StageFileError(f"{path}: no DOM lines in the summaryslice text dump")
    frames = np.zeros(len(rows), SUMMARY_FRAME_DTYPE)
    frames["dom_id"] = [r[0] for r in rows]
    frames["hrv"] = [r[2] for r in rows]
    frames["fifo"] = [r[3] for r in rows]
    rates_hz = np.array([r[1] for r in rows], dtype=np.float64) * 1e3
    frames["rate_codes"] = rate_codes_from_hz(rates_hz)
    # det / run from the file name KM3NeT_<det>_<run>.summaryslice-<N>.txt when present; N is not the
    # frame index (the ROOT file next to the km3net-testdata dump has frame_index 167976 for N = 167941),
    # and the dump has no time: frame_index and UTC are 0
    m = re.search(r"KM3NeT_(-?\d+)_(\d+)\.summaryslice", path.name)
    header = np.zeros(1, SLICE_HEADER_DTYPE)
    if m:
        header["det_id"], header["run"] = int(m.group(1)), int(m.group(2))
    return Summaryslices(header, frames, str(path), text_rates_hz=rates_hz)


def _dat_records(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Split a Jpp DAQ stream into records: (buffer, start offsets, types, legacy layout?)."""
    buf = np.fromfile(path, dtype=np.uint8)
    starts, types = [], []
    pos = 0
    n = len(buf)
    # record lengths chain the file: a Python loop over records (not hits), cheap
    while pos < n:
        if pos + 8 > n:
            raise StageFileError(f"{path}: truncated record header at byte {pos}")
        length, typ = (int(x) for x in buf[pos:pos + 8].view("<i4"))
        if length < 28 or pos + length > n:
            raise StageFileError(f"{path}: record at byte {pos} (type {typ}) has length {length}, "
                                 f"{n - pos} bytes left: truncated or corrupt")
        starts.append(pos)
        types.append(typ)
        pos += length
    starts = np.asarray(starts, dtype=np.int64)
    types = np.asarray(types, dtype=np.int64)
    # legacy files have no version word: det_id follows the type directly. Decide per file by
    # trying both layouts on the first record whose payload size is self-describing.
    legacy = _dat_is_legacy(buf, starts, types, path)
    return buf, starts, types, legacy


def _u32(buf, pos) -> int:
    return int(buf[pos:pos + 4].view("<u4")[0])


def _dat_is_legacy(buf, starts, types, path) -> bool:
    for hdr, legacy in ((30, False), (28, True)):
        ok = True
        for s, t in zip(starts[:8], types[:8]):
            length = _u32(buf, s)
            if t == DAQ_TYPE_SUMMARYSLICE:
                ok &= length == hdr + 4 + (39 if legacy else 55) * _u32(buf, s + hdr)
            elif t == DAQ_TYPE_EVENT:
                p = s + hdr + 20
                if p + 4 > s + length:
                    ok = False
                    continue
                nt = _u32(buf, p)
                p += 4 + 18 * nt
                ok &= p + 4 <= s + length and p + 4 + 10 * _u32(buf, p) == s + length
            elif 1001 <= t <= 1005:
                p = s + hdr
                nfr = _u32(buf, p)
                p += 4
                for _ in range(min(nfr, 4)):
                    if p + 56 > s + length:
                        ok = False
                        break
                    ok &= _u32(buf, p + 4) == _SUPERFRAME_TYPE
                    p += _u32(buf, p)
            if not ok:
                break
        if ok:
            return legacy
    raise StageFileError(f"{path}: records match neither the Jpp DAQ layout with a version word nor the "
                         "legacy one: corrupt or unknown")


def _dat_headers(buf, starts, legacy) -> np.ndarray:
    hdr0 = 8 if legacy else 10
    idx = starts[:, None] + hdr0 + np.arange(20)
    raw = np.frombuffer(buf[idx].tobytes(), dtype=[("det_id", "<i4"), ("run", "<i4"), ("frame_index", "<i4"),
                                                   ("utc_seconds", "<u4"), ("utc_16ns", "<u4")])
    return _headers_from(raw)


def _gather(buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Bytes buf[starts[i]:starts[i]+sizes[i]] for all i, concatenated (vectorised)."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    rel = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return buf[np.repeat(starts, sizes) + rel]


def _dat_summaryslices(path: Path) -> Summaryslices:
    buf, starts, types, legacy = _dat_records(path)
    sel = types == DAQ_TYPE_SUMMARYSLICE
    if not np.any(sel):
        raise StageFileError(f"{path}: no summaryslice records (type {DAQ_TYPE_SUMMARYSLICE}); "
                             f"record types found: {sorted(set(types.tolist()))}")
    s = starts[sel]
    hdr = 28 if legacy else 30
    lengths = buf[s[:, None] + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    nfr = buf[s[:, None] + hdr + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    fdt = _DAT_LEGACY_SUMMARY_FRAME if legacy else _DAT_SUMMARY_FRAME
    if np.any(lengths != hdr + 4 + nfr * fdt.itemsize):
        k = int(np.flatnonzero(lengths != hdr + 4 + nfr * fdt.itemsize)[0])
        raise StageFileError(f"{path}: summaryslice record at byte {s[k]}: length {lengths[k]} does not fit "
                             f"{nfr[k]} frames of {fdt.itemsize} bytes")
    raw = np.frombuffer(_gather(buf, s + hdr + 4, nfr * fdt.itemsize).tobytes(), dtype=fdt)
    if legacy:
        # one status word: the per-channel high-rate-veto bits (bit 31: White Rabbit), no FIFO word
        full = np.zeros(len(raw), _DAT_SUMMARY_FRAME)
        full["dom_id"], full["hrv"], full["rate_codes"] = raw["dom_id"], raw["status"], raw["rate_codes"]
        raw = full
    return Summaryslices(_dat_headers(buf, s, legacy), _frames_from(raw, nfr), str(path))


def load_summaryslices(path: str | os.PathLike) -> Summaryslices:
    """Decode all summaryslices of a file (ROOT, Jpp DAQ stream, or text dump; auto-detected).

    Raises
    ------
    StageFileError
        Missing, unknown, truncated or corrupt file (the message names the file and the problem).
    """
    path = Path(path)
    kind = _kind(path)
    decoder = {"root": _root_summaryslices, "dat": _dat_summaryslices, "text": _text_summaryslices}[kind]
    return _guarded(path, "summaryslices", decoder)


def read_summaryslices(path) -> RunConditions:
    """:class:`RunConditions` from the summaryslices of one file or a list of files of one run.

    Formats (auto-detected): ROOT ``KM3NET_SUMMARYSLICE`` trees, Jpp DAQ binary streams (with
    and without version word) and the text dump ``*.summaryslice-N.txt`` (det/run/frame from
    its name; no UTC: frames start at 0).
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise StageFileError("read_summaryslices: no files given")
    return Summaryslices.concatenate([load_summaryslices(p) for p in paths]).to_conditions()


# ------------------------------------------------------------------------------ events
def _calibrate(dom_id, channel, tdc, detector, path: Path):
    time = tdc.astype(np.float64)
    if detector is None:
        return np.full(len(dom_id), -1, np.int64), time
    try:
        k = detector.pmt_index(dom_id, channel)
    except KeyError as exc:
        raise StageFileError(f"{path}: hits on PMTs not in detector {detector.det_id}: {exc}") from None
    return np.asarray(detector.pmt_id)[k], time + np.asarray(detector.pmt_t0)[k]


def _events_tables(path: Path, hdr, snap, n_snap, trig, n_trig, detector) -> DaqEvents:
    n_ev = len(hdr)
    if detector is not None and int(detector.det_id) != int(hdr["det_id"][0] if n_ev else detector.det_id):
        log.warning("%s: detector id %s of the data, detector file has %s", path, hdr["det_id"][0], detector.det_id)
    ev_s = np.repeat(np.arange(n_ev, dtype=np.int64), n_snap)
    ev_t = np.repeat(np.arange(n_ev, dtype=np.int64), n_trig)
    # trigger mask of each snapshot hit: OR of the masks of identical triggered hits (same event,
    # DOM, channel, TDC, ToT); vectorised: two int64 keys over both sets, lexsort, group ids
    e_all = np.concatenate([ev_s, ev_t])
    k1 = (e_all << 32) | np.concatenate([snap["dom_id"], trig["dom_id"]]).astype(np.int64) & 0xFFFFFFFF
    k2 = (np.concatenate([snap["tdc"], trig["tdc"]]).astype(np.int64) << 16) \
        | (np.concatenate([snap["channel"], trig["channel"]]).astype(np.int64) << 8) \
        | np.concatenate([snap["tot"], trig["tot"]]).astype(np.int64)
    order = np.lexsort((k2, k1))
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(k1[order]) != 0) | (np.diff(k2[order]) != 0)
    inv = np.empty(len(order), np.int64)
    inv[order] = np.cumsum(new) - 1
    mask_of_key = np.zeros(int(new.sum()), np.uint64)
    np.bitwise_or.at(mask_of_key, inv[len(snap):], trig["trigger_mask"].astype(np.uint64))
    snap_mask = mask_of_key[inv[:len(snap)]]

    pmt_s, t_s = _calibrate(snap["dom_id"], snap["channel"], snap["tdc"], detector, path)
    pmt_t, t_t = _calibrate(trig["dom_id"], trig["channel"], trig["tdc"], detector, path)
    order = np.lexsort((t_s, ev_s))
    snapshot_hits = make_table(
        "snapshot_hits", event_id=ev_s[order], dom_id=snap["dom_id"][order], channel_id=snap["channel"][order].astype(np.int32),
        pmt_id=pmt_s[order].astype(np.int32), time=t_s[order], tot=snap["tot"][order],
        npe=np.zeros(len(snap), np.int32), origin=np.full(len(snap), -1, np.int32), trigger_mask=snap_mask[order])
    triggered_hits = Table({
        "event_id": ev_t, "dom_id": trig["dom_id"].astype(np.int32), "channel_id": trig["channel"].astype(np.int32),
        "pmt_id": pmt_t.astype(np.int32), "time": t_t, "tot": trig["tot"].astype(np.uint8),
        "trigger_mask": trig["trigger_mask"].astype(np.uint64)}, name="daq_triggered_hits")
    # per event: first/last snapshot hit, triggered DOMs
    start = np.full(n_ev, np.nan)
    end = np.full(n_ev, np.nan)
    if len(snap):
        np.fmin.at(start, ev_s, t_s)
        np.fmax.at(end, ev_s, t_s)
    n_doms = np.zeros(n_ev, np.int64)
    if len(trig):
        pairs = np.unique(k1[len(snap):])
        n_doms = np.bincount(pairs >> 32, minlength=n_ev)
    ids = np.arange(n_ev, dtype=np.int64)
    events = make_table("triggered_events", event_id=ids, trigger_mask=hdr["trigger_mask"].astype(np.uint64),
                        trigger_counter=hdr["trigger_counter"].astype(np.int64), snapshot_start=start,
                        snapshot_end=end, n_hits=n_snap.astype(np.int32), n_triggered_hits=n_trig.astype(np.int32),
                        n_triggered_doms=n_doms.astype(np.int32), overlays=hdr["overlays"].astype(np.int32))
    headers = Table({
        "event_id": ids, "det_id": hdr["det_id"].astype(np.int32), "run_id": hdr["run"].astype(np.int32),
        "frame_index": hdr["frame_index"].astype(np.int32), "utc_seconds": hdr["utc_seconds"].astype(np.uint32),
        "utc_16ns": hdr["utc_16ns"].astype(np.uint32), "trigger_counter": hdr["trigger_counter"].astype(np.uint64),
        "trigger_mask": hdr["trigger_mask"].astype(np.uint64), "overlays": hdr["overlays"].astype(np.uint32),
        "n_snapshot_hits": n_snap.astype(np.int64), "n_triggered_hits": n_trig.astype(np.int64)},
        name="daq_event_headers")
    return DaqEvents(headers, events, snapshot_hits, triggered_hits, str(path))


def _root_events(path: Path, detector) -> DaqEvents:
    f = _open_root(path)
    tree = _tree(f, "KM3NET_EVENT", path)
    br = _branches(tree)
    need = ("KM3NETDAQ::JDAQEventHeader", "triggeredHits", "snapshotHits")
    if any(k not in br for k in need):
        raise StageFileError(f"{path}: KM3NET_EVENT lacks branches {[k for k in need if k not in br]}")
    n = tree.num_entries
    hdata, hoff = _raw_entries(br[need[0]], n, path, "event header")
    hdr = _fixed_records(hdata, hoff, _ROOT_EVENT_HEADER, path, "event header")
    tdata, toff = _raw_entries(br[need[1]], n, path, "triggeredHits")
    trig, n_trig = _vectors(tdata, toff, _ROOT_TRIG_HIT, path, "triggeredHits")
    sdata, soff = _raw_entries(br[need[2]], n, path, "snapshotHits")
    snap, n_snap = _vectors(sdata, soff, _ROOT_KEY_HIT, path, "snapshotHits")
    _check_preamble(tree, br, path, 50 + 4 + 18 * n_trig + 4 + 10 * n_snap, "event")
    return _events_tables(path, hdr, snap, n_snap, trig, n_trig, detector)


def _dat_events(path: Path, detector) -> DaqEvents:
    buf, starts, types, legacy = _dat_records(path)
    s = starts[types == DAQ_TYPE_EVENT]
    if not len(s):
        raise StageFileError(f"{path}: no event records (type {DAQ_TYPE_EVENT}); record types found: "
                             f"{sorted(set(types.tolist()))}")
    hdr_len = 28 if legacy else 30
    base = _dat_headers(buf, s, legacy)
    tail = np.frombuffer(_gather(buf, s + hdr_len, np.full(len(s), 20)).tobytes(), dtype=_DAT_EVENT_TAIL)
    lengths = buf[s[:, None] + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    p_trig = s + hdr_len + 20
    n_trig = buf[p_trig[:, None] + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    p_snap = p_trig + 4 + 18 * n_trig
    if np.any(p_snap + 4 > s + lengths):
        raise StageFileError(f"{path}: event record too short for its triggered hits: corrupt")
    n_snap = buf[p_snap[:, None] + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    if np.any(p_snap + 4 + 10 * n_snap != s + lengths):
        k = int(np.flatnonzero(p_snap + 4 + 10 * n_snap != s + lengths)[0])
        raise StageFileError(f"{path}: event record at byte {s[k]}: hit counts do not fit its length: corrupt")
    trig = np.frombuffer(_gather(buf, p_trig + 4, 18 * n_trig).tobytes(), dtype=_DAT_TRIG_HIT)
    snap = np.frombuffer(_gather(buf, p_snap + 4, 10 * n_snap).tobytes(), dtype=_DAT_KEY_HIT)
    hdr = np.zeros(len(s), [(k, "i8") for k in SLICE_HEADER_DTYPE.names] + [("trigger_counter", "u8"),
                                                                           ("trigger_mask", "u8"), ("overlays", "u4")])
    for k in SLICE_HEADER_DTYPE.names:
        hdr[k] = base[k]
    for k in _DAT_EVENT_TAIL.names:
        hdr[k] = tail[k]
    return _events_tables(path, hdr, snap, n_snap, trig, n_trig, detector)


def read_daq_events(path: str | os.PathLike, detector=None) -> DaqEvents:
    """Triggered events (JDAQEvent) of a ROOT file (tree ``KM3NET_EVENT``) or a Jpp DAQ stream.

    Parameters
    ----------
    path : path
        The file.
    detector : Detector, optional
        Calibrates the hits: ``pmt_id`` and ``time = tdc + pmt t0``. Without it ``pmt_id`` is
        -1 and ``time`` the raw TDC [ns since the timeslice start].

    Raises
    ------
    StageFileError
        Unknown, truncated or corrupt file; hits on DOMs the detector does not have.
    """
    path = Path(path)
    kind = _kind(path)
    if kind == "root":
        return _guarded(path, "DAQ events", _root_events, detector)
    if kind == "dat":
        return _guarded(path, "DAQ events", _dat_events, detector)
    raise StageFileError(f"{path}: a text file holds no triggered events")


# -------------------------------------------------------------------------- timeslices
_MW_FIELDS = (("length", ">i4", 4), ("type", ">i4", 4), ("_tobject", None, 10), ("det_id", ">i4", 4),
              ("run", ">i4", 4), ("frame_index", ">i4", 4), ("_utc", None, 14), ("dom_id", ">i4", 4),
              ("dq_status", ">u4", 4), ("hrv", ">u4", 4), ("fifo", ">u4", 4), ("status3", ">u4", 4),
              ("status4", ">u4", 4), ("n_hits", ">u4", 4))
_MW_BYTES = sum(b for _, _, b in _MW_FIELDS)  # 72 bytes per super frame


def _decode_memberwise_superframes(data: np.ndarray, off: np.ndarray, path: Path):
    """Member-wise streamed ``vector<JDAQSuperFrame>`` entries (FORMATS.md §5).

    Entry: byte count (4), version with the 0x4000 member-wise flag (2), element class version
    (2), n (4); then each member for all n frames in turn (length, type, TObject (10 bytes),
    detector_id, run, frame_index, UTC (14 bytes), id, daq, status, fifo, status_3, status_4,
    numberOfHits), then a 6-byte header and all hits (6 bytes each). Per-entry Python loop
    (one per timeslice), numpy inside.
    """
    frames, hits, counts = [], [], []
    for k in range(len(off) - 1):
        e = data[off[k]:off[k + 1]]
        if len(e) < 12:
            raise StageFileError(f"{path}: timeslice entry {k}: {len(e)} bytes, too short for a vector header")
        version = int(e[4]) << 8 | int(e[5])
        if not version & 0x4000:
            raise StageFileError(f"{path}: timeslice entry {k}: vector not streamed member-wise "
                                 f"(version {version:#x}): unsupported layout")
        n = int(e[8:12].view(">u4")[0])
        pos = 12
        fr = {}
        if len(e) < 12 + _MW_BYTES * n:
            raise StageFileError(f"{path}: timeslice entry {k}: {len(e)} bytes for {n} frames: truncated")
        for name, dt, size in _MW_FIELDS:
            chunk = e[pos:pos + size * n]
            pos += size * n
            if dt is not None:
                fr[name] = chunk.view(dt).astype(np.int64 if dt[1] == "i" else np.uint64)
        n_hits = fr["n_hits"].astype(np.int64)
        total = int(n_hits.sum())
        rest = len(e) - pos
        if n and rest == 6 + 6 * total:
            pos += 6
        elif rest != 6 * total:
            raise StageFileError(f"{path}: timeslice entry {k}: {rest} bytes of hits for {total} hits: corrupt")
        if np.any(fr["length"] != 56 + 6 * n_hits) or np.any(fr["type"] != _SUPERFRAME_TYPE):
            raise StageFileError(f"{path}: timeslice entry {k}: super frame length/type inconsistent with "
                                 "numberOfHits: corrupt or unknown layout")
        hits.append(np.frombuffer(e[pos:pos + 6 * total].tobytes(), dtype=_ROOT_HIT))
        frames.append(fr)
        counts.append(n)
    return frames, hits, np.asarray(counts, np.int64)


def _root_timeslices(path: Path, stream: str | None) -> Timeslices:
    f = _open_root(path)
    present = {k.split(";")[0] for k in f.keys(cycle=True)}
    if stream is None:
        full = [s for s, t in _TREE_OF_STREAM.items() if t in present and f[t].num_entries > 0]
        if len(full) != 1:
            raise StageFileError(f"{path}: timeslice streams with entries: {full}; choose one with stream=")
        stream = full[0]
    tree = _tree(f, _TREE_OF_STREAM[stream], path)
    n = tree.num_entries
    br = _branches(tree)
    # ---- headers
    if "KM3NETDAQ::JDAQTimesliceHeader" in br and br["KM3NETDAQ::JDAQTimesliceHeader"].num_baskets:
        d, o = _raw_entries(br["KM3NETDAQ::JDAQTimesliceHeader"], n, path, "timeslice header")
        head = _headers_from(_fixed_records(d, o, _ROOT_SLICE_HEADER, path, "timeslice header"))
    else:
        head = np.zeros(n, SLICE_HEADER_DTYPE)
        try:
            for k, name in (("det_id", "detector_id"), ("run", "run"), ("frame_index", "frame_index")):
                head[k] = br[name].array(library="np")
            if "timeslice_start.UTC_seconds" in br:
                head["utc_seconds"] = br["timeslice_start.UTC_seconds"].array(library="np")
                head["utc_16ns"] = br["timeslice_start.UTC_16nanosecondcycles"].array(library="np")
            else:
                d, o = _raw_entries(br["timeslice_start"], n, path, "timeslice start")
                utc = _fixed_records(d, o, np.dtype([("_cv", "V6"), ("s", ">u4"), ("c", ">u4")]), path, "timeslice start")
                head["utc_seconds"], head["utc_16ns"] = utc["s"], utc["c"]
        except KeyError as exc:
            raise StageFileError(f"{path}: {_TREE_OF_STREAM[stream]}: no header branch {exc}") from None
    # ---- frames and hits
    vec = "vector<KM3NETDAQ::JDAQSuperFrame>"
    if vec + ".id" in br:  # split layout (old files)
        def col(name):
            arr = br[f"{vec}.{name}"].array(library="np")
            return np.concatenate(list(arr)) if len(arr) else np.zeros(0)
        counts = np.array([len(a) for a in br[vec + ".id"].array(library="np")], np.int64)
        fr = {k: col(m) for k, m in (("dom_id", "id"), ("dq_status", "daq"), ("hrv", "status"), ("fifo", "fifo"),
                                     ("status3", "status_3"), ("status4", "status_4"), ("n_hits", "numberOfHits"),
                                     ("length", "length"))}
        n_hits = fr["n_hits"].astype(np.int64)
        if np.any(fr["length"] != 56 + 6 * n_hits):
            raise StageFileError(f"{path}: super frame length inconsistent with numberOfHits: corrupt")
        d, o = _raw_entries(br[vec + ".buffer"], n, path, "super frame hits")
        sizes = np.diff(o)
        per_entry = np.add.reduceat(n_hits, np.r_[0, np.cumsum(counts)[:-1]]) if len(n_hits) else np.zeros(n, np.int64)
        per_entry = np.where(counts > 0, per_entry, 0)
        hdr_b = np.where(sizes > 0, 6, 0)
        if np.any(sizes != hdr_b + 6 * per_entry):
            k = int(np.flatnonzero(sizes != hdr_b + 6 * per_entry)[0])
            raise StageFileError(f"{path}: timeslice entry {k}: {sizes[k]} bytes of hits for {per_entry[k]} hits")
        keep = np.ones(len(d), bool)
        heads = o[:-1][sizes > 0]
        for j in range(6):
            keep[heads + j] = False
        hits = np.frombuffer(d[keep].tobytes(), dtype=_ROOT_HIT)
    else:
        if vec not in br:
            raise StageFileError(f"{path}: {_TREE_OF_STREAM[stream]} has no super frame branch")
        d, o = _raw_entries(br[vec], n, path, "super frames")
        frs, hit_parts, counts = _decode_memberwise_superframes(d, o, path)
        keys = ("dom_id", "dq_status", "hrv", "fifo", "status3", "status4", "n_hits")
        fr = {k: np.concatenate([x[k] for x in frs]) if frs else np.zeros(0) for k in keys}
        hits = np.concatenate(hit_parts) if hit_parts else np.empty(0, _ROOT_HIT)
    slice_of_frame = np.repeat(np.arange(n), counts)
    hits_per_slice = np.bincount(slice_of_frame, weights=np.asarray(fr["n_hits"], np.float64), minlength=n)
    _check_preamble(tree, br, path, 30 + 4 + 56 * counts + 6 * hits_per_slice.astype(np.int64), "timeslice")
    return _timeslice_tables(head, counts, fr, hits, stream, path)


def _timeslice_tables(head, counts, fr, hits, stream, path) -> Timeslices:
    fidx = head["frame_index"].astype(np.int64)
    fr_ev = np.repeat(fidx, counts)
    n_hits = np.asarray(fr["n_hits"], np.int64)
    headers = Table({"event_id": fidx, "det_id": head["det_id"].astype(np.int32), "run_id": head["run"].astype(np.int32),
                     "utc_seconds": head["utc_seconds"].astype(np.uint32), "utc_16ns": head["utc_16ns"].astype(np.uint32),
                     "n_frames": counts.astype(np.int64)}, name="timeslice_headers")
    frames = Table({"event_id": fr_ev, "dom_id": np.asarray(fr["dom_id"]).astype(np.int32),
                    "dq_status": np.asarray(fr["dq_status"]).astype(np.uint32),
                    "hrv": np.asarray(fr["hrv"]).astype(np.uint32), "fifo": np.asarray(fr["fifo"]).astype(np.uint32),
                    "status3": np.asarray(fr["status3"]).astype(np.uint32),
                    "status4": np.asarray(fr["status4"]).astype(np.uint32), "n_hits": n_hits}, name="timeslice_frames")
    hits_t = Table({"event_id": np.repeat(fr_ev, n_hits), "dom_id": np.repeat(frames["dom_id"], n_hits),
                    "channel_id": hits["channel"].astype(np.int32), "tdc": hits["tdc"].astype(np.uint32),
                    "tot": hits["tot"].astype(np.uint8)}, name="timeslice_hits")
    if len(hits_t) and np.any(hits_t["channel_id"] >= N_CHANNELS):
        raise StageFileError(f"{path}: hit channel >= {N_CHANNELS}: corrupt hits")
    return Timeslices(headers, frames, hits_t, stream or "", str(path))


def _dat_timeslices(path: Path, stream: str | None) -> Timeslices:
    buf, starts, types, legacy = _dat_records(path)
    ts_types = sorted({int(t) for t in types if 1001 <= t <= 1005})
    if not ts_types:
        raise StageFileError(f"{path}: no timeslice records; record types found: {sorted(set(types.tolist()))}")
    names = {v: k for k, v in DAQ_TYPE_TIMESLICE.items()}
    if legacy:  # type 1001 for all streams then
        want = ts_types
        stream = stream or "default"
    elif stream is None:
        if len(ts_types) != 1:
            raise StageFileError(f"{path}: timeslice streams {[names[t] for t in ts_types]}; choose one with stream=")
        want, stream = ts_types, names[ts_types[0]]
    else:
        want = [DAQ_TYPE_TIMESLICE[stream]]
        if want[0] not in ts_types:
            raise StageFileError(f"{path}: no {stream} timeslices (type {want[0]}); streams in the file: "
                                 f"{[names[t] for t in ts_types]}")
    s = starts[np.isin(types, want)]
    hdr_len = 28 if legacy else 30
    head = _dat_headers(buf, s, legacy)
    counts = buf[s[:, None] + hdr_len + np.arange(4)].copy().view("<i4").ravel().astype(np.int64)
    # super frame positions: walk the frame lengths (loop over frames, not hits)
    pos, lengths_rec = [], buf[s[:, None] + np.arange(4)].copy().view("<i4").ravel()
    for rec, nfr, L in zip(s, counts, lengths_rec):
        p = rec + hdr_len + 4
        for _ in range(nfr):
            if p + 56 > rec + L:
                raise StageFileError(f"{path}: timeslice record at byte {rec}: super frames overrun the record")
            pos.append(p)
            p += _u32(buf, p)
        if p != rec + L:
            raise StageFileError(f"{path}: timeslice record at byte {rec}: super frames do not fill the record")
    pos = np.asarray(pos, np.int64)
    sf = np.frombuffer(_gather(buf, pos, np.full(len(pos), 56)).tobytes(), dtype=_DAT_SUPERFRAME_HEAD)
    n_hits = sf["n_hits"].astype(np.int64)
    if np.any(sf["length"] != 56 + 6 * n_hits) or np.any(sf["type"] != _SUPERFRAME_TYPE):
        raise StageFileError(f"{path}: super frame length/type inconsistent with its number of hits: corrupt")
    hits = np.frombuffer(_gather(buf, pos + 56, 6 * n_hits).tobytes(), dtype=_DAT_HIT)
    fr = {k: sf[k] for k in ("dom_id", "dq_status", "hrv", "fifo", "status3", "status4")}
    fr["n_hits"] = n_hits
    return _timeslice_tables(head, counts, fr, hits, stream, path)


def read_timeslices(path: str | os.PathLike, stream: str | None = "L1") -> Timeslices:
    """Timeslices of one stream: per DOM frame the status words and hits (channel, TDC, ToT).

    Parameters
    ----------
    path : path
        ROOT file (trees ``KM3NET_TIMESLICE[_L0|_L1|_L2|_SN]``) or Jpp DAQ stream (types
        1001-1005; legacy streams use 1001 for every stream and are read whatever ``stream``).
    stream : {"L0", "L1", "L2", "SN", "default", None}
        ``None``: the only stream the file has.
    """
    if stream is not None and stream not in DAQ_TYPE_TIMESLICE:
        raise StageFileError(f"unknown timeslice stream {stream!r}; known: {sorted(DAQ_TYPE_TIMESLICE)}")
    path = Path(path)
    kind = _kind(path)
    if kind == "root":
        return _guarded(path, "timeslices", _root_timeslices, stream)
    if kind == "dat":
        return _guarded(path, "timeslices", _dat_timeslices, stream)
    raise StageFileError(f"{path}: a text file holds no timeslices")


# ------------------------------------------------------------------ trigger parameters
#: ROOT basic type names of streamer elements and their big-endian numpy codes
_STREAMER_BASIC = {"bool": ">u1", "char": ">i1", "unsigned char": ">u1", "short": ">i2", "unsigned short": ">u2",
                   "int": ">i4", "unsigned int": ">u4", "long": ">i8", "long long": ">i8",
                   "unsigned long long": ">u8", "Long64_t": ">i8", "float": ">f4", "double": ">f8"}


def _decode_streamed(buf: bytes, pos: int, cls: str, streamers: dict, path: Path, depth: int = 0):
    """Decode one object of class ``cls`` at ``buf[pos:]`` by its streamer info.

    ROOT object-wise streaming (big-endian): a byte count (top bit set) and a version, then the
    members in streamer order. A ``TObject`` base is its version (2), fUniqueID (4) and fBits (4),
    without byte count. Members of classes without streamer info here (e.g. the PMT selector of
    the NB trigger) are skipped by their byte count. Returns (dict of members, end position).
    """
    if depth > 8:
        raise StageFileError(f"{path}: {cls}: nesting too deep")
    count = int.from_bytes(buf[pos:pos + 4], "big")
    if not count & 0x40000000:
        raise StageFileError(f"{path}: {cls}: no byte count at byte {pos}: not object-wise streamed")
    end = pos + 4 + (count & ~0x40000000)
    version = int.from_bytes(buf[pos + 4:pos + 6], "big")
    versions = streamers.get(cls)
    if not versions or version not in versions:
        return None, end
    p = pos + 6
    out = {}
    for el in versions[version].elements:
        name = el.member("fName")
        tname = el.member("fTypeName")
        if name == "TObject":
            bits = int.from_bytes(buf[p + 6:p + 10], "big")
            p += 10 + (2 if bits & 0x10 else 0)  # kIsReferenced: a 2-byte process id follows
            continue
        if tname in _STREAMER_BASIC:
            dt = np.dtype(_STREAMER_BASIC[tname])
            value = np.frombuffer(buf[p:p + dt.itemsize], dt)[0].item()
            out[name] = bool(value) if tname == "bool" else value
            p += dt.itemsize
            continue
        sub, p = _decode_streamed(buf, p, tname, streamers, path, depth + 1)
        if sub is not None:
            out[name] = sub
    if p > end:
        raise StageFileError(f"{path}: {cls} v{version}: members run past the byte count (corrupt)")
    return out, end


def read_trigger_parameters(path: str | os.PathLike) -> dict | None:
    """The ``JTRIGGER::JTriggerParameters`` object stored in a Jpp ROOT file, or None.

    Jpp writes the trigger settings of a run into its DAQ files (``JDataWriter``) and into MC
    files it triggers (``JTriggerEfficiency``); PHYSICS.md §12 lists the values of two of
    them. The object is decoded from its raw bytes with the file's own streamer info, so every
    class version Jpp wrote is read with its member names, which are Jpp's parameter names
    (``TMaxLocal_ns``, ``trigger3DMuon.roadWidth_m``, ``L2.ctMin``, ...).

    Returns
    -------
    dict or None
        Nested dict of the members (``trigger3DShower``, ``triggerMXShower``,
        ``trigger3DMuon``, ``triggerNB``, ``L2``, ``SN``, ``highRateVeto_Hz``, ``L2Min``,
        ``ctMin``, ``TMaxLocal_ns``, ``TMaxEvent_ns``, ``combineL1``, ...); None if the file
        holds no trigger parameters (e.g. files converted with ``JConvert``).

    Raises
    ------
    StageFileError
        The file is no readable ROOT file or the object cannot be decoded.
    """
    path = Path(path)
    if _kind(path) != "root":
        return None
    f = _open_root(path)
    names = [k for k in f.keys(cycle=False) if k.split(";")[0] == "JTRIGGER::JTriggerParameters"]
    if not names:
        return None

    def decode(p):
        key = f.key(names[0])
        chunk, cursor = key.get_uncompressed_chunk_cursor()
        raw = bytes(chunk.get(cursor.index, cursor.index + key.data_uncompressed_bytes, cursor, {}))
        streamers = {k: v for k, v in f.file.streamers.items() if k.startswith("JTRIGGER::")}
        out, _ = _decode_streamed(raw, 0, "JTRIGGER::JTriggerParameters", streamers, p)
        if out is None:
            raise StageFileError(f"{p}: JTriggerParameters: class version without streamer info")
        return out

    return _guarded(path, "JTriggerParameters", decode)
