"""HDF5 stage files: one file per (stage, run, chunk), written atomically.

Layout: one group per table, one dataset per column (lzf-compressed, with ``unit`` and
``description`` attributes), plus root attributes with the provenance: km3sim version,
``DATA_MODEL_VERSION``, stage name, resolved config (JSON) and its hash, the chain hash that
decides whether the file can be reused, seeds, parent files with their checksums, and the
event range. A file is written under a temporary name in the same directory and renamed when
complete (POSIX rename is atomic), so a crash never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from km3sim import __version__
from km3sim.errors import StageFileError
from km3sim.schema import DATA_MODEL_VERSION, SCHEMAS
from km3sim.table import Table

__all__ = ["write_stage_file", "read_stage_file", "read_stage_dir", "read_attrs", "read_columns", "file_checksum",
           "adler32_checksum", "is_complete"]

_COMPRESSION = "lzf"


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise StageFileError(f"cannot read {path}: {exc}") from exc
    return h.hexdigest()


def adler32_checksum(path: str | os.PathLike) -> str:
    """Adler-32 of a file's bytes as 8 lower-case hex digits (``zlib.adler32``: the checksum
    Rucio and the grid storage elements use)."""
    value = 1
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                value = zlib.adler32(block, value)
    except OSError as exc:
        raise StageFileError(f"cannot read {path}: {exc}") from exc
    return f"{value & 0xFFFFFFFF:08x}"


def _attr_value(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


def write_stage_file(path: str | os.PathLike, tables: Mapping[str, Table], attrs: Mapping[str, object]) -> Path:
    """Write ``tables`` and provenance ``attrs`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Final file name; its directory is created if needed.
    tables : mapping of table name to Table
        Each must be a table of :mod:`km3sim.schema`.
    attrs : mapping
        Provenance attributes; dicts and lists are stored as JSON strings.

    Returns
    -------
    Path of the written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["km3sim_version"] = __version__
            f.attrs["data_model_version"] = DATA_MODEL_VERSION
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)
            f.attrs["tables"] = json.dumps(list(tables))
            for tname, table in tables.items():
                schema = SCHEMAS[tname]
                g = f.create_group(tname)
                g.attrs["description"] = schema.description
                g.attrs["n_rows"] = len(table)
                for col, spec in schema.columns.items():
                    data = np.ascontiguousarray(table[col])
                    kw = {"compression": _COMPRESSION, "shuffle": True} if len(data) > 0 else {}
                    ds = g.create_dataset(col, data=data, **kw)
                    ds.attrs["unit"] = spec.unit
                    ds.attrs["description"] = spec.description
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of a stage file (JSON values decoded)."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _decode(v) for k, v in f.attrs.items()}
    except FileNotFoundError as exc:
        raise StageFileError(f"stage file {path} does not exist") from exc
    except OSError as exc:
        raise StageFileError(f"stage file {path} is not a readable HDF5 file: {exc}") from exc


def read_stage_file(path: str | os.PathLike, tables: Iterable[str] | None = None) -> tuple[dict[str, Table], dict]:
    """Read tables (all by default) and the root attributes of a stage file.

    Raises
    ------
    StageFileError
        If the file is missing, not HDF5, lacks a requested table or a schema column.
    """
    path = Path(path)
    out: dict[str, Table] = {}
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode(v) for k, v in f.attrs.items()}
            names = list(tables) if tables is not None else [k for k in f.keys()]
            for tname in names:
                if tname not in f:
                    raise StageFileError(f"stage file {path} has no table {tname!r} (has {list(f.keys())})")
                schema = SCHEMAS.get(tname)
                if schema is None:
                    raise StageFileError(f"stage file {path}: unknown table {tname!r}")
                g = f[tname]
                cols = {}
                for col, spec in schema.columns.items():
                    if col not in g:
                        raise StageFileError(f"stage file {path}: table {tname!r} lacks column {col!r}")
                    arr = g[col][()]
                    if arr.dtype != np.dtype(spec.dtype):
                        raise StageFileError(
                            f"stage file {path}: {tname}/{col} has dtype {arr.dtype}, schema says {np.dtype(spec.dtype)}"
                        )
                    cols[col] = arr
                out[tname] = Table(cols, name=tname)
    except FileNotFoundError as exc:
        raise StageFileError(f"stage file {path} does not exist") from exc
    except OSError as exc:
        raise StageFileError(f"stage file {path} is not a readable HDF5 file: {exc}") from exc
    return out, attrs


def read_columns(path: str | os.PathLike, table: str, columns: Iterable[str]) -> dict[str, np.ndarray]:
    """Some columns of one table of a stage file (no schema check of the other columns).

    Raises
    ------
    StageFileError
        If the file is unreadable or lacks the table or a column.
    """
    out = {}
    try:
        with h5py.File(path, "r") as f:
            if table not in f:
                raise StageFileError(f"stage file {path} has no table {table!r}")
            g = f[table]
            for col in columns:
                if col not in g:
                    raise StageFileError(f"stage file {path}: table {table!r} lacks column {col!r}")
                out[col] = g[col][()]
    except FileNotFoundError as exc:
        raise StageFileError(f"stage file {path} does not exist") from exc
    except OSError as exc:
        raise StageFileError(f"stage file {path} is not a readable HDF5 file: {exc}") from exc
    return out


def is_complete(path: str | os.PathLike, chain_hash: str) -> bool:
    """True if ``path`` is a readable stage file written with ``chain_hash`` and the current data model."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        attrs = read_attrs(path)
    except StageFileError:
        return False
    return attrs.get("chain_hash") == chain_hash and attrs.get("data_model_version") == DATA_MODEL_VERSION


def read_stage_dir(directory: str | os.PathLike) -> dict[str, Table]:
    """All chunk files of one stage directory, concatenated in (run, chunk) order."""
    files = sorted(Path(directory).glob("run*_chunk*.h5"))
    if not files:
        raise StageFileError(f"no stage files in {directory}")
    parts: dict[str, list[Table]] = {}
    for f in files:
        tables, _ = read_stage_file(f)
        for name, t in tables.items():
            parts.setdefault(name, []).append(t)
    return {name: Table.concat(ts, name=name) for name, ts in parts.items()}
