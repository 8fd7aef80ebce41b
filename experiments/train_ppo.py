"""Co-train a video MAE and the TATS sampler with PPO on the masking env (the main job).

    python experiments/train_ppo.py                      # synthetic data, tiny preset, CPU, minutes
    python experiments/train_ppo.py --preset base --data lists/k400_train.txt --device cuda --out runs/base
    python experiments/train_ppo.py --out runs/tats --resume   # continue a killed run
    python experiments/train_ppo.py --config experiments/configs/train_tiny.yaml

Every option: ``python experiments/train_ppo.py --help``.
"""

from __future__ import annotations

import json

from agents.training import TrainConfig, train
from tats_env.cli import parse_config


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, train, print where everything is."""
    summary = train(parse_config(TrainConfig, argv))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
