"""Reconstruction: JMuon-style track fits and JShower-style shower fits that run on simulated and real data."""

from km3sim.reco.track import (
    JLINEFIT,
    JMUONENERGY,
    JMUONGANDALF,
    JMUONPREFIT,
    JMUONSIMPLEX,
    JMUONSTART,
    JPP_RECONSTRUCTION_TYPE,
)
from km3sim.reco.shower import JSHOWERCOMPLETEFIT, JSHOWERPOSITIONFIT, JSHOWERPREFIT  # registers "shower_fit"

__all__ = [
    "JPP_RECONSTRUCTION_TYPE",
    "JMUONPREFIT",
    "JMUONSIMPLEX",
    "JMUONGANDALF",
    "JMUONENERGY",
    "JMUONSTART",
    "JLINEFIT",
    "JSHOWERPREFIT",
    "JSHOWERPOSITIONFIT",
    "JSHOWERCOMPLETEFIT",
]
