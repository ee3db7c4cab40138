"""
Running an exported model with onnxruntime or OpenVINO, behind the interfaces the PyTorch model
offers:

* :class:`ONNXActionRunner`: ``(clip, boxes) -> logits`` of ``action_model.onnx``;
* :class:`ONNXPersonDetector`: ``detect(images, target_sizes)`` of ``person_detector.onnx``,
  the same contract as :meth:`acar_d2.modeling.person_detector.PersonDetector.detect`;
* :class:`ONNXRuntimeACARNet`: ``model(batched_inputs) -> [{"instances"}]`` as ``ACARNet`` at
  inference, so the key-frame loop (``KeyFrameStream``) and the demo call it unchanged
  (``tools/demo.py --engine onnxruntime|openvino --onnx DIR``). Actor boxes come from the exported
  detector, or from the PyTorch one when the folder has none, or from the inputs' proposals.

Each takes ``engine``, one of :data:`ENGINES`: ``"onnxruntime"`` (its CPU provider) or
``"openvino"`` (OpenVINO's CPU plugin reading the same ``.onnx`` files, float32 arithmetic asked
for explicitly: on CPUs with bf16 OpenVINO would otherwise pick bf16), and ``precision``: "fp32",
or "bf16" in OpenVINO on a CPU with native bf16 (``MODEL.INFERENCE.PRECISION``; onnxruntime
refuses it). Both engines are optional dependencies (``requirements.txt``): only this module
imports them, when asked.
"""
import json
import os
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..config import bank_kind_of
from ..modeling.inference import check_precision

__all__ = ["ENGINES", "check_engine_precision", "MANIFEST_NAME", "ONNXActionRunner",
           "ONNXPersonDetector", "ONNXRuntimeACARNet", "read_manifest"]

# The file tools/export_model.py writes beside the .onnx files, naming them and their shapes.
MANIFEST_NAME = "export.json"


ENGINES = ("onnxruntime", "openvino")


def _check_kind(path: str, meta: dict, kind: str) -> None:
    if meta.get("acar_d2.kind") != kind:
        raise ValueError(f"{path} is not an acar_d2 {kind} export (metadata acar_d2.kind = "
                         f"{meta.get('acar_d2.kind')!r}); write it with tools/export_model.py")


class _OpenVINOSession:
    """
    An OpenVINO CPU compiled model of an ``.onnx`` file with onnxruntime's call,
    ``run(output_names or None, feeds) -> [numpy arrays]`` (copies: the request's buffers are
    reused by the next call). The arithmetic of ``precision`` (``INFERENCE_PRECISION_HINT``:
    "fp32" -> f32, asked for explicitly since OpenVINO picks bf16 on CPUs that have it;
    "bf16" -> bf16), latency mode, ``num_threads`` inference threads (0: OpenVINO's default).
    """

    def __init__(self, path: str, num_threads: int, precision: str = "fp32"):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        info = model.get_rt_info()  # the ONNX file's metadata_props, under "framework"
        self.meta = ({k: v.astype(str) for k, v in info["framework"].items()}
                     if "framework" in info else {})
        config = {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
                  "PERFORMANCE_HINT": "LATENCY"}
        if num_threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, output_names: Optional[Sequence[str]], feeds: dict) -> list:
        result = self.request.infer(feeds)
        names = list(output_names) if output_names else self.output_names
        return [result[self.compiled.output(n)].copy() for n in names]


def check_engine_precision(engine: str, precision: str) -> None:
    """onnxruntime runs the exported float32 graph; OpenVINO (on the CPU) fp32, or bf16 where the
    CPU has native bf16 (``check_precision``'s rules and messages)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if precision == "fp32":
        return
    if engine == "onnxruntime":
        raise ValueError(f"MODEL.INFERENCE.PRECISION {precision}: the onnxruntime engine runs the "
                         "exported float32 graph; use fp32, or --engine openvino for bf16")
    check_precision(precision, "cpu")


def _session(path: str, num_threads: int, kind: str, engine: str = "onnxruntime",
             precision: str = "fp32"):
    """A CPU session of ``path`` in ``engine`` (``run(output_names, feeds)``) at ``precision``
    and the file's metadata, checked to hold an acar_d2 export of ``kind``."""
    check_engine_precision(engine, precision)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"exported model not found: {path}")
    if engine == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise ImportError("the openvino engine needs the openvino package: "
                              "pip install -r requirements.txt (or pip install openvino)") from None
        session = _OpenVINOSession(path, num_threads, precision)
        meta = session.meta
    else:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the onnxruntime engine needs the onnxruntime package: pip "
                              "install -r requirements.txt (or pip install onnxruntime)") from None
        options = ort.SessionOptions()
        if num_threads > 0:
            options.intra_op_num_threads = num_threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
    _check_kind(path, meta, kind)
    return session, meta


class ONNXActionRunner:
    """
    ``action_model.onnx`` (:func:`~acar_d2.export.export_action_model_onnx`) in onnxruntime or
    OpenVINO.

    Args:
        path (str): the ``.onnx`` file.
        num_threads (int): the engine's intra-op threads (0: its default, one per core).
        engine (str): one of :data:`ENGINES`.
        precision (str): "fp32"; "bf16" with OpenVINO on a CPU with native bf16.
    Attributes:
        clip_shape (tuple): (3, T, H, W) the file was exported for.
        valid_size (tuple): (H_valid, W_valid), the clips' unpadded part it was exported for.
        num_classes (int): K.
    """

    def __init__(self, path: str, num_threads: int = 0, engine: str = "onnxruntime",
                 precision: str = "fp32"):
        self.path = path
        self.engine = engine
        self.session, meta = _session(path, num_threads, "action_model", engine, precision)
        self.clip_shape = tuple(int(s) for s in meta["acar_d2.clip_shape"].split(","))
        self.valid_size = tuple(int(s) for s in meta["acar_d2.valid_size"].split(","))
        self.num_classes = int(meta["acar_d2.num_classes"])

    def __call__(self, clip: torch.Tensor, boxes: torch.Tensor,
                 valid_size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """
        Args:
            clip (Tensor): (3, T, H, W) or (1, 3, T, H, W) normalized.
            boxes (Tensor): (R, 4) XYXY clip px; R may be 0.
            valid_size: the clip's unpadded (H_valid, W_valid) (default (H, W)).
        Returns:
            Tensor: (R, K) float32 logits on the CPU.
        """
        if clip.dim() == 4:
            clip = clip[None]
        valid = tuple(clip.shape[-2:]) if valid_size is None else tuple(int(s) for s in valid_size)
        if tuple(clip.shape[1:]) != self.clip_shape or valid != self.valid_size:
            raise ValueError(
                f"clip {tuple(clip.shape[1:])} (valid {valid}) but {self.path} was exported for "
                f"clips {self.clip_shape} (valid {self.valid_size}), i.e. another frame size: "
                "export it again for this video (tools/export_model.py --input VIDEO or "
                "--frame-size HEIGHT WIDTH)")
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (R, 4), got {tuple(boxes.shape)}")
        if boxes.shape[0] == 0:
            return torch.zeros((0, self.num_classes))
        logits = self.session.run(["logits"], {
            "clip": clip.detach().to("cpu", torch.float32).contiguous().numpy(),
            "boxes": boxes.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(logits)


class ONNXPersonDetector(nn.Module):
    """
    ``person_detector.onnx`` (:func:`~acar_d2.export.export_person_detector_onnx`) with the
    ``detect`` contract of :class:`~acar_d2.modeling.person_detector.PersonDetector` (person
    class, score threshold, boxes rescaled to the target size by detectron2's
    ``detector_postprocess``, as ``GeneralizedRCNN`` does).

    Args:
        path (str): the ``.onnx`` file.
        person_class_id (int), test_proposal_score_thresh (float), input_format (str): as the
            PyTorch detector's (:meth:`from_detector` copies them).
        num_threads (int): the engine's intra-op threads (0: default).
        engine (str): one of :data:`ENGINES`.
        precision (str): "fp32"; "bf16" with OpenVINO on a CPU with native bf16.
    """

    frozen = True

    def __init__(self, path: str, *, person_class_id: int, test_proposal_score_thresh: float,
                 input_format: str, num_threads: int = 0, engine: str = "onnxruntime",
                 precision: str = "fp32"):
        super().__init__()
        self.path = path
        self.engine = engine
        self.session, meta = _session(path, num_threads, "person_detector", engine, precision)
        if meta.get("acar_d2.input_format", input_format) != input_format:
            raise ValueError(f"{path} was exported for {meta['acar_d2.input_format']} images, "
                             f"the config's detector reads {input_format}")
        self.person_class_id = int(person_class_id)
        self.test_proposal_score_thresh = float(test_proposal_score_thresh)
        self.input_format = input_format

    @classmethod
    def from_detector(cls, path: str, detector: nn.Module, num_threads: int = 0,
                      engine: str = "onnxruntime", precision: str = "fp32"):
        """The ONNX detector taking the settings of the PyTorch ``detector`` it was exported from."""
        return cls(path, person_class_id=detector.person_class_id,
                   test_proposal_score_thresh=detector.test_proposal_score_thresh,
                   input_format=detector.input_format, num_threads=num_threads, engine=engine,
                   precision=precision)

    def _run(self, image: torch.Tensor) -> Instances:
        boxes, classes, scores, size = self.session.run(
            None, {"image": image.detach().to("cpu", torch.uint8).contiguous().numpy()})
        inst = Instances((int(size[0]), int(size[1])))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.pred_classes = torch.from_numpy(classes).long()
        inst.scores = torch.from_numpy(scores)
        return inst

    @torch.no_grad()
    def detect(self, images: List[torch.Tensor], target_sizes: List[Tuple[int, int]],
               score_thresh: Optional[float] = None) -> List[Instances]:
        """See :meth:`acar_d2.modeling.person_detector.PersonDetector.detect`."""
        if len(images) != len(target_sizes):
            raise ValueError(f"detect: {len(images)} images but {len(target_sizes)} target sizes")
        thresh = self.test_proposal_score_thresh if score_thresh is None else float(score_thresh)
        out = []
        for i, (img, (h, w)) in enumerate(zip(images, target_sizes)):
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f"detect: image {i} must be (3, H, W), got {tuple(img.shape)}")
            det = detector_postprocess(self._run(img), int(h), int(w))
            keep = (det.pred_classes == self.person_class_id) & (det.scores >= thresh)
            inst = Instances((int(h), int(w)))
            inst.proposal_boxes = Boxes(det.pred_boxes.tensor[keep])
            inst.scores = det.scores[keep]
            out.append(inst)
        return out


def read_manifest(folder: str) -> dict:
    """The ``export.json`` of an export folder (``tools/export_model.py``)."""
    path = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {MANIFEST_NAME}; is it a folder written by "
                                "tools/export_model.py?")
    with open(path) as f:
        return json.load(f)


class ONNXRuntimeACARNet(nn.Module):
    """
    ``ACARNet`` inference with the action model (and the person detector, when exported) in
    onnxruntime or OpenVINO (the runner's ``engine``): called like the model at inference, ``model(batched_inputs)`` -> N
    ``{"instances": Instances}`` with ``pred_boxes``, ``scores``, ``action_logits``,
    ``action_scores``; the PyTorch ``model`` supplies the proposal rules and the
    post-processing (no weights of it are used, except a detector that was not exported).

    Args:
        model: the ``ACARNet`` of the config the files were exported from (eval mode).
        action_runner (ONNXActionRunner): the exported backbone + head.
        person_detector (ONNXPersonDetector or None): replaces ``model.person_detector``.
    """

    def __init__(self, model: nn.Module, action_runner: ONNXActionRunner,
                 person_detector: Optional[ONNXPersonDetector] = None):
        super().__init__()
        if bank_kind_of(model.roi_heads):
            raise ValueError(f"{type(model.roi_heads).__name__} reads a feature bank: not "
                             f"available with --engine {action_runner.engine}")
        if action_runner.num_classes != model.roi_heads.num_classes:
            raise ValueError(f"{action_runner.path} predicts {action_runner.num_classes} classes, "
                             f"the config's model {model.roi_heads.num_classes}")
        if person_detector is not None:
            if model.person_detector is None:
                raise ValueError(f"{person_detector.path}: the config has no person detector "
                                 "(MODEL.PERSON_DETECTOR.NAME is empty)")
            model.person_detector = person_detector
        self.model = model.eval()
        self.action_runner = action_runner

    @classmethod
    def from_folder(cls, model: nn.Module, folder: str, num_threads: int = 0,
                    engine: str = "onnxruntime", precision: str = "fp32"):
        """The exported model of a folder (``export.json`` + ``.onnx`` files) in ``engine`` at
        ``precision`` (both files)."""
        manifest = read_manifest(folder)
        runner = ONNXActionRunner(os.path.join(folder, manifest["action_model"]["file"]),
                                  num_threads, engine, precision)
        det = manifest.get("person_detector") or {}
        detector = None
        if model.person_detector is not None and not det.get("file"):
            raise ValueError(f"{folder}: the config has a person detector but the export has "
                             "none (exported from another config?)")
        if det.get("file"):
            detector = ONNXPersonDetector.from_detector(
                os.path.join(folder, det["file"]), model.person_detector, num_threads, engine,
                precision)
        return cls(model, runner, detector)

    @property
    def roi_heads(self) -> nn.Module:
        return self.model.roi_heads

    @property
    def person_detector(self) -> Optional[nn.Module]:
        return self.model.person_detector

    def forward(self, batched_inputs: Sequence[dict]) -> List[dict]:
        """See the class docstring; inputs are ``ClipDatasetMapper`` outputs."""
        proposals = self.model.get_proposals(list(batched_inputs))
        out = []
        for x, p in zip(batched_inputs, proposals):
            logits = self.action_runner(x["clip"], p.proposal_boxes.tensor, x.get("valid_size"))
            out.append({"instances": self.model.postprocess(x, p.to("cpu"), logits)})
        return out
