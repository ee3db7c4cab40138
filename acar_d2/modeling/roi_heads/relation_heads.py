"""
First-order relation heads (ACAR Table 1a): actor-actor and actor-context.

* :class:`ActorContextROIHeads` (ACRN-style): every actor feature is paired with every cell of the
  clip's context map, a 1x1 + 3x3 convolution turns the pairs into relation maps, which are
  downsampled, averaged and classified together with the actor feature. The ACAR head
  (``acar_heads.py``) is this head plus HR2O on the relation maps.
* :class:`ActorActorROIHeads`: self-attention among the actor features of a clip, no context.

Both reduce the [slow, fast] context with a 1x1 ``conv_reduce`` first (official ACAR head).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes

from .action_heads import ActionROIHeads
from .hr2o import build_hr2o
from .layout import ClipActorLayout, SingleClipLayout, ValidRegion, masked_mean, sizes_tensor

__all__ = ["ActorContextROIHeads", "ActorActorROIHeads", "DOWNSAMPLE_MODES"]

# ACAR Table 1c: resolution of the relation maps handed to HR2O.
DOWNSAMPLE_MODES = ("none", "2x2", "4x4", "global")


class _ReducedContextROIHeads(ActionROIHeads):
    """Shared part of the relation heads: ``conv_reduce`` of the [slow, fast] context."""

    class_row_tensors = ("fc2.weight",)

    @configurable
    def __init__(self, *, reduce_dim: int = 1024, hidden_dim: int = 512, **kwargs):
        """
        Args:
            reduce_dim: channels after the 1x1 context reduction (official: 1024).
            hidden_dim: channels of the relation features (official: 512).
            kwargs: see :class:`ActionROIHeads`.
        """
        super().__init__(**kwargs)
        self.reduce_dim = int(reduce_dim)
        self.hidden_dim = int(hidden_dim)
        # No bias, as official.
        self.conv_reduce = nn.Conv2d(sum(self.in_channels), reduce_dim, 1, bias=False)
        self.fc1 = nn.Linear(reduce_dim, hidden_dim, bias=False)
        self.fc2 = nn.Linear(2 * hidden_dim, self.num_classes, bias=False)
        self.dropout = nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret["reduce_dim"] = cfg.MODEL.ACTION_HEAD.REDUCE_DIM
        ret["hidden_dim"] = cfg.MODEL.ACTION_HEAD.HIDDEN_DIM
        return ret

    def reduce_context(
        self,
        features: Dict[str, torch.Tensor],
        image_size: Tuple[int, int],
        valid_sizes: List[Tuple[int, int]],
    ) -> Tuple[torch.Tensor, List[Tuple[int, int]]]:
        """
        Returns:
            Tensor: (N, reduce_dim, h, w) reduced maps, padding included (RoIAlign input; the
            context is ``mask_to_valid`` of it).
            list[tuple[int, int]]: N valid feature sizes (h_i, w_i).
        """
        pooled, crop = self.pooled_context(features, image_size, valid_sizes)
        return self.conv_reduce(torch.cat(pooled, dim=1)), crop

    def classify(self, actor: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        """actor (R, reduce_dim), relation (R, hidden_dim) -> (R, K) logits via
        ``fc2([ReLU(fc1(actor)), relation])`` (official order)."""
        x = torch.cat([F.relu(self.fc1(actor)), relation], dim=1)
        return self.fc2(self.dropout(x))


@ROI_HEADS_REGISTRY.register()
class ActorContextROIHeads(_ReducedContextROIHeads):
    """
    First-order actor-context relations (ACRN-style; ACAR Table 1a "actor-context").

    Relation maps per actor i and cell (y, x): ``conv2(ReLU(conv1([context(y, x), actor_i])))``.
    conv1 is 1x1, so it is evaluated as ``W_ctx * context`` once per clip plus ``W_actor * actor_i``
    once per actor instead of on R tiled copies of the context (one parameter ``conv1`` whose
    input channels are [context | actor], as in the official checkpoint).
    """

    @configurable
    def __init__(self, *, downsample: str = "2x2", **kwargs):
        """
        Args:
            downsample: "none", "2x2" (official: 3x3 max pool, stride 2, pad 1), "4x4" (two such
                pools) or "global" (max over the valid cells) (ACAR Table 1c).
            kwargs: see :class:`_ReducedContextROIHeads`.
        """
        super().__init__(**kwargs)
        if downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample '{downsample}' not in {DOWNSAMPLE_MODES}")
        self.downsample = downsample
        self.conv1 = nn.Conv2d(2 * self.reduce_dim, self.hidden_dim, 1, bias=False)
        # Unpadded 3x3 (official): relation maps shrink by 2 cells, never reading beyond the crop.
        self.conv2 = nn.Conv2d(self.hidden_dim, self.hidden_dim, 3, bias=False)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret["downsample"] = cfg.MODEL.ACTION_HEAD.DOWNSAMPLE
        return ret

    def first_order_maps(
        self, context: torch.Tensor, actor: torch.Tensor, layout: ClipActorLayout,
        crop: List[Tuple[int, int]],
    ) -> Tuple[torch.Tensor, ValidRegion]:
        """
        Args:
            context: (N, reduce_dim, h, w), zero outside the valid region.
            actor: (R, reduce_dim).
            layout: clip of each actor.
            crop: N valid feature sizes.

        Returns:
            Tensor: (R, hidden_dim, h', w') relation maps after downsampling, zero outside the
            valid region; the matching :class:`ValidRegion`.
        """
        h, w = context.shape[-2:]
        if h < 3 or w < 3:
            raise ValueError(f"context map {h}x{w} is smaller than the 3x3 relation conv")
        w_ctx, w_act = self.conv1.weight.split([self.reduce_dim, self.reduce_dim], dim=1)
        ctx_part = F.conv2d(context, w_ctx)  # (N, hidden, h, w)
        act_part = F.linear(actor, w_act.flatten(1))  # (R, hidden)
        maps = F.relu(ctx_part[layout.clip_index] + act_part[:, :, None, None])
        maps = F.relu(self.conv2(maps))
        sizes = sizes_tensor(crop, context.device)[layout.clip_index]
        region = ValidRegion(sizes, (h, w)).after_valid_conv(3, maps.shape[-2:])
        region.check_nonempty("relation conv2")
        maps = maps * region.mask()
        return self._downsample(maps, region)

    def _downsample(self, maps: torch.Tensor, region: ValidRegion) -> Tuple[torch.Tensor, ValidRegion]:
        if self.downsample == "global":
            # Maps are >= 0 (ReLU) and zero outside the valid cells, so a plain max is the masked max.
            return maps.amax(dim=(2, 3), keepdim=True), region.global_pooled()
        num_pools = {"none": 0, "2x2": 1, "4x4": 2}[self.downsample]
        for _ in range(num_pools):
            # Zeros beyond the valid cells act like the -inf padding of the official crop because
            # the maps are non-negative; cells reaching past the valid region are re-masked.
            maps = F.max_pool2d(maps, kernel_size=3, stride=2, padding=1)
            region = region.after_pool(3, 2, 1, maps.shape[-2:])
            maps = maps * region.mask()
        return maps, region

    def high_order(self, maps: torch.Tensor, layout: ClipActorLayout, region: ValidRegion) -> torch.Tensor:
        """Hook for higher-order reasoning on the relation maps; first order: identity."""
        return maps

    def relation_features(
        self, context: torch.Tensor, actor: torch.Tensor, boxes: List[Boxes],
        crop: List[Tuple[int, int]], layout: Optional[ClipActorLayout] = None,
    ) -> torch.Tensor:
        """(R, hidden_dim) relation features: maps -> (HR2O) -> average over the valid cells.
        ``layout``: the clip of each actor (default: from the box counts)."""
        if layout is None:
            layout = ClipActorLayout([len(b) for b in boxes], context.device)
        maps, region = self.first_order_maps(context, actor, layout, crop)
        mask = region.mask()
        maps = self.high_order(maps, layout, region)
        return masked_mean(maps, mask)

    def predict_logits(self, features, boxes, valid_sizes, image_size) -> torch.Tensor:
        reduced, crop = self.reduce_context(features, image_size, valid_sizes)
        actor = self.roi_features(reduced, boxes, image_size)
        if actor.shape[0] == 0:
            # No actor in any clip: nothing to relate; keep the graph connected for DDP-style use.
            return actor.new_zeros((0, self.num_classes)) + 0.0 * reduced.sum()
        relation = self.relation_features(self.mask_to_valid(reduced, crop), actor, boxes, crop)
        return self.classify(actor, relation)

    def predict_clip_logits(
        self, features: Dict[str, torch.Tensor], boxes: torch.Tensor, image_size: Tuple[int, int],
        valid_size: Optional[Tuple[int, int]] = None,
    ) -> torch.Tensor:
        """
        :meth:`predict_logits` of one clip with R >= 1 actors, written so that a traced /
        exported graph keeps R dynamic (:class:`SingleClipLayout`); same values.

        Args:
            features: name -> (1, C_i, T_i, h, w).
            boxes: (R, 4) clip px.
            image_size: (H, W) of the clip tensor.
            valid_size: its unpadded (H_valid, W_valid) (default: all of it).
        Returns:
            Tensor: (R, K) logits.
        """
        valid = tuple(image_size) if valid_size is None else tuple(valid_size)
        reduced, crop = self.reduce_context(features, image_size, [valid])
        boxes = [Boxes(boxes)]
        actor = self.roi_features(reduced, boxes, image_size)
        relation = self.relation_features(self.mask_to_valid(reduced, crop), actor, boxes, crop,
                                          layout=SingleClipLayout(actor))
        return self.classify(actor, relation)


@ROI_HEADS_REGISTRY.register()
class ActorActorROIHeads(_ReducedContextROIHeads):
    """
    First-order actor-actor relations (ACAR Table 1a "actor-actor"): dot-product self-attention
    among the actors of a clip (the ``nl`` HR2O operator on 1x1 "maps", 1x1 kernels), residual.
    """

    @configurable
    def __init__(self, *, relation_dropout: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.actor_relation = build_hr2o(
            "nl", channels=self.hidden_dim, kernel_size=1, out_kernel_size=1, dropout=relation_dropout
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret["relation_dropout"] = cfg.MODEL.ACTION_HEAD.HR2O_DROPOUT
        return ret

    def predict_logits(self, features, boxes, valid_sizes, image_size) -> torch.Tensor:
        context, _ = self.reduce_context(features, image_size, valid_sizes)
        actor = self.roi_features(context, boxes, image_size)
        if actor.shape[0] == 0:
            return actor.new_zeros((0, self.num_classes)) + 0.0 * context.sum()
        return self.relate_actors(actor, ClipActorLayout([len(b) for b in boxes], actor.device))

    def predict_clip_logits(self, features, boxes, image_size, valid_size=None) -> torch.Tensor:
        """:meth:`predict_logits` of one clip, R dynamic when traced (see the base class)."""
        valid = tuple(image_size) if valid_size is None else tuple(valid_size)
        context, _ = self.reduce_context(features, image_size, [valid])
        actor = self.roi_features(context, [Boxes(boxes)], image_size)
        return self.relate_actors(actor, SingleClipLayout(actor))

    def relate_actors(self, actor: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        """(R, reduce_dim) actor features of the clips of ``layout`` -> (R, K) logits."""
        x = F.relu(self.fc1(actor))[:, :, None, None]  # (R, hidden, 1, 1)
        relation = self.actor_relation(x, layout, torch.ones_like(x[:, :1]))[:, :, 0, 0]
        return self.fc2(self.dropout(torch.cat([x[:, :, 0, 0], relation], dim=1)))
