#!/usr/bin/env python
"""
Eval-forward speed of the inference path against the plain model, side by side in one run.

    python tools/benchmarks/benchmark_inference.py [--runs 3] [--compile]

The R50 ACAR HR2O model (configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml) with seeded weights (random
BatchNorm statistics, so that folding them changes the weights), one clip 1x3x32x256x256 with 5
actor boxes (the setting of issue 32 and of the official-code comparison there). Columns, each a
model holding the same weights:

* ``plain``: ``build_model(cfg).eval()``, the trainable model (the official code runs at its
  speed, 0.98-1.02x);
* ``fold``: the plain model with its BatchNorms folded into the convolutions, alone;
* ``channels-last``: the plain model with its 3D convolutions channels-last, alone;
* ``onednn``: the plain model with every 3D convolution on oneDNN (``OneDNNConv3d``; PyTorch's
  own heuristic sends the fast pathway's small convolutions to its slow reference kernel), alone;
* ``fp32``: ``ActionPredictor(cfg).model`` (``MODEL.INFERENCE`` defaults: both of the above);
* ``bf16``: ``ActionPredictor(cfg).model`` with ``MODEL.INFERENCE.PRECISION bf16`` (only on a CPU
  with native bf16);
* ``compile`` (``--compile``): ``ActionPredictor(cfg).model`` with ``MODEL.INFERENCE.COMPILE
  True``: the ``fp32`` model with its backbone (where the FLOPs are) ``torch.compile``-d by inductor
  with ``freezing`` (weights as constants, prepacked oneDNN convolutions); its first call
  (compilation) is printed.

Every model runs once (warm-up, and the logits compared with the plain model's), then the models
take turns ``--runs`` times; the table gives median (min - max) seconds, the speed-up of the medians
over ``plain`` and the largest logit difference from ``plain``. The machine may be shared: only
ratios from the same run count.
"""
import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

from acar_d2.engine import ActionPredictor, setup_cfg  # noqa: E402
from acar_d2.modeling.inference import (cpu_has_native_bf16, fold_batchnorm,  # noqa: E402
                                        to_channels_last, use_onednn_conv3d)

CONFIG = "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml"
# Five actors (x1, y1, x2, y2 in clip px of the 256 x 256 clip).
BOXES = [[10, 20, 100, 200], [50, 30, 150, 250], [120, 10, 250, 240], [0, 0, 128, 128],
         [60, 60, 200, 200]]


def seeded_model(cfg) -> torch.nn.Module:
    """The plain model with seeded weights and random BN statistics (mean ~0.1, var in 1..1.5)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) * 0.5 + 1.0)
    return model


def clip_inputs(size: int = 256, frames: int = 32) -> list:
    """One clip (3, T, H, W) with 5 actor proposals, as the model's input list."""
    g = torch.Generator().manual_seed(2)
    proposals = Instances((size, size))
    proposals.proposal_boxes = Boxes(torch.tensor(BOXES, dtype=torch.float32))
    proposals.scores = torch.ones(len(BOXES))
    return [{"clip": torch.randn(3, frames, size, size, generator=g), "proposals": proposals,
             "height": size, "width": size}]


def build_models(args) -> dict:
    """Name -> model of the columns, same weights (``ActionPredictor`` loads them from a file)."""
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""]
    plain = seeded_model(setup_cfg(str(REPO / CONFIG), opts))
    models = {"plain": plain}
    models["fold"] = copy.deepcopy(plain)
    fold_batchnorm(models["fold"])
    models["channels-last"] = copy.deepcopy(plain)
    to_channels_last(models["channels-last"])
    models["onednn"] = copy.deepcopy(plain)
    use_onednn_conv3d(models["onednn"])
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "seeded.pth")
        torch.save({"model": plain.state_dict()}, weights)
        opts[-1] = weights
        models["fp32"] = ActionPredictor(setup_cfg(str(REPO / CONFIG), opts)).model
        if cpu_has_native_bf16():
            models["bf16"] = ActionPredictor(setup_cfg(
                str(REPO / CONFIG), opts + ["MODEL.INFERENCE.PRECISION", "bf16"])).model
        else:
            print("bf16: skipped, this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
        if args.compile:  # MODEL.INFERENCE.COMPILE: the fp32 model, backbone compiled
            models["compile"] = ActionPredictor(setup_cfg(
                str(REPO / CONFIG), opts + ["MODEL.INFERENCE.COMPILE", "True"])).model
    return models


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(models: dict, inputs: list, runs: int) -> dict:
    """Warm-up + logits of each model, then ``runs`` interleaved timed rounds."""
    logits, first = {}, {}
    with torch.no_grad():
        for name, model in models.items():
            first[name] = _time(lambda: logits.setdefault(
                name, model(inputs)[0]["instances"].action_logits))
            print(f"{name}: first call {first[name]:.1f} s", flush=True)
        times = {name: [] for name in models}
        for r in range(runs):
            for name, model in models.items():
                times[name].append(_time(lambda: model(inputs)))
            print(f"round {r + 1}/{runs}: " + ", ".join(
                f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    return {"times": times, "first": first,
            "drift": {n: (lg - logits["plain"]).abs().max().item() for n, lg in logits.items()}}


def table(result: dict) -> str:
    times, drift = result["times"], result["drift"]
    base = statistics.median(times["plain"])
    lines = ["| model | s / eval forward, median (min - max) | speed-up vs plain | "
             "max abs logit diff vs plain |", "|---|---:|---:|---:|"]
    for name, t in times.items():
        med = statistics.median(t)
        lines.append(f"| {name} | {med:.2f} ({min(t):.2f} - {max(t):.2f}) | {base / med:.2f}x | "
                     f"{drift[name]:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add torch.compile of fp32")
    args = parser.parse_args(argv)
    models = build_models(args)
    result = measure(models, clip_inputs(), args.runs)
    print(f"\nthreads {torch.get_num_threads()}; R50 ACAR HR2O, clip 1x3x32x256x256, 5 boxes; "
          f"{args.runs} interleaved runs after one warm-up call each")
    if "compile" in result["first"]:
        print(f"torch.compile: first call (compilation) {result['first']['compile']:.1f} s")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
