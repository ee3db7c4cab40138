"""
One job per output (``acar_d2/utils/output_lock.py``, docs/SAFETY.md): the lock itself (refused at
once with the holder's pid and command line, released by the death of its holder, a holder file
left by a dead process not taken for a live one), and every long tool that writes a folder or a
file taking it before its work (checked in-process: a held lock refuses the tool's ``main``).
The two-trainings end-to-end case is ``tests/engine/test_output_lock.py``.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acar_d2.utils.output_lock import (HOLDER_SUFFIX, OutputLockedError, file_lock_path,
                                       folder_lock_path, hold_output_file, hold_output_folder)

from ..utils.demo_helpers import BOXES_CONFIG, load_tool

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\n"
        "from acar_d2.utils.output_lock import hold_output_folder\n"
        "with hold_output_folder(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n")


def _holder_process(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_refused_at_once_with_pid_and_command(tmp_path):
    proc = _holder_process(tmp_path / "out")
    try:
        t0 = time.perf_counter()
        with pytest.raises(OutputLockedError) as e:
            with hold_output_folder(str(tmp_path / "out")):
                pass
        assert time.perf_counter() - t0 < 1.0
        msg = str(e.value)
        assert f"pid {proc.pid} " in msg, msg
        assert f"output folder {tmp_path / 'out'} is in use by another job" in msg, msg
        assert sys.executable in msg and "\n" not in msg, msg
    finally:
        proc.kill()
        proc.wait()
    # Killed with SIGKILL: the OS lock is gone, its holder file stays and is not a live holder.
    holder = Path(folder_lock_path(str(tmp_path / "out")) + HOLDER_SUFFIX)
    assert json.loads(holder.read_text())["pid"] == proc.pid
    with hold_output_folder(str(tmp_path / "out")):
        assert json.loads(holder.read_text())["pid"] == os.getpid()
    assert not holder.exists()


def test_stale_holder_file_is_not_reported_as_the_holder(tmp_path):
    """A holder file naming a dead process, while the OS lock is held by a process that has not
    written its own yet: the refusal does not name the dead pid."""
    lock = file_lock_path(str(tmp_path / "out.mp4"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    import socket

    from filelock import FileLock

    held = FileLock(lock)
    held.acquire(timeout=0)  # the OS lock alone, as in the moment before the holder file
    try:
        Path(lock + HOLDER_SUFFIX).write_text(json.dumps(
            {"pid": dead_pid, "host": socket.gethostname(), "command": "old run"}))
        with pytest.raises(OutputLockedError) as e:
            with hold_output_file(str(tmp_path / "out.mp4"), "--output"):
                pass
        assert f"pid {dead_pid}" not in str(e.value) and "old run" not in str(e.value)
        assert "no live holder" in str(e.value), str(e.value)
    finally:
        held.release()


def test_sigkill_releases_the_lock(tmp_path):
    proc = _holder_process(tmp_path / "out")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with hold_output_folder(str(tmp_path / "out")):
        pass


def _refused(call, lock_path: str):
    """``call()`` while this process holds ``lock_path``: refused, naming this pid."""
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()} "):
        from acar_d2.utils.output_lock import output_lock

        with output_lock(lock_path, "test"):
            call()


def test_demo_holds_its_output(tmp_path):
    demo = load_tool("demo")
    out = tmp_path / "out.mp4"
    video = tmp_path / "in.mp4"
    video.write_bytes(b"")
    _refused(lambda: demo.main(["--config-file", BOXES_CONFIG, "--input", str(video),
                                "--output", str(out), "--random-weights"]),
             file_lock_path(str(out)))
    assert not out.exists()


def test_extract_feature_bank_holds_its_folder(tmp_path):
    tool = load_tool("extract_feature_bank")
    bank = tmp_path / "bank"
    _refused(lambda: tool.run(["--config-file", BOXES_CONFIG, "--kind", "lfb",
                               "--output", str(bank), "MODEL.DEVICE", "cpu"]),
             folder_lock_path(str(bank)))
    assert not (bank / "bank_record.json").exists()


def test_dump_proposals_holds_its_outputs(tmp_path):
    tool = load_tool("dump_proposals")
    csv = tmp_path / "boxes.csv"
    _refused(lambda: tool.main(["--config-file", BOXES_CONFIG, "--video", "a.mp4",
                                "--csv", str(csv)]), file_lock_path(str(csv)))
    assert not Path(str(csv) + ".work").exists()


@pytest.mark.parametrize("name,argv", [
    ("benchmark_relations", []),
    ("benchmark_feature_bank", []),
    ("benchmark_training_stability", []),
    ("benchmark_loss_saturation", ["--weights", "w.pth"]),
])
def test_benchmarks_hold_their_folder(name, argv, tmp_path, monkeypatch):
    monkeypatch.setenv("ACAR_DATASETS", str(tmp_path / "datasets"))
    tool = load_tool(name)
    out = tmp_path / "bench"
    _refused(lambda: tool.main(["--output", str(out), "--datasets", str(tmp_path / "datasets")]
                               if name != "benchmark_loss_saturation"
                               else ["--output", str(out), *argv]),
             folder_lock_path(str(out)))
    assert sorted(p.name for p in out.iterdir()) == [".acar_d2.lock"]  # nothing else written


def test_quickstart_holds_its_output(tmp_path, monkeypatch):
    """Beside the folder (``<output>.lock``), which ``--clean`` renames."""
    monkeypatch.setenv("ACAR_DATASETS", str(tmp_path / "datasets"))  # main() sets it
    tool = load_tool("quickstart")
    out = tmp_path / "qs"
    _refused(lambda: tool.main(["--output", str(out), "--datasets", str(tmp_path / "datasets")]),
             file_lock_path(str(out)))
    assert not out.exists() and not (tmp_path / "datasets").exists()
