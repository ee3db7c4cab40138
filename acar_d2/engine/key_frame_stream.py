"""
``KeyFrameStream``: the key-frame loop shared by the video predictors, by presentation time.

It builds the model of a config (as :class:`~acar_d2.engine.defaults.ActionPredictor`) and its
test-time :class:`~acar_d2.data.clip_mapper.ClipDatasetMapper`, opens a video source (file, frame
folder, device, URL, or a :class:`~acar_d2.data.video_io.VideoSource`), takes key frames at
seconds (:func:`key_frame_schedule`, or given :class:`KeyFrameRequest`) and yields one
:class:`KeyFramePrediction` per key frame, in order, and nothing else: what is done with the
frames (an annotated video, resuming) belongs to the caller (``demo/``). What a key frame's
prediction is belongs to the subclass (:meth:`KeyFrameStream.predict_key_frame`): action scores
(:class:`~acar_d2.engine.video_predictor.VideoActionPredictor`) or feature-bank entries
(:class:`~acar_d2.engine.bank_extraction.BankPassPredictor`, pass 1 of a bank model).

Time, not frames: the key frame of time t is the frame on screen at t, and its clip's frame k the
frame on screen at ``t + (k * SAMPLING_RATE - NUM_FRAMES * SAMPLING_RATE // 2) / FPS`` with the
model's own frame rate (``INPUT.CLIP.FPS``; :mod:`acar_d2.data.video_io.timing`), read from the
source's presentation timestamps: a 25 / 60 fps or variable-rate video gives the model the same
seconds as the footage it was trained on.

The source is decoded once, front to back; a :class:`~acar_d2.data.video_io.TimedFrameBuffer`
keeps the frames from the earliest clip time still needed, so memory does not grow with the video
and nothing seeks. A key frame is predicted as soon as the frame shown at its clip's last time
has arrived: on a live source its prediction lags the key frame by the clip's second half (AVA 32x2
at 30 fps: 1.0 s; the synthetic 8x2 at 8 fps: 0.75 s) plus the compute time.
"""
import logging
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

import torch
from detectron2.config import CfgNode
from detectron2.structures import Instances

from ..data.clip_mapper import ClipDatasetMapper, clip_fps
from ..data.video_io import (TimedFrameBuffer, VideoSource, VideoSourceError, clip_time_offsets,
                             open_video_source)
from ..data.video_io.timing import TIME_EPS
from .defaults import ActionPredictor

__all__ = ["KeyFrameStream", "KeyFrameRequest", "KeyFramePrediction", "key_frame_schedule",
           "bank_time"]

logger = logging.getLogger(__name__)


@dataclass
class KeyFrameRequest:
    """
    A key frame to predict.

    Attributes:
        time (float): seconds from the start of the source; the key frame is the frame on screen
            then.
        timestamp (int or None): AVA timestamp (integer seconds) for the submission CSV.
        proposals (dict or None): ``{"boxes": (R, 4) XYXY px, "scores": (R,)}`` person boxes; None =
            the model's person detector finds them.
    """

    time: float
    timestamp: Optional[int] = None
    proposals: Optional[dict] = None


@dataclass
class KeyFramePrediction:
    """
    One key frame's prediction.

    Attributes:
        index (int): 0-based number of the key frame among those requested.
        time (float): presentation time (seconds) of the key frame, the frame on screen at the
            requested time (the same when a frame starts then).
        timestamp (int or None): as in :class:`KeyFrameRequest`.
        frame_index (int): 0-based index of the key frame in the source's display order.
        instances (Instances): source px, on the CPU: ``pred_boxes`` (R, 4), ``scores`` (R,)
            person scores, ``action_scores`` (R, K), ``action_logits`` (R, K), ``track_ids`` (R,)
            int64 (-1 without tracking).
        relation_maps (list[RelationMap] or None): one per row of ``instances``, set by a caller
            that records them (``acar_d2.modeling.RelationRecorder``, the demo's ``--relations``).
    """

    index: int
    time: float
    timestamp: Optional[int]
    frame_index: int
    instances: Instances
    relation_maps: Optional[list] = None


def key_frame_schedule(stride_s: float = 1.0, offset_s: float = 0.0,
                       end_s: Optional[float] = None) -> Iterator[KeyFrameRequest]:
    """
    Key frames every ``stride_s`` seconds from ``offset_s`` (AVA: every second), timestamp ``t``
    when t is a whole second; up to (excluding) ``end_s``, endless when None (a source stops it by
    ending).
    """
    if stride_s <= 0:
        raise ValueError(f"key-frame stride must be > 0 seconds, got {stride_s}")
    k = 0
    while True:
        t = offset_s + k * stride_s
        if end_s is not None and t >= end_s - TIME_EPS:
            return
        whole = abs(t - round(t)) < 1e-6
        yield KeyFrameRequest(float(t), int(round(t)) if whole else None)
        k += 1


class _BufferReader:
    """Clip reader of ``ClipDatasetMapper`` that takes the frames on screen at the clip's times
    from a :class:`TimedFrameBuffer`."""

    def __init__(self):
        self.buffer: Optional[TimedFrameBuffer] = None

    def at_times(self, dataset_dict: dict, times) -> torch.Tensor:
        frames = self.buffer.gather(times)  # (T, H, W, 3)
        return torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W), channels-last memory


class KeyFrameStream:
    """
    Builds the model of ``cfg``, loads ``cfg.MODEL.WEIGHTS`` (as :class:`ActionPredictor`) and
    yields one :class:`KeyFramePrediction` per key frame of a video source; subclasses say what a
    key frame's prediction is (:meth:`predict_key_frame`).

    Args:
        cfg (CfgNode): a full acar_d2 config.
        key_frame_stride (float): seconds between key frames (default one per second, as AVA).
        fps (float or None): frame rate of frame folders and of live streams without timestamps.
        allow_random_weights (bool): run without ``MODEL.WEIGHTS`` (random scores; benchmarks).
        onnx_dir (str or None): a folder of ``tools/export_model.py``: the action model (and the
            person detector) run from its ONNX files in ``onnx_engine``
            (:class:`~acar_d2.export.ONNXRuntimeACARNet`); ``MODEL.WEIGHTS`` is then not needed.
        onnx_engine (str): "onnxruntime" or "openvino" (:data:`acar_d2.export.ENGINES`); the
            exported files run at ``MODEL.INFERENCE.PRECISION`` (bf16: OpenVINO only).
    """

    def __init__(self, cfg: CfgNode, key_frame_stride: float = 1.0, fps: Optional[float] = None,
                 allow_random_weights: bool = False, onnx_dir: Optional[str] = None,
                 onnx_engine: str = "onnxruntime"):
        if onnx_dir is not None:
            allow_random_weights = True  # the weights are those of the exported files
        if not cfg.MODEL.WEIGHTS and not allow_random_weights:
            raise ValueError(
                "MODEL.WEIGHTS is empty: the model would predict with random weights; give a "
                "checkpoint (MODEL.WEIGHTS path) or allow random weights explicitly")
        if key_frame_stride <= 0:
            raise ValueError(f"key_frame_stride must be > 0 seconds, got {key_frame_stride}")
        self.cfg = cfg.clone()
        self.cfg.defrost()
        if not cfg.MODEL.WEIGHTS and "WEIGHTS_STRICT" in cfg.MODEL:
            self.cfg.MODEL.WEIGHTS_STRICT = False  # random weights asked for explicitly
        self.cfg.INPUT.CLIP.FPS = clip_fps(cfg)  # the model's seconds, fixed once
        self.cfg.freeze()
        if onnx_dir is None:
            self.model = ActionPredictor(self.cfg).model
        else:
            from ..export import ONNXRuntimeACARNet, check_engine_precision

            check_engine_precision(onnx_engine, self.cfg.MODEL.INFERENCE.PRECISION)

            # The PyTorch model only gives the proposal rules and the post-processing: no weight
            # file is read (or fetched) for it.
            self.model = ONNXRuntimeACARNet.from_folder(
                ActionPredictor(_without_weights(self.cfg)).model, onnx_dir, engine=onnx_engine,
                precision=self.cfg.MODEL.INFERENCE.PRECISION)
        self.has_detector = getattr(self.model, "person_detector", None) is not None
        self._reader = _BufferReader()
        mapper_cfg = self.cfg.clone()
        mapper_cfg.defrost()
        mapper_cfg.DATASETS.TEST = ()  # test-time mapping needs no class table
        self.mapper = ClipDatasetMapper(mapper_cfg, is_train=False, reader=self._reader)
        self.key_frame_stride = float(key_frame_stride)
        self.fps = fps
        clip = self.cfg.INPUT.CLIP
        offsets = clip_time_offsets(clip.NUM_FRAMES, clip.SAMPLING_RATE, clip.FPS)
        # seconds of the clip's first / last frame relative to its key time
        self.clip_start_s, self.clip_end_s = float(offsets[0]), float(offsets[-1])

    def open(self, source: Union[str, VideoSource]) -> VideoSource:
        """A :class:`VideoSource` of ``source`` (paths/URLs opened with this predictor's fps)."""
        if isinstance(source, VideoSource):
            return source
        return open_video_source(str(source), fps=self.fps)

    def predict_key_frame(self, buffer: TimedFrameBuffer, request: KeyFrameRequest,
                          video_id: str = "video") -> Instances:
        """
        Predict one key frame whose clip frames are in ``buffer`` (times past its newest frame
        take that frame, as at the end of a video).

        Returns:
            Instances: key-frame px, on the CPU; the fields are the subclass's.
        """
        raise NotImplementedError

    def map_key_frame(self, buffer: TimedFrameBuffer, request: KeyFrameRequest,
                      video_id: str = "video") -> dict:
        """The model input of one key frame (``ClipDatasetMapper`` output)."""
        frame = buffer[int(buffer.index_at([request.time])[0])]
        d = {"video_id": video_id, "timestamp": request.timestamp or 0,
             "key_time": float(request.time), "fps": float(self.cfg.INPUT.CLIP.FPS),
             "height": frame.shape[0], "width": frame.shape[1], "annotations": []}
        if request.proposals is not None:
            d["proposals"] = request.proposals
        elif not self.has_detector:
            raise ValueError(
                "the model has no person detector (MODEL.PERSON_DETECTOR.NAME is empty) and no "
                f"person boxes were given for the key frame at {request.time:.3f} s: give boxes "
                "(tools/demo.py --boxes) or a config with a person detector")
        self._reader.buffer = buffer
        inputs = self.mapper(d)
        if request.proposals is not None and self.has_detector:
            inputs["box_source"] = "file"
        return inputs

    def __call__(
        self,
        source: Union[str, VideoSource],
        key_frames: Optional[Iterable[KeyFrameRequest]] = None,
        video_id: str = "video",
    ) -> Iterator[KeyFramePrediction]:
        """
        Predict the key frames of ``source`` while decoding it once, to its end; closes it.

        Args:
            source: a path / URL / device, or an opened :class:`VideoSource` (:meth:`open`).
            key_frames: the key frames in increasing ``time`` (e.g. with given boxes); default
                :func:`key_frame_schedule` every ``key_frame_stride`` seconds.
            video_id: name passed to the mapper (messages).
        Yields:
            KeyFramePrediction, in key-frame order.
        Raises:
            VideoSourceError: the source breaks while decoding, after every key frame whose frame
                was decoded has been yielded.
        """
        src = self.open(source)
        given = key_frames is not None
        requests = iter(key_frames) if given else key_frame_schedule(self.key_frame_stride)
        buffer = TimedFrameBuffer()
        request = next(requests, None)
        count, last_time, error = 0, float("-inf"), None

        def predict(req: KeyFrameRequest) -> KeyFramePrediction:
            nonlocal count, last_time
            if req.time <= last_time:
                raise ValueError(f"key frames must be in increasing time order: {req.time} s "
                                 f"after {last_time} s")
            last_time = req.time
            index = int(buffer.index_at([req.time])[0])
            inst = self.predict_key_frame(buffer, req, video_id)
            count += 1
            return KeyFramePrediction(count - 1, buffer.time_of(index), req.timestamp, index, inst)

        try:
            for t, frame in src.timed_frames():
                buffer.append(t, frame)
                # complete once the frame on screen at the clip's last time has arrived: one
                # shown from that time on (a frame at exactly that time is that frame)
                while request is not None and t >= request.time + self.clip_end_s - TIME_EPS:
                    yield predict(request)
                    request = next(requests, None)
                buffer.drop_before(request.time + self.clip_start_s if request is not None else t)
        except VideoSourceError as e:
            error = e
        finally:
            src.close()
        # The end: the last key frames inside the video use clamped clips (official rule).
        end = _end_time(src, buffer, broken=error is not None)
        while request is not None and request.time < end - TIME_EPS and len(buffer):
            yield predict(request)
            request = next(requests, None)
        if request is not None and given:
            logger.warning(f"{src.name}: key frames from {request.time:.3f} s on lie after the "
                           f"end of the video ({end:.3f} s) and were not predicted")
        if error is not None:
            raise error


def _without_weights(cfg: CfgNode) -> CfgNode:
    """``cfg`` with no weight file for the model nor for its person detector."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    if "WEIGHTS_STRICT" in cfg.MODEL:
        cfg.MODEL.WEIGHTS_STRICT = False
    if "PERSON_DETECTOR" in cfg.MODEL:
        cfg.MODEL.PERSON_DETECTOR.WEIGHTS = ""
    cfg.freeze()
    return cfg


def _end_time(src: VideoSource, buffer: TimedFrameBuffer, broken: bool) -> float:
    """Seconds at which the decoded video ends: the end of its last frame (the container's
    duration when it tells one past the last frame, else one frame at the average rate); a
    broken stream ends at its last decoded frame."""
    last = buffer.newest_time
    if broken:
        return last + TIME_EPS * 2
    duration = getattr(src, "duration", None)
    if duration is not None and duration > last + TIME_EPS:
        return float(duration)
    return last + 1.0 / float(src.fps)


def bank_time(request: KeyFrameRequest) -> int:
    """The bank time (integer seconds) of a key frame: its timestamp, else its rounded time."""
    return int(request.timestamp) if request.timestamp is not None else int(round(request.time))
