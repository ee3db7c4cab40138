"""SlowFast, SlowOnly and VideoMAE ViT video backbones (registered in detectron2's BACKBONE_REGISTRY) and its layers."""
from .norm import (
    NORMS,
    FrozenBatchNorm3d,
    FrozenStatsBatchNorm3d,
    convert_frozen_batchnorm3d,
    get_norm3d,
)
from .nonlocal_block import NonLocalBlock3d
from .slowfast import SlowFast, build_slowfast_backbone, pick_slow_frame_indices
from .slowonly import SlowOnly, build_slowonly_backbone
from .videomae import VideoMAE, build_videomae_backbone

__all__ = [
    "NORMS",
    "FrozenBatchNorm3d",
    "FrozenStatsBatchNorm3d",
    "get_norm3d",
    "convert_frozen_batchnorm3d",
    "NonLocalBlock3d",
    "SlowFast",
    "build_slowfast_backbone",
    "SlowOnly",
    "build_slowonly_backbone",
    "pick_slow_frame_indices",
    "VideoMAE",
    "build_videomae_backbone",
]
