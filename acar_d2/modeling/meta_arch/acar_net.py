"""
``ACARNet``: the spatio-temporal action detection meta-architecture (ACAR Sec. 3, Fig. 2):
a video backbone on the clip, actor boxes from a person detector, an action ROI head.

Clips of the same size run through the backbone together; clips of different sizes run in
separate groups instead of being zero-padded against each other (the official model padded a
batch to its largest clip, which made a clip's outputs depend on its batch companions). Each clip's
own padding (``valid_size``) is handled by the head.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from ..roi_heads.action_heads import ActionROIHeads

__all__ = ["ACARNet"]


def _event_storage_or_none():
    try:
        return get_event_storage()
    except AssertionError:  # not inside `with EventStorage()` (e.g. plain inference)
        return None


@META_ARCH_REGISTRY.register()
class ACARNet(nn.Module):
    """
    Backbone + optional proposal generator + action ROI heads.

    Input: ``list[dict]`` as in ``docs/ARCHITECTURE.md`` (one per clip): ``"clip"`` (3, T, H, W)
    normalized, ``"valid_size"`` (default (H, W)), ``"height"``/``"width"`` (default the valid
    size), ``"proposals"`` (Instances with ``proposal_boxes`` and ``scores``, clip px) and, in
    training, ``"instances"`` with ``gt_boxes`` and ``gt_actions`` (R, K).

    Output: training ``{"loss_action"}``; inference ``[{"instances": Instances((height, width))}]``
    with ``pred_boxes`` (original key-frame px), ``scores``, ``action_logits``, ``action_scores``.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        roi_heads: ActionROIHeads,
        proposal_generator: Optional[nn.Module] = None,
        proposal_score_thresh: float = 0.0,
    ):
        """
        Args:
            backbone: video backbone returning the features the head reads.
            roi_heads: an :class:`ActionROIHeads`.
            proposal_generator: optional person detector called as
                ``proposal_generator(batched_inputs) -> list[Instances]`` with ``proposal_boxes``
                (clip px) and ``scores``; None = proposals come with the inputs.
            proposal_score_thresh: test-time proposals with a lower person score are dropped
                (official: 0.85).
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.proposal_score_thresh = float(proposal_score_thresh)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "roi_heads": build_roi_heads(cfg, backbone.output_shape()),
            "proposal_score_thresh": cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH,
        }

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, batched_inputs: List[dict]):
        """See the class docstring."""
        if not self.training:
            return self.inference(batched_inputs)
        for i, x in enumerate(batched_inputs):
            if "instances" not in x:
                raise KeyError(f"training input {i} (video {x.get('video_id')}) has no 'instances'")
        boxes = [x["instances"].gt_boxes.to(self.device) for x in batched_inputs]
        gt_actions = torch.cat(
            [x["instances"].gt_actions.to(self.device) for x in batched_inputs], dim=0
        )
        logits = torch.cat(self.predict_logits(batched_inputs, boxes), dim=0)
        storage = _event_storage_or_none()
        if storage is not None:
            storage.put_scalar("acar/num_actors", float(logits.shape[0]))
        return self.roi_heads.losses(logits, gt_actions)

    def inference(self, batched_inputs: List[dict]) -> List[Dict[str, Instances]]:
        """Score the proposals of each clip; boxes are returned in original key-frame px."""
        proposals = self.get_proposals(batched_inputs)
        boxes = [p.proposal_boxes for p in proposals]
        logits = self.predict_logits(batched_inputs, boxes)
        return [
            {"instances": self.postprocess(x, p, lg)}
            for x, p, lg in zip(batched_inputs, proposals, logits)
        ]

    def get_proposals(self, batched_inputs: List[dict]) -> List[Instances]:
        """Test-time actor boxes: from the proposal generator or the inputs, score-thresholded."""
        if self.proposal_generator is not None:
            proposals = self.proposal_generator(batched_inputs)
        else:
            proposals = []
            for i, x in enumerate(batched_inputs):
                if "proposals" not in x:
                    raise KeyError(f"input {i} (video {x.get('video_id')}) has no 'proposals'")
                proposals.append(x["proposals"])
        out = []
        for p in proposals:
            p = p.to(self.device)
            if p.has("scores"):
                p = p[p.scores >= self.proposal_score_thresh]
            out.append(p)
        return out

    def predict_logits(self, batched_inputs: List[dict], boxes: List[Boxes]) -> List[torch.Tensor]:
        """
        Run backbone + head on clips grouped by size.

        Args:
            batched_inputs: N inputs with "clip" (3, T, H, W).
            boxes: N ``Boxes`` (R_i, 4) in clip px, on the model device.

        Returns:
            list[Tensor]: N tensors (R_i, K) of action logits, in input order.
        """
        groups: "OrderedDict[Tuple[int, ...], List[int]]" = OrderedDict()
        for i, x in enumerate(batched_inputs):
            if "clip" not in x:
                raise KeyError(f"input {i} (video {x.get('video_id')}) has no 'clip'")
            clip = x["clip"]
            if clip.dim() != 4 or clip.shape[0] != 3:
                raise ValueError(f"input {i}: 'clip' must be (3, T, H, W), got {tuple(clip.shape)}")
            groups.setdefault(tuple(clip.shape[1:]), []).append(i)
        logits: List[Optional[torch.Tensor]] = [None] * len(batched_inputs)
        for (_, H, W), idx in groups.items():
            clips = torch.stack([batched_inputs[i]["clip"] for i in idx]).to(self.device)
            features = self.backbone(clips.float())
            valid = [tuple(batched_inputs[i].get("valid_size", (H, W))) for i in idx]
            group_logits, _ = self.roi_heads(features, [boxes[i] for i in idx], valid, (H, W))
            for i, lg in zip(idx, group_logits.split([len(boxes[i]) for i in idx])):
                logits[i] = lg
        return logits

    def postprocess(self, x: dict, proposals: Instances, logits: torch.Tensor) -> Instances:
        """Clip-px boxes -> original key-frame px (scale by width/W_valid, height/H_valid)."""
        valid_h, valid_w = tuple(x.get("valid_size", x["clip"].shape[-2:]))
        height, width = int(x.get("height", valid_h)), int(x.get("width", valid_w))
        boxes = proposals.proposal_boxes.clone()
        boxes.scale(width / valid_w, height / valid_h)
        result = Instances((height, width))
        result.pred_boxes = boxes
        result.scores = (
            proposals.scores if proposals.has("scores") else logits.new_ones(len(proposals))
        )
        result.action_logits = logits
        result.action_scores = self.roi_heads.inference(logits)
        return result
