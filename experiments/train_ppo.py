"""Co-train a video MAE and a masking sampler (TATS + PPO by default) on the masking env: the main job.

    python experiments/train_ppo.py                      # synthetic data, tiny preset, CPU, minutes
    python experiments/train_ppo.py --preset base --data lists/k400_train.txt --device cuda --out runs/base
    python experiments/train_ppo.py --method reinforce --total-steps 2000 --out runs/reinforce
    python experiments/train_ppo.py --out runs/tats --resume   # continue a killed run with its saved config
    python experiments/train_ppo.py --out runs/tats --overwrite   # start over in a folder that holds a run
    python experiments/train_ppo.py --config my_run.yaml      # YAML: option names as keys, flags override
    torchrun --nproc_per_node 4 experiments/train_ppo.py --preset base --device cuda --out runs/ddp   # 4 GPUs

Every option with its default: ``python experiments/train_ppo.py --help``. A bad option, a run
folder that does not fit the request, or a diverging run end with one ``error:`` line on stderr
(exit status 2 for options, 1 otherwise) instead of a traceback.

Ctrl-C stops at the next checkpoint boundary (the next warm-up chunk or rollout start), saves a
checkpoint there that resumes exactly, and exits 130 with the ``--resume`` command; a second Ctrl-C
stops at once, keeping the last checkpoint. ``--resume`` of a finished run (its budget done, its
summary written) changes nothing: it prints one line saying so and exits 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agents.job.checkpoint import CheckpointError
from agents.job.distributed import is_main_process
from agents.job.guards import NonFiniteError, TrainingInterrupted
from agents.job.progress import report_lines
from agents.job.run_dir import RunDirError, RunFinished
from agents.job.config import parse_train_config
from agents.job.trainer import train
from agents.job.validation import ConfigError
from tats_env.data.dataset import NoUsableVideoError


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse the command line, train, print where everything is (rank 0 alone under torchrun)."""
    try:
        cfg = parse_train_config(argv)
        summary = train(cfg)
    except ConfigError as exc:
        print("\n".join(f"train_ppo.py: error: {line}" for line in str(exc).splitlines()), file=sys.stderr)
        raise SystemExit(2) from None
    except (RunDirError, CheckpointError, NonFiniteError, NoUsableVideoError) as exc:
        print(f"train_ppo.py: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except RunFinished as done:
        if is_main_process():
            print(f"train_ppo.py: {done}")
        return done.summary
    except TrainingInterrupted as exc:
        if is_main_process():
            print(f"\ntrain_ppo.py: {exc}", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        out = cfg.out if "cfg" in locals() else "<--out>"
        print(f"\ntrain_ppo.py: interrupted; the last checkpoint in {out} is kept (written at the last checkpoint "
              f"boundary); continue with: python experiments/train_ppo.py --out {out} --resume", file=sys.stderr)
        raise SystemExit(130) from None
    if is_main_process():
        print("\n".join(report_lines(summary)))
    return summary


if __name__ == "__main__":
    main()
