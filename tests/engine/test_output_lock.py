"""
One job per OUTPUT_DIR (``acar_d2/utils/output_lock.py``, docs/SAFETY.md): the same training
started twice into one folder is refused at once, naming the holder, and the first run's files stay
its own; a run killed with SIGKILL leaves no lock that blocks ``--resume``.

The trainings are real ``tools/train_net.py`` processes on the tiny synthetic world (registered
through ``$ACAR_DATASETS``); the first one is paused (SIGSTOP) while the second one starts, so the
overlap does not depend on timing.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from detectron2.engine import default_argument_parser

from acar_d2.utils.output_lock import FOLDER_LOCK_NAME, HOLDER_SUFFIX, OutputLockedError

from .conftest import INSTANT_CONFIG, REPO, load_train_net

MAX_ITER = 6


def _argv(out: Path, seed: int, *flags: str, max_iter: int = MAX_ITER) -> list:
    return ["--config-file", str(INSTANT_CONFIG), *flags,
            "DATASETS.TRAIN", "('aca_world_train',)", "DATASETS.TEST", "()",
            "MODEL.SLOWFAST.WIDTH", "8", "MODEL.DEVICE", "cpu",
            "SOLVER.MAX_ITER", str(max_iter), "SOLVER.CHECKPOINT_PERIOD", "3",
            "TEST.EVAL_PERIOD", "0", "SEED", str(seed), "OUTPUT_DIR", str(out)]


def _start(world: Path, argv: list, log: Path) -> subprocess.Popen:
    """train_net.py in a process; stdout + stderr to ``log`` (a pipe nobody reads would fill)."""
    env = dict(os.environ, ACAR_DATASETS=str(world.parent), PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, str(REPO / "tools" / "train_net.py"), *argv],
                                cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    proc.wait(timeout=timeout)
    return log.read_text()


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {path} appeared:\n"
                        f"{log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.1)


def _iterations(out: Path) -> list:
    with open(out / "metrics.json") as f:
        return [json.loads(line)["iteration"] for line in f if "total_loss" in line]


def test_second_training_into_one_folder_is_refused(tiny_world, tmp_path):
    out = tmp_path / "run"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start(tiny_world, _argv(out, seed=1), first_log)
    try:
        _wait_for(out / (FOLDER_LOCK_NAME + HOLDER_SUFFIX), first, first_log)
        first.send_signal(signal.SIGSTOP)  # holds the lock, mid-run, while the second one starts

        # In this process: the refusal comes before any model or data is built.
        args = default_argument_parser().parse_args(_argv(out, seed=2))
        t0 = time.perf_counter()
        with pytest.raises(OutputLockedError, match=f"pid {first.pid} .*train_net.py") as e:
            load_train_net().main(args)
        assert time.perf_counter() - t0 < 5.0, time.perf_counter() - t0
        assert str(out) in str(e.value) and "\n" not in str(e.value), str(e.value)

        # As a command: one line naming the holder, exit status 2, no traceback.
        t0 = time.perf_counter()
        second = _start(tiny_world, _argv(out, seed=2), second_log)
        err = _finish(second, second_log, timeout=120)
        print(f"second job refused after {time.perf_counter() - t0:.1f} s (process start included)")
        assert second.returncode == 2, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        lines = [line for line in err.splitlines() if "error:" in line]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0], err[-3000:]
        assert lines[0].startswith("tools/train_net.py: error: output folder"), lines
    finally:
        first.send_signal(signal.SIGCONT)
    err = _finish(first, first_log)
    assert first.returncode == 0, err[-3000:]

    # The first run's files are its own: every iteration once, its config and log only.
    assert _iterations(out) == list(range(MAX_ITER)), _iterations(out)
    assert (out / "model_final.pth").is_file()
    assert "SEED: 1" in (out / "config.yaml").read_text()
    log = (out / "log.txt").read_text()
    assert "'SEED', '2'" not in log and "'SEED', '1'" in log, log[:2000]
    assert not (out / (FOLDER_LOCK_NAME + HOLDER_SUFFIX)).exists()  # removed with the lock


def test_sigkilled_run_resumes(tiny_world, tmp_path):
    out = tmp_path / "run"
    # Long enough to be killed mid-run, after its first checkpoint (iteration 2).
    first_log, resumed_log = tmp_path / "first.log", tmp_path / "resumed.log"
    first = _start(tiny_world, _argv(out, seed=1, max_iter=1000), first_log)
    try:
        _wait_for(out / "last_checkpoint", first, first_log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    holder = out / (FOLDER_LOCK_NAME + HOLDER_SUFFIX)
    assert json.loads(holder.read_text())["pid"] == first.pid  # left behind by the killed run

    resumed = _start(tiny_world, _argv(out, 1, "--resume", max_iter=6), resumed_log)
    err = _finish(resumed, resumed_log)
    assert resumed.returncode == 0, err[-3000:]
    assert "Starting training from iteration 3" in err, err[-3000:]
    assert (out / "model_final.pth").is_file()
    assert _iterations(out)[-1] == 5, _iterations(out)
    assert not holder.exists()
