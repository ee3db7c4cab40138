"""
The action model (video backbone + action ROI head) as one exportable function of tensors:
``(clip (1, 3, T, H, W), boxes (R, 4)) -> logits (R, K)``, and its ONNX export.

``ACARNet`` takes ``list[dict]`` and returns ``Instances``, which an exporter cannot trace; like
detectron2's ``TracingAdapter`` (``detectron2/export/flatten.py``), :class:`ActionLogitsModel`
flattens the call to tensors. It keeps the number of boxes R dynamic in the exported graph (the
head's :meth:`~acar_d2.modeling.roi_heads.ActionROIHeads.predict_clip_logits`); the clip size and
its unpadded part (``valid_size``, < the clip with ``INPUT.CLIP.PAD_TO_SQUARE``) are fixed at export
(the head derives its context crop from them), so a model is exported for the frame size of the
videos it will see (``tools/export_model.py --input`` / ``--frame-size``).
"""
import contextlib
import logging
import os
import warnings
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..config import bank_kind_of

__all__ = ["ActionLogitsModel", "export_action_model_onnx", "ONNX_OPSET", "quiet_onnx_tracing"]

logger = logging.getLogger(__name__)

# RoiAlign with coordinate_transformation_mode (aligned=False as the official head: "output_half_pixel")
# exists from opset 16 on; 17 is the newest the TorchScript-based exporter writes for every op used.
ONNX_OPSET = 17


@contextlib.contextmanager
def quiet_onnx_tracing():
    """Silence the warnings every trace of these models prints and that the parity checks make
    moot: Python ints / bools read from tensors (the shapes fixed at export, R dynamic by
    construction) and the TorchScript-based exporter's deprecation notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
        yield


class ActionLogitsModel(nn.Module):
    """
    Backbone + action head of an ``ACARNet`` as ``(clip, boxes) -> logits`` for one clip (the
    modules are shared with the model, not copied).

    Args:
        model: an ``ACARNet`` in eval mode (any backbone; a head without a feature bank).
        valid_size: (H_valid, W_valid) unpadded part of the clips (None: all of each clip).
    """

    def __init__(self, model: nn.Module, valid_size: Optional[Tuple[int, int]] = None):
        super().__init__()
        if bank_kind_of(model.roi_heads):
            raise ValueError(
                f"{type(model.roi_heads).__name__} reads a long-term feature bank (an input per "
                "key frame from a first pass over the video): it cannot be exported as one "
                "(clip, boxes) -> logits function")
        self.backbone = model.backbone
        self.roi_heads = model.roi_heads
        self.num_classes = int(model.roi_heads.num_classes)
        self.valid_size = None if valid_size is None else tuple(int(s) for s in valid_size)

    def forward(self, clip: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            clip (Tensor): (1, 3, T, H, W) float32, normalized as the model's inputs
                (``ClipDatasetMapper`` output ``"clip"`` with a batch axis).
            boxes (Tensor): (R, 4) float32 actor boxes XYXY in clip px, R >= 1.
        Returns:
            Tensor: (R, K) action logits (``roi_heads.inference`` turns them into scores).
        """
        features = self.backbone(clip)
        return self.roi_heads.predict_clip_logits(features, boxes, tuple(clip.shape[-2:]),
                                                  self.valid_size)


def _example_boxes(clip_hw: Tuple[int, int], num_boxes: int) -> torch.Tensor:
    """``num_boxes`` different boxes inside an H x W clip (the values only steer the trace)."""
    h, w = clip_hw
    rows = []
    for i in range(num_boxes):
        f = (i + 1) / (num_boxes + 1)
        rows.append([0.1 * w * f, 0.05 * h, w * (0.3 + 0.6 * f), h * (0.5 + 0.4 * f)])
    return torch.tensor(rows, dtype=torch.float32)


@torch.no_grad()
def export_action_model_onnx(
    model: nn.Module, clip_shape: Sequence[int], path: str, opset: int = ONNX_OPSET,
    metadata: Optional[dict] = None, valid_size: Optional[Tuple[int, int]] = None,
) -> str:
    """
    Write ``ActionLogitsModel(model)`` to an ONNX file with inputs ``clip`` (1, 3, T, H, W) and
    ``boxes`` (R, 4), output ``logits`` (R, K), R dynamic.

    The TorchScript-based exporter (``torch.onnx.export(dynamo=False)``) is used: ``torch.export``
    stops at the head's data-dependent checks (valid context sizes), while the traced graph
    reproduces the model within float noise (``tests/export``).

    Args:
        model: an ``ACARNet`` (put in eval mode here).
        clip_shape: (3, T, H, W) of the clips the file will be run on.
        valid_size: their unpadded (H_valid, W_valid) (default (H, W)).
        path: the ``.onnx`` file to write.
        metadata: str -> str entries stored in the file's ``metadata_props``.
    Returns:
        str: ``path``.
    """
    import onnx

    if len(clip_shape) != 4 or int(clip_shape[0]) != 3:
        raise ValueError(f"clip_shape must be (3, T, H, W), got {tuple(clip_shape)}")
    model.eval()
    valid = tuple(clip_shape[-2:]) if valid_size is None else tuple(valid_size)
    adapter = ActionLogitsModel(model, valid).eval()
    device = next(model.parameters()).device
    clip = torch.zeros((1,) + tuple(int(s) for s in clip_shape), device=device)
    boxes = _example_boxes(valid, 2).to(device)
    with quiet_onnx_tracing():
        torch.onnx.export(
            adapter, (clip, boxes), path, dynamo=False, opset_version=opset,
            input_names=["clip", "boxes"], output_names=["logits"],
            dynamic_axes={"boxes": {0: "num_boxes"}, "logits": {0: "num_boxes"}},
        )
    proto = onnx.load(path)
    entries = {"acar_d2.kind": "action_model", "acar_d2.num_classes": str(adapter.num_classes),
               "acar_d2.clip_shape": ",".join(str(int(s)) for s in clip_shape),
               "acar_d2.valid_size": ",".join(str(int(s)) for s in valid)}
    entries.update({str(k): str(v) for k, v in (metadata or {}).items()})
    onnx.helper.set_model_props(proto, entries)
    onnx.save(proto, path)
    logger.info(f"Wrote the action model ({os.path.getsize(path) / 1e6:.1f} MB) to {path}")
    return path
