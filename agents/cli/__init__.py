"""The installed commands of the RL side: ``tats-train`` (the main job) and ``tats-bench`` (the benchmark matrix).

Each module's ``main(argv=None, prog=None)`` is also what ``experiments/train_ppo.py`` and
``experiments/benchmark_algos.py`` call, under their own names for the error lines.
"""
