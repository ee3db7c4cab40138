"""
Linear baseline head ("3D-CNN" in ACAR Table 1a; official ``linear`` head): RoIAlign + max pool
per pathway, concatenated [slow, fast], one linear classifier ``fc`` without bias.
"""
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY

from .action_heads import ActionROIHeads

__all__ = ["BaselineROIHeads"]


@ROI_HEADS_REGISTRY.register()
class BaselineROIHeads(ActionROIHeads):
    """Actor features only: ``fc(dropout([roi(slow), roi(fast)]))`` -> (R, K) logits."""

    class_row_tensors = ("fc.weight",)

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dropout = nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()
        self.fc = nn.Linear(sum(self.in_channels), self.num_classes, bias=False)

    def predict_logits(self, features, boxes, valid_sizes, image_size) -> torch.Tensor:
        pooled, _ = self.pooled_context(features, image_size, valid_sizes)
        # One RoIAlign per pathway (official), the same as one on the concatenation.
        actor = torch.cat([self.roi_features(p, boxes, image_size) for p in pooled], dim=1)
        return self.fc(self.dropout(actor))
