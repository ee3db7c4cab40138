"""
AVA CSV files, read and written in one place: the evaluation, the dataset loaders, the demo and
the converters all use this module.

Part of ``ava_eval``, the evaluator package that imports neither torch nor detectron2 (nor
acar_d2): NumPy and the standard library only. The label map (``.pbtxt``) is
:mod:`ava_eval.label_map`; the guarded pickles and frame probing that the dataset loaders also
need are in ``acar_d2/data/file_readers.py``. The evaluation rules that rely on these readers are
described in ``docs/EVALUATION_PROTOCOL.md``; what this module relies on:

- Box CSV, no header: ``video_id,timestamp,x1,y1,x2,y2,action_id[,c8]``; boxes normalized to
  [0, 1]; ``c8`` is the person id in ground truth and the score in detections (7-column rows
  score 1.0). A key frame is ``(video_id verbatim, int(timestamp))`` (``0902`` == ``902``), key
  frames are numbered in order of first appearance. Rows of classes outside the label map are
  kept by :func:`read_box_csv`; the evaluation drops them (the official filter).
- Excluded timestamps CSV: ``video_id,timestamp`` rows; those key frames are not evaluated.
- Training readers on top of :func:`read_box_csv`: :func:`read_ava_annotations` (8 columns,
  boxes inside [0, 1], integer person ids, one :class:`PersonBox` per annotated person) and
  :func:`read_predicted_boxes_csv` (PySlowFast's person boxes, empty action column allowed).
- Writers: :func:`write_ava_csv` (annotation rows ``...,action_id,person_id``) and
  :func:`format_submission_rows` (the official submission rows ``...,action_id,score``).

Malformed input (header line, wrong column count, unparsable number) raises ``ValueError``
(``FileNotFoundError`` for a missing file) naming the file and the line, where the official reader
crashes with an unhelpful message. Deliberate differences, which only turn a crash into a result or
a late error into an early one: blank lines are skipped; a ground-truth box that is not finite with
``x1 <= x2`` and ``y1 <= y2`` is an error at read time.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

__all__ = [
    "AVAKey", "BoxTable", "read_box_csv", "parse_box_csv", "check_unit_boxes", "read_exclusions",
    "PersonBox", "read_ava_annotations", "read_predicted_boxes_csv", "write_ava_csv",
    "format_submission_rows",
]

PathLike = Union[str, Path]
AVAKey = Tuple[str, int]  # (video_id, timestamp) of a key frame

logger = logging.getLogger(__name__)
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark (Excel / Notepad "UTF-8 with BOM")


from .label_map import _require_file


# ---- Box CSVs ------------------------------------------------------------------------------
_COLUMNS = ("video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id")
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
        labels (ndarray): (M,) int64 action ids (label-map ids, 1-based; 0 for an empty action
            column where allowed).
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
        return BoxTable(self.source, self.keyframes, self.keyframe[mask], self.boxes[mask],
                        self.labels[mask], self.scores[mask], self.lines[mask])


def read_box_csv(path: PathLike, groundtruth: bool = False, **kwargs) -> BoxTable:
    """
    Read an AVA box CSV (ground truth, detections / submission file, person boxes).

    Args:
        path: the CSV file.
        groundtruth (bool): column 8 is a person id, and every box must have finite
            ``x1 <= x2`` and ``y1 <= y2``.
        kwargs: ``num_columns``, ``allow_empty_action`` of :func:`parse_box_csv`.
    Returns:
        BoxTable: all rows, in file order.
    Raises:
        FileNotFoundError; ValueError naming the file and line, for a header line, a wrong column
        count, an unparsable value or (ground truth) an inverted box.
    """
    _require_file(path, "CSV file")
    with open(path, "rb") as f:
        data = f.read()
    return parse_box_csv(data, str(path), groundtruth=groundtruth, **kwargs)


def parse_box_csv(data: bytes, source: str, groundtruth: bool = False,
                  num_columns: Optional[int] = None, allow_empty_action: bool = False) -> BoxTable:
    """
    Parse the bytes of an AVA box CSV (see :func:`read_box_csv`).

    Args:
        num_columns (int or None): required column count (7 or 8); None: either, per row.
        allow_empty_action (bool): an empty action column reads as id 0 (PySlowFast's person
            box files leave it empty).

    A vectorized path handles the usual file (same column count on every line, no quotes, no
    blank lines, ``\\n`` or ``\\r\\n`` line ends); anything else, including every malformed file,
    goes through the ``csv`` module row by row, which gives the same table or a precise error.
    A UTF-8 byte-order mark at the start is dropped with a warning (read as part of the first
    video id, it would silently unmatch that key frame).
    """
    if data.startswith(_BOM):
        logger.warning(f"{source}: starts with a UTF-8 byte-order mark (BOM); ignored")
        data = data[len(_BOM):]
    table = _parse_fast(data, source, num_columns)
    if table is None:
        table = _parse_rows(data, source, num_columns, allow_empty_action,
                            "person_id" if groundtruth else "score")
    if groundtruth:
        _check_ordered_boxes(table, "ground-truth ")
    return table


def _parse_fast(data: bytes, source: str, num_columns: Optional[int]) -> Optional[BoxTable]:
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
    if num_cols not in (7, 8) or num_columns not in (None, num_cols):
        return None
    # Exactly num_cols - 1 commas on every line: the i-th group of commas lies inside line i.
    commas = commas.reshape(num_lines, num_cols - 1)
    starts = np.concatenate([[0], newlines[:-1] + 1])
    if (commas[:, 0] < starts).any() or (commas[:, -1] > newlines).any():
        return None
    if (commas[:, 0] == starts).any() or (commas[:, 1:] == commas[:, :-1] + 1).any() or (
        commas[:, -1] + 1 == newlines
    ).any():
        return None  # an empty field: the row parser handles (or names) it

    # Numbers: columns 3..8, one vectorized decimal parse per column (exact, see _parse_decimals).
    words = _word_view(buf)
    if words is None:
        return None
    ends = np.concatenate([commas[:, 2:], newlines[:, None]], axis=1)
    values = np.empty((num_lines, num_cols - 2))
    for j in range(num_cols - 2):
        parsed = _parse_decimals(data, words, commas[:, j + 1] + 1, ends[:, j], integer=(j == 4))
        if parsed is None:
            return None  # the row parser names the line with the unparsable value
        values[:, j] = parsed
    labels = values[:, 4]

    keyframes, keyframe = _keyframes_of_lines(data, buf, starts, commas[:, 0], commas[:, 1], source)
    scores = values[:, 5].copy() if num_cols == 8 else np.ones(num_lines)
    return BoxTable(source, keyframes, keyframe, np.ascontiguousarray(values[:, :4]),
                    labels.astype(np.int64), scores, np.arange(1, num_lines + 1, dtype=np.int64))


# Decimal fields of up to 8 characters ([-]digits[.digits]) are parsed 8 bytes at a time (SWAR on
# uint64 words): the integer of the digits (< 10**8) and 10**fraction_digits are exact in float64,
# so one IEEE division gives the correctly rounded value, i.e. exactly what Python's float() (the
# official reader) returns for the same text. Longer or other fields go through float().
_U64 = np.uint64
_ZEROS = _U64(0x3030303030303030)  # eight '0'
_KEEP = np.array([0] + [(~((1 << (8 * (8 - n))) - 1)) & (2**64 - 1) for n in range(1, 9)], _U64)
_BELOW = np.array([(1 << (8 * b)) - 1 for b in range(8)], _U64)  # bytes below byte b
_ABOVE = np.array([(~((1 << (8 * (b + 1))) - 1)) & (2**64 - 1) for b in range(8)], _U64)
_POW10 = 10.0 ** np.arange(9)


def _parse_decimals(data: bytes, words: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    integer: bool = False) -> Optional[np.ndarray]:
    """
    Values of the N fields ``data[starts[i]:ends[i]]`` (float64 (N,)), vectorized.

    Args:
        words: ``words[i]`` is the little-endian uint64 of the 8 bytes that end at byte ``i`` of
            ``data`` (exclusive), bytes before the start of ``data`` reading as 0.
        integer: fields must be integers (the action id column).
    Returns:
        float64 (N,), or None if a field is not a number (not an integer), so that the caller
        falls back to the row parser, which names the line.
    """
    n = starts.size
    if n == 0:
        return np.zeros(0)
    neg = np.frombuffer(data, np.uint8)[np.minimum(starts, len(data) - 1)] == ord("-")
    length = ends - starts - neg
    regular = (length >= 1) & (length <= 8)
    keep = _KEEP[np.where(regular, length, 0)]
    w = (words[ends] & keep) | (_ZEROS & ~keep)  # the field, right-aligned, '0'-padded
    # The first '.' (a zero byte of w ^ "........"; the lowest flagged byte is exact).
    x = w ^ _U64(0x2E2E2E2E2E2E2E2E)
    z = (x - _U64(0x0101010101010101)) & ~x & _U64(0x8080808080808080)
    has_dot = z != 0
    if integer:
        regular &= ~has_dot
    low = z & (~z + _U64(1))
    byte = np.where(has_dot, (np.frexp(low.astype(np.float64))[1] - 1) >> 3, 0)
    regular &= length > has_dot  # at least one digit
    frac = np.where(has_dot, 7 - byte, 0)
    # Remove the dot: shift the bytes below it up by one, a leading '0' comes in at the bottom.
    w = np.where(has_dot, (w & _ABOVE[byte]) | ((w & _BELOW[byte]) << _U64(8)) | _U64(0x30), w)
    regular &= ((w + _U64(0x4646464646464646)) | (w - _ZEROS)) & _U64(0x8080808080808080) == 0
    # Eight ASCII digits -> integer (first character in the lowest byte).
    v = ((w & _U64(0x0F0F0F0F0F0F0F0F)) * _U64(2561)) >> _U64(8)
    v = ((v & _U64(0x00FF00FF00FF00FF)) * _U64(6553601)) >> _U64(16)
    v = ((v & _U64(0x0000FFFF0000FFFF)) * _U64(42949672960001)) >> _U64(32)
    values = v.astype(np.float64) / _POW10[frac]
    values[neg] = -values[neg]
    for i in np.flatnonzero(~regular).tolist():
        text = data[starts[i]:ends[i]]
        try:
            values[i] = int(text) if integer else float(text)
        except ValueError:
            return None
    return values


def _word_view(buf: np.ndarray) -> Optional[np.ndarray]:
    """``words`` of :func:`_parse_decimals` (None on a big-endian machine)."""
    if sys.byteorder != "little":
        return None
    padded = np.concatenate([np.zeros(8, dtype=np.uint8), buf])
    return np.ndarray((buf.size + 1,), dtype=np.uint64, buffer=padded, strides=(1,))


def _keyframes_of_lines(data, buf, starts, first_comma, second_comma, source: str):
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


def _parse_rows(data: bytes, source: str, num_columns: Optional[int], allow_empty_action: bool,
                last_column: str) -> BoxTable:
    """Row-by-row parser (``csv`` module): the general path and the one that explains errors."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not a UTF-8 text file ({e})") from None
    allowed = (7, 8) if num_columns is None else (num_columns,)
    names = ",".join(_COLUMNS + (last_column,))
    index = {}
    keyframe, boxes, labels, scores, lines = [], [], [], [], []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        if len(row) not in allowed:
            if line == 1 and row[0].strip().lower() in ("video_id", "video", "vid"):
                raise ValueError(f"{source}, line 1 is a header line {row}; AVA CSVs have none")
            raise ValueError(f"{source}, line {line}: expected {' or '.join(map(str, allowed))} "
                             f"columns ({names}), got {len(row)}: {row}")
        timestamp = _parse_int(row[1], source, line, "timestamp")
        coords = [_parse_float(row[2 + j], source, line, _COLUMNS[2 + j]) for j in range(4)]
        empty = allow_empty_action and not row[6].strip()
        label = 0 if empty else _parse_int(row[6], source, line, "action_id")
        score = _parse_float(row[7], source, line, last_column) if len(row) == 8 else 1.0
        keyframe.append(index.setdefault((row[0], timestamp), len(index)))
        boxes.append(coords)
        labels.append(label)
        scores.append(score)
        lines.append(line)
    return BoxTable(source, list(index), np.asarray(keyframe, dtype=np.int64),
                    np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                    np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64),
                    np.asarray(lines, dtype=np.int64))


def _check_ordered_boxes(table: BoxTable, what: str = "") -> None:
    """Boxes must be finite with x1 <= x2 and y1 <= y2 (zero area is allowed)."""
    b = table.boxes
    bad = ~(np.isfinite(b).all(axis=1) & (b[:, 0] <= b[:, 2]) & (b[:, 1] <= b[:, 3]))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{table.source}, line {int(table.lines[i])}: invalid {what}box x1,y1,x2,y2 = "
            f"{b[i].tolist()} (x1 > x2 or y1 > y2 or not finite; need x1 <= x2 and y1 <= y2); "
            f"{int(bad.sum())} such row(s) in the file"
        )


def check_unit_boxes(table: BoxTable) -> None:
    """Boxes must be ordered (see :func:`parse_box_csv`) and inside [0, 1] (normalized)."""
    _check_ordered_boxes(table)
    bad = ((table.boxes < 0.0) | (table.boxes > 1.0)).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{table.source}, line {int(table.lines[i])}: box "
                         f"{table.boxes[i].tolist()} is outside [0, 1] (boxes are normalized "
                         f"x1,y1,x2,y2); {int(bad.sum())} such row(s) in the file")


# ---- Excluded timestamps -------------------------------------------------------------------
def read_exclusions(path: Optional[PathLike]) -> Set[AVAKey]:
    """
    Read the excluded-timestamps CSV (``video_id,timestamp`` per line).

    Returns:
        set[tuple[str, int]]: excluded key frames (empty for None, "" or an empty file).
    """
    if not path:
        return set()
    _require_file(path, "excluded-timestamps CSV")
    excluded = set()
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({e})") from None
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise ValueError(f"{path}, line {line}: expected 2 columns (video_id,timestamp), "
                             f"got {len(row)}: {row}")
        excluded.add((row[0], _parse_int(row[1], str(path), line, "timestamp")))
    return excluded


# ---- Training readers ----------------------------------------------------------------------
@dataclass
class PersonBox:
    """One annotated person on a key frame: normalized box, dataset action ids, person id."""

    box: List[float]
    action_ids: List[int] = field(default_factory=list)
    person_id: int = -1


def read_ava_annotations(
    path: PathLike, label_ids: Sequence[int], known_action_ids: Optional[Set[int]] = None
) -> "OrderedDict[AVAKey, List[PersonBox]]":
    """
    Read an AVA annotation CSV ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id`` for
    training: 8 columns, boxes inside [0, 1], integer person ids. Rows of the same key frame, box
    and person are merged into one :class:`PersonBox` with all its action ids (AVA lists one row
    per action).

    Args:
        label_ids (list[int]): ids of the trained classes (the label map).
        known_action_ids (set[int] or None): ids that may appear but are not trained (e.g. AVA's
            80 ids vs the 60 evaluated classes); their rows are dropped (the person is kept), as
            the official evaluation's label-map filter does. Any other id is an error.
    Returns:
        OrderedDict[(video_id, timestamp), list[PersonBox]] in order of first appearance.
    """
    table = read_box_csv(path, groundtruth=True, num_columns=8)
    check_unit_boxes(table)
    person_ids = table.scores
    not_int = person_ids != np.floor(person_ids)
    if not_int.any():
        i = int(np.flatnonzero(not_int)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: person_id {person_ids[i]} is not "
                         "an integer")
    label_ids, known = set(label_ids), set(known_action_ids or ())
    unknown = ~np.isin(table.labels, list(label_ids | known))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: action_id {int(table.labels[i])} "
                         f"is not in the label map ({len(label_ids)} ids)")
    out: "OrderedDict[AVAKey, Dict[tuple, PersonBox]]" = OrderedDict(
        (k, OrderedDict()) for k in table.keyframes
    )
    for kf, box, action_id, pid in zip(table.keyframe.tolist(), table.boxes.tolist(),
                                       table.labels.tolist(), person_ids.astype(np.int64).tolist()):
        persons = out[table.keyframes[kf]]
        person = persons.setdefault((tuple(box), pid), PersonBox(box, [], pid))
        if action_id in label_ids and action_id not in person.action_ids:
            person.action_ids.append(action_id)
    num_dropped = int((~np.isin(table.labels, list(label_ids))).sum())
    if num_dropped:
        logger.info(f"{path}: dropped {num_dropped} rows of action ids outside the label map")
    return OrderedDict((k, list(v.values())) for k, v in out.items())


def read_predicted_boxes_csv(path: PathLike) -> Dict[AVAKey, np.ndarray]:
    """
    Read PySlowFast's person-detection CSV ``video_id,timestamp,x1,y1,x2,y2,[action],score``.

    The action column is empty or ignored; repeated boxes of a key frame (one row per action in
    some files) are kept once, with their highest score.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)]: normalized x1, y1, x2, y2, score.
    """
    table = read_box_csv(path, num_columns=8, allow_empty_action=True)
    check_unit_boxes(table)
    per_key: Dict[AVAKey, Dict[tuple, float]] = {}
    for kf, box, score in zip(table.keyframe.tolist(), table.boxes.tolist(), table.scores.tolist()):
        d = per_key.setdefault(table.keyframes[kf], {})
        d[tuple(box)] = max(score, d.get(tuple(box), -np.inf))
    return {k: np.array([list(b) + [s] for b, s in v.items()], dtype=np.float32).reshape(-1, 5)
            for k, v in per_key.items()}


# ---- Writers -------------------------------------------------------------------------------
def write_ava_csv(rows: Iterable[tuple], path: PathLike, overwrite: bool = False) -> int:
    """
    Write annotation rows ``(video_id, timestamp, x1, y1, x2, y2, action_id, person_id)``
    (normalized boxes; timestamps as 4 digits, coordinates ``%.6g``); returns the row count.
    Raises FileExistsError when ``path`` exists and ``overwrite`` is False. Its folder is created.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output or pass overwrite=True")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for vid, ts, x1, y1, x2, y2, action, pid in rows:
            f.write(f"{vid},{int(ts):04d},{x1:.6g},{y1:.6g},{x2:.6g},{y2:.6g},{int(action)},{int(pid)}\n")
            n += 1
    return n


def format_submission_rows(
    video_id: str,
    timestamp: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    action_ids: Sequence[int],
    score_format: str = "%.6f",
) -> list:
    """
    Lines of the official submission CSV (``docs/EVALUATION_PROTOCOL.md``) for the boxes of one
    key frame: ``video_id,timestamp,x1,y1,x2,y2,action_id,score``, the timestamp written with 4
    digits, boxes with 3 decimals, one row per (box, class).

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
