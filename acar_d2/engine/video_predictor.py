"""
``VideoActionPredictor``: the video counterpart of detectron2's ``DefaultPredictor``.

Built from a config, called on a video source (file, frame folder, device, URL, or a
:class:`~acar_d2.data.video_io.VideoSource`), it yields one :class:`KeyFramePrediction` per
key frame: person boxes (from the model's person detector, or given), their action scores and a
track id linking the same person across key frames.

The source is decoded once, front to back; a :class:`~acar_d2.data.video_io.FrameRingBuffer`
of ``NUM_FRAMES * SAMPLING_RATE + 2`` frames serves the clip around each key frame, so memory does
not grow with the video and nothing seeks. A key frame at frame k is predicted as soon as frame
``k + SAMPLING_RATE * (NUM_FRAMES - 1) - NUM_FRAMES * SAMPLING_RATE // 2`` has arrived (the clip's
last frame): on a live source its prediction lags the key frame by that many frames (AVA 32x2 at
30 fps: 30 frames = 1.0 s; the synthetic 8x2 at 8 fps: 6 frames = 0.75 s) plus the compute time.
With ``with_frames=True`` a prediction also waits for the frames it is shown on (up to the next key
frame), i.e. ``max(clip lag, key-frame stride)``.

A model with a long-term feature bank (ACFB / LFB heads) needs, at every key frame, the bank
entries of the seconds around it, past and future. On a video it was not trained on there is no
bank, so the predictor first writes one: pass 1 runs the model that wrote the training bank (its
config and weights are recorded in ``MODEL.FEATURE_BANK.DIR/bank_record.json``, or given) over the
video every second and stores the video's entries (``bank_dir``, or a temporary folder); pass 2
predicts with the bank model reading its windows from them. Live sources cannot be read twice and
are refused for bank models.
"""
import logging
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from ..data.clip_mapper import ClipDatasetMapper
from ..data.feature_bank import FeatureBank
from ..data.video_io import (FrameRingBuffer, VideoSource, VideoSourceError, as_rgb,
                             open_video_source)
from ..modeling.roi_heads import reads_feature_bank
from .defaults import ActionPredictor

__all__ = [
    "VideoActionPredictor",
    "KeyFramePrediction",
    "KeyFrameRequest",
    "action_class_names",
    "action_class_ids",
    "key_frame_schedule",
]

logger = logging.getLogger(__name__)


def _metadata_values(cfg: CfgNode, key: str):
    for name in list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN):
        values = MetadataCatalog.get(name).get(key, None)
        if values is not None and len(values) == cfg.MODEL.ACTION_HEAD.NUM_CLASSES:
            return list(values)
    return None


def action_class_names(cfg: CfgNode) -> List[str]:
    """
    The K class names of ``cfg``'s model, with no file on disk: the ``action_classes`` metadata of
    its test (then train) dataset (registered at ``import acar_d2`` for AVA, UCF101-24 and
    aca_world), else the packaged 60-class AVA list when K is 60, else ``class_0 .. class_{K-1}``.
    """
    k = cfg.MODEL.ACTION_HEAD.NUM_CLASSES
    names = _metadata_values(cfg, "action_classes")
    if names is not None:
        return [str(n) for n in names]
    if k == 60:
        from ava_eval.ava_format import ava_class_list

        return list(ava_class_list().names)
    return [f"class_{i}" for i in range(k)]


def action_class_ids(cfg: CfgNode) -> List[int]:
    """The K dataset action ids (submission CSV), with the fallbacks of :func:`action_class_names`
    (AVA ids for 60 classes, else 1 .. K)."""
    k = cfg.MODEL.ACTION_HEAD.NUM_CLASSES
    ids = _metadata_values(cfg, "action_ids")
    if ids is not None:
        return [int(i) for i in ids]
    if k == 60:
        from ava_eval.ava_format import ava_class_list

        return list(ava_class_list().ids)
    return list(range(1, k + 1))


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


class VideoActionPredictor:
    """
    Builds the model of ``cfg``, loads ``cfg.MODEL.WEIGHTS`` (as :class:`ActionPredictor`) and
    predicts every key frame of a video source.

    Example::

        predictor = VideoActionPredictor(setup_cfg("output/quickstart/config.yaml",
                                                   ["MODEL.WEIGHTS", "output/quickstart/model_final.pth"]))
        for kf in predictor("my_video.mp4"):
            print(kf.time, kf.instances.pred_boxes, kf.instances.action_scores.argmax(1))

    Args:
        cfg (CfgNode): a full acar_d2 config.
        key_frame_stride (float): seconds between key frames (default one per second, as AVA).
        fps (float or None): frame rate of frame folders and of live streams that do not tell it.
        track (bool): link persons across key frames (:class:`~acar_d2.utils.tracking.KeyFrameTracker`).
        allow_random_weights (bool): run without ``MODEL.WEIGHTS`` (random scores; benchmarks).
        bank_extractor (CfgNode or None): bank models only: the config (with ``MODEL.WEIGHTS``) of
            the model that writes the video's bank; default the one recorded in
            ``MODEL.FEATURE_BANK.DIR`` (:func:`~acar_d2.engine.bank_extraction.extractor_cfg_from_record`).
        bank_dir (str or None): bank models only: folder for the videos' banks (kept, and reused
            when the same video is predicted again with the same extractor); default a temporary
            folder removed with the predictor.
    """

    def __init__(self, cfg: CfgNode, key_frame_stride: float = 1.0, fps: Optional[float] = None,
                 track: bool = True, allow_random_weights: bool = False,
                 bank_extractor: Optional[CfgNode] = None, bank_dir: Optional[str] = None):
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
        self.class_names = action_class_names(self.cfg)
        self.action_ids = action_class_ids(self.cfg)
        self.key_frame_stride = float(key_frame_stride)
        self.fps = fps
        self.track = track
        clip = self.cfg.INPUT.CLIP
        self.frames_before = (clip.NUM_FRAMES * clip.SAMPLING_RATE) // 2
        self.frames_after = clip.SAMPLING_RATE * (clip.NUM_FRAMES - 1) - self.frames_before
        self.buffer_capacity = clip.NUM_FRAMES * clip.SAMPLING_RATE + 2
        self.uses_bank = reads_feature_bank(self.model.roi_heads)
        self._bank: Optional[FeatureBank] = None  # the bank of the video being predicted
        self._tmp_bank = None
        if self.uses_bank:
            from .bank_extraction import extractor_cfg_from_record

            fb = self.cfg.MODEL.FEATURE_BANK
            if bank_extractor is None and not fb.DIR:
                raise ValueError(
                    f"{self.cfg.MODEL.ROI_HEADS.NAME} reads a feature bank: give the model that "
                    "writes it (bank_extractor; tools/demo.py --bank-extractor-config/-weights) or "
                    "MODEL.FEATURE_BANK.DIR of the training bank, whose record names it")
            self.bank_extractor = (bank_extractor if bank_extractor is not None else
                                   extractor_cfg_from_record(fb.DIR, device=self.cfg.MODEL.DEVICE))
            if bank_dir is None:
                self._tmp_bank = tempfile.TemporaryDirectory(prefix="acar_bank_")
                bank_dir = self._tmp_bank.name
            self.bank_dir = bank_dir

    def open(self, source: Union[str, VideoSource]) -> VideoSource:
        """A :class:`VideoSource` of ``source`` (paths/URLs opened with this predictor's fps)."""
        if isinstance(source, VideoSource):
            return source
        return open_video_source(str(source), fps=self.fps)

    @torch.no_grad()
    def predict_key_frame(self, buffer: FrameRingBuffer, request: KeyFrameRequest,
                          video_id: str = "video") -> Instances:
        """
        Predict one key frame whose clip frames are in ``buffer`` (frames past ``buffer.end`` are
        clamped to the last one, as at the end of a video).

        Returns:
            Instances: ``pred_boxes``, ``scores``, ``action_scores``, ``action_logits`` (CPU).
        """
        inputs = self.map_key_frame(buffer, request, video_id)
        return self.model([inputs])[0]["instances"].to("cpu")

    def map_key_frame(self, buffer: FrameRingBuffer, request: KeyFrameRequest,
                      video_id: str = "video") -> dict:
        """The model input of one key frame (``ClipDatasetMapper`` output; with a bank model
        also its ``"feature_bank"`` window, read from the video's bank of pass 1)."""
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
        if self.uses_bank:
            if self._bank is None:
                raise RuntimeError("a bank model predicts through __call__ (which writes the "
                                   "video's bank first)")
            fb = self.cfg.MODEL.FEATURE_BANK
            inputs["feature_bank"] = self._bank.window(
                video_id, bank_time(request), fb.WINDOW_SIZE, fb.STRIDE, fb.INCLUDE_CURRENT,
                fb.MAX_ENTRIES)
        return inputs

    def write_bank(self, source: VideoSource, key_frames: Optional[Sequence[KeyFrameRequest]] = None,
                   video_id: str = "video") -> FeatureBank:
        """
        Pass 1 of a bank model: the bank of ``source`` written by ``bank_extractor`` into
        ``bank_dir`` (entries every second; with given ``key_frames``, at those of them on whole
        seconds, with their boxes), or read back when ``bank_dir`` already holds this video from
        the same extractor.

        Returns:
            FeatureBank: checked against this model's config (kind, settings, extractor sha256).
        """
        from .bank_extraction import write_source_bank

        write_source_bank(self.bank_extractor, self.cfg.MODEL.FEATURE_BANK.KIND, self.bank_dir,
                          source, key_frames, video_id=video_id, fps=self.fps)
        return FeatureBank(self.bank_dir, self.cfg)

    def __call__(
        self,
        source: Union[str, VideoSource],
        key_frames: Optional[Iterable[KeyFrameRequest]] = None,
        with_frames: bool = False,
        video_id: str = "video",
    ) -> Iterator[KeyFramePrediction]:
        """
        Predict the key frames of ``source`` while decoding it once.

        Args:
            source: a path / URL / device, or a :class:`VideoSource`.
            key_frames: the key frames in increasing ``frame_index`` (e.g. with given boxes);
                default :func:`key_frame_schedule` every ``key_frame_stride`` seconds.
            with_frames: also hand out every frame (``KeyFramePrediction.frames``).
            video_id: name passed to the mapper (messages).
        Yields:
            KeyFramePrediction, in key-frame order.
        Raises:
            VideoSourceError: the source cannot be opened, or breaks while decoding; in the
                latter case after every key frame whose frame was decoded has been yielded.
        """
        src = self.open(source)
        if self.uses_bank:
            if src.is_live:
                src.close()
                raise ValueError(f"{src.name}: a feature-bank model needs the seconds after each "
                                 "key frame too, so it reads a video twice; a live source cannot")
            if key_frames is not None:
                key_frames = list(key_frames)
            self._bank = self.write_bank(src, key_frames, video_id)
        if key_frames is None:
            key_frames = key_frame_schedule(src.fps, self.key_frame_stride,
                                            num_frames=None if src.is_live else src.num_frames)
        requests = iter(key_frames)
        next_request = next(requests, None)
        buffer = FrameRingBuffer(self.buffer_capacity)
        tracker = None
        if self.track:
            from ..utils.tracking import KeyFrameTracker

            tracker = KeyFrameTracker()
        pending: Deque[KeyFrameRequest] = deque()   # waiting for the frames after them
        done: Deque[KeyFramePrediction] = deque()   # predicted, waiting for their frames
        held: list = []                             # frames not handed out yet (with_frames)
        held_start = 0
        count = 0
        last_index = -1

        def predict(req: KeyFrameRequest) -> None:
            nonlocal count, last_index
            if req.frame_index <= last_index:
                raise ValueError(f"key frames must be in increasing frame order: frame "
                                 f"{req.frame_index} after {last_index}")
            last_index = req.frame_index
            inst = self.predict_key_frame(buffer, req, video_id)
            ids = (tracker.update(inst.pred_boxes.tensor.numpy(), inst.scores.numpy())
                   if tracker is not None else np.full(len(inst), -1))
            inst.track_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
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
                if with_frames:
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
