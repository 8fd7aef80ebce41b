"""Co-train a video MAE and a masking sampler (TATS + PPO by default) on the masking env: the main job.

    python experiments/train_ppo.py                      # synthetic data, tiny preset, CPU, minutes
    python experiments/train_ppo.py --preset base --data lists/k400_train.txt --device cuda --out runs/base
    python experiments/train_ppo.py --method reinforce --total-steps 2000 --out runs/reinforce
    python experiments/train_ppo.py --out runs/tats --resume   # continue a killed run
    python experiments/train_ppo.py --config my_run.yaml      # YAML: option names as keys, flags override
    torchrun --nproc_per_node 4 experiments/train_ppo.py --preset base --device cuda --out runs/ddp   # 4 GPUs

Every option with its default: ``python experiments/train_ppo.py --help``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agents.distributed import is_main_process
from agents.training import TrainConfig, train
from tats_env.commandline import parse


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse the command line, train, print where everything is (rank 0 alone under torchrun)."""
    summary = train(parse(TrainConfig, argv))
    if is_main_process():
        print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
