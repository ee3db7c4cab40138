"""
tools/export_model.py + tools/demo.py --engine onnxruntime / openvino end to end on real footage (scikit-video's
bikes.mp4, 640x272, 25 fps, 250 frames) with a tiny seeded ACAR model and its tiny Faster R-CNN person
detector (configs/Synthetic/acar_detector_*, random weights: this checks the engine, not accuracy):
both ONNX files are written and checked, and the demo's detections and action scores equal those of
the PyTorch engine on every key frame.
"""
import json
import os

import numpy as np
import pytest
import skvideo

from acar_d2.modeling.inference import cpu_has_native_bf16
from demo.demo import main as demo_main
from tests.utils.demo_helpers import DETECTOR_CONFIG, decode, load_tool, saved_model

BIKES = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
# The joint config at CPU size, ACAR head (HR2O depth 2) kept; every detection of the untrained
# detector is an actor (its top 20).
OPTS = ["MODEL.DEVICE", "cpu", "INPUT.CLIP.NUM_FRAMES", "4", "INPUT.CLIP.SHORT_SIDE", "64",
        "MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.0",
        "MODEL.SLOWFAST.FUSION_KERNEL_SIZE", "3", "MODEL.ACTION_HEAD.REDUCE_DIM", "16",
        "MODEL.ACTION_HEAD.HIDDEN_DIM", "8"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(weights, export folder, the export's printed lines) of the tiny joint model."""
    tmp = tmp_path_factory.mktemp("onnx_demo")
    weights = saved_model(DETECTOR_CONFIG, OPTS, tmp)
    folder = tmp / "exported"
    export_main = load_tool("export_model").main
    assert export_main(["--config-file", DETECTOR_CONFIG, "--input", BIKES, "--output", str(folder),
                        *OPTS, "MODEL.WEIGHTS", weights]) == 0
    return weights, folder


def _demo(tmp_path, weights, name, *engine):
    out = tmp_path / f"{name}.mp4"
    js = tmp_path / f"{name}.json"
    assert demo_main(["--config-file", DETECTOR_CONFIG, "--input", BIKES, "--output", str(out),
                      "--json", str(js), "--key-frame-stride", "2", "--no-progress", *engine,
                      *OPTS, "MODEL.WEIGHTS", weights]) == 0
    return out, json.loads(js.read_text())


def test_export_writes_both_models_and_checks_them(exported):
    weights, folder = exported
    manifest = json.loads((folder / "export.json").read_text())
    # bikes.mp4 272x640 -> short side 64: 64x150, padded to a 150x150 square by this config.
    assert manifest["action_model"]["clip_shape"] == [3, 4, 150, 150]
    assert manifest["action_model"]["valid_size"] == [64, 150]
    assert manifest["frame_size"] == [272, 640]
    assert manifest["person_detector"]["file"] == "person_detector.onnx"
    check = manifest["check"]
    assert check["action_model"]["logits"]["max_abs_diff"] < 1e-4
    assert check["action_model"]["logits_fewer_boxes"]["num_boxes"] == 1
    assert check["person_detector"]["num_detections"] == 20
    assert check["person_detector"]["max_abs_diff_box_px"] < 1e-2
    assert check["person_detector"]["max_abs_diff_score"] < 1e-4
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        load_tool("export_model").main(["--config-file", DETECTOR_CONFIG, "--frame-size", "272",
                                        "640", "--output", str(folder), *OPTS,
                                        "MODEL.WEIGHTS", weights])


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_demo_exported_engine_equals_pytorch_engine(exported, tmp_path, engine):
    weights, folder = exported
    _, ref = _demo(tmp_path, weights, "pytorch")
    video, got = _demo(tmp_path, weights, engine, "--engine", engine, "--onnx", str(folder))
    assert got["model"]["engine"] == engine and got["complete"]
    assert len(decode(video)) == 250
    assert [k["frame_index"] for k in got["key_frames"]] == [0, 50, 100, 150, 200]
    assert len(got["key_frames"]) == len(ref["key_frames"])
    for k_ref, k_got in zip(ref["key_frames"], got["key_frames"]):
        assert len(k_got["actors"]) == len(k_ref["actors"]) == 20
        for a_ref, a_got in zip(k_ref["actors"], k_got["actors"]):
            np.testing.assert_allclose(a_got["box"], a_ref["box"], atol=1e-2)
            np.testing.assert_allclose(a_got["person_score"], a_ref["person_score"], atol=1e-4)
            np.testing.assert_allclose(a_got["scores"], a_ref["scores"], atol=1e-4)
            assert a_got["track_id"] == a_ref["track_id"]


@pytest.mark.parametrize("flags,message", [
    (["--engine", "onnxruntime"], "--engine onnxruntime needs --onnx DIR"),
    (["--onnx", "somewhere"], "--onnx is read by --engine onnxruntime or openvino"),
    (["--engine", "openvino"], "--engine openvino needs --onnx DIR"),
    (["--engine", "onnxruntime", "--onnx", "TMP", "--precision", "bf16"],
     "MODEL.INFERENCE.PRECISION bf16: the onnxruntime engine runs the exported float32 graph"),
    (["--engine", "onnxruntime", "--onnx", "no/such/folder"], "--onnx: folder not found"),
])
def test_demo_engine_flags_are_checked(tmp_path, flags, message):
    flags = [str(tmp_path) if f == "TMP" else f for f in flags]
    with pytest.raises(SystemExit, match=message):
        demo_main(["--config-file", DETECTOR_CONFIG, "--input", BIKES, "--output",
                   str(tmp_path / "x.mp4"), *flags, *OPTS])


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 needs a CPU with native bf16 "
                    "(avx512_bf16 / amx_bf16); elsewhere --precision bf16 is refused")
def test_demo_openvino_bf16_runs_in_bf16(exported, tmp_path):
    """``--engine openvino --precision bf16``: both exported files in bf16, end to end; the
    action scores move (really bf16) but stay close to the fp32 PyTorch engine's."""
    weights, folder = exported
    _, ref = _demo(tmp_path, weights, "pytorch")
    video, got = _demo(tmp_path, weights, "openvino_bf16", "--engine", "openvino", "--onnx",
                       str(folder), "--precision", "bf16")
    assert got["complete"] and len(decode(video)) == 250
    assert len(got["key_frames"]) == len(ref["key_frames"]) == 5
    moved = 0.0
    for k_ref, k_got in zip(ref["key_frames"], got["key_frames"]):
        assert len(k_got["actors"]) == len(k_ref["actors"])
        for a_ref, a_got in zip(k_ref["actors"], k_got["actors"]):
            diff = np.abs(np.subtract(a_got["scores"], a_ref["scores"])).max()
            moved = max(moved, float(diff))
    print(f"OpenVINO bf16 demo: max action-score difference from PyTorch fp32 {moved:.2e}")
    assert 1e-5 < moved < 0.05, moved
