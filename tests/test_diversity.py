"""Mask diversity: policy share and its schedule in token PPO, the entropy floor, learning progress, visible overlap."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from agents.algorithms.diversity import DiversityConfig
from agents.algorithms.token_ppo import TokenPPO, TokenPPOConfig
from agents.policies.tats_network import TATSConfig
from agents.registry import SamplerConfig, sampler_env_config
from tats_env.checks import config_problems
from tats_env.env.core import EnvConfig, MaskingCore, visible_overlap
from test_token_ppo import _hard_masked_share
from token_bandit import bandit_vec_env


pytestmark = pytest.mark.usefixtures("single_thread")


def _train(diversity: DiversityConfig, direction: str, logdir, clips: int = 32 * 8) -> tuple[TokenPPO, list[dict]]:
    config = TokenPPOConfig(learning_rate=1e-2, n_epochs=2, net=TATSConfig(dim=16, depth=1, num_heads=2))
    model = config.build(bandit_vec_env(8, seed=2), seed=0, grid=(2, 4, 4), device="cpu", direction=direction,
                         diversity=diversity)
    model.set_logger(configure(str(logdir), ["csv"]))
    model.learn(clips)
    rows = [r for r in csv.DictReader((logdir / "progress.csv").open()) if r.get("train/entropy_share")]
    return model, rows


def test_show_hard_policy_share_shows_the_hard_tokens_only_up_to_its_share(tmp_path):
    """Bandit: 32 tokens, 8 visible, 6 hard. Share 0.5 lets the policy pick 4 visible tokens, the other 4 are
    uniform over the 28 left: at best 4 + 2 x 4/28 hard tokens visible, i.e. 29% of them still masked."""
    model, rows = _train(DiversityConfig(policy_share=0.5), "show_hard", tmp_path / "share")
    share = _hard_masked_share(model)
    assert 0.2 < share < 0.5, share  # random 0.75; the whole-mask policy reaches ~0.05 here
    assert float(rows[-1]["train/policy_share"]) == 0.5 and model.policy.chosen_tokens() == 4
    masks = model.predict(bandit_vec_env(8, seed=5).reset())[0]
    assert (masks.sum(1) == 24).all() and len({tuple(m) for m in masks}) == 8  # the random part keeps masks apart


def test_linear_schedule_ramps_the_share_from_zero(tmp_path):
    model, rows = _train(DiversityConfig(policy_share=0.5, share_schedule="linear"), "show_hard", tmp_path / "lin")
    shares = [float(r["train/policy_share"]) for r in rows]
    assert shares[0] == 0.0 and shares == sorted(shares) and len(set(shares)) == len(shares)
    assert model.policy.share == pytest.approx(0.5 * 7 / 8)  # the 8th of 8 rollouts: 7/8 of the phase done
    assert float(rows[0]["train/inclusion_spread"]) < 1e-6  # share 0: uniform masks, nothing to spread


def test_entropy_floor_holds_on_a_bandit_where_the_plain_policy_collapses(tmp_path):
    _, plain = _train(DiversityConfig(), "mask_hard", tmp_path / "plain")
    model, floored = _train(DiversityConfig(entropy_floor=0.9), "mask_hard", tmp_path / "floor")
    assert float(plain[-1]["train/entropy_share"]) < 0.7
    assert float(floored[-1]["train/entropy_share"]) > 0.85
    coefs = [float(r["train/ent_coef"]) for r in floored]
    assert coefs[-1] > coefs[0]  # the coefficient rose while the entropy was under the floor
    assert _hard_masked_share(model) > 0.85  # still learns the task (random: 0.75)

    # The coefficient and its optimizer are saved and restored with the sampler.
    state = model.sampler_state()
    fresh = TokenPPOConfig(learning_rate=1e-2, n_epochs=2, net=TATSConfig(dim=16, depth=1, num_heads=2)).build(
        bandit_vec_env(8, seed=2), seed=1, grid=(2, 4, 4), device="cpu", diversity=DiversityConfig(entropy_floor=0.9))
    fresh.load_sampler_state(state)
    assert float(fresh.log_ent_coef.detach()) == pytest.approx(float(model.log_ent_coef.detach()))
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = TokenPPO.load(path, env=bandit_vec_env(8, seed=2), device="cpu")
    assert float(loaded.log_ent_coef.detach()) == pytest.approx(float(model.log_ent_coef.detach())) and loaded.floor is not None


def test_learning_progress_is_the_error_before_minus_after_the_update(synthetic_root):
    core = MaskingCore(2, EnvConfig(data=str(synthetic_root), token_info=True, token_signal="progress"))
    core.reset()
    rng = np.random.default_rng(0)
    actions = np.zeros((2, core.num_tokens), dtype=np.int8)
    for row in actions:
        row[rng.choice(core.num_tokens, core.num_masked, replace=False)] = 1
    before_model = copy.deepcopy(core.engine.model)
    _, infos = core.step(actions)
    mask = torch.from_numpy(actions).bool()
    with torch.no_grad():
        before = before_model.train()(core.current_videos, mask).per_token_loss
        after = core.engine.model.eval()(core.current_videos, mask).per_token_loss
    progress = np.stack([info["token_error"] for info in infos])
    expected = (before - after).numpy()
    np.testing.assert_array_equal(np.isnan(progress), actions == 0)
    np.testing.assert_allclose(progress[actions == 1], expected[actions == 1], rtol=1e-4, atol=1e-6)
    assert np.abs(progress[actions == 1]).max() > 0  # the update changed the errors


def test_visible_overlap_scores_one_mask_for_all_at_one_and_random_masks_near_zero():
    gen = torch.Generator().manual_seed(0)
    n, k, b = 256, 243, 16
    random = torch.stack([torch.randperm(n, generator=gen) < k for _ in range(b)])
    same = random[:1].expand(b, n)
    assert visible_overlap(same).tolist() == pytest.approx([1.0] * b)
    assert abs(float(visible_overlap(random).mean())) < 0.05
    assert torch.isnan(visible_overlap(random[:1])).all()


def test_diversity_options_are_checked_before_any_work():
    problems = dict(config_problems(SamplerConfig(diversity=DiversityConfig(policy_share=1.5, entropy_floor=1.0))))
    assert set(problems) == {"diversity.policy_share", "diversity.entropy_floor"}
    problems = dict(config_problems(SamplerConfig(diversity=DiversityConfig(signal="progress"))))
    assert "centered or raw" in problems["diversity.signal"]
    with pytest.warns(UserWarning, match="read by token_ppo only; ppo_tats runs without them"):
        sampler_env_config("ppo_tats", EnvConfig(), SamplerConfig(diversity=DiversityConfig(policy_share=0.3)))
    env = sampler_env_config("token_ppo", EnvConfig(), SamplerConfig(diversity=DiversityConfig(signal="progress")))
    assert env.token_info and env.token_signal == "progress"
