"""
``KeyFrameStream``: the key-frame loop shared by the video predictors.

It builds the model of a config (as :class:`~acar_d2.engine.defaults.ActionPredictor`) and its
test-time :class:`~acar_d2.data.clip_mapper.ClipDatasetMapper`, opens a video source (file, frame
folder, device, URL, or a :class:`~acar_d2.data.video_io.VideoSource`), schedules key frames
(:func:`key_frame_schedule`, or given :class:`KeyFrameRequest`) and yields one
:class:`KeyFramePrediction` per key frame, in order. What a key frame's prediction is belongs to
the subclass (:meth:`KeyFrameStream.predict_key_frame`): action scores
(:class:`~acar_d2.engine.video_predictor.VideoActionPredictor`) or feature-bank entries
(:class:`~acar_d2.engine.bank_extraction.BankPassPredictor`, pass 1 of a bank model).

The source is decoded once, front to back; a :class:`~acar_d2.data.video_io.FrameRingBuffer`
of ``NUM_FRAMES * SAMPLING_RATE + 2`` frames serves the clip around each key frame, so memory does
not grow with the video and nothing seeks. A key frame at frame k is predicted as soon as frame
``k + SAMPLING_RATE * (NUM_FRAMES - 1) - NUM_FRAMES * SAMPLING_RATE // 2`` has arrived (the clip's
last frame): on a live source its prediction lags the key frame by that many frames (AVA 32x2 at
30 fps: 30 frames = 1.0 s; the synthetic 8x2 at 8 fps: 6 frames = 0.75 s) plus the compute time.
With ``with_frames=True`` a prediction also waits for the frames it is shown on (up to the next key
frame), i.e. ``max(clip lag, key-frame stride)``.
"""
import logging
from collections import deque
from dataclasses import dataclass
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.structures import Instances

from ..data.clip_mapper import ClipDatasetMapper
from ..data.video_io import (FrameRingBuffer, VideoSource, VideoSourceError, as_rgb,
                             open_video_source)
from .defaults import ActionPredictor

__all__ = ["KeyFrameStream", "KeyFrameRequest", "KeyFramePrediction", "key_frame_schedule",
           "bank_time"]

logger = logging.getLogger(__name__)


@dataclass
class KeyFrameRequest:
    """
    A key frame to predict.

    Attributes:
        frame_index (int): 0-based index of the key frame in the source.
        time (float): its time in seconds (``frame_index / fps`` unless given).
        timestamp (int or None): AVA timestamp (integer seconds) for the submission CSV.
        proposals (dict or None): ``{"boxes": (R, 4) XYXY px, "scores": (R,)}`` person boxes; None =
            the model's person detector finds them.
    """

    frame_index: int
    time: float
    timestamp: Optional[int] = None
    proposals: Optional[dict] = None


@dataclass
class KeyFramePrediction:
    """
    One key frame's prediction.

    Attributes:
        index (int): 0-based number of the key frame.
        frame_index, time, timestamp: as in :class:`KeyFrameRequest`.
        instances (Instances): source px, on the CPU: ``pred_boxes`` (R, 4), ``scores`` (R,) person
            scores, ``action_scores`` (R, K), ``action_logits`` (R, K), ``track_ids`` (R,) int64
            (-1 without tracking).
        frames (list[ndarray] or None): with ``with_frames``: the (H, W, 3) uint8 RGB frames from
            the end of the previous key frame's frames up to the next key frame (exclusive);
            the first of them has index ``first_frame`` (frames before ``frame_index`` precede the
            first key frame and show no prediction).
        first_frame (int): index of ``frames[0]``.
    """

    index: int
    frame_index: int
    time: float
    timestamp: Optional[int]
    instances: Instances
    frames: Optional[List[np.ndarray]] = None
    first_frame: int = 0


def key_frame_schedule(fps: float, stride_s: float = 1.0, offset_s: float = 0.0,
                       num_frames: Optional[int] = None) -> Iterator[KeyFrameRequest]:
    """
    Key frames every ``stride_s`` seconds from ``offset_s`` (AVA: every second): frame
    ``round(t * fps)``, timestamp ``t`` when t is a whole second. Endless when ``num_frames`` is
    None (live sources stop it by ending).
    """
    if stride_s <= 0:
        raise ValueError(f"key-frame stride must be > 0 seconds, got {stride_s}")
    k = 0
    while True:
        t = offset_s + k * stride_s
        idx = int(round(t * fps))
        if num_frames is not None and idx >= num_frames:
            return
        whole = abs(t - round(t)) < 1e-6
        yield KeyFrameRequest(idx, t, int(round(t)) if whole else None)
        k += 1


class _BufferReader:
    """Clip reader of ``ClipDatasetMapper`` that takes the frames from a ``FrameRingBuffer``."""

    def __init__(self):
        self.buffer: Optional[FrameRingBuffer] = None

    def __call__(self, dataset_dict: dict, indices: Sequence[int]) -> torch.Tensor:
        frames = self.buffer.gather(indices)  # (T, H, W, 3)
        return torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W), channels-last memory


class KeyFrameStream:
    """
    Builds the model of ``cfg``, loads ``cfg.MODEL.WEIGHTS`` (as :class:`ActionPredictor`) and
    yields one :class:`KeyFramePrediction` per key frame of a video source; subclasses say what a
    key frame's prediction is (:meth:`predict_key_frame`).

    Args:
        cfg (CfgNode): a full acar_d2 config.
        key_frame_stride (float): seconds between key frames (default one per second, as AVA).
        fps (float or None): frame rate of frame folders and of live streams that do not tell it.
        allow_random_weights (bool): run without ``MODEL.WEIGHTS`` (random scores; benchmarks).
    """

    def __init__(self, cfg: CfgNode, key_frame_stride: float = 1.0, fps: Optional[float] = None,
                 allow_random_weights: bool = False):
        if not cfg.MODEL.WEIGHTS and not allow_random_weights:
            raise ValueError(
                "MODEL.WEIGHTS is empty: the model would predict with random weights; give a "
                "checkpoint (MODEL.WEIGHTS path) or allow random weights explicitly")
        if key_frame_stride <= 0:
            raise ValueError(f"key_frame_stride must be > 0 seconds, got {key_frame_stride}")
        self.cfg = cfg.clone()
        if not cfg.MODEL.WEIGHTS and "WEIGHTS_STRICT" in cfg.MODEL:
            self.cfg.defrost()
            self.cfg.MODEL.WEIGHTS_STRICT = False  # random weights asked for explicitly
            self.cfg.freeze()
        clip_predictor = ActionPredictor(self.cfg)
        self.model = clip_predictor.model
        self.has_detector = getattr(self.model, "person_detector", None) is not None
        self._reader = _BufferReader()
        mapper_cfg = self.cfg.clone()
        mapper_cfg.defrost()
        mapper_cfg.DATASETS.TEST = ()  # test-time mapping needs no class table
        self.mapper = ClipDatasetMapper(mapper_cfg, is_train=False, reader=self._reader)
        self.key_frame_stride = float(key_frame_stride)
        self.fps = fps
        clip = self.cfg.INPUT.CLIP
        self.frames_before = (clip.NUM_FRAMES * clip.SAMPLING_RATE) // 2
        self.frames_after = clip.SAMPLING_RATE * (clip.NUM_FRAMES - 1) - self.frames_before
        self.buffer_capacity = clip.NUM_FRAMES * clip.SAMPLING_RATE + 2

    def open(self, source: Union[str, VideoSource]) -> VideoSource:
        """A :class:`VideoSource` of ``source`` (paths/URLs opened with this predictor's fps)."""
        if isinstance(source, VideoSource):
            return source
        return open_video_source(str(source), fps=self.fps)

    def predict_key_frame(self, buffer: FrameRingBuffer, request: KeyFrameRequest,
                          video_id: str = "video") -> Instances:
        """
        Predict one key frame whose clip frames are in ``buffer`` (frames past ``buffer.end`` are
        clamped to the last one, as at the end of a video).

        Returns:
            Instances: key-frame px, on the CPU; the fields are the subclass's.
        """
        raise NotImplementedError

    def map_key_frame(self, buffer: FrameRingBuffer, request: KeyFrameRequest,
                      video_id: str = "video") -> dict:
        """The model input of one key frame (``ClipDatasetMapper`` output)."""
        frame = buffer[request.frame_index]
        d = {"video_id": video_id, "timestamp": request.timestamp or 0,
             "key_frame_index": request.frame_index, "num_frames": buffer.end,
             "height": frame.shape[0], "width": frame.shape[1], "annotations": []}
        if request.proposals is not None:
            d["proposals"] = request.proposals
        elif not self.has_detector:
            raise ValueError(
                "the model has no person detector (MODEL.PERSON_DETECTOR.NAME is empty) and no "
                f"person boxes were given for key frame {request.frame_index}: give boxes "
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
        with_frames: bool = False,
        video_id: str = "video",
        skip_key_frames: int = 0,
    ) -> Iterator[KeyFramePrediction]:
        """Open ``source`` (a path / URL / device, or a :class:`VideoSource`) and :meth:`stream`
        its key frames; the other arguments as there."""
        yield from self.stream(self.open(source), key_frames, with_frames, video_id,
                               skip_key_frames)

    def stream(
        self,
        src: VideoSource,
        key_frames: Optional[Iterable[KeyFrameRequest]] = None,
        with_frames: bool = False,
        video_id: str = "video",
        skip_key_frames: int = 0,
    ) -> Iterator[KeyFramePrediction]:
        """
        Predict the key frames of the opened ``src`` while decoding it once; closes ``src``.

        Args:
            src: an opened :class:`VideoSource` (:meth:`open`).
            key_frames: the key frames in increasing ``frame_index`` (e.g. with given boxes);
                default :func:`key_frame_schedule` every ``key_frame_stride`` seconds.
            with_frames: also hand out every frame (``KeyFramePrediction.frames``).
            video_id: name passed to the mapper (messages).
            skip_key_frames: resume after this many key frames (done by an interrupted run):
                they are not predicted, the frames before the next one are only decoded (into
                the ring buffer, for its clip), and ``frames`` start at its frame.
        Yields:
            KeyFramePrediction, in key-frame order (``index`` counts the skipped ones).
        Raises:
            VideoSourceError: the source breaks while decoding, after every key frame whose frame
                was decoded has been yielded.
        """
        if key_frames is None:
            key_frames = key_frame_schedule(src.fps, self.key_frame_stride,
                                            num_frames=None if src.is_live else src.num_frames)
        requests = iter(key_frames)
        next_request = next(requests, None)
        last_index = -1
        for _ in range(skip_key_frames):
            if next_request is not None:
                last_index, next_request = next_request.frame_index, next(requests, None)
        buffer = FrameRingBuffer(self.buffer_capacity)
        pending: Deque[KeyFrameRequest] = deque()   # waiting for the frames after them
        done: Deque[KeyFramePrediction] = deque()   # predicted, waiting for their frames
        held: list = []                             # frames not handed out yet (with_frames)
        # skipped key frames' frames were handed out by the interrupted run
        held_start = 0 if not skip_key_frames else (
            next_request.frame_index if next_request is not None else float("inf"))
        count = skip_key_frames

        def predict(req: KeyFrameRequest) -> None:
            nonlocal count, last_index
            if req.frame_index <= last_index:
                raise ValueError(f"key frames must be in increasing frame order: frame "
                                 f"{req.frame_index} after {last_index}")
            last_index = req.frame_index
            inst = self.predict_key_frame(buffer, req, video_id)
            done.append(KeyFramePrediction(count, req.frame_index, req.time, req.timestamp, inst))
            count += 1

        def release(end_of_stream: bool) -> Iterator[KeyFramePrediction]:
            nonlocal held, held_start
            while done:
                kf = done[0]
                if with_frames:
                    # shown until the next key frame (or the end of the video)
                    upto = buffer.end
                    if not end_of_stream:
                        nxt = pending[0].frame_index if pending else (
                            next_request.frame_index if next_request is not None else None)
                        if nxt is None or nxt > buffer.end:
                            return  # frames of this key frame still arriving
                        upto = nxt
                    # RGB from the buffer while it holds the frame (converted once), else here
                    kf.frames = [buffer[i] if i >= buffer.start else as_rgb(f)
                                 for i, f in enumerate(held[: upto - held_start], held_start)]
                    kf.first_frame = held_start
                    held, held_start = held[upto - held_start:], upto
                yield done.popleft()

        error = None
        try:
            for frame in src.raw_frames():
                idx = buffer.append(frame)
                if with_frames and idx >= held_start:
                    held.append(frame)
                while next_request is not None and next_request.frame_index <= idx:
                    pending.append(next_request)
                    next_request = next(requests, None)
                while pending and pending[0].frame_index + self.frames_after <= idx:
                    predict(pending.popleft())
                yield from release(end_of_stream=False)
        except VideoSourceError as e:
            error = e
        finally:
            src.close()
        # End of the stream: the last key frames use clamped clips (official end-of-video rule).
        while pending:
            predict(pending.popleft())
        if next_request is not None and not isinstance(key_frames, Iterator):
            logger.warning(f"{src.name}: key frames from frame {next_request.frame_index} on lie "
                           f"after the last of its {buffer.end} frames and were not predicted")
        yield from release(end_of_stream=True)
        if error is not None:
            raise error


def bank_time(request: KeyFrameRequest) -> int:
    """The bank time (integer seconds) of a key frame: its timestamp, else its rounded time."""
    return int(request.timestamp) if request.timestamp is not None else int(round(request.time))
