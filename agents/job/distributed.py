"""Multi-process co-training under ``torchrun`` (``torch.distributed``): one process per GPU (or CPU slot).

    torchrun --nproc_per_node 4 experiments/train_ppo.py --preset base --device cuda --out runs/ddp

What each process (rank) does, and what is shared:

* **Process group** (:func:`distributed_session`): from torchrun's environment variables (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), NCCL on CUDA and gloo on the CPU;
  rank r uses ``cuda:LOCAL_RANK``. Without those variables nothing here does anything: a plain
  ``python experiments/train_ppo.py`` behaves exactly as before.
* **The env's MAE** runs under ``DistributedDataParallel`` through
  :attr:`tats_env.env.engine.CoTrainingEngine.train_module`: rank 0's weights are broadcast once, and
  the gradients are averaged across ranks in the backward of every env step, so every rank takes the
  same AdamW step on the global batch (``num_envs x world size`` clips).
* **The sampler's gradients** are averaged the same way, by DDP around the method that builds its
  loss (:func:`ddp_method`), which each sampler names itself
  (:meth:`agents.algorithms.base.Sampler.ddp_targets`): ``policy.evaluate_actions`` for SB3's
  PPO/A2C (so SB3's ``clip_grad_norm_`` sees the averaged gradient, and ``PPO.train`` stays
  untouched), ``policy.evaluate_tokens`` for token-level PPO, the scorer's ``forward`` for
  REINFORCE. Weights therefore stay bit-identical across ranks; :func:`distributed_summary`
  checks that with a SHA-256 digest per rank.
* **Data**: each rank streams its own shard of the videos with its own augmentation seed
  (:class:`tats_env.env.clips.ClipStream`); each rank's masks and PPO samples come from its own
  random streams (:func:`reseed_rank`; rank 0 keeps the run's seed).
* **Counters** count every rank's clips (:class:`GlobalClipCounter`): ``--total-steps``,
  ``--warmup-steps``, checkpoint and image intervals and the TensorBoard x-axis are global clips.
* **Rank 0 alone writes** TensorBoard/CSV (the run logger), images, checkpoints, exports,
  ``config.json`` and ``summary.json`` (:func:`is_main_process`); ``--resume`` makes every rank load the
  same checkpoint (on multi-node runs ``--out`` must be on a shared filesystem).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from agents.algorithms.base import Sampler
from agents.job.callbacks import MaskImageCallback
from tats_env.env.clips import process_shard, shard_seed
from tats_env.env.engine import CoTrainingEngine

__all__ = [
    "launched_by_torchrun", "is_distributed", "get_rank", "get_world_size", "is_main_process", "rank_device",
    "init_distributed", "distributed_session", "ddp_method", "distribute_engine", "distribute_sampler",
    "distribute_trainer", "reseed_rank", "GlobalClipCounter", "clip_counters", "rank_callbacks", "barrier",
    "replica_digest", "distributed_summary",
]

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# --- process group and ranks -------------------------------------------------------------------------------

def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """True while a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank: from the process group, else torchrun's ``RANK`` variable, else 0."""
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", 0))


def get_world_size() -> int:
    """Processes training together: the process group's size, 1 without one."""
    return process_shard()[1]


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single-process run): the one process that writes files."""
    return get_rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """``cuda`` without an index becomes ``cuda:LOCAL_RANK`` under torchrun; anything else is returned as is."""
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> bool:
    """Join torchrun's process group (NCCL for CUDA, gloo otherwise); False, doing nothing, outside torchrun."""
    if not launched_by_torchrun() or is_distributed():
        return False
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


@contextmanager
def distributed_session(device: torch.device) -> Iterator[bool]:
    """Run the body inside torchrun's process group (yields whether one was started here).

    On a normal exit every rank waits for the others (rank 0 may still be exporting) before the
    group is destroyed; after an exception the group is destroyed at once (torchrun stops the rest).
    """
    started = init_distributed(device)
    try:
        yield started
        if started and dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        elif started:
            dist.barrier()
    finally:
        if started:
            dist.destroy_process_group()


# --- DDP of the MAE and of the sampler ---------------------------------------------------------------------

def _ddp_kwargs(device: torch.device, find_unused_parameters: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"find_unused_parameters": find_unused_parameters}
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index if device.index is not None else torch.cuda.current_device()]
    # The buffers here are constant position tables: never sync them in forward, where a forward on rank 0
    # alone (the mask images) would wait for the other ranks. (torch >= 2.12 renamed the option.)
    sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters \
        else "broadcast_buffers"
    kwargs[sync] = False
    return kwargs


class _MethodModule(nn.Module):
    """``forward(*args)`` is ``module.<method>(*args)`` as its class defines it: lets DDP wrap any method."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(type(self.module), self.method)(self.module, *args, **kwargs)


def ddp_method(module: nn.Module, method: str, device: torch.device,
               find_unused_parameters: bool = True) -> DistributedDataParallel:
    """Route ``module.<method>(...)`` through ``DistributedDataParallel`` (a sampler's loss-building method).

    Broadcasts rank 0's parameters now; afterwards every backward through that method's outputs
    averages ``module``'s gradients across ranks before the caller clips and steps. Outputs that
    the loss ignores (a value head under an EMA baseline) are fine: their parameters keep no
    gradient on any rank. The wrapper is an instance attribute, not a submodule, so ``state_dict``
    and checkpoints keep their names.
    """
    ddp = DistributedDataParallel(_MethodModule(module, method), **_ddp_kwargs(device, find_unused_parameters))
    object.__setattr__(module, method, ddp)
    return ddp


def distribute_engine(engine: CoTrainingEngine) -> None:
    """Put the env's MAE under DDP: rank 0's weights everywhere, gradients averaged in every update."""
    engine.train_module = DistributedDataParallel(engine.model, **_ddp_kwargs(engine.device, False))


def distribute_sampler(sampler: Sampler, device: torch.device) -> None:
    """Average the sampler's gradients across ranks: DDP around every loss method it names (fixed maskers: none);
    a sampler that cannot train this way raises ``NotImplementedError``."""
    for target in sampler.ddp_targets():
        ddp_method(target.module, target.method, device, find_unused_parameters=target.find_unused_parameters)


def reseed_rank(seed: int, sampler: Sampler | None = None) -> None:
    """Give ranks > 0 their own random streams (python, numpy, torch; the sampler's own); rank 0 keeps its own."""
    rank = get_rank() if is_distributed() else 0
    if rank == 0:
        return
    own = shard_seed(seed, rank)
    set_random_seed(own)
    if sampler is not None:
        sampler.reseed(own)


def distribute_trainer(trainer: Any) -> None:
    """DDP for a built :class:`agents.job.trainer.CoTrainer`'s MAE and sampler, per-rank seeds; no-op in one process."""
    if not is_distributed():
        return
    distribute_engine(trainer.env.engine)
    distribute_sampler(trainer.sampler, trainer.device)
    reseed_rank(trainer.cfg.env.seed, trainer.sampler)


# --- counters, callbacks, logging --------------------------------------------------------------------------

class GlobalClipCounter(BaseCallback):
    """Makes the learner's ``num_timesteps`` count every rank's clips: adds the other ranks' batches after each step.

    Put it first among the callbacks, so that the others (checkpoint and image intervals) and the
    learn loop's stopping test see global clips; every rank then stops after the same env step.
    """

    def __init__(self, world_size: int) -> None:
        super().__init__()
        self.world_size = world_size

    def _on_step(self) -> bool:
        self.model.num_timesteps += (self.world_size - 1) * self.training_env.num_envs
        return True


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def clip_counters() -> list[BaseCallback]:
    """``[GlobalClipCounter]`` under torch.distributed, else ``[]`` (for learn loops without other callbacks)."""
    world = get_world_size()
    return [GlobalClipCounter(world)] if world > 1 else []


def rank_callbacks(callbacks: list[BaseCallback]) -> list[BaseCallback]:
    """The callbacks this rank runs: unchanged in one process; else the global clip counter first, and images
    on rank 0 only (the checkpoint callback stays everywhere: saving is rank-0-only itself; the run's progress
    bar is created disabled on the other ranks)."""
    world = get_world_size()
    if world == 1:
        return callbacks
    main = is_main_process()
    kept = [callback for callback in callbacks if main or not isinstance(callback, MaskImageCallback)]  # rank-0 files
    return [GlobalClipCounter(world), *kept]


# --- checks and summary ------------------------------------------------------------------------------------

def replica_digest(state_dicts: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """SHA-256 over named state dicts (names, dtypes, shapes and bytes): equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for prefix, state in state_dicts.items():
        for name, tensor in state.items():
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{prefix}.{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def trainer_weights(trainer: Any) -> dict[str, Mapping[str, torch.Tensor]]:
    """The weights every rank must share: the env's MAE and the sampler's network (when it has one)."""
    weights: dict[str, Mapping[str, torch.Tensor]] = {"mae": trainer.env.engine.model.state_dict()}
    network = trainer.sampler.network
    if isinstance(network, nn.Module):
        weights["sampler"] = network.state_dict()
    return weights


def distributed_summary(trainer: Any) -> dict[str, Any]:
    """``world_size`` and ``global_batch``; under torch.distributed also every rank's weight digest,
    whether they agree, and the bad videos skipped on all ranks. Collective: call it on every rank."""
    world = get_world_size()
    summary: dict[str, Any] = {"world_size": world, "global_batch": trainer.cfg.num_envs * world}
    if world > 1:
        digests: list[Any] = [None] * world
        dist.all_gather_object(digests, replica_digest(trainer_weights(trainer)))
        bad: list[Any] = [None] * world
        dist.all_gather_object(bad, dict(trainer.env.core.clips.bad_videos))
        merged = {path: reason for videos in bad for path, reason in videos.items()}
        summary.update(replica_sha256=digests, replicas_identical=len(set(digests)) == 1,
                       skipped_videos=len(merged), bad_videos=merged)
    return summary
