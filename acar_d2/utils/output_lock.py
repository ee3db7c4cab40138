"""
One job per output: a long job (training, the demo, a bank extraction, a proposal dump, a
benchmark) holds a lock on the folder or file it writes, and a second job started on the same
output is refused at once instead of interleaving its files with the first one's.

The lock is an OS lock (``filelock.FileLock``: ``fcntl.flock`` on Unix), which the kernel releases
when its process ends in any way, SIGKILL included: a killed run leaves no lock that blocks
``--resume``. Beside the lock file, ``<lock>.holder.json`` names the holder (pid, host, command
line, start time) for the refusal message; it is read only while the OS lock is held by someone
else, so the file a killed run leaves behind is never taken for a live holder.

    with hold_output_folder(cfg.OUTPUT_DIR):     # OUTPUT_DIR/.acar_d2.lock
        trainer.train()
    with hold_output_file(args.output, "--output"):  # <output>.lock
        annotate(...)
"""
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from filelock import FileLock, Timeout

FOLDER_LOCK_NAME = ".acar_d2.lock"
HOLDER_SUFFIX = ".holder.json"
# A holder that has just taken the lock writes its file a moment later: how long a refused job
# waits for it before naming the holder "unknown".
_HOLDER_WAIT_S = 1.0


class OutputLockedError(RuntimeError):
    """Another live process holds the lock of an output folder or file."""


def folder_lock_path(folder: str) -> str:
    """The lock file of an output folder: ``<folder>/.acar_d2.lock``."""
    return os.path.join(folder, FOLDER_LOCK_NAME)


def file_lock_path(path: str) -> str:
    """The lock file of an output file: ``<path>.lock`` beside it."""
    return path + ".lock"


def hold_output_folder(folder: str):
    """:func:`output_lock` on ``folder`` (created if missing)."""
    return output_lock(folder_lock_path(folder), f"output folder {folder}")


def hold_output_file(path: str, flag: str = "output"):
    """:func:`output_lock` on the output file ``path`` (given as ``flag``, e.g. ``--output``)."""
    return output_lock(file_lock_path(path), f"{flag} {path}")


@contextmanager
def output_lock(lock_path: str, what: str) -> Iterator[None]:
    """
    Hold the OS lock ``lock_path`` for the body; never waits.

    Args:
        lock_path (str): the lock file (its folder is created if missing).
        what (str): the output, as the refusal names it ("output folder out/x").

    Raises:
        OutputLockedError: another process holds the lock; one line naming ``what``, the
            holder's pid and command line.
    """
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputLockedError(_refusal(lock_path, what)) from None
    holder = lock_path + HOLDER_SUFFIX
    try:
        _write_holder(holder)
        yield
    finally:
        try:
            os.remove(holder)
        except FileNotFoundError:
            pass
        lock.release()


def _write_holder(path: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join([sys.executable] + sys.argv),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(path + ".tmp", path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def read_holder(lock_path: str) -> Optional[dict]:
    """The holder file of ``lock_path`` if it names a live process (any process on another
    host), else None (no file, unreadable, or left by a process that died)."""
    try:
        with open(lock_path + HOLDER_SUFFIX) as f:
            info = json.load(f)
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("host") == socket.gethostname() and not _pid_alive(pid):
        return None
    return info


def _refusal(lock_path: str, what: str) -> str:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    info = read_holder(lock_path)
    while info is None and time.monotonic() < deadline:
        time.sleep(0.05)
        info = read_holder(lock_path)
    if info is None:
        # e.g. the data-loader workers of a killed run, which share its lock until they exit
        holder = (f"no live holder in {lock_path + HOLDER_SUFFIX}: if a run there was just "
                  "killed, its worker processes may still be exiting; retry in a few seconds")
    else:
        holder = (f"pid {info['pid']} on {info.get('host', '?')} since "
                  f"{info.get('started', '?')}: {info.get('command', '?')}")
    return (f"{what} is in use by another job ({holder}); wait for it to end or choose another "
            f"output (lock: {lock_path})")
