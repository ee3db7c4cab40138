"""
Box rules shared by the data pipeline and the model: training RoI assignment and box jitter.

Pure functions of boxes (no config, no model, no files), so that ``data`` and ``modeling`` both
import them from here instead of from each other.
"""
from typing import Tuple

import numpy as np
import torch
from detectron2.structures import Boxes, pairwise_iou

__all__ = ["assign_training_rois", "jitter_boxes"]


def assign_training_rois(
    gt_boxes: torch.Tensor,
    gt_actions: torch.Tensor,
    proposal_boxes: torch.Tensor,
    proposal_scores: torch.Tensor,
    score_thresh: float,
    iou_thresh: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Training ROIs of one key frame: all ground-truth boxes, plus every proposal with
    ``score >= score_thresh`` whose best-IoU ground-truth box has ``IoU >= iou_thresh``; such a
    proposal takes that box's labels. Other proposals have no labels and are dropped (official
    ACAR-Net recipe).

    Args:
        gt_boxes (Tensor): (G, 4) XYXY.
        gt_actions (Tensor): (G, K) multi-hot.
        proposal_boxes (Tensor): (P, 4) XYXY, same coordinate frame.
        proposal_scores (Tensor): (P,).
    Returns:
        boxes (Tensor): (G + M, 4), the G ground-truth boxes first.
        actions (Tensor): (G + M, K).
    """
    keep = proposal_scores >= score_thresh
    props = proposal_boxes[keep]
    if len(gt_boxes) == 0 or len(props) == 0:
        return gt_boxes, gt_actions
    iou = pairwise_iou(Boxes(props), Boxes(gt_boxes))  # (M', G)
    best_iou, best_gt = iou.max(dim=1)
    matched = best_iou >= iou_thresh
    boxes = torch.cat([gt_boxes, props[matched]])
    actions = torch.cat([gt_actions, gt_actions[best_gt[matched]]])
    return boxes, actions


def jitter_boxes(boxes: np.ndarray, scale: float, rng: np.random.RandomState) -> np.ndarray:
    """
    Official training box jitter: each x coordinate moves by
    ``U(-scale, scale) * box width`` and each y coordinate by ``U(-scale, scale) * box height``
    (ACAR-Net neck, ``bbox_jitter.scale`` 0.075). Clipping to the image is left to the caller.

    Args:
        boxes (ndarray): (R, 4) XYXY.
    Returns:
        ndarray (R, 4).
    """
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    return boxes + rng.uniform(-scale, scale, size=boxes.shape) * wh
