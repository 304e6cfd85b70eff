"""Seeds and random numbers.

Every random draw of an event in a stage derives only from (production seed, run, event_id,
stage name) -- DESIGN.md §6. A per-(seed, run, stage) key is derived with
:class:`numpy.random.SeedSequence`; per-event seeds are the SplitMix64 mix of that key and the
event id. numba kernels take an array of per-event seeds and draw with xoshiro256**
(Blackman & Vigna, "Scrambled linear pseudorandom number generators", ACM TOMS 47 (2021) 36),
so results do not depend on how events are grouped into chunks or workers.
"""

from __future__ import annotations

import math
import zlib

import numba as nb
import numpy as np

__all__ = [
    "stage_key",
    "event_seeds",
    "event_generator",
    "rng_new",
    "rng_uniform",
    "rng_normal",
    "rng_exponential",
    "rng_poisson",
    "xoshiro_next",
    "xoshiro_u01",
    "xoshiro_normal",
]

_U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def stage_code(stage_name: str) -> int:
    """Stable 32-bit number of a stage name (crc32), used in seed derivation."""
    return zlib.crc32(stage_name.encode())


def stage_key(seed: int, run_id: int, stage_name: str) -> np.uint64:
    """The 64-bit key of a (production seed, run, stage)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(run_id) & 0xFFFFFFFF, stage_code(stage_name)))
    lo, hi = ss.generate_state(2, np.uint32)
    return np.uint64((int(hi) << 32) | int(lo))


@nb.njit(cache=True, inline="always")
def _splitmix64(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _mix_seeds(key, event_ids):
    out = np.empty(event_ids.shape[0], dtype=np.uint64)
    for i in range(event_ids.shape[0]):
        out[i] = _splitmix64(key ^ _splitmix64(np.uint64(event_ids[i])))
    return out


def event_seeds(seed: int, run_id: int, event_ids: np.ndarray, stage_name: str) -> np.ndarray:
    """Per-event 64-bit seeds for ``stage_name`` (uint64 array, same length as ``event_ids``)."""
    ids = np.ascontiguousarray(event_ids, dtype=np.int64).view(np.uint64)
    return _mix_seeds(stage_key(seed, run_id, stage_name), ids)


def event_generator(event_seed: np.uint64) -> np.random.Generator:
    """A numpy Generator for one event, for pure-Python stage code."""
    return np.random.Generator(np.random.PCG64(int(event_seed)))


# --------------------------------------------------------------------------------------------
# xoshiro256** in numba. The state is a uint64 array of length 4.
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True)
def rng_new(seed):
    """A fresh xoshiro256** state from a 64-bit seed (expanded with SplitMix64)."""
    s = np.empty(4, dtype=np.uint64)
    x = np.uint64(seed)
    for i in range(4):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        s[i] = z ^ (z >> np.uint64(31))
    return s


@nb.njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@nb.njit(cache=True)
def rng_next(s):
    """Next 64-bit output of xoshiro256**."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@nb.njit(cache=True)
def rng_uniform(s):
    """Uniform double in [0, 1)."""
    return float(rng_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def rng_normal(s):
    """Standard normal deviate (Marsaglia polar method)."""
    while True:
        u = 2.0 * rng_uniform(s) - 1.0
        v = 2.0 * rng_uniform(s) - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            return u * math.sqrt(-2.0 * math.log(q) / q)


@nb.njit(cache=True)
def rng_exponential(s):
    """Exponential deviate with mean 1."""
    return -math.log(1.0 - rng_uniform(s))


@nb.njit(cache=True)
def rng_poisson(s, lam):
    """Poisson deviate with mean ``lam``.

    Inversion by sequential search for lam < 10; otherwise the PTRS transformed rejection of
    W. Hörmann, "The transformed rejection method for generating Poisson random variables",
    Insurance: Mathematics and Economics 12 (1993) 39.
    """
    if lam <= 0.0:
        return 0
    if lam < 10.0:
        while True:
            u = rng_uniform(s)
            k = 0
            p = math.exp(-lam)
            c = p
            while u > c and p > 1e-300:
                k += 1
                p *= lam / k
                c += p
            if u <= c:
                return k
            # rounding left the summed pmf below u (probability ~1e-16): draw again
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = rng_uniform(s) - 0.5
        v = rng_uniform(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k)
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)) <= (
            -lam + k * loglam - math.lgamma(k + 1.0)
        ):
            return int(k)


# ------------------------------------------------------------------------------ state in registers
#
# Hot loops keep the xoshiro256** state in four local variables (s0, s1, s2, s3) instead of an
# array: an array state is stored and re-loaded on every draw, because numba cannot prove that it
# does not alias the kernel's output arrays. The sequence is the same as rng_next / rng_uniform /
# rng_normal on the array [s0, s1, s2, s3].


@nb.njit(cache=True, inline="always")
def xoshiro_next(s0, s1, s2, s3):
    """Next 64-bit output of xoshiro256** and the new state (:func:`rng_next` in registers)."""
    r = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return r, s0, s1, s2, s3


@nb.njit(cache=True, inline="always")
def xoshiro_u01(s0, s1, s2, s3):
    """Uniform double in [0, 1) and the new state (:func:`rng_uniform` in registers)."""
    r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
    return float(r >> np.uint64(11)) * (1.0 / 9007199254740992.0), s0, s1, s2, s3


@nb.njit(cache=True)
def xoshiro_normal(s0, s1, s2, s3):
    """Standard normal deviate and the new state (:func:`rng_normal`, polar method, in registers)."""
    while True:
        u, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        v, s0, s1, s2, s3 = xoshiro_u01(s0, s1, s2, s3)
        u = 2.0 * u - 1.0
        v = 2.0 * v - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            return u * math.sqrt(-2.0 * math.log(q) / q), s0, s1, s2, s3
