"""The sizes of the sampler networks (:class:`TATSConfig`, :class:`TokenScoreNetConfig`), without torch.

Kept apart from the networks (:mod:`agents.policies.tats_network`, :mod:`agents.policies.score_net`,
:mod:`agents.policies.token_policy`, which re-export them) so that the command lines' ``--help`` is
built from these dataclasses without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tats_env.checks import FieldChecks

__all__ = ["CriticKind", "TATSConfig", "TokenScoreNetConfig", "network_size_problems"]

CriticKind = Literal["none", "separate"]
"""The critic of token-level PPO: ``none`` (the value is one bias) or ``separate`` (its own trunk)."""


def network_size_problems(dim: int, depth: int, num_heads: int, mlp_ratio: float,
                          score_limit: float) -> Iterator[tuple[str, str]]:
    """Range rules every scorer network's size fields share (see :mod:`tats_env.checks`)."""
    if dim < 1:
        yield "dim", "must be >= 1"
    if depth < 1:
        yield "depth", "must be >= 1"
    if num_heads < 1:
        yield "num_heads", "must be >= 1"
    elif dim >= 1 and dim % num_heads:
        yield "dim", f"must be a multiple of num_heads ({num_heads})"
    if not mlp_ratio > 0:
        yield "mlp_ratio", "must be > 0"
    if not score_limit > 0:
        yield "score_limit", "must be > 0"


@dataclass(frozen=True)
class TATSConfig(FieldChecks):
    """Sizes of the trajectory-aware scorer network (the defaults: the small scorer every learner uses)."""

    dim: int = 32
    """Width of the scorer's tokens."""
    depth: int = 1
    """Trajectory-attention blocks per trunk."""
    num_heads: int = 2
    """Attention heads."""
    mlp_ratio: float = 2.0
    """MLP hidden width as a multiple of ``dim``."""
    drop_path: float = 0.0
    """Stochastic depth of the last block."""
    share_trunk: bool = False
    """One trunk for actor and critic (cheapest); False (default) gives the critic its own trunk."""
    score_limit: float = 10.0
    """Scores are squashed to ``(-limit, limit)`` by ``limit * tanh(raw / limit)``: keeps the
    K-of-N distribution well conditioned and bounds how peaked the policy can get."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from network_size_problems(self.dim, self.depth, self.num_heads, self.mlp_ratio, self.score_limit)
        if not 0.0 <= self.drop_path < 1.0:
            yield "drop_path", "must be in [0, 1)"


@dataclass(frozen=True)
class TokenScoreNetConfig(FieldChecks):
    """Sizes of the AdaMAE-style token network."""

    dim: int = 32
    """Width of the sampler's tokens."""
    depth: int = 1
    """Standard transformer blocks (AdaMAE uses one)."""
    num_heads: int = 2
    """Attention heads."""
    mlp_ratio: float = 2.0
    """MLP hidden width as a multiple of ``dim``."""
    score_limit: float = 10.0
    """Scores are squashed to ``(-limit, limit)`` (``limit * tanh(raw / limit)``), as in TATS."""

    def field_problems(self) -> Iterator[tuple[str, str]]:
        """Out-of-range fields (see :mod:`tats_env.checks`)."""
        yield from network_size_problems(self.dim, self.depth, self.num_heads, self.mlp_ratio, self.score_limit)
