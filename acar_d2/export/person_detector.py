"""
The person detector (a detectron2 ``GeneralizedRCNN``) exported with detectron2's own export
support: :class:`detectron2.export.TracingAdapter` flattens ``model.inference([{"image"}])`` to
``image (3, H, W) uint8 -> boxes (D, 4), classes (D,), scores (D,), image size (2,)`` (detector-
image px, before the rescaling to the frame), which the TorchScript-based ONNX exporter traces.
Image height and width and the number of detections D stay dynamic.

Works without ``detectron2._C``: the sal-detectron2 layers used at inference (``ROIAlign``
-> torchvision ``roi_align``, ``batched_nms`` -> torchvision ``nms``) export as ONNX ``RoiAlign``
and ``NonMaxSuppression``. detectron2's Caffe2 export path (``Caffe2Tracer``) is not used: it
needs Caffe2 ops that no ONNX runtime has.
"""
import logging
import os
from typing import Optional

import torch
from detectron2.export import TracingAdapter
from detectron2.modeling import GeneralizedRCNN

from .action_model import ONNX_OPSET, quiet_onnx_tracing

__all__ = ["export_person_detector_onnx", "DETECTOR_OUTPUT_NAMES"]

logger = logging.getLogger(__name__)

DETECTOR_OUTPUT_NAMES = ("boxes", "classes", "scores", "image_size")


def _inference(model, inputs):
    # Detector-image px: the frame-size rescaling (detector_postprocess) stays outside the graph,
    # as in detectron2's tools/deploy/export_model.py.
    return GeneralizedRCNN.inference(model, inputs, do_postprocess=False)


@torch.no_grad()
def export_person_detector_onnx(detector: GeneralizedRCNN, image: torch.Tensor, path: str,
                                opset: int = ONNX_OPSET, metadata: Optional[dict] = None) -> str:
    """
    Write ``detector`` to an ONNX file with input ``image`` (3, H, W) uint8 in the detector's
    ``input_format`` at its test resolution, outputs :data:`DETECTOR_OUTPUT_NAMES`.

    Args:
        detector: a ``GeneralizedRCNN`` (e.g. ``ACARNet.person_detector``), put in eval mode.
        image: an example image (3, H, W) uint8 (its content steers the trace only).
        path: the ``.onnx`` file to write.
        metadata: str -> str entries stored in the file's ``metadata_props``.
    Returns:
        str: ``path``.
    """
    import onnx

    detector.eval()
    adapter = TracingAdapter(detector, [{"image": image}], inference_func=_inference)
    adapter.eval()
    with quiet_onnx_tracing():
        torch.onnx.export(
            adapter, adapter.flattened_inputs, path, dynamo=False, opset_version=opset,
            input_names=["image"], output_names=list(DETECTOR_OUTPUT_NAMES),
            dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "num_detections"},
                          "classes": {0: "num_detections"}, "scores": {0: "num_detections"}},
        )
    # torch.onnx.export restores the adapter's (training) mode on the way out; the detector is
    # shared with the caller's model.
    detector.eval()
    keys = list(getattr(adapter.outputs_schema.schemas[0], "keys", []))
    if keys != ["pred_boxes", "pred_classes", "scores"]:  # the order DETECTOR_OUTPUT_NAMES names
        raise RuntimeError(f"unexpected detector output fields {keys}")
    proto = onnx.load(path)
    entries = {"acar_d2.kind": "person_detector",
               "acar_d2.input_format": str(getattr(detector, "input_format", "BGR"))}
    entries.update({str(k): str(v) for k, v in (metadata or {}).items()})
    onnx.helper.set_model_props(proto, entries)
    onnx.save(proto, path)
    logger.info(f"Wrote the person detector ({os.path.getsize(path) / 1e6:.1f} MB) to {path}")
    return path
