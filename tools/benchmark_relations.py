#!/usr/bin/env python
"""
Relation heads compared on the synthetic world: linear baseline, actor-actor, actor-context and
ACAR (HR2O), trained with the same backbone, data, seed and schedule (``configs/Synthetic/``).

The synthetic world has two *indirect* classes ("ride", "listen": decidable only from another
actor's relation to a shared object, ACAR Sec. 1 / Fig. 1); the table reports their mean AP apart
from the direct interaction classes, which is where actor-context-actor reasoning should matter.

Usage::

    python tools/benchmark_relations.py [--world default|relation] [--output DIR] [--max-iter N]
        [--seeds 0 1 2 3 4] [--heads baseline actor_actor actor_context acar] [KEY VALUE ...]

``--world relation`` trains and evaluates on the relation world (``aca_world_rel``, generated
with ``--relation --videos 150`` when missing; datasets/SYNTHETIC.md), where the indirect classes'
negatives share the positives' first-order cue. Every head is trained once per seed (``SEED``:
initialization and data order); the table gives mean +- half the range over the seeds with the
per-seed values. It is printed as markdown and written with the raw numbers (``results.json``)
into ``--output``. The tool resumes: a finished (head, seed) keeps its ``summary.json`` and is
not retrained; an interrupted one restarts from its last checkpoint.
"""
import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADS = ("baseline", "actor_actor", "actor_context", "acar")
# world -> (folder under --datasets, dataset prefix, make_synthetic_ava.py options)
WORLDS = {"default": ("aca_world", "aca_world", ()),
          "relation": ("aca_world_rel", "aca_world_rel", ("--relation",))}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=list(WORLDS), default="default")
    parser.add_argument("--videos", type=int, default=150,
                        help="videos of a generated relation world (20%% val)")
    parser.add_argument("--output", default="")
    parser.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                        help="dataset root holding aca_world/ (generated if missing)")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-iter", type=int, default=0,
                        help="shorten the schedule (steps scale along); 0 = the configs' own")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def head_config(head: str) -> Path:
    (path,) = sorted((REPO / "configs" / "Synthetic").glob(f"{head}_SLOWFAST_R18_*_aca_world.yaml"))
    return path


def build_cfg(config: Path, output: Path, max_iter: int, opts: list, seed: int,
              prefix: str = "aca_world"):
    from acar_d2.engine import setup_cfg

    cfg = setup_cfg(str(config), opts, freeze=False)
    cfg.DATASETS.TRAIN = (f"{prefix}_train",)
    cfg.DATASETS.TEST = (f"{prefix}_val",)
    if max_iter > 0:
        # Keep the schedule's shape: warm-up and decay points scale with the length.
        scale = max_iter / cfg.SOLVER.MAX_ITER
        cfg.SOLVER.STEPS = tuple(int(s * scale) for s in cfg.SOLVER.STEPS)
        cfg.SOLVER.WARMUP_ITERS = int(cfg.SOLVER.WARMUP_ITERS * scale)
        cfg.SOLVER.MAX_ITER = max_iter
    cfg.TEST.EVAL_PERIOD = 0  # one evaluation, at the end
    cfg.SOLVER.CHECKPOINT_PERIOD = cfg.SOLVER.MAX_ITER
    cfg.OUTPUT_DIR = str(output)
    cfg.SEED = seed  # for a given seed every head sees the same clips in the same order
    cfg.freeze()
    return cfg


def run_head(cfg) -> dict:
    """Train (resuming from the run folder's last checkpoint) and evaluate one head; the summary
    is written to ``summary.json`` beside the run's ``config.yaml``."""
    from detectron2.data import MetadataCatalog
    from detectron2.utils.env import seed_all_rng

    from acar_d2.engine import Trainer
    from ava_eval.reporting import summarize_frame_map

    out = Path(cfg.OUTPUT_DIR)
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    seed_all_rng(cfg.SEED)
    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    (out / "config.yaml").write_text(cfg.dump())  # the run's full config beside its outputs
    trainer.train()
    head_params = sum(p.numel() for p in trainer.model.roi_heads.parameters())
    results = trainer._last_eval_results
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    summary = summarize_frame_map(results, list(meta.action_classes))
    summary.update(minutes=(time.time() - start) / 60, head_params=head_params)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _mean_spread(values: list) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.2f} ± {(max(values) - min(values)) / 2:.2f}"


def format_table(rows: dict, indirect: list, groups: list) -> str:
    """rows: head -> list of per-seed summaries. Cells are mean ± half-range over seeds."""
    cols = ["head", "head params", "seeds", "frame-mAP"] + groups + [
        "indirect (" + ", ".join(indirect) + ")", "train min/run"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for head, runs in rows.items():
        ind = [sum(r["per_class"][n] for n in indirect) / len(indirect) for r in runs]
        cells = [head, f"{runs[0]['head_params']:,}", str(len(runs)),
                 _mean_spread([r["frame_mAP"] for r in runs])]
        cells += [_mean_spread([r["per_group"][g] for r in runs if g in r["per_group"]])
                  for g in groups]
        cells += [_mean_spread(ind) + " (" + " / ".join(f"{v:.1f}" for v in ind) + ")",
                  f"{sum(r['minutes'] for r in runs) / len(runs):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    root = Path(args.datasets).expanduser().resolve()
    os.environ["ACAR_DATASETS"] = str(root)  # read by acar_d2's builtin registration at import
    folder, prefix, gen_opts = WORLDS[args.world]
    world = root / folder
    if not (world / "world.json").is_file():
        import subprocess
        import sys

        extra = ["--videos", str(args.videos)] if args.world == "relation" else []
        subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out",
                        str(world), *gen_opts, *extra], check=True)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="detectron2")
    classes = json.loads((world / "world.json").read_text())["classes"]
    indirect = [c["name"] for c in classes if c.get("indirect")]
    groups = ["pose", "person_object", "person_person"]

    output = Path(args.output or f"output/benchmark_relations_{args.world}").resolve()
    output.mkdir(parents=True, exist_ok=True)
    rows = {}
    for head in args.heads:
        rows[head] = []
        for seed in args.seeds:
            cfg = build_cfg(head_config(head), output / f"{head}_seed{seed}", args.max_iter,
                            args.opts, seed, prefix)
            rows[head].append(run_head(cfg))
            ind = [rows[head][-1]["per_class"][n] for n in indirect]
            print(f"[benchmark_relations] {head} seed {seed}: frame-mAP "
                  f"{rows[head][-1]['frame_mAP']:.2f}, indirect {sum(ind) / len(ind):.2f}")
            (output / "partial_results.json").write_text(json.dumps(rows, indent=2))
    table = format_table(rows, indirect, groups)
    print(table)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(rows, indent=2))
    (output / "results.md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()
