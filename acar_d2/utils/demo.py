"""
Running a trained action detector over whole videos and drawing its predictions.

``annotate_video`` runs an :class:`acar_d2.engine.ActionPredictor` on every key frame of a video
and writes an annotated video; ``video_keyframe_dicts`` makes the key-frame dicts of a raw video.
"""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import tqdm

from detectron2.structures import Instances

from ..data.clip_reader import ClipReader, video_frame_count_and_size
from .visualizer import ActionVisualizer, write_video

__all__ = ["video_keyframe_dicts", "annotate_video"]

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
