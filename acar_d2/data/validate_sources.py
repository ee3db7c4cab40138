"""
The frame-source checks of :func:`acar_d2.data.validate.validate_ava_dataset`:
``timestamp_range``, ``missing_frame`` and ``missing_video`` of every key frame, against each source
of its frames (PySlowFast frame list, frame folder, video file, AVA-Kinetics clip). Nothing is
decoded: frame folders are listed, video files are read from their container header.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

__all__ = ["check_frame_sources"]

_NUM_RE = re.compile(r"(\d+)\.[A-Za-z]+$")


def _frame_index(ts, fps, first_second):
    return int(round((ts - first_second) * fps))


@dataclass
class _Frames:
    """The frames of one video (or Kinetics clip) as a split holds them; no pixel is read."""

    where: str  # frame folder, frame list or video file, for messages
    num_frames: int  # frames 0 .. num_frames - 1 at the split's fps
    numbers: Optional[set] = None  # 1-based numbers of the frame files on disk (folders only)
    start: float = 0.0  # second of frame 0


def _video_frames(video_file: str, fps: float, start: float) -> _Frames:
    """A video file's frames at the split's fps, from its container (PyAV, nothing decoded)."""
    from .video_io import video_header

    header = video_header(video_file)
    if abs(header.rate - fps) <= 1e-3 * fps:
        n = header.num_frames
    else:  # the reader takes frame k at time k / fps: count those inside the duration
        n = int(np.ceil(header.duration * fps - 1e-6))
    return _Frames(video_file, n, None, start)


def _sources_of(name, frames, listed, frame_list, videos, fps, start, report, path, line):
    """
    The frame sources of video (or clip) ``name``: its frame list entry or frame folder, then its
    ``<name>.mp4``; each one present is checked. An unreadable video is a ``missing_video`` error.
    """
    found: List[_Frames] = []
    if listed is not None and name in listed:
        found.append(_Frames(f"{frame_list} ({name})", len(listed[name]),
                             set(range(1, len(listed[name]) + 1)), start))
    elif frames and os.path.isdir(os.path.join(frames, name)):
        numbers = set()
        for n in os.listdir(os.path.join(frames, name)):
            m = _NUM_RE.search(n)
            if m:
                numbers.add(int(m.group(1)))
        found.append(_Frames(os.path.join(frames, name), max(numbers, default=0), numbers, start))
    video_file = os.path.join(videos, name + ".mp4") if videos else None
    if video_file and os.path.isfile(video_file):
        try:
            found.append(_video_frames(video_file, fps, start))
        except (OSError, ValueError) as e:
            report.add("error", "missing_video", path, line, str(e))
    return found


def _check_key_frame(path, line, vid, ts, src: _Frames, fps, half_span, report) -> bool:
    """timestamp_range / missing_frame of one key frame in one source; False: outside it."""
    idx = _frame_index(ts, fps, src.start)
    if not 0 <= idx < src.num_frames:
        last = int(np.floor(src.start + (src.num_frames - 1) / fps)) if src.num_frames else None
        valid = (f"seconds {int(np.ceil(src.start))}..{last} hold key frames"
                 if last is not None and last >= src.start else "it has no frame")
        report.add("error", "timestamp_range", path, line, f"key frame {vid},{ts} is frame {idx} = "
                   f"({ts} - {src.start:g}) * {fps:g}, outside the {src.num_frames} frames of "
                   f"{src.where} ({valid}; wrong fps or first_second?); a clip's +-{half_span} "
                   "frames may run past the ends (padded), its key frame may not")
        return False
    if src.numbers is not None and idx + 1 not in src.numbers:
        report.add("error", "missing_frame", path, line,
                   f"key frame {vid},{ts}: frame #{idx + 1} (1-based) is missing from {src.where}")
    return True


def check_frame_sources(path, keys, report, frames, frame_list, videos, fps, first_second,
                        half_span=32, kinetics=False):
    """
    timestamp_range, missing_frame, missing_video per key frame, for every source of its frames
    (frame list, frame folder, video file; ``kinetics``: the AVA-Kinetics clip
    ``<video_id>_<start>_<end>`` holding the second, frame 0 at ``start``). Sets the stats
    ``frames_checked`` (key frames checked against a source) and ``clips_padded`` (of those, the
    ones whose clip reaches ``half_span`` frames past an end of the video: padded, not an error).
    """
    first_line: Dict[str, int] = {}
    per_video: Dict[str, List[tuple]] = defaultdict(list)
    for (vid, ts), line in keys.items():
        first_line.setdefault(vid, line)
        per_video[vid].append((ts, line))
    listed = None
    if frame_list:
        from .layouts import read_frame_list

        listed = read_frame_list(frame_list)
    clips = None
    if kinetics:
        from .datasets.ava_kinetics import _find_clip, index_kinetics_clips

        clips = index_kinetics_clips(frames, videos)
    checked = padded = 0
    for vid, line in first_line.items():
        if clips is None:
            sources = _sources_of(vid, frames, listed, frame_list, videos, fps, first_second,
                                  report, path, line)
            if not sources:
                where = os.path.join(frames or videos or "", vid)
                report.add("error", "missing_video", path, line, f"video {vid!r}: no frames or "
                           f"video found ({where})")
                continue
        for ts, kline in per_video[vid]:
            if clips is not None:  # one Kinetics clip per key frame
                clip = _find_clip(clips.get(vid, []), ts)
                if clip is None:
                    report.add("warning", "missing_video", path, kline, f"key frame {vid},{ts}: "
                               f"no clip {vid}_<start>_<end> holding second {ts} in {frames} / "
                               f"{videos} (the loader skips it)")
                    continue
                sources = _sources_of(clip[2], frames, None, None, videos, fps, clip[0],
                                      report, path, kline)
                if not sources:
                    continue
            checked += 1
            for src in sources:
                if not _check_key_frame(path, kline, vid, ts, src, fps, half_span, report):
                    break
            else:
                idx = _frame_index(ts, fps, sources[0].start)
                padded += idx - half_span < 0 or idx + half_span >= sources[0].num_frames
    report.stats["frames_checked"] = checked
    report.stats["clips_padded"] = padded
