"""VideoMAE: an encoder on visible tokens, a light decoder with mask tokens, masked-token MSE.

The public methods mirror facebookresearch/mae's ``models_mae.py``: :meth:`VideoMAE.patchify`,
:meth:`VideoMAE.forward_encoder`, :meth:`VideoMAE.forward_decoder`, :meth:`VideoMAE.forward_loss`.
Masks are boolean ``(B, N)`` tensors, True = masked, with the same count in every row (all
maskers in :mod:`tats_env.mae.masking` and the environment's action space guarantee this).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tats_env.config import MAEConfig, VideoSpec
from tats_env.mae.layers import Block, PatchEmbed3d, init_vit_weights, position_table, run_blocks


@dataclass
class MAEOutput:
    """What one MAE forward returns."""

    loss: Tensor
    """Scalar: mean squared error over all decoded tokens of the batch (every masked token without dual masking)."""
    per_clip_loss: Tensor
    """``(B,)``: mean error of each clip's decoded tokens."""
    per_token_loss: Tensor
    """``(B, N)``: each decoded token's reconstruction error; 0 at visible (and masked but undecoded) tokens."""
    pred: Tensor
    """``(B, D, patch_dim)``: predictions for the decoded tokens, in token order."""
    decoded: Tensor
    """``(B, N)`` bool: the tokens that were reconstructed (the mask itself without dual masking)."""


def check_mask(mask: Tensor, batch: int, num_tokens: int) -> int:
    """Validate a boolean ``(B, N)`` mask with one count per row; returns that count K."""
    if mask.dtype != torch.bool or tuple(mask.shape) != (batch, num_tokens):
        raise ValueError(
            f"mask must be a bool tensor of shape ({batch}, {num_tokens}) with True = masked, "
            f"got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    counts = mask.sum(dim=1)
    k = int(counts[0])
    if not bool((counts == k).all()):
        raise ValueError(f"every row of the mask needs the same number of masked tokens, got {counts.tolist()}")
    if k == 0 or k == num_tokens:
        raise ValueError(f"a mask must leave at least one token visible and mask at least one, got K={k}")
    return k


class VideoEncoder(nn.Module):
    """The ViT encoder: tubelet embedding, fixed sin-cos positions, blocks, final LayerNorm."""

    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed3d(cfg.video, cfg.embed_dim)
        self.register_buffer(
            "pos_embed", position_table(cfg.video, cfg.embed_dim, cfg.pos_embed), persistent=False
        )
        drop_rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, rate, cfg.layer_norm_eps)
            for rate in drop_rates
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)

    def forward(self, videos: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode the visible tokens ``(B, N - K, D)``; all ``N`` tokens when ``mask`` is None."""
        if mask is None:
            x = self.patch_embed(videos) + self.pos_embed.to(videos.dtype)
        else:  # embed the visible tubelets only: the masked ones' embeddings would be thrown away
            b, n = mask.shape[0], self.pos_embed.shape[1]
            k = check_mask(mask, videos.shape[0], n)
            visible = ~mask
            pos = self.pos_embed.to(videos.dtype).expand(b, -1, -1)[visible].reshape(b, n - k, -1)
            x = self.patch_embed.forward_selected(videos, visible) + pos
        x = run_blocks(self.blocks, x, self.cfg.use_checkpoint)
        return self.norm(x)


class FeatureEncoder(VideoEncoder):
    """An exported encoder as a feature extractor: ``(B, C, T, H, W)`` -> ``(B, N, D)``, no masking.

    Returns the last block's output before the pre-training ``norm`` (HF ``last_hidden_state``
    with mean pooling), or after it when ``final_norm`` is True. Parameter names are those of
    :class:`VideoEncoder`, so it is itself a valid ``source`` for :func:`export_encoder`.
    """

    def __init__(self, cfg: MAEConfig, final_norm: bool = False) -> None:
        super().__init__(cfg)
        self.final_norm = final_norm

    def forward(self, videos: Tensor) -> Tensor:  # type: ignore[override]
        """Token features of every token of ``videos``."""
        x = self.patch_embed(videos) + self.pos_embed.to(videos.dtype)
        x = run_blocks(self.blocks, x, self.cfg.use_checkpoint)
        return self.norm(x) if self.final_norm else x


class VideoDecoder(nn.Module):
    """The light decoder: predicts the pixels of masked tokens from encoder output + mask tokens."""

    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            Block(cfg.decoder_embed_dim, cfg.decoder_num_heads, cfg.mlp_ratio, cfg.qkv_bias, 0.0, cfg.layer_norm_eps)
            for _ in range(cfg.decoder_depth)
        )
        self.norm = nn.LayerNorm(cfg.decoder_embed_dim, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(cfg.decoder_embed_dim, cfg.video.patch_dim)

    def forward(self, x: Tensor, num_masked: int) -> Tensor:
        """Decode ``(B, N, Dd)`` (visible first, mask tokens last); predict the last ``num_masked``."""
        x = run_blocks(self.blocks, x, self.cfg.use_checkpoint)
        return self.head(self.norm(x[:, -num_masked:]))


class VideoMAE(nn.Module):
    """VideoMAE pre-training model with the original parameter names.

    ``encoder.*`` is the ViT to export; ``encoder_to_decoder``, ``mask_token`` and ``decoder.*``
    exist only for pre-training.
    """

    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.register_buffer(
            "pos_embed", position_table(cfg.video, cfg.decoder_embed_dim, cfg.pos_embed), persistent=False
        )
        self.decoder = VideoDecoder(cfg)
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer("pixel_mean", torch.tensor(cfg.video.mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.video.std).view(1, -1, 1, 1, 1), persistent=False)

    def no_weight_decay(self) -> set[str]:
        """Parameter names timm's optimizer factory keeps out of weight decay (besides biases and norms)."""
        return {"mask_token"}

    @property
    def spec(self) -> VideoSpec:
        """The clip shape this model was built for."""
        return self.cfg.video

    def embed_tokens(self, videos: Tensor) -> Tensor:
        """The tubelet embedding ``(B, N, D)`` of every token, without positions (the env's observation)."""
        return self.encoder.patch_embed(videos)

    def patchify(self, videos: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` -> ``(B, N, tubelet * p * p, C)`` pixel patches in token order."""
        spec = self.spec
        b, c, t, h, w = videos.shape
        pt, p = spec.tubelet_size, spec.patch_size
        x = videos.reshape(b, c, t // pt, pt, h // p, p, w // p, p)
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, t', h', w', pt, p, p, c
        return x.reshape(b, (t // pt) * (h // p) * (w // p), pt * p * p, c)

    def reconstruction_target(self, videos: Tensor, mask: Tensor | None = None) -> Tensor:
        """VideoMAE's target: 0-1 pixels, normalised per patch and channel if configured.

        ``(B, N, patch_dim)`` for all tokens, or ``(B, K, patch_dim)`` for the masked tokens only
        when ``mask`` is given (the statistics of visible patches are never needed for the loss).
        """
        pixels = self.patchify(videos.float() * self.pixel_std + self.pixel_mean)
        if mask is not None:
            pixels = pixels[mask].reshape(pixels.shape[0], -1, *pixels.shape[2:])
        if self.cfg.norm_pix_loss:
            mean = pixels.mean(dim=-2, keepdim=True)
            std = pixels.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            pixels = (pixels - mean) / (std + 1e-6)
        return pixels.flatten(2)

    def forward_encoder(self, videos: Tensor, mask: Tensor) -> Tensor:
        """Encode the visible tokens: ``(B, N - K, D)``."""
        return self.encoder(videos, mask)

    def forward_decoder(self, latent: Tensor, mask: Tensor, decoded: Tensor | None = None) -> Tensor:
        """Predict the decoded tokens ``(B, D, patch_dim)`` (all K masked ones when ``decoded`` is None) from the
        visible latents, in token order. ``decoded`` (dual masking) is a subset of ``mask`` with one count per row."""
        b, n = mask.shape
        x_vis = self.encoder_to_decoder(latent)
        d = x_vis.shape[-1]
        pos = self.pos_embed.to(x_vis.dtype).expand(b, -1, -1)
        pos_vis = pos[~mask].reshape(b, -1, d)
        pos_masked = pos[mask if decoded is None else decoded].reshape(b, -1, d)
        x = torch.cat((x_vis + pos_vis, self.mask_token.to(x_vis.dtype) + pos_masked), dim=1)
        return self.decoder(x, pos_masked.shape[1])

    def forward_loss(self, videos: Tensor, pred: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """MSE over the tokens of ``mask`` (the decoded ones under dual masking): ``(scalar loss, per-token loss
        (B, N) with 0 elsewhere)``."""
        target_masked = self.reconstruction_target(videos, mask)
        per_masked = (pred.float() - target_masked).pow(2).mean(dim=-1)
        per_token = torch.zeros(mask.shape, dtype=per_masked.dtype, device=mask.device)
        per_token = per_token.masked_scatter(mask, per_masked)
        return per_masked.mean(), per_token

    def forward(self, videos: Tensor, mask: Tensor, decoded: Tensor | None = None) -> MAEOutput:
        """One pre-training forward: encode visible tokens, decode the masked ones (only ``decoded``, a subset of
        ``mask``, under VideoMAE V2's dual masking; see :func:`tats_env.mae.masking.decoder_subset`), score them."""
        if decoded is not None:
            if decoded.shape != mask.shape or bool((decoded & ~mask).any()):
                raise ValueError("decoded must be a (B, N) bool subset of the masked tokens")
            check_mask(decoded, *mask.shape)  # one count per row
        target = mask if decoded is None else decoded
        latent = self.forward_encoder(videos, mask)
        pred = self.forward_decoder(latent, mask, decoded)
        loss, per_token = self.forward_loss(videos, pred, target)
        per_clip = per_token.sum(dim=1) / target.sum(dim=1)
        return MAEOutput(loss=loss, per_clip_loss=per_clip, per_token_loss=per_token, pred=pred, decoded=target)

    @torch.no_grad()
    def reconstruct(self, videos: Tensor, mask: Tensor) -> Tensor:
        """Clips ``(B, C, T, H, W)`` in 0-1 pixels: visible patches kept, masked ones predicted.

        With ``norm_pix_loss`` the prediction is de-normalised with the true patch statistics
        (as VideoMAE's visualisation does), so this shows the shape of what the model learnt.
        """
        out = self.forward(videos, mask)
        spec = self.spec
        pixels = self.patchify(videos.float() * self.pixel_std + self.pixel_mean)
        pred = out.pred.float().reshape(pixels.shape[0], -1, *pixels.shape[2:])
        if self.cfg.norm_pix_loss:
            masked_pixels = pixels[mask].reshape(pred.shape)
            mean = masked_pixels.mean(dim=-2, keepdim=True)
            std = masked_pixels.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            pred = pred * (std + 1e-6) + mean
        pixels = pixels.clone()
        pixels[mask] = pred.reshape(-1, *pixels.shape[2:])
        return self.unpatchify(pixels.clamp(0, 1), spec)

    @staticmethod
    def unpatchify(patches: Tensor, spec: VideoSpec) -> Tensor:
        """Inverse of :meth:`patchify`: ``(B, N, tubelet*p*p, C)`` -> ``(B, C, T, H, W)``."""
        b = patches.shape[0]
        tg, hg, wg = spec.grid
        pt, p, c = spec.tubelet_size, spec.patch_size, spec.in_chans
        x = patches.reshape(b, tg, hg, wg, pt, p, p, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, c, tg * pt, hg * p, wg * p)
