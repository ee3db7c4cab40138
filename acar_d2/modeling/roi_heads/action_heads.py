"""
``ActionROIHeads``: the structure shared by every action ROI head.

All heads (linear baseline, actor-actor, actor-context, ACAR) start the same way (ACAR Sec. 3.2,
Sec. 4.1): the res5 maps of each pathway are averaged over time, RoIAlign 7x7 on the whole map
(zero padding of the clip included, as official) and a spatial max pool give one feature vector
per actor; the relation heads use the clip's valid context region (its unpadded part rounded up
to whole feature cells) as context. Subclasses implement
:meth:`ActionROIHeads.predict_logits`; the loss and the inference activation are shared.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torchvision.ops import roi_align

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes

from .layout import temporal_mean, valid_feature_size
from .loss import action_probabilities, global_box_weight, pose_softmax_bce_loss

__all__ = ["ActionROIHeads", "num_classes_from_config", "pose_class_indices_from_config"]

logger = logging.getLogger(__name__)


def num_classes_from_config(cfg) -> int:
    """
    The number of action classes K: ``MODEL.ACTION_HEAD.NUM_CLASSES`` if set, else (0) the classes
    of the training split's label map (``acar_d2.engine.setup_cfg`` has usually written it already;
    acar_d2/data/dataset_keys.py).
    """
    k = int(cfg.MODEL.ACTION_HEAD.NUM_CLASSES)
    if k > 0:
        return k
    names = list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST)
    reason = "DATASETS.TRAIN and DATASETS.TEST are empty"
    if names:
        try:
            return len(MetadataCatalog.get(names[0]).action_classes)
        except (AttributeError, KeyError, OSError, ValueError) as e:
            reason = f"the classes of {names[0]} are not known ({e})"
    raise ValueError(f"MODEL.ACTION_HEAD.NUM_CLASSES is 0 (= the classes of the training split) "
                     f"but {reason}; set MODEL.ACTION_HEAD.NUM_CLASSES")


def pose_class_indices_from_config(cfg) -> List[int]:
    """
    The mutually exclusive pose classes: ``MODEL.ACTION_HEAD.POSE_CLASS_INDICES`` if set, else the
    ``pose_class_indices`` metadata of ``DATASETS.TRAIN[0]`` (or ``DATASETS.TEST[0]``).
    Empty when ``MODEL.ACTION_HEAD.POSE_SOFTMAX`` is False.
    """
    head_cfg = cfg.MODEL.ACTION_HEAD
    if not head_cfg.POSE_SOFTMAX:
        return []
    if len(head_cfg.POSE_CLASS_INDICES) > 0:
        return [int(i) for i in head_cfg.POSE_CLASS_INDICES]
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    if not names:
        raise KeyError(
            "MODEL.ACTION_HEAD.POSE_SOFTMAX is True but neither MODEL.ACTION_HEAD.POSE_CLASS_INDICES "
            "nor DATASETS.TRAIN/TEST is set, so the pose classes are unknown"
        )
    meta = MetadataCatalog.get(names[0])
    if not hasattr(meta, "pose_class_indices"):
        raise KeyError(
            f"MetadataCatalog['{names[0]}'] has no 'pose_class_indices' (is the dataset "
            "registered?); set MODEL.ACTION_HEAD.POSE_CLASS_INDICES or MODEL.ACTION_HEAD.POSE_SOFTMAX"
        )
    return [int(i) for i in meta.pose_class_indices]


class ActionROIHeads(nn.Module):
    """
    Base class of the action heads: temporal pooling, valid context region, RoIAlign + max pool,
    pose-softmax loss and scores.

    Subclasses implement :meth:`predict_logits` and name their classifier in
    ``class_row_tensors``.
    """

    # Names (in this module's state_dict) of the tensors with one row per class along dim 0, in
    # class order: the rows ACARCheckpointer selects when a checkpoint has other classes
    # (narrowing to DATASETS.CLASSES, fine-tuning to another label map).
    class_row_tensors: Tuple[str, ...] = ()
    # The long-term feature bank this head reads ("acfb", "lfb"; "" = none): the one declaration
    # of it. A head with a kind takes ``feature_bank`` in ``forward``; the config's
    # MODEL.FEATURE_BANK.KIND is checked against it (acar_d2.config.bank_kind_of / _from_config).
    bank_kind: str = ""

    @configurable
    def __init__(
        self,
        *,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        num_classes: int,
        pose_class_indices: Sequence[int] = (),
        pooler_resolution: int = 7,
        dropout: float = 0.0,
    ):
        """
        Args:
            in_features: backbone feature names, in the channel-concatenation order
                (official: ["slow", "fast"]).
            in_channels: channels of each of ``in_features`` (from ``Backbone.output_shape()``).
            num_classes: K action classes.
            pose_class_indices: indices into the K classes that share one softmax.
            pooler_resolution: RoIAlign output size (ACAR Sec. 4.1: 7x7).
            dropout: dropout before the classifier (official: 0).
        """
        super().__init__()
        if len(in_features) != len(in_channels):
            raise ValueError(f"in_features {list(in_features)} vs in_channels {list(in_channels)}")
        self.in_features = list(in_features)
        self.in_channels = [int(c) for c in in_channels]
        self.num_classes = int(num_classes)
        self.pose_class_indices = [int(i) for i in pose_class_indices]
        bad = [i for i in self.pose_class_indices if not 0 <= i < self.num_classes]
        if bad:
            raise ValueError(f"pose_class_indices {bad} out of range for {num_classes} classes")
        self.pooler_resolution = int(pooler_resolution)
        self.dropout_p = float(dropout)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise KeyError(
                f"MODEL.ROI_HEADS.IN_FEATURES {in_features}: {missing} not among the backbone "
                f"outputs {list(input_shape)}"
            )
        head_cfg = cfg.MODEL.ACTION_HEAD
        return {
            "in_features": in_features,
            "in_channels": [input_shape[f].channels for f in in_features],
            "num_classes": num_classes_from_config(cfg),
            "pose_class_indices": pose_class_indices_from_config(cfg),
            "pooler_resolution": head_cfg.POOLER_RESOLUTION,
            "dropout": head_cfg.DROPOUT,
        }

    # ----------------------------------------------------------------------------------- inputs
    def check_inputs(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
    ) -> None:
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise KeyError(f"features lack {missing}; got {list(features)}")
        num_clips = features[self.in_features[0]].shape[0]
        for name, c in zip(self.in_features, self.in_channels):
            x = features[name]
            if x.dim() != 5 or x.shape[0] != num_clips or x.shape[1] != c:
                raise ValueError(
                    f"feature '{name}' must be (N={num_clips}, C={c}, T, h, w), got {tuple(x.shape)}"
                )
        if len(boxes) != num_clips or len(valid_sizes) != num_clips:
            raise ValueError(
                f"{num_clips} clips but {len(boxes)} box lists and {len(valid_sizes)} valid sizes"
            )

    def pooled_context(
        self,
        features: Dict[str, torch.Tensor],
        image_size: Tuple[int, int],
        valid_sizes: List[Tuple[int, int]],
    ) -> Tuple[List[torch.Tensor], List[Tuple[int, int]]]:
        """
        Temporal average of each pathway, and each clip's valid context region.

        The maps are returned whole, padding included: RoIAlign reads them as they are, as the
        official head does (its RoIAlign runs on the padded map, so a box touching the valid
        border interpolates with the features of padding pixels). Only the context used by the
        relation heads is restricted to the valid cells (:meth:`mask_to_valid`), which equals the
        official crop to ``ceil(h * H_valid / H) x ceil(w * W_valid / W)`` cells.

        Args:
            features: name -> (N, C_i, T_i, h, w).
            image_size: (H, W) of the clip tensors (padding included).
            valid_sizes: N unpadded (H_valid, W_valid).

        Returns:
            list[Tensor]: per in_feature (N, C_i, h, w); list of N valid feature sizes (h_i, w_i).
        """
        pooled = [temporal_mean(features[f]) for f in self.in_features]
        h, w = pooled[0].shape[-2:]
        for f, p in zip(self.in_features, pooled):
            if tuple(p.shape[-2:]) != (h, w):
                raise ValueError(f"feature '{f}' is {tuple(p.shape[-2:])}, expected {(h, w)}")
        crop = [valid_feature_size((h, w), image_size, vs) for vs in valid_sizes]
        return pooled, crop

    @staticmethod
    def mask_to_valid(x: torch.Tensor, crop: List[Tuple[int, int]]) -> torch.Tensor:
        """
        Zero the cells of (N, C, h, w) maps outside each clip's valid (h_i, w_i) top-left block.

        The relation heads then never read a zeroed cell into a valid output (unpadded
        convolutions, masked statistics) or read it as the zero padding the official crop has, so
        clips of different valid sizes can share one tensor.
        """
        h, w = x.shape[-2:]
        sizes = torch.as_tensor(crop, dtype=torch.long, device=x.device).reshape(-1, 2)
        rows = torch.arange(h, device=x.device)[None, :] < sizes[:, :1]
        cols = torch.arange(w, device=x.device)[None, :] < sizes[:, 1:]
        return x * (rows[:, :, None] & cols[:, None, :])[:, None].to(x.dtype)

    def roi_features(
        self, x: torch.Tensor, boxes: List[Boxes], image_size: Tuple[int, int]
    ) -> torch.Tensor:
        """
        RoIAlign + spatial max pool.

        Boxes (clip px) are scaled by (w / W, h / H): the official head multiplies boxes normalized
        to the padded frame by the feature-map width/height, which differs from 1/16 when H or W is
        not a multiple of 16. ``aligned=False`` and adaptive sampling (torchvision:
        ``sampling_ratio <= 0``) as official.

        Args:
            x: (N, C, h, w).
            boxes: N ``Boxes`` in clip px.
            image_size: (H, W) of the clips.

        Returns:
            Tensor: (R, C).
        """
        h, w = x.shape[-2:]
        H, W = image_size
        scale = x.new_tensor([w / W, h / H, w / W, h / H])
        rois = [b.tensor.to(x.dtype) * scale for b in boxes]
        if sum(len(r) for r in rois) == 0:
            return x.new_zeros((0, x.shape[1]))
        # roi_align accepts a list of per-image box tensors and builds the batch index itself.
        pooled = roi_align(
            x, rois, output_size=self.pooler_resolution, spatial_scale=1.0,
            sampling_ratio=-1, aligned=False,
        )
        return pooled.amax(dim=(2, 3))

    # ----------------------------------------------------------------------------------- forward
    def predict_logits(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
        image_size: Tuple[int, int],
    ) -> torch.Tensor:
        """Return (R, K) logits; R = R_1 + ... + R_N in clip-major order."""
        raise NotImplementedError

    def predict_clip_logits(
        self, features: Dict[str, torch.Tensor], boxes: torch.Tensor, image_size: Tuple[int, int],
        valid_size: Optional[Tuple[int, int]] = None,
    ) -> torch.Tensor:
        """
        (R, K) logits of one clip (``features`` name -> (1, C_i, T_i, h, w)) with (R, 4)
        ``boxes`` (clip px, R >= 1) and unpadded size ``valid_size`` (default ``image_size``):
        the entry point of an exported model (``acar_d2.export``). Heads that batch actors of
        several clips override it with a form whose traced graph keeps R dynamic.
        """
        valid = tuple(image_size) if valid_size is None else tuple(valid_size)
        return self.predict_logits(features, [Boxes(boxes)], [valid], image_size)

    def forward(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
        image_size: Tuple[int, int],
        gt_actions: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """
        Args:
            features (dict[str, Tensor]): name -> (N, C_i, T_i, h, w), clips of one size (H, W).
            boxes (list[Boxes]): N items with R_i actor boxes each, clip px.
            valid_sizes (list[tuple[int, int]]): N unpadded (H_valid, W_valid) inside the clips.
            image_size (tuple[int, int]): (H, W) of the clip tensors.
            gt_actions (Tensor or None): (R, K) multi-hot targets; given -> losses computed.

        Returns:
            Tensor: (R, K) action logits.
            dict[str, Tensor]: {"loss_action": scalar} when ``gt_actions`` is given, else {}.
        """
        self.check_inputs(features, boxes, valid_sizes)
        logits = self.predict_logits(features, boxes, valid_sizes, image_size)
        losses = self.losses(logits, gt_actions) if gt_actions is not None else {}
        return logits, losses

    def losses(self, logits: torch.Tensor, gt_actions: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        {"loss_action": pose-softmax BCE averaged over R x K}, times :func:`global_box_weight` when
        several processes train (the mean over the boxes of all processes, as the official step).
        Called once per training step on every process.
        """
        loss = pose_softmax_bce_loss(logits, gt_actions, self.pose_class_indices)
        return {"loss_action": loss * global_box_weight(logits.shape[0], logits.device)}

    def inference(self, logits: torch.Tensor) -> torch.Tensor:
        """(R, K) logits -> (R, K) scores: softmax over the pose classes, sigmoid elsewhere."""
        return action_probabilities(logits, self.pose_class_indices)
