"""Validation against real data: readers of real and km3sim files (:mod:`km3sim.validate.readers`),
distributions of simulation and data (:mod:`km3sim.validate.samples`), statistics
(:mod:`km3sim.validate.stats`) and the HTML report (:mod:`km3sim.validate.report`)."""
