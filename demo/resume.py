"""
The demo's outputs over a long video: written as they come (memory flat) and resumable.

:class:`DemoOutputs` owns what the demo writes for one source: the annotated video in segments
(:class:`~acar_d2.data.video_io.segments.SegmentedVideoWriter`, joined into ``--output`` at the
end), the streamed JSON (:class:`~demo.outputs.PredictionJSONWriter`), the CSV, and
beside ``--output`` a progress file ``<output>.progress.json`` (plus, with tracking,
``<output>.progress.tracks.jsonl``, the exact person boxes of every key frame written). At every
checkpoint (every ``checkpoint_every`` key frames, and when the run stops, finished or not) the
open video segment is closed and the progress file rewritten atomically with what is fully
written: the key frames, the video's frames, the byte offsets of the JSON / CSV / track log, and
the fingerprints of the source and of the settings (config, weights, thresholds, key frames).

``--resume`` (:meth:`DemoOutputs.resume`) checks both fingerprints against the recorded ones (an
error naming the progress file and what differs), cuts the JSON / CSV / track log back to the
recorded offsets (what a killed run wrote after its last checkpoint) and continues: the predictor
is given the key frames after those done, the tracker replays their boxes, new video frames go
into the next segment (each frame at its source time, so segments join without shifting). A finished run removes its progress files and segments.
"""
import hashlib
import json
import logging
import os
import time
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from acar_d2.data.video_io import VideoSource
from acar_d2.data.video_io.segments import (SegmentedVideoWriter, count_video_frames, join_segments,
                                      segment_path)
from demo.outputs import PredictionJSONWriter, SubmissionCSVWriter, _truncate

__all__ = ["DemoOutputs", "ResumeError", "progress_path", "source_fingerprint",
           "settings_fingerprint", "leftover_files"]

logger = logging.getLogger(__name__)

PROGRESS_FORMAT = "acar_d2.demo.progress.v1"


class ResumeError(ValueError):
    """``--resume`` refused: the message names the progress file (or the output) and why."""


def progress_path(output: str) -> str:
    """The progress file of a run writing ``output`` (``out.mp4.progress.json``)."""
    return f"{output}.progress.json"


def _tracks_path(output: str) -> str:
    return f"{output}.progress.tracks.jsonl"


def leftover_files(output: str) -> list:
    """Progress files and segments of an interrupted run writing ``output`` that exist."""
    paths = [progress_path(output), _tracks_path(output)]
    i = 0
    while os.path.exists(segment_path(output, i)):
        paths.append(segment_path(output, i))
        i += 1
    return [p for p in paths if os.path.exists(p)]


def _sha256_head(path: str, size: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(size)).hexdigest()


def source_fingerprint(src: VideoSource) -> dict:
    """
    What identifies a source's frames: name, rate, size, frame count and, for a file, its size,
    modification time and the sha256 of its first MiB (a frame folder: its first frame's).
    """
    fp = {"name": src.name, "fps": float(src.fps), "width": int(src.width),
          "height": int(src.height), "num_frames": src.num_frames}
    path = getattr(src, "paths", [src.name])[0]
    if os.path.isfile(path):
        st = os.stat(path)
        fp.update(file=os.path.abspath(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
                  sha256_first_mib=_sha256_head(path))
    return fp


def settings_fingerprint(cfg, key_frames: Optional[Sequence] = None, **settings) -> dict:
    """
    What decides the outputs besides the source: the sha256 of the config (``cfg.dump()``), the
    weights file's size and modification time, the sha256 of given key frames (frames, times,
    boxes) and ``settings`` (thresholds, top-k, stride, video id, ... as given; JSON values).
    """
    fp = dict(settings, config_sha256=hashlib.sha256(cfg.dump().encode()).hexdigest())
    weights = cfg.MODEL.WEIGHTS
    if weights and os.path.isfile(weights):
        st = os.stat(weights)
        fp["weights"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if key_frames is not None:
        h = hashlib.sha256()
        for r in key_frames:
            h.update(repr((float(r.time), r.timestamp)).encode())
            if r.proposals is not None:
                for key in sorted(r.proposals):
                    h.update(np.ascontiguousarray(r.proposals[key], np.float64).tobytes())
        fp["key_frames_sha256"] = h.hexdigest()
    return json.loads(json.dumps(fp))  # as read back from the file (lists, not tuples)


def _differences(recorded: dict, now: dict) -> list:
    keys = sorted(set(recorded) | set(now))
    return [f"{k}: {recorded.get(k)!r} then, {now.get(k)!r} now" for k in keys
            if recorded.get(k) != now.get(k)]


class DemoOutputs:
    """
    The files of one demo run (see the module docstring); :meth:`resume` continues an interrupted
    one.

    Args:
        output (str): the annotated video.
        json_file, csv_file (str or None): the JSON document / AVA CSV.
        header (dict): the JSON header (:class:`PredictionJSONWriter`).
        csv_args (tuple): ``(video_id, action_ids, width, height)`` of the CSV writer.
        fps (float): the video's frame rate.
        source (dict): :func:`source_fingerprint` of the source.
        settings (dict): :func:`settings_fingerprint` of this run.
        checkpoint_every (int): key frames between checkpoints (a killed run redoes at most this
            many; a stopped one none).
        state (dict or None): the progress of an interrupted run (:meth:`resume`).
    """

    def __init__(self, output: str, json_file: Optional[str], csv_file: Optional[str],
                 header: dict, csv_args: tuple, fps: float, source: dict, settings: dict,
                 checkpoint_every: int = 60, state: Optional[dict] = None):
        self.output = output
        self.path = progress_path(output)
        self.checkpoint_every = max(1, int(checkpoint_every))
        if state is None:
            for stale in leftover_files(output):  # a previous run's, replaced as asked
                os.remove(stale)
            state = {"format": PROGRESS_FORMAT, "output": output, "source": source,
                     "settings": settings, "key_frames_done": 0, "frames_written": 0,
                     "segments": [], "json": None, "csv": None, "tracks": 0}
        self.state = state
        self.key_frames_done = state["key_frames_done"]
        folder = os.path.dirname(os.path.abspath(output))
        segments = [os.path.join(folder, name) for name in state["segments"]]
        self.video = SegmentedVideoWriter(output, fps, segments, state["frames_written"])
        self.json = (PredictionJSONWriter(json_file, header, resume=state["json"])
                     if json_file else None)
        self.csv = (SubmissionCSVWriter(csv_file, *csv_args, resume_offset=state["csv"])
                    if csv_file else None)
        tracks = _tracks_path(output)
        if state["tracks"]:
            _truncate(tracks, state["tracks"])
        self._tracks = open(tracks, "a" if state["tracks"] else "w", encoding="utf-8")
        self._started = (time.perf_counter(), self.key_frames_done)
        self._committed = self._snapshot()

    @classmethod
    def resume(cls, output: str, json_file: Optional[str], csv_file: Optional[str],
               header: dict, csv_args: tuple, fps: float, source: dict, settings: dict,
               checkpoint_every: int = 60) -> "DemoOutputs":
        """
        Continue the interrupted run recorded in ``<output>.progress.json``.

        Raises:
            ResumeError: naming the progress file: there is none, or the source or the settings
                (config, weights, thresholds, ...) differ from the recorded ones, or a recorded
                file is missing or shorter than recorded.
        """
        path = progress_path(output)
        if not os.path.isfile(path):
            raise ResumeError(f"--resume: no interrupted run to resume: {path} not found (a "
                             "finished run removes it)")
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("format") != PROGRESS_FORMAT:
            raise ResumeError(f"--resume: {path} is not a demo progress file")
        for what, now in (("source", source), ("settings", settings)):
            diff = _differences(state[what], now)
            if diff:
                raise ResumeError(f"--resume: the {what} differs from the interrupted run's "
                                 f"(recorded in {path}): {'; '.join(diff)}. Resume with the same "
                                 "input, config and options, or start again with --overwrite")
        for flag, name, key in (("--json", json_file, "json"), ("--csv", csv_file, "csv")):
            if bool(name) != (state[key] is not None):
                raise ResumeError(f"--resume: {flag} {'given' if name else 'missing'}, unlike the "
                                 f"interrupted run recorded in {path}")
        folder = os.path.dirname(os.path.abspath(output))
        for name in state["segments"]:
            if not os.path.isfile(os.path.join(folder, name)):
                raise ResumeError(f"--resume: video segment {os.path.join(folder, name)} "
                                 f"(recorded in {path}) is missing")
        try:
            return cls(output, json_file, csv_file, header, csv_args, fps, source, settings,
                       checkpoint_every, state=state)
        except ValueError as e:  # a file cut short or with another header
            raise ResumeError(f"--resume ({path}): {e}") from None

    @property
    def num_frames(self) -> int:
        """Frames of the annotated video written so far (this run and the interrupted ones)."""
        return self.video.num_frames

    def track_history(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """``(boxes (R, 4), scores (R,))`` of the key frames done, read from the track log."""
        with open(_tracks_path(self.output), encoding="utf-8") as f:
            for _, line in zip(range(self.key_frames_done), f):
                row = json.loads(line)
                yield (np.asarray(row["boxes"], np.float64).reshape(-1, 4),
                       np.asarray(row["scores"], np.float64))

    def write_frame(self, index: int, frame: np.ndarray, time: float) -> None:
        """Add annotated frame ``index`` (the next one the video lacks), shown at ``time``
        seconds (its source time)."""
        if index != self.video.num_frames:
            raise RuntimeError(f"{self.output}: frame {index} comes after frame "
                               f"{self.video.num_frames - 1}: frames would be lost or repeated")
        self.video.write(frame, time)

    def add_key_frame(self, key_frame) -> None:
        """Write one key frame's JSON / CSV / track rows (its frames are written before)."""
        inst = key_frame.instances
        if self.csv is not None:
            self.csv.add(key_frame)
        if self.json is not None:
            self.json.add(key_frame)
            self.json.flush(self.num_frames)
        # repr of float64 reads back bit-exact: the replayed tracker gives the same ids
        row = {"boxes": inst.pred_boxes.tensor.numpy().astype(np.float64).tolist(),
               "scores": inst.scores.numpy().astype(np.float64).tolist()}
        self._tracks.write(json.dumps(row) + "\n")
        self._tracks.flush()
        self.key_frames_done += 1
        self._committed = self._snapshot()
        if self.key_frames_done % self.checkpoint_every == 0:
            self.checkpoint()

    def _snapshot(self) -> dict:
        return {"key_frames_done": self.key_frames_done,
                "json": [self.json.offset, self.json.count] if self.json is not None else None,
                "csv": self.csv.offset if self.csv is not None else None,
                "tracks": self._tracks.tell()}

    def checkpoint(self) -> None:
        """Close the open video segment and record what is fully written."""
        before = self.state["frames_written"]
        segments = self.video.checkpoint()
        new = segments[len(self.state["segments"]):]
        # the frames in the files (an encoder interrupted mid-frame may hold one more or less)
        self.video.num_frames = before + sum(count_video_frames(p) for p in new)
        self.state.update(self._committed, frames_written=self.video.num_frames,
                          segments=[os.path.basename(p) for p in segments])
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.path)

    def rate(self) -> float:
        """Key frames per second of this run."""
        t0, k0 = self._started
        return (self.key_frames_done - k0) / max(time.perf_counter() - t0, 1e-9)

    def finish(self, complete: bool, error: Optional[str] = None) -> None:
        """
        Checkpoint, close the JSON (``complete`` / ``error``) and the CSV, join the segments into
        the output; a complete run then removes its progress files and segments, an incomplete
        one keeps them for ``--resume``.
        """
        self.checkpoint()
        if self.json is not None:
            self.json.offset, self.json.count = self._committed["json"]  # drop a half key frame
            self.json.close(self.num_frames, complete=complete, error=error)
        if self.csv is not None:
            self.csv.close()
        self._tracks.close()
        if self.video.segments:
            join_segments(self.video.segments, self.output, keep_timestamps=True)
        if complete:
            for path in leftover_files(self.output):
                os.remove(path)
        else:
            logger.info(f"{self.path}: {self.key_frames_done} key frames done; run again with "
                        "--resume to continue")
