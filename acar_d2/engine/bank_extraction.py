"""
Writing long-term feature-bank entries with a trained model (ACFB / LFB, docs/FEATURE_BANKS.md).

* :class:`BankEntryExtractor`: a model trained **without** a bank + one mapped key frame -> that
  key frame's bank entry (every actor the model itself uses at test time: its person detector's
  boxes or the given proposals above ``TEST_PROPOSAL_SCORE_THRESH``). Used by
  ``tools/extract_feature_bank.py`` over datasets, and by :class:`BankPassPredictor` /
  :func:`write_source_bank` to write the bank of a raw video before a bank model predicts it
  (pass 1 of :class:`~acar_d2.engine.video_predictor.VideoActionPredictor`'s two passes).
* The ``bank_record.json`` of an extraction, and the rule that a folder holding another
  extractor's bank is refused: :class:`~acar_d2.data.bank_record.BankRecord` (the same rule the
  bank's readers apply).
* :func:`extractor_cfg_from_record`: the extraction config + weights stored in a bank's record, so
  that a bank model knows which model writes the entries it was trained on.
"""
import dataclasses
import logging
import os
import tempfile
from typing import Optional, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances
from detectron2.modeling import build_model

from ..checkpoint import ACARCheckpointer
from ..config import bank_kind_of
from ..data.bank_record import RECORD_FILE, BankRecord, file_sha256
from ..data.feature_bank import write_video_bank
from ..data.video_io import TimedFrameBuffer, VideoSource
from ..modeling.roi_heads import compute_bank_entries
from .key_frame_stream import KeyFrameRequest, KeyFrameStream, bank_time

__all__ = ["BankEntryExtractor", "BankPassPredictor", "extractor_cfg_from_record",
           "write_source_bank"]

logger = logging.getLogger(__name__)


def extractor_cfg_from_record(bank_dir: str, weights: Optional[str] = None,
                              device: Optional[str] = None) -> CfgNode:
    """
    The config that wrote the bank in ``bank_dir`` (stored in its ``bank_record.json``), with
    ``MODEL.WEIGHTS`` = ``weights`` or the recorded path, and ``MODEL.DEVICE`` = ``device`` when
    given (a bank extracted on a GPU, read on a CPU).

    Raises:
        FileNotFoundError: no record, or the weights file is gone (naming both paths).
        ValueError: the weights differ from the recorded sha256 (another model;
            :meth:`BankRecord.check_fits`).
    """
    from .defaults import setup_cfg

    record = BankRecord.load(bank_dir)
    record_path = os.path.join(bank_dir, RECORD_FILE)
    ex = record.extractor
    if not ex.get("config"):
        raise ValueError(f"{record_path} does not record the extraction config")
    weights = weights or ex.get("weights", "")
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(
            f"the bank's extraction weights {weights!r} (recorded in {record_path}) are not there; "
            "give the file that wrote the bank (tools/demo.py --bank-extractor-weights)")
    # the bank's own rule: its extraction weights are these (sha256)
    record.check_fits(dataclasses.replace(record, extractor={"weights_sha256": file_sha256(weights)}),
                      bank_dir)
    # setup_cfg reads a file: the recorded config goes through the same checks as any other
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "extractor.yaml")
        with open(path, "w") as f:
            f.write(ex["config"])
        opts = ["MODEL.WEIGHTS", weights] + (["MODEL.DEVICE", device] if device else [])
        return setup_cfg(path, opts)


class BankEntryExtractor:
    """
    Model of ``cfg`` (without a bank), loaded strictly from ``cfg.MODEL.WEIGHTS`` as for evaluation
    (a bank from a half-loaded model would be silently wrong), computing bank entries.

    Args:
        cfg: the extraction config.
        kind: "acfb" (relation maps; ACAR / actor-context heads) or "lfb" (RoI vectors; any head).
        model: an already loaded model of ``cfg`` (skips building and loading).
    """

    def __init__(self, cfg: CfgNode, kind: str, model: Optional[torch.nn.Module] = None):
        self.kind = kind
        if model is None:
            model = build_model(cfg).eval()
            ACARCheckpointer.from_config(model, cfg, purpose="eval").load(cfg.MODEL.WEIGHTS)
        self.model = model
        if bank_kind_of(self.model.roi_heads):
            raise ValueError(f"the extraction model ({cfg.MODEL.ROI_HEADS.NAME}) reads a bank "
                             "itself; a bank is made by a model trained without one")

    @torch.no_grad()
    def __call__(self, inputs: dict, timestamp: int) -> dict:
        """
        Args:
            inputs: one ``ClipDatasetMapper`` test output ("clip" (3, T, H, W), "proposals" or
                "image" for the detector, "valid_size", "height", "width").
            timestamp: the key frame's bank time (integer seconds).
        Returns:
            dict: "timestamp", "features" float32 (R, C, h, w), "valid_sizes" (R, 2),
            "boxes" (R, 4) key-frame px, "scores" (R,) (numpy; ``write_video_bank`` entries).
        """
        model = self.model
        (props,) = model.get_proposals([inputs])  # the boxes the model uses at test time
        clip = inputs["clip"][None].to(model.device).float()
        features = model.backbone(clip)
        image_size = tuple(clip.shape[-2:])
        valid = tuple(inputs.get("valid_size", image_size))
        feats, sizes = compute_bank_entries(model.roi_heads, self.kind, features,
                                            [props.proposal_boxes], [valid], image_size)
        boxes = props.proposal_boxes.clone()
        boxes.scale(inputs["width"] / valid[1], inputs["height"] / valid[0])  # key-frame px
        scores = props.scores if props.has("scores") else torch.ones(len(props))
        return {"timestamp": int(timestamp), "features": feats.float().cpu().numpy(),
                "valid_sizes": sizes.cpu().numpy(), "boxes": boxes.tensor.cpu().numpy(),
                "scores": scores.cpu().numpy()}


# ---------------------------------------------------------------- pass 1 of a bank model on a video
class BankPassPredictor(KeyFrameStream):
    """Pass 1 of a bank model: the extraction model over a video every second; each key frame's
    ``Instances`` carry the bank entry (``bank_features`` (R, C, h, w), ``bank_valid_sizes``)."""

    def __init__(self, cfg: CfgNode, kind: str, fps: Optional[float] = None):
        super().__init__(cfg, key_frame_stride=1.0, fps=fps)
        self.extractor = BankEntryExtractor(self.cfg, kind, model=self.model)
        self._shape: Optional[tuple] = None

    @torch.no_grad()
    def predict_key_frame(self, buffer: TimedFrameBuffer, request: KeyFrameRequest,
                          video_id: str = "video") -> Instances:
        inputs = self.map_key_frame(buffer, request, video_id)
        e = self.extractor(inputs, bank_time(request))
        inst = Instances((int(inputs["height"]), int(inputs["width"])))
        inst.pred_boxes = Boxes(torch.as_tensor(e["boxes"]).reshape(-1, 4))
        inst.scores = torch.as_tensor(e["scores"]).reshape(-1)
        inst.bank_features = torch.as_tensor(e["features"])
        inst.bank_valid_sizes = torch.as_tensor(e["valid_sizes"]).reshape(-1, 2)
        self._shape = tuple(e["features"].shape[1:])
        return inst

    def entry_shape(self) -> tuple:
        """(C, h, w) of this model's entries, known after the first key frame (also one without
        any actor); (0, 0, 0) for a video without key frames."""
        return self._shape or (0, 0, 0)


def write_source_bank(extractor_cfg: CfgNode, kind: str, bank_dir: str, source: VideoSource,
                      key_frames: Optional[Sequence[KeyFrameRequest]] = None,
                      video_id: str = "video", fps: Optional[float] = None) -> None:
    """
    Pass 1 of a bank model (``VideoActionPredictor.write_bank``): the bank of ``source`` written
    by the model of ``extractor_cfg`` into ``bank_dir`` (entries every second; with given
    ``key_frames``, at those of them on whole seconds, with their boxes), unless ``bank_dir``
    already holds this video from the same extractor (the record is checked either way).
    """
    index = os.path.join(bank_dir, "videos", f"{video_id}.json")
    # the entry shape is known after pass 1: before it, the folder's record (if any) is checked
    # without it
    record = BankRecord.of_extraction(extractor_cfg, kind)
    record.check_folder(bank_dir)
    if not os.path.isfile(index):
        passer = BankPassPredictor(extractor_cfg, kind, fps=fps)
        logger.info("%s: pass 1 of 2, writing its %s bank with %s", video_id, kind,
                    extractor_cfg.MODEL.WEIGHTS)
        requests = None
        if key_frames is not None:
            requests = [r for r in key_frames if r.timestamp is not None]
        entries = []
        for kf in passer(source.reopen(), requests, video_id=video_id):
            inst = kf.instances
            entries.append({"timestamp": kf.timestamp, "features": inst.bank_features.numpy(),
                            "valid_sizes": inst.bank_valid_sizes.numpy(),
                            "boxes": inst.pred_boxes.tensor.numpy(), "scores": inst.scores.numpy()})
        if not record.check_folder(bank_dir):  # the folder's first video writes the record
            dataclasses.replace(record, entry_shape=passer.entry_shape(),
                                datasets=[f"video:{video_id}"]).write(bank_dir)
        write_video_bank(os.path.join(bank_dir, "videos"), video_id, entries)
        logger.info("%s: bank of %d seconds, %d actors written to %s", video_id, len(entries),
                    sum(len(e["features"]) for e in entries), bank_dir)
