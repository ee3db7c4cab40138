#!/usr/bin/env python
"""
Can training recover from saturated logits? The official ACAR-Net criterion (binary cross-entropy
on clamped probabilities) against acar_d2's log-space form of the same loss, side by side.

From a trained checkpoint, the classifier (``roi_heads.fc2``, or ``fc`` for the baseline head) is
multiplied by ``--scale`` - the kind of overshoot one too-large step leaves behind - so that many
logits lie far beyond +-17, where float32 probabilities round to exactly 0 or 1. Then the same
``--iters`` iterations (same data, seed and schedule) are trained once with each loss, and the
per-iteration action loss and the share of (box, class) elements stuck at the official cap of 100
are reported.

    python tools/benchmarks/benchmark_loss_saturation.py --weights output/quickstart_action/model_final.pth \\
        --config configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml [--scale 30] [--iters 100]

Results: a markdown table on stdout and ``results.json`` in ``--output``.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="a trained checkpoint of --config")
    p.add_argument("--config", default="configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml")
    p.add_argument("--scale", type=float, default=30.0)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="output/benchmark_loss_saturation")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p.parse_args(argv)


def official_loss(logits, gt_actions, pose_class_indices):
    """The official criterion: BCE on clamped softmax / sigmoid probabilities."""
    from acar_d2.modeling.roi_heads.loss import action_probabilities

    if logits.numel() == 0:
        return logits.sum() * 0.0
    probs = action_probabilities(logits, pose_class_indices)
    return F.binary_cross_entropy(probs, gt_actions.to(probs.dtype))


def run(args, loss_name: str) -> dict:
    from detectron2.utils.env import seed_all_rng

    from acar_d2.engine import Trainer, setup_cfg
    from acar_d2.modeling.roi_heads import action_heads

    out = Path(args.output).resolve() / loss_name
    cfg = setup_cfg(str(REPO / args.config), list(args.opts) + [
        "MODEL.WEIGHTS", args.weights, "SOLVER.MAX_ITER", str(args.iters),
        "SOLVER.STEPS", "()", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "100000",
        "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()", "SEED", str(args.seed),
        "SOLVER.OVERWRITE_OUTPUT_DIR", "True", "OUTPUT_DIR", str(out)])
    seed_all_rng(args.seed)
    project_loss = action_heads.pose_softmax_bce_loss
    if loss_name == "official":
        action_heads.pose_softmax_bce_loss = official_loss
    stuck = []
    try:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        head = trainer.model.roi_heads
        fc = head.fc2 if hasattr(head, "fc2") else head.fc
        with torch.no_grad():
            fc.weight.mul_(args.scale)

        from acar_d2.modeling.roi_heads.loss import action_probabilities

        orig_losses = head.losses

        def losses(logits, gt_actions):
            # share of (box, class) elements whose probability is exactly 0 / 1 on the wrong side
            p = action_probabilities(logits.detach(), head.pose_class_indices)
            wrong = ((p == 1) & (gt_actions == 0)) | ((p == 0) & (gt_actions == 1))
            stuck.append(float(wrong.float().mean()) if wrong.numel() else 0.0)
            return orig_losses(logits, gt_actions)

        head.losses = losses
        trainer.train()
    finally:
        action_heads.pose_softmax_bce_loss = project_loss
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line]
    loss = [r["total_loss"] for r in rows if "total_loss" in r]
    return {"loss": loss, "stuck_fraction": stuck}


def main(argv=None):
    """One benchmark per output folder: a second one on it is refused at once (its
    ``.acar_d2.lock``, docs/SAFETY.md); a stopped one is resumed by running it again."""
    args = parse_args(argv)
    from acar_d2.utils.output_lock import hold_output_folder

    with hold_output_folder(str(Path(args.output).resolve())):
        return benchmark(args)


def benchmark(args):
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {name: run(args, name) for name in ("official", "acar_d2")}
    marks = [0, 10, 25, 50, args.iters - 1]
    lines = ["| loss | " + " | ".join(f"it {m}" for m in marks) + " | last 20 (median) | stuck at start / end |",
             "|---|" + "---:|" * (len(marks) + 2)]
    for name, r in results.items():
        vals = " | ".join(f"{r['loss'][m]:.3f}" for m in marks if m < len(r["loss"]))
        lines.append(f"| {name} | {vals} | {statistics.median(r['loss'][-20:]):.4f} | "
                     f"{100 * r['stuck_fraction'][0]:.1f} % / {100 * r['stuck_fraction'][-1]:.1f} % |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.output).resolve()
    (out / "results.json").write_text(json.dumps({"args": vars(args), **results}, indent=1))
    return results


if __name__ == "__main__":
    main()
