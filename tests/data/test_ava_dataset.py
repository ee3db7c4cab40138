"""AVA-format registration: label maps, the packaged class list, counts against the CSVs,
proposals, and bad input."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ava_eval.label_map import AVA_LABEL_MAP_FILE, ava_class_list
from acar_d2.data.datasets.ava import (
    load_ava_instances,
    read_label_map,
    read_predicted_boxes_csv,
    read_dense_proposals,
    register_ava_instances,
)
from tests.reference_utils import REPO_ROOT, reference_dir

from . import ava_fixtures as fx


@pytest.fixture
def world(tmp_path):
    return fx.make_ava_world(tmp_path)


def _by_key(dicts):
    return {(d["video_id"], d["timestamp"]): d for d in dicts}


def test_ava_60_class_label_map_pose_classes():
    lmap = read_label_map(str(reference_dir() / "ava_eval" / "public_small" / "labelmap.pbtxt"))
    assert len(lmap.ids) == 60 and lmap.ids == sorted(lmap.ids)
    # Pose = indices 0..12 = ids 1, 3..14 (id 2 is not evaluated).
    assert lmap.pose_class_indices == list(range(13))
    assert [lmap.ids[i] for i in lmap.pose_class_indices] == [1] + list(range(3, 15))
    groups = lmap.class_groups
    assert len(groups["person_object"]) + len(groups["person_person"]) == 47
    assert all(lmap.ids[i] >= 64 for i in groups["person_person"])


# ---- the packaged AVA v2.1 / v2.2 class list ---------------------------------------------------

# The 60 evaluated ids (ActivityNet 2018 / 2019 lists): 80 AVA ids minus 2, 16, 18, 19, 21, 23, 25,
# 31, 32, 33, 35, 39, 40, 42, 44, 50, 53, 55, 71, 75.
AVA_60_IDS = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 20, 22, 24, 26, 27, 28, 29, 30,
              34, 36, 37, 38, 41, 43, 45, 46, 47, 48, 49, 51, 52, 54, 56, 57, 58, 59, 60, 61, 62,
              63, 64, 65, 66, 67, 68, 69, 70, 72, 73, 74, 76, 77, 78, 79, 80]


def test_packaged_ava_class_list():
    lmap = ava_class_list()
    assert len(lmap) == 60 and lmap.ids == AVA_60_IDS
    assert lmap.pose_class_indices == list(range(13))
    assert [lmap.ids[i] for i in lmap.pose_class_indices] == [1] + list(range(3, 15))
    groups = lmap.class_groups
    assert [len(groups[g]) for g in ("pose", "person_object", "person_person")] == [13, 32, 15]
    assert [lmap.ids[i] for i in groups["person_person"]] == [
        64, 65, 66, 67, 68, 69, 70, 72, 73, 74, 76, 77, 78, 79, 80]
    assert (lmap[1], lmap[14], lmap[15], lmap[17]) == (
        "bend/bow (at the waist)", "walk", "answer phone", "carry/hold (an object)")
    assert (lmap[62], lmap[63], lmap[79], lmap[80]) == (
        "work on a computer", "write", "talk to (e.g., self, a person, a group)", "watch (a person)")
    # Same names as the label map of the official evaluation case, for every id it holds.
    ref = read_label_map(str(reference_dir() / "ava_eval" / "public_small" / "labelmap.pbtxt"))
    assert len(ref) == 60 and set(ref) <= set(lmap)
    assert {c: lmap[c] for c in ref} == dict(ref.items())


def test_packaged_class_list_is_package_data():
    # Found from the source tree (the package is installed editable) ...
    assert AVA_LABEL_MAP_FILE == REPO_ROOT / "ava_eval" / "ava_labelmap_v2.2.pbtxt"
    assert AVA_LABEL_MAP_FILE.is_file()
    from importlib.resources import files

    assert files("ava_eval").joinpath("ava_labelmap_v2.2.pbtxt").read_text() == \
        AVA_LABEL_MAP_FILE.read_text()
    # ... and declared in setup.py, so a regular install ships it.
    import ast

    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    kw = {k.arg: k.value for n in ast.walk(tree) if isinstance(n, ast.Call)
          for k in n.keywords if k.arg == "package_data"}
    data = kw["package_data"]  # a dict display; the model-zoo configs' entry is computed
    entries = {ast.literal_eval(k): v for k, v in zip(data.keys, data.values)}
    assert ast.literal_eval(entries["ava_eval"]) == ["ava_labelmap_v2.2.pbtxt"]


def test_builtin_ava_metadata_with_empty_datasets_root(tmp_path, monkeypatch):
    """$ACAR_DATASETS is read when the builtin splits are registered (at import): a fresh
    interpreter imports acar_d2 with it pointing at an empty folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ACAR_DATASETS", str(empty))
    code = (
        "import json\n"
        "from detectron2.data import DatasetCatalog, MetadataCatalog\n"
        "import acar_d2.data\n"
        "out = {}\n"
        "for n in ('ava_v2.2_val', 'ava_v2.1_train'):\n"
        "    m = MetadataCatalog.get(n)\n"
        "    out[n] = [m.label_map, m.action_ids, m.action_classes, m.pose_class_indices,\n"
        "              m.class_groups]\n"
        "try:\n"
        "    DatasetCatalog.get('ava_v2.2_val')\n"
        "except FileNotFoundError as e:\n"
        "    out['error'] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(tmp_path), env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    packaged = ava_class_list()
    ann = empty / "ava" / "annotations"
    for name, label_map in (("ava_v2.2_val", "ava_action_list_v2.2_for_activitynet_2019.pbtxt"),
                            ("ava_v2.1_train", "ava_action_list_v2.1_for_activitynet_2018.pbtxt")):
        path, ids, names, pose, groups = out[name]
        assert path == str(ann / label_map) and not os.path.exists(path)
        assert ids == AVA_60_IDS and names == packaged.names
        assert pose == list(range(13)) and groups == packaged.class_groups
    # Loading the dicts fails, naming the missing annotation file.
    assert str(ann / "ava_val_v2.2.csv") in out["error"]


def test_label_map_fallback_in_registration(world, tmp_path):
    missing = str(tmp_path / "nowhere" / "labels.pbtxt")
    name = "test_data_ava_fallback"
    register_ava_instances(name, {}, world["annotations"], missing, label_map_fallback=str(
        AVA_LABEL_MAP_FILE), **fx.load_kwargs(world))
    try:
        meta = MetadataCatalog.get(name)
        assert meta.label_map == missing and meta.action_ids == AVA_60_IDS
        assert meta.pose_class_indices == list(range(13))
        # The loader uses the same classes: the world's ids 1, 12, 17, 79 are all among the 60.
        dicts = _by_key(DatasetCatalog.get(name))
        assert dicts[("vidA", 900)]["annotations"][0]["action_ids"] == [12, 17]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    # Without a fallback, the class fields name the missing file.
    register_ava_instances(name, {}, world["annotations"], missing, **fx.load_kwargs(world))
    try:
        with pytest.raises(FileNotFoundError, match="nowhere/labels.pbtxt"):
            MetadataCatalog.get(name).action_ids
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_label_types_and_ascending_order(world):
    lmap = read_label_map(world["label_map"])
    assert lmap.ids == [1, 12, 17, 79]
    assert lmap.names[1] == "stand"
    assert lmap.groups == ["pose", "pose", "person_object", "person_person"]


def test_counts_against_csvs(world):
    dicts = load_ava_instances(world["annotations"], world["label_map"], **fx.load_kwargs(world))
    gt_keys = {(r[0], r[1]) for r in fx.GT_ROWS}
    expected = (gt_keys | set(fx.PROPOSALS)) - set(fx.EXCLUDED)
    assert {(d["video_id"], d["timestamp"]) for d in dicts} == expected
    assert len(dicts) == 4
    by_key = _by_key(dicts)
    for key, d in by_key.items():
        rows = [r for r in fx.GT_ROWS if (r[0], r[1]) == key]
        persons = {(r[2:6], r[7]) for r in rows}
        assert len(d["annotations"]) == len(persons)
        assert sum(len(a["action_ids"]) for a in d["annotations"]) == len(rows)
    a900 = by_key[("vidA", 900)]
    assert a900["annotations"][0]["action_ids"] == [12, 17]
    assert a900["annotations"][0]["person_id"] == 0
    assert a900["annotations"][0]["bbox_mode"] == BoxMode.XYXY_ABS
    # Absolute pixels of the video's own size (vidA 24x32, vidB 32x24).
    np.testing.assert_allclose(a900["annotations"][0]["bbox"], [4, 6, 16, 18])
    assert (a900["height"], a900["width"]) == (24, 32)
    b902 = by_key[("vidB", 902)]
    assert (b902["height"], b902["width"]) == (32, 24)
    np.testing.assert_allclose(b902["annotations"][0]["bbox"], [0, 0, 24, 32])
    # Key frame index: (t - 900) * fps.
    assert [by_key[k]["key_frame_index"] for k in sorted(by_key)] == [0, 4, 8, 8]
    assert all(d["num_frames"] == fx.NUM_FRAMES for d in dicts)
    assert by_key[("vidA", 902)]["annotations"] == []
    np.testing.assert_allclose(
        a900["proposals"]["boxes"][0], [0.13 * 32, 0.25 * 24, 0.5 * 32, 0.75 * 24], rtol=1e-6
    )
    np.testing.assert_allclose(a900["proposals"]["scores"], [0.95, 0.5, 0.99], rtol=1e-6)


def test_frame_list_and_folder_and_csv_proposals_agree(world):
    base = load_ava_instances(world["annotations"], world["label_map"], **fx.load_kwargs(world))
    listed = load_ava_instances(
        world["annotations"], world["label_map"], **fx.load_kwargs(world, frame_list=world["frame_list"])
    )
    from_csv = load_ava_instances(
        world["annotations"], world["label_map"],
        **fx.load_kwargs(world, proposals=world["proposals_csv"]),
    )
    for a, b, c in zip(base, listed, from_csv):
        assert a["frame_dir"].rstrip("/") == b["frame_dir"].rstrip("/")
        assert a["frame_template"] == b["frame_template"] == "vidA_{:06d}.jpg".replace(
            "vidA", a["video_id"]
        )
        np.testing.assert_allclose(a["proposals"]["boxes"], c["proposals"]["boxes"], atol=1e-5)
        np.testing.assert_allclose(a["proposals"]["scores"], c["proposals"]["scores"], atol=1e-6)


def test_register_and_lazy_metadata(world):
    name = "test_data_tiny_ava"
    register_ava_instances(
        name, {"note": "x"}, world["annotations"], world["label_map"], **fx.load_kwargs(world)
    )
    try:
        meta = MetadataCatalog.get(name)
        assert meta.action_ids == [1, 12, 17, 79]
        assert meta.action_classes[0] == "bend/bow (at the waist)"
        assert meta.pose_class_indices == [0, 1]
        assert meta.class_groups == {"pose": [0, 1], "person_object": [2], "person_person": [3]}
        assert meta.evaluator_type == "ava" and meta.fps == fx.FPS
        assert meta.gt_csv == world["annotations"] and meta.exclusions == world["exclusions"]
        assert len(DatasetCatalog.get(name)) == 4
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_builtin_splits_registered():
    names = DatasetCatalog.list()
    for n in ("ava_v2.2_train", "ava_v2.2_val", "ava_v2.1_train", "ava_v2.1_val",
              "aca_world_train", "aca_world_val", "ucf101_24_train", "ucf101_24_test"):
        assert n in names, n
    assert MetadataCatalog.get("ava_v2.2_val").label_map.endswith(
        "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert MetadataCatalog.get("ava_v2.2_val").first_second == 900


def test_known_but_untrained_ids_are_dropped(world, tmp_path):
    csv = fx.write_csv(tmp_path / "gt80.csv", fx.GT_ROWS + [("vidA", 900, 0.6, 0.1, 0.9, 0.9, 2, 1)])
    dicts = load_ava_instances(
        csv, world["label_map"], **fx.load_kwargs(world, known_action_ids=set(range(1, 81)))
    )
    assert _by_key(dicts)[("vidA", 900)]["annotations"][1]["action_ids"] == [1]


# ---- bad input: each raises naming the file and row --------------------------------------------

def _bad_gt(world, tmp_path, row):
    csv = fx.write_csv(tmp_path / "bad.csv", fx.GT_ROWS[:2] + [row])
    with pytest.raises(ValueError) as e:
        load_ava_instances(csv, world["label_map"], **fx.load_kwargs(world))
    assert "bad.csv, line 3" in str(e.value)
    return str(e.value)


def test_malformed_row(world, tmp_path):
    assert "8 columns" in _bad_gt(world, tmp_path, ("vidA", 900, 0.1, 0.1, 0.2, 12, 0))
    assert "not a number" in _bad_gt(world, tmp_path, ("vidA", 900, "x", 0.1, 0.2, 0.3, 12, 0))
    assert "timestamp" in _bad_gt(world, tmp_path, ("vidA", "9o0", 0.1, 0.1, 0.2, 0.3, 12, 0))


def test_box_outside_unit_square(world, tmp_path):
    assert "outside [0, 1]" in _bad_gt(world, tmp_path, ("vidA", 900, 0.1, 0.1, 1.2, 0.3, 12, 0))
    assert "x1 > x2" in _bad_gt(world, tmp_path, ("vidA", 900, 0.5, 0.1, 0.2, 0.3, 12, 0))
    assert "y1 > y2" in _bad_gt(world, tmp_path, ("vidA", 900, 0.1, 0.5, 0.2, 0.3, 12, 0))


def test_non_integer_person_id(world, tmp_path):
    assert "person_id 1.5 is not an integer" in _bad_gt(
        world, tmp_path, ("vidA", 900, 0.1, 0.1, 0.2, 0.3, 12, 1.5)
    )
    assert "person_id 'p1' is not a number" in _bad_gt(
        world, tmp_path, ("vidA", 900, 0.1, 0.1, 0.2, 0.3, 12, "p1")
    )


def test_unknown_action_id(world, tmp_path):
    assert "action_id 2 is not in the label map" in _bad_gt(
        world, tmp_path, ("vidA", 900, 0.1, 0.1, 0.2, 0.3, 2, 0)
    )


def test_timestamp_outside_video(world, tmp_path):
    csv = fx.write_csv(tmp_path / "late.csv", [("vidA", 904, 0.1, 0.1, 0.2, 0.3, 12, 0)])
    with pytest.raises(ValueError, match=r"late.csv: key frame vidA,904 maps to frame 16"):
        load_ava_instances(csv, world["label_map"], **fx.load_kwargs(world, exclusions=None))


def test_missing_video_and_frame_list_entry(world, tmp_path):
    csv = fx.write_csv(tmp_path / "ghost.csv", [("ghost", 900, 0.1, 0.1, 0.2, 0.3, 12, 0)])
    with pytest.raises(FileNotFoundError, match="ghost"):
        load_ava_instances(csv, world["label_map"], **fx.load_kwargs(world))
    with pytest.raises(ValueError, match="video 'ghost' is not in the frame list"):
        load_ava_instances(
            csv, world["label_map"], **fx.load_kwargs(world, frame_list=world["frame_list"])
        )


def test_missing_frame_in_folder(world):
    import os

    os.remove(os.path.join(world["frames"], "vidA", "vidA_000005.jpg"))
    with pytest.raises(ValueError, match=r"vidA.*frame 4 is 'vidA_000006.jpg'"):
        load_ava_instances(world["annotations"], world["label_map"], **fx.load_kwargs(world))


def test_bad_proposal_files(world, tmp_path):
    p = tmp_path / "p.pkl"
    with open(p, "wb") as f:
        pickle.dump({"vidA,0900": np.zeros((2, 4))}, f)
    with pytest.raises(ValueError, match=r"p.pkl key 'vidA,0900'.*\(R, 5\)"):
        read_dense_proposals(str(p))
    p.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot unpickle"):
        read_dense_proposals(str(p))
    csv = fx.write_csv(tmp_path / "pb.csv", [("vidA", 900, 0.1, 0.1, 0.2, 0.3, "", "high")])
    with pytest.raises(ValueError, match="pb.csv, line 1: score 'high'"):
        read_predicted_boxes_csv(csv)
    csv = fx.write_csv(tmp_path / "pb.csv", [("vidA", 900, 0.1, 0.1, 0.2, 0.3, "", 0.9),
                                             ("vidA", 900, 0.1, 0.1, 1.5, 0.3, "", 0.9)])
    with pytest.raises(ValueError, match=r"pb.csv, line 2: box .* is outside \[0, 1\]"):
        read_predicted_boxes_csv(csv)
    csv = fx.write_csv(tmp_path / "pb.csv", [("vidA", 900, 0.1, 0.1, 0.2, 0.3, "", 0.9, 1)])
    with pytest.raises(ValueError, match="pb.csv, line 1: expected 8 columns"):
        read_predicted_boxes_csv(csv)


def test_bad_label_map(tmp_path):
    p = tmp_path / "lm.pbtxt"
    p.write_text('item {\n  name: "a"\n}\n')
    with pytest.raises(ValueError, match="lacks a 'name' or an 'id'"):
        read_label_map(str(p))
    p.write_text('item {\n  name: "a"\n  id: 90\n}\n')
    with pytest.raises(ValueError, match="class group"):
        read_label_map(str(p))
