#!/usr/bin/env python
"""
Export a trained acar_d2 model to ONNX, in the manner of detectron2's tools/deploy/export_model.py.

    python tools/export_model.py --config-file output/quickstart/config.yaml --input my_video.mp4 \\
        --output exported/ MODEL.WEIGHTS output/quickstart/model_final.pth

writes into --output:

* ``action_model.onnx``: backbone + action head, inputs ``clip`` (1, 3, T, H, W) float32
  (normalized and padded, as the clip mapper makes it) and ``boxes`` (R, 4) float32 XYXY clip px,
  output ``logits`` (R, K); R is dynamic, the clip size fixed: that of the frames of ``--input``
  (or ``--frame-size HEIGHT WIDTH``) after the config's clip resize (and padding);
* ``person_detector.onnx`` (a config with ``MODEL.PERSON_DETECTOR``): the detectron2 Faster R-CNN
  through detectron2's ``TracingAdapter``, input ``image`` (3, H, W) uint8 at the detector's test
  resolution (dynamic), outputs ``boxes``, ``classes``, ``scores``, ``image_size``;
* ``export.json``: the files, shapes, config and weights, and the check below.

Before it finishes, each file is run in onnxruntime on an example key frame (the first full clip
of ``--input``, else a uniform grey clip) and compared with PyTorch: the largest logit / box / score
difference is printed and recorded, and the export fails when it is above ``--tolerance``.
Run the exported model with ``tools/demo.py ... --engine onnxruntime --onnx DIR`` (docs/EXPORT.md).
"""
import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.structures import Boxes  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from acar_d2.data.video_io import TimedFrameBuffer, open_video_source  # noqa: E402
from acar_d2.engine import setup_cfg  # noqa: E402
from acar_d2.engine.key_frame_stream import KeyFrameRequest, KeyFrameStream  # noqa: E402
from acar_d2.export import (MANIFEST_NAME, ONNX_OPSET, ONNXActionRunner,  # noqa: E402
                            ONNXPersonDetector, export_action_model_onnx,
                            export_person_detector_onnx)

logger = logging.getLogger("acar_d2.export")

ACTION_FILE = "action_model.onnx"
DETECTOR_FILE = "person_detector.onnx"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config-file", required=True, help="the model's config")
    parser.add_argument("--output", required=True, help="folder to write (created if missing)")
    parser.add_argument("--input", help="a video of the size the model will run on (its first "
                        "clip is the example input)")
    parser.add_argument("--frame-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="the frame size of the videos instead of --input")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET,
                        help=f"ONNX opset (>= 16 for RoiAlign; default {ONNX_OPSET})")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest accepted |onnxruntime - PyTorch| on the example (fp32)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--random-weights", action="store_true",
                        help="export without MODEL.WEIGHTS (testing the pipeline)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def check_output(args) -> None:
    """Refuse to replace earlier exports unasked; create the folder."""
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise NotADirectoryError(f"--output {args.output} is a file: give a folder")
    existing = [n for n in (ACTION_FILE, DETECTOR_FILE, MANIFEST_NAME)
                if os.path.exists(os.path.join(args.output, n))]
    if existing and not args.overwrite:
        raise FileExistsError(f"--output {args.output} already holds {', '.join(existing)}: "
                              "refusing to overwrite (use --overwrite)")
    os.makedirs(args.output, exist_ok=True)


def example_frames(args):
    """(time -> frame buffer, key-frame time): the first full clip of --input, else grey frames."""
    if bool(args.input) == bool(args.frame_size):
        raise ValueError("give --input VIDEO or --frame-size HEIGHT WIDTH (the size the exported "
                         "model will run at)")
    buffer = TimedFrameBuffer()
    if args.frame_size:
        h, w = args.frame_size
        if h < 1 or w < 1:
            raise ValueError(f"--frame-size {h} {w}: must be positive")
        buffer.append(0.0, np.full((h, w, 3), 128, np.uint8))
        return buffer, None
    return buffer, open_video_source(args.input)


def fill_first_clip(stream: KeyFrameStream, buffer: TimedFrameBuffer, source) -> KeyFrameRequest:
    """The request of the first key frame whose clip lies inside the video, its frames read."""
    request = KeyFrameRequest(max(0.0, -stream.clip_start_s))
    if source is None:
        return KeyFrameRequest(0.0)
    try:
        for t, frame in source.timed_frames():
            buffer.append(t, frame)
            if t >= request.time + stream.clip_end_s:
                break
    finally:
        source.close()
    if not len(buffer):
        raise ValueError(f"--input {source.name}: no frame decoded")
    return KeyFrameRequest(min(request.time, buffer.newest_time))


def example_boxes(inputs: dict, model) -> torch.Tensor:
    """Actor boxes (clip px) of the example: the detector's, else three boxes across the clip."""
    if model.person_detector is not None:
        boxes = model.get_proposals([inputs])[0].proposal_boxes.tensor
        if len(boxes) >= 2:
            return boxes[:8]
    h, w = inputs["valid_size"]
    return torch.tensor([[0.1 * w, 0.1 * h, 0.4 * w, 0.9 * h], [0.3 * w, 0.2 * h, 0.7 * w, 0.8 * h],
                         [0.6 * w, 0.05 * h, 0.95 * w, 0.95 * h]])


def check_action_model(model, runner: ONNXActionRunner, inputs: dict, tol: float) -> dict:
    """Max |onnxruntime - PyTorch| of the logits, on the example boxes and on a subset (another R)."""
    boxes = example_boxes(inputs, model)
    clip, valid = inputs["clip"][None].float(), tuple(inputs["valid_size"])
    report = {}
    for name, b in (("logits", boxes), ("logits_fewer_boxes", boxes[:1])):
        with torch.no_grad():
            ref = model.predict_logits([inputs], [Boxes(b)])[0]
        err = float((runner(clip, b, valid) - ref).abs().max())
        report[name] = {"num_boxes": len(b), "max_abs_diff": err}
        print(f"action model, {len(b)} boxes: max |onnxruntime - PyTorch| logit {err:.2e}")
        if not err <= tol:
            raise RuntimeError(f"exported action model differs from PyTorch by {err:.3g} > "
                               f"--tolerance {tol} ({runner.path})")
    return report


def check_detector(model, onnx_detector: ONNXPersonDetector, inputs: dict, tol: float) -> dict:
    """The example key frame's person boxes / scores from onnxruntime vs PyTorch."""
    size = [tuple(inputs["valid_size"])]
    ref = model.person_detector.detect([inputs["image"]], size, score_thresh=0.0)[0]
    got = onnx_detector.detect([inputs["image"]], size, score_thresh=0.0)[0]
    if len(got) != len(ref):
        raise RuntimeError(f"exported detector finds {len(got)} boxes, PyTorch {len(ref)}")
    box_err = float((got.proposal_boxes.tensor - ref.proposal_boxes.tensor).abs().max()) if len(ref) else 0.0
    score_err = float((got.scores - ref.scores).abs().max()) if len(ref) else 0.0
    print(f"person detector, {len(ref)} detections: max |onnxruntime - PyTorch| box {box_err:.2e} px, "
          f"score {score_err:.2e}")
    # Boxes are in px: the tolerance is relative to the frame size.
    if not (score_err <= tol and box_err <= tol * max(size[0])):
        raise RuntimeError(f"exported detector differs from PyTorch (box {box_err:.3g} px, score "
                           f"{score_err:.3g}) ({onnx_detector.path})")
    return {"num_detections": len(ref), "max_abs_diff_box_px": box_err,
            "max_abs_diff_score": score_err}


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(args) -> dict:
    """Export the files of --output and check them; returns the manifest written."""
    cfg = setup_cfg(args.config_file, args.opts)
    if not cfg.MODEL.WEIGHTS and not args.random_weights:
        raise ValueError("MODEL.WEIGHTS is not set: the export would hold random weights; add "
                         "`MODEL.WEIGHTS path/to/model_final.pth` (or --random-weights on purpose)")
    buffer, source = example_frames(args)
    check_output(args)
    stream = KeyFrameStream(cfg, allow_random_weights=True)
    model = stream.model.eval()
    request = fill_first_clip(stream, buffer, source)
    inputs = stream.map_key_frame(buffer, request)
    clip_shape, valid = tuple(inputs["clip"].shape), tuple(inputs["valid_size"])
    meta = {"acar_d2.config": args.config_file, "acar_d2.weights": cfg.MODEL.WEIGHTS}
    action_path = os.path.join(args.output, ACTION_FILE)
    export_action_model_onnx(model, clip_shape, action_path, args.opset, meta, valid)
    manifest = {"format": "onnx", "opset": args.opset, "torch": torch.__version__,
                "config_file": args.config_file, "weights": cfg.MODEL.WEIGHTS,
                "frame_size": [int(inputs["height"]), int(inputs["width"])],
                "action_model": {"file": ACTION_FILE, "clip_shape": list(clip_shape),
                                 "valid_size": list(valid),
                                 "num_classes": int(model.roi_heads.num_classes),
                                 "sha256": sha256(action_path)},
                "person_detector": None}
    manifest["check"] = {"action_model": check_action_model(
        model, ONNXActionRunner(action_path), inputs, args.tolerance)}
    if model.person_detector is not None:
        det_path = os.path.join(args.output, DETECTOR_FILE)
        export_person_detector_onnx(model.person_detector, inputs["image"], det_path, args.opset,
                                    meta)
        manifest["person_detector"] = {"file": DETECTOR_FILE, "sha256": sha256(det_path),
                                       "input_format": model.person_detector.input_format}
        manifest["check"]["person_detector"] = check_detector(
            model, ONNXPersonDetector.from_detector(det_path, model.person_detector), inputs,
            args.tolerance)
    with open(os.path.join(args.output, MANIFEST_NAME), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="acar_d2")
    manifest = export(args)
    files = [manifest["action_model"]["file"]] + (
        [manifest["person_detector"]["file"]] if manifest["person_detector"] else [])
    print(f"exported {', '.join(files)} (clip {tuple(manifest['action_model']['clip_shape'])}, "
          f"opset {manifest['opset']}) and {MANIFEST_NAME} to {args.output}")
    return 0


if __name__ == "__main__":
    from acar_d2.engine.cli import run_cli

    run_cli(main, prog="tools/export_model.py")
