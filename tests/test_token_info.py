"""Per-token env info (errors, masks, foreground) and the motion metrics: lift and moving/static error ratio."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import tats_env
from tats_env import make_vec_env
from tats_env.env.core import EnvConfig, MaskingCore, motion_lift, token_error_statistics


def _actions(num_envs: int, n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((num_envs, n), dtype=np.int8)
    for row in out:
        row[rng.choice(n, k, replace=False)] = 1
    return out


def test_token_errors_equal_the_engine_loss(synthetic_root):
    core = MaskingCore(3, EnvConfig(data=str(synthetic_root), update_mae=False, token_info=True))
    core.reset()
    actions = _actions(3, core.num_tokens, core.num_masked)
    _, infos = core.step(actions)
    mask = torch.from_numpy(actions).bool()
    expected = core.engine.update(core.current_videos, mask, update=False).per_token_loss.float().numpy()
    errors = np.stack([info["token_error"] for info in infos])
    assert errors.dtype == np.float32 and errors.shape == (3, 512)
    np.testing.assert_array_equal(np.isnan(errors), actions == 0)  # NaN exactly at the visible tokens
    np.testing.assert_allclose(errors[actions == 1], expected[actions == 1], rtol=1e-6, atol=1e-7)
    for info, row in zip(infos, errors):
        assert np.nanmean(row) == pytest.approx(info["recon_loss"], rel=1e-5)
    assert np.nanmean(errors) == pytest.approx(infos[0]["batch_recon_loss"], rel=1e-5)
    np.testing.assert_array_equal(np.stack([i["token_mask"] for i in infos]), actions.astype(bool))
    fg = np.stack([i["token_foreground"] for i in infos])
    assert fg.dtype == np.bool_ and fg.any()
    np.testing.assert_allclose([i["foreground_share"] for i in infos], fg.mean(1), rtol=1e-6)
    # One host array per step: the rows are read-only views of it, not per-clip copies.
    base = infos[0]["token_error"].base
    assert isinstance(base, np.ndarray) and base.shape == (3, 512)
    assert all(info["token_error"].base is base for info in infos)
    assert not infos[1]["token_error"].flags.writeable
    torch.testing.assert_close(core.last_token_error, torch.from_numpy(np.nan_to_num(errors)))


def test_token_info_is_off_by_default_and_set_when_the_env_is_built(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2)
    vec.reset()
    _, _, _, infos = vec.step(_actions(2, 512, 461))
    assert "token_error" not in infos[0] and "motion_lift_show_hard" in infos[0]
    with pytest.raises(AttributeError):  # not flipped afterwards: samplers get the env they need from the registry
        vec.core.token_info = True
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, token_info=True)
    assert vec.token_info
    vec.reset()
    _, rewards, _, infos = vec.step(_actions(2, 512, 461, seed=1))
    assert infos[1]["token_error"].shape == (512,)
    np.testing.assert_allclose(rewards, [np.nanmean(i["token_error"]) for i in infos], rtol=1e-5)


def test_checkers_pass_with_token_info(synthetic_root):
    env = gym.make(tats_env.ENV_ID, data=str(synthetic_root), token_info=True)
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    assert info["token_error"].shape == (512,) and info["token_mask"].sum() == 461


def _all_masks(n: int, k: int) -> torch.Tensor:
    rows = []
    for subset in itertools.combinations(range(n), k):
        row = torch.zeros(n, dtype=torch.bool)
        row[list(subset)] = True
        rows.append(row)
    return torch.stack(rows)


@pytest.mark.parametrize("n,k,m", [(8, 3, 2), (8, 6, 3), (9, 2, 5), (10, 7, 8)])
def test_motion_lift_is_zero_for_random_and_one_for_the_best_mask(n, k, m):
    masks = _all_masks(n, k)
    fg = torch.zeros(len(masks), n, dtype=torch.bool)
    fg[:, :m] = True
    lift = motion_lift(fg, masks)
    for name, lifts in lift.items():
        # Uniform over all K-subsets = random masking: the mean lift is exactly 0.
        assert lifts.mean().item() == pytest.approx(0.0, abs=1e-6), name
        assert lifts.max().item() == pytest.approx(1.0, abs=1e-6), name
    visible_moving = (fg & ~masks).sum(1).float()
    best_show = visible_moving == min(m, n - k)
    best_mask = visible_moving == max(0, m - (n - k)) if m > k else visible_moving == 0
    assert torch.allclose(lift["motion_lift_show_hard"][best_show], torch.ones(1))
    assert torch.allclose(lift["motion_lift_mask_hard"][best_mask], torch.ones(1))
    # Mask-hard lift is motion recall rescaled: (recall - K/N) / (min(1, K/m) - K/N).
    recall = (fg & masks).sum(1).float() / m
    expected = (recall - k / n) / (min(1.0, k / m) - k / n)
    torch.testing.assert_close(lift["motion_lift_mask_hard"], expected)


def test_motion_lift_is_nan_without_motion_or_when_everything_moves():
    mask = torch.tensor([[True, True, False, False]] * 2)
    fg = torch.tensor([[False] * 4, [True] * 4])
    for lifts in motion_lift(fg, mask).values():
        assert torch.isnan(lifts).all()


def test_moving_static_error_ratio():
    errors = torch.tensor([[4.0, 2.0, 1.0, 1.0, 9.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, True, True, False], [False, True, True, True, True]])
    fg = torch.tensor([[True, True, False, False, True], [True, False, False, False, False]])
    stats = token_error_statistics(errors, fg, mask)
    assert stats["moving_error"][0].item() == 3.0 and stats["static_error"][0].item() == 1.0
    assert stats["moving_static_error_ratio"][0].item() == 3.0
    assert math.isnan(stats["moving_static_error_ratio"][1].item())  # its only moving token is visible
