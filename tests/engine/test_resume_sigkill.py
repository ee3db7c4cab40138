"""
``--resume`` after ``kill -9`` is exact with data-loader workers, in one process and in a
two-process gloo run: training is killed (SIGKILL to the launcher, its ranks and their loader
workers, ``sigkill_train.py``) two steps after a checkpoint, resumed with ``tools/train_net.py
--resume``, and its final weights equal those of an uninterrupted run bit for bit. Flips, box
jitter and the HR2O dropout are on (the instant-test config's defaults), so any random draw that
depends on the worker, on the rank or on where the run stopped changes the weights.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from .conftest import INSTANT_CONFIG, REPO, tiny_cfg_opts

MAX_ITER = 8
CHECKPOINT_PERIOD = 3  # checkpoints after iterations 2 and 5
KILL_BEFORE = 5  # iterations 3 and 4 are lost and run again by the resumed run
SCHEDULE = [
    "DATALOADER.NUM_WORKERS", "2",
    "SOLVER.MAX_ITER", str(MAX_ITER),
    "SOLVER.CHECKPOINT_PERIOD", str(CHECKPOINT_PERIOD),
    "SOLVER.WARMUP_ITERS", "2",
    "SOLVER.STEPS", "(6,)",  # the LR changes after the resume point too
    "SOLVER.LOG_PERIOD", "1",
    "TEST.EVAL_PERIOD", "0",
    "DATASETS.TEST", "()",  # no final evaluation: this test is about training
]


def train_net(world: Path, out: Path, *flags: str, kill_before: int = -1, opts=()):
    """``tools/train_net.py`` in a subprocess of its own session; returns the CompletedProcess."""
    cmd = [sys.executable, str(REPO / "tests" / "engine" / "sigkill_train.py"),
           "--world", str(world), "--kill-before-iter", str(kill_before), "--",
           "--config-file", str(INSTANT_CONFIG), *flags]
    cmd += tiny_cfg_opts(out) + SCHEDULE + list(opts)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          start_new_session=True, timeout=300)


def read_losses(path: Path) -> dict:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {m["iteration"]: m["total_loss"] for m in lines if "total_loss" in m}


def max_abs_diff(path_a: Path, path_b: Path) -> float:
    a = torch.load(path_a, map_location="cpu", weights_only=True)["model"]
    b = torch.load(path_b, map_location="cpu", weights_only=True)["model"]
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def kill_resume_and_compare(world: Path, tmp_path: Path, flags=(), opts=()) -> None:
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    run = train_net(world, uninterrupted, *flags, opts=opts)
    assert run.returncode == 0, run.stderr[-3000:]

    run = train_net(world, killed, *flags, kill_before=KILL_BEFORE, opts=opts)
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stderr[-3000:])
    assert (killed / "last_checkpoint").read_text() == "model_0000002.pth"
    assert not (killed / "model_0000005.pth").exists() and not (killed / "model_final.pth").exists()
    # The checkpoint written before the kill is the uninterrupted run's.
    assert max_abs_diff(killed / "model_0000002.pth", uninterrupted / "model_0000002.pth") == 0

    run = train_net(world, killed, "--resume", *flags, opts=opts)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Restored RNG states of iteration 2" in run.stdout, run.stdout[-3000:]
    # Iterations 3 and 4 ran twice: the killed run's lines went to metrics.dropped.json.
    resumed, full = read_losses(killed / "metrics.json"), read_losses(uninterrupted / "metrics.json")
    assert sorted(read_losses(killed / "metrics.dropped.json")) == [3, 4]
    assert resumed == full and sorted(full) == list(range(MAX_ITER)), (resumed, full)
    worst = max_abs_diff(killed / "model_final.pth", uninterrupted / "model_final.pth")
    assert worst == 0, f"resumed run differs from the uninterrupted one: max |diff| {worst}"


def test_sigkill_resume_with_workers_is_exact(tiny_world, tmp_path):
    # An evaluation after each checkpoint (iterations 2 and 5): the uninterrupted run evaluates
    # between the checkpoint and the next step, the resumed one does not; evaluation draws
    # nothing from the training generators (``preserved_rng``), so the streams stay the same.
    from .conftest import VAL

    kill_resume_and_compare(tiny_world, tmp_path, opts=[
        "TEST.EVAL_PERIOD", str(CHECKPOINT_PERIOD), "DATASETS.TEST", f"('{VAL}',)"])


def test_sigkill_resume_two_process_gloo_is_exact(tiny_world, tmp_path):
    # 2 clips per rank; each rank reads its own part of the stream with its own 2 workers.
    kill_resume_and_compare(tiny_world, tmp_path, flags=("--num-gpus", "2", "--dist-url", "auto"),
                            opts=["SOLVER.IMS_PER_BATCH", "4"])
