"""
Writing long-term feature-bank entries with a trained model (ACFB / LFB, docs/FEATURE_BANKS.md).

* :class:`BankEntryExtractor`: a model trained **without** a bank + one mapped key frame -> that
  key frame's bank entry (every actor the model itself uses at test time: its person detector's
  boxes or the given proposals above ``TEST_PROPOSAL_SCORE_THRESH``). Used by
  ``tools/extract_feature_bank.py`` over datasets, and by :class:`BankPassPredictor` /
  :func:`write_source_bank` to write the bank of a raw video before a bank model predicts it
  (pass 1 of :class:`~acar_d2.engine.video_predictor.VideoActionPredictor`'s two passes).
* :func:`make_bank_record`: the ``bank_record.json`` of an extraction.
* :func:`extractor_cfg_from_record`: the extraction config + weights stored in a bank's record, so
  that a bank model knows which model writes the entries it was trained on.
"""
import json
import logging
import os
import tempfile
from typing import Optional, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances
from detectron2.modeling import build_model

from ..checkpoint import ACARCheckpointer
from ..data.feature_bank import (FORMAT_VERSION, RECORD_FILE, bank_compat_keys, file_sha256,
                                 write_video_bank)
from ..data.video_io import TimedFrameBuffer, VideoSource
from ..modeling.roi_heads import compute_bank_entries, reads_feature_bank
from .key_frame_stream import KeyFrameRequest, KeyFrameStream, bank_time

__all__ = ["BankEntryExtractor", "BankPassPredictor", "make_bank_record", "write_or_check_record",
           "extractor_cfg_from_record", "write_source_bank"]

logger = logging.getLogger(__name__)

RECORD_KEYS = ("format", "kind", "entry_shape", "compat", "extractor")


def make_bank_record(cfg: CfgNode, kind: str, datasets, entry_shape) -> dict:
    """``bank_record.json`` content: kind, entry shape, the settings a reader must share, and the
    extraction config, weights path and sha256."""
    weights = cfg.MODEL.WEIGHTS
    return {
        "format": FORMAT_VERSION,
        "kind": kind,
        "dtype": "float16",
        "entry_shape": [int(s) for s in entry_shape],
        "stride_s": 1,
        "datasets": sorted(datasets),
        "compat": json.loads(json.dumps(bank_compat_keys(cfg, kind))),
        "extractor": {
            "head": cfg.MODEL.ROI_HEADS.NAME,
            "weights": weights,
            "weights_sha256": file_sha256(weights) if weights and os.path.isfile(weights) else "",
            "config": cfg.dump(),
        },
    }


def _flat(node, prefix: str = "") -> dict:
    out = {}
    for k, v in (node or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same_extractor(old: Optional[dict], new: Optional[dict]) -> bool:
    """
    Whether two records' "extractor" describe the same extraction: the same head and weights, and
    configs that differ only in keys a later acar_d2 added, at their defaults (a bank written
    before such a key existed is still resumable by the same model).
    """
    import yaml

    from ..engine.defaults import setup_cfg

    if not old or not new or {k: v for k, v in old.items() if k != "config"} != {
            k: v for k, v in new.items() if k != "config"}:
        return False
    a, b = _flat(yaml.safe_load(old.get("config", ""))), _flat(yaml.safe_load(new.get("config", "")))
    if a == b:
        return True
    defaults = _flat(yaml.safe_load(setup_cfg(None, [], freeze=False).dump()))
    return (all(b.get(k) == v for k, v in a.items())
            and all(k in a or (k in defaults and defaults[k] == v) for k, v in b.items()))


def write_or_check_record(root: str, record: dict, keys=RECORD_KEYS, write: bool = True) -> None:
    """
    A bank folder holds one extraction: write ``record`` as ``root/bank_record.json`` (atomically)
    when there is none, else refuse a record that differs in ``keys`` (a resumed or repeated run
    must be the same extraction; another one is never written over the first).

    Raises:
        ValueError: naming the file, the keys that differ and the recorded weights.
    """
    path = os.path.join(root, RECORD_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        diff = [k for k in keys if old.get(k) != record.get(k)
                and not (k == "extractor" and _same_extractor(old.get(k), record.get(k)))]
        if diff:
            raise ValueError(
                f"{path} records another extraction (differs in {diff}: e.g. weights "
                f"{old.get('extractor', {}).get('weights')!r}); choose another bank folder, or "
                "delete that folder yourself to replace it")
    elif write:
        os.makedirs(root, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)


def extractor_cfg_from_record(bank_dir: str, weights: Optional[str] = None,
                              device: Optional[str] = None) -> CfgNode:
    """
    The config that wrote the bank in ``bank_dir`` (stored in its ``bank_record.json``), with
    ``MODEL.WEIGHTS`` = ``weights`` or the recorded path, and ``MODEL.DEVICE`` = ``device`` when
    given (a bank extracted on a GPU, read on a CPU).

    Raises:
        FileNotFoundError: no record, or the weights file is gone (naming both paths).
        ValueError: the weights differ from the recorded sha256 (another model).
    """
    from .defaults import setup_cfg

    record_path = os.path.join(bank_dir, RECORD_FILE)
    if not os.path.isfile(record_path):
        raise FileNotFoundError(f"{record_path} not found: MODEL.FEATURE_BANK.DIR {bank_dir!r} holds "
                                "no feature bank to take the extraction model from")
    with open(record_path) as f:
        record = json.load(f)
    ex = record.get("extractor", {})
    if not ex.get("config"):
        raise ValueError(f"{record_path} does not record the extraction config")
    weights = weights or ex.get("weights", "")
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(
            f"the bank's extraction weights {weights!r} (recorded in {record_path}) are not there; "
            "give the file that wrote the bank (tools/demo.py --bank-extractor-weights)")
    want = ex.get("weights_sha256", "")
    if want and file_sha256(weights) != want:
        raise ValueError(f"{weights} is not the model that wrote {bank_dir} (sha256 differs from "
                         f"{want[:12]}... in {record_path})")
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
        if reads_feature_bank(self.model.roi_heads):
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
    keys = ("kind", "compat", "extractor")  # the entry shape is known after pass 1
    record = make_bank_record(extractor_cfg, kind, [], ())
    write_or_check_record(bank_dir, record, keys, write=False)
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
        record["entry_shape"] = list(passer.entry_shape())
        record["datasets"] = [f"video:{video_id}"]
        write_or_check_record(bank_dir, record, keys)
        write_video_bank(os.path.join(bank_dir, "videos"), video_id, entries)
        logger.info("%s: bank of %d seconds, %d actors written to %s", video_id, len(entries),
                    sum(len(e["features"]) for e in entries), bank_dir)
