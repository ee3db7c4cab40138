"""
Per-sample random draws for training: the random choices made while mapping one sample (flip, box
jitter, the person detector's resize, ...) come from generators seeded by (seed, the sample's
position in the training stream), not from whatever state the process's generators are in.

detectron2 seeds each loader worker once (``worker_init_reset_seed``) and its augmentations draw
from the global NumPy generator, so a sample's draws depend on how many samples that worker mapped
before it: a resumed run (fresh workers) or another ``DATALOADER.NUM_WORKERS`` draws differently.
Seeding per sample makes the draws a function of (seed, position) alone, so ``--resume`` continues
the interrupted run exactly with any number of workers, and ``NUM_WORKERS`` 0 and 8 train alike.
"""
import contextlib
import random
from typing import Callable, Iterator, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["derived_seeds", "seed_generators", "seeded_rng", "PositionSeededDataset"]

# First key after the seed: the domain of per-sample seeds (another use of derived_seeds takes
# another first key, so that its seeds never coincide with a sample's).
SAMPLE_DOMAIN = 0


def derived_seeds(*keys: int) -> np.ndarray:
    """
    Four uint32 words from NumPy's ``SeedSequence`` of ``keys`` (non-negative ints): well-mixed
    seeds, distinct for distinct keys, e.g. ``derived_seeds(seed, SAMPLE_DOMAIN, position)``.
    """
    if any(int(k) < 0 for k in keys):
        raise ValueError(f"seed keys must be non-negative, got {keys}")
    return np.random.SeedSequence([int(k) for k in keys]).generate_state(4, dtype=np.uint32)


def seed_generators(*keys: int) -> None:
    """
    Seed Python's ``random``, NumPy's global generator and torch's CPU generator from ``keys``
    (:func:`derived_seeds`). CUDA generators are not touched.
    """
    words = derived_seeds(*keys)
    random.seed(int(words[0]) << 32 | int(words[1]))
    np.random.seed(words)
    torch.random.default_generator.manual_seed(int(words[2]) << 32 | int(words[3]))


@contextlib.contextmanager
def seeded_rng(*keys: int) -> Iterator[None]:
    """
    Within the block, Python's ``random``, NumPy's global generator and torch's CPU generator are
    seeded from ``keys`` (:func:`derived_seeds`); on exit they are back in their previous states,
    so code around the block (e.g. dropout in a ``NUM_WORKERS 0`` main process) keeps its own
    stream. CUDA generators are not touched.
    """
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    seed_generators(*keys)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class PositionSeededDataset(Dataset):
    """
    A map-style dataset read with ``(index, position)`` keys (``ResumableTrainingSampler(...,
    with_positions=True)``): ``dataset[key]`` maps item ``index`` with ``mapper`` inside
    ``seeded_rng(seed, SAMPLE_DOMAIN, position)``. It replaces detectron2's ``MapDataset`` in the training
    loader; unlike it, a mapper returning None is an error (a random replacement would not be
    reproducible).
    """

    def __init__(self, dataset: Sequence[dict], mapper: Callable[[dict], dict], seed: int):
        """
        Args:
            dataset: the dataset dicts (e.g. detectron2's ``DatasetFromList``).
            mapper: dataset dict -> model input (``ClipDatasetMapper``).
            seed (int): non-negative; the sampler's shuffle seed (one seed for the whole stream).
        """
        self.dataset = dataset
        self.mapper = mapper
        self.seed = int(seed)
        derived_seeds(self.seed)  # a negative seed fails here, not in a loader worker

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]) -> dict:
        index, position = key
        with seeded_rng(self.seed, SAMPLE_DOMAIN, position):
            out = self.mapper(self.dataset[index])
        if out is None:
            raise ValueError(f"training mapper returned None for dataset item {index}")
        return out
