#!/usr/bin/env python
"""
Benchmark the batched ACAR head against a literal per-clip, per-actor implementation.

The literal version (``acar_d2.utils.testing.literal_acar_logits``, also used by the tests) follows
the official head step by step: per clip, RoIAlign on the whole context map, crop the context, tile
every actor feature over it, concatenate [context, actor] and run conv1 on the R_i tiled copies,
then conv2, max pool and HR2O_NL per clip with a plain GroupNorm. ``ACARROIHeads`` computes conv1's
context half once per clip, processes all clips of the batch in one tensor and masks per-clip valid
regions. Both use the same weights; outputs must agree to 1e-5.

Default sizes are AVA's (ACAR Sec. 4.1): slow 2048 + fast 256 channels at 16x16 (256 px clips,
output stride 16), 8 and 32 frames, batch 8, 1..20 actors per clip.

    python tools/benchmarks/benchmark_heads.py                     # AVA sizes, current device
    python tools/benchmarks/benchmark_heads.py --device cuda
    python tools/benchmarks/benchmark_heads.py --scale 8 --actors 1 5   # CPU-sized smoke run
"""
import argparse
import os
import subprocess
import sys
import time
from typing import Tuple

import torch

from detectron2.structures import Boxes

from acar_d2.modeling.roi_heads import ACARROIHeads
from acar_d2.utils.testing import literal_acar_logits


def make_inputs(num_clips: int, num_actors: int, scale: int, size: int, device, seed: int = 0):
    """AVA-shaped features (channels / ``scale``) and random actor boxes in 256 px clips."""
    g = torch.Generator().manual_seed(seed)
    image = 16 * size
    features = {
        "slow": torch.randn(num_clips, 2048 // scale, 8, size, size, generator=g).to(device),
        "fast": torch.randn(num_clips, 256 // scale, 32, size, size, generator=g).to(device),
    }
    boxes = []
    for _ in range(num_clips):
        xy = torch.rand(num_actors, 2, generator=g) * image * 0.6
        wh = torch.rand(num_actors, 2, generator=g) * image * 0.35 + image * 0.05
        boxes.append(Boxes(torch.cat([xy, xy + wh], dim=1).to(device)))
    return features, boxes, [(image, image)] * num_clips, (image, image)


def _timed(fn, device, repeats: int) -> Tuple[float, float, torch.Tensor]:
    """Median forward+backward seconds and peak memory (bytes; CUDA allocator, else nan: the CPU
    peak is measured in a fresh process by :func:`_cpu_peak`)."""
    times, peak, out = [], float("nan"), None
    for i in range(repeats + 1):  # first run is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        out = fn()
        out.square().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
        if i > 0:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], peak, out


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in KiB: VmRSS (now) or VmHWM (peak)."""
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))


def _cpu_peak_child(impl: str, args) -> None:
    """
    Run one forward+backward of ``impl`` in this fresh process and print the growth of the peak
    RSS above the RSS before the call (CPU has no allocator statistics like CUDA's).

    The peak is VmHWM, reset just before the call through /proc/self/clear_refs; not
    ``getrusage().ru_maxrss``, which a child inherits from its parent at fork time.
    """
    head, features, boxes, valid, image = _build(args, torch.device("cpu"), args.cpu_peak_actors)
    fn = (lambda: head(features, boxes, valid, image)[0]) if impl == "ours" else (
        lambda: literal_acar_logits(head, features, boxes, valid, image))
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    fn().square().sum().backward()
    peak = _status_kib("VmHWM")
    print(f"PEAK {max(0, peak - before) * 1024}")


def _cpu_peak(impl: str, num_actors: int, args) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--device", "cpu", "--batch", str(args.batch),
           "--scale", str(args.scale), "--size", str(args.size), "--cpu-peak-impl", impl,
           "--cpu-peak-actors", str(num_actors)]
    peaks = []
    for _ in range(args.memory_runs):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        peaks.append(float(next(l for l in out.splitlines() if l.startswith("PEAK ")).split()[1]))
    # The least of a few fresh processes: allocator and thread-pool scratch noise only adds.
    return min(peaks)


def _build(args, device, num_actors):
    torch.manual_seed(0)
    s = args.scale
    head = ACARROIHeads(
        in_features=["slow", "fast"], in_channels=[2048 // s, 256 // s], num_classes=60,
        pose_class_indices=list(range(13)), reduce_dim=1024 // s, hidden_dim=512 // s,
        hr2o_depth=2, hr2o_dropout=0.0,
    ).to(device)
    head.train()  # train mode (dropout 0): the backward pass is part of the measurement
    return (head, *make_inputs(args.batch, num_actors, s, args.size, device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--scale", type=int, default=1, help="divide all channel widths by this")
    parser.add_argument("--size", type=int, default=16, help="feature map h = w")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-runs", type=int, default=3,
                        help="CPU: fresh processes per peak-memory measurement (the least is kept)")
    # Internal: one CPU peak-memory measurement in a child process.
    parser.add_argument("--cpu-peak-impl", choices=["ours", "literal"], help=argparse.SUPPRESS)
    parser.add_argument("--cpu-peak-actors", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_peak_impl:
        _cpu_peak_child(args.cpu_peak_impl, args)
        return
    device = torch.device(args.device)
    s = args.scale
    head, *_ = _build(args, device, 1)
    print(f"device={device} batch={args.batch} context={(2048 + 256) // s}x{args.size}x{args.size} "
          f"reduce={1024 // s} hidden={512 // s} hr2o=nl x2")
    print("| actors/clip | literal ms | ours ms | speed-up | literal MiB | ours MiB | mem ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.actors:
        features, boxes, valid, image = make_inputs(args.batch, n, s, args.size, device)

        def ours():
            return head(features, boxes, valid, image)[0]

        def literal():
            return literal_acar_logits(head, features, boxes, valid, image)

        t_lit, m_lit, out_lit = _timed(literal, device, args.repeats)
        head.zero_grad()
        t_our, m_our, out_our = _timed(ours, device, args.repeats)
        head.zero_grad()
        if device.type == "cpu":
            # Peak resident memory growth of one forward+backward, each in a fresh process.
            m_lit, m_our = _cpu_peak("literal", n, args), _cpu_peak("ours", n, args)
        diff = (out_lit - out_our).abs().max().item()
        ok = "" if diff <= 1e-5 else "  <-- MISMATCH"
        mib = lambda m: f"{m / 2**20:.0f}" if m == m else "n/a"
        ratio = f"{m_lit / m_our:.2f}x" if m_lit == m_lit else "n/a"
        print(f"| {n} | {t_lit * 1e3:.1f} | {t_our * 1e3:.1f} | {t_lit / t_our:.2f}x | {mib(m_lit)} | "
              f"{mib(m_our)} | {ratio} | {diff:.1e}{ok} |")


if __name__ == "__main__":
    main()
