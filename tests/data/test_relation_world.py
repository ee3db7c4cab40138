"""
The relation world (``write_world(relation=True)``, ``make_synthetic_ava.py --relation``;
datasets/SYNTHETIC.md): its labels follow the rules, its indirect-class negatives share the
positives' first-order cue at least as often as the positives, its benchmark size gives each
indirect class enough validation boxes, and the default world is unchanged by the option.
"""
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from acar_d2.data.synthetic import write_world
from acar_d2.data.synthetic.render import person_box, render_frame
from acar_d2.data.synthetic.relation_rows import ROI_RF_MARGIN, bus_seat_fracs
from acar_d2.data.synthetic.sampling import sample_video
from acar_d2.data.synthetic.scene import FPS
from acar_d2.data.synthetic.writer import EXCLUDE_P, snapshot, video_ids

from .test_synthetic_world import _expected_labels

# sha256 over (relative path, bytes) of every file of write_world(num_videos=3, seed=0,
# write_videos=False), computed with the code before the relation option existed (commit
# 61310c8): the default world of the quickstart and the tests must stay byte-identical.
DEFAULT_WORLD_SHA256 = "81c6226618b945e3bf3507eb152dd98537b8be8b5186de8495c81da30be42935"
BENCHMARK_VIDEOS = 300  # tools/benchmarks/benchmark_relations.py --world relation (its --videos default)


def _tree_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _key_frames(num_videos: int, seed: int = 0):
    """(split, video id, t, shot, snapshot) of every key frame, without rendering any frame."""
    splits = video_ids(num_videos)
    for index, vid in enumerate(splits["train"] + splits["val"]):
        split = "train" if vid in splits["train"] else "val"
        shots = sample_video(seed, index, relation=True)
        noise = np.random.default_rng([seed, index, 1])  # the writer's exclusion draw
        excluded = int(noise.integers(1, 10)) if noise.random() < EXCLUDE_P else None
        for t in range(1, 10):
            shot = next(s for s in shots if s.start <= t * FPS < s.end)
            snap = snapshot(shot, t * FPS)
            snap["excluded"] = t == excluded
            yield split, vid, t, shot, snap


def test_default_world_unchanged(tmp_path):
    write_world(str(tmp_path / "w"), num_videos=3, seed=0, write_videos=False)
    assert _tree_sha256(tmp_path / "w") == DEFAULT_WORLD_SHA256


def test_relation_world_labels_follow_rules(tmp_path):
    world = write_world(str(tmp_path / "rel"), num_videos=4, seed=0, write_videos=False,
                        relation=True)
    assert world["relation"] is True
    assert [c["name"] for c in world["classes"]][7:] == ["ride", "talk_to", "listen"]
    checked = Counter()
    for vid, per_t in world["scenes"].items():
        for t, snap in per_t.items():
            expected = _expected_labels(snap)  # the tests' own implementation of the rules
            for a in snap["actors"]:
                assert set(a["labels"]) == expected[a["person_id"]], (vid, t, a)
                checked.update(a["labels"])
    assert checked["ride"] > 0 and checked["listen"] > 0, checked
    # the frames show what the scene graph says: a key frame differs from the default world's
    assert (tmp_path / "rel" / "frames" / "acaw_0000" / "acaw_0000_000009.jpg").is_file()


def test_bus_seats():
    for length in (64.0, 80.0, 96.0):
        fr = bus_seat_fracs(length)
        xs = [f * length for f in fr]
        assert len(fr) >= 4 and abs(length - xs[0] - 9.0) < 1e-9  # driver 9 px from the front
        assert all(a - b >= 14.0 for a, b in zip(xs, xs[1:])), xs  # >= 14 px apart


def _row_of(y: float, actors: list) -> list:
    return [b for b in actors if abs(b["y"] - y) <= 6]


def test_hard_negatives_and_validation_size():
    """Over the benchmark world (scene graphs only): every negative passenger of a convoy bus
    has another vehicle's driver ahead of it in its row, facing its way (the positives' cue),
    every negative listener of a board pair sees a pointing presenter facing it; such hard
    negatives are at least as frequent as the positives; each indirect class has >= 100
    validation boxes (one box moves its AP by < 1 point)."""
    count = Counter()
    for split, vid, t, shot, snap in _key_frames(BENCHMARK_VIDEOS):
        if snap.get("excluded"):
            continue
        actors = snap["actors"]
        vehicles = {v["id"]: v for v in snap["vehicles"]}
        for a in actors:
            count[(split, "ride")] += "ride" in a["labels"]
            count[(split, "listen")] += "listen" in a["labels"]
            seat = a["seat"]
            if seat and seat["role"] == "passenger" and len(vehicles[seat["vehicle"]]["seat_xs"]) >= 4:
                ahead = [b for b in _row_of(a["y"], actors) if b["seat"]
                         and b["seat"]["role"] == "driver" and b["facing"] == a["facing"]
                         and (b["x"] - a["x"]) * a["facing"] > 0]
                own = [b for b in ahead if b["seat"]["vehicle"] == seat["vehicle"]]
                if own:
                    count["ride_pos"] += 1
                    assert "ride" in a["labels"]
                else:
                    assert ahead and "ride" not in a["labels"], (vid, t, a)
                    count["ride_hard_neg"] += 1
            if "faces" in {p for s, p, o in snap["relations"] if s == f"person:{a['person_id']}"}:
                boards = sorted((b["box"] for b in snap["boards"]
                                 if abs(b["ground_y"] - a["y"]) <= 6), key=lambda b: b[0])
                if len(boards) != 2 or not 17 <= boards[1][0] - boards[0][2] <= 22:
                    continue  # not a board pair (board modules of default cells)
                pointing = [b for b in _row_of(a["y"], actors) if b["arm"] == "point"
                            and b["facing"] == -a["facing"]]
                if "listen" in a["labels"]:
                    count["listen_pos"] += 1
                elif pointing:
                    count["listen_hard_neg"] += 1
    print(dict(count))
    assert count["ride_hard_neg"] >= count["ride_pos"] > 0, count
    assert count["listen_hard_neg"] >= count["listen_pos"] > 0, count
    assert count[("val", "ride")] >= 100 and count[("val", "listen")] >= 100, count


def test_bus_passenger_crop_does_not_show_its_driver():
    """A bus passenger's crop is the same with and without its driver: only the context (the bus
    body between them) connects the two."""
    checked = 0
    for index in range(40):
        shots = sample_video(0, index, relation=True)
        for shot in shots:
            for v in shot.vehicles:
                if not v.seat_fracs:
                    continue
                occ = [p for p in shot.persons if p.seat and p.seat[0] == v.vid]
                driver = [p for p in occ if p.seat[1] == "driver"]
                rear = [p for p in occ if p.seat[1] == "passenger"]
                if not (driver and rear):
                    continue
                p = rear[0]
                without = [q for q in shot.persons if q is not driver[0]]
                x1, y1, x2, y2 = person_box(p, shot.start, shot)
                a = render_frame(shot, shot.start)[y1:y2, x1:x2]
                b = render_frame(shot, shot.start, persons=without)[y1:y2, x1:x2]
                assert a.size and np.array_equal(a, b)
                checked += 1
    assert checked >= 10, checked


def _gap(a: list, b: list) -> float:
    """Horizontal distance between two boxes (0 when they overlap in x)."""
    return max(a[0] - b[2], b[0] - a[2], 0.0)


def test_links_lie_outside_the_roi_receptive_field():
    """Every ride / listen candidate of the benchmark world (positive or negative): the evidence
    that decides it - the driver seat of its bus (and whoever sits there), its board and the
    presenter of the row - starts more than ROI_RF_MARGIN px past the actor's box, outside the
    receptive field of its RoI feature with the benchmark backbone."""
    seen = Counter()
    for split, vid, t, shot, snap in _key_frames(60):
        actors = snap["actors"]
        vehicles = {v["id"]: v for v in snap["vehicles"]}
        for a in actors:
            if a["seat"] and a["seat"]["role"] == "passenger":
                v = vehicles[a["seat"]["vehicle"]]
                drv_x = v["seat_xs"][0]
                assert abs(drv_x - a["x"]) - 7.0 - (a["box"][2] - a["box"][0]) / 2 > ROI_RF_MARGIN
                for b in actors:
                    if b["seat"] and b["seat"]["role"] == "driver" and abs(b["y"] - a["y"]) <= 6:
                        assert _gap(a["box"], b["box"]) > ROI_RF_MARGIN, (vid, t, a, b)
                seen["passenger"] += 1
            me = f"person:{a['person_id']}"
            faced = [o for s, p, o in snap["relations"] if s == me and p == "faces"]
            if faced:
                for bd in snap["boards"]:
                    if abs(bd["ground_y"] - a["y"]) <= 6:
                        assert _gap(a["box"], bd["box"]) > ROI_RF_MARGIN, (vid, t, a, bd)
                for b in actors:
                    if b["arm"] == "point" and abs(b["y"] - a["y"]) <= 6:
                        assert _gap(a["box"], b["box"]) > ROI_RF_MARGIN, (vid, t, a, b)
                seen["listener"] += 1
    assert seen["passenger"] > 100 and seen["listener"] > 100, seen


def test_roi_rf_margin_matches_the_benchmark_backbone():
    """ROI_RF_MARGIN is the benchmark backbone's receptive field (half of it, plus one cell of
    RoIAlign's bilinear reach) in frame px: the input gradient of one res5 unit of SlowFast R10
    (res5 undilated, stride 1) is non-zero on exactly 75 input px."""
    import torch

    from acar_d2.modeling.backbone.slowfast import SlowFast

    torch.manual_seed(0)
    net = SlowFast(depth=10, width=8, res5_dilation=1, res5_stride=1, norm="FrozenBN",
                   fusion_kernel_size=5).eval()
    clip = torch.rand(1, 3, 8, 160, 160, requires_grad=True)
    feats = net(clip)
    assert feats["slow"].shape[-1] == 10  # output stride 16
    unit = sum(f[0, :, :, 5, 5].sum() for f in feats.values())
    (grad,) = torch.autograd.grad(unit, clip)
    cols = torch.nonzero(grad[0].abs().sum(dim=(0, 1, 2)) > 0).flatten()
    rows = torch.nonzero(grad[0].abs().sum(dim=(0, 1, 3)) > 0).flatten()
    rf = int(cols.max() - cols.min() + 1)
    assert rf == int(rows.max() - rows.min() + 1) == 75
    assert abs(ROI_RF_MARGIN - (rf / 2 + 16) * 120 / 128) < 1e-9
