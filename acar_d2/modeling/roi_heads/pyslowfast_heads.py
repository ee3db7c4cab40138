"""
PySlowFast's AVA detection head (``ResNetRoIHead`` of PySlowFast's ``head_helper.py``, SlowFast
paper Sec. 5.1 "AVA Action Detection") as an action ROI head, so that PySlowFast's published AVA
models run as acar_d2 models.

Per pathway: average over all T frames (its ``AvgPool3d`` with kernel (T, 1, 1)), RoIAlign at
resolution 7 with spatial scale 1 / 16 (``DETECTION.SPATIAL_SCALE_FACTOR``, read here from the
backbone's ``ShapeSpec.stride``), sampling ratio 0 (adaptive) and ``aligned`` as the config says
(``DETECTION.ALIGNED``: True in PySlowFast's defaults, False in its AVA c2 configs, whose weights are
published), then a 7x7 spatial max pool. The pathway vectors are concatenated [slow, fast],
dropout (``MODEL.DROPOUT_RATE`` 0.5), a linear ``projection`` with bias, and a sigmoid at test
(``MODEL.HEAD_ACT``; its loss is the BCE of those sigmoids, here ``pose_softmax_bce_loss`` with
``MODEL.ACTION_HEAD.POSE_SOFTMAX`` False, the same loss).

Differences from the ACAR heads (:class:`ActionROIHeads.roi_features`): boxes are scaled by the
fixed 1 / stride, not by feature size / clip size, and RoIAlign samples adaptively with
``sampling_ratio=0`` as PySlowFast's ``ROIAlign`` wrapper does.

Parameter names: ``projection.weight`` (P, C) and ``projection.bias`` (P,), so a PySlowFast file's
``head.projection.*`` maps to ``roi_heads.projection.*`` (``acar_d2/checkpoint/key_mapping.py``).
PySlowFast's AVA models have P = 80 rows (action ids 1..80); ``projection_indices`` keeps the rows
that are this head's K outputs (AVA: the 60 evaluated classes), in order.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torchvision.ops import roi_align

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes

from .action_heads import ActionROIHeads
from .layout import temporal_mean

__all__ = ["PySlowFastROIHeads"]


@ROI_HEADS_REGISTRY.register()
class PySlowFastROIHeads(ActionROIHeads):
    """
    ``projection(dropout([maxpool(roi(mean_T(slow))), maxpool(roi(mean_T(fast)))]))`` -> (R, K)
    logits, RoIAlign at 1 / stride of each pathway.
    """

    @configurable
    def __init__(
        self,
        *,
        feature_strides: Sequence[int],
        aligned: bool = False,
        projection_classes: int = 0,
        projection_indices: Sequence[int] = (),
        **kwargs,
    ):
        """
        Args:
            feature_strides: stride of each of ``in_features`` w.r.t. the clip (SlowFast AVA: 16).
            aligned: RoIAlign half-pixel offset (PySlowFast ``DETECTION.ALIGNED``).
            projection_classes: P rows of ``projection`` (PySlowFast AVA: 80); 0 = ``num_classes``.
            projection_indices: the K rows, in order, that are the outputs; () = all P rows
                (then P must equal K).
            kwargs: see :class:`ActionROIHeads` (``dropout``: PySlowFast AVA 0.5).
        """
        super().__init__(**kwargs)
        if len(feature_strides) != len(self.in_features):
            raise ValueError(f"feature_strides {list(feature_strides)} vs in_features {self.in_features}")
        self.spatial_scales = [1.0 / float(s) for s in feature_strides]
        self.aligned = bool(aligned)
        rows = int(projection_classes) or self.num_classes
        indices = [int(i) for i in projection_indices] or list(range(rows))
        if len(indices) != self.num_classes or not all(0 <= i < rows for i in indices):
            raise ValueError(
                f"projection_indices must be {self.num_classes} (NUM_CLASSES) indices into the "
                f"{rows} projection rows, got {len(indices)}: {indices[:10]}"
            )
        self.dropout = nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()
        self.projection = nn.Linear(sum(self.in_channels), rows, bias=True)
        # Not a checkpoint tensor: the file holds the P-row projection only.
        self.register_buffer("projection_indices", torch.tensor(indices, dtype=torch.long), persistent=False)
        self._all_rows = indices == list(range(rows))
        # One projection row per class only without PROJECTION_INDICES (else those pick the rows).
        self.class_row_tensors = ("projection.weight", "projection.bias") if self._all_rows else ()

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        head_cfg = cfg.MODEL.ACTION_HEAD
        ret.update(
            feature_strides=[input_shape[f].stride for f in ret["in_features"]],
            aligned=head_cfg.POOLER_ALIGNED,
            projection_classes=head_cfg.PROJECTION_CLASSES,
            projection_indices=list(head_cfg.PROJECTION_INDICES),
        )
        return ret

    def pathway_features(self, x: torch.Tensor, boxes: List[Boxes], spatial_scale: float) -> torch.Tensor:
        """
        Args:
            x: (N, C, T, h, w) one pathway.
            boxes: N ``Boxes`` in clip px.
            spatial_scale: feature cells per clip pixel (1 / stride).
        Returns:
            Tensor: (R, C) temporal mean, RoIAlign, spatial max.
        """
        x = temporal_mean(x)
        rois = [b.tensor.to(x.dtype) for b in boxes]
        if sum(len(r) for r in rois) == 0:
            return x.new_zeros((0, x.shape[1]))
        pooled = roi_align(x, rois, output_size=self.pooler_resolution, spatial_scale=spatial_scale,
                           sampling_ratio=0, aligned=self.aligned)
        return pooled.amax(dim=(2, 3))

    def predict_logits(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
        image_size: Tuple[int, int],
    ) -> torch.Tensor:
        """(R, K) logits; the clip padding is not masked (PySlowFast clips have none)."""
        actor = torch.cat(
            [self.pathway_features(features[f], boxes, s) for f, s in zip(self.in_features, self.spatial_scales)],
            dim=1,
        )
        logits = self.projection(self.dropout(actor))
        return logits if self._all_rows else logits.index_select(1, self.projection_indices)
