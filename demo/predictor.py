"""
Running a trained action detector over whole videos and drawing its predictions.

``annotate_source`` (what ``demo/demo.py`` runs) decodes a source once with a
:class:`acar_d2.engine.VideoActionPredictor` and writes the annotated video (every input frame,
same size and rate), the JSON document and the AVA submission CSV, keeping everything written so
far when the source breaks or the user presses Ctrl-C.

``annotate_video`` runs an :class:`acar_d2.engine.ActionPredictor` on the key-frame dicts of a
dataset video (``make quickstart``); ``video_keyframe_dicts`` makes the key-frame dicts of a raw
video from person boxes.
"""
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import tqdm

from detectron2.structures import Instances

from acar_d2.data.video_io import (ClipReader, VideoSource, VideoSourceError, VideoWriter,
                             video_frame_count_and_size, write_video)
from acar_d2.modeling.roi_heads.relation_maps import check_relation_heads, record_relations
from acar_d2.utils.demo_outputs import PredictionJSONWriter, SubmissionCSVWriter
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
    json_every: int = 60,
    model_info: Optional[dict] = None,
    relations: bool = False,
) -> DemoResult:
    """
    Predict a whole source and write the annotated video (+ JSON / CSV).

    Every input frame is written, at the input's size and frame rate (an odd last row / column is
    cropped, H.264 4:2:0 needs even sizes), with the boxes, track ids and labels of the latest key
    frame. The CSV is flushed per key frame; the JSON is rewritten every ``json_every`` key frames
    and at the end (``"complete": false`` with the ``"error"`` when stopped early). The source is
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
        relations: record the relation maps (``record_relations``): each actor's in the JSON
            (``"relation"``), and on the video the map of the actor with the highest interaction
            score (:func:`~acar_d2.utils.relations.interaction_actor`).
    Returns:
        DemoResult.
    Raises:
        VideoSourceError: the source cannot be opened (nothing written).
    """
    pose = check_relation_heads(predictor.model).pose_class_indices if relations else []
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
    writer = VideoWriter(output_file, src.fps)
    header = {
        "source": src.name, "video_id": video_id, "fps": float(src.fps), "width": int(src.width),
        "height": int(src.height),
        "key_frame_stride": predictor.key_frame_stride if key_frames is None else None,
        "class_names": list(names), "action_ids": list(predictor.action_ids),
        "thresholds": thresh.tolist(),
    }
    if model_info:
        header["model"] = dict(model_info)
    json_writer = PredictionJSONWriter(json_file, header) if json_file else None
    csv_writer = (SubmissionCSVWriter(csv_file, video_id, predictor.action_ids, src.width,
                                      src.height) if csv_file else None)
    bar = tqdm.tqdm(total=total, unit="key frame", desc=video_id, disable=not progress)
    count, complete, error = 0, False, None
    recording = record_relations(predictor.model) if relations else contextlib.nullcontext()
    recording.__enter__()
    try:
        for kf in predictor(src, key_frames, with_frames=True, video_id=video_id):
            inst = kf.instances
            boxes = inst.pred_boxes.tensor.numpy()
            scores = inst.action_scores.numpy()
            ids = inst.track_ids.numpy()
            actor = interaction_actor(scores, pose) if relations else None
            shown = None if actor is None else relation_map(inst, actor, (src.height, src.width))
            for j, frame in enumerate(kf.frames):
                i = kf.first_frame + j
                title = f"{video_id} {i / src.fps:.2f}s"
                if i < kf.frame_index:  # before the first key frame: nothing to show yet
                    writer.write(vis.draw(frame, np.zeros((0, 4)), np.zeros((0, len(names))), title))
                else:
                    if shown is not None:
                        frame = draw_relation_map(frame, shown, boxes)
                    writer.write(vis.draw(frame, boxes, scores, f"{title} (key {kf.time:.2f}s)",
                                          track_ids=ids))
            if csv_writer is not None:
                csv_writer.add(kf)
            count += 1
            if json_writer is not None:
                json_writer.add(kf)
                if json_every and count % json_every == 0:
                    json_writer.close(writer.num_frames, complete=False)
            bar.update(1)
        complete = True
    except KeyboardInterrupt:
        error = "interrupted (Ctrl-C)"
    except VideoSourceError as e:
        error = str(e)
    finally:
        recording.__exit__(None, None, None)
        bar.close()
        writer.close()
        if csv_writer is not None:
            csv_writer.close()
        if json_writer is not None:
            json_writer.close(writer.num_frames, complete=complete, error=error)
    if writer.num_frames:
        logger.info(f"Wrote {writer.num_frames} annotated frames to {output_file}")
    return DemoResult(writer.num_frames, count, complete, error)
