"""Frame-mAP: the official golden case, hand-computed cases of each protocol rule, bad input."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ava_eval.cli import main
from ava_eval.evaluate import evaluate_files
from ava_eval.csv_io import parse_box_csv
from ava_eval.label_map import read_label_map
from ava_eval.frame_map import frame_map
from tests.reference_utils import reference_dir

LABELS = {1: "stand", 2: "sit", 3: "ride"}


def _ap(gt_rows, det_rows, excluded=None, labels=LABELS):
    gt = parse_box_csv("\n".join(gt_rows).encode(), "gt.csv", groundtruth=True)
    det = parse_box_csv("\n".join(det_rows).encode(), "det.csv")
    return frame_map(gt, det, labels, excluded or set())


def test_public_small_matches_official_exactly():
    case = reference_dir() / "ava_eval" / "public_small"
    expected = json.loads((case / "expected.json").read_text())
    result = evaluate_files(case / "gt.csv", case / "det.csv", case / "labelmap.pbtxt",
                            case / "exclusions.csv")
    assert abs(result.mAP - expected["mAP"]) < 1e-6, (result.mAP, expected["mAP"])
    for cid, ap in expected["per_class_AP"].items():
        got = result.per_class_AP[int(cid)]
        if ap is None:
            assert math.isnan(got), (cid, got)
        else:
            assert abs(got - ap) < 1e-6, (cid, got, ap)


def test_cli_contract(tmp_path):
    """``python -m ava_eval`` (console command acar-ava-eval): percent, classes by name, plot,
    exact mAP, and neither torch nor detectron2 imported."""
    case = reference_dir() / "ava_eval" / "public_small"
    out = tmp_path / "new" / "deeper" / "r.json"  # missing folders are created before scoring
    code = (  # python -m ava_eval ARGS, then a look at what it imported
        "import runpy, sys\n"
        "sys.argv = ['ava_eval'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('ava_eval', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'detectron2') if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--groundtruth", str(case / "gt.csv"),
         "--detections", str(case / "det.csv"), "--labelmap", str(case / "labelmap.pbtxt"),
         "--exclusions", str(case / "exclusions.csv"), "--json", str(out),
         "--plot", str(tmp_path / "p.png"), "--train-counts", str(case / "gt.csv")],
        capture_output=True, text=True, check=True, cwd=str(reference_dir().parents[1]),
    )
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "heavy: []", proc.stdout
    assert lines[-2].startswith("frame-mAP@0.5 (%): ")
    expected = json.loads((case / "expected.json").read_text())
    assert float(lines[-2].split(": ")[1]) == 100.0 * expected["mAP"]
    data = json.loads(out.read_text())
    assert data["units"] == "percent" and data["frame_mAP"] == 100.0 * expected["mAP"]
    assert data["per_class"]["crouch/kneel"] is None and data["class_ids"]["crouch/kneel"] == 3
    assert data["per_class"]["bend/bow (at the waist)"] == 100.0 * expected["per_class_AP"]["1"]
    assert set(data["per_group"]) == {"pose", "person_object", "person_person"}
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_perfect_and_half_precision():
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0", "v,2,0.1,0.1,0.5,0.5,1,0"]
    # One TP at score 0.9, one FP (wrong place) at 0.8, second GT found at 0.7: AP = (1 + 2/3)/2.
    det = ["v,1,0.1,0.1,0.5,0.5,1,0.9", "v,1,0.6,0.6,0.9,0.9,1,0.8", "v,2,0.1,0.1,0.5,0.5,1,0.7"]
    r = _ap(gt, det)
    assert r.per_class_AP[1] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)
    assert math.isnan(r.per_class_AP[2]) and math.isnan(r.per_class_AP[3])
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)


def test_keyframe_without_gt_counts_as_false_positive():
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0"]
    det = ["w,7,0.1,0.1,0.5,0.5,1,0.95", "v,1,0.1,0.1,0.5,0.5,1,0.9"]
    assert _ap(gt, det).per_class_AP[1] == pytest.approx(0.5)


def test_no_fallback_to_second_best_gt():
    # Two GT; both detections overlap GT A best, so the second is an FP even though it overlaps
    # GT B with IoU >= 0.5 as well (official argmax-without-fallback).
    gt = ["v,1,0.0,0.0,0.4,0.4,1,1", "v,1,0.0,0.0,0.4,0.5,1,0"]
    det = ["v,1,0.0,0.0,0.4,0.41,1,0.9", "v,1,0.0,0.0,0.4,0.42,1,0.8"]
    r = _ap(gt, det)
    assert r.per_class_AP[1] == pytest.approx(0.5)  # 1 TP of 2 GT, precision 1 at that rank


def test_duplicate_gt_lines_are_two_instances():
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0", "v,1,0.1,0.1,0.5,0.5,1,0"]
    det = ["v,1,0.1,0.1,0.5,0.5,1,0.9", "v,1,0.1,0.1,0.5,0.5,1,0.8"]
    assert _ap(gt, det).per_class_AP[1] == pytest.approx(0.5)


def test_exclusions_and_label_map_filter():
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0", "x,3,0.1,0.1,0.5,0.5,1,0", "v,1,0.1,0.1,0.5,0.5,9,0"]
    det = ["x,3,0.6,0.6,0.9,0.9,1,0.99", "v,1,0.1,0.1,0.5,0.5,1,0.9", "v,1,0.1,0.1,0.5,0.5,9,0.95"]
    # Excluding x@3 removes its GT and its (wrong) detection: perfect AP.
    r = _ap(gt, det, excluded={("x", 3)})
    assert r.per_class_AP[1] == pytest.approx(1.0)
    assert r.num_gt[1] == 1
    # Without the exclusion: the FP ranks first and one of two GT is missed.
    assert _ap(gt, det).per_class_AP[1] == pytest.approx(0.25)


def test_top50_cap_across_classes_with_ties_and_invalid_boxes():
    rows = []
    # 49 higher-scored rows of class 2, then an invalid class-1 box (uses a slot, then removed),
    # then the only correct class-1 detection at a tie with the cut score: it is rejected.
    for i in range(49):
        rows.append(f"v,1,0.1,0.1,0.5,0.5,2,{0.9 + i * 1e-4:.4f}")
    rows.append("v,1,0.5,0.5,0.4,0.9,1,0.5")  # x1 > x2: invalid, still takes the 50th slot
    rows.append("v,1,0.1,0.1,0.5,0.5,1,0.5")  # same score as the cut: not strictly greater
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0"]
    assert _ap(gt, rows).per_class_AP[1] == 0.0
    # With a strictly higher score it enters the heap and is a TP.
    rows[-1] = "v,1,0.1,0.1,0.5,0.5,1,0.6"
    assert _ap(gt, rows).per_class_AP[1] == pytest.approx(1.0)


def test_class_with_gt_but_no_detection_is_zero():
    r = _ap(["v,1,0.1,0.1,0.5,0.5,2,0", "v,1,0.1,0.1,0.5,0.5,1,0"], ["v,1,0.1,0.1,0.5,0.5,1,0.9"])
    assert r.per_class_AP[2] == 0.0 and r.mAP == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("video_id,timestamp,x1,y1,x2,y2,action_id,person_id\n", "line 1"),
        ("v,1,0.1,0.1,0.5,0.5,1,0\nv,1,0.1,0.1,0.5\n", "line 2"),
        ("v,1,0.1,0.1,0.5,0.5,1,0\nv,abc,0.1,0.1,0.5,0.5,1,0\n", "line 2"),
    ],
)
def test_malformed_rows_name_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_box_csv(text.encode(), "bad.csv")


def test_inverted_groundtruth_box_names_the_row():
    with pytest.raises(ValueError, match=r"gt.csv, line 2"):
        parse_box_csv(b"v,1,0.1,0.1,0.5,0.5,1,0\nv,1,0.6,0.1,0.5,0.5,1,0\n", "gt.csv",
                      groundtruth=True)


def test_cli_reports_bad_input(tmp_path, capsys):
    (tmp_path / "gt.csv").write_text("v,1,0.1,0.1,0.5,0.5,1,0\n")
    (tmp_path / "det.csv").write_text("v,1,0.1,0.1,0.5,0.5\n")
    (tmp_path / "m.pbtxt").write_text('item {\n  name: "stand"\n  id: 1\n}\n')
    code = main(["-g", str(tmp_path / "gt.csv"), "-d", str(tmp_path / "det.csv"),
                 "-l", str(tmp_path / "m.pbtxt")])
    assert code == 2
    assert "det.csv" in capsys.readouterr().err


def test_label_map_errors(tmp_path):
    p = tmp_path / "m.pbtxt"
    p.write_text('item {\n  name: "a"\n  id: 0\n}\n')
    with pytest.raises(ValueError, match="ids must be >= 1"):
        read_label_map(p)
    p.write_text("nothing here")
    with pytest.raises(ValueError, match="no 'item"):
        read_label_map(p)


def test_vectorized_equals_literal_heap_on_random_ties():
    """Heavy score ties (2-decimal scores): the fast path and the heap fallback agree with a
    per-keyframe literal implementation of the reader + matching."""
    import heapq

    rng = np.random.default_rng(0)
    gt_rows, det_rows = [], []
    for kf in range(40):
        boxes = rng.uniform(0, 0.5, (4, 2))
        for p, (x, y) in enumerate(boxes):
            for c in rng.choice([1, 2, 3], size=2, replace=False):
                gt_rows.append(f"v,{kf},{x:.3f},{y:.3f},{x + 0.4:.3f},{y + 0.4:.3f},{c},{p}")
            for c in (1, 2, 3):
                for _ in range(5):
                    j = rng.uniform(-0.1, 0.1, 2)
                    det_rows.append(f"v,{kf},{x + j[0]:.3f},{y + j[1]:.3f},{x + 0.4:.3f},"
                                    f"{y + 0.4:.3f},{c},{rng.integers(0, 20) / 20:.2f}")
    r = _ap(gt_rows, det_rows)

    # Literal reference, written as the protocol reads.
    dets = {}
    for line in det_rows:
        v, t, x1, y1, x2, y2, c, s = line.split(",")
        heap = dets.setdefault((v, int(t)), [])
        item = (float(s), int(c), float(y1), float(x1), float(y2), float(x2))
        if len(heap) < 50:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    gts = {}
    for line in gt_rows:
        v, t, x1, y1, x2, y2, c, p = line.split(",")
        gts.setdefault((v, int(t)), []).append((float(p), int(c), float(y1), float(x1), float(y2), float(x2)))
    for ap_class in (1, 2, 3):
        scores, tps, ngt = [], [], 0
        for key in gts:
            ngt += sum(1 for g in gts[key] if g[1] == ap_class)
        for key, heap in dets.items():
            g = [x for x in sorted(gts.get(key, []), key=lambda t: -t[0]) if x[1] == ap_class]
            taken = [False] * len(g)
            for d in sorted(heap, key=lambda t: -t[0]):
                if d[1] != ap_class:
                    continue
                tp = False
                if g:
                    ious = []
                    for gg in g:
                        ih = max(0, min(d[4], gg[4]) - max(d[2], gg[2]))
                        iw = max(0, min(d[5], gg[5]) - max(d[3], gg[3]))
                        inter = ih * iw
                        ua = (d[4] - d[2]) * (d[5] - d[3]) + (gg[4] - gg[2]) * (gg[5] - gg[3]) - inter
                        ious.append(inter / ua)
                    b = int(np.argmax(ious))
                    if ious[b] >= 0.5 and not taken[b]:
                        taken[b] = tp = True
                scores.append(d[0])
                tps.append(tp)
        order = np.argsort(np.array(scores))[::-1]
        tp = np.array(tps)[order]
        ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
        prec = np.concatenate([[0], ctp / (ctp + cfp), [0]])
        rec = np.concatenate([[0], ctp / ngt, [1]])
        prec = np.maximum.accumulate(prec[::-1])[::-1]
        i = np.where(rec[1:] != rec[:-1])[0] + 1
        ref = float(np.sum((rec[i] - rec[i - 1]) * prec[i]))
        # Score ties between TP and FP make the official AP order-dependent
        # (docs/EVALUATION_PROTOCOL.md): both use the same concatenation order and the same
        # argsort, so they agree here.
        assert r.per_class_AP[ap_class] == pytest.approx(ref, abs=1e-12), ap_class


def test_tie_at_cut_later_row_evicts_smallest_tuple():
    """Official heap rule: with the heap full, a later higher-scored row evicts the *smallest*
    (score, class, y1, x1, y2, x2) tuple; among rows tied at the minimum score the one with the
    smaller class id goes, whatever their file order."""
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0", "v,1,0.1,0.1,0.5,0.5,2,0"]
    filler = [f"v,1,0.6,0.6,0.9,0.9,3,{0.9 + i * 1e-4:.4f}" for i in range(48)]
    # Two correct rows tied at 0.5 fill slots 49 and 50 (class 2 first in the file), then a
    # higher-scored filler row evicts one: the smaller tuple, i.e. class 1.
    rows = filler + ["v,1,0.1,0.1,0.5,0.5,2,0.5", "v,1,0.1,0.1,0.5,0.5,1,0.5",
                     "v,1,0.6,0.6,0.9,0.9,3,0.99"]
    r = _ap(gt, rows)
    assert r.per_class_AP[1] == 0.0 and r.per_class_AP[2] == pytest.approx(1.0)
    # Swapping the two tied rows in the file changes nothing (not a file-order rule).
    rows[48], rows[49] = rows[49], rows[48]
    r = _ap(gt, rows)
    assert r.per_class_AP[1] == 0.0 and r.per_class_AP[2] == pytest.approx(1.0)


def test_detection_classes_outside_label_map_dropped_with_warning(caplog):
    gt = ["v,1,0.1,0.1,0.5,0.5,1,0"]
    det = ["v,1,0.1,0.1,0.5,0.5,7,0.99", "v,1,0.1,0.1,0.5,0.5,7,0.98",
           "v,1,0.1,0.1,0.5,0.5,1,0.9"]
    with caplog.at_level("WARNING"):
        r = _ap(gt, det)
    assert r.per_class_AP[1] == 1.0 and 7 not in r.per_class_AP
    assert any("det.csv: 2 detection row(s)" in m and "[7]" in m for m in caplog.messages)
