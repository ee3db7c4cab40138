"""Unit tests of the resume helpers: sampler position and RNG states."""
import itertools
import random

import numpy as np
import pytest
import torch

from acar_d2.engine import ResumableTrainingSampler, capture_rng_state, restore_rng_state


def test_sampler_continues_the_same_stream():
    full = list(itertools.islice(iter(ResumableTrainingSampler(7, seed=3)), 40))
    resumed = list(itertools.islice(iter(ResumableTrainingSampler(7, seed=3, start_index=13)), 27))
    assert resumed == full[13:], (resumed, full[13:])
    # Every epoch of 7 indices is a permutation, and the epochs differ (shuffled per epoch).
    assert sorted(full[:7]) == list(range(7)) and sorted(full[7:14]) == list(range(7))
    assert full[:7] != full[7:14]


def test_sampler_rejects_negative_start():
    with pytest.raises(ValueError, match="start_index"):
        ResumableTrainingSampler(5, seed=0, start_index=-1)


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    # Advance all generators, then go back.
    random.random(), np.random.rand(5), torch.rand(5)
    restore_rng_state(state)
    got = (random.random(), float(np.random.rand()), float(torch.rand(())))
    assert got == expected, (got, expected)


def test_rng_state_missing_key_raises():
    state = capture_rng_state()
    del state["numpy"]
    with pytest.raises(KeyError, match="numpy"):
        restore_rng_state(state)

