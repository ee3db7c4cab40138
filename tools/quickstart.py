#!/usr/bin/env python
"""
Quickstart (``make quickstart``): train and evaluate the CPU-sized ACAR-Net on the synthetic world.

1. generates the synthetic AVA-format world under ``$ACAR_DATASETS/aca_world`` if it is missing
   (``tools/make_synthetic_ava.py``);
2. trains ``configs/Synthetic/acar_detector_SLOWFAST_R18_0.9k_aca_world.yaml``: ACAR-Net and its
   own person detector jointly, in one loop with one optimizer, with ``tools/train_net.py``'s
   ``Trainer``, then evaluates on the validation split: person AP@0.5 of the detector, frame-mAP@0.5
   with the detected boxes and with ground-truth boxes (``--without-detector``: the action model
   alone, ``acar_SLOWFAST_R18_1.5k_aca_world.yaml``, boxes from the proposal file);
3. writes into ``--output`` (default ``output/quickstart/``): the checkpoint ``model_final.pth``,
   the training log ``metrics.json`` (+ TensorBoard events), ``eval_results.json`` (frame-mAP@0.5,
   per-class AP, the chance level), the detections ``predictions.csv`` (official AVA CSV rows)
   the per-class AP plot ``per_class_ap.png`` and an annotated validation video
   ``annotated_val.mp4``, the full config ``config.yaml`` (as detectron2's ``default_setup``
   leaves it), and prints where everything is.

Running it again on the same ``--output`` resumes that run from its last checkpoint (a finished
run is only evaluated again; ``metrics.json`` continues where it stopped). ``--clean`` starts over:
the previous run's folder is first renamed to ``<output>.old-<time>``, never deleted.
A second quickstart on the same ``--output`` while one runs is refused at once
(``<output>.lock``).

Usage::

    python tools/quickstart.py [--output output/quickstart] [--config CONFIG] [--clean] [KEY VALUE ...]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the demo/ package (annotate_video)
# ACAR-Net + its own person detector trained jointly (person AP@0.5, frame-mAP with detected and
# with ground-truth boxes); --without-detector: the action model alone on the proposal file's boxes.
DETECTOR_CONFIG = REPO / "configs" / "Synthetic" / "acar_detector_SLOWFAST_R18_0.9k_aca_world.yaml"
ACTION_ONLY_CONFIG = REPO / "configs" / "Synthetic" / "acar_SLOWFAST_R18_1.5k_aca_world.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="output/quickstart", help="output folder")
    parser.add_argument("--config", default=None, help="a configs/Synthetic yaml (default: "
                        + DETECTOR_CONFIG.name + ", or " + ACTION_ONLY_CONFIG.name
                        + " with --without-detector)")
    parser.add_argument("--without-detector", action="store_true",
                        help="train the action model alone, boxes from the proposal file")
    parser.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                        help="dataset root holding aca_world/ (default $ACAR_DATASETS or datasets/)")
    parser.add_argument("--clean", action="store_true",
                        help="start over: move an existing --output folder aside instead of resuming")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def ensure_world(root: Path) -> Path:
    """The synthetic world under ``root/aca_world``, generated when ``world.json`` is missing."""
    world = root / "aca_world"
    if (world / "world.json").is_file():
        print(f"[quickstart] using the synthetic world in {world}")
        return world
    print(f"[quickstart] generating the synthetic world in {world} ...")
    subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out", str(world)],
                   check=True)
    return world


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.config is None:
        args.config = str(ACTION_ONLY_CONFIG if args.without_detector else DETECTOR_CONFIG)
    root = Path(args.datasets).expanduser().resolve()
    # The builtin splits are registered from $ACAR_DATASETS when acar_d2 is imported.
    os.environ["ACAR_DATASETS"] = str(root)
    from acar_d2.utils.output_lock import hold_output_file

    # One quickstart per --output: its lock is <output>.lock beside the folder, which --clean moves.
    with hold_output_file(str(Path(args.output).resolve()), "--output"):
        return quickstart(args, root)


def quickstart(args, root: Path) -> dict:
    """main() once ``--output`` is held: world, training, evaluation, demo video."""
    ensure_world(root)

    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    from acar_d2.engine import ActionPredictor, Trainer, setup_cfg
    from ava_eval.reporting import chance_frame_map, plot_per_class_ap, summarize_frame_map
    from demo.predictor import annotate_video

    output = Path(args.output).resolve()
    if args.clean and output.exists():
        aside = output.with_name(f"{output.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        output.rename(aside)
        print(f"[quickstart] --clean: moved the previous run to {aside}")
    resume = (output / "last_checkpoint").is_file()
    if resume:
        print(f"[quickstart] resuming the run in {output} (use --clean to start over)")
    output.mkdir(parents=True, exist_ok=True)
    cfg = setup_cfg(args.config, list(args.opts) + ["OUTPUT_DIR", str(output)], freeze=False)
    if cfg.SEED < 0:
        cfg.SEED = 0  # a reproducible quickstart
    cfg.freeze()
    setup_logger(str(output), name="detectron2")
    setup_logger(str(output), name="acar_d2")
    # The full config beside the outputs (detectron2's default_setup does the same), so that
    # `tools/demo.py --config-file output/quickstart/config.yaml` works.
    (output / "config.yaml").write_text(cfg.dump())
    seed_all_rng(cfg.SEED)

    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    minutes = (time.time() - start) / 60
    results = trainer._last_eval_results
    del trainer

    val = cfg.DATASETS.TEST[0]
    meta = MetadataCatalog.get(val)
    task_results = {k: v for k, v in results.items()
                    if not k.endswith("_gt_boxes") and k != "person_detection"}
    summary = summarize_frame_map(task_results, list(meta.action_classes))
    mAP, ap = summary["frame_mAP"], summary["per_class"]
    # With the joint person detector (default config): person AP@0.5 of the detected actor boxes,
    # and the frame-mAP with ground-truth boxes (upper bound of the detected-box frame-mAP).
    person_ap50 = results.get("person_detection", {}).get("AP50")
    gt_box_map = next((v.get("frame_mAP@0.5") for k, v in results.items()
                       if k.endswith("_gt_boxes")), None)
    summary.update(person_AP50=person_ap50, frame_mAP_detected_boxes=mAP,
                   frame_mAP_gt_boxes=gt_box_map)
    chance = chance_frame_map(DatasetCatalog.get(val), list(meta.action_ids))
    summary.update(config=str(args.config), dataset=val, chance_frame_mAP=chance,
                   train_minutes=minutes, results=results)
    (output / "eval_results.json").write_text(json.dumps(summary, indent=2))
    groups = {g: [meta.action_classes[i] for i in idx] for g, idx in meta.class_groups.items()}
    if ap:
        plot_per_class_ap(ap, output / "per_class_ap.png",
                          f"{Path(args.config).stem}: frame-mAP {mAP:.1f} (chance {chance:.1f})",
                          groups=groups)
    csvs = sorted((output / "inference").rglob("*.csv"))
    if csvs:
        shutil.copy(csvs[0], output / "predictions.csv")

    # A short annotated validation video: boxes + top action labels with scores.
    video_cfg = cfg.clone()
    video_cfg.defrost()
    video_cfg.MODEL.WEIGHTS = str(output / "model_final.pth")
    val_dicts = DatasetCatalog.get(val)
    first_video = val_dicts[0]["video_id"]
    annotate_video(ActionPredictor(video_cfg), [d for d in val_dicts if d["video_id"] == first_video],
                   list(meta.action_classes), str(output / "annotated_val.mp4"),
                   source=cfg.INPUT.CLIP.SOURCE, top_k=2, score_thresh=0.3)

    print("\n[quickstart] done in %.1f min" % minutes)
    if person_ap50 is not None:
        print(f"  validation person AP@0.5 (detector): {person_ap50:.2f}")
        print(f"  validation frame-mAP@0.5, detected boxes: {mAP:.2f}  (chance level ~{chance:.2f})")
        print(f"  validation frame-mAP@0.5, ground-truth boxes: {gt_box_map:.2f}")
    else:
        print(f"  validation frame-mAP@0.5: {mAP:.2f}  (chance level ~{chance:.2f})")
    for name, value in ap.items():
        print(f"    {name:>14s}: {value:6.2f}")
    for label, path in [("checkpoint", output / "model_final.pth"),
                        ("training log", output / "metrics.json"),
                        ("evaluation", output / "eval_results.json"),
                        ("predictions", output / "predictions.csv"),
                        ("per-class AP plot", output / "per_class_ap.png"),
                        ("annotated video", output / "annotated_val.mp4"),
                        ("TensorBoard", output)]:
        mark = "" if path.exists() else "  (missing)"
        print(f"  {label:>18s}: {path}{mark}")
    rel = os.path.relpath(output)
    print("\n  this model only knows the synthetic world (its actors, actions and camera); to check it")
    print("  on more synthetic footage:")
    print(f"    .venv/bin/python tools/demo.py --config-file {rel}/config.yaml --input VIDEO.mp4 "
          f"--output annotated.mp4 --json predictions.json MODEL.WEIGHTS {rel}/model_final.pth")
    print("  for real footage use a published AVA model of the model zoo (docs/MODEL_ZOO.md: which "
          "weights file, where it goes):")
    print("    .venv/bin/python tools/demo.py --model ava_acar_r50 --input my.mp4 --output out.mp4 "
          "--json out.json")
    return summary


if __name__ == "__main__":
    # acar_d2 registers its builtin splits from $ACAR_DATASETS when it is imported, which the
    # error wrapper does: set it first (as main() does).
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"))
    os.environ["ACAR_DATASETS"] = str(Path(_pre.parse_known_args()[0].datasets).expanduser().resolve())
    from acar_d2.engine.cli import run_cli

    run_cli(main, prog="tools/quickstart.py")
