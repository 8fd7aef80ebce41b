"""REINFORCE's per-token rules: AdaMAE's sampling and loss, the exact token rule, both on a per-token bandit."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from agents.job.callbacks import EnvStatsCallback
from agents.algorithms.reinforce import Reinforce, adamae_loss, adamae_sample
from tats_env import make_vec_env
from tats_env.config import get_preset
from test_token_ppo import _hard_masked_share
from token_bandit import bandit_vec_env


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_adamae_sampling_is_categorical_without_replacement():
    scores = torch.tensor([[1.0, 0.0, -0.5, 0.7]])
    p = torch.softmax(scores[0], 0)
    draws = adamae_sample(scores.expand(60_000, 4), 2, torch.Generator().manual_seed(0))
    assert (draws.sum(1) == 2).all()  # 2 masked = 2 visible of 4
    counts: dict[tuple[int, ...], int] = {}
    for row in (draws == 0).nonzero()[:, 1].reshape(-1, 2).tolist():
        counts[tuple(sorted(row))] = counts.get(tuple(sorted(row)), 0) + 1
    for a, b in itertools.combinations(range(4), 2):
        # P({a, b} visible) = P(a then b) + P(b then a) for sequential draws without replacement.
        exact = p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b])
        assert counts.get((a, b), 0) / 60_000 == pytest.approx(exact.item(), abs=0.007)


def test_adamae_loss_gradient():
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.0, 0.5]], requires_grad=True)
    masks = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]])
    errors = torch.tensor([[2.0, 1.0, float("nan"), 3.0, float("nan")]])
    (grad,) = torch.autograd.grad(adamae_loss(scores, masks, errors), scores)  # NaN at visible tokens, as the env sends
    p = torch.softmax(scores.detach(), -1)
    e = torch.nan_to_num(errors) * masks
    # d/ds_j of -(1/|M|) sum_{i in M} e_i log p_i = -(e_j - p_j sum_i e_i) / |M|
    torch.testing.assert_close(grad, -(e - p * e.sum()) / 3)


def test_exact_token_rule_learns_both_directions_and_adamae_only_shows():
    shares = {}
    for direction in ("mask_hard", "show_hard"):
        agent = Reinforce(bandit_vec_env(8, seed=1), learning_rate=3e-3, rule="token", direction=direction,
                          policy_kwargs={"dim": 16}, seed=0)
        agent.learn(384)
        shares[direction] = _hard_masked_share(agent)
    adamae = Reinforce(bandit_vec_env(8, seed=1), learning_rate=3e-3, rule="adamae", policy_kwargs={"dim": 16}, seed=0)
    adamae.learn(512)
    shares["adamae"] = _hard_masked_share(adamae)
    assert shares["mask_hard"] > 0.95 and shares["show_hard"] < 0.2, shares  # random masking: 0.75
    # AdaMAE's rule moves the right way but settles where visibility matches the error shares.
    assert 0.3 < shares["adamae"] < 0.68, shares
    with pytest.raises(ValueError, match="show_hard"):
        Reinforce(bandit_vec_env(2), rule="adamae", direction="mask_hard")


def test_token_rules_drive_the_masking_env(synthetic_root):
    mae = get_preset("tiny", num_frames=8, image_size=32, embed_dim=32, depth=1, num_heads=2,
                     decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    for rule in ("token", "adamae"):
        vec = make_vec_env(data=str(synthetic_root), mae_config=mae, mask_ratio=0.75, num_envs=2, token_info=True)
        agent = Reinforce(vec, rule=rule, seed=0, policy_kwargs={"dim": 16})
        assert vec.core.token_info
        agent.learn(6, callback=EnvStatsCallback())
        assert agent.n_updates == 3 and vec.engine.num_updates == 3
        obs = vec.reset()
        masks, _ = agent.predict(obs, deterministic=True)
        assert (masks.sum(1) == 48).all()
        scores = agent.predict_scores(obs)  # higher = masked, for both samplers
        assert scores.shape == (2, 64) and torch.isfinite(scores).all()
        np.testing.assert_array_equal(masks[0].astype(bool), (scores[0] >= scores[0].sort().values[16]).numpy())
