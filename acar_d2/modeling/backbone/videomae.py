"""
VideoMAE ViT backbone (Tong et al., "VideoMAE", NeurIPS 2022; its AVA detection model, code
MCG-NJU/VideoMAE-Action-Detection), returning the token grid as a video feature map for the
action heads.

Forward (official ``VisionTransformer.forward_features`` up to the temporal pooling, which the
heads do):

1. tubelet embedding ``patch_embed.proj``: Conv3d with kernel = stride = (2, 16, 16), so a
   (N, 3, 16, H, W) clip becomes (N, C, 8, H/16, W/16) tokens, flattened in (t, h, w) order;
2. a **fixed** sine-cosine position table (not a parameter, not in checkpoints) made for the
   pre-training grid (8 x 14 x 14), interpolated bicubically (``align_corners=False``) per temporal
   slice to the input's (h, w) grid and added;
3. pre-norm transformer blocks (LayerNorm eps 1e-6; attention with a bias-free ``qkv`` linear plus
   learned ``q_bias`` / ``v_bias`` and no k bias; MLP ratio 4, GELU; stochastic depth);
4. ``norm`` (LayerNorm eps 1e-6), tokens back to (N, C, 8, h, w).

The transformer blocks are timm's BEiT ``Block`` (same computation and the same parameter names as
the official blocks: ``blocks.{i}.{norm1, attn.{qkv, q_bias, v_bias, proj}, norm2, mlp.{fc1,
fc2}}``), so an official checkpoint's keys load unchanged under ``backbone.``
(``acar_d2/checkpoint/key_mapping.py``, ``videomae_to_d2``).

Clips whose H or W is not a multiple of 16 are zero-padded at the bottom / right first, as the
official batch collator does (``BatchCollator(size_divisible=16)``); the map then has
ceil(H / 16) x ceil(W / 16) cells.
"""
from functools import partial
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from timm.models.beit import Block
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["VideoMAE", "build_videomae_backbone", "sinusoid_position_table", "VIT_SIZES"]

# (embed dim, depth, heads) of the VideoMAE ViTs (official ``vit_{small,base,large,huge}_patch16_224``).
VIT_SIZES = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "H": (1280, 32, 16)}


def sinusoid_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """
    The Transformer's sine-cosine table (Vaswani et al. 2017, Sec. 3.5), as VideoMAE builds it:
    angle(p, j) = p / 10000^(2 floor(j / 2) / dim), sin on even j, cos on odd j; computed in
    float64 and returned as float32.

    Returns:
        Tensor: (num_positions, dim).
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class TubeletEmbedding(nn.Module):
    """``proj``: Conv3d with kernel = stride = (tubelet, patch, patch): (N, 3, T, H, W) ->
    (N, C, T / tubelet, H / patch, W / patch)."""

    def __init__(self, embed_dim: int, patch_size: int, tubelet_size: int):
        super().__init__()
        size = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=size, stride=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class VideoMAE(Backbone):
    """
    VideoMAE ViT: input (N, 3, T, H, W) normalized clips with T = ``num_frames``, output
    ``{out_feature: (N, C, T / tubelet, ceil(H / 16), ceil(W / 16))}``.
    """

    @configurable
    def __init__(
        self,
        *,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        num_frames: int = 16,
        pretrain_img_size: int = 224,
        drop_path_rate: float = 0.0,
        use_checkpoint: bool = False,
        out_feature: str = "vit",
        in_channels: int = 3,
    ):
        """
        Args:
            embed_dim, depth, num_heads: ViT-S 384/12/6, B 768/12/12, L 1024/24/16, H 1280/32/16.
            mlp_ratio: MLP hidden width / embed_dim (4).
            patch_size: spatial tubelet size, also the output stride (16).
            tubelet_size: temporal tubelet size (2).
            num_frames: T of the input clips (16); the position table has T / tubelet slices.
            pretrain_img_size: side of the grid the position table is made for (224 -> 14 x 14).
            drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the
                first (official fine-tuning: 0.2 on AVA).
            use_checkpoint: recompute each block in the backward pass (activation memory of
                ViT-L / H; official ``--use_checkpoint``).
            out_feature: name of the returned map.
            in_channels: must be 3.
        """
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"VideoMAE expects 3 input channels (RGB), got {in_channels}")
        if embed_dim % num_heads != 0:
            raise ValueError(f"VideoMAE embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if num_frames % tubelet_size != 0:
            raise ValueError(f"VideoMAE num_frames {num_frames} is not a multiple of tubelet_size {tubelet_size}")
        self.patch_size, self.tubelet_size, self.num_frames = patch_size, tubelet_size, num_frames
        self.grid = pretrain_img_size // patch_size
        self.use_checkpoint = bool(use_checkpoint)
        self.patch_embed = TubeletEmbedding(embed_dim, patch_size, tubelet_size)
        slices = num_frames // tubelet_size
        table = sinusoid_position_table(slices * self.grid * self.grid, embed_dim)
        # Fixed, derived from the config: not saved in checkpoints (official files have no pos_embed).
        self.register_buffer("pos_embed", table.reshape(slices, self.grid, self.grid, embed_dim),
                             persistent=False)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, qkv_bias=True, mlp_ratio=mlp_ratio, drop_path=r,
                  init_values=None, norm_layer=norm_layer)
            for r in rates
        )
        self.norm = norm_layer(embed_dim)
        self._out_feature = out_feature
        self._out_features = [out_feature]
        self._out_feature_channels = {out_feature: embed_dim}
        self._out_feature_strides = {out_feature: patch_size}
        self.apply(_init_weights)

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None) -> dict:
        v = cfg.MODEL.VIDEOMAE
        return {
            "embed_dim": v.EMBED_DIM,
            "depth": v.DEPTH,
            "num_heads": v.NUM_HEADS,
            "mlp_ratio": v.MLP_RATIO,
            "patch_size": v.PATCH_SIZE,
            "tubelet_size": v.TUBELET_SIZE,
            "num_frames": cfg.INPUT.CLIP.NUM_FRAMES,
            "pretrain_img_size": v.PRETRAIN_IMG_SIZE,
            "drop_path_rate": v.DROP_PATH_RATE,
            "use_checkpoint": v.USE_CHECKPOINT,
            "out_feature": v.OUT_FEATURE,
            "in_channels": input_shape.channels if input_shape is not None else 3,
        }

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks (the layer-wise LR decay counts them)."""
        return len(self.blocks)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(T', h * w, C): the table of each temporal slice, bicubically resized to h x w."""
        table = self.pos_embed.permute(0, 3, 1, 2)  # (T', C, grid, grid)
        if (h, w) != (self.grid, self.grid):
            table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N, 3, T, H, W) -> {out_feature: (N, C, T / tubelet, ceil(H / 16), ceil(W / 16))}."""
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[2] != self.num_frames:
            raise ValueError(f"VideoMAE expects (N, 3, T={self.num_frames}, H, W) clips "
                             f"(INPUT.CLIP.NUM_FRAMES), got shape {tuple(x.shape)}")
        p = self.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:  # official collator: size_divisible=16, zeros at the bottom / right
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)
        n, c, t, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, t*h*w, C), (t, h, w) order
        tokens = tokens + self.position_embedding(h, w).reshape(1, t * h * w, c).to(tokens.dtype)
        for block in self.blocks:
            if self.use_checkpoint and self.training:
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        tokens = self.norm(tokens)
        return {self._out_feature: tokens.transpose(1, 2).reshape(n, c, t, h, w)}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        name = self._out_feature
        return {name: ShapeSpec(channels=self._out_feature_channels[name],
                                stride=self._out_feature_strides[name])}


def _init_weights(m: nn.Module) -> None:
    # The official fine-tuning initialization (truncated normal std 0.02 for linear layers, zero
    # biases, unit LayerNorms); pre-trained weights replace it in every real use.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@BACKBONE_REGISTRY.register()
def build_videomae_backbone(cfg, input_shape: ShapeSpec) -> VideoMAE:
    """Build the VideoMAE ViT from ``cfg.MODEL.VIDEOMAE`` and ``cfg.INPUT.CLIP.NUM_FRAMES``."""
    return VideoMAE(cfg, input_shape)
