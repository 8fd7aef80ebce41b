"""Co-train a video MAE and a masking sampler (TATS + PPO by default) on the masking env: the main job.

    python experiments/train_ppo.py                      # synthetic data, tiny preset, CPU, minutes
    python experiments/train_ppo.py --preset base --data lists/k400_train.txt --device cuda --out runs/base
    python experiments/train_ppo.py --method reinforce --total-steps 2000 --out runs/reinforce
    python experiments/train_ppo.py --out runs/tats --resume   # continue a killed run with its saved config
    python experiments/train_ppo.py --out runs/tats --overwrite   # start over in a folder that holds a run
    python experiments/train_ppo.py --config my_run.yaml      # YAML: option names as keys, flags override
    torchrun --nproc_per_node 4 experiments/train_ppo.py --preset base --device cuda --out runs/ddp   # 4 GPUs

The same command as the installed ``tats-train`` (:mod:`agents.cli.train`). Every option with its
default: ``python experiments/train_ppo.py --help``. A bad option, a run folder that does not fit
the request, or a diverging run end with one ``error:`` line on stderr (exit status 2 for options,
1 otherwise) instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.cli import train as _cli


def main(argv: Sequence[str] | None = None) -> dict:
    """``tats-train`` under this script's name."""
    return _cli.main(argv, prog="train_ppo.py")


if __name__ == "__main__":
    main()
