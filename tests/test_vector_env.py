"""``gym.make_vec("TATS/VideoMasking-v0")``: the gymnasium 1.x vector env over one shared MAE (issue 21, item 12)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import tats_env
from tats_env.env import BatchedKOfNMask, KOfNMask, VideoMaskingVectorEnv
from tats_env.visualize import ROW_LABELS, label_grid, mask_reconstruction_grid

N, D, K = 512, 192, 461  # the tiny preset's tokens and width; K = round(0.9 * N)


def _make(synthetic_root: Path, num_envs: int = 4, **options: object) -> VectorEnv:
    """``gym.make_vec`` of the masking env on the test dataset, failing on any gymnasium warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return gym.make_vec(tats_env.ENV_ID, num_envs=num_envs, data=str(synthetic_root), **options)


def test_make_vec_builds_the_batched_env_over_one_mae(synthetic_root):
    env = _make(synthetic_root)
    assert type(env) is VideoMaskingVectorEnv and env.num_envs == 4
    assert env.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.single_observation_space == gym.spaces.Box(-np.inf, np.inf, (N, D), dtype=np.float32)
    assert env.observation_space == batch_space(env.single_observation_space, 4)
    assert env.single_action_space == KOfNMask(N, K)
    assert env.action_space == BatchedKOfNMask(4, N, K) == batch_space(env.single_action_space, 4)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.engine.num_updates == 1  # one batched update for all four sub-envs


def test_action_space_samples_legal_masks_for_every_sub_env(synthetic_root):
    env = _make(synthetic_root)
    env.action_space.seed(7)
    samples = [env.action_space.sample() for _ in range(20)]
    for sample in samples:
        assert sample.shape == (4, N) and sample.dtype == np.int8
        assert env.action_space.contains(sample)
        assert all(env.single_action_space.contains(row) for row in sample)
    assert len({sample.tobytes() for sample in samples}) == 20
    env.action_space.seed(7)
    np.testing.assert_array_equal(env.action_space.sample(), samples[0])
    wrong = samples[0].copy()
    wrong[2, np.flatnonzero(wrong[2])[0]] = 0
    assert not env.action_space.contains(wrong)
    with pytest.raises(ValueError, match="K-of-N"):
        env.action_space.sample(probability=np.full((4, N), 0.5))


def test_sync_mode_keeps_the_k_of_n_constraint(synthetic_root):
    sync = _make(synthetic_root, 2, vectorization_mode="sync")
    assert sync.action_space == BatchedKOfNMask(2, N, K)
    assert (sync.action_space.sample().sum(axis=1) == K).all()


def test_reset_and_step_arrays_same_step_autoreset(synthetic_root):
    env = _make(synthetic_root)
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, N, D) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert info["label"].shape == (4,) and info["_label"].all()
    first_clips = env.unwrapped.core.batch["index"].clone()

    next_obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
    assert next_obs.shape == (4, N, D) and env.observation_space.contains(next_obs)
    assert rewards.shape == (4,) and rewards.dtype == np.float32 and np.isfinite(rewards).all()
    assert terminated.dtype == bool and terminated.all() and truncated.dtype == bool and not truncated.any()
    assert not torch.equal(env.unwrapped.core.batch["index"], first_clips)  # the next clips, drawn in the same step
    final = infos["final_info"]
    assert infos["_final_info"].all() and infos["_final_obs"].all()
    assert final["recon_loss"].shape == (4,) and (final["recon_loss"] > 0).all()
    np.testing.assert_allclose(rewards, final["recon_loss"], rtol=1e-5)  # adversarial reward, no baseline
    assert final["label"].tolist() == info["label"].tolist()  # the finished clips' labels ...
    assert infos["label"].shape == (4,)  # ... and the new ones'
    assert all(o.shape == (N, D) and not o.any() for o in infos["final_obs"])

    env.reset(seed=3)
    assert torch.equal(env.unwrapped.core.batch["index"], first_clips)  # the seed restarts the shared clip stream


def test_gymnasium_episode_statistics_wrapper(synthetic_root):
    env = RecordEpisodeStatistics(_make(synthetic_root, 2))
    env.reset(seed=0)
    for _ in range(2):
        _, rewards, _, _, infos = env.step(env.action_space.sample())
        assert infos["episode"]["l"].tolist() == [1, 1]
        np.testing.assert_allclose(infos["episode"]["r"], rewards, rtol=1e-6)


def test_next_step_and_disabled_autoreset(synthetic_root):
    env = _make(synthetic_root, 2, autoreset_mode="NextStep")
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    env.reset(seed=0)
    obs, rewards, terminated, _, infos = env.step(env.action_space.sample())
    assert terminated.all() and not obs.any() and (infos["recon_loss"] > 0).all()
    obs, rewards, terminated, _, infos = env.step(env.action_space.sample())  # the autoreset step
    assert not terminated.any() and obs.any() and not rewards.any() and set(infos) == {"label", "_label"}
    assert env.engine.num_updates == 1

    disabled = _make(synthetic_root, 2, autoreset_mode=AutoresetMode.DISABLED)
    disabled.reset(seed=0)
    disabled.step(disabled.action_space.sample())
    with pytest.raises(RuntimeError, match="reset"):
        disabled.step(disabled.action_space.sample())
    disabled.reset(options={"reset_mask": np.ones(2, dtype=bool)})
    disabled.step(disabled.action_space.sample())
    with pytest.raises(ValueError, match="reset_mask"):
        disabled.reset(options={"reset_mask": np.array([True, False])})


def test_render_draws_the_last_steps_clips_and_masks(synthetic_root):
    env = _make(synthetic_root, 2, render_mode="rgb_array")
    env.reset(seed=0)
    preview = env.render()
    assert preview.ndim == 3 and preview.shape[2] == 3 and preview.dtype == np.uint8
    core = env.unwrapped.core
    clips, foreground = core.batch["video"].clone(), core.batch["foreground"].clone()
    actions = env.action_space.sample()
    env.step(actions)
    image = env.render()
    mask = torch.from_numpy(actions).bool()
    expected = label_grid(mask_reconstruction_grid(env.engine.model, clips, mask, 4, foreground=foreground),
                          ROW_LABELS, 2)
    np.testing.assert_array_equal(image, expected)  # the stepped clips, not the ones drawn since
    assert image.shape == preview.shape
    assert _make(synthetic_root, 2).render() is None


def test_bad_options_name_what_is_wrong(synthetic_root):
    with pytest.raises(ValueError, match="render_mode 'human'"):
        _make(synthetic_root, 2, render_mode="human")
    with pytest.raises(TypeError, match="unknown env options"):
        _make(synthetic_root, 2, mask_ration=0.5)
    with pytest.raises(ValueError, match="num_envs"):
        VideoMaskingVectorEnv(0, data=str(synthetic_root))
