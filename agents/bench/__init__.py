"""The benchmark layer: which sampler gives the best encoder for the same pre-training budget?

``matrix`` runs cells (method x mask ratio x seed), ``evaluation`` measures them (held-out
reconstruction, env statistics), ``report`` writes tables and plots, ``timing`` holds the
side-by-side speed/memory helpers of the ``experiments/bench_*.py`` scripts. Nothing in the
training path (``agents.job.trainer`` and what it imports) imports this package.
"""
