"""AVA-format registration: label maps, counts against the CSVs, proposals, and bad input."""
import pickle

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from acar_d2.data.datasets.ava import (
    load_ava_instances,
    read_label_map,
    read_predicted_boxes_csv,
    read_dense_proposals,
    register_ava_instances,
)
from tests.reference_utils import reference_dir

from . import ava_fixtures as fx


@pytest.fixture
def world(tmp_path):
    return fx.make_ava_world(tmp_path)


def _by_key(dicts):
    return {(d["video_id"], d["timestamp"]): d for d in dicts}


def test_ava_60_class_label_map_pose_classes():
    lmap = read_label_map(str(reference_dir() / "ava_eval" / "public_small" / "labelmap.pbtxt"))
    assert len(lmap.ids) == 60 and lmap.ids == sorted(lmap.ids)
    # FORMATS.md (iii): pose = indices 0..12 = ids 1, 3..14 (id 2 is not evaluated).
    assert lmap.pose_class_indices == list(range(13))
    assert [lmap.ids[i] for i in lmap.pose_class_indices] == [1] + list(range(3, 15))
    groups = lmap.class_groups
    assert len(groups["person_object"]) + len(groups["person_person"]) == 47
    assert all(lmap.ids[i] >= 64 for i in groups["person_person"])


def test_label_types_and_ascending_order(world):
    lmap = read_label_map(world["label_map"])
    assert lmap.ids == [1, 12, 17, 79]
    assert lmap.names[1] == "stand"
    assert lmap.groups == ["pose", "pose", "person_object", "person_person"]


def test_counts_against_csvs(world):
    dicts = load_ava_instances(world["gt_csv"], world["label_map"], **fx.load_kwargs(world))
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
    base = load_ava_instances(world["gt_csv"], world["label_map"], **fx.load_kwargs(world))
    listed = load_ava_instances(
        world["gt_csv"], world["label_map"], **fx.load_kwargs(world, frame_list=world["frame_list"])
    )
    from_csv = load_ava_instances(
        world["gt_csv"], world["label_map"],
        **fx.load_kwargs(world, proposal_file=world["proposals_csv"]),
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
        name, {"note": "x"}, world["gt_csv"], world["label_map"], **fx.load_kwargs(world)
    )
    try:
        meta = MetadataCatalog.get(name)
        assert meta.action_ids == [1, 12, 17, 79]
        assert meta.action_classes[0] == "bend/bow (at the waist)"
        assert meta.pose_class_indices == [0, 1]
        assert meta.class_groups == {"pose": [0, 1], "person_object": [2], "person_person": [3]}
        assert meta.evaluator_type == "ava" and meta.fps == fx.FPS
        assert meta.gt_csv == world["gt_csv"] and meta.exclusions == world["exclusions"]
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
    assert "bad.csv row 3" in str(e.value)
    return str(e.value)


def test_malformed_row(world, tmp_path):
    assert "8 columns" in _bad_gt(world, tmp_path, ("vidA", 900, 0.1, 0.1, 0.2, 12, 0))
    assert "not a number" in _bad_gt(world, tmp_path, ("vidA", 900, "x", 0.1, 0.2, 0.3, 12, 0))
    assert "timestamp" in _bad_gt(world, tmp_path, ("vidA", "9o0", 0.1, 0.1, 0.2, 0.3, 12, 0))


def test_box_outside_unit_square(world, tmp_path):
    assert "outside [0, 1]" in _bad_gt(world, tmp_path, ("vidA", 900, 0.1, 0.1, 1.2, 0.3, 12, 0))
    assert "x1 > x2" in _bad_gt(world, tmp_path, ("vidA", 900, 0.5, 0.1, 0.2, 0.3, 12, 0))


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

    os.remove(os.path.join(world["frame_root"], "vidA", "vidA_000005.jpg"))
    with pytest.raises(ValueError, match=r"vidA.*frame 4 is 'vidA_000006.jpg'"):
        load_ava_instances(world["gt_csv"], world["label_map"], **fx.load_kwargs(world))


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
    with pytest.raises(ValueError, match="pb.csv row 1: score 'high'"):
        read_predicted_boxes_csv(csv)


def test_bad_label_map(tmp_path):
    p = tmp_path / "lm.pbtxt"
    p.write_text('item {\n  name: "a"\n}\n')
    with pytest.raises(ValueError, match="lacks a 'name' or an 'id'"):
        read_label_map(str(p))
    p.write_text('item {\n  name: "a"\n  id: 90\n}\n')
    with pytest.raises(ValueError, match="class group"):
        read_label_map(str(p))
