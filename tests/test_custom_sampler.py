"""A new learned sampler is one class and one registry line: it then trains through the main job and the benchmark.

The sampler below is the README's worked example: a position-only learner (one score per token
position, no network over the clip) trained with the exact token-level rule on the env's
per-token errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from agents.algorithms.stepwise import StepwiseSampler
from agents.algorithms.token_ppo import token_errors_from_infos
from agents.kofn.credit import token_advantages, token_policy_loss
from agents.kofn.distribution import KSubsetDistribution
from agents.registry import SAMPLERS, SamplerSpec, register_sampler


class PositionScores(StepwiseSampler):
    """Learns one masking score per token position from per-token errors (exact K-subset inclusion probabilities)."""

    needs_token_info = True

    def __init__(self, env: Any, learning_rate: float = 0.05, direction: str = "mask_hard", seed: int = 0) -> None:
        super().__init__(env)
        self.scores = nn.Parameter(torch.zeros(env.action_space.n))
        self.optimizer = torch.optim.Adam([self.scores], lr=learning_rate)
        self.direction = direction
        self.generator = torch.Generator().manual_seed(seed)
        env.seed(seed)

    @property
    def network(self) -> nn.Module:
        return nn.ParameterList([self.scores])

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def _distribution(self, batch: int) -> KSubsetDistribution:
        return KSubsetDistribution(self.scores.expand(batch, -1), self.env.action_space.k)

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, KSubsetDistribution]:
        distribution = self._distribution(len(observation))
        return distribution.sample(self.generator).numpy().astype(np.int8), distribution

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        distribution = self._distribution(len(observation))
        masks = distribution.mode() if deterministic else distribution.sample(self.generator)
        return masks.numpy().astype(np.int8), None

    def predict_scores(self, observation: np.ndarray) -> torch.Tensor:
        return self.scores.detach().expand(len(observation), -1)

    def update(self, context: KSubsetDistribution, rewards: np.ndarray, infos: list[dict[str, Any]]) -> dict[str, float]:
        errors = torch.from_numpy(np.array(token_errors_from_infos(infos)))
        mask = torch.isfinite(errors)
        advantages = token_advantages(errors, mask, self.direction)
        inclusion = context.inclusion_probs()
        loss, _ = token_policy_loss(inclusion, inclusion.detach(), advantages, mask, None)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.n_updates += 1
        return {"policy_loss": float(loss)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "scores": self.scores.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.scores.copy_(state["scores"])
        self.optimizer.load_state_dict(state["optimizer"])


def _register() -> None:
    if "position_scores" not in SAMPLERS:
        register_sampler(SamplerSpec("position_scores", "learned", "one score per token position (README example)",
                                     lambda env, cfg, seed, device: PositionScores(env, direction=cfg.direction, seed=seed),
                                     ("direction",), token_info=True))


def test_a_registered_sampler_trains_through_the_main_job(synthetic_root, tmp_path):
    from agents.job.config import TrainConfig
    from agents.job.trainer import train
    from agents.job.checkpoint import load_checkpoint

    _register()
    cfg = TrainConfig(method="position_scores", total_steps=16, warmup_steps=8, num_envs=4, out=tmp_path / "run",
                      progress_bar=False, export_formats=("native",))
    cfg.env = type(cfg.env)(**{**cfg.env.__dict__, "data": str(synthetic_root)})
    summary = train(cfg)
    assert summary["method"] == "position_scores" and summary["clips"] == 24
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    scores = state["sampler"]["agent"]["scores"]
    assert state["num_timesteps"] == 16 and torch.isfinite(scores).all() and scores.abs().sum() > 0  # it learned


def test_a_registered_sampler_runs_in_the_benchmark(tmp_path):
    from agents.bench.matrix import BenchmarkConfig, run_benchmark

    _register()
    result = run_benchmark(BenchmarkConfig(quick=True, methods=("position_scores", "random"), isolate=False,
                                           downstream=False, jobs=1, out=tmp_path / "bench"))
    assert not result.failed, result.failed
    assert sorted(result.ran) == ["position_scores_r0.9_s0", "random_r0.9_s0"]
    assert "position_scores" in (tmp_path / "bench" / "results.md").read_text()
