"""The RL side of tats-env: sampler networks, the exact K-of-N distribution, learning algorithms, the main job.

Layers, each importing only the ones above it::

    agents.kofn         the exact K-of-N (conditional-Poisson) distribution and token-level credit
    agents.policies     sampler networks: trajectory attention, the TATS scorer / actor-critic, AdaMAE's scorer
    agents.algorithms   learners and fixed maskers behind one Sampler interface, each with its config
    agents.registry     the one place a sampler is named and built (SamplerConfig composes the configs)
    agents.job          the main job: config and checks, the pre-training loop, run folder, checkpoints, logging
    agents.bench        the benchmark harness (nothing on the training path imports it)
"""

from tats_env.lazy import lazy_attributes

# The names below are imported on first use (PEP 562), so ``agents.cli`` and the config modules do not import
# every algorithm (SB3, torch) just because they live in this package.
_LAZY = {
    "Sampler": "agents.algorithms.base",
    "DiversityConfig": "agents.algorithms.configs",
    "Reinforce": "agents.algorithms.reinforce",
    "ReinforceConfig": "agents.algorithms.configs",
    "A2CConfig": "agents.algorithms.configs",
    "PPOConfig": "agents.algorithms.configs",
    "SACConfig": "agents.algorithms.configs",
    "StepwiseSampler": "agents.algorithms.stepwise",
    "TokenPPO": "agents.algorithms.token_ppo",
    "TokenPPOConfig": "agents.algorithms.configs",
    "KOfNMaskDistribution": "agents.kofn.distribution",
    "KSubsetDistribution": "agents.kofn.distribution",
    "PolicyShareDistribution": "agents.kofn.share",
    "TokenScoreNetConfig": "agents.policies.configs",
    "TATSConfig": "agents.policies.configs",
    "TATSNetwork": "agents.policies.tats_network",
    "TATSPolicy": "agents.policies.tats_policy",
    "TokenEmbeddings": "agents.policies.tats_policy",
    "TokenTATSPolicy": "agents.policies.token_policy",
    "TrajectoryAttention": "agents.policies.trajectory_attention",
    "TrajectoryBlock": "agents.policies.trajectory_attention",
    "SamplerConfig": "agents.registry",
    "build_sampler": "agents.registry",
    "sampler_env_config": "agents.registry",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Sampler", "KOfNMaskDistribution", "KSubsetDistribution", "TATSPolicy", "TokenEmbeddings", "TATSConfig",
    "TATSNetwork", "TrajectoryAttention", "TrajectoryBlock", "Reinforce", "TokenScoreNetConfig", "StepwiseSampler",
    "PPOConfig", "A2CConfig", "SACConfig", "ReinforceConfig", "SamplerConfig", "TokenPPO", "TokenPPOConfig",
    "TokenTATSPolicy", "build_sampler", "sampler_env_config", "DiversityConfig", "PolicyShareDistribution",
]
