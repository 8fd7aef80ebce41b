"""The RL side of tats-env: sampler networks, the exact K-of-N distribution, learning algorithms, the main job.

Layers, each importing only the ones above it::

    agents.kofn         the exact K-of-N (conditional-Poisson) distribution and token-level credit
    agents.policies     sampler networks: trajectory attention, the TATS scorer / actor-critic, AdaMAE's scorer
    agents.algorithms   learners and fixed maskers behind one Sampler interface, each with its config
    agents.registry     the one place a sampler is named and built (SamplerConfig composes the configs)
    agents.job          the main job: config and checks, the pre-training loop, run folder, checkpoints, logging
    agents.bench        the benchmark harness (nothing on the training path imports it)
"""

from agents.algorithms.base import Sampler
from agents.algorithms.diversity import DiversityConfig
from agents.algorithms.reinforce import Reinforce, ReinforceConfig
from agents.algorithms.sb3 import A2CConfig, PPOConfig, SACConfig
from agents.algorithms.stepwise import StepwiseSampler
from agents.algorithms.token_ppo import TokenPPO, TokenPPOConfig
from agents.kofn.distribution import KOfNMaskDistribution, KSubsetDistribution
from agents.kofn.share import PolicyShareDistribution
from agents.policies.score_net import TokenScoreNetConfig
from agents.policies.tats_network import TATSConfig, TATSNetwork
from agents.policies.tats_policy import TATSPolicy, TokenEmbeddings
from agents.policies.token_policy import TokenTATSPolicy
from agents.policies.trajectory_attention import TrajectoryAttention, TrajectoryBlock
from agents.registry import SamplerConfig, build_sampler, sampler_env_config

__all__ = [
    "Sampler", "KOfNMaskDistribution", "KSubsetDistribution", "TATSPolicy", "TokenEmbeddings", "TATSConfig",
    "TATSNetwork", "TrajectoryAttention", "TrajectoryBlock", "Reinforce", "TokenScoreNetConfig", "StepwiseSampler",
    "PPOConfig", "A2CConfig", "SACConfig", "ReinforceConfig", "SamplerConfig", "TokenPPO", "TokenPPOConfig",
    "TokenTATSPolicy", "build_sampler", "sampler_env_config", "DiversityConfig", "PolicyShareDistribution",
]
