"""video-mAP on hand-made tubes with known answers: spatio-temporal IoU, AP, thresholds, linking."""
import numpy as np
import pytest

from acar_d2.evaluation.video_map import (
    Tube,
    gt_tubes_from_dicts,
    link_tubes,
    spatio_temporal_iou,
    video_ap,
    video_map,
)

SQ = [0.0, 0.0, 10.0, 10.0]


def tube(video, label, f0, f1, box=SQ, score=1.0):
    frames = np.arange(f0, f1 + 1)
    return Tube(video, label, frames, np.tile(box, (len(frames), 1)), score)


def test_spatio_temporal_iou_known_values():
    gt = tube("v", 0, 1, 10)
    assert spatio_temporal_iou(gt, tube("v", 0, 1, 10)) == pytest.approx(1.0)
    # half the frames overlap: temporal IoU 5 / 15
    assert spatio_temporal_iou(gt, tube("v", 0, 6, 15)) == pytest.approx(1 / 3)
    # same span, box twice as tall: spatial IoU 0.5 on every frame
    assert spatio_temporal_iou(gt, tube("v", 0, 1, 10, [0, 0, 10, 20])) == pytest.approx(0.5)
    # both: 1/3 * 0.5; disjoint spans and other videos: 0
    assert spatio_temporal_iou(gt, tube("v", 0, 6, 15, [0, 0, 10, 20])) == pytest.approx(1 / 6)
    assert spatio_temporal_iou(gt, tube("v", 0, 11, 20)) == 0.0
    assert spatio_temporal_iou(gt, tube("w", 0, 1, 10)) == 0.0
    # a detection with a hole (frames 1-5 and 8-10): the 2 missing frames count 0 -> 8/10
    holed = Tube("v", 0, [1, 2, 3, 4, 5, 8, 9, 10], np.tile(SQ, (8, 1)))
    assert spatio_temporal_iou(gt, holed) == pytest.approx(0.8)


def test_thresholds_decide_true_positives():
    gt = [tube("v", 0, 1, 10)]
    half_span = [tube("v", 0, 6, 15)]                  # st-IoU 1/3
    tall = [tube("v", 0, 1, 10, [0, 0, 10, 20])]       # st-IoU 0.5
    assert video_ap(gt, half_span, 0.2) == 1.0 and video_ap(gt, half_span, 0.5) == 0.0
    assert video_ap(gt, tall, 0.5) == 1.0 and video_ap(gt, tall, 0.75) == 0.0
    m = video_map(gt, tall)
    assert (m["video_mAP@0.2"], m["video_mAP@0.5"], m["video_mAP@0.75"]) == (100.0, 100.0, 0.0)


def test_ap_known_answer_and_duplicates():
    gt = [tube("a", 0, 1, 10), tube("b", 0, 1, 10)]
    dets = [tube("a", 0, 1, 10, score=0.9),   # TP
            tube("a", 0, 1, 10, score=0.8),   # duplicate of a matched GT: FP
            tube("b", 0, 1, 10, score=0.7)]   # TP
    # precision 1 up to recall 0.5, then 2/3 at recall 1: AP = 0.5 + 0.5 * 2/3
    assert video_ap(gt, dets, 0.5) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # the same detections with the FP ranked last: AP 1
    dets[1].score = 0.1
    assert video_ap(gt, dets, 0.5) == pytest.approx(1.0)
    # a missed GT tube halves the recall
    assert video_ap(gt, [dets[0]], 0.5) == pytest.approx(0.5)


def test_map_over_classes_with_ground_truth():
    gt = [tube("a", 0, 1, 10), tube("a", 1, 1, 10, [20, 20, 30, 30])]
    dets = [tube("a", 0, 1, 10, score=0.9), tube("a", 1, 1, 10, score=0.9),  # class 1 at the wrong place
            tube("a", 2, 1, 10, score=0.5)]                                  # class without GT: ignored
    m = video_map(gt, dets, thresholds=(0.5,), class_names=["x", "y", "z"])
    assert m["AP@0.5-x"] == 100.0 and m["AP@0.5-y"] == 0.0 and "AP@0.5-z" not in m
    assert m["video_mAP@0.5"] == 50.0


def test_linking_follows_actors_and_splits_at_gaps():
    # two actors moving right by 1 px a frame over frames 1..8, plus low-IoU clutter on frame 4
    dets = {}
    for f in range(1, 9):
        boxes = [[f, 0, f + 10, 10], [50 + f, 50, 60 + f, 60]]
        scores = [[0.9, 0.1], [0.2, 0.8]]
        if f == 4:
            boxes.append([100, 100, 110, 110])
            scores.append([0.95, 0.0])
        dets[f] = (np.array(boxes, float), np.array(scores, float))
    tubes = link_tubes("v", dets, min_length=3)
    by_label = {c: [t for t in tubes if t.label == c] for c in (0, 1)}
    # class 0: the first actor's tube spans 1..8 (the clutter is a 1-frame tube, dropped); class 1:
    # both actors stay separate tubes (IoU between them is 0)
    assert [list(t.frames) for t in by_label[0]] == [list(range(1, 9))] * 2
    best0 = max(by_label[0], key=lambda t: t.score)
    np.testing.assert_allclose(best0.boxes[:, 0], np.arange(1, 9))
    assert best0.score == pytest.approx(0.9)
    # frame 5 missing: with max_gap 0 the actor's tube breaks in two; with max_gap 1 it continues
    gap = {f: d for f, d in dets.items() if f != 5}
    assert sorted(len(t.frames) for t in link_tubes("v", gap, max_gap=0) if t.label == 0
                  and t.boxes[0, 0] < 40) == [3, 4]
    assert sorted(len(t.frames) for t in link_tubes("v", gap, max_gap=1) if t.label == 0
                  and t.boxes[0, 0] < 40 and len(t.frames) > 1) == [7]
    # linked detections of a perfect detector score 100 video-mAP against the GT tubes
    gt = [Tube("v", 0, range(1, 9), [[f, 0, f + 10, 10] for f in range(1, 9)])]
    assert video_map(gt, [t for t in tubes if t.label == 0])["video_mAP@0.75"] == 100.0


def test_gt_tubes_from_dataset_dicts():
    dicts = [{"video_id": "v", "timestamp": f,
              "annotations": [{"bbox": [f, 0, f + 5, 5], "action_ids": [3], "person_id": 0}] +
                             ([{"bbox": [0, 0, 1, 1], "action_ids": [7], "person_id": 1}] if f > 2 else [])}
             for f in (1, 2, 3, 4)]
    tubes = sorted(gt_tubes_from_dicts(dicts, action_ids=list(range(1, 25))), key=lambda t: t.label)
    assert [(t.label, list(t.frames)) for t in tubes] == [(2, [1, 2, 3, 4]), (6, [3, 4])]
    with pytest.raises(ValueError, match="strictly increasing"):
        Tube("v", 0, [2, 1], [SQ, SQ])


def test_video_map_of_a_predictions_csv(tmp_path):
    """Perfect frame detections written as the evaluator writes them link into the GT tubes."""
    from ava_eval.csv_io import format_submission_rows
    from acar_d2.evaluation.video_map import video_map_of_predictions

    ids = [1, 2, 3]
    dicts, lines = [], []
    for f in range(1, 7):
        box = np.array([[10.0 + f, 0.0, 30.0 + f, 20.0]])  # pixels of a 40 x 20 frame
        dicts.append({"video_id": "Biking/v_1", "timestamp": f, "width": 40, "height": 20,
                      "annotations": [{"bbox": box[0].tolist(), "action_ids": [2], "person_id": 0}]})
        scores = np.array([[0.1, 0.9, 0.05]])
        lines += format_submission_rows("Biking/v_1", f, box / [40, 20, 40, 20], scores, ids)
    pred = tmp_path / "p.csv"
    pred.write_text("\n".join(lines) + "\n")
    res = video_map_of_predictions(dicts, str(pred), ids, ["a", "b", "c"])
    assert res["video_mAP@0.75"] == pytest.approx(100.0)
    # frames 1-3 detect somebody else (lower score): two tubes, the right one covers half the GT
    # tube (st-IoU 0.5, ranked first), the other one none
    lines = []
    for f in range(1, 7):
        right = f > 3
        box = np.array([[10.0 + f, 0.0, 30.0 + f, 20.0]]) if right else np.array([[0.0, 0.0, 4.0, 4.0]])
        lines += format_submission_rows("Biking/v_1", f, box / [40, 20, 40, 20],
                                        np.array([[0.0, 0.9 if right else 0.5, 0.0]]), ids)
    pred.write_text("\n".join(lines) + "\n")
    res = video_map_of_predictions(dicts, str(pred), ids)
    assert (res["video_mAP@0.2"], res["video_mAP@0.5"], res["video_mAP@0.75"]) == (100.0, 100.0, 0.0)
