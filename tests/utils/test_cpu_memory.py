"""``acar_d2.utils.cpu_memory``: freed CPU memory kept for the next forward (process-wide, so
each case runs in a fresh interpreter)."""
import json
import subprocess
import sys

import pytest

from acar_d2.utils import cpu_memory

# Allocate, touch and free a 64 MB tensor (above glibc's largest mmap threshold, like SlowFast's
# res2 activations) 16 times, with a small allocation while it lives (as a forward makes); report
# the minor page faults of the last three rounds. Kept memory reaches its steady state within the
# first rounds (freed blocks that the small ones split from the heap's top fill the kept memory).
PROBE = """
import importlib.util, json, resource, sys
import torch
spec = importlib.util.spec_from_file_location("cpu_memory", sys.argv[2])  # not the whole package
cpu_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_memory)
keep_freed_memory, freed_memory_kept = cpu_memory.keep_freed_memory, cpu_memory.freed_memory_kept
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20).fill_(1.0)
    small = str(x.data_ptr())
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "flag": freed_memory_kept(), "faults": faults[-3:]}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, cpu_memory.__file__], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(cpu_memory._glibc() is None, reason="the setting needs glibc (Linux)")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _probe("default"), _probe("keep")
    pages = (64 << 20) // 4096
    # glibc's defaults: every round maps the 64 MB afresh and faults each 4 KB page in
    assert not default["kept"] and not default["flag"]
    assert min(default["faults"]) > 0.9 * pages, default
    # kept: the heap already holds the pages from the first round
    assert kept["kept"] and kept["flag"]
    assert max(kept["faults"]) < 0.05 * pages, kept


def test_without_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_glibc", lambda: None)
    monkeypatch.setattr(cpu_memory, "_KEPT", None)
    assert cpu_memory.keep_freed_memory() is False and not cpu_memory.freed_memory_kept()
