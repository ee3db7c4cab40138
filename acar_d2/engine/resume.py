"""
What an interrupted training run needs, beyond weights / optimizer / scheduler, to continue the
same stream: the random-number-generator states and the position in the training sampler.

detectron2's checkpoint holds the model, the optimizer, the scheduler and the iteration; its
``TrainingSampler`` restarts its stream from the beginning and the RNGs restart from the seed.
``acar_d2.data.samplers.ResumableTrainingSampler`` continues the stream; the random draws are
of a clip are keyed by its place in the stream (``acar_d2.data.sample_rng``, in the loader
workers), not by the worker's history; the draws of the training step itself (dropout, the person
detector's proposal sampling) continue each rank's generators, whose states every checkpoint holds
(``RankRNGStates`` gathers them from all ranks, ``capture_rng_state`` / ``restore_rng_state``,
``SOLVER.CHECKPOINT_RNG_STATE``), and evaluation between steps draws inside ``preserved_rng`` so
that it takes nothing from them. So a resumed run draws what the interrupted one would have, with
any number of loader workers and on every rank.

The output folder of a run: ``check_output_dir`` refuses to start a new run over a finished or
interrupted one unless asked (``set_aside_previous_run`` then keeps the old metrics), and
``drop_metrics_from`` removes from ``metrics.json`` the iterations a resumed run repeats.
"""
import contextlib
import json
import os
import random
import shutil
import time
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from detectron2.engine import HookBase
from detectron2.utils import comm


__all__ = [
    "RankRNGStates",
    "preserved_rng",
    "capture_rng_state",
    "restore_rng_state",
    "finished_run_files",
    "check_output_dir",
    "set_aside_previous_run",
    "drop_metrics_from",
]

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


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """
    Within the block, code may draw from Python's ``random``, NumPy's global generator and torch's
    (CPU and initialized CUDA) generators; on exit they are back where they were. Evaluation
    during training runs inside it, so that it takes no numbers from the training stream (a run
    resumed from a checkpoint written before that evaluation then draws what the uninterrupted
    run draws).
    """
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)


def checkpoint_due(iteration: int, period: int, max_iter: int) -> bool:
    """Whether detectron2's ``PeriodicCheckpointer`` saves after ``iteration`` (0-based)."""
    return (period > 0 and (iteration + 1) % period == 0) or iteration >= max_iter - 1


class RankRNGStates(HookBase):
    """
    After each step at which the periodic checkpointer saves, gather every rank's generator
    states (:func:`capture_rng_state`; one ``all_gather``, so on every rank, registered before
    the checkpointer) into ``states`` (a list indexed by rank) and ``iteration``; the trainer's
    ``state_dict`` puts them into the checkpoint, and ``--resume`` gives each rank its own.
    A single process needs no gathering: its states are read when the checkpoint is written.
    """

    def __init__(self, period: int):
        self._period = int(period)
        self.states: Optional[List[Dict[str, Any]]] = None
        self.iteration = -1

    def after_step(self) -> None:
        it = self.trainer.iter
        if comm.get_world_size() > 1 and checkpoint_due(it, self._period, self.trainer.max_iter):
            self.states = comm.all_gather(capture_rng_state())
            self.iteration = it


# ---------------------------------------------------------------- the output folder of a run
def finished_run_files(output_dir: str) -> List[str]:
    """The files of ``output_dir`` that mark a finished or interrupted run (model_final.pth,
    last_checkpoint), as names; empty for a fresh folder."""
    return [n for n in ("model_final.pth", "last_checkpoint")
            if os.path.isfile(os.path.join(output_dir, n))]


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """
    Refuse to start a new training run in a folder that holds one (its ``model_final.pth``,
    ``last_checkpoint``, checkpoints and ``metrics.json`` would be replaced or mixed), unless the
    run is resumed (``resume`` and a ``last_checkpoint``) or ``overwrite``. Reads only.

    Raises:
        FileExistsError: naming the folder, the files found and the two ways on.
    """
    found = finished_run_files(output_dir)
    if not found or overwrite:
        return
    if resume and "last_checkpoint" in found:
        return
    raise FileExistsError(
        f"OUTPUT_DIR {output_dir} already holds a training run ({', '.join(found)}); a new run "
        "would replace its checkpoints and mix its metrics.json. Continue it with --resume, "
        "choose another OUTPUT_DIR, or replace it with --overwrite (SOLVER.OVERWRITE_OUTPUT_DIR "
        "True)."
    )


def set_aside_previous_run(output_dir: str) -> Optional[str]:
    """
    For an asked-for overwrite: copy ``metrics.json`` of the previous run to
    ``metrics.json.before-overwrite-<time>``, empty it in place (an open writer keeps appending to
    the same file) and remove ``last_checkpoint`` (it named the old run's checkpoint). Returns the
    copy's path, or None when there was nothing to set aside.
    """
    metrics = os.path.join(output_dir, "metrics.json")
    aside = None
    if os.path.isfile(metrics) and os.path.getsize(metrics) > 0:
        aside = f"{metrics}.before-overwrite-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copyfile(metrics, aside)
        with open(metrics, "r+") as f:
            f.truncate(0)
    last = os.path.join(output_dir, "last_checkpoint")
    if os.path.isfile(last):
        os.remove(last)
    return aside


def drop_metrics_from(output_dir: str, start_iter: int) -> int:
    """
    On resume at ``start_iter``: the lines of ``metrics.json`` written after the checkpoint
    (``"iteration" >= start_iter``, run again now) and a line cut by the interruption are moved
    to ``metrics.dropped.json`` (appended, nothing is lost), and ``metrics.json`` is rewritten in
    place with the rest, so each iteration appears once.

    Returns:
        int: number of lines moved.
    """
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    keep, drop = [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            it = json.loads(line).get("iteration", -1)
        except (ValueError, AttributeError):
            it = None  # cut mid-write by the kill
        (keep if it is not None and it < start_iter else drop).append(line)
    if not drop:
        return 0
    with open(os.path.join(output_dir, "metrics.dropped.json"), "a") as f:
        f.writelines(x if x.endswith("\n") else x + "\n" for x in drop)
        f.flush()
        os.fsync(f.fileno())
    with open(path, "r+") as f:  # same file: the JSONWriter's append handle stays valid
        f.truncate(0)
        f.writelines(keep)
    return len(drop)
