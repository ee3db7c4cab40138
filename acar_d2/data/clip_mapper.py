"""
``ClipDatasetMapper``: one key-frame dataset dict -> one model input (docs/ARCHITECTURE.md).

Reads the clip centred on the key frame, samples the augmentation once on the key frame and
applies it to every frame and every box, normalizes, zero-pads to a square, and assembles the
training ROIs (ground truth + labelled high-score proposals) with multi-hot ``gt_actions``.
"""
import copy
import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances

from ..structures import assign_training_rois, jitter_boxes
from .dataset_keys import clip_source_from_config
from .video_io import ClipReader, clip_times, frame_folder_indices
from .detection_utils import detector_image, detector_mapper_args

__all__ = ["ClipDatasetMapper", "ResizeShortSide", "clip_fps", "key_time"]

logger = logging.getLogger(__name__)


class ResizeShortSide(T.Augmentation):
    """
    Resize so that the shorter side is ``short_side``; the longer side is
    ``int(short_side * long / short)`` (truncated, as the official ACAR-Net ``Resize``,
    the official data pipeline; detectron2's ``ResizeShortestEdge`` rounds instead, e.g. 343 vs 342 for
    AVA's 340x455 frames). With ``max_size`` > 0 the shorter side becomes
    ``round(max_size * short / long)`` when the longer one would exceed ``max_size``
    (maskrcnn-benchmark's ``Resize(min_size, max_size)``, the official VideoMAE pipeline).
    """

    def __init__(self, short_side: int, max_size: int = 0):
        super().__init__()
        self.short_side = short_side
        self.max_size = max_size

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        short = self.short_side
        if self.max_size > 0 and max(h, w) / min(h, w) * short > self.max_size:
            short = int(round(self.max_size * min(h, w) / max(h, w)))
        if h <= w:
            new_h, new_w = short, int(short * w / h)
        else:
            new_h, new_w = int(short * h / w), short
        return T.ResizeTransform(h, w, new_h, new_w)


def clip_fps(cfg) -> float:
    """
    The model's frame rate (the seconds of its clips): ``INPUT.CLIP.FPS``, or when 0 the ``fps``
    metadata of its training (then test) split.

    Raises:
        ValueError: naming the key, when neither tells it.
    """
    if cfg.INPUT.CLIP.FPS > 0:
        return float(cfg.INPUT.CLIP.FPS)
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        fps = MetadataCatalog.get(name).get("fps", None)
        if fps:
            return float(fps)
    raise ValueError(
        "the model's frame rate is unknown: set INPUT.CLIP.FPS (AVA 30; the frame rate its clips "
        "were sampled at in training), or DATASETS.TRAIN to a registered split with an fps")


def key_time(dataset_dict: dict, fps: float) -> float:
    """Seconds of a dict's key frame from the start of its video: ``"key_time"`` when given,
    else ``key_frame_index / fps`` (frame i of a split at ``fps`` is shown from i / fps)."""
    if dataset_dict.get("key_time") is not None:
        return float(dataset_dict["key_time"])
    return dataset_dict["key_frame_index"] / float(fps)


class ClipDatasetMapper:
    """
    Map an AVA-style key-frame dict to the model input of docs/ARCHITECTURE.md:
    ``clip`` float32 (3, T, H, W), ``valid_size``, ``height``, ``width``, ``video_id``,
    ``timestamp``, ``proposals`` and (training) ``instances`` with ``gt_boxes`` / ``gt_actions``.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        action_ids: Sequence[int],
        num_frames: int,
        sampling_rate: int,
        short_side: int,
        fps: float = 0.0,
        pad_to_square: bool = True,
        flip_prob: float = 0.5,
        box_jitter: float = 0.075,
        value_scale: float = 255.0,
        pixel_mean: Sequence[float] = (0.45, 0.45, 0.45),
        pixel_std: Sequence[float] = (0.225, 0.225, 0.225),
        reader: Optional[ClipReader] = None,
        train_proposal_score_thresh: float = 0.9,
        train_proposal_iou_thresh: float = 0.9,
        detector_augmentation: Optional[T.Augmentation] = None,
        detector_format: str = "BGR",
        person_class_id: int = 0,
        train_box_source: str = "file",
        proposals_from_gt: bool = False,
        max_size: int = 0,
    ):
        """
        Args:
            is_train: training adds flips, box jitter and proposal labelling.
            action_ids: the K dataset action ids, index i <-> id (metadata ``action_ids``).
            num_frames, sampling_rate: T frames, every ``sampling_rate``-th frame at ``fps``.
            fps: the model's frame rate (:func:`clip_fps`): clip frame k of key time t is the frame
                on screen at ``t + (k * rate - T * rate // 2) / fps``; 0 = each dict's own ``fps``
                (counting in the split's frames).
            short_side: shorter side after resizing; pad_to_square: zero-pad bottom/right.
            flip_prob, box_jitter: training augmentation (box_jitter: fraction of box size).
            value_scale, pixel_mean, pixel_std: ``(x / value_scale - mean) / std``, RGB.
            reader: reads the frames (default: JPEG frame folders).
            train_proposal_*_thresh: training ROI assembly, see
                ``cfg.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_*``. At test time every proposal is passed
                on: the model applies ``MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH``.
            detector_augmentation: the person detector config's ``ResizeShortestEdge`` (train or
                test); when set, the output has ``"image"`` (the key frame for the detector, in
                ``detector_format``, flipped with the clip) and in training
                ``"person_instances"`` (``gt_boxes`` detector px, ``gt_classes`` =
                ``person_class_id``, ``gt_actions``). None = no person detector.
            train_box_source: with a detector, "file" adds labelled proposals from the file to the
                training ROIs; "gt" and "detector" do not (the model adds online detections).
            max_size: longer side at most this (0 = no limit), see :class:`ResizeShortSide`.
            proposals_from_gt: test only: ``"proposals"`` = the ground-truth boxes (score 1) and
                ``"box_source"`` = "file" (the ground-truth-box upper-bound evaluation).
        """
        self.is_train = is_train
        self.action_index = {int(a): i for i, a in enumerate(action_ids)}
        self.num_classes = len(self.action_index)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.fps = float(fps)
        self.pad_to_square = pad_to_square
        self.box_jitter = box_jitter if is_train else 0.0
        augs: List[T.Augmentation] = [ResizeShortSide(short_side, max_size)]
        if is_train and flip_prob > 0:
            augs.append(T.RandomFlip(prob=flip_prob, horizontal=True, vertical=False))
        self.augmentations = T.AugmentationList(augs)
        self.value_scale = float(value_scale)
        self.pixel_mean = torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.pixel_std = torch.tensor(pixel_std, dtype=torch.float32).view(3, 1, 1, 1)
        self.reader = reader or ClipReader("frames")
        self.train_proposal_score_thresh = train_proposal_score_thresh
        self.train_proposal_iou_thresh = train_proposal_iou_thresh
        self.detector_augmentation = detector_augmentation
        self.detector_format = detector_format
        self.person_class_id = int(person_class_id)
        self.use_file_proposals = detector_augmentation is None or train_box_source == "file"
        self.proposals_from_gt = bool(proposals_from_gt) and not is_train
        logger.info(f"[ClipDatasetMapper] augmentations ({'train' if is_train else 'test'}): {augs}")

    @classmethod
    def from_config(
        cls, cfg, is_train: bool = True, dataset_name: Optional[str] = None,
        proposals_from_gt: bool = False,
    ):
        if dataset_name is None:
            names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
            if not names and is_train:
                raise ValueError("ClipDatasetMapper needs cfg.DATASETS.TRAIN or dataset_name")
            dataset_name = names[0] if names else None
        clip = cfg.INPUT.CLIP
        return {
            "is_train": is_train,
            # Test-time mapping of a raw video (tools/demo.py) needs no class table.
            "action_ids": MetadataCatalog.get(dataset_name).action_ids if dataset_name else [],
            "num_frames": clip.NUM_FRAMES,
            "sampling_rate": clip.SAMPLING_RATE,
            "fps": clip.FPS,
            "short_side": clip.SHORT_SIDE,
            "max_size": clip.get("MAX_SIZE", 0),
            "pad_to_square": clip.PAD_TO_SQUARE,
            "flip_prob": clip.FLIP_PROB,
            "box_jitter": clip.BOX_JITTER,
            "value_scale": clip.VALUE_SCALE,
            "pixel_mean": clip.PIXEL_MEAN,
            "pixel_std": clip.PIXEL_STD,
            "reader": ClipReader(clip_source_from_config(cfg), cfg.DATASETS.ACTION.READER_THREADS),
            "train_proposal_score_thresh": cfg.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_SCORE_THRESH,
            "train_proposal_iou_thresh": cfg.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_IOU_THRESH,
            "proposals_from_gt": proposals_from_gt,
            **detector_mapper_args(cfg, is_train),
        }

    def _clip_times(self, d: dict, where: str) -> np.ndarray:
        """(T,) seconds of the clip's frames; a key frame beyond its video is an error (never
        clamped to an end frame)."""
        # the split's frame rate (a hand-made dict without one counts in its frames)
        rate = float(d.get("fps") or self.fps or 1.0)
        d["fps"] = rate
        t = key_time(d, rate)
        if d.get("num_frames") is not None:
            # frame i of the split is shown from i / fps: the key frame must be one of them
            index = int(np.floor(t * rate + 1e-6))
            if not 0 <= index < d["num_frames"]:
                source = (d.get("video_file") if getattr(self.reader, "source", "") == "video"
                          else None)
                raise ValueError(
                    f"key frame {where} ({source or d.get('frame_dir') or d.get('video_file')}): "
                    f"key frame {index} is outside the video's {d['num_frames']} frames")
        return clip_times(t, self.num_frames, self.sampling_rate, self.fps or rate)

    def _read(self, d: dict, times: np.ndarray) -> torch.Tensor:
        """The frames on screen at ``times``: ``reader.at_times``, or for a reader that reads frame
        indices only (``reader(d, indices)``), the split's frames at its ``fps``."""
        if hasattr(self.reader, "at_times"):
            return self.reader.at_times(d, times)
        return self.reader(d, frame_folder_indices(times, d["fps"], d["num_frames"]))

    def _add_detector_inputs(self, out, key_frame, transforms, gt_boxes, anns, where) -> None:
        """``"image"`` (3, H_det, W_det) uint8 and, in training, ``"person_instances"``."""
        image, det_tfm = detector_image(key_frame, self.detector_augmentation, self.detector_format)
        flipped = any(isinstance(t, T.HFlipTransform) for t in transforms)
        hd, wd = image.shape[-2:]
        if flipped:
            image = image.flip(-1)
        out["image"] = image
        if self.is_train:
            boxes = det_tfm.apply_box(gt_boxes).reshape(-1, 4)
            if flipped:
                boxes = T.HFlipTransform(wd).apply_box(boxes)
            det_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
            det_boxes.clip((hd, wd))
            inst = Instances((int(hd), int(wd)))
            inst.gt_boxes = det_boxes
            inst.gt_classes = torch.full((len(det_boxes),), self.person_class_id, dtype=torch.int64)
            inst.gt_actions = self._multi_hot(anns, where)
            out["person_instances"] = inst

    def _multi_hot(self, annotations: List[dict], where: str) -> torch.Tensor:
        """(G, K) float32 multi-hot targets of the annotations."""
        out = torch.zeros((len(annotations), self.num_classes), dtype=torch.float32)
        for r, ann in enumerate(annotations):
            for a in ann["action_ids"]:
                if int(a) not in self.action_index:
                    raise ValueError(f"{where}: action id {a} is not one of the dataset's classes")
                out[r, self.action_index[int(a)]] = 1.0
        return out

    def _transform_clip(self, frames: torch.Tensor, transforms: T.TransformList) -> torch.Tensor:
        """
        Apply the resize / flip sampled on the key frame to all frames.

        Args:
            frames (Tensor): uint8 (T, 3, H, W).
        Returns:
            Tensor: uint8 (T, 3, h, w). Resizing stays in uint8, as the official pipeline resizes
            uint8 images before dividing by 255; torch's channels-last uint8 bilinear kernel is
            also ~20x faster than a float resize of the clip.
        """
        clip = frames
        for t in transforms:
            if isinstance(t, T.ResizeTransform):
                if (t.new_h, t.new_w) != tuple(clip.shape[-2:]):
                    clip = F.interpolate(
                        clip.contiguous(memory_format=torch.channels_last),
                        size=(t.new_h, t.new_w),
                        mode="bilinear",
                        align_corners=False,
                    )
            elif isinstance(t, T.HFlipTransform):
                clip = clip.flip(-1)
            elif not isinstance(t, T.NoOpTransform):
                raise NotImplementedError(f"ClipDatasetMapper cannot apply {t} to a clip")
        return clip

    def _normalize_and_pad(self, clip: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """
        uint8 (T, 3, h, w) -> float32 (3, T, size) with ``(x / value_scale - mean) / std`` inside
        and zeros in the bottom / right padding (official batching pads after normalization).
        """
        num_frames, _, h, w = clip.shape
        out = torch.zeros((3, num_frames) + tuple(size), dtype=torch.float32)
        valid = out[:, :, :h, :w]
        valid.copy_(clip.permute(1, 0, 2, 3))
        # In place, in the official order of operations (bit-exact on the golden clip).
        valid.div_(self.value_scale).sub_(self.pixel_mean).div_(self.pixel_std)
        return out

    def __call__(self, dataset_dict: dict) -> dict:
        """
        Args:
            dataset_dict (dict): one key frame (docs/ARCHITECTURE.md "Dataset dicts").
        Returns:
            dict: docs/ARCHITECTURE.md "Mapper output".
        """
        d = copy.deepcopy(dataset_dict)
        where = f"{d.get('video_id')},{d.get('timestamp')}"
        frames = self._read(d, self._clip_times(d, where))  # (T, 3, H0, W0) uint8
        h0, w0 = frames.shape[-2:]
        if (h0, w0) != (d["height"], d["width"]):
            raise ValueError(
                f"key frame {where}: frames are {h0}x{w0} but the dataset dict says "
                f"{d['height']}x{d['width']} ({d.get('frame_dir') or d.get('video_file')})"
            )

        anns = d.get("annotations", [])
        gt_boxes = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns],
            dtype=np.float32,
        ).reshape(-1, 4)
        props = d.get("proposals") or {}
        if self.is_train and not self.use_file_proposals:
            props = {}
        prop_boxes = np.asarray(props.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
        prop_scores = np.asarray(props.get("scores", np.zeros((0,))), np.float32).reshape(-1)

        # Augmentation is sampled once, on the key frame, then applied to all frames and boxes.
        key_frame = frames[self.num_frames // 2].permute(1, 2, 0).numpy()
        transforms = self.augmentations(T.AugInput(key_frame))
        clip = self._transform_clip(frames, transforms)  # (T, 3, h, w) uint8
        h, w = clip.shape[-2:]
        size = (max(h, w), max(h, w)) if self.pad_to_square else (h, w)
        clip = self._normalize_and_pad(clip, size)  # (3, T, size)

        out = {
            "clip": clip,
            "valid_size": (int(h), int(w)),
            "height": int(h0),
            "width": int(w0),
            "video_id": d["video_id"],
            "timestamp": d["timestamp"],
        }
        prop_boxes_t = Boxes(torch.as_tensor(transforms.apply_box(prop_boxes), dtype=torch.float32))
        prop_boxes_t.clip((h, w))
        proposals = Instances(size)
        proposals.proposal_boxes = prop_boxes_t
        proposals.scores = torch.as_tensor(prop_scores)
        out["proposals"] = proposals
        if self.proposals_from_gt:
            gt_clip = Boxes(torch.as_tensor(transforms.apply_box(gt_boxes), dtype=torch.float32))
            gt_clip.clip((h, w))
            proposals = Instances(size)
            proposals.proposal_boxes = gt_clip
            proposals.scores = torch.ones(len(gt_clip))
            out["proposals"] = proposals
            out["box_source"] = "file"
        if self.detector_augmentation is not None:
            self._add_detector_inputs(out, key_frame, transforms, gt_boxes, anns, where)

        if self.is_train:
            out["instances"] = self._training_instances(
                transforms.apply_box(gt_boxes), anns, prop_boxes_t.tensor, proposals.scores,
                (h, w), size, where)
        return out

    def _training_instances(self, gt_boxes: np.ndarray, anns: List[dict],
                            prop_boxes: torch.Tensor, prop_scores: torch.Tensor,
                            valid: Tuple[int, int], size: Tuple[int, int], where: str) -> Instances:
        """
        The training ROIs: ground truth + labelled high-score proposals, jittered and clipped to
        the valid (unpadded) clip.

        Args:
            gt_boxes: (G, 4) ground-truth boxes in clip px; anns: their annotations.
            prop_boxes, prop_scores: (P, 4) proposals in clip px and their (P,) scores.
            valid: (h, w) of the clip before padding; size: the padded clip size.
        Returns:
            Instances: ``gt_boxes`` (R, 4), ``gt_actions`` (R, K) multi-hot.
        """
        rois, actions = assign_training_rois(
            torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
            self._multi_hot(anns, where),
            prop_boxes,
            prop_scores,
            self.train_proposal_score_thresh,
            self.train_proposal_iou_thresh,
        )
        if self.box_jitter > 0 and len(rois):
            rois = torch.as_tensor(
                jitter_boxes(rois.numpy(), self.box_jitter, np.random), dtype=torch.float32
            )
        roi_boxes = Boxes(rois)
        roi_boxes.clip(valid)
        # A ROI with nothing left inside the frame carries no signal (official: dropped).
        nonempty = roi_boxes.nonempty()
        instances = Instances(size)
        instances.gt_boxes = roi_boxes[nonempty]
        instances.gt_actions = actions[nonempty]
        return instances

