"""Median ν–lepton kinematic angle of the ``neutrinos`` generator (CC, νμ and ν̄μ and a 50/50 mix).

Compared with the ANTARES-proposal rule of thumb 0.7°·(E/TeV)^-0.6 (astro-ph/9907432).

Usage: ``python benchmarks/bench_kinematic_angle.py [n_events]``
"""
import sys
import numpy as np
from km3sim.generators.neutrinos import NeutrinoGenerator
from km3sim.physics import xsec

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
rng = np.random.default_rng(2026)
print("E_nu [GeV]   median angle [deg]: nu_mu CC, nubar_mu CC, 50/50 mix | 0.7 deg (E/TeV)^-0.6")
for e in (1e2, 1e3, 1e4, 1e5):
    med = []
    angs = []
    for pdg in (14, -14):
        E = np.full(n, e); P = np.full(n, pdg)
        u = rng.random((n, 5))
        y = xsec.sample_inelasticity(u[:, 0], u[:, 1], E, P, "cc")
        d = np.tile([0.0, 0.0, -1.0], (n, 1))
        k = NeutrinoGenerator.dis_kinematics(d, E, P, np.zeros(n, int), y, u[:, 0], u[:, 2], u[:, 3], u[:, 4])
        a = np.degrees(np.arccos(np.clip(-k["lepton_dir"][:, 2], -1, 1)))
        med.append(np.median(a)); angs.append(a)
    print(f"{e:10.0e}   {med[0]:.4f}  {med[1]:.4f}  {np.median(np.concatenate(angs)):.4f} | {0.7 * (e / 1e3) ** -0.6:.4f}")
