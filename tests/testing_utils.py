"""Shared helpers of the tests (after detectron2's ``utils/testing.py``)."""
from acar_d2.engine import setup_cfg


def tiny_acar_cfg(num_classes: int = 4, reduce_dim: int = 8, hidden_dim: int = 8):
    """A CPU config of the full model with a tiny SlowFast (depth 18, width 8) and head."""
    cfg = setup_cfg(freeze=False)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.SLOWFAST.DEPTH = 18
    cfg.MODEL.SLOWFAST.WIDTH = 8
    cfg.MODEL.SLOWFAST.FUSION_KERNEL_SIZE = 3
    cfg.MODEL.ACTION_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.ACTION_HEAD.REDUCE_DIM = reduce_dim
    cfg.MODEL.ACTION_HEAD.HIDDEN_DIM = hidden_dim
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = [0, 1]
    return cfg


def action_output(boxes, scores, image_size):
    """
    One model output as an evaluator receives it: ``{"instances": Instances}`` with ``pred_boxes``
    (R, 4) in pixels, person ``scores`` of 1 and ``action_scores`` (R, K).
    """
    import torch
    from detectron2.structures import Boxes, Instances

    inst = Instances(image_size)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.ones(len(boxes))
    inst.action_scores = torch.tensor(scores, dtype=torch.float32)
    return {"instances": inst}
