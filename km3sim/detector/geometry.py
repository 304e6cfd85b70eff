"""Detector geometry: detection units (DUs), modules (DOMs and base modules) and PMTs.

The :class:`Detector` holds the content of a KM3NeT detx/datx file as flat numpy arrays in file
order (see ``shared/FORMATS.md`` section 3). It is read by :func:`km3sim.io.detx.read_detector`
or built in code with :func:`build_block`, :func:`build_orca_block` and
:func:`build_arca_block`.

Coordinate convention (the same as in the real KM3NeT files): positions are in metres relative
to the UTM reference point of the header, z points up, and the z of the UTM reference is the sea
floor reference depth (e.g. -2440 m at the ORCA site). The z of a DOM is therefore its height
above that reference; in ORCA6 (det 49) the DOMs are 32-192 m above it, and the DU base modules
(floor 0) sit a few metres below z = 0. The builders put the sea floor exactly at z = 0.

Modules with at least one PMT are *optical modules* (DOMs); modules with zero PMTs are DU *base
modules* (floor 0 in v5 files). Most geometry helpers (``dom_*``, :meth:`Detector.center`,
:meth:`Detector.floor_spacing`, ...) consider optical modules only.

A :class:`Detector` is treated as immutable: helper arrays are computed on first use and cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Detector",
    "dom_pmt_layout",
    "build_block",
    "build_orca_block",
    "build_arca_block",
    "PMT_STATUS_BITS",
    "PMT_DISABLE",
    "MODULE_DISABLE",
    "DOM_PMT_RADIUS",
    "RING_COS_ZENITH",
    "VALID_TO_INFINITY",
]

#: Bit numbers of the PMT status word (Jpp ``JPMTStatus``). A PMT is usable unless bit
#: ``PMT_DISABLE`` is set; the other bits switch off individual DAQ features of a PMT.
PMT_STATUS_BITS = {
    "PMT_DISABLE": 0,
    "HIGH_RATE_VETO_DISABLE": 1,
    "FIFO_FULL_DISABLE": 2,
    "UDP_COUNTER_DISABLE": 3,
    "UDP_TRAILER_DISABLE": 4,
    "OUT_OF_SYNC": 5,
}
PMT_DISABLE = PMT_STATUS_BITS["PMT_DISABLE"]

#: Bit number of the module status word that switches off a whole module (Jpp
#: ``MODULE_DISABLE``; assumed to be bit 0 like for PMTs).
MODULE_DISABLE = 0

#: Distance of the photocathode centres from the DOM centre [m] (PHYSICS.md 7.1; 0.19998 m on
#: average in the ARCA21 file KM3NeT_00000133_20221025.detx).
DOM_PMT_RADIUS = 0.20

#: cos(zenith) of the PMT axis of the six rings of the 31-PMT DOM, bottom to top (PHYSICS.md 7.1).
RING_COS_ZENITH = (-1.0, -0.85, -0.555, -0.295, 0.295, 0.555)

#: Jpp's "valid until forever" end of the validity range [UNIX s].
VALID_TO_INFINITY = 9999999999.0

# Nominal (cos zenith, azimuth [deg]) of the PMT axis of each channel 0..30 of a DOM with an
# identity orientation. Derived from the real ARCA21 file KM3NeT_00000133_20221025.detx: 377 of
# its 378 DOMs follow exactly this channel -> direction pattern up to a rotation of the whole
# DOM about z (one DOM has its -0.85 ring permuted), and ORCA6 (det 49) follows the same pattern.
# The +0.555, -0.295 and -0.85 rings have their PMTs at azimuths 30 + 60 k degrees, the +0.295
# and -0.555 rings at 60 k degrees (adjacent rings staggered by 30 degrees).
_CHANNEL_LAYOUT = (
    (0.555, 270.0),  # 0
    (0.295, 180.0),  # 1
    (0.295, 240.0),  # 2
    (0.295, 300.0),  # 3
    (0.555, 330.0),  # 4
    (0.555, 210.0),  # 5
    (0.295, 0.0),  # 6
    (0.555, 150.0),  # 7
    (0.555, 30.0),  # 8
    (0.555, 90.0),  # 9
    (0.295, 60.0),  # 10
    (0.295, 120.0),  # 11
    (-0.295, 90.0),  # 12
    (-0.555, 60.0),  # 13
    (-0.85, 90.0),  # 14
    (-0.295, 30.0),  # 15
    (-0.295, 150.0),  # 16
    (-0.555, 120.0),  # 17
    (-0.85, 150.0),  # 18
    (-0.85, 30.0),  # 19
    (-0.555, 180.0),  # 20
    (-0.555, 0.0),  # 21
    (-1.0, 0.0),  # 22  (bottom PMT)
    (-0.295, 330.0),  # 23
    (-0.85, 270.0),  # 24
    (-0.85, 330.0),  # 25
    (-0.85, 210.0),  # 26
    (-0.295, 210.0),  # 27
    (-0.555, 240.0),  # 28
    (-0.555, 300.0),  # 29
    (-0.295, 270.0),  # 30
)


def dom_pmt_layout(radius: float = DOM_PMT_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Nominal PMT axes and photocathode positions of the 31-PMT KM3NeT DOM.

    Channel order follows the real ARCA21 file (``KM3NeT_00000133_20221025.detx``) for a DOM
    with identity orientation: channels 0-11 look up (rings cos zenith +0.555 and +0.295,
    mixed), 12-30 look down, channel 22 is the bottom PMT (cos zenith = -1).

    Parameters
    ----------
    radius : float
        Distance of the photocathode centre from the DOM centre along the PMT axis [m].

    Returns
    -------
    dirs : ndarray, shape (31, 3)
        Unit vectors of the PMT axes.
    rel_pos : ndarray, shape (31, 3)
        Photocathode centres relative to the DOM centre [m] (``radius * dirs``).
    """
    cz = np.array([c for c, _ in _CHANNEL_LAYOUT])
    phi = np.radians([a for _, a in _CHANNEL_LAYOUT])
    sz = np.sqrt(np.clip(1.0 - cz**2, 0.0, None))
    dirs = np.column_stack([sz * np.cos(phi), sz * np.sin(phi), cz])
    # exact zeros instead of 1e-17 leftovers of cos(90 deg)
    dirs[np.abs(dirs) < 1e-15] = 0.0
    return dirs, radius * dirs


def _quaternion_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (n, 3) by unit quaternions ``q`` (n, 4) = (w, x, y, z)."""
    w = q[:, :1]
    u = q[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


@dataclass(eq=False)
class Detector:
    """A KM3NeT-like detector: modules and PMTs as flat arrays in file order.

    Attributes
    ----------
    det_id : int
        Detector identifier (negative for design files).
    version : int
        detx/datx format version read (1..5); builders use 5.
    valid_from, valid_to : float
        Validity range [UNIX s].
    utm_zone : str
        UTM zone, e.g. ``"32N"`` (ORCA) or ``"33N"`` (ARCA); ``""`` if unknown (v1 files).
    utm_reference : ndarray, shape (3,)
        UTM easting, northing and z of the coordinate origin [m]; z is the sea-floor reference.
    module_id, module_du, module_floor : ndarray
        Module identifier (int64), DU (int32) and floor (int32) of each module, including the
        DU base modules (floor 0, no PMTs).
    module_pos : ndarray, shape (n_modules, 3)
        Module centre [m]. For v1-v3 files: the mean of the module's PMT positions.
    module_quaternion : ndarray, shape (n_modules, 4)
        Orientation (w, x, y, z); (1, 0, 0, 0) where the file has none.
    module_t0 : ndarray
        Module time offset [ns].
    module_status : ndarray
        Module status word (int64).
    module_n_pmts : ndarray
        Number of PMTs of each module (int32).
    pmt_id : ndarray
        PMT identifier (int64), global serials in real files.
    pmt_dom_id : ndarray
        Module id of each PMT (int64).
    pmt_channel : ndarray
        Channel 0..30: position of the PMT within its module block (int32).
    pmt_du, pmt_floor : ndarray
        DU and floor of each PMT (int32).
    pmt_pos : ndarray, shape (n_pmts, 3)
        Photocathode centre [m].
    pmt_dir : ndarray, shape (n_pmts, 3)
        Unit vector of the PMT axis.
    pmt_t0 : ndarray
        PMT time offset [ns].
    pmt_status : ndarray
        PMT status word (int64), see :data:`PMT_STATUS_BITS`.
    comments : list of str
        Leading ``#`` comment lines of the file, without the ``"# "`` prefix.
    """

    det_id: int
    version: int
    valid_from: float
    valid_to: float
    utm_zone: str
    utm_reference: np.ndarray
    module_id: np.ndarray
    module_du: np.ndarray
    module_floor: np.ndarray
    module_pos: np.ndarray
    module_quaternion: np.ndarray
    module_t0: np.ndarray
    module_status: np.ndarray
    module_n_pmts: np.ndarray
    pmt_id: np.ndarray
    pmt_dom_id: np.ndarray
    pmt_channel: np.ndarray
    pmt_du: np.ndarray
    pmt_floor: np.ndarray
    pmt_pos: np.ndarray
    pmt_dir: np.ndarray
    pmt_t0: np.ndarray
    pmt_status: np.ndarray
    comments: list[str] = field(default_factory=list)

    # names and dtypes of the array fields, in a fixed order (used for hashing/serialisation)
    _MODULE_ARRAYS = (
        ("module_id", np.int64, 1),
        ("module_du", np.int32, 1),
        ("module_floor", np.int32, 1),
        ("module_pos", np.float64, 3),
        ("module_quaternion", np.float64, 4),
        ("module_t0", np.float64, 1),
        ("module_status", np.int64, 1),
        ("module_n_pmts", np.int32, 1),
    )
    _PMT_ARRAYS = (
        ("pmt_id", np.int64, 1),
        ("pmt_dom_id", np.int64, 1),
        ("pmt_channel", np.int32, 1),
        ("pmt_du", np.int32, 1),
        ("pmt_floor", np.int32, 1),
        ("pmt_pos", np.float64, 3),
        ("pmt_dir", np.float64, 3),
        ("pmt_t0", np.float64, 1),
        ("pmt_status", np.int64, 1),
    )

    def __post_init__(self):
        self.det_id = int(self.det_id)
        self.version = int(self.version)
        self.valid_from = float(self.valid_from)
        self.valid_to = float(self.valid_to)
        self.utm_zone = str(self.utm_zone)
        self.utm_reference = np.asarray(self.utm_reference, dtype=np.float64).reshape(3)
        self.comments = [str(c) for c in self.comments]
        for group in (self._MODULE_ARRAYS, self._PMT_ARRAYS):
            n = None  # common length of the arrays of this group
            for name, dtype, width in group:
                arr = np.ascontiguousarray(getattr(self, name), dtype=dtype)
                if width == 1:
                    arr = arr.reshape(-1)
                else:
                    arr = arr.reshape(-1, width)
                if n is None:
                    n = arr.shape[0]
                elif arr.shape[0] != n:
                    raise ValueError(
                        f"Detector: array {name!r} has {arr.shape[0]} rows, expected {n}"
                    )
                setattr(self, name, arr)
        if int(self.module_n_pmts.sum()) != self.pmt_id.shape[0]:
            raise ValueError(
                f"Detector: module_n_pmts sums to {int(self.module_n_pmts.sum())} "
                f"but there are {self.pmt_id.shape[0]} PMTs"
            )
        if np.any(self.module_n_pmts < 0):
            raise ValueError("Detector: negative number of PMTs in module_n_pmts")
        expected_dom = np.repeat(self.module_id, self.module_n_pmts)
        if not np.array_equal(expected_dom, self.pmt_dom_id):
            raise ValueError(
                "Detector: PMTs must be grouped by module in module order "
                "(pmt_dom_id does not match module_id repeated module_n_pmts times)"
            )

    # ------------------------------------------------------------------ counts
    @property
    def n_modules(self) -> int:
        """Number of modules, including base modules."""
        return int(self.module_id.shape[0])

    @property
    def n_pmts(self) -> int:
        """Number of PMTs."""
        return int(self.pmt_id.shape[0])

    @cached_property
    def is_optical(self) -> np.ndarray:
        """Boolean mask over modules: True for optical modules (at least one PMT)."""
        return self.module_n_pmts > 0

    @property
    def n_doms(self) -> int:
        """Number of optical modules (modules with at least one PMT)."""
        return int(np.count_nonzero(self.is_optical))

    @property
    def n_base_modules(self) -> int:
        """Number of modules without PMTs (DU base modules)."""
        return self.n_modules - self.n_doms

    @cached_property
    def du_ids(self) -> np.ndarray:
        """Sorted unique DU numbers of the optical modules (int32)."""
        return np.unique(self.module_du[self.is_optical])

    @property
    def n_dus(self) -> int:
        """Number of DUs holding optical modules."""
        return int(self.du_ids.shape[0])

    # ------------------------------------------------------------------ DOM views
    @cached_property
    def dom_module_index(self) -> np.ndarray:
        """Index into the module arrays of each optical module (file order)."""
        return np.flatnonzero(self.is_optical)

    @cached_property
    def dom_ids(self) -> np.ndarray:
        """Module ids of the optical modules, file order (int64)."""
        return self.module_id[self.dom_module_index]

    @cached_property
    def dom_pos(self) -> np.ndarray:
        """Positions of the optical modules, shape (n_doms, 3) [m]."""
        return self.module_pos[self.dom_module_index]

    @cached_property
    def dom_du(self) -> np.ndarray:
        """DU of each optical module (int32)."""
        return self.module_du[self.dom_module_index]

    @cached_property
    def dom_floor(self) -> np.ndarray:
        """Floor of each optical module (int32)."""
        return self.module_floor[self.dom_module_index]

    @cached_property
    def dom_n_pmts(self) -> np.ndarray:
        """Number of PMTs of each optical module (int32)."""
        return self.module_n_pmts[self.dom_module_index]

    @cached_property
    def dom_pmt_offsets(self) -> np.ndarray:
        """PMT index offsets of the optical modules, shape (n_doms + 1,) (int64).

        The PMTs of DOM ``k`` are ``offsets[k]:offsets[k + 1]`` (PMTs are stored grouped by
        module), so the PMT of channel ``c`` has index ``offsets[k] + c``.
        """
        off = np.zeros(self.n_doms + 1, dtype=np.int64)
        np.cumsum(self.dom_n_pmts, out=off[1:])
        return off

    def pmt_index_of_dom(self) -> list[slice]:
        """For each optical module (order of :attr:`dom_ids`) the slice of its PMT indices."""
        off = self.dom_pmt_offsets
        return [slice(int(a), int(b)) for a, b in zip(off[:-1], off[1:])]

    @cached_property
    def pmt_dom_index(self) -> np.ndarray:
        """Index of each PMT's DOM into :attr:`dom_ids` (int64)."""
        return np.repeat(np.arange(self.n_doms, dtype=np.int64), self.dom_n_pmts)

    @cached_property
    def _dom_id_sorter(self) -> np.ndarray:
        return np.argsort(self.dom_ids, kind="stable")

    def dom_index(self, dom_ids) -> np.ndarray:
        """Index into :attr:`dom_ids` of the given module ids.

        Raises
        ------
        KeyError
            If an id is not the id of an optical module of this detector.
        """
        ids = np.asarray(dom_ids, dtype=np.int64)
        sorter = self._dom_id_sorter
        sorted_ids = self.dom_ids[sorter]
        if sorted_ids.size == 0:
            if ids.size:
                raise KeyError(f"unknown DOM id(s): {np.unique(ids)[:10].tolist()}")
            return np.zeros(ids.shape, dtype=np.int64)
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, sorted_ids.size - 1)
        found = sorted_ids[pos] == ids
        if not np.all(found):
            raise KeyError(f"unknown DOM id(s): {np.unique(ids[~found])[:10].tolist()}")
        return sorter[pos]

    def pmt_index(self, dom_ids, channels) -> np.ndarray:
        """Global PMT index of (DOM id, channel) pairs (vectorised).

        Raises
        ------
        KeyError
            For an unknown DOM id or a channel outside 0..n_pmts-1 of its DOM.
        """
        k = self.dom_index(dom_ids)
        ch = np.asarray(channels, dtype=np.int64)
        if np.any(ch < 0) or np.any(ch >= self.dom_n_pmts[k]):
            raise KeyError("PMT channel out of range for its DOM")
        return self.dom_pmt_offsets[k] + ch

    @cached_property
    def pmt_status_ok(self) -> np.ndarray:
        """Boolean mask over PMTs: True if the PMT is usable.

        A PMT is usable unless bit ``PMT_DISABLE`` (bit 0) of its status word is set. The other
        Jpp bits (HIGH_RATE_VETO_DISABLE = 1, FIFO_FULL_DISABLE = 2, UDP_COUNTER_DISABLE = 3,
        UDP_TRAILER_DISABLE = 4, OUT_OF_SYNC = 5) only switch off DAQ features of a working PMT
        and do not make it unusable.
        """
        return (self.pmt_status & (1 << PMT_DISABLE)) == 0

    @cached_property
    def module_status_ok(self) -> np.ndarray:
        """Boolean mask over modules: True unless bit ``MODULE_DISABLE`` (0) is set (assumed)."""
        return (self.module_status & (1 << MODULE_DISABLE)) == 0

    @cached_property
    def pmt_usable(self) -> np.ndarray:
        """Boolean mask over PMTs: PMT status OK and its module not disabled."""
        mod_ok = np.repeat(self.module_status_ok, self.module_n_pmts)
        return self.pmt_status_ok & mod_ok

    # ------------------------------------------------------------------ geometry facts
    def center(self) -> np.ndarray:
        """Mean position of the optical modules, shape (3,) [m]."""
        if self.n_doms == 0:
            return np.zeros(3)
        return self.dom_pos.mean(axis=0)

    def du_positions(self) -> np.ndarray:
        """Horizontal position of each DU axis (mean x, y of its DOMs), shape (n_dus, 2)."""
        if self.n_dus == 0:
            return np.zeros((0, 2))
        inv = np.searchsorted(self.du_ids, self.dom_du)
        counts = np.bincount(inv, minlength=self.n_dus)
        xy = np.empty((self.n_dus, 2))
        for j in range(2):
            xy[:, j] = np.bincount(inv, weights=self.dom_pos[:, j], minlength=self.n_dus) / counts
        return xy

    def floors_per_du(self) -> dict[int, int]:
        """Number of optical modules on each DU."""
        du, n = np.unique(self.dom_du, return_counts=True)
        return {int(d): int(c) for d, c in zip(du, n)}

    def vertical_spacings(self) -> np.ndarray:
        """Vertical distances between consecutive (in z) DOMs of the same DU [m]."""
        if self.n_doms < 2:
            return np.zeros(0)
        order = np.lexsort((self.dom_pos[:, 2], self.dom_du))
        du = self.dom_du[order]
        z = self.dom_pos[order, 2]
        same = du[1:] == du[:-1]
        return np.diff(z)[same]

    def floor_spacing(self) -> float:
        """Median vertical distance between consecutive DOMs of a DU [m] (nan if undefined)."""
        d = self.vertical_spacings()
        return float(np.median(d)) if d.size else float("nan")

    def du_nearest_neighbour_distances(self) -> np.ndarray:
        """Horizontal distance of each DU axis to its nearest neighbour, shape (n_dus,) [m]."""
        xy = self.du_positions()
        if xy.shape[0] < 2:
            return np.zeros(0)
        if xy.shape[0] > 2000:
            from scipy.spatial import cKDTree

            d, _ = cKDTree(xy).query(xy, k=2)
            return d[:, 1]
        diff = xy[:, None, :] - xy[None, :, :]
        dist = np.sqrt((diff**2).sum(axis=-1))
        np.fill_diagonal(dist, np.inf)
        return dist.min(axis=1)

    def du_spacing(self) -> float:
        """Median nearest-neighbour horizontal distance between DU axes [m] (nan if < 2 DUs)."""
        d = self.du_nearest_neighbour_distances()
        return float(np.median(d)) if d.size else float("nan")

    def horizontal_center(self) -> np.ndarray:
        """Horizontal centre (x, y) of the detector: the x, y of :meth:`center`."""
        return self.center()[:2]

    def footprint_radius(self) -> float:
        """Largest horizontal distance of a DU axis from the horizontal centre [m]."""
        xy = self.du_positions()
        if xy.shape[0] == 0:
            return 0.0
        return float(np.sqrt(((xy - self.horizontal_center()) ** 2).sum(axis=1)).max())

    def footprint_area(self) -> float:
        """Area of the convex hull of the DU axes [m^2] (0 for fewer than 3 non-collinear DUs)."""
        xy = self.du_positions()
        if xy.shape[0] < 3:
            return 0.0
        from scipy.spatial import ConvexHull, QhullError

        try:
            return float(ConvexHull(xy).volume)
        except QhullError:
            return 0.0

    def height_range(self) -> tuple[float, float]:
        """(min, max) z of the optical modules [m]."""
        if self.n_doms == 0:
            return (float("nan"), float("nan"))
        z = self.dom_pos[:, 2]
        return (float(z.min()), float(z.max()))

    # ------------------------------------------------------------------ provenance
    def content_hash(self) -> str:
        """SHA-256 hex digest of the geometry content, for provenance.

        Covers det_id, validity, UTM zone and reference and all module and PMT arrays (in a
        fixed dtype and little-endian byte order). The format ``version`` and the comments are
        not included, so the same geometry read from detx v3, written as v5 or read from datx
        hashes the same when the numbers are identical.
        """
        h = hashlib.sha256()
        h.update(b"km3sim-detector-v1\0")
        h.update(
            json.dumps(
                [self.det_id, repr(self.valid_from), repr(self.valid_to), self.utm_zone]
            ).encode()
        )
        h.update(np.ascontiguousarray(self.utm_reference, dtype="<f8").tobytes())
        for name, dtype, _ in self._MODULE_ARRAYS + self._PMT_ARRAYS:
            arr = getattr(self, name)
            h.update(name.encode() + b"\0")
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tobytes())
        return h.hexdigest()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """All content as a flat dict of numpy arrays (for HDF5 storage).

        Scalars become 0-d arrays; ``utm_zone`` is stored as bytes and ``comments`` as a JSON
        encoded bytes string under ``"comments_json"``. Inverse: :meth:`from_arrays`.
        """
        out: dict[str, np.ndarray] = {
            "det_id": np.array(self.det_id, dtype=np.int64),
            "version": np.array(self.version, dtype=np.int64),
            "valid_from": np.array(self.valid_from),
            "valid_to": np.array(self.valid_to),
            "utm_zone": np.bytes_(self.utm_zone.encode()),
            "utm_reference": self.utm_reference.copy(),
            "comments_json": np.bytes_(json.dumps(self.comments).encode()),
        }
        for name, _, _ in self._MODULE_ARRAYS + self._PMT_ARRAYS:
            out[name] = getattr(self, name).copy()
        return out

    @classmethod
    def from_arrays(cls, arrays) -> Detector:
        """Build a detector from the output of :meth:`to_arrays` (or an h5py group)."""

        def _scalar(key):
            v = arrays[key]
            if isinstance(v, (bytes, str)):
                return bytes(v) if isinstance(v, bytes) else v
            v = v[()] if hasattr(v, "shape") else v
            if isinstance(v, (bytes, str)):
                return v
            return v.item() if hasattr(v, "item") else v

        def _text(key):
            v = _scalar(key)
            return v.decode() if isinstance(v, bytes) else str(v)

        kw = {name: np.asarray(arrays[name]) for name, _, _ in cls._MODULE_ARRAYS + cls._PMT_ARRAYS}
        return cls(
            det_id=int(_scalar("det_id")),
            version=int(_scalar("version")),
            valid_from=float(_scalar("valid_from")),
            valid_to=float(_scalar("valid_to")),
            utm_zone=_text("utm_zone"),
            utm_reference=np.asarray(arrays["utm_reference"]),
            comments=json.loads(_text("comments_json")) if "comments_json" in arrays else [],
            **kw,
        )

    def arrays_equal(self, other: Detector, *, dir_atol: float = 0.0) -> bool:
        """True if all module and PMT arrays and the header numbers are equal.

        Parameters
        ----------
        other : Detector
        dir_atol : float
            Absolute tolerance for ``pmt_dir`` (datx files store the directions with float32
            precision, detx files with 6 decimals).
        """
        if (self.det_id, self.valid_from, self.valid_to, self.utm_zone) != (
            other.det_id,
            other.valid_from,
            other.valid_to,
            other.utm_zone,
        ):
            return False
        if not np.array_equal(self.utm_reference, other.utm_reference):
            return False
        for name, _, _ in self._MODULE_ARRAYS + self._PMT_ARRAYS:
            a, b = getattr(self, name), getattr(other, name)
            if a.shape != b.shape:
                return False
            if name == "pmt_dir" and dir_atol > 0:
                if not np.allclose(a, b, rtol=0.0, atol=dir_atol):
                    return False
            elif not np.array_equal(a, b):
                return False
        return True

    def select_dus(self, dus) -> Detector:
        """A new detector with only the modules (and PMTs) of the given DUs, file order kept."""
        dus = np.atleast_1d(np.asarray(dus, dtype=np.int32))
        mmask = np.isin(self.module_du, dus)
        pmask = np.repeat(mmask, self.module_n_pmts)
        kw = {name: getattr(self, name)[mmask] for name, _, _ in self._MODULE_ARRAYS}
        kw.update({name: getattr(self, name)[pmask] for name, _, _ in self._PMT_ARRAYS})
        return Detector(
            det_id=self.det_id,
            version=self.version,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            utm_zone=self.utm_zone,
            utm_reference=self.utm_reference.copy(),
            comments=list(self.comments),
            **kw,
        )

    # ------------------------------------------------------------------ reporting
    def summary(self) -> dict:
        """Key numbers of the detector as a JSON-serialisable dict."""
        fpd = self.floors_per_du()
        nfl = sorted(set(fpd.values()))
        nn = self.du_nearest_neighbour_distances()
        zmin, zmax = self.height_range()
        base_z = self.module_pos[~self.is_optical, 2]
        n_bad = int(np.count_nonzero(self.pmt_status != 0))
        n_disabled = int(np.count_nonzero(~self.pmt_status_ok))
        r = self.footprint_radius()
        return {
            "det_id": self.det_id,
            "version": self.version,
            "utm_zone": self.utm_zone,
            "utm_reference": [float(v) for v in self.utm_reference],
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "n_dus": self.n_dus,
            "n_modules": self.n_modules,
            "n_doms": self.n_doms,
            "n_base_modules": self.n_base_modules,
            "n_pmts": self.n_pmts,
            "doms_per_du": nfl,
            "floor_spacing_m": self.floor_spacing(),
            "du_spacing_median_m": float(np.median(nn)) if nn.size else float("nan"),
            "du_spacing_min_m": float(nn.min()) if nn.size else float("nan"),
            "footprint_radius_m": r,
            "footprint_area_hull_m2": self.footprint_area(),
            "footprint_area_circle_m2": math.pi * r * r,
            "center_m": [float(v) for v in self.center()],
            "dom_z_min_m": zmin,
            "dom_z_max_m": zmax,
            "sea_floor_z_m": float(self.utm_reference[2]),
            "base_module_z_range_m": (
                [float(base_z.min()), float(base_z.max())] if base_z.size else None
            ),
            "n_pmts_status_nonzero": n_bad,
            "n_pmts_disabled": n_disabled,
            "content_hash": self.content_hash(),
        }

    def format_info(self) -> str:
        """Human-readable multi-line description (``km3sim detector info FILE``)."""
        s = self.summary()

        def _t(ts):
            import datetime

            if ts >= VALID_TO_INFINITY or not math.isfinite(ts):
                return "forever"
            try:
                return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
                    "%Y-%m-%d %H:%M:%S UTC"
                )
            except (OverflowError, OSError, ValueError):
                return repr(ts)

        def _area(a):
            return f"{a / 1e6:.3f} km^2" if a >= 1e5 else f"{a:.0f} m^2"

        ref = s["utm_reference"]
        zone = s["utm_zone"] or "unknown"
        nfl = s["doms_per_du"]
        lines = [
            f"detector id       : {s['det_id']}",
            f"format version    : v{s['version']}",
            f"UTM zone          : {zone}",
            f"UTM reference     : E {ref[0]:.3f} m, N {ref[1]:.3f} m, z {ref[2]:.3f} m "
            "(sea-floor reference)",
            f"valid             : {_t(s['valid_from'])} -> {_t(s['valid_to'])}",
            f"DUs               : {s['n_dus']}",
            f"DOMs              : {s['n_doms']}",
            f"PMTs              : {s['n_pmts']}",
            f"base modules      : {s['n_base_modules']}",
            "DOMs per DU       : "
            + (", ".join(str(n) for n in nfl) if nfl else "-"),
            f"vertical spacing  : {s['floor_spacing_m']:.2f} m (median between adjacent DOMs)",
            f"DU spacing        : {s['du_spacing_median_m']:.2f} m median nearest neighbour, "
            f"{s['du_spacing_min_m']:.2f} m min",
            f"footprint         : radius {s['footprint_radius_m']:.1f} m, convex hull "
            f"{_area(s['footprint_area_hull_m2'])}, circle {_area(s['footprint_area_circle_m2'])}",
            f"centre            : ({s['center_m'][0]:.2f}, {s['center_m'][1]:.2f}, "
            f"{s['center_m'][2]:.2f}) m",
            f"DOM z range       : {s['dom_z_min_m']:.2f} .. {s['dom_z_max_m']:.2f} m above the "
            f"sea-floor reference (depth {-(ref[2] + s['dom_z_max_m']):.1f} .. "
            f"{-(ref[2] + s['dom_z_min_m']):.1f} m)"
            if self.n_doms
            else "DOM z range       : -",
        ]
        if s["base_module_z_range_m"] is not None:
            b0, b1 = s["base_module_z_range_m"]
            lines.append(f"base module z     : {b0:.2f} .. {b1:.2f} m")
        lines.append(
            f"PMT status != 0   : {s['n_pmts_status_nonzero']} "
            f"({s['n_pmts_disabled']} with PMT_DISABLE set)"
        )
        if s["n_pmts_status_nonzero"]:
            bits = []
            for name, bit in PMT_STATUS_BITS.items():
                n = int(np.count_nonzero(self.pmt_status & (1 << bit)))
                if n:
                    bits.append(f"{name} {n}")
            if bits:
                lines.append("  status bits     : " + ", ".join(bits))
        lines.append(f"content hash      : {s['content_hash'][:16]}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Detector(det_id={self.det_id}, version={self.version}, utm_zone={self.utm_zone!r}, "
            f"n_dus={self.n_dus}, n_doms={self.n_doms}, n_pmts={self.n_pmts})"
        )

    @classmethod
    def from_file(cls, path) -> Detector:
        """Read a detx or datx file (see :func:`km3sim.io.detx.read_detector`)."""
        from km3sim.io.detx import read_detector

        return read_detector(path)


# ---------------------------------------------------------------------- builders
def _grid_positions(n: int, spacing: float, layout: str) -> np.ndarray:
    """First ``n`` points of a hexagonal or square grid, nearest to the centre first.

    Points are ordered by distance from the centre, then by azimuth in [0, 2 pi) starting at +x,
    so the grid fills ring by ring (n = 1, 7, 19, 37 give complete hexagonal shells; n = 1, 9,
    25 complete squares).
    """
    if n <= 0:
        return np.zeros((0, 2))
    k = int(math.ceil(math.sqrt(n))) + 2
    i, j = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij")
    i = i.ravel().astype(float)
    j = j.ravel().astype(float)
    if layout == "hexagonal":
        x = i + 0.5 * j
        y = (math.sqrt(3.0) / 2.0) * j
    elif layout == "square":
        x, y = i, j
    else:
        raise ValueError(f"unknown DU layout {layout!r}; expected 'hexagonal' or 'square'")
    r = np.round(np.hypot(x, y), 9)
    phi = np.round(np.mod(np.arctan2(y, x), 2 * math.pi), 9)
    order = np.lexsort((phi, r))[:n]
    xy = np.column_stack([x[order], y[order]]) * spacing
    xy[np.abs(xy) < 1e-9] = 0.0
    return xy


def build_block(
    n_dus: int,
    du_spacing_m: float,
    floor_spacing_m: float,
    first_floor_height_m: float,
    n_floors: int = 18,
    layout: str = "hexagonal",
    *,
    det_id: int = -1,
    utm_zone: str = "",
    utm_reference=(0.0, 0.0, 0.0),
    seabed_z: float = 0.0,
    base_modules: bool = True,
    pmt_radius_m: float = DOM_PMT_RADIUS,
    random_dom_azimuth: bool = False,
    seed: int = 0,
    valid_from: float = 0.0,
    valid_to: float = VALID_TO_INFINITY,
    comments=None,
) -> Detector:
    """Build a generic building block of vertical DUs with 31-PMT DOMs.

    Parameters
    ----------
    n_dus : int
        Number of DUs (ids 1..n_dus), placed on the grid nearest to the centre first.
    du_spacing_m : float
        Distance between neighbouring DUs [m].
    floor_spacing_m : float
        Vertical distance between consecutive DOMs [m].
    first_floor_height_m : float
        Height of the lowest DOM (floor 1) above the sea floor [m].
    n_floors : int
        DOMs per DU (floors 1..n_floors from the bottom).
    layout : {"hexagonal", "square"}
        Grid of the DU positions, centred on x = y = 0.
    det_id : int
        Detector id.
    utm_zone : str
        UTM zone, e.g. "32N"; "" if none.
    utm_reference : sequence of 3 floats
        UTM easting, northing and sea-floor depth z of the coordinate origin [m].
    seabed_z : float
        z of the sea floor in detector coordinates (0: DOM z = height above the floor).
    base_modules : bool
        Add a base module (floor 0, no PMTs) at the foot of each DU, as in v5 files.
    pmt_radius_m : float
        Distance of the photocathode centres from the DOM centre [m].
    random_dom_azimuth : bool
        Rotate each DOM by a random angle about z (as real DOMs are); the orientation goes
        into ``module_quaternion``. Default: all DOMs in the nominal orientation.
    seed : int
        Seed of the DOM rotations.
    valid_from, valid_to : float
        Validity range [UNIX s].
    comments : list of str, optional
        Comment lines; default: one line describing the build.

    Returns
    -------
    Detector
        Module ids are ``du * F + floor`` with ``F = 100`` (1000 if ``n_floors >= 100``); PMT
        ids are ``module_id * 100 + channel``. Module order: per DU the base module, then
        floors 1..n_floors.
    """
    if n_dus < 1:
        raise ValueError(f"n_dus must be >= 1, got {n_dus}")
    if n_floors < 1:
        raise ValueError(f"n_floors must be >= 1, got {n_floors}")
    if du_spacing_m <= 0 or floor_spacing_m <= 0:
        raise ValueError("du_spacing_m and floor_spacing_m must be > 0")
    xy = _grid_positions(n_dus, float(du_spacing_m), layout)
    dirs0, _ = dom_pmt_layout()
    n_ch = dirs0.shape[0]
    fbase = 100 if n_floors < 100 else 10 ** (len(str(n_floors)))

    per_du = n_floors + (1 if base_modules else 0)
    floors = np.arange(0 if base_modules else 1, n_floors + 1, dtype=np.int32)
    du = np.repeat(np.arange(1, n_dus + 1, dtype=np.int32), per_du)
    floor = np.tile(floors, n_dus)
    mod_id = du.astype(np.int64) * fbase + floor
    z = np.where(
        floor == 0,
        float(seabed_z),
        float(seabed_z) + float(first_floor_height_m) + (floor - 1) * float(floor_spacing_m),
    )
    pos = np.column_stack([np.repeat(xy[:, 0], per_du), np.repeat(xy[:, 1], per_du), z])
    n_pmts = np.where(floor == 0, 0, n_ch).astype(np.int32)
    n_mod = mod_id.shape[0]
    quat = np.zeros((n_mod, 4))
    quat[:, 0] = 1.0
    optical = n_pmts > 0
    if random_dom_azimuth:
        rng = np.random.default_rng(seed)
        ang = rng.uniform(0.0, 2 * math.pi, size=int(optical.sum()))
        quat[optical, 0] = np.cos(ang / 2)
        quat[optical, 3] = np.sin(ang / 2)

    n_dom = int(optical.sum())
    dom_q = np.repeat(quat[optical], n_ch, axis=0)
    pmt_dir = _quaternion_rotate(dom_q, np.tile(dirs0, (n_dom, 1)))
    if random_dom_azimuth:
        pmt_dir /= np.linalg.norm(pmt_dir, axis=1)[:, None]
    pmt_pos = np.repeat(pos[optical], n_ch, axis=0) + pmt_radius_m * pmt_dir
    channel = np.tile(np.arange(n_ch, dtype=np.int32), n_dom)
    pmt_dom = np.repeat(mod_id[optical], n_ch)
    if comments is None:
        comments = [
            f"km3sim build_block n_dus={n_dus} du_spacing_m={du_spacing_m} "
            f"floor_spacing_m={floor_spacing_m} first_floor_height_m={first_floor_height_m} "
            f"n_floors={n_floors} layout={layout}"
        ]
    logger.debug("built block: %d DUs x %d floors (%s)", n_dus, n_floors, layout)
    return Detector(
        det_id=det_id,
        version=5,
        valid_from=valid_from,
        valid_to=valid_to,
        utm_zone=utm_zone,
        utm_reference=np.asarray(utm_reference, dtype=np.float64),
        module_id=mod_id,
        module_du=du,
        module_floor=floor,
        module_pos=pos,
        module_quaternion=quat,
        module_t0=np.zeros(n_mod),
        module_status=np.zeros(n_mod, dtype=np.int64),
        module_n_pmts=n_pmts,
        pmt_id=pmt_dom * 100 + channel,
        pmt_dom_id=pmt_dom,
        pmt_channel=channel,
        pmt_du=np.repeat(du[optical], n_ch),
        pmt_floor=np.repeat(floor[optical], n_ch),
        pmt_pos=pmt_pos,
        pmt_dir=pmt_dir,
        pmt_t0=np.zeros(n_dom * n_ch),
        pmt_status=np.zeros(n_dom * n_ch, dtype=np.int64),
        comments=list(comments),
    )


def build_orca_block(n_dus: int = 115, **kw) -> Detector:
    """ORCA-like building block: 20 m between DUs, 9 m between DOMs, lowest DOM 40 m above
    the sea floor, UTM zone 32N, reference (256500, 4743000, -2440). Keywords override
    the defaults of :func:`build_block`."""
    args = dict(
        du_spacing_m=20.0,
        floor_spacing_m=9.0,
        first_floor_height_m=40.0,
        n_floors=18,
        layout="hexagonal",
        utm_zone="32N",
        utm_reference=(256500.0, 4743000.0, -2440.0),
    )
    args.update(kw)
    return build_block(n_dus, **args)


def build_arca_block(n_dus: int = 115, **kw) -> Detector:
    """ARCA-like building block: 90 m between DUs, 36 m between DOMs, lowest DOM 80 m above
    the sea floor, UTM zone 33N, reference (587600, 4016800, -3450). Keywords override
    the defaults of :func:`build_block`."""
    args = dict(
        du_spacing_m=90.0,
        floor_spacing_m=36.0,
        first_floor_height_m=80.0,
        n_floors=18,
        layout="hexagonal",
        utm_zone="33N",
        utm_reference=(587600.0, 4016800.0, -3450.0),
    )
    args.update(kw)
    return build_block(n_dus, **args)
