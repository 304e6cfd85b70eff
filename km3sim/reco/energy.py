"""Muon energy from the track brightness (JMuonEnergy-like) and its calibration.

The likelihood fits of :mod:`km3sim.reco.track` describe the light of a muon as a brightness
B times the light of a bare β = 1 track (Frank–Tamm, :func:`km3sim.reco.pdf.muon_npe_table`).
JMuonEnergy fits B on the final track from the charges (ToT) of all PMTs within the road
(:func:`km3sim.reco._kernels.fit_brightness`). A real muon is brighter than a bare track:
δ-rays and other losses below ~0.5 GeV add ΔL/L = λ + κ ln E (Rädel & Wiebusch,
arXiv:1206.5530, PHYSICS.md §5.3) and its radiative losses b·E make showers whose light grows
linearly with E (PHYSICS.md §5.3–5.4); :func:`brightness_to_energy` inverts the relation B(E).

Calibration
-----------
B(E) is taken from simulated muons (:func:`calibrate_track_energy`, the procedure behind the
table below): single muons, log-uniform energies, isotropic, through points uniform on a disk
of 0.7 × the footprint radius around the detector centre, simulated with
:func:`km3sim.reco.samples.simulate_chain` (``muon_propagation`` with stochastic losses,
``direct_light``, ``pmt_response`` with ⁴⁰K, ``trigger``) and reconstructed with the default
:class:`~km3sim.reco.track.TrackFit` chain; E is the muon energy where it enters the can.
:data:`CALIBRATIONS` holds, per site, the median log10 B of the reconstructed events in bins
of 0.5 in log10 E, made non-decreasing; above the last bin B ∝ E (radiative losses dominate)
is assumed, below the first bin B is constant. B depends on the detector (road width, PMT
density), so each site has its own table. Samples (seed 11, ``python
benchmarks/calibrate_energy.py``): ARCA-115 block (6 kHz ⁴⁰K, ARCA21 trigger), 300 muons of
0.3 TeV–10 PeV (253 reconstructed); ORCA-115 block (7 kHz, ORCA6 trigger), 250 muons of
20 GeV–100 TeV (125 reconstructed).

The light model behind it: ``direct_light`` gives the muon its bare light, the Rädel–Wiebusch
ΔL/L of secondaries below 0.5 GeV, the light of the continuous losses between 0.5 GeV and
max(v_cut·E, e_cut) (:mod:`km3sim.propagation.secondaries`: ~1× the bare light at 1 TeV, ~9×
at 10 TeV) and the shower rows of the larger stochastic losses. B therefore grows about ∝ E
above ~1 TeV (log10 B 0.54 → 3.6 from 1.8 TeV to 5.6 PeV in ARCA). In-sample 68 % half-widths
of log10(E_reco/E): 0.06–0.3 (ARCA, 0.1 TeV–10 PeV), 0.08–0.24 (ORCA, 30 GeV–100 TeV). Repeat the
calibration whenever the light model or the track fit changes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CALIBRATIONS", "brightness_to_energy", "energy_to_brightness", "calibrate_track_energy",
           "calibration_table"]

#: Per site: bin centres log10(E/GeV) and median log10 B of reconstructed simulated muons
#: (see the module notes; ``benchmarks/calibrate_energy.py``). Above the last bin B ∝ E.
CALIBRATIONS = {
    "arca": (np.array([2.25, 2.75, 3.25, 3.75, 4.25, 4.75, 5.25, 5.75, 6.25, 6.75]),
             np.array([0.026, 0.228, 0.540, 0.828, 1.322, 1.808, 2.237, 2.709, 3.178, 3.611])),
    "orca": (np.array([1.75, 2.25, 2.75, 3.25, 3.75, 4.25, 4.75]),
             np.array([-0.206, 0.170, 0.321, 0.499, 0.804, 1.287, 1.537])),
}

_SLOPE_HIGH = 1.0  # d log10 B / d log10 E above the table (B ∝ E)


def _table(site: str):
    if site not in CALIBRATIONS:
        site = "arca" if str(site).lower().startswith("arca") else "orca"
    le, lb = CALIBRATIONS[site]
    lb = np.maximum.accumulate(lb)
    # strictly increasing for the inversion (flat stretches get a tiny slope)
    lb = lb + 1e-6 * np.arange(len(lb))
    le_ext = np.concatenate([le, [le[-1] + 3.0]])
    lb_ext = np.concatenate([lb, [lb[-1] + 3.0 * _SLOPE_HIGH]])
    return le_ext, lb_ext


def energy_to_brightness(energy_gev, site: str = "arca"):
    """Median brightness B of a reconstructed muon of energy E [GeV] (calibration of ``site``)."""
    le, lb = _table(site)
    e = np.log10(np.clip(np.asarray(energy_gev, dtype=np.float64), 1.0, None))
    out = 10.0 ** np.interp(e, le, lb)
    return out if out.ndim else float(out)


def brightness_to_energy(brightness, site: str = "arca"):
    """Muon energy [GeV] of a fitted brightness B with the calibration of ``site`` ("arca" or
    "orca"; other names: "orca"). NaN for non-finite or non-positive B; the lowest bin energy
    below the calibrated range; B ∝ E above it."""
    le, lb = _table(site)
    b = np.asarray(brightness, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lgb = np.log10(np.where(b > 0, b, np.nan))
    out = 10.0 ** np.interp(lgb, lb, le)
    out = np.where(np.isfinite(lgb), out, np.nan)
    return out if out.ndim else float(out)


def calibration_table(log10_energy, log10_brightness, edges=None, min_events: int = 5):
    """Median log10 B in bins of log10 E (the calibration step); returns (centres, medians, counts)."""
    le = np.asarray(log10_energy, dtype=np.float64)
    lb = np.asarray(log10_brightness, dtype=np.float64)
    edges = np.arange(1.5, 7.01, 0.5) if edges is None else np.asarray(edges, dtype=np.float64)
    centres, medians, counts = [], [], []
    ok = np.isfinite(le) & np.isfinite(lb)
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = ok & (le >= lo) & (le < hi)
        if s.sum() >= min_events:
            centres.append(0.5 * (lo + hi))
            medians.append(float(np.median(lb[s])))
            counts.append(int(s.sum()))
    return np.array(centres), np.array(medians), np.array(counts)


def calibrate_track_energy(detector, site, n_muons: int = 300, energy_gev=(300.0, 1e7), seed: int = 11,
                           configs: dict | None = None, fit_config=None):
    """Simulate and reconstruct single muons; return (E at the can [GeV], fitted brightness B).

    The procedure behind :data:`CALIBRATION_LOG10_B` (see the module notes); feed the result to
    :func:`calibration_table`. Takes about a minute per 300 muons in a 115-DU block.

    Parameters
    ----------
    detector, site
        Detector and site of the sample.
    configs : dict, optional
        Stage configs of the simulation (:func:`km3sim.reco.samples.simulate_chain`), e.g.
        ``{"pmt_response": {"k40_rate_hz": 6000}}``.
    fit_config : TrackFitConfig, optional
    """
    from km3sim.reco.samples import simulate_chain, single_muons
    from km3sim.reco.track import TrackFitConfig, TrackFitter, iterate_events

    events, tracks = single_muons(detector, n_muons, energy_gev, seed=seed)
    t = simulate_chain(detector, site, {"events": events, "mc_tracks": tracks}, seed=seed, configs=configs)
    fitter = TrackFitter(fit_config or TrackFitConfig(), detector, site)
    mu = t["mc_tracks"]
    mu = mu[(mu["track_id"] == 0)]
    e_true, b_fit = [], []
    for e, ev in iterate_events(t["triggered_events"], t["snapshot_hits"], detector, fitter.cfg.slewing, "track_fit"):
        rows = fitter.fit_event(ev)
        k = int(np.searchsorted(mu["event_id"], e))
        if rows[3]["status"] != 0 or mu["length"][k] <= 0:
            continue
        e_true.append(float(mu["energy"][k]))
        b_fit.append(float(rows[3]["brightness"]))
    return np.array(e_true), np.array(b_fit)


def log10_ratio(estimate, truth):
    """log10(estimate/truth), NaN where either is not positive."""
    a = np.asarray(estimate, dtype=np.float64)
    b = np.asarray(truth, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((a > 0) & (b > 0), np.log10(a / b), np.nan)

