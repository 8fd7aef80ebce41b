"""Mask images: the sampler's per-token scores as a heat-map row beside the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import TATSConfig
from agents.job.callbacks import MaskImageCallback
from agents.algorithms.token_ppo import TokenPPOConfig
from tats_env import make_vec_env
from tats_env.visualize import ROW_LABELS, ROW_LABELS_WITH_SCORES, label_grid, mask_reconstruction_grid


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


def test_mask_image_callback_draws_scores_of_token_ppo(synthetic_root, tmp_path):
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, token_info=True)
    model = TokenPPOConfig(n_steps=2, batch_size=4, net=TATSConfig(dim=16, num_heads=2)).build(vec, seed=0, device="cpu")
    obs = vec.reset()
    scores = model.predict_scores(obs)
    assert scores is not None and scores.shape == (2, 512)
    callback = MaskImageCallback(every=4, out_dir=tmp_path, num_clips=2)
    model.learn(4, callback=callback)
    pngs = sorted(tmp_path.glob("masks_*.png"))
    assert pngs
    import matplotlib.pyplot as plt

    drawn = plt.imread(pngs[0])
    # 4 rows per clip (input, heat map, mask, reconstruction), 64x64 clips upscaled 2x, legend lines below
    assert 2 * 4 * 128 < drawn.shape[0] <= 2 * 4 * 128 + 40 and drawn.shape[1] > 4 * 128


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
