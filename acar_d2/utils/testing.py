"""
Reference implementations used by tests and benchmarks (like ``detectron2.utils.testing``).

:func:`literal_acar_outputs` runs the official ACAR head algorithm (ACAR-Net, ``models/heads.py``
``ACARHead`` with ``HR2O_NL``) literally: one clip at a time, each actor feature tiled over the
clip's cropped context, plain convolutions / GroupNorm on un-masked tensors. It shares only the
weights with :class:`acar_d2.modeling.roi_heads.ACARROIHeads`, so the batched, masked head can be
checked against it on any batch, padded clips included.

Official semantics for zero-padded clips (the clip tensor is padded at the bottom/right to the
batch's largest size):

* RoIAlign runs on the whole reduced context map of the padded clip (the cells computed from the
  padding are read where a box reaches them);
* only the context handed to the relation branch is cropped, to
  ``ceil(h * H_valid / H) x ceil(w * W_valid / W)`` cells.
"""
import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from detectron2.structures import Boxes

__all__ = ["literal_acar_logits", "literal_acar_outputs", "literal_hr2o_nl"]


def literal_hr2o_nl(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """
    Official HR2O_NL on the (n, C, h, w) relation maps of the n actors of one clip: dot-product
    attention over the actors at every cell (softmax over the other actor, itself included),
    GroupNorm (1 group) -> ReLU -> conv -> dropout, residual.

    ``block`` provides the weights: ``conv_q``, ``conv_k``, ``conv_v``, ``norm``, ``conv``,
    ``dropout`` (an ``acar_d2`` ``HR2ONonLocal`` or the official module).
    """
    q, k, v = block.conv_q(x), block.conv_k(x), block.conv_v(x)
    attn = torch.einsum("icyx,jcyx->ijyx", q, k) / math.sqrt(q.shape[1])
    attn = F.softmax(attn, dim=1)
    virt = torch.einsum("ijyx,jcyx->icyx", attn, v)
    virt = block.dropout(block.conv(F.relu(block.norm(virt))))
    return x + virt


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def literal_acar_outputs(
    head: torch.nn.Module,
    features: Dict[str, torch.Tensor],
    boxes: List[Boxes],
    valid_sizes: List[Tuple[int, int]],
    image_size: Tuple[int, int],
) -> Dict[str, torch.Tensor]:
    """
    The official ACAR head forward, literally (NL HR2O, one 3x3/2 max pool).

    Args:
        head: an ``ACARROIHeads`` (weights ``conv_reduce``, ``conv1``, ``conv2``, ``hr2o``,
            ``fc1``, ``fc2``; ``in_features`` and ``pooler_resolution`` are read from it).
        features: name -> (N, C_i, T_i, h, w) backbone features of the padded clips.
        boxes: N ``Boxes`` in clip pixels.
        valid_sizes: N unpadded (H_valid, W_valid).
        image_size: (H, W) of the padded clip tensors.

    Returns:
        dict with ``context_features_reduced`` (N, C, h, w) (uncropped), ``roi_features``
        (R, C), ``high_order_features`` (R, hidden) and ``logits`` (R, K), clip-major.
    """
    pooled = torch.cat([features[f].mean(dim=2) for f in head.in_features], dim=1)
    context = head.conv_reduce(pooled)
    h, w = context.shape[-2:]
    H, W = image_size
    resolution = getattr(head, "pooler_resolution", 7)
    actors, high_order, logits = [], [], []
    for b, boxes_b in enumerate(boxes):
        n = len(boxes_b)
        if n == 0:
            continue
        # Official rois are normalized to the padded frame and multiplied by the feature-map
        # width / height; RoIAlign (aligned=False, adaptive sampling) on the uncropped map.
        rois = boxes_b.tensor.to(context.dtype) / context.new_tensor([W, H, W, H])
        rois = rois * context.new_tensor([w, h, w, h])
        rois = torch.cat([rois.new_full((n, 1), float(b)), rois], dim=1)
        actor = roi_align(context, rois, output_size=resolution, spatial_scale=1.0,
                          sampling_ratio=-1, aligned=False)
        actor = F.adaptive_max_pool2d(actor, 1).flatten(1)  # 7x7 max pool -> (n, C)
        # Context crop: ceil(h * H_valid / H) x ceil(w * W_valid / W) cells.
        vh, vw = valid_sizes[b]
        hc, wc = _ceil_div(h * vh, H), _ceil_div(w * vw, W)
        crop = context[b : b + 1, :, :hc, :wc].expand(n, -1, -1, -1)
        tiled = actor[:, :, None, None].expand(-1, -1, hc, wc)
        x = F.relu(head.conv1(torch.cat([crop, tiled], dim=1)))
        x = F.relu(head.conv2(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for block in head.hr2o:
            x = literal_hr2o_nl(block, x)
        relation = x.mean(dim=(2, 3))
        logits.append(head.fc2(torch.cat([F.relu(head.fc1(actor)), relation], dim=1)))
        actors.append(actor)
        high_order.append(relation)
    if not logits:
        num_classes = head.fc2.out_features
        return {
            "context_features_reduced": context,
            "roi_features": context.new_zeros((0, context.shape[1])),
            "high_order_features": context.new_zeros((0, head.fc1.out_features)),
            "logits": context.new_zeros((0, num_classes)),
        }
    return {
        "context_features_reduced": context,
        "roi_features": torch.cat(actors),
        "high_order_features": torch.cat(high_order),
        "logits": torch.cat(logits),
    }


def literal_acar_logits(
    head: torch.nn.Module,
    features: Dict[str, torch.Tensor],
    boxes: List[Boxes],
    valid_sizes: List[Tuple[int, int]],
    image_size: Tuple[int, int],
) -> torch.Tensor:
    """(R, K) logits of :func:`literal_acar_outputs`, clip-major."""
    return literal_acar_outputs(head, features, boxes, valid_sizes, image_size)["logits"]
