"""VideoMAE: position table, patchify, loss, shapes, errors, and a tiny overfit."""

import math

import pytest
import torch

from tats_env.config import get_preset
from tats_env.mae import VideoMAE, sincos_position_table, tube_mask
from tats_env.mae.model import check_mask


@pytest.fixture
def tiny_cfg():
    return get_preset("tiny", num_frames=4, image_size=32, embed_dim=64, depth=2, num_heads=2,
                      decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


def test_sincos_table_known_values():
    table = sincos_position_table(4, 6)
    assert table.shape == (1, 4, 6)
    pos = 3
    for j in range(6):
        angle = pos / 10000 ** (2 * (j // 2) / 6)
        expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
        assert table[0, pos, j].item() == pytest.approx(expected, abs=1e-6)
    # position 0: sin = 0 on even channels, cos = 1 on odd channels (interleaved, not concatenated)
    assert torch.equal(table[0, 0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))


def test_patchify_roundtrip_and_token_order(tiny_cfg):
    model = VideoMAE(tiny_cfg)
    spec = tiny_cfg.video
    videos = torch.randn(2, 3, spec.num_frames, spec.image_size, spec.image_size)
    patches = model.patchify(videos)
    assert patches.shape == (2, spec.num_tokens, spec.tubelet_size * spec.patch_size**2, 3)
    assert torch.equal(VideoMAE.unpatchify(patches, spec), videos)
    # token 1 is the second spatial patch of the first tubelet, matching the Conv3d flatten order
    p = spec.patch_size
    assert torch.equal(patches[0, 1, 0], videos[0, :, 0, 0, p])


def test_forward_shapes_and_per_token_loss(tiny_cfg):
    model = VideoMAE(tiny_cfg)
    spec = tiny_cfg.video
    videos = torch.randn(3, 3, spec.num_frames, spec.image_size, spec.image_size)
    mask = tube_mask(videos, spec, 0.75)
    k = spec.num_masked(0.75)
    out = model(videos, mask)
    assert out.pred.shape == (3, k, spec.patch_dim)
    assert out.per_token_loss.shape == (3, spec.num_tokens)
    assert torch.all(out.per_token_loss[~mask] == 0)
    assert torch.all(out.per_token_loss[mask] > 0)
    assert out.loss.item() == pytest.approx(out.per_token_loss[mask].mean().item(), rel=1e-5)
    assert torch.allclose(out.per_clip_loss, out.per_token_loss.sum(1) / k)


def test_encoder_sees_only_visible_tokens(tiny_cfg):
    model = VideoMAE(tiny_cfg)
    spec = tiny_cfg.video
    videos = torch.randn(2, 3, spec.num_frames, spec.image_size, spec.image_size)
    mask = tube_mask(videos, spec, 0.5)
    latent = model.forward_encoder(videos, mask)
    assert latent.shape == (2, spec.num_tokens - spec.num_masked(0.5), tiny_cfg.embed_dim)
    # changing pixels of masked tokens must not change the encoder output
    noisy = videos + 5 * VideoMAE.unpatchify(mask[..., None, None].float().expand(
        -1, -1, spec.tubelet_size * spec.patch_size**2, 3), spec) * torch.randn_like(videos)
    assert torch.allclose(model.forward_encoder(noisy, mask), latent, atol=1e-5)


def test_visible_only_embedding_equals_the_convolution_and_trains_the_same_weights(tiny_cfg):
    """The encoder embeds only the visible tubelets (a gather + the conv's weights as a linear map): the tokens,
    the encoder output and every gradient equal those of the full strided convolution followed by the gather."""
    model = VideoMAE(tiny_cfg)
    spec = tiny_cfg.video
    videos = torch.randn(2, 3, spec.num_frames, spec.image_size, spec.image_size)
    mask = tube_mask(videos, spec, 0.75)
    embed = model.encoder.patch_embed
    full = embed(videos)[~mask].reshape(2, -1, tiny_cfg.embed_dim)
    torch.testing.assert_close(embed.forward_selected(videos, ~mask), full, atol=1e-5, rtol=1e-5)

    def grads(path):
        model.zero_grad()
        if path == "conv":  # the old route: every token through the convolution, then the visible ones kept
            x = (embed(videos) + model.encoder.pos_embed)[~mask].reshape(2, -1, tiny_cfg.embed_dim)
            from tats_env.mae.layers import run_blocks
            out = model.encoder.norm(run_blocks(model.encoder.blocks, x, False))
        else:
            out = model.forward_encoder(videos, mask)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.encoder.named_parameters()}

    out_conv, g_conv = grads("conv")
    out_sel, g_sel = grads("selected")
    torch.testing.assert_close(out_sel, out_conv, atol=1e-5, rtol=1e-5)
    for name in g_conv:
        torch.testing.assert_close(g_sel[name], g_conv[name], atol=1e-6, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="expected videos of shape"):
        embed.forward_selected(videos[:, :, :2], ~mask)


def test_mask_validation_errors(tiny_cfg):
    n = tiny_cfg.video.num_tokens
    with pytest.raises(ValueError, match="bool tensor of shape"):
        check_mask(torch.zeros(2, n), 2, n)
    ragged = torch.zeros(2, n, dtype=torch.bool)
    ragged[0, :3] = True
    ragged[1, :4] = True
    with pytest.raises(ValueError, match="same number"):
        check_mask(ragged, 2, n)
    model = VideoMAE(tiny_cfg)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 32, 32\)"):
        model.embed_tokens(torch.zeros(1, 3, 5, 32, 32))


def test_norm_pix_target_is_standardised(tiny_cfg):
    import dataclasses
    model = VideoMAE(dataclasses.replace(tiny_cfg, norm_pix_loss=True))
    spec = tiny_cfg.video
    videos = torch.randn(1, 3, spec.num_frames, spec.image_size, spec.image_size)
    target = model.reconstruction_target(videos).reshape(1, spec.num_tokens, -1, 3)
    assert torch.allclose(target.mean(dim=2), torch.zeros(1, spec.num_tokens, 3), atol=1e-4)
    assert torch.allclose(target.std(dim=2), torch.ones(1, spec.num_tokens, 3), atol=1e-3)


def test_tiny_mae_overfits_fixed_batch(tiny_cfg):
    torch.manual_seed(0)
    model = VideoMAE(tiny_cfg)
    spec = tiny_cfg.video
    videos = torch.randn(4, 3, spec.num_frames, spec.image_size, spec.image_size)
    mask = tube_mask(videos, spec, 0.5, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(150):
        loss = model(videos, mask).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_activation_checkpointing_matches(tiny_cfg):
    import dataclasses
    torch.manual_seed(0)
    plain = VideoMAE(tiny_cfg)
    ckpt = VideoMAE(dataclasses.replace(tiny_cfg, use_checkpoint=True))
    ckpt.load_state_dict(plain.state_dict())
    spec = tiny_cfg.video
    videos = torch.randn(2, 3, spec.num_frames, spec.image_size, spec.image_size)
    mask = tube_mask(videos, spec, 0.5)
    a, b = plain(videos, mask).loss, ckpt(videos, mask).loss
    a.backward()
    b.backward()
    assert torch.allclose(a, b)
    ga = plain.encoder.blocks[0].attn.qkv.weight.grad
    gb = ckpt.encoder.blocks[0].attn.qkv.weight.grad
    assert torch.allclose(ga, gb, atol=1e-6)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_reconstruct_keeps_visible_pixels(tiny_cfg, norm_pix):
    import dataclasses
    model = VideoMAE(dataclasses.replace(tiny_cfg, norm_pix_loss=norm_pix)).eval()
    spec = tiny_cfg.video
    videos = torch.randn(1, 3, spec.num_frames, spec.image_size, spec.image_size).clamp(-1.5, 1.5)
    mask = tube_mask(videos, spec, 0.5)
    recon = model.reconstruct(videos, mask)
    pixels = (videos * model.pixel_std + model.pixel_mean).clamp(0, 1)
    visible = ~mask
    assert torch.allclose(model.patchify(recon)[visible], model.patchify(pixels)[visible], atol=1e-6)


def test_separable_position_table_gives_each_axis_its_own_band():
    from tats_env.mae.layers import separable_position_table

    grid, dim = (4, 3, 5), 24
    table = separable_position_table(grid, dim)[0].reshape(*grid, dim)
    t_band, h_band = slice(0, 8), slice(8, 16)  # 2 * (24 // 6) = 8 channels each for h and w, t gets the rest
    w_band = slice(16, 24)
    assert torch.equal(table[2, 0, 0, t_band], table[2, 2, 4, t_band])  # same time step, same time code
    assert torch.equal(table[0, 1, 0, h_band], table[3, 1, 4, h_band])
    assert torch.equal(table[0, 0, 3, w_band], table[3, 2, 3, w_band])
    assert torch.equal(table[1, 2, 3, t_band], sincos_position_table(4, 8)[0, 1])
    assert torch.equal(table[1, 2, 3, w_band], sincos_position_table(5, 8)[0, 3])
    flat = table.reshape(-1, dim)
    assert torch.cdist(flat, flat).add(torch.eye(len(flat))).min() > 0.1  # every token has its own code
    with pytest.raises(ValueError, match="even width"):
        separable_position_table(grid, 7)


def test_mae_with_3d_positions_trains_and_differs_from_1d(tiny_cfg):
    import dataclasses

    cfg3 = dataclasses.replace(tiny_cfg, pos_embed="3d")
    model = VideoMAE(cfg3)
    assert not torch.equal(model.encoder.pos_embed, VideoMAE(tiny_cfg).encoder.pos_embed)
    spec = cfg3.video
    videos = torch.randn(2, 3, spec.num_frames, spec.image_size, spec.image_size)
    out = model(videos, tube_mask(videos, spec, 0.75))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder.patch_embed.proj.weight.grad is not None
    with pytest.raises(ValueError, match="pos_embed"):
        dataclasses.replace(tiny_cfg, pos_embed="2d")


def test_tiny32_is_the_cpu_benchmark_preset_and_tiny_is_unchanged():
    cfg = get_preset("tiny32")
    assert cfg.video.grid == (4, 8, 8) and cfg.video.num_frames == 8 and cfg.video.sampling_rate == 2
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (128, 4, 2)
    tiny = get_preset("tiny")  # the env's default RL run depends on it
    assert tiny.video.grid == (8, 8, 8) and (tiny.embed_dim, tiny.depth) == (192, 4)
