"""UCF101-24 frame-mAP through the AVA machinery: no per-frame cap, ground truth from dicts or CSV."""
import numpy as np
import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from acar_d2.evaluation import AVAEvaluator, UCF24Evaluator
from ava_eval.csv_io import parse_box_csv
from ava_eval.frame_map import frame_map
from tests.testing_utils import action_output

K = 24
H, W = 240, 320


def _dicts():
    # Two annotated frames of one video, one actor each, single label (class index 3 / 5).
    return [
        {"video_id": "v_Basketball_g01_c01", "timestamp": 1, "height": H, "width": W,
         "annotations": [{"bbox": [32, 24, 160, 216], "bbox_mode": BoxMode.XYXY_ABS,
                          "action_ids": [4], "person_id": 0}]},
        {"video_id": "v_Basketball_g01_c01", "timestamp": 2, "height": H, "width": W,
         "annotations": [{"bbox": [40, 24, 168, 216], "bbox_mode": BoxMode.XYXY_ABS,
                          "action_ids": [6], "person_id": 0}]},
    ]


@pytest.fixture
def ucf_dataset():
    name = "test_ucf24_eval_tiny"
    DatasetCatalog.register(name, _dicts)
    MetadataCatalog.get(name).set(
        action_ids=list(range(1, K + 1)), action_classes=[f"c{i}" for i in range(1, K + 1)],
        evaluator_type="ucf24",
    )
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _frame(boxes, scores):
    return action_output(boxes, scores, (H, W))


def _run(ev):
    # Frame 1: 3 background boxes scoring 0.9 on every class but class 6 (0.0), then the correct
    # box with a class-4 score of 0.5: 4 x 24 = 96 rows, so the AVA top-50 cap would drop the
    # correct row (it sits below 69 rows scoring 0.9). Frame 2: the correct box alone, class 6
    # at 0.8.
    rng = np.random.default_rng(0)
    bg = [[200, 10, 300, 60], [250, 100, 310, 200], [180, 150, 240, 230]]
    right = np.full(K, 0.01)
    right[3] = 0.5
    background = np.full((3, K), 0.9)
    background[:, 5] = 0.0
    scores = np.vstack([background, right])
    ev.reset()
    ev.process([{"video_id": "v_Basketball_g01_c01", "timestamp": 1, "height": H, "width": W}],
               [_frame(bg + [[34, 26, 158, 214]], scores)])
    s2 = rng.uniform(0, 0.05, (1, K))
    s2[0, 5] = 0.8
    ev.process([{"video_id": "v_Basketball_g01_c01", "timestamp": 2, "height": H, "width": W}],
               [_frame([[40, 24, 168, 216]], s2)])
    return ev.evaluate()


def test_ucf24_evaluator_has_no_cap(ucf_dataset):
    res = _run(UCF24Evaluator(ucf_dataset, distributed=False))["ucf24"]
    # Class 4: ranked FP, FP, FP (0.9) then TP (0.5): AP = 1/4. Class 6: one TP at the top: 1.
    assert res["AP-c4"] == pytest.approx(25.0, abs=1e-9)
    assert res["AP-c6"] == pytest.approx(100.0, abs=1e-9)
    assert res["frame_mAP@0.5"] == pytest.approx(62.5, abs=1e-9)
    assert len([k for k in res if k.startswith("AP-")]) == 2  # classes without GT are left out
    # AVAEvaluator on a dataset marked evaluator_type="ucf24" is the same evaluator.
    assert _run(AVAEvaluator(ucf_dataset, distributed=False))["ucf24"] == res


def test_ava_cap_would_drop_the_match(ucf_dataset):
    # The same outputs under the AVA 50-row cap lose the class-4 TP: AP 0.
    res = _run(UCF24Evaluator(ucf_dataset, distributed=False, top_k=50))["ucf24"]
    assert res["AP-c4"] == 0.0 and res["AP-c6"] == pytest.approx(100.0)


def test_ucf24_groundtruth_from_csv_equals_dicts(ucf_dataset, tmp_path):
    gt = tmp_path / "gt.csv"
    # Same boxes normalized by W, H.
    gt.write_text("v_Basketball_g01_c01,1,0.1,0.1,0.5,0.9,4,0\n"
                  "v_Basketball_g01_c01,2,0.125,0.1,0.525,0.9,6,0\n")
    a = _run(UCF24Evaluator(ucf_dataset, distributed=False))["ucf24"]
    b = _run(UCF24Evaluator(ucf_dataset, distributed=False, annotations=str(gt)))["ucf24"]
    assert a == pytest.approx(b, abs=1e-9)


def test_frame_map_top_k_none_keeps_every_row():
    gt = parse_box_csv(b"v,1,0.1,0.1,0.5,0.5,1,0\n", "gt.csv", groundtruth=True)
    rows = [f"v,1,0.6,0.6,0.9,0.9,2,{0.9 - i * 1e-3:.4f}" for i in range(60)]
    rows.append("v,1,0.1,0.1,0.5,0.5,1,0.1")
    det = parse_box_csv("\n".join(rows).encode(), "det.csv")
    labels = {1: "a", 2: "b"}
    assert frame_map(gt, det, labels).per_class_AP[1] == 0.0
    assert frame_map(gt, det, labels, top_k=None).per_class_AP[1] == 1.0
