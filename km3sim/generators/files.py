"""Generator stage ``generator_files``: events read from files of external generators.

Reads KM3NeT evt ASCII files (gSeaGen, GENHEN, MUPAGE, Corant, KM3/KM3Sim; FORMATS.md §2),
offline/aanet ROOT files (FORMATS.md §4) and gSeaGen native ROOT files (FORMATS.md §7)
through :mod:`km3sim.io.evt` and :mod:`km3sim.io.offline`, and turns them into the
``events`` and ``mc_tracks`` tables (km3sim/schema.py). The format of each file is detected
from its content (ROOT magic bytes, or an evt file's first line ``start_run:``).

Events of a run: the files are one sample, read in the order given; the n-th event of every
run is the n-th event over the files (so all runs of a production hold the same generated
events, and the downstream stages draw different random numbers for them).

What goes where (weights: PHYSICS.md §3.5; w2list/status meanings: km3io
``_definitions/w2list_gseagen.py``, ``trkmembers.py``):

- **Neutrino events** (gSeaGen, GENHEN; evt ``neutrino:`` line, ROOT status-100 track):
  ``pdgid``, vertex, direction and energy of the neutrino; ``is_cc`` = 1 if the GENIE
  interaction type (``cc`` column / ``w2list[10]``) is 2 (weak CC), 0 otherwise (3 weak NC,
  1 EM, 4 CC+NC interference, 5 nucleon decay; the km3io/Jpp convention ``cc == 2``; -1 if
  the file does not say);
  ``bjorken_y``; ``weight_w2`` = w2 of the ``weights`` line [GeV m2 sr]; ``n_gen`` = the
  number of generated neutrinos of the header (``genvol`` numberOfEvents, gSeaGen native
  ``NTot``, GENHEN ``ngen``), summed over the files of the sample.
- **MUPAGE bundles** (evt ``track_bundle:``, ROOT status 300 / pdg 81): ``pdgid`` 81,
  ``n_muons`` = bundle multiplicity, ``energy`` = bundle energy, position/direction of the
  bundle axis at the can; ``livetime_s`` = the header ``livetime`` (summed over the MUPAGE
  files) and ``weight_w3`` = 1/livetime (PHYSICS.md §1.4 step 6); ``n_gen`` = header ``norma``
  numberOfPrimaries (the number of events if 0).
- **Cosmic-ray primaries** (Corant ``track_primary``, gSeaGen in CORSIKA mode, ROOT status
  200): the primary's PDG code (nuclei 100ZZZAAA0), energy and direction; the position is the
  shower axis at the can (Corant ``center_on_can``) when the file has it, else the primary's
  own position. ``n_gen`` = ``norma`` numberOfPrimaries (Corant) or ``genvol``
  numberOfEvents (gSeaGen).
- ``weight_w3``: for gSeaGen files w3 of the file divided by ``n_gen``. gSeaGen writes
  w3 = w2 x flux [1/s] (checked on the test files: w3 = w2 x 1e-5 E^-2 for their header
  flux ``1E-5*pow(x,-2)``), whereas the schema's w3 is the rate one event stands for in its
  sample, w2 x flux / n_gen (PHYSICS.md §3.5). NaN for GENHEN and Corant files, whose w3 has
  another meaning.
- ``mc_tracks``: every final-state particle (evt ``track_in``, ROOT status 1 or the old
  convention described in :mod:`km3sim.io.offline`), PDG codes (GEANT3 codes of evt files
  converted), time = the file's t [ns, relative to the event], ``parent_id`` -1. Particles
  are kept as they are, including GENHEN's pseudo-particles of type 99 (pdgid 0) and
  zero-energy lines; only muons are propagated downstream.
- ``mc_time`` = 0 (the files' event times are not used); ``livetime_s`` = the run's livetime
  except for MUPAGE samples.

Coordinates: by default (``coordinates: can``) the file coordinates are taken as detector
coordinates (KM3NeT generator files are written in the frame of the detector's can, z = 0 on
the sea floor for gSeaGen/MUPAGE); ``coordinates: [dx, dy, dz]`` adds an offset [m] to all
positions (e.g. GENHEN files whose origin is the detector centre: give the header
``coord_origin``, sign not verified here).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Union

import numpy as np
from pydantic import Field, field_validator

from km3sim.errors import StageError, StageFileError
from km3sim.io.evt import GenEvent, GenHeader, EvtFile
from km3sim.io.pdg import PDG_MUON_BUNDLE
from km3sim.schema import empty_table, make_table
from km3sim.stage import Site, Stage, StageConfig, StageContext, register_stage

__all__ = ["GeneratorFiles", "detect_format", "open_generator_file", "FileSample"]

log = logging.getLogger(__name__)

#: evt tags the stage needs (others are skipped without parsing, e.g. hit lines).
_EVT_TAGS = ("neutrino", "track_in", "track_bundle", "track_primary", "center_on_can", "weights")

#: GENIE interaction type of weak charged-current interactions (gSeaGen ``cc`` / w2list[10]).
GENIE_WEAK_CC = 2


def detect_format(path: str | os.PathLike) -> str:
    """Format of a generator file from its content: ``"evt"``, ``"offline"`` or ``"gseagen_root"``.

    Raises
    ------
    StageFileError
        If the file cannot be read or is none of these.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise StageFileError(f"cannot read generator file {p}: {exc.strerror}") from exc
    if head.startswith(b"root"):
        from km3sim.io.offline import root_layout

        return root_layout(p)
    first = head.lstrip().split(b"\n", 1)[0].strip()
    if first.startswith(b"start_run") and first[len(b"start_run"):].lstrip().startswith(b":"):
        return "evt"
    shown = first[:40].decode("utf-8", errors="replace") if first else "<empty>"
    raise StageFileError(f"{p}: unknown generator file format: neither a KM3NeT evt file (first line "
                         f"'start_run:') nor a ROOT file; first line {shown!r}")


@lru_cache(maxsize=4096)
def _open_cached(path: str, size: int, mtime_ns: int):
    fmt = detect_format(path)
    if fmt == "evt":
        return EvtFile(path, tags=_EVT_TAGS)
    from km3sim.io.offline import GSeaGenRootFile, OfflineFile

    return OfflineFile(path) if fmt == "offline" else GSeaGenRootFile(path)


def open_generator_file(path: str | os.PathLike):
    """An indexed reader of a generator file (:class:`~km3sim.io.evt.EvtFile`,
    :class:`~km3sim.io.offline.OfflineFile` or :class:`~km3sim.io.offline.GSeaGenRootFile`),
    cached per process by path, size and modification time."""
    p = str(Path(path).resolve())
    try:
        st = os.stat(p)
    except OSError as exc:
        raise StageFileError(f"cannot read generator file {p}: {exc.strerror}") from exc
    return _open_cached(p, st.st_size, st.st_mtime_ns)


def _file_kind(header: GenHeader) -> str:
    """``neutrino``, ``muon`` (MUPAGE), ``cosmic`` (Corant, gSeaGen in CORSIKA mode) or ``unknown``."""
    prog = header.program
    if prog == "MUPAGE":
        return "muon"
    if prog in ("Corant", "CORSIKA"):
        return "cosmic"
    if prog in ("gSeaGen", "GENHEN", "KM3BUU"):
        firsts = {v.split()[0].lower() for t in ("physics", "simul") for v in header.raw.get(t, []) if v.split()}
        return "cosmic" if "corsika" in firsts else "neutrino"
    return "unknown"


@dataclass
class FileSample:
    """What one generator file contributes to the sample of a run."""

    path: str
    format: str
    program: str
    kind: str
    n_events: int
    n_gen: int
    livetime_s: float  # MUPAGE files; NaN otherwise


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _file_sample(path: str, reader) -> FileSample:
    h: GenHeader = reader.header
    kind = _file_kind(h)
    n_ev = int(reader.n_events)
    n_gen = math.nan
    if kind in ("neutrino", "cosmic"):
        for tag, name in (("genvol", "numberOfEvents"), ("ngen", "numberOfEvents"), ("norma", "numberOfPrimaries")):
            v = h.get(tag, name)
            if _positive(v):
                n_gen = v
                break
    elif kind == "muon":
        v = h.get("norma", "numberOfPrimaries")
        if _positive(v):
            n_gen = v
    if not _positive(n_gen):
        if kind != "muon":
            log.warning("%s: no number of generated events in the header (genvol/ngen/norma); n_gen = the %d "
                        "events of the file", path, n_ev)
        n_gen = n_ev
    livetime = math.nan
    if kind == "muon":
        v = h.get("livetime", "numberOfSeconds")
        if _positive(v):
            livetime = float(v)
        else:
            log.warning("%s: MUPAGE file without a positive 'livetime'; weight_w3 will be NaN", path)
    return FileSample(path, reader.format, h.program, kind, n_ev, int(round(n_gen)), livetime)


def _check_same_generation(samples: list[FileSample], readers: list) -> None:
    """Warn when files of one kind were generated with different settings (their n_gen are summed)."""
    by_kind: dict[str, list[tuple[str, tuple]]] = {}
    for s, r in zip(samples, readers):
        h = r.header
        key = tuple((tag, tuple(sorted(d.items())) if d else ()) for tag in ("cut_nu", "spectrum", "cut_primary")
                    for d in (h.fields(tag)[:1] or [{}]))
        by_kind.setdefault(s.kind, []).append((s.path, key))
    for kind, items in by_kind.items():
        if len({k for _, k in items}) > 1:
            log.warning("generator_files: the %s files have different generation settings (cut_nu/spectrum/"
                        "cut_primary); they are weighted as one sample with n_gen summed: %s",
                        kind, [p for p, _ in items])


def _event_columns(ev: GenEvent, program: str):
    """(pdgid, pos, dir, energy, n_muons, is_cc, bjorken_y, w2, w3, tracks) of one event."""
    tr = ev.tracks
    if tr.size == 0:
        tr = np.empty((0, 10))
    n_mu = int(np.count_nonzero(np.abs(tr[:, 9]) == 13)) if len(tr) else 0
    is_cc, by = -1, math.nan
    if "neutrino" in ev.tags and program != "Corant":
        nu = ev.row("neutrino")
        if len(nu) < 14:
            raise StageFileError(f"{ev.path}: event {ev.event_id} (line {ev.line}): 'neutrino:' line has "
                                 f"{len(nu)} columns, a gSeaGen/GENHEN neutrino line has 14")
        pdg, pos, dirs, energy = nu[12], nu[1:4], nu[4:7], nu[7]
        by = float(nu[10])
        is_cc = -1 if math.isnan(nu[13]) else int(nu[13] == GENIE_WEAK_CC)
    elif "track_bundle" in ev.tags:
        b = ev.row("track_bundle")
        pdg, pos, dirs, energy = PDG_MUON_BUNDLE, b[1:4], b[4:7], b[7]
        n_mu = int(b[0])
    elif "track_primary" in ev.tags:
        p = ev.row("track_primary")
        pdg, dirs, energy = p[9], p[4:7], p[7]
        c = ev.row("center_on_can")
        pos = c[1:4] if len(c) >= 4 else p[1:4]
    elif len(tr):  # no primary record: the first particle stands for it
        pdg, pos, dirs, energy = tr[0, 9], tr[0, 1:4], tr[0, 4:7], tr[0, 7]
    else:
        pdg, pos, dirs, energy = 0, np.full(3, np.nan), np.full(3, np.nan), 0.0
    w = ev.weights
    w2 = float(w[1]) if len(w) > 1 else math.nan
    w3 = float(w[2]) if len(w) > 2 else math.nan
    return int(pdg), pos, dirs, float(energy), n_mu, is_cc, by, w2, w3, tr


@register_stage
class GeneratorFiles(Stage):
    """Events and particles read from generator files (evt, offline ROOT, gSeaGen ROOT).

    Attributes
    ----------
    samples : list of FileSample
        One per file, in order.
    n_events : int
        Events over all files (= events of every run).
    """

    name = "generator_files"
    role = "generate"
    consumes = ()
    produces = ("events", "mc_tracks")

    class Config(StageConfig):
        """Configuration of :class:`GeneratorFiles`."""

        files: list[str] = Field(
            ..., min_length=1,
            description="generator files read in this order (evt ASCII, offline/aanet ROOT or gSeaGen ROOT; "
                        "format detected from the content); relative paths are relative to the working directory",
        )
        coordinates: Union[Literal["can"], tuple[float, float, float]] = Field(
            "can",
            description="'can': the file coordinates are detector coordinates; [dx, dy, dz]: offset [m] added "
                        "to every position",
        )

        @field_validator("files")
        @classmethod
        def _check_files(cls, files: list[str]) -> list[str]:
            out = []
            for i, f in enumerate(files):
                p = Path(f).expanduser()
                if not p.is_file():
                    raise ValueError(f"files[{i}]: file {f!r} does not exist")
                try:
                    detect_format(p)
                except StageFileError as exc:
                    raise ValueError(f"files[{i}]: {exc}") from None
                out.append(str(p.resolve()))
            return out

    def __init__(self, config: StageConfig | None = None, detector=None, site: Site | None = None):
        super().__init__(config, detector, site)
        self._readers = [open_generator_file(p) for p in self.config.files]
        self.samples = [_file_sample(p, r) for p, r in zip(self.config.files, self._readers)]
        _check_same_generation(self.samples, self._readers)
        counts = np.array([s.n_events for s in self.samples], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.n_events = int(self._starts[-1])
        # the run sample per kind: generated events and (MUPAGE) livetime
        self.n_gen_by_kind: dict[str, int] = {}
        self.livetime_by_kind: dict[str, float] = {}
        for s in self.samples:
            self.n_gen_by_kind[s.kind] = self.n_gen_by_kind.get(s.kind, 0) + s.n_gen
            if s.kind == "muon":
                self.livetime_by_kind["muon"] = self.livetime_by_kind.get("muon", 0.0) + s.livetime_s
        c = self.config.coordinates
        self._offset = np.zeros(3) if c == "can" else np.asarray(c, dtype=np.float64)

    # ------------------------------------------------------------------------ interface
    @classmethod
    def input_files(cls, config) -> list[str]:
        return list(config.files)

    @classmethod
    def plan_events(cls, config, detector, site, livetime_s, seed, run_id) -> int:
        """Number of events of a run: all events of the files."""
        return cls(config, detector, site).n_events

    #: Files whose full header goes into :meth:`header` (the others: path and counts only).
    MAX_HEADERS = 50

    def header(self) -> dict:
        """Generation information: per file its path, format, program, counts and (for the first
        :attr:`MAX_HEADERS` files) its header as strings; the run sample's n_gen and livetime."""
        return {
            "generator": "km3sim generator_files",
            "coordinates": self.config.coordinates if self.config.coordinates == "can" else list(self.config.coordinates),
            "n_events": self.n_events,
            "n_gen": dict(self.n_gen_by_kind),
            "livetime_s": dict(self.livetime_by_kind),
            "files": [
                {
                    "path": s.path,
                    "format": s.format,
                    "program": s.program,
                    "program_version": r.header.program_version,
                    "kind": s.kind,
                    "n_events": s.n_events,
                    "n_gen": s.n_gen,
                    "livetime_s": None if math.isnan(s.livetime_s) else s.livetime_s,
                    **({"header": r.header.as_strings()} if i < self.MAX_HEADERS else {}),
                }
                for i, (s, r) in enumerate(zip(self.samples, self._readers))
            ],
        }

    # --------------------------------------------------------------------------- reading
    def read_events(self, positions: np.ndarray):
        """The file events at ``positions`` (0-based over all files, sorted) with their sample.

        Yields (position, GenEvent, FileSample).
        """
        pos = np.asarray(positions, dtype=np.int64)
        for j, (reader, sample) in enumerate(zip(self._readers, self.samples)):
            a, b = self._starts[j], self._starts[j + 1]
            sel = pos[(pos >= a) & (pos < b)]
            if not len(sel):
                continue
            wanted = set((sel - a).tolist())
            for ev in reader.events(int(sel[0] - a), int(sel[-1] - a) + 1):
                if ev.index in wanted:
                    yield int(ev.index + a), ev, sample

    def process(self, tables, ctx: StageContext):
        ids = self.chunk_event_ids(ctx)
        n = len(ids)
        if n == 0:
            return {"events": empty_table("events"), "mc_tracks": empty_table("mc_tracks")}
        positions = ctx.event_positions(ids)
        if positions[0] < 0 or positions[-1] >= self.n_events:
            raise StageError(f"stage {self.name!r}: events {positions[0]}..{positions[-1]} of run {ctx.run_id} "
                             f"requested, the files hold {self.n_events}")
        ev_cols = {k: np.empty(n) for k in ("energy", "bjorken_y", "weight_w2", "weight_w3", "livetime_s")}
        pos3 = np.empty((n, 3))
        dir3 = np.empty((n, 3))
        pdg = np.empty(n, dtype=np.int32)
        n_mu = np.empty(n, dtype=np.int32)
        is_cc = np.empty(n, dtype=np.int32)
        n_gen = np.empty(n, dtype=np.int64)
        trk_parts: list[np.ndarray] = []
        trk_event: list[np.ndarray] = []
        k = 0
        for position, ev, sample in self.read_events(positions):
            if position != positions[k]:  # pragma: no cover - read_events yields in order
                raise StageError(f"stage {self.name!r}: internal error, event {position} != {positions[k]}")
            p, ps, ds, e, nm, cc, by, w2, w3, tr = _event_columns(ev, sample.program)
            pdg[k], pos3[k], dir3[k], n_mu[k], is_cc[k] = p, ps, ds, nm, cc
            ev_cols["energy"][k] = e
            ev_cols["bjorken_y"][k] = by
            ev_cols["weight_w2"][k] = w2
            ng = self.n_gen_by_kind[sample.kind]
            n_gen[k] = ng
            if sample.kind == "muon":
                lt = self.livetime_by_kind.get("muon", math.nan)
                ev_cols["livetime_s"][k] = lt if _positive(lt) else ctx.livetime_s
                ev_cols["weight_w3"][k] = 1.0 / lt if _positive(lt) else math.nan
            else:
                ev_cols["livetime_s"][k] = ctx.livetime_s
                ev_cols["weight_w3"][k] = w3 / ng if sample.program == "gSeaGen" and ng > 0 else math.nan
            if len(tr):
                trk_parts.append(tr[:, :10])
                trk_event.append(np.full(len(tr), ids[k], dtype=np.int64))
            k += 1
        if k != n:
            raise StageError(f"stage {self.name!r}: read {k} of the {n} events of the chunk")
        pos3 += self._offset
        events = make_table(
            "events",
            event_id=ids,
            run_id=np.full(n, ctx.run_id, dtype=np.int32),
            mc_time=np.zeros(n),
            pdgid=pdg,
            n_muons=n_mu,
            energy=ev_cols["energy"],
            pos_x=pos3[:, 0], pos_y=pos3[:, 1], pos_z=pos3[:, 2],
            dir_x=dir3[:, 0], dir_y=dir3[:, 1], dir_z=dir3[:, 2],
            is_cc=is_cc,
            bjorken_y=ev_cols["bjorken_y"],
            n_gen=n_gen,
            livetime_s=ev_cols["livetime_s"],
            weight_w2=ev_cols["weight_w2"],
            weight_w3=ev_cols["weight_w3"],
        )
        if trk_parts:
            t = np.concatenate(trk_parts)
            eid = np.concatenate(trk_event)
            counts = np.array([len(x) for x in trk_event])
            track_id = np.arange(len(t)) - np.repeat(np.cumsum(counts) - counts, counts)
            tracks = make_table(
                "mc_tracks",
                event_id=eid,
                track_id=track_id.astype(np.int32),
                parent_id=np.full(len(t), -1, dtype=np.int32),
                pdgid=t[:, 9].astype(np.int32),
                pos_x=t[:, 1] + self._offset[0], pos_y=t[:, 2] + self._offset[1], pos_z=t[:, 3] + self._offset[2],
                dir_x=t[:, 4], dir_y=t[:, 5], dir_z=t[:, 6],
                energy=t[:, 7],
                time=t[:, 8],
                length=np.zeros(len(t)),
                energy_lost_in_can=np.zeros(len(t)),
            )
        else:
            tracks = empty_table("mc_tracks")
        return {"events": events, "mc_tracks": tracks}
