#!/usr/bin/env python
"""
Forward time, peak memory, parameters and GFLOPs of the SlowFast backbone.

    python tools/benchmarks/benchmark_backbone.py --device cpu [--cases cpu,ava,k400] [--repeats 3]

Cases:
    cpu   R18 (bottleneck, 2 blocks/stage) width 8, 1 clip x 8 frames x 128x128 (CPU-sized)
    ava   R50 as the official ACAR-Net R50 (res5 dilation 2), 1 clip x 32 frames x 256x256
    k400  R50 as the SlowFast paper's 8x8 (res5 stride 2), 1 clip x 32 frames x 256x256: the
          setting of the published numbers printed next to it (the paper's Kinetics inference
          uses 3 spatial crops of 256x256 per clip, SlowFast Sec. 4 "Inference", and reports
          GFLOPs per such view; at 224x224 the same model is 50.3 GFLOPs)

GFLOPs from ``fvcore.nn.FlopCountAnalysis`` (one multiply-add = one FLOP, the SlowFast paper's
convention). Peak memory: ``torch.cuda.max_memory_allocated`` on cuda; on CPU the peak resident
set size of the process (``ru_maxrss``, includes the Python runtime, cases run smallest first).
"""
import argparse
import resource
import time
from typing import Dict, List

import torch
from fvcore.nn import FlopCountAnalysis

from acar_d2.modeling.backbone import SlowFast

# SlowFast paper (Feichtenhofer et al., ICCV 2019) Table 2/3, SlowFast 8x8 R50 on Kinetics-400:
# 65.7 GFLOPs per 256x256 view (x 3x10 views at test time), 34.4M parameters with the K400 head.
PUBLISHED = {"k400": {"gflops": 65.7, "params_m": 34.4}}
# Parameters of the K400 classifier (2304 -> 400 + bias) absent from a bare backbone.
K400_HEAD_PARAMS = 2304 * 400 + 400

CASES = {
    "cpu": dict(model=dict(depth=18, width=8, res5_dilation=2), clip=(8, 128, 128)),
    "ava": dict(model=dict(depth=50, width=64, res5_dilation=2), clip=(32, 256, 256)),
    "k400": dict(model=dict(depth=50, width=64, res5_dilation=1), clip=(32, 256, 256)),
}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def benchmark_case(name: str, device: torch.device, repeats: int) -> Dict[str, float]:
    spec = CASES[name]
    torch.manual_seed(0)
    model = SlowFast(**spec["model"], norm="FrozenBN").to(device).eval()
    clip = torch.randn(1, 3, *spec["clip"], device=device)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        flops = FlopCountAnalysis(model, clip)
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        gflops = flops.total() / 1e9
        model(clip)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        times: List[float] = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(clip)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return {
        "params_m": params / 1e6,
        "gflops": gflops,
        "time_ms": 1000 * sorted(times)[len(times) // 2],
        "peak_mb": _peak_memory_mb(device),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", default="cpu,ava,k400")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device: {device}  torch {torch.__version__}  threads {torch.get_num_threads()}")
    header = f"{'case':6} {'model':22} {'clip TxHxW':12} {'params(M)':>10} {'GFLOPs':>8} {'median ms':>10} {'peak MB':>9} | {'paper params(M)':>15} {'paper GFLOPs':>12}"
    print(header)
    print("-" * len(header))
    for name in args.cases.split(","):
        r = benchmark_case(name, device, args.repeats)
        m = CASES[name]["model"]
        desc = f"R{m['depth']} w{m['width']} dil{m['res5_dilation']}"
        clip = "x".join(str(v) for v in CASES[name]["clip"])
        pub = PUBLISHED.get(name)
        paper = f"{pub['params_m']:>15.1f} {pub['gflops']:>12.1f}" if pub else f"{'-':>15} {'-':>12}"
        print(
            f"{name:6} {desc:22} {clip:12} {r['params_m']:>10.2f} {r['gflops']:>8.1f} "
            f"{r['time_ms']:>10.1f} {r['peak_mb']:>9.0f} | {paper}"
        )
        if pub:
            print(f"{'':6} (ours + K400 head: {r['params_m'] + K400_HEAD_PARAMS / 1e6:.2f} M params)")


if __name__ == "__main__":
    main()
