"""Sampler networks: trajectory attention, the TATS scorer / actor-critic (SB3 policies), AdaMAE's token scorer."""
