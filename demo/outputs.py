"""
What the demo writes besides the annotated video.

* :class:`PredictionJSONWriter`: one JSON document (schema :data:`DEMO_JSON_SCHEMA`, also in the
  docs/DEMO.md), streamed key frame by key frame (memory flat over an hour of video) and valid after
  each, also after Ctrl-C or a broken stream (``"complete": false`` and the ``"error"``).
* :class:`SubmissionCSVWriter`: the AVA submission CSV ``video_id,timestamp,x1,y1,x2,y2,action_id,
  score`` (normalized boxes), one flushed block per key frame, so it stays valid at every moment
  and scores with ``acar-ava-eval``.
"""
import json
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from ava_eval.csv_io import format_submission_rows

__all__ = [
    "DEMO_JSON_FORMAT",
    "DEMO_JSON_SCHEMA",
    "PredictionJSONWriter",
    "SubmissionCSVWriter",
]

DEMO_JSON_FORMAT = "acar_d2.demo.v1"

_NUMBER_01 = {"type": "number", "minimum": 0, "maximum": 1}
_PAIR = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
# With --relations (acar_d2/modeling/relation_maps.py RelationMap.to_json; docs/DEMO.md "Relation maps").
_RELATION = {
    "type": "object",
    "required": ["context_map", "grid_size", "grid_origin_xy", "grid_step_xy", "actor_weights",
                 "peak_xy"],
    "additionalProperties": False,
    "properties": {
        "context_map": {"type": "array", "items": {"type": "array", "items": _NUMBER_01}},
        "grid_size": {"type": "array", "items": {"type": "integer", "minimum": 1},
                      "minItems": 2, "maxItems": 2},
        "grid_origin_xy": _PAIR,
        "grid_step_xy": _PAIR,
        "actor_weights": {"type": "array", "items": _NUMBER_01},
        "peak_xy": _PAIR,
    },
}
DEMO_JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "acar_d2 demo predictions",
    "type": "object",
    "required": ["format", "source", "video_id", "fps", "width", "height", "num_frames",
                 "key_frame_stride", "class_names", "action_ids", "thresholds", "complete",
                 "error", "key_frames"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": DEMO_JSON_FORMAT},
        "source": {"type": "string"},
        "video_id": {"type": "string"},
        "fps": {"type": "number", "exclusiveMinimum": 0},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "num_frames": {"type": "integer", "minimum": 0},
        "key_frame_stride": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "class_names": {"type": "array", "items": {"type": "string"}},
        "action_ids": {"type": "array", "items": {"type": "integer"}},
        "thresholds": {"type": "array", "items": _NUMBER_01},
        "model": {"type": "object", "properties": {"config": {"type": "string"},
                                                   "weights": {"type": "string"},
                                                   "engine": {"enum": ["onnxruntime", "openvino"]},
                                                   "onnx": {"type": "string"}}},
        "complete": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "key_frames": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["time", "frame_index", "timestamp", "actors"],
                "additionalProperties": False,
                "properties": {
                    "time": {"type": "number", "minimum": 0},
                    "frame_index": {"type": "integer", "minimum": 0},
                    "timestamp": {"type": ["integer", "null"]},
                    "actors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["box", "person_score", "track_id", "scores", "labels"],
                            "additionalProperties": False,
                            "properties": {
                                "box": {"type": "array", "items": {"type": "number"},
                                        "minItems": 4, "maxItems": 4},
                                "person_score": _NUMBER_01,
                                "track_id": {"type": ["integer", "null"], "minimum": 1},
                                "scores": {"type": "array", "items": _NUMBER_01},
                                "labels": {"type": "array", "items": {"type": "string"}},
                                "relation": _RELATION,
                            },
                        },
                    },
                },
            },
        },
    },
}


def _truncate(path: str, offset: int) -> None:
    """Cut ``path`` to its first ``offset`` bytes (resuming: drop what follows the last
    checkpoint); an error naming the file when it is shorter."""
    if not os.path.isfile(path) or os.path.getsize(path) < offset:
        size = os.path.getsize(path) if os.path.isfile(path) else None
        raise ValueError(f"{path}: cannot resume it: the interrupted run recorded {offset} bytes, "
                         f"the file has {'none (missing)' if size is None else size}")
    with open(path, "r+b") as f:
        f.truncate(offset)


class PredictionJSONWriter:
    """
    Streams the JSON document to its file: the header, then one line per key frame, then the
    closing fields (``num_frames``, ``complete``, ``error``), which :meth:`flush` rewrites after
    every key frame. Memory does not grow with the video, and after every :meth:`flush` (and
    :meth:`close`, also after Ctrl-C or a broken stream) the file is a valid document.

    Args:
        path (str): output file.
        header (dict): ``source``, ``video_id``, ``fps``, ``width``, ``height``,
            ``key_frame_stride``, ``class_names``, ``action_ids``, ``thresholds`` and optionally
            ``model``.
        resume (tuple[int, int] or None): ``(offset, key frames)`` of an interrupted run's file
            (:attr:`offset` and :attr:`count` at its last checkpoint): the file is cut there and
            continued; its header must be this one.
    """

    def __init__(self, path: str, header: dict, resume: Optional[Tuple[int, int]] = None):
        self.path = path
        doc = dict(format=DEMO_JSON_FORMAT, **header)
        doc["thresholds"] = [float(t) for t in header["thresholds"]]
        self.thresholds = np.asarray(doc["thresholds"])
        self.names = list(header["class_names"])
        head = json.dumps(doc, indent=1)[:-2] + ',\n "key_frames": ['
        head = head.encode("utf-8")
        if resume is None:
            self._file = open(path, "wb")
            self._file.write(head)
            self.offset, self.count = len(head), 0
        else:
            self.offset, self.count = (int(v) for v in resume)
            _truncate(path, self.offset)
            self._file = open(path, "r+b")
            if self._file.read(len(head)) != head:
                self._file.close()
                raise ValueError(f"{path}: cannot resume it: its header (source, classes, "
                                 "thresholds, model) differs from this run's")
        self.flush(0)

    def add(self, key_frame) -> None:
        """Append one key frame. Args: key_frame (KeyFramePrediction)."""
        inst = key_frame.instances
        boxes = inst.pred_boxes.tensor.numpy().astype(np.float64)
        scores = inst.action_scores.numpy().astype(np.float64)
        person = inst.scores.numpy().astype(np.float64)
        ids = inst.track_ids.numpy() if inst.has("track_ids") else np.full(len(inst), -1)
        actors = []
        for r in range(len(inst)):
            order = np.argsort(-scores[r], kind="stable")
            actors.append({
                "box": [round(float(v), 2) for v in boxes[r]],
                "person_score": round(float(np.clip(person[r], 0, 1)), 6),
                "track_id": int(ids[r]) if ids[r] >= 1 else None,
                "scores": [round(float(s), 6) for s in scores[r]],
                "labels": [self.names[k] for k in order if scores[r, k] >= self.thresholds[k]],
            })
            if key_frame.relation_maps is not None:  # recorded (demo --relations)
                actors[-1]["relation"] = key_frame.relation_maps[r].to_json()
        item = {"time": round(float(key_frame.time), 6), "frame_index": int(key_frame.frame_index),
                "timestamp": key_frame.timestamp, "actors": actors}
        text = ("\n  " if self.count == 0 else ",\n  ") + json.dumps(item)
        self._file.seek(self.offset)
        self._file.write(text.encode("utf-8"))
        self.offset += len(text.encode("utf-8"))
        self.count += 1

    def flush(self, num_frames: int, complete: bool = False, error: Optional[str] = None) -> None:
        """Write the closing fields after the last key frame: the file is a valid document."""
        tail = json.dumps({"num_frames": int(num_frames), "complete": bool(complete),
                           "error": error}, indent=1)[1:]
        self._file.seek(self.offset)
        self._file.write(("\n ]," + tail + "\n").encode("utf-8"))
        self._file.truncate()
        self._file.flush()

    def close(self, num_frames: int, complete: bool, error: Optional[str] = None) -> None:
        """Write the closing fields and close the file (idempotent)."""
        if not self._file.closed:
            self.flush(num_frames, complete, error)
            self._file.close()


class SubmissionCSVWriter:
    """
    AVA submission rows, one block per key frame, flushed as written.

    Args:
        path (str): output CSV.
        video_id (str): the first column.
        action_ids (list[int]): K dataset action ids.
        width, height (int): frame size (boxes are divided by it and clipped to [0, 1]).
        resume_offset (int or None): continue an interrupted run's file after its first
            ``resume_offset`` bytes (:attr:`offset` at its last checkpoint).
    """

    def __init__(self, path: str, video_id: str, action_ids: Sequence[int], width: int,
                 height: int, resume_offset: Optional[int] = None):
        if "," in video_id:
            raise ValueError(f"video id {video_id!r} contains a comma: not allowed in the CSV")
        self.video_id = video_id
        self.action_ids = list(action_ids)
        self.scale = np.array([width, height, width, height], np.float64)
        if resume_offset is not None:
            _truncate(path, resume_offset)
        self._file = open(path, "a" if resume_offset is not None else "w", encoding="utf-8")
        self.rows = 0

    @property
    def offset(self) -> int:
        """Bytes written so far (where a resumed run continues)."""
        return self._file.tell()

    def add(self, key_frame) -> None:
        if key_frame.timestamp is None:
            raise ValueError(f"key frame at {key_frame.time:.3f} s has no whole-second timestamp; "
                             "the AVA CSV needs key frames on whole seconds")
        inst = key_frame.instances
        boxes = np.clip(inst.pred_boxes.tensor.numpy() / self.scale, 0.0, 1.0)
        lines = format_submission_rows(self.video_id, key_frame.timestamp, boxes,
                                       inst.action_scores.numpy(), self.action_ids)
        if lines:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
        self.rows += len(lines)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
