#!/usr/bin/env python
"""
Eval-forward speed of the inference path against the plain model, side by side in one run.

    python tools/benchmarks/benchmark_inference.py [--runs 3] [--compile]

The R50 ACAR HR2O model (configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml) with seeded weights (random
BatchNorm statistics, so that folding them changes the weights), one clip 1x3x32x256x256 with 5
actor boxes (the setting of issue 32 and of the official-code comparison there). Columns, each a
model holding the same weights:

* ``plain``: ``build_model(cfg).eval()``, the trainable model (the official code runs at its
  speed, 0.98-1.02x), in a process of its own with the C library's default allocator settings,
  as the official code runs: the anchor of every ratio;
* ``plain, memory kept``: the same model in this process, where the inference path has set
  ``MODEL.INFERENCE.KEEP_FREED_MEMORY`` (freed CPU memory kept for reuse,
  ``acar_d2.utils.cpu_memory``): what that process-wide setting alone gives;
* ``fold``, ``channels-last``, ``onednn`` (in this process, memory kept, like every column below
  that is not in a process of its own):
* ``fold``: the plain model with its BatchNorms folded into the convolutions, alone;
* ``channels-last``: the plain model with its 3D convolutions channels-last, alone;
* ``onednn``: the plain model with every 3D convolution on oneDNN (``OneDNNConv3d``; PyTorch's
  own heuristic sends the fast pathway's small convolutions to its slow reference kernel), alone;
* ``fp32, default allocator``: ``ActionPredictor(cfg).model`` with
  ``MODEL.INFERENCE.KEEP_FREED_MEMORY False``, in a process of its own: the model transforms alone;
* ``fp32``: ``ActionPredictor(cfg).model`` (``MODEL.INFERENCE`` defaults: all of the above);
* ``bf16``: ``ActionPredictor(cfg).model`` with ``MODEL.INFERENCE.PRECISION bf16`` (only on a CPU
  with native bf16);
* ``compile`` (``--compile``): ``ActionPredictor(cfg).model`` with ``MODEL.INFERENCE.COMPILE
  True``: the ``fp32`` model with its backbone (where the FLOPs are) ``torch.compile``-d by inductor
  with ``freezing`` (weights as constants, prepacked oneDNN convolutions); its first call
  (compilation) is printed.

Every model runs once (warm-up, and the logits compared with the plain model's), then the models
take turns ``--runs`` times (a column in its own process runs while this one waits); the table gives
median (min - max) seconds, the speed-up of the medians over ``plain`` and the largest logit
difference from ``plain``. The machine may be shared: only ratios from the same run count.
"""
import argparse
import copy
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

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


def _own_process(conn, threads: int, weights: Optional[str]) -> None:
    """A column's own process (the C library's default allocator settings): builds the seeded
    plain model (``weights`` None) or ``ActionPredictor(cfg).model`` from ``weights`` with
    ``MODEL.INFERENCE.KEEP_FREED_MEMORY False``, then answers "run" with the seconds of one eval
    forward (the first answer: the logits of the warm-up call)."""
    torch.set_num_threads(threads)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", weights or ""]
    if weights is None:
        model = seeded_model(setup_cfg(str(REPO / CONFIG), opts))
    else:
        model = ActionPredictor(setup_cfg(
            str(REPO / CONFIG), opts + ["MODEL.INFERENCE.KEEP_FREED_MEMORY", "False"])).model
    inputs = clip_inputs()
    with torch.no_grad():
        conn.send(model(inputs)[0]["instances"].action_logits)
        while conn.recv() == "run":
            conn.send(_time(lambda: model(inputs)))


class InOwnProcess:
    """Callable stand-in for a model in a spawned process with the default allocator settings
    (see :func:`_own_process`): ``__call__`` runs one forward there (this process waits) and
    returns its seconds; ``warm_up`` returns the logits of the first call."""

    def __init__(self, weights: Optional[str] = None):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_own_process,
                                 args=(child, torch.get_num_threads(), weights), daemon=True)
        self._proc.start()

    def warm_up(self) -> torch.Tensor:
        return self._conn.recv()

    def __call__(self) -> float:
        self._conn.send("run")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=60)


def build_models(args, tmp: str) -> dict:
    """Name -> model of the columns, same weights (``ActionPredictor`` loads them from a file);
    ``plain`` and ``fp32, default allocator`` are :class:`InOwnProcess`. ``tmp``: a folder for
    the weights file, kept while the columns run."""
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""]
    models = {"plain": InOwnProcess()}
    plain = seeded_model(setup_cfg(str(REPO / CONFIG), opts))
    models["plain, memory kept"] = plain
    models["fold"] = copy.deepcopy(plain)
    fold_batchnorm(models["fold"])
    models["channels-last"] = copy.deepcopy(plain)
    to_channels_last(models["channels-last"])
    models["onednn"] = copy.deepcopy(plain)
    use_onednn_conv3d(models["onednn"])
    weights = str(Path(tmp) / "seeded.pth")
    torch.save({"model": plain.state_dict()}, weights)
    opts[-1] = weights
    models["fp32, default allocator"] = InOwnProcess(weights)
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
            if isinstance(model, InOwnProcess):
                first[name] = _time(lambda: logits.setdefault(name, model.warm_up()))
            else:
                first[name] = _time(lambda: logits.setdefault(
                    name, model(inputs)[0]["instances"].action_logits))
            print(f"{name}: first call {first[name]:.1f} s", flush=True)
        times = {name: [] for name in models}
        for r in range(runs):
            for name, model in models.items():
                if isinstance(model, InOwnProcess):
                    times[name].append(model())
                else:
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
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(args, tmp)
        try:
            result = measure(models, clip_inputs(), args.runs)
        finally:
            for model in models.values():
                if isinstance(model, InOwnProcess):
                    model.close()
    print(f"\nthreads {torch.get_num_threads()}; R50 ACAR HR2O, clip 1x3x32x256x256, 5 boxes; "
          f"{args.runs} interleaved runs after one warm-up call each")
    if "compile" in result["first"]:
        print(f"torch.compile: first call (compilation) {result['first']['compile']:.1f} s")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
