"""Simulated samples with known truth for calibrating and testing the reconstruction.

Runs the production stages in this process (no files, no dask): a generator or a table of
single muons, then ``muon_propagation`` → ``direct_light`` → ``pmt_response`` → ``trigger``,
each with its own per-event seeds (DESIGN.md §6), so a sample is reproducible from its seed.
Used by :func:`km3sim.reco.energy.calibrate_track_energy`, ``tests/reco`` and
``benchmarks/bench_reco.py``.
"""

from __future__ import annotations

import math

import numpy as np

from km3sim.schema import make_table
from km3sim.stage import Site, StageContext, get_stage
from km3sim.table import Table

__all__ = ["single_muons", "simulate_chain", "stage_context", "CHAIN"]

#: The stages after the generator, in order.
CHAIN = ("muon_propagation", "direct_light", "pmt_response", "trigger")


def stage_context(detector, site: Site, event_ids, stage: str, seed: int = 1, run_id: int = 1) -> StageContext:
    """A :class:`~km3sim.stage.StageContext` for running one stage in-process."""
    ids = np.asarray(event_ids, dtype=np.int64)
    return StageContext(seed=seed, run_id=run_id, chunk=0, stage_name=stage, event_ids=ids, livetime_s=1.0,
                        n_events_run=max(len(ids), 1), detector=detector, site=site)


def single_muons(detector, n: int, energy_gev=(1e3, 1e5), seed: int = 1, cos_zenith=(-1.0, 1.0),
                 impact_fraction: float = 0.7, first_id: int = 0, start_distance_m: float = 2000.0):
    """``events`` and ``mc_tracks`` of ``n`` single muons (µ⁻) aimed at the detector.

    Directions are isotropic in the given cos(zenith) range (cosθ = dir_z, > 0 up-going);
    energies log-uniform in ``energy_gev`` (or fixed if a number); each track passes through a
    point uniform on the disk of radius ``impact_fraction`` × the footprint radius around the
    detector centre, perpendicular to its direction. The muons start ``start_distance_m``
    before that point (``muon_propagation`` moves them to the can and sets the energy there).
    """
    rng = np.random.default_rng(seed)
    c = detector.center()
    cz = rng.uniform(cos_zenith[0], cos_zenith[1], n)
    az = rng.uniform(0.0, 2.0 * math.pi, n)
    s = np.sqrt(np.clip(1.0 - cz * cz, 0.0, None))
    u = np.column_stack([s * np.cos(az), s * np.sin(az), cz])
    e1 = np.cross(u, [0.0, 0.0, 1.0])
    bad = np.linalg.norm(e1, axis=1) < 1e-6
    e1[bad] = [1.0, 0.0, 0.0]
    e1 /= np.linalg.norm(e1, axis=1)[:, None]
    e2 = np.cross(u, e1)
    radius = impact_fraction * float(detector.footprint_radius())
    a = rng.uniform(0.0, 2.0 * math.pi, n)
    rr = radius * np.sqrt(rng.uniform(0.0, 1.0, n))
    p = c + rr[:, None] * (np.cos(a)[:, None] * e1 + np.sin(a)[:, None] * e2) - start_distance_m * u
    if np.ndim(energy_gev) == 0:
        energy = np.full(n, float(energy_gev))
    else:
        energy = 10.0 ** rng.uniform(math.log10(energy_gev[0]), math.log10(energy_gev[1]), n)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    one = np.ones(n)
    common = dict(pos_x=p[:, 0], pos_y=p[:, 1], pos_z=p[:, 2], dir_x=u[:, 0], dir_y=u[:, 1], dir_z=u[:, 2])
    events = make_table("events", event_id=ids, run_id=np.ones(n, np.int32), mc_time=np.zeros(n),
                        pdgid=np.full(n, 13, np.int32), n_muons=np.ones(n, np.int32), energy=energy,
                        n_gen=np.full(n, n), livetime_s=one, **common)
    tracks = make_table("mc_tracks", event_id=ids, track_id=np.zeros(n, np.int32), parent_id=np.full(n, -1, np.int32),
                        pdgid=np.full(n, 13, np.int32), energy=energy, time=np.zeros(n), length=np.zeros(n),
                        energy_lost_in_can=np.zeros(n), **common)
    return events, tracks


def simulate_chain(detector, site: Site, tables: dict[str, Table], seed: int = 1, configs: dict | None = None,
                   stages=CHAIN) -> dict[str, Table]:
    """Run ``stages`` (default :data:`CHAIN`) on ``events`` + ``mc_tracks`` in this process.

    Parameters
    ----------
    configs : dict, optional
        Stage name -> config dict (e.g. ``{"trigger": {"preset": "orca6"},
        "pmt_response": {"k40_rate_hz": 7000}}``).

    Returns
    -------
    dict of Table
        The input tables plus every table the stages produced (``mc_tracks`` replaced by the
        propagated one).
    """
    configs = configs or {}
    out = dict(tables)
    ids = np.asarray(out["events"]["event_id"], dtype=np.int64)
    for name in stages:
        cls = get_stage(name)
        stage = cls(cls.Config(**configs.get(name, {})), detector=detector, site=site)
        out.update(stage.run(out, stage_context(detector, site, ids, name, seed)))
    return out
