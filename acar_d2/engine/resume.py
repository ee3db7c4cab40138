"""
What an interrupted training run needs, beyond weights / optimizer / scheduler, to continue the
same stream: the random-number-generator states and the position in the training sampler.

detectron2's checkpoint holds the model, the optimizer, the scheduler and the iteration; its
``TrainingSampler`` restarts its stream from the beginning and the RNGs restart from the seed.
``capture_rng_state`` / ``restore_rng_state`` and ``ResumableTrainingSampler`` close that gap.
"""
import itertools
import random
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from detectron2.data.samplers import TrainingSampler

__all__ = ["capture_rng_state", "restore_rng_state", "ResumableTrainingSampler"]

_RNG_KEYS = ("python", "numpy", "torch")


def capture_rng_state() -> Dict[str, Any]:
    """
    Returns:
        dict: the Python, NumPy and torch CPU generator states, plus every CUDA device's when CUDA
        is initialized. Plain picklable objects (a checkpoint entry).
    """
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """
    Inverse of :func:`capture_rng_state`.

    Raises:
        KeyError: naming the missing generator when ``state`` is incomplete (e.g. a checkpoint
            written by another program), instead of silently resuming with a fresh stream.
    """
    missing = [k for k in _RNG_KEYS if k not in state]
    if missing:
        raise KeyError(f"RNG state in checkpoint lacks {missing}; has {sorted(state)}")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    # CUDA states are restored only where the same number of devices is visible: a run resumed on
    # a CPU-only machine or with another GPU count keeps its fresh CUDA streams.
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


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
