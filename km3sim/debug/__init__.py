"""Single-event debugging: re-simulate one event of a production stage by stage, explain what
each stage did, and draw the event (:mod:`km3sim.debug.event`, :mod:`km3sim.debug.explain`,
:mod:`km3sim.debug.display`)."""

from km3sim.debug.event import EventResimulation, StageRun, resimulate_event

__all__ = ["EventResimulation", "StageRun", "resimulate_event"]
