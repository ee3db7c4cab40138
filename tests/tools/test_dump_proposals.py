"""tools/dump_proposals.py: detector boxes -> PySlowFast CSV / dense-proposal pickle -> loaders."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model

from acar_d2.data.datasets.ava import read_predicted_boxes_csv, register_ava_instances
from acar_d2.data.file_readers import read_dense_proposals
from acar_d2.config import load_detector_config

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml"
CONFIG = "configs/Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml"


def _tool():
    spec = importlib.util.spec_from_file_location("dump_proposals", REPO / "tools" / "dump_proposals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "aca_world"
    subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out", str(out),
                    "--videos", "3", "--duration", "4", "--no-videos"],
                   check=True, capture_output=True, cwd=REPO)
    return out


def _register(world: Path, name: str, proposals: str):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    info = json.loads((world / "world.json").read_text())
    ann = world / "annotations"
    register_ava_instances(
        name, {}, str(ann / "train.csv"), str(ann / "label_map.pbtxt"),
        frames=str(world / "frames"), frame_list=str(world / "frame_lists" / "train.csv"),
        exclusions=str(ann / "train_excluded_timestamps.csv"), proposals=proposals,
        fps=info["fps"], first_second=info.get("first_second", 0),
    )


def test_dump_round_trip_and_resume(world, tmp_path):
    tool = _tool()
    _register(world, "dump_world_train", str(world / "annotations" / "dense_proposals_train.pkl"))
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(load_detector_config(TINY)), save_dir=str(tmp_path)).save("det")
    csv, pkl = str(tmp_path / "boxes.csv"), str(tmp_path / "boxes.pkl")
    args = ["--config-file", CONFIG, "--dataset", "dump_world_train", "--csv", csv, "--pkl", pkl,
            "--score-thresh", "0.3", "MODEL.DEVICE", "cpu",
            "MODEL.PERSON_DETECTOR.WEIGHTS", str(tmp_path / "det.pth")]
    done, skipped = tool.run(tool.parse_args(args))
    dicts = DatasetCatalog.get("dump_world_train")
    videos = {d["video_id"] for d in dicts}
    assert (done, skipped) == (len(videos), 0)
    dumped = read_dense_proposals(pkl)
    assert set(dumped) == {(d["video_id"], d["timestamp"]) for d in dicts}
    assert sum(len(v) for v in dumped.values()) > 0
    from_csv = read_predicted_boxes_csv(csv)
    for key, arr in dumped.items():
        if len(arr):
            np.testing.assert_allclose(from_csv[key], arr, atol=1e-5)
    # through the dataset loader: same boxes (px) within 1e-3 of the normalized values
    for fmt, path in (("csv", csv), ("pkl", pkl)):
        _register(world, f"dump_world_{fmt}", path)
        for d in DatasetCatalog.get(f"dump_world_{fmt}"):
            arr = dumped[(d["video_id"], d["timestamp"])]
            scale = np.array([d["width"], d["height"]] * 2, np.float32)
            got = np.asarray(d["proposals"]["boxes"]).reshape(-1, 4) / scale
            np.testing.assert_allclose(got, arr[:, :4], atol=1e-3)
            np.testing.assert_allclose(d["proposals"]["scores"], arr[:, 4], atol=1e-3)
    # the key frames' boxes are the detector's own on the key frame (spot check one)
    assert all(((v[:, 4] >= 0.3) & (v[:, 4] <= 1)).all() for v in dumped.values())
    # outputs are never overwritten without --overwrite
    with pytest.raises(FileExistsError, match="--overwrite"):
        tool.run(tool.parse_args(args))
    # resumable: finished videos are skipped, a missing one is recomputed identically
    work = Path(csv + ".work")
    first = sorted(work.glob("*.pkl"))[0]
    first.unlink()
    done, skipped = tool.run(tool.parse_args(["--overwrite"] + args))
    assert (done, skipped) == (1, len(videos) - 1)
    again = read_dense_proposals(pkl)
    assert set(again) == set(dumped)
    for k in dumped:
        np.testing.assert_allclose(again[k], dumped[k], atol=1e-6)


def test_dump_video_files_every_second(tmp_path):
    """--video: key frames at 0, 1, 2 s of an 8 fps mp4 (frames 0, 8, 16), the boxes the detector
    finds on those decoded frames, keyed by the file's stem."""
    from acar_d2.checkpoint import (ACARCheckpointer, CheckpointMismatchError,
                                    load_person_detector_weights)
    from acar_d2.engine import setup_cfg
    from acar_d2.modeling.person_detector import build_person_detector
    from tests.utils.demo_helpers import decode, write_test_video

    tool = _tool()
    video = tmp_path / "walk.mp4"
    write_test_video(str(video), n=24, fps=8)
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(load_detector_config(TINY)), save_dir=str(tmp_path)).save("det")
    pkl = str(tmp_path / "boxes.pkl")
    opts = ["MODEL.DEVICE", "cpu", "MODEL.PERSON_DETECTOR.WEIGHTS", str(tmp_path / "det.pth")]
    done, skipped = tool.run(tool.parse_args(["--config-file", CONFIG, "--video", str(video),
                                              "--every", "1", "--pkl", pkl, "--score-thresh", "0.0",
                                              *opts]))
    assert (done, skipped) == (1, 0)
    dumped = read_dense_proposals(pkl)
    assert sorted(dumped) == [("walk", 0), ("walk", 1), ("walk", 2)]
    assert all(len(v) > 0 for v in dumped.values())
    detector = build_person_detector(setup_cfg(CONFIG, opts)).eval()  # built without weights
    load_person_detector_weights(detector, str(tmp_path / "det.pth"))
    frames = decode(video)
    with torch.no_grad():
        own = tool.detect_video(detector, [("walk", t, frames[8 * t]) for t in range(3)], 0.0)
    for t in range(3):
        np.testing.assert_allclose(dumped[("walk", t)], own[f"walk,{t:04d}"], atol=1e-5)

    # MODEL.WEIGHTS of an ACARNet checkpoint: its detector; one without detector keys is refused
    cfg = setup_cfg(CONFIG, opts)
    model = build_model(cfg)
    ACARCheckpointer.from_config(model, cfg, purpose="train").load("")  # det.pth into the detector
    state = model.state_dict()
    torch.save({"model": state}, tmp_path / "acar.pth")
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("person_detector.")}},
               tmp_path / "no_detector.pth")
    base = ["--config-file", CONFIG, "--video", str(video), "--score-thresh", "0.0"]
    tool.run(tool.parse_args(base + ["--pkl", str(tmp_path / "b2.pkl"), "MODEL.DEVICE", "cpu",
                                     "MODEL.WEIGHTS", str(tmp_path / "acar.pth")]))
    again = read_dense_proposals(str(tmp_path / "b2.pkl"))
    for t in range(3):
        np.testing.assert_allclose(again[("walk", t)], dumped[("walk", t)], atol=1e-5)
    with pytest.raises(CheckpointMismatchError, match="person_detector"):
        tool.run(tool.parse_args(base + ["--pkl", str(tmp_path / "b3.pkl"), "MODEL.DEVICE",
                                         "cpu", "MODEL.WEIGHTS", str(tmp_path / "no_detector.pth")]))
