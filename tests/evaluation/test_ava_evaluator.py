"""AVAEvaluator: process/evaluate on fake model outputs equals the CLI on the CSV it wrote."""
import numpy as np
import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog

from acar_d2.evaluation import AVAEvaluator
from ava_eval.evaluate import evaluate_files
from tests.testing_utils import action_output


@pytest.fixture
def tiny_dataset(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text(
        "v,1,0.1,0.1,0.5,0.5,1,0\nv,1,0.1,0.1,0.5,0.5,3,0\nv,1,0.6,0.2,0.9,0.9,2,1\n"
        "v,2,0.1,0.1,0.5,0.5,2,0\nv,3,0.1,0.1,0.5,0.5,1,0\n"
    )
    (tmp_path / "excl.csv").write_text("v,3\n")
    lm = tmp_path / "map.pbtxt"
    lm.write_text("".join(f'item {{\n  name: "{n}"\n  id: {i}\n}}\n'
                          for i, n in [(1, "stand"), (2, "sit"), (3, "ride")]))
    name = f"test_ava_eval_{tmp_path.name}"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(
        action_ids=[1, 2, 3], action_classes=["stand", "sit", "ride"], gt_csv=str(gt),
        label_map=str(lm), exclusions=str(tmp_path / "excl.csv"), evaluator_type="ava",
        class_groups={"pose": [0, 1], "person_object": [2]},
    )
    yield name, tmp_path
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _output(boxes, scores, h=100, w=200):
    return action_output(boxes, scores, (h, w))


def test_evaluator_matches_cli_on_written_csv(tiny_dataset):
    name, tmp = tiny_dataset
    ev = AVAEvaluator(name, output_dir=str(tmp / "out"), distributed=False)
    ev.reset()
    # Key frame 1 (100 x 200 px): person A correct (stand + ride), person B sits.
    ev.process(
        [{"video_id": "v", "timestamp": 1, "height": 100, "width": 200}],
        [_output([[20, 10, 100, 50], [120, 20, 180, 90]], [[0.9, 0.2, 0.8], [0.3, 0.7, 0.1]])],
    )
    ev.process(
        [{"video_id": "v", "timestamp": 2, "height": 100, "width": 200}],
        [_output([[20, 10, 100, 50]], [[0.6, 0.4, 0.05]])],
    )
    res = ev.evaluate()["ava"]
    cli = evaluate_files(tmp / "gt.csv", tmp / "out" / f"predictions_{name}.csv",
                         tmp / "map.pbtxt", tmp / "excl.csv")
    assert res["frame_mAP@0.5"] == pytest.approx(100 * cli.mAP, abs=1e-9)
    # By hand: stand: GT only on v@1 (v@3 excluded); dets 0.9 TP, 0.6 FP (v@2), 0.3 FP -> AP 1.
    assert res["AP-stand"] == pytest.approx(100.0)
    # sit: GT B on v@1 and A on v@2; ranking 0.7 (B, TP), 0.4 (v@2 A, TP), 0.2 (v@1 A, FP) -> 1.
    assert res["AP-sit"] == pytest.approx(100.0)
    assert res["AP-ride"] == pytest.approx(100.0)
    assert res["mAP-pose"] == pytest.approx(100.0)
    lines = (tmp / "out" / f"predictions_{name}.csv").read_text().splitlines()
    assert len(lines) == 9 and lines[0] == "v,0001,0.100,0.100,0.500,0.500,1,0.900000"


def test_evaluator_rejects_wrong_class_count(tiny_dataset):
    name, _ = tiny_dataset
    ev = AVAEvaluator(name, distributed=False)
    with pytest.raises(ValueError, match="3"):
        ev.process([{"video_id": "v", "timestamp": 1, "height": 10, "width": 10}],
                   [_output([[1, 1, 5, 5]], [[0.1, 0.2]])])


def test_wrong_ranking_lowers_map(tiny_dataset):
    name, _ = tiny_dataset
    ev = AVAEvaluator(name, distributed=False)
    ev.process([{"video_id": "v", "timestamp": 1, "height": 100, "width": 200}],
               [_output([[20, 10, 100, 50], [120, 20, 180, 90]], [[0.1, 0.9, 0.8], [0.9, 0.1, 0.1]])])
    res = ev.evaluate()["ava"]
    assert res["frame_mAP@0.5"] < 100.0
    assert res["AP-stand"] == pytest.approx(50.0)


def test_evaluator_uses_the_label_map_fallback(tiny_dataset):
    """A split registered with a label map that is not on disk and a fallback (the builtin AVA
    splits and the packaged class list) is scored with the fallback's classes."""
    from acar_d2.data.datasets.ava import register_ava_instances

    base, tmp = tiny_dataset
    name = base + "_fallback"
    register_ava_instances(name, {}, str(tmp / "gt.csv"), str(tmp / "missing.pbtxt"),
                           exclusions=str(tmp / "excl.csv"),
                           label_map_fallback=str(tmp / "map.pbtxt"))
    try:
        assert MetadataCatalog.get(name).action_classes == ["stand", "sit", "ride"]
        ev = AVAEvaluator(name, distributed=False)
        ev.process(
            [{"video_id": "v", "timestamp": 1, "height": 100, "width": 200}],
            [_output([[20, 10, 100, 50], [120, 20, 180, 90]], [[0.9, 0.2, 0.8], [0.3, 0.7, 0.1]])],
        )
        res = ev.evaluate()["ava"]
        # stand and ride: TP at rank 1 -> AP 1; sit: GT on v@1 (found) and v@2 (missed) -> 0.5.
        assert res["AP-stand"] == pytest.approx(100.0) and res["AP-ride"] == pytest.approx(100.0)
        assert res["AP-sit"] == pytest.approx(50.0)
        assert res["frame_mAP@0.5"] == pytest.approx(100.0 * 2.5 / 3)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
