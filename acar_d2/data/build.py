"""
Clip data loaders: detectron2's ``build_detection_{train,test}_loader`` with the clip mapper.

detectron2's loaders already do what clips need: ``get_detection_dataset_dicts`` concatenates the
registered splits (and drops key frames without annotations when
``cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS``), and the trivial batch collator returns a list of
mapper dicts, so clips with different numbers of boxes batch without padding. Training changes two
things: the sampler can start mid-stream (``--resume``), and each clip's random draws are seeded by
its position in the stream (``acar_d2.data.sample_rng``), not by the loader worker that maps it.
"""
import logging
from typing import Optional

from detectron2.data import (
    DatasetFromList,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.utils import comm

from ..config import bank_kind_from_config
from .clip_mapper import ClipDatasetMapper
from .sample_rng import PositionSeededDataset
from .samplers import ResumableTrainingSampler

__all__ = ["build_clip_mapper", "build_clip_train_loader", "build_clip_test_loader"]

logger = logging.getLogger(__name__)


def build_clip_mapper(cfg, is_train: bool, dataset_name: Optional[str] = None, **kwargs):
    """
    The mapper of ``cfg``: ``ClipDatasetMapper``, or for a head that reads a feature bank the
    ``FeatureBankDatasetMapper`` wrapping it (adds the key frame's bank window, "feature_bank").
    ``kwargs`` go to ``ClipDatasetMapper`` (e.g. ``proposals_from_gt``).

    Raises:
        ValueError: ``MODEL.FEATURE_BANK.KIND`` is not the head's kind
            (:func:`acar_d2.config.bank_kind_from_config`).
    """
    if bank_kind_from_config(cfg):
        from .feature_bank import FeatureBankDatasetMapper

        return FeatureBankDatasetMapper(cfg, is_train, dataset_name=dataset_name, **kwargs)
    return ClipDatasetMapper(cfg, is_train, dataset_name=dataset_name, **kwargs)


def build_clip_train_loader(
    cfg,
    mapper: Optional[ClipDatasetMapper] = None,
    *,
    seed: Optional[int] = None,
    start_iter: int = 0,
):
    """
    Infinite training loader over ``cfg.DATASETS.TRAIN``.

    The stream is a function of the seed alone: the sampler's order, and each clip's random draws
    (flip, box jitter, ...) seeded by (seed, the clip's position in the stream shared by the
    ranks). So the batches are the same with any ``DATALOADER.NUM_WORKERS`` and after ``--resume``
    (``ASPECT_RATIO_GROUPING`` False, as in ``configs/Base-AVA.yaml``: with grouping, batches are
    formed from the workers' interleaved outputs).

    Args:
        mapper: default :func:`build_clip_mapper` (``ClipDatasetMapper``, + bank window).
        seed: shuffle seed of the sampler and key of the per-clip draws (None: ``cfg.SEED`` if
            >= 0, else a random seed shared by the ranks).
        start_iter: iterations already trained; this rank's first ``start_iter * per-rank batch``
            clips are skipped (``--resume`` continues the stream, :class:`ResumableTrainingSampler`).

    Returns:
        iterable of list[dict]: ``cfg.SOLVER.IMS_PER_BATCH // world_size`` mapper outputs per batch
        on each rank (``clip`` (3, T, H, W), ``instances``, ...).
    """
    dataset = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    )
    if seed is None and cfg.SEED >= 0:
        seed = cfg.SEED
    per_rank_batch = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
    sampler = ResumableTrainingSampler(
        len(dataset), seed=seed, start_index=start_iter * per_rank_batch, with_positions=True
    )
    grouping = cfg.DATALOADER.ASPECT_RATIO_GROUPING
    if grouping:
        logger.warning("DATALOADER.ASPECT_RATIO_GROUPING True: which clips share a batch depends "
                       "on the loader workers and on where a run resumed (--resume is not exact); "
                       "set it False (configs/Base-AVA.yaml does)")
    dataset = PositionSeededDataset(
        DatasetFromList(dataset, copy=False), mapper or build_clip_mapper(cfg, True), sampler.seed
    )
    # Explicit arguments: the cfg form of build_detection_train_loader would wrap the dataset in
    # detectron2's DatasetMapper.
    return build_detection_train_loader(
        dataset,
        mapper=None,
        sampler=sampler,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=grouping,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def build_clip_test_loader(cfg, dataset_name: str, mapper: Optional[ClipDatasetMapper] = None):
    """
    Inference loader over one registered split, in dataset order, batch size 1 per worker.

    Returns:
        iterable of list[dict]: mapper outputs with ``proposals`` (no ``instances``).
    """
    if mapper is None:
        mapper = build_clip_mapper(cfg, False, dataset_name=dataset_name)
    return build_detection_test_loader(cfg, dataset_name, mapper=mapper)
