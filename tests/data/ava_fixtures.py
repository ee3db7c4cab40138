"""
Tiny AVA-format file sets written into a temp dir for the data tests (a few frames per video).

Frame k of every video is a uniform gray image of value ``frame_value(k)`` with a white
rectangle drawn where ``BRIGHT_BOX`` (normalized) says, so tests can tell which frame was read and
whether boxes and pixels moved together.
"""
import os
import pickle
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

FPS = 4
FIRST_SECOND = 900
NUM_FRAMES = 16  # 4 s at 4 fps: key frames 900..903 -> frames 0, 4, 8, 12
# video id -> (height, width): two sizes, so per-video size reading is checked.
VIDEOS: Dict[str, Tuple[int, int]] = {"vidA": (24, 32), "vidB": (32, 24)}
BRIGHT_BOX = (0.125, 0.25, 0.5, 0.75)  # x1, y1, x2, y2 of the white rectangle

LABEL_MAP = """item {
  name: "stand"
  id: 12
  label_type: PERSON_MOVEMENT
}
item {
  name: "bend/bow (at the waist)"
  id: 1
  label_type: PERSON_MOVEMENT
}
item {
  name: "carry/hold (an object)"
  id: 17
  label_type: OBJECT_MANIPULATION
}
item {
  name: "talk to (e.g., self, a person, a group)"
  id: 79
  label_type: PERSON_INTERACTION
}
"""

# video, timestamp, x1, y1, x2, y2, action, person
GT_ROWS: List[tuple] = [
    ("vidA", 900, 0.125, 0.25, 0.5, 0.75, 12, 0),
    ("vidA", 900, 0.125, 0.25, 0.5, 0.75, 17, 0),
    ("vidA", 900, 0.6, 0.1, 0.9, 0.9, 1, 1),
    ("vidA", 901, 0.125, 0.25, 0.5, 0.75, 79, 0),
    ("vidB", 902, 0.0, 0.0, 1.0, 1.0, 12, 3),
    ("vidB", 903, 0.2, 0.2, 0.4, 0.4, 1, 4),
]
EXCLUDED = [("vidB", 903)]
# proposals: key -> rows x1, y1, x2, y2, score (normalized)
PROPOSALS = {
    ("vidA", 900): [(0.13, 0.25, 0.5, 0.75, 0.95), (0.6, 0.1, 0.9, 0.9, 0.5), (0.0, 0.0, 0.1, 0.1, 0.99)],
    ("vidA", 902): [(0.1, 0.1, 0.3, 0.3, 0.9)],  # proposal-only key frame
}


def frame_value(k: int) -> int:
    return 10 + 12 * k


def frame_image(k: int, hw: Tuple[int, int]) -> np.ndarray:
    h, w = hw
    img = np.full((h, w, 3), frame_value(k), dtype=np.uint8)
    x1, y1, x2, y2 = BRIGHT_BOX
    img[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)] = 255
    return img


def write_csv(path: Path, rows) -> str:
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return str(path)


def make_ava_world(root: Path, with_videos: bool = False) -> Dict[str, str]:
    """Write the file set; returns the paths by role."""
    frames = root / "frames"
    for vid, hw in VIDEOS.items():
        (frames / vid).mkdir(parents=True)
        for k in range(NUM_FRAMES):
            Image.fromarray(frame_image(k, hw)).save(frames / vid / f"{vid}_{k + 1:06d}.jpg", quality=95)
    lists = root / "frame_lists"
    lists.mkdir()
    lines = ["original_vido_id video_idx frame_id path labels"]
    for i, vid in enumerate(VIDEOS):
        lines += [f"{vid} {i} {k} {vid}/{vid}_{k + 1:06d}.jpg \"\"" for k in range(NUM_FRAMES)]
    (lists / "train.csv").write_text("\n".join(lines) + "\n")
    ann = root / "annotations"
    ann.mkdir()
    (ann / "label_map.pbtxt").write_text(LABEL_MAP)
    paths = {
        "root": str(root),
        "frames": str(frames),
        "frame_list": str(lists / "train.csv"),
        "label_map": str(ann / "label_map.pbtxt"),
        "annotations": write_csv(ann / "train.csv", GT_ROWS),
        "exclusions": write_csv(ann / "excluded.csv", EXCLUDED),
        "proposals_csv": write_csv(
            ann / "predicted_boxes.csv",
            [(v, t, *r[:4], "", r[4]) for (v, t), rows in PROPOSALS.items() for r in rows],
        ),
    }
    pkl = {f"{v},{t:04d}": np.array(rows, dtype=np.float64) for (v, t), rows in PROPOSALS.items()}
    with open(ann / "dense_proposals.pkl", "wb") as f:
        pickle.dump(pkl, f)
    paths["proposals_pkl"] = str(ann / "dense_proposals.pkl")
    if with_videos:
        from acar_d2.data.video_io import write_video

        (root / "videos").mkdir()
        for vid, hw in VIDEOS.items():
            write_video(str(root / "videos" / f"{vid}.mp4"), [frame_image(k, hw) for k in range(NUM_FRAMES)], FPS)
        paths["videos"] = str(root / "videos")
    return paths


def load_kwargs(paths: Dict[str, str], **overrides) -> dict:
    kw = dict(
        frames=paths["frames"],
        exclusions=paths["exclusions"],
        proposals=paths["proposals_pkl"],
        fps=FPS,
        first_second=FIRST_SECOND,
    )
    kw.update(overrides)
    return kw
