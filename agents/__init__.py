"""The RL side: trajectory attention, the TATS actor-critic, the exact K-of-N distribution, SB3 policy."""

from agents.kofn_distribution import KOfNMaskDistribution, KSubsetDistribution
from agents.policy import TATSPolicy, TokenEmbeddings
from agents.reinforce import Reinforce, ReinforceConfig
from agents.tats_network import TATSConfig, TATSNetwork
from agents.trajectory_attention import TrajectoryAttention, TrajectoryBlock

__all__ = [
    "KOfNMaskDistribution", "KSubsetDistribution", "TATSPolicy", "TokenEmbeddings", "TATSConfig",
    "TATSNetwork", "TrajectoryAttention", "TrajectoryBlock", "Reinforce", "ReinforceConfig",
]
