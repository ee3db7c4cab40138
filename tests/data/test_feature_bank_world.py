"""
The long-range option of the synthetic world (``--long-range``, datasets/SYNTHETIC.md): the class
"left_behind" whose evidence lies outside the clip. Its positives and negatives are pixel-identical
over the whole clip of every key frame from t = 3 s on (the partner shows only >= 2 s before the
key frame), labels follow the rule in world.json, and the default world does not change.
"""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from acar_d2.data.synthetic import FPS, Person, Shot, render_frame, snapshot
from acar_d2.data.synthetic.sampling import sample_video
from acar_d2.data.synthetic.scene import CLASSES, LEAVE_FRAME, LONG_RANGE_CLASS, world_classes

REPO = Path(__file__).resolve().parents[2]


def _parting(with_partner: bool) -> Shot:
    stayer = Person(1, 40.0, 108.0, 1.0, "stand", 1, (40, 90, 200),
                    partner=2 if with_partner else None)
    persons = [stayer, Person(3, 120.0, 50.0, 1.0, "stand", -1, (20, 160, 170))]  # bystander
    if with_partner:
        persons.append(Person(2, 56.0, 108.0, 1.1, "stand", -1, (200, 40, 40),
                              leaves_at=LEAVE_FRAME))
    return Shot(0, 10 * FPS, persons, [], [], (200, 200, 190), (50, 108))


def _labels(shot, frame, pid=1):
    return next(a["labels"] for a in snapshot(shot, frame)["actors"] if a["person_id"] == pid)


def test_evidence_lies_outside_the_clip():
    pos, neg = _parting(True), _parting(False)
    # t = 1 s: the pair talks (the partner is still there at the key frame)
    assert _labels(pos, FPS) == ["stand", "talk_to"] and _labels(neg, FPS) == ["stand"]
    for t in range(2, 10):
        assert _labels(pos, t * FPS) == ["stand", LONG_RANGE_CLASS.name], t
        assert _labels(neg, t * FPS) == ["stand"], t
        assert 2 not in {a["person_id"] for a in snapshot(pos, t * FPS)["actors"]}
    # the clip of key time t (8 frames at stride 2: frames 8t-8 .. 8t+6) is identical from t = 3 on:
    # the partner's last frame (8) is 16 frames = 2 s before the key frame 24
    for t in range(3, 10):
        for k in range(t * FPS - 8, t * FPS + 8):
            assert np.array_equal(render_frame(pos, k), render_frame(neg, k)), (t, k)
    assert t * FPS - (LEAVE_FRAME - 1) >= 2 * FPS
    # ... and differs where the partner is visible
    assert not np.array_equal(render_frame(pos, LEAVE_FRAME - 1), render_frame(neg, LEAVE_FRAME - 1))


def test_default_world_has_no_trace_of_the_option():
    assert world_classes(False) == CLASSES and len(CLASSES) == 10
    assert world_classes(True)[-1] == LONG_RANGE_CLASS and LONG_RANGE_CLASS.id == 11
    for index in range(6):
        for shot in sample_video(0, index):
            assert all(p.leaves_at is None and p.partner is None for p in shot.persons)
            assert all("left_by" not in a for a in snapshot(shot, shot.start + FPS)["actors"])


@pytest.fixture(scope="module")
def lr_world(tmp_path_factory):
    """The command line with --long-range (run in this process: no second interpreter start)."""
    spec = importlib.util.spec_from_file_location("make_synthetic_ava",
                                                  REPO / "tools" / "make_synthetic_ava.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path_factory.mktemp("lr") / "aca_world_lr"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert tool.main(["--out", str(out), "--videos", "3", "--seed", "2", "--long-range",
                          "--stats", "--no-videos"]) == 0
    return out, buf.getvalue()


def test_option_world_files_and_rule(lr_world):
    out, printed = lr_world
    world = json.loads((out / "world.json").read_text())
    assert world["long_range"] is True and world["shot_s"] == world["duration_s"]
    assert [c["name"] for c in world["classes"]][-1] == "left_behind"
    assert (out / "annotations/label_map.pbtxt").read_text().count("item {") == 11
    assert "left_behind" in printed
    positives = 0
    for vid, scenes in world["scenes"].items():
        talked = {}  # stayer -> partner seen at t = 1 with a faces_person relation
        for s, p, o in scenes["1"]["relations"]:
            if p == "faces_person":
                talked.setdefault(int(s.split(":")[1]), set()).add(int(o.split(":")[1]))
        for t, snap in scenes.items():
            present = {a["person_id"] for a in snap["actors"]}
            for a in snap["actors"]:
                lb = a.get("left_by")
                assert ("left_behind" in a["labels"]) == (lb is not None), (vid, t, a)
                if lb is not None:  # the partner talked with it at t = 1 and is gone now
                    assert int(t) >= 2 and lb not in present and lb in talked[a["person_id"]]
                    positives += 1
    assert positives > 0
    rows = (out / "annotations/train.csv").read_text().splitlines()
    rows += (out / "annotations/val.csv").read_text().splitlines()
    assert any(r.split(",")[6] == "11" for r in rows)


def test_benchmark_verdicts():
    """tools/benchmarks/benchmark_feature_bank.py: mean +- half-range per head and the two verdicts."""
    spec = importlib.util.spec_from_file_location("benchmark_feature_bank",
                                                  REPO / "tools" / "benchmarks" / "benchmark_feature_bank.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def runs(values):
        return [{"frame_mAP": 50.0, "per_class": {"left_behind": v}, "far_AP": v, "minutes": 1.0}
                for v in values]

    text = bench.format_results({"acar": runs([40, 44]), "acfb": runs([60, 70]),
                                 "lfb": runs([45, 47])})
    assert "| acfb | 2 | 50.00 ± 0.00 | 65.00 ± 5.00 |" in text
    assert ("acfb - ACAR on left_behind: +23.00 (seed spread 5.00): met; t >= 3 s: +23.00 "
            "(spread 5.00, claim >= +5 beyond it: met)") in text
    assert "or below: met" in text
    text = bench.format_results({"acar": runs([40, 60]), "acfb": runs([52, 54]),
                                 "lfb": runs([70, 70]), "acfb_place": runs([56, 60])})
    assert "+3.00 (seed spread 10.00): NOT met" in text and "or below: NOT met" in text
    # +8 at t >= 3 s but within the spread of 10: the claim is not met
    assert "acfb_place - ACAR on left_behind: +8.00 (seed spread 10.00): NOT met; t >= 3 s: +8.00" in text


def test_bank_ablation_zeroes_the_window_only():
    """--bank-ablation: the wrapped test loader zeroes each clip's bank features and nothing else
    (the loader's own tensors untouched), and the table reports bank vs zeroed per seed."""
    import torch

    spec = importlib.util.spec_from_file_location("benchmark_feature_bank",
                                                  REPO / "tools" / "benchmarks" / "benchmark_feature_bank.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    feats = torch.ones(3, 4, 2, 2, dtype=torch.float16)
    batch = [{"clip": torch.ones(1), "feature_bank": {"features": feats,
                                                      "valid_sizes": torch.tensor([[2, 2]] * 3),
                                                      "times": torch.tensor([-1, 0, 1])}}]
    (out,) = list(bench._ZeroedBank([batch]))
    bank = out[0]["feature_bank"]
    assert bank["features"].shape == feats.shape and bank["features"].dtype == torch.float16
    assert not bank["features"].any() and bool(feats.all())  # zeroed copy, original kept
    assert bank["times"].tolist() == [-1, 0, 1] and out[0]["clip"].item() == 1.0
    assert len(bench._ZeroedBank([batch, batch])) == 2

    def run(v, z):
        return {"per_class": {"left_behind": v}, "far_AP": v + 1,
                "zeroed_bank": {"left_behind": z, "far_AP": z + 1, "frame_mAP": 0.0}}

    text = bench.format_ablation({"acar": [], "acfb": [run(50, 40), run(60, 60)], "lfb": []})
    assert "| acfb | 55.00 | 50.00 | +5.00 | 56.00 | 51.00 | 50.0 / 40.0, 60.0 / 60.0 |" in text
