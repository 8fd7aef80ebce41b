"""The masking environment: checkers, batched stepping, seeding, MAE updates, invalid actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import VecMonitor

import tats_env
from tats_env import TopKScoreAction, TopKScoreVecAction, make_vec_env, score_actions
from tats_env.env import KOfNMask, RewardConfig
from tats_env.visualize import ROW_LABELS, label_grid, mask_reconstruction_grid


def _actions(vec, seed=0):
    rng = np.random.default_rng(seed)
    out = np.zeros((vec.num_envs, vec.action_space.n), dtype=np.int8)
    for row in out:
        row[rng.choice(vec.action_space.n, vec.action_space.k, replace=False)] = 1
    return out


def test_gymnasium_and_sb3_checkers_pass(synthetic_root):
    env = gym.make(tats_env.ENV_ID, data=str(synthetic_root), preset="tiny", mask_ratio=0.9)
    assert env.spec.nondeterministic
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped, warn=True)
    assert isinstance(env.action_space, KOfNMask)
    assert env.action_space.k == round(0.9 * 512)


def test_single_env_episode(synthetic_root):
    env = gym.make(tats_env.ENV_ID, data=str(synthetic_root), mask_ratio=0.75)
    obs, info = env.reset(seed=1)
    assert obs.shape == (512, 192) and obs.dtype == np.float32
    obs2, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated
    assert isinstance(reward, float) and reward > 0
    assert {"recon_loss", "mask_ratio", "motion_precision", "foreground_share", "motion_recall"} <= set(info)
    assert 0 <= info["motion_recall"] <= 1
    assert info["mask_ratio"] == pytest.approx(384 / 512)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(env.action_space.sample())


def test_vec_step_shapes_dtypes_and_no_shared_memory(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=4, obs_dtype="float16")
    obs = vec.reset()
    assert obs.shape == (4, 512, 192) and obs.dtype == np.float16
    next_obs, rewards, dones, infos = vec.step(_actions(vec))
    assert next_obs.shape == (4, 512, 192) and next_obs.dtype == np.float16
    assert rewards.shape == (4,) and rewards.dtype == np.float32
    assert dones.dtype == bool and dones.all()
    assert len(infos) == 4 and all(0 <= i["motion_precision"] <= 1 for i in infos)
    terminal = [info["terminal_observation"] for info in infos]
    np.testing.assert_array_equal(np.stack(terminal), obs)
    arrays = [obs, next_obs, rewards, *terminal]
    for a in range(len(arrays)):
        for b in range(a + 1, len(arrays)):
            assert not np.shares_memory(arrays[a], arrays[b])
    third, *_ = vec.step(_actions(vec, 1))
    assert not np.shares_memory(third, next_obs)


def test_one_batched_update_per_step_and_frozen_mode(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=3)
    weight = vec.engine.model.encoder.blocks[0].attn.qkv.weight
    before = weight.detach().clone()
    vec.reset()
    vec.step(_actions(vec))
    assert vec.engine.num_updates == 1
    assert not torch.equal(before, weight.detach())

    frozen = make_vec_env(data=str(synthetic_root), num_envs=3, update_mae=False)
    weight = frozen.engine.model.encoder.blocks[0].attn.qkv.weight
    before = weight.detach().clone()
    frozen.reset()
    frozen.step(_actions(frozen))
    assert frozen.engine.num_updates == 0
    assert torch.equal(before, weight.detach())


def test_same_seed_same_clips(synthetic_root):
    def first_clips(seed):
        vec = make_vec_env(data=str(synthetic_root), num_envs=4, update_mae=False)
        vec.seed(seed)
        obs = vec.reset()
        return obs, vec.core.batch["index"].clone(), vec.core.batch["video"].clone()

    obs_a, idx_a, vid_a = first_clips(5)
    obs_b, idx_b, vid_b = first_clips(5)
    _, idx_c, vid_c = first_clips(6)
    assert torch.equal(idx_a, idx_b) and torch.equal(vid_a, vid_b)
    assert not torch.equal(vid_a, vid_c)


def test_vec_monitor_records_episodes(synthetic_root):
    vec = VecMonitor(make_vec_env(data=str(synthetic_root), num_envs=2))
    vec.reset()
    _, rewards, _, infos = vec.step(_actions(vec.venv))
    assert all(info["episode"]["l"] == 1 for info in infos)
    assert [info["episode"]["r"] for info in infos] == pytest.approx(rewards.tolist(), rel=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 511), dtype=np.int8), "shape"),
        (np.full((2, 512), "a"), "dtype"),
        (np.full((2, 512), np.nan), "NaN"),
        (np.full((2, 512), 2), "values"),
    ],
)
def test_malformed_actions_name_the_space(synthetic_root, bad, message):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2)
    vec.reset()
    with pytest.raises(ValueError, match=message) as err:
        vec.step(bad)
    assert "KOfNMask(n=512, k=461)" in str(err.value)


def test_wrong_count_raises_or_repairs(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2)
    vec.reset()
    wrong = _actions(vec)
    wrong[0, np.flatnonzero(wrong[0])[:3]] = 0  # 3 too few
    wrong[1, np.flatnonzero(wrong[1] == 0)[:2]] = 1  # 2 too many
    with pytest.raises(ValueError, match="TopKScoreAction"):
        vec.step(wrong)

    repairing = make_vec_env(data=str(synthetic_root), num_envs=2, invalid_action="repair")
    repairing.reset()
    _, _, _, infos = repairing.step(wrong)
    assert [i["action_repaired"] for i in infos] == [True, True]
    mask = repairing.core.last_mask.cpu()
    assert mask.sum(1).tolist() == [461, 461]
    # repair keeps every one that was there when there were too few, and is deterministic
    assert mask[0][torch.from_numpy(wrong[0]).bool()].all()
    again = make_vec_env(data=str(synthetic_root), num_envs=2, invalid_action="repair")
    again.reset()
    again.step(wrong)
    assert torch.equal(again.core.last_mask.cpu(), mask)


def test_reward_modes(synthetic_root):
    adv = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False)
    adv.seed(0)
    adv.reset()
    _, r_adv, _, infos = adv.step(_actions(adv))
    np.testing.assert_allclose(r_adv, [i["recon_loss"] for i in infos], rtol=1e-5)
    coop = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False,
                        reward=RewardConfig(mode="cooperative"), engine=adv.engine)
    coop.seed(0)
    coop.reset()
    _, r_coop, _, _ = coop.step(_actions(coop))
    np.testing.assert_allclose(r_coop, -r_adv, rtol=1e-5)


def test_random_baseline_reward_is_paired_difference(synthetic_root):
    plain = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False)
    paired = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False, engine=plain.engine,
                          reward=RewardConfig(baseline="random"))
    for env in (plain, paired):
        env.seed(3)
        env.reset()
    _, r_plain, _, _ = plain.step(_actions(plain))
    _, r_paired, _, infos = paired.step(_actions(paired))
    baseline = np.array([i["baseline_recon_loss"] for i in infos])
    assert np.all(baseline > 0)
    np.testing.assert_allclose(r_paired, r_plain - baseline, rtol=1e-4, atol=1e-6)
    assert "motion_recall" in infos[0]


def test_score_wrapper_single_and_batched(synthetic_root):
    env = TopKScoreAction(gym.make(tats_env.ENV_ID, data=str(synthetic_root)))
    assert env.action_space.shape == (512,) and env.action_space.dtype == np.float32
    scores = np.zeros(512, dtype=np.float32)
    mask = env.action(scores)
    assert mask.sum() == 461 and mask[:461].all()  # ties go to the lower index
    scores[-5:] = 1.0
    assert env.action(scores)[-5:].all()
    with pytest.raises(TypeError, match="TopKScoreVecAction"):
        TopKScoreAction(make_vec_env(data=str(synthetic_root), num_envs=2))
    vec = score_actions(make_vec_env(data=str(synthetic_root), num_envs=2))
    assert isinstance(vec, TopKScoreVecAction) and vec.action_space.shape == (512,)
    vec.reset()
    _, rewards, _, _ = vec.step(np.random.default_rng(0).uniform(-1, 1, (2, 512)).astype(np.float32))
    assert rewards.shape == (2,)
    with pytest.raises(ValueError, match="NaN"):
        vec.step(np.full((2, 512), np.nan, dtype=np.float32))


def test_real_clip_list_file(real_list_file):
    vec = make_vec_env(data=str(real_list_file), num_envs=2)
    obs = vec.reset()
    assert obs.shape == (2, 512, 192)
    _, rewards, _, infos = vec.step(_actions(vec))
    assert np.isfinite(rewards).all()
    assert "motion_precision" not in infos[0]  # real clips carry no foreground masks


def test_single_env_renders_its_mask_image_and_passes_the_render_check(synthetic_root):
    env = gym.make(tats_env.ENV_ID, data=str(synthetic_root), render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["rgb_array"]
    gym_check_env(env.unwrapped)  # renders after reset too
    env.reset(seed=0)
    before = env.render()
    env.step(env.action_space.sample())
    image = env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.shape == before.shape and not np.array_equal(image, before)
    plain = gym.make(tats_env.ENV_ID, data=str(synthetic_root))
    plain.reset()
    assert plain.render() is None
    with pytest.raises(ValueError, match="render_mode 'video' is not supported"):
        tats_env.VideoMaskingEnv(data=str(synthetic_root), render_mode="video")


def test_sb3_vec_env_renders_the_last_steps_masks(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, render_mode="rgb_array")
    vec.reset()
    clips, foreground = vec.core.batch["video"].clone(), vec.core.batch["foreground"].clone()
    actions = _actions(vec)
    vec.step(actions)
    image = vec.render(mode="rgb_array")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    np.testing.assert_array_equal(vec.render(), image)
    # drawn on the clips the masks were applied to, although step_wait has drawn the next ones since
    assert not torch.equal(vec.core.batch["video"], clips)
    mask = torch.from_numpy(actions).bool()
    expected = label_grid(mask_reconstruction_grid(vec.engine.model, clips, mask, 4, foreground=foreground), ROW_LABELS, 2)
    np.testing.assert_array_equal(image, expected)
    with pytest.warns(UserWarning, match="render"):
        assert make_vec_env(data=str(synthetic_root), num_envs=2).render(mode="rgb_array") is None
