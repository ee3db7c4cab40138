"""
Running a trained action detector over whole videos and drawing its predictions.

``annotate_source`` (what ``demo/demo.py`` runs) decodes a source once with a
:class:`acar_d2.engine.VideoActionPredictor` and writes the annotated video (every input frame,
same size and rate), the JSON document and the AVA submission CSV, keeping everything written so
far when the source breaks or the user presses Ctrl-C, and continues an interrupted run
(``resume``) without predicting its key frames again.

``annotate_video`` runs an :class:`acar_d2.engine.ActionPredictor` on the key-frame dicts of a
dataset video (``make quickstart``); ``video_keyframe_dicts`` makes the key-frame dicts of a raw
video from person boxes.
"""
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import tqdm

from detectron2.structures import Instances

from acar_d2.data.video_io import (ClipReader, VideoSource, VideoSourceError,
                                   video_frame_count_and_size, write_video)
from acar_d2.modeling.roi_heads.relation_maps import check_relation_heads, record_relations
from acar_d2.utils.demo_resume import (DemoOutputs, ResumeError, settings_fingerprint,
                                       source_fingerprint)
from acar_d2.utils.relations import interaction_actor, relation_map
from acar_d2.utils.visualizer import ActionVisualizer, draw_relation_map

__all__ = ["video_keyframe_dicts", "annotate_video", "annotate_source", "DemoResult"]

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

    Every input frame is written, at the input's size and frame rate (an odd last row / column is
    cropped, H.264 4:2:0 needs even sizes), with the boxes, track ids and labels of the latest key
    frame. The CSV and the JSON are written key frame by key frame (the JSON valid after each,
    ``"complete": false`` with the ``"error"`` when stopped early); the video in segments joined
    at the end (:class:`acar_d2.utils.demo_resume.DemoOutputs`), so nothing grows with the video
    and an interrupted run continues with ``resume``. The source is opened before any output file
    is created, so an unreadable source leaves no file behind.

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
        relations: record the relation maps (``record_relations``): each actor's in the JSON
            (``"relation"``), and on the video the map of the actor with the highest interaction
            score (:func:`~acar_d2.utils.relations.interaction_actor`).
    Returns:
        DemoResult (``frames`` and ``key_frames`` include an interrupted run's).
    Raises:
        VideoSourceError: the source cannot be opened (nothing written).
        ResumeError: ``resume`` refused (no progress file, another source or other settings, a
            live source).
    """
    pose = check_relation_heads(predictor.model).pose_class_indices if relations else None
    src = predictor.open(source)
    name = src.name.rstrip("/")
    video_id = video_id or os.path.splitext(os.path.basename(name))[0] or "video"
    names = predictor.class_names
    thresh = np.asarray(thresholds, np.float64)
    thresh = np.full(len(names), float(thresh)) if thresh.ndim == 0 else thresh
    vis = ActionVisualizer(names, top_k=top_k, score_thresh=thresh)
    if key_frames is None and src.num_frames:
        stride_frames = predictor.key_frame_stride * src.fps
        total = int(np.ceil((src.num_frames - 0.5) / stride_frames)) if not src.is_live else None
    else:
        total = len(key_frames) if isinstance(key_frames, (list, tuple)) else None
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
    bar = tqdm.tqdm(total=total, initial=start, unit="key frame", desc=video_id,
                    disable=not progress)
    complete, error = False, None
    recording = record_relations(predictor.model) if relations else contextlib.nullcontext()
    recording.__enter__()
    try:
        history = outputs.track_history() if start else ()
        for kf in predictor(src, key_frames, with_frames=True, video_id=video_id,
                            skip_key_frames=start, track_history=history):
            _write_key_frame(outputs, vis, kf, video_id, src.fps, len(names), pose)
            bar.update(1)
            if outputs.key_frames_done % checkpoint_every == 0 and not progress:
                logger.info(f"{outputs.key_frames_done}" + (f"/{total}" if total else "") +
                            f" key frames, {outputs.rate():.2f} key frames/s")
            if on_key_frame is not None:
                on_key_frame(kf)
        complete = True
    except KeyboardInterrupt:
        error = "interrupted (Ctrl-C)"
    except VideoSourceError as e:
        error = str(e)
    finally:
        recording.__exit__(None, None, None)
        bar.close()
        outputs.finish(complete, error)
    if outputs.num_frames:
        logger.info(f"Wrote {outputs.num_frames} annotated frames to {output_file}")
    return DemoResult(outputs.num_frames, outputs.key_frames_done, complete, error)


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
                source_fingerprint(src), settings, checkpoint_every=checkpoint_every)


def _write_key_frame(outputs: DemoOutputs, vis: ActionVisualizer, kf, video_id: str, fps: float,
                     num_classes: int, relation_pose: Optional[list] = None) -> None:
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
            h, w = kf.frames[0].shape[:2] if kf.frames else inst.image_size
            shown = relation_map(inst, actor, (h, w))
    for j, frame in enumerate(kf.frames):
        i = kf.first_frame + j
        if i < outputs.num_frames:  # written before an interruption
            continue
        title = f"{video_id} {i / fps:.2f}s"
        if i < kf.frame_index:  # before the first key frame: nothing to show yet
            drawn = vis.draw(frame, np.zeros((0, 4)), np.zeros((0, num_classes)), title)
        else:
            if shown is not None:
                frame = draw_relation_map(frame, shown, boxes)
            drawn = vis.draw(frame, boxes, scores, f"{title} (key {kf.time:.2f}s)", track_ids=ids)
        outputs.write_frame(i, drawn)
    outputs.add_key_frame(kf)
