"""
SlowFast video backbone (Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV
2019) as configured by ACAR-Net (Pan et al., CVPR 2021, Sec. 4.1) and PySlowFast's AVA models.

Topology (SlowFast paper Table 1, "SlowFast R50"; res5 as in the AVA models):

* Two ResNet pathways of bottleneck blocks. The fast pathway sees all T frames and has 1/beta of
  the slow pathway's channels (Sec. 3.2); the slow pathway sees T/alpha frames (Sec. 3.1).
* Stems: conv 1x7x7 (slow) / 5x7x7 (fast), spatial stride 2, then max pool 1x3x3 stride 2.
* Temporal kernels of the first 1x1 conv of each block (Table 1: "non-degenerate temporal
  convolutions"): slow 1 in res2/res3 and 3 in res4/res5, fast 3 everywhere.
* Spatial stride 2 in the 1x3x3 conv of the first block of res3, res4 (and res5 unless dilated):
  with res5 dilation 2 the output stride is 16 (ACAR Sec. 4.1 / SlowFast Sec. 5 on AVA), else 32.
* Lateral fast->slow connections after the stems and after res2, res3, res4 (Sec. 3.3
  "time-strided convolution"): conv kx1x1 with temporal stride alpha to
  FUSION_CONV_CHANNEL_RATIO x fast channels (+ BN + ReLU, official R50; plain conv, official R101),
  concatenated after the slow features ([slow, fast->slow]).

Depths: 50 = (3, 4, 6, 3) and 101 = (3, 4, 23, 3) bottleneck blocks (ResNet paper Table 1).
Depth 18 here means the SAME bottleneck block with (2, 2, 2, 2) blocks, not ResNet-18's basic
blocks: it keeps one block type, one parameter naming and the same output channels (32 x WIDTH),
so a CPU-sized model differs from R50 only in block counts. Depth 10, (1, 1, 1, 1), is the
smallest such model; the relation benchmark uses it for its small receptive field (75 px with res5
undilated, datasets/SYNTHETIC.md).

The blocks (bottleneck, stage, stem, pathway, lateral fusion) are in :mod:`.resnet3d`.

Parameter names (a complete mapping to the official ACAR-Net / PySlowFast / Caffe2 names lives in
``acar_d2.checkpoint``):

    {slow,fast}.stem.conv / .bn               ACAR {p}_conv1 / {p}_bn1
    {slow,fast}.res{2..5}.{i}.conv{1,2,3} / .bn{1,2,3}
                                              ACAR {p}_res{1..4}.{i}.conv{j} / .bn{j}
    {slow,fast}.res{s}.0.shortcut / .shortcut_bn
                                              ACAR {p}_res{s-1}.0.downsample.0 / .downsample_bn
    slow.res{s}.nonlocal{i}.*                 PySlowFast s{s}.pathway0_nonlocal{i}.*
    fuse.{stem,res2,res3,res4}.conv / .bn     ACAR Tconv{1..4}(.0 / .1)
"""
import functools
from typing import Dict, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from .norm import get_norm3d
from .resnet3d import (
    FAST_STEM_TEMPORAL_KERNEL,
    FAST_TEMPORAL_KERNELS,
    SLOW_STEM_TEMPORAL_KERNEL,
    SLOW_TEMPORAL_KERNELS,
    STAGE_BLOCKS,
    STAGE_NAMES,
    res5_geometry,
    LateralFusion,
    NormFactory,
    Pathway,
)

__all__ = ["SlowFast", "build_slowfast_backbone", "STAGE_BLOCKS", "pick_slow_frame_indices"]


def pick_slow_frame_indices(
    num_frames: int, alpha: int, full_span: bool, device: Optional[torch.device] = None
) -> torch.Tensor:
    """
    Frame indices of the slow pathway input.

    Args:
        num_frames (int): T, frames of the (fast-rate) clip.
        alpha (int): frame-rate ratio.
        full_span (bool): True: ``linspace(0, T-1, T/alpha)`` truncated to int, spanning the
            whole clip (official R50 and PySlowFast's loader: 0, 4, 8, 13, 17, 22, 26, 31 for
            T=32); False: every alpha-th frame (official R101: 0, 4, ..., 28).
    Returns:
        Tensor: (T/alpha,) int64.
    """
    return torch.tensor(_slow_frame_index_list(int(num_frames), int(alpha), bool(full_span)),
                        dtype=torch.long, device=device)


@functools.lru_cache(maxsize=None)
def _slow_frame_index_list(num_frames: int, alpha: int, full_span: bool) -> Tuple[int, ...]:
    """The indices of :func:`pick_slow_frame_indices` as Python ints: a traced / exported graph
    holds them as a constant (a traced ``linspace`` is recomputed by the runtime in its own float
    arithmetic, whose truncation can pick another frame)."""
    num_slow = num_frames // alpha
    if full_span:
        # float32 linspace then truncation, exactly the official rule.
        return tuple(torch.linspace(0, num_frames - 1, num_slow).long().tolist())
    return tuple(range(0, num_slow * alpha, alpha))



class SlowFast(Backbone):
    """
    SlowFast backbone: input one normalized clip batch (the fast pathway input), output the last
    feature maps of both pathways.

    Build from explicit arguments (tests) or from a config (``SlowFast(cfg, input_shape)``).
    """

    @configurable
    def __init__(self, *, depth: int = 50, width: int = 64, alpha: int = 4, beta_inv: int = 8,
                 fusion_conv_channel_ratio: int = 2, fusion_kernel_size: int = 7,
                 fusion_only_conv: bool = False, slow_full_span: bool = True,
                 res5_dilation: int = 2, res5_stride: int = 0,
                 nonlocal_locations: Sequence[Sequence[int]] = ((), (), (), ()),
                 nonlocal_pool: Sequence[int] = (1, 2, 2), nonlocal_instantiation: str = "softmax",
                 num_block_temp_kernel: Sequence[int] = (), norm: str = "FrozenStatsBN",
                 out_features: Sequence[str] = ("slow", "fast"), in_channels: int = 3):
        """
        Args:
            depth (int): 10, 18, 50 or 101 (see ``STAGE_BLOCKS``).
            width (int): slow stem channels (64 in the paper); stage widths scale with it.
            alpha (int): fast/slow frame-rate ratio (SlowFast Sec. 3.1; ACAR: 4).
            beta_inv (int): slow/fast channel ratio (SlowFast Sec. 3.2: 8). ``width`` must be
                divisible by it.
            fusion_conv_channel_ratio (int): lateral output channels / fast channels (Sec. 3.3: 2).
            fusion_kernel_size (int): temporal kernel of the laterals (official R50 7, R101 5).
            fusion_only_conv (bool): laterals are a bare conv (official R101) instead of
                conv + BN + ReLU (official R50).
            slow_full_span (bool): slow frames by linspace over the clip (R50) or stride (R101).
            res5_dilation (int): 1 (res5 stride 2, output stride 32) or > 1 (stride 1 with this
                dilation, output stride 16).
            res5_stride (int): 0 (as ``res5_dilation`` implies), or 1 / 2 explicitly: 1 with
                dilation 1 keeps output stride 16 at a smaller receptive field
                (``resnet3d.res5_geometry``).
            nonlocal_locations (list[list[int]]): per stage res2..res5, block indices followed by a
                non-local block in the slow pathway.
            nonlocal_pool, nonlocal_instantiation: see ``NonLocalBlock3d``.
            num_block_temp_kernel (list[int]): empty, or per stage res2..res5 how many leading
                blocks of both pathways keep their temporal kernel (the rest use 1), e.g.
                PySlowFast's R101 "50_50" AVA models: [3, 4, 6, 3].
            norm (str): the backbone norm, ``MODEL.SLOWFAST.NORM``: "FrozenStatsBN" (official
                ``freeze_bn``: stored statistics, trainable scale / shift), "FrozenBN" (nothing
                trains) or "BN" (batch statistics); see ``norm.py``.
            out_features (list[str]): subset of ("slow", "fast") to return.
            in_channels (int): must be 3 (RGB clips).
        """
        super().__init__()
        _check_arguments(depth, width, beta_inv, in_channels, num_block_temp_kernel,
                         nonlocal_locations, out_features)
        self.depth = depth
        self.alpha = alpha
        self.slow_full_span = slow_full_span
        self.res5_dilation = res5_dilation
        self._out_features = list(out_features)

        norm_layer: NormFactory = get_norm3d(norm)
        blocks = STAGE_BLOCKS[depth]
        fast_width = width // beta_inv
        slow_out, fast_out, fuse_in, fuse_out = _pathway_channels(width, fast_width,
                                                                  fusion_conv_channel_ratio)
        slow_stage_in = [slow_out[s] + fuse_out[s] for s in range(4)]

        shared = dict(stage_blocks=blocks, res5_dilation=res5_dilation, res5_stride=res5_stride,
                      norm=norm_layer, num_temporal_blocks=num_block_temp_kernel)
        self.slow = Pathway(
            stem_channels=width, stage_in_channels=slow_stage_in,
            stem_temporal_kernel=SLOW_STEM_TEMPORAL_KERNEL, temporal_kernels=SLOW_TEMPORAL_KERNELS,
            nonlocal_locations=nonlocal_locations, nonlocal_pool=nonlocal_pool,
            nonlocal_instantiation=nonlocal_instantiation, **shared)
        self.fast = Pathway(
            stem_channels=fast_width, stage_in_channels=fast_out[:4],
            stem_temporal_kernel=FAST_STEM_TEMPORAL_KERNEL, temporal_kernels=FAST_TEMPORAL_KERNELS,
            **shared)
        self.fuse = nn.ModuleDict({
            src: LateralFusion(fuse_in[s], fuse_out[s], kernel_size=fusion_kernel_size, alpha=alpha,
                               only_conv=fusion_only_conv, norm=norm_layer)
            for s, src in enumerate(("stem", "res2", "res3", "res4"))
        })
        stride = res5_geometry(res5_dilation, res5_stride)[2]
        self._out_feature_channels = {"slow": slow_out[4], "fast": fast_out[4]}
        self._out_feature_strides = {"slow": stride, "fast": stride}
        self._init_weights()

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None) -> dict:
        sf = cfg.MODEL.SLOWFAST
        return {
            "depth": sf.DEPTH,
            "width": sf.WIDTH,
            "alpha": sf.ALPHA,
            "beta_inv": sf.BETA_INV,
            "fusion_conv_channel_ratio": sf.FUSION_CONV_CHANNEL_RATIO,
            "fusion_kernel_size": sf.FUSION_KERNEL_SIZE,
            "fusion_only_conv": sf.FUSION_ONLY_CONV,
            "slow_full_span": sf.SLOW_FULL_SPAN,
            "res5_dilation": sf.RES5_DILATION,
            "res5_stride": sf.RES5_STRIDE,
            "nonlocal_locations": [list(x) for x in sf.NONLOCAL_LOCATIONS],
            "nonlocal_pool": list(sf.NONLOCAL_POOL),
            "nonlocal_instantiation": sf.NONLOCAL_INSTANTIATION,
            "num_block_temp_kernel": [int(n) for n in sf.NUM_BLOCK_TEMP_KERNEL],
            "norm": sf.NORM,
            "out_features": list(sf.OUT_FEATURES),
            "in_channels": input_shape.channels if input_shape is not None else 3,
        }

    def _init_weights(self) -> None:
        # He init for convs (ResNet paper Sec. 3.4, "fan_out" as in PySlowFast's c2_msra_fill).
        # Final BNs of blocks keep gamma = 1 (not PySlowFast's zero init): with frozen BN a zero
        # gamma could never be learned away. Non-local blocks keep their zero gamma (identity).
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def slow_frame_indices(self, num_frames: int, device: Optional[torch.device] = None) -> torch.Tensor:
        """(T/alpha,) int64 indices of the clip frames the slow pathway sees."""
        return pick_slow_frame_indices(num_frames, self.alpha, self.slow_full_span, device)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x (Tensor): (N, 3, T, H, W) normalized clips, T divisible by alpha.
        Returns:
            dict[str, Tensor]: ``"slow"`` (N, C_slow, T/alpha, h, w) and ``"fast"``
            (N, C_fast, T, h, w), h = ceil(H / stride), w = ceil(W / stride) (stride 16 or 32),
            restricted to ``out_features``.
        """
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"SlowFast expects (N, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        num_frames = x.shape[2]
        if num_frames % self.alpha != 0:
            raise ValueError(f"clip length T={num_frames} must be divisible by alpha={self.alpha}")
        slow = x.index_select(2, self.slow_frame_indices(num_frames, x.device))
        fast = x
        slow, fast = self.slow.stem(slow), self.fast.stem(fast)
        slow = torch.cat([slow, self.fuse["stem"](fast)], dim=1)
        for name in STAGE_NAMES:
            slow = getattr(self.slow, name)(slow)
            fast = getattr(self.fast, name)(fast)
            if name in self.fuse:
                slow = torch.cat([slow, self.fuse[name](fast)], dim=1)
        outputs = {"slow": slow, "fast": fast}
        return {k: outputs[k] for k in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_slowfast_backbone(cfg, input_shape: ShapeSpec) -> SlowFast:
    """Build the SlowFast backbone from ``cfg.MODEL.SLOWFAST`` (see ``add_slowfast_config``)."""
    return SlowFast(cfg, input_shape)


def _check_arguments(depth, width, beta_inv, in_channels, num_block_temp_kernel,
                     nonlocal_locations, out_features) -> None:
    """ValueError naming the argument of :class:`SlowFast` that cannot build a network."""
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"SlowFast depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
    if width % beta_inv != 0:
        raise ValueError(f"width {width} must be divisible by beta_inv {beta_inv}")
    if in_channels != 3:
        raise ValueError(f"SlowFast expects 3 input channels (RGB), got {in_channels}")
    if len(num_block_temp_kernel) not in (0, 4):
        raise ValueError(
            f"num_block_temp_kernel needs one count per stage res2..res5, got {list(num_block_temp_kernel)}"
        )
    if len(nonlocal_locations) != 4:
        raise ValueError(
            f"nonlocal_locations needs one list per stage res2..res5, got {nonlocal_locations}"
        )
    unknown = set(out_features) - {"slow", "fast"}
    if unknown or not out_features:
        raise ValueError(f"out_features must be a non-empty subset of slow/fast, got {out_features}")


def _pathway_channels(width: int, fast_width: int, fusion_conv_channel_ratio: int):
    """
    Channels of the two pathways: outputs of the stem and res2..res5 (5 each), the fast channels
    the laterals read after the stem, res2, res3, res4, and the channels they add to the slow
    side (the lateral after res_s widens the input of res_{s+1}).

    Returns:
        (slow_out, fast_out, fuse_in, fuse_out): lists of 5, 5, 4, 4 ints.
    """
    slow_out = [width] + [width * 4 * 2**s for s in range(4)]
    fast_out = [fast_width] + [fast_width * 4 * 2**s for s in range(4)]
    fuse_in = [fast_out[s] for s in range(4)]
    fuse_out = [fi * fusion_conv_channel_ratio for fi in fuse_in]
    return slow_out, fast_out, fuse_in, fuse_out
