"""
The official VideoMAE AVA detection head (``VisionTransformer.forward`` of MCG-NJU/VideoMAE-Action-
Detection, VideoMAE paper Sec. 4.5 / Appendix "AVA"): the ViT map averaged over time, RoIAlign 7x7
at 1/16 (``sampling_ratio`` 0, not aligned), a 7x7 max pool, a linear layer to the 80 AVA action
ids and a sigmoid on every class.

That is PySlowFast's AVA head on one pathway without dropout, so :class:`VideoMAEROIHeads` is a
:class:`PySlowFastROIHeads` (same ``projection`` of P = 80 rows and ``projection_indices`` for the
60 evaluated classes) plus the official test-time box extension: each box is widened by
``test_box_extension`` = (0.1, 0.05) of its size, half on each side, and clipped to the clip
before pooling (``BoxList.extend``; the official training jitters boxes instead, here
``INPUT.CLIP.BOX_JITTER`` of the mapper).

An official file's ``head.weight`` / ``head.bias`` become ``roi_heads.projection.*``
(``acar_d2/checkpoint/key_mapping.py``, ``videomae_to_d2``).
"""
from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes

from .pyslowfast_heads import PySlowFastROIHeads

__all__ = ["VideoMAEROIHeads", "extend_boxes"]


def extend_boxes(boxes: torch.Tensor, extension: Sequence[float], size: Tuple[int, int]) -> torch.Tensor:
    """
    The official test-time box extension (maskrcnn-benchmark-style ``BoxList.extend``).

    With w = x2 - x1 + 1 and h = y2 - y1 + 1 ("+1" pixel sizes), x1 -= ex / 2 * w, x2 += ex / 2 * w,
    y1 -= ey / 2 * h, y2 += ey / 2 * h, then x clipped to [0, W - 1] and y to [0, H - 1].

    Args:
        boxes: (R, 4) XYXY clip px.
        extension: (ex, ey) fractions of the box width / height added in all.
        size: (H, W) of the unpadded clip.
    Returns:
        Tensor: (R, 4), a new tensor.
    """
    ex, ey = float(extension[0]), float(extension[1])
    H, W = size
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    dx, dy = ex / 2 * w, ey / 2 * h
    out = torch.stack([boxes[:, 0] - dx, boxes[:, 1] - dy, boxes[:, 2] + dx, boxes[:, 3] + dy], dim=1)
    out[:, 0::2] = out[:, 0::2].clamp(0, W - 1)
    out[:, 1::2] = out[:, 1::2].clamp(0, H - 1)
    return out


@ROI_HEADS_REGISTRY.register()
class VideoMAEROIHeads(PySlowFastROIHeads):
    """
    ``projection(maxpool(roi(mean_T(vit))))`` -> (R, K) logits; at test time the boxes are first
    extended by ``test_box_extension``.
    """

    @configurable
    def __init__(self, *, test_box_extension: Sequence[float] = (0.0, 0.0), **kwargs):
        """
        Args:
            test_box_extension: (ex, ey) of :func:`extend_boxes` at test time (official (0.1, 0.05));
                (0, 0) = none.
            kwargs: see :class:`PySlowFastROIHeads` (VideoMAE: one feature, stride 16, 80 rows,
                ``aligned`` False, no dropout).
        """
        super().__init__(**kwargs)
        if len(test_box_extension) != 2:
            raise ValueError(f"test_box_extension must be (x, y), got {list(test_box_extension)}")
        self.test_box_extension = tuple(float(e) for e in test_box_extension)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret["test_box_extension"] = list(cfg.MODEL.ACTION_HEAD.TEST_BOX_EXTENSION)
        return ret

    def pooled_boxes(self, boxes: List[Boxes], valid_sizes: List[Tuple[int, int]]) -> List[Boxes]:
        """The boxes RoIAlign reads: as given in training, extended at test time."""
        if self.training or self.test_box_extension == (0.0, 0.0):
            return boxes
        return [Boxes(extend_boxes(b.tensor, self.test_box_extension, vs)) for b, vs in zip(boxes, valid_sizes)]

    def predict_logits(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
        image_size: Tuple[int, int],
    ) -> torch.Tensor:
        """(R, K) logits."""
        return super().predict_logits(features, self.pooled_boxes(boxes, valid_sizes), valid_sizes, image_size)

    def roi_feature_vectors(
        self, features: Dict[str, torch.Tensor], boxes: List[Boxes], valid_sizes: List[Tuple[int, int]]
    ) -> torch.Tensor:
        """(R, C) max-pooled RoI features, the input of ``projection`` (official ``forward_features``)."""
        boxes = self.pooled_boxes(boxes, valid_sizes)
        return torch.cat(
            [self.pathway_features(features[f], boxes, s) for f, s in zip(self.in_features, self.spatial_scales)],
            dim=1,
        )
