"""Synthetic signal for trigger and reconstruction tests (PHYSICS.md §9.1)."""

from __future__ import annotations

import numpy as np

from km3sim import constants as C


def t_expected_physics_md(x, p, u, t0):
    """PHYSICS.md §9.1 written out literally (z_emit, d_γ), as an independent reference."""
    V = x - p
    L = V @ u
    d_c = np.sqrt(np.maximum((V * V).sum(axis=1) - L * L, 0.0))
    d_gamma = d_c / C.SIN_CHERENKOV
    z_emit = L - d_c / C.TAN_CHERENKOV
    return t0 + z_emit / C.C_LIGHT + d_gamma * C.INDEX_OF_REFRACTION_GROUP / C.C_LIGHT


def muon_hit_pmts(det, p, u, t0, rng, jitter_ns=2.0, max_dist_m=30.0, per_dom=2):
    """Direct Cherenkov hits: ``per_dom`` best-facing PMTs of each DOM within ``max_dist_m``."""
    t_exp = t_expected_physics_md(det.pmt_pos, p, u, t0)
    V = det.pmt_pos - p
    L = V @ u
    d = np.sqrt(np.maximum((V * V).sum(axis=1) - L * L, 0.0))
    photon = V - (L - d / C.TAN_CHERENKOV)[:, None] * u
    photon /= np.linalg.norm(photon, axis=1)[:, None]
    facing = -(photon * det.pmt_dir).sum(axis=1)
    rows = []
    for sl in det.pmt_index_of_dom():
        idx = np.arange(sl.start, sl.stop)
        if d[idx[0]] <= max_dist_m:
            rows.extend(idx[np.argsort(-facing[idx], kind="stable")[:per_dom]].tolist())
    rows = np.asarray(rows, dtype=np.int64)
    return rows, t_exp[rows] + rng.normal(0.0, jitter_ns, len(rows))
