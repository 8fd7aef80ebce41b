"""``tats-train``: co-train a video MAE and a masking sampler (TATS + PPO by default) on the masking env: the main job.

    tats-train                      # synthetic data, tiny preset, CPU, minutes
    tats-train --preset base --data lists/k400_train.txt --device cuda --out runs/base
    tats-train --method reinforce --total-steps 2000 --out runs/reinforce
    tats-train --out runs/tats --resume       # continue a killed run with its saved config
    tats-train --out runs/tats --overwrite    # start over in a folder that holds a run
    tats-train --config my_run.yaml           # YAML: option names as keys, flags override
    torchrun --nproc_per_node 4 experiments/train_ppo.py --preset base --device cuda --out runs/ddp   # 4 GPUs

Every option with its default: ``tats-train --help``. A bad option, a run folder that does not fit
the request, or a diverging run end with one ``error:`` line on stderr (exit status 2 for options,
1 otherwise) instead of a traceback. Ctrl-C stops at the next checkpoint boundary (the next warm-up
chunk or rollout start), saves a checkpoint there that resumes exactly, and exits 130 with the
``--resume`` command; a second Ctrl-C stops at once, keeping the last checkpoint. ``--resume`` of a
finished run (its budget done, its summary written) changes nothing: it says so and exits 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tats_env.checks import ConfigError
from tats_env.commandline import exit_with_error, prog_name


def _command(prog: str) -> str:
    """How the user runs this command again (for the resume hint)."""
    return f"python experiments/{prog}" if prog.endswith(".py") else prog


def _stopped(exc: BaseException, cfg: object, prog: str | None) -> dict:
    """End the command for ``exc``, raised while parsing or training: one error line (exit 1), the ``--resume``
    hint after Ctrl-C (exit 130), or the summary of a finished run; anything else propagates. The error classes
    are imported here, once one is raised: they live beside the training code (torch)."""
    from agents.job.checkpoint import CheckpointError
    from agents.job.distributed import is_main_process
    from agents.job.guards import NonFiniteError, TrainingInterrupted
    from agents.job.run_dir import RunDirError, RunFinished
    from tats_env.data.dataset import NoUsableVideoError

    name = prog_name(prog)
    if isinstance(exc, (RunDirError, CheckpointError, NonFiniteError, NoUsableVideoError)):
        print(f"{name}: error: {exc}", file=sys.stderr)  # one message (it may go on over lines)
        raise SystemExit(1) from None
    if isinstance(exc, RunFinished):  # --resume of a finished run: nothing was changed
        if is_main_process():
            print(f"{name}: {exc}")
        return exc.summary
    if isinstance(exc, TrainingInterrupted):  # the first Ctrl-C: a checkpoint was saved at the next boundary
        if is_main_process():
            print(f"\n{name}: interrupted; saved a checkpoint at {exc.clips:,} clips in {exc.out}; "
                  f"continue with: {_command(name)} --out {exc.out} --resume", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C (or one under torchrun): stop at once
        out = getattr(cfg, "out", "<--out>")
        print(f"\n{name}: interrupted; the last checkpoint in {out} is kept (written at the last checkpoint "
              f"boundary); continue with: {_command(name)} --out {out} --resume", file=sys.stderr)
        raise SystemExit(130) from None
    raise exc


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> dict:
    """Parse the command line, train, print where everything is (rank 0 alone under torchrun).

    Only the config modules are imported before the command line is parsed, so ``--help`` needs no torch.
    """
    from agents.job.config import parse_train_config

    cfg = None
    try:
        cfg = parse_train_config(argv, prog=prog)
        from agents.job.trainer import train

        summary = train(cfg)
    except SystemExit:  # --help, and the option errors tyro reports itself
        raise
    except ConfigError as exc:
        exit_with_error(exc, prog, code=2)
    except BaseException as exc:
        return _stopped(exc, cfg, prog)
    from agents.job.distributed import is_main_process
    from agents.job.progress import report_lines

    if is_main_process():
        print("\n".join(report_lines(summary)))
    return summary


if __name__ == "__main__":
    main()
