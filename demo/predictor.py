"""
Running a trained action detector over whole videos and drawing its predictions.

``annotate_source`` (what ``demo/demo.py`` runs) decodes a source once with a
:class:`acar_d2.engine.VideoActionPredictor`, which yields the predictions of the key frames; it
pairs them with the source's frames (each frame shows the latest key frame at or before its
presentation time, as detectron2's ``VisualizationDemo`` pairs frames with predictions) and writes
the annotated video (every input frame, same size, shown at the source's own times, constant or
variable rate), the JSON document and the AVA submission CSV, keeping everything written so far
when the source breaks or the user presses Ctrl-C, and continues an interrupted run (``resume``,
:mod:`demo.resume`) without predicting its key frames again.

``annotate_video`` runs an :class:`acar_d2.engine.ActionPredictor` on the key-frame dicts of a
dataset video (``make quickstart``); ``video_keyframe_dicts`` makes the key-frame dicts of a raw
video from person boxes.
"""
import contextlib
import itertools
import logging
import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import tqdm

from detectron2.structures import Instances

from acar_d2.data.video_io import (ClipReader, VideoSource, VideoSourceError, as_rgb,
                                   video_frame_count_and_size, write_video)
from acar_d2.data.video_io.timing import TIME_EPS
from acar_d2.engine.key_frame_stream import key_frame_schedule
from acar_d2.modeling.relation_maps import RelationRecorder, interaction_actor
from acar_d2.utils.visualizer import ActionVisualizer, draw_relation_map
from demo.resume import DemoOutputs, ResumeError, settings_fingerprint, source_fingerprint

__all__ = ["video_keyframe_dicts", "annotate_video", "annotate_source", "DemoResult", "FrameTap"]

logger = logging.getLogger(__name__)


def video_keyframe_dicts(
    video_file: str,
    video_id: str,
    boxes_by_second: Dict[int, np.ndarray],
) -> List[dict]:
    """
    Dataset dicts (docs/ARCHITECTURE.md) for the key frames of a raw video file.

    Args:
        video_file (str): any file PyAV decodes.
        video_id (str): name used in the dicts.
        boxes_by_second (dict[int, ndarray]): second -> (R, 5) person boxes ``x1, y1, x2, y2,
            score`` normalized to [0, 1] (the PySlowFast predicted-box CSV convention).
    Returns:
        list[dict]: one dict per second that has boxes and lies inside the video.
    """
    num_frames, height, width = video_frame_count_and_size(video_file)
    import av

    with av.open(video_file) as container:
        fps = float(container.streams.video[0].average_rate)
    dicts = []
    scale = np.array([width, height, width, height], np.float32)
    for second, rows in sorted(boxes_by_second.items()):
        key = int(round(second * fps))
        if not 0 <= key < num_frames:
            raise ValueError(f"{video_file}: boxes given for second {second}, but the video has "
                             f"{num_frames} frames at {fps:.2f} fps")
        rows = np.asarray(rows, np.float32).reshape(-1, 5)
        dicts.append({
            "video_id": video_id, "timestamp": int(second), "video_file": video_file,
            "fps": fps, "key_frame_index": key, "num_frames": num_frames,
            "height": height, "width": width, "annotations": [],
            "proposals": {"boxes": rows[:, :4] * scale, "scores": rows[:, 4]},
        })
    return dicts


def annotate_video(
    predictor,
    dataset_dicts: Sequence[dict],
    class_names: Sequence[str],
    output_file: str,
    source: str = "video",
    top_k: int = 3,
    score_thresh: float = 0.2,
    min_height: int = 360,
) -> List[Instances]:
    """
    Predict every key frame of one video and write the whole video with the predictions drawn:
    each frame shows the predictions of the nearest key frame.

    Args:
        predictor (ActionPredictor): maps a key-frame dict to Instances.
        dataset_dicts (list[dict]): the key frames of ONE video (same frame source).
        source (str): "video" (``video_file``) or "frames" (``frame_dir``) to read the frames from.
        min_height (int): small videos are enlarged by an integer factor (nearest neighbour) to at
            least this height so that the labels stay readable.
    Returns:
        list[Instances]: the predictions, one per key frame.
    """
    if not dataset_dicts:
        raise ValueError(f"annotate_video({output_file!r}): no key frames given")
    dicts = sorted(dataset_dicts, key=lambda d: d["key_frame_index"])
    predictions = [predictor(d) for d in tqdm.tqdm(dicts, desc="key frames", unit="clip")]
    first = dicts[0]
    frames = ClipReader(source)(first, list(range(first["num_frames"])))  # (T, 3, H, W)
    frames = frames.permute(0, 2, 3, 1).numpy()
    keys = np.array([d["key_frame_index"] for d in dicts])
    factor = max(1, int(np.ceil(min_height / frames.shape[1])))
    vis = ActionVisualizer(class_names, top_k=top_k, score_thresh=score_thresh)
    out = []
    for i, frame in enumerate(frames):
        j = int(np.argmin(np.abs(keys - i)))
        inst = predictions[j]
        title = f"{first['video_id']} t={i / first['fps']:.2f}s (key frame {dicts[j]['timestamp']}s)"
        big = frame.repeat(factor, axis=0).repeat(factor, axis=1)
        boxes = inst.pred_boxes.tensor.numpy() * factor
        out.append(vis.draw(big, boxes, inst.action_scores.numpy(), title))
    write_video(output_file, out, fps=first["fps"])
    logger.info(f"Wrote {len(out)} annotated frames to {output_file}")
    return predictions


@dataclass
class DemoResult:
    """
    Attributes:
        frames (int): annotated frames written.
        key_frames (int): key frames predicted.
        complete (bool): the whole source was processed.
        error (str or None): why it stopped early ("interrupted (Ctrl-C)", a source error).
    """

    frames: int
    key_frames: int
    complete: bool
    error: Optional[str]


class FrameTap(VideoSource):
    """
    A source that also keeps every frame it hands to the predictor, with its index and time, until
    the demo takes it (:meth:`take_before`): the predictor decodes the source once and yields only
    predictions; the demo draws them on the frames it tapped.

    Args:
        src (VideoSource): the source (its attributes are this one's).
    """

    def __init__(self, src: VideoSource):
        super().__init__()
        self.src = src
        for key in ("name", "fps", "width", "height", "num_frames", "duration", "is_live"):
            setattr(self, key, getattr(src, key, None))
        self.is_live = bool(self.is_live)
        self._frames: deque = deque()  # (index, time, frame) not taken yet
        self._count = 0

    def timed_frames(self):
        for t, frame in self.src.timed_frames():
            self._frames.append((self._count, t, frame))
            self._count += 1
            yield t, frame

    def raw_frames(self):
        for _, frame in self.timed_frames():
            yield frame

    def take_before(self, time: float) -> list:
        """The tapped ``(index, time, frame)`` shown before ``time`` (seconds), in order."""
        out = []
        while self._frames and self._frames[0][1] < time - TIME_EPS:
            out.append(self._frames.popleft())
        return out

    def reopen(self) -> VideoSource:
        return self.src.reopen()

    def close(self) -> None:
        self.src.close()


def annotate_source(
    predictor,
    source: Union[str, VideoSource],
    output_file: str,
    json_file: Optional[str] = None,
    csv_file: Optional[str] = None,
    thresholds: Union[float, Sequence[float]] = 0.3,
    top_k: int = 3,
    key_frames=None,
    video_id: Optional[str] = None,
    progress: bool = True,
    model_info: Optional[dict] = None,
    resume: bool = False,
    checkpoint_every: int = 60,
    on_key_frame: Optional[Callable] = None,
    relations: bool = False,
) -> DemoResult:
    """
    Predict a whole source and write the annotated video (+ JSON / CSV), resumable.

    Every input frame is written, at the input's size and at its own presentation time (an odd
    last row / column is cropped, H.264 4:2:0 needs even sizes), with the boxes, track ids and
    labels of the latest key frame at or before it. The CSV and the JSON are written key frame by
    key frame (the JSON valid after each, ``"complete": false`` with the ``"error"`` when stopped
    early); the video in segments joined at the end (:class:`demo.resume.DemoOutputs`), so
    nothing grows with the video and an interrupted run continues with ``resume``. The source is
    opened before any output file is created, so an unreadable source leaves no file behind.

    Args:
        predictor (VideoActionPredictor): the model.
        source: path / URL / device or a :class:`VideoSource`.
        thresholds: one score threshold, or K (per class), for the drawn labels and the JSON
            ``labels`` (the JSON ``scores`` and the CSV hold every class).
        key_frames: :class:`~acar_d2.engine.video_predictor.KeyFrameRequest` list (given boxes);
            None = one every ``predictor.key_frame_stride`` seconds.
        video_id: the CSV's video id (default: the source's file name without extension).
        model_info: ``{"config": ..., "weights": ...}`` recorded in the JSON.
        resume: continue the interrupted run recorded in ``<output_file>.progress.json``.
        checkpoint_every: key frames between checkpoints (what a killed run redoes at most).
        on_key_frame: called with each :class:`KeyFramePrediction` once it is fully written.
        relations: record the relation maps (:class:`~acar_d2.modeling.RelationRecorder`): each
            actor's in the JSON (``"relation"``), and on the video the map of the actor with the
            highest interaction score (:func:`~acar_d2.modeling.relation_maps.interaction_actor`).
    Returns:
        DemoResult (``frames`` and ``key_frames`` include an interrupted run's).
    Raises:
        VideoSourceError: the source cannot be opened (nothing written).
        ResumeError: ``resume`` refused (no progress file, another source or other settings, a
            live source).
    """
    recorder = RelationRecorder(predictor.model) if relations else None
    pose = recorder.heads.pose_class_indices if relations else None
    src = FrameTap(predictor.open(source))
    name = src.name.rstrip("/")
    video_id = video_id or os.path.splitext(os.path.basename(name))[0] or "video"
    names = predictor.class_names
    thresh = np.asarray(thresholds, np.float64)
    thresh = np.full(len(names), float(thresh)) if thresh.ndim == 0 else thresh
    vis = ActionVisualizer(names, top_k=top_k, score_thresh=thresh)
    total = _total_key_frames(predictor, src, key_frames)
    try:
        outputs = _demo_outputs(predictor, src, output_file, json_file, csv_file, thresh, top_k,
                                key_frames, video_id, model_info, resume, checkpoint_every,
                                relations)
    except Exception:
        src.close()
        raise
    start = outputs.key_frames_done
    if start:
        logger.info(f"Resuming {output_file} after {start} key frames ({outputs.num_frames} "
                    "frames)" + (f" of {total}" if total else ""))
    requests = itertools.islice(
        key_frames if key_frames is not None else key_frame_schedule(predictor.key_frame_stride),
        start, None)
    tracker = _resumed_tracker(predictor, outputs.track_history() if start else ())
    bar = tqdm.tqdm(total=total, initial=start, unit="key frame", desc=video_id,
                    disable=not progress)
    writer = _KeyFrameWriter(outputs, vis, src, video_id, len(names), pose)
    complete, error = False, None
    recording = recorder if relations else contextlib.nullcontext()
    recording.__enter__()
    try:
        for kf in predictor(src, requests, video_id=video_id, tracker=tracker):
            kf.index += start
            if recorder is not None:  # one model call per key frame, in the order they come out
                kf.relation_maps = recorder.maps.pop(0)
            for done in writer.add(kf):
                _key_frame_written(done, outputs, bar, total, checkpoint_every, progress,
                                   on_key_frame)
        for done in writer.add(None):  # the end: the last key frame's frames
            _key_frame_written(done, outputs, bar, total, checkpoint_every, progress, on_key_frame)
        complete = True
    except KeyboardInterrupt:
        error = "interrupted (Ctrl-C)"
    except VideoSourceError as e:
        error = str(e)
        for done in writer.add(None):  # the stream is over: its last key frame's frames are in
            _key_frame_written(done, outputs, bar, total, checkpoint_every, progress, on_key_frame)
    finally:
        recording.__exit__(None, None, None)
        bar.close()
        outputs.finish(complete, error)
    if outputs.num_frames:
        logger.info(f"Wrote {outputs.num_frames} annotated frames to {output_file}")
    return DemoResult(outputs.num_frames, outputs.key_frames_done, complete, error)


def _total_key_frames(predictor, src: VideoSource, key_frames) -> Optional[int]:
    """Key frames of the run, when known (progress bar)."""
    if key_frames is not None:
        return len(key_frames) if isinstance(key_frames, (list, tuple)) else None
    if src.is_live or not src.duration:
        return None
    return max(0, math.ceil(src.duration / predictor.key_frame_stride - TIME_EPS))


def _resumed_tracker(predictor, history):
    """The tracker of the run (None without tracking), having seen the key frames done."""
    if not getattr(predictor, "track", False):
        return None
    from acar_d2.utils.tracking import KeyFrameTracker

    tracker = KeyFrameTracker()
    for boxes, scores in history:
        tracker.update(boxes, scores)
    return tracker


def _key_frame_written(kf, outputs, bar, total, checkpoint_every, progress, on_key_frame) -> None:
    bar.update(1)
    if outputs.key_frames_done % checkpoint_every == 0 and not progress:
        logger.info(f"{outputs.key_frames_done}" + (f"/{total}" if total else "") +
                    f" key frames, {outputs.rate():.2f} key frames/s")
    if on_key_frame is not None:
        on_key_frame(kf)


class _KeyFrameWriter:
    """
    Pairs predictions with the tapped frames: a key frame's frames are those from its time up to
    the next key frame's, so they are drawn when the next prediction (or the end) arrives; then
    the key frame's rows are written (``DemoOutputs.add_key_frame``): a key frame done means its
    rows and its frames are written, which is what ``--resume`` continues after.
    """

    def __init__(self, outputs: DemoOutputs, vis: ActionVisualizer, tap: FrameTap,
                 video_id: str, num_classes: int, relation_pose: Optional[list]):
        self.outputs, self.vis, self.tap = outputs, vis, tap
        self.video_id, self.num_classes, self.relation_pose = video_id, num_classes, relation_pose
        self.shown = None  # the key frame whose frames are being drawn

    def add(self, kf) -> list:
        """Take the next prediction (None: the end of the source); returns the key frames now
        fully written."""
        until = kf.time if kf is not None else math.inf
        frames = self.tap.take_before(until)
        done = []
        if self.shown is not None:
            _write_key_frame(self.outputs, self.vis, self.shown, frames, self.video_id,
                             self.num_classes, self.relation_pose)
            done.append(self.shown)
        else:  # before the first key frame: nothing to show yet (or written by the interrupted run)
            _write_frames(self.outputs, self.vis, frames, self.video_id, self.num_classes)
        self.shown = kf
        return done


def _demo_outputs(predictor, src, output_file, json_file, csv_file, thresh, top_k, key_frames,
                  video_id, model_info, resume, checkpoint_every,
                  relations: bool = False) -> DemoOutputs:
    """The :class:`DemoOutputs` of a run: new files, or an interrupted run's continued."""
    header = {
        "source": src.name, "video_id": video_id, "fps": float(src.fps), "width": int(src.width),
        "height": int(src.height),
        "key_frame_stride": predictor.key_frame_stride if key_frames is None else None,
        "class_names": list(predictor.class_names), "action_ids": list(predictor.action_ids),
        "thresholds": thresh.tolist(),
    }
    if model_info:
        header["model"] = dict(model_info)
    settings = settings_fingerprint(
        predictor.cfg, key_frames if isinstance(key_frames, (list, tuple)) else None,
        header=header, top_k=int(top_k), track=bool(getattr(predictor, "track", False)),
        relations=bool(relations))
    if resume and src.is_live:
        raise ResumeError(f"--resume: {src.name} is a live source: it cannot be read again up to "
                          "where the interrupted run stopped")
    make = DemoOutputs.resume if resume else DemoOutputs
    return make(output_file, json_file, csv_file, header,
                (video_id, predictor.action_ids, src.width, src.height), src.fps,
                source_fingerprint(src.src if isinstance(src, FrameTap) else src), settings,
                checkpoint_every=checkpoint_every)


def _write_frames(outputs: DemoOutputs, vis: ActionVisualizer, frames: list, video_id: str,
                  num_classes: int) -> None:
    """Frames before the first key frame: drawn with nothing (those the video lacks)."""
    for i, t, frame in frames:
        if i < outputs.num_frames:  # written before an interruption
            continue
        drawn = vis.draw(as_rgb(frame), np.zeros((0, 4)), np.zeros((0, num_classes)),
                         f"{video_id} {t:.2f}s")
        outputs.write_frame(i, drawn, t)


def _write_key_frame(outputs: DemoOutputs, vis: ActionVisualizer, kf, frames: list,
                     video_id: str, num_classes: int, relation_pose: Optional[list] = None) -> None:
    """Draw and write the frames of one key frame (those the video lacks), then its rows.
    ``relation_pose`` (the pose class indices; None: no relation maps) draws the relation map of
    the actor with the highest interaction score."""
    inst = kf.instances
    boxes = inst.pred_boxes.tensor.numpy()
    scores = inst.action_scores.numpy()
    ids = inst.track_ids.numpy()
    shown = None
    if relation_pose is not None:
        actor = interaction_actor(scores, relation_pose)
        if actor is not None:
            shown = kf.relation_maps[actor]
    for i, t, frame in frames:
        if i < outputs.num_frames:  # written before an interruption
            continue
        frame = as_rgb(frame)
        if shown is not None:
            frame = draw_relation_map(frame, shown, boxes)
        drawn = vis.draw(frame, boxes, scores, f"{video_id} {t:.2f}s (key {kf.time:.2f}s)",
                         track_ids=ids)
        outputs.write_frame(i, drawn, t)
    outputs.add_key_frame(kf)
