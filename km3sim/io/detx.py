"""Read and write KM3NeT detector files: detx (text, v1-v5) and datx (binary, v5).

Layouts: ``shared/FORMATS.md`` section 3. Summary of the text format::

    # comment lines (optional, any number)
    det_id n_modules                               (v1)
    det_id vN                                      (v2..v5, "V3" etc. also accepted)
    valid_from valid_to                            (v2..v5, UNIX s)
    UTM WGS84 zone easting northing z              (v2..v5)
    n_modules                                      (v2..v5)
    module line, then n_pmts PMT lines, per module:
      v1-v3 module: id du floor n_pmts
      v4    module: id du floor x y z qa qb qc qd t0 n_pmts
      v5    module: id du floor x y z qa qb qc qd t0 status n_pmts
      v1-v2 PMT   : id x y z dx dy dz t0
      v3-v5 PMT   : id x y z dx dy dz t0 status

Quirks handled: blank lines anywhere; ``#`` lines anywhere (the leading ones are kept as
:attr:`Detector.comments`); Jpp comment lines whose quoted command argument (``\\"...\\"``)
spans several lines (the continuation lines do not start with ``#``; they are joined to the
comment with newlines); upper-case version tags; ``+``-signed numbers; old design files with
floor -1. For v1-v3 files the module position is the mean of its PMT positions, the orientation
(1, 0, 0, 0), t0 0 and status 0. PMT directions are normalised to unit length on read.

Parsing converts the whole PMT block with one numpy call; when that fails a line-by-line pass
finds the offending line for the error message.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np

from km3sim.detector.geometry import VALID_TO_INFINITY, Detector
from km3sim.errors import DetectorFileError

logger = logging.getLogger(__name__)

__all__ = ["read_detx", "read_datx", "read_detector", "write_detx", "write_datx"]

_VERSION_RE = re.compile(r"^[vV](\d+)$")
_INT_RE = re.compile(r"^[+-]?\d+$")

# Fields of each line kind per version.
_MODULE_FIELDS = {
    1: ("module_id", "du", "floor", "n_pmts"),
    2: ("module_id", "du", "floor", "n_pmts"),
    3: ("module_id", "du", "floor", "n_pmts"),
    4: ("module_id", "du", "floor", "x", "y", "z", "qa", "qb", "qc", "qd", "t0", "n_pmts"),
    5: ("module_id", "du", "floor", "x", "y", "z", "qa", "qb", "qc", "qd", "t0", "status",
        "n_pmts"),
}
_PMT_FIELDS = {
    1: ("pmt_id", "x", "y", "z", "dx", "dy", "dz", "t0"),
    2: ("pmt_id", "x", "y", "z", "dx", "dy", "dz", "t0"),
    3: ("pmt_id", "x", "y", "z", "dx", "dy", "dz", "t0", "status"),
    4: ("pmt_id", "x", "y", "z", "dx", "dy", "dz", "t0", "status"),
    5: ("pmt_id", "x", "y", "z", "dx", "dy", "dz", "t0", "status"),
}
_INT_FIELDS = {"module_id", "du", "floor", "n_pmts", "status", "pmt_id"}
_MAX_EXACT_INT = 2**53

# Placeholder written for an unknown UTM zone (v1 input); read back as "".
_UNKNOWN_ZONE = "unknown"


# ---------------------------------------------------------------------- helpers
def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DetectorFileError(f"detector file not found: '{path}'")
    if not path.is_file():
        raise DetectorFileError(f"detector file '{path}' is not a regular file")


def _normalise_dirs(d: np.ndarray, path: Path) -> np.ndarray:
    """Scale direction vectors to unit length (idempotent: unit vectors are left untouched)."""
    norm = np.sqrt((d * d).sum(axis=1))
    zero = norm == 0
    if np.any(zero):
        logger.warning("%s: %d PMT(s) with a zero direction vector", path, int(zero.sum()))
    fix = (np.abs(norm - 1.0) > 1e-12) & ~zero
    if np.any(fix):
        d = d.copy()
        d[fix] /= norm[fix, None]
    return d


def _count_escaped_quotes(s: str) -> int:
    return s.count('\\"')


class _Lines:
    """The data lines of a detx file: (1-based line number, token list), comments skipped."""

    def __init__(self, path: Path, text: str):
        self.path = path
        raw = text.split("\n")
        self.comments: list[str] = []
        self.numbers: list[int] = []
        self.tokens: list[list[str]] = []
        seen_data = False
        i = 0
        n = len(raw)
        while i < n:
            line = raw[i].rstrip("\r")
            stripped = line.strip()
            i += 1
            if not stripped:
                continue
            if stripped.startswith("#"):
                body = stripped[1:]
                if body.startswith(" "):
                    body = body[1:]
                # Jpp writes the command line verbatim; a quoted argument (\"...\") may contain
                # newlines, so the comment continues on lines that do not start with '#'.
                if not seen_data and _count_escaped_quotes(body) % 2 == 1:
                    for j in range(i, n):
                        if _count_escaped_quotes(raw[j]) % 2 == 1:
                            body = "\n".join([body] + [c.rstrip("\r") for c in raw[i : j + 1]])
                            i = j + 1
                            break
                    else:
                        logger.warning(
                            "%s: the comment on line %d opens a quoted argument (\\\") that is "
                            "never closed; read as a one-line comment", path, i
                        )
                if not seen_data:
                    self.comments.append(body)
                continue
            seen_data = True
            self.numbers.append(i)
            self.tokens.append(stripped.split())
        self.pos = 0

    def __len__(self):
        return len(self.tokens)

    def where(self, k: int | None = None) -> str:
        if k is None:
            k = self.pos
        if k < len(self.numbers):
            return f"{self.path}, line {self.numbers[k]}"
        return f"{self.path}, end of file"

    def next(self, what: str) -> list[str]:
        if self.pos >= len(self.tokens):
            raise DetectorFileError(
                f"{self.path}: unexpected end of file (truncated?): expected {what}"
            )
        t = self.tokens[self.pos]
        self.pos += 1
        return t

    def error(self, k: int, msg: str) -> DetectorFileError:
        line = " ".join(self.tokens[k]) if k < len(self.tokens) else ""
        if len(line) > 120:
            line = line[:117] + "..."
        return DetectorFileError(f"{self.where(k)}: {msg}" + (f": '{line}'" if line else ""))


def _to_int(lines: _Lines, k: int, tok: str, what: str) -> int:
    if not _INT_RE.match(tok):
        raise lines.error(k, f"expected an integer {what}, got {tok!r}")
    return int(tok)


def _to_float(lines: _Lines, k: int, tok: str, what: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise lines.error(k, f"expected a number {what}, got {tok!r}") from None


def _parse_header(lines: _Lines):
    k = lines.pos
    t = lines.next("the header line 'det_id vN' or 'det_id n_modules'")
    if len(t) != 2:
        raise lines.error(
            k, f"expected the header line 'det_id vN' or 'det_id n_modules' (2 fields), got "
            f"{len(t)} fields"
        )
    det_id = _to_int(lines, k, t[0], "detector id")
    m = _VERSION_RE.match(t[1])
    if m is None:
        if not _INT_RE.match(t[1]):
            raise lines.error(
                k, f"expected a version tag 'vN' or a number of modules, got {t[1]!r}"
            )
        version = 1
        n_modules = int(t[1])
        return det_id, version, 0.0, VALID_TO_INFINITY, "", np.zeros(3), n_modules
    version = int(m.group(1))
    if version < 2 or version > 5:
        raise lines.error(k, f"unsupported detx version v{version} (supported: v1-v5)")
    k = lines.pos
    t = lines.next("the validity line 'valid_from valid_to'")
    if len(t) != 2:
        raise lines.error(
            k, f"expected the validity line 'valid_from valid_to' (2 fields), got {len(t)} fields"
        )
    valid_from = _to_float(lines, k, t[0], "valid_from")
    valid_to = _to_float(lines, k, t[1], "valid_to")
    k = lines.pos
    t = lines.next("the UTM line 'UTM WGS84 zone easting northing z'")
    if len(t) != 6 or t[0].upper() != "UTM":
        raise lines.error(k, "expected the UTM line 'UTM WGS84 zone easting northing z'")
    zone = "" if t[2] == _UNKNOWN_ZONE else t[2]
    ref = np.array(
        [_to_float(lines, k, v, f"UTM {w}") for v, w in zip(t[3:6], ("easting", "northing", "z"))]
    )
    k = lines.pos
    t = lines.next("the number of modules")
    if len(t) != 1:
        raise lines.error(k, f"expected the number of modules (1 field), got {len(t)} fields")
    n_modules = _to_int(lines, k, t[0], "number of modules")
    return det_id, version, valid_from, valid_to, zone, ref, n_modules


def _field_error(lines: _Lines, k: int, j: int, fields: tuple, kind: str, integer: bool):
    what = "an integer" if integer else "a number"
    return lines.error(
        k, f"expected {what} {fields[j]} (field {j + 1}) in the {kind} line, got "
        f"{lines.tokens[k][j]!r}"
    )


def _convert_block(lines: _Lines, rows: np.ndarray, fields: tuple, kind: str) -> np.ndarray:
    """Convert the token rows ``rows`` (indices into lines) to a float array (n, n_fields).

    Fast path: one numpy conversion of all rows. Only if that fails, a line-by-line pass finds
    the first bad token for the error message.
    """
    if rows.size == 0:
        return np.zeros((0, len(fields)))
    toks = lines.tokens
    int_cols = [j for j, f in enumerate(fields) if f in _INT_FIELDS]
    try:
        arr = np.array([toks[k] for k in rows], dtype=np.float64)
    except ValueError:
        for k in rows:
            for j, tok in enumerate(toks[k]):
                if j in int_cols:
                    if not _INT_RE.match(tok):
                        raise _field_error(lines, k, j, fields, kind, True) from None
                else:
                    try:
                        float(tok)
                    except ValueError:
                        raise _field_error(lines, k, j, fields, kind, False) from None
        raise DetectorFileError(f"{lines.path}: could not convert the {kind} lines to numbers")
    sub = arr[:, int_cols]
    bad = ~((sub == np.round(sub)) & (np.abs(sub) < _MAX_EXACT_INT))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise _field_error(lines, int(rows[r]), int_cols[c], fields, kind, True)
    return arr


def read_detx(path) -> Detector:
    """Read a detx text file (versions v1-v5).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Detector

    Raises
    ------
    DetectorFileError
        If the file is missing or malformed; the message names the file, the line and what
        was expected.
    """
    path = Path(path)
    _check_exists(path)
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", errors="replace")
    lines = _Lines(path, text)
    if len(lines) == 0:
        raise DetectorFileError(f"{path}: empty detector file (no header line)")
    det_id, version, valid_from, valid_to, zone, ref, n_modules = _parse_header(lines)
    if n_modules < 0:
        raise lines.error(lines.pos - 1, f"negative number of modules {n_modules}")
    mfields = _MODULE_FIELDS[version]
    pfields = _PMT_FIELDS[version]
    nm, npf = len(mfields), len(pfields)

    toks = lines.tokens
    counts = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
    mod_rows = np.empty(n_modules, dtype=np.int64)
    n_pmts_list = np.empty(n_modules, dtype=np.int64)
    k = lines.pos
    total = len(toks)
    mdesc = " ".join(mfields)
    pdesc = " ".join(pfields)
    for m in range(n_modules):
        if k >= total:
            raise DetectorFileError(
                f"{path}: unexpected end of file (truncated?): expected module {m + 1} of "
                f"{n_modules} ('{mdesc}')"
            )
        if counts[k] != nm:
            raise lines.error(
                k, f"expected module line {m + 1} of {n_modules} with {nm} fields "
                f"({mdesc}), got {counts[k]} fields"
            )
        n = _to_int(lines, k, toks[k][-1], "number of PMTs (last field of the module line)")
        if n < 0:
            raise lines.error(k, f"negative number of PMTs {n}")
        mod_rows[m] = k
        n_pmts_list[m] = n
        block = counts[k + 1 : k + 1 + n]
        if block.shape[0] < n or np.any(block != npf):
            bad = np.flatnonzero(block != npf)
            mid = toks[k][0]
            if bad.size:
                j = int(bad[0])
                got = int(counts[k + 1 + j])
                hint = (
                    " (a module line: the module announces more PMTs than it has?)"
                    if got == nm
                    else ""
                )
                raise lines.error(
                    k + 1 + j,
                    f"expected PMT line {j + 1} of {n} of module {mid} with {npf} fields "
                    f"({pdesc}), got {got} fields{hint}",
                )
            raise DetectorFileError(
                f"{path}: unexpected end of file (truncated?): module {mid} "
                f"({lines.where(k)}) announces {n} PMTs but only {block.shape[0]} PMT lines follow"
            )
        k += 1 + n
    if k != total:
        raise lines.error(
            k, f"unexpected extra line after the {n_modules} modules announced in the header "
            "(wrong number of modules or PMTs?)"
        )

    pmt_mask = np.zeros(total, dtype=bool)
    pmt_mask[lines.pos :] = True
    pmt_mask[mod_rows] = False
    pmt_rows = np.flatnonzero(pmt_mask)
    mods = _convert_block(lines, mod_rows, mfields, "module")
    pmts = _convert_block(lines, pmt_rows, pfields, "PMT")

    mcol = {f: j for j, f in enumerate(mfields)}
    pcol = {f: j for j, f in enumerate(pfields)}
    pmt_pos = pmts[:, 1:4]
    if version >= 4:
        module_pos = mods[:, 3:6]
        quat = mods[:, 6:10]
        module_t0 = mods[:, mcol["t0"]]
    else:
        # no module positions before v4: mean of the module's PMT positions
        module_pos = np.zeros((n_modules, 3))
        idx = np.repeat(np.arange(n_modules), n_pmts_list)
        for j in range(3):
            s = np.bincount(idx, weights=pmt_pos[:, j], minlength=n_modules)
            module_pos[:, j] = s / np.maximum(n_pmts_list, 1)
        quat = np.tile([1.0, 0.0, 0.0, 0.0], (n_modules, 1))
        module_t0 = np.zeros(n_modules)
    no_status = np.zeros(0)  # broadcast to 0 by _make_detector
    return _make_detector(
        path,
        dict(det_id=det_id, version=version, valid_from=valid_from, valid_to=valid_to,
             utm_zone=zone, utm_reference=ref, comments=lines.comments),
        module_id=mods[:, mcol["module_id"]],
        module_du=mods[:, mcol["du"]],
        module_floor=mods[:, mcol["floor"]],
        module_pos=module_pos,
        module_quaternion=quat,
        module_t0=module_t0,
        module_status=mods[:, mcol["status"]] if "status" in mcol else no_status,
        module_n_pmts=n_pmts_list,
        pmt_id=pmts[:, 0],
        pmt_pos=pmt_pos,
        pmt_dir=pmts[:, 4:7],
        pmt_t0=pmts[:, 7],
        pmt_status=pmts[:, pcol["status"]] if "status" in pcol else no_status,
    )


def _make_detector(path: Path, header: dict, **arrays) -> Detector:
    """Build a :class:`Detector` from the module and PMT columns of a file.

    Derives the per-PMT module id, channel, DU and floor, normalises the PMT directions and
    fills missing status columns (empty arrays) with zeros.
    """
    n_mod = len(arrays["module_id"])
    n_pmt = len(arrays["pmt_id"])
    for name, n in (("module_status", n_mod), ("pmt_status", n_pmt)):
        if len(arrays[name]) == 0:
            arrays[name] = np.zeros(n, dtype=np.int64)
    n_pmts = np.asarray(arrays["module_n_pmts"], dtype=np.int64)
    module_id = np.asarray(arrays["module_id"]).astype(np.int64)
    first = np.cumsum(n_pmts) - n_pmts  # index of each module's first PMT
    det = Detector(
        **header,
        module_id=module_id,
        module_du=arrays["module_du"],
        module_floor=arrays["module_floor"],
        module_pos=arrays["module_pos"],
        module_quaternion=arrays["module_quaternion"],
        module_t0=arrays["module_t0"],
        module_status=np.asarray(arrays["module_status"]).astype(np.int64),
        module_n_pmts=n_pmts,
        pmt_id=np.asarray(arrays["pmt_id"]).astype(np.int64),
        pmt_dom_id=np.repeat(module_id, n_pmts),
        pmt_channel=np.arange(n_pmt, dtype=np.int64) - np.repeat(first, n_pmts),
        pmt_du=np.repeat(arrays["module_du"], n_pmts),
        pmt_floor=np.repeat(arrays["module_floor"], n_pmts),
        pmt_pos=arrays["pmt_pos"],
        pmt_dir=_normalise_dirs(np.array(arrays["pmt_dir"], dtype=np.float64), path),
        pmt_t0=arrays["pmt_t0"],
        pmt_status=np.asarray(arrays["pmt_status"]).astype(np.int64),
    )
    _warn_duplicates(det, path)
    logger.debug("read %s: %r", path, det)
    return det


def _warn_duplicates(det: Detector, path) -> None:
    if np.unique(det.module_id).shape[0] != det.n_modules:
        logger.warning("%s: duplicate module ids", path)
    if np.unique(det.pmt_id).shape[0] != det.n_pmts:
        logger.warning("%s: duplicate PMT ids", path)


# ---------------------------------------------------------------------- datx
_DATX_MODULE = np.dtype(
    [("id", "<i4"), ("du", "<i4"), ("floor", "<i4"), ("pos", "<f8", 3), ("q", "<f8", 4),
     ("t0", "<f8"), ("status", "<i4"), ("n_pmts", "<i4")]
)
_DATX_PMT = np.dtype(
    [("id", "<i4"), ("pos", "<f8", 3), ("dir", "<f8", 3), ("t0", "<f8"), ("status", "<i4")]
)
assert _DATX_MODULE.itemsize == 84 and _DATX_PMT.itemsize == 64


class _Buf:
    def __init__(self, path: Path, data: bytes):
        self.path = path
        self.data = data
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise DetectorFileError(
                f"{self.path}, byte offset {self.pos}: unexpected end of file (truncated?): "
                f"expected {what} ({n} bytes, {len(self.data) - self.pos} left)"
            )

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return v

    def string(self, what: str) -> str:
        start = self.pos
        (n,) = self.unpack("<i", f"the length of {what}")
        if n < 0 or n > 1_000_000:
            raise DetectorFileError(
                f"{self.path}, byte offset {start}: expected the length of {what}, got {n}"
            )
        self.need(n, what)
        s = self.data[self.pos : self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        self.need(dtype.itemsize * count, what)
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += dtype.itemsize * count
        return a


def read_datx(path) -> Detector:
    """Read a binary datx file (format v5, little endian).

    Layout: optional comment records ``####`` + string; int32 det_id; string version
    (``v5``); 2 doubles validity; strings ``UTM``, ``WGS84``, zone; 3 doubles reference;
    int32 n_modules; per module int32 id, du, floor, 3 doubles position, 4 doubles quaternion,
    double t0, int32 status, int32 n_pmts, followed by its PMTs: int32 id, 3 doubles position,
    3 doubles direction, double t0, int32 status. Strings are int32 length + bytes.

    Raises
    ------
    DetectorFileError
        Naming the file, the byte offset and what was expected.
    """
    path = Path(path)
    _check_exists(path)
    data = path.read_bytes()
    b = _Buf(path, data)
    comments = []
    while data[b.pos : b.pos + 4] == b"####":
        b.pos += 4
        comments.append(b.string("a comment"))
    (det_id,) = b.unpack("<i", "the detector id (int32)")
    vpos = b.pos
    vtag = b.string("the version string ('v5')")
    m = _VERSION_RE.match(vtag)
    if m is None:
        raise DetectorFileError(
            f"{path}, byte offset {vpos}: expected the version string 'v5', got {vtag!r}"
        )
    version = int(m.group(1))
    if version != 5:
        raise DetectorFileError(
            f"{path}, byte offset {vpos}: unsupported datx version {vtag!r} (supported: v5)"
        )
    valid_from, valid_to = b.unpack("<2d", "the validity range (2 doubles)")
    upos = b.pos
    utm = b.string("the string 'UTM'")
    b.string("the string 'WGS84'")  # the datum, always WGS84
    if utm.upper() != "UTM":
        raise DetectorFileError(
            f"{path}, byte offset {upos}: expected the string 'UTM', got {utm!r}"
        )
    zone = b.string("the UTM zone")
    if zone == _UNKNOWN_ZONE:
        zone = ""
    ref = np.array(b.unpack("<3d", "the UTM reference (3 doubles)"))
    npos = b.pos
    (n_modules,) = b.unpack("<i", "the number of modules (int32)")
    if n_modules < 0:
        raise DetectorFileError(
            f"{path}, byte offset {npos}: expected the number of modules, got {n_modules}"
        )
    mods = np.empty(n_modules, dtype=_DATX_MODULE)
    pmt_blocks = []
    for i in range(n_modules):
        mpos = b.pos
        rec = b.array(_DATX_MODULE, 1, f"module {i + 1} of {n_modules} (84 bytes)")
        n = int(rec["n_pmts"][0])
        if n < 0 or n > 10000:
            raise DetectorFileError(
                f"{path}, byte offset {mpos + 80}: expected the number of PMTs of module "
                f"{int(rec['id'][0])}, got {n}"
            )
        mods[i] = rec[0]
        pmt_blocks.append(
            b.array(_DATX_PMT, n, f"{n} PMTs of module {int(rec['id'][0])} ({n * 64} bytes)")
        )
    if b.pos != len(data):
        raise DetectorFileError(
            f"{path}, byte offset {b.pos}: expected end of file after {n_modules} modules, "
            f"{len(data) - b.pos} bytes left"
        )
    pmts = np.concatenate(pmt_blocks) if pmt_blocks else np.empty(0, dtype=_DATX_PMT)
    return _make_detector(
        path,
        dict(det_id=det_id, version=version, valid_from=valid_from, valid_to=valid_to,
             utm_zone=zone, utm_reference=ref, comments=comments),
        module_id=mods["id"],
        module_du=mods["du"],
        module_floor=mods["floor"],
        module_pos=mods["pos"],
        module_quaternion=mods["q"],
        module_t0=mods["t0"],
        module_status=mods["status"],
        module_n_pmts=mods["n_pmts"],
        pmt_id=pmts["id"],
        pmt_pos=pmts["pos"],
        pmt_dir=pmts["dir"],
        pmt_t0=pmts["t0"],
        pmt_status=pmts["status"],
    )


def read_detector(path) -> Detector:
    """Read a detector file, choosing the format from the suffix (``.detx`` or ``.datx``).

    Raises
    ------
    DetectorFileError
        For a missing file, an unknown suffix or a malformed file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".detx":
        return read_detx(path)
    if suffix == ".datx":
        return read_datx(path)
    _check_exists(path)
    raise DetectorFileError(
        f"{path}: unknown detector file type {path.suffix!r}; expected '.detx' (text) or "
        "'.datx' (binary)"
    )


# ---------------------------------------------------------------------- writing
def _fmt(values) -> list[str]:
    """Shortest round-trip representation of Python floats (repr)."""
    return [repr(float(v)) for v in values]


def _comment_lines(comment: str) -> list[str]:
    """Lines to write for one comment such that :class:`_Lines` reads it back unchanged."""
    parts = comment.split("\n")
    if len(parts) == 1:
        return ["# " + comment]
    # the reader joins continuation lines only while a \" quote is open: check that holds
    ok = (
        _count_escaped_quotes(parts[0]) % 2 == 1
        and all(_count_escaped_quotes(p) % 2 == 0 for p in parts[1:-1])
        and _count_escaped_quotes(parts[-1]) % 2 == 1
    )
    if ok:
        return ["# " + parts[0]] + parts[1:]
    return ["# " + p for p in parts]


def _atomic_write(path: Path, writer, mode: str) -> None:
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_detx(detector: Detector, path, version: int = 5) -> None:
    """Write a detector as a detx text file (Jpp style), atomically.

    Floats are written with the shortest representation that reads back to the identical
    double (``repr``), so read -> write -> read reproduces all arrays exactly.

    Parameters
    ----------
    detector : Detector
    path : str or path-like
        Written via a temporary file in the same directory and ``os.replace``.
    version : int
        Only 5 is supported.
    """
    if version != 5:
        raise ValueError(f"write_detx supports version 5 only, got {version}")
    d = detector
    out: list[str] = []
    for c in d.comments:
        out.extend(_comment_lines(c))
    out.append(f"{d.det_id} v5")
    out.append(f"{d.valid_from!r} {d.valid_to!r}")
    zone = d.utm_zone or _UNKNOWN_ZONE
    out.append("UTM WGS84 " + zone + " " + " ".join(_fmt(d.utm_reference)))
    out.append(str(d.n_modules))
    mid = d.module_id.tolist()
    mdu = d.module_du.tolist()
    mfl = d.module_floor.tolist()
    mpos = d.module_pos.tolist()
    mq = d.module_quaternion.tolist()
    mt0 = d.module_t0.tolist()
    mst = d.module_status.tolist()
    mn = d.module_n_pmts.tolist()
    pid = d.pmt_id.tolist()
    pp = d.pmt_pos.tolist()
    pd = d.pmt_dir.tolist()
    pt0 = d.pmt_t0.tolist()
    pst = d.pmt_status.tolist()
    j = 0
    for i in range(d.n_modules):
        out.append(
            f" {mid[i]} {mdu[i]} {mfl[i]} {mpos[i][0]!r} {mpos[i][1]!r} {mpos[i][2]!r} "
            f"{mq[i][0]!r} {mq[i][1]!r} {mq[i][2]!r} {mq[i][3]!r} {mt0[i]!r} {mst[i]} {mn[i]}"
        )
        for _ in range(mn[i]):
            p, u = pp[j], pd[j]
            out.append(
                f"  {pid[j]} {p[0]!r} {p[1]!r} {p[2]!r} {u[0]!r} {u[1]!r} {u[2]!r} "
                f"{pt0[j]!r} {pst[j]}"
            )
            j += 1
    text = "\n".join(out) + "\n"
    _atomic_write(Path(path), lambda fh: fh.write(text), "w")
    logger.debug("wrote %s (%d modules, %d PMTs)", path, d.n_modules, d.n_pmts)


def write_datx(detector: Detector, path) -> None:
    """Write a detector as a binary datx v5 file (little endian), atomically.

    Module and PMT ids, DU, floor, status and n_pmts must fit in int32.
    """
    d = detector
    for name in ("module_id", "module_status", "pmt_id", "pmt_status"):
        a = getattr(d, name)
        if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
            raise ValueError(f"write_datx: {name} does not fit in int32")

    def _s(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<i", len(b)) + b

    chunks = []
    for c in d.comments:
        chunks.append(b"####" + _s(c))
    chunks.append(struct.pack("<i", d.det_id))
    chunks.append(_s("v5"))
    chunks.append(struct.pack("<2d", d.valid_from, d.valid_to))
    chunks.append(_s("UTM") + _s("WGS84") + _s(d.utm_zone or _UNKNOWN_ZONE))
    chunks.append(struct.pack("<3d", *d.utm_reference.tolist()))
    chunks.append(struct.pack("<i", d.n_modules))
    mods = np.empty(d.n_modules, dtype=_DATX_MODULE)
    mods["id"] = d.module_id
    mods["du"] = d.module_du
    mods["floor"] = d.module_floor
    mods["pos"] = d.module_pos
    mods["q"] = d.module_quaternion
    mods["t0"] = d.module_t0
    mods["status"] = d.module_status
    mods["n_pmts"] = d.module_n_pmts
    pmts = np.empty(d.n_pmts, dtype=_DATX_PMT)
    pmts["id"] = d.pmt_id
    pmts["pos"] = d.pmt_pos
    pmts["dir"] = d.pmt_dir
    pmts["t0"] = d.pmt_t0
    pmts["status"] = d.pmt_status
    off = np.concatenate([[0], np.cumsum(d.module_n_pmts.astype(np.int64))])
    for i in range(d.n_modules):
        chunks.append(mods[i : i + 1].tobytes())
        chunks.append(pmts[off[i] : off[i + 1]].tobytes())
    data = b"".join(chunks)
    _atomic_write(Path(path), lambda fh: fh.write(data), "wb")
