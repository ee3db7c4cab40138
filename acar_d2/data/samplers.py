"""
``ResumableTrainingSampler``: detectron2's ``TrainingSampler`` that can start in the middle of its
stream, so that a resumed training run reads the clips the interrupted run would have read next.
"""
import itertools
from typing import Iterator, Optional

from detectron2.data.samplers import TrainingSampler

__all__ = ["ResumableTrainingSampler"]


class ResumableTrainingSampler(TrainingSampler):
    """
    A :class:`TrainingSampler` (same infinite, per-rank sharded, seeded stream) that starts after
    the first ``start_index`` indices of this rank's stream.

    With ``start_index = start_iter * (IMS_PER_BATCH // world_size)`` a resumed run receives the
    clips the interrupted run would have read next. Skipping only draws indices (no decoding), so
    it costs microseconds per skipped clip.
    """

    def __init__(
        self, size: int, *, shuffle: bool = True, seed: Optional[int] = None, start_index: int = 0
    ):
        """
        Args:
            size (int): number of dataset items.
            shuffle (bool): shuffle each epoch (as TrainingSampler).
            seed (int or None): shuffle seed, identical on all ranks. Must be the same value as in
                the interrupted run for the stream to continue (the trainer stores it in the
                checkpoint).
            start_index (int): number of this rank's indices to skip, >= 0.
        """
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        super().__init__(size, shuffle=shuffle, seed=seed)
        self._start_index = int(start_index)

    @property
    def seed(self) -> int:
        """The shuffle seed shared by all ranks."""
        return self._seed

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(super().__iter__(), self._start_index, None)
