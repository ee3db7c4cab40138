"""ava_eval.csv_io and ava_eval.label_map as the evaluation uses them: both label-map layouts, the label map as an
id -> name mapping, the packaged class list on the official case, exclusions and bad rows."""
import json
import math

import numpy as np
import pytest

from ava_eval.csv_io import parse_box_csv, read_box_csv, read_exclusions
from ava_eval.label_map import AVA_LABEL_MAP_FILE, LabelMap, read_label_map
from ava_eval.evaluate import evaluate_files
from tests.reference_utils import reference_dir


def test_v22_and_one_line_layouts(tmp_path):
    p = tmp_path / "v22.pbtxt"
    p.write_text('label {\n  name: "walk"\n  label_id: 14\n  label_type: PERSON_MOVEMENT\n}\n'
                 'label {\n  name: "hug (a person)"\n  label_id: 70\n'
                 '  label_type: PERSON_INTERACTION\n}\n'
                 'label {\n  name: "ski"\n  label_id: 90\n  label_type: OBJECT_MANIPULATION\n}\n')
    lmap = read_label_map(p)
    assert lmap.ids == [14, 70, 90] and lmap.names == ["walk", "hug (a person)", "ski"]
    assert lmap.groups == ["pose", "person_person", "person_object"]
    one_line = tmp_path / "one.pbtxt"
    one_line.write_text('item { name: "sit" id: 11 } item { display_name: "x" name: "stand" id: 12 }')
    lmap = read_label_map(one_line)
    assert dict(lmap.items()) == {11: "sit", 12: "stand"} and lmap.pose_class_indices == [0, 1]


def test_label_map_is_an_id_to_name_mapping(tmp_path):
    p = tmp_path / "m.pbtxt"
    p.write_text('item {\n  name: "b"\n  id: 90\n}\nitem {\n  name: "a"\n  id: 3\n}\n')
    with pytest.raises(ValueError, match="id 90 has no label_type .* class group"):
        read_label_map(p)
    lmap = read_label_map(p, require_groups=False)  # the evaluation needs no class groups
    assert isinstance(lmap, LabelMap)
    assert lmap == {3: "a", 90: "b"} and sorted(lmap) == [3, 90] and len(lmap) == 2
    assert lmap[90] == "b" and 4 not in lmap and lmap.get(4) is None
    assert lmap.groups == ["pose", None] and lmap.class_groups["pose"] == [0]
    p.write_text('item {\n  name: "a"\n  id: 3\n}\nitem {\n  name: "c"\n  id: 3\n}\n')
    with pytest.raises(ValueError, match="id 3 appears twice"):
        read_label_map(p)
    p.write_text('item {\n  name: "a"\n  id: 3\n  label_type: DANCING\n}\n')
    with pytest.raises(ValueError, match="item #1 has unknown label_type DANCING"):
        read_label_map(p)
    with pytest.raises(FileNotFoundError, match="label map not found: .*nope.pbtxt"):
        read_label_map(tmp_path / "nope.pbtxt")


def test_packaged_class_list_scores_the_official_case_exactly():
    """The packaged list (v2.2 ``label { label_id }`` layout) as the label map of the official
    case: the same 60 classes, so the same numbers as the official evaluator."""
    case = reference_dir() / "ava_eval" / "public_small"
    expected = json.loads((case / "expected.json").read_text())
    result = evaluate_files(case / "gt.csv", case / "det.csv", AVA_LABEL_MAP_FILE,
                            case / "exclusions.csv")
    assert abs(result.mAP - expected["mAP"]) < 1e-6
    assert sorted(result.per_class_AP) == sorted(int(c) for c in expected["per_class_AP"])
    for cid, ap in expected["per_class_AP"].items():
        got = result.per_class_AP[int(cid)]
        assert math.isnan(got) if ap is None else abs(got - ap) < 1e-6, (cid, got, ap)


def test_exclusions(tmp_path):
    p = tmp_path / "ex.csv"
    p.write_text("v,0902\n\nw,3\n")
    assert read_exclusions(p) == {("v", 902), ("w", 3)}
    assert read_exclusions(None) == set() and read_exclusions("") == set()
    p.write_text("v,0902\nv,1,2\n")
    with pytest.raises(ValueError, match=r"ex.csv, line 2: expected 2 columns"):
        read_exclusions(p)
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        read_exclusions(tmp_path / "gone.csv")


def test_fast_and_row_parsers_agree(tmp_path):
    rows = ["v,0902,0.1,0.2,0.3,0.4,12,0.5", "v,902,0.1,0.2,0.3,0.4,17,0.25", "w,7,0,0,1,1,80,1"]
    fast = parse_box_csv(("\n".join(rows) + "\n").encode(), "a.csv")
    # A blank line sends the file to the row parser; line numbers count it.
    slow = parse_box_csv(("\n".join(rows[:1] + [""] + rows[1:]) + "\n").encode(), "b.csv")
    for t in (fast, slow):
        assert t.keyframes == [("v", 902), ("w", 7)] and t.keyframe.tolist() == [0, 0, 1]
        assert t.labels.tolist() == [12, 17, 80] and t.scores.tolist() == [0.5, 0.25, 1.0]
        np.testing.assert_array_equal(t.boxes[0], [0.1, 0.2, 0.3, 0.4])
    assert fast.lines.tolist() == [1, 2, 3] and slow.lines.tolist() == [1, 3, 4]
    # Empty action column: an error, unless allowed (PySlowFast person boxes), then id 0.
    data = b"v,1,0.1,0.1,0.5,0.5,,0.9\n"
    with pytest.raises(ValueError, match="x.csv, line 1: action_id '' is not an integer"):
        parse_box_csv(data, "x.csv")
    assert parse_box_csv(data, "x.csv", allow_empty_action=True).labels.tolist() == [0]
    # Required column count.
    with pytest.raises(ValueError, match="x.csv, line 1: expected 8 columns"):
        parse_box_csv(b"v,1,0.1,0.1,0.5,0.5,3\n", "x.csv", num_columns=8)
    p = tmp_path / "det.csv"
    p.write_text("v,1,0.1,0.1,0.5,0.5,3\n")
    assert read_box_csv(p).scores.tolist() == [1.0]
    with pytest.raises(FileNotFoundError, match="CSV file not found: .*missing.csv"):
        read_box_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    "row, message",
    [
        ("v,1,0.1,0.1,0.5,0.5,1,0,7", r"gt.csv, line 2: expected 7 or 8 columns"),
        ("v,1,0.1,zero,0.5,0.5,1,0", r"gt.csv, line 2: y1 'zero' is not a number"),
        ("v,1,0.1,0.1,0.5,0.5,1.5,0", r"gt.csv, line 2: action_id '1.5' is not an integer"),
        ("v,1,0.1,0.1,0.5,nan,1,0", r"gt.csv, line 2: invalid ground-truth box"),
        ("v,1,0.1,0.6,0.5,0.5,1,0", r"gt.csv, line 2: invalid ground-truth box .*y1 > y2"),
    ],
)
def test_bad_groundtruth_rows_name_file_and_line(row, message):
    with pytest.raises(ValueError, match=message):
        parse_box_csv(f"v,1,0.1,0.1,0.5,0.5,1,0\n{row}\n".encode(), "gt.csv", groundtruth=True)
