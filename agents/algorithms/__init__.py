"""Learners and fixed maskers behind the one :class:`agents.algorithms.base.Sampler` interface, each with its config."""
