"""Physical constants and site parameters in km3sim's internal units (m, ns, GeV, rad).

Sources are given per constant; see ``shared/PHYSICS.md`` for the derivations.
"""

import math

#: Speed of light in vacuum [m/ns].
C_LIGHT = 0.299792458

#: Fine-structure constant.
ALPHA_EM = 1.0 / 137.035999

#: Muon mass [GeV].
MUON_MASS = 0.1056583755

#: Avogadro constant [1/mol].
AVOGADRO = 6.02214076e23

#: Density of sea water [g/cm^3] (Jpp DENSITY_SEA_WATER).
DENSITY_SEA_WATER = 1.038

#: Density of rock below the sea floor [g/cm^3] (Jpp, gSeaGen media file).
DENSITY_ROCK = 2.65

#: Phase index of refraction of sea water used by aanet/km3pipe (n at ~470 nm).
INDEX_OF_REFRACTION_PHASE = 1.3499

#: Group index of refraction used by Jpp PDFs (INDEX_OF_REFRACTION_WATER).
INDEX_OF_REFRACTION_GROUP = 1.3800851282

#: Cosine and angle of the Cherenkov cone for the phase index above.
COS_CHERENKOV = 1.0 / INDEX_OF_REFRACTION_PHASE
THETA_CHERENKOV = math.acos(COS_CHERENKOV)
SIN_CHERENKOV = math.sin(THETA_CHERENKOV)
TAN_CHERENKOV = math.tan(THETA_CHERENKOV)

#: KM3NeT trigger-mask bit numbers (km3io trigger.py).
TRIGGER_BIT_3DSHOWER = 1
TRIGGER_BIT_MXSHOWER = 2
TRIGGER_BIT_3DMUON = 4
TRIGGER_BIT_NB = 5
TRIGGER_BIT_FACTORY_LIMIT = 31

#: PDG codes.
PDG_MUON = 13
PDG_ANTIMUON = -13
