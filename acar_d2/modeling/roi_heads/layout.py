"""
Bookkeeping for batched relation reasoning: which region belongs to which clip, and which feature
cells of a (possibly zero-padded) clip are valid.

The ACAR head works on all R regions of N clips at once. Two things must stay per clip:

* attention over actors (HR2O) only mixes the actors of the same clip -> :class:`ClipActorLayout`
  scatters the flat (R, ...) region tensors into a padded (N, R_max, ...) layout with a mask;
* spatial operations only see the clip's valid context region (the official
  ``sizes_before_padding`` crop, rounded up to whole feature cells) -> :class:`ValidRegion` keeps
  per-region valid (h, w) sizes and the matching masks through convolutions and poolings, so maps
  of clips with different valid sizes can share one tensor without changing any valid output.
"""
from typing import List, Sequence, Tuple

import torch

__all__ = [
    "ClipActorLayout", "SingleClipLayout", "ValidRegion", "valid_feature_size", "temporal_mean",
]


def temporal_mean(x: torch.Tensor) -> torch.Tensor:
    """
    Mean over time of a pathway's features, (N, C, T, h, w) -> (N, C, h, w), contiguous.

    Contiguous input: ``x.mean(dim=2)`` itself. On channels-last activations (where ``mean(dim=2)``
    itself differs from the contiguous result by float rounding) the same mean within float
    rounding. There (the inference path, ``modeling/inference.py``) PyTorch's reduction over dim 2
    strides through memory: 15 ms for a (1, 2048, 8, 16, 16) res5 map on 2 CPU threads, 0.4 ms
    when the mean runs on the (N, T, h, w, C) view that is that memory's own order.
    """
    if x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last_3d):
        return x.permute(0, 2, 3, 4, 1).mean(dim=1).permute(0, 3, 1, 2).contiguous()
    return x.mean(dim=2)


def valid_feature_size(
    feature_hw: Tuple[int, int], image_hw: Tuple[int, int], valid_hw: Tuple[int, int]
) -> Tuple[int, int]:
    """
    Feature cells covering the valid (unpadded) part of a clip, rounded up (official ACAR head:
    ``ceil(h * H_valid / H)``, ``ceil(w * W_valid / W)``). Integer arithmetic avoids float
    round-off flipping the ceil.

    Args:
        feature_hw: (h, w) of the feature map.
        image_hw: (H, W) of the clip tensor the features come from (padding included).
        valid_hw: (H_valid, W_valid) unpadded size inside the clip.
    """
    (h, w), (H, W), (vh, vw) = feature_hw, image_hw, valid_hw
    if not (0 < vh <= H and 0 < vw <= W):
        raise ValueError(f"valid_size {valid_hw} must lie within the clip size {image_hw}")
    return (-(-h * vh // H), -(-w * vw // W))


class ClipActorLayout:
    """
    Map between the flat region order (R = R_1 + ... + R_N, clip-major) and a padded per-clip
    layout (N, R_max).

    Attributes:
        clip_index (Tensor): (R,) long, clip of each region.
        slot (Tensor): (R,) long, position of each region among its clip's regions.
        actor_mask (Tensor): (N, R_max) bool, True where a slot holds a region.
    """

    def __init__(self, num_regions_per_clip: Sequence[int], device: torch.device):
        counts = torch.as_tensor(list(num_regions_per_clip), dtype=torch.long, device=device)
        self.num_clips = len(num_regions_per_clip)
        self.max_regions = int(counts.max()) if self.num_clips > 0 and counts.numel() else 0
        self.clip_index = torch.repeat_interleave(torch.arange(self.num_clips, device=device), counts)
        starts = torch.cumsum(counts, 0) - counts
        self.slot = torch.arange(self.clip_index.numel(), device=device) - starts[self.clip_index]
        self.actor_mask = torch.zeros(self.num_clips, self.max_regions, dtype=torch.bool, device=device)
        self.actor_mask[self.clip_index, self.slot] = True

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(R, *S) -> (N, R_max, *S), zeros in empty slots."""
        out = x.new_zeros((self.num_clips, self.max_regions) + tuple(x.shape[1:]))
        return out.index_put((self.clip_index, self.slot), x)

    def to_flat(self, x: torch.Tensor) -> torch.Tensor:
        """(N, R_max, *S) -> (R, *S) in the flat region order."""
        return x[self.clip_index, self.slot]


class SingleClipLayout:
    """
    :class:`ClipActorLayout` of one clip whose R actors fill the padded layout: (N, R_max) =
    (1, R), every slot real. Its tensors are computed from the actor features with tensor
    operations only, so a traced or exported graph keeps R as a dynamic dimension (the general
    layout reads the counts as Python ints, which an exporter would freeze). ``to_padded`` /
    ``to_flat`` add / drop the clip axis, the same values as the general layout's scatter/gather.

    Args:
        actor (Tensor): (R, C) features of the clip's actors (only its length and device are used).
    """

    num_clips = 1

    def __init__(self, actor: torch.Tensor):
        num = actor.shape[0]
        self.max_regions = num
        self.slot = torch.arange(num, device=actor.device)
        self.clip_index = torch.zeros_like(self.slot)
        self.actor_mask = torch.ones_like(self.slot, dtype=torch.bool)[None]

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(R, *S) -> (1, R, *S)."""
        return x[None]

    def to_flat(self, x: torch.Tensor) -> torch.Tensor:
        """(1, R, *S) -> (R, *S)."""
        return x[0]


class ValidRegion:
    """
    Per-region valid spatial sizes of relation maps stored in a common (h, w) tensor.

    Valid cells are always the top-left (h_i, w_i) block (padding is bottom/right), so each
    operation below only needs the rule mapping an input size to an output size.
    """

    def __init__(self, sizes: torch.Tensor, map_hw: Tuple[int, int]):
        # sizes: (R, 2) long tensor of valid (h_i, w_i); map_hw: (h, w) of the stored maps.
        self.sizes = sizes
        self.map_hw = tuple(int(s) for s in map_hw)

    def mask(self) -> torch.Tensor:
        """(R, 1, h, w) float mask, 1 on valid cells."""
        h, w = self.map_hw
        dev = self.sizes.device
        rows = torch.arange(h, device=dev)[None, :] < self.sizes[:, :1]
        cols = torch.arange(w, device=dev)[None, :] < self.sizes[:, 1:]
        return (rows[:, :, None] & cols[:, None, :])[:, None].float()

    def after_valid_conv(self, kernel_size: int, map_hw: Tuple[int, int]) -> "ValidRegion":
        """Sizes after an unpadded stride-1 convolution."""
        return ValidRegion(self.sizes - (kernel_size - 1), map_hw)

    def after_pool(self, kernel_size: int, stride: int, padding: int, map_hw) -> "ValidRegion":
        """Sizes after a (max) pooling with floor rounding."""
        return ValidRegion(
            torch.div(self.sizes + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1,
            map_hw,
        )

    def global_pooled(self) -> "ValidRegion":
        return ValidRegion(torch.ones_like(self.sizes), (1, 1))

    def check_nonempty(self, what: str) -> None:
        if self.sizes.numel() and int(self.sizes.min()) < 1:
            raise ValueError(
                f"{what}: a clip's valid context region is too small (valid feature sizes "
                f"{self.sizes.tolist()}); the unpadded relation conv needs >= 3x3 context cells"
            )


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of (R, C, h, w) maps over the valid cells of (R, 1, h, w) ``mask`` -> (R, C)."""
    area = mask.sum(dim=(2, 3)).clamp(min=1.0)
    return (x * mask).sum(dim=(2, 3)) / area


def sizes_tensor(sizes: List[Tuple[int, int]], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(sizes, dtype=torch.long, device=device).reshape(-1, 2)
