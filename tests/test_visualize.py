"""Mask images: the sampler's per-token scores as a heat-map row beside the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import TATSConfig
from agents.job.callbacks import MaskImageCallback
from agents.algorithms.token_ppo import TokenPPOConfig
from tats_env import make_vec_env
from tats_env.visualize import (
    COLOR_HIGH, COLOR_LOW, LEGEND, PROB_LEGEND, ROW_LABELS, ROW_LABELS_WITH_PROBS, ROW_LABELS_WITH_SCORES, SCORE_LEGEND,
    label_grid, legend_for, mask_reconstruction_grid,
)


def test_heat_map_row_follows_the_scores(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False)
    vec.reset()
    video, spec = vec.current_videos, vec.core.spec
    mask = torch.zeros(2, spec.num_tokens, dtype=torch.bool)
    mask[:, : vec.core.num_masked] = True
    plain = mask_reconstruction_grid(vec.engine.model, video, mask, num_clips=2, num_frames=2)
    scores = torch.arange(spec.num_tokens, dtype=torch.float32).expand(2, -1)  # rises with the token index
    image = mask_reconstruction_grid(vec.engine.model, video, mask, num_clips=2, num_frames=2, scores=scores)
    side = spec.image_size
    assert plain.shape == (2 * 3 * side, 2 * side, 3) and image.shape == (2 * 4 * side, 2 * side, 3)
    first = image[side: 2 * side, :side].astype(int)  # clip 0, heat-map row, first frame (token slot 0)
    last = image[side: 2 * side, side:].astype(int)  # last frame (token slot 7)
    np.testing.assert_allclose(first[0, 0], [26, 26, 128], atol=1)  # token 0, the lowest score: dark blue
    np.testing.assert_allclose(last[-1, -1], [255, 230, 26], atol=1)  # token N-1, the highest: yellow
    assert first[-1, -1, 0] < last[0, 0, 0]  # scores rise with the token index
    np.testing.assert_array_equal(image[:side], plain[:side])  # the input row is unchanged


def test_probability_heat_map_uses_one_fixed_scale(synthetic_root):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, update_mae=False)
    vec.reset()
    video, spec = vec.current_videos, vec.core.spec
    mask = torch.zeros(2, spec.num_tokens, dtype=torch.bool)
    mask[:, -1] = True
    probs = torch.full((2, spec.num_tokens), 0.5)
    probs[0, 0], probs[1, 0] = 0.0, 1.0  # token 0: never / always masked; the rest at one half
    image = mask_reconstruction_grid(vec.engine.model, video, mask, num_clips=2, num_frames=1, scores=probs,
                                     fixed_scale=True)
    side = spec.image_size
    heat0, heat1 = image[side: 2 * side].astype(int), image[5 * side: 6 * side].astype(int)
    np.testing.assert_allclose(heat0[0, 0], np.round(255 * np.asarray(COLOR_LOW)), atol=1)
    np.testing.assert_allclose(heat1[0, 0], np.round(255 * np.asarray(COLOR_HIGH)), atol=1)
    middle = np.round(255 * (np.asarray(COLOR_LOW) + np.asarray(COLOR_HIGH)) / 2)
    # 0.5 is drawn alike in both clips (not rescaled to each clip's own min..max) ...
    np.testing.assert_allclose(heat0[-1, -1], middle, atol=1)
    np.testing.assert_allclose(heat1[-1, -1], middle, atol=1)
    relative = mask_reconstruction_grid(vec.engine.model, video, mask, num_clips=2, num_frames=1, scores=probs)
    # ... while the relative scale stretches clip 0's 0..0.5 to blue..yellow
    np.testing.assert_allclose(relative[2 * side - 1, side - 1], np.round(255 * np.asarray(COLOR_HIGH)), atol=1)


def test_legend_describes_only_the_rows_drawn():
    assert legend_for(ROW_LABELS) == LEGEND and SCORE_LEGEND not in LEGEND
    assert legend_for(ROW_LABELS_WITH_SCORES)[-1] == SCORE_LEGEND
    assert legend_for(ROW_LABELS_WITH_PROBS)[-1] == PROB_LEGEND


def test_probability_grid_has_a_colour_bar():
    side, clips = 16, 1
    image = np.full((clips * 4 * side, 2 * side, 3), 200, dtype=np.uint8)
    with_bar = label_grid(image, ROW_LABELS_WITH_PROBS, clips, upscale=1)
    without = label_grid(image, ROW_LABELS_WITH_SCORES, clips, upscale=1)
    assert with_bar.shape[0] > without.shape[0]
    bottom = with_bar[without.shape[0]:].reshape(-1, 3).astype(int)
    for colour in (COLOR_LOW, COLOR_HIGH):  # both ends of the bar are drawn
        assert (np.abs(bottom - np.round(255 * np.asarray(colour))).max(axis=1) <= 2).any()


def test_mask_image_callback_draws_probabilities_of_token_ppo_and_a_final_image(synthetic_root, tmp_path):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, token_info=True)
    model = TokenPPOConfig(n_steps=2, batch_size=4, net=TATSConfig(dim=16, num_heads=2)).build(vec, seed=0, device="cpu")
    obs = vec.reset()
    scores = model.predict_scores(obs)
    assert scores is not None and scores.shape == (2, 512)
    probs = model.predict_mask_probs(obs)
    torch.testing.assert_close(probs.sum(1), torch.full((2,), float(vec.core.num_masked)), rtol=1e-4, atol=1e-3)
    assert ((probs >= 0) & (probs <= 1)).all()
    callback = MaskImageCallback(every=4, out_dir=tmp_path, num_clips=2, offset=100)
    model.learn(4, callback=callback)
    # Counted on the run's axis (offset 100): 104 reached the interval; the end wrote no second copy
    assert [p.name for p in sorted(tmp_path.glob("masks_*.png"))] == ["masks_00000104.png"]
    import matplotlib.pyplot as plt

    drawn = plt.imread(tmp_path / "masks_00000104.png")
    # 4 rows per clip (input, P(masked), mask, reconstruction), 64x64 clips upscaled 2x, legend and colour bar below
    assert 2 * 4 * 128 + 40 < drawn.shape[0] <= 2 * 4 * 128 + 80 and drawn.shape[1] > 4 * 128

    later = MaskImageCallback(every=1000, out_dir=tmp_path / "end", num_clips=2)
    model.learn(4, callback=later, reset_num_timesteps=False)  # shorter than the interval: one image at the end
    assert [p.name for p in (tmp_path / "end").glob("masks_*.png")] == ["masks_00000008.png"]


def test_label_grid_names_the_rows_upscales_and_adds_a_legend():
    side, clips = 16, 2
    image = np.full((clips * len(ROW_LABELS) * side, 3 * side, 3), 200, dtype=np.uint8)
    labelled = label_grid(image, ROW_LABELS, clips)
    assert labelled.dtype == np.uint8 and labelled.shape[2] == 3
    scale = 128 // side
    height = clips * len(ROW_LABELS) * side * scale
    margin = labelled.shape[1] - 3 * side * scale
    assert margin > 0 and labelled.shape[0] > height  # a label margin on the left, a legend underneath
    np.testing.assert_array_equal(labelled[: side * scale, margin:], 200)  # the picture itself, upscaled, untouched
    assert (labelled[:height, :margin] < 128).any()  # label text drawn in the margin
    assert (labelled[height:] < 128).any()  # legend text
    assert label_grid(image, ROW_LABELS, clips, upscale=1).shape[0] < labelled.shape[0]
    with pytest.raises(ValueError, match="does not split into 20 rows"):
        label_grid(image, ROW_LABELS_WITH_SCORES, 5)
