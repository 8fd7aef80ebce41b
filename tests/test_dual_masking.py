"""VideoMAE V2 dual masking: the decoded subset, the loss over it, the env's errors and the token credit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from agents.kofn.credit import observed_tokens, token_advantages
from tats_env.config import get_preset
from tats_env.env.core import EnvConfig, MaskingCore
from tats_env.env.engine import CoTrainingEngine, EngineConfig
from tats_env.mae import VideoMAE, random_mask, tube_mask
from tats_env.mae.masking import decoder_subset


def _clips(cfg, batch=3):
    spec = cfg.video
    return torch.randn(batch, 3, spec.num_frames, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["running_cell", "random"])
@pytest.mark.parametrize("masker,ratio", [(tube_mask, 0.9), (random_mask, 0.75)])
def test_decoded_subset_has_the_requested_size_inside_the_mask(kind, masker, ratio):
    cfg = get_preset("tiny")
    videos = _clips(cfg)
    mask = masker(videos, cfg.video, ratio, generator=torch.Generator().manual_seed(1))
    k = int(mask[0].sum())
    decoded = decoder_subset(mask, videos, cfg.video, 0.5, kind, generator=torch.Generator().manual_seed(2))
    assert decoded.dtype == torch.bool and not (decoded & ~mask).any()
    assert decoded.sum(1).tolist() == [round(0.5 * k)] * 3
    with pytest.raises(ValueError, match="decoder_mask_ratio"):
        decoder_subset(mask, videos, cfg.video, 0.0)


def test_random_decoding_is_uniform_over_the_masked_tokens():
    cfg = get_preset("tiny")
    videos = _clips(cfg, 1)
    mask = tube_mask(videos, cfg.video, 0.9, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(3)
    freq = torch.stack([decoder_subset(mask, videos, cfg.video, 0.5, "random", gen) for _ in range(400)]).float().mean(0)
    assert float(freq[~mask].max()) == 0.0
    assert abs(float(freq[mask].mean()) - round(0.5 * int(mask.sum())) / int(mask.sum())) < 1e-6
    assert float(freq[mask].std()) < 0.05  # binomial sd of 400 draws at p 0.5 is 0.025


def test_without_dual_masking_the_loss_is_today_s_and_with_it_only_decoded_tokens_count():
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    model = VideoMAE(cfg).eval()
    videos = _clips(cfg)
    mask = tube_mask(videos, cfg.video, 0.9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(videos, mask)
        same = model(videos, mask, decoded=mask)
        decoded = decoder_subset(mask, videos, cfg.video, 0.5, generator=torch.Generator().manual_seed(2))
        dual = model(videos, mask, decoded)
    torch.testing.assert_close(plain.loss, same.loss)
    torch.testing.assert_close(plain.per_token_loss, same.per_token_loss)
    assert torch.equal(plain.decoded, mask) and torch.equal(dual.decoded, decoded)
    assert dual.pred.shape[1] == int(decoded[0].sum())
    assert torch.equal(dual.per_token_loss != 0, decoded)
    torch.testing.assert_close(dual.per_clip_loss, dual.per_token_loss.sum(1) / decoded.sum(1))
    with pytest.raises(ValueError, match="subset of the masked tokens"):
        model(videos, mask, decoded=~mask)


def test_engine_trains_on_the_decoded_tokens_and_evaluates_on_all():
    cfg = get_preset("tiny")
    engine = CoTrainingEngine(cfg, EngineConfig(decoder_mask_ratio=0.5), batch_size=2)
    videos = _clips(cfg, 2)
    mask = tube_mask(videos, cfg.video, 0.9)
    train = engine.update(videos, mask)
    assert train.decoded.sum(1).tolist() == [round(0.5 * int(mask[0].sum()))] * 2
    assert torch.equal(engine.update(videos, mask, update=False).decoded, mask)
    assert dict(EngineConfig(decoder_mask_ratio=1.0).field_problems())["decoder_mask_ratio"].startswith("must be in")


def test_env_reports_errors_only_for_decoded_tokens_and_credit_skips_the_rest(synthetic_root):
    env = EnvConfig(data=str(synthetic_root), token_info=True)
    env = dataclasses.replace(env, engine_config=EngineConfig(decoder_mask_ratio=0.5, decoder_masking="random"))
    core = MaskingCore(2, env)
    core.reset()
    rng = np.random.default_rng(0)
    actions = np.zeros((2, core.num_tokens), dtype=np.int8)
    for row in actions:
        row[rng.choice(core.num_tokens, core.num_masked, replace=False)] = 1
    _, infos = core.step(actions)
    errors = np.stack([info["token_error"] for info in infos])
    observed = ~np.isnan(errors)
    assert not observed[actions == 0].any()
    assert observed.sum(1).tolist() == [round(0.5 * core.num_masked)] * 2
    mask = torch.from_numpy(actions).bool()
    adv = token_advantages(torch.from_numpy(errors), mask, "mask_hard", "centered")
    seen = observed_tokens(torch.from_numpy(errors), mask)
    assert torch.equal(adv != 0, seen & (adv != 0)) and (adv[seen] != 0).any()
    per_clip = adv[seen].reshape(2, -1)  # centred over the decoded tokens: zero sum up to float32 round-off
    torch.testing.assert_close(per_clip.sum(1), torch.zeros(2), atol=1e-6 * float(per_clip.abs().sum()), rtol=0)
    # An infinite error (a diverged step) still removes the whole clip's credit.
    broken = torch.from_numpy(errors).clone()
    broken[0, int(seen[0].nonzero()[0])] = float("inf")
    assert (token_advantages(broken, mask, "mask_hard", "centered")[0] == 0).all()


def test_fused_adamw_is_the_default_and_takes_the_same_steps_as_the_loop():
    """The engine's fused AdamW (one kernel per tensor) updates the weights as the per-tensor loop does."""
    cfg = get_preset("tiny", num_frames=4, image_size=32, embed_dim=32, depth=1, num_heads=2,
                     decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    videos = _clips(cfg, 2)
    mask = tube_mask(videos, cfg.video, 0.75)
    weights = {}
    for fused in (True, False):
        torch.manual_seed(0)
        engine = CoTrainingEngine(cfg, EngineConfig(fused_adamw=fused, warmup_updates=0), batch_size=2)
        assert bool(engine.optimizer.defaults.get("fused")) is fused
        for _ in range(3):
            engine.update(videos, mask)
        weights[fused] = {n: p.detach().clone() for n, p in engine.model.named_parameters()}
    for name, value in weights[True].items():
        torch.testing.assert_close(value, weights[False][name], atol=1e-6, rtol=1e-5, msg=name)
