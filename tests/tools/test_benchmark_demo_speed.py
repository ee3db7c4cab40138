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


def test_key_frame_flops_count_the_whole_key_frame():
    """The limit's FLOPs: the whole detector (ResNet-FPN + RPN + box head) and the action head are
    counted, not only the two backbones (the earlier tables' count)."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    from acar_d2.engine import VideoActionPredictor

    tool = _tool()
    predictor = VideoActionPredictor(tool.model_cfg(tool.MODELS["r50"][1], path="fp32"),
                                     allow_random_weights=True)
    fl = tool.key_frame_gflops(predictor, tool.bikes())
    # the detector's ResNet-FPN alone, as the earlier tables counted it (567 x 1333 -> 576 x 1344)
    fpn = FlopCountAnalysis(predictor.model.person_detector.backbone, torch.zeros(1, 3, 576, 1344))
    fpn.unsupported_ops_warnings(False)
    assert abs(fl["detector_backbone"] - fpn.total() / 1e9) < 0.02 * fl["detector_backbone"], fl
    # the RPN's 3x3 convolution on every FPN level (~38 GFLOPs) comes on top of it
    assert fl["detector"] - fl["detector_backbone"] > 30, fl
    # 5 actors through the ACAR head: the reduction, the relation convolutions and HR2O
    assert 5 < fl["head"] < 50 and 200 < fl["backbone"] < 260, fl
