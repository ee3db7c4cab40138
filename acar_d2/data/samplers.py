"""
``ResumableTrainingSampler``: detectron2's ``TrainingSampler`` that can start in the middle of its
stream, so that a resumed training run reads the clips the interrupted run would have read next,
and that can name each index's position in the stream (the key of its per-sample random draws,
``acar_d2.data.sample_rng``).
"""
import itertools
from typing import Iterator, Optional, Tuple, Union

from detectron2.data.samplers import TrainingSampler

__all__ = ["ResumableTrainingSampler"]


class ResumableTrainingSampler(TrainingSampler):
    """
    A :class:`TrainingSampler` (same infinite, per-rank sharded, seeded stream) that starts after
    the first ``start_index`` indices of this rank's stream.

    With ``start_index = start_iter * (IMS_PER_BATCH // world_size)`` a resumed run receives the
    clips the interrupted run would have read next. Skipping only draws indices (no decoding), so
    it costs microseconds per skipped clip.

    With ``with_positions`` it yields ``(index, position)`` pairs instead of indices: ``position``
    is the index's place in the stream shared by all ranks (detectron2 deals that stream out
    round-robin: this rank's i-th index is at ``i * world_size + rank``), so it is the same for a
    sample whatever the start, the number of loader workers, or which rank reads it.
    """

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool = True,
        seed: Optional[int] = None,
        start_index: int = 0,
        with_positions: bool = False,
    ):
        """
        Args:
            size (int): number of dataset items.
            shuffle (bool): shuffle each epoch (as TrainingSampler).
            seed (int or None): shuffle seed, identical on all ranks. Must be the same value as in
                the interrupted run for the stream to continue (the trainer stores it in the
                checkpoint).
            start_index (int): number of this rank's indices to skip, >= 0.
            with_positions (bool): yield ``(index, position)`` pairs (see the class docstring).
        """
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        super().__init__(size, shuffle=shuffle, seed=seed)
        self._start_index = int(start_index)
        self._with_positions = bool(with_positions)

    @property
    def seed(self) -> int:
        """The shuffle seed shared by all ranks."""
        return self._seed

    def __iter__(self) -> Iterator[Union[int, Tuple[int, int]]]:
        indices = itertools.islice(super().__iter__(), self._start_index, None)
        if not self._with_positions:
            yield from indices
            return
        for i, index in enumerate(indices, self._start_index):
            yield index, i * self._world_size + self._rank
