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

from ...config import bank_kind_from_config, bank_kind_of, person_detector_config
from ...structures import assign_training_rois
from ..person_detector import TEST_BOX_SOURCES, TRAIN_BOX_SOURCES, build_person_detector
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
    Backbone + optional person detector + action ROI heads.

    Input: ``list[dict]`` as in ``docs/ARCHITECTURE.md`` (one per clip): ``"clip"`` (3, T, H, W)
    normalized, ``"valid_size"`` (default (H, W)), ``"height"``/``"width"`` (default the valid
    size), ``"proposals"`` (Instances with ``proposal_boxes`` and ``scores``, clip px) and, in
    training, ``"instances"`` with ``gt_boxes`` and ``gt_actions`` (R, K). With a person detector:
    ``"image"`` (3, H_det, W_det) uint8, the key frame at detector resolution in the detector's
    INPUT.FORMAT, and in training ``"person_instances"`` (``gt_boxes`` detector-image px,
    ``gt_classes``, ``gt_actions``); optional ``"box_source"`` ("file" / "detector") overrides
    ``TEST_BOX_SOURCE`` for that input (the ground-truth-box evaluation pass uses "file").
    With a feature-bank head (ACFB / LFB): ``"feature_bank"``, the key frame's bank window
    (``acar_d2.data.feature_bank.FeatureBankDatasetMapper``), passed on to the head.

    Output: training ``{"loss_action"}`` plus, with a trainable detector, ``loss_cls``,
    ``loss_box_reg``, ``loss_rpn_cls``, ``loss_rpn_loc``; inference
    ``[{"instances": Instances((height, width))}]`` with ``pred_boxes`` (original key-frame px),
    ``scores`` (person scores), ``action_logits``, ``action_scores``. Relation maps are recorded
    from outside, by ``acar_d2.modeling.RelationRecorder(model)``.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        roi_heads: ActionROIHeads,
        test_proposal_score_thresh: float = 0.0,
        person_detector: Optional[nn.Module] = None,
        train_box_source: str = "file",
        test_box_source: str = "detector",
        train_proposal_score_thresh: float = 0.9,
        train_proposal_iou_thresh: float = 0.9,
    ):
        """
        Args:
            backbone: video backbone returning the features the head reads.
            roi_heads: an :class:`ActionROIHeads`.
            test_proposal_score_thresh: test-time proposals with a lower person score are dropped
                (official: 0.85).
            person_detector: a :class:`~acar_d2.modeling.person_detector.PersonDetector` (keys
                ``person_detector.*``), run once per key frame on ``"image"``; None = actor boxes
                come from the inputs' proposals.
            train_box_source: extra training actor boxes: "gt" (none), "detector" (online,
                detached) or "file" (assembled by the mapper from the proposal file).
            test_box_source: "detector" or "file" when an input carries both.
            train_proposal_score_thresh, train_proposal_iou_thresh: online detections with a score
                and an IoU with a ground-truth box at least these take that box's labels (official
                0.9).
        """
        super().__init__()
        if train_box_source not in TRAIN_BOX_SOURCES or test_box_source not in TEST_BOX_SOURCES:
            raise ValueError(f"box sources must be in {TRAIN_BOX_SOURCES} / {TEST_BOX_SOURCES}, "
                             f"got {train_box_source!r} / {test_box_source!r}")
        self.backbone = backbone
        self.person_detector = person_detector
        self.roi_heads = roi_heads
        self.test_proposal_score_thresh = float(test_proposal_score_thresh)
        self.train_box_source = train_box_source
        self.test_box_source = test_box_source
        self.train_proposal_score_thresh = float(train_proposal_score_thresh)
        self.train_proposal_iou_thresh = float(train_proposal_iou_thresh)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        roi_heads = build_roi_heads(cfg, backbone.output_shape())
        bank_kind_from_config(cfg, roi_heads)  # MODEL.FEATURE_BANK.KIND says what the head reads
        ret = {
            "backbone": backbone,
            "roi_heads": roi_heads,
            "test_proposal_score_thresh": cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH,
        }
        pd = person_detector_config(cfg)
        if pd is not None:
            ret.update(
                person_detector=build_person_detector(cfg),
                train_box_source=pd.TRAIN_BOX_SOURCE,
                test_box_source=pd.TEST_BOX_SOURCE,
                train_proposal_score_thresh=cfg.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_SCORE_THRESH,
                train_proposal_iou_thresh=cfg.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_IOU_THRESH,
            )
        return ret

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
        actions = [x["instances"].gt_actions.to(self.device) for x in batched_inputs]
        det = self.person_detector
        if det is not None:
            self._check_detector_inputs(batched_inputs, training=True)
        if det is not None and self.train_box_source == "detector":
            boxes, actions = self.add_detected_training_rois(batched_inputs, boxes, actions)
        gt_actions = torch.cat(actions, dim=0)
        logits = torch.cat(self.predict_logits(batched_inputs, boxes), dim=0)
        storage = _event_storage_or_none()
        if storage is not None:
            storage.put_scalar("acar/num_actors", float(logits.shape[0]))
        losses = dict(self.roi_heads.losses(logits, gt_actions))
        if det is not None and not det.frozen:
            losses.update(det.losses(
                [x["image"].to(self.device) for x in batched_inputs],
                [x["person_instances"].to(self.device) for x in batched_inputs],
            ))
        return losses

    def _check_detector_inputs(self, batched_inputs: List[dict], training: bool) -> None:
        keys = ("image", "person_instances") if training else ("image",)
        for i, x in enumerate(batched_inputs):
            for k in keys:
                if k not in x:
                    raise KeyError(
                        f"input {i} (video {x.get('video_id')}) has no '{k}': the model has a "
                        "person detector, use ClipDatasetMapper built from the same config"
                    )

    def add_detected_training_rois(
        self, batched_inputs: List[dict], boxes: List[Boxes], actions: List[torch.Tensor]
    ) -> Tuple[List[Boxes], List[torch.Tensor]]:
        """
        The paper's training-box rule with online detections: run the detector (inference mode,
        detached) on each key frame; a person box with score >= ``train_proposal_score_thresh``
        whose best-IoU ground-truth box (``person_instances.gt_boxes``, detector px) reaches
        ``train_proposal_iou_thresh`` takes that box's ``gt_actions`` (``assign_training_rois``) and
        is appended, converted to clip px, after the mapper's ROIs.

        Args:
            boxes: N ``Boxes`` (R_i, 4) clip px; actions: N (R_i, K).
        Returns:
            the extended lists (R_i + M_i rows).
        """
        det = self.person_detector
        images = [x["image"].to(self.device) for x in batched_inputs]
        sizes = [tuple(img.shape[-2:]) for img in images]
        detections = det.detect(images, sizes, score_thresh=self.train_proposal_score_thresh)
        out_boxes, out_actions = [], []
        for x, b, a, d, (hd, wd) in zip(batched_inputs, boxes, actions, detections, sizes):
            pi = x["person_instances"].to(self.device)
            gt = pi.gt_boxes.tensor
            gt_actions = pi.gt_actions if pi.has("gt_actions") else a.new_zeros((len(gt), a.shape[1]))
            rois, acts = assign_training_rois(
                gt, gt_actions, d.proposal_boxes.tensor, d.scores,
                self.train_proposal_score_thresh, self.train_proposal_iou_thresh,
            )
            extra, extra_actions = rois[len(gt):], acts[len(gt):]
            valid_h, valid_w = tuple(x.get("valid_size", x["clip"].shape[-2:]))
            extra = Boxes(extra.clone())
            extra.scale(valid_w / wd, valid_h / hd)
            out_boxes.append(Boxes.cat([b, extra]))
            out_actions.append(torch.cat([a, extra_actions.to(a.dtype)]))
        return out_boxes, out_actions

    def inference(self, batched_inputs: List[dict]) -> List[Dict[str, Instances]]:
        """Score the proposals of each clip; boxes are returned in original key-frame px."""
        proposals = self.get_proposals(batched_inputs)
        boxes = [p.proposal_boxes for p in proposals]
        logits = self.predict_logits(batched_inputs, boxes)
        return [{"instances": self.postprocess(x, p, lg)}
                for x, p, lg in zip(batched_inputs, proposals, logits)]

    def get_proposals(self, batched_inputs: List[dict]) -> List[Instances]:
        """
        Test-time actor boxes (clip px): from the person detector or from the inputs' proposals,
        both kept when their score is at least ``MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH``.
        An input uses the detector when the model has one and either it carries no ``"proposals"`` or its
        box source (``x["box_source"]``, default ``test_box_source``) is "detector".
        """
        detected: Dict[int, Instances] = {}
        if self.person_detector is not None:
            det_idx = [
                i for i, x in enumerate(batched_inputs)
                if "proposals" not in x or x.get("box_source", self.test_box_source) == "detector"
            ]
            self._check_detector_inputs([batched_inputs[i] for i in det_idx], training=False)
            detected = dict(zip(det_idx, self.person_detector.detect(
                [batched_inputs[i]["image"].to(self.device) for i in det_idx],
                [tuple(batched_inputs[i].get("valid_size", batched_inputs[i]["clip"].shape[-2:]))
                 for i in det_idx],
            )))
        out = []
        for i, x in enumerate(batched_inputs):
            if i in detected:
                out.append(detected[i])
                continue
            if "proposals" not in x:
                raise KeyError(f"input {i} (video {x.get('video_id')}) has no 'proposals' and the "
                               "model has no person detector (MODEL.PERSON_DETECTOR.NAME)")
            p = x["proposals"].to(self.device)
            if p.has("scores"):
                p = p[p.scores >= self.test_proposal_score_thresh]
            out.append(p)
        return out

    @staticmethod
    def group_by_clip_size(batched_inputs: List[dict]) -> List[List[int]]:
        """
        The input indices of each group of same-size clips, groups in order of first appearance:
        the order in which :meth:`predict_logits` runs backbone and heads.

        Raises:
            KeyError / ValueError: an input without a (3, T, H, W) "clip", naming it.
        """
        groups: "OrderedDict[Tuple[int, ...], List[int]]" = OrderedDict()
        for i, x in enumerate(batched_inputs):
            if "clip" not in x:
                raise KeyError(f"input {i} (video {x.get('video_id')}) has no 'clip'")
            clip = x["clip"]
            if clip.dim() != 4 or clip.shape[0] != 3:
                raise ValueError(f"input {i}: 'clip' must be (3, T, H, W), got {tuple(clip.shape)}")
            groups.setdefault(tuple(clip.shape[1:]), []).append(i)
        return list(groups.values())

    def predict_logits(self, batched_inputs: List[dict], boxes: List[Boxes]) -> List[torch.Tensor]:
        """
        Run backbone + head on clips grouped by size (:meth:`group_by_clip_size`).

        Args:
            batched_inputs: N inputs with "clip" (3, T, H, W).
            boxes: N ``Boxes`` (R_i, 4) in clip px, on the model device.

        Returns:
            list[Tensor]: N tensors (R_i, K) of action logits, in input order.
        """
        logits: List[Optional[torch.Tensor]] = [None] * len(batched_inputs)
        for idx in self.group_by_clip_size(batched_inputs):
            H, W = batched_inputs[idx[0]]["clip"].shape[-2:]
            # one clip: a view, not a copy (14 ms for a 3 x 32 x 256 x 256 clip on a CPU)
            clips = (batched_inputs[idx[0]]["clip"][None] if len(idx) == 1 else
                     torch.stack([batched_inputs[i]["clip"] for i in idx])).to(self.device)
            features = self.backbone(clips.float())
            valid = [tuple(batched_inputs[i].get("valid_size", (H, W))) for i in idx]
            extra = {}
            if bank_kind_of(self.roi_heads):
                extra["feature_bank"] = self._feature_banks([batched_inputs[i] for i in idx])
            group_logits, _ = self.roi_heads(features, [boxes[i] for i in idx], valid, (H, W),
                                             **extra)
            for i, lg in zip(idx, group_logits.split([len(boxes[i]) for i in idx])):
                logits[i] = lg
        return logits

    @staticmethod
    def _feature_banks(inputs: List[dict]) -> Optional[List[dict]]:
        """The inputs' ``"feature_bank"`` windows; None when none has one (the head refuses that
        in training and runs with an empty memory at inference); some without one: an error."""
        have = ["feature_bank" in x for x in inputs]
        if not any(have):
            return None
        if not all(have):
            x = inputs[have.index(False)]
            raise KeyError(f"input (video {x.get('video_id')}, {x.get('timestamp')}) has no "
                           "'feature_bank' while others of the batch have one")
        return [x["feature_bank"] for x in inputs]

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
