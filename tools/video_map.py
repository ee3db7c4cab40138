#!/usr/bin/env python
"""
Video-mAP (0.2 / 0.5 / 0.75) of a frame-level predictions CSV on a split with tube ids
(UCF101-24; definitions: ``acar_d2/evaluation/video_map.py``), after ``tools/train_net.py
--eval-only`` wrote ``inference/predictions_<dataset>.csv``:

    python tools/video_map.py --dataset ucf101_24_test --predictions predictions.csv [--json out.json]
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

import acar_d2  # noqa: F401, E402  (registers the builtin splits)
from acar_d2.evaluation.video_map import video_map_of_predictions  # noqa: E402
from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/video_map.py",
                                description="video-mAP of a frame-level predictions CSV")
    p.add_argument("--dataset", required=True, help="registered split with tube ids (UCF101-24)")
    p.add_argument("--predictions", required=True)
    p.add_argument("--link-iou", type=float, default=0.2)
    p.add_argument("--max-gap", type=int, default=0)
    p.add_argument("--min-length", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.dataset not in DatasetCatalog.list():
        sys.exit(f"--dataset {args.dataset!r} is not a registered dataset")
    if not os.path.isfile(args.predictions):
        raise FileNotFoundError(f"--predictions: file not found: {args.predictions}")
    meta = MetadataCatalog.get(args.dataset)
    res = video_map_of_predictions(DatasetCatalog.get(args.dataset), args.predictions,
                                   meta.action_ids, meta.get("action_classes", None),
                                   link_iou=args.link_iou, max_gap=args.max_gap,
                                   min_length=args.min_length)
    for k, v in res.items():
        if k.startswith("video_mAP"):
            print(f"{k}: {v:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main, prog="tools/video_map.py")
