"""
Evaluation with the joint person detector: person AP@0.5 (hand-computed case) and the eval-only
table of tools/train_net.py (person AP, frame-mAP with detected and with ground-truth boxes).
"""
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model

from acar_d2.evaluation.person_ap import person_ap
from acar_d2.config import load_detector_config

from .conftest import INSTANT_CONFIG, load_train_net, tiny_cfg_opts

TINY = "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml"


def test_person_ap_hand_computed():
    gt = {"a": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "b": np.array([[0, 0, 10, 10]]),
          "c": np.zeros((0, 4))}
    det = {
        # 0.9 TP; 0.8 duplicate of the same person (FP); 0.7 nobody there (FP)
        "a": (np.array([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]]), np.array([0.9, 0.8, 0.7])),
        "b": (np.array([[0, 0, 10, 10]]), np.array([0.6])),  # TP
        "c": (np.array([[0, 0, 5, 5]]), np.array([0.95])),  # FP on an image without persons
    }
    # ranked: FP(.95) TP(.9) FP(.8) FP(.7) TP(.6): precision at recall 1/3 = 1/2, at 2/3 = 2/5
    res = person_ap(gt, det)
    assert res["AP"] == pytest.approx(1 / 3 * 1 / 2 + 1 / 3 * 2 / 5)
    assert res["recall"] == pytest.approx(2 / 3) and (res["num_gt"], res["num_det"]) == (3, 5)
    # IoU just below 0.5 is a miss
    half = person_ap({"x": np.array([[0, 0, 10, 10]])}, {"x": (np.array([[0, 0, 10, 4.9]]), np.array([1.0]))})
    assert half["AP"] == 0.0


def test_eval_only_reports_three_metrics(tiny_world, tmp_path):
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(load_detector_config(TINY)), save_dir=str(tmp_path)).save("det")
    argv = ["--config-file", str(INSTANT_CONFIG), "--eval-only"] + tiny_cfg_opts(tmp_path / "out") + [
        "MODEL.PERSON_DETECTOR.NAME", "PersonDetector",
        "MODEL.PERSON_DETECTOR.CONFIG_FILE", TINY,
        "MODEL.PERSON_DETECTOR.WEIGHTS", str(tmp_path / "det.pth"),
        "MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.3",
        "MODEL.WEIGHTS_STRICT", "False",  # random action model on purpose
    ]
    results = load_train_net().main(default_argument_parser().parse_args(argv))
    assert set(results) >= {"ava", "ava_gt_boxes", "person_detection"}, results.keys()
    person = results["person_detection"]
    assert 0.0 <= person["AP50"] <= 100.0 and person["num_gt"] > 0 and person["num_det"] > 0
    assert 0.0 <= results["ava"]["frame_mAP@0.5"] <= 100.0
    # an untrained detector's random boxes vs the ground-truth boxes: the upper bound is higher
    assert results["ava_gt_boxes"]["frame_mAP@0.5"] > results["ava"]["frame_mAP@0.5"]
    assert (tmp_path / "out" / "inference" / "engine_test_world_val_gt_boxes").is_dir()
