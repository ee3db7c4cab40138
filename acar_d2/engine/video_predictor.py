"""
``VideoActionPredictor``: the video counterpart of detectron2's ``DefaultPredictor``.

Built from a config, called on a video source (file, frame folder, device, URL, or a
:class:`~acar_d2.data.video_io.VideoSource`), it yields one :class:`KeyFramePrediction` per
key frame: person boxes (from the model's person detector, or given), their action scores and a
track id linking the same person across key frames. The source is decoded once, with the latency
described in :mod:`acar_d2.engine.key_frame_stream` (the key-frame loop it shares with pass 1 of a
bank model).

A model with a long-term feature bank (ACFB / LFB heads) needs, at every key frame, the bank
entries of the seconds around it, past and future. On a video it was not trained on there is no
bank, so the predictor first writes one: pass 1 runs the model that wrote the training bank (its
config and weights are recorded in ``MODEL.FEATURE_BANK.DIR/bank_record.json``, or given) over the
video every second and stores the video's entries (``bank_dir``, or a temporary folder;
:class:`~acar_d2.engine.bank_extraction.BankPassPredictor`); pass 2 predicts with the bank model
reading its windows from them. Live sources cannot be read twice and are refused for bank models.
"""
import logging
import tempfile
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from ..config import bank_kind_of
from ..data.feature_bank import FeatureBank
from ..data.video_io import TimedFrameBuffer, VideoSource
from .bank_extraction import extractor_cfg_from_record, write_source_bank
from .key_frame_stream import (  # noqa: F401  (re-exported: public names of this module)
    KeyFramePrediction,
    KeyFrameRequest,
    KeyFrameStream,
    bank_time,
    key_frame_schedule,
)

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
        from ava_eval.label_map import ava_class_list

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
        from ava_eval.label_map import ava_class_list

        return list(ava_class_list().ids)
    return list(range(1, k + 1))



class VideoActionPredictor(KeyFrameStream):
    """
    Builds the model of ``cfg``, loads ``cfg.MODEL.WEIGHTS`` and applies the inference transforms
    of ``cfg.MODEL.INFERENCE`` (as :class:`ActionPredictor`: ``self.model`` is that model) and
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
        onnx_dir (str or None): run the exported model of this folder in ``onnx_engine``
            (``tools/export_model.py``; :class:`~acar_d2.engine.key_frame_stream.KeyFrameStream`).
        onnx_engine (str): "onnxruntime" or "openvino".
    """

    def __init__(self, cfg: CfgNode, key_frame_stride: float = 1.0, fps: Optional[float] = None,
                 track: bool = True, allow_random_weights: bool = False,
                 bank_extractor: Optional[CfgNode] = None, bank_dir: Optional[str] = None,
                 onnx_dir: Optional[str] = None, onnx_engine: str = "onnxruntime"):
        super().__init__(cfg, key_frame_stride=key_frame_stride, fps=fps,
                         allow_random_weights=allow_random_weights, onnx_dir=onnx_dir,
                         onnx_engine=onnx_engine)
        self.class_names = action_class_names(self.cfg)
        self.action_ids = action_class_ids(self.cfg)
        self.track = track
        self.bank_kind = bank_kind_of(self.model.roi_heads)  # "" = the model reads no bank
        self._bank: Optional[FeatureBank] = None  # the bank of the video being predicted
        self._tmp_bank = None
        if self.bank_kind:
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

    @torch.no_grad()
    def predict_key_frame(self, buffer: TimedFrameBuffer, request: KeyFrameRequest,
                          video_id: str = "video") -> Instances:
        """
        Predict one key frame whose clip frames are in ``buffer``.

        Returns:
            Instances: ``pred_boxes``, ``scores``, ``action_scores``, ``action_logits`` (CPU).
        """
        inputs = self.map_key_frame(buffer, request, video_id)
        return self.model([inputs])[0]["instances"].to("cpu")

    def map_key_frame(self, buffer: TimedFrameBuffer, request: KeyFrameRequest,
                      video_id: str = "video") -> dict:
        """The model input of one key frame (``ClipDatasetMapper`` output; with a bank model
        also its ``"feature_bank"`` window, read from the video's bank of pass 1)."""
        inputs = super().map_key_frame(buffer, request, video_id)
        if self.bank_kind:
            if self._bank is None:
                raise RuntimeError("a bank model predicts through __call__ (which writes the "
                                   "video's bank first)")
            fb = self.cfg.MODEL.FEATURE_BANK
            inputs["feature_bank"] = self._bank.window(
                video_id, bank_time(request), fb.WINDOW_SIZE, fb.STRIDE, fb.INCLUDE_CURRENT,
                fb.MAX_ENTRIES, frame_size=(inputs["height"], inputs["width"]))
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
        write_source_bank(self.bank_extractor, self.bank_kind, self.bank_dir,
                          source, key_frames, video_id=video_id, fps=self.fps)
        return FeatureBank(self.bank_dir, self.cfg)

    def __call__(
        self,
        source: Union[str, VideoSource],
        key_frames: Optional[Iterable[KeyFrameRequest]] = None,
        video_id: str = "video",
        tracker=None,
    ) -> Iterator[KeyFramePrediction]:
        """
        Predict the key frames of ``source`` while decoding it once (a bank model: after pass 1,
        :meth:`write_bank`); with ``track``, ``instances.track_ids`` (R,) int64 link the persons
        across key frames, else they are -1.

        Args:
            source: a path / URL / device, or a :class:`VideoSource`.
            key_frames: the key frames in increasing ``time`` (e.g. with given boxes); default
                :func:`key_frame_schedule` every ``key_frame_stride`` seconds.
            video_id: name passed to the mapper (messages).
            tracker (KeyFrameTracker or None): with ``track``, the tracker to continue (e.g. one
                that has seen the key frames of an interrupted run); default a new one.
        Yields:
            KeyFramePrediction, in key-frame order.
        Raises:
            VideoSourceError: the source cannot be opened, or breaks while decoding; in the
                latter case after every key frame whose frame was decoded has been yielded.
        """
        src = self.open(source)
        if self.bank_kind:
            if src.is_live:
                src.close()
                raise ValueError(f"{src.name}: a feature-bank model needs the seconds after each "
                                 "key frame too, so it reads a video twice; a live source cannot")
            if key_frames is not None:
                key_frames = list(key_frames)
            self._bank = self.write_bank(src, key_frames, video_id)
        if self.track and tracker is None:
            from ..utils.tracking import KeyFrameTracker

            tracker = KeyFrameTracker()
        # Key frames come out in the order they were predicted: the tracker sees them in time.
        for kf in KeyFrameStream.__call__(self, src, key_frames, video_id):
            inst = kf.instances
            ids = (tracker.update(inst.pred_boxes.tensor.numpy(), inst.scores.numpy())
                   if self.track else np.full(len(inst), -1))
            inst.track_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
            yield kf
