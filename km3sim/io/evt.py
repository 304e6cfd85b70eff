"""KM3NeT evt ASCII generator files (gSeaGen, GENHEN, MUPAGE, Corant, KM3/KM3Sim), FORMATS.md §2.

The format is one record per line, ``tag: values``::

    start_run: <run>
    <header tag>: <values>      # any number of header lines
    end_event:                  # closes the header
    start_event: <id> <n>
    <event tag>: <values>       # track_in, neutrino, weights, ...
    end_event:

This module reads such files into a *neutral* structure shared with the ROOT readers of
:mod:`km3sim.io.offline`:

- :class:`GenHeader`: the header as ``tag -> [value strings]`` (a tag may repeat, e.g.
  ``physics``), the named fields of the known tags (:data:`HEADER_FIELDS`, after km3io
  ``_definitions/mc_header.py``) and the generating program (gSeaGen, MUPAGE, ...).
- :class:`GenEvent`: one event: its id and, per tag, the numeric lines as a 2-D float array
  (one row per line; unknown tags are kept), non-numeric lines (``target: O16 ...``) as text.

Particle codes: the type column (index 9) of ``track_in``, ``track_aux``, ``primarylepton``
and ``track_earthlepton`` is a GEANT3 code in every evt file (FORMATS.md §2) and is converted
to PDG (:func:`km3sim.io.pdg.geant3_to_pdg`). Corant files of version < 5 give
``track_primary``/``track_sea*``/``center_on_can`` types as CORSIKA codes (converted with
:func:`km3sim.io.pdg.corsika_to_pdg`); Corant 5 writes PDG codes there (seen in the two Corant
files of km3net-testdata: 4.2 writes 14 for the primary proton and 68/69 for nu_mu, 5.1.9
writes 2212 and +-14). The ``neutrino:`` line carries PDG codes. Pass
``convert_codes=False`` to keep the file's codes. Caveat: GENHEN and MUPAGE (v4) evt files
write type 5 (GEANT3 mu+) for every muon of ``track_in`` whatever its charge (GENHEN nu_mu CC
events have a ``track_earthlepton`` of type 6 and a ``track_in`` muon of type 5; MUPAGE v8
ROOT files give 13), so the muon charge read from these files carries no information.

Column layouts (``*_COLUMNS``): a track line is ``id x y z dx dy dz E t type [extra]``; the
gSeaGen/GENHEN ``neutrino:`` line is ``id x y z dx dy dz E t bjorken_x bjorken_y ichan pdg cc``
(cc: GENIE interaction type, 2 = weak CC, 3 = weak NC); ``track_bundle:`` (MUPAGE) is
``n_muons x y z dx dy dz E_bundle``; ``weights:`` is ``w1 w2 w3``.

Reading:

- :func:`read_evt` reads a whole file (one pass); :class:`EvtReader` streams it (one pass:
  the header first, events while iterating).
- :class:`EvtFile` indexes a file once (byte offset of each event, no number parsing), then
  reads any range of events by seeking: what a generator stage reading chunks needs.

Malformed input raises :class:`km3sim.errors.StageFileError` naming the file and the line:
a line that is not ``tag: values``, a missing ``start_run``/``end_event``, a truncated file,
fewer columns than a known tag needs, non-numeric values in a numeric tag.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np

from km3sim.errors import StageFileError
from km3sim.io.pdg import corsika_to_pdg, geant3_to_pdg

__all__ = [
    "TRACK_COLUMNS",
    "NEUTRINO_COLUMNS",
    "BUNDLE_COLUMNS",
    "HEADER_FIELDS",
    "GenHeader",
    "GenEvent",
    "EvtReader",
    "EvtFile",
    "read_evt",
    "detect_program",
    "parse_numbers",
]

#: Columns of track-like lines (``track_in``, ``track_aux``, ``track_primary``, ...).
TRACK_COLUMNS = ("id", "x", "y", "z", "dx", "dy", "dz", "E", "t", "type")
#: Columns of the gSeaGen / GENHEN ``neutrino:`` line.
NEUTRINO_COLUMNS = ("id", "x", "y", "z", "dx", "dy", "dz", "E", "t", "bx", "by", "ichan", "pdg", "cc")
#: Columns of the MUPAGE ``track_bundle:`` line.
BUNDLE_COLUMNS = ("n_muons", "x", "y", "z", "dx", "dy", "dz", "E")

#: Named fields of the known header tags (km3io ``_definitions/mc_header.py``, FORMATS.md §2).
HEADER_FIELDS: dict[str, tuple[str, ...]] = {
    "DAQ": ("livetime",),
    "seed": ("program", "level", "iseed"),
    "PM1_type_area": ("type", "area", "TTS"),
    "PDF": ("i1", "i2"),
    "model": ("interaction", "muon", "scattering", "numberOfEnergyBins"),
    "can": ("zmin", "zmax", "r"),
    "genvol": ("zmin", "zmax", "r", "volume", "numberOfEvents"),
    "merge": ("time", "gain"),
    "coord_origin": ("x", "y", "z"),
    "translate": ("x", "y", "z"),
    "genhencut": ("gDir", "Emin"),
    "k40": ("rate", "time"),
    "norma": ("primaryFlux", "numberOfPrimaries"),
    "livetime": ("numberOfSeconds", "errorOfSeconds"),
    "flux": ("type", "key", "file_1", "file_2"),
    "spectrum": ("alpha",),
    "fixedcan": ("xcenter", "ycenter", "zmin", "zmax", "radius"),
    "start_run": ("run_id",),
    "cut_primary": ("Emin", "Emax", "cosTmin", "cosTmax"),
    "cut_seamuon": ("Emin", "Emax", "cosTmin", "cosTmax"),
    "cut_in": ("Emin", "Emax", "cosTmin", "cosTmax"),
    "cut_nu": ("Emin", "Emax", "cosTmin", "cosTmax"),
    "generator": ("program", "version", "date", "time"),
    "physics": ("program", "version", "date", "time"),
    "simul": ("program", "version", "date", "time"),
    # not in km3io, seen in the files (FORMATS.md §2)
    "seabottom": ("depth",),
    "depth": ("depth",),
    "coord_site": ("latitude", "longitude"),
    "tgen": ("seconds",),
    "primary": ("id",),
    "ngen": ("numberOfEvents",),
}

#: Header tags whose fields are text (program names, versions, flux formulae).
_TEXT_HEADER_TAGS = {"seed", "flux", "generator", "physics", "simul"}

#: Event tags with a minimum number of numeric columns.
_MIN_COLUMNS = {
    "track_in": 10,
    "track_aux": 10,
    "primarylepton": 10,
    "track_earthlepton": 10,
    "track_primary": 10,
    "track_seamuon": 10,
    "track_sealepton": 10,
    "track_seaneutrino": 10,
    "center_on_can": 10,
    "track_bundle": 8,
    "neutrino": 10,
    "weights": 1,
    "w2list": 1,
    "w3list": 1,
    "hit": 4,
    "hit_raw": 4,
    "total_hits": 1,
    "corsika_evno": 1,
}
#: Event tags kept as text.
_TEXT_EVENT_TAGS = {"target"}
#: Track tags whose type column is a GEANT3 code.
_GEANT3_TAGS = ("track_in", "track_aux", "primarylepton", "track_earthlepton")
#: Corant tags whose type column is a CORSIKA code (Corant < 5) or PDG (Corant >= 5).
_CORANT_TAGS = ("track_primary", "track_seamuon", "track_sealepton", "track_seaneutrino", "center_on_can")
#: Tags allowed between events.
_BETWEEN_EVENTS = {"end_run", "end_file"}

#: Generating programs, most specific first (a gSeaGen file in CORSIKA mode also names CORSIKA).
_PROGRAMS = ("gSeaGen", "MUPAGE", "GENHEN", "Corant", "KM3BUU", "CORSIKA")

_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?"
_ONE_FLOAT = re.compile(_FLOAT)
_GLUED_FLOATS = re.compile(rf"(?:{_FLOAT})+")


def _split_glued(token: str) -> list[float] | None:
    """Numbers of a token that may be several Fortran numbers written without a blank
    (``0.100E+09-0.100E+01``, seen in GENHEN headers); None if it is not numeric."""
    try:
        return [float(token)]
    except ValueError:
        pass
    if _GLUED_FLOATS.fullmatch(token):
        return [float(p.replace("d", "e").replace("D", "E")) for p in _ONE_FLOAT.findall(token)]
    return None


def parse_numbers(tokens: list[str]) -> list[float] | None:
    """Floats of whitespace-separated tokens (glued Fortran numbers split); None if a token is
    not numeric."""
    try:
        return [float(t) for t in tokens]
    except ValueError:
        pass
    out: list[float] = []
    for t in tokens:
        vals = _split_glued(t)
        if vals is None:
            return None
        out.extend(vals)
    return out


def detect_program(raw: dict[str, list[str]]) -> tuple[str, str]:
    """The generating program and its version from the ``simul``/``generator``/``physics``
    header lines (first token = program, second = version; ``simul`` lines are looked at
    first because ``physics`` lines also list physics packages, e.g. ``gSeaGen PROPOSAL``).

    Returns ``("", "")`` if none of the known generators (gSeaGen, MUPAGE, GENHEN, Corant,
    KM3BUU, CORSIKA) is named.
    """
    found: dict[str, str] = {}
    for tag in ("simul", "generator", "physics"):
        for value in raw.get(tag, []):
            toks = value.split()
            if not toks:
                continue
            for prog in _PROGRAMS:
                if toks[0].lower() == prog.lower() and prog not in found:
                    found[prog] = toks[1] if len(toks) > 1 else ""
    for prog in _PROGRAMS:
        if prog in found:
            return prog, found[prog]
    return "", ""


def _major_version(version: str) -> int | None:
    m = re.search(r"(\d+)", version or "")
    return int(m.group(1)) if m else None


class GenHeader:
    """Header of a generator file, the same for evt and ROOT files.

    Attributes
    ----------
    path : str
        The file.
    format : str
        ``"evt"``, ``"offline"`` (aanet ROOT) or ``"gseagen_root"``.
    raw : dict of str to list of str
        Header tag -> the value strings of its lines, in file order (ROOT ``Head`` keys
        ``simul_1``, ``simul_2`` are folded into ``simul``).
    program, program_version : str
        Generating program (see :func:`detect_program`) and its version string.
    """

    def __init__(self, path: str, format: str, raw: dict[str, list[str]]):
        self.path = str(path)
        self.format = format
        self.raw = {k: list(v) for k, v in raw.items()}
        self.program, self.program_version = detect_program(self.raw)
        self._fields: dict[str, list[dict]] = {}

    def __contains__(self, tag: str) -> bool:
        return tag in self.raw

    def fields(self, tag: str) -> list[dict]:
        """The named fields of each line of a known tag (:data:`HEADER_FIELDS`).

        Numeric fields are floats (NaN where the file has no number, e.g. Fortran
        ``*********`` overflow or a missing trailing field); text fields are strings. Unknown
        tags give ``[{"values": <the value string>}, ...]``.
        """
        if tag not in self._fields:
            names = HEADER_FIELDS.get(tag)
            out = []
            for value in self.raw.get(tag, []):
                if names is None:
                    out.append({"values": value})
                    continue
                toks = value.split()
                if tag in _TEXT_HEADER_TAGS:
                    vals: list = toks[: len(names) - 1] + [" ".join(toks[len(names) - 1:])] if toks else []
                    d = {n: (vals[i] if i < len(vals) else "") for i, n in enumerate(names)}
                else:
                    nums: list[float] = []
                    for t in toks:
                        got = _split_glued(t)
                        nums.extend(got if got is not None else [math.nan])
                    d = {n: (nums[i] if i < len(nums) else math.nan) for i, n in enumerate(names)}
                out.append(d)
            self._fields[tag] = out
        return self._fields[tag]

    def get(self, tag: str, name: str, default=math.nan, index: int = 0):
        """Field ``name`` of line ``index`` of header tag ``tag``; ``default`` if absent or NaN."""
        rows = self.fields(tag)
        if index >= len(rows) or name not in rows[index]:
            return default
        v = rows[index][name]
        if isinstance(v, float) and math.isnan(v):
            return default
        return v

    def as_strings(self) -> dict[str, str | list[str]]:
        """JSON-able copy: tag -> value string (or list of strings for a repeated tag)."""
        return {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.raw.items()}

    def __repr__(self) -> str:
        return f"GenHeader({self.path!r}, format={self.format!r}, program={self.program!r}, tags={len(self.raw)})"


@dataclass
class GenEvent:
    """One generator event in the neutral layout shared by all readers.

    Attributes
    ----------
    index : int
        Position of the event in its file (0-based).
    event_id : int
        Event id given by the file (``start_event`` id, ROOT ``Evt.id`` / ``iEvt``).
    tags : dict of str to ndarray
        Numeric lines: tag -> float64 array of shape (n_lines, n_columns); lines of one tag
        with fewer columns than the longest are padded with NaN.
    text : dict of str to list of str
        Non-numeric lines (e.g. ``target``): tag -> value strings.
    line : int
        Line of ``start_event`` (evt files; 0 for ROOT files).
    path : str
        The file.
    """

    index: int
    event_id: int
    tags: dict[str, np.ndarray] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    line: int = 0
    path: str = ""

    def rows(self, tag: str) -> np.ndarray:
        """All lines of ``tag`` (shape (0, 0) if the event has none)."""
        return self.tags.get(tag, np.empty((0, 0)))

    def row(self, tag: str) -> np.ndarray:
        """The first line of ``tag`` as a 1-D array (empty if the event has none)."""
        r = self.tags.get(tag)
        return r[0] if r is not None and len(r) else np.empty(0)

    @property
    def weights(self) -> np.ndarray:
        """``weights:`` w1 w2 w3 (empty if absent)."""
        return self.row("weights")

    @property
    def w2list(self) -> np.ndarray:
        return self.row("w2list")

    @property
    def w3list(self) -> np.ndarray:
        return self.row("w3list")

    @property
    def tracks(self) -> np.ndarray:
        """The ``track_in`` lines (particles passed on to propagation), shape (n, >= 10)."""
        return self.tags.get("track_in", np.empty((0, len(TRACK_COLUMNS))))


# --------------------------------------------------------------------------------- parsing
def _err(path: str, line: int, msg: str) -> StageFileError:
    return StageFileError(f"{path}, line {line}: {msg}")


def _decode(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def _split_line(raw: bytes):
    """(tag, rest) of a non-blank line, tag None if it is not ``tag: values``."""
    s = raw.strip()
    tag, sep, rest = s.partition(b":")
    tag = tag.strip()
    if not sep or not tag or any(c in tag for c in (b" ", b"\t")):
        return None, s
    return tag, rest


class _Codes:
    """Which particle-code conversions apply to a file (from its header)."""

    def __init__(self, header: GenHeader, convert: bool):
        self.geant3 = convert
        major = _major_version(header.program_version)
        self.corsika = convert and header.program == "Corant" and major is not None and major < 5


def _build_event(path: str, index: int, event_id: int, line: int, lines: list[tuple[int, str, bytes]],
                 codes: _Codes) -> GenEvent:
    numeric: dict[str, list[list[float]]] = {}
    numeric_lines: dict[str, list[int]] = {}
    text: dict[str, list[str]] = {}
    for lineno, tag, rest in lines:
        if tag in _TEXT_EVENT_TAGS:
            text.setdefault(tag, []).append(_decode(rest).strip())
            continue
        toks = _decode(rest).split()
        vals = parse_numbers(toks)
        need = _MIN_COLUMNS.get(tag)
        if vals is None:
            if need is None:  # unknown tag with text: keep it as text
                text.setdefault(tag, []).append(_decode(rest).strip())
                continue
            bad = next(t for t in toks if _split_glued(t) is None)
            raise _err(path, lineno, f"'{tag}:' has a non-numeric value {bad!r}")
        if need is not None and len(vals) < need:
            raise _err(path, lineno, f"'{tag}:' needs at least {need} columns, got {len(vals)}")
        numeric.setdefault(tag, []).append(vals)
        numeric_lines.setdefault(tag, []).append(lineno)
    tags: dict[str, np.ndarray] = {}
    for tag, rows in numeric.items():
        width = max(len(r) for r in rows)
        arr = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            arr[i, : len(r)] = r
        convert = None
        if codes.geant3 and tag in _GEANT3_TAGS:
            convert = geant3_to_pdg
        elif codes.corsika and tag in _CORANT_TAGS:
            convert = corsika_to_pdg
        if convert is not None:
            col = arr[:, 9]
            bad = col != np.rint(col)
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise _err(path, numeric_lines[tag][i], f"'{tag}:' particle type {col[i]!r} is not an integer code")
            arr[:, 9] = convert(col)
        tags[tag] = arr
    return GenEvent(index=index, event_id=event_id, tags=tags, text=text, line=line, path=path)


def _event_id(path: str, lineno: int, rest: bytes) -> int:
    toks = rest.split()
    try:
        return int(toks[0])
    except (IndexError, ValueError):
        raise _err(path, lineno, f"'start_event:' needs an integer event id, got {_decode(rest).strip()!r}") from None


class _LineSource:
    """Non-blank lines of an open binary file as (line number, byte offset, tag, rest)."""

    def __init__(self, f, path: str, lineno: int = 0, offset: int = 0):
        self.f = f
        self.path = path
        self.lineno = lineno
        self.offset = offset
        self._pushed = None

    def push(self, item) -> None:
        self._pushed = item

    def __iter__(self):
        return self

    def __next__(self):
        if self._pushed is not None:
            item, self._pushed = self._pushed, None
            return item
        while True:
            raw = self.f.readline()
            if not raw:
                raise StopIteration
            self.lineno += 1
            start = self.offset
            self.offset += len(raw)
            if not raw.strip():
                continue
            tag, rest = _split_line(raw)
            if tag is None:
                raise _err(self.path, self.lineno, f"not a 'tag: values' line: {_decode(rest)[:60]!r}")
            return self.lineno, start, _decode(tag), rest


def _read_header(src: _LineSource, path: str) -> tuple[dict[str, list[str]], bool]:
    """Header lines up to ``end_event`` (consumed) or ``start_event`` (pushed back).

    Returns (raw header, whether the file has more content)."""
    first = next(src, None)
    if first is None:
        raise StageFileError(f"{path}: empty file (an evt file starts with 'start_run:')")
    lineno, _, tag, rest = first
    if tag != "start_run":
        raise _err(path, lineno, f"an evt file starts with 'start_run:', got '{tag}:'")
    raw: dict[str, list[str]] = {"start_run": [_decode(rest).strip()]}
    for item in src:
        lineno, _, tag, rest = item
        if tag == "end_event":
            return raw, True
        if tag == "start_event":
            src.push(item)
            return raw, True
        if tag == "start_run":
            raise _err(path, lineno, "second 'start_run:' in the header")
        raw.setdefault(tag, []).append(_decode(rest).strip())
    raise StageFileError(f"{path}: truncated file: the header (from line 1) is not closed by 'end_event:' "
                         f"(file ends at line {src.lineno})")


def _iter_events(src: _LineSource, path: str, codes: _Codes, first_index: int = 0, stop: int | None = None,
                 tags: Collection[str] | None = None) -> Iterator[GenEvent]:
    """Events from the current position of ``src``, checking the structure as it goes."""
    index = first_index
    cur_line = 0
    cur_id = 0
    cur: list | None = None
    for lineno, _, tag, rest in src:
        if cur is None:
            if tag == "start_event":
                if stop is not None and index >= stop:
                    return
                cur_id = _event_id(path, lineno, rest)
                cur_line = lineno
                cur = []
            elif tag in _BETWEEN_EVENTS:
                continue
            else:
                raise _err(path, lineno, f"'{tag}:' line outside an event (expected 'start_event:')")
        elif tag == "end_event":
            yield _build_event(path, index, cur_id, cur_line, cur, codes)
            index += 1
            cur = None
        elif tag == "start_event":
            raise _err(path, lineno, f"'start_event:' before the 'end_event:' of event {cur_id} (line {cur_line})")
        elif tag == "start_run":
            raise _err(path, lineno, f"'start_run:' inside event {cur_id} (line {cur_line})")
        elif tags is None or tag in tags:
            cur.append((lineno, tag, rest))
    if cur is not None:
        raise StageFileError(f"{path}: truncated file: event {cur_id} (line {cur_line}) has no 'end_event:' "
                             f"(file ends at line {src.lineno})")


class EvtReader:
    """Stream an evt file in one pass: the header on opening, events while iterating.

    Parameters
    ----------
    path : path-like
    convert_codes : bool
        Convert particle codes to PDG (see module doc).
    tags : collection of str, optional
        Only keep (and parse) these event tags; other lines are only checked for structure.

    Examples
    --------
    >>> with EvtReader(path) as reader:            # doctest: +SKIP
    ...     print(reader.header.get("genvol", "numberOfEvents"))
    ...     for event in reader:
    ...         print(event.event_id, len(event.tracks))
    """

    def __init__(self, path: str | os.PathLike, convert_codes: bool = True, tags: Collection[str] | None = None):
        self.path = str(path)
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise StageFileError(f"cannot read evt file {self.path}: {exc.strerror}") from exc
        self._src = _LineSource(self._f, self.path)
        try:
            raw, _ = _read_header(self._src, self.path)
        except BaseException:
            self._f.close()
            raise
        self.header = GenHeader(self.path, "evt", raw)
        self._codes = _Codes(self.header, convert_codes)
        self._tags = set(tags) if tags is not None else None
        self._started = False

    def __iter__(self) -> Iterator[GenEvent]:
        if self._started:
            raise RuntimeError("an EvtReader can be iterated once; open a new one")
        self._started = True
        try:
            yield from _iter_events(self._src, self.path, self._codes, tags=self._tags)
        finally:
            self._f.close()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "EvtReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_evt(path: str | os.PathLike, convert_codes: bool = True,
             tags: Collection[str] | None = None) -> tuple[GenHeader, list[GenEvent]]:
    """Read a whole evt file (one pass).

    Returns
    -------
    header : GenHeader
    events : list of GenEvent

    Raises
    ------
    StageFileError
        Unreadable or malformed file (message names the file and the line).
    """
    reader = EvtReader(path, convert_codes=convert_codes, tags=tags)
    events = list(reader)
    return reader.header, events


class EvtFile:
    """An indexed evt file: the header and the byte offset of every event, for random access.

    Opening reads the file once without parsing numbers (structure checked: every line is
    ``tag: values``, events open and close, integer event ids). :meth:`events` then parses
    only the requested range.

    Attributes
    ----------
    path : str
    header : GenHeader
    event_ids : ndarray of int64
        Ids of the events in file order.
    """

    format = "evt"

    def __init__(self, path: str | os.PathLike, convert_codes: bool = True, tags: Collection[str] | None = None):
        self.path = str(path)
        self._tags = set(tags) if tags is not None else None
        self._convert = convert_codes
        self._scan()
        self._codes = _Codes(self.header, convert_codes)

    def _scan(self) -> None:
        offsets: list[int] = []
        lines: list[int] = []
        ids: list[int] = []
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise StageFileError(f"cannot read evt file {self.path}: {exc.strerror}") from exc
        with f:
            src = _LineSource(f, self.path)
            raw, _ = _read_header(src, self.path)
            in_event = False
            cur_line = 0
            # the structural part of _iter_events, without building events
            for lineno, start, tag, rest in src:
                if not in_event:
                    if tag == "start_event":
                        ids.append(_event_id(self.path, lineno, rest))
                        offsets.append(start)
                        lines.append(lineno)
                        cur_line = lineno
                        in_event = True
                    elif tag not in _BETWEEN_EVENTS:
                        raise _err(self.path, lineno, f"'{tag}:' line outside an event (expected 'start_event:')")
                elif tag == "end_event":
                    in_event = False
                elif tag == "start_event":
                    raise _err(self.path, lineno, f"'start_event:' before the 'end_event:' of event {ids[-1]} (line {cur_line})")
                elif tag == "start_run":
                    raise _err(self.path, lineno, f"'start_run:' inside event {ids[-1]} (line {cur_line})")
            if in_event:
                raise StageFileError(f"{self.path}: truncated file: event {ids[-1]} (line {cur_line}) has no "
                                     f"'end_event:' (file ends at line {src.lineno})")
        self.header = GenHeader(self.path, "evt", raw)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._lines = np.asarray(lines, dtype=np.int64)
        self.event_ids = np.asarray(ids, dtype=np.int64)

    @property
    def n_events(self) -> int:
        return len(self._offsets)

    def __len__(self) -> int:
        return self.n_events

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[GenEvent]:
        """Parse events ``start`` to ``stop`` (file positions, 0-based, stop excluded)."""
        n = self.n_events
        stop = n if stop is None else min(int(stop), n)
        start = max(int(start), 0)
        if start >= stop:
            return
        with open(self.path, "rb") as f:
            f.seek(int(self._offsets[start]))
            src = _LineSource(f, self.path, lineno=int(self._lines[start]) - 1, offset=int(self._offsets[start]))
            yield from _iter_events(src, self.path, self._codes, first_index=start, stop=stop, tags=self._tags)

    def __iter__(self) -> Iterator[GenEvent]:
        return self.events()

    def __repr__(self) -> str:
        return f"EvtFile({self.path!r}, program={self.header.program!r}, n_events={self.n_events})"
