"""Reader of Jpp PMT parameter files (``JPMTParametersMap`` text format).

Format (FORMATS.md §7, last item; e.g. km3net-testdata ``calib/PMTeff.txt`` and
``pmt/calibration_*.txt``)::

    # comment lines (Jpp provenance)
    QE=1                       global key = value lines
    mu=0.206
    %.QE=1                     defaults of the per-PMT parameters ("%." prefix)
    %.gain=1
    ...
    PMT= <dom_id> <channel> <QE> <gain> <gainSpread> <riseTime_ns> <TTS_ns> <threshold>

The column order of the ``PMT=`` lines is not written in the file; it is taken as the order
above (FORMATS.md §7, consistent with the defaults: columns 6-8 read 7.24 / -1.00 / 0.240 in
both stored files, the defaults of riseTime_ns / TTS_ns / threshold). A QE of 0 marks a PMT that
is switched off (ARCA21 ``PMTeff.txt``: 8 % of the PMTs, PHYSICS.md §13). A negative TTS means
"use the measured TTS distribution" in Jpp.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from km3sim.errors import StageFileError

__all__ = ["PMT_COLUMNS", "PmtParameterFile", "read_pmt_parameters"]

#: Per-PMT columns of a ``PMT=`` line after DOM id and channel (FORMATS.md §7, assumed order).
PMT_COLUMNS = ("QE", "gain", "gainSpread", "riseTime_ns", "TTS_ns", "threshold")


@dataclass
class PmtParameterFile:
    """Contents of a Jpp PMT parameter file.

    Attributes
    ----------
    path : str
        The file read.
    defaults : dict[str, float]
        The ``%.<name>=<value>`` lines (defaults of every PMT, e.g. ``PunderAmplified``,
        ``thresholdBand``, ``slope``, ``saturation``, ``slewing``).
    globals : dict[str, float]
        Other ``<name>=<value>`` lines (e.g. ``QE``, ``mu``).
    dom_id, channel : ndarray of int64
        DOM and channel of each ``PMT=`` line, in file order.
    values : dict[str, ndarray]
        Per-PMT columns (:data:`PMT_COLUMNS`) as float64 arrays, same order.
    """

    path: str
    defaults: dict[str, float]
    globals: dict[str, float]
    dom_id: np.ndarray
    channel: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_pmts(self) -> int:
        return int(self.dom_id.shape[0])

    def lookup(self, dom_ids, channels) -> np.ndarray:
        """Row of each (DOM, channel) in this file, -1 where the file has no line for it."""
        key_file = self.dom_id * 64 + self.channel
        key = np.asarray(dom_ids, dtype=np.int64) * 64 + np.asarray(channels, dtype=np.int64)
        if not len(key_file):
            return np.full(key.shape, -1, dtype=np.int64)
        sorter = np.argsort(key_file, kind="stable")
        pos = np.clip(np.searchsorted(key_file, key, sorter=sorter), 0, len(key_file) - 1)
        row = sorter[pos]
        return np.where(key_file[row] == key, row, -1).astype(np.int64)

    def summary(self) -> dict:
        """Median [p16, p84] relative efficiency (QE) of the PMTs switched on, fraction switched off."""
        qe = self.values["QE"]
        on = qe > 0
        out = {"n_pmts": self.n_pmts, "fraction_off": float(np.mean(~on)) if self.n_pmts else math.nan}
        if on.any():
            out["qe_median"] = float(np.median(qe[on]))
            out["qe_p16"], out["qe_p84"] = (float(v) for v in np.percentile(qe[on], [16, 84]))
        return out


def _number(text: str, path, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StageFileError(f"{path}, line {lineno}: {what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise StageFileError(f"{path}, line {lineno}: {what}: {text!r} is not finite")
    return value


def read_pmt_parameters(path: str | os.PathLike) -> PmtParameterFile:
    """Read a Jpp PMT parameter file.

    Parameters
    ----------
    path : str or path-like
        The text file.

    Returns
    -------
    PmtParameterFile

    Raises
    ------
    StageFileError
        If the file cannot be read, a line is malformed (wrong number of columns, a value that
        is not a number, a negative QE / gain / gain spread / threshold, a channel outside
        0..63), or a (DOM, channel) appears twice. The message names the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StageFileError(f"cannot read PMT parameter file {path}: {exc}") from exc
    defaults: dict[str, float] = {}
    globals_: dict[str, float] = {}
    doms: list[int] = []
    chans: list[int] = []
    cols: list[list[float]] = []
    first_line: dict[tuple[int, int], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("PMT="):
            parts = line[4:].split()
            if len(parts) != 2 + len(PMT_COLUMNS):
                raise StageFileError(
                    f"{path}, line {lineno}: a PMT= line needs {2 + len(PMT_COLUMNS)} values "
                    f"(dom_id channel {' '.join(PMT_COLUMNS)}), got {len(parts)}: {line!r}"
                )
            try:
                dom, ch = int(parts[0]), int(parts[1])
            except ValueError:
                raise StageFileError(f"{path}, line {lineno}: DOM id and channel must be integers: {line!r}") from None
            if not 0 <= ch < 64:
                raise StageFileError(f"{path}, line {lineno}: channel {ch} out of range 0..63")
            vals = [_number(v, path, lineno, name) for v, name in zip(parts[2:], PMT_COLUMNS)]
            for name, v in zip(PMT_COLUMNS, vals):
                if name in ("QE", "gain", "gainSpread", "threshold") and v < 0:
                    raise StageFileError(f"{path}, line {lineno}: {name} = {v} is negative")
            if (dom, ch) in first_line:
                raise StageFileError(
                    f"{path}, line {lineno}: DOM {dom} channel {ch} already given on line {first_line[dom, ch]}"
                )
            first_line[dom, ch] = lineno
            doms.append(dom)
            chans.append(ch)
            cols.append(vals)
            continue
        if "=" not in line:
            raise StageFileError(f"{path}, line {lineno}: expected '<name>=<value>' or 'PMT= ...', got {line!r}")
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("%."):
            defaults[key[2:]] = _number(value.strip(), path, lineno, key)
        elif key:
            globals_[key] = _number(value.strip(), path, lineno, key)
        else:
            raise StageFileError(f"{path}, line {lineno}: empty parameter name in {line!r}")
    arr = np.asarray(cols, dtype=np.float64).reshape(-1, len(PMT_COLUMNS))
    return PmtParameterFile(
        path=str(path),
        defaults=defaults,
        globals=globals_,
        dom_id=np.asarray(doms, dtype=np.int64),
        channel=np.asarray(chans, dtype=np.int64),
        values={name: arr[:, i].copy() for i, name in enumerate(PMT_COLUMNS)},
    )
