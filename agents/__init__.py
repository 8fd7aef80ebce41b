"""The RL side: trajectory attention, the TATS actor-critic, the exact K-of-N distribution, SB3 policy, samplers."""

from agents.hyperparams import A2CConfig, PPOConfig, ReinforceConfig, SACConfig, SamplerConfig
from agents.kofn_distribution import KOfNMaskDistribution, KSubsetDistribution
from agents.loop import StepwiseAgent
from agents.policy import TATSPolicy, TokenEmbeddings
from agents.reinforce import Reinforce, TokenScoreNetConfig
from agents.tats_network import TATSConfig, TATSNetwork
from agents.token_policy import TokenTATSPolicy
from agents.token_ppo import TokenPPO, TokenPPOConfig
from agents.trajectory_attention import TrajectoryAttention, TrajectoryBlock

__all__ = [
    "KOfNMaskDistribution", "KSubsetDistribution", "TATSPolicy", "TokenEmbeddings", "TATSConfig",
    "TATSNetwork", "TrajectoryAttention", "TrajectoryBlock", "Reinforce", "TokenScoreNetConfig", "StepwiseAgent",
    "PPOConfig", "A2CConfig", "SACConfig", "ReinforceConfig", "SamplerConfig", "TokenPPO", "TokenPPOConfig",
    "TokenTATSPolicy",
]
