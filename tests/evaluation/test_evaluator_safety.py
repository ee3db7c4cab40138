"""
Evaluator inputs that cannot be right (issue 13): each broken input is built here and must give an
error naming the file / line / argument, or a warning with counts, never a normal-looking mAP; valid
inputs keep the official result (the golden case and the protocol tests in test_frame_map.py).
"""
import json
import math
import random

import numpy as np
import pytest

from ava_eval.csv_io import parse_box_csv, read_box_csv, read_exclusions
from ava_eval.label_map import read_label_map
from ava_eval.cli import main
from ava_eval.frame_map import _heap_top, _select_detections, frame_map
from tests.reference_utils import reference_dir

LABELS = {1: "stand", 2: "sit"}
MAP_TEXT = 'item {\n  name: "stand"\n  id: 1\n}\nitem {\n  name: "sit"\n  id: 2\n}\n'
GT = ["v,1,0.1,0.1,0.5,0.5,1,0", "v,1,0.5,0.5,0.9,0.9,2,1", "v,2,0.1,0.1,0.5,0.5,1,0"]
DET = ["v,1,0.1,0.1,0.5,0.5,1,0.9", "v,1,0.5,0.5,0.9,0.9,2,0.8", "v,2,0.1,0.1,0.5,0.5,1,0.7",
       "v,2,0.6,0.6,0.9,0.9,1,0.95"]


def _table(rows, name, gt=False):
    return parse_box_csv(("\n".join(rows) + "\n").encode(), name, groundtruth=gt)


def _map(gt_rows=GT, det_rows=DET, labels=LABELS):
    return frame_map(_table(gt_rows, "gt.csv", True), _table(det_rows, "det.csv"), labels)


def _files(tmp_path, gt_rows=GT, det_rows=DET, det_bytes=None, label_map=MAP_TEXT):
    (tmp_path / "gt.csv").write_text("\n".join(gt_rows) + "\n")
    (tmp_path / "det.csv").write_bytes(det_bytes if det_bytes is not None
                                       else ("\n".join(det_rows) + "\n").encode())
    (tmp_path / "map.pbtxt").write_text(label_map)
    return ["-g", str(tmp_path / "gt.csv"), "-d", str(tmp_path / "det.csv"),
            "-l", str(tmp_path / "map.pbtxt")]


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_scores_are_refused_with_line_and_count(bad):
    rows = DET[:2] + [f"v,2,0.1,0.1,0.5,0.5,1,{bad}", f"v,2,0.6,0.6,0.9,0.9,2,{bad}"]
    with pytest.raises(ValueError, match=r"det.csv, line 3: score .* not a finite number; 2 such"):
        _map(det_rows=rows)


def test_pixel_boxes_are_refused():
    rows = [r.replace("0.1,0.1,0.5,0.5", "34,20,160,200") for r in DET]
    with pytest.raises(ValueError, match=r"det.csv, line 1: .*outside \[0, 1\]; 2 such.*pixel"):
        _map(det_rows=rows)
    with pytest.raises(ValueError, match=r"gt.csv, line 1: ground-truth box .*pixel"):
        _map(gt_rows=[r.replace("0.1,0.1,0.5,0.5", "34,20,160,200") for r in GT])


def test_xywh_boxes_warn_with_counts(caplog):
    # x, y, w, h (normalized): x2 = w < x1 on most rows; the official rule drops them (kept here),
    # and the warning says how many and what they look like.
    rows = ["v,1,0.5,0.5,0.3,0.3,1,0.9", "v,1,0.6,0.1,0.3,0.4,2,0.8", "v,2,0.5,0.4,0.2,0.2,1,0.7"]
    with caplog.at_level("WARNING"):
        r = _map(det_rows=rows)
    assert r.per_class_AP[1] == 0.0 and r.num_detections[1] == 0
    assert any("3 detection row(s) with x1 >= x2" in m and "x, y, width, height" in m
               for m in caplog.messages)


def test_slightly_outside_boxes_are_scored_as_written_with_a_warning(caplog):
    rows = DET + ["v,1,-0.02,0.1,0.5,1.01,2,0.1"]
    with caplog.at_level("WARNING"):
        r = _map(det_rows=rows)
    assert any("1 detection row(s) with coordinates outside [0, 1]" in m for m in caplog.messages)
    assert r.per_class_AP[2] == 1.0


def test_no_matching_keyframe_wrong_video_ids():
    rows = [r.replace("v,", "video_v,", 1) for r in DET]
    with pytest.raises(ValueError, match=r"none of its 2 key frames .* No video id in common"):
        _map(det_rows=rows)


def test_no_matching_keyframe_shifted_timestamps():
    rows = [r.replace("v,1,", "v,11,").replace("v,2,", "v,12,") for r in DET]
    with pytest.raises(ValueError, match=r"shifted by -10 s, 2 key frames would match"):
        _map(det_rows=rows)


def test_bom_is_dropped_with_a_warning(caplog):
    plain = _map()
    with caplog.at_level("WARNING"):
        bom = frame_map(_table(GT, "gt.csv", True),
                        parse_box_csv(b"\xef\xbb\xbf" + ("\n".join(DET) + "\n").encode(), "det.csv"),
                        LABELS)
    assert bom.per_class_AP == plain.per_class_AP and bom.mAP == plain.mAP
    assert any("byte-order mark" in m for m in caplog.messages)
    # Video ids that differ by a space: nothing matches -> an error that says so.
    rows = [" " + r for r in DET]
    with pytest.raises(ValueError, match="stripping spaces"):
        frame_map(_table(GT, "gt.csv", True), _table(rows, "det.csv"), LABELS)


def test_empty_groundtruth_is_an_error_not_nan(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"no ground-truth box left .* 3 with action ids outside"):
        _map(labels={5: "other"})
    args = _files(tmp_path, gt_rows=[])
    (tmp_path / "gt.csv").write_text("")
    assert main(args) == 2
    err = capsys.readouterr()
    assert "no ground-truth box left" in err.err and "nan" not in err.out


def test_truncated_label_map_is_an_error(tmp_path):
    p = tmp_path / "map.pbtxt"
    p.write_text(MAP_TEXT + 'item {\n  name: "ride"\n')
    with pytest.raises(ValueError, match=r"item #3 \(line 9\) is not closed.*2 complete"):
        read_label_map(p)
    p.write_text(MAP_TEXT[:-2])  # cut before the last closing brace
    with pytest.raises(ValueError, match=r"item #2 .* cut"):
        read_label_map(p)


def test_duplicated_detection_rows_warn_and_keep_the_official_score(caplog):
    rows = DET + [DET[3], DET[3]]
    with caplog.at_level("WARNING"):
        r = _map(det_rows=rows)
    assert any("2 scored detection row(s) repeat another row exactly" in m for m in caplog.messages)
    # Official: every copy of the false positive at 0.95 is scored: ranks FP FP FP TP TP, class 1
    # AP = interpolated precision 2/5 at both recalls (without the copies it is 2/3).
    assert r.per_class_AP[1] == pytest.approx(2 / 5, abs=1e-12)
    assert _map().per_class_AP[1] == pytest.approx(2 / 3, abs=1e-12)


def test_duplicated_groundtruth_rows_warn(caplog):
    with caplog.at_level("WARNING"):
        r = _map(gt_rows=GT + [GT[0]])
    assert any("1 ground-truth row(s) repeat" in m and "line 4" in m for m in caplog.messages)
    assert r.num_gt[1] == 3


def test_cli_errors_name_the_argument(tmp_path, capsys):
    args = _files(tmp_path)
    assert main(["-g", str(tmp_path / "missing.csv")] + args[2:]) == 2
    assert "--groundtruth: file not found" in capsys.readouterr().err
    assert main(args[:2] + ["-d", str(tmp_path)] + args[4:]) == 2
    assert f"--detections: {tmp_path} is a directory" in capsys.readouterr().err
    (tmp_path / "latin1.pbtxt").write_bytes('item {\n  name: "caf\xe9"\n  id: 1\n}\n'.encode("latin-1"))
    assert main(args[:4] + ["-l", str(tmp_path / "latin1.pbtxt")]) == 2
    err = capsys.readouterr().err
    assert "--labelmap" in err and "latin1.pbtxt" in err and "not a UTF-8" in err


def test_cli_outputs_checked_before_scoring(tmp_path, capsys):
    args = _files(tmp_path)
    (tmp_path / "taken").mkdir()
    assert main(args + ["--json", str(tmp_path / "taken")]) == 2
    captured = capsys.readouterr()
    assert "--json" in captured.err and "is a directory" in captured.err
    assert "frame-mAP" not in captured.out  # failed before scoring
    assert main(args + ["--json", str(tmp_path / "det.csv")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(args + ["--json", str(tmp_path / "a" / "b" / "r.json")]) == 0
    assert json.loads((tmp_path / "a" / "b" / "r.json").read_text())["units"] == "percent"


def test_directory_and_encoding_errors_name_the_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_box_csv(tmp_path)
    with pytest.raises(IsADirectoryError, match="label map"):
        read_label_map(tmp_path)
    (tmp_path / "e.csv").write_bytes(b"v\xff,1\n")
    with pytest.raises(ValueError, match=r"e.csv: not a UTF-8"):
        read_exclusions(tmp_path / "e.csv")


def test_fast_decimal_parser_equals_float_on_random_fields():
    rng = random.Random(1)
    fields = []
    for _ in range(20000):
        k = rng.randrange(5)
        if k == 0:
            fields.append(f"{rng.random():.{rng.randrange(0, 9)}f}")
        elif k == 1:
            fields.append(repr(rng.uniform(-2, 2)))
        elif k == 2:
            fields.append(f"{rng.random():.2e}")
        elif k == 3:
            fields.append(rng.choice(["-0", "0.", "-.5", ".5", "5.", "00012.34", "1.000000"]))
        else:
            fields.append(f"-{rng.random() * 10:.{rng.randrange(0, 7)}f}")
    data = "".join(f"v,1,{f},0.1,0.2,{f},1,{f}\n" for f in fields).encode()
    t = parse_box_csv(data, "x.csv")
    ref = np.array([float(f) for f in fields])
    assert t.scores.tobytes() == ref.tobytes()  # bit for bit, signs of zeros included
    assert t.boxes[:, 0].tobytes() == ref.tobytes() and t.boxes[:, 3].tobytes() == ref.tobytes()


def test_tie_at_cut_resolution_equals_the_literal_heap():
    """The vectorized tie-at-cut rule keeps exactly the rows the official heap keeps."""
    rng = np.random.default_rng(3)
    lines = []
    for k in range(300):
        n = int(rng.integers(45, 90))
        scores = rng.choice([0.1, 0.2, 0.3, 0.4, 0.5], size=n, p=[0.3, 0.3, 0.2, 0.1, 0.1])
        for i in range(n):
            x = rng.integers(0, 50) / 100
            # Distinct classes per score level inside a key frame avoid the heap-order fallback.
            lines.append(f"v,{k},{x:.2f},0.1,{x + 0.4:.2f},0.5,{i + 1},{scores[i]:.1f}")
    det = parse_box_csv(("\n".join(lines) + "\n").encode(), "d.csv")
    rows, _ = _select_detections(det, 50)
    by_kf = np.argsort(det.keyframe, kind="stable")
    starts = np.searchsorted(det.keyframe[by_kf], np.arange(300))
    ends = np.append(starts[1:], len(det))
    for k in range(300):
        literal = _heap_top(det.scores, det.labels, det.boxes, by_kf[starts[k]:ends[k]], 50)
        got = rows[det.keyframe[rows] == k]
        assert sorted(got.tolist()) == sorted(literal.tolist()), k
        assert np.array_equal(det.scores[got], det.scores[literal])  # same descending order


def test_golden_case_still_exact_with_all_checks():
    case = reference_dir() / "ava_eval" / "public_small"
    expected = json.loads((case / "expected.json").read_text())
    result = frame_map(read_box_csv(case / "gt.csv", groundtruth=True),
                       read_box_csv(case / "det.csv"),
                       read_label_map(case / "labelmap.pbtxt", require_groups=False),
                       read_exclusions(case / "exclusions.csv"))
    assert result.mAP == expected["mAP"]
    for cid, ap in expected["per_class_AP"].items():
        got = result.per_class_AP[int(cid)]
        assert (ap is None and math.isnan(got)) or got == ap, cid
