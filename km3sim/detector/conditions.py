"""Run-by-run conditions: per-PMT rates and veto flags over time, from real summaryslices.

KM3NeT DOMs report every 100 ms timeslice a summary frame per DOM: the singles rate of each of
the 31 PMTs (8-bit logarithmic code, 2 kHz to 2 MHz), the high-rate-veto (HRV) bit and the
FIFO-almost-full bit per channel (FORMATS.md §5). A :class:`RunConditions` holds these frames
for one run so that the detector-response stage can take, for every simulated event, the rates
and the dead or vetoed channels that the real run had at that time (PHYSICS.md §13).

The readers of the DAQ files (:mod:`km3sim.io.daq`) build these objects; this module holds the
container, its mapping onto a :class:`~km3sim.detector.geometry.Detector` and its HDF5 storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from km3sim.errors import StageFileError

__all__ = ["RunConditions", "FRAME_LENGTH_S", "N_CHANNELS", "CONDITIONS_FORMAT", "RING_COS_ZENITH", "pmt_rings"]

#: Length of a KM3NeT timeslice / summaryslice [s].
FRAME_LENGTH_S = 0.1
#: PMT channels per DOM.
N_CHANNELS = 31
#: Identifier and version of the HDF5 layout written by :meth:`RunConditions.save`.
CONDITIONS_FORMAT = "km3sim-run-conditions-1"
#: cos(zenith) of the PMT axes of the six PMT rings of a KM3NeT DOM, bottom -> top
#: (1 bottom PMT, then rings of 6; nominal layout of :func:`km3sim.detector.geometry.dom_pmt_layout`).
RING_COS_ZENITH = (-1.0, -0.85, -0.555, -0.295, 0.295, 0.555)


def pmt_rings(dom_ids, detector=None) -> np.ndarray:
    """Ring (0 = bottom PMT ... 5 = top ring) of every channel of the given DOMs, shape (n_doms, 31).

    With a ``detector`` the ring is the nominal ring nearest to the z component (cos zenith) of
    the PMT axis in the detector file, and -1 for DOMs the detector does not have. Without one
    the nominal KM3NeT channel layout (:func:`~km3sim.detector.geometry.dom_pmt_layout`, taken
    from the ARCA21 file) is used for every DOM.
    """
    from km3sim.detector.geometry import dom_pmt_layout

    rings = np.asarray(RING_COS_ZENITH)
    dom_ids = np.asarray(dom_ids, dtype=np.int64)
    if detector is None:
        dirs, _ = dom_pmt_layout()
        ring_of_channel = np.argmin(np.abs(dirs[:, 2][:, None] - rings[None, :]), axis=1)
        return np.broadcast_to(ring_of_channel, (len(dom_ids), N_CHANNELS)).copy()
    out = np.full((len(dom_ids), N_CHANNELS), -1, dtype=np.int64)
    sorter = np.argsort(dom_ids, kind="stable")
    pdom = np.asarray(detector.pmt_dom_id, dtype=np.int64)
    if len(dom_ids):
        pos = np.clip(np.searchsorted(dom_ids, pdom, sorter=sorter), 0, len(dom_ids) - 1)
        di = sorter[pos]
        ch = np.asarray(detector.pmt_channel, dtype=np.int64)
        ok = (dom_ids[di] == pdom) & (ch >= 0) & (ch < N_CHANNELS)
        cz = np.asarray(detector.pmt_dir)[:, 2]
        out[di[ok], ch[ok]] = np.argmin(np.abs(cz[ok][:, None] - rings[None, :]), axis=1)
    return out


@dataclass
class RunConditions:
    """Per-PMT rates and flags of one run, frame by frame.

    Attributes
    ----------
    det_id, run_id : int
        Detector and run number.
    utc_start_s : float
        UTC time of the start of the first frame [s since 1970].
    frame_start_s : ndarray, shape (n_frames,)
        Start of each frame relative to ``utc_start_s`` [s], increasing.
    dom_ids : ndarray of int, shape (n_doms,)
        DOMs that sent summary frames.
    rates_hz : ndarray of float32, shape (n_frames, n_doms, 31)
        Decoded singles rate per channel [Hz]; 0 where the code is 0 or the DOM sent no frame.
    hrv, fifo : ndarray of bool, shape (n_frames, n_doms, 31)
        High-rate veto and FIFO-almost-full flag per channel.
    present : ndarray of bool, shape (n_frames, n_doms)
        The DOM sent a summary frame in that timeslice.
    frame_length_s : float
        Length of one frame (0.1 s).
    source : str
        Where the conditions were read from (file names).
    """

    det_id: int
    run_id: int
    utc_start_s: float
    frame_start_s: np.ndarray
    dom_ids: np.ndarray
    rates_hz: np.ndarray
    hrv: np.ndarray
    fifo: np.ndarray
    present: np.ndarray | None = None
    frame_length_s: float = FRAME_LENGTH_S
    source: str = ""
    _dom_sorter: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.frame_start_s = np.asarray(self.frame_start_s, dtype=np.float64)
        self.dom_ids = np.asarray(self.dom_ids, dtype=np.int64)
        self.rates_hz = np.asarray(self.rates_hz, dtype=np.float32)
        self.hrv = np.asarray(self.hrv, dtype=bool)
        self.fifo = np.asarray(self.fifo, dtype=bool)
        nf, nd = len(self.frame_start_s), len(self.dom_ids)
        if self.present is None:
            self.present = np.ones((nf, nd), dtype=bool)
        self.present = np.asarray(self.present, dtype=bool)
        for name in ("rates_hz", "hrv", "fifo"):
            shape = getattr(self, name).shape
            if shape != (nf, nd, N_CHANNELS):
                raise ValueError(f"RunConditions.{name} has shape {shape}, expected {(nf, nd, N_CHANNELS)}")
        if self.present.shape != (nf, nd):
            raise ValueError(f"RunConditions.present has shape {self.present.shape}, expected {(nf, nd)}")
        if nf > 1 and np.any(np.diff(self.frame_start_s) <= 0):
            raise ValueError("RunConditions.frame_start_s must be strictly increasing")
        if len(np.unique(self.dom_ids)) != nd:
            raise ValueError("RunConditions.dom_ids has duplicates")
        self._dom_sorter = np.argsort(self.dom_ids, kind="stable")

    # ------------------------------------------------------------------------------- basics
    @property
    def n_frames(self) -> int:
        return len(self.frame_start_s)

    @property
    def n_doms(self) -> int:
        return len(self.dom_ids)

    @property
    def livetime_s(self) -> float:
        """Number of frames times the frame length [s]."""
        return self.n_frames * self.frame_length_s

    @property
    def duration_s(self) -> float:
        """From the start of the first to the end of the last frame [s]."""
        if not self.n_frames:
            return 0.0
        return float(self.frame_start_s[-1] - self.frame_start_s[0] + self.frame_length_s)

    def frame_index(self, time_s) -> np.ndarray:
        """Index of the frame covering ``time_s`` (s since ``utc_start_s``), clipped to the run.

        Times after the last frame wrap around (a simulated run may be longer than the real
        one, e.g. 10x its livetime): frame ``k`` is used for ``k mod n_frames``.
        """
        if not self.n_frames:
            raise ValueError("RunConditions has no frames")
        t = np.asarray(time_s, dtype=np.float64)
        idx = np.searchsorted(self.frame_start_s, t, side="right") - 1
        # wrap times beyond the run onto it
        beyond = t >= self.frame_start_s[-1] + self.frame_length_s
        if np.any(beyond):
            k = np.floor((t - self.frame_start_s[0]) / self.frame_length_s).astype(np.int64)
            idx = np.where(beyond, k % self.n_frames, idx)
        return np.clip(idx, 0, self.n_frames - 1)

    def dom_index(self, dom_ids) -> np.ndarray:
        """Index into ``dom_ids`` of each given DOM id, -1 where the DOM is not in the conditions."""
        d = np.asarray(dom_ids, dtype=np.int64)
        if not self.n_doms:
            return np.full(d.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.dom_ids, d, sorter=self._dom_sorter)
        pos = np.clip(pos, 0, self.n_doms - 1)
        idx = self._dom_sorter[pos]
        return np.where(self.dom_ids[idx] == d, idx, -1)

    # ------------------------------------------------------------------ onto a detector
    def _pmt_lookup(self, detector) -> tuple[np.ndarray, np.ndarray]:
        di = self.dom_index(detector.pmt_dom_id)
        ch = np.asarray(detector.pmt_channel, dtype=np.int64)
        return di, ch

    def pmt_rates(self, detector, time_s: float) -> np.ndarray:
        """Singles rate of every PMT of ``detector`` at ``time_s`` [Hz], in detector PMT order.

        PMTs of DOMs that are not in the conditions, or that sent no frame then, get NaN.
        """
        f = int(self.frame_index(time_s))
        di, ch = self._pmt_lookup(detector)
        ok = di >= 0
        out = np.full(len(di), np.nan)
        out[ok] = self.rates_hz[f, di[ok], ch[ok]]
        ok_present = np.zeros(len(di), dtype=bool)
        ok_present[ok] = self.present[f, di[ok]]
        out[~ok_present] = np.nan
        return out

    def pmt_active(self, detector, time_s: float) -> np.ndarray:
        """True for PMTs that recorded hits at ``time_s``: DOM present, rate > 0, no HRV, no FIFO flag."""
        f = int(self.frame_index(time_s))
        di, ch = self._pmt_lookup(detector)
        ok = di >= 0
        out = np.zeros(len(di), dtype=bool)
        d, c = di[ok], ch[ok]
        out[ok] = self.present[f, d] & (self.rates_hz[f, d, c] > 0) & ~self.hrv[f, d, c] & ~self.fifo[f, d, c]
        return out

    # -------------------------------------------------------------------------- summary
    def clean_mask(self) -> np.ndarray:
        """(n_frames, n_doms, 31) True for channels with a non-zero rate and neither HRV nor FIFO (§13 "clean")."""
        return self.present[:, :, None] & (self.rates_hz > 0) & ~self.hrv & ~self.fifo

    def summary(self) -> dict:
        """Run summary: frames, livetime, DOMs, median clean PMT rate [p16, p84], HRV/FIFO fractions."""
        clean = self.clean_mask()
        rates = self.rates_hz[clean]
        have = self.present[:, :, None] & np.ones(N_CHANNELS, dtype=bool)
        n_ch = int(have.sum())
        out = {
            "det_id": int(self.det_id),
            "run_id": int(self.run_id),
            "n_frames": self.n_frames,
            "livetime_s": self.livetime_s,
            "n_doms": self.n_doms,
            "utc_start_s": float(self.utc_start_s),
            "median_rate_hz": float(np.median(rates)) if rates.size else float("nan"),
            "rate_p16_hz": float(np.percentile(rates, 16)) if rates.size else float("nan"),
            "rate_p84_hz": float(np.percentile(rates, 84)) if rates.size else float("nan"),
            "hrv_fraction": float((self.hrv & have).sum() / n_ch) if n_ch else float("nan"),
            "fifo_fraction": float((self.fifo & have).sum() / n_ch) if n_ch else float("nan"),
        }
        return out

    def rates_by_ring(self, detector=None) -> list[dict]:
        """Clean-PMT rates per PMT ring, bottom -> top (PHYSICS.md §13: downward PMTs count more).

        Parameters
        ----------
        detector : Detector, optional
            PMT axes from this detector (DOMs not in it are left out); nominal DOM layout without.

        Returns
        -------
        list of dict
            Per ring: ``ring`` (0 bottom), ``cos_zenith`` (nominal), ``n`` (clean PMT-frames),
            ``median_rate_hz``, ``rate_p16_hz``, ``rate_p84_hz``, ``mean_rate_hz``.
        """
        rings = pmt_rings(self.dom_ids, detector)
        clean = self.clean_mask()
        out = []
        for r, cz in enumerate(RING_COS_ZENITH):
            v = self.rates_hz[clean & (rings == r)[None, :, :]].astype(np.float64)
            have = v.size > 0
            out.append({
                "ring": r,
                "cos_zenith": cz,
                "n": int(v.size),
                "median_rate_hz": float(np.median(v)) if have else float("nan"),
                "rate_p16_hz": float(np.percentile(v, 16)) if have else float("nan"),
                "rate_p84_hz": float(np.percentile(v, 84)) if have else float("nan"),
                "mean_rate_hz": float(v.mean()) if have else float("nan"),
            })
        return out

    def format_summary(self, detector=None) -> str:
        """Human-readable run summary (``km3sim conditions``): :meth:`summary` and :meth:`rates_by_ring`."""
        s = self.summary()
        lines = [
            f"detector {s['det_id']}, run {s['run_id']}   ({self.source})" if self.source else
            f"detector {s['det_id']}, run {s['run_id']}",
            f"  frames            : {s['n_frames']} ({self.frame_length_s:g} s each), livetime {s['livetime_s']:.1f} s, "
            f"span {self.duration_s:.1f} s",
            f"  DOMs              : {s['n_doms']}",
            f"  clean PMT rate    : median {s['median_rate_hz'] / 1e3:.2f} kHz "
            f"[p16 {s['rate_p16_hz'] / 1e3:.2f} - p84 {s['rate_p84_hz'] / 1e3:.2f}]",
        ]
        if detector is None:
            where = "nominal DOM channel layout"
        else:
            n_in = int(np.isin(self.dom_ids, np.asarray(detector.pmt_dom_id)).sum())
            where = f"PMT axes of detector {detector.det_id}, {n_in} of {self.n_doms} DOMs"
        lines.append(f"  rate by PMT ring  : bottom -> top ({where}; median kHz)")
        for r in self.rates_by_ring(detector):
            lines.append(f"      cos zenith {r['cos_zenith']:+.3f} : {r['median_rate_hz'] / 1e3:6.2f}   "
                         f"[{r['rate_p16_hz'] / 1e3:.2f} - {r['rate_p84_hz'] / 1e3:.2f}]  n={r['n']}")
        lines.append(f"  high-rate veto    : {100 * s['hrv_fraction']:.2f} % of PMT-frames")
        lines.append(f"  FIFO almost full  : {100 * s['fifo_fraction']:.2f} % of PMT-frames")
        return "\n".join(lines)

    @classmethod
    def from_daq(cls, paths) -> "RunConditions":
        """Read summaryslices of one run (ROOT, Jpp DAQ stream or text dump): :func:`km3sim.io.daq.read_summaryslices`."""
        from km3sim.io.daq import read_summaryslices

        return read_summaryslices(paths)

    # -------------------------------------------------------------------------- storage
    def save(self, path: str | os.PathLike) -> Path:
        """Write to HDF5 atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = CONDITIONS_FORMAT
                f.attrs["det_id"] = int(self.det_id)
                f.attrs["run_id"] = int(self.run_id)
                f.attrs["utc_start_s"] = float(self.utc_start_s)
                f.attrs["frame_length_s"] = float(self.frame_length_s)
                f.attrs["source"] = self.source
                f.create_dataset("frame_start_s", data=self.frame_start_s)
                f.create_dataset("dom_ids", data=self.dom_ids)
                kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
                f.create_dataset("rates_hz", data=self.rates_hz, **kw)
                f.create_dataset("hrv", data=self.hrv, **kw)
                f.create_dataset("fifo", data=self.fifo, **kw)
                f.create_dataset("present", data=self.present, **kw)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConditions":
        """Read a file written by :meth:`save`.

        Raises
        ------
        StageFileError
            If the file is missing, not HDF5, or not a run-conditions file.
        """
        try:
            with h5py.File(path, "r") as f:
                fmt = f.attrs.get("format", "")
                if isinstance(fmt, bytes):
                    fmt = fmt.decode()
                if fmt != CONDITIONS_FORMAT:
                    raise StageFileError(f"{path}: not a run-conditions file (format {fmt!r}, expected {CONDITIONS_FORMAT!r})")
                return cls(
                    det_id=int(f.attrs["det_id"]),
                    run_id=int(f.attrs["run_id"]),
                    utc_start_s=float(f.attrs["utc_start_s"]),
                    frame_start_s=f["frame_start_s"][()],
                    dom_ids=f["dom_ids"][()],
                    rates_hz=f["rates_hz"][()],
                    hrv=f["hrv"][()],
                    fifo=f["fifo"][()],
                    present=f["present"][()],
                    frame_length_s=float(f.attrs["frame_length_s"]),
                    source=str(f.attrs.get("source", "")),
                )
        except StageFileError:
            raise
        except (OSError, KeyError) as exc:
            raise StageFileError(f"cannot read run conditions from {path}: {exc}") from exc
