"""Reconstruction: track fits (and later shower fits) that run on simulated and real data."""

from km3sim.reco.track import REC_TYPE_LINEFIT, REC_TYPE_TRACKFIT

__all__ = ["REC_TYPE_LINEFIT", "REC_TYPE_TRACKFIT"]
