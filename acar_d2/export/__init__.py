"""
Export of acar_d2 models for deployment (docs/EXPORT.md), after ``detectron2.export``: the action
model (backbone + head) and the person detector as ONNX files (``tools/export_model.py``), and
engines (onnxruntime, OpenVINO) that run them behind ``ACARNet``'s inference interface
(``tools/demo.py --engine onnxruntime|openvino``).
"""
from .action_model import ONNX_OPSET, ActionLogitsModel, export_action_model_onnx
from .person_detector import DETECTOR_OUTPUT_NAMES, export_person_detector_onnx
from .runtime import (ENGINES, MANIFEST_NAME, ONNXActionRunner, ONNXPersonDetector,
                      ONNXRuntimeACARNet, check_engine_precision, read_manifest)

__all__ = [
    "ONNX_OPSET",
    "ActionLogitsModel",
    "export_action_model_onnx",
    "DETECTOR_OUTPUT_NAMES",
    "export_person_detector_onnx",
    "ENGINES",
    "check_engine_precision",
    "MANIFEST_NAME",
    "ONNXActionRunner",
    "ONNXPersonDetector",
    "ONNXRuntimeACARNet",
    "read_manifest",
]
