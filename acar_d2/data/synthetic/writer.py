"""
Writer of the synthetic aca_world: renders every video and writes the AVA file set (the layout
of docs/ARCHITECTURE.md, "the synthetic world layout") so the AVA registration code reads it.

Everything is a function of (seed, video index): the same seed gives byte-identical CSVs, JSON
and JPEG frames; video i is the same whatever the number of videos.
"""
import csv
import io
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from ..video_io import write_video
from .render import person_box, render_frame
from .rules import derive_labels, derive_relations
from .sampling import sample_video
from .scene import (CLASSES, FACE_BOARD_DIST, FPS, HEIGHT, WIDTH, Shot, person_state,
                    visible_persons, world_classes)

__all__ = ["snapshot", "write_world", "world_stats", "format_stats", "video_ids", "split_of"]

LABEL_TYPES = {"pose": "PERSON_MOVEMENT", "person_object": "OBJECT_MANIPULATION",
               "person_person": "PERSON_INTERACTION"}
# Fixed train/val split ratio: the last 20% of the videos (at least one) are val.
VAL_FRACTION = 0.2
# Detection noise of the proposals (realistic person detector, ACAR Sec. 4.1 uses detections
# with score >= 0.85 at test time): true positives score U(0.85, 1.0), boxes jittered by up to
# JITTER of their size, MISS_P of the people missed, 0-2 false positives scoring U(0.3, 0.9).
JITTER, MISS_P, FP_SCORE = 0.06, 0.04, (0.3, 0.9)
# Probability that a video has one excluded key frame (AVA excluded timestamps: no GT rows).
EXCLUDE_P = 0.15
JPEG_QUALITY = 90


def video_ids(num_videos: int) -> dict:
    """Split -> video ids; val takes the last ``max(1, round(0.2 * N))`` videos."""
    ids = [f"acaw_{i:04d}" for i in range(num_videos)]
    n_val = max(1, int(round(VAL_FRACTION * num_videos))) if num_videos > 1 else 0
    return {"train": ids[: num_videos - n_val], "val": ids[num_videos - n_val:]}


def split_of(video_id: str, splits: dict) -> str:
    return next(s for s, ids in splits.items() if video_id in ids)


def _shot_at(shots: list, frame: int) -> Shot:
    return next(s for s in shots if s.start <= frame < s.end)


def snapshot(shot: Shot, frame: int) -> dict:
    """
    Scene graph of one key frame (stored in world.json, read back by the tests).

    Returns:
        dict: "frame_index", "actors" (person_id, box [x1, y1, x2, y2] px, x, y, scale, pose,
        facing, arm, holding, seat {vehicle, role} | None, labels), "vehicles" (id, box,
        facing, seat_xs: driver seat first), "boards" (id, box, ground_y), "relations".
    """
    actors = []
    by_pid = {p.pid: p for p in shot.persons}
    for p in visible_persons(shot.persons, frame):
        x, facing, _ = person_state(p, frame, shot)
        actors.append({
            "person_id": p.pid, "box": person_box(p, frame, shot), "x": round(x, 3),
            "y": round(p.y, 3), "scale": round(p.scale, 4), "pose": p.pose, "facing": facing,
            "arm": p.arm, "holding": p.holding,
            "seat": None if p.seat is None else {"vehicle": p.seat[0], "role": p.seat[1]},
        })
        if p.partner is not None:  # long-range option only: whether the partner has left
            gone = frame >= by_pid[p.partner].leaves_at
            actors[-1]["left_by"] = p.partner if gone else None
    vehicles = [{"id": v.vid, "box": [round(c, 3) for c in v.box()], "facing": v.facing,
                 "seat_xs": [round(x, 3) for x in v.seat_xs()]} for v in shot.vehicles]
    boards = [{"id": b.bid, "box": [round(c, 3) for c in b.box()], "ground_y": round(b.ground, 3)}
              for b in shot.boards]
    relations = derive_relations(actors, vehicles, boards, shot.face_board_dist)
    labels = derive_labels(actors, relations)
    for a in actors:
        a["labels"] = labels[a["person_id"]]
    out = {"frame_index": frame, "actors": actors, "vehicles": vehicles, "boards": boards,
           "relations": relations}
    if shot.face_board_dist != FACE_BOARD_DIST:  # the relation world's longer face distance
        out["face_board_dist"] = shot.face_board_dist
    return out


def _proposals(rng: np.random.Generator, actors: list) -> np.ndarray:
    """Noisy person detections (R, 5) [x1, y1, x2, y2, score], normalized, sorted by score."""
    rows = []
    for a in actors:
        if rng.random() < MISS_P:
            continue
        x1, y1, x2, y2 = a["box"]
        w, h = x2 - x1, y2 - y1
        j = rng.uniform(-JITTER, JITTER, size=4) * np.array([w, h, w, h])
        b = np.clip(np.array([x1, y1, x2, y2], dtype=np.float64) + j, 0, [WIDTH, HEIGHT] * 2)
        rows.append([*b, rng.uniform(0.85, 1.0)])
    for _ in range(int(rng.integers(0, 3))):
        w, h = rng.uniform(8, 24), rng.uniform(12, 30)
        x1, y1 = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        rows.append([x1, y1, x1 + w, y1 + h, rng.uniform(*FP_SCORE)])
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    arr[:, :4] /= [WIDTH, HEIGHT, WIDTH, HEIGHT]
    return arr[np.argsort(-arr[:, 4], kind="stable")].astype(np.float32)


def _write_mp4(path: Path, frames: list) -> None:
    # crf 12 / 2 Mbit keep the small sprites within a few grey levels of the JPEG frames.
    write_video(str(path), frames, FPS, crf=12, bit_rate=2_000_000)


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def write_world(out: str, num_videos: int = 60, seed: int = 0, duration_s: int = 10,
                shot_s: int = 5, write_videos: bool = True, long_range: bool = False,
                relation: bool = False) -> dict:
    """
    Generate the world into ``out`` (created; existing files are overwritten).

    Args:
        out (str): output folder (``$ACAR_DATASETS/aca_world``).
        num_videos (int): total videos; 20% (at least one) go to val.
        seed (int): world seed.
        duration_s (int): seconds per video (key frames at 1 .. duration_s - 1).
        shot_s (int): seconds per shot (layout changes at each shot boundary).
        write_videos (bool): also write ``videos/<id>.mp4``.
        long_range (bool): the long-range option (datasets/SYNTHETIC.md): the class
            "left_behind" (id 11) and its parting module; one shot per video. False = the
            default world, byte for byte.
        relation (bool): the relation world (datasets/SYNTHETIC.md): rows are convoys and
            board pairs whose indirect-class negatives share the positives' first-order cue.
    Returns:
        dict: the content of world.json.
    """
    assert num_videos >= 1, f"num_videos must be >= 1, got {num_videos}"
    root = Path(out)
    # no videos/ folder without mp4s: the registration uses the folder's presence to offer
    # INPUT.CLIP.SOURCE "video"
    for sub in ("frames", "frame_lists", "annotations") + (("videos",) if write_videos else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    splits = video_ids(num_videos)
    classes = world_classes(long_range)
    if long_range:
        shot_s = duration_s  # one shot: the partner's exit stays in the same layout
    names = {c.name: c.id for c in classes}
    scenes, gt, excl, props, frame_rows = {}, {}, {}, {}, {}
    for index, vid in enumerate(splits["train"] + splits["val"]):
        split = split_of(vid, splits)
        shots = sample_video(seed, index, duration_s, shot_s, long_range, relation)
        rows = _write_video_frames(root, vid, shots, duration_s * FPS, write_videos)
        frame_rows.setdefault(split, []).extend(
            (vid, splits[split].index(vid), k, name) for k, name in rows)
        noise = np.random.default_rng([seed, index, 1])
        excluded = ([int(noise.integers(1, duration_s))] if noise.random() < EXCLUDE_P else [])
        excl.setdefault(split, []).extend((vid, t) for t in excluded)
        scenes[vid] = {}
        for t in range(1, duration_s):
            snap = snapshot(_shot_at(shots, t * FPS), t * FPS)
            snap["excluded"] = t in excluded
            scenes[vid][str(t)] = snap
            props.setdefault(split, {})[f"{vid},{t:04d}"] = _proposals(noise, snap["actors"])
            if t in excluded:
                continue
            for a in snap["actors"]:
                x1, y1, x2, y2 = a["box"]
                for name in a["labels"]:
                    gt.setdefault(split, []).append(
                        [vid, f"{t:04d}", _fmt(x1 / WIDTH), _fmt(y1 / HEIGHT), _fmt(x2 / WIDTH),
                         _fmt(y2 / HEIGHT), str(names[name]), str(a["person_id"])])
    _write_annotations(root, splits, gt, excl, props, frame_rows, classes)
    world = {
        "fps": FPS, "first_second": 0, "height": HEIGHT, "width": WIDTH, "seed": seed,
        "duration_s": duration_s, "shot_s": shot_s, "splits": splits,
        "classes": [{"id": c.id, "name": c.name, "group": c.group, "indirect": c.indirect,
                     "rule": c.rule} for c in classes],
        "scenes": scenes,
    }
    if long_range:
        world["long_range"] = True
    if relation:
        world["relation"] = True
    with open(root / "world.json", "w") as f:
        json.dump(world, f, sort_keys=True, separators=(",", ":"))
    return world


def _write_video_frames(root: Path, vid: str, shots: list, num_frames: int,
                        write_videos: bool) -> list:
    """Render one video: its JPEG frames (and mp4); returns ``(k, path below frames/)`` of each."""
    frame_dir = root / "frames" / vid
    frame_dir.mkdir(parents=True, exist_ok=True)
    frames, rows = [], []
    for k in range(num_frames):
        arr = render_frame(_shot_at(shots, k), k)
        frames.append(arr)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=JPEG_QUALITY)
        (frame_dir / f"{vid}_{k + 1:06d}.jpg").write_bytes(buf.getvalue())
        rows.append((k, f"{vid}/{vid}_{k + 1:06d}.jpg"))
    if write_videos:
        _write_mp4(root / "videos" / f"{vid}.mp4", frames)
    return rows


def _write_csv(path: Path, rows: list) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _write_annotations(root: Path, splits: dict, gt: dict, excl: dict, props: dict,
                       frame_rows: dict, classes: tuple = CLASSES) -> None:
    ann = root / "annotations"
    with open(ann / "label_map.pbtxt", "w") as f:
        for c in classes:  # AVA multi-line layout (the official reader needs the 2-space indent)
            f.write(f'item {{\n  name: "{c.name}"\n  id: {c.id}\n'
                    f"  label_type: {LABEL_TYPES[c.group]}\n}}\n")
    for split in ("train", "val"):
        _write_csv(ann / f"{split}.csv", gt.get(split, []))
        _write_csv(ann / f"{split}_excluded_timestamps.csv",
                   [[v, f"{t:04d}"] for v, t in excl.get(split, [])])
        boxes = []
        for key, arr in props.get(split, {}).items():
            vid, ts = key.split(",")
            boxes += [[vid, ts, *(_fmt(c) for c in r[:4]), "", f"{r[4]:.6f}"] for r in arr]
        _write_csv(ann / f"{split}_predicted_boxes.csv", boxes)
        with open(ann / f"dense_proposals_{split}.pkl", "wb") as f:
            pickle.dump(props.get(split, {}), f, protocol=4)
        with open(root / "frame_lists" / f"{split}.csv", "w") as f:
            f.write("original_vido_id video_idx frame_id path labels\n")
            for vid, idx, k, path in frame_rows.get(split, []):
                f.write(f'{vid} {idx} {k} {path} ""\n')


def world_stats(world: dict) -> dict:
    """Per split and class name: number of positive (box, key frame) instances, excluded frames
    left out; plus "key_frames" and "boxes" counts."""
    out = {}
    for split, vids in world["splits"].items():
        cnt = Counter()
        for vid in vids:
            for snap in world["scenes"][vid].values():
                if snap["excluded"]:
                    continue
                cnt["key_frames"] += 1
                for a in snap["actors"]:
                    cnt["boxes"] += 1
                    cnt.update(a["labels"])
        out[split] = cnt
    return out


def format_stats(world: dict) -> str:
    """A table of the class list with per-split positive counts."""
    st = world_stats(world)
    lines = [f"{'id':>3} {'name':<9} {'group':<14} {'indirect':<8} {'train':>6} {'val':>6}"]
    for c in world["classes"]:
        lines.append(f"{c['id']:>3} {c['name']:<9} {c['group']:<14} {str(c['indirect']):<8} "
                     f"{st['train'][c['name']]:>6} {st['val'][c['name']]:>6}")
    for k in ("boxes", "key_frames"):
        lines.append(f"{'':>3} {k:<9} {'':<14} {'':<8} {st['train'][k]:>6} {st['val'][k]:>6}")
    return "\n".join(lines)
