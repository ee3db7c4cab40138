"""
Check an AVA-format dataset before training: the silent mistakes that train fine and give mAP 0.

    python tools/validate_dataset.py --dataset NAME            # a registered split
    python tools/validate_dataset.py --annotations train.csv --label-map labels.pbtxt \\
        [--frames frames/ | --videos videos/] [--frame-list L] [--proposals P] \\
        [--exclusions E] [--fps 30] [--first-second 0]

Checks (``CHECKS``; each problem names its file and 1-based line as an editor shows it):

======================  =====  ===============================================================
check                   level  what
======================  =====  ===============================================================
``schema``              error  column count, integer timestamp / action / person id, numbers
``box_order``           error  x1 < x2 and y1 < y2
``box_range``           error  coordinates inside [0, 1] (and a hint when they look like pixels)
``unknown_action``      error  action ids absent from the label map
``off_by_one``          error  the ids look 0-based (every id + 1 is in the label map) or are
                               class indices instead of label-map ids
``person_id``           error  negative person id; warning: one person id on two boxes of a frame
``duplicate``           warn   identical rows (the line of the first copy is named)
``missing_video``       error  no frame folder / video for a video of the CSV
``timestamp_range``     error  the key frame ``(t - first_second) * fps`` is outside the video, for
                               every source given: frame folder / list, video file (frame count
                               and duration from the container, nothing decoded), AVA-Kinetics
                               clip (``--kinetics``, frame 0 at the clip's start); a clip's
                               ``--half-span`` frames past an end are padded, not an error
``missing_frame``       error  the key frame's image is missing from its folder
``proposal_coverage``   error  > 10 % of the key frames without proposals (warning if any)
``proposal_recall``     warn   ground-truth boxes covered by a proposal at IoU >= 0.5 < 90 %
``exclusions``          error  malformed excluded-timestamps rows
``class_frequency``     info   instances per class (classes without any: warning)
======================  =====  ===============================================================

Summary ``frames_checked``: key frames checked against a frame source (0: no source given);
``clips_padded``: of those, the ones whose clip runs past an end of its video.

Exit status 1 when any error was found, else 0. No detectron2 import except for ``--dataset``.
"""
from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ava_eval.csv_io import read_exclusions
from ava_eval.label_map import read_label_map

from .validate_sources import check_frame_sources

__all__ = ["CHECKS", "Problem", "ValidationReport", "validate_ava_dataset", "files_of_dataset"]

CHECKS = ("schema", "box_order", "box_range", "unknown_action", "off_by_one", "person_id",
          "duplicate", "missing_video", "timestamp_range", "missing_frame", "proposal_coverage",
          "proposal_recall", "exclusions", "class_frequency")


@dataclass
class Problem:
    level: str  # "error" | "warning"
    check: str
    file: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level} [{self.check}] {self.message}"


@dataclass
class ValidationReport:
    problems: List[Problem] = field(default_factory=list)
    class_counts: Dict[int, int] = field(default_factory=dict)
    stats: Dict[str, float] = field(default_factory=dict)
    # label-map id -> class name (validate_ava_dataset fills it from the label map)
    class_names: Dict[int, str] = field(default_factory=dict)

    def add(self, level, check, file, line, message):
        self.problems.append(Problem(level, check, str(file), line, message))

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.level == "error"]

    def by_check(self, check: str) -> List[Problem]:
        return [p for p in self.problems if p.check == check]

    def format(self, names: Optional[Dict[int, str]] = None, max_per_check: int = 20) -> str:
        """The report as text; ``names``: id -> class name (default: the label map's)."""
        names = names or self.class_names
        out, shown = [], Counter()
        for p in self.problems:
            shown[p.check] += 1
            if shown[p.check] <= max_per_check:
                out.append(str(p))
        for check, n in shown.items():
            if n > max_per_check:
                out.append(f"... [{check}] {n - max_per_check} more")
        out.append("")
        out.append("class frequency (id, name, instances):")
        for cid, n in sorted(self.class_counts.items()):
            out.append(f"  {cid:>4}  {names.get(cid, '?'):<40} {n}")
        out.append("")
        out.append("summary: " + ", ".join(f"{k} {v:g}" for k, v in self.stats.items()))
        counts = Counter((p.check, p.level) for p in self.problems)
        for (check, level), n in sorted(counts.items()):
            out.append(f"  {check:<18} {level:<7} {n}")
        out.append(f"{len(self.errors)} error(s), "
                   f"{len(self.problems) - len(self.errors)} warning(s)")
        return "\n".join(out)


def _read_rows(path: str, report: ValidationReport, kinetics: bool = False):
    """
    Rows that parse: list of (line, vid, ts, box (4,), action, person). ``kinetics``: the
    AVA-Kinetics release writes timestamps as floats ("12.0"), whole seconds are accepted.
    """
    rows = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) not in (7, 8):
                hint = " (a header line? AVA CSVs have none)" if line == 1 else ""
                report.add("error", "schema", path, line, f"expected 8 columns video_id,timestamp,"
                           f"x1,y1,x2,y2,action_id,person_id, got {len(row)}{hint}")
                continue
            try:
                ts = int(row[1]) if not kinetics or float(row[1]) != round(float(row[1])) \
                    else int(round(float(row[1])))
            except ValueError:
                report.add("error", "schema", path, line, f"timestamp {row[1]!r} is not an integer "
                           "(AVA timestamps are whole seconds)")
                continue
            try:
                box = [float(v) for v in row[2:6]]
            except ValueError:
                report.add("error", "schema", path, line, f"box {row[2:6]} is not 4 numbers")
                continue
            try:
                action = int(row[6])
            except ValueError:
                report.add("error", "schema", path, line, f"action_id {row[6]!r} is not an integer")
                continue
            person = -1
            if len(row) == 8:
                try:
                    person = int(row[7])
                except ValueError:
                    report.add("error", "schema", path, line,
                               f"person_id {row[7]!r} is not an integer")
                    continue
            rows.append((line, row[0], ts, box, action, person))
    return rows


def _check_rows(path, rows, label_ids, report, kinetics=False):
    seen: Dict[tuple, int] = {}
    persons: Dict[tuple, Tuple[tuple, int]] = {}
    pixel_like = 0
    for line, vid, ts, box, action, person in rows:
        x1, y1, x2, y2 = box
        if not all(np.isfinite(box)):
            report.add("error", "box_range", path, line, f"box {box} is not finite")
        elif not (x1 < x2 and y1 < y2):
            report.add("error", "box_order", path, line,
                       f"box x1,y1,x2,y2 = {box}: need x1 < x2 and y1 < y2")
        if any(v < 0.0 or v > 1.0 for v in box):
            big = max(box) > 1.5
            pixel_like += big
            report.add("error", "box_range", path, line, f"box {box} is outside [0, 1]" + (
                " (looks like pixels: divide x by the frame width and y by its height)"
                if big else ""))
        key = (vid, ts, tuple(box), action, person)
        if key in seen:
            report.add("warning", "duplicate", path, line, f"same row as line {seen[key]}")
        else:
            seen[key] = line
        if person < 0 and not kinetics:  # the AVA-Kinetics release has no person ids
            report.add("error", "person_id", path, line, f"person_id {person} is negative")
        pk = (vid, ts, person)
        if person >= 0:
            if pk in persons and persons[pk][0] != tuple(box):
                report.add("warning", "person_id", path, line, f"person {person} has another box "
                           f"on line {persons[pk][1]} of the same key frame {vid},{ts}")
            persons.setdefault(pk, (tuple(box), line))
    ids = np.array([r[4] for r in rows], dtype=np.int64)
    label = set(label_ids)
    unknown = sorted(set(ids.tolist()) - label)
    if unknown:
        shifted = set((ids + 1).tolist()) <= label
        as_index = set(ids.tolist()) <= set(range(len(label_ids)))
        if shifted:
            report.add("error", "off_by_one", path, None, "every action id + 1 is a label-map id: "
                       "the ids look 0-based; AVA ids are the label map's (1-based) ids")
        elif as_index and label_ids != list(range(len(label_ids))):
            report.add("error", "off_by_one", path, None, "the action ids are 0..K-1: class "
                       "indices instead of the label map's ids")
        bad = {u: 0 for u in unknown}
        for line, _, _, _, action, _ in rows:
            if action in bad:
                bad[action] += 1
                if bad[action] == 1:
                    report.add("error", "unknown_action", path, line, f"action_id {action} is not "
                               f"in the label map (ids {min(label_ids)}..{max(label_ids)}); "
                               f"{sum(ids == action)} row(s)")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def _check_proposals(path, proposals, rows, keys, report):
    from .formats.proposals import read_proposals

    try:
        props = read_proposals(proposals)
    except (ValueError, FileNotFoundError) as e:
        report.add("error", "proposal_coverage", proposals, None, str(e))
        return
    missing = [k for k in keys if k not in props or len(props[k]) == 0]
    frac = len(missing) / max(len(keys), 1)
    report.stats["proposal_coverage_%"] = round(100 * (1 - frac), 2)
    if missing:
        level = "error" if frac > 0.10 else "warning"
        vid, ts = missing[0]
        report.add(level, "proposal_coverage", proposals, None, f"{len(missing)} of "
                   f"{len(keys)} key frames ({100 * frac:.1f} %) have no proposals, e.g. {vid},{ts} "
                   f"({path}:{keys[missing[0]]}); check video ids and timestamps match")
    gt: Dict[tuple, set] = defaultdict(set)
    for _, vid, ts, box, _, _ in rows:
        if (vid, ts) in keys:
            gt[(vid, ts)].add(tuple(box))
    hit = total = 0
    for k, boxes in gt.items():
        b = np.array(sorted(boxes), dtype=np.float64)
        total += len(b)
        p = props.get(k)
        if p is not None and len(p):
            hit += int((_iou(b, np.asarray(p, np.float64)[:, :4]).max(1) >= 0.5).sum())
    recall = hit / max(total, 1)
    report.stats["proposal_recall@0.5_%"] = round(100 * recall, 2)
    if recall < 0.9:
        report.add("warning", "proposal_recall", proposals, None, f"only {100 * recall:.1f} % "
                   f"of the {total} ground-truth boxes have a proposal at IoU >= 0.5")


def _check_exclusions(path, report):
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2 or not row[1].strip().lstrip("-").isdigit():
                report.add("error", "exclusions", path, line,
                           f"expected video_id,timestamp (integer), got {row}")


def validate_ava_dataset(annotations: str, label_map: str, *, frames: Optional[str] = None,
                         frame_list: Optional[str] = None, videos: Optional[str] = None,
                         proposals: Optional[str] = None, exclusions: Optional[str] = None,
                         fps: float = 30.0, first_second: int = 0, half_span: int = 32,
                         kinetics: bool = False) -> ValidationReport:
    """
    Run every check of :data:`CHECKS` that the given files allow.

    Args:
        frames, frame_list, videos: the frame sources; every one given is checked
            (``timestamp_range``, ``missing_frame``; video files from their container header).
        fps, first_second: key frame of second t = frame ``round((t - first_second) * fps)``.
        half_span (int): frames a clip reaches on each side of its key frame
            (``NUM_FRAMES * SAMPLING_RATE // 2``, 32 for 32x2); a clip running past an end of
            its video is padded with the edge frame (counted in ``clips_padded``, no problem).
        kinetics (bool): an AVA-Kinetics CSV: key frames in the clips
            ``<video_id>_<start>_<end>`` of ``frames`` / ``videos`` (frame 0 at ``start``),
            float timestamps and no person ids allowed.

    Returns:
        ValidationReport: problems (file, 1-based line), class counts (label id -> instances
        of the annotation CSV), stats (rows, key frames, proposal coverage / recall in %).
    """
    report = ValidationReport()
    lmap = read_label_map(label_map, require_groups=False)
    report.class_names = dict(zip(lmap.ids, lmap.names))
    if not os.path.isfile(annotations):
        report.add("error", "schema", annotations, None, "annotation CSV not found")
        return report
    rows = _read_rows(annotations, report, kinetics)
    _check_rows(annotations, rows, lmap.ids, report, kinetics)
    keys: Dict[tuple, int] = {}
    for line, vid, ts, *_ in rows:
        keys.setdefault((vid, ts), line)
    report.stats.update(rows=len(rows), key_frames=len(keys), videos=len({k[0] for k in keys}))
    counts = Counter(r[4] for r in rows)
    report.class_counts = {c: counts.get(c, 0) for c in lmap.ids}
    empty = [c for c in lmap.ids if counts.get(c, 0) == 0]
    if empty:
        report.add("warning", "class_frequency", annotations, None,
                   f"{len(empty)} label-map class(es) have no instance: ids {empty[:20]}")
    if frames or frame_list or videos:
        check_frame_sources(annotations, keys, report, frames, frame_list, videos, fps,
                            first_second, half_span, kinetics)
    else:
        report.stats["frames_checked"] = 0  # no frame source given: timestamps not checked
    excluded = set()
    if exclusions and os.path.isfile(exclusions):
        _check_exclusions(exclusions, report)
        if not report.by_check("exclusions"):
            excluded = read_exclusions(exclusions)
    if proposals:  # excluded key frames need no proposals
        used = {k: v for k, v in keys.items() if k not in excluded}
        _check_proposals(annotations, proposals, rows, used, report)
    return report


def files_of_dataset(name: str) -> dict:
    """The ``validate_ava_dataset`` arguments of a registered split (from its metadata)."""
    from detectron2.data import MetadataCatalog

    from .layouts import SPLIT_FILE_METADATA, resolve_label_map, resolve_path

    meta = MetadataCatalog.get(name)
    gt_key = SPLIT_FILE_METADATA["annotations"]
    if gt_key not in meta.as_dict():
        raise SystemExit(f"{name!r} is not a registered AVA-format split (no {gt_key} metadata)")
    if meta.get("validate_parts", None):
        raise SystemExit(f"{name!r} combines the splits {list(meta.validate_parts)}: validate "
                         "each of them")
    # metadata keys -> argument names (layouts.SPLIT_FILE_METADATA); candidates resolved
    files = {arg: meta.get(key, None) for arg, key in SPLIT_FILE_METADATA.items()}
    for arg in ("frames", "frame_list", "videos", "proposals"):
        files[arg] = resolve_path(files[arg])
    files["label_map"] = resolve_label_map(
        files["label_map"], resolve_path(meta.get("label_map_fallback", None))
    )
    return dict(files, fps=float(meta.get("fps", 30.0)),
                first_second=int(meta.get("first_second", 0)),
                kinetics=bool(meta.get("kinetics_clips", False)))
