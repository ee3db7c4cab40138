"""tools/calibrate_thresholds.py: the F1-maximising threshold per class on a case with a known
answer, the file tools/demo.py reads, and refusals."""
import json

import numpy as np
import pytest

from acar_d2.utils.thresholds import read_thresholds
from tests.utils.demo_helpers import load_tool

calibrate = load_tool("calibrate_thresholds")
NAMES = ["stand", "sit", "ride"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "labels.pbtxt").write_text(
        "".join(f'item {{\n  name: "{n}"\n  id: {i + 1}\n}}\n' for i, n in enumerate(NAMES)))
    box_a, box_b, box_far = "0.1,0.1,0.3,0.9", "0.5,0.1,0.7,0.9", "0.8,0.0,0.95,0.2"
    # class 1 (stand): GT a and b in key frames 1 and 2 (4 boxes)
    gt = [f"v,{t},{b},1,{p}" for t in (1, 2) for p, b in enumerate((box_a, box_b))]
    gt += ["v,1,%s,3,0" % box_a]  # class 3 (ride): one box
    (tmp_path / "gt.csv").write_text("\n".join(gt) + "\n")
    det = [
        # stand: 3 TPs at 0.9, 0.8, 0.7, then FPs at 0.6 / 0.55 (far box), last TP at 0.3:
        # cut 0.7 -> P 1, R 3/4, F1 0.857; cut 0.3 -> P 4/6, R 1, F1 0.8 -> 0.7 wins.
        f"v,1,{box_a},1,0.9", f"v,1,{box_b},1,0.8", f"v,2,{box_a},1,0.7",
        f"v,2,{box_far},1,0.6", f"v,1,{box_far},1,0.55", f"v,2,{box_b},1,0.3",
        # ride: an FP above the only TP: cut 0.4 -> P 1/2, R 1, F1 2/3; cut 0.9 -> F1 0
        f"v,1,{box_far},3,0.9", f"v,1,{box_a},3,0.4",
        # sit: detections but no ground truth -> default
        f"v,1,{box_a},2,0.99",
    ]
    (tmp_path / "det.csv").write_text("\n".join(det) + "\n")
    return tmp_path


def args(tmp_path, out="t.json"):
    return ["--groundtruth", str(tmp_path / "gt.csv"), "--detections", str(tmp_path / "det.csv"),
            "--labelmap", str(tmp_path / "labels.pbtxt"), "--output", str(tmp_path / out),
            "--default", "0.45"]


def test_f1_maximising_thresholds_known_answer(files, capsys):
    assert calibrate.main(args(files)) == 0
    doc = json.loads((files / "t.json").read_text())
    assert doc["thresholds"] == {"stand": 0.7, "sit": 0.45, "ride": 0.4}
    st = doc["calibration"]["stand"]
    assert (st["precision"], st["recall"], st["num_gt"]) == (1.0, 0.75, 4)
    assert st["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert doc["calibration"]["ride"]["f1"] == pytest.approx(2 / 3)
    # what tools/demo.py --thresholds reads (class order of the model, not of the file)
    assert read_thresholds(str(files / "t.json"), ["ride", "stand", "sit", "walk"], 0.3).tolist() == \
        [0.4, 0.7, 0.45, 0.45]


def test_tied_scores_are_one_cut():
    # two rows at 0.5 (one TP, one FP) and a TP at 0.9: cutting between the tied rows is impossible
    scores = np.array([0.9, 0.5, 0.5])
    tp = np.array([True, True, False])
    best = calibrate.best_f1_threshold(scores, tp, num_gt=2)
    # cut 0.9: P 1 R 0.5 F1 0.667; cut 0.5: P 2/3 R 1 F1 0.8
    assert best["threshold"] == 0.5 and best["f1"] == pytest.approx(0.8)


def test_refuses_to_overwrite(files, capsys):
    (files / "t.json").write_text("{}")
    assert calibrate.main(args(files)) == 2
    assert "exists" in capsys.readouterr().err
    assert (files / "t.json").read_text() == "{}"
    assert calibrate.main(args(files, out="gt.csv") + ["--overwrite"]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
