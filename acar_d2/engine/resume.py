"""
What an interrupted training run needs, beyond weights / optimizer / scheduler, to continue the
same stream: the random-number-generator states and the position in the training sampler.

detectron2's checkpoint holds the model, the optimizer, the scheduler and the iteration; its
``TrainingSampler`` restarts its stream from the beginning and the RNGs restart from the seed.
``capture_rng_state`` / ``restore_rng_state`` and ``acar_d2.data.samplers.ResumableTrainingSampler``
close that gap.
"""
import random
from typing import Any, Dict

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]

_RNG_KEYS = ("python", "numpy", "torch")


def _numpy_state_to_plain(state: tuple) -> Dict[str, Any]:
    """``np.random.get_state()`` (a tuple holding a uint32 array) -> str / int / float / list."""
    name, keys, pos, has_gauss, cached_gaussian = state
    return {
        "bit_generator": str(name),
        "keys": [int(k) for k in keys],
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _numpy_state_from_plain(state: Any) -> tuple:
    """Inverse of :func:`_numpy_state_to_plain`; the legacy tuple form passes through."""
    if not isinstance(state, dict):
        return state  # checkpoints written before the plain-type form
    return (
        state["bit_generator"],
        np.asarray(state["keys"], dtype=np.uint32),
        int(state["pos"]),
        int(state["has_gauss"]),
        float(state["cached_gaussian"]),
    )


def _python_state_to_plain(state: tuple) -> Dict[str, Any]:
    """``random.getstate()`` -> a dict of int / list / float (None when no Gaussian is cached)."""
    version, internal, gauss_next = state
    return {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next}


def _python_state_from_plain(state: Any) -> tuple:
    if not isinstance(state, dict):
        return tuple(state)  # legacy: the tuple of random.getstate()
    return (state["version"], tuple(state["internal"]), state["gauss_next"])


def capture_rng_state() -> Dict[str, Any]:
    """
    Returns:
        dict: the Python, NumPy and torch CPU generator states, plus every CUDA device's when CUDA
        is initialized. Only plain types (str, int, float, None, lists, dicts, uint8 tensors), so
        a checkpoint holding it loads with ``torch.load(..., weights_only=True)`` and therefore
        with plain detectron2 ``DetectionCheckpointer``.
    """
    state = {
        "python": _python_state_to_plain(random.getstate()),
        "numpy": _numpy_state_to_plain(np.random.get_state(legacy=True)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """
    Inverse of :func:`capture_rng_state` (also accepts the earlier form that stored the raw
    ``random.getstate()`` / ``np.random.get_state()`` tuples).

    Raises:
        KeyError: naming the missing generator when ``state`` is incomplete (e.g. a checkpoint
            written by another program), instead of silently resuming with a fresh stream.
    """
    missing = [k for k in _RNG_KEYS if k not in state]
    if missing:
        raise KeyError(f"RNG state in checkpoint lacks {missing}; has {sorted(state)}")
    random.setstate(_python_state_from_plain(state["python"]))
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    # CUDA states are restored only where the same number of devices is visible: a run resumed on
    # a CPU-only machine or with another GPU count keeps its fresh CUDA streams.
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
