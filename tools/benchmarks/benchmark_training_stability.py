#!/usr/bin/env python
"""
Training stability and the backbone norm on the synthetic world: several seeds of one config,
each trained by ``tools/train_net.py`` with every iteration's loss logged, then checked for loss
spikes and evaluated (frame-mAP@0.5 on the validation split).

    python tools/benchmarks/benchmark_training_stability.py --seeds 0 1 2 3 4 --norms FrozenStatsBN FrozenBN
    python tools/benchmarks/benchmark_training_stability.py --device cuda --jobs 10 ...   # runs side by side

A spike is a jump of the loss after the warm-up: a 20-iteration median of the action loss against
the lowest 20-iteration median before it; a run whose worst jump is above ``--spike-ratio``
(default 2x) and ``--spike-rise`` (default +0.05) is reported as spiking (the diverged feature-bank
run of docs/TRAINING_FIDELITY.md went from 0.04 to 12.6; late in a normal run the loss is so low
that noise alone can double a median, hence the absolute rise). Each run is an ordinary ``train_net.py`` run in ``--output/<norm>/seed<N>`` (its
``config.yaml``, ``metrics.json`` and checkpoints): running the tool again resumes unfinished runs
(``--resume``) and reads finished ones back. Results: a markdown table on stdout and
``results.json`` / ``results.md`` in ``--output``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
DEFAULT_CONFIG = "configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml"
WINDOW = 20


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--norms", nargs="+", default=["FrozenStatsBN"],
                   help="MODEL.SLOWFAST.NORM values compared (FrozenStatsBN, FrozenBN, BN)")
    p.add_argument("--output", default="output/benchmark_training_stability")
    p.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                   help="root holding aca_world/ (generated when missing)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    p.add_argument("--workers", type=int, default=2, help="DATALOADER.NUM_WORKERS per run")
    p.add_argument("--spike-ratio", type=float, default=2.0)
    p.add_argument("--spike-rise", type=float, default=0.05,
                   help="a spike also rises by more than this (loss units): at the end of training "
                        "the loss is so low that noise alone doubles a 20-iteration median")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing; report the runs found in --output (unfinished ones too)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p.parse_args(argv)


def read_metrics(path: Path) -> list:
    """metrics.json lines (one JSON object per line), later lines of one iteration win."""
    by_iter = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_iter.setdefault(row["iteration"], {}).update(row)
    return [by_iter[i] for i in sorted(by_iter)]


def spike(losses: list, start: int) -> tuple:
    """
    (ratio, rise) of the worst jump after ``start``: a 20-iteration median of ``losses`` over /
    minus the lowest 20-iteration median before it (ratio 1 and rise 0 for a loss that never
    goes back up).
    """
    best, ratio, rise = float("inf"), 1.0, 0.0
    for i in range(WINDOW, len(losses) + 1):
        med = statistics.median(losses[i - WINDOW:i])
        if i - WINDOW >= start and best < float("inf"):
            ratio = max(ratio, med / max(best, 1e-8))
            rise = max(rise, med - best)
        best = min(best, med)
    return ratio, rise


def summarize(run_dir: Path, warmup: int, ratio_limit: float, rise_limit: float) -> dict:
    rows = read_metrics(run_dir / "metrics.json")
    key = "loss_action" if any("loss_action" in r for r in rows) else "total_loss"
    losses = [r[key] for r in rows if key in r]
    maps = [(r["iteration"], v) for r in rows for k, v in r.items()
            if k.endswith("frame_mAP@0.5") and "gt_boxes" not in k]
    ratio, rise = spike(losses, warmup)
    return {
        "iterations": len(losses),
        "final_loss": statistics.median(losses[-50:]) if losses else float("nan"),
        "max_loss_after_warmup": max(losses[warmup:], default=float("nan")),
        "spike_ratio": ratio,
        "spike_rise": rise,
        "spike": ratio > ratio_limit and rise > rise_limit,
        "frame_mAP": maps[-1][1] if maps else float("nan"),
        "frame_mAP_per_eval": maps,
    }


def run_command(args, norm: str, seed: int, out: Path) -> list:
    return [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file",
            str(REPO / args.config), "--resume",
            "SEED", str(seed), "MODEL.SLOWFAST.NORM", norm, "MODEL.DEVICE", args.device,
            "DATALOADER.NUM_WORKERS", str(args.workers), "SOLVER.LOG_PERIOD", "1",
            "OUTPUT_DIR", str(out)] + list(args.opts)


def format_table(results: dict) -> str:
    lines = ["| norm | seed | frame-mAP | final loss | worst jump (ratio / rise) | spike |",
             "|---|---:|---:|---:|---:|---|"]
    for norm, runs in results.items():
        for seed, r in runs.items():
            unfinished = "" if r.get("finished", True) else f" (stopped at {r['iterations']} it)"
            lines.append(f"| {norm} | {seed}{unfinished} | {r['frame_mAP']:.2f} | "
                         f"{r['final_loss']:.4f} | {r['spike_ratio']:.2f} / {r['spike_rise']:.3f} | "
                         f"{'yes' if r['spike'] else 'no'} |")
    lines.append("")
    lines.append("| norm | frame-mAP mean | min | max | runs with a spike |")
    lines.append("|---|---:|---:|---:|---:|")
    for norm, runs in results.items():
        maps = [r["frame_mAP"] for r in runs.values()]
        if not maps:
            continue
        lines.append(f"| {norm} | {statistics.mean(maps):.2f} | {min(maps):.2f} | {max(maps):.2f} | "
                     f"{sum(r['spike'] for r in runs.values())} / {len(runs)} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    """One benchmark per output folder: a second one on it is refused at once (its
    ``.acar_d2.lock``, docs/SAFETY.md); a stopped one is resumed by running it again."""
    args = parse_args(argv)
    from acar_d2.utils.output_lock import hold_output_folder

    with hold_output_folder(str(Path(args.output).resolve())):
        return benchmark(args)


def benchmark(args) -> dict:
    root = Path(args.datasets).expanduser().resolve()
    # the same world as make quickstart (generated there when missing, videos included)
    from quickstart import ensure_world

    ensure_world(root)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ACAR_DATASETS=str(root), OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1" if args.jobs > 1 else str(os.cpu_count() or 1)))
    pending = []
    for norm in args.norms if not args.summarize_only else []:
        for seed in args.seeds:
            out = output / norm / f"seed{seed}"
            if not (out / "model_final.pth").is_file():
                pending.append((norm, seed, out))
    running = []
    start = time.time()
    while pending or running:
        while pending and len(running) < args.jobs:
            norm, seed, out = pending.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "train_net.log", "a")
            print(f"[stability] start {norm} seed {seed} -> {out}", flush=True)
            running.append((norm, seed, subprocess.Popen(
                run_command(args, norm, seed, out), stdout=log, stderr=subprocess.STDOUT,
                cwd=REPO, env=env), log))
        time.sleep(2)
        for item in list(running):
            norm, seed, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"[stability] {norm} seed {seed} finished with exit code {proc.returncode} "
                      f"({(time.time() - start) / 60:.1f} min)", flush=True)
    results = {}
    for norm in args.norms:
        results[norm] = {}
        for seed in args.seeds:
            out = output / norm / f"seed{seed}"
            if not (out / "metrics.json").is_file():
                continue
            results[norm][seed] = summarize(out, _solver(out)["WARMUP_ITERS"], args.spike_ratio,
                                            args.spike_rise)
            results[norm][seed]["finished"] = (out / "model_final.pth").is_file()
    table = format_table(results)
    print(table)
    (output / "results.json").write_text(json.dumps(results, indent=1))
    (output / "results.md").write_text(table + "\n")
    return results


def _solver(run_dir: Path) -> dict:
    """SOLVER of the run, from the config.yaml train_net.py left beside its outputs."""
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["SOLVER"]


if __name__ == "__main__":
    main()
