"""The generation volume ("can"): an upright cylinder around the instrumented volume.

Atmospheric muons are generated on the surface of the can and propagated through it, as in
MUPAGE (PHYSICS.md §1.4; Becherini et al., Astropart. Phys. 25 (2006) 1). Here the can is
built around the optical modules of a detector: its radius is the horizontal footprint radius
of the DOMs plus a margin, its top lies a margin above the highest DOM and its bottom is the
sea floor (detector z = 0): muons do not come from below the floor.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Can", "can_from_detector"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Can:
    """An upright cylinder (axis along z) in the detector frame.

    Attributes
    ----------
    x, y : float
        Horizontal position of the axis [m].
    zmin, zmax : float
        Heights of the bottom and top disks [m] (detector frame, sea floor at z = 0).
    radius : float
        Radius [m].
    """

    x: float
    y: float
    zmin: float
    zmax: float
    radius: float

    def __post_init__(self):
        if not (self.radius > 0.0):
            raise ValueError(f"can radius must be > 0, got {self.radius}")
        if not (self.zmax > self.zmin):
            raise ValueError(f"can zmax ({self.zmax}) must be above zmin ({self.zmin})")

    @property
    def height(self) -> float:
        """Height zmax - zmin [m]."""
        return self.zmax - self.zmin

    @property
    def volume(self) -> float:
        """Volume pi r^2 H [m^3]."""
        return math.pi * self.radius**2 * self.height

    @property
    def area_top(self) -> float:
        """Area of the top disk [m^2]."""
        return math.pi * self.radius**2

    @property
    def area_lateral(self) -> float:
        """Area of the lateral surface 2 pi r H [m^2]."""
        return 2.0 * math.pi * self.radius * self.height

    def area_projected(self, cos_zenith):
        """Area of the can projected on the plane perpendicular to a direction [m^2].

        ``S(theta) = pi r^2 |cos theta| + 2 r H sin theta`` (PHYSICS.md §1.4).

        Parameters
        ----------
        cos_zenith : float or array_like
            Cosine of the zenith angle of the direction.
        """
        u = np.asarray(cos_zenith, dtype=np.float64)
        s = np.sqrt(np.clip(1.0 - u * u, 0.0, None))
        out = math.pi * self.radius**2 * np.abs(u) + 2.0 * self.radius * self.height * s
        return out if out.ndim else float(out)

    def contains(self, pos, tol: float = 1e-9):
        """True for points inside the can or on its surface (within ``tol`` m).

        Parameters
        ----------
        pos : array_like, shape (..., 3)
        """
        p = np.asarray(pos, dtype=np.float64)
        rho = np.hypot(p[..., 0] - self.x, p[..., 1] - self.y)
        return (rho <= self.radius + tol) & (p[..., 2] >= self.zmin - tol) & (p[..., 2] <= self.zmax + tol)

    def distance_to_surface(self, pos):
        """Signed distance of points to the can surface [m] (negative inside).

        Parameters
        ----------
        pos : array_like, shape (..., 3)
        """
        p = np.asarray(pos, dtype=np.float64)
        rho = np.hypot(p[..., 0] - self.x, p[..., 1] - self.y)
        dr = rho - self.radius
        dz = np.maximum(self.zmin - p[..., 2], p[..., 2] - self.zmax)
        outside = np.hypot(np.maximum(dr, 0.0), np.maximum(dz, 0.0))
        inside = np.minimum(np.maximum(dr, dz), 0.0)
        return outside + inside

    def intersect(self, pos, dir):
        """Intersections of lines ``pos + t * dir`` with the can.

        Parameters
        ----------
        pos : array_like, shape (n, 3) or (3,)
            Points on the lines [m].
        dir : array_like, shape (n, 3) or (3,)
            Directions of the lines (unit vectors, so that t is a distance in m).

        Returns
        -------
        t_in, t_out : ndarray, shape (n,) (or floats for single lines)
            Line parameters where the line enters and leaves the can (``t_in <= t_out``;
            negative values lie behind ``pos``). NaN where the line misses the can.
        """
        p = np.asarray(pos, dtype=np.float64)
        d = np.asarray(dir, dtype=np.float64)
        scalar = p.ndim == 1 and d.ndim == 1
        p, d = np.broadcast_arrays(np.atleast_2d(p), np.atleast_2d(d))
        px = p[:, 0] - self.x
        py = p[:, 1] - self.y
        pz = p[:, 2]
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        n = px.shape[0]
        lo = np.full(n, -np.inf)
        hi = np.full(n, np.inf)
        miss = np.zeros(n, dtype=bool)

        with np.errstate(divide="ignore", invalid="ignore"):
            # lateral surface: A t^2 + 2 B t + C = 0
            a = dx * dx + dy * dy
            b = px * dx + py * dy
            c = px * px + py * py - self.radius**2
            vertical = a < 1e-300
            miss |= vertical & (c > 0.0)
            disc = b * b - a * c
            slanted = ~vertical
            miss |= slanted & (disc < 0.0)
            ok = slanted & (disc >= 0.0)
            sq = np.sqrt(np.where(ok, disc, 0.0))
            # numerically stable roots (Numerical Recipes §5.6)
            q = -(b + np.copysign(sq, b))
            r1 = np.where(q != 0.0, c / q, 0.0)
            r2 = q / a
            t1 = np.minimum(r1, r2)
            t2 = np.maximum(r1, r2)
            lo = np.where(ok, t1, lo)
            hi = np.where(ok, t2, hi)

            # top and bottom planes
            flat = np.abs(dz) < 1e-300
            miss |= flat & ((pz < self.zmin) | (pz > self.zmax))
            tz1 = (self.zmin - pz) / dz
            tz2 = (self.zmax - pz) / dz
            tlo = np.where(flat, -np.inf, np.minimum(tz1, tz2))
            thi = np.where(flat, np.inf, np.maximum(tz1, tz2))
        t_in = np.maximum(lo, tlo)
        t_out = np.minimum(hi, thi)
        miss |= ~(t_in <= t_out)
        t_in = np.where(miss, np.nan, t_in)
        t_out = np.where(miss, np.nan, t_out)
        if scalar:
            return float(t_in[0]), float(t_out[0])
        return t_in, t_out


def can_from_detector(detector, margin_m: float = 200.0, floor_z_m: float = 0.0) -> Can:
    """The can around the optical modules of a detector.

    Radius = largest horizontal distance of an optical DOM from the mean DOM position plus
    ``margin_m``; ``zmax`` = highest DOM + ``margin_m``; ``zmin`` = lowest DOM - ``margin_m``
    clipped at the sea floor ``floor_z_m`` (detector z = 0 is the floor; muons do not come
    from below it). PHYSICS.md §1.4 describes the MUPAGE can this replaces.

    Parameters
    ----------
    detector : Detector or array_like, shape (n, 3)
        A :class:`km3sim.detector.geometry.Detector` (its ``dom_pos`` is used) or the
        positions of the optical modules [m].
    margin_m : float
        Margin added to the radius and above the top DOM [m] (about a few light absorption
        lengths, so that light from muons outside the can is negligible).
    floor_z_m : float
        Height of the sea floor in the detector frame [m].
    """
    pos = np.asarray(getattr(detector, "dom_pos", detector), dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"need DOM positions of shape (n, 3), got {pos.shape}")
    if margin_m < 0.0:
        raise ValueError(f"can margin must be >= 0, got {margin_m}")
    xc = float(pos[:, 0].mean())
    yc = float(pos[:, 1].mean())
    footprint = float(np.max(np.hypot(pos[:, 0] - xc, pos[:, 1] - yc)))
    zmax = float(pos[:, 2].max()) + margin_m
    zmin = max(float(floor_z_m), float(pos[:, 2].min()) - margin_m)
    can = Can(x=xc, y=yc, zmin=zmin, zmax=zmax, radius=footprint + margin_m)
    logger.debug("can from %d DOMs: %s", pos.shape[0], can)
    return can
