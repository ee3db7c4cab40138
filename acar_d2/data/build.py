"""
Clip data loaders: detectron2's ``build_detection_{train,test}_loader`` with the clip mapper.

detectron2's loaders already do what clips need: ``get_detection_dataset_dicts`` concatenates the
registered splits (and drops key frames without annotations when
``cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS``), the samplers and worker seeding are unchanged, and the
trivial batch collator returns a list of mapper dicts, so clips with different numbers of boxes
batch without padding.
"""
from typing import Optional

from detectron2.data import build_detection_test_loader, build_detection_train_loader

from .clip_mapper import ClipDatasetMapper

__all__ = ["build_clip_train_loader", "build_clip_test_loader"]


def build_clip_train_loader(cfg, mapper: Optional[ClipDatasetMapper] = None):
    """
    Infinite training loader over ``cfg.DATASETS.TRAIN``.

    Returns:
        iterable of list[dict]: ``cfg.SOLVER.IMS_PER_BATCH`` (total over workers) mapper outputs
        per batch (``clip`` (3, T, H, W), ``instances``, ...).
    """
    return build_detection_train_loader(cfg, mapper=mapper or ClipDatasetMapper(cfg, True))


def build_clip_test_loader(cfg, dataset_name: str, mapper: Optional[ClipDatasetMapper] = None):
    """
    Inference loader over one registered split, in dataset order, batch size 1 per worker.

    Returns:
        iterable of list[dict]: mapper outputs with ``proposals`` (no ``instances``).
    """
    if mapper is None:
        mapper = ClipDatasetMapper(cfg, False, dataset_name=dataset_name)
    return build_detection_test_loader(cfg, dataset_name, mapper=mapper)
