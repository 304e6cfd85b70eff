"""Interaction physics shared by the generators: neutrino cross sections and inelasticity
(:mod:`km3sim.physics.xsec`) and the Earth model with neutrino transmission
(:mod:`km3sim.physics.earth`)."""
