"""
Reading and writing the AVA evaluation files: box CSVs, the label map, the excluded timestamps.

The reading rules are those of the official AVA v2.2 evaluation (ActivityNet
``get_ava_performance.py``, 2019; documented in ``shared/reference/ava_eval/PROTOCOL.md`` section 1):

- CSV rows are ``video_id,timestamp,x1,y1,x2,y2,action_id[,score]`` with no header; the 8th column
  is the score for detections (7-column rows score 1.0) and the person id for ground truth.
- A key frame is ``(video_id verbatim, int(timestamp))``, so ``0902`` and ``902`` are one key frame.
- Key frames are numbered in order of first appearance in the file.

Where the official reader crashes with an unhelpful message (header line, wrong column count,
unparsable number) this module raises ``ValueError`` naming the file and the line. Deliberate,
documented differences that only turn a crash into a result or an error into a clearer one:

- blank lines are skipped (the official reader fails on them);
- a ground-truth box with ``x1 > x2`` or ``y1 > y2`` or a non-finite coordinate is an error at read
  time (the official code fails later, and only if that key frame has a detection of the class);
- the label map is parsed per ``item { ... }`` block, so the one-line layout works too (the official
  line parser needs the 2-space multi-line layout and finds no class otherwise).

Rows whose class is not in the label map are *not* dropped here; :func:`frame_map.frame_map` drops
them (the official filter) and logs how many.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

__all__ = [
    "BoxTable",
    "read_box_csv",
    "parse_box_csv",
    "read_label_map",
    "read_exclusions",
    "format_submission_rows",
    "table_from_dataset_dicts",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

_COLUMNS = ("video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score/person_id")
# Lines handled per block when gathering the "video_id,timestamp" prefixes (bounds the memory of
# the (lines, prefix length) index array to a few tens of MB).
_PREFIX_BLOCK = 1 << 18


@dataclass(frozen=True)
class BoxTable:
    """
    The rows of one AVA-format box CSV, in file order (M rows).

    Attributes:
        source (str): file name (or a description) used in error messages.
        keyframes (list[tuple[str, int]]): (video_id, timestamp) of each key frame, in order of
            first appearance.
        keyframe (ndarray): (M,) int64 index into ``keyframes``.
        boxes (ndarray): (M, 4) float64 x1, y1, x2, y2 as written (normalized to [0, 1] in AVA).
        labels (ndarray): (M,) int64 action ids (label-map ids, 1-based).
        scores (ndarray): (M,) float64 column 8: detection score, or the ground-truth person id
            (the official reader sorts ground truth by it); 1.0 for 7-column rows.
        lines (ndarray): (M,) int64 1-based line number of each row, for messages.
    """

    source: str
    keyframes: list
    keyframe: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, mask: np.ndarray) -> "BoxTable":
        """Rows where ``mask`` (M,) bool is true; the key-frame table is kept as is."""
        return BoxTable(
            self.source,
            self.keyframes,
            self.keyframe[mask],
            self.boxes[mask],
            self.labels[mask],
            self.scores[mask],
            self.lines[mask],
        )


# --------------------------------------------------------------------------------------------
# Box CSVs
# --------------------------------------------------------------------------------------------
def read_box_csv(path: PathLike, groundtruth: bool = False) -> BoxTable:
    """
    Read an AVA box CSV (ground truth or detections / submission file).

    Args:
        path: the CSV file.
        groundtruth (bool): also check that every box has finite ``x1 <= x2`` and ``y1 <= y2``.

    Returns:
        BoxTable: all rows, in file order.

    Raises:
        ValueError: naming the file and line, for a header line, a wrong column count, an
            unparsable value or (ground truth) an inverted box.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    return parse_box_csv(data, str(path), groundtruth=groundtruth)


def parse_box_csv(data: bytes, source: str, groundtruth: bool = False) -> BoxTable:
    """
    Parse the bytes of an AVA box CSV (see :func:`read_box_csv`).

    A vectorized path handles the usual file (same column count on every line, no quotes, no
    blank lines, ``\\n`` or ``\\r\\n`` line ends); anything else, including every malformed file,
    goes through the ``csv`` module row by row, which gives the same table or a precise error.
    """
    table = _parse_fast(data, source)
    if table is None:
        table = _parse_rows(data, source)
    if groundtruth:
        _check_groundtruth_boxes(table)
    return table


def _parse_fast(data: bytes, source: str) -> Optional[BoxTable]:
    """NumPy parser of a well-formed CSV; returns None whenever it cannot vouch for the result."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    if not data or b'"' in data:
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    if data.startswith(b"\n") or b"\n\n" in data:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    commas = np.flatnonzero(buf == ord(","))
    num_lines = newlines.size
    if commas.size % num_lines:
        return None
    num_cols = commas.size // num_lines + 1
    if num_cols not in (7, 8):
        return None
    per_line = np.bincount(np.searchsorted(newlines, commas), minlength=num_lines)
    if (per_line != num_cols - 1).any():
        return None
    commas = commas.reshape(num_lines, num_cols - 1)
    starts = np.concatenate([[0], newlines[:-1] + 1])

    # Numbers: blank out "video_id,timestamp," and turn line ends into separators, then let
    # np.fromstring parse columns 3..8 of every line in one C loop.
    mark = np.zeros(buf.size + 1, dtype=np.int8)
    mark[starts] = 1
    mark[commas[:, 1] + 1] = -1  # disjoint from starts: a line's 2nd comma precedes its end
    text = buf.copy()
    text[np.cumsum(mark[:-1], dtype=np.int8) > 0] = ord(" ")
    text[newlines] = ord(",")
    num_values = num_cols - 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # "could not be read to its end"
            values = np.fromstring(text.tobytes(), dtype=np.float64, sep=",")
    except (DeprecationWarning, ValueError):
        return None
    if values.size != num_lines * num_values:
        return None
    values = values.reshape(num_lines, num_values)
    labels = values[:, 4]
    if not np.array_equal(labels, np.floor(labels)) or not np.isfinite(labels).all():
        return None  # the row parser names the line with the non-integer action id

    keyframes, keyframe = _keyframes_of_lines(data, buf, starts, commas[:, 0], commas[:, 1], source)
    scores = values[:, 5].copy() if num_cols == 8 else np.ones(num_lines)
    return BoxTable(
        source=source,
        keyframes=keyframes,
        keyframe=keyframe,
        boxes=np.ascontiguousarray(values[:, :4]),
        labels=labels.astype(np.int64),
        scores=scores,
        lines=np.arange(1, num_lines + 1, dtype=np.int64),
    )


def _keyframes_of_lines(
    data: bytes,
    buf: np.ndarray,
    starts: np.ndarray,
    first_comma: np.ndarray,
    second_comma: np.ndarray,
    source: str,
):
    """
    Key-frame index of every line. Lines are grouped into runs of identical "video_id,timestamp"
    prefixes (compared as bytes, vectorized); only the first line of each run is decoded in Python.
    """
    num_lines = starts.size
    lengths = second_comma - starts
    new_run = np.ones(num_lines, dtype=bool)
    width = int(lengths.max())
    offsets = np.arange(width)
    prev_last = None
    for lo in range(0, num_lines, _PREFIX_BLOCK):
        hi = min(lo + _PREFIX_BLOCK, num_lines)
        idx = starts[lo:hi, None] + offsets[None, :]
        inside = offsets[None, :] < lengths[lo:hi, None]
        prefix = np.where(inside, buf[np.minimum(idx, buf.size - 1)], 0).astype(np.uint8)
        prefix = np.ascontiguousarray(prefix).view(f"S{width}").ravel()
        changed = np.empty(hi - lo, dtype=bool)
        changed[1:] = prefix[1:] != prefix[:-1]
        changed[0] = True if prev_last is None else prefix[0] != prev_last
        new_run[lo:hi] = changed
        prev_last = prefix[-1]

    run_starts = np.flatnonzero(new_run)
    index = {}
    run_keyframe = np.empty(run_starts.size, dtype=np.int64)
    for r, i in enumerate(run_starts.tolist()):
        video_id = data[starts[i] : first_comma[i]].decode("utf-8")
        timestamp = _parse_int(
            data[first_comma[i] + 1 : second_comma[i]].decode("utf-8"), source, i + 1, "timestamp"
        )
        run_keyframe[r] = index.setdefault((video_id, timestamp), len(index))
    keyframe = run_keyframe[np.cumsum(new_run) - 1]
    return list(index), keyframe


def _parse_int(text: str, source: str, line: int, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        hint = ""
        if line == 1 and column == "timestamp":
            hint = " (a header line? AVA CSVs have none: remove it)"
        raise ValueError(f"{source}, line {line}: {column} {text!r} is not an integer{hint}") from None


def _parse_float(text: str, source: str, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{source}, line {line}: {column} {text!r} is not a number") from None


def _parse_rows(data: bytes, source: str) -> BoxTable:
    """Row-by-row parser (``csv`` module): the general path and the one that explains errors."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not a UTF-8 text file ({e})") from None
    index = {}
    keyframe, boxes, labels, scores, lines = [], [], [], [], []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row:
            continue  # blank line
        if len(row) not in (7, 8):
            if line == 1 and row[0].strip().lower() in ("video_id", "video", "vid"):
                raise ValueError(f"{source}, line 1 is a header line {row}; AVA CSVs have none")
            raise ValueError(
                f"{source}, line {line}: expected 7 or 8 columns "
                f"({','.join(_COLUMNS)}), got {len(row)}: {row}"
            )
        timestamp = _parse_int(row[1], source, line, "timestamp")
        coords = [_parse_float(row[2 + j], source, line, _COLUMNS[2 + j]) for j in range(4)]
        label = _parse_int(row[6], source, line, "action_id")
        score = _parse_float(row[7], source, line, _COLUMNS[7]) if len(row) == 8 else 1.0
        keyframe.append(index.setdefault((row[0], timestamp), len(index)))
        boxes.append(coords)
        labels.append(label)
        scores.append(score)
        lines.append(line)
    return BoxTable(
        source=source,
        keyframes=list(index),
        keyframe=np.asarray(keyframe, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        lines=np.asarray(lines, dtype=np.int64),
    )


def _check_groundtruth_boxes(table: BoxTable) -> None:
    """Ground truth must hold finite boxes with x1 <= x2 and y1 <= y2 (zero area is allowed)."""
    b = table.boxes
    bad = ~(np.isfinite(b).all(axis=1) & (b[:, 0] <= b[:, 2]) & (b[:, 1] <= b[:, 3]))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{table.source}, line {int(table.lines[i])}: invalid ground-truth box "
            f"x1,y1,x2,y2 = {b[i].tolist()} (need x1 <= x2 and y1 <= y2); "
            f"{int(bad.sum())} such row(s) in the file"
        )


# --------------------------------------------------------------------------------------------
# Label map and exclusions
# --------------------------------------------------------------------------------------------
_ITEM_RE = re.compile(r"\bitem\s*\{(.*?)\}", re.DOTALL)
_NAME_RE = re.compile(r'(?<![\w])name\s*:\s*"([^"]*)"')
_ID_RE = re.compile(r"(?<![\w])(?:label_)?id\s*:\s*(-?\d+)")


def read_label_map(path: PathLike) -> dict:
    """
    Read an AVA label map (``.pbtxt``: ``item { name: "..." id: N }`` blocks).

    Returns:
        dict[int, str]: action id -> class name, in file order. Its keys are the class whitelist
        of the evaluation.

    Raises:
        ValueError: naming the file, when there is no item, an item lacks a name or an id,
            an id is < 1 or repeated.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    classes = {}
    for k, item in enumerate(_ITEM_RE.findall(text), start=1):
        name, ids = _NAME_RE.search(item), _ID_RE.findall(item)
        if name is None or len(ids) != 1:
            raise ValueError(
                f"{path}: item #{k} needs one name: \"...\" and one id: N, got {item.strip()!r}"
            )
        class_id = int(ids[0])
        if class_id < 1:
            raise ValueError(f"{path}: item #{k} has id {class_id}; ids must be >= 1")
        if class_id in classes:
            raise ValueError(f"{path}: id {class_id} appears twice (item #{k})")
        classes[class_id] = name.group(1)
    if not classes:
        raise ValueError(f"{path}: no 'item {{ name: ... id: ... }}' found in the label map")
    return classes


def read_exclusions(path: Optional[PathLike]) -> set:
    """
    Read the excluded-timestamps CSV (``video_id,timestamp`` per line).

    Returns:
        set[tuple[str, int]]: excluded key frames (empty for ``None`` or an empty file).
    """
    if path is None:
        return set()
    path = Path(path)
    excluded = set()
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{path}, line {line}: expected 2 columns (video_id,timestamp), got "
                    f"{len(row)}: {row}"
                )
            excluded.add((row[0], _parse_int(row[1], str(path), line, "timestamp")))
    return excluded


# --------------------------------------------------------------------------------------------
# Writing predictions, ground truth from dataset dicts
# --------------------------------------------------------------------------------------------
def format_submission_rows(
    video_id: str,
    timestamp: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: Sequence[int],
    score_format: str = "%.6f",
) -> list:
    """
    Lines of the official submission CSV for the boxes of one key frame.

    Args:
        boxes (ndarray): (R, 4) x1, y1, x2, y2 normalized to [0, 1]; written with ``%.3f``.
        scores (ndarray): (R, K) action scores; row r, column k becomes the line
            ``video_id,timestamp,x1,y1,x2,y2,action_ids[k],score``.
        action_ids: K dataset action ids (metadata ``action_ids``).
        score_format (str): printf format of the score.

    Returns:
        list[str]: R * K lines without line ends, box-major.
    """
    lines = []
    id_texts = [f"{int(a)}," for a in action_ids]
    for box, row in zip(np.asarray(boxes, dtype=np.float64).tolist(), np.asarray(scores).tolist()):
        prefix = "%s,%04d,%.3f,%.3f,%.3f,%.3f," % (video_id, timestamp, *box)
        lines.extend(prefix + a + score_format % s for a, s in zip(id_texts, row))
    return lines


def table_from_dataset_dicts(
    dataset_dicts: Iterable[dict], source: str = "dataset dicts"
) -> BoxTable:
    """
    Ground truth from acar_d2 dataset dicts (docs/ARCHITECTURE.md), as a :class:`BoxTable`.

    Every annotation contributes one row per entry of its ``action_ids``, with its ``bbox``
    (XYXY_ABS pixels) divided by the dict's width / height, so it compares with predictions
    written in the normalized submission format. The person id (if any) fills ``scores``.

    Raises:
        KeyError / ValueError: naming the video, timestamp and missing key or bad box.
    """
    from detectron2.structures import BoxMode

    index = {}
    keyframe, boxes, labels, person = [], [], [], []
    for d in dataset_dicts:
        where = f"{source}: {d.get('video_id')!r} @ {d.get('timestamp')!r}"
        for key in ("video_id", "timestamp", "height", "width", "annotations"):
            if key not in d:
                raise KeyError(f"{where}: dataset dict has no {key!r}")
        kf = index.setdefault((str(d["video_id"]), int(d["timestamp"])), len(index))
        w, h = float(d["width"]), float(d["height"])
        for ann in d["annotations"]:
            if "bbox" not in ann or "action_ids" not in ann:
                raise KeyError(f"{where}: annotation without 'bbox' or 'action_ids': {ann}")
            box = BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYXY_ABS),
                                  BoxMode.XYXY_ABS)
            norm = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
            if not (all(map(math.isfinite, norm)) and norm[0] <= norm[2] and norm[1] <= norm[3]):
                raise ValueError(f"{where}: invalid ground-truth box {list(ann['bbox'])}")
            for a in ann["action_ids"]:
                keyframe.append(kf)
                boxes.append(norm)
                labels.append(int(a))
                person.append(float(ann.get("person_id", 1.0)))
    n = len(labels)
    return BoxTable(
        source=source,
        keyframes=list(index),
        keyframe=np.asarray(keyframe, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        scores=np.asarray(person, dtype=np.float64),
        lines=np.arange(1, n + 1, dtype=np.int64),
    )
