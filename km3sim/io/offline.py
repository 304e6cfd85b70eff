"""Generator events from KM3NeT ROOT files, in the neutral layout of :mod:`km3sim.io.evt`.

Two layouts are read with uproot (an optional dependency, imported through
:func:`km3sim._optional.require`; km3io is not needed):

- **offline / aanet** files (FORMATS.md §4): tree ``E``, branch ``Evt`` (``mc_trks``, ``w``,
  ``w2list``, ``w3list``, ids) and the ``Head`` object (older files: ``Header``), a map of
  header tag -> value string. Class :class:`OfflineFile`.
- **gSeaGen native** files (FORMATS.md §7): trees ``Header`` (one row) and ``Events``.
  Class :class:`GSeaGenRootFile`.

Both give a :class:`~km3sim.io.evt.GenHeader` and :class:`~km3sim.io.evt.GenEvent` objects
whose tags follow the evt file of the same generator, so one code path can use either:

=====================  ==========================================================================
tag                    filled from (offline ``mc_trks`` status, km3net-dataformat ``trkmembers``)
=====================  ==========================================================================
``neutrino``           status 100 (primary neutrino): ``id x y z dx dy dz E t bx by ichan pdg cc``;
                       bx, by, ichan, cc from ``w2list`` (indices 7-10, km3io
                       ``w2list_gseagen``/``w2list_genhen``) or, in old files whose w2list has
                       7 entries, from the track's ``usr`` values ``bx by ichan cc``
``track_bundle``       status 300 / pdg 81 (MUPAGE bundle): ``n_muons x y z dx dy dz E``,
                       n_muons = number of final-state muons of the event
``track_primary``      status 200 (cosmic-ray primary): ``id x y z dx dy dz E t pdg``
``track_in``           status 1 (final state, passed to propagation):
                       ``id x y z dx dy dz E t pdg len status mother_id``
``track_aux``          any other status (generator internals, sea-level leptons, ...)
``weights``            ``w`` (w1 w2 w3 ...); ``w2list``, ``w3list`` as they are
``evt``                ``id mc_id run_id mc_run_id mc_t``
=====================  ==========================================================================

Old files without a usable track status (no ``status`` branch, or all 0: GENHEN/JSirene v5
files) follow the older convention: the first track is the primary (``neutrino`` if it is a
neutrino, ``track_primary`` otherwise; for Corant < 5 files its type is a CORSIKA code,
converted to PDG), the others are the final state, except copies of the primary (same type
and energy, as the second track of JSirene GENHEN files), which go to ``track_aux``.

Particle types of ROOT files are PDG codes already.

gSeaGen native ``Events`` map to ``neutrino`` (``iEvt Vx Vy Vz Dx Dy Dz E_nu T_nu Bx By
ScattId Pdg_nu InterId``), ``primarylepton``, ``track_in`` (the ``*_tr`` arrays: the
particles at the can), ``weights`` = (``Agen``, ``WGen``, ``WEvt``) and a ``w2list`` in the
gSeaGen order with NaN where the native file has no value. Its header gives the ``Header``
branches by name plus the evt tags ``genvol`` (numberOfEvents = ``NTot``), ``can``
(``Can1..3``), ``cut_nu``, ``spectrum`` (-``Alpha``), ``tgen``, ``depth``, ``flux``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from km3sim._optional import require
from km3sim.errors import StageFileError
from km3sim.io.evt import GenEvent, GenHeader
from km3sim.io.pdg import PDG_MUON_BUNDLE, corsika_to_pdg

__all__ = ["OfflineFile", "GSeaGenRootFile", "open_root_file", "read_offline", "root_layout"]

log = logging.getLogger(__name__)

#: km3net-dataformat ``trkmembers``: track status codes.
TRK_ST_FINALSTATE = 1
TRK_ST_PRIMARYNEUTRINO = 100
TRK_ST_PRIMARYCOSMIC = 200
TRK_ST_MUONBUNDLE = 300

#: km3io ``w2list_gseagen`` / ``w2list_genhen`` indices of bjorken x, y, channel and cc flag.
W2LIST_BX, W2LIST_BY, W2LIST_ICHAN, W2LIST_CC = 7, 8, 9, 10

_NEUTRINOS = (12, 14, 16)

_TRK_BRANCHES = ("id", "pos.x", "pos.y", "pos.z", "dir.x", "dir.y", "dir.z", "E", "t", "type", "len",
                 "status", "mother_id")


def _uproot():
    return require("uproot", "reading KM3NeT ROOT files")


def _open(path: str):
    uproot = _uproot()
    try:
        return uproot.open(path)
    except FileNotFoundError as exc:
        raise StageFileError(f"cannot read ROOT file {path}: file not found") from exc
    except Exception as exc:  # uproot raises many types for corrupt files
        raise StageFileError(f"cannot read ROOT file {path}: {type(exc).__name__}: {exc}") from exc


def _classnames(f, path: str) -> dict[str, str]:
    """Object name (without cycle) -> class name of an open ROOT file."""
    try:
        return {k.split(";")[0]: v for k, v in f.classnames().items()}
    except Exception as exc:
        raise StageFileError(f"cannot read ROOT file {path}: {type(exc).__name__}: {exc}") from exc


def _clean(s) -> str:
    """A printable str of a ROOT string value (bytes, str with undecodable bytes)."""
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    s = str(s).encode("utf-8", errors="replace").decode("utf-8")
    return "".join(c if c.isprintable() else " " for c in s).strip()


class _Tree:
    """A tree of a ROOT file, opened on first use and kept open (uproot parses the tree
    metadata on opening, which costs more than reading a chunk of a small file). At most
    :data:`_MAX_OPEN` trees stay open per process (least recently used closed first); reads
    of one tree are serialised by a lock. Picklable: the open file is not pickled."""

    def __init__(self, path: str, name: str):
        self.path, self.name = path, name
        self._file = None
        self._tree = None
        self._lock = threading.Lock()

    def arrays(self, names: list[str], start: int, stop: int):
        with self._lock:
            if self._tree is None:
                self._file = _open(self.path)
                try:
                    self._tree = self._file[self.name]
                except Exception as exc:
                    self._close_unlocked()
                    raise StageFileError(f"cannot read tree {self.name!r} of ROOT file {self.path}: "
                                         f"{type(exc).__name__}: {exc}") from exc
            try:
                out = self._tree.arrays(names, entry_start=start, entry_stop=stop, library="ak")
            except Exception as exc:
                raise StageFileError(f"{self.path}: cannot read events {start}-{stop} of tree {self.name!r}: "
                                     f"{type(exc).__name__}: {exc}") from exc
        _touch(self)
        return out

    def _close_unlocked(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # pragma: no cover - closing a broken file
                pass
        self._file = self._tree = None

    def close(self) -> None:
        with self._lock:
            self._close_unlocked()

    def __getstate__(self):
        return {"path": self.path, "name": self.name}

    def __setstate__(self, state):
        self.__init__(state["path"], state["name"])


#: Open trees per process, least recently used first.
_MAX_OPEN = 16
_OPEN: OrderedDict[int, _Tree] = OrderedDict()
_OPEN_LOCK = threading.Lock()


def _touch(tree: _Tree) -> None:
    with _OPEN_LOCK:
        _OPEN[id(tree)] = tree
        _OPEN.move_to_end(id(tree))
        evict = []
        while len(_OPEN) > _MAX_OPEN:
            evict.append(_OPEN.popitem(last=False)[1])
    for t in evict:  # outside the registry lock, one tree lock at a time
        t.close()


def root_layout(path: str | os.PathLike) -> str:
    """``"offline"`` (tree ``E``), ``"gseagen_root"`` (trees ``Header`` + ``Events``).

    Raises
    ------
    StageFileError
        If the file cannot be opened or has neither layout.
    """
    path = str(path)
    with _open(path) as f:
        names = _classnames(f, path)
    if names.get("E") == "TTree":
        return "offline"
    if names.get("Events") == "TTree" and names.get("Header") == "TTree":
        return "gseagen_root"
    raise StageFileError(f"{path}: not a KM3NeT generator ROOT file: no tree 'E' (offline format) and no "
                         f"trees 'Header'+'Events' (gSeaGen); it has {sorted(names)[:10]}")


def _fold_head(mapping: dict[str, str]) -> dict[str, list[str]]:
    """Head map -> tag: [values]; ``simul_1``, ``simul_2`` join ``simul`` (Jpp numbering)."""
    raw: dict[str, list[tuple[int, str]]] = {}
    for key, value in mapping.items():
        key = _clean(key)
        m = re.fullmatch(r"(.+)_(\d+)", key)
        if m and m.group(1) in mapping:
            raw.setdefault(m.group(1), []).append((int(m.group(2)), _clean(value)))
        else:
            raw.setdefault(key, []).append((0, _clean(value)))
    return {k: [v for _, v in sorted(vals, key=lambda kv: kv[0])] for k, vals in raw.items()}


def _read_head(f, path: str) -> dict[str, list[str]]:
    names = {k.split(";")[0] for k in f.keys()}
    for key in ("Head", "Header"):
        if key not in names:
            continue
        try:
            obj = f[key]
            members = obj.all_members
        except Exception as exc:  # uproot cannot stream every Head version (empty old headers)
            log.warning("%s: cannot read the %s object (%s); using an empty header", path, key, type(exc).__name__)
            return {}
        for name, value in members.items():
            if name.startswith("map<"):
                return _fold_head(dict(value))
    if "MultiHead" in names:
        log.warning("%s: only a MultiHead object (merged file), which is not readable here; empty header", path)
    return {}


def _ak():
    return require("awkward", "reading KM3NeT ROOT files")


class OfflineFile:
    """A KM3NeT offline (aanet) ROOT file read as generator events.

    Parameters
    ----------
    path : path-like
    convert_codes : bool
        For old-convention Corant files, convert the primary's CORSIKA code to PDG.

    Attributes
    ----------
    header : GenHeader
    n_events : int

    Raises
    ------
    StageFileError
        Unreadable file, no tree ``E``, or events without any MC track (real data).
    """

    format = "offline"

    def __init__(self, path: str | os.PathLike, convert_codes: bool = True):
        self.path = str(path)
        self._convert = convert_codes
        with _open(self.path) as f:
            names = _classnames(f, self.path)
            if names.get("E") != "TTree":
                raise StageFileError(f"{self.path}: no tree 'E': not an offline (aanet) file")
            tree = f["E"]
            self.n_events = int(tree.num_entries)
            self._branches = {k.split("/")[-1] for k in tree.keys(recursive=True)}
            raw = _read_head(f, self.path)
            if self.n_events and "mc_trks.id" not in self._branches:
                raise StageFileError(f"{self.path}: tree 'E' has no mc_trks branch: not a Monte Carlo file")
            if self.n_events:
                n_trk = tree["mc_trks.id"].array(library="np", entry_stop=min(self.n_events, 1000))
                if sum(len(x) for x in n_trk) == 0:
                    raise StageFileError(f"{self.path}: the events have no MC tracks (mc_trks empty): "
                                         f"real data or a file without generator information")
        self.header = GenHeader(self.path, "offline", raw)
        self._tree = _Tree(self.path, "E")
        major = re.search(r"(\d+)", self.header.program_version or "")
        self._corant_corsika = (convert_codes and self.header.program == "Corant"
                                and major is not None and int(major.group(1)) < 5)

    def __len__(self) -> int:
        return self.n_events

    def _arrays(self, start: int, stop: int) -> dict[str, np.ndarray]:
        ak = _ak()
        have = self._branches
        names = [n for n in ("id", "mc_id", "run_id", "mc_run_id", "mc_t", "w", "w2list", "w3list") if n in have]
        names += [f"mc_trks.{b}" for b in _TRK_BRANCHES if f"mc_trks.{b}" in have]
        arrs = self._tree.arrays(names, start, stop)
        out: dict = {n: arrs[n] for n in names}
        status = out.get("mc_trks.status")
        self._old_style = status is None or not bool(ak.any(ak.flatten(status) != 0))
        if self._old_style and "mc_trks.usr" in have:
            try:
                u = self._tree.arrays(["mc_trks.usr", "mc_trks.usr_names"], start, stop)
                out["mc_trks.usr"], out["mc_trks.usr_names"] = u["mc_trks.usr"], u["mc_trks.usr_names"]
            except StageFileError as exc:  # usr is auxiliary: warn, do not fail
                log.warning("%s: cannot read mc_trks.usr (%s)", self.path, exc)
        return out

    def events(self, start: int = 0, stop: int | None = None, batch: int = 10_000) -> Iterator[GenEvent]:
        """Events ``start`` to ``stop`` (entries of tree ``E``, 0-based, stop excluded)."""
        stop = self.n_events if stop is None else min(int(stop), self.n_events)
        start = max(int(start), 0)
        for a in range(start, stop, batch):
            b = min(a + batch, stop)
            yield from self._convert_batch(self._arrays(a, b), a)

    def __iter__(self) -> Iterator[GenEvent]:
        return self.events()

    def _convert_batch(self, arrs: dict, first: int) -> Iterator[GenEvent]:
        ak = _ak()
        n = len(arrs["mc_trks.id"])
        trk = {}
        for b in _TRK_BRANCHES:
            key = f"mc_trks.{b}"
            if key in arrs:
                trk[b] = arrs[key]
        counts = ak.to_numpy(ak.num(trk["id"]))
        flat = {b: ak.to_numpy(ak.flatten(v)).astype(np.float64) for b, v in trk.items()}
        total = int(counts.sum())
        for b in ("status", "mother_id", "len", "t"):
            if b not in flat:
                flat[b] = np.full(total, 0.0 if b != "mother_id" else -1.0)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        scalars = {k: ak.to_numpy(arrs[k]) for k in ("id", "mc_id", "run_id", "mc_run_id", "mc_t") if k in arrs}
        lists = {}  # name -> (flat values, bounds): slicing numpy per event, not awkward
        for k in ("w", "w2list", "w3list"):
            if k in arrs:
                c = ak.to_numpy(ak.num(arrs[k]))
                lists[k] = (ak.to_numpy(ak.flatten(arrs[k])).astype(np.float64), np.concatenate([[0], np.cumsum(c)]))
        usr = arrs.get("mc_trks.usr")
        usr_names = arrs.get("mc_trks.usr_names")
        cols = np.column_stack([flat[b] for b in _TRK_BRANCHES])  # id x y z dx dy dz E t type len status mother
        for i in range(n):
            rows = cols[bounds[i]: bounds[i + 1]]
            ev_id = int(scalars["id"][i]) if "id" in scalars else first + i
            tags: dict[str, np.ndarray] = {}
            w2 = np.empty(0)
            for key, tag in (("w", "weights"), ("w2list", "w2list"), ("w3list", "w3list")):
                if key in lists:
                    values, lb = lists[key]
                    v = values[lb[i]: lb[i + 1]]
                    if len(v):
                        tags[tag] = v[None, :].copy()
                    if key == "w2list":
                        w2 = v
            tags["evt"] = np.array([[ev_id] + [float(scalars[k][i]) if k in scalars else math.nan
                                               for k in ("mc_id", "run_id", "mc_run_id", "mc_t")]])
            if len(rows):
                if self._old_style:
                    u = (list(usr[i][0]), list(usr_names[i][0])) if usr is not None and len(usr[i]) else ([], [])
                    self._old_tracks(rows, w2, u, tags)
                else:
                    self._new_tracks(rows, w2, tags)
            yield GenEvent(index=first + i, event_id=ev_id, tags=tags, path=self.path)

    @staticmethod
    def _interaction(w2: np.ndarray, usr: tuple[list, list]) -> list[float]:
        """bx, by, ichan, cc of the neutrino interaction."""
        if len(w2) > W2LIST_CC:
            return [float(w2[W2LIST_BX]), float(w2[W2LIST_BY]), float(w2[W2LIST_ICHAN]), float(w2[W2LIST_CC])]
        values, names = usr
        d = {str(k): float(v) for k, v in zip(names, values)}
        return [d.get(k, math.nan) for k in ("bx", "by", "ichan", "cc")]

    @staticmethod
    def _neutrino_row(r: np.ndarray, inter: list[float]) -> np.ndarray:
        # id x y z dx dy dz E t | bx by ichan | pdg | cc
        return np.concatenate([r[:9], inter[:3], [r[9]], [inter[3]]])

    def _new_tracks(self, rows: np.ndarray, w2: np.ndarray, tags: dict) -> None:
        status = rows[:, 11]
        pdg = rows[:, 9]
        final = status == TRK_ST_FINALSTATE
        nu = status == TRK_ST_PRIMARYNEUTRINO
        bundle = (status == TRK_ST_MUONBUNDLE) | (pdg == PDG_MUON_BUNDLE)
        cosmic = status == TRK_ST_PRIMARYCOSMIC
        if nu.any():
            inter = self._interaction(w2, ([], []))
            tags["neutrino"] = np.vstack([self._neutrino_row(r, inter) for r in rows[nu]])
        if bundle.any():
            n_mu = float(np.count_nonzero(final & (np.abs(pdg) == 13)))
            b = rows[bundle]
            tags["track_bundle"] = np.column_stack([np.full(len(b), n_mu), b[:, 1:8]])
        if cosmic.any():
            tags["track_primary"] = rows[cosmic][:, :10].copy()
        if final.any():
            tags["track_in"] = rows[final].copy()
        aux = ~(final | nu | bundle | cosmic)
        if aux.any():
            tags["track_aux"] = rows[aux][:, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]].copy()

    def _old_tracks(self, rows: np.ndarray, w2: np.ndarray, usr: tuple[list, list], tags: dict) -> None:
        first = rows[0].copy()
        rest = rows[1:]
        is_copy = (rest[:, 9] == first[9]) & (rest[:, 7] == first[7])
        if self.header.program == "Corant":
            if self._corant_corsika:
                first[9] = corsika_to_pdg(first[9])
            tags["track_primary"] = first[None, :10]
        elif int(abs(first[9])) in _NEUTRINOS:
            tags["neutrino"] = self._neutrino_row(first, self._interaction(w2, usr))[None, :]
        else:
            tags["track_primary"] = first[None, :10]
        if (~is_copy).any():
            tags["track_in"] = rest[~is_copy].copy()
        if is_copy.any():
            tags["track_aux"] = rest[is_copy][:, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]].copy()

    def __repr__(self) -> str:
        return f"OfflineFile({self.path!r}, program={self.header.program!r}, n_events={self.n_events})"


# ------------------------------------------------------------------------ gSeaGen native
def _header_value_str(v) -> str | None:
    if isinstance(v, (bytes, str)):
        return _clean(v)
    arr = np.asarray(v)
    if arr.dtype.kind in "iufb":
        return " ".join(f"{x:.10g}" if arr.dtype.kind == "f" else str(x) for x in arr.ravel())
    return None  # objects (TGraph range tables) are not header values


class GSeaGenRootFile:
    """A gSeaGen native ROOT file (trees ``Header`` and ``Events``) read as generator events.

    Attributes
    ----------
    header : GenHeader
    n_events : int
    """

    format = "gseagen_root"

    _EVENT_BRANCHES = ("iEvt", "PScale", "TargetA", "TargetZ", "InterId", "ScattId", "Bx", "By", "VerInCan",
                       "WaterXSec", "WaterIntLen", "PEarth", "ColumnDepth", "XSecMean", "Agen", "WGen", "WEvt",
                       "E_nu", "Pdg_nu", "Vx_nu", "Vy_nu", "Vz_nu", "Dx_nu", "Dy_nu", "Dz_nu", "T_nu",
                       "E_pl", "Pdg_pl", "Vx_pl", "Vy_pl", "Vz_pl", "Dx_pl", "Dy_pl", "Dz_pl", "T_pl",
                       "Id_tr", "Pdg_tr", "E_tr", "Vx_tr", "Vy_tr", "Vz_tr", "Dx_tr", "Dy_tr", "Dz_tr", "T_tr")

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        with _open(self.path) as f:
            names = _classnames(f, self.path)
            if names.get("Header") != "TTree" or names.get("Events") != "TTree":
                raise StageFileError(f"{self.path}: no trees 'Header' and 'Events': not a gSeaGen ROOT file")
            try:
                head = f["Header"].arrays(library="np", entry_stop=1)
            except Exception as exc:
                raise StageFileError(f"{self.path}: cannot read tree 'Header': {type(exc).__name__}: {exc}") from exc
            events = f["Events"]
            self.n_events = int(events.num_entries)
            missing = [b for b in self._EVENT_BRANCHES if b not in events.keys()]
            if missing:
                raise StageFileError(f"{self.path}: tree 'Events' lacks branches {missing[:6]}")
        raw: dict[str, list[str]] = {}
        values: dict[str, str] = {}
        for k, v in head.items():
            if len(v) == 0:
                continue
            s = _header_value_str(v[0])
            if s is not None:
                values[k] = s
                raw[k] = [s]
        num = {k: float(values[k].split()[0]) for k in ("NTot", "EvMin", "EvMax", "CtMin", "CtMax", "Alpha", "Can1",
                                                         "Can2", "Can3", "TGen", "SiteDepth") if values.get(k)}
        # the evt tags of the same information (FORMATS.md §7)
        if "NTot" in num:
            raw["genvol"] = [f"nan nan nan nan {num['NTot']:.10g}"]
        if {"Can1", "Can2", "Can3"} <= num.keys():
            raw["can"] = [f"{num['Can1']:.10g} {num['Can2']:.10g} {num['Can3']:.10g}"]
        if {"EvMin", "EvMax", "CtMin", "CtMax"} <= num.keys():
            raw["cut_nu"] = [f"{num['EvMin']:.10g} {num['EvMax']:.10g} {num['CtMin']:.10g} {num['CtMax']:.10g}"]
        if "Alpha" in num:
            raw["spectrum"] = [f"{-num['Alpha']:.10g}"]
        if "TGen" in num:
            raw["tgen"] = [f"{num['TGen']:.10g}"]
        if "SiteDepth" in num:
            raw["depth"] = [f"{num['SiteDepth']:.10g}"]
        fluxes = [values[k] for k in sorted(values) if re.fullmatch(r"Flux\d+", k)]
        if fluxes:
            raw["flux"] = fluxes
        raw["simul"] = [f"gSeaGen {values.get('gSeaGenVer', '')}".strip()]
        self.header = GenHeader(self.path, "gseagen_root", raw)
        self._tree = _Tree(self.path, "Events")

    def __len__(self) -> int:
        return self.n_events

    def events(self, start: int = 0, stop: int | None = None, batch: int = 10_000) -> Iterator[GenEvent]:
        """Events ``start`` to ``stop`` (entries of tree ``Events``, 0-based, stop excluded)."""
        ak = _ak()
        stop = self.n_events if stop is None else min(int(stop), self.n_events)
        start = max(int(start), 0)
        for a in range(start, stop, batch):
            b = min(a + batch, stop)
            arr = self._tree.arrays(list(self._EVENT_BRANCHES), a, b)
            sc = {k: ak.to_numpy(arr[k]).astype(np.float64) for k in self._EVENT_BRANCHES if not k.endswith("_tr")}
            counts = ak.to_numpy(ak.num(arr["Id_tr"]))
            bounds = np.concatenate([[0], np.cumsum(counts)])
            tr = np.column_stack([ak.to_numpy(ak.flatten(arr[k])).astype(np.float64)
                                  for k in ("Id_tr", "Vx_tr", "Vy_tr", "Vz_tr", "Dx_tr", "Dy_tr", "Dz_tr", "E_tr",
                                            "T_tr", "Pdg_tr")]) if bounds[-1] else np.empty((0, 10))
            nan = math.nan
            for i in range(b - a):
                g = {k: v[i] for k, v in sc.items()}
                tags = {
                    "neutrino": np.array([[g["iEvt"], g["Vx_nu"], g["Vy_nu"], g["Vz_nu"], g["Dx_nu"], g["Dy_nu"],
                                           g["Dz_nu"], g["E_nu"], g["T_nu"], g["Bx"], g["By"], g["ScattId"],
                                           g["Pdg_nu"], g["InterId"]]]),
                    "primarylepton": np.array([[g["iEvt"], g["Vx_pl"], g["Vy_pl"], g["Vz_pl"], g["Dx_pl"], g["Dy_pl"],
                                                g["Dz_pl"], g["E_pl"], g["T_pl"], g["Pdg_pl"]]]),
                    "weights": np.array([[g["Agen"], g["WGen"], g["WEvt"]]]),
                    # km3io w2list_gseagen order; PS, EG, DISTAMAX, XSEC, DXSEC not in the native file
                    "w2list": np.array([[nan, nan, g["XSecMean"], g["ColumnDepth"], g["PEarth"], g["WaterIntLen"],
                                         g["PScale"], g["Bx"], g["By"], g["ScattId"], g["InterId"], nan,
                                         g["WaterXSec"], nan, nan, g["TargetA"], g["TargetZ"], g["VerInCan"]]]),
                }
                rows = tr[bounds[i]: bounds[i + 1]]
                if len(rows):
                    tags["track_in"] = rows.copy()
                yield GenEvent(index=a + i, event_id=int(g["iEvt"]), tags=tags, path=self.path)

    def __iter__(self) -> Iterator[GenEvent]:
        return self.events()

    def __repr__(self) -> str:
        return f"GSeaGenRootFile({self.path!r}, n_events={self.n_events})"


def open_root_file(path: str | os.PathLike, convert_codes: bool = True) -> OfflineFile | GSeaGenRootFile:
    """Open a generator ROOT file of either layout (see :func:`root_layout`)."""
    layout = root_layout(path)
    if layout == "offline":
        return OfflineFile(path, convert_codes=convert_codes)
    return GSeaGenRootFile(path)


def read_offline(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> tuple[GenHeader, list[GenEvent]]:
    """Header and events of a generator ROOT file (offline or gSeaGen native layout)."""
    f = open_root_file(path)
    return f.header, list(f.events(start, stop))
