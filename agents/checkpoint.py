"""Atomic training checkpoints: policy, MAE, optimizers, counters and RNG states in one file.

A checkpoint is written with :func:`tats_env.utils.atomic_torch_save` (temporary file, fsync,
``os.replace``), so a run killed mid-write never leaves a truncated checkpoint. The top-level ``mae_config``/``mae_state`` keys make every checkpoint
a valid source for :func:`tats_env.export_encoder`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from tats_env.utils import atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def sampler_state(agent: Any) -> dict[str, Any]:
    """Everything needed to resume a sampler: weights, optimizers, counters.

    SB3 algorithms go through their public ``get_parameters`` (policy and optimizer state dicts);
    SAC's entropy temperature lives outside those and is added. Replay buffers are not saved: a
    resumed SAC refills its buffer. :class:`agents.loop.StepwiseAgent` learners save their own
    ``state_dict``.
    """
    if isinstance(agent, BaseAlgorithm):
        state: dict[str, Any] = {"params": agent.get_parameters(), "num_timesteps": agent.num_timesteps,
                                 "n_updates": agent._n_updates}
        if isinstance(getattr(agent, "log_ent_coef", None), torch.Tensor):
            state["log_ent_coef"] = agent.log_ent_coef.detach().cpu().clone()
        return state
    return {"agent": agent.state_dict()}


def load_sampler_state(agent: Any, state: dict[str, Any]) -> None:
    """Restore :func:`sampler_state` into a sampler built with the same configuration."""
    if isinstance(agent, BaseAlgorithm):
        agent.set_parameters(state["params"], exact_match=True, device=agent.device)
        agent.num_timesteps = int(state["num_timesteps"])
        agent._n_updates = int(state["n_updates"])
        if "log_ent_coef" in state:
            with torch.no_grad():
                agent.log_ent_coef.copy_(state["log_ent_coef"])
        return
    agent.load_state_dict(state["agent"])


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's checkpoint file, or None when it has none yet."""
    path = Path(run_dir) / CHECKPOINT_NAME
    return path if path.is_file() else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (our own files: full unpickling is allowed)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - name the file in the error
        raise RuntimeError(f"cannot read checkpoint {path}: {exc}") from exc
