"""tools/benchmarks/benchmark_demo_speed.py ``--interleaved``: the side-by-side table's medians and ratios to the
first model (the timing itself is a benchmark, not a test)."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_demo_speed", REPO / "tools" / "benchmarks" / "benchmark_demo_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_interleaved_table_gives_median_ratio_to_the_first_model():
    tool = _tool()

    def row(total):
        return dict({s: 1.0 for s in tool.STAGES}, write=2.0, total=total)

    results = {"r50": {"runs": [row(4000), row(5000), row(6000)], "ratio": [1.0, 1.0, 1.0]},
               "vit_l": {"runs": [row(40000), row(60000), row(45000)], "ratio": [10.0, 12.0, 7.5]}}
    lines = tool.interleaved_table(results).splitlines()
    assert lines[0].endswith("| total / r50 |") and len(lines) == 4, lines
    assert "| 5000 (4000-6000) | 1.0 (1.0-1.0) |" in lines[2], lines[2]
    assert lines[3].startswith("| VideoMAE ViT-L") and "| 45000 (40000-60000) | 10.0 (7.5-12.0) |" in lines[3], lines[3]


@pytest.mark.parametrize("key", ["vit_b", "vit_l"])
def test_vit_models_use_the_videomae_ava_configs(key):
    tool = _tool()
    name, config = tool.MODELS[key]
    assert (REPO / config).is_file() and f"VIT_{key[-1].upper()}" in config and "ViT" in name
