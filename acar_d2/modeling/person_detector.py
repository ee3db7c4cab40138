"""
The person detector of ``ACARNet``: a real detectron2 Faster R-CNN (``GeneralizedRCNN``) built from
its own detectron2 config, so that a plain detectron2 detector checkpoint loads into it unchanged
(keys ``backbone.*``, ``proposal_generator.*``, ``roi_heads.*``; inside ``ACARNet`` they become
``person_detector.*``), and detector fine-tuning and action learning train in one trainer.

``cfg.MODEL.PERSON_DETECTOR`` (``acar_d2/config.py: add_person_detector_config``) chooses it:
``NAME`` (registry name, "" = none), ``CONFIG_FILE`` (yaml path or detectron2 model-zoo name),
``WEIGHTS``, ``PERSON_CLASS_ID``, the score / IoU thresholds of the actor boxes, ``FROZEN``,
``LOSS_WEIGHT``, ``TRAIN_MAX_IMAGES``, ``TRAIN_BOX_SOURCE``, ``TEST_BOX_SOURCE``.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes, Instances
from detectron2.utils.registry import Registry

from ..checkpoint.detector_weights import load_person_detector_weights
from ..config import load_detector_config

__all__ = [
    "PERSON_DETECTOR_REGISTRY",
    "PersonDetector",
    "build_person_detector",
    "load_person_detector_weights",
    "TRAIN_BOX_SOURCES",
    "TEST_BOX_SOURCES",
]

logger = logging.getLogger(__name__)

PERSON_DETECTOR_REGISTRY = Registry("PERSON_DETECTOR")
PERSON_DETECTOR_REGISTRY.__doc__ = """
Registry of person detectors used by ``ACARNet`` (``cfg.MODEL.PERSON_DETECTOR.NAME``).

The registered object is called as ``obj(cfg)`` with the acar_d2 config (which holds
``cfg.MODEL.PERSON_DETECTOR.*`` and ``cfg.MODEL.DEVICE``) and returns an ``nn.Module`` offering
``detect(images, target_sizes) -> list[Instances]`` (``proposal_boxes`` in the target px and
``scores``) and ``losses(images, person_instances) -> dict[str, Tensor]``, plus the attributes
``input_format``, ``person_class_id``, ``frozen`` and ``augmentation(is_train)``.
"""

TRAIN_BOX_SOURCES = ("gt", "detector", "file")
TEST_BOX_SOURCES = ("detector", "file")

@PERSON_DETECTOR_REGISTRY.register()
class PersonDetector(GeneralizedRCNN):
    """
    A detectron2 Faster R-CNN (same parameters and names as ``GeneralizedRCNN``) that returns the
    person boxes of key frames as actor boxes and trains with the detector losses.

    ``forward`` is ``GeneralizedRCNN.forward`` unchanged (so ``DefaultPredictor``-style calls work);
    ``detect`` and ``losses`` are what ``ACARNet`` calls.
    """

    @configurable
    def __init__(
        self,
        *,
        person_class_id: int = 0,
        test_proposal_score_thresh: float = 0.85,
        train_proposal_score_thresh: float = 0.9,
        frozen: bool = False,
        loss_weight: float = 1.0,
        train_max_images: int = 0,
        min_size_train: Sequence[int] = (800,),
        max_size_train: int = 1333,
        min_size_train_sampling: str = "choice",
        min_size_test: int = 800,
        max_size_test: int = 1333,
        config_file: str = "",
        **kwargs,
    ):
        """
        Args:
            kwargs: ``GeneralizedRCNN`` arguments (backbone, proposal_generator, roi_heads,
                pixel_mean, pixel_std, input_format, vis_period).
            person_class_id: index of "person" among the detector's classes.
            test_proposal_score_thresh / train_proposal_score_thresh: person score thresholds of
                ``detect`` (``MODEL.ACTION_HEAD.{TEST,TRAIN}_PROPOSAL_SCORE_THRESH``).
            frozen: inference only (eval mode, no gradients).
            loss_weight: multiplies every detector loss.
            train_max_images: ``losses`` uses at most this many images (0 = all).
            min_size_* / max_size_*: the detector config's ``ResizeShortestEdge``.
            config_file: the detector config it was built from (for messages).
        """
        super().__init__(**kwargs)
        self.person_class_id = int(person_class_id)
        self.test_proposal_score_thresh = float(test_proposal_score_thresh)
        self.train_proposal_score_thresh = float(train_proposal_score_thresh)
        self.loss_weight = float(loss_weight)
        self.train_max_images = int(train_max_images)
        self.min_size_train = tuple(min_size_train)
        self.max_size_train = int(max_size_train)
        self.min_size_train_sampling = min_size_train_sampling
        self.min_size_test = int(min_size_test)
        self.max_size_test = int(max_size_test)
        self.config_file = config_file
        self.frozen = bool(frozen)
        if self.frozen:
            self.requires_grad_(False)
            super().train(False)

    @classmethod
    def from_config(cls, cfg):
        pd = cfg.MODEL.PERSON_DETECTOR
        head = cfg.MODEL.ACTION_HEAD
        for key in ("TEST_PROPOSAL_SCORE_THRESH", "TRAIN_PROPOSAL_SCORE_THRESH",
                    "TRAIN_PROPOSAL_IOU_THRESH"):
            if not 0.0 <= float(head[key]) <= 1.0:
                raise ValueError(f"MODEL.ACTION_HEAD.{key} must be in [0, 1], got {head[key]}")
        if float(pd.LOSS_WEIGHT) < 0:
            raise ValueError(f"MODEL.PERSON_DETECTOR.LOSS_WEIGHT must be >= 0, got {pd.LOSS_WEIGHT}")
        if int(pd.TRAIN_MAX_IMAGES) < 0:
            raise ValueError(f"MODEL.PERSON_DETECTOR.TRAIN_MAX_IMAGES must be >= 0, got "
                             f"{pd.TRAIN_MAX_IMAGES}")
        if pd.TRAIN_BOX_SOURCE not in TRAIN_BOX_SOURCES:
            raise ValueError(f"MODEL.PERSON_DETECTOR.TRAIN_BOX_SOURCE '{pd.TRAIN_BOX_SOURCE}' is not "
                             f"one of {TRAIN_BOX_SOURCES}")
        if pd.TEST_BOX_SOURCE not in TEST_BOX_SOURCES:
            raise ValueError(f"MODEL.PERSON_DETECTOR.TEST_BOX_SOURCE '{pd.TEST_BOX_SOURCE}' is not "
                             f"one of {TEST_BOX_SOURCES}")
        det_cfg = load_detector_config(pd.CONFIG_FILE, cfg.MODEL.DEVICE)
        num_classes = det_cfg.MODEL.ROI_HEADS.NUM_CLASSES
        if not 0 <= int(pd.PERSON_CLASS_ID) < num_classes:
            raise ValueError(
                f"MODEL.PERSON_DETECTOR.PERSON_CLASS_ID {pd.PERSON_CLASS_ID} is outside the "
                f"detector's classes 0..{num_classes - 1} (ROI_HEADS.NUM_CLASSES {num_classes} in "
                f"{pd.CONFIG_FILE})"
            )
        ret = GeneralizedRCNN.from_config(det_cfg)
        ret.update(
            person_class_id=pd.PERSON_CLASS_ID,
            test_proposal_score_thresh=head.TEST_PROPOSAL_SCORE_THRESH,
            train_proposal_score_thresh=head.TRAIN_PROPOSAL_SCORE_THRESH,
            frozen=pd.FROZEN,
            loss_weight=pd.LOSS_WEIGHT,
            train_max_images=pd.TRAIN_MAX_IMAGES,
            min_size_train=det_cfg.INPUT.MIN_SIZE_TRAIN,
            max_size_train=det_cfg.INPUT.MAX_SIZE_TRAIN,
            min_size_train_sampling=det_cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING,
            min_size_test=det_cfg.INPUT.MIN_SIZE_TEST,
            max_size_test=det_cfg.INPUT.MAX_SIZE_TEST,
            config_file=pd.CONFIG_FILE,
        )
        return ret

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        """A frozen detector stays in eval mode whatever its parent does."""
        return super().train(mode and not self.frozen)

    def augmentation(self, is_train: bool) -> T.Augmentation:
        """The detector config's ``ResizeShortestEdge`` (train sampling or test size)."""
        # The rule of ``acar_d2.data.detection_utils.detector_augmentation`` (the mapper's), kept
        # here for callers holding only the model (modeling does not import data).
        if is_train:
            return T.ResizeShortestEdge(
                self.min_size_train, self.max_size_train, self.min_size_train_sampling
            )
        return T.ResizeShortestEdge([self.min_size_test, self.min_size_test], self.max_size_test)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(
        self,
        images: List[torch.Tensor],
        target_sizes: List[Tuple[int, int]],
        score_thresh: Optional[float] = None,
    ) -> List[Instances]:
        """
        Person boxes of key frames, always in inference mode and detached (also while training).

        Args:
            images: N tensors (3, H_det, W_det) uint8 (or float 0..255) in ``self.input_format``.
            target_sizes: N (h, w): the size the boxes are returned in (e.g. the clip's valid size
                or the original key-frame size); detectron2's ``detector_postprocess`` scales
                from the detector image to it.
            score_thresh: person score threshold (default ``test_proposal_score_thresh``).
        Returns:
            N ``Instances((h, w))`` with ``proposal_boxes`` (Boxes (R_i, 4), target px) and
            ``scores`` (R_i,), only the person class, scores >= the threshold, ordered as the
            detector returns them (descending score); empty when nobody is found.
        """
        if len(images) != len(target_sizes):
            raise ValueError(f"detect: {len(images)} images but {len(target_sizes)} target sizes")
        thresh = self.test_proposal_score_thresh if score_thresh is None else float(score_thresh)
        if not images:
            return []
        inputs = []
        for i, (img, (h, w)) in enumerate(zip(images, target_sizes)):
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"detect: image {i} must be (3, H, W), got {tuple(img.shape)}")
            inputs.append({"image": img, "height": int(h), "width": int(w)})
        was_training = self.training
        if was_training:
            super().train(False)
        try:
            results = GeneralizedRCNN.inference(self, inputs, do_postprocess=True)
        finally:
            if was_training:
                super().train(True)
        out = []
        for r, (h, w) in zip(results, target_sizes):
            det = r["instances"]
            keep = (det.pred_classes == self.person_class_id) & (det.scores >= thresh)
            inst = Instances((int(h), int(w)))
            inst.proposal_boxes = Boxes(det.pred_boxes.tensor[keep].detach())
            inst.scores = det.scores[keep].detach()
            out.append(inst)
        return out

    # ------------------------------------------------------------------ training
    def losses(
        self, images: List[torch.Tensor], person_instances: List[Instances]
    ) -> Dict[str, torch.Tensor]:
        """
        The detector losses, times ``loss_weight``.

        Args:
            images: N tensors (3, H_det, W_det) in ``self.input_format``.
            person_instances: N ``Instances`` with ``gt_boxes`` (Boxes (G_i, 4), detector-image
                px) and ``gt_classes`` (G_i,) int64 (the person class id); G_i may be 0.
        Returns:
            ``{"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}`` scalars; ``{}`` when
            the detector is frozen (it then contributes neither gradients nor memory for them).
        """
        if self.frozen:
            return {}
        if len(images) != len(person_instances):
            raise ValueError(f"losses: {len(images)} images but {len(person_instances)} Instances")
        if not self.training:
            raise RuntimeError("PersonDetector.losses needs training mode (model.train())")
        n = len(images) if self.train_max_images <= 0 else min(len(images), self.train_max_images)
        inputs = []
        for i in range(n):
            inst = person_instances[i]
            if not (inst.has("gt_boxes") and inst.has("gt_classes")):
                raise KeyError(f"losses: person_instances[{i}] needs gt_boxes and gt_classes")
            inputs.append({"image": images[i], "instances": inst})
        losses = GeneralizedRCNN.forward(self, inputs)
        return {k: v * self.loss_weight for k, v in losses.items()}


def build_person_detector(cfg) -> Optional[torch.nn.Module]:
    """
    The detector named by ``cfg.MODEL.PERSON_DETECTOR.NAME`` ("" -> None), randomly initialised
    on ``cfg.MODEL.DEVICE``. Like detectron2's ``build_model`` it reads no weight file (and so
    never downloads): ``MODEL.PERSON_DETECTOR.WEIGHTS`` is loaded by ``ACARCheckpointer``
    (``from_config``) or, for a detector used alone, by :func:`load_person_detector_weights`.
    """
    name = cfg.MODEL.PERSON_DETECTOR.NAME
    if not name:
        return None
    try:
        builder = PERSON_DETECTOR_REGISTRY.get(name)
    except KeyError as e:
        raise KeyError(f"MODEL.PERSON_DETECTOR.NAME '{name}' is not registered in "
                       f"PERSON_DETECTOR_REGISTRY ({list(PERSON_DETECTOR_REGISTRY._obj_map)})") from e
    model = builder(cfg)
    model.to(torch.device(cfg.MODEL.DEVICE))
    return model
