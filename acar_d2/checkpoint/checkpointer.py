"""
``ACARCheckpointer``: detectron2's checkpointer that also reads PySlowFast and official
ACAR-Net files, converting them with ``acar_d2.checkpoint.convert``.
"""
import logging
import re
from typing import Any, Dict, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from .convert import (
    SOURCES,
    convert_checkpoint_with_report,
    detect_source,
    load_checkpoint_object,
    save_detectron2_checkpoint,
)

__all__ = ["ACARCheckpointer", "CheckpointMismatchError", "save_detectron2_checkpoint"]

logger = logging.getLogger(__name__)

class CheckpointMismatchError(RuntimeError):
    """Raised by a ``strict`` ``ACARCheckpointer`` when the model and the file disagree."""


class ACARCheckpointer(DetectionCheckpointer):
    """
    ``DetectionCheckpointer`` whose ``load`` also accepts PySlowFast ``.pyth``, PySlowFast Caffe2
    ``.pkl``, official ACAR-Net ``.pth.tar`` and ACAR backbone pretrain files (format detected
    from the content, or forced with ``source``).

    Missing / unexpected / shape-mismatched keys are logged like detectron2 does; with
    ``strict=True`` they raise ``CheckpointMismatchError`` naming the keys and the file.
    Unknown keys of a foreign file always raise (``UnknownKeysError``) during conversion.

    Example::

        ACARCheckpointer(model, strict=True).load("AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar")
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        strict: bool = False,
        source: str = "auto",
        save_to_disk: Optional[bool] = None,
        **checkpointables: Any,
    ):
        if source not in SOURCES:
            raise ValueError(f"unknown checkpoint source {source!r}; expected one of {SOURCES}")
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.strict = strict
        self.source = source
        self._loading = ""

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = ""

    def _model_fusion_only_conv(self) -> Optional[bool]:
        """True/False when the model has SlowFast laterals without/with BN, None otherwise."""
        keys = self.model.state_dict().keys()
        has_conv = any(re.search(r"(^|\.)fuse\.\w+\.conv\.weight$", k) for k in keys)
        has_bn = any(re.search(r"(^|\.)fuse\.\w+\.bn\.", k) for k in keys)
        return None if not has_conv else not has_bn

    def _load_file(self, filename: str) -> Dict[str, Any]:
        obj = load_checkpoint_object(filename)
        source = self.source if self.source != "auto" else detect_source(obj, filename)
        if source == "detectron2" and isinstance(obj, dict) and "model" in obj:
            # our own / detectron2 files: keep optimizer, scheduler, iteration for resuming
            return obj
        result = convert_checkpoint_with_report(
            obj, source, fusion_only_conv=self._model_fusion_only_conv(), where=filename
        )
        if source != "detectron2":
            self.logger.info(
                f"Converted {len(result.state)} tensors from {source} checkpoint {filename}; "
                f"dropped {len(result.dropped)} documented keys"
            )
        return {"model": result.state, "__author__": f"acar_d2 ({source})"}

    def _load_model(self, checkpoint: Dict[str, Any]):
        self._expand_trailing_dims(checkpoint["model"])
        incompatible = super()._load_model(checkpoint)
        # nn.BatchNorm3d step counters are never converted (see convert.py); not worth a warning
        for k in [k for k in incompatible.missing_keys if k.endswith("num_batches_tracked")]:
            incompatible.missing_keys.remove(k)
        if self.strict:
            self._raise_if_incompatible(incompatible)
        return incompatible

    def _expand_trailing_dims(self, state: Dict[str, Any]) -> None:
        # Caffe2 blobs may have fewer dims than the model tensor; they get trailing 1-dims
        # (PySlowFast's c2 loader does the same, docs/CHECKPOINTS.md section 3).
        model_state = self.model.state_dict()
        for k, v in state.items():
            if k in model_state and isinstance(v, torch.Tensor):
                target = model_state[k].shape
                if v.dim() < len(target) and tuple(target[: v.dim()]) == tuple(v.shape):
                    if all(s == 1 for s in target[v.dim() :]):
                        state[k] = v.reshape(target)

    def _raise_if_incompatible(self, incompatible) -> None:
        problems = []
        if incompatible.incorrect_shapes:
            problems.append(
                "shape mismatch (key, file, model): "
                + "; ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in incompatible.incorrect_shapes)
            )
        shape_keys = {k for k, _, _ in incompatible.incorrect_shapes}
        missing = [k for k in incompatible.missing_keys if k not in shape_keys]
        if missing:
            problems.append(f"{len(missing)} model key(s) missing from the file: {missing[:20]}")
        if incompatible.unexpected_keys:
            problems.append(
                f"{len(incompatible.unexpected_keys)} file key(s) not in the model: "
                f"{incompatible.unexpected_keys[:20]}"
            )
        if problems:
            raise CheckpointMismatchError(
                f"strict load of {self._loading or 'checkpoint'} failed: " + " | ".join(problems)
            )
