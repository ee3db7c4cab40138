"""AVA-Kinetics: Kinetics clip lookup and key-frame indices, the mixed train split, the combined
validation ground truth scored by the evaluator."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from acar_d2.data.datasets.ava_kinetics import (
    index_kinetics_clips,
    register_ava_kinetics,
    write_combined_groundtruth,
)
from acar_d2.data.datasets.builtin import register_all_ava
from ava_eval.evaluate import evaluate_files

from . import ava_layout_trees as lt

# youtube id, second (float as in the release), box, action
KINETICS = [
    ("abc-_x1", "15.0", 0.1, 0.1, 0.5, 0.9, 12),
    ("abc-_x1", "15.0", 0.1, 0.1, 0.5, 0.9, 80),
    ("abc-_x1", "15.0", 0.6, 0.2, 0.9, 0.8, 17),
    ("gone_video", "7.0", 0.1, 0.1, 0.5, 0.9, 12),   # clip not on disk: skipped
]
CLIP = "abc-_x1_000010_000020"  # seconds 10..20 of the YouTube video


def _tree(tmp_path):
    lt.make_pyslowfast_tree(tmp_path)
    base = tmp_path / "ava_kinetics"
    (base / "frames" / CLIP).mkdir(parents=True)
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    for k in range(1, 301):
        img.save(base / "frames" / CLIP / f"img_{k:05d}.jpg")
    ann = base / "annotations"
    ann.mkdir()
    for split in ("train", "val"):
        (ann / f"kinetics_{split}_v1.0.csv").write_text(
            "".join(",".join(map(str, r)) + "\n" for r in KINETICS))
    return base


def test_clip_index_and_mixed_splits(tmp_path):
    base = _tree(tmp_path)
    assert index_kinetics_clips(str(base / "frames")) == {"abc-_x1": [(10, 20, CLIP)]}
    register_all_ava(str(tmp_path), "akava")
    register_ava_kinetics(str(tmp_path), "akv1", ava_prefix="akava")
    kin = DatasetCatalog.get("akv1_kinetics_train")
    assert len(kin) == 1
    d = kin[0]
    assert (d["video_id"], d["timestamp"], d["key_frame_index"], d["num_frames"]) == ("abc-_x1", 15, 150, 300)
    assert (d["height"], d["width"]) == (20, 40)
    assert os.path.basename(os.path.join(d["frame_dir"], d["frame_template"].format(151))) == "img_00151.jpg"
    assert sorted(sorted(a["action_ids"]) for a in d["annotations"]) == [[12, 80], [17]]
    np.testing.assert_allclose(d["annotations"][0]["bbox"], [4, 2, 20, 18])
    both = DatasetCatalog.get("akv1_train")
    assert len(both) == 3 + 1  # the AVA tree's 3 key frames + the Kinetics one
    assert MetadataCatalog.get("akv1_val").action_ids == MetadataCatalog.get("akava_v2.2_val").action_ids


def test_combined_ground_truth_and_evaluation(tmp_path):
    base = _tree(tmp_path)
    ann = base / "annotations"
    out = str(ann / "ava_kinetics_val_v1.0.csv")
    n = write_combined_groundtruth(str(tmp_path / "ava" / "annotations" / "ava_val_v2.2.csv"),
                                   str(ann / "kinetics_val_v1.0.csv"), out)
    assert n == len(lt.GT) + len(KINETICS)
    assert open(out).read().splitlines()[-1] == "gone_video,0007,0.1,0.1,0.5,0.9,12,-1"
    with pytest.raises(FileExistsError):
        write_combined_groundtruth(out, out, out)
    # perfect predictions on both sides: mAP 1; dropping the Kinetics rows halves class 17's recall
    rows = [r.split(",") for r in open(out).read().splitlines()]
    det = tmp_path / "det.csv"
    det.write_text("".join(",".join(r[:7] + ["0.9"]) + "\n" for r in rows))
    label_map = str(tmp_path / "ava" / "annotations" / "ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    assert evaluate_files(out, str(det), label_map).mAP == pytest.approx(1.0)
    det.write_text("".join(",".join(r[:7] + ["0.9"]) + "\n" for r in rows if not r[0].startswith(("abc", "gone"))))
    res = evaluate_files(out, str(det), label_map)
    assert res.per_class_AP[17] == pytest.approx(0.0) and res.per_class_AP[11] == pytest.approx(1.0)
