"""
SlowOnly video backbone: the slow pathway of SlowFast alone (SlowFast paper, Feichtenhofer et al.
ICCV 2019, Table 2 "Slow-only"), as used by the ACAR-Net paper on UCF101-24 (Appendix A.1:
"SlowOnly R50 8x2", 8 input frames with temporal stride 2, Kinetics-400 pre-trained).

Topology = the slow pathway of :class:`~acar_d2.modeling.backbone.slowfast.SlowFast` without the
lateral connections: stem conv 1x7x7 + max pool, bottleneck stages res2..res5 with temporal
kernels 1, 1, 3, 3, res5 dilated (output stride 16) or strided (32). It sees every frame of its
input clip (no frame sub-sampling: the clip is already sampled at the slow rate).

Parameter names are those of the SlowFast slow pathway (``slow.stem.conv``,
``slow.res{2..5}.{i}.conv{1,2,3}``, ...), so the existing key mapping loads PySlowFast SlowOnly
checkpoints unchanged: ``.pyth`` keys ``s1.pathway0_stem.*`` / ``s{2..5}.pathway0_res{i}.*`` and
Caffe2 blobs ``conv1_w`` / ``res{2..5}_{i}_branch2{a,b,c}_*`` map onto ``slow.*`` (the Kinetics
head is dropped), e.g. PySlowFast's ``SLOW_8x8_R50.pkl``.

Config: ``MODEL.BACKBONE.NAME "build_slowonly_backbone"``, the ``MODEL.SLOWFAST`` keys DEPTH,
WIDTH, RES5_DILATION, NONLOCAL_*, NORM (the fast-pathway / fusion keys are unused),
``MODEL.ROI_HEADS.IN_FEATURES ["slow"]``.
"""
from typing import Dict, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from .norm import get_norm3d
from .resnet3d import (
    SLOW_STEM_TEMPORAL_KERNEL,
    SLOW_TEMPORAL_KERNELS,
    STAGE_BLOCKS,
    STAGE_NAMES,
    res5_geometry,
    Pathway,
)

__all__ = ["SlowOnly", "build_slowonly_backbone"]


class SlowOnly(Backbone):
    """
    SlowOnly backbone: input (N, 3, T, H, W) normalized clips, output ``{"slow": (N, 32 * width,
    T, ceil(H / s), ceil(W / s))}`` with s = 16 (res5 dilated) or 32.
    """

    @configurable
    def __init__(
        self,
        *,
        depth: int = 50,
        width: int = 64,
        res5_dilation: int = 2,
        res5_stride: int = 0,
        nonlocal_locations: Sequence[Sequence[int]] = ((), (), (), ()),
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        nonlocal_instantiation: str = "softmax",
        norm: str = "FrozenStatsBN",
        in_channels: int = 3,
    ):
        """
        Args:
            depth (int): 10, 18, 50 or 101 (``STAGE_BLOCKS`` of resnet3d.py).
            width (int): stem channels (64 in the paper).
            res5_dilation (int): 1 (stride 32) or > 1 (stride 16, the AVA / UCF setting).
            res5_stride (int): 0 (as ``res5_dilation`` implies), 1 or 2 (``res5_geometry``).
            nonlocal_locations, nonlocal_pool, nonlocal_instantiation: as in SlowFast.
            norm (str): "FrozenStatsBN", "FrozenBN" or "BN", as in SlowFast.
            in_channels (int): must be 3.
        """
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"SlowOnly depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        if in_channels != 3:
            raise ValueError(f"SlowOnly expects 3 input channels (RGB), got {in_channels}")
        norm_layer = get_norm3d(norm)
        stage_in = [width] + [width * 4 * 2**s for s in range(3)]
        self.slow = Pathway(
            stem_channels=width,
            stage_in_channels=stage_in,
            stage_blocks=STAGE_BLOCKS[depth],
            stem_temporal_kernel=SLOW_STEM_TEMPORAL_KERNEL,
            temporal_kernels=SLOW_TEMPORAL_KERNELS,
            res5_dilation=res5_dilation,
            res5_stride=res5_stride,
            norm=norm_layer,
            nonlocal_locations=nonlocal_locations,
            nonlocal_pool=nonlocal_pool,
            nonlocal_instantiation=nonlocal_instantiation,
        )
        self.depth = depth
        self._out_features = ["slow"]
        self._out_feature_channels = {"slow": width * 32}
        self._out_feature_strides = {"slow": res5_geometry(res5_dilation, res5_stride)[2]}
        for m in self.modules():  # He init, "fan_out" (as SlowFast._init_weights)
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None) -> dict:
        sf = cfg.MODEL.SLOWFAST
        return {
            "depth": sf.DEPTH,
            "width": sf.WIDTH,
            "res5_dilation": sf.RES5_DILATION,
            "res5_stride": sf.RES5_STRIDE,
            "nonlocal_locations": [list(x) for x in sf.NONLOCAL_LOCATIONS],
            "nonlocal_pool": list(sf.NONLOCAL_POOL),
            "nonlocal_instantiation": sf.NONLOCAL_INSTANTIATION,
            "norm": sf.NORM,
            "in_channels": input_shape.channels if input_shape is not None else 3,
        }

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N, 3, T, H, W) -> {"slow": (N, C, T, h, w)}."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"SlowOnly expects (N, 3, T, H, W) clips, got shape {tuple(x.shape)}")
        x = self.slow.stem(x)
        for name in STAGE_NAMES:
            x = getattr(self.slow, name)(x)
        return {"slow": x}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {"slow": ShapeSpec(channels=self._out_feature_channels["slow"],
                                  stride=self._out_feature_strides["slow"])}


@BACKBONE_REGISTRY.register()
def build_slowonly_backbone(cfg, input_shape: ShapeSpec) -> SlowOnly:
    """Build the SlowOnly backbone from ``cfg.MODEL.SLOWFAST`` (slow-pathway keys)."""
    return SlowOnly(cfg, input_shape)
