"""Off-the-shelf SB3 algorithms drive the masking env through the score wrapper (tiny preset)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, SAC

import tats_env
from tats_env import TopKScoreAction, TopKScoreVecAction, make_vec_env


def test_a2c_default_policy_through_wrapper(synthetic_root):
    vec = TopKScoreVecAction(make_vec_env(data=str(synthetic_root), preset="tiny", num_envs=4, obs_dtype="float16"))
    model = A2C("MlpPolicy", vec, n_steps=2, policy_kwargs={"net_arch": [32]}, seed=0)
    model.learn(total_timesteps=200)
    assert model.num_timesteps >= 200
    assert vec.venv.engine.num_updates == model.num_timesteps // 4


def test_sac_through_wrapper(synthetic_root):
    env = TopKScoreAction(gym.make(tats_env.ENV_ID, data=str(synthetic_root), preset="tiny", obs_dtype="float16"))
    model = SAC("MlpPolicy", env, buffer_size=300, learning_starts=50, batch_size=16,
                policy_kwargs={"net_arch": [32]}, seed=0)
    model.learn(total_timesteps=200)
    assert model.num_timesteps == 200
    assert env.unwrapped.engine.num_updates == 200
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (512,) and np.all(np.abs(action) <= 1)
