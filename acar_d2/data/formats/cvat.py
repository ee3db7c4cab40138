"""
CVAT "for video 1.1" XML exports <-> AVA annotation rows.

How a CVAT video annotation maps onto AVA (the convention users label with):

- one ``<track>`` = one person; its ``id`` is the AVA ``person_id``;
- a box's actions are the label-map classes named by its ``<attribute>`` children: a checkbox
  attribute whose name is a class name and whose value is ``true``, or an attribute named
  ``action`` / ``actions`` whose value is a class name (several separated by ``;``); a track whose
  ``label`` is a class name adds that class to all its boxes;
- key frames: AVA annotates one frame per second, so only boxes on frames ``f`` with
  ``f % fps == 0`` are kept, timestamp ``first_second + f // fps``; boxes with ``outside="1"``
  are skipped; pixel boxes are normalized by ``<original_size>`` of the task;
- a box without any action is kept with action id 0 only if ``keep_unlabeled`` (AVA has no such
  rows; the default drops it).

Class names are matched case-insensitively against the label map. No detectron2 import.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Dict, Iterable, List, Optional

from ava_eval.csv_io import write_ava_csv
from ava_eval.label_map import read_label_map

__all__ = ["read_cvat_video", "cvat_video_to_ava_csv", "write_cvat_video"]


def _size(root, path) -> tuple:
    w, h = root.findtext(".//original_size/width"), root.findtext(".//original_size/height")
    if w is None or h is None:
        raise ValueError(f"{path}: no <original_size><width>/<height> in <meta>; export with "
                         "'CVAT for video 1.1' (boxes are normalized by the frame size)")
    return int(w), int(h)


def read_cvat_video(path, label_map, video_id: str, fps: Optional[float] = None,
                    first_second: int = 0, keep_unlabeled: bool = False) -> List[tuple]:
    """
    Read a CVAT for video 1.1 XML into AVA rows ``(video_id, timestamp, x1, y1, x2, y2,
    action_id, person_id)``, sorted by time, person, action.

    Args:
        label_map: pbtxt whose class names the attributes / labels use.
        fps: frames per second of the annotated video (None: 30).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CVAT export not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not an XML file ({e})") from None
    if root.find("track") is None and root.find("image") is not None:
        raise ValueError(f"{path}: a CVAT *images* export; export the task as 'CVAT for video 1.1'")
    lmap = read_label_map(label_map, require_groups=False)
    by_name = {n.lower(): c for c, n in zip(lmap.ids, lmap.names)}
    fps = 30.0 if fps is None else float(fps)
    step = int(round(fps))
    width, height = _size(root, path)
    rows = []
    for track in root.iter("track"):
        pid = int(track.get("id"))
        track_class = by_name.get((track.get("label") or "").lower())
        for box in track.iter("box"):
            if box.get("outside") == "1":
                continue
            frame = int(box.get("frame"))
            if frame % step:
                continue
            actions = set() if track_class is None else {track_class}
            for att in box.iter("attribute"):
                name, value = (att.get("name") or "").lower(), (att.text or "").strip()
                if name in ("action", "actions"):
                    for v in value.split(";"):
                        if v.strip().lower() in by_name:
                            actions.add(by_name[v.strip().lower()])
                        elif v.strip():
                            raise ValueError(f"{path}: track {pid} frame {frame}: action "
                                             f"{v.strip()!r} is not a class of {label_map}")
                elif name in by_name and value.lower() == "true":
                    actions.add(by_name[name])
            if not actions and not keep_unlabeled:
                continue
            x1, y1 = float(box.get("xtl")) / width, float(box.get("ytl")) / height
            x2, y2 = float(box.get("xbr")) / width, float(box.get("ybr")) / height
            ts = first_second + frame // step
            for a in sorted(actions) or [0]:
                rows.append((video_id, ts, x1, y1, x2, y2, a, pid))
    rows.sort(key=lambda r: (r[1], r[7], r[6]))
    return rows


def cvat_video_to_ava_csv(path, label_map, out, *, video_id: str, fps: Optional[float] = None,
                          first_second: int = 0, overwrite: bool = False) -> int:
    """:func:`read_cvat_video` written as an AVA CSV; returns the row count."""
    rows = read_cvat_video(path, label_map, video_id, fps, first_second)
    return write_ava_csv(rows, out, overwrite)


def write_cvat_video(rows: Iterable[tuple], label_map, path, *, width: int, height: int,
                     fps: float = 30.0, first_second: int = 0, overwrite: bool = False) -> str:
    """
    AVA rows of one video -> CVAT for video 1.1 XML (one track per person id, checkbox
    attributes named after the classes): what :func:`read_cvat_video` reads back.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True")
    lmap = read_label_map(label_map, require_groups=False)
    names = dict(zip(lmap.ids, lmap.names))
    tracks: Dict[int, Dict[int, dict]] = {}
    for vid, ts, x1, y1, x2, y2, a, pid in rows:
        frame = int(round((int(ts) - first_second) * fps))
        box = tracks.setdefault(int(pid), {}).setdefault(frame, {"box": (x1, y1, x2, y2), "actions": set()})
        box["actions"].add(int(a))
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    for pid, frames in sorted(tracks.items()):
        tr = ET.SubElement(root, "track", id=str(pid), label="person", source="manual")
        for frame, b in sorted(frames.items()):
            x1, y1, x2, y2 = b["box"]
            el = ET.SubElement(tr, "box", frame=str(frame), outside="0", occluded="0", keyframe="1",
                               xtl=f"{x1 * width:.4f}", ytl=f"{y1 * height:.4f}",
                               xbr=f"{x2 * width:.4f}", ybr=f"{y2 * height:.4f}", z_order="0")
            for c in lmap.ids:
                ET.SubElement(el, "attribute", name=names[c]).text = "true" if c in b["actions"] else "false"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return str(path)
