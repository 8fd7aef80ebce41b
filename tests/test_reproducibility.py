"""One seed reproduces one run exactly on the CPU; another seed gives another run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from safetensors.numpy import load_file

import tats_env  # noqa: F401 - registers the env

ROOT = Path(__file__).resolve().parents[1]


def _env_rollout(data: Path, seed: int) -> tuple[np.ndarray, float, np.ndarray]:
    env = gym.make("TATS/VideoMasking-v0", data=str(data), preset="tiny", mask_ratio=0.9, seed=seed)
    try:
        obs, _ = env.reset(seed=0)
        action = np.zeros(env.action_space.n, dtype=np.int8)
        action[: env.action_space.k] = 1
        _, reward, *_ = env.step(action)
        obs2, _ = env.reset()
        return obs, float(reward), obs2
    finally:
        env.close()


def test_two_envs_with_one_seed_give_the_same_observations_and_rewards(synthetic_root):
    obs_a, reward_a, next_a = _env_rollout(synthetic_root, seed=0)
    obs_b, reward_b, next_b = _env_rollout(synthetic_root, seed=0)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert reward_a == reward_b
    np.testing.assert_array_equal(next_a, next_b)  # after one MAE update: the same update
    obs_c, _, _ = _env_rollout(synthetic_root, seed=1)  # another seed: other initial MAE weights
    assert not np.array_equal(obs_a, obs_c)


def _run(data: Path, out: Path, seed: int) -> dict:
    sys.path.insert(0, str(ROOT / "experiments"))
    import train_ppo

    return train_ppo.main(["--data", str(data), "--out", str(out), "--num-envs", "4", "--total-steps", "16",
                           "--warmup-steps", "8", "--no-progress-bar", "--seed", str(seed),
                           "--export-formats", "native"])


def _logged_values(out: Path) -> list[dict[str, str]]:
    """progress.csv without the wall-clock columns."""
    rows = list(csv.DictReader((out / "tb" / "progress.csv").read_text().splitlines()))
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_two_runs_with_one_seed_are_identical_and_another_seed_differs(synthetic_root, tmp_path):
    a, b, c = (_run(synthetic_root, tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert a["motion_lift"] == b["motion_lift"]
    assert _logged_values(tmp_path / "a") == _logged_values(tmp_path / "b")
    weights = [load_file(tmp_path / name / "encoder-native" / "model.safetensors") for name in "abc"]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key], err_msg=key)
    assert any(not np.array_equal(weights[0][key], weights[2][key]) for key in weights[0])
    assert _logged_values(tmp_path / "a") != _logged_values(tmp_path / "c")
    assert a["motion_lift"] != c["motion_lift"]
