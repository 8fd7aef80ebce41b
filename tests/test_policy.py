"""TATSPolicy: SB3 integration, initialisation, save/load, and learning a bandit to near-oracle reward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from agents import TATSConfig, TATSPolicy
from tats_env import make_vec_env
from tats_env.env import KOfNMask


class HiddenTokenBandit(gym.Env):
    """N = 2x2x2 tokens; K = 2 of them carry a marker feature; reward = share of markers masked."""

    def __init__(self, seed: int = 0) -> None:
        self.n, self.k, self.d = 8, 2, 8
        self.observation_space = gym.spaces.Box(-5, 5, (self.n, self.d), np.float32)
        self.action_space = KOfNMask(self.n, self.k, seed=seed)
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs = self._rng.normal(0, 0.3, (self.n, self.d)).astype(np.float32)
        self._targets = self._rng.choice(self.n, self.k, replace=False)
        obs[self._targets, 0] += 3.0
        self._obs = obs
        return obs, {}

    def step(self, action):
        reward = float(np.asarray(action)[self._targets].sum() / self.k)
        return self._obs, reward, True, False, {}


def _bandit_model(algo=PPO, **kwargs):
    vec = DummyVecEnv([lambda i=i: HiddenTokenBandit(seed=i) for i in range(8)])
    cfg = TATSConfig(dim=16, num_heads=2, depth=1)
    return algo(TATSPolicy, vec, policy_kwargs={"tats_config": cfg, "grid": (2, 2, 2)}, seed=0, device="cpu", **kwargs)


def test_ppo_learns_bandit_to_near_oracle():
    torch.set_num_threads(1)
    model = _bandit_model(n_steps=8, batch_size=32, n_epochs=4, gamma=0.0, learning_rate=3e-3)
    env = HiddenTokenBandit(seed=123)
    def mean_reward(n=200):
        total = 0.0
        for i in range(n):
            obs, _ = env.reset(seed=1000 + i)
            action, _ = model.predict(obs, deterministic=True)
            total += env.step(action)[1]
        return total / n
    before = mean_reward()
    model.learn(6000)
    after = mean_reward()
    assert before < 0.5  # random masking hits 2 of 8 markers: 0.25 expected
    assert after >= 0.9, f"oracle is 1.0; learned policy got {after:.3f}"


def test_initialisation_survives_sb3():
    model = _bandit_model(n_steps=2, batch_size=16)
    qkv = model.policy.mlp_extractor.actor_trunk.blocks[0].attn.qkv.weight
    # trunc-normal std 0.02, not SB3's orthogonal init with gain sqrt(2) (std ~0.5 for a 16-wide layer)
    assert 0.01 < qkv.std().item() < 0.03
    assert model.policy.ortho_init is False
    with pytest.warns(UserWarning, match="ortho_init"):
        PPO(TATSPolicy, DummyVecEnv([HiddenTokenBandit]), n_steps=2, batch_size=2,
            policy_kwargs={"tats_config": TATSConfig(dim=16, num_heads=2), "grid": (2, 2, 2), "ortho_init": True})


def test_actions_are_exact_k_and_save_load_roundtrip(synthetic_root, tmp_path):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2)
    model = PPO(TATSPolicy, vec, n_steps=2, batch_size=4, n_epochs=1, seed=0,
                policy_kwargs={"tats_config": TATSConfig(dim=32, num_heads=2)})
    model.learn(8)
    obs = vec.reset()
    sampled, _ = model.predict(obs, deterministic=False)
    assert sampled.shape == (2, 512) and (sampled.sum(1) == 461).all()
    det, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "ppo_tats")
    loaded = PPO.load(tmp_path / "ppo_tats", env=vec)
    again, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(det, again)
    assert loaded.policy.grid == (8, 8, 8)


def test_a2c_runs_with_tats_policy(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2)
    model = A2C(TATSPolicy, vec, n_steps=2, seed=0, policy_kwargs={"tats_config": TATSConfig(dim=32, num_heads=2)})
    model.learn(8)
    assert model.num_timesteps == 8
    assert vec.engine.num_updates == 4


def test_rejects_plain_multibinary():
    class Plain(HiddenTokenBandit):
        def __init__(self):
            super().__init__()
            self.action_space = gym.spaces.MultiBinary(8)
    with pytest.raises(TypeError, match="KOfNMask"):
        PPO(TATSPolicy, DummyVecEnv([Plain]), policy_kwargs={"grid": (2, 2, 2)})


def test_entropy_without_graph_matches_exact_entropy():
    env = HiddenTokenBandit()
    obs_space, act = env.observation_space, env.action_space
    cfg = TATSConfig(dim=16, num_heads=2)
    torch.manual_seed(0)
    with_grad = TATSPolicy(obs_space, act, lambda _: 1e-3, tats_config=cfg, grid=(2, 2, 2))
    without = TATSPolicy(obs_space, act, lambda _: 1e-3, tats_config=cfg, grid=(2, 2, 2), entropy_grad=False)
    without.load_state_dict(with_grad.state_dict())
    obs = torch.randn(4, 8, 8)
    actions = torch.stack([torch.from_numpy(act.sample()) for _ in range(4)]).float()
    v1, lp1, ent1 = with_grad.evaluate_actions(obs, actions)
    v2, lp2, ent2 = without.evaluate_actions(obs, actions)
    assert torch.allclose(ent1, ent2, atol=1e-5) and torch.allclose(lp1, lp2) and torch.allclose(v1, v2)
    assert ent1.requires_grad and not ent2.requires_grad
    assert lp2.requires_grad
