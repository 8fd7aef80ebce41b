"""Token-level PPO: the estimator's objective by enumeration, a per-token bandit against scalar PPO, save/load, the env."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from agents import TATSConfig, TATSPolicy
from agents.job.callbacks import EnvStatsCallback
from agents.kofn.distribution import KSubsetDistribution
from agents.kofn.credit import token_advantages, token_policy_loss
from agents.algorithms.token_ppo import TokenPPO, TokenPPOConfig, TokenRolloutBuffer
from agents.policies.token_policy import TokenTATSPolicy
from tats_env import make_vec_env
from token_bandit import TokenErrorBandit, bandit_vec_env


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def all_subsets(n: int, k: int) -> torch.Tensor:
    rows = []
    for subset in itertools.combinations(range(n), k):
        row = torch.zeros(n, dtype=torch.bool)
        row[list(subset)] = True
        rows.append(row)
    return torch.stack(rows)


def enumerated(theta: torch.Tensor, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: p(S) over every subset and the inclusion probabilities pi_i = sum_S p(S) [i in S]."""
    p = torch.softmax(subsets.double() @ theta, dim=0)
    return p, p @ subsets.double()


def non_additive_errors(subsets: torch.Tensor, worth: torch.Tensor) -> torch.Tensor:
    """e_i(S): a token's error grows with the number of masked tokens next to it (the context effect)."""
    s = subsets.double()
    neighbours = torch.roll(s, 1, dims=1) + torch.roll(s, -1, dims=1)
    return worth * (1.0 + 0.4 * neighbours)


@pytest.mark.parametrize("k", [3, 6])  # k > N/2 runs the distribution's complement path
@pytest.mark.parametrize("direction,kind", [("show_hard", "relative"), ("mask_hard", "centered")])
def test_token_surrogate_is_the_stated_objective_by_enumeration(k, direction, kind):
    n = 8
    gen = torch.Generator().manual_seed(k)
    theta_old = torch.randn(n, generator=gen, dtype=torch.float64)
    subsets = all_subsets(n, k)
    errors = non_additive_errors(subsets, 0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
    adv = token_advantages(errors, subsets, direction, kind).double()
    p_old, pi_old = enumerated(theta_old, subsets)
    # Abar_i = E_old[A_i(S) | i in S]
    abar = (p_old[:, None] * adv * subsets).sum(0) / pi_old

    for shift in (0.0, 0.3):  # at theta_old and away from it
        theta = (theta_old + shift * torch.randn(n, generator=gen, dtype=torch.float64)).requires_grad_(True)
        inclusion = KSubsetDistribution(theta.expand(len(subsets), n), k).inclusion_probs()
        old = pi_old.expand(len(subsets), n)
        per_subset = torch.stack([
            token_policy_loss(inclusion[j:j + 1], old[j:j + 1], adv[j:j + 1], subsets[j:j + 1], None)[0]
            for j in range(len(subsets))
        ])
        surrogate = -(p_old * per_subset).sum()  # E_{S ~ p_old}[L(theta; S)], ascended
        (grad_surrogate,) = torch.autograd.grad(surrogate, theta)

        theta_ref = theta.detach().clone().requires_grad_(True)
        objective = (enumerated(theta_ref, subsets)[1] * abar).sum() / k  # J = (1/K) sum_i pi_i Abar_i
        (grad_objective,) = torch.autograd.grad(objective, theta_ref)
        torch.testing.assert_close(surrogate, objective, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grad_surrogate, grad_objective, rtol=1e-8, atol=1e-12)
        assert grad_objective.abs().max() > 1e-3


def test_with_fixed_errors_the_gradient_is_the_clip_reward_gradient():
    """Raw advantages of S-independent errors: grad of the surrogate at theta_old = grad E[R], R = mean masked error."""
    n, k = 8, 3
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(n, generator=gen, dtype=torch.float64).requires_grad_(True)
    worth = torch.rand(n, generator=gen, dtype=torch.float64)
    subsets = all_subsets(n, k)
    errors = worth.expand(len(subsets), n)
    adv = token_advantages(errors, subsets, "mask_hard", "raw").double()
    p, pi = enumerated(theta.detach(), subsets)
    inclusion = KSubsetDistribution(theta.expand(len(subsets), n), k).inclusion_probs()
    per_subset = torch.stack([
        token_policy_loss(inclusion[j:j + 1], pi[None], adv[j:j + 1], subsets[j:j + 1], 0.2)[0]
        for j in range(len(subsets))
    ])
    (grad,) = torch.autograd.grad(-(p * per_subset).sum(), theta)
    theta_ref = theta.detach().clone().requires_grad_(True)
    p_ref, _ = enumerated(theta_ref, subsets)
    expected_reward = (p_ref * (subsets.double() @ worth) / k).sum()
    (expected,) = torch.autograd.grad(expected_reward, theta_ref)
    torch.testing.assert_close(grad, expected, rtol=1e-8, atol=1e-12)


def test_advantages_average_to_zero_per_clip_and_follow_the_direction():
    errors = torch.tensor([[1.0, 3.0, float("nan"), 2.0]])
    mask = torch.tensor([[True, True, False, True]])
    show = token_advantages(errors, mask, "show_hard", "relative")
    torch.testing.assert_close(show, torch.tensor([[0.5, -0.5, 0.0, 0.0]]))
    torch.testing.assert_close(token_advantages(errors, mask, "mask_hard", "centered"), torch.tensor([[-1.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="direction"):
        token_advantages(errors, mask, "hard")  # type: ignore[arg-type]
    # A diverged clip (non-finite error at a masked token) gets no credit; the other clip is unaffected.
    two = torch.cat([errors, torch.tensor([[1.0, float("inf"), 2.0, 2.0]])])
    adv = token_advantages(two, torch.cat([mask, torch.ones(1, 4, dtype=torch.bool)]), "show_hard", "relative")
    torch.testing.assert_close(adv, torch.tensor([[0.5, -0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))


def _hard_masked_share(model, seed: int = 99, clips: int = 96) -> float:
    """Share of the hard tokens masked by the sampled (not top-K) masks: 0.75 for random, 1.0 at best."""
    env = bandit_vec_env(8, seed=seed)
    obs, shares = env.reset(), []
    for _ in range(clips // 8):
        actions, _ = model.predict(obs)
        obs, _, _, infos = env.step(actions)
        shares += [info["hard_masked"] for info in infos]
    return float(np.mean(shares))


def test_token_ppo_finds_the_best_tokens_far_sooner_than_scalar_ppo():
    sampler = TATSConfig(dim=16, depth=1, num_heads=2)
    common = dict(learning_rate=1e-2, n_steps=4, batch_size=32, n_epochs=2, gamma=0.0, seed=0, device="cpu")
    token = TokenPPO(TokenTATSPolicy, bandit_vec_env(8, seed=1), direction="mask_hard",
                     policy_kwargs={"tats_config": sampler, "grid": (2, 4, 4)}, **common)
    scalar = PPO(TATSPolicy, bandit_vec_env(8, seed=1),
                 policy_kwargs={"tats_config": TATSConfig(dim=16, depth=1, num_heads=2, share_trunk=False),
                                "grid": (2, 4, 4)}, **common)
    before = _hard_masked_share(token)
    token.learn(32 * 8)  # 8 rollouts of 32 clips
    scalar.learn(32 * 16)  # twice the budget
    after_token, after_scalar = _hard_masked_share(token), _hard_masked_share(scalar)
    assert abs(before - 0.75) < 0.06, before  # untrained: random masking
    assert after_token > 0.95, f"token-level PPO masks {after_token:.3f} of the hard tokens (best 1.0)"
    assert after_scalar < 0.9, f"scalar PPO already at {after_scalar:.3f} with twice the clips"


def test_show_hard_makes_the_hard_tokens_visible():
    config = TokenPPOConfig(learning_rate=1e-2, n_epochs=2, net=TATSConfig(dim=16, depth=1, num_heads=2))
    model = config.build(bandit_vec_env(8, seed=2), seed=0, grid=(2, 4, 4), device="cpu", direction="show_hard")
    model.learn(32 * 8)
    assert _hard_masked_share(model) < 0.3  # random: 0.75; best: 0 (8 visible slots, 6 hard tokens)


def test_save_load_roundtrip_and_buffer_contents(tmp_path):
    model = TokenPPO(TokenTATSPolicy, bandit_vec_env(4), direction="mask_hard", advantage="centered", n_steps=2,
                     batch_size=4, seed=0, device="cpu",
                     policy_kwargs={"tats_config": TATSConfig(dim=16, num_heads=2), "grid": (2, 4, 4), "critic": "separate"})
    model.learn(16)
    buffer = model.rollout_buffer
    assert isinstance(buffer, TokenRolloutBuffer)
    assert buffer.token_errors.shape == (8, 32)  # flattened by get()
    masked = buffer.actions > 0.5
    assert np.isnan(buffer.token_errors[~masked]).all() and (buffer.token_errors[masked] > 0).all()
    np.testing.assert_allclose(buffer.old_inclusion.sum(1), 24, rtol=1e-4)  # inclusion probabilities sum to K
    assert model.policy.mlp_extractor.critic_trunk is not None  # the critic has its own trunk
    obs = bandit_vec_env(4, seed=5).reset()
    det, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "token_ppo")
    loaded = TokenPPO.load(tmp_path / "token_ppo", env=bandit_vec_env(4))
    assert loaded.direction == "mask_hard" and loaded.advantage == "centered"
    assert isinstance(loaded.policy, TokenTATSPolicy) and loaded.policy.critic == "separate"
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], det)
    loaded.learn(8, reset_num_timesteps=False)
    assert loaded.num_timesteps == 24


def test_scorer_has_no_value_head_by_default_and_rejects_envs_without_token_errors():
    model = TokenPPOConfig(batch_size=8, net=TATSConfig(dim=16, num_heads=2)).build(bandit_vec_env(2), grid=(2, 4, 4),
                                                                                       device="cpu")
    trunk_params = {id(p) for p in model.policy.mlp_extractor.actor_trunk.parameters()}
    value_params = {id(p) for p in model.policy.value_net.parameters()}
    assert not trunk_params & value_params and model.policy.value_net.in_features == 1

    class NoTokens(TokenErrorBandit):
        def step(self, action):
            obs, reward, term, trunc, info = super().step(action)
            return obs, reward, term, trunc, {}

    plain = TokenPPO(TokenTATSPolicy, DummyVecEnv([NoTokens]), n_steps=2, batch_size=2, device="cpu",
                     policy_kwargs={"tats_config": TATSConfig(dim=16, num_heads=2), "grid": (2, 4, 4)})
    with pytest.raises(RuntimeError, match="token_info"):
        plain.learn(2)


def test_drives_the_masking_env(synthetic_root):
    with pytest.raises(ValueError, match="token_info=True"):  # an env without per-token errors is refused up front
        TokenPPOConfig().build(make_vec_env(data=str(synthetic_root), num_envs=2), seed=0, device="cpu")
    vec = make_vec_env(data=str(synthetic_root), num_envs=2, token_info=True)
    model = TokenPPOConfig(n_steps=2, batch_size=4, net=TATSConfig(dim=16, num_heads=2)).build(vec, seed=0, device="cpu")
    assert vec.core.token_info and model.policy.grid == (8, 8, 8)
    model.learn(8, callback=EnvStatsCallback())
    assert vec.engine.num_updates == 4
    errors, masked = model.rollout_buffer.token_errors, model.rollout_buffer.actions > 0.5
    assert np.isfinite(errors[masked]).all() and errors[masked].min() >= 0 and np.isnan(errors[~masked]).all()
    np.testing.assert_allclose(model.rollout_buffer.old_inclusion.sum(1), 461, rtol=1e-4)
