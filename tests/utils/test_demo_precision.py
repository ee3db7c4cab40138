"""tools/demo.py --precision: the flag sets MODEL.INFERENCE.PRECISION, bf16 is refused in one line
(and nothing written) on a CPU without native bf16, and the joint detector + action model runs
under bf16 with float32 outputs."""
import torch
from detectron2.modeling import build_model

import acar_d2.modeling.inference as inference
from acar_d2.engine import setup_cfg
from acar_d2.modeling.inference import prepare_for_inference
from tests.modeling.test_meta_arch_detector import make_input
from tests.utils.demo_helpers import DETECTOR_CONFIG, DETECTOR_OPTS, write_test_video
from tests.utils.test_demo_cli import demo, run_demo


def test_precision_flag_sets_the_config_key():
    args = demo.parse_args(["--input", "v.mp4", "--output", "o.mp4", "--precision", "bf16",
                            "MODEL.DEVICE", "cpu"])
    assert args.opts == ["MODEL.DEVICE", "cpu", "MODEL.INFERENCE.PRECISION", "bf16"]
    assert demo.parse_args(["--input", "v.mp4", "--output", "o.mp4"]).opts == []


def test_bf16_refused_without_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "_cpu_flags", lambda: {"avx2", "avx512f"})
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=8, fps=8)
    out = tmp_path / "out.mp4"
    code, _ = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output", out,
                       "--random-weights", "--precision", "bf16", *DETECTOR_OPTS)
    assert code == ("MODEL.INFERENCE.PRECISION bf16: this CPU has no native bf16 (no avx512_bf16 "
                    "/ amx_bf16 in /proc/cpuinfo), where bf16 is emulated and slower than fp32; "
                    "use fp32"), code
    assert not out.exists()


def test_detector_and_action_model_run_in_bf16(monkeypatch):
    monkeypatch.setattr(inference, "_cpu_flags", lambda: {"avx512_bf16"})
    cfg = setup_cfg(DETECTOR_CONFIG, DETECTOR_OPTS)  # actor-box threshold 0: every detection
    torch.manual_seed(0)
    model = build_model(cfg)
    seen = []
    model.person_detector.backbone.register_forward_hook(
        lambda m, a, out: seen.append((torch.is_autocast_enabled("cpu"),
                                       next(iter(out.values())).dtype)))
    prepare_for_inference(model, precision="bf16")
    x = make_input(model, training=False)
    with torch.no_grad():
        inst = model([x])[0]["instances"]
    assert seen == [(True, torch.bfloat16)]  # the detector ran under the same autocast
    assert len(inst) > 0
    for name in ("pred_boxes", "scores", "action_scores", "action_logits"):
        v = inst.get(name)
        v = v.tensor if hasattr(v, "tensor") else v
        assert v.dtype == torch.float32 and torch.isfinite(v).all(), name
