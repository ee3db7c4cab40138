"""
The AVA class-subset config (configs/AVA/SLOWFAST_R50_ACAR_HR2O_ava_v2.2_subset15.yaml): it
builds a 15-class model, and the evaluator of its split scores exactly its classes, with their
original ids, on a tiny AVA-format case (no AVA file needed: the packaged label map).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2.data.class_subset import reset_class_subsets
from acar_d2.engine import setup_cfg
from acar_d2.evaluation import AVAEvaluator

CONFIG = (Path(__file__).resolve().parents[2] / "configs" / "AVA"
          / "SLOWFAST_R50_ACAR_HR2O_ava_v2.2_subset15.yaml")
# MMAction2's example custom_classes minus 53 ("shovel", not among AVA's 60 evaluated classes)
SUBSET = [3, 6, 10, 27, 29, 38, 41, 48, 51, 54, 59, 61, 64, 70, 72]


@pytest.fixture
def cfg():
    yield setup_cfg(str(CONFIG), ["MODEL.DEVICE", "cpu"], freeze=False)
    reset_class_subsets()  # ava_v2.2_* whole again for the other tests


def test_subset_config_builds_a_15_class_model(cfg):
    assert list(cfg.DATASETS.CLASSES) == SUBSET and cfg.MODEL.ACTION_HEAD.NUM_CLASSES == 15
    meta = MetadataCatalog.get("ava_v2.2_val")
    assert list(meta.action_ids) == SUBSET
    assert meta.action_classes[:3] == ["crouch/kneel", "get up", "run/jog"]
    assert list(meta.pose_class_indices) == [0, 1, 2]
    model = build_model(cfg)
    assert model.roi_heads.fc2.weight.shape[0] == 15
    assert model.roi_heads.pose_class_indices == [0, 1, 2]


def test_subset_evaluator_scores_exactly_the_kept_classes(cfg, tmp_path):
    # 2 key frames; rows of kept classes (3 crouch/kneel, 64 fight/hit) and of others (12 stand,
    # 80 watch a person): the others are not scored, not even as zero-AP classes.
    gt = tmp_path / "gt.csv"
    gt.write_text(
        "vid_a,0902,0.1,0.1,0.4,0.9,3,0\n"
        "vid_a,0902,0.1,0.1,0.4,0.9,12,0\n"
        "vid_a,0902,0.5,0.1,0.9,0.9,64,1\n"
        "vid_a,0903,0.5,0.1,0.9,0.9,80,1\n"
        "vid_a,0903,0.1,0.1,0.4,0.9,3,0\n"
    )
    empty = tmp_path / "excluded.csv"
    empty.write_text("")
    evaluator = AVAEvaluator("ava_v2.2_val", output_dir=str(tmp_path), distributed=False,
                             annotations=str(gt), exclusions=str(empty))
    evaluator.reset()
    for ts in (902, 903):
        inst = Instances((100, 100))
        inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 40.0, 90.0], [50.0, 10.0, 90.0, 90.0]]))
        scores = torch.full((2, 15), 0.1)
        scores[0, SUBSET.index(3)] = 0.9  # crouch/kneel on person 0: right on both frames
        # fight/hit on person 1: right on 902, a lower-scored false positive on 903
        scores[1, SUBSET.index(64)] = 0.8 if ts == 902 else 0.7
        inst.action_scores = scores
        evaluator.process([{"video_id": "vid_a", "timestamp": ts, "height": 100, "width": 100}],
                          [{"instances": inst}])
    res = evaluator.evaluate()["ava"]
    assert sorted(k for k in res if k.startswith("AP-")) == ["AP-crouch/kneel",
                                                           "AP-fight/hit (a person)"], res
    assert res["AP-crouch/kneel"] == pytest.approx(100.0)
    assert res["AP-fight/hit (a person)"] == pytest.approx(100.0)
    assert res["frame_mAP@0.5"] == pytest.approx(100.0)
    rows = (tmp_path / "predictions_ava_v2.2_val.csv").read_text().splitlines()
    assert len(rows) == 2 * 2 * 15
    assert sorted({int(r.split(",")[6]) for r in rows}) == SUBSET  # original label-map ids
    assert np.isclose(float(rows[0].split(",")[7]), 0.9)
