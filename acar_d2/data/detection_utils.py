"""
The person detector's input preparation (as detectron2 keeps ``build_augmentation`` in
``data/detection_utils.py``): its resize, its key-frame ``"image"``, and the mapper arguments read
from ``cfg.MODEL.PERSON_DETECTOR`` and the detector's own config. The model stays in
``acar_d2/modeling/person_detector.py``.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.data import transforms as T

from ..config import load_detector_config, person_detector_config

__all__ = ["detector_augmentation", "detector_image", "detector_mapper_args"]


def detector_augmentation(
    is_train: bool,
    min_size_train: Sequence[int],
    max_size_train: int,
    min_size_train_sampling: str,
    min_size_test: int,
    max_size_test: int,
) -> T.Augmentation:
    """detectron2's ``ResizeShortestEdge`` of the detector config (test: as ``DefaultPredictor``)."""
    if is_train:
        return T.ResizeShortestEdge(min_size_train, max_size_train, min_size_train_sampling)
    return T.ResizeShortestEdge([min_size_test, min_size_test], max_size_test)


def detector_image(
    frame_rgb: np.ndarray, augmentation: Union[T.Augmentation, T.Transform], input_format: str
) -> Tuple[torch.Tensor, T.Transform]:
    """
    One key frame -> the detector's ``"image"``.

    Args:
        frame_rgb (ndarray): (H, W, 3) uint8 RGB.
        augmentation: a ``ResizeShortestEdge`` (sampled here) or an already sampled ``Transform``.
        input_format: the detector's ``INPUT.FORMAT`` ("RGB" or "BGR").
    Returns:
        image (Tensor): (3, H_det, W_det) uint8 in ``input_format``.
        transform: the resize applied (``apply_box`` maps frame px to detector px).
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f"detector_image: expected an (H, W, 3) uint8 frame, got "
                         f"{frame_rgb.shape} {frame_rgb.dtype}")
    if input_format not in ("RGB", "BGR"):
        raise ValueError(f"person detector INPUT.FORMAT '{input_format}' is not RGB or BGR")
    frame_rgb = np.ascontiguousarray(frame_rgb)
    tfm = augmentation if isinstance(augmentation, T.Transform) else augmentation.get_transform(frame_rgb)
    image = tfm.apply_image(frame_rgb)
    if input_format == "BGR":
        image = image[:, :, ::-1]
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))), tfm


def detector_mapper_args(cfg, is_train: bool) -> dict:
    """Mapper arguments of ``cfg.MODEL.PERSON_DETECTOR`` (empty when there is no detector)."""
    pd = person_detector_config(cfg)
    if pd is None:
        return {}
    det = load_detector_config(pd.CONFIG_FILE)
    return {
        "detector_augmentation": detector_augmentation(
            is_train, det.INPUT.MIN_SIZE_TRAIN, det.INPUT.MAX_SIZE_TRAIN,
            det.INPUT.MIN_SIZE_TRAIN_SAMPLING, det.INPUT.MIN_SIZE_TEST, det.INPUT.MAX_SIZE_TEST,
        ),
        "detector_format": det.INPUT.FORMAT,
        "person_class_id": pd.PERSON_CLASS_ID,
        "train_box_source": pd.TRAIN_BOX_SOURCE,
    }
