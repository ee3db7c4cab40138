"""tools/demo.py end to end: the annotated video keeps every frame, size and rate; the JSON follows
the documented schema; the CSV scores through the evaluator CLI; a thresholds file changes the
labels; broken inputs give clear errors, keep what was written and never replace an input."""
import contextlib
import hashlib
import io
import json
import re

import jsonschema
import numpy as np
import pytest

from ava_eval.cli import main as evaluate_main
from demo.outputs import DEMO_JSON_SCHEMA
from tests.utils.demo_helpers import (BOXES_CONFIG, BOXES_OPTS, DETECTOR_CONFIG, DETECTOR_OPTS,
                                      REPO, decode, load_tool, saved_model, video_rate,
                                      write_test_video)
from tests.utils.test_video_source import truncated_video

demo = load_tool("demo")
NAMES = ["stand", "sit", "walk", "lie", "carry", "drive", "present", "ride", "talk_to", "listen"]


def run_demo(*args):
    """main(argv) -> (exit status or the SystemExit message, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = demo.main(["--no-progress"] + [str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    """One run of the joint (detector + action) model on a 3-second 160x120 video at 8 fps."""
    tmp = tmp_path_factory.mktemp("det")
    weights = saved_model(DETECTOR_CONFIG, DETECTOR_OPTS, tmp)
    video = tmp / "walk.mp4"
    write_test_video(video, n=24, fps=8)
    out = {"mp4": tmp / "out.mp4", "json": tmp / "out.json", "csv": tmp / "out.csv"}
    code, err = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output", out["mp4"],
                         "--json", out["json"], "--csv", out["csv"], *DETECTOR_OPTS,
                         "MODEL.WEIGHTS", weights)
    assert code == 0, err
    return dict(out, video=video, weights=weights)


@pytest.fixture(scope="module")
def boxes_weights(tmp_path_factory):
    return saved_model(BOXES_CONFIG, BOXES_OPTS, tmp_path_factory.mktemp("boxes"))


def test_video_has_every_frame_at_the_input_size_and_rate(detector_run):
    frames, original = decode(detector_run["mp4"]), decode(detector_run["video"])
    assert len(frames) == len(original) == 24
    assert frames[0].shape == original[0].shape == (120, 160, 3)
    assert video_rate(detector_run["mp4"]) == video_rate(detector_run["video"]) == 8.0
    # boxes are drawn: the annotated frames differ from the input
    assert np.abs(frames[5].astype(int) - original[5]).mean() > 1


def test_json_follows_the_documented_schema(detector_run):
    doc = json.loads(detector_run["json"].read_text())
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert (doc["width"], doc["height"], doc["fps"], doc["num_frames"]) == (160, 120, 8.0, 24)
    assert doc["complete"] is True and doc["error"] is None and doc["class_names"] == NAMES
    assert [(k["time"], k["frame_index"], k["timestamp"]) for k in doc["key_frames"]] == \
        [(0.0, 0, 0), (1.0, 8, 1), (2.0, 16, 2)]
    actors = [a for k in doc["key_frames"] for a in k["actors"]]
    assert actors and all(len(a["scores"]) == 10 for a in actors)
    assert all(a["labels"] == [NAMES[i] for i in np.argsort(-np.array(a["scores"]), kind="stable")
                               if a["scores"][i] >= 0.3] for a in actors)
    assert all(a["track_id"] >= 1 for a in actors)
    # the schema rejects what it should (it is not vacuous)
    bad = json.loads(json.dumps(doc))
    bad["key_frames"][0]["actors"][0]["person_score"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, DEMO_JSON_SCHEMA)


def test_demo_doc_documents_the_schema_the_writer_follows():
    text = (REPO / "docs" / "DEMO.md").read_text()
    block = re.search(r"<!-- demo-json-schema -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert block, "docs/DEMO.md: no JSON schema block after <!-- demo-json-schema -->"
    assert json.loads(block.group(1)) == DEMO_JSON_SCHEMA


def test_csv_rows_match_the_json(detector_run):
    doc = json.loads(detector_run["json"].read_text())
    rows = [line.split(",") for line in detector_run["csv"].read_text().splitlines()]
    n_actors = sum(len(k["actors"]) for k in doc["key_frames"])
    assert len(rows) == n_actors * 10
    first = doc["key_frames"][0]["actors"][0]
    r = rows[0]
    assert r[:2] == ["walk", "0000"] and r[6] == "1"
    assert np.allclose([float(v) for v in r[2:6]],
                       np.array(first["box"]) / [160, 120, 160, 120], atol=6e-4)
    assert float(r[7]) == pytest.approx(first["scores"][0], abs=1e-6)


def label_map(path, names):
    path.write_text("".join(f'item {{\n  name: "{n}"\n  id: {i + 1}\n}}\n' for i, n in enumerate(names)))


def evaluate(gt, det, labels):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = evaluate_main(["--groundtruth", str(gt), "--detections", str(det), "--labelmap",
                              str(labels)])
    assert code == 0, out.getvalue()
    m = re.search(r"frame-mAP@0.5(IOU| \(%\)): (\S+)", out.getvalue())
    assert m, out.getvalue()
    return float(m.group(2)) / (100.0 if m.group(1) == " (%)" else 1.0)


def boxes_csv(path, video_id="walk"):
    rows = {0: [(0.05, 0.2, 0.3, 0.8)], 1: [(0.2, 0.25, 0.45, 0.75), (0.6, 0.3, 0.8, 0.9)],
            2: [(0.4, 0.2, 0.6, 0.8)]}
    path.write_text("".join(f"{video_id},{t},{b[0]},{b[1]},{b[2]},{b[3]},,0.9\n"
                            for t, bs in rows.items() for b in bs))


def test_csv_scores_through_the_evaluator_cli(tmp_path, boxes_weights):
    """Ground truth = every predicted box with every class: mAP 1 exactly; boxes moved: mAP 0."""
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=24, fps=8)
    boxes_csv(tmp_path / "boxes.csv")
    out = tmp_path / "out.csv"
    code, err = run_demo("--config-file", BOXES_CONFIG, "--input", video, "--boxes",
                         tmp_path / "boxes.csv", "--output", tmp_path / "out.mp4", "--csv", out,
                         "--json", tmp_path / "out.json", *BOXES_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert code == 0, err
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [k["timestamp"] for k in doc["key_frames"]] == [0, 1, 2]
    label_map(tmp_path / "labels.pbtxt", NAMES)
    for shift, expected in ((0.0, 1.0), (0.5, 0.0)):
        gt = tmp_path / f"gt_{shift}.csv"
        with open(gt, "w") as f:
            for k in doc["key_frames"]:
                for p, a in enumerate(k["actors"]):
                    x1, y1, x2, y2 = np.array(a["box"]) / [160, 120, 160, 120]
                    x1, x2 = min(x1 + shift, 1), min(x2 + shift, 1)
                    for c in range(1, 11):
                        f.write(f"walk,{k['timestamp']:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{c},{p}\n")
        assert evaluate(gt, out, tmp_path / "labels.pbtxt") == pytest.approx(expected, abs=1e-9)


def test_thresholds_file_changes_the_drawn_labels(tmp_path, boxes_weights):
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=24, fps=8)
    boxes_csv(tmp_path / "boxes.csv")
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps({"default": 1.0, "thresholds": {"ride": 0.0}}))
    runs = {}
    for name, extra in (("plain", ["--score-thresh", "0.0"]), ("file", ["--thresholds", thresholds])):
        code, err = run_demo("--config-file", BOXES_CONFIG, "--input", video, "--boxes",
                             tmp_path / "boxes.csv", "--output", tmp_path / f"{name}.mp4", "--json",
                             tmp_path / f"{name}.json", *extra, *BOXES_OPTS, "MODEL.WEIGHTS",
                             boxes_weights)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    plain = [a["labels"] for k in runs["plain"]["key_frames"] for a in k["actors"]]
    filed = [a["labels"] for k in runs["file"]["key_frames"] for a in k["actors"]]
    assert all(len(labels) == 10 for labels in plain)
    assert filed == [["ride"]] * len(plain)
    assert runs["file"]["thresholds"] == [1.0] * 7 + [0.0] + [1.0] * 2
    # ... and what is drawn: the frames differ where the labels are
    a, b = decode(tmp_path / "plain.mp4"), decode(tmp_path / "file.mp4")
    assert np.abs(a[0].astype(int) - b[0]).sum() > 0
    thresholds.write_text(json.dumps({"thresholds": {"fly": 0.5}}))
    code, _ = run_demo("--config-file", BOXES_CONFIG, "--input", video, "--boxes",
                       tmp_path / "boxes.csv", "--output", tmp_path / "x.mp4", "--thresholds",
                       thresholds, *BOXES_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert "unknown class name(s) ['fly']" in str(code) and "t.json" in str(code)


def test_truncated_video_keeps_what_was_written(tmp_path, boxes_weights):
    cut = truncated_video(tmp_path)  # 48 frames announced at 8 fps, breaks part-way
    (tmp_path / "boxes.csv").write_text("".join(f"cut,{t},0.1,0.1,0.4,0.9,,0.9\n" for t in range(6)))
    out = {"mp4": tmp_path / "o.mp4", "json": tmp_path / "o.json", "csv": tmp_path / "o.csv"}
    code, err = run_demo("--config-file", BOXES_CONFIG, "--input", cut, "--boxes",
                         tmp_path / "boxes.csv", "--output", out["mp4"], "--json", out["json"],
                         "--csv", out["csv"], *BOXES_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert code == 1 and "cut.mp4" in err and "truncated or corrupt" in err
    doc = json.loads(out["json"].read_text())
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert doc["complete"] is False and "cut.mp4" in doc["error"]
    n = doc["num_frames"]
    assert 8 < n < 48 and len(decode(out["mp4"])) == n
    assert [k["frame_index"] for k in doc["key_frames"]] == [i for i in range(0, n, 8)]
    assert len(out["csv"].read_text().splitlines()) == 10 * len(doc["key_frames"])


def test_unreadable_source_writes_nothing(tmp_path, boxes_weights):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 500)
    (tmp_path / "boxes.csv").write_text("bad,0,0.1,0.1,0.4,0.9,,0.9\n")
    code, _ = run_demo("--config-file", BOXES_CONFIG, "--input", bad, "--boxes",
                       tmp_path / "boxes.csv", "--output", tmp_path / "o.mp4", "--json",
                       tmp_path / "o.json", *BOXES_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert "cannot open video source" in str(code) and "bad.mp4" in str(code)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.json").exists()


def test_output_equal_to_input_is_refused_and_the_input_kept(tmp_path, boxes_weights):
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=8)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    for output in (video, tmp_path / "." / "walk.mp4"):
        code, _ = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output", output,
                           "--overwrite", *DETECTOR_OPTS, "MODEL.WEIGHTS", boxes_weights)
        assert "is the --input file: refusing to replace an input" in str(code)
    code, _ = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output",
                       tmp_path / "o.mp4", "--json", video, *DETECTOR_OPTS)
    assert "--json" in str(code) and "refusing to replace an input" in str(code)
    assert hashlib.sha256(video.read_bytes()).hexdigest() == digest
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"mine")
    code, _ = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output", existing,
                       *DETECTOR_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert "exists: refusing to overwrite it (use --overwrite)" in str(code)
    assert existing.read_bytes() == b"mine"


def test_no_weights_is_refused_unless_asked(tmp_path):
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=8)
    code, _ = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output",
                       tmp_path / "o.mp4", *DETECTOR_OPTS)
    assert "MODEL.WEIGHTS is not set" in str(code) and "--random-weights" in str(code)
    assert not (tmp_path / "o.mp4").exists()
    code, err = run_demo("--config-file", DETECTOR_CONFIG, "--input", video, "--output",
                         tmp_path / "o.mp4", "--random-weights", *DETECTOR_OPTS)
    assert code == 0, err
    assert len(decode(tmp_path / "o.mp4")) == 8


def test_missing_input_is_reported_as_missing(tmp_path):
    (tmp_path / "boxes.csv").write_text("other,0,0.1,0.1,0.4,0.9,,0.9\n")
    code, _ = run_demo("--config-file", BOXES_CONFIG, "--input", tmp_path / "gone.mp4", "--boxes",
                       tmp_path / "boxes.csv", "--output", tmp_path / "o.mp4", *BOXES_OPTS,
                       "MODEL.WEIGHTS", "w.pth")
    assert str(code) == f"--input: input video not found: {tmp_path / 'gone.mp4'}"


def test_config_without_detector_needs_boxes(tmp_path, boxes_weights):
    video = tmp_path / "walk.mp4"
    write_test_video(video, n=8)
    code, _ = run_demo("--config-file", BOXES_CONFIG, "--input", video, "--output",
                       tmp_path / "o.mp4", *BOXES_OPTS, "MODEL.WEIGHTS", boxes_weights)
    assert "has no person detector" in str(code) and "--boxes" in str(code)


def test_video_ids_starting_with_a_dash_are_values():
    """AVA ids such as -FaXLcSFjUI follow --video-id as a value, not as an option."""
    demo = load_tool("demo")
    args = demo.parse_args(["--config-file", "c.yaml", "--dataset", "ava_v2.2_val",
                            "--video-id", "-FaXLcSFjUI", "--output", "o.mp4"])
    assert (args.video_id, args.dataset, args.output) == ("-FaXLcSFjUI", "ava_v2.2_val", "o.mp4")
